"""Hidden cases of the exercises of course_lib/reward_model.py (unit 04, the reward model): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, each


def _bradley_terry_loss(g):
    return [
        case("plain", g.randn(6), g.randn(6), grad=[0, 1], grad_seed=1),
        case("margin-float", g.randn(5, scale=3), g.randn(5), margin=0.5, grad=[0, 1]),
        case("margin-tensor", g.randn(4), g.randn(4), g.rng.random() * torch.ones(4), grad=[0, 1]),
        case("large-gap", torch.tensor([-200.0, 150.0, 0.5]), torch.zeros(3), grad=[0]),
        case("bad-shape", g.randn(3), g.randn(4)),
    ]


def _preference_accuracy(g):
    def pair(n):  # one right and one wrong pair at least: the accuracy is neither 0 nor 1
        a, b = g.randn(n), g.randn(n)
        a[1], a[2] = b[1] + 0.5, b[2] - 0.5
        return a, b

    a, b = pair(8)
    b[0] = a[0]  # a tie counts as wrong (strictly greater)
    return [
        case("random", a, b),
        each(
            "all-right-all-wrong",
            ((torch.ones(3), torch.zeros(3)), {}),
            ((torch.zeros(3), torch.ones(3)), {}),
        ),
        case("returns-float", *pair(5), report_kinds=True),  # a Python float, not a tensor
        case("bad-shape", g.randn(3), g.randn(2)),
    ]


def _last_token_pool(g):
    return [
        case("2d", g.randn(3, 5), g.mask(3, 5), grad=[0]),
        case("3d", g.randn(4, 6, 2), g.mask(4, 6), grad=[0], grad_seed=1),
        case("empty-row", g.randn(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]])),
    ]


CASES = {
    "bradley_terry_loss": _bradley_terry_loss,
    "preference_accuracy": _preference_accuracy,
    "last_token_pool": _last_token_pool,
}
