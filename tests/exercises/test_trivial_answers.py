"""Trivial answers earn (almost) nothing: for every exercise, each stub-like implementation below
passes at most ``hidden.TRIVIAL_MAX_PASS`` (a tenth) of its hidden cases, at two seeds, through
the same case runner, ``compare`` and ``score`` the autograder uses (the rule is stated at the top
of course_instructor/grading/hidden/_cases.py).

The trivial implementations are built from the structure of the solution's results, case by case
(the strongest version of each: it even knows the output's shape):

* ``zeros`` / ``ones``: 0 / 1 where a number is expected, a tensor of zeros / ones (False / True
  for a bool tensor) of the expected shape, a list of them of the expected length, a tuple or dict
  of such where the solution returns one;
* ``echo-first-arg``: the first positional argument unchanged (a tuple of it for tuple outputs);
  ``echo-first-tensor-or-list``: the first tensor or list argument, likewise;
* ``return-0.0`` and ``return-None``: the literal stub-like answers;
* ``<any of these>+checks``: the same answers behind perfect input checks (it raises what the
  solution raises on a bad-input case), as a stub that keeps its argument checks would.

A case whose function returns a function (``then_call``) gets a function that answers trivially;
a case that calls the function on several inputs (``each``) gets a trivial answer for every call.
"""

from __future__ import annotations

import builtins
import functools
import json

import pytest
import torch

pytest.importorskip("solutions")

from course_instructor.grading import hidden, wire
from course_instructor.grading.sandboxed import caserun
from course_lib.core import registry as exercises

SEEDS = (hidden.DEFAULT_SEED, 7)


def _template(case: dict, result: dict):
    """The value the exercise function itself returned in `result` (without the case's
    report_kinds / report_params wrapper); None for a bad-input case."""
    if result.get("error"):
        return None
    v = result["value"]
    if case.get("report_kinds") or case.get("report_params"):
        v = v["return"]
    return v


def _const(t, c: int):
    if isinstance(t, torch.Tensor):
        if t.dtype == torch.bool:
            return torch.full(t.shape, bool(c))
        return torch.full(t.shape, c, dtype=t.dtype)
    if isinstance(t, bool):
        return bool(c)
    if isinstance(t, int):
        return int(c)
    if isinstance(t, float) or t is None:
        return float(c)
    if isinstance(t, list):
        return [_const(x, c) for x in t]
    if isinstance(t, dict):
        return {k: _const(x, c) for k, x in t.items()}
    return t


def _is_tuple(t) -> bool:
    """A list of tensors / dicts / lists is a tuple output (e.g. (loss, stats)); a list of
    numbers is a list output (rewards)."""
    return isinstance(t, list) and bool(t) and not isinstance(t[0], (int, float))


def _echo(pick):
    def answer(t, args, kwargs):
        x = pick(args, kwargs)
        return tuple(x for _ in t) if _is_tuple(t) else x

    return answer


def _first_arg(args, kwargs):
    return args[0] if args else next(iter(kwargs.values()), None)


def _first_tensor_or_list(args, kwargs):
    for x in [*args, *kwargs.values()]:
        if isinstance(x, (torch.Tensor, list)):
            return x
    return _first_arg(args, kwargs)


STRATEGIES = {
    "zeros": lambda t, a, k: _const(t, 0),
    "ones": lambda t, a, k: _const(t, 1),
    "echo-first-arg": _echo(_first_arg),
    "echo-first-tensor-or-list": _echo(_first_tensor_or_list),
    "return-0.0": lambda t, a, k: 0.0,
    "return-None": lambda t, a, k: None,
}


def trivial_function(strategy: str, case: dict, template, error: str | None = None):
    """The trivial implementation for one case. `error`: the exception the solution raised on
    it; the ``+checks`` strategies raise it too (perfect input checks, trivial values)."""
    name, _, checks = strategy.partition("+")
    answer = STRATEGIES[name]
    each = bool(case.get("each")) and isinstance(template, list)
    calls = iter(template if each else [])  # an "each" case: one template per call

    def fn(*args, **kwargs):
        if checks and error:
            raise getattr(builtins, error, ValueError)("trivial: bad input")
        return answer(next(calls, None) if each else template, args, kwargs)

    if case.get("then_call") is not None:
        return lambda *args, **kwargs: fn
    return fn


