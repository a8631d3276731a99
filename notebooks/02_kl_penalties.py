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
# # Unit 02 — KL penalties
#
# Unit 01 ended with an optimiser that maximised a reward by writing `great great great …`. The
# standard defence in RLHF is to keep the policy π close to a **reference** policy π_ref (the model
# before RL, which writes fluent text) by penalising the Kullback–Leibler divergence
#
# $$\mathrm{KL}(\pi \,\|\, \pi_\text{ref}) = \mathbb{E}_{x\sim\pi}\left[\log \pi(x) - \log \pi_\text{ref}(x)\right].$$
#
# PPO puts `-β · KL` into the reward, GRPO adds `β · KL` to the loss. In both cases KL is *estimated*
# from the policy's own samples, one token at a time. This notebook is about those estimates:
#
# 1. log-probabilities of sampled tokens, three estimators k1/k2/k3, and the exact KL (exercises),
# 2. bias and variance of the estimators, measured exactly on toy distributions,
# 3. forward vs reverse KL: mode covering and mode seeking,
# 4. per-token KL of a policy that drifted from the tiny model, and how β trades reward for KL,
# 5. two "KL-like" reward terms seen in the wild, and what they really compute.

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib import kl, rewards
from course_lib.core import data
from course_lib.core.models import frozen_copy, load_policy
from course_lib.core.report import report_metrics, save_figure
from course_lib.labs import unit01, unit02

# %% [markdown]
# ### Exercise 2.1 — `token_logprobs`
# A language model returns logits `[B, T, V]`; for training we need the log-probability of the
# token that was actually sampled at each position: `log_softmax(logits)[b, t, tokens[b, t]]`.
# No shifting here: `sampling.completion_logits` already aligned the logits with the tokens they
# predicted.
#
# *Hint:* `torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)`; check the
# shapes first and raise `ValueError` naming both.

# %% tags=["exercise-test:token_logprobs"]

# %% [markdown]
# ### Exercise 2.2 — `kl_estimate`
# For a token x sampled from π, let `log r = ref_logp - logp` (= log π_ref(x) − log π(x)). Three
# per-sample estimators of KL(π‖π_ref) (John Schulman, *Approximating KL divergence*, 2020):
#
# | kind | formula | unbiased? | sign |
# |------|---------|-----------|------|
# | k1 | `-log r` | yes | can be < 0 |
# | k2 | `(log r)² / 2` | no (small bias near π = π_ref) | ≥ 0 |
# | k3 | `exp(log r) - 1 - log r` | yes (E[r] = 1) | ≥ 0 |
#
# k3 is k1 plus `r - 1`, a term with mean zero that is negatively correlated with k1: a *control
# variate*. GRPO uses k3.
#
# *Hint:* compute `log_r` once; unknown `kind` → `ValueError`; shapes must match.

# %% tags=["exercise-test:kl_estimate"]

# %% [markdown]
# ### Exercise 2.3 — `exact_kl`
# When both distributions are available as logits over the whole vocabulary, the KL of the
# *next-token* distributions can be computed exactly: `Σ_v p_v (log p_v − log q_v)` with
# `p = softmax(p_logits)`. Compute it from `log_softmax` (never `log(softmax(...))`: it underflows).
#
# *Hint:* reduce over the last dimension only; `[..., V] -> [...]`.

# %% tags=["exercise-test:exact_kl"]

# %% [markdown]
# ## Bias and variance of k1, k2, k3
#
# On a toy vocabulary of 50 tokens we move a policy away from a fixed reference by `distance`
# along a random direction of the logits. Because the vocabulary is small we do not need to sample
# to know each estimator's mean and spread: every token is a possible sample, weighted by its
# probability (`unit02.estimator_moments`, which calls your `kl_estimate` and `exact_kl`).

# %%
distances = torch.logspace(-1.3, 0.6, 14).tolist()
table = unit02.sweep(distances)
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for kind in unit02.KINDS:
    a.plot(distances, [r[kind]["bias"] / r["exact"] for r in table], "o-", label=kind)
    b.plot(distances, [r[kind]["std"] / r["exact"] for r in table], "o-", label=kind)
a.set_ylabel("bias / KL")
b.set_ylabel("std of one sample / KL")
b.set_yscale("log")
for ax in (a, b):
    ax.set_xscale("log")
    ax.set_xlabel("distance between policy and reference")
    ax.legend()
