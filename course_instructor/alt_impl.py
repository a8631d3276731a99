"""A second, numerically different but correct implementation of the PPO (unit 05) and GRPO (unit 06)
exercises -- what a student's own code looks like to the trainers: same maths, other rounding.

Differences from ``solutions/``: everything is computed in float64 and cast back to the input's
dtype; sums run in another order (GAE as a reversed cumulative sum of discounted TD errors instead
of the backward recursion, masked means as per-row sums first, variances from ``E[x^2] - E[x]^2``
corrections, log-probs from ``logits - logsumexp`` instead of ``log_softmax``). ``install()`` puts
them in place of the active functions (call ``course_lib.use_solutions()`` first, for the other
units' exercises); ``course seeds --impl alt`` and ``tests/trainers/test_seeds.py`` use it. Instructor-only.
"""

from __future__ import annotations

import torch

F64 = torch.float64


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the entries where `m` is 1: per-row sums first, then the total (float64)."""
    return (x * m).sum(-1).sum() / m.sum()


def _token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids) [B, T] from logits [B, T, V], as logit - logsumexp in float64."""
    z = logits.to(F64)
    return z.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


# --------------------------------------------------------------------------- PPO (unit 05)
def compute_gae(rewards, values, mask, gamma: float = 1.0, lam: float = 0.95):
    """GAE as A_t = sum_k (gamma*lam)^k delta_{t+k}: a matrix of discounts times the TD errors."""
    m = mask.to(F64)
    r, v = rewards.detach().to(F64) * m, values.detach().to(F64) * m
    next_v = torch.cat([v[..., 1:], torch.zeros_like(v[..., :1])], dim=-1)
    delta = r + gamma * next_v - v  # [B, T]
    T = r.shape[-1]
    k = torch.arange(T, dtype=F64)
    gap = k[None, :] - k[:, None]  # [t, s] = s - t
    disc = torch.where(gap >= 0, (gamma * lam) ** gap.clamp(min=0), torch.zeros((), dtype=F64))
    adv = (delta @ disc.T) * m  # A[:, t] = sum_s disc[t, s] delta[:, s]
    return adv.to(rewards.dtype), (adv + v).to(rewards.dtype)


def whiten(x, mask, shift_mean: bool = True):
    """(x - mean) / std over the masked entries, Bessel's std from sum of squares (float64)."""
    m = mask.to(F64)
    n = m.sum()
    if n < 2:
        raise ValueError(f"whiten: needs at least 2 masked entries for a Bessel variance, got {int(n)}")
    xd = x.to(F64)
    mean = (xd * m).sum(-1).sum() / n
    var = ((xd * xd * m).sum() - n * mean * mean) / (n - 1)
    out = (xd - mean) / torch.sqrt(var.clamp(min=0) + 1e-8)
    return (out if shift_mean else out + mean).to(x.dtype)


def ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps: float = 0.2):
    """max(-A rho, -A clip(rho)) written as -min(A rho, A clip(rho)), in float64."""
    ratio = torch.exp(logp.to(F64) - old_logp.to(F64))
    a = advantages.to(F64)
    surrogate = torch.minimum(a * ratio, a * ratio.clamp(1 - clip_eps, 1 + clip_eps))
    m = mask.to(F64)
    loss = -_masked_mean(surrogate, m)
    clipped = (a * ratio.clamp(1 - clip_eps, 1 + clip_eps) < a * ratio).to(F64)
    return loss.to(logp.dtype), _masked_mean(clipped, m).detach().to(logp.dtype)


def ppo_value_loss(values, old_values, returns, mask, clip_range: float = 0.2):
    """0.5 * masked mean of max((V - R)^2, (V_clip - R)^2), from the absolute errors (float64)."""
    v, old, ret = values.to(F64), old_values.to(F64), returns.to(F64)
    v_clip = old + (v - old).clamp(-clip_range, clip_range)
    err = torch.maximum((v - ret).abs(), (v_clip - ret).abs())
    return (0.5 * _masked_mean(err * err, mask.to(F64))).to(values.dtype)


def entropy_from_logits(logits):
    """-sum p log p with log p = z - logsumexp(z) (float64)."""
    z = logits.to(F64)
    logp = z - torch.logsumexp(z, dim=-1, keepdim=True)
    return -(logp.exp() * logp).sum(-1).to(logits.dtype)


