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
# # Unit 09 — Reasoning with verifiable rewards: R1-zero on a CPU
#
# DeepSeek-R1-zero took a base model, a prompt asking for `<think> … </think> <answer> … </answer>`,
# and a **rule-based reward** (is the answer right? is the format right?) — no reward model, no SFT
# — and ran GRPO. Accuracy rose, and the responses grew *longer* as the model learned to think
# before answering. Every course that shows it needs a large GPU. Here it happens in minutes on a
# laptop, on a task small enough for a 1M-parameter model:
#
# * **the task**: add four one-digit numbers ("What is 7+8+5+9?"). A scratchpad of running sums
#   (`7+8=15, 15+5=20, 20+9=29`) gets it right one small step at a time;
# * **the start model** (`assets/tiny_reason`, shipped with the course) was
#   pretrained on a *mix*: sometimes a scratchpad, more often an answer with no working, sometimes a
#   broken format. In that text the answers with no working are guesses (right about 15 % of the
#   time), as in a corpus written by people who did not always work it out. Right answers are
#   **reachable** but rare — exactly the situation RL needs;
# * **the reward** is verifiable: exact match of the answer + a small bonus for the format.
#
# **Plan.** Rewards (9.1, 9.2) → the loss family: GSPO's sequence ratio (9.3), one loss for
# GRPO / Dr. GRPO / DAPO / GSPO / CISPO (9.4), DAPO's dynamic sampling (9.5) → the R1-zero run with
# *your* functions: accuracy, format, **response length**, entropy, clipping, zero-std groups, KL →
# ablations in the spirit of CS336's (std normalisation, length normalisation, clipping,
# clip-higher, KL, dynamic sampling, off-policy epochs) → what to do with completions that run out
# of budget: the soft overlong punishment (9.6) and truncation masking (9.7) under a tight budget.

# %%
import copy

import matplotlib.pyplot as plt
import torch

from course_lib.core import registry
from course_lib.core.report import claim, report_metrics, save_figure
from course_lib.labs import reasoning
from course_lib.trainers import rlvr as rlvr_trainer

STEPS = None  # None = the unit's default (60 steps on the tiny profile, ~70 s on 2 idle cores)
ABL_STEPS = 10  # each ablation: a short run from the same start (~10-25 s each on 2 idle cores)
FULL_SWEEP = False  # True: every ablation 6x longer, plus GSPO and CISPO (~20 min)
N_EVAL = 8 if FAST else None  # held-out problems per evaluation (None = the preset's eval_size)
# under the grader (FAST) every run shrinks to one step of 2 problems x 4 completions
FAST_SIZE = (
    {**course_lib.core.utils.GRADING_SIZES["grpo"], "max_completion_length": 16, "eval_every": 0}
    if FAST
    else {}
)


def rlvr_config(variant="grpo", **overrides):  # the unit's RLVRConfig on this profile
    return rlvr_trainer.RLVRConfig.from_profile(
        profile, variant=variant, **{"eval_size": N_EVAL, **overrides, **FAST_SIZE}
    )


cfg = rlvr_config(**({} if STEPS is None else {"max_steps": STEPS}))
start_model, tokenizer = reasoning.load_start_model(profile=profile)
train_problems = rlvr_trainer.task_problems(cfg.task, "train", cfg.train_size, profile)
heldout = rlvr_trainer.task_problems(cfg.task, "eval", cfg.eval_size, profile)
print(f"task {cfg.task}: {len(train_problems)} training problems, {len(heldout)} held-out ones")
print(heldout[0]["prompt"] + "   [answer: " + heldout[0]["answer"] + "]")

# %% [markdown]
# ## The task, and why a scratchpad matters
#
# Two ways to write an answer in the R1-zero format:

# %%
nums = [7, 8, 5, 9]
for style in reasoning.STYLES:
    print(f"{style:>15}: {reasoning.completion(nums, style)!r}")

# %% [markdown]
# Held-out problems are never a training problem nor in the pretraining corpus (a fixed hash of
# the numbers decides, `reasoning.is_heldout`). How often does the start model get them right
# if we *force* it to start a scratchpad, or to answer directly? (One sample per problem at
# temperature 1, as during training.)
#
# ## Exercise 9.1 — the format reward
#
# `rlvr.think_format_reward(completion)` is 1.0 iff the completion is, up to surrounding
# whitespace, `<think>X</think>` then optional whitespace then `<answer>Y</answer>` with X and Y
# non-empty (after strip) and free of the four tags; else 0.0.

# %% tags=["exercise-test:think_format_reward"]

# %% [markdown]
# ## Exercise 9.2 — the answer reward
#
# `rlvr.answer_reward(completion, answer)`: 1.0 iff the stripped text of the **last**
# `<answer>…</answer>` block equals `str(answer).strip()`; no complete block → 0.0. Exact match is
# strict on purpose: "134." or "134 apples" are wrong — a verifier that can be argued with can be
# hacked.

# %% tags=["exercise-test:answer_reward"]

# %%
start = reasoning.evaluate(start_model, tokenizer, heldout, max_new_tokens=cfg.max_completion_length)
if cfg.task == "addition":  # forced starts need the numbers (the gpu profile's GSM8K has none)
    gap = reasoning.scratchpad_gap(start_model, tokenizer, heldout, max_new_tokens=cfg.max_completion_length)
else:
    gap = {"with_scratchpad": float("nan"), "direct": float("nan")}