@functools.cache
def _expected(name: str, seed: int):
    return hidden.expected_results(name, seed)


def trivial_score(name: str, strategy: str, seed: int) -> tuple[int, int, dict]:
    """(cases passed, cases, the grader's score) of `strategy` on `name`'s hidden cases."""
    cases, expected = _expected(name, seed)
    fallback = next((_template(c, r) for c, r in zip(cases, expected) if not r.get("error")), None)
    got = []
    for case, res in zip(cases, expected):
        t = _template(case, res)
        error = res["error_types"][0] if res.get("error") else None
        fn = trivial_function(strategy, case, fallback if t is None else t, error)
        got.append(caserun.run_case(fn, case))
    passed = sum(hidden.compare(e, g)[0] for e, g in zip(expected, got))
    return passed, len(cases), hidden.score(name, expected, got)


@pytest.fixture(autouse=True, scope="module")
def _solutions_for_dependencies():
    """The one-step solutions call other exercises through course_lib's modules."""
    import course_lib

    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)


ALL = [*STRATEGIES, *(f"{s}+checks" for s in STRATEGIES)]


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("name", [e.name for e in exercises.EXERCISES])
def test_a_trivial_answer_earns_at_most_a_tenth(name, strategy):
    """Plain strategies: at most a tenth of the cases pass. ``+checks``: the same answers behind
    perfect input checks (the bad-input cases pass) still earn at most a tenth of the points,
    because bad-input cases only count once a valid-input case passes (``hidden.score``)."""
    ex = exercises.get(name)
    limit = hidden.TRIVIAL_MAX_PASS
    for seed in SEEDS:
        passed, n, s = trivial_score(name, strategy, seed)
        if "+checks" not in strategy:
            assert passed <= limit * n, (
                f"{ex.number} {name}: the trivial answer {strategy!r} passes {passed}/{n} hidden "
                f"cases ({passed / n:.0%} > {limit:.0%}, seed {seed})"
            )
        assert s["passed"] <= limit * n and s["score"] <= limit * ex.points, (
            f"{ex.number} {name}: the trivial answer {strategy!r} earns {s['passed']}/{n} cases, "
            f"{s['score']}/{ex.points} points ({s['passed'] / n:.0%} > {limit:.0%}, seed {seed})"
        )


def test_the_harness_builds_answers_of_the_expected_structure():
    """Sanity of the trivial implementations themselves: right-shaped zeros pass a case whose
    answer is zero, and every strategy returns without raising on a plain case."""
    case = {"id": "x", "args": [torch.ones(2, 3)], "kwargs": {}, "grad": [], "grad_seed": 0}
    zero = caserun.run_case(lambda x: (torch.zeros(2), {"a": 0.0}), case)
    got = caserun.run_case(trivial_function("zeros", case, _template(case, zero)), case)
    assert hidden.compare(zero, got) == (True, "")
    for strategy in STRATEGIES:
        assert caserun.run_case(trivial_function(strategy, case, [0.0, 1.0]), case)["error"] is None
    assert _is_tuple([torch.zeros(1), {}]) and not _is_tuple([0.0, 1.0])


def test_an_each_case_calls_once_per_input_and_reports_every_kind():
    """An ``each`` case: one call per input, the list of results compared (kinds per call)."""
    case = {
        "id": "e",
        "each": [{"args": ["ab"], "kwargs": {}}, {"args": ["a"], "kwargs": {"k": 3}}],
        "report_kinds": True,
    }
    res = caserun.run_case(lambda s, k=1: float(len(s) * k), case)
    assert res["error"] is None and res["value"] == {"return": [2.0, 3.0], "kinds": ["float", "float"]}
    back = wire.decode_result(json.loads(json.dumps(wire.encode(res))))  # the sandbox's wire
    assert hidden.compare(res, back) == (True, "")
    const = caserun.run_case(lambda s, k=1: 2.0, case)
    assert const["value"]["return"] == [2.0, 2.0] and not hidden.compare(res, const)[0]
