# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (rl-course)
#     language: python
#     name: rl-course
# ---

# %% tags=["setup"]

# %% [markdown]
# # Unit 08 — Evaluation and comparison of every algorithm
#
# You have now written a small RLHF library: reward functions (unit 01), KL estimators (02), SFT (03),
# a reward model (04), PPO (05), GRPO (06) and DPO (07). Each unit measured *its own* model against
# *its own* starting point. A real project has to answer a different question: **which of these
# models would I ship?** That needs an honest comparison:
#
# * **the same prompts** — held-out sentiment prompts that no run trained on,
# * **the same budget** — every model trained with the same preset (the `quick` one here),
# * **the same measurement** — the same seed, sampling temperature and length, the same metrics,
#   computed by the same code (`course_lib.core.evaluation`, which calls *your* exercise functions).
#
# We compare five models — **base**, **SFT**, **PPO**, **GRPO**, **DPO** — on one task (continue a
# movie review positively), look at the **reward-vs-KL frontier**, every metric, and samples side by
# side, and finally **serve** a model over HTTP as you would at the end of a project.
#
# No new exercises here: this notebook is about reading numbers critically. The written questions
# at the end are graded.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from course_lib import rewards
from course_lib.core import data, evaluation
from course_lib.core.config import checkpoint_dir
from course_lib.core.models import load_policy
from course_lib.core.report import report_metrics, results_dir, save_figure
from course_lib.core.utils import progress

