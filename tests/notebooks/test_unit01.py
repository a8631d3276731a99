"""Unit 01 (reward functions): the provided experiment code and the notebook."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from course_lib import rewards
from course_lib.labs import unit01

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_reward_functions.ipynb"
FIGURES = [
    "01_reward_histograms",
    "01_exponential_shaping",
    "01_best_of_n",
    "01_reward_hacking",
    "01_trl_grpo",
]


# --------------------------------------------------------------------------- provided helpers
def test_positive_word_count_counts_lexicon_words_and_has_trl_signature():
    got = unit01.positive_word_count(
        ["A great, wonderful film.", "boring plot", ""], prompts=["p"] * 3, completion_ids=None
    )
    assert got == [2.0, 0.0, 0.0]
    assert unit01.positive_word_count([[{"role": "assistant", "content": "great great"}]]) == [2.0]


def test_expected_best_of_n_matches_brute_force_over_subsets():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(3, 6, generator=g, dtype=torch.float64)
    ns = [1, 2, 3, 6]
    got = unit01.expected_best_of_n(r, ns)
    for n, value in zip(ns, got):
        brute = sum(max(row[list(s)]) for row in r for s in itertools.combinations(range(6), n))
        brute /= len(r) * len(list(itertools.combinations(range(6), n)))
        assert value == pytest.approx(float(brute), abs=1e-9)
    assert got[0] == pytest.approx(float(r.mean()))  # n = 1: the mean reward
    assert got[-1] == pytest.approx(float(r.max(1).values.mean()))  # n = N: the best sample
    assert got == sorted(got)  # never decreases with n


def test_expected_best_of_n_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[P, N\]"):
        unit01.expected_best_of_n([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="n=5"):
        unit01.expected_best_of_n(torch.zeros(2, 4), [5])


def test_best_of_n_texts_picks_the_best_of_each_group():
    texts = ["a", "b", "c", "d"]
    assert unit01.best_of_n_texts(texts, [0.1, 0.9, 0.5, 0.2], 2) == [("b", 0.9), ("c", 0.5)]
    with pytest.raises(ValueError):
        unit01.best_of_n_texts(texts, [0.1, 0.9, 0.5], 2)


def test_greedy_search_hacks_the_naive_reward_and_repetition_penalty_fixes_it(solutions_on):
    words = ["the", "movie", "great", "was", "wonderful", "plot", "superb"]
    hacked = unit01.greedy_word_search(unit01.positive_word_count, words, length=6)
    assert hacked == "great great great great great great"
    fixed = unit01.greedy_word_search(
        rewards.combine_rewards([unit01.positive_word_count, rewards.repetition_penalty], [1.0, -2.0]),
        words,
        length=3,
    )
    assert sorted(fixed.split()) == ["great", "superb", "wonderful"]
    assert rewards.repetition_penalty([fixed]) == [0.0]
    with pytest.raises(ValueError, match="no candidate words"):
        unit01.greedy_word_search(unit01.positive_word_count, [], 3)


def test_exact_policy_gradient_is_the_autograd_gradient_of_expected_reward():
    logits = torch.tensor([0.3, -1.0, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    R = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    (torch.softmax(logits, -1) * R).sum().backward()
    assert torch.allclose(unit01.exact_policy_gradient(logits.detach(), R), logits.grad)


def test_reinforce_gradients_are_unbiased_and_a_baseline_only_changes_the_noise(solutions_on):
    logits = torch.log(torch.tensor([0.1, 0.3, 0.3, 0.3]))
    pm1, zero_one = [1.0, -1.0, -1.0, -1.0], [1.0, 0.0, 0.0, 0.0]
    g = torch.Generator().manual_seed(0)
    est = {
        (name, b): unit01.reinforce_gradients(logits, R, n=8, repeats=3000, baseline=b, generator=g)
        for name, R in (("pm1", pm1), ("01", zero_one))
        for b in ("none", "mean")
    }
    true = unit01.exact_policy_gradient(logits, pm1)
    # no baseline: unbiased, and a constant offset (+1/-1 = 2 * (1/0) - 1) only rescales the mean
    assert torch.allclose(est["pm1", "none"].mean(0), true, atol=0.02)
    assert torch.allclose(est["01", "none"].mean(0), true / 2, atol=0.01)
    # the batch-mean baseline includes the sample's own reward: E = (n - 1) / n * true gradient
    assert torch.allclose(est["pm1", "mean"].mean(0), true * 7 / 8, atol=0.02)
    noise = {
        k: float(v.var(0).sum().sqrt()) / float(true.norm() / (2 if k[0] == "01" else 1))
        for k, v in est.items()
    }
    assert noise["pm1", "none"] > 1.2 * noise["01", "none"]  # the offset adds noise
    assert noise["pm1", "mean"] == pytest.approx(noise["01", "mean"], rel=0.15)  # the baseline removes it
    with pytest.raises(ValueError, match="baseline"):
        unit01.reinforce_gradients(logits, pm1, n=2, repeats=1, baseline="median")
    with pytest.raises(ValueError, match=r"\[K\]"):
        unit01.reinforce_gradients(logits, [1.0, 0.0], n=2, repeats=1)


def test_reinforce_gradients_call_the_students_reinforce_loss(monkeypatch):
    """The lab differentiates course_lib.rewards.reinforce_loss (exercise 1.8), looked up at call
    time: with the stub it stops at the exercise, and a wrong sign flips every estimate."""
    logits = torch.log(torch.tensor([0.1, 0.3, 0.3, 0.3]))
    with pytest.raises(NotImplementedError, match=r"Exercise 1\.8"):
        unit01.reinforce_gradients(logits, [1.0, 0, 0, 0], n=2, repeats=1)
    from solutions.rewards import reinforce_loss

    est = {}
    for sign in (1, -1):
        monkeypatch.setattr(
            rewards, "reinforce_loss", lambda lp, r, b=None, s=sign: s * reinforce_loss(lp, r, b)
        )
        g = torch.Generator().manual_seed(0)
        est[sign] = unit01.reinforce_gradients(logits, [1.0, -1, -1, -1], n=4, repeats=5, generator=g)
    assert torch.equal(est[1], -est[-1]) and est[1].abs().sum() > 0


def test_candidate_words_most_frequent_first():
    assert unit01.candidate_words(["b a b.", "c b a, 12"], k=2) == ["b", "a"]


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
    run = run_notebook("01")
    m = run.metrics
    for fig in FIGURES:
        assert f"{fig}.png" in run.figures, run.figures
    bon = m["best_of_n_sentiment"]
    assert 0.3 < bon["before"] < 0.8 and bon["after"] > bon["before"] + 0.15, bon
    assert m["best_of_n_combined"]["after"] > m["best_of_n_combined"]["before"]
    hack = m["hack_repetition"]
    assert hack["before"] >= 0.8 and hack["after"] <= 0.05, hack  # great great … → no repeats
    assert 0.0 <= m["trl_logged_sentiment_reward"]["after"] <= 1.0
    out = run.outputs_text()
    assert "TRL logged rewards/sentiment_reward/mean" in out
    assert "great great great" in out or any(f"{w} {w} {w}" in out for w in unit01.POSITIVE_WORDS)


@pytest.mark.notebook
def test_notebook_gpu_path_runs_on_standins(run_notebook):
    run = run_notebook("01", profile="gpu")
    for fig in FIGURES:
        assert f"{fig}.png" in run.figures, run.figures
    assert {"best_of_n_sentiment", "hack_repetition", "trl_logged_sentiment_reward"} <= set(run.metrics)
    assert "profile gpu" in run.outputs_text()
