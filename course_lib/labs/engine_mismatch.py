"""The generation engine is not the trainer: sampling numerics vs training numerics, on CPU.

At scale, completions are sampled by an inference engine (vLLM: bf16 weights, other kernels,
other batching) while the trainer recomputes the log-probs in its own numerics. The two
disagree a little on every token, so "on-policy" samples are really drawn from a slightly
different policy mu. Truncated importance sampling (TIS; TRL's
``vllm_importance_sampling_correction=True`` with ``vllm_importance_sampling_mode=
"token_truncate"`` and cap ``vllm_importance_sampling_clip_max``) multiplies each token's
policy-gradient term by ``w = min(pi_train(token) / mu_engine(token), C)``.

* :func:`engine_copy` -- the "engine": a copy of the policy with bf16-rounded weights (what a
  bf16 engine holds) or with weights perturbed by relative Gaussian noise (a cruder stand-in
  for kernel / batching differences).
* :func:`logprob_gap` -- sample with the engine (the course's sampler), score the same tokens
  with both models (``kl.token_logprobs``, your exercise 2.1): per-token gap, TIS weights.
* :func:`tis_weights` -- TRL's token_truncate weights.
* :func:`policy_gradient` -- the gradient of *your* ``grpo.grpo_loss`` (exercise 6.2,
  ``beta=0``) with per-token importance weights.
* :func:`toy_bias` -- one token position, a categorical policy: the exact expected gradient
  on-policy, from engine samples without correction, and with TIS for several caps.
* :func:`plot` -- the gap histogram and the gradient error against the cap.

Nothing here implements an exercise: log-probs, advantages and the loss come from your
functions, called through their modules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from course_lib import grpo, kl
from course_lib.core import sampling

ENGINES = ("bf16", "noise")


# --------------------------------------------------------------------------- the engine
def engine_copy(
    model: torch.nn.Module, kind: str = "bf16", scale: float = 0.02, seed: int = 0
) -> torch.nn.Module:
    """A frozen copy of `model` with the engine's numerics.

    ``"bf16"``: every weight rounded to bfloat16 (8 mantissa bits) and back to float32;
    ``"noise"``: every weight w becomes ``w + scale * std(w) * N(0, 1)`` (seeded).
    """
    if kind not in ENGINES:
        raise ValueError(f"engine_copy: kind must be one of {ENGINES}, got {kind!r}")
    if scale < 0:
        raise ValueError(f"engine_copy: scale must be >= 0, got {scale}")
    eng = copy.deepcopy(model).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(eng.named_parameters(), key=lambda kv: kv[0]):
            if kind == "bf16":
                p.copy_(p.to(torch.bfloat16).to(p.dtype))
            elif p.numel() > 1:
                noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p)
                p.add_(scale * p.float().std().item() * noise)
            p.requires_grad_(False)
    return eng


def tis_weights(
    train_logp: torch.Tensor, engine_logp: torch.Tensor, mask: torch.Tensor, cap: float = 2.0
) -> torch.Tensor:
    """Per-token truncated importance weights ``min(exp(train_logp - engine_logp), cap)``, 0
    where `mask` is 0. All [B, T]; `cap` >= 1 (TRL: ``vllm_importance_sampling_clip_max``)."""
    if cap < 1:
        raise ValueError(f"tis_weights: cap must be >= 1 (a cap below 1 shrinks every token), got {cap}")
    if not (train_logp.shape == engine_logp.shape == mask.shape):
        raise ValueError(
            f"tis_weights: shapes differ: train_logp {tuple(train_logp.shape)}, "
            f"engine_logp {tuple(engine_logp.shape)}, mask {tuple(mask.shape)}"
        )
    w = torch.exp(train_logp - engine_logp).clamp(max=cap)
    return w * mask


# --------------------------------------------------------------------------- the LM demo
@dataclass
class Gap:
    """What :func:`logprob_gap` measured. Tensors are [B, T] over completion tokens."""

    rollout: sampling.Rollout
    train_logp: torch.Tensor
    engine_logp: torch.Tensor
    weights: torch.Tensor  # TIS weights (0 off the mask)
    cap: float

    def stats(self) -> dict:
        m = self.rollout.completion_mask.bool()
        d = (self.train_logp - self.engine_logp)[m]
        raw = torch.exp(d)
        return {
            "tokens": int(m.sum()),
            "mean_abs_gap": d.abs().mean().item(),
            "max_abs_gap": d.abs().max().item(),
            "mean_gap": d.mean().item(),
            "frac_gap_over_0.1": (d.abs() > 0.1).float().mean().item(),
            "mean_ratio": raw.mean().item(),
            "max_ratio": raw.max().item(),
            "frac_capped": (raw > self.cap).float().mean().item(),
            "mean_weight": self.weights[m].mean().item(),
        }


def logprob_gap(
    model,
    engine,
    tokenizer,
    prompts: list[str],
    num_samples: int = 4,
    max_new_tokens: int = 24,
    cap: float = 2.0,
    seed: int = 0,
) -> Gap:
    """Sample `num_samples` completions per prompt with the *engine*, then score the same
    tokens with the trainer's model and with the engine (``kl.token_logprobs``)."""
    g = torch.Generator().manual_seed(seed)
    r = sampling.sample(
        engine, tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=num_samples, generator=g
    )
    with torch.no_grad():
        train = kl.token_logprobs(sampling.completion_logits(model.eval(), r), r.completion_ids)
        eng = kl.token_logprobs(sampling.completion_logits(engine, r), r.completion_ids)
    mask = r.completion_mask.float()
    return Gap(r, train * mask, eng * mask, tis_weights(train * mask, eng * mask, mask, cap), cap)


