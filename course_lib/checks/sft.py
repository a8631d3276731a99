"""Visible checks of unit 03 (course_lib/sft.py): exercises 3.1-3.4."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import LN3, PAD_HINT, fmt, padded, register, t
from course_lib.checks._toys import ToyLM, toy_tokenizer

EOS_ID, UNK_ID = 1, 2


def _sequence_hint(out) -> tuple[str, str]:
    """Name what went wrong with the token sequences of 3.1's first case (ids known exactly)."""
    seen = set()
    for k in ("input_ids", "labels"):
        v = out.get(k)
        if isinstance(v, torch.Tensor):
            seen |= set(v.flatten().tolist())
    if EOS_ID in seen:
        return (
            "an EOS token (id 1) appears although no text contains one: this function adds no "
            "special tokens and no EOS (the SFT trainer appends EOS to the completion TEXTS "
            "before calling it)",
            "tokenize with add_special_tokens=False and add nothing",
        )
    if UNK_ID in seen:
        return (
            "an unknown token (id 2) appears: prompt and completion were tokenized as ONE "
            "string, which merges the words at the boundary ('there' + 'ok' -> 'thereok')",
            "tokenize the prompt and the completion separately, then concatenate the ids",
        )
    return (
        "each sequence is the prompt's ids followed by the completion's ids, padded on the "
        "RIGHT to the longest length L; input_ids and labels have L - 1 columns",
        "here L = 4: [3, 4, 6, pad] and [7, 8, 8, 5]",
    )


@register(
    "tokenize_prompt_and_completion",
    (
        "prompt ids + completion ids, right-padded; the model "
        "reads input_ids and must predict labels, the SAME "
        "sequences shifted by one; the mask marks the labels "
        "that are completion tokens",
        "labels[:, t] is the token that follows input_ids[:, t]",
    ),
)
def _tokenize(fn, c):
    tok = toy_tokenizer()
    # "hi there" + "ok" -> [3, 4, 6] (+ pad 0); "yes" + "no no you" -> [7, 8, 8, 5]
    out = c.call("two pairs", fn, ["hi there", "yes"], ["ok", "no no you"], tok)
    c.true(
        "keys",
        isinstance(out, dict) and {"input_ids", "labels", "completion_mask"} <= set(out),
        "a dict with input_ids, labels, completion_mask",
        repr(type(out)) if not isinstance(out, dict) else str(sorted(out)),
    )
    ids = out["input_ids"]
    shape = list(ids.shape) if isinstance(ids, torch.Tensor) else None
    c.true(
        "input_ids shape [B, L-1] = [2, 3]",
        shape == [2, 3],
        "shape [2, 3]",
        f"shape {shape}: {fmt(ids)}",
        hint=_sequence_hint(out),
    )
    c.close(
        "input_ids = padded ids without the last position",
        ids,
        [[3, 4, 6], [7, 8, 8]],
        kind="tensor",
        hint=_sequence_hint(out),
    )
    c.close(
        "labels = padded ids without the first position",
        out["labels"],
        [[4, 6, 0], [8, 8, 5]],
        hint=(
            "labels are the sequences shifted by one: label t is the token AFTER input t; "
            "padding (pad_token_id) goes on the right",
            "labels drop the FIRST position",
        ),
    )
    c.close(
        "completion_mask is 1 where the LABEL is a completion token",
        out["completion_mask"],
        [[0, 1, 0], [1, 1, 1]],
        hint=(
            "the mask belongs to the LABELS: 1 where the token to be "
            "predicted is a completion token, 0 for prompt and padding",
            "build it over the full sequence, then shift it like the labels",
        ),
    )
    c.true(
        "dtype",
        all(out[k].dtype == torch.long for k in ("input_ids", "labels", "completion_mask")),
        "int64 (torch.long) tensors",
        str({k: str(v.dtype) for k, v in out.items()}),
    )
    out = c.call("no pad token", fn, ["hi there", "yes"], ["ok", "no no you"], toy_tokenizer(pad=False))
    c.close(
        "without a pad token, pad with eos_token_id (1)",
        out["labels"],
        [[4, 6, 1], [8, 8, 5]],
        hint="a tokenizer without a pad token pads with its EOS id (the docstring says so)",
    )
    c.raises("2 prompts, 1 completion", ValueError, fn, ["hi", "yes"], ["ok"], tok)


