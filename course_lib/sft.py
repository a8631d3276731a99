"""Unit 03 — supervised fine-tuning (notebook 03_sft).

Conventions: right padding; `labels` are the input shifted by one (``labels[:, t]`` is the token
that follows ``input_ids[:, t]``), so ``logits[:, t]`` from ``model(input_ids)`` predicts
``labels[:, t]`` with no further shifting; `completion_mask` / `mask` is 1 where the *label* is a
completion token.

Exercises 3.1–3.3: replace each ``raise NotImplementedError`` with your implementation.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F  # noqa: F401


def tokenize_prompt_and_completion(prompts: Sequence[str], completions: Sequence[str],
                                   tokenizer) -> dict[str, torch.Tensor]:
    """Exercise 3.1: tokenize prompt/completion pairs for SFT.

    For each pair, tokenize the prompt and the completion *separately* (no special tokens:
    ``tokenizer(text, add_special_tokens=False)``; append ``tokenizer.eos_token`` to the
    completion text yourself if the model must learn to stop) and concatenate the ids. Right-pad
    every sequence to the longest length L with ``tokenizer.pad_token_id`` (or
    ``eos_token_id`` if there is no pad token). Return

    * ``input_ids``       [B, L-1]: the padded ids without the last position,
    * ``labels``          [B, L-1]: the padded ids without the first position,
    * ``completion_mask`` [B, L-1]: 1 where the label is a completion token, 0 for prompt
      tokens and padding (int64 tensors, like the ids).

    Different numbers of prompts and completions raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 3.1 (notebook 03_sft): implement `tokenize_prompt_and_completion` in course_lib/sft.py")


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Exercise 3.2: mean of `x` over the positions where `mask` is 1.

    ``sum(x * mask, dim) / sum(mask, dim)``; ``dim=None`` averages over every element (a scalar).
    `mask` has the shape of `x` (0/1, bool, int or float). A mean over nothing is undefined:
    raise ValueError if any denominator is 0, and ValueError for mismatched shapes.
    """
    raise NotImplementedError(
        "Exercise 3.2 (notebook 03_sft): implement `masked_mean` in course_lib/sft.py")


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 3.3: token-level mean negative log-likelihood over completion tokens.

    logits [B, T, V], labels [B, T], mask [B, T] -> scalar:
    ``sum_{b,t} mask * (-log softmax(logits)[b, t, labels[b, t]]) / sum mask``.
    Every completion token in the batch counts equally (not a mean of per-sequence means).
    Labels where mask is 0 may be anything (padding, -100) and must not cause an error.
    """
    raise NotImplementedError(
        "Exercise 3.3 (notebook 03_sft): implement `sft_loss` in course_lib/sft.py")