a.set_title("relative bias")
b.set_title("relative standard deviation")
save_figure(fig, "02_estimator_bias_variance")
plt.show()
for r in table[::4]:
    print(
        f"distance {r['distance']:.2f}  KL {r['exact']:.4f}  "
        + "  ".join(
            f"{k}: bias {r[k]['bias'] / r['exact']:+.3f} std {r[k]['std'] / r['exact']:.2f}"
            for k in unit02.KINDS
        )
    )

# %% [markdown]
# Read the figure in the regime RLHF lives in — per-token KLs of 0.001–0.1 nats, the left half:
# k1 is unbiased but its single-sample noise is many times the KL itself (samples with `log r > 0`
# give *negative* k1); k2 is nearly unbiased and quiet there but its bias grows with distance; k3 is
# unbiased and almost as quiet as k2. Far apart (right half) k3's noise grows past k1's: r = π_ref/π
# becomes huge on tokens the policy rarely samples. No estimator wins everywhere.
#
# Move the slider to see the per-sample values behind the numbers (256 samples from the policy).

# %%
import ipywidgets as widgets


def show_estimators(distance=0.3):
    pol, ref = unit02.toy_pair(distance)
    samples = unit02.estimator_samples(pol, ref, 256, generator=torch.Generator().manual_seed(0))
    exact = float(kl.exact_kl(pol, ref))
    fig, ax = plt.subplots(figsize=(6, 3))
    for kind, v in samples.items():
        ax.hist(v.numpy(), bins=40, alpha=0.5, label=f"{kind}: mean {v.mean():.3f}")
    ax.axvline(exact, color="k", ls="--", label=f"exact KL {exact:.3f}")
    ax.set_xlabel("per-sample estimate")
    ax.legend(fontsize=8)
    plt.show()


widgets.interact(
    show_estimators,
    distance=widgets.FloatLogSlider(
        value=0.3, base=10, min=-1.3, max=0.6, step=0.05, continuous_update=False
    ),
)

# %%
# The same with a fixed budget of 64 samples, as a trainer sees it (mean of 200 repeats).
pol, ref = unit02.toy_pair(0.3)
exact_toy = float(kl.exact_kl(pol, ref))
g = torch.Generator().manual_seed(0)
mc_error = {kind: 0.0 for kind in unit02.KINDS}
for _ in range(200):
    for kind, v in unit02.estimator_samples(pol, ref, 64, generator=g).items():
        mc_error[kind] += abs(float(v.mean()) - exact_toy) / exact_toy / 200
print(
    f"exact KL {exact_toy:.4f}; mean relative error of a 64-sample estimate:",
    {k: round(v, 3) for k, v in mc_error.items()},
)

# %% [markdown]
# ## Forward vs reverse KL: covering or seeking
#
# KL is not symmetric. Fit a *one*-bump distribution q to a *two*-bump target p by gradient descent
# (`unit02.fit_one_mode`, which differentiates through your `exact_kl`):
#
# * **forward** KL(p‖q) averages over p: wherever p has mass and q has none costs a lot, so q
#   stretches to **cover** both modes (and puts mass between them, where p has none);
# * **reverse** KL(q‖p) averages over q: q is punished only where *it* puts mass that p lacks, so
#   it **seeks** one mode and ignores the other.
#
# RLHF's penalty KL(π‖π_ref) is a *reverse* KL in the policy: the policy may drop behaviours of
# the reference (a mode) at little cost, but pays heavily for producing text the reference finds
# very unlikely.

# %%
grid = torch.linspace(-5, 5, 201, dtype=torch.float64)
target = unit02.two_mode_target(grid)
fits = {
    d: unit02.fit_one_mode(target, grid, d, steps=100 if FAST else 400, init_mean=1.0, init_std=0.5)
    for d in ("forward", "reverse")
}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, (d, fit) in zip(axes, fits.items()):
    ax.fill_between(grid, torch.softmax(target, 0), alpha=0.3, color="gray", label="target p (two modes)")
    ax.plot(
        grid,
        torch.softmax(fit["logits"], 0),
        lw=2,
        label=f"fit q: mean {fit['mean']:.2f}, std {fit['std']:.2f}",
    )
    ax.set_title(
        {"forward": "forward KL(p||q): mode covering", "reverse": "reverse KL(q||p): mode seeking"}[d]
    )
    ax.legend(fontsize=8)
    ax.set_xlabel("x")
save_figure(fig, "02_forward_vs_reverse_kl")
plt.show()

