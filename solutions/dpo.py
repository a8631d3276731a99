"""Solutions for unit 07 — DPO."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.core.utils import check_ndim, check_same_shape
from course_lib.dpo import LOSS_TYPES


def sequence_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, average: bool = False
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("sequence_logprobs", "logits", logits, 3, "[B, T, V]")
    check_same_shape("sequence_logprobs", labels=labels, mask=mask)
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"sequence_logprobs: labels{list(labels.shape)} must be [B, T] = "
            f"{list(logits.shape[:2])} to match logits{list(logits.shape)}"
        )
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


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"dpo_loss: unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta must be > 0, got {beta}")
    check_same_shape(
        "dpo_loss",
        pi_chosen=pi_chosen,
        pi_rejected=pi_rejected,
        ref_chosen=ref_chosen,
        ref_rejected=ref_rejected,
    )
    h = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = F.relu(1 - beta * h)
    chosen_rewards = (beta * (pi_chosen - ref_chosen)).detach()
    rejected_rewards = (beta * (pi_rejected - ref_rejected)).detach()
    return losses, chosen_rewards, rejected_rewards


def dpo_batch_loss(
    model,
    batch: dict[str, torch.Tensor],
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    average: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    missing = {"input_ids", "labels", "completion_mask", "ref_logps"} - set(batch)
    if missing:
        raise ValueError(f"dpo_batch_loss: batch lacks {sorted(missing)}")
    ids, labels, mask, ref = (
        batch["input_ids"],
        batch["labels"],
        batch["completion_mask"],
        batch["ref_logps"],
    )
    check_same_shape("dpo_batch_loss", input_ids=ids, labels=labels, completion_mask=mask)
    n = ids.shape[0]
    if n % 2:
        raise ValueError(
            f"dpo_batch_loss: input_ids{list(ids.shape)} must have 2B rows "
            "(B chosen, then B rejected), got an odd number"
        )
    if ref.shape != (n,):
        raise ValueError(f"dpo_batch_loss: ref_logps{list(ref.shape)} must be [2B] = [{n}]")
    logits = model(input_ids=ids, attention_mask=batch.get("attention_mask")).logits
    logps = sequence_logprobs(logits, labels, mask, average=average)
    pi_c, pi_r = logps.chunk(2)
    ref_c, ref_r = ref.to(logps.dtype).chunk(2)
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        pi_c, pi_r, ref_c, ref_r, beta=beta, loss_type=loss_type, label_smoothing=label_smoothing
    )
    return losses.mean(), {
        "chosen_rewards": chosen_rewards,
        "rejected_rewards": rejected_rewards,
        "logps": logps.detach(),
    }
