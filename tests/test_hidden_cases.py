"""The grader's hidden cases (solutions/grading.py) catch every plausible wrong implementation of
tests/test_checks.py's WRONG table: each loses points. Run in-process (no sandbox): the same case
runner and comparison the autograder uses, on the wrong function instead of a student's."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("solutions")

import test_checks

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


@pytest.mark.parametrize("w", test_checks.WRONG, ids=test_checks._wid)
def test_hidden_cases_catch_the_wrong_implementation(w):
    name, label, fn, _ = w
    cases, expected = _expected(name)
    got = caserun.run_cases(fn, cases)
    s = grading.score(name, expected, got)
    assert s["passed"] < s["total"], f"{name} ({label}) passes all {s['total']} hidden cases"


@pytest.mark.parametrize("name", sorted({w[0] for w in test_checks.WRONG}))
def test_the_solution_passes_every_hidden_case(name):
    cases, expected = _expected(name)
    got = caserun.run_cases(grading.solution_function(name), cases)
    s = grading.score(name, expected, got)
    assert s["passed"] == s["total"], s["failures"]