# %% [markdown]
# ## Per-token KL on the tiny model
#
# Now a real language model. The reference is the base model; the "policy" is the same model with
# a bonus of `strength` on the logits of positive words (`unit02.SteeredPolicy`) — roughly what a
# policy looks like after a little sentiment RL. We sample completions from the policy and, for
# every token, compute both log-probabilities with your `token_logprobs` and the exact KL between
# the two next-token distributions with your `exact_kl`.

# %%
model, tokenizer = load_policy(profile=profile)
reference = frozen_copy(model)
L = profile.max_completion_length
positive_ids = unit02.word_token_ids(tokenizer, unit01.POSITIVE_WORDS)
prompts = data.load_task("sentiment", "eval", n=8 if FAST else min(32, profile.preset().eval_size))["prompt"]
samples_per_prompt = 2 if FAST else 4
strengths = [0.0, 1.0, 2.0, 3.0, 4.0]
runs = {}
for strength in course_lib.progress(strengths, desc="sampling"):
    policy = unit02.SteeredPolicy(model, positive_ids, strength)
    runs[strength] = unit02.rollout_stats(
        policy,
        reference,
        tokenizer,
        prompts,
        L,
        num_samples=samples_per_prompt,
        generator=torch.Generator().manual_seed(1),
    )
print(f"{len(positive_ids)} positive-word tokens get the bonus; e.g. {tokenizer.decode(positive_ids[:5])!r}")

# %%
st = runs[2.0]
est = {k: kl.kl_estimate(st.logp, st.ref_logp, k) for k in unit02.KINDS}
print(
    "mean per-token KL (strength 2):",
    f"exact {st.token_mean(st.exact):.4f}",
    *(f"{k} {st.token_mean(v):.4f}" for k, v in est.items()),
)
row = int(st.seq_sum(st.exact).argmax())
n_tok = int(st.mask[row].sum())
labels = [tokenizer.decode([int(t)]) for t in st.rollout.completion_ids[row, :n_tok]]
fig, (a, b) = plt.subplots(1, 2, figsize=(13, 3.5), gridspec_kw={"width_ratios": [2, 1]})
a.bar(range(n_tok), st.exact[row, :n_tok], label="exact KL of the next-token distributions")
a.plot(range(n_tok), est["k1"][row, :n_tok], "r.", label="k1 of the sampled token")
a.set_xticks(range(n_tok), labels, rotation=90, fontsize=8)
a.legend(fontsize=8)
a.set_title(f"one completion: {st.rollout.prompts[row]!r} …")
m = st.mask.bool()
per_token = {"exact": st.exact[m], **{k: v[m] for k, v in est.items()}}
b.bar(
    range(4),
    [float(v.mean()) for v in per_token.values()],
    yerr=[float(v.std()) for v in per_token.values()],
    capsize=4,
    color=["k", "C0", "C1", "C2"],
)
b.set_xticks(range(4), list(per_token))
b.set_title("all tokens: mean ± std per token")
a.set_ylabel("KL (nats)")
a.set_xlabel("sampled token")
b.set_ylabel("per-token KL (nats)")
fig.tight_layout()
save_figure(fig, "02_per_token_kl")
plt.show()
for k, v in per_token.items():
    print(
        f"{k:>5}: mean {v.mean():.4f}  std {v.std():.4f}  negative on {float((v < -1e-6).float().mean()):.0%} of tokens"
    )

# %% [markdown]
# The KL is not spread evenly: it sits on the positions where a positive word was a plausible next
# token (the model was choosing an adjective); on most other tokens the two models agree. k1 is
# *negative* on most tokens: the policy moved probability *to* positive words, so almost every other
# sampled token became slightly less likely than under the reference (log r > 0). Its per-token
# spread is the largest; k3 and k2 never go below zero and spread less; averaged over all tokens
# all of them land near the exact mean — the toy figure above, on a real model.
#
# ### Exercise 2.4 — `kl_penalized_rewards`
# PPO (unit 05) turns the sequence score into per-token rewards with the KL penalty inside:
# every response token gets `-β · k1 = -β · (logp − ref_logp)`, and the score is **added on the
# last response token**. Summed over a sequence this is `score − β · (log π(c) − log π_ref(c))`.
#
# *Hint:* find the last index with mask 1 in each row (e.g. `mask.cumsum(-1).argmax(-1)` or a
# `torch.where` over positions); zero every position outside the mask; an all-zero mask row →
# `ValueError`.

# %% tags=["exercise-test:kl_penalized_rewards"]