def policy_gradient(
    logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    loss_type: str = "bnpo",
) -> torch.Tensor:
    """The loss of your ``grpo.grpo_loss`` (beta 0) with per-token importance weights.

    A weight w enters as an importance ratio: ``old_logp = logp - log w`` makes
    ``rho = exp(logp - old_logp)`` equal w with gradient ``w * grad log pi`` (the clip range is
    opened wide so that rho = w is not clipped). ``weights=None`` is the uncorrected loss.
    Differentiate the returned scalar to get the update's direction.
    """
    old = logp.detach()
    if weights is not None:
        old = old - torch.log(weights.clamp(min=1e-30)) * mask
    return grpo.grpo_loss(logp, old, None, advantages, mask, clip_eps=1e9, beta=0.0, loss_type=loss_type)


# --------------------------------------------------------------------------- exact toy
def toy_bias(vocab: int = 32, mismatch: float = 1.0, caps=(1.0, 1.5, 2.0, 5.0, 1e9), seed: int = 0) -> dict:
    """One token from a categorical policy pi = softmax(theta) (the trainer) while the engine
    samples from mu = softmax(theta + mismatch * noise); reward r(a) ~ N(0, 1), advantage
    ``A = r - E_pi[r]``. Expected gradients of ``E[w(a) A(a) log pi(a)]`` over a ~ mu, exactly
    (every token is a row of the batch, weighted by its probability, through
    :func:`policy_gradient`): ``on_policy`` (a ~ pi), ``uncorrected`` (a ~ mu, w = 1) and
    ``tis[cap]`` (w = min(pi/mu, cap)). Returns those gradients [V], their errors
    ``|g - g_on_policy| / |g_on_policy|`` (the bias of a many-sample average) and the spread of
    a single sample's gradient (the noise; it grows with the cap: untruncated IS has no bias but
    the most noise).
    """
    g = torch.Generator().manual_seed(seed)
    theta0 = torch.randn(vocab, generator=g, dtype=torch.float64)
    mu_logits = theta0 + mismatch * torch.randn(vocab, generator=g, dtype=torch.float64)
    r = torch.randn(vocab, generator=g, dtype=torch.float64)

    def expected_grad(sample_logits: torch.Tensor | None, cap: float | None) -> torch.Tensor:
        theta = theta0.clone().requires_grad_(True)
        logp_all = torch.log_softmax(theta, -1)
        pi = logp_all.detach().exp()
        probs = pi if sample_logits is None else torch.softmax(sample_logits, -1)
        adv = r - (pi * r).sum()
        # B = V rows of one token each: row a stands for token a, drawn with probability probs[a]
        tokens = torch.arange(vocab).unsqueeze(1)
        logp = kl.token_logprobs(logp_all.expand(vocab, vocab).unsqueeze(1), tokens)  # [V, 1]
        mask = torch.ones_like(logp)
        w = None
        if cap is not None:
            w = tis_weights(logp.detach(), torch.log(probs).unsqueeze(1), mask, cap)
        # grpo_loss averages over rows: scale each row's advantage by V * probs[a]
        loss = policy_gradient(logp, (vocab * probs * adv).to(logp.dtype), mask, w, loss_type="grpo")
        (grad,) = torch.autograd.grad(loss, theta)
        return -grad  # the ascent direction of the expected advantage-weighted log-prob

    on = expected_grad(None, None)
    unc = expected_grad(mu_logits, None)
    tis = {c: expected_grad(mu_logits, c) for c in caps}
    err = lambda x: ((x - on).norm() / on.norm()).item()
    pi = torch.softmax(theta0, -1)
    mu = torch.softmax(mu_logits, -1)
    # the price of a large cap: the spread of ONE sample's gradient w(a) A(a) (e_a - pi), a ~ mu
    # (the gradient of log softmax at token a is e_a - pi), relative to |g_on_policy|
    adv = r - (pi * r).sum()
    per_sample = (torch.eye(vocab, dtype=torch.float64) - pi) * adv.unsqueeze(1)  # [a, V]

    def spread(cap):
        w = torch.ones(vocab, dtype=torch.float64) if cap is None else (pi / mu).clamp(max=cap)
        x = per_sample * w.unsqueeze(1)
        mean = (mu.unsqueeze(1) * x).sum(0)
        return (((mu * ((x - mean) ** 2).sum(1)).sum()).sqrt() / on.norm()).item()

    return {
        "on_policy": on,
        "uncorrected": unc,
        "tis": tis,
        "error_uncorrected": err(unc),
        "error_tis": {c: err(v) for c, v in tis.items()},
        "spread_uncorrected": spread(None),
        "spread_tis": {c: spread(c) for c in caps},
        "kl_pi_mu": (pi * (pi.log() - mu.log())).sum().item(),
        "max_ratio": (pi / mu).max().item(),
    }


