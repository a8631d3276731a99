"""Unit 04 — reward model (notebook 04_reward_model).

A reward model is the language model's transformer with a scalar head: one number per token,
of which we keep the one at the last real (non-pad) token. It is trained on preference pairs
with the Bradley–Terry loss: P(chosen preferred) = sigmoid(r_chosen - r_rejected).

Exercises 4.1–4.3: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Exercise 4.1: ``mean(-logsigmoid(r_chosen - r_rejected - margin))`` over the batch.

    r_chosen, r_rejected [B] -> scalar. `margin` (a float or a [B] tensor, None = 0) demands
    that the chosen reward beat the rejected one by at least that much (Llama-2 style).
    Use ``F.logsigmoid`` (stable), not ``log(sigmoid(...))``. Mismatched shapes raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 4.1 (notebook 04_reward_model): implement `bradley_terry_loss` in course_lib/reward_model.py"
    )


def preference_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Exercise 4.2: the fraction of pairs with ``r_chosen > r_rejected`` (a tie counts as wrong).

    r_chosen, r_rejected [B] -> a Python float in [0, 1]. An empty batch raises ValueError.
    """
    raise NotImplementedError(
        "Exercise 4.2 (notebook 04_reward_model): implement `preference_accuracy` in course_lib/reward_model.py"
    )


def last_token_pool(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Exercise 4.3: pick each sequence's value at its last real (attention_mask == 1) token.

    values [B, T] or [B, T, H], attention_mask [B, T] (right padding: ones then zeros) ->
    [B] or [B, H]. A row with no real token raises ValueError.
    """
    raise NotImplementedError(
        "Exercise 4.3 (notebook 04_reward_model): implement `last_token_pool` in course_lib/reward_model.py"
    )