# %% [markdown]
# ## How β trades reward against KL
#
# Each steering strength is a different policy: stronger steering → more positive text (higher
# sentiment score) but further from the reference (higher KL). The KL-penalised objective
# `E[score − β·KL]` (your `kl_penalized_rewards`, summed per sequence) picks a different best policy
# for every β: small β buys reward at any price, large β keeps the reference.

# %%
scores = {s: torch.tensor(rewards.sentiment_reward(r.rollout.texts)) for s, r in runs.items()}
seq_kl = {s: float(r.seq_sum(r.exact).mean()) for s, r in runs.items()}
betas = [0.01, 0.03, 0.1, 0.3]
objective = {
    b: [float(unit02.penalized_return(scores[s], runs[s], b).mean()) for s in strengths] for b in betas
}
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
a.plot([seq_kl[s] for s in strengths], [float(scores[s].mean()) for s in strengths], "o-")
for s in strengths:
    a.annotate(f"strength {s:g}", (seq_kl[s], float(scores[s].mean())), fontsize=7)
a.set_xlabel("KL(policy || reference) per sequence (nats)")
a.set_ylabel("mean sentiment score")
a.set_title("reward vs KL of the steered policies")
for beta, vals in objective.items():
    (line,) = b.plot(strengths, vals, "o-", label=f"β = {beta}")
    best = max(range(len(vals)), key=vals.__getitem__)
    b.plot(strengths[best], vals[best], "*", ms=14, color=line.get_color())
b.set_xlabel("steering strength")
b.set_ylabel("E[score − β·KL]")
b.legend(fontsize=8)
b.set_title("the best policy depends on β (stars)")
fig.tight_layout()
save_figure(fig, "02_beta_tradeoff")
plt.show()


# %%
def show_beta(beta=0.05):
    st = runs[2.0]
    r = kl.kl_penalized_rewards(scores[2.0], st.logp, st.ref_logp, st.mask, beta)
    vals = [float(unit02.penalized_return(scores[s], runs[s], beta).mean()) for s in strengths]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [2, 1]})
    im = a.imshow(r[:8], aspect="auto", cmap="coolwarm", vmin=-1, vmax=1)
    a.set_title(f"per-token rewards, β = {beta:.3f} (8 sequences, strength 2)")
    a.set_xlabel("token")
    fig.colorbar(im, ax=a)
    b.plot(strengths, vals, "o-")
    b.set_xlabel("strength")
    b.set_title("E[score − β·KL]")
    plt.show()


widgets.interact(
    show_beta,
    beta=widgets.FloatLogSlider(value=0.05, base=10, min=-2.5, max=0, step=0.1, continuous_update=False),
)

# %% [markdown]
# ## "Forward" and "backward" KL rewards: what they really compute
#
# Some sentiment-GRPO exercises add a "KL term" directly to the reward, computed from the
# reference model alone:
#
# * "forward KL" reward: `kl_coef · log P_ref(completion)`,
# * "backward KL" reward: `-kl_coef · exp(-log P_ref(completion))` = `-kl_coef / P_ref(completion)`.
#
# Neither is an estimate of a KL divergence — a KL needs **both** distributions, and these terms
# never look at the policy's own log-probabilities. Per sample, exactly,
#
# $$-\log P_\text{ref}(c) \;=\; \underbrace{\log \pi(c) - \log P_\text{ref}(c)}_{\text{k1 of the sequence}} \;+\; \underbrace{(-\log \pi(c))}_{\text{surprise under the policy}},$$
#
# so in expectation the first term is `-kl_coef · (KL(π‖π_ref) + H(π))`: the cross-entropy,
# i.e. the KL **plus the policy's entropy**. It is not zero when π = π_ref, and it pays the policy
# for being *predictable* (short, common completions), not for staying close. The second term has
# no KL interpretation at all: for π = π_ref its mean is `-kl_coef · (number of possible
# completions)`, and a single unlikely sample makes it astronomically negative. Let us check.

# %%
kl_coef = 0.05


def log10_bwd(log_pref):  # log10 |kl_coef * exp(-log P_ref)|, without overflowing exp()
    return (math.log(kl_coef) - log_pref) / math.log(10)


rows = []
for s, r in runs.items():
    log_pref = r.seq_sum(r.ref_logp)  # log P_ref(completion)
    seq_k1 = r.seq_sum(kl.kl_estimate(r.logp, r.ref_logp, "k1"))
    surprise = -r.seq_sum(r.logp)  # -log pi(completion)
    assert torch.allclose(-log_pref, seq_k1 + surprise, atol=1e-3)
    rows.append(
        (
            s,
            float(seq_k1.mean()),
            float(surprise.mean()),
            float((kl_coef * log_pref).mean()),
            float(log10_bwd(log_pref).max()),
        )
    )
