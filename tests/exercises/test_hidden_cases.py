"""The grader's hidden cases (solutions/grading.py) catch every plausible wrong implementation of
tests/exercises/wrong_versions.py's WRONG table: each loses points. Run in-process (no sandbox): the same case
runner and comparison the autograder uses, on the wrong function instead of a student's."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("solutions")

import wrong_versions

from course_instructor.grading import caserun
from solutions import grading


@pytest.fixture(autouse=True)
def _solutions_for_dependencies():
    """The one-step solutions call other exercises through course_lib's modules."""
    import course_lib

    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)


@functools.cache
def _expected(name: str):
    return grading.expected_results(name)


@pytest.mark.parametrize("w", wrong_versions.WRONG, ids=wrong_versions.wrong_id)
def test_hidden_cases_catch_the_wrong_implementation(w):
    name, label, fn, _ = w
    cases, expected = _expected(name)
    got = caserun.run_cases(fn, cases)
    s = grading.score(name, expected, got)
    assert s["passed"] < s["total"], f"{name} ({label}) passes all {s['total']} hidden cases"


@pytest.mark.parametrize("w", wrong_versions.VISIBLE_ONLY, ids=wrong_versions.wrong_id)
def test_hidden_cases_catch_what_only_the_visible_checks_caught(w):
    """A step that forgets zero_grad (a stale-gradient case: the model's parameters
    carry a .grad from an earlier step), dpo_loss rewards that still carry the graph and
    preference_accuracy returning a 0-d tensor (cases that report the kinds returned) lose points,
    and the failure message names the case and the property."""
    name, label, fn, _ = w
    cases, expected = _expected(name)
    s = grading.score(name, expected, caserun.run_cases(fn, cases))
    assert s["passed"] < s["total"] and s["score"] < s["max_score"], f"{name} ({label}) lost no points"
    msg = "\n".join(s["failures"])
    want = {"sft_train_step": "stale-grad", "grpo_step": "stale-grad"}.get(name, "kinds")
    assert want in msg, msg
    assert "expected [" not in msg and "expected 0." not in msg, msg  # no expected numbers


def test_failure_messages_name_the_case_and_error_size_not_the_expected_numbers():
    """The feedback shows the case id, the shape and how large the error is; never the
    expected values (a resubmission must not be able to build a lookup table)."""
    cases, expected = _expected("kl_estimate")
    wrong = lambda logp, ref_logp, kind="k3": (
        grading.solution_function("kl_estimate")(logp, ref_logp, kind) + 0.3
    )
    s = grading.score("kl_estimate", expected, caserun.run_cases(wrong, cases))
    assert s["failures"], s
    for line in s["failures"][1:]:  # the first says the bad-input cases do not count
        assert line.startswith("case ") and "(" in line, line
    text = "\n".join(s["failures"])
    assert "error ~1e" in text and "values are wrong" in text, text
    for e in expected:
        v = e["value"]
        if hasattr(v, "flatten"):
            for x in v.flatten()[:3].tolist():
                assert f"{x:.4g}" not in text, (x, text)
    # a wrong scalar: the size of the error, not the number
    ok, msg = caserun.close(0.75, 0.5, 1e-4, 1e-5)
    assert not ok and "0.75" not in msg and "0.5" not in msg and "error ~1e-01" in msg, msg


@pytest.mark.parametrize("name", sorted({w[0] for w in wrong_versions.WRONG}))
def test_the_solution_passes_every_hidden_case(name):
    cases, expected = _expected(name)
    got = caserun.run_cases(grading.solution_function(name), cases)
    s = grading.score(name, expected, got)
    assert s["passed"] == s["total"], s["failures"]