print(
    f"start model on held-out problems: accuracy {start['accuracy']:.2f}, format {start['format_rate']:.2f}, "
    f"mean length {start['response_length']:.1f} tokens, scratchpad in {start['scratchpad_rate']:.0%}"
)
print(f"forced scratchpad: {gap['with_scratchpad']:.2f}   forced direct answer: {gap['direct']:.2f}")
for s in start["samples"][:6]:
    print(f"  [{'ok' if s['correct'] else '--'} fmt {s['format']:.0f}] {s['response']!r}")
fig, ax = plt.subplots(figsize=(6.5, 2.8))
bars = {
    "sampled\n(as is)": start["accuracy"],
    "forced\nscratchpad": gap["with_scratchpad"],
    "forced\ndirect answer": gap["direct"],
    "format rate\n(as is)": start["format_rate"],
}
ax.bar(list(bars), list(bars.values()), color=["C0", "C2", "C3", "C7"])
for i, v in enumerate(bars.values()):
    if v == v:  # NaN: not measured on this task
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center")
ax.set_ylim(0, 1.1)
ax.set_ylabel("fraction of held-out problems")
ax.set_title("Start model: the answer is reachable with a scratchpad, rarely without")
save_figure(fig, "09_task")
plt.show()

# %% [markdown]
# ## Exercise 9.3 — GSPO's sequence-level ratio
#
# GRPO's ratio is per token, $\rho_{i,t} = \pi_\theta(o_{i,t}) / \pi_\text{old}(o_{i,t})$: one
# noisy token can be clipped while its neighbours are not. GSPO (Qwen, 2025) uses one ratio per
# *sequence*, length-normalised so that long and short answers live on the same scale:
#
# $$\log s_i = \frac{1}{|o_i|}\sum_t \big(\log\pi_\theta(o_{i,t}) - \log\pi_\text{old}(o_{i,t})\big).$$
#
# `rlvr.sequence_log_ratio(logp, old_logp, mask)` returns $\log s_i$, shape `[B]` (a row with no
# completion token has no mean: `ValueError`). TRL: `importance_sampling_level="sequence"`.

# %% tags=["exercise-test:sequence_log_ratio"]

# %% [markdown]
# ## Exercise 9.4 — one loss for the whole family
#
# `rlvr.rlvr_policy_loss(logp, old_logp, advantages, mask, eps_low, eps_high, level, loss_type,
# ref_logp, beta, max_completion_length) -> (loss, stats)`:
#
# | knob | values | paper |
# |---|---|---|
# | `level` | `"token"`: $\rho_{i,t}$; `"sequence"`: $s_i$ for every token of row $i$ | GRPO / **GSPO** |
# | `eps_low`, `eps_high` | clip $\rho$ to $[1-\epsilon_\text{low}, 1+\epsilon_\text{high}]$; $\epsilon_\text{high} > \epsilon_\text{low}$ lets rare tokens grow | **DAPO** clip-higher |
# | `loss_type` | `grpo` (mean per sequence), `dapo` (mean per token of the batch), `dr_grpo` (sum / (B·L)), `cispo` | GRPO / DAPO / **Dr. GRPO** / **CISPO** |
# | `beta` | + β·k3 KL to a reference | GRPO (R1-zero and DAPO drop it) |
#
# `stats` (floats): `clip_ratio_low` / `clip_ratio_high` — the fraction of completion tokens whose
# ratio was clipped at the low / high end *where the clip changed the objective* — and `mean_ratio`.

# %% tags=["exercise-test:rlvr_policy_loss"]

# %%
# What clip-higher changes: the per-token objective min(rho*A, clip(rho)*A) as a function of rho
rho = torch.linspace(0.5, 1.6, 221)
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, A in zip(axes, (1.0, -1.0)):
    for (lo, hi), style in (((0.2, 0.2), "-"), ((0.2, 0.28), "--")):
        obj = torch.minimum(rho * A, rho.clamp(1 - lo, 1 + hi) * A)
        ax.plot(rho, obj, style, label=f"eps_low {lo}, eps_high {hi}")
    ax.axvline(1.0, color="gray", lw=0.6)
    ax.set_title(f"advantage {A:+.0f}")
    ax.set_xlabel("ratio ρ = π_θ / π_old")
axes[0].set_ylabel("objective (maximised)")
axes[0].legend(fontsize=8)
fig.suptitle("Clip-higher: a good token may grow to 1.28x its old probability before the gradient stops")
fig.tight_layout()
save_figure(fig, "09_clip_higher")
plt.show()

# %% [markdown]
# ## Exercise 9.5 — dynamic sampling
#
# A group whose $G$ rewards are all equal (all right, or all wrong) has advantages that are all 0:
# it costs a forward and backward pass and teaches nothing. DAPO drops such groups and samples
# more problems to refill the batch. `rlvr.dynamic_sampling_mask(rewards, group_size)` is True for
# every completion of a group whose rewards are *not* all equal (groups contiguous).

# %% tags=["exercise-test:dynamic_sampling_mask"]

