"""Solutions for unit 02 — KL penalties."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.core.utils import check_ndim, check_same_shape


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("token_logprobs", "logits", logits, 3, "[B, T, V]")
    if tokens.shape != logits.shape[:2]:
        raise ValueError(
            f"token_logprobs: tokens{list(tokens.shape)} must be [B, T] = "
            f"{list(logits.shape[:2])} to match logits{list(logits.shape)}"
        )
    logp = F.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("kl_estimate", logp=logp, ref_logp=ref_logp)
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.exp(log_r) - 1 - log_r
    raise ValueError(f"kl_estimate: unknown kind {kind!r}; use 'k1', 'k2' or 'k3'")


def exact_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("exact_kl", p_logits=p_logits, q_logits=q_logits)
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def kl_penalized_rewards(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("kl_penalized_rewards", logp=logp, ref_logp=ref_logp, mask=mask)
    check_ndim("kl_penalized_rewards", "logp", logp, 2, "[B, T]")
    if scores.shape != logp.shape[:1]:
        raise ValueError(f"kl_penalized_rewards: scores{list(scores.shape)} must be [B] = [{logp.shape[0]}]")
    m = mask.to(logp.dtype)
    lengths = (mask != 0).sum(-1)
    if (lengths == 0).any():
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(
            f"kl_penalized_rewards: rows {rows} have an all-zero mask (no response token to put the score on)"
        )
    rewards = -beta * (logp - ref_logp) * m
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device).expand_as(mask)
    last = torch.where(mask != 0, positions, -1).max(-1).values
    rewards = rewards.clone()
    rewards[torch.arange(len(last), device=mask.device), last] += scores.to(rewards.dtype)
    return rewards
