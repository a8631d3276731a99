"""Hidden cases of the exercises of course_lib/kl.py (unit 02, KL penalties): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case


def _token_logprobs(g):
    cases = []
    for i, (B, T, V) in enumerate([(2, 5, 7), (3, 4, 11), (1, 6, 3)]):
        logits = g.randn(B, T, V, scale=3.0)
        tokens = torch.randint(0, V, (B, T), generator=g.g)
        cases.append(case(f"shape{B}x{T}x{V}", logits, tokens, grad=[0], grad_seed=i))
    cases.append(case("bad-shape", g.randn(2, 5, 7), torch.zeros(2, 4, dtype=torch.long)))
    cases.append(
        case(
            "large-logits",
            g.randn(2, 3, 5, scale=300),  # softmax underflows to 0
            torch.randint(0, 5, (2, 3), generator=g.g),
        )
    )
    return cases


def _kl_estimate(g):
    cases = []
    for i, kind in enumerate(["k1", "k2", "k3"]):
        for shape in [(3, 6), (10,)]:
            cases.append(
                case(f"{kind}-{shape}", g.logp(*shape), g.logp(*shape), kind=kind, grad=[0, 1], grad_seed=i)
            )
    cases.append(case("default-kind", g.logp(2, 4), g.logp(2, 4), grad=[0]))
    cases.append(case("bad-kind", g.logp(3), g.logp(3), kind="k4"))
    cases.append(case("bad-shape", g.logp(3), g.logp(4), kind="k1"))
    return cases


def _exact_kl(g):
    return [
        case("2d", g.randn(4, 5, scale=2), g.randn(4, 5, scale=2), grad=[0, 1], grad_seed=1),
        case("3d", g.randn(2, 3, 8), g.randn(2, 3, 8), grad=[0, 1], grad_seed=2),
        case("large-logits", g.randn(3, 6, scale=40), g.randn(3, 6, scale=40), grad=[0]),
        case("same", *_some_rows_equal(g, 4, 5)),
    ]


def _some_rows_equal(g, B, V):
    """p and q logits [B, V] with rows 0 and 2 identical (KL 0), the others not."""
    p, q = g.randn(B, V), g.randn(B, V)
    q[0::2] = p[0::2]
    return p, q


def _kl_penalized_rewards(g):
    cases = []
    for i, (B, T) in enumerate([(3, 6), (4, 5), (1, 4)]):
        cases.append(
            case(f"padded{B}x{T}", g.randn(B), g.logp(B, T), g.logp(B, T), g.mask(B, T), [0.1, 0.05, 0.0][i])
        )
    m = g.mask(2, 4)
    m[1] = 0
    cases.append(case("empty-row", g.randn(2), g.logp(2, 4), g.logp(2, 4), m, 0.1))
    return cases


CASES = {
    "token_logprobs": _token_logprobs,
    "kl_estimate": _kl_estimate,
    "exact_kl": _exact_kl,
    "kl_penalized_rewards": _kl_penalized_rewards,
}
