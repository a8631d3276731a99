"""Solutions for unit 03 — SFT."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from course_lib.core.utils import check_ndim, check_same_shape


def tokenize_prompt_and_completion(
    prompts: Sequence[str], completions: Sequence[str], tokenizer
) -> dict[str, torch.Tensor]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if len(prompts) != len(completions):
        raise ValueError(
            f"tokenize_prompt_and_completion: {len(prompts)} prompts but {len(completions)} completions"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs, comp = [], []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
        seqs.append(p_ids + c_ids)
        comp.append([0] * len(p_ids) + [1] * len(c_ids))
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    cmask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, comp)):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        cmask[i, : len(m)] = torch.tensor(m, dtype=torch.long)
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "completion_mask": cmask[:, 1:]}


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_same_shape("masked_mean", x=x, mask=mask)
    m = mask.to(x.dtype if x.is_floating_point() else torch.float32)
    if dim is None:
        den = m.sum()
        if den == 0:
            raise ValueError("masked_mean: the mask is all zero (a mean over nothing is undefined)")
        return (x * m).sum() / den
    den = m.sum(dim)
    if (den == 0).any():
        raise ValueError(
            f"masked_mean: the mask is all zero along dim={dim} for some entries "
            "(a mean over nothing is undefined)"
        )
    return (x * m).sum(dim) / den


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    check_ndim("sft_loss", "logits", logits, 3, "[B, T, V]")
    check_same_shape("sft_loss", labels=labels, mask=mask)
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"sft_loss: labels{list(labels.shape)} must be [B, T] = "
            f"{list(logits.shape[:2])} to match logits{list(logits.shape)}"
        )
    safe = torch.where(mask != 0, labels, torch.zeros_like(labels)).long()
    nll = -F.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return masked_mean(nll, mask)


def sft_train_step(
    model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, max_grad_norm: float | None = 1.0
) -> float:
    # COURSE-SOLUTION-CANARY-7f3a9c
    from course_lib import sft

    missing = [k for k in ("input_ids", "labels", "completion_mask") if k not in batch]
    if missing:
        raise KeyError(
            f"sft_train_step: the batch has no {missing} (keys: {sorted(batch)}); "
            "pass the dict that tokenize_prompt_and_completion returns"
        )
    model.train()
    logits = model(input_ids=batch["input_ids"]).logits
    loss = sft.sft_loss(logits, batch["labels"], batch["completion_mask"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()
