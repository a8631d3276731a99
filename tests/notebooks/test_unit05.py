"""Unit 05 (PPO): exercise 5.6 `ppo_minibatch_loss` (stub + solution)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import course_lib
from course_lib import ppo
from course_lib.core import registry as exercises


# --------------------------------------------------------------------------- exercise 5.6
def _hand_case():
    """B=1, T=3 (last position is padding), V=2, uniform logits: every number is known by hand."""
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    values = torch.tensor([[0.5, 0.0, 7.0]], requires_grad=True)
    half = math.log(0.5)
    batch = {
        "response_ids": torch.tensor([[0, 1, 0]]),
        "mask": torch.tensor([[1, 1, 0]]),
        "old_logprobs": torch.tensor([[half - 0.1, half, 3.0]]),  # ratio exp(0.1), 1, (pad)
        "old_values": torch.tensor([[0.0, 0.0, -5.0]]),
        "advantages": torch.tensor([[1.0, 2.0, 100.0]]),
        "returns": torch.tensor([[1.0, 1.0, 50.0]]),
    }
    return logits, values, batch


def test_stub_names_the_exercise():
    with pytest.raises(NotImplementedError, match=r"Exercise 5\.6 \(notebook 05_ppo\)"):
        ppo.ppo_minibatch_loss(*_hand_case())


def test_registered_and_same_signature_as_solution():
    import solutions.ppo as sol

    ex = exercises.get("ppo_minibatch_loss")
    assert (ex.number, ex.module, ex.notebook) == ("5.6", "ppo", "05_ppo")
    assert inspect.signature(sol.ppo_minibatch_loss) == inspect.signature(ppo.ppo_minibatch_loss)
    assert "COURSE-SOLUTION-CANARY" in inspect.getsource(sol.ppo_minibatch_loss)
    assert "COURSE-SOLUTION-CANARY" not in inspect.getsource(ppo)


def test_hand_computed_values(solutions_on):
    logits, values, batch = _hand_case()
    loss, stats = ppo.ppo_minibatch_loss(
        logits, values, batch, clip_range=0.2, cliprange_value=0.2, vf_coef=0.1, entropy_coef=0.01
    )
    policy = -(math.exp(0.1) * 1.0 + 1.0 * 2.0) / 2  # ratio within the clip range
    value = 0.5 * ((0.2 - 1.0) ** 2 + (0.0 - 1.0) ** 2) / 2  # t0: the clipped error (0.64) is larger
    entropy = math.log(2)
    approx_kl = (math.exp(0.1) - 1 - 0.1) / 2
    assert stats["policy_loss"].item() == pytest.approx(policy, rel=1e-5)
    assert stats["value_loss"].item() == pytest.approx(value, rel=1e-5)
    assert stats["entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert stats["approx_kl"].item() == pytest.approx(approx_kl, rel=1e-4)
    assert stats["clip_fraction"].item() == 0.0
    assert loss.item() == pytest.approx(policy + 0.1 * value - 0.01 * entropy, rel=1e-5)
    assert all(not v.requires_grad for v in stats.values())
    loss.backward()
    assert logits.grad.abs().sum() > 0 and values.grad[0, 1] != 0
    assert values.grad[0, 0] == 0  # t0: the clipped value error is the larger one -> no gradient
    assert values.grad[0, 2] == 0 and logits.grad[0, 2].abs().sum() == 0  # padding gets no gradient


def test_clipping_and_coefficients(solutions_on):
    logits, values, batch = _hand_case()
    batch["old_logprobs"][0, 0] = math.log(0.5) - 0.5  # ratio e^0.5 > 1.2 with A > 0: clipped
    _, stats = ppo.ppo_minibatch_loss(logits, values, batch, clip_range=0.2)
    assert stats["clip_fraction"].item() == pytest.approx(0.5)
    assert stats["policy_loss"].item() == pytest.approx(-(1.2 * 1.0 + 2.0) / 2, rel=1e-5)
    # more entropy bonus, lower loss; vf_coef scales the value term
    l0, s0 = ppo.ppo_minibatch_loss(logits, values, batch, vf_coef=0.0, entropy_coef=0.0)
    l1, _ = ppo.ppo_minibatch_loss(logits, values, batch, vf_coef=1.0, entropy_coef=0.0)
    l2, _ = ppo.ppo_minibatch_loss(logits, values, batch, vf_coef=0.0, entropy_coef=1.0)
    assert l0.item() == pytest.approx(s0["policy_loss"].item(), rel=1e-6)
    assert (l1 - l0).item() == pytest.approx(s0["value_loss"].item(), rel=1e-5)
    assert (l0 - l2).item() == pytest.approx(s0["entropy"].item(), rel=1e-5)


def test_bad_input_names_the_problem(solutions_on):
    logits, values, batch = _hand_case()
    del batch["returns"]
    with pytest.raises(KeyError, match="returns"):
        ppo.ppo_minibatch_loss(logits, values, batch)
    logits, values, batch = _hand_case()
    with pytest.raises(ValueError, match="ppo_minibatch_loss"):
        ppo.ppo_minibatch_loss(logits, values[:, :2], batch)


# --------------------------------------------------------------------------- the notebook
@pytest.mark.notebook
def test_notebook_meets_the_bars(run_notebook):
    run = run_notebook("05")
    m = run.metrics
    for k in ("positive_fraction", "distinct_2", "kl_to_ref", "train_seconds"):
        assert k in m, f"report_metrics('05', ...) did not report {k}: {sorted(m)}"
    pf, d2, kl = m["positive_fraction"], m["distinct_2"], m["kl_to_ref"]
    assert pf["after"] - pf["before"] >= 0.30, pf
    assert abs(d2["after"] - d2["before"]) <= 0.20 * d2["before"], d2
    assert kl["after"] <= 0.5, kl
    assert m["train_seconds"]["after"] > 0, m["train_seconds"]
    for fig in ("05_halfway.png", "05_training_curves.png", "05_kl_coef_sweep.png", "05_ablation.png"):
        assert fig in run.figures, run.figures


@pytest.mark.notebook
def test_notebook_saves_the_checkpoint(run_notebook, session_checkpoints):
    run_notebook("05")
    from course_lib.core.models import load_policy

    ckpt = session_checkpoints / "ppo"
    assert (ckpt / "config.json").exists() and (ckpt / "value_head.safetensors").exists()
    model, tok = load_policy(ckpt, profile=course_lib.get_profile("tiny"), device="cpu")
    from course_lib.core import sampling

    roll = sampling.sample(
        model, tok, ["The movie was"], max_new_tokens=8, generator=torch.Generator().manual_seed(0)
    )
    assert roll.completion_mask.sum() > 0


@pytest.mark.notebook
def test_notebook_gpu_path_on_standins(run_notebook):
    run = run_notebook("05", profile="gpu")
    assert {"positive_fraction", "distinct_2", "kl_to_ref"} <= set(run.metrics)
    assert (run.dir / "ckpt" / "ppo" / "config.json").exists()
