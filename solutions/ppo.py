"""Solutions for unit 05 — PPO."""

from __future__ import annotations

import torch

from course_lib.core.utils import check_same_shape
from solutions.sft import masked_mean


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("compute_gae", rewards=rewards, values=values, mask=mask)
    m = mask.to(rewards.dtype)
    r, v = rewards.detach() * m, values.detach() * m
    T = r.shape[-1]
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[..., 0])
    for t in reversed(range(T)):
        next_v = v[..., t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = r[..., t] + gamma * next_v - v[..., t]
        last = delta + gamma * lam * last
        adv[..., t] = last
    adv = adv * m
    return adv, adv + v


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("whiten", x=x, mask=mask)
    m = mask.to(x.dtype)
    n = m.sum()
    if n < 2:
        raise ValueError(f"whiten: needs at least 2 masked entries for a Bessel variance, got {int(n)}")
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / (n - 1)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("ppo_policy_loss", logp=logp, old_logp=old_logp, advantages=advantages, mask=mask)
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).to(logp.dtype), mask).detach()
    return loss, clip_frac


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("ppo_value_loss", values=values, old_values=old_values, returns=returns, mask=mask)
    v_clip = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    losses = torch.maximum((values - returns) ** 2, (v_clip - returns) ** 2)
    return 0.5 * masked_mean(losses, mask)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def ppo_minibatch_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    batch: dict[str, torch.Tensor],
    clip_range: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 0.1,
    entropy_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    from course_lib.core.utils import check_ndim
    from course_lib.ppo import MINIBATCH_KEYS
    from solutions.kl import kl_estimate, token_logprobs

    missing = [k for k in MINIBATCH_KEYS if k not in batch]
    if missing:
        raise KeyError(
            f"ppo_minibatch_loss: the batch has no {missing} (keys: {sorted(batch)}); "
            f"it needs {list(MINIBATCH_KEYS)}"
        )
    check_ndim("ppo_minibatch_loss", "logits", logits, 3, "[B, T, V]")
    if values.shape != logits.shape[:2]:
        raise ValueError(
            f"ppo_minibatch_loss: values{list(values.shape)} must be [B, T] = "
            f"{list(logits.shape[:2])} to match logits{list(logits.shape)}"
        )
    mask = batch["mask"]
    logp = token_logprobs(logits, batch["response_ids"])
    policy_loss, clip_fraction = ppo_policy_loss(
        logp, batch["old_logprobs"], batch["advantages"], mask, clip_range
    )
    value_loss = ppo_value_loss(values, batch["old_values"], batch["returns"], mask, cliprange_value)
    entropy = masked_mean(entropy_from_logits(logits), mask)
    loss = policy_loss + vf_coef * value_loss - entropy_coef * entropy
    approx_kl = masked_mean(kl_estimate(batch["old_logprobs"], logp, "k3"), mask)
    stats = {
        "policy_loss": policy_loss.detach(),
        "value_loss": value_loss.detach(),
        "entropy": entropy.detach(),
        "clip_fraction": clip_fraction.detach(),
        "approx_kl": approx_kl.detach(),
    }
    return loss, stats