def ppo_minibatch_loss(
    logits,
    values,
    batch,
    clip_range: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 0.1,
    entropy_coef: float = 0.0,
):
    """The PPO loss of one minibatch, with the float64 pieces above."""
    from course_lib.ppo import MINIBATCH_KEYS

    missing = [k for k in MINIBATCH_KEYS if k not in batch]
    if missing:
        raise KeyError(f"ppo_minibatch_loss: the batch has no {missing}")
    m = batch["mask"].to(F64)
    logp = _token_logprobs(logits, batch["response_ids"])  # float64 [B, T]
    old = batch["old_logprobs"].to(F64)
    pl, cf = ppo_policy_loss(logp, old, batch["advantages"].to(F64), m, clip_range)
    vl = ppo_value_loss(
        values.to(F64), batch["old_values"].to(F64), batch["returns"].to(F64), m, cliprange_value
    )
    ent = _masked_mean(entropy_from_logits(logits.to(F64)), m)
    loss = pl + vf_coef * vl - entropy_coef * ent
    log_ratio = logp - old  # k3 of (old || new): exp(-d) - 1 + d with d = logp_old - logp
    approx_kl = _masked_mean(torch.expm1(log_ratio) - log_ratio, m)
    stats = {"policy_loss": pl, "value_loss": vl, "entropy": ent, "clip_fraction": cf, "approx_kl": approx_kl}
    return loss.to(logits.dtype), {k: v.detach().to(logits.dtype) for k, v in stats.items()}


# --------------------------------------------------------------------------- GRPO (unit 06)
def group_advantages(rewards, group_size: int, scale: str = "group", eps: float = 1e-4):
    """r - group mean, divided by the group's (or the batch's) Bessel std from sums (float64)."""
    from course_lib.grpo import SCALES

    if scale not in SCALES:
        raise ValueError(f"group_advantages: unknown scale {scale!r}")
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"group_advantages: {rewards.numel()} rewards, group_size {group_size}")
    g = rewards.to(F64).reshape(-1, group_size)
    centred = g - g.sum(-1, keepdim=True) / group_size
    if scale == "group":
        centred = centred / (torch.sqrt((centred * centred).sum(-1, keepdim=True) / (group_size - 1)) + eps)
    elif scale == "batch":
        flat = rewards.to(F64)
        dev = flat - flat.sum() / flat.numel()
        centred = centred / (torch.sqrt((dev * dev).sum() / (flat.numel() - 1)) + eps)
    return centred.reshape(-1).to(rewards.dtype)


def grpo_loss(
    logp,
    old_logp,
    ref_logp,
    advantages,
    mask,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
):
    """The GRPO per-token loss (clipped surrogate + beta * k3) and its four reductions, float64."""
    from course_lib.grpo import LOSS_TYPES

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"grpo_loss: unknown loss_type {loss_type!r}")
    lp = logp.to(F64)
    ratio = torch.exp(lp - old_logp.to(F64))
    a = advantages.to(F64)[:, None]
    per_token = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    if beta != 0:
        if ref_logp is None:
            raise ValueError("grpo_loss: ref_logp is None but beta != 0")
        d = ref_logp.to(F64) - lp
        per_token = per_token + beta * (torch.expm1(d) - d)
    m = mask.to(F64)
    if loss_type == "grpo":
        out = ((per_token * m).sum(-1) / m.sum(-1)).sum() / lp.shape[0]
    elif loss_type in ("bnpo", "dapo"):
        out = _masked_mean(per_token, m)
    else:
        L = max_completion_length if max_completion_length is not None else mask.shape[-1]
        out = (per_token * m).sum(-1).sum() / (lp.shape[0] * L)
    return out.to(logp.dtype)


def grpo_step(
    model,
    optimizer,
    rollout,
    advantages,
    old_logp=None,
    ref_logp=None,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
):
    """One optimizer step on a rollout: float64 log-probs and loss, the same update."""
    from course_lib.core.sampling import completion_logits

    model.train()
    logits = completion_logits(model, rollout, temperature)
    logp64 = _token_logprobs(logits, rollout.completion_ids)
    if old_logp is None:
        old_logp = logp64.detach()
    loss = grpo_loss(
        logp64,
        old_logp,
        ref_logp,
        advantages,
        rollout.completion_mask,
        clip_eps=clip_eps,
        beta=beta,
        loss_type=loss_type,
        max_completion_length=max_completion_length,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return {"loss": float(loss), "grad_norm": float(grad_norm), "logp": logp64.detach().to(logits.dtype)}


PPO_FUNCTIONS = (
    "compute_gae",
    "whiten",
    "ppo_policy_loss",
    "ppo_value_loss",
    "entropy_from_logits",
    "ppo_minibatch_loss",
)
GRPO_FUNCTIONS = ("group_advantages", "grpo_loss", "grpo_step")


def install() -> None:
    """Bind these functions as ``course_lib.ppo.*`` / ``course_lib.grpo.*`` (the trainers call the
    exercises through their modules). ``course_lib.use_solutions()`` restores the solutions."""
    import course_lib.grpo
    import course_lib.ppo

    for mod, names in ((course_lib.ppo, PPO_FUNCTIONS), (course_lib.grpo, GRPO_FUNCTIONS)):
        for name in names:
            setattr(mod, name, globals()[name])
