"""Seeded snapshots of value AND gradient (CS336 style): recompute every case of
tests/snapshots/snapshot_cases.py with the solutions and compare with the stored .npz at atol 1e-6.

Regenerate on purpose only: ``.venv/bin/python tests/snapshots/make_snapshots.py [name ...]``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("solutions")

HERE = Path(__file__).resolve().parents[1] / "snapshots"
sys.path.insert(0, str(HERE))
from snapshot_cases import CASES, run_case  # noqa: E402

from course_lib.core.registry import BY_NAME  # noqa: E402

ATOL = 1e-6
RTOL = 1e-6  # ~16 float32 ulps: only matters for the few outputs > 1 in size (e.g. IPO losses ~ 60),
# where a 1-ulp difference of exp/log between CPUs would otherwise exceed ATOL
PARAMS = [(name, case) for name in sorted(CASES) for case in CASES[name]]


def _load(name):
    path = HERE / f"{name}.npz"
    assert path.exists(), f"{path.name} missing: run tests/snapshots/make_snapshots.py {name}"
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_every_case_is_a_registered_exercise_with_a_small_snapshot():
    for name in CASES:
        assert name in BY_NAME, f"snapshot cases for unknown exercise {name}"
        size = (HERE / f"{name}.npz").stat().st_size
        assert size < 16_000, f"{name}.npz is {size} bytes: keep snapshots small"


@pytest.mark.parametrize("name,case", PARAMS, ids=[f"{n}-{c[0]}" for n, c in PARAMS])
def test_snapshot_value_and_gradient(name, case):
    case_id, make, call = case
    z = _load(name)
    ex = BY_NAME[name]
    fn = getattr(importlib.import_module(f"solutions.{ex.module}"), name)
    inputs = {k.split("/")[-1]: torch.from_numpy(v) for k, v in z.items() if k.startswith(f"{case_id}/in/")}
    n_out = sum(k.startswith(f"{case_id}/out/") for k in z)
    assert inputs and n_out, f"{name}.npz has no case {case_id!r}: regenerate the snapshots"
    weights = [torch.from_numpy(z[f"{case_id}/w/{i}"]) for i in range(n_out)]
    _, _, outs, grads = run_case(fn, make, call, 0, inputs=inputs, weights=weights)
    assert len(outs) == n_out, f"{name}/{case_id}: {len(outs)} outputs, snapshot has {n_out}"
    for i, o in enumerate(outs):
        want = z[f"{case_id}/out/{i}"]
        assert tuple(o.shape) == want.shape, (
            f"{name}/{case_id} output {i}: shape {list(o.shape)} != {list(want.shape)}"
        )
        np.testing.assert_allclose(
            o.numpy(), want, atol=ATOL, rtol=RTOL, err_msg=f"{name}/{case_id} output {i}"
        )
    stored = {k.split("/")[-1] for k in z if k.startswith(f"{case_id}/grad/")}
    assert set(grads) == stored, (
        f"{name}/{case_id}: gradients w.r.t. {sorted(grads)}, snapshot has {sorted(stored)}"
    )
    for k, gr in grads.items():
        np.testing.assert_allclose(
            gr.numpy(), z[f"{case_id}/grad/{k}"], atol=ATOL, rtol=RTOL, err_msg=f"{name}/{case_id} d/d{k}"
        )


def test_snapshots_detect_a_wrong_gradient():
    """The comparison is sharp: a solution whose value is right but whose gradient is
    stopped somewhere (here: the clipped branch detached) fails."""
    from solutions import ppo

    case_id, make, call = CASES["ppo_policy_loss"][0]
    z = _load("ppo_policy_loss")
    inputs = {k.split("/")[-1]: torch.from_numpy(v) for k, v in z.items() if k.startswith(f"{case_id}/in/")}
    weights = [torch.from_numpy(z[f"{case_id}/w/{i}"]) for i in range(2)]

    def half_detached(logp, old_logp, advantages, mask, clip_eps=0.2):
        loss, frac = ppo.ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps)
        return loss.detach() + 0.5 * (loss - loss.detach()), frac  # same value, half the gradient

    _, _, outs, grads = run_case(half_detached, make, call, 0, inputs=inputs, weights=weights)
    np.testing.assert_allclose(outs[0].numpy(), z[f"{case_id}/out/0"], atol=ATOL, rtol=0)
    assert not np.allclose(grads["logp"].numpy(), z[f"{case_id}/grad/logp"], atol=ATOL, rtol=0)


def test_snapshots_detect_a_gradient_through_the_rewards():
    """reinforce_loss: the snapshot stores gradients for the log-probabilities only, so a loss
    of the same value whose advantages keep their graph (a gradient reaches the rewards) fails."""
    case_id, make, call = CASES["reinforce_loss"][1]  # baseline "mean"
    z = _load("reinforce_loss")
    inputs = {k.split("/")[-1]: torch.from_numpy(v) for k, v in z.items() if k.startswith(f"{case_id}/in/")}

    def attached(logprobs, rewards, baseline=None):
        return -((rewards - rewards.mean()) * logprobs).mean()

    _, _, outs, grads = run_case(
        attached, make, call, 0, inputs=inputs, weights=[torch.from_numpy(z[f"{case_id}/w/0"])]
    )
    np.testing.assert_allclose(outs[0].numpy(), z[f"{case_id}/out/0"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(grads["logprobs"].numpy(), z[f"{case_id}/grad/logprobs"], atol=ATOL, rtol=RTOL)
    stored = {k.split("/")[-1] for k in z if k.startswith(f"{case_id}/grad/")}
    assert set(grads) != stored and "rewards" in grads  # what test_snapshot_value_and_gradient compares
