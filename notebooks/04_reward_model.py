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
# # Unit 04 — Reward models
#
# Unit 01's rewards were rules we could write down. For "helpful", "harmless" or "well written"
# nobody can: instead, people compare two answers to the same prompt and say which one is better,
# and a **reward model** learns a score that agrees with their choices. This is the second stage
# of the InstructGPT / Llama-2 pipeline (SFT → reward model → RL); unit 05 can optimise a policy
# against the model you train here.
#
# The model is the language model's transformer with a **scalar head**: one number per token, of
# which we keep the one at the last real token (it is the only position that has attended to the
# whole text). It is trained with the **Bradley–Terry** model of pairwise preferences:
#
# $$P(\text{chosen} \succ \text{rejected}) = \sigma\big(r(x, y_c) - r(x, y_r)\big), \qquad
# \mathcal{L} = -\log \sigma\big(r(x, y_c) - r(x, y_r)\big).$$
#
# Only the *difference* of two rewards is ever trained, so the reward's offset is arbitrary — a fact
# that matters when RL uses it (unit 05).

# %%
import dataclasses
import statistics
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from course_lib import reward_model
from course_lib.core import data
from course_lib.core.models import RewardModel, load_tokenizer
from course_lib.core.report import report_metrics, results_dir, save_figure
from course_lib.labs import speed as speed_lab
from course_lib.trainers import reward_model as rmt

preset = profile.preset()
train_ds = data.preference_pairs("train", profile=profile)
eval_ds = data.preference_pairs("eval", n=64 if FAST else None, profile=profile)
print(f"{len(train_ds)} training pairs, {len(eval_ds)} held-out pairs")
if profile.name == "tiny":
    print("the rule behind the synthetic labels:", data.PREFERENCE_RULE)
for ex in train_ds.select(range(3)):
    print(f"\nprompt:   {ex['prompt']!r}\nchosen:   {ex['chosen']!r}\nrejected: {ex['rejected']!r}")

# %% [markdown]
# In the tiny profile the "human" is a rule, so we can check what the model learned: the chosen
# answer is positive and does not repeat itself; the rejected one is negative (80 %) or a positive
# word repeated over and over (20 %) — exactly the reward hack of unit 01, which we now want a
# *learned* reward to refuse. In the gpu profile the pairs are Anthropic's HH-RLHF, labelled by people.
#
# ## Exercise 4.1 — `bradley_terry_loss`
#
# `mean(-logsigmoid(r_chosen - r_rejected - margin))`. The optional `margin` (Llama-2) asks the
# chosen reward to win by at least that much, for pairs that annotators marked as clearly different.
# Use `F.logsigmoid`: `log(sigmoid(d))` underflows to `-inf` for very negative `d`.

# %% tags=["exercise-test:bradley_terry_loss"]

# %%
d = torch.linspace(-6, 6, 121)
fig, ax = plt.subplots(figsize=(6, 3.2))
for m in [0.0, 2.0]:
    ax.plot(
        d,
        [reward_model.bradley_terry_loss(x[None], torch.zeros(1), margin=m).item() for x in d],
        label=f"margin {m:g}",
    )
ax.set_xlabel("r_chosen - r_rejected")
ax.set_ylabel("loss")
ax.legend()
ax.set_title("Bradley-Terry loss: wrong order costs linearly, right order ~0")
save_figure(fig, "04_bt_loss")
plt.show()

# %% [markdown]
# The loss never reaches zero, so the rewards of well-separated pairs keep drifting apart slowly,
# but its gradient (σ(-d)) vanishes once a pair is ranked correctly with room to spare: training
# concentrates on the pairs the model still gets wrong.
#
# ## Exercise 4.2 — `preference_accuracy`
#
# The fraction of pairs whose chosen reward is *strictly* higher. A tie counts as a mistake: a reward
# model that gives every text the same score should score 0, not 50 %.

# %% tags=["exercise-test:preference_accuracy"]

