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
# # Unit 05 — PPO from scratch
#
# **PPO** (Proximal Policy Optimization, Schulman et al. 2017) is the algorithm behind the first
# RLHF systems: Ziegler et al. (2019) fine-tuned GPT-2 to write *positive* movie-review
# continuations with it, and InstructGPT / ChatGPT used the same recipe at scale. TRL no longer ships
# a PPO trainer (it was removed in TRL 0.13), so in this unit you build the whole thing, and the
# provided loop in `course_lib/trainers/ppo.py` runs on **your** functions.
#
# The task is the classic one: **continue a review opening so that the review is positive**. The
# reward is a sentiment score in [0, 1] (VADER on the tiny profile, a DistilBERT classifier on a GPU).
#
# One PPO step, and where each of your functions enters:
#
# | | what happens | your code |
# |---|---|---|
# | 1 | **rollout**: sample one completion per prompt (the KV-cached sampler from unit 02) | — |
# | 2 | **score** each completion with the reward function | `rewards.sentiment_reward` (1.3) |
# | 3 | **per-token rewards**: $-\beta\,(\log\pi - \log\pi_\text{ref})$ on every token, score on the last | `kl.kl_penalized_rewards` (2.4) |
# | 4 | **values** $V(s_t)$ from a value head on the policy's last hidden state | — |
# | 5 | **advantages** with GAE, then whitened | `compute_gae` (5.1), `whiten` (5.2) |
# | 6 | **update**: a few epochs over minibatches of the *same* samples | `ppo_policy_loss` (5.3), `ppo_value_loss` (5.4), `entropy_from_logits` (5.5), `ppo_minibatch_loss` (5.6) |
# | 7 | **KL controller**: keep $\beta$ fixed, or adapt it towards a target KL | — |
#
# Why so many parts? Policy gradients need to know *which tokens* were good (credit assignment: the
# value head + GAE), need a stable scale (whitening), and must not move the policy too far on one
# batch of samples that were drawn from the *old* policy (clipping) or too far from the model we
# started from (the KL penalty). Each part fixes one failure you will see in this notebook.

# %%
import dataclasses
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import ppo
from course_lib.core import registry
from course_lib.core.models import latest_checkpoint
from course_lib.core.report import claim, report_metrics, save_figure
from course_lib.trainers import ppo as ppo_trainer

torch.set_num_threads(2)
preset = profile.preset()  # "quick" unless $COURSE_PRESET says otherwise
config = ppo_trainer.PPOConfig.from_profile(profile, preset.name)
if FAST:  # under the grader: small batches, short completions, two steps (comparisons: one)
    config = dataclasses.replace(config, **course_lib.core.utils.GRADING_SIZES["ppo"])
