"""Solutions for unit 09 — reasoning with verifiable rewards (RLVR)."""

from __future__ import annotations

import re

import torch

from course_lib.core.utils import check_ndim, check_same_shape
from course_lib.rlvr import LEVELS, LOSS_TYPES, TAGS
from solutions.kl import kl_estimate
from solutions.sft import masked_mean

_FORMAT = re.compile(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def think_format_reward(completion: str) -> float:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if not isinstance(completion, str):
        raise TypeError(f"think_format_reward: completion must be a str, got {type(completion).__name__}")
    m = _FORMAT.fullmatch(completion)
    if m is None:
        return 0.0
    ok = all(part.strip() and not any(tag in part for tag in TAGS) for part in m.groups())
    return 1.0 if ok else 0.0


def answer_reward(completion: str, answer: str) -> float:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if not isinstance(completion, str):
        raise TypeError(f"answer_reward: completion must be a str, got {type(completion).__name__}")
    blocks = _ANSWER.findall(completion)
    if not blocks:
        return 0.0
    return 1.0 if blocks[-1].strip() == str(answer).strip() else 0.0


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("sequence_log_ratio", logp=logp, old_logp=old_logp, mask=mask)
    check_ndim("sequence_log_ratio", "logp", logp, 2, "[B, T]")
    empty = mask.sum(-1) == 0
    if empty.any():
        raise ValueError(
            f"sequence_log_ratio: all-zero mask in rows {torch.nonzero(empty).flatten().tolist()} of "
            f"mask{list(mask.shape)}: a completion without tokens has no length-normalised ratio"
        )
    return masked_mean(logp - old_logp, mask, dim=-1)


def rlvr_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    level: str = "token",
    loss_type: str = "grpo",
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    max_completion_length: int | None = None,
) -> tuple[torch.Tensor, dict]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    name = "rlvr_policy_loss"
    if level not in LEVELS:
        raise ValueError(f"{name}: unknown level {level!r}; use one of {LEVELS}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"{name}: unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
    if eps_low < 0 or eps_high < 0:
        raise ValueError(
            f"{name}: eps_low and eps_high must be >= 0, got eps_low={eps_low}, eps_high={eps_high}"
        )
    check_same_shape(name, logp=logp, old_logp=old_logp, mask=mask)
    check_ndim(name, "logp", logp, 2, "[B, T]")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"{name}: advantages{list(advantages.shape)} must be [B] = [{logp.shape[0]}]")
    if beta != 0:
        if ref_logp is None:
            raise ValueError(f"{name}: ref_logp is None but beta != 0")
        check_same_shape(name, logp=logp, ref_logp=ref_logp)
    m = mask.to(logp.dtype)
    if loss_type == "grpo" and (m.sum(-1) == 0).any():
        rows = torch.nonzero(m.sum(-1) == 0).flatten().tolist()
        raise ValueError(
            f"{name}: all-zero mask in rows {rows} of mask{list(mask.shape)}: 'grpo' is undefined"
        )
    if loss_type in ("dapo", "cispo") and m.sum() == 0:
        raise ValueError(f"{name}: the whole mask{list(mask.shape)} is zero: '{loss_type}' is undefined")

    if level == "token":
        log_w = logp - old_logp  # [B, T]
    else:
        log_w = sequence_log_ratio(logp, old_logp, mask).unsqueeze(-1)  # [B, 1]
    rho = torch.exp(log_w)
    A = advantages.to(logp.dtype).unsqueeze(-1)
    if loss_type == "cispo":
        per_token = -torch.clamp(rho, max=eps_high).detach() * A * logp
    else:
        per_token = -torch.minimum(rho * A, torch.clamp(rho, 1 - eps_low, 1 + eps_high) * A)
    if beta != 0:
        per_token = per_token + beta * kl_estimate(logp, ref_logp, "k3")
    per_token = per_token.expand_as(logp)

    if loss_type == "grpo":
        loss = masked_mean(per_token, m, dim=-1).mean()
    elif loss_type in ("dapo", "cispo"):
        loss = masked_mean(per_token, m)
    else:
        L = max_completion_length if max_completion_length is not None else mask.shape[-1]
        loss = (per_token * m).sum() / (logp.shape[0] * L)

    with torch.no_grad():
        if loss_type == "cispo":
            low = torch.zeros_like(rho, dtype=torch.bool)
            high = (rho > eps_high) & (A > 0)
        else:
            low = (rho < 1 - eps_low) & (A < 0)
            high = (rho > 1 + eps_high) & (A > 0)

        def mean(x):  # TRL's global_masked_mean: over tokens, or over rows at level="sequence"
            x = x.to(logp.dtype).expand(-1, rho.shape[1])
            w = m if level == "token" else torch.ones_like(x)
            return ((x * w).sum() / w.sum().clamp(min=1.0)).item()

        stats = {"clip_ratio_low": mean(low), "clip_ratio_high": mean(high), "mean_ratio": mean(rho)}
    return loss, stats


def dynamic_sampling_mask(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("dynamic_sampling_mask", "rewards", rewards, 1, "[N]")
    if group_size < 1:
        raise ValueError(f"dynamic_sampling_mask: group_size must be >= 1, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(
            f"dynamic_sampling_mask: {rewards.numel()} rewards do not split into groups of {group_size}"
        )
    groups = rewards.reshape(-1, group_size)
    varied = groups.amax(-1) != groups.amin(-1)
    return varied.repeat_interleave(group_size)


def overlong_penalty(lengths: torch.Tensor, max_completion_length: int, overlong_buffer: int) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("overlong_penalty", "lengths", lengths, 1, "[B]")
    if not 0 < overlong_buffer <= max_completion_length:
        raise ValueError(
            f"overlong_penalty: overlong_buffer must be in 1..max_completion_length "
            f"({max_completion_length}), got {overlong_buffer}"
        )
    L = lengths.to(torch.float32)
    free = max_completion_length - overlong_buffer
    ramp = (free - L) / overlong_buffer
    return torch.where(L <= free, torch.zeros_like(L), torch.where(L <= max_completion_length, ramp, -1.0))


def mask_truncated_completions(completion_mask: torch.Tensor, is_truncated: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    name = "mask_truncated_completions"
    check_ndim(name, "completion_mask", completion_mask, 2, "[B, T]")
    if is_truncated.dtype != torch.bool:
        raise ValueError(f"{name}: is_truncated must be a bool tensor, got dtype {is_truncated.dtype}")
    if is_truncated.shape != completion_mask.shape[:1]:
        raise ValueError(
            f"{name}: is_truncated{list(is_truncated.shape)} must be [B] = [{completion_mask.shape[0]}]"
        )
    return completion_mask * (~is_truncated).unsqueeze(1).to(completion_mask.dtype)