# %% [markdown]
# ## Exercise 4.3 — `last_token_pool`
#
# The head gives one value per token, `[B, T]`. With right padding the sequences end at different
# positions; pick, for each row, the value at its **last position where `attention_mask` is 1**.
# Taking `values[:, -1]` instead would read a padding position for every row shorter than the
# longest — a reward that depends on how long the *other* texts in the batch are.
# `RewardModel.score` calls your function. The last real token is the only one that has attended
# to the full prompt and answer. (TRL appends an EOS token to every text and reads the reward there;
# we read it at the text's own last token, so that decoded policy samples — which never contain the
# EOS text — are scored in unit 05 exactly as in training.)

# %% tags=["exercise-test:last_token_pool"]

# %% [markdown]
# ## Training
#
# The quick preset: a few dozen steps of 8 pairs; each step scores the 8 chosen and 8 rejected
# texts in one forward pass. Every few steps the loop measures the **held-out** accuracy.

# %%
config = rmt.RewardConfig.from_profile(profile, **({"max_steps": 3} if FAST else {}))
print(config)
course_lib.seed_everything(0)
tokenizer = load_tokenizer(profile=profile)
rm = RewardModel.from_base(profile=profile).to(course_lib.core.utils.default_device())
before = rmt.evaluate(rm, tokenizer, eval_ds)["eval_accuracy"]
print(f"held-out accuracy before training: {before:.1%} (a random head)")
eval_every = max(1, config.max_steps // 6)
t0 = time.perf_counter()
probe_ds = eval_ds.select(range(min(128, len(eval_ds))))  # a quick held-out probe during training
run = rmt.train(
    config,
    rm,
    tokenizer,
    train_ds,
    eval_every=eval_every,
    eval_fn=lambda m: rmt.evaluate(m, tokenizer, probe_ds),
)
history = run.history
train_seconds = time.perf_counter() - t0
r_chosen, r_rejected = rmt.score_pairs(rm, tokenizer, eval_ds)
after = reward_model.preference_accuracy(r_chosen, r_rejected)
print(f"{len(history)} steps in {train_seconds:.1f} s; held-out accuracy {before:.1%} -> {after:.1%}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot([h["step"] for h in history], [h["loss"] for h in history])
axes[0].set_xlabel("step")
axes[0].set_ylabel("Bradley-Terry loss")
axes[0].set_title("training loss")
ev = [h for h in history if "eval_accuracy" in h]
axes[1].plot(
    [h["step"] for h in history], [h["accuracy"] for h in history], alpha=0.4, label="training batch"
)
axes[1].plot(
    [h["step"] for h in ev],
    [h["eval_accuracy"] for h in ev],
    "o-",
    label=f"held-out probe ({len(probe_ds)} pairs)",
)
axes[1].set_ylim(0, 1.02)
axes[1].set_xlabel("step")
axes[1].set_ylabel("accuracy")
axes[1].legend()
axes[1].set_title(f"held-out accuracy {before:.0%} -> {after:.0%}")
save_figure(fig, "04_rm_training")
plt.show()

# %% [markdown]
# ### What does the head see along a text?
#
# `RewardModel.forward` gives a value at *every* position; `score` keeps the last one. Plotting the
# whole sequence shows how the reward builds up as the answer unfolds — and why reading it anywhere
# but the end (or at a padding position) would be meaningless.

# %%
ex = eval_ds[0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
for ax, key in zip(axes, ["chosen", "rejected"]):
    enc = rmt.encode_texts([ex["prompt"] + ex[key]], tokenizer, device=next(rm.parameters()).device)
    with torch.no_grad():
        values = rm(enc["input_ids"], enc["attention_mask"])[0].cpu()
    ax.plot(values, "o-")
    ax.axvline(
        len(tokenizer(ex["prompt"], add_special_tokens=False)["input_ids"]) - 0.5,
        color="grey",
        ls=":",
        label="answer starts",
    )
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels([tokenizer.decode([int(i)]) for i in enc["input_ids"][0]], rotation=90, fontsize=7)
    ax.set_title(f"{key}: reward at the last token = {values[-1]:.2f}")
    ax.legend(fontsize=7)
axes[0].set_ylabel("head value per token")
save_figure(fig, "04_reward_along_text")
plt.show()

# %% [markdown]
# ## Error analysis
#
# Accuracy is one number; the mistakes tell you *what* the reward model has not understood — and
# therefore what an RL policy optimised against it will be free to exploit. We collect every
# held-out pair where the model prefers the rejected answer or ties, worst first, into
# `analysis/reward_model_mistakes.jsonl` (fields `idx, prompt, chosen, rejected, reward_chosen,
# reward_rejected`). If the model makes fewer than 20 mistakes, the list is filled up to 20 with the
# correctly ranked pairs of lowest margin (the ones it is least sure about), marked `"mistake": false`.

# %%
cases, n_mistakes = rmt.mistakes(eval_ds, r_chosen, r_rejected, k=20)
out_dir = (results_dir() or __import__("pathlib").Path(".")) / "analysis"
path = rmt.write_mistakes(cases, out_dir / "reward_model_mistakes.jsonl")
print(
    f"{n_mistakes} mistakes (rejected >= chosen) among {len(eval_ds)} held-out pairs; "
    f"{len(cases)} cases written to {path}"
    + (
        ""
        if n_mistakes >= 20
        else f" (filled with the {len(cases) - n_mistakes} lowest-margin correct pairs)"
    )
)
for c in cases[:6]:
    print(
        f"\n[{c['idx']}] margin {c['margin']:+.2f} {'MISTAKE' if c['mistake'] else '(correct, low margin)'}"
        f"\n  prompt   {c['prompt']!r}\n  chosen   {c['chosen']!r} ({c['reward_chosen']:.2f})"
        f"\n  rejected {c['rejected']!r} ({c['reward_rejected']:.2f})"
    )

# %% [markdown]
# What to look for in the cases above (your run's numbers may differ slightly). In our run the
# mistakes are almost never about repetition — a repeated word is a strong surface feature, learned
# early. They are answers whose sentiment is carried by a **phrase rather than a word** ("Ten out
# of ten.", "I would watch it again.") competing with a short, mildly worded negative answer ("I
# disliked the villain.", "I was bored by the editing."): the model has to judge from word
# combinations it saw only a few times, and a short negative sentence starting with "I …" looks, on
# the surface, much like many positive ones. A policy trained against this reward would get little
# credit for those phrasings — and could be pushed towards whatever surface features the reward
# model over-trusts.
#
# A useful reward model is not only accurate but **calibrated**: when the margin is large it should
# almost never be wrong. The figure bins the held-out pairs by |margin| (equal-count bins).

# %%
centers, accs, counts = rmt.accuracy_vs_margin(r_chosen, r_rejected, n_bins=6)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(centers, accs, "o-")
axes[0].set_xlabel("|r_chosen - r_rejected| (bin mean)")
axes[0].set_ylabel("accuracy in bin")
axes[0].set_ylim(0, 1.02)
axes[0].set_title("accuracy vs reward margin")
margin = (r_chosen - r_rejected).numpy()
axes[1].hist(margin, bins=30, color="#6fa8dc")
axes[1].axvline(0, color="red", ls="--")
axes[1].set_xlabel("r_chosen - r_rejected")
axes[1].set_title(f"held-out margins ({n_mistakes} at or below 0)")
save_figure(fig, "04_accuracy_vs_margin")
plt.show()

# %% [markdown]
# ## Side by side: TRL's `RewardTrainer`
#
# TRL trains an `AutoModelForSequenceClassification(num_labels=1)` — the same transformer with a
# linear score head, pooled at the last non-pad token (an EOS that TRL appends) — with the same
# Bradley–Terry loss. Same base
# model, data, steps, batch size, learning rate and schedule. For the speed, both loops then run
# **back to back** on 12 steps, three times, alternating which goes first
# (`labs.speed.compare_speed`): a look at the ratio and its spread under this machine's load, not a
# benchmark (the course's own timing benchmark, run alone on an idle machine, is the measurement).

# %%
course_lib.seed_everything(0)
with tempfile.TemporaryDirectory() as tmp:
    trl_run = rmt.train_with_trl(config, profile.reward_model_base, tokenizer, train_ds, tmp)
tc, tr = rmt.score_pairs(trl_run.model, tokenizer, eval_ds, score_fn=rmt.trl_score_fn(trl_run.model))
after_trl = reward_model.preference_accuracy(tc, tr)
print(f"held-out accuracy: ours {after:.1%}, TRL {after_trl:.1%}")
speed_cfg = dataclasses.replace(config, max_steps=min(config.max_steps, 12))


def _ours_speed_run():
    course_lib.seed_everything(0)
    fresh = RewardModel.from_base(profile=profile).to(course_lib.core.utils.default_device())
    return rmt.train(speed_cfg, fresh, tokenizer, train_ds, show_progress=False)


with tempfile.TemporaryDirectory() as tmp:
    speed = speed_lab.compare_speed(
        _ours_speed_run,
        lambda: rmt.train_with_trl(speed_cfg, profile.reward_model_base, tokenizer, train_ds, tmp),
        repeats=1 if FAST else 3,
    )
print(speed_lab.describe(speed))
ours_sps, trl_sps = statistics.median(speed["ours"]), statistics.median(speed["trl"])
fig = speed_lab.plot_ours_vs_trl(
    history,
    trl_run.history,
    speed,
    trl_label="TRL RewardTrainer",
    ylabel="Bradley-Terry loss",
    title=f"held-out accuracy: ours {after:.0%}, TRL {after_trl:.0%}",
)
save_figure(fig, "04_ours_vs_trl")
plt.show()

# %% [markdown]
# ## Save the reward model
#
# Unit 05 can use it as a learned reward: `RewardModel.from_pretrained(checkpoints/reward_model)`
# and `rm.score_texts(prompt_plus_completion_texts, tokenizer)` (or
# `reward_model_trainer.reward_texts`), which score texts exactly as in training. Under the grader
# we skip saving.

# %%
if not FAST:
    path = rmt.save_checkpoint(run)
    print("saved", path)
    reloaded = RewardModel.from_pretrained(path)
    texts = [ex["prompt"] + ex["chosen"], ex["prompt"] + ex["rejected"]]
    print(
        "reloaded scores (chosen, rejected):",
        [round(x, 2) for x in rmt.reward_texts(reloaded, tokenizer, texts)],
    )
report_metrics(
    "04",
    {
        "rm_accuracy": (before, after),
        "rm_accuracy_trl": (None, after_trl),
        "rm_mistakes": (None, n_mistakes),
        "rm_train_seconds": (None, train_seconds),
        "seconds_per_step_ours": (None, ours_sps),
        "seconds_per_step_trl": (None, trl_sps),
    },
)

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_rm_mistakes"]
# Pick three cases from `analysis/reward_model_mistakes.jsonl` (or from the printout above). For each,
# say why you think the model got it wrong (or nearly wrong), and what kind of extra training pairs
# would fix it. If RL optimised a policy against this reward model, what text would you expect the
# policy to drift towards?

# %% [markdown] tags=["answer:q_rm_offset"]
# The Bradley–Terry loss only sees differences of rewards. Show that adding any constant to every
# reward leaves the loss unchanged. Why can this be a problem for PPO, which adds the reward to a
# KL penalty, and what does TRL's `center_rewards_coefficient` (or normalising the reward in the RL
# loop) do about it?

# %% [markdown] tags=["answer:q_rm_pool"]
# Our head reads the value at the last real token. Give two other ways of turning per-token values
# into one reward (e.g. a mean over tokens) and say what each would reward or miss on the
# repeated-word answers of this dataset.
