"""Evaluation metrics shared by every unit (unit 08 builds its comparison on these).

Metrics that *are* exercises (rewards, KL estimates) are not re-implemented here: code that needs
them calls the exercise functions through their modules (``rewards.repetition_penalty``,
``kl.kl_estimate``), so in a student's course they run the student's own code.
"""
from __future__ import annotations

import re
from typing import Sequence

_INT = re.compile(r"-?\d+")


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Corpus-level distinct-n: unique word n-grams / total word n-grams over all texts
    (lower-cased, whitespace words). 0.0 when there are no n-grams."""
    total, unique = 0, set()
    for t in texts:
        w = t.lower().split()
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def first_integer(text: str) -> int | None:
    m = _INT.search(text)
    return int(m.group()) if m else None


def first_integer_accuracy(completions: Sequence[str], answers: Sequence) -> float:
    """Fraction of completions whose *first* integer equals the answer (the model's immediate
    answer after "a + b ="; stricter than unit 01's last-integer `correctness_reward`)."""
    if len(completions) != len(answers) or not completions:
        raise ValueError("first_integer_accuracy: need equally many, non-zero completions and answers")
    return sum(first_integer(c) == int(a) for c, a in zip(completions, answers)) / len(completions)


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Mean/std/min/max number of whitespace words."""
    import statistics
    lens = [len(t.split()) for t in texts] or [0]
    return {"mean": statistics.fmean(lens), "std": statistics.pstdev(lens),
            "min": float(min(lens)), "max": float(max(lens))}


def reward_stats(rewards: Sequence[float]) -> dict[str, float]:
    """Mean/std (population)/min/max of a list of rewards."""
    import statistics
    r = [float(x) for x in rewards]
    if not r:
        raise ValueError("reward_stats: no rewards")
    return {"mean": statistics.fmean(r), "std": statistics.pstdev(r), "min": min(r), "max": max(r)}