# %% [markdown]
# ## When the budget runs out: exercises 9.6 and 9.7
#
# Every completion has a token budget (`max_completion_length`). A completion that reaches it
# without writing EOS is **truncated**: it is cut off mid-thought, usually before its
# `<answer>` block, so it scores 0 — not because its reasoning was wrong, but because it ran
# out of room. That reward is *misleading*: the advantage then pushes down every token of a
# scratchpad that may have been on the right track, and the only lesson the policy can draw is
# "be shorter" — a length bias that the reward never stated. DAPO proposes two remedies, and TRL
# has both:
#
# * **soft overlong punishment** (DAPO eq. 13, TRL's reward function
#   `get_soft_overlong_punishment`): say it openly, with a reward term that is 0 up to
#   `Lmax - buffer` tokens, then falls linearly to −1 at the budget `Lmax`, and stays −1 past it.
#   The policy learns *in advance* that it is getting close, instead of one cliff at the budget;
# * **masking truncated completions** (TRL's `GRPOConfig(mask_truncated_completions=True)`):
#   say nothing — a truncated completion is dropped from the loss altogether (its tokens get no
#   gradient), so its accidental 0 cannot push the policy around. Its reward still counts in its
#   group's mean, and the rest of the group learns as usual.
#
# ## Exercise 9.6 — the soft overlong punishment
#
# `rlvr.overlong_penalty(lengths, max_completion_length, overlong_buffer)` → float32 `[B]`, with
# $L$ the completion's length in tokens **including EOS** (what TRL counts):
#
# $$R_\text{length}(L) = \begin{cases} 0 & L \le L_\max - B \\ \dfrac{(L_\max - B) - L}{B} & L_\max - B < L \le L_\max \\ -1 & L > L_\max \end{cases}$$
#
# An `overlong_buffer` $B \le 0$ or $B > L_\max$ raises `ValueError`. The trainer adds it to the
# reward with weight 1 when `RLVRConfig(overlong_buffer=B)` is set.

# %% tags=["exercise-test:overlong_penalty"]

# %% [markdown]
# ## Exercise 9.7 — masking truncated completions
#
# `rlvr.mask_truncated_completions(completion_mask, is_truncated)` → a **new** mask, same shape and
# dtype: every token of a row whose `is_truncated` is True becomes 0, other rows are unchanged, and
# the caller's mask is not modified (the trainer still needs it for its metrics). The trainer
# decides "truncated" as TRL does: the completion's last token is neither EOS nor padding
# (`Rollout.is_truncated`), and applies your mask when `RLVRConfig(mask_truncated_completions=True)`.

# %% tags=["exercise-test:mask_truncated_completions"]

# %% [markdown]
# ## The R1-zero run (provided loop, your functions)
#
# `course_lib/trainers/rlvr.py` — open it. Each step: sample $G = 8$ completions for each of 8
# problems (unit 06's sampler) → reward = `answer_reward` + 0.2 · `think_format_reward` → unit 06's
# `group_advantages` → `rlvr_policy_loss` → AdamW. Every 10 steps it samples one answer for each
# held-out problem. Defaults: GRPO, token level, $\epsilon = 0.2$, no KL ($\beta = 0$), one
# optimizer step per batch.

# %%
registry.check_training_needs("09")  # names every exercise this training runs that is still a stub
print(cfg)
# measure the start, train a copy of it, measure again (the seed runs call this same function)
main_run = rlvr_trainer.headline_run(cfg, profile, start=(start_model, tokenizer))
main, after = main_run.run, main_run.after
print(
    f"trained {len(main.history)} steps in {main.info['train_seconds']:.0f} s "
    f"(+{main.info['eval_seconds']:.0f} s of held-out evaluation)"
)
for k in ("accuracy", "format_rate", "response_length", "scratchpad_rate"):
    print(f"{k:>16}: {main_run.before[k]:.3f} -> {after[k]:.3f}   (last evaluation)")
evals = [(h["step"], h["eval_accuracy"]) for h in main.history if "eval_accuracy" in h]
end_accuracy = reasoning.end_of_run_accuracy(main.history)  # mean of the last 3 evaluations
print("held-out accuracy at each evaluation:", ", ".join(f"step {s}: {a:.2f}" for s, a in evals))
print(f"end-of-run held-out accuracy (mean of the last {reasoning.END_OF_RUN_EVALS}): {end_accuracy:.2f}")
for s in after["samples"][:4]:
    print(f"  [{'ok' if s['correct'] else '--'}] {s['response']!r}")

# %%
PANELS = {
    "eval_accuracy": "held-out accuracy (dashed: end-of-run mean)",
    "format_rate": "format rate (step's samples)",
    "completion_length": "mean response length (tokens)",
    "entropy": "entropy (nats/token)",
    "clip_ratio_high": "clipped tokens (solid: high, dotted: low)",
    "frac_reward_zero_std": "groups with zero reward std",
    "kl": "KL to the start model (k3, nats/token)",
    "accuracy": "accuracy (step's samples)",
}


def curve(ax, hist, key, **kw):
    pts = [(h["step"], h[key]) for h in hist if key in h and h[key] == h[key]]
    if key == "eval_accuracy":  # step 0 = the start model
        pts = [(0, start["accuracy"])] + pts
    if pts:
        ax.plot(*zip(*pts), marker=".", ms=3, **kw)
    if key == "eval_accuracy" and len(pts) > reasoning.END_OF_RUN_EVALS:  # what the run ended at
        last = pts[-reasoning.END_OF_RUN_EVALS :]
        ax.hlines(reasoning.end_of_run_accuracy(hist), last[0][0], last[-1][0], ls="--", lw=1,
                  color=kw.get("color"))  # fmt: skip


