"""Grading a code exercise on its hidden cases, in the trusted grader process: :func:`make_cases`
(seeded, from the unit modules next to this one), :func:`expected_results` (the instructor's
solution on them), :func:`compare` / :func:`score` (a sandbox's results against those, with partial
credit) and :func:`hidden_check` (both in one process, for the instructor's notebook runs).

Comparison messages name where and how large an error is, never the expected numbers: a student
must not learn a hidden case's answer from the feedback.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import math
import textwrap
from collections.abc import Callable

import torch

from course_instructor.grading.hidden import dpo, grpo, kl, ppo, reward_model, rewards, rlvr, sft, tools
from course_instructor.grading.hidden._cases import DEFAULT_SEED, Gen
from course_instructor.grading.sandboxed import caserun
from course_lib.core import registry as exercises

RTOL, ATOL = 1e-4, 1e-5  # values (float32 arithmetic, different op orders)
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-5  # gradients

MAKERS: dict[str, Callable[[Gen], list[dict]]] = {
    **dpo.CASES,
    **grpo.CASES,
    **kl.CASES,
    **ppo.CASES,
    **reward_model.CASES,
    **rewards.CASES,
    **rlvr.CASES,
    **sft.CASES,
    **tools.CASES,
}


def make_cases(name: str, seed: int = DEFAULT_SEED) -> list[dict]:
    """Seeded random cases for exercise `name` (several shapes, padded masks, bad input)."""
    ex = exercises.get(name)
    if ex.name not in MAKERS:
        raise KeyError(f"make_cases: no hidden cases for exercise {ex.name!r}")
    return MAKERS[ex.name](Gen(ex.name, seed))


# --- comparison --------------------------------------------------------------------------------
def _magnitude(x: float) -> str:
    """An order of magnitude ("1e-02"): how large, without the exact number."""
    return f"1e{round(math.log10(x)):+03d}" if math.isfinite(x) and x > 0 else str(x)


def error_size(err: float, scale: float) -> str:
    """The size of an error, coarsely: absolute and relative orders of magnitude (exact numbers
    together with the student's own value would give the expected one away)."""
    if not math.isfinite(err):
        return "nan or inf"
    rel = f", relative ~{_magnitude(err / scale)}" if scale > 0 else ""
    return f"error ~{_magnitude(err)}{rel}"


def close(a, b, rtol: float, atol: float, path: str = "value") -> tuple[bool, str]:
    """Recursive allclose over tensors / numbers / lists / dicts: (ok, message). A message names
    where (path, shape, how many entries) and how large the error is, never the expected numbers
    (a student must not learn a hidden case's answer from the feedback)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            if isinstance(a, torch.Tensor) and a.numel() == 1 and isinstance(b, (int, float)):
                return close(a.item(), b, rtol, atol, path)
            if isinstance(b, torch.Tensor) and b.numel() == 1 and isinstance(a, (int, float)):
                return close(a, b.item(), rtol, atol, path)
            return False, f"{path}: expected {caserun.describe(a)}, got {caserun.describe(b)}"
        if tuple(a.shape) != tuple(b.shape):
            return False, f"{path}: expected shape {list(a.shape)}, got {list(b.shape)}"
        if a.dtype == torch.bool:
            if b.dtype != torch.bool:
                return False, f"{path}: expected a bool tensor, got {b.dtype}"
            return (True, "") if torch.equal(a, b) else (False, f"{path}: boolean values differ")
        if b.dtype == torch.bool or b.is_complex():
            return False, f"{path}: expected a tensor of real numbers ({a.dtype}), got {b.dtype}"
        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        if not torch.isfinite(b64).all() and torch.isfinite(a64).all():
            return False, f"{path}: contains nan/inf"
        bad = ~torch.isclose(b64, a64, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            err = (b64 - a64).abs().nan_to_num(float("inf"))[bad].max().item()
            return False, (
                f"{path}: {int(bad.sum())} of {a.numel()} values are wrong (largest "
                f"{error_size(err, a64[bad].abs().max().item())})"
            )
        return True, ""
    if isinstance(a, bool) or isinstance(b, bool):
        if type(a) is not type(b):
            return False, f"{path}: expected {type(a).__name__}, got {type(b).__name__}"
        return (a == b, "" if a == b else f"{path}: the wrong truth value")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return True, ""
        if not math.isclose(fa, fb, rel_tol=rtol, abs_tol=atol):
            err = abs(fb - fa) if math.isfinite(fb) else math.inf
            return False, f"{path}: wrong ({error_size(err, abs(fa))})"
        return True, ""
    if isinstance(a, list):
        if not isinstance(b, list):
            if isinstance(b, torch.Tensor):
                return close(torch.tensor(a, dtype=torch.float64), b, rtol, atol, path)
            return False, f"{path}: expected {caserun.describe(a)}, got {caserun.describe(b)}"
        if len(a) != len(b):
            return False, f"{path}: expected {len(a)} entries, got {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            ok, msg = close(x, y, rtol, atol, f"{path}[{i}]")
            if not ok:
                return ok, msg
        return True, ""
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return False, f"{path}: expected a dict with keys {sorted(a)}, got {caserun.describe(b)}"
        for k in a:
            ok, msg = close(a[k], b[k], rtol, atol, f"{path}[{k!r}]")
            if not ok:
                return ok, msg
        return True, ""
    if isinstance(a, str):  # only kinds ("float", "tensor", ...) are strings: not a secret
        return (a == b, "" if a == b else f"{path}: expected {a!r}, got {str(b)[:60]!r}")
    if a is None or b is None:
        return (
            a == b,
            "" if a == b else f"{path}: expected {caserun.describe(a)}, got {caserun.describe(b)}",
        )
    return False, f"{path}: cannot compare {caserun.describe(a)} with {caserun.describe(b)}"


def compare(expected: dict, got: dict) -> tuple[bool, str]:
    """Compare two case results: errors, value and gradients. Returns (ok, message)."""
    if expected.get("error"):
        exp_type = expected["error_types"][0] if expected["error_types"] else "Exception"
        if got.get("error") and exp_type in got.get("error_types", []):
            return True, ""
        if got.get("error"):
            return False, f"expected {exp_type} for this bad input, got {got['error']}"
        return False, f"expected {exp_type} for this bad input, but it returned a value"
    if got.get("error"):
        return False, f"raised {got['error']}"
    ok, msg = close(expected["value"], got["value"], RTOL, ATOL)
    if not ok:
        return False, msg
    for k, g_exp in expected.get("grads", {}).items():
        g_got = got.get("grads", {}).get(k)
        if g_exp is None:  # the solution's result does not depend on this input through autograd
            if g_got is not None and torch.count_nonzero(g_got) > 0:
                return False, f"a gradient flows to input {k}, which must be a constant (detached)"
            continue
        if g_got is None:
            if torch.count_nonzero(g_exp) == 0:
                continue
            return False, (
                f"no gradient flows to input {k} (did you .detach(), use .item() or "
                "build a new tensor from Python numbers?)"
            )
        ok, msg = close(g_exp, g_got, GRAD_RTOL, GRAD_ATOL, f"gradient w.r.t. input {k}")
        if not ok:
            return False, msg
    return True, ""


@functools.cache
def callees(name: str) -> tuple[str, ...]:
    """The other exercises that exercise `name` calls, directly or through another one (read from
    the solution's code: every exercise name it mentions), e.g. grpo_step -> grpo_loss,
    kl_estimate, masked_mean, token_logprobs. A student's version of `name` is graded with the
    student's own versions of these (giving it ours would hand the answers to student code)."""
    seen: list[str] = []
    todo = [exercises.get(name).name]
    while todo:
        src = textwrap.dedent(inspect.getsource(solution_function(todo.pop())))
        for node in ast.walk(ast.parse(src)):
            ident = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if ident in exercises.BY_NAME and ident != name and ident not in seen:
                seen.append(ident)
                todo.append(ident)
    return tuple(sorted(seen, key=lambda n: exercises.get(n).number))


def explain_dependencies(scores: dict[str, dict]) -> None:
    """For every exercise that lost points while an exercise it calls failed its own cases, put
    one line first in its failures naming that callee (in place): "grpo_loss calls kl_estimate,
    which failed 3 of its own 9 hidden cases: fix kl_estimate first ...". Sets
    ``score["failed_callees"]`` (possibly empty) on every score."""
    for name, s in scores.items():
        s["failed_callees"] = []
        if s["passed"] == s["total"]:
            continue
        bad = [c for c in callees(name) if c in scores and scores[c]["passed"] < scores[c]["total"]]
        s["failed_callees"] = bad
        if bad:
            which = ", ".join(
                f"{c} ({scores[c]['total'] - scores[c]['passed']} of {scores[c]['total']})" for c in bad
            )
            s["failures"].insert(
                0,
                f"{name} calls {' and '.join(bad)}, which failed some of {'its' if len(bad) == 1 else 'their'} "
                f"own hidden cases [{which} failed]: your {name} runs with your "
                f"{'version' if len(bad) == 1 else 'versions'} of {'it' if len(bad) == 1 else 'them'}, so "
                f"fix {bad[0]} first -- the failures of {name} below may come from it alone.",
            )


def solution_function(name: str) -> Callable:
    ex = exercises.get(name)
    return getattr(importlib.import_module(f"solutions.{ex.module}"), ex.name)


def expected_results(name: str, seed: int = DEFAULT_SEED) -> tuple[list[dict], list[dict]]:
    """(cases, results of the solution on them) — computed in the trusted grader process.

    The solutions of the "one step" exercises call other exercises through course_lib's modules,
    so the solutions switch is on while they run (and restored afterwards)."""
    import course_lib

    cases = make_cases(name, seed)
    was_active = course_lib.solutions_active()
    course_lib.use_solutions(True)
    try:
        return cases, caserun.run_cases(solution_function(name), cases)
    finally:
        if not was_active:
            course_lib.use_solutions(False)


def score(name: str, expected: list[dict], got: list[dict] | None) -> dict:
    """Partial credit: fraction of cases passed x points; `got` None = nothing came back."""
    ex = exercises.get(name)
    msgs = []
    passed = 0
    for i, e in enumerate(expected):
        g = got[i] if got is not None and i < len(got) else None
        if g is None:
            ok, msg = False, "no result"
        else:
            ok, msg = compare(e, g)
        passed += ok
        if not ok:
            msgs.append(f"case {i + 1} ({e.get('id', '')}): {msg}")
    n = len(expected)
    # Cases that expect a ValueError for bad input only count once the function works at all:
    # a function that raises for everything must not collect those points.
    value_ok = any(
        not e.get("error")
        for i, e in enumerate(expected)
        if got is not None and i < len(got) and got[i] is not None and compare(e, got[i])[0]
    )
    earned = passed if value_ok else 0
    if not value_ok and passed:
        msgs.insert(0, "no case with a valid input passed, so the bad-input cases do not count")
    return {
        "exercise": ex.name,
        "passed": earned,
        "total": n,
        "max_score": float(ex.points),
        "score": round(ex.points * earned / n, 3) if n else 0.0,
        "failures": msgs,
    }


def hidden_check(name: str, seed: int = DEFAULT_SEED) -> dict:
    """Run course_lib's current `name` and the solution on the hidden cases, in this process.

    Raises AssertionError with a partial-credit summary unless every case passes."""
    ex = exercises.get(name)
    student = getattr(importlib.import_module(f"course_lib.{ex.module}"), ex.name)
    cases, expected = expected_results(name, seed)
    got = caserun.run_cases(student, cases)
    s = score(name, expected, got)
    if s["passed"] != s["total"]:
        lines = "\n  ".join(s["failures"][:5])
        raise AssertionError(
            f"hidden tests for {ex.name}: {s['passed']}/{s['total']} cases passed "
            f"(partial credit {s['score']:.2f}/{ex.points} points)\n  {lines}"
        )
    print(f"hidden tests for {ex.name}: {s['passed']}/{s['total']} cases passed")
    return s
