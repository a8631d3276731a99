"""Solutions for unit 06 — GRPO."""

from __future__ import annotations

import torch

from course_lib.core.utils import check_ndim, check_same_shape
from course_lib.grpo import LOSS_TYPES, SCALES
from solutions.kl import kl_estimate, token_logprobs
from solutions.sft import masked_mean


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("group_advantages", "rewards", rewards, 1, "[N]")
    if scale not in SCALES:
        raise ValueError(f"group_advantages: unknown scale {scale!r}; use one of {SCALES}")
    if group_size < 2:
        raise ValueError(f"group_advantages: group_size must be >= 2, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(
            f"group_advantages: {rewards.numel()} rewards do not split into groups of {group_size}"
        )
    groups = rewards.view(-1, group_size)
    adv = groups - groups.mean(-1, keepdim=True)
    if scale == "group":
        adv = adv / (groups.std(-1, unbiased=True, keepdim=True) + eps)
    elif scale == "batch":
        adv = adv / (rewards.std(unbiased=True) + eps)
    return adv.reshape(-1)


def _groups(fn: str, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    check_ndim(fn, "rewards", rewards, 1, "[N]")
    if group_size < 2:
        raise ValueError(f"{fn}: group_size must be >= 2, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(f"{fn}: {rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    return rewards.view(-1, group_size)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    groups = _groups("rloo_advantages", rewards, group_size)
    baseline = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - baseline).reshape(-1)


def reinforce_pp_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    groups = _groups("reinforce_pp_advantages", rewards, group_size)
    centred = (groups - groups.mean(-1, keepdim=True)).reshape(-1)
    return centred / (centred.std(unbiased=True) + eps)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"grpo_loss: unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
    check_same_shape("grpo_loss", logp=logp, old_logp=old_logp, mask=mask)
    check_ndim("grpo_loss", "logp", logp, 2, "[B, T]")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"grpo_loss: advantages{list(advantages.shape)} must be [B] = [{logp.shape[0]}]")
    ratio = torch.exp(logp - old_logp)
    A = advantages.unsqueeze(-1)
    per_token = -torch.minimum(ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A)
    if beta != 0:
        if ref_logp is None:
            raise ValueError("grpo_loss: ref_logp is None but beta != 0")
        check_same_shape("grpo_loss", logp=logp, ref_logp=ref_logp)
        per_token = per_token + beta * kl_estimate(logp, ref_logp, "k3")
    m = mask.to(per_token.dtype)
    empty = (m.sum(-1) == 0) if loss_type == "grpo" else (m.sum() == 0).reshape(1)
    if loss_type != "dr_grpo" and empty.any():
        rows = torch.nonzero(empty).flatten().tolist() if loss_type == "grpo" else "every row"
        raise ValueError(
            f"grpo_loss: all-zero mask in {rows} of mask{list(mask.shape)}: the "
            f"'{loss_type}' average over completion tokens is undefined"
        )
    if loss_type == "grpo":
        return masked_mean(per_token, m, dim=-1).mean()
    if loss_type in ("bnpo", "dapo"):
        return masked_mean(per_token, m)
    L = max_completion_length if max_completion_length is not None else mask.shape[-1]
    return (per_token * m).sum() / (logp.shape[0] * L)


def grpo_step(
    model,
    optimizer: torch.optim.Optimizer,
    rollout,
    advantages: torch.Tensor,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
) -> dict:
    # COURSE-SOLUTION-CANARY-7f3a9c
    from course_lib.core.sampling import completion_logits

    ids = rollout.completion_ids
    if advantages.shape != ids.shape[:1]:
        raise ValueError(
            f"grpo_step: advantages{list(advantages.shape)} must be [B] = "
            f"[{ids.shape[0]}] (one per completion of the rollout)"
        )
    for name, t in (("old_logp", old_logp), ("ref_logp", ref_logp)):
        if t is not None and t.shape != ids.shape:
            raise ValueError(
                f"grpo_step: {name}{list(t.shape)} must have the shape of "
                f"rollout.completion_ids{list(ids.shape)}"
            )
    model.train()
    logp = token_logprobs(completion_logits(model, rollout, temperature), ids)
    if old_logp is None:
        old_logp = logp.detach()
    loss = grpo_loss(
        logp,
        old_logp,
        ref_logp,
        advantages.to(logp.dtype),
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
    return {"loss": loss.item(), "grad_norm": float(grad_norm), "logp": logp.detach()}


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("high_entropy_mask", entropies=entropies, mask=mask)
    check_ndim("high_entropy_mask", "entropies", entropies, 2, "[B, T]")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"high_entropy_mask: quantile must be in (0, 1], got {quantile}")
    keep = mask.bool()
    real = entropies[keep].float()
    if real.numel() == 0:
        return torch.zeros_like(keep)
    threshold = torch.quantile(real, 1.0 - quantile)
    return (entropies >= threshold) & keep
