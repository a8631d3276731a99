"""Solutions for unit 07 — DPO."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.dpo import LOSS_TYPES
from course_lib.utils import check_ndim, check_same_shape


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                      average: bool = False) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("sequence_logprobs", "logits", logits, 3, "[B, T, V]")
    check_same_shape("sequence_logprobs", labels=labels, mask=mask)
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"sequence_logprobs: labels{list(labels.shape)} must be [B, T] = "
                         f"{list(logits.shape[:2])} to match logits{list(logits.shape)}")
    safe = torch.where(mask != 0, labels, torch.zeros_like(labels)).long()
    tok = F.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    m = mask.to(tok.dtype)
    total = (tok * m).sum(-1)
    if average:
        n = m.sum(-1)
        if (n == 0).any():
            raise ValueError("sequence_logprobs: average=True with an all-zero mask row")
        return total / n
    return total


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, loss_type: str = "sigmoid",
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"dpo_loss: unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta must be > 0, got {beta}")
    check_same_shape("dpo_loss", pi_chosen=pi_chosen, pi_rejected=pi_rejected,
                     ref_chosen=ref_chosen, ref_rejected=ref_rejected)
    h = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = (-(1 - label_smoothing) * F.logsigmoid(beta * h)
                  - label_smoothing * F.logsigmoid(-beta * h))
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = F.relu(1 - beta * h)
    chosen_rewards = (beta * (pi_chosen - ref_chosen)).detach()
    rejected_rewards = (beta * (pi_rejected - ref_rejected)).detach()
    return losses, chosen_rewards, rejected_rewards
