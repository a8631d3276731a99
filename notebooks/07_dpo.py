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
# # Unit 07 — Direct Preference Optimization (DPO) from scratch
#
# PPO and GRPO (units 05–06) needed three things besides the policy: **samples** drawn during
# training, a **reward** for each sample, and a **KL penalty** to a frozen reference. DPO gets
# rid of the first two. It starts from the same objective,
#
# $$\max_\pi\; \mathbb{E}_{y\sim\pi(\cdot|x)}[r(x,y)] \;-\; \beta\,\mathrm{KL}(\pi\,\|\,\pi_\text{ref}),$$
#
# whose best policy has a closed form, $\pi^*(y|x) \propto \pi_\text{ref}(y|x)\,e^{r(x,y)/\beta}$.
# Turned around, **every policy defines a reward**: $r(x,y) = \beta \log\frac{\pi(y|x)}{\pi_\text{ref}(y|x)}
# + \beta\log Z(x)$. Put that *implicit reward* into the Bradley–Terry model of unit 04 and the
# unknown $\log Z(x)$ cancels between the chosen answer $y_w$ and the rejected one $y_l$:
#
# $$\mathcal{L}_\text{DPO} = -\log\sigma\Big(\beta\big[\underbrace{(\log\pi(y_w) - \log\pi(y_l)) - (\log\pi_\text{ref}(y_w) - \log\pi_\text{ref}(y_l))}_{h}\big]\Big).$$
#
# So DPO is *reward-model training where the reward model is the policy itself*. Everything it
# needs — log-probabilities of fixed texts under two models — comes from forward passes over a
# fixed dataset of preference pairs: no sampling, no reward model at training time.
#
# Where students lose points: the log-prob of a *sequence* is a **sum** over its completion tokens
# (not a mean, not including the prompt), and **β multiplies h inside the sigmoid**.
#
# **Plan.** Data → three exercises (7.1 sequence log-probs, 7.2 the loss, 7.3 the batch loss of
# a training step) → a training run with *your* functions → what the implicit rewards do →
# what accuracy does not see (a high learning rate) → β sweep → sigmoid vs IPO vs hinge → TRL's
# `DPOTrainer` side by side.

# %%
import copy
import dataclasses
import statistics

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import dpo
from course_lib.core import data, registry
from course_lib.core.models import frozen_copy
from course_lib.core.report import report_metrics, save_figure
from course_lib.labs import speed as speed_lab
from course_lib.trainers import dpo as dpo_trainer

torch.set_num_threads(2)
policy, tokenizer, start_path = dpo_trainer.start_model(profile)  # SFT checkpoint if unit 03 saved one
reference = frozen_copy(policy)  # π_ref: the starting model, frozen
print("starting model:", start_path)

# %% [markdown]
# ## 1. Preference pairs
#
# A preference pair is a prompt with two continuations, one *chosen* and one *rejected*. We use
# two kinds (in the `gpu` profile: Anthropic's HH-RLHF, human judgements of assistant replies):
#
# * **Fixed synthetic pairs** following a written rule (below): cheap, unlimited, and their
#   held-out split measures whether the model learned the *rule* rather than the examples.
# * **On-policy pairs**: the starting model writes 4 continuations of each prompt, the sentiment
#   scorer (VADER) ranks them, best = chosen, worst = rejected. These are texts the model already
#   produces, so learning from them moves its *own* behaviour with little drift — the recipe of
#   "online"/iterative DPO, done once here.

# %%
print("rule:", data.PREFERENCE_RULE)
# training pairs ("mixed": synthetic + on-policy), 128 held-out synthetic pairs, and the sentiment
# prompts for samples (under the grader: a few of each)
pair_data = dpo_trainer.headline_data(
    policy, tokenizer, profile, **(dict(n_pairs=16, n_heldout=16, n_eval=8) if FAST else {})
)
train_pairs, heldout_pairs, eval_prompts = (
    pair_data.train_pairs,
    pair_data.heldout_pairs,
    pair_data.eval_prompts,
)
print(f"{len(train_pairs)} training pairs, {len(heldout_pairs)} held-out pairs")
for row in train_pairs.select(range(3)):
    print(f"\nPROMPT   {row['prompt']!r}\nCHOSEN   {row['chosen']!r}\nREJECTED {row['rejected']!r}")