preset = profile.preset()  # "quick" unless $COURSE_PRESET says otherwise
N_EVAL = 8 if FAST else preset.eval_size  # prompts per model (the same for every model)
MAX_NEW = profile.max_completion_length  # the same generation budget for every model
QA_NEW = max(40, MAX_NEW)  # room for "Question: ...\nAnswer: ..."
SEED = 0  # the same sampling seed for every model
prompts = list(data.load_task("sentiment", "eval", n=N_EVAL)["prompt"])
qa_prompts = list(data.load_task("qa", "eval", n=max(4, N_EVAL // 2))["prompt"])
print(
    f"profile {profile.name} · preset {preset.name} · {len(prompts)} eval prompts · "
    f"{MAX_NEW} new tokens · checkpoints in {checkpoint_dir()}"
)
print("example prompts:", prompts[:3])

# %% [markdown]
# ## 1. The five models
#
# The RL units saved their results as checkpoints (`checkpoints/sft`, `ppo`, `grpo`, `dpo`). If you
# ran units 03 and 05–07, they are found; a missing one is trained **now** with that unit's
# `quick_train()` — the same loop, the same `quick` preset and *your* exercise functions (under the
# grader only a few steps). SFT comes first because PPO, GRPO and DPO all **start from the SFT model**
# and are regularised towards it: it is their common reference.
#
# Check the `steps` column: a comparison is only fair if every model had the same budget. A model
# that was trained longer (a `medium` run left in `checkpoints/`) would win for the wrong reason.

# %%
sources = {}
for name in evaluation.COMPARED:  # sft first: the others start from it
    overrides = evaluation.FAST_OVERRIDES[name] if FAST else {}
    sources[name] = evaluation.checkpoint_or_train(name, profile, preset.name, **overrides)

paths = {"base": profile.policy_model, **{n: str(s["path"]) for n, s in sources.items()}}
budget = pd.DataFrame(
    [
        {
            "model": n,
            "origin": s["origin"],
            "train seconds": round(s["seconds"], 1),
            "steps": s["info"].get("steps", "?"),
            "path": str(s["path"]),
        }
        for n, s in sources.items()
    ]
).set_index("model")
budget

# %% [markdown]
# ## 2. What we measure, and why each number alone can lie
#
# For every model we sample **one completion per prompt** (temperature 1, the same seed) and compute:
#
# | metric | definition | what it catches |
# |---|---|---|
# | `reward_mean` (± `reward_std`, min, max) | mean positive-sentiment score of the completions, `rewards.sentiment_reward` | what RL optimised |
# | `positive_fraction` | share of prompt + completion texts the scorer calls positive | the task, as a user sees it |
# | `kl_to_ref` | mean per-token $k_3 = e^{\log r} - 1 - \log r$, $\log r = \log\pi_\text{ref} - \log\pi$, over response tokens | how far the model moved from the SFT reference |
# | `distinct_1`, `distinct_2` | unique word uni/bi-grams ÷ all, over all completions | collapse to a few phrases |
# | `repetition` | mean of `rewards.repetition_penalty` (1 − unique/total words) | "great great great" |
# | `length_mean`, `tokens_mean` | words / tokens per completion | verbosity, truncation |
# | `format_rate` | share of bare questions whose completion has the "Question: …\nAnswer: …" form (`rewards.format_reward`: the form only, not whether the echoed question is the one asked) | what SFT taught — did RL keep it? |
#
# Why **k3** for the KL? It is unbiased (its mean is the true KL), never negative, and has low variance
# — unit 02 showed it. Why the **SFT model** as the reference for *every* model? Because it is the
# reference PPO, GRPO and DPO were penalised against; measuring all five against one fixed model puts
# them on one axis (the base model's KL is then "how different is the model we started SFT from").
#
# A high reward with a large KL or a low `distinct_2` is a warning sign, not a win.

# %%
ref_model, _ = load_policy(paths["sft"], profile=profile)  # the common reference
results, texts_qa = {}, {}
for name, path in progress(paths.items(), desc="evaluating", total=len(paths)):
    model, tokenizer = load_policy(path, profile=profile)
    res = evaluation.evaluate_policy(
        model,
        tokenizer,
        prompts,
        rewards.sentiment_reward,
        ref=ref_model,
        max_new_tokens=MAX_NEW,
        seed=SEED,
        sentiment=True,
    )
    qa = evaluation.evaluate_policy(
        model, tokenizer, qa_prompts, rewards.format_reward, max_new_tokens=QA_NEW, seed=SEED
    )
    res["format_rate"] = (qa["reward_mean"] + 1) / 2  # format_reward is +1 / -1
    results[name] = res
    texts_qa[name] = qa["samples"]
    del model

table = pd.DataFrame({n: evaluation.scalar_metrics(r) for n, r in results.items()}).T
cols = [
    "reward_mean",
    "reward_std",
    "positive_fraction",
    "kl_to_ref",
    "distinct_1",
    "distinct_2",
    "repetition",
    "length_mean",
    "tokens_mean",
    "format_rate",
]
table[cols].round(3)


# %% [markdown]
# ## 3. The reward-vs-KL frontier
#
# RL post-training *buys* reward with divergence from the reference: every nat of KL is a move away
# from the fluent distribution the model learned in pre-training and SFT. Plotting each model at
# (KL to the reference, reward) shows the trade-off at a glance. A model **up and to the left** of
# another is better on both axes (it *dominates* it); the models no other model dominates form the
# **frontier**. Error bars are ±1 standard error of the mean over the prompts — with a few dozen
# prompts, differences smaller than that are noise.


# %%
def pareto(points):
    """Names of the models no other model beats on both axes (lower KL and higher reward)."""
    keep = []
    for n, (x, y) in points.items():
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for m, (x2, y2) in points.items() if m != n):
            keep.append(n)
    return sorted(keep, key=lambda n: points[n][0])


points = {n: (r["kl_to_ref"], r["reward_mean"]) for n, r in results.items()}
front = pareto(points)
colors = dict(zip(paths, plt.cm.tab10.colors))
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for n, r in results.items():
    se = r["reward_std"] / np.sqrt(r["n"])
    ax.errorbar(
        r["kl_to_ref"],
        r["reward_mean"],
        yerr=se,
        fmt="o",
        ms=9,
        capsize=4,
        color=colors[n],
        label=f"{n}  (pos. {r['positive_fraction']:.0%})",
    )
    ax.annotate(n, (r["kl_to_ref"], r["reward_mean"]), textcoords="offset points", xytext=(8, 6))
ax.plot([points[n][0] for n in front], [points[n][1] for n in front], "k--", lw=1, label="frontier")
ax.set_xscale("symlog", linthresh=0.01)  # linear near 0, logarithmic beyond: small and large KLs both visible
ax.set_xlabel("KL to the SFT reference (mean per-token k3, nats; symlog scale)")
ax.set_ylabel("mean sentiment reward")
ax.set_title("reward vs KL: up-left is better")
ax.legend(fontsize=8, loc="best")
save_figure(fig, "08_frontier")
plt.show()
print("on the frontier:", ", ".join(front))

# %% [markdown]
# ## 4. Every metric, side by side
#
# One bar chart per metric. Look for the *pattern*: does the model with the highest reward also have
# the lowest `distinct_2` and the highest `repetition`? That is the signature of reward hacking — the
# policy found a few phrases the scorer loves and repeats them. Did RL on sentiment cost the SFT
# model its Q&A format (`format_rate`)? That is the *alignment tax*: optimising one behaviour can
# erode another that nobody measured during training.

# %%
fig, axes = plt.subplots(2, 5, figsize=(15, 5.5))
for ax, metric in zip(axes.flat, cols):
    vals = table[metric]
    ax.bar(vals.index, vals.values, color=[colors[n] for n in vals.index])
    ax.set_title(metric, fontsize=10)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
fig.suptitle(f"{len(prompts)} held-out prompts, one sample each, seed {SEED}")
fig.tight_layout()
save_figure(fig, "08_metrics")
plt.show()

# %% [markdown]
# A mean hides the shape of a distribution. The box plot summarises the rewards of each model's
# samples: the orange line is the median, the box holds the middle half of the samples, the whiskers
# reach the most extreme samples within 1.5 box-lengths, circles are the samples beyond them, and the
# green triangle is the mean of the bar chart above. A model whose box is short and sits at the top is
# rewarded alike for nearly every prompt — check its `distinct_2` and `repetition` above and its
# samples below to tell "always good" from "always the same phrase".

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.boxplot([results[n]["rewards"] for n in paths], showmeans=True)
ax.set_xticks(range(1, len(paths) + 1), list(paths))
ax.set_ylabel("sentiment reward per sample")
ax.set_title("reward distribution per model")
save_figure(fig, "08_reward_distributions")
plt.show()

# %% [markdown]
# ## 5. Samples side by side
#
# Numbers are summaries; **read the text**. The same prompts, the same seed, one row per prompt and one
# column per model. Every model's first 20 samples are also written as JSONL
# (`{"prompt", "response"}` per line, the format of the IEMS-490 assignment) to `samples/<model>.jsonl`
# — share them, diff them, or score them with another judge.
# The last lines ask every model the same question: read them next to `format_rate`. A completion
# can be in the format while it echoes *another* question and answers that one — the format reward
# cannot tell; the serving endpoint's `format_ok` (section 7) also checks the echo.

# %%
pd.set_option("display.max_colwidth", 90)
side = pd.DataFrame(
    {n: [s["response"] for s in results[n]["samples"][:4]] for n in paths},
    index=[s["prompt"] for s in results["base"]["samples"][:4]],
)
display(side.T)

samples_dir = (results_dir() or Path(".")) / "samples"
for n, r in results.items():
    p = evaluation.write_samples_jsonl(
        samples_dir / f"{n}.jsonl",
        [s["prompt"] for s in r["samples"]],
        [s["response"] for s in r["samples"]],
        limit=20,
    )
print("wrote", ", ".join(sorted(str(p.name) for p in samples_dir.glob("*.jsonl"))), "to", samples_dir)
print("\nthe same question to every model (format check):")
for n in paths:
    print(f"  {n:>5}: {texts_qa[n][0]['prompt'].strip()!r} -> {texts_qa[n][0]['response'][:80]!r}")

# %% [markdown]
# ## 6. Headline numbers
#
# `report_metrics` records, for each trained model, the change from **its own starting point** —
# base → SFT, and SFT → PPO / GRPO / DPO (they all started from the SFT model) — which is what
# the course collects into one table of results when every notebook is run in order.

# %%
start = {"sft": "base", "ppo": "sft", "grpo": "sft", "dpo": "sft"}  # where each run began
headline = {}
for n in evaluation.COMPARED:
    for metric in ("positive_fraction", "kl_to_ref", "distinct_2"):
        headline[f"{metric}_{n}"] = (results[start[n]][metric], results[n][metric])
report_metrics("08", headline)

# %% [markdown]
# ## 7. Serving the model
#
# A trained checkpoint is only useful once something can call it. `course serve` starts a small
# **FastAPI** app (as in the GPT-2 format-RL assignment):
#
# ```bash
# course serve                                   # the newest SFT/RL checkpoint, else the base model
# course serve checkpoints/grpo --port 8001      # a specific one (binds to 127.0.0.1)
# curl -s localhost:8000/generate -H 'content-type: application/json' \
#      -d '{"question": "What is the capital of Orrin?", "max_length": 32}'
# ```
#
# `POST /generate` takes `{"question", "max_length"}` and answers `{"response": "Question: …\nAnswer: …"}`;
# `GET /health` says which checkpoint is loaded. What makes it safe to leave running: inputs are
# validated (an empty question or a `max_length` out of range is a **422** with a readable message,
# not a crash), generation is bounded in length and in time, and one worker thread generates at a
# time so concurrent requests cannot interfere. Below we call the app in-process (no port needed).

# %%
from fastapi.testclient import TestClient

from course_lib.core import serving

client = TestClient(serving.create_app(paths["sft"]))
print(client.get("/health").json())
ok = client.post("/generate", json={"question": qa_prompts[0].strip(), "max_length": 32})
print(ok.status_code, json.dumps(ok.json(), indent=1))
bad = client.post("/generate", json={"question": "  ", "max_length": 0})
print(bad.status_code, bad.json()["message"])

# %% [markdown]
# ## 8. Questions
#
# Answer from *your* numbers and samples above (they depend on your implementations and seeds).

# %% [markdown] tags=["answer:q_frontier", "points:3"]
# Which models are on the reward-vs-KL frontier in your run, and which are dominated? For the model
# with the highest reward, say from the samples whether its reward is *earned* (fluent, varied,
# positive text) or *hacked* (repetition, collapse), and which other metric(s) in the table back up
# your reading.

# %% [markdown] tags=["answer:q_budget", "points:3"]
# The comparison used the same prompts, seed, generation length and training preset for every model.
# Name two ways in which it is still **not** a fair comparison of the *algorithms* (as opposed to these
# particular runs), and for each say what you would change to make it fairer.

# %% [markdown] tags=["answer:q_ship", "points:3"]
# You must ship one of the five models as a "friendly review assistant" that also answers questions
# in the Q&A format. Which one do you pick, and why? Use at least three metrics from the table (one
# of them `format_rate` or `kl_to_ref`) and say what you would monitor after deployment.

# %% [markdown]
# ## Going further
# * The course's timing benchmark runs our SFT / GRPO / DPO loops against TRL's trainers on the
#   same model and batch, alone on an idle machine.
# * On a GPU (`COURSE_PROFILE=gpu`, e.g. Colab T4) the same notebook compares real models (GPT-2 on
#   IMDB with a DistilBERT sentiment reward). `course_lib.core.lora.apply_lora` trains only low-rank adapters
#   (with `peft` installed), and `course_lib.core.tracking` logs training curves to TensorBoard or
#   Weights & Biases when they are installed.