def curves(runs, keys, title, name, ncols=4):
    rows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3.6 * ncols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for i, (label, hist) in enumerate(runs.items()):
            curve(ax, hist, key, label=label, color=f"C{i}")
            if key == "clip_ratio_high":
                curve(ax, hist, "clip_ratio_low", color=f"C{i}", ls=":")
        ax.set_title(PANELS.get(key, key), fontsize=9)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    if len(runs) > 1:  # to the right of the panels: below them it would cover the x-axis labels
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8)  # fmt: skip
    save_figure(fig, name)
    plt.show()


curves({"GRPO": main.history}, list(PANELS), "R1-zero-style GRPO on the addition task", "09_main_curves")

# %% [markdown]
# Read the panels left to right. What to expect, and why: the policy can only get better at
# answers it already writes now and then, and the right answers here mostly come with a
# scratchpad. So as held-out accuracy and the format rate rise, the **response length** should rise
# with them: the policy abandons the short direct guess (`<think>I add them in my head.</think>`)
# for the long scratchpad — not because length is rewarded (it is not), but because the long
# answers are the ones that are *right*. That is the R1-zero "aha" in miniature, and also its
# honest limit: the model can only grow into behaviour that it already produced now and then.
# Entropy should fall as the choice hardens; the fraction of zero-std groups rises once most groups
# are all-right (they stop teaching: the next section's dynamic sampling addresses that). With one
# optimizer step per batch the ratio is exactly 1, so nothing is ever clipped; the KL measures how
# far the policy moved from the start.
#
# **What varies from run to run.** Each held-out evaluation samples one answer per problem (64 on
# the quick preset) at temperature 1: a policy that is right 80 % of the time scores anywhere from
# about 0.7 to 0.9 on one evaluation, and the policy itself keeps moving between evaluations. So the
# held-out curve goes up by *steps and dips*, not monotonically, and its last point is one random
# draw. The end-of-run accuracy the course reports (the dashed line) is the mean of the last three
# evaluations, `reasoning.end_of_run_accuracy`; with another seed (or another correct
# implementation) expect it to differ by about ±0.1, and the peak and its step to differ more.
# The lines below check the statements on *this* run:

# %%
h_first, h_last = main.history[:10], main.history[-10:]


def mean_of(hist, key):
    vals = [h[key] for h in hist if key in h and h[key] == h[key]]
    return sum(vals) / max(1, len(vals))


peak_step, peak = max(evals, key=lambda e: e[1])
claim(f"held-out accuracy rose: {start['accuracy']:.2f} at the start -> {end_accuracy:.2f} at the end "
      f"(mean of the last {reasoning.END_OF_RUN_EVALS} evaluations)", end_accuracy > start["accuracy"])  # fmt: skip
claim(f"the held-out curve is not monotonic: it peaked at {peak:.2f} (step {peak_step}) and ended at "
      f"{evals[-1][1]:.2f}", any(b < a for (_, a), (_, b) in zip(evals, evals[1:])))  # fmt: skip
for key, word in (("format_rate", "rose"), ("completion_length", "grew"), ("entropy", "fell")):
    a, b = mean_of(h_first, key), mean_of(h_last, key)
    claim(f"{key} {word}: {a:.2f} (first 10 steps) -> {b:.2f} (last 10)", b < a if word == "fell" else b > a)
claim(f"scratchpad in {main_run.before['scratchpad_rate']:.0%} of the start model's answers, "
      f"{after['scratchpad_rate']:.0%} at the end", after["scratchpad_rate"] > main_run.before["scratchpad_rate"])  # fmt: skip
claim(f"zero-std groups: {mean_of(h_first, 'frac_reward_zero_std'):.2f} of the groups (first 10 steps) -> "
      f"{mean_of(h_last, 'frac_reward_zero_std'):.2f} (last 10)",
      mean_of(h_last, "frac_reward_zero_std") > mean_of(h_first, "frac_reward_zero_std"))  # fmt: skip
claim(f"nothing clipped with one optimizer step per batch: max clip ratio "
      f"{max(h['clip_ratio_high'] + h['clip_ratio_low'] for h in main.history):.3f}",
      all(h["clip_ratio_high"] + h["clip_ratio_low"] == 0 for h in main.history))  # fmt: skip

# %%
report_metrics(
    "09",
    {
        "heldout_accuracy": (main_run.before["accuracy"], end_accuracy),
        "format_rate": (main_run.before["format_rate"], after["format_rate"]),
        "response_length": (main_run.before["response_length"], after["response_length"]),
        "train_seconds": (None, main.info["train_seconds"]),
    },
)
rlvr_trainer.save_checkpoint(main)  # checkpoints/rlvr_addition

# %% [markdown]
# ## Ablations: one knob at a time, same seed, same problems
#
# Each run starts from the same model for `ABL_STEPS` steps; the baseline is the main run's first
# `ABL_STEPS` steps (same seed: identical until the knob matters). With one optimizer step per batch
# the ratio is 1 and clipping never fires, so the clipping knobs are compared at
# `num_iterations = 4` (four optimizer steps on each batch: off-policy after the first).
#
# *Predict before you run*: which runs will have **longer** responses than the baseline at the
# end, and which will have none of their tokens clipped?

# %%
ABLATIONS = {
    "no std scaling": dict(scale_rewards=False),
    "dr_grpo loss": dict(loss_type="dr_grpo"),
    "KL beta 0.04": dict(beta=0.04),
    "dynamic sampling": dict(dynamic_sampling=True),
    "4 iterations": dict(num_iterations=4),
    "4 it., no clip": dict(num_iterations=4, clip=False),
    "4 it., clip-higher": dict(num_iterations=4, eps_high=0.28),
}
if FAST:  # under the grader: two ablations are enough to run every line of this cell
    ABLATIONS = dict(list(ABLATIONS.items())[:2])