print(f"{'strength':>8} {'KL (k1)':>8} {'entropy':>8} {'fwd term':>9} {'log10 max |bwd term|':>21}")
for s, k, h, f, b in rows:
    print(f"{s:>8g} {k:>8.3f} {h:>8.2f} {f:>9.3f} {b:>21.1f}")

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for s, r in runs.items():
    log_pref = r.seq_sum(r.ref_logp)
    a.scatter(
        r.seq_sum(kl.kl_estimate(r.logp, r.ref_logp, "k1")), kl_coef * log_pref, s=6, label=f"strength {s:g}"
    )
    b.hist(log10_bwd(log_pref).numpy(), bins=30, histtype="step", lw=1.5, label=f"strength {s:g}")
a.set_xlabel("sequence KL sample (k1, nats)")
a.set_ylabel("kl_coef · log P_ref(c)")
a.set_title('"forward KL" reward vs an actual KL sample')
a.legend(fontsize=7, markerscale=2)
b.set_xlabel("log10 |kl_coef · exp(-log P_ref(c))|")
b.set_ylabel("completions")
b.set_title('"backward KL" reward: orders of magnitude')
b.legend(fontsize=7)
fig.tight_layout()
save_figure(fig, "02_likelihood_terms")
plt.show()

# %% [markdown]
# The "forward" term is dominated by the completion's length and entropy (tens of nats) and barely
# moves while the true KL grows from 0 to several nats; the "backward" term spans about twenty orders
# of magnitude (right panel: from 10^1 to over 10^20 among one batch), so one sample decides the whole batch. If you want a KL penalty inside a reward
# function, use k1 or k3 of the sequence — which needs the policy's log-probabilities too — or let
# the trainer add it (PPO's `kl_penalized_rewards`, GRPO's β·k3 in the loss).
#
# ## Headline numbers

# %%
toy = unit02.estimator_moments(*unit02.toy_pair(0.3))
st = runs[2.0]
report_metrics(
    "02",
    {
        "toy_rel_std_k1_to_k3": (toy["k1"]["std"] / toy["exact"], toy["k3"]["std"] / toy["exact"]),
        "toy_mc64_rel_error_k1_to_k3": (mc_error["k1"], mc_error["k3"]),
        "tiny_token_kl_exact": (runs[0.0].token_mean(runs[0.0].exact), st.token_mean(st.exact)),
        "tiny_k3_abs_error": (
            abs(st.token_mean(est["k1"]) - st.token_mean(st.exact)),
            abs(st.token_mean(est["k3"]) - st.token_mean(st.exact)),
        ),
        "sentiment_steered": (float(scores[0.0].mean()), float(scores[2.0].mean())),
    },
)

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_k1_negative"]
# A single sample of k1 can be negative although KL ≥ 0. When does that happen, and what does a
# negative per-token penalty do to a token's reward in `kl_penalized_rewards`? Why is k3 never
# negative, and why is it still unbiased?

# %% [markdown] tags=["answer:q_direction"]
# RLHF penalises KL(π‖π_ref), a reverse KL in the policy. Using the mode-covering/mode-seeking
# figure, explain what this lets the policy do cheaply and what it makes expensive. Would
# KL(π_ref‖π) be practical to estimate during RL? (Think about whose samples you have.)

# %% [markdown] tags=["answer:q_likelihood_terms"]
# *Predict, then run* (add a cell). A policy trained with the "forward KL" reward
# `kl_coef · log P_ref(completion)` is paid for completions the reference finds likely. (a) Predict:
# does sampling from the *base* model at temperature 0.5 instead of 1.0 raise or lower the mean of
# this term, and does it change the true KL to the reference (the base model *is* the reference)?
# Then measure it: sample 4 completions per prompt with `sampling.sample(model, tokenizer, prompts,
# max_new_tokens=L, num_samples=4, temperature=t)` for t = 1.0 and 0.5, and compute the mean of
# `kl_coef * log P_ref` with `kl.token_logprobs` on `sampling.completion_logits(reference, rollout)`
# (sum over each completion's tokens with `rollout.completion_mask`). (b) Use your numbers to say
# what this term rewards that a KL penalty does not, and what a policy trained with it would
# drift to. (c) Write the one-line per-sequence reward term that *does* estimate the KL.