@register(
    "masked_mean",
    (
        "the mean over the masked entries only: every entry with mask 1 weighs the "
        "same, entries with mask 0 not at all",
        "dim=None reduces everything to one number; dim=k reduces that dimension only",
    ),
)
def _masked_mean(fn, c):
    x = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], grad=True)
    mask = torch.tensor([[1, 1, 1], [0, 0, 1]])  # 3 entries in row 0, 1 in row 1
    got = c.call("dim=None", fn, x, mask)
    c.close(
        "dim=None: (1+2+3+6)/4",
        got,
        3.0,
        kind="tensor",
        hint=(
            "with dim=None every masked entry weighs the same: the sum of the masked entries "
            "divided by the number of masked entries (4)",
            "a mean of the row means gives (2 + 6)/2 = 4; dividing by all 6 entries gives 2",
        ),
    )
    c.grad("gradient = mask / 4", got, {"x": x}, {"x": [[0.25, 0.25, 0.25], [0.0, 0.0, 0.25]]})
    c.close(
        "padding holds garbage (1e4 under mask 0): still (1+2+3+6)/4",
        c.call("padding garbage", fn, padded(x, mask), mask),
        3.0,
        hint=PAD_HINT,
    )
    c.close(
        "dim=1: per row",
        c.call("dim=1", fn, x, mask, dim=1),
        [2.0, 6.0],
        hint="dim=1 gives one mean per row, over that row's masked entries",
    )
    c.close(
        "dim=0: per column",
        c.call("dim=0", fn, x, mask, dim=0),
        [1.0, 2.0, 4.5],
        hint="dim=0 gives one mean per column, over that column's masked entries",
    )
    c.close(
        "a bool mask works too",
        c.call("bool", fn, x, mask.bool()),
        3.0,
        hint="a bool mask means the same as a 0/1 mask",
    )
    c.raises("an all-zero mask (mean over nothing)", ValueError, fn, x, torch.zeros(2, 3))
    c.raises("shapes [2, 3] vs [3]", ValueError, fn, x, torch.ones(3))


