"""Unit 03 — supervised fine-tuning (notebook 03_sft).

Conventions: right padding; `labels` are the input shifted by one (``labels[:, t]`` is the token
that follows ``input_ids[:, t]``), so ``logits[:, t]`` from ``model(input_ids)`` predicts
``labels[:, t]`` with no further shifting; `completion_mask` / `mask` is 1 where the *label* is a
completion token.

Exercises 3.1–3.4: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: F401


def tokenize_prompt_and_completion(
    prompts: Sequence[str], completions: Sequence[str], tokenizer
) -> dict[str, torch.Tensor]:
    """Exercise 3.1: tokenize prompt/completion pairs for SFT.

    For each pair, tokenize the prompt and the completion *separately* (no special tokens:
    ``tokenizer(text, add_special_tokens=False)``) and concatenate the ids. Add no EOS here: a
    caller that wants the model to learn to stop appends ``tokenizer.eos_token`` to the completion
    *texts* first (the SFT trainer does, see ``course_lib.trainers.sft.with_eos``). Right-pad
    every sequence to the longest length L with ``tokenizer.pad_token_id`` (or
    ``eos_token_id`` if there is no pad token). Return

    * ``input_ids``       [B, L-1]: the padded ids without the last position,
    * ``labels``          [B, L-1]: the padded ids without the first position,
    * ``completion_mask`` [B, L-1]: 1 where the label is a completion token, 0 for prompt
      tokens and padding (int64 tensors, like the ids).

    Different numbers of prompts and completions raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 3.1 (notebook 03_sft): implement `tokenize_prompt_and_completion` in course_lib/sft.py"
    )


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Exercise 3.2: mean of `x` over the positions where `mask` is 1.

    ``sum(x * mask, dim) / sum(mask, dim)``; ``dim=None`` averages over every element (a scalar).
    `mask` has the shape of `x` (0/1, bool, int or float). A mean over nothing is undefined:
    raise ValueError if any denominator is 0, and ValueError for mismatched shapes.
    """
    raise NotImplementedError("Exercise 3.2 (notebook 03_sft): implement `masked_mean` in course_lib/sft.py")


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 3.3: token-level mean negative log-likelihood over completion tokens.

    logits [B, T, V], labels [B, T], mask [B, T] -> scalar:
    ``sum_{b,t} mask * (-log softmax(logits)[b, t, labels[b, t]]) / sum mask``.
    Every completion token in the batch counts equally (not a mean of per-sequence means).
    Labels where mask is 0 may be anything (padding, -100) and must not cause an error.
    """
    raise NotImplementedError("Exercise 3.3 (notebook 03_sft): implement `sft_loss` in course_lib/sft.py")


def sft_train_step(
    model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, max_grad_norm: float | None = 1.0
) -> float:
    """Exercise 3.4: one optimizer step of supervised fine-tuning; returns the loss as a float.

    `batch` is what :func:`tokenize_prompt_and_completion` returns (``input_ids``, ``labels``,
    ``completion_mask``, all [B, T] on the model's device). In order:

    1. put the model in training mode and compute ``logits = model(input_ids=...).logits``
       (right padding: pad tokens come after every real token, so a causal model needs no
       attention mask for the positions that count);
    2. ``loss = sft_loss(logits, labels, completion_mask)`` (call your exercise 3.3);
    3. clear old gradients, back-propagate, clip the gradient norm to `max_grad_norm` with
       ``torch.nn.utils.clip_grad_norm_`` (skip clipping when it is None), take the optimizer step;
    4. return ``loss.item()``.

    The provided loop (course_lib/trainers/sft.py) calls this once per step; to train on *every*
    token instead of the completion only, it simply passes a different mask in
    ``batch["completion_mask"]``. A batch missing one of the three keys raises KeyError naming it.
    """
    raise NotImplementedError(
        "Exercise 3.4 (notebook 03_sft): implement `sft_train_step` in course_lib/sft.py"
    )