# --------------------------------------------------------------------------- figure
def plot(gap: Gap, toy: dict):
    """Left: the per-token log-prob gap (trainer - engine) of the sampled tokens; right: the
    error of the expected gradient against the cap (toy), uncorrected as a line."""
    import matplotlib.pyplot as plt

    m = gap.rollout.completion_mask.bool()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.hist((gap.train_logp - gap.engine_logp)[m].numpy(), bins=40)
    a.set(
        xlabel="log pi_train - log mu_engine (per sampled token)",
        ylabel="tokens",
        title=f"engine vs trainer ({int(m.sum())} tokens)",
    )
    caps = [c for c in toy["error_tis"] if c < 1e6]
    b.plot(caps, [toy["error_tis"][c] for c in caps], "o-", label="TIS, cap C")
    b.axhline(toy["error_uncorrected"], color="r", ls="--", label="no correction")
    big = [c for c in toy["error_tis"] if c >= 1e6]
    if big:
        b.axhline(toy["error_tis"][big[0]], color="g", ls=":", label="untruncated IS")
    b.set(
        xlabel="cap C",
        ylabel="|g - g_on-policy| / |g_on-policy|",
        title=f"toy: KL(pi||mu) = {toy['kl_pi_mu']:.2f}",
    )
    b.legend()
    fig.tight_layout()
    return fig


def demo(
    model=None,
    tokenizer=None,
    kind: str = "noise",
    scale: float = 0.05,
    cap: float = 2.0,
    n_prompts: int = 8,
    seed: int = 0,
    figure: str | None = None,
) -> dict:
    """The whole demo on the tiny (or given) model: gap statistics for the engine `kind`, TIS
    statistics, the change of the GRPO update that TIS makes, the toy gradient errors. With
    `figure`, saves the plot there (png)."""
    from course_lib.core import data
    from course_lib.core.models import load_policy

    if model is None:
        model, tokenizer = load_policy(device="cpu")
    prompts = list(data.load_task("sentiment", "train", n=n_prompts, seed=seed)["prompt"])
    eng = engine_copy(model, kind, scale, seed)
    gap = logprob_gap(model, eng, tokenizer, prompts, cap=cap, seed=seed)
    r = gap.rollout
    # one GRPO update direction on the engine's samples, with and without TIS
    rewards = torch.randn(len(r), generator=torch.Generator().manual_seed(seed))
    adv = grpo.group_advantages(rewards, 4, scale="group")
    grads = {}
    for name, w in (("uncorrected", None), ("tis", gap.weights)):
        model.zero_grad()
        model.train()
        logp = kl.token_logprobs(sampling.completion_logits(model, r), r.completion_ids)
        policy_gradient(logp, adv, r.completion_mask.float(), w).backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad()
    model.eval()
    cos = torch.nn.functional.cosine_similarity(grads["uncorrected"], grads["tis"], dim=0).item()
    toy = toy_bias(seed=seed)
    out = {
        "engine": kind,
        "scale": scale,
        "cap": cap,
        **gap.stats(),
        "update_cosine_tis_vs_uncorrected": cos,
        "update_norm_ratio": (grads["tis"].norm() / grads["uncorrected"].norm()).item(),
        "toy_error_uncorrected": toy["error_uncorrected"],
        "toy_error_tis": toy["error_tis"],
        "toy_kl": toy["kl_pi_mu"],
    }
    if figure:
        fig = plot(gap, toy)
        fig.savefig(figure, dpi=80, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out


if __name__ == "__main__":  # python -m course_lib.labs.engine_mismatch [noise|bf16]
    import json
    import sys

    res = demo(kind=sys.argv[1] if len(sys.argv) > 1 else "noise", figure="engine_mismatch.png")
    print(
        json.dumps(
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in res.items()
                if not isinstance(v, dict)
            },
            indent=1,
        )
    )
    print(
        "toy gradient error with TIS, by cap:",
        {c: round(e, 4) for c, e in res["toy_error_tis"].items()},
        "uncorrected:",
        round(res["toy_error_uncorrected"], 4),
    )
