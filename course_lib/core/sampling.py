"""Provided: batched sampling with a KV cache, and completion logits for training.

The loop is written out (instead of ``model.generate``) so that students can read how
autoregressive sampling works: one forward over the left-padded prompts fills the key/value
cache, then each step feeds only the newest token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """A batch of sampled completions (B = len(prompts) * num_samples, groups contiguous).

    prompt_ids [B, P] left-padded, prompt_mask [B, P]; completion_ids [B, C] right-padded with the
    pad id; completion_mask [B, C] is 1 on generated tokens up to and including EOS.
    """

    prompts: list[str]
    texts: list[str]
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    def __len__(self) -> int:
        return len(self.texts)

    def is_truncated(self, eos_token_id: int, pad_token_id: int | None = None) -> torch.Tensor:
        """bool [B]: True where a completion ran out of budget before it ended, decided as TRL
        1.16's GRPOTrainer does: its last token (padding removed) is neither EOS nor the pad token."""
        n = self.completion_mask.sum(-1).long()
        last = self.completion_ids.gather(1, (n - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        ended = last == eos_token_id
        if pad_token_id is not None:
            ended = ended | (last == pad_token_id)
        return ~ended


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the smallest set with mass >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@torch.no_grad()
def prefill(model, tokenizer, rows: list[str], dev):
    """The prompt `rows`, left-padded and run through `model` once with a KV cache:
    ``(ids, attention_mask, position_ids, past_key_values, last_logits)``, ids / mask / positions
    [B, P], last_logits [B, V] at each row's last prompt token.
    Positions count from each row's first real token, so left padding does not shift them."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    enc = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = side
    ids, attn = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    return ids, attn, pos, out.past_key_values, out.logits[:, -1]


def sample(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 24,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> Rollout:
    """Sample `num_samples` completions per prompt (each prompt's samples contiguous).

    Generation stops per row at EOS (kept, mask 1) or after `max_new_tokens`.
    """
    if not prompts:
        raise ValueError("sample: no prompts")
    if temperature <= 0 and not greedy:
        raise ValueError("sample: temperature must be > 0 (or pass greedy=True)")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = [p for p in prompts for _ in range(num_samples)]
    ids, prompt_mask, pos, past, logits = prefill(model, tokenizer, rows, dev)
    attn = prompt_mask  # grows by one column per generated token
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    B = ids.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    tokens, masks = [], []
    next_pos = pos[:, -1:]
    for _ in range(max_new_tokens):
        if greedy:
            nxt = logits.argmax(-1)
        else:
            probs = _filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        real = ~done  # rows still generating: this token is real
        nxt = torch.where(real, nxt, torch.full_like(nxt, pad))
        tokens.append(nxt)
        masks.append(real)
        done = done | (nxt == eos)
        if done.all():
            break
        attn = torch.cat([attn, real.long().unsqueeze(-1)], dim=1)
        next_pos = next_pos + 1
        out = model(
            input_ids=nxt.unsqueeze(-1),
            attention_mask=attn,
            position_ids=next_pos,
            past_key_values=past,
            use_cache=True,
        )
        past, logits = out.past_key_values, out.logits[:, -1]
    comp = torch.stack(tokens, 1)
    cmask = torch.stack(masks, 1).long()
    texts = tokenizer.batch_decode(comp.masked_fill(cmask == 0, pad), skip_special_tokens=True)
    if was_training:
        model.train()
    return Rollout(
        prompts=rows,
        texts=texts,
        prompt_ids=ids,
        prompt_mask=prompt_mask,
        completion_ids=comp,
        completion_mask=cmask,
    )


def completion_logits(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Logits that predicted each completion token: [B, C, V] (divided by `temperature`).

    One forward over prompt + completion; the logits at position P-1+t predict completion
    token t. Use ``kl.token_logprobs(completion_logits(...), rollout.completion_ids)``.
    """
    ids, attn = rollout.input_ids, rollout.attention_mask
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits
    P = rollout.prompt_ids.shape[1]
    out = logits[:, P - 1 : -1]
    return out / temperature if temperature != 1.0 else out