# %% [markdown]
# ## 2. Exercise 7.1 — the log-probability of a completion
#
# `dpo.sequence_logprobs(logits, labels, mask, average=False)` in `course_lib/dpo.py`.
#
# `labels` are already shifted (as in unit 03: `logits[:, t]` predicts `labels[:, t]`), `mask` is
# 1 on completion tokens. Gather each label's log-softmax and **sum over the completion tokens**:
# $\log\pi(y|x) = \sum_t \log\pi(y_t|x, y_{<t})$. The prompt is given, not generated, so it does
# not count. `average=True` divides by the number of completion tokens — a per-token score that
# does not favour short answers (TRL uses it for IPO); by default DPO uses the sum.
#
# *Hint:* `torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1))`; labels under a 0 mask
# may be `-100`, so replace them by any valid index before gathering.

# %% tags=["exercise-test:sequence_logprobs"]

# %% [markdown]
# ## 3. Exercise 7.2 — the DPO loss and the implicit rewards
#
# `dpo.dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, loss_type, label_smoothing)`.
# With $h = (\pi_c - \pi_r) - (\text{ref}_c - \text{ref}_r)$ (all sequence log-probs):
#
# | loss_type | per pair | what it does |
# |---|---|---|
# | `"sigmoid"` | $-(1-\epsilon)\log\sigma(\beta h) - \epsilon\log\sigma(-\beta h)$ | DPO; $\epsilon>0$ = cDPO: "labels are wrong with prob. ε", so the margin stops growing |
# | `"ipo"` | $(h - \tfrac{1}{2\beta})^2$ | IPO: pulls $h$ to a fixed target instead of to infinity |
# | `"hinge"` | $\max(0, 1-\beta h)$ | SLiC: no gradient once $\beta h \ge 1$ |
#
# Return the per-pair losses and the **implicit rewards** $\beta(\log\pi - \log\pi_\text{ref})$ of
# the chosen and rejected completions, *detached* (they are for monitoring, not for gradients).

# %% tags=["exercise-test:dpo_loss"]

# %% [markdown]
# The three losses as functions of the scaled margin $\beta h$ (computed with *your* `dpo_loss`).
# The slope is what training feels: sigmoid never quite stops pushing the margin up, hinge stops
# dead at $\beta h = 1$, IPO pushes *back* once the margin passes its target $\beta h = 1/2$ — a
# built-in brake against over-fitting the preferences.

# %%
beta = 0.1
h = torch.linspace(-30, 40, 281)
zero = torch.zeros_like(h)
fig, ax = plt.subplots(figsize=(6, 3.5))
for loss_type in ("sigmoid", "ipo", "hinge"):
    losses, _, _ = dpo.dpo_loss(h, zero, zero, zero, beta=beta, loss_type=loss_type)
    scale = beta**2 if loss_type == "ipo" else 1.0  # IPO is in units of h², not β·h
    ax.plot(beta * h, scale * losses, label="ipo (× β²)" if loss_type == "ipo" else loss_type)
losses, _, _ = dpo.dpo_loss(h, zero, zero, zero, beta=beta, loss_type="sigmoid", label_smoothing=0.2)
ax.plot(beta * h, losses, "--", label="sigmoid, ε=0.2 (cDPO)")
ax.set(
    xlabel="β·h (scaled implicit-reward margin)", ylabel="loss per pair", ylim=(0, 6), title="DPO loss shapes"
)
ax.legend()
plt.show()
save_figure(fig, "07_loss_shapes")

