"""Tiny stand-ins whose outputs are known exactly: a word-level tokenizer, a table "language
model" and a rollout built from given ids (used by the checks of units 03, 06 and 07)."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def toy_tokenizer(pad: bool = True):
    """A word-level tokenizer with a fixed vocabulary: the ids below are known exactly."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "hi": 3, "there": 4, "you": 5, "ok": 6, "yes": 7, "no": 8}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    kw = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", unk_token="<unk>", **kw)


class ToyLM(torch.nn.Module):
    """logits = a [V, V] table indexed by the input token (zero-initialised: uniform)."""

    def __init__(self, V: int = 4):
        super().__init__()
        self.table = torch.nn.Embedding(V, V)
        torch.nn.init.zeros_(self.table.weight)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.table(input_ids))


def toy_rollout(completion_ids, completion_mask):
    """A Rollout of B rows with a one-token prompt (id 0) and the given completions."""
    from course_lib.core.sampling import Rollout

    B = len(completion_ids)
    return Rollout(
        prompts=["p"] * B,
        texts=["t"] * B,
        prompt_ids=torch.zeros(B, 1, dtype=torch.long),
        prompt_mask=torch.ones(B, 1, dtype=torch.long),
        completion_ids=torch.tensor(completion_ids),
        completion_mask=torch.tensor(completion_mask),
    )
