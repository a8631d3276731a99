"""What every unit's hidden cases are built from: seeded generators of inputs and the case format
(see :mod:`course_instructor.grading.sandboxed.caserun` for what a case holds).

The rule for the cases of every exercise (tests/exercises/test_trivial_answers.py): no trivial answer -- a
constant 0 or 1 (zeros / ones of the expected shape), an echo of an input, ``0.0`` or ``None`` --
passes more than :data:`TRIVIAL_MAX_PASS` (a tenth) of its cases, so expected answers are varied:
a reward case holds completions whose rewards differ (an :func:`each` case calls the function once
per input), a loss case has a non-zero value and gradient.
"""

from __future__ import annotations

import random

import torch

from course_instructor.grading.sandboxed.caserun import MARKER

DEFAULT_SEED = 20240601


TRIVIAL_MAX_PASS = 0.1  # the most a trivial answer (constant, echo, None) may pass of any exercise's cases


class Gen:
    def __init__(self, name: str, seed: int):
        s = (hash_str(name) * 1_000_003 + int(seed)) % (2**31)
        self.g = torch.Generator().manual_seed(s)
        self.rng = random.Random(s)

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def logp(self, *shape):  # plausible token log-probs (<= 0)
        return -torch.rand(*shape, generator=self.g) * 4 - 0.01

    def mask(self, B, T, min_len=1):  # right padded, every row >= min_len tokens
        lens = torch.randint(min_len, T + 1, (B,), generator=self.g)
        lens[0] = T  # one full row
        return (torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)).long()

    def int_(self, lo, hi):
        return self.rng.randint(lo, hi)


def hash_str(s: str) -> int:
    h = 0
    for ch in s:
        h = (h * 131 + ord(ch)) % (2**31)
    return h


WORDS = (
    "the movie was great fun and i loved it terrible boring plot acting bad good "
    "wonderful awful story film cast music"
).split()


def sentence(gen: Gen, n: int) -> str:
    return " ".join(gen.rng.choice(WORDS) for _ in range(n))


def case(
    cid,
    *args,
    grad=(),
    grad_seed=0,
    then_call=None,
    report_params=False,
    grad_model=False,
    report_kinds=False,
    **kwargs,
) -> dict:
    c = {
        "id": cid,
        "args": list(args),
        "kwargs": kwargs,
        "grad": list(grad),
        "grad_seed": grad_seed,
        "report_params": report_params,
        "grad_model": grad_model,
    }
    if then_call is not None:
        c["then_call"] = then_call
    if report_kinds:
        c["report_kinds"] = True
    return c


def each(cid, *calls, report_kinds=False) -> dict:
    """A case that calls the function once per ``(args, kwargs)`` pair and compares the list of
    results: inputs with different answers in one case (a reward of 1 next to a reward of 0), so
    that no constant answer passes it."""
    c = case(cid, report_kinds=report_kinds)
    c["each"] = [{"args": list(a), "kwargs": dict(k)} for a, k in calls]
    return c


def tiny_model(seed, vocab=32, stale_grad=False):
    """A tiny GPT-2; `stale_grad`: its parameters carry a gradient left from an earlier step."""
    return {MARKER: "model", "seed": seed, "vocab": vocab, "stale_grad": stale_grad}


def sgd(lr=0.5):
    return {MARKER: "optimizer", "lr": lr}


def random_ids(g, B, T, V=32):
    return torch.randint(1, V, (B, T), generator=g.g)


def rollout(g, B, P, C, V=32):
    plen = torch.randint(1, P + 1, (B,), generator=g.g)
    pmask = (torch.arange(P).unsqueeze(0) >= (P - plen).unsqueeze(1)).long()  # left padded
    pids = torch.where(pmask.bool(), random_ids(g, B, P, V), torch.zeros(B, P, dtype=torch.long))
    cmask = g.mask(B, C)
    cids = torch.where(cmask.bool(), random_ids(g, B, C, V), torch.zeros(B, C, dtype=torch.long))
    return {
        MARKER: "rollout",
        "fields": {
            "prompts": ["p"] * B,
            "texts": ["t"] * B,
            "prompt_ids": pids,
            "prompt_mask": pmask,
            "completion_ids": cids,
            "completion_mask": cmask,
        },
    }