@register(
    "sft_loss",
    (
        "the mean negative log-likelihood of the labels over ALL completion tokens of "
        "the batch: every completion token weighs the same, prompt and padding not at "
        "all",
        "labels under mask 0 may be -100 and must not be looked up as they are",
    ),
)
def _sft_loss(fn, c):
    # row 0: t0 logits [0,0] label 0 -> ln 2; t1 [ln3, 0] label 0 -> -ln(3/4); t2 padding (-100)
    # row 1: t0 [0, ln3] label 0 -> ln 4; t1, t2 padding. token mean = (ln2 + ln(4/3) + ln4) / 3
    rows = [[[0.0, 0.0], [LN3, 0.0], [5.0, 5.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]]
    logits = t(rows, grad=True)
    labels = torch.tensor([[0, 0, -100], [0, 1, -100]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # what the usual wrong reductions give on THIS case (tier 2 quotes them): per-token NLL, the
    # labels under mask 0 read as id 0
    nll = [
        [math.log(sum(math.exp(v) for v in z)) - z[y if m else 0] for z, y, m in zip(row, lab, mrow)]
        for row, lab, mrow in zip(rows, labels.tolist(), mask.tolist())
    ]
    kept = [[v for v, m in zip(r, mr) if m] for r, mr in zip(nll, mask.tolist())]
    row_means = sum(sum(r) / len(r) for r in kept) / len(kept)
    total = sum(sum(r) for r in kept)
    everything = sum(sum(r) for r in nll) / sum(len(r) for r in nll)
    got = c.call(
        "two rows, -100 labels on padding",
        fn,
        logits,
        labels,
        mask,
        hint=(
            "labels under mask 0 may be -100 (not a token id): they must not make the loss fail",
            "replace them by any valid id before looking them up; the mask zeroes their contribution",
        ),
    )
    c.close(
        "(ln 2 + ln 4/3 + ln 4) / 3",
        got,
        0.7890412,
        kind="tensor",
        hint=(
            "every completion token in the batch weighs the same: divide the masked sum by the "
            "number of completion tokens (3)",
            f"a mean of per-row means gives {fmt(row_means)}; a sum {fmt(total)}; counting the "
            f"positions under mask 0 too (their labels read as id 0) {fmt(everything)}",
        ),
    )
    c.grad(
        "gradient",
        got,
        {"logits": logits},
        {
            "logits": [
                [[-1 / 6, 1 / 6], [-1 / 12, 1 / 12], [0.0, 0.0]],
                [[-0.25, 0.25], [0.0, 0.0], [0.0, 0.0]],
            ]
        },
        hint="masked positions must get zero gradient",
    )
    c.close(
        "padding holds garbage (logits 1e4 under mask 0): the same loss",
        c.call("padding garbage", fn, padded(logits, mask), labels, mask),
        0.7890412,
        hint=PAD_HINT,
    )
    got = c.call("all tokens", fn, torch.zeros(1, 2, 4), torch.tensor([[1, 3]]), torch.ones(1, 2))
    c.close("uniform logits over 4 tokens -> ln 4", got, 1.3862944)


def _update_hint(weight: torch.Tensor, expected: torch.Tensor) -> tuple[str, str]:
    if torch.allclose(weight, torch.zeros_like(weight)):
        return (
            "the parameters did not move: the step used no gradient (cleared after backward, or "
            "no optimizer step)",
            "order: clear gradients, backward, clip, step",
        )
    if weight.abs().max() > 10:
        return (
            "the update is huge: the stale gradient left in the parameters (100 everywhere) was "
            "added to this step's gradient",
            "gradients accumulate until they are cleared; clear them BEFORE backward (zero_grad)",
        )
    return (
        "the update must come from this batch's loss on completion tokens only",
        "tokens under completion_mask 0 contribute nothing",
    )


@register(
    "sft_train_step",
    (
        "one step = training mode, the SFT loss of the batch (exercise 3.3), "
        "gradients of THIS batch only, clipped to max_grad_norm, one optimizer "
        "step; return the loss as a Python float",
        "the docstring lists the steps in order",
    ),
)
def _sft_train_step(fn, c):
    batch = {
        "input_ids": torch.tensor([[0, 1, 2]]),
        "labels": torch.tensor([[1, 2, 3]]),
        "completion_mask": torch.tensor([[0, 1, 1]]),
    }
    # zero table -> uniform logits -> loss ln 4. d loss/d logits at the 2 counted positions =
    # (1/4 - onehot)/2, so the table rows 1 and 2 get [1/8, 1/8, -3/8, 1/8] and [1/8, 1/8, 1/8, -3/8]
    model = ToyLM().eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model.table.weight.grad = torch.full_like(model.table.weight, 100.0)  # stale gradient
    loss = c.call("one step", fn, model, batch, opt, max_grad_norm=None)
    c.close("returns the loss before the step as a float: ln 4", loss, 1.3862944, kind="float")
    c.true(
        "training mode",
        model.training,
        "the model in training mode",
        "model is in eval mode",
        hint="the step must put the model in training mode (dropout on)",
    )
    want = torch.tensor(
        [[0.0] * 4, [-0.125, -0.125, 0.375, -0.125], [-0.125, -0.125, -0.125, 0.375], [0.0] * 4]
    )
    w = model.table.weight.detach()
    c.close("SGD lr=1 step on the table (no clipping)", w, want.tolist(), hint=_update_hint(w, want))
    model = ToyLM()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    c.call("clipped step", fn, model, batch, opt, max_grad_norm=0.1)
    norm = model.table.weight.detach().norm().item()  # unclipped gradient norm is sqrt(0.375) = 0.612
    c.close(
        "max_grad_norm=0.1 clips the update to norm 0.1",
        norm,
        0.1,
        atol=1e-3,
        hint=(
            "with max_grad_norm the gradient's total norm is clipped before the step",
            "torch.nn.utils has a function for it; it goes between backward and step",
        ),
    )
    c.raises(
        "a batch without 'labels'",
        KeyError,
        fn,
        ToyLM(),
        {"input_ids": batch["input_ids"], "completion_mask": batch["completion_mask"]},
        opt,
    )
