"""Unit 07 — DPO (notebook 07_dpo).

Conventions: `labels` are aligned with `logits` (already shifted, as returned by
``sft.tokenize_prompt_and_completion``); `mask` is 1 on completion tokens. A sequence's
log-probability is the *sum* of its completion-token log-probs unless averaging is asked for.
β sits *inside* the sigmoid: the loss is a function of β·h.

Exercises 7.1–7.3: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401

LOSS_TYPES = ("sigmoid", "ipo", "hinge")


def sequence_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, average: bool = False
) -> torch.Tensor:
    """Exercise 7.1: log π(completion | prompt) for each sequence.

    logits [B, T, V], labels [B, T], mask [B, T] -> [B]: the sum over t of
    ``mask * log_softmax(logits)[b, t, labels[b, t]]``, divided by the number of completion
    tokens when ``average=True``. Labels where mask is 0 may be padding or -100 and must not
    cause an error. Mismatched shapes raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 7.1 (notebook 07_dpo): implement `sequence_logprobs` in course_lib/dpo.py"
    )


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exercise 7.2: the DPO loss per pair, and the implicit rewards.

    All inputs [B] (sequence log-probs). With ``h = (pi_chosen - pi_rejected) - (ref_chosen -
    ref_rejected)`` and ls = label_smoothing:

    * ``"sigmoid"``: ``-(1 - ls) * logsigmoid(beta * h) - ls * logsigmoid(-beta * h)``
      (ls > 0 is conservative DPO, cDPO),
    * ``"ipo"``:     ``(h - 1 / (2 * beta))**2``,
    * ``"hinge"``:   ``relu(1 - beta * h)``.

    Returns ``(losses [B], chosen_rewards [B], rejected_rewards [B])`` with implicit rewards
    ``beta * (pi - ref)``, *detached*. Take ``losses.mean()`` to train. Unknown `loss_type`,
    ``beta <= 0`` or mismatched shapes raise ValueError.
    """
    raise NotImplementedError("Exercise 7.2 (notebook 07_dpo): implement `dpo_loss` in course_lib/dpo.py")


def dpo_batch_loss(
    model,
    batch: dict[str, torch.Tensor],
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    average: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exercise 7.3: the DPO loss of one batch of preference pairs (one training step's loss).

    `batch` (built by ``course_lib.trainers.dpo.collate``) holds B pairs as 2B rows, right padded:

    * ``input_ids``, ``labels``, ``completion_mask`` [2B, T]: rows ``0..B-1`` are
      prompt + chosen, rows ``B..2B-1`` prompt + rejected, pair i in rows i and B + i
      (the layout of ``sft.tokenize_prompt_and_completion``: labels already shifted),
    * ``attention_mask`` [2B, T] (optional): 1 on real tokens, 0 on the right padding,
    * ``ref_logps`` [2B]: the frozen reference model's sequence log-probs of the same rows,
      computed once before training (no reference forward pass per step).

    Steps: *one* forward pass over all 2B rows (``model(input_ids=..., attention_mask=...)
    .logits``, the mask if the batch has one), your ``dpo.sequence_logprobs`` (with
    `average`), split both the policy and the reference log-probs into the chosen and rejected
    halves, your ``dpo.dpo_loss`` with `beta`, `loss_type`, `label_smoothing`, and the mean.

    Returns ``(loss, stats)``: `loss` a scalar that carries the gradient; `stats` a dict of
    *detached* tensors ``"chosen_rewards"`` [B], ``"rejected_rewards"`` [B] (the implicit
    rewards of 7.2) and ``"logps"`` [2B] (the policy's sequence log-probs). An odd number of
    rows, or ``ref_logps`` that is not [2B], raises ValueError.
    """
    raise NotImplementedError(
        "Exercise 7.3 (notebook 07_dpo): implement `dpo_batch_loss` in course_lib/dpo.py"
    )