# %% [markdown]
# ## 4. Exercise 7.3 — the loss of one training batch
#
# `dpo.dpo_batch_loss(model, batch, beta, loss_type, label_smoothing, average)`.
# `dpo_trainer.collate` turns B pairs into **2B rows**: rows `0..B-1` are prompt + chosen,
# rows `B..2B-1` prompt + rejected (with your exercise 3.1, EOS appended like TRL). Run **one**
# forward pass over all 2B rows (one big matrix multiply is faster than two small ones), take your
# `sequence_logprobs`, split the result into the chosen and rejected halves, and call your `dpo_loss`.
#
# The reference log-probs arrive in `batch["ref_logps"]`: the reference never changes, so the
# trainer computes them **once, before training**, and a training step costs one forward and one
# backward of the policy — no reference forward, no sampling.

# %% tags=["exercise-test:dpo_batch_loss"]

# %% [markdown]
# ## 5. Training with your functions
#
# `course_lib/trainers/dpo.py` is one loop you can read top to bottom: `precompute_ref_logps`
# (once), then per step `collate` → `dpo.dpo_batch_loss` (yours) → `backward` → clip → AdamW.
# The configuration uses TRL's names. Before training we measure the starting model on fresh
# samples: **positive fraction** (VADER, the behaviour the chosen answers have), **distinct-2**
# (diversity — a fluency sanity check) and the **KL to the reference** (0 before training).

# %%
config = dpo_trainer.DPOConfig.from_profile(profile)  # tuned defaults for this profile
if FAST:
    config = dataclasses.replace(config, max_steps=2)
print(config)

# %% [markdown]
# The main run is one call (the course was checked with this same call on seeds 0, 1 and 2): the reference
# log-probs of every pair (once), samples before, training (held-out accuracy every
# `max_steps // 12` steps), held-out accuracy and samples after.

# %%
registry.check_training_needs("07")  # names every exercise this training runs that is still a stub
main = dpo_trainer.headline_run(config, policy, reference, tokenizer, pair_data, profile)
run, history, before, after, final = main.run, main.run.history, main.before, main.after, main.final
ref_logps, heldout_ref_logps, ref_pref = main.ref_logps, main.heldout_ref_logps, main.ref_preference
train_seconds = main.train_seconds
print(f"reference log-probs of {len(train_pairs)} pairs: {main.ref_seconds:.1f}s, once")
print(
    "before:",
    {k: round(v, 3) for k, v in before.items() if k != "samples"},
    f"| reference already prefers chosen on {ref_pref:.0%} of held-out pairs",
)
print(
    f"{config.max_steps} steps in {train_seconds:.1f}s; held-out implicit-reward accuracy "
    f"{final['accuracy']:.3f}, margin {final['margin']:.2f}"
)

# %% [markdown]
# ### What the implicit rewards do
#
# Left: the mean implicit rewards of the chosen and rejected completions in each training batch.
# DPO only asks for their *difference* to grow. Often **both go down** — the policy lowers the
# probability of the rejected texts a lot and of the chosen ones a little (probability mass moves
# to texts in neither set). Right: the margin, and the accuracy on held-out pairs the model never
# trained on — did it learn the rule, or the examples?

# %%
steps = [h["step"] for h in history]
smooth = lambda x, k=10: np.convolve(x, np.ones(k) / k, mode="valid") if len(x) > k else np.array(x)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
for key, label in (("chosen_reward", "chosen"), ("rejected_reward", "rejected")):
    y = smooth([h[key] for h in history])
    a1.plot(steps[len(steps) - len(y) :], y, label=label)
a1.axhline(0, color="gray", lw=0.5)
a1.set(xlabel="step", ylabel="β·(log π − log π_ref)", title="implicit rewards (training batches)")
a1.legend()
y = smooth([h["margin"] for h in history])
a2.plot(steps[len(steps) - len(y) :], y, label="margin (train)")
ev = [h for h in history if "eval_accuracy" in h]
a2.plot([h["step"] for h in ev], [h["eval_margin"] for h in ev], "o-", label="margin (held-out)")
a2b = a2.twinx()
a2b.plot(
    [h["step"] for h in ev], [h["eval_accuracy"] for h in ev], "s--", color="C3", label="accuracy (held-out)"
)
a2b.set_ylim(0, 1.05)
a2b.set_ylabel("held-out accuracy")
a2.set(xlabel="step", ylabel="reward margin", title="margin and held-out accuracy")
a2.legend(loc="upper left")
a2b.legend(loc="lower right")
plt.tight_layout()
plt.show()
save_figure(fig, "07_implicit_rewards")

