"""The grader's hidden cases (course_instructor/grading/hidden/) catch every plausible wrong
implementation of tests/exercises/wrong_versions.py's WRONG table: each loses points. Run in-process
(no sandbox): the same case
runner and comparison the autograder uses, on the wrong function instead of a student's."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("solutions")

import wrong_versions

from course_instructor.grading import hidden
from course_instructor.grading.sandboxed import caserun


@pytest.fixture(autouse=True)
def _solutions_for_dependencies():
    """The one-step solutions call other exercises through course_lib's modules."""
    import course_lib

    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)


@functools.cache
def _expected(name: str):
    return hidden.expected_results(name)


@pytest.mark.parametrize("w", wrong_versions.WRONG, ids=wrong_versions.wrong_id)
def test_hidden_cases_catch_the_wrong_implementation(w):
    name, label, fn, _ = w
    cases, expected = _expected(name)
    got = caserun.run_cases(fn, cases)
    s = hidden.score(name, expected, got)
    assert s["passed"] < s["total"], f"{name} ({label}) passes all {s['total']} hidden cases"


@pytest.mark.parametrize("w", wrong_versions.VISIBLE_ONLY, ids=wrong_versions.wrong_id)
def test_hidden_cases_catch_what_only_the_visible_checks_caught(w):
    """A step that forgets zero_grad (a stale-gradient case: the model's parameters
    carry a .grad from an earlier step), dpo_loss rewards that still carry the graph and
    preference_accuracy returning a 0-d tensor (cases that report the kinds returned) lose points,
    and the failure message names the case and the property."""
    name, label, fn, _ = w
    cases, expected = _expected(name)
    s = hidden.score(name, expected, caserun.run_cases(fn, cases))
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
        hidden.solution_function("kl_estimate")(logp, ref_logp, kind) + 0.3
    )
    s = hidden.score("kl_estimate", expected, caserun.run_cases(wrong, cases))
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
    ok, msg = hidden.close(0.75, 0.5, 1e-4, 1e-5)
    assert not ok and "0.75" not in msg and "0.5" not in msg and "error ~1e-01" in msg, msg


@pytest.mark.parametrize("name", sorted({w[0] for w in wrong_versions.WRONG}))
def test_the_solution_passes_every_hidden_case(name):
    cases, expected = _expected(name)
    got = caserun.run_cases(hidden.solution_function(name), cases)
    s = hidden.score(name, expected, got)
    assert s["passed"] == s["total"], s["failures"]


def test_hidden_cases_are_laid_out_as_the_visible_checks():
    """One hidden-case module per exercise module, as course_lib/checks/ has, and every exercise's
    maker in the module of its own exercise module (so a unit's hidden cases are found where its
    visible checks are)."""
    import importlib
    from pathlib import Path

    from course_lib.core import registry as exercises

    checks = Path(importlib.import_module("course_lib.checks").__file__).parent
    folder = Path(hidden.__file__).parent
    public = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert public == {p.stem for p in checks.glob("*.py") if not p.stem.startswith("_")}
    assert public == set(exercises.modules())
    for module in public:
        for name in importlib.import_module(f"course_instructor.grading.hidden.{module}").CASES:
            assert exercises.get(name).module == module, f"{name}'s hidden cases are in hidden/{module}.py"
    assert set(hidden.MAKERS) == set(exercises.BY_NAME)