STEPS = 2 if FAST else config.max_steps
SHORT = 1 if FAST else max(2, config.max_steps // 3)  # the comparison runs are shorter (20 steps)
N_EVAL = 8 if FAST else None  # None: 2 * preset.eval_size = 128 prompts on the quick preset
eval_prompts = ppo_trainer.eval_prompts(profile, N_EVAL)
print("start model:", latest_checkpoint("sft") or profile.policy_model)
print("config:", config)

# %% [markdown]
# ## 1. Per-token rewards and the value head
#
# The reward model scores a *whole* completion, but the policy takes one action per *token*. PPO for
# language models turns the sequence score into per-token rewards with your unit-02 function
# `kl.kl_penalized_rewards`: every response token gets $-\beta\,(\log\pi_\theta - \log\pi_\text{ref})$
# (the KL penalty, so straying from the reference model costs reward *where* it happens) and the last
# token also gets the score.
#
# To tell good tokens from bad ones we need a baseline: the **value** $V(s_t)$, the reward the
# policy expects to collect from state $s_t$ (prompt + the tokens so far) on. Here it is a linear
# **value head** on the policy's last hidden state (`course_lib.core.models.PolicyWithValueHead`): one
# forward pass gives the logits *and* the values, and the critic shares the transformer with the
# actor.
#
# ## 2. Exercise 5.1 — generalised advantage estimation (GAE)
#
# The **advantage** $A_t$ says how much better token $t$ turned out than the value head expected.
# With the TD error $\delta_t = r_t + \gamma V_{t+1} - V_t$ (and $V = 0$ after the last token),
#
# $$A_t = \delta_t + \gamma\lambda\,A_{t+1} \qquad\text{(computed backwards from the last token)}$$
#
# $\lambda$ trades bias for variance: $\lambda = 0$ trusts the value head completely
# ($A_t = \delta_t$, low variance, biased while the critic is bad); $\lambda = 1$ ignores it except as
# a baseline ($A_t$ = actual return $- V_t$, unbiased, noisy). The **returns** $A_t + V_t$ are the
# regression targets of the value head.
#
# Implement `compute_gae` in `course_lib/ppo.py` (rewards and values are zeroed on padding; nothing
# carries a gradient).

# %% tags=["exercise-test:compute_gae"]

# %% [markdown]
# See what $\lambda$ does on one sequence of 8 tokens with the score 1 on the last token and an
# untrained value head (values all 0.5): with $\lambda = 0$ only the last token sees the reward, with
# $\lambda = 1$ every token gets credit for it.

# %%
r = torch.zeros(1, 8)
r[0, -1] = 1.0
v = torch.full((1, 8), 0.5)
m = torch.ones(1, 8)
fig, ax = plt.subplots(figsize=(6, 3))
for lam in (0.0, 0.5, 0.95, 1.0):
    adv, _ = ppo.compute_gae(r, v, m, gamma=1.0, lam=lam)
    ax.plot(adv[0].numpy(), marker="o", label=f"lambda = {lam}")
ax.set(xlabel="token t", ylabel="advantage A_t", title="GAE: how far back the final reward reaches")
ax.legend()
plt.show()
save_figure(fig, "05_gae_lambda")

# %% [markdown]
# ## 3. Exercise 5.2 — whitening
#
# Advantages from different batches have wildly different scales (a batch of all-positive reviews vs
# a mixed one). PPO normalises them over the batch's response tokens: subtract the masked mean,
# divide by the masked standard deviation (Bessel-corrected). After whitening, about half of the
# tokens are pushed up and half down, and the learning rate means the same thing at every step.
#
# Implement `whiten`.

# %% tags=["exercise-test:whiten"]

# %% [markdown]
# ## 4. Exercise 5.3 — the clipped surrogate objective
#
# PPO reuses one batch of samples for several gradient steps. After the first step the policy
# $\pi_\theta$ is no longer the one that drew the samples ($\pi_\text{old}$), so each token's
# advantage is weighted by the probability ratio $\rho_t = \pi_\theta(a_t|s_t)/\pi_\text{old}(a_t|s_t)$
# (importance sampling). Left alone, the optimiser would push $\rho$ as far as it can wherever
# $A_t > 0$. The clipped objective removes that incentive:
#
# $$L^\text{CLIP} = \operatorname{mean}_t \max\big(-A_t\rho_t,\; -A_t\,\mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\big)$$
#
# Once the ratio has moved more than $\epsilon$ (0.2) in the profitable direction, the loss is flat
# and the gradient is zero; in the *unprofitable* direction the unclipped term still applies, so
# mistakes are always corrected. The **clip fraction** (how many tokens sit on the flat part) is the
# best single health signal of a PPO run.
#
# Implement `ppo_policy_loss` (loss and clip fraction).

# %% tags=["exercise-test:ppo_policy_loss"]

# %%
rho = torch.linspace(0.4, 1.8, 141)
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, a in zip(axes, (1.0, -1.0)):
    A = torch.full_like(rho, a)
    per_token = torch.stack(
        [
            ppo.ppo_policy_loss(
                torch.log(x).view(1, 1), torch.zeros(1, 1), A[:1].view(1, 1), torch.ones(1, 1), 0.2
            )[0]
            for x in rho
        ]
    )
    ax.plot(rho, -per_token, label="clipped objective (-loss)")
    ax.plot(rho, a * rho, "--", alpha=0.6, label="unclipped rho * A")
    ax.axvspan(0.8, 1.2, color="grey", alpha=0.15)
    ax.set(title=f"A = {a:+.0f}", xlabel="ratio rho")
axes[0].set_ylabel("objective")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
save_figure(fig, "05_clipped_objective")

# %% [markdown]
# The flat parts are where the gradient is zero: with $A > 0$ nothing is gained beyond $\rho = 1.2$,
# with $A < 0$ nothing below $\rho = 0.8$.
#
# ## 5. Exercise 5.4 — the clipped value loss
#
# The value head regresses the returns: $\tfrac12(V_\theta - R)^2$. Like the policy, it is kept close
# to the values at rollout time: $V_\text{clip} = V_\text{old} + \mathrm{clip}(V_\theta - V_\text{old},
# -\epsilon_v, \epsilon_v)$ and the loss takes the *larger* (more pessimistic) of the clipped and
# unclipped errors.
#
# Implement `ppo_value_loss`.

# %% tags=["exercise-test:ppo_value_loss"]

# %% [markdown]
# ## 6. Exercise 5.5 — entropy
#
# The entropy $H = -\sum_v p_v \log p_v$ of the next-token distribution measures how much the policy
# still explores. It is logged every step (a collapsing entropy is the first sign of mode collapse)
# and can be added as a bonus (`entropy_coef`). Compute it stably from the logits:
# $H = \operatorname{logsumexp}(z) - \sum_v \operatorname{softmax}(z)_v z_v$.
#
# Implement `entropy_from_logits`.

# %% tags=["exercise-test:entropy_from_logits"]

# %% [markdown]
# ## 7. Exercise 5.6 — one PPO minibatch
#
# Now wire the pieces into the loss of one minibatch. The trainer gives you the current policy's
# `logits` [B, T, V] and `values` [B, T] for the minibatch (with gradient) and a `batch` dict with the
# tensors stored at rollout time: `response_ids`, `mask`, `old_logprobs`, `old_values`, `advantages`,
# `returns`. Return `(loss, stats)` with
#
# $$\text{loss} = L^\text{CLIP} + c_v\,L^V - c_H\,\bar H$$
#
# and the detached statistics `policy_loss`, `value_loss`, `entropy`, `clip_fraction`, `approx_kl`
# (the docstring of `ppo_minibatch_loss` has the recipe). The loop then back-propagates, clips the
# gradient norm and steps the optimizer.

# %% tags=["exercise-test:ppo_minibatch_loss"]

# %% [markdown]
# ## 8. The training loop
#
# This is the whole update of `course_lib/trainers/ppo.py`. Read it: every line that does maths
# calls one of your functions.

# %%
print(inspect.getsource(ppo_trainer.ppo_update))

# %% [markdown]
# And the rollout half (steps 1–5 of the table), also provided:

# %%
print(inspect.getsource(ppo_trainer.collect_rollout))

# %% [markdown]
# ## 9. Train
#
# Before training we sample fresh completions of held-out prompts from the starting model (the SFT
# checkpoint of unit 03 if you have it, else the base model) and measure
#
# * **positive fraction** — the share of reviews (prompt + completion) that VADER calls positive,
# * **distinct-2** — unique word bigrams / all bigrams over the samples (does it still say different
#   things?),
# * **KL to the reference** — mean per-token KL (k3 estimator) between the policy and the frozen
#   starting model, on the policy's own samples.
#
# Then PPO trains for the preset's number of steps with $\beta$ = `kl_coef` starting at 0.07 and
# moved by the adaptive KL controller of section 10 (target 3 nats per sequence, horizon 320
# samples), an entropy bonus (`entropy_coef` = 0.01), learning rate 3e-4, 64 prompts per step,
# 2 epochs over 4 minibatches of 16. Why these: each minibatch is one Adam update, and Adam moves
# every weight by about the learning rate whatever the noise in the gradient. With fewer prompts in
# smaller minibatches the policy jitters: its KL to the reference goes up and down across the
# 0.5 bar from step to step, so *where the run stops* decides whether it meets the bar. 64 prompts
# per step halve the gradient's noise. This recipe meets every bar with room to spare on seeds 0, 1
# and 2, each with the solutions and with a numerically different implementation (as your own code
# will be); cheaper recipes leave some seed at the edge of a bar (a smaller gain, or a fifth of
# the diversity gone).
#
# We measure on 128 held-out prompts, four samples each (four draws, averaged): one draw is a random
# measurement too -- the same trained policy, sampled with different seeds, moves its distinct-2 and
# positive fraction by several points.
#
# The main run is `ppo_trainer.headline_run`: seed (`config.seed`), load the start model with a
# fresh value head, measure, seed again, train, measure. The course was checked by calling this same
# function with seeds 1 and 2 too: the bars hold for every seed, not just this one. Here it pauses
# halfway (`pause_after`) so that you can look at the first half of the curves before the second
# half runs; `main.finish()` then trains on from exactly where it stopped (same optimizer state,
# same $\beta$, same random streams), so the paused run is the same run as one without a pause.

# %%
registry.check_training_needs("05")  # names every exercise this training runs that is still a stub
HALF = STEPS // 2
main = ppo_trainer.headline_run(
    dataclasses.replace(config, max_steps=STEPS), profile, eval_prompts, pause_after=HALF
)
before = main.before
print("before:", {k: round(before[k], 3) for k in ppo_trainer.HEADLINE})
for s in before["samples"][:4]:
    print(" ", repr(s["prompt"] + s["response"]))
print(f"{len(main.run.history)} of {STEPS} PPO steps in {main.train_seconds:.0f} s")

# %% [markdown]
# ### Halfway: the reward and the KL controller at work
#
# The left panel is the reward of each step's samples. The right one is what the adaptive KL
# controller sees and does: the KL per *sequence* of each batch (summed over its tokens) against its
# target of 3 nats, and $\beta$. At step 1 the policy *is* the reference, the KL is 0, far below the
# target, so the controller lowers $\beta$ (by at most 4 % per step): cheap KL lets the policy move
# towards what the scorer likes. Once the KL passes the target, $\beta$ turns and grows, and moving
# further costs more reward. Watch in the second half whether the KL settles near the target and
# whether the reward keeps climbing or flattens out.


# %%
def controller_view(h, title):
    fig, (ax_r, ax_k) = plt.subplots(1, 2, figsize=(10, 3))
    steps = [x["step"] for x in h]
    ax_r.plot(steps, [x["reward"] for x in h])
    ax_r.set(title="reward", xlabel="step", ylabel="mean sentiment score")
    ax_k.plot(steps, [x["kl_seq"] for x in h], color="C0", label="KL per sequence")
    ax_k.axhline(config.target_kl, color="C0", ls=":", label=f"target {config.target_kl}")
    ax_k.set(title="KL controller", xlabel="step", ylabel="nats per sequence")
    ax_k.legend(fontsize=8, loc="upper left")
    ax_b = ax_k.twinx()
    ax_b.plot(steps, [x["kl_coef"] for x in h], color="C1")
    ax_b.set_ylabel("beta", color="C1")
    plt.suptitle(title)
    plt.tight_layout()
    return fig


fig = controller_view(main.run.history, f"the first {len(main.run.history)} of {STEPS} steps")
plt.show()
save_figure(fig, "05_halfway")
h = main.run.history
claim(f"beta went down while the KL was below its target: {h[0]['kl_coef']:.3f} at step 1, "
      f"{min(x['kl_coef'] for x in h):.3f} at its lowest", min(x["kl_coef"] for x in h) < h[0]["kl_coef"])  # fmt: skip

# %% [markdown]
# Now the second half, from where the run stopped, and the measurement after training on the same
# held-out prompts:

# %%
main.finish()  # the remaining steps of the same run, then the metrics after
result, train_seconds = main.run, main.train_seconds
policy, ref, tok, history = result.model, result.ref_model, result.tokenizer, result.history
print(f"{len(history)} PPO steps in {train_seconds:.0f} s")


# %% [markdown]
# ### What to look for in the curves
#
# * **reward** should go up — the policy learns what the sentiment scorer likes;
# * **KL to the reference** is 0 at step 1 (the policy *is* the reference) and rises as soon as the
#   policy moves. After that the adaptive controller pushes it towards its target: $\beta$ grows
#   while the KL per sequence is above the target and shrinks while it is below, by at most 4 %
#   per step, so the curve does not settle on a line: it wanders in a band, with bumps where one
#   batch moved the policy more;
# * **entropy** must not collapse to 0 (a policy that always writes the same words); the entropy
#   bonus of this configuration pushes against that;
# * **clip fraction** should stay small (a few to ~20 %): the updates are proximal. Much larger
#   means the learning rate or the number of epochs is too high;
# * **value loss** should fall as the critic learns the returns (and jump when the rewards change).
#
# The lines printed under the figure check each of these on *your* run (`[no]` marks one that does
# not hold this time: one run is noisy).


# %%
def curves(history, keys, title=None, axes=None, label=None):
    if axes is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    steps = [h["step"] for h in history]
    for ax, key in zip(np.atleast_1d(axes), keys):
        ax.plot(steps, [h[key] for h in history], label=label)
        ax.set(title=key, xlabel="step")
    if title:
        plt.suptitle(title)
    plt.tight_layout()
    return np.atleast_1d(axes)[0].figure


fig = curves(
    history,
    ["reward", "kl", "entropy", "clip_fraction", "value_loss"],
    title=f"PPO, kl_coef = {result.config.kl_coef}",
)
plt.show()
save_figure(fig, "05_training_curves")


def mean(h, key):
    return float(np.mean([x[key] for x in h]))


q = max(1, len(history) // 4)
early, late = history[:q], history[-q:]  # first and last quarter of the run
claim(f"reward went up: {mean(early, 'reward'):.2f} (first quarter) -> {mean(late, 'reward'):.2f} (last quarter)",
      mean(late, "reward") > mean(early, "reward"))  # fmt: skip
kl_late = [x["kl"] for x in history[len(history) // 2 :]]
claim(f"KL to the reference: 0 at step 1, peak {max(x['kl'] for x in history):.2f} at step "
      f"{max(history, key=lambda x: x['kl'])['step']}; second half between {min(kl_late):.2f} and {max(kl_late):.2f} "
      f"nats/token (mean {np.mean(kl_late):.2f})", history[0]["kl"] < 1e-6 and max(kl_late) > 0)  # fmt: skip
claim(f"the controller moved beta from {history[0]['kl_coef']:.3f} to {result.info['kl_coef']:.3f}; the KL per "
      f"sequence in the last quarter averaged {mean(late, 'kl_seq'):.2f} nats (target {result.config.target_kl})",
      result.info["kl_coef"] != history[0]["kl_coef"])  # fmt: skip
claim(f"entropy did not collapse: {mean(early, 'entropy'):.2f} -> {mean(late, 'entropy'):.2f} nats/token",
      mean(late, "entropy") > 0.5 * mean(early, "entropy"))  # fmt: skip
claim(f"clip fraction stayed small: at most {max(x['clip_fraction'] for x in history):.1%}",
      max(x["clip_fraction"] for x in history) <= 0.2)  # fmt: skip
claim(f"value loss fell: {mean(early, 'value_loss'):.3f} -> {mean(late, 'value_loss'):.3f}",
      mean(late, "value_loss") < mean(early, "value_loss"))  # fmt: skip

# %%
after = main.after  # the same held-out prompts, after training
for s in after["samples"][:6]:
    print(" ", repr(s["prompt"] + s["response"]))
report_metrics("05", {**ppo_trainer.headline(before, after), "train_seconds": (None, train_seconds)})

# %% [markdown]
# Save the policy for the later units (unit 08 compares it with GRPO and DPO):

# %%
path = ppo_trainer.save_checkpoint(result)
print("saved", path)

# %% [markdown]
# ## 10. How strong should the KL penalty be? kl_coef 0.03 vs 0.07 vs 0.3
#
# The classic PPO-sentiment assignment compares $\beta = 0.1$ and $0.3$. A larger $\beta$ makes every
# nat of divergence cost more reward, so the policy should trade less fidelity to the reference for
# sentiment: lower KL, lower reward. We rerun from the same start with $\beta = 0.03$ and $0.3$
# (shorter runs: the first third of the main run's steps) and plot reward and KL next to the same
# steps of the main run ($\beta$ from 0.07, adaptive; the sweep and the ablations below keep $\beta$
# fixed: `adaptive_kl=False`). The right panel sums each run up as one point: its mean reward and
# mean KL over the last quarter of its steps (the bars: their spread, one standard deviation).
# `FULL_SWEEP = True` adds $\beta$ = 0.01, 0.1 and 1.0 (three more runs).

# %%
FULL_SWEEP = False
runs = {result.config.kl_coef: history}
for beta in (0.03, 0.3) + ((0.01, 0.1, 1.0) if FULL_SWEEP else ()):
    torch.manual_seed(0)
    pb, refb, _ = ppo_trainer.load_models(profile)
    runs[beta] = ppo_trainer.train(
        dataclasses.replace(config, max_steps=SHORT, kl_coef=beta, adaptive_kl=False),
        pb,
        tok,
        ref_model=refb,
        desc=f"PPO kl_coef={beta}",
    ).history
runs = dict(sorted(runs.items()))
ends = {}  # kl_coef -> last-quarter (reward mean, reward std, KL mean, KL std)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for i, (beta, h) in enumerate(runs.items()):
    adaptive = " (adaptive)" if beta == result.config.kl_coef else ""  # the main run's beta moves
    h, label, color = h[:SHORT], f"kl_coef {beta}{adaptive}", f"C{i}"
    axes[0].plot([x["step"] for x in h], [x["reward"] for x in h], label=label, color=color)
    axes[1].plot([x["step"] for x in h], [x["kl"] for x in h], label=label, color=color)
    last = h[-max(1, SHORT // 4) :]
    r, k = [x["reward"] for x in last], [x["kl"] for x in last]
    ends[beta] = (np.mean(r), np.std(r), np.mean(k), np.std(k))
    axes[2].errorbar(
        ends[beta][2], ends[beta][0], xerr=ends[beta][3], yerr=ends[beta][1], fmt="o", color=color
    )
    axes[2].annotate(label, (ends[beta][2], ends[beta][0]), textcoords="offset points",
                     xytext=(6, 6), fontsize=8, color=color)  # fmt: skip
axes[0].set(title="reward", xlabel="step", ylabel="mean sentiment score")
axes[1].set(title="KL to reference", xlabel="step", ylabel="nats per token")
axes[2].set(title="where each run ends (last quarter)", xlabel="KL to reference (nats per token)",
            ylabel="reward")  # fmt: skip
axes[2].set_xlim(0, max(e[2] + e[3] for e in ends.values()) * 1.3)
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
save_figure(fig, "05_kl_coef_sweep")
for beta, (r, _, k, _) in ends.items():
    print(f"kl_coef {beta}: last-quarter reward {r:.3f}, KL {k:.3f} nats/token")
betas = sorted(ends)
claim("a larger kl_coef ended at a lower KL: " + " > ".join(f"{ends[b][2]:.3f}" for b in betas),
      all(ends[a][2] > ends[b][2] for a, b in zip(betas, betas[1:])))  # fmt: skip
claim("... and at a lower reward: " + " > ".join(f"{ends[b][0]:.3f}" for b in betas),
      all(ends[a][0] > ends[b][0] for a, b in zip(betas, betas[1:])))  # fmt: skip

# %% [markdown]
# ### The adaptive KL controller
#
# Choosing $\beta$ by hand is awkward: the right value changes as the policy moves. Ziegler et al.
# adapt it with a proportional controller towards a **target KL** (per sequence):
# $e = \mathrm{clip}(\mathrm{KL}/\mathrm{target} - 1, -0.2, 0.2)$ and
# $\beta \leftarrow \beta\,(1 + e\cdot n/\text{horizon})$ after a batch of $n$ samples. Too much KL
# raises $\beta$, too little lowers it — by at most 20 % per `horizon` samples. Turn it on with
# `PPOConfig(adaptive_kl=True, target_kl=..., horizon=...)`. Here is how $\beta$ reacts to a KL
# that overshoots the target and then settles (no training needed):

# %%
ctl = ppo_trainer.AdaptiveKLController(0.1, target=6.0, horizon=200)
kl_path = [12 * (1 - np.exp(-s / 15)) * np.exp(-s / 60) + 4 for s in range(100)]
betas = [ctl.value] + [ctl.update(k, 8) for k in kl_path]
fig, ax1 = plt.subplots(figsize=(6, 3))
ax1.plot(kl_path, color="C0")
ax1.axhline(6.0, color="C0", ls=":")
ax1.set(xlabel="step", ylabel="KL per sequence (nats)")
ax2 = ax1.twinx()
ax2.plot(betas[1:], color="C1")
ax2.set_ylabel("beta", color="C1")
ax1.set_title("adaptive KL controller (target 6, horizon 200, batch 8)")
plt.tight_layout()
plt.show()
save_figure(fig, "05_adaptive_kl")

# %% [markdown]
# ## 11. Ablation: remove the safety rails
#
# What do clipping and the KL penalty buy? We rerun the short training twice with everything else the
# same: once **without the KL term** ($\beta = 0$: nothing ties the policy to the reference) and
# once **without clipping and without the KL term** (`clip_range=None`: nothing stops one batch from
# moving the policy arbitrarily far). Watch the KL, the entropy and the samples: the reward goes up
# in every run, but *how* it goes up differs. Each ablation's samples are then measured on half of
# the held-out prompts, with the same metrics as the main run.

# %%
ablations = {f"PPO (clip 0.2, kl_coef {result.config.kl_coef})": (history[:SHORT], None)}
for name, over in {
    "no KL term": dict(kl_coef=0.0),
    "no clipping, no KL term": dict(kl_coef=0.0, clip_range=None),
}.items():
    torch.manual_seed(0)
    pa, refa, _ = ppo_trainer.load_models(profile)
    h = ppo_trainer.train(
        dataclasses.replace(config, max_steps=SHORT, adaptive_kl=False, **over),
        pa,
        tok,
        ref_model=refa,
        desc=name,
    ).history
    ablations[name] = (h, ppo_trainer.evaluate(pa, refa, tok, eval_prompts[: max(8, len(eval_prompts) // 2)]))
fig, axes = plt.subplots(1, 4, figsize=(13, 3))
for name, (h, _) in ablations.items():
    for ax, key in zip(axes, ["reward", "kl", "entropy", "approx_kl"]):
        ax.plot([x["step"] for x in h], [x[key] for x in h], label=name)
        ax.set(title=key, xlabel="step")
plt.tight_layout()
# one legend below the panels: inside one it would cover its curves
fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
           fontsize=8)  # fmt: skip
plt.show()
save_figure(fig, "05_ablation")
ablations[next(iter(ablations))] = (history[:SHORT], after)  # the main run, measured after all its steps
for name, (_h, ev) in ablations.items():
    print(
        f"{name}: positive {ev['positive_fraction']:.2f} · distinct-2 {ev['distinct_2']:.2f} "
        f"(start {before['distinct_2']:.2f}) · KL {ev['kl_to_ref']:.2f} nats/token"
    )
    for s in ev["samples"][:3]:
        print("   ", repr(s["prompt"] + s["response"]))

# %% [markdown]
# `approx_kl` is the KL between the policy before and after one step's updates: how far a single
# batch moved the policy. Without clipping nothing bounds it; without the KL term nothing pulls the
# policy back towards the reference, so its KL to the reference (the `kl` curve) can keep growing.
# On this tiny model such a policy can drift into strings of positive words whatever the prompt — a
# **word salad** — that satisfies the sentiment scorer and no reader. Read the samples above.
#
# Why distinct-2 does not catch the salad: distinct-2 is the number of *different* word bigrams
# divided by the number of bigrams. Fluent reviews reuse common pairs ("the movie", "it was"), so
# their distinct-2 is moderate; a random string of positive adjectives makes almost every pair new
# ("admired adored", "adored liked", ...), so its distinct-2 can be *higher* than the fluent start
# model's. Distinct-2 measures repetition, not sense: it catches "great great great", not a salad
# of different words. That is why the course also bounds the KL to the reference, which does see
# that the text left the reference model's language. (The first row above is the main run after all
# its steps; the ablations are measured after their short runs.)

# %%
main_name, (main_h, main_ev) = next(iter(ablations.items()))
for name in [n for n in ablations if n != main_name]:
    h, ev = ablations[name]
    claim(f"{name}: the KL to the reference ended higher than the main run's ({ev['kl_to_ref']:.2f} vs "
          f"{main_ev['kl_to_ref']:.2f} nats/token)", ev["kl_to_ref"] > main_ev["kl_to_ref"])  # fmt: skip
    claim(f"{name}: distinct-2 ended above the start model's ({ev['distinct_2']:.2f} vs "
          f"{before['distinct_2']:.2f}): compare with its samples above", ev["distinct_2"] > before["distinct_2"])  # fmt: skip
if "no clipping, no KL term" in ablations and "no KL term" in ablations:
    a_clip, a_none = (mean(ablations[n][0], "approx_kl") for n in ("no KL term", "no clipping, no KL term"))
    claim(f"without clipping one step moves the policy further: mean approx_kl {a_none:.4f} vs {a_clip:.4f} "
          "with clipping", a_none > a_clip)  # fmt: skip

# %% [markdown]
# ## 12. Questions

# %% [markdown] tags=["answer:q_ppo_clipping"]
# In the ablation, what changed when clipping was removed (look at `approx_kl`, the KL and the
# samples)? Explain with the shape of the clipped objective (section 4) why clipping keeps several
# epochs over the *same* samples safe, and what would go wrong with, say, 20 epochs and no clipping.

# %% [markdown] tags=["answer:q_ppo_kl_coef"]
# Compare kl_coef 0.03, 0.07 and 0.3 in the sweep: reward, KL and samples. Which would you deploy and
# why? The penalty here sits *inside the reward* (per token, through the advantages); GRPO (unit 06)
# puts the KL *in the loss* instead. What is one practical difference between the two choices?

# %% [markdown] tags=["answer:q_ppo_value_head"]
# PPO trains a value head; GRPO (next unit) does without one. What does the value head buy PPO
# (think of GAE and per-token credit assignment), and what does it cost (memory, compute,
# hyper-parameters, the early steps while the critic is still wrong)?

# %% [markdown] tags=["answer:q_ppo_reward_hacking"]
# Find a sample (from the main run or an ablation) where the policy pleased the sentiment scorer in
# a way a human would not call a good review. Which part of PPO is supposed to prevent this, and how
# would `reward="combined"` (sentiment + repetition and length penalties, weights 1.0 / -0.5 / 0.1)
# or a learned reward model (unit 04) change the incentive?
