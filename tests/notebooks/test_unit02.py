"""Unit 02 (KL penalties): the provided experiment code and the notebook."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib import kl
from course_lib.labs import unit02

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_kl_penalties.ipynb"
FIGURES = [
    "02_estimator_bias_variance",
    "02_forward_vs_reverse_kl",
    "02_per_token_kl",
    "02_beta_tradeoff",
    "02_likelihood_terms",
]


# --------------------------------------------------------------------------- toy distributions
def test_estimator_moments_match_theory_and_monte_carlo(solutions_on):
    assert unit02.estimator_moments(*unit02.toy_pair(0.0))["exact"] == pytest.approx(0.0, abs=1e-12)
    mom = unit02.estimator_moments(*unit02.toy_pair(0.5))
    assert mom["exact"] > 0
    assert abs(mom["k1"]["bias"]) < 1e-9 and abs(mom["k3"]["bias"]) < 1e-9  # unbiased
    assert abs(mom["k2"]["bias"]) > 1e-4  # biased
    assert mom["k3"]["std"] < mom["k1"]["std"]  # control variate
    pol, ref = unit02.toy_pair(0.5)
    s = unit02.estimator_samples(pol, ref, 200_000, generator=torch.Generator().manual_seed(0))
    for kind in unit02.KINDS:
        assert float(s[kind].mean()) == pytest.approx(mom[kind]["mean"], rel=0.05)
        assert float(s[kind].std()) == pytest.approx(mom[kind]["std"], rel=0.05)
    assert float(s["k1"].min()) < 0 <= float(s["k3"].min()) + 1e-12


def test_sweep_shows_k1_noise_falling_and_k3_noise_rising_with_distance(solutions_on):
    near, far = unit02.sweep([0.05, 3.0])
    assert near["k1"]["std"] / near["exact"] > 10 * near["k3"]["std"] / near["exact"]
    assert far["k3"]["std"] / far["exact"] > far["k1"]["std"] / far["exact"]


def test_forward_kl_covers_and_reverse_kl_seeks_a_mode(solutions_on):
    grid = torch.linspace(-5, 5, 201, dtype=torch.float64)
    target = unit02.two_mode_target(grid)
    fwd = unit02.fit_one_mode(target, grid, "forward", init_mean=1.0, init_std=0.5)
    rev = unit02.fit_one_mode(target, grid, "reverse", init_mean=1.0, init_std=0.5)
    assert abs(fwd["mean"]) < 0.2 and fwd["std"] > 1.5  # between the modes, wide
    assert abs(rev["mean"] - 2.0) < 0.2 and rev["std"] < 0.8  # on one mode, narrow
    assert fwd["losses"][-1] < fwd["losses"][0] and rev["losses"][-1] < rev["losses"][0]
    with pytest.raises(ValueError, match="direction"):
        unit02.fit_one_mode(target, grid, "sideways")


# --------------------------------------------------------------------------- the tiny model
def test_steered_policy_and_rollout_stats(tiny, solutions_on):
    from course_lib.core.models import frozen_copy

    model, tok = tiny
    ref = frozen_copy(model)
    ids = unit02.word_token_ids(tok, ["great", "wonderful"])
    assert ids and all(tok.decode([i]).strip() in {"great", "wonderful"} for i in ids)
    prompts = ["The movie was", "I think the plot was"]
    same = unit02.rollout_stats(
        unit02.SteeredPolicy(model, ids, 0.0),
        ref,
        tok,
        prompts,
        8,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(same.logp, same.ref_logp, atol=1e-5)
    assert float(same.exact.abs().max()) < 1e-5
    st = unit02.rollout_stats(
        unit02.SteeredPolicy(model, ids, 3.0),
        ref,
        tok,
        prompts,
        8,
        num_samples=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert st.logp.shape == st.mask.shape == (6, st.rollout.completion_ids.shape[1])
    assert st.token_mean(st.exact) > 1e-3
    assert float((st.logp * (1 - st.mask)).abs().max()) == 0.0  # zero off the mask
    scores = torch.rand(6)
    beta = 0.2
    seq_k1 = st.seq_sum(kl.kl_estimate(st.logp, st.ref_logp, "k1"))
    assert torch.allclose(unit02.penalized_return(scores, st, beta), scores - beta * seq_k1, atol=1e-5)


# --------------------------------------------------------------------------- the notebook
def test_notebook_saves_its_figures():
    """Conventions and the stub run: tests/notebooks/test_notebook_builders.py (one check for all units)."""
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for fig in FIGURES:
        assert f'save_figure(fig, "{fig}")' in src


@pytest.mark.notebook
def test_notebook_runs_with_the_solutions_and_reports_its_numbers(run_notebook):
    run = run_notebook("02")
    m = run.metrics
    for fig in FIGURES:
        assert f"{fig}.png" in run.figures, run.figures
    std = m["toy_rel_std_k1_to_k3"]
    assert std["before"] > 3 * std["after"], std  # k3 is far less noisy than k1 here
    err = m["toy_mc64_rel_error_k1_to_k3"]
    assert err["after"] < 0.25 and err["before"] > err["after"], err
    tok_kl = m["tiny_token_kl_exact"]
    assert tok_kl["before"] == pytest.approx(0.0, abs=1e-5) and tok_kl["after"] > 0.005, tok_kl
    assert m["tiny_k3_abs_error"]["after"] < 0.5 * tok_kl["after"] + 0.01
    assert m["sentiment_steered"]["after"] > m["sentiment_steered"]["before"]
    out = run.outputs_text()
    assert "log10 max |bwd term|" in out and "fwd term" in out


@pytest.mark.notebook
def test_notebook_gpu_path_runs_on_standins(run_notebook):
    run = run_notebook("02", profile="gpu")
    for fig in FIGURES:
        assert f"{fig}.png" in run.figures, run.figures
    assert {"toy_rel_std_k1_to_k3", "tiny_token_kl_exact"} <= set(run.metrics)
    assert "profile gpu" in run.outputs_text()
