"""Hidden cases of the exercises of course_lib/grpo.py (unit 06, GRPO): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, rollout, sgd, tiny_model


def _group_advantages(g):
    r = g.randn(8)
    same = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    return [
        case("group", r, 4, grad=[0]),
        case("group-ties", same, 4, "group"),
        case("batch", g.randn(6), 3, scale="batch", grad=[0], grad_seed=1),
        case("none", g.randn(6), 2, scale="none"),
        case("eps", g.randn(4), 2, eps=0.5),
        case("not-divisible", g.randn(7), 4),
    ]


def _grpo_loss(g):
    cases = []
    for i, lt in enumerate(["grpo", "bnpo", "dr_grpo", "dapo"]):
        B, T = 4, 5
        logp = g.logp(B, T)
        cases.append(
            case(
                f"{lt}",
                logp,
                logp + g.randn(B, T, scale=0.2),
                g.logp(B, T),
                g.randn(B),
                g.mask(B, T),
                loss_type=lt,
                grad=[0],
                grad_seed=i,
            )
        )
    B, T = 3, 4
    logp = g.logp(B, T)
    cases.append(
        case(
            "dr_grpo-maxlen",
            logp,
            logp.clone(),
            g.logp(B, T),
            g.randn(B),
            g.mask(B, T),
            0.1,
            0.0,
            "dr_grpo",
            8,
            grad=[0],
        )
    )
    cases.append(case("no-ref", logp, logp + 0.1, None, g.randn(B), g.mask(B, T), beta=0.0, grad=[0]))
    cases.append(case("bad-loss-type", logp, logp, logp, g.randn(B), g.mask(B, T), loss_type="ppo"))
    return cases


def _grpo_step(g):
    cases = []
    B, P, C = 4, 3, 5
    cases.append(
        case(
            "on-policy",
            tiny_model(1),
            sgd(),
            rollout(g, B, P, C),
            g.randn(B),
            ref_logp=g.logp(B, C),
            report_params=True,
        )
    )
    cases.append(
        case(
            "old-logp-dapo",
            tiny_model(2),
            sgd(),
            rollout(g, B, P, C),
            g.randn(B),
            g.logp(B, C),
            g.logp(B, C),
            loss_type="dapo",
            clip_eps=0.1,
            max_grad_norm=0.05,
            report_params=True,
        )
    )
    cases.append(
        case(
            "beta0-temperature",
            tiny_model(3),
            sgd(),
            rollout(g, 2, 2, 4),
            g.randn(2),
            beta=0.0,
            temperature=0.7,
            report_params=True,
        )
    )
    cases.append(
        case(
            "stale-grad",
            tiny_model(4, stale_grad=True),
            sgd(),
            rollout(g, B, P, C),
            g.randn(B),
            ref_logp=g.logp(B, C),
            report_params=True,
        )
    )
    cases.append(case("bad-advantages", tiny_model(0), sgd(), rollout(g, 2, 2, 3), g.randn(3)))
    return cases


def _rloo_advantages(g):
    return [
        case("G4", g.randn(8), 4, grad=[0]),
        case("G2", g.randn(6), 2, grad=[0], grad_seed=1),
        case("ties", torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 3),
        case("int-rewards", torch.tensor([1, 0, 1, 1, 0, 0]), 3),
        case("not-divisible", g.randn(7), 4),
        case("group-size-1", g.randn(3), 1),
    ]


def _reinforce_pp_advantages(g):
    flat = torch.cat([torch.full((4,), 0.5), g.randn(8)])
    return [
        case("G4", g.randn(12), 4, grad=[0]),
        case("G2", g.randn(6) * 3, 2, grad=[0], grad_seed=1),
        case("flat-group", flat, 4),
        case("eps", g.randn(4), 2, eps=0.5),
        case("not-divisible", g.randn(7), 4),
        case("group-size-1", g.randn(3), 1),
    ]


def _high_entropy_mask(g):
    def ent(B, T, scale=2.0):  # plausible per-token entropies (>= 0, nats)
        return g.randn(B, T).abs() * scale

    B, T = 4, 6
    cases = [case(f"q{q}", ent(B, T), g.mask(B, T), q) for q in (0.2, 0.5, 0.8)]
    mask = g.mask(B, T)
    mask[-1, -2:] = 0  # at least one padded row
    cases.append(case("q1-keeps-all", ent(B, T), mask, 1.0))
    e = ent(B, T)
    cases.append(case("padding-high", torch.where(mask.bool(), e, torch.full_like(e, 1e4)), mask, 0.3))
    cases.append(case("padding-low", torch.where(mask.bool(), e, torch.full_like(e, -1e4)), mask, 0.3))
    rows = torch.cat([ent(2, T, 0.1), ent(2, T, 3.0)])  # two rows of low entropy, two of high
    cases.append(case("batch-not-row", rows, torch.ones(B, T, dtype=torch.long), 0.4))
    ties = torch.tensor([[0.5, 1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 3.0, 0.0, 0.0]])
    cases.append(case("ties", ties, torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]), 0.5))
    cases.append(case("float64", ent(3, 5).double(), g.mask(3, 5), 0.25))
    cases.append(case("q-small", ent(5, 8), g.mask(5, 8), 0.05))
    cases.append(case("q0", ent(2, 3), g.mask(2, 3), 0.0))
    cases.append(case("q-above-1", ent(2, 3), g.mask(2, 3), 1.2))
    return cases


CASES = {
    "group_advantages": _group_advantages,
    "grpo_loss": _grpo_loss,
    "grpo_step": _grpo_step,
    "rloo_advantages": _rloo_advantages,
    "reinforce_pp_advantages": _reinforce_pp_advantages,
    "high_entropy_mask": _high_entropy_mask,
}