# %% [markdown]
# ### Did the *samples* change?
#
# Preference accuracy is measured on fixed texts. What we care about is what the model *writes*:
# fresh samples from held-out prompts, before and after.

# %%
for b, a in list(zip(before["samples"], after["samples"]))[:5]:
    print(f"BEFORE {b!r}\nAFTER  {a!r}\n")
metrics = report_metrics(
    "07",
    {
        "preference_accuracy": (ref_pref, final["accuracy"]),
        "positive_fraction": (before["positive_fraction"], after["positive_fraction"]),
        "distinct_2": (before["distinct_2"], after["distinct_2"]),
        "kl_to_ref": (before["kl_to_ref"], after["kl_to_ref"]),
    },
)
if not FAST:
    run.info["start"] = start_path
    print("saved", dpo_trainer.save_checkpoint(run))


# %% [markdown]
# The "before" of `preference_accuracy` is how often the *reference* already gives the chosen
# completion the higher log-probability (the implicit rewards themselves are all exactly 0 before
# training). The bars this unit is built to: held-out accuracy ≥ 0.9; positive fraction up ≥ 15
# points; per-token KL to the reference ≤ 0.5 nats; distinct-2 within 20 % of where it started.
#
# ## 6. Preference accuracy does not see how far the model moved
#
# Same data, two thirds of the steps, ten times the learning rate.


# %%
def short_run(steps, **overrides):
    # A fresh copy of the starting model trained with `overrides`: held-out preferences + fresh samples.
    cfg = dataclasses.replace(config, max_steps=1 if FAST else steps, **overrides)
    model = copy.deepcopy(reference).requires_grad_(True)
    hist = dpo_trainer.train(
        cfg, model, tokenizer, train_pairs, ref_logps=ref_logps, desc=str(overrides)
    ).history
    ev = dpo_trainer.evaluate_pairs(model, tokenizer, heldout_pairs, heldout_ref_logps, cfg)
    sm = dpo_trainer.sample_metrics(
        model, reference, tokenizer, eval_prompts, max_new_tokens=profile.max_completion_length
    )
    return hist, ev, sm