steps = ABL_STEPS * (6 if FULL_SWEEP else 1)
if FULL_SWEEP:
    ABLATIONS |= {"GSPO": rlvr_trainer.VARIANTS["gspo"], "CISPO": rlvr_trainer.VARIANTS["cispo"]}
abl = {"baseline": [h for h in main.history if h["step"] <= steps]}


def run_ablation(name):  # a short run from the start model with one knob changed
    run = rlvr_trainer.train(
        rlvr_config(max_steps=steps, eval_every=max(1, steps // 2), **ABLATIONS[name]),
        model=copy.deepcopy(start_model), tokenizer=tokenizer, dataset=train_problems,
        eval_problems=heldout, profile=profile, desc=name, evaluate_start=False,
    )  # fmt: skip
    abl[name] = run.history


names = list(ABLATIONS)
for name in names[:3]:  # one optimizer step per batch; the 4-iteration runs cost more, in the next cells
    run_ablation(name)

# %%
for name in names[3:5]:
    run_ablation(name)

# %%
for name in names[5:]:
    run_ablation(name)


def end(name, key, n=3):  # a run's value at the end: the mean over its last n steps (one step is noisy)
    vals = [h[key] for h in abl[name] if key in h and h[key] == h[key]][-n:]
    return sum(vals) / len(vals) if vals else float("nan")


KEYS = ("accuracy", "format_rate", "completion_length", "clip_ratio_high", "clip_ratio_low",
        "frac_reward_zero_std", "kl", "entropy")  # fmt: skip
results = {name: {k: end(name, k) for k in KEYS} for name in abl}
for name in abl:
    results[name]["eval_accuracy"] = [h["eval_accuracy"] for h in abl[name] if "eval_accuracy" in h][-1]
print("means over each run's last 3 steps (accuracy: the step's own samples, 3 x 64 answers);")
print("held-out: the run's last held-out evaluation (64 problems, one sample each)")
print(f"{'run':<20}{'accuracy':>9}{'held-out':>9}{'format':>7}{'length':>7}{'clip hi/lo':>12}"
      f"{'zero-std':>9}{'KL':>7}{'entropy':>8}{'s/step':>7}")  # fmt: skip
for name, r in results.items():
    print(
        f"{name:<20}{r['accuracy']:>9.2f}{r['eval_accuracy']:>9.2f}{r['format_rate']:>7.2f}"
        f"{r['completion_length']:>7.1f}{r['clip_ratio_high']:>6.3f}/{r['clip_ratio_low']:.3f}"
        f"{r['frac_reward_zero_std']:>9.2f}{r['kl']:>7.3f}{r['entropy']:>8.2f}"
        f"{rlvr_trainer._loop.median_step_seconds(abl[name]):>7.2f}"
    )

# %%
fig, axes = plt.subplots(2, 4, figsize=(15, 6), sharex=True)
pairs = [  # (title, runs compared, key)
    ("std normalisation", ["baseline", "no std scaling"], "completion_length"),
    ("length normalisation", ["baseline", "dr_grpo loss"], "completion_length"),
    ("KL penalty", ["baseline", "KL beta 0.04"], "kl"),
    ("dynamic sampling", ["baseline", "dynamic sampling"], "frac_reward_zero_std"),
    ("off-policy epochs", ["baseline", "4 iterations"], "completion_length"),
    ("clip vs no clip (4 it.)", ["4 iterations", "4 it., no clip"], "clip_ratio_high"),
    ("clip-higher (4 it.)", ["4 iterations", "4 it., clip-higher"], "entropy"),
    ("held-out accuracy, all", list(abl), "eval_accuracy"),
]
for ax, (title, names, key) in zip(axes.flat, pairs):
    for name in [n for n in names if n in abl]:  # (the grader runs two ablations only)
        curve(ax, abl[name], key, label=name, color=f"C{list(abl).index(name)}")
        if key == "clip_ratio_high":  # both ends of the clip: high solid, low dotted
            curve(ax, abl[name], "clip_ratio_low", color=f"C{list(abl).index(name)}", ls=":")
    ax.set_title(f"{title}:\n{PANELS.get(key, key)}", fontsize=8)
for ax in axes[-1]:
    ax.set_xlabel("step")
fig.suptitle(f"Ablations ({steps} steps each, one knob changed)")
fig.tight_layout()
# one legend for all panels (a run keeps its colour everywhere), to their right: below them it
# would cover the x-axis labels, inside a panel it would cover a curve
fig.legend(
    *axes.flat[-1].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8
)
save_figure(fig, "09_ablations")
plt.show()
curves(
    {k: abl[k] for k in abl},
    ["completion_length"],
    "Response length under every ablation",
    "09_ablation_length",
    ncols=1,
)

# %% [markdown]
# **What each knob does, and why.** *Std normalisation*: dividing by a group's std gives a group
# with one right answer out of eight the same total push as a group with four — hard problems weigh
# more; without it the updates are smaller when a group is nearly unanimous. *Length
# normalisation*: `grpo` averages each sequence over its own tokens, so a *long wrong* answer is
# punished less per token than a short one, and a *short right* one is rewarded more (Dr. GRPO's
# length bias); `dr_grpo` divides by a constant. *KL*: the penalty pulls the policy back towards
# the start model, a bad reasoner; how much that costs depends on β and on how far the run goes
# (in 10 steps the policy has not moved far, so the pull is weak). *Dynamic sampling* trains only
# on groups that disagree and samples more problems to refill the batch. Its zero-std panel counts
# the groups it *sampled*, before they were filtered out: the groups it trained on never have
# zero std. *Four iterations* reuse each batch: the ratio leaves 1 and clipping fires (the only
# runs with a non-zero clip ratio); too many optimizer steps on one batch overshoot, and *without
# the clip* nothing stops them. *Clip-higher* lets rare good tokens grow further before the clip
# stops them: DAPO uses it against collapsing entropy, but it also lets each off-policy step move
# the policy further — with four iterations that can cost accuracy instead.
#
# The table above shows means over each run's last 3 steps (a single step can spike: one bad batch
# can send the KL ten times higher for one step). Short runs on one seed are noisy: between two
# runs that differ only by chance, expect the accuracy to differ by up to about 0.1; trust
# differences larger than that, or rerun with `FULL_SWEEP = True`. The lines below check, on *this*
# run, what the text above leads you to expect:

# %%
NOISE = 0.1  # accuracy differences smaller than this are within the noise of these short runs


def diff(a, b, key="accuracy"):
    return results[a][key] - results[b][key]


checks = {  # the runs each check needs (the grader runs two ablations only)
    ("baseline", "no std scaling", "dr_grpo loss"): lambda: print(
        f"response length at the end: baseline {results['baseline']['completion_length']:.1f}, no std scaling "
        f"{results['no std scaling']['completion_length']:.1f}, dr_grpo {results['dr_grpo loss']['completion_length']:.1f} tokens"
    ),
    ("baseline", "KL beta 0.04"): lambda: claim(
        f"the KL penalty costs accuracy beyond the noise: {results['KL beta 0.04']['accuracy']:.2f} vs "
        f"{results['baseline']['accuracy']:.2f} without it (KL {results['KL beta 0.04']['kl']:.3f} vs "
        f"{results['baseline']['kl']:.3f})",
        diff("baseline", "KL beta 0.04") > NOISE,
    ),
    ("dynamic sampling",): lambda: print(
        f"dynamic sampling: {results['dynamic sampling']['frac_reward_zero_std']:.2f} of the sampled groups had zero "
        f"std (counted before filtering); it trained on {end('dynamic sampling', 'kept_groups'):.1f} groups per step, "
        "all with non-zero std"
    ),
    ("baseline", "4 iterations"): lambda: claim(
        f"4 iterations per batch fall behind the baseline: accuracy {results['4 iterations']['accuracy']:.2f} "
        f"vs {results['baseline']['accuracy']:.2f}",
        diff("baseline", "4 iterations") > NOISE,
    ),
    ("4 iterations", "4 it., no clip"): lambda: claim(
        f"without the clip, 4 iterations do worse still: accuracy {results['4 it., no clip']['accuracy']:.2f} "
        f"(clipped: {results['4 iterations']['accuracy']:.2f})",
        diff("4 iterations", "4 it., no clip") > NOISE,
    ),
    ("4 iterations", "4 it., clip-higher"): lambda: (
        claim(
            f"clip-higher keeps entropy higher: {results['4 it., clip-higher']['entropy']:.3f} vs "
            f"{results['4 iterations']['entropy']:.3f} nats/token (last 3 steps)",
            results["4 it., clip-higher"]["entropy"] > results["4 iterations"]["entropy"],
        ),
        claim(
            f"clip-higher costs accuracy beyond the noise: {results['4 it., clip-higher']['accuracy']:.2f} vs "
            f"{results['4 iterations']['accuracy']:.2f} with the symmetric clip",
            diff("4 iterations", "4 it., clip-higher") > NOISE,
        ),
    ),
}
for needed, check in checks.items():
    if all(n in results for n in needed):
        check()

# %% [markdown]
# ## A tight budget: what a truncated completion teaches
#
# With 64 tokens nothing is ever cut off here: the start model's answers take 8 to 38 tokens. So
# these runs use a budget the scratchpads *barely* fit, `reasoning.TIGHT_BUDGET` = 36 tokens: a
# scratchpad whose running sums have two digits takes 38 and is cut off before its `<answer>`,
# about a third of the start model's samples. Three runs from the same start, same seed, 20 steps
# each (`reasoning.TRUNCATION_RUNS`):
#
# * **plain**: a truncated completion scores 0, like a wrong one;
# * **overlong shaping** (your 9.6, `overlong_buffer=6`): the reward also falls linearly from 0
#   at 30 tokens to −1 at 36 — note that this punishes the scratchpads that *do* fit (34–36
#   tokens), since they sit inside the buffer;
# * **masking** (your 9.7, `mask_truncated_completions=True`): truncated completions get no
#   gradient.
#
# *Predict before you run*, for each run: does the truncation rate go up or down over the 20
# steps, and which run ends with the best held-out accuracy? The bar set before measuring (seeds 0,
# 1 and 2, the worst seed must meet it): **overlong shaping ends with a truncation rate at least
# 10 points below the plain run's** (the step's samples, mean of the last 3 steps). The cells
# below check it on this run; the text after them says how the seed runs came out.

# %%
TRUNC_STEPS = reasoning.TRUNCATION_STEPS
trunc_runs = {}


def run_truncation(name):  # one run of the comparison, under the tight budget
    run = rlvr_trainer.train(
        rlvr_config(max_steps=TRUNC_STEPS, eval_every=5, max_completion_length=reasoning.TIGHT_BUDGET,
                    **reasoning.TRUNCATION_RUNS[name]),
        model=copy.deepcopy(start_model), tokenizer=tokenizer, dataset=train_problems,
        eval_problems=heldout, profile=profile, desc=f"budget {reasoning.TIGHT_BUDGET}: {name}",
        evaluate_start=False,
    )  # fmt: skip
    trunc_runs[name] = run.history


for name in list(reasoning.TRUNCATION_RUNS)[:2]:
    run_truncation(name)

# %%
for name in list(reasoning.TRUNCATION_RUNS)[2:]:
    run_truncation(name)


def trunc_end(name, key, n=3):  # the mean over the run's last n steps (or evaluations)
    vals = [h[key] for h in trunc_runs[name] if key in h and h[key] == h[key]][-n:]
    return sum(vals) / len(vals) if vals else float("nan")


trunc = {
    name: {
        "truncated_rate": trunc_end(name, "truncated_rate"),
        "accuracy": trunc_end(name, "accuracy"),
        "length": trunc_end(name, "completion_length"),
        "held_out": trunc_end(name, "eval_accuracy"),
        "held_out_truncated": trunc_end(name, "eval_truncated_rate"),
    }
    for name in trunc_runs
}
print(
    f"budget {reasoning.TIGHT_BUDGET} tokens, {TRUNC_STEPS} steps; the step's samples: mean of the last 3 steps;"
)
print("held-out: mean of the last 3 evaluations (64 problems, one sample each)")
print(f"{'run':<18}{'truncated':>10}{'accuracy':>9}{'length':>8}{'held-out':>9}{'held-out trunc.':>16}")
for name, r in trunc.items():
    print(f"{name:<18}{r['truncated_rate']:>10.2f}{r['accuracy']:>9.2f}{r['length']:>8.1f}"
          f"{r['held_out']:>9.2f}{r['held_out_truncated']:>16.2f}")  # fmt: skip
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, key in zip(axes, ("truncated_rate", "completion_length", "eval_accuracy")):
    for i, name in enumerate(trunc_runs):
        pts = [(h["step"], h[key]) for h in trunc_runs[name] if key in h and h[key] == h[key]]
        if pts:
            ax.plot(*zip(*pts), marker=".", ms=4, label=name, color=f"C{i}")
    ax.set_title({"truncated_rate": "truncated (step's samples)", "completion_length": "mean length (tokens)",
                  "eval_accuracy": "held-out accuracy"}[key], fontsize=9)  # fmt: skip
    ax.set_xlabel("step")
axes[1].axhline(reasoning.TIGHT_BUDGET, color="gray", lw=0.6, ls=":")
axes[0].legend(fontsize=8)
fig.suptitle(
    f"A budget of {reasoning.TIGHT_BUDGET} tokens: plain vs overlong shaping vs masking truncated completions"
)
fig.tight_layout()
save_figure(fig, "09_overlong")
plt.show()
if {"plain", "overlong shaping"} <= set(trunc):
    first = trunc_runs["plain"][0]["truncated_rate"]
    claim(f"the plain run already learns to stop being cut off: truncated {first:.2f} at its first step -> "
          f"{trunc['plain']['truncated_rate']:.2f} at the end", trunc["plain"]["truncated_rate"] < first)  # fmt: skip
    claim(f"the bar: overlong shaping cuts truncation by at least 10 points more than plain: "
          f"{trunc['overlong shaping']['truncated_rate']:.2f} vs {trunc['plain']['truncated_rate']:.2f}",
          trunc["plain"]["truncated_rate"] - trunc["overlong shaping"]["truncated_rate"] >= 0.10)  # fmt: skip
    claim(f"overlong shaping shortens the answers: {trunc['overlong shaping']['length']:.1f} vs "
          f"{trunc['plain']['length']:.1f} tokens plain", trunc["overlong shaping"]["length"] < trunc["plain"]["length"])  # fmt: skip
    claim(f"... and costs held-out accuracy: {trunc['overlong shaping']['held_out']:.2f} vs "
          f"{trunc['plain']['held_out']:.2f} plain", trunc["overlong shaping"]["held_out"] < trunc["plain"]["held_out"])  # fmt: skip
if {"plain", "masking"} <= set(trunc):
    claim(f"masking keeps the long answers, cut-off ones included: truncated {trunc['masking']['truncated_rate']:.2f} "
          f"vs {trunc['plain']['truncated_rate']:.2f} plain",
          trunc["masking"]["truncated_rate"] > trunc["plain"]["truncated_rate"])  # fmt: skip
    claim(f"masking keeps held-out accuracy within the noise of plain or above: {trunc['masking']['held_out']:.2f} "
          f"vs {trunc['plain']['held_out']:.2f}", trunc["masking"]["held_out"] >= trunc["plain"]["held_out"] - NOISE)  # fmt: skip

# %% [markdown]
# **Reading it.** A truncated completion is not a wrong answer; it is an unfinished one, and the
# plain run cannot tell the two apart. Its zero reward is already a length signal, a blunt one:
# the plain run learns on its own to stop being cut off — by writing fewer of the long scratchpads,
# the answers that are most often right. That is why the bar above (set before measuring) was
# *missed* on seeds 0, 1 and 2 alike (`course_instructor/overlong_seeds.py`): overlong shaping did
# bring truncation close to zero, but the plain run had already removed most of it, so the gap
# stayed below 10 points. What shaping adds is a push that starts *before* the budget: here the
# answers worth writing sit inside the buffer (30 to 36 tokens), so the push punishes the good
# scratchpads too — shorter answers, and on every seed a lower held-out accuracy than plain. The
# lesson for a real run: the buffer must leave room for the answers you want, and DAPO's
# (4k tokens of a 20k budget) does. Masking changes no reward: it only stops the cut-off samples
# from teaching anything. It cannot lower the truncation rate by itself — it removes the misleading
# signal, not its cause — so the policy keeps writing long scratchpads, some still cut off; on two
# seeds of three it ended with the best held-out accuracy of the three runs, on the third within
# the noise. With a budget that fits the task (the 64 tokens above) neither knob changes anything.

# %% [markdown]
# ## Side by side: TRL's `GRPOTrainer`
#
# R1-zero's recipe is GRPO with verifiable rewards, so TRL's `GRPOTrainer` runs it as well:
# `rlvr_trainer.train_with_trl` maps this unit's config onto TRL's names (`eps_low` / `eps_high` →
# `epsilon` / `epsilon_high`, `level` → `importance_sampling_level`, `scale_rewards`, `beta`) and
# hands TRL **your** `answer_reward` and `think_format_reward` with the same weights. Same start
# model, same training problems, the first `ABL_STEPS` steps: compare with the main run's first
# steps (the learning rate is constant, so those are the same recipe). Expect the two curves to
# climb alike but not step for step: each trainer draws its own samples, and ten steps of 64
# answers are noisy. TRL has no dynamic sampling, so that ablation has no TRL twin.

# %%
trl_cfg = rlvr_config(max_steps=steps)
print("TRL gets:", rlvr_trainer._loop.trl_arguments("rlvr", trl_cfg.resolved(profile)))
theirs = rlvr_trainer.train_with_trl(
    trl_cfg, copy.deepcopy(start_model), tokenizer, train_problems, profile=profile
)
ours_first = abl["baseline"]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
for hist, label in ((ours_first, "ours (the main run's first steps)"), (theirs.history, "TRL GRPOTrainer")):
    a1.plot([h["step"] for h in hist], [h["reward"] for h in hist], marker="o", label=label)
    a2.plot([h["step"] for h in hist], [h["accuracy"] for h in hist], marker="o", label=label)
a1.set(xlabel="step", ylabel="mean reward of the step's answers", title="reward (answer + 0.2 format)")
a2.set(xlabel="step", ylabel="accuracy of the step's answers", title="accuracy while training", ylim=(0, 1))
a2.legend(fontsize=8, loc="lower right")
fig.tight_layout()
save_figure(fig, "09_trl_side_by_side")
plt.show()
ours_s = rlvr_trainer._loop.median_step_seconds(ours_first)
trl_s = rlvr_trainer._loop.median_step_seconds(theirs.history)
n = min(3, len(ours_first), len(theirs.history))
print(f"mean reward of the last {n} steps: ours {sum(h['reward'] for h in ours_first[-n:]) / n:.2f}, "
      f"TRL {sum(h['reward'] for h in theirs.history[-n:]) / n:.2f}")  # fmt: skip
print(f"median seconds per step: ours {ours_s:.2f}, TRL {trl_s:.2f} (TRL / ours = {trl_s / ours_s:.2f})")
report_metrics("09", {"seconds_per_step_ours": (None, ours_s), "seconds_per_step_trl": (None, trl_s)})

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_rlvr_length"]
# *Predict, then check.* Nothing in the reward mentions length. (a) Before looking at the length
# panel of the main run, predict whether responses get longer or shorter and by roughly how many
# tokens, from the two styles printed at the top. (b) Check with `main.history` (the
# `completion_length` of the first and last 10 steps) and the `scratchpad_rate` before and after.
# (c) Would the length still grow if the pretraining mix had no scratchpad documents at all? What
# does that say about what RL can and cannot create?

# %% [markdown] tags=["answer:q_rlvr_clip"]
# *Predict, then compute* with your `rlvr.rlvr_policy_loss`: one completion of 4 tokens,
# advantage +1, `old_logp = 0` and `logp = log([1.1, 1.25, 1.3, 0.7])` (ratios), mask all ones.
# (a) Predict `clip_ratio_high` and `clip_ratio_low` with `eps_low = eps_high = 0.2`, then with
# `eps_high = 0.28`, then with `level="sequence"` (same eps). (b) Compute them and the gradient of
# the loss with respect to `logp` in each case: which tokens still get a gradient? (c) Why does the
# main run (one optimizer step per batch) report a clip ratio of exactly 0?

# %% [markdown] tags=["answer:q_rlvr_dynamic"]
# *Predict, then check.* Late in the main run many groups are all-right. (a) From the
# `frac_reward_zero_std` panel, predict what fraction of each late batch's compute teaches
# nothing. (b) With dynamic sampling on, how many extra problems does a step sample to refill a
# batch of 8 groups if 75 % of groups are unanimous (at most 2 refill rounds)? Check `kept_groups`
# in `abl["dynamic sampling"]`. (c) Name one way dynamic sampling can *hurt* (think about what the
# easy problems would otherwise keep doing).
