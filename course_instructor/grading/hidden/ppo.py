"""Hidden cases of the exercises of course_lib/ppo.py (unit 05, PPO): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case


def _compute_gae(g):
    cases = []
    for i, (B, T, gamma, lam) in enumerate([(3, 6, 1.0, 0.95), (2, 5, 0.9, 0.8), (4, 3, 0.99, 1.0)]):
        m = g.mask(B, T)
        cases.append(case(f"padded{i}", g.randn(B, T) * m, g.randn(B, T) * m, m, gamma, lam))
    m = g.mask(2, 4)
    cases.append(case("garbage-in-padding", g.randn(2, 4), g.randn(2, 4), m, gamma=1.0, lam=0.9))
    return cases


def _whiten(g):
    return [
        case("shift", g.randn(3, 5, scale=3) + 2, g.mask(3, 5, 2), grad=[0]),
        case("no-shift", g.randn(4, 4) - 1, g.mask(4, 4, 2), shift_mean=False, grad=[0], grad_seed=1),
        case("1d", g.randn(7), torch.tensor([1, 1, 1, 0, 1, 1, 0]), grad=[0]),
    ]


def _ppo_policy_loss(g):
    cases = []
    for i, (B, T, eps) in enumerate([(3, 5, 0.2), (2, 6, 0.1), (4, 4, 0.3)]):
        logp = g.logp(B, T)
        old = logp + g.randn(B, T, scale=0.3)
        cases.append(case(f"padded{i}", logp, old, g.randn(B, T), g.mask(B, T), eps, grad=[0], grad_seed=i))
    return cases


def _ppo_value_loss(g):
    cases = []
    for i, (B, T, cr) in enumerate([(3, 5, 0.2), (2, 4, 0.5)]):
        old = g.randn(B, T)
        cases.append(
            case(
                f"padded{i}",
                old + g.randn(B, T, scale=0.5),
                old,
                g.randn(B, T),
                g.mask(B, T),
                cr,
                grad=[0],
                grad_seed=i,
            )
        )
    return cases


def _entropy_from_logits(g):
    return [
        case("2d", g.randn(3, 7, scale=2), grad=[0]),
        case("3d", g.randn(2, 4, 5), grad=[0], grad_seed=1),
        case("peaked", g.randn(2, 6, scale=30), grad=[0]),
    ]


def _ppo_minibatch_loss(g):
    cases = []
    for i, (B, T, V, kw) in enumerate(
        [(2, 5, 6, {}), (3, 4, 5, {"vf_coef": 0.5, "entropy_coef": 0.01, "clip_range": 0.1})]
    ):
        m = g.mask(B, T)
        old_logp = g.logp(B, T)
        batch = {
            "response_ids": torch.randint(0, V, (B, T), generator=g.g),
            "mask": m,
            "old_logprobs": old_logp,
            "old_values": g.randn(B, T),
            "advantages": g.randn(B, T),
            "returns": g.randn(B, T),
        }
        cases.append(
            case(f"minibatch{i}", g.randn(B, T, V), g.randn(B, T), batch, grad=[0, 1], grad_seed=i, **kw)
        )
    batch = {"response_ids": torch.zeros(2, 3, dtype=torch.long), "mask": torch.ones(2, 3)}
    cases.append(case("missing-key", g.randn(2, 3, 4), g.randn(2, 3), batch))
    return cases


CASES = {
    "compute_gae": _compute_gae,
    "whiten": _whiten,
    "ppo_policy_loss": _ppo_policy_loss,
    "ppo_value_loss": _ppo_value_loss,
    "entropy_from_logits": _entropy_from_logits,
    "ppo_minibatch_loss": _ppo_minibatch_loss,
}