hot_hist, hot_eval, hot = short_run(config.max_steps * 2 // 3, learning_rate=config.learning_rate * 10)
print(
    f"high learning rate ({config.learning_rate * 10:g}): held-out accuracy {hot_eval['accuracy']:.3f}, "
    f"KL to reference {hot['kl_to_ref']:.2f} nats/token, distinct-2 {hot['distinct_2']:.3f}, "
    f"positive fraction {hot['positive_fraction']:.3f}"
)
for s in hot["samples"][:5]:
    print("   ", repr(s))

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
names = [f"lr {config.learning_rate:g}", f"lr {config.learning_rate * 10:g}"]
for ax, (title, vals) in zip(
    axes,
    [
        ("held-out accuracy", [final["accuracy"], hot_eval["accuracy"]]),
        ("KL to reference (nats/token)", [after["kl_to_ref"], hot["kl_to_ref"]]),
        ("positive fraction", [after["positive_fraction"], hot["positive_fraction"]]),
    ],
):
    ax.bar(names, vals, color=["C0", "C3"])
    ax.set_title(title)
plt.tight_layout()
plt.show()
save_figure(fig, "07_accuracy_is_not_quality")

# %% [markdown]
# The hot run ranks the held-out pairs (almost) perfectly, and on this small task its samples even
# score as positive as the default run's. What the preference numbers do not show is *how far it
# moved*: its KL per token to the reference is several times larger. DPO's loss only sees *pairs of
# fixed texts*; any change that separates them lowers it, including changes to everything the pairs
# never mention, and it can be driven down by making both texts unlikely. Read the samples above and
# judge them yourself. Accuracy alone cannot tell you whether the model still writes like the one
# you started from: watch the KL to the reference and read samples.
#
# ## 7. The β sweep
#
# β is the strength of the (implicit) KL leash. Small β: the loss is flat in h until h is large,
# so the policy must move far from the reference to reduce it; large β: a small h already
# saturates the sigmoid. Short runs, same data:

# %%
betas = [0.1, 1.0] if FAST else [0.03, 0.1, 0.3, 1.0]  # under the grader: two
sweep = {}
for b in betas:
    _, ev, sm = short_run(config.max_steps // 2, beta=b)
    sweep[b] = {"margin_over_beta": ev["margin"] / b, "accuracy": ev["accuracy"], "kl": sm["kl_to_ref"]}
    print(
        f"β={b:<5} held-out h = margin/β {ev['margin'] / b:6.2f}  accuracy {ev['accuracy']:.3f}  "
        f"KL to reference {sm['kl_to_ref']:.3f}"
    )
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(betas, [sweep[b]["margin_over_beta"] for b in betas], "o-", label="held-out h (log-ratio gap, nats)")
ax2 = ax.twinx()
ax2.plot(betas, [sweep[b]["kl"] for b in betas], "s--", color="C3", label="KL to reference (nats/token)")
ax.set(xscale="log", xlabel="β", ylabel="h = margin / β")
ax2.set_ylabel("KL per token")
lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
fig.legend(lines, [ln.get_label() for ln in lines], loc="lower center", ncol=2, fontsize=8)
ax.set_title("β sweep")
plt.tight_layout(rect=(0, 0.1, 1, 1))  # the legend sits below the axes, over no curve
plt.show()
save_figure(fig, "07_beta_sweep")

# %% [markdown]
# ## 8. Sigmoid vs IPO vs hinge
#
# The same run with each loss (the default β). Watch the margin β·h over training: sigmoid keeps
# pushing every pair; hinge ignores a pair once it passes β·h = 1 (the batch mean stays lower);
# IPO is a *regression* of every pair's h onto the target β·h = ½ — it approaches it slowly, never
# overshoots, and moves the policy least. (TRL's
# `"ipo"` divides each sequence's log-ratio by its length first — `use_average_logps=True` here;
# this unit uses the plain formula of the exercise, summed log-probs.)

# %%
runs = {}
for loss_type in ("sigmoid", "ipo", "hinge"):
    runs[loss_type] = short_run(config.max_steps // 2, loss_type=loss_type)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
for loss_type, (hist, ev, sm) in runs.items():
    y = smooth([h["margin"] for h in hist])
    a1.plot(range(len(y)), y, label=loss_type)
    print(
        f"{loss_type:<8} held-out accuracy {ev['accuracy']:.3f}  margin {ev['margin']:.2f}  "
        f"KL {sm['kl_to_ref']:.3f}  positive {sm['positive_fraction']:.3f}"
    )
a1.axhline(1.0, ls=":", color="gray")
a1.axhline(0.5, ls=":", color="gray")
a1.set(xlabel="step", ylabel="β·h (training batches)", title="margin over training")
a1.legend()
a2.bar(list(runs), [runs[k][2]["kl_to_ref"] for k in runs], color=["C0", "C1", "C2"])
a2.set_title("KL to reference after training")
plt.tight_layout()
plt.show()
save_figure(fig, "07_loss_types")

# %% [markdown]
# ## 9. Side by side: TRL's `DPOTrainer`
#
# TRL 1.16 runs the same algorithm with the same names. Same starting model, same pairs in the
# same order (`train_sampling_strategy="sequential"`), same optimizer settings; reference
# log-probs precomputed in both. At the first step the two losses must agree — at step 1 the
# policy *is* the reference, so both equal log 2; the tests also compare them on a policy that
# differs from its reference, to 1e-5. Then the curves; for the speed, both loops run **back to
# back** on 12 steps, three times, alternating which goes first (`labs.speed.compare_speed`): the
# ratio with its spread under this machine's load — a look, not a benchmark (the course's own
# timing benchmark, run alone on an idle machine, is the measurement).
#
# One TRL default to know: since TRL 1.16 `loss_type="sigmoid"` ignores `label_smoothing` (the
# conservative cDPO loss of `dpo.dpo_loss`); with `label_smoothing > 0` TRL would silently train
# plain DPO. The cell sets `loss_type="sigmoid"` and `label_smoothing=0.0` explicitly, and
# `train_with_trl` refuses the combination that TRL would not honour.

# %%
if FAST:
    print("(skipped while grading)")
else:
    side = dataclasses.replace(
        config, max_steps=60, train_sampling_strategy="sequential", loss_type="sigmoid", label_smoothing=0.0
    )
    ours_model = copy.deepcopy(reference).requires_grad_(True)
    ours = dpo_trainer.train(side, ours_model, tokenizer, train_pairs, ref_logps=ref_logps, desc="ours")
    trl = dpo_trainer.train_with_trl(
        side,
        copy.deepcopy(reference).requires_grad_(True),
        tokenizer,
        train_pairs,
        ref_model=copy.deepcopy(reference),
    )
    ours_hist, trl_hist = ours.history, trl.history
    print(f"first-step loss: ours {ours_hist[0]['loss']:.6f}, TRL {trl_hist[0]['loss']:.6f}")
    speed_cfg = dataclasses.replace(side, max_steps=12)
    speed = speed_lab.compare_speed(
        lambda: dpo_trainer.train(
            speed_cfg,
            copy.deepcopy(reference).requires_grad_(True),
            tokenizer,
            train_pairs,
            ref_logps=ref_logps,
            show_progress=False,
        ),
        lambda: dpo_trainer.train_with_trl(
            speed_cfg,
            copy.deepcopy(reference).requires_grad_(True),
            tokenizer,
            train_pairs,
            ref_model=copy.deepcopy(reference),
        ),
        repeats=3,
    )
    print(speed_lab.describe(speed))
    ours_sps, trl_sps = statistics.median(speed["ours"]), statistics.median(speed["trl"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["loss"] for h in ours_hist], label="ours (your functions)")
    ax.plot([h["loss"] for h in trl_hist], "--", label="TRL DPOTrainer")
    ax.set(xlabel="step", ylabel="DPO loss", title="same model, same batches")
    ax.legend()
    plt.show()
    save_figure(fig, "07_trl_side_by_side")

# %% [markdown]
# Both loops do the same arithmetic; the difference in speed is overhead. TRL's step goes through
# `Trainer` (accelerate, callbacks, a data loader, logging many metrics every step); ours is a
# dozen lines. The two loss curves lie on top of each other; what gap there is comes from
# floating-point differences (TRL computes log-probs with a fused LM head).
#
# ## 10. Questions

# %% [markdown] tags=["answer:q_dpo_rewards_down"]
# In the implicit-reward plot, the chosen reward often *decreases* while accuracy rises. How can the loss go down while the chosen completions become less likely? Where does the probability mass go, and why can that be a problem?

# %% [markdown] tags=["answer:q_dpo_accuracy_quality"]
# The high-learning-rate run reached a higher held-out preference accuracy than the default run, yet moved several times farther from the reference (KL per token). Explain why the DPO loss cannot see this, and name two measurements you would watch to catch it.

# %% [markdown] tags=["answer:q_dpo_precompute"]
# Why may the reference log-probs be computed once before training? Give a DPO variant or setting in which that is no longer possible.

# %% [markdown] tags=["answer:q_dpo_sum_mean"]
# Exercise 7.1 sums token log-probs by default. What would change if you averaged them instead (think of a rejected answer that is much longer than the chosen one)?

# %% [markdown]
# ## Summary
#
# * DPO = Bradley–Terry on the implicit reward β·log(π/π_ref): no reward model, no sampling.
# * The bookkeeping: sum of completion-token log-probs; β inside the sigmoid; the reference's
#   log-probs computed once.
# * Preference accuracy measures ranking of fixed texts, not what the model writes: watch the
#   KL to the reference and the samples. β and the loss type decide how far the policy may go.
