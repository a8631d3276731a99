"""Solutions for unit 04 — reward model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.core.utils import check_same_shape


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("bradley_terry_loss", r_chosen=r_chosen, r_rejected=r_rejected)
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def preference_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("preference_accuracy", r_chosen=r_chosen, r_rejected=r_rejected)
    if r_chosen.numel() == 0:
        raise ValueError("preference_accuracy: empty batch")
    return (r_chosen > r_rejected).float().mean().item()


def last_token_pool(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if values.shape[:2] != attention_mask.shape or values.dim() not in (2, 3):
        raise ValueError(
            f"last_token_pool: values{list(values.shape)} must be [B, T] or "
            f"[B, T, H] with attention_mask{list(attention_mask.shape)} = [B, T]"
        )
    T = attention_mask.shape[1]
    positions = torch.arange(T, device=attention_mask.device).expand_as(attention_mask)
    last = torch.where(attention_mask != 0, positions, -1).max(-1).values
    if (last < 0).any():
        rows = torch.nonzero(last < 0).flatten().tolist()
        raise ValueError(f"last_token_pool: rows {rows} have no real token (all-zero attention_mask)")
    return values[torch.arange(values.shape[0], device=values.device), last]
