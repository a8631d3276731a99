"""Hidden cases of the exercises of course_lib/dpo.py (unit 07, DPO): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, random_ids, tiny_model


def _sequence_logprobs(g):
    cases = []
    for i, avg in enumerate([False, True]):
        B, T, V = 3, 5, 7
        labels = torch.randint(0, V, (B, T), generator=g.g)
        m = g.mask(B, T)
        labels = torch.where(m.bool(), labels, torch.full_like(labels, -100))
        cases.append(
            case(f"average={avg}", g.randn(B, T, V, scale=2), labels, m, average=avg, grad=[0], grad_seed=i)
        )
    return cases


def _dpo_loss(g):
    cases = []
    for i, (lt, beta, ls) in enumerate(
        [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.1), ("ipo", 0.1, 0.0), ("hinge", 0.2, 0.0)]
    ):
        B = 5
        cases.append(
            case(
                f"{lt}-{beta}-{ls}",
                *[g.logp(B) * 10 for _ in range(4)],
                beta=beta,
                loss_type=lt,
                label_smoothing=ls,
                grad=[0, 1],
                grad_seed=i,
            )
        )
    cases.append(  # the rewards are statistics: detached, the losses carry the gradient
        case("detached-rewards", *[g.logp(3) * 10 for _ in range(4)], report_kinds=True, grad=[0])
    )
    cases.append(case("bad-loss-type", *[g.logp(2) for _ in range(4)], loss_type="kto"))
    return cases


def _dpo_batch_loss(g):
    cases = []
    for i, (B, T, kw) in enumerate(
        [
            (2, 5, {}),
            (3, 4, {"beta": 0.5, "loss_type": "ipo", "average": True}),
            (2, 4, {"loss_type": "hinge", "label_smoothing": 0.0}),
        ]
    ):
        m = g.mask(2 * B, T)
        labels = torch.where(m.bool(), random_ids(g, 2 * B, T), torch.full((2 * B, T), -100))
        batch = {
            "input_ids": random_ids(g, 2 * B, T),
            "labels": labels,
            "completion_mask": m,
            "ref_logps": g.logp(2 * B) * 5,
        }
        cases.append(case(f"pairs{i}", tiny_model(i), batch, grad_model=True, **kw))
    batch = {
        "input_ids": random_ids(g, 3, 4),
        "labels": random_ids(g, 3, 4),
        "completion_mask": torch.ones(3, 4),
        "ref_logps": g.logp(3),
    }
    cases.append(case("odd-rows", tiny_model(0), batch))
    return cases


CASES = {
    "sequence_logprobs": _sequence_logprobs,
    "dpo_loss": _dpo_loss,
    "dpo_batch_loss": _dpo_batch_loss,
}
