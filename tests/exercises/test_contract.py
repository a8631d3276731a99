"""The exercise contract: every row of the registry has a stub that raises a helpful
NotImplementedError, a solution with the identical signature that carries the canary, and the
solutions switch works (in-process, by environment variable, and fails clearly without solutions/).

Everything iterates over ``course_lib.core.registry.EXERCISES``, so rows added later are covered.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import course_lib
from course_lib.core import switch as _solutions
from course_lib.core.registry import EXERCISES, NOTEBOOKS

ROOT = Path(__file__).resolve().parents[2]
IDS = [f"{e.number}-{e.name}" for e in EXERCISES]


@pytest.fixture(autouse=True)
def _stubs_active():
    """Every test here starts (and ends) with the stubs bound, whatever other tests did."""
    course_lib.use_solutions(False)
    yield
    course_lib.use_solutions(False)


def _stub(ex):
    """The stub as written in course_lib/<module>.py (even if the switch rebound the attribute)."""
    mod = importlib.import_module(f"course_lib.{ex.module}")
    return _solutions._ORIGINALS.get((ex.module, ex.name), getattr(mod, ex.name))


def _solution(ex):
    return getattr(importlib.import_module(f"solutions.{ex.module}"), ex.name)


def _dummy_args(fn):
    """None for every parameter without a default (a stub must raise before looking at them)."""
    args = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            args.append(None)
    return args


def test_registry_is_consistent():
    numbers = [e.number for e in EXERCISES]
    names = [e.name for e in EXERCISES]
    assert len(set(numbers)) == len(numbers), "duplicate exercise numbers in the registry"
    assert len(set(names)) == len(names), "duplicate exercise names in the registry"
    for e in EXERCISES:
        assert e.unit in NOTEBOOKS, f"{e.number}: unit {e.unit} has no notebook name"
        assert e.points > 0, f"{e.number} {e.name}: points must be positive"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_raises_naming_notebook_and_exercise(ex):
    stub = _stub(ex)
    assert stub.__module__ == f"course_lib.{ex.module}", f"{ex.name}: not a course_lib stub"
    with pytest.raises(NotImplementedError) as info:
        stub(*_dummy_args(stub))
    msg = str(info.value)
    assert ex.notebook in msg, f"{ex.name}: stub message {msg!r} does not name notebook {ex.notebook}"
    assert f"Exercise {ex.number}" in msg, (
        f"{ex.name}: stub message {msg!r} does not name exercise {ex.number}"
    )
    assert ex.name in msg and f"course_lib/{ex.module}.py" in msg, msg


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_has_docstring(ex):
    doc = inspect.getdoc(_stub(ex)) or ""
    assert doc.startswith(f"Exercise {ex.number}"), f"{ex.name}: docstring must start 'Exercise {ex.number}'"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_and_solution_signatures_identical(ex):
    stub, sol = inspect.signature(_stub(ex)), inspect.signature(_solution(ex))
    assert stub == sol, f"{ex.qualname}: stub {stub} != solution {sol}"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_solution_carries_canary(ex):
    from solutions import CANARY

    src = inspect.getsource(_solution(ex))
    assert CANARY in src, f"solutions/{ex.module}.py:{ex.name} has no canary comment {CANARY}"
    assert CANARY not in inspect.getsource(importlib.import_module(f"course_lib.{ex.module}")), (
        f"the canary leaked into course_lib/{ex.module}.py"
    )


def test_use_solutions_switches_every_exercise_and_back():
    course_lib.use_solutions(True)
    assert course_lib.solutions_active()
    for ex in EXERCISES:
        mod = importlib.import_module(f"course_lib.{ex.module}")
        assert getattr(mod, ex.name) is _solution(ex), f"use_solutions(True) did not rebind {ex.qualname}"
    course_lib.use_solutions(False)
    assert not course_lib.solutions_active()
    for ex in EXERCISES:
        mod = importlib.import_module(f"course_lib.{ex.module}")
        assert getattr(mod, ex.name) is _stub(ex), f"use_solutions(False) did not restore {ex.qualname}"
        assert getattr(mod, ex.name).__module__ == f"course_lib.{ex.module}"


def _python(code: str, env_extra: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_LIB_SOLUTIONS", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_var_enables_solutions_in_a_fresh_process(tmp_path):
    code = """
        import importlib
        import course_lib
        from course_lib.core.registry import EXERCISES
        assert course_lib.solutions_active()
        for ex in EXERCISES:
            got = getattr(importlib.import_module("course_lib." + ex.module), ex.name)
            want = getattr(importlib.import_module("solutions." + ex.module), ex.name)
            assert got is want, ex.qualname
        print("SWITCHED", len(EXERCISES))
    """
    r = _python(code, {"COURSE_LIB_SOLUTIONS": "1"}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"SWITCHED {len(EXERCISES)}" in r.stdout
    # without the variable the stubs stay
    r = _python(
        "import course_lib; assert not course_lib.solutions_active(); "
        "assert course_lib.kl.kl_estimate.__module__ == 'course_lib.kl'; print('STUBS')",
        {},
        tmp_path,
    )
    assert r.returncode == 0 and "STUBS" in r.stdout, r.stderr


# A student-release-like process: course_lib importable (via a link), solutions/ nowhere.
_HIDE_SOLUTIONS = """
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path[:] = [p for p in sys.path if p and p.rstrip("/") not in ("{root}", "{root}/solutions")]
    sys.path.insert(0, "{release}")
"""


@pytest.fixture
def release_dir(tmp_path):
    d = tmp_path / "release"
    d.mkdir()
    (d / "course_lib").symlink_to(ROOT / "course_lib", target_is_directory=True)
    return d


def test_switch_fails_clearly_without_solutions(release_dir):
    prelude = _HIDE_SOLUTIONS.format(root=str(ROOT), release=str(release_dir))
    code = (
        prelude
        + """
    try:
        import solutions
        raise SystemExit("solutions is still importable")
    except ImportError:
        pass
    import course_lib
    assert course_lib.__file__.startswith("{release}"), course_lib.__file__
    assert not course_lib.solutions_available()
    try:
        course_lib.use_solutions()
    except RuntimeError as e:
        print("ERROR:", e)
    else:
        raise SystemExit("use_solutions() did not raise")
    course_lib.use_solutions(False)          # switching off is always fine
    try:
        course_lib.kl.kl_estimate(None, None)
    except NotImplementedError as e:
        print("STUB:", e)
    """.replace("{release}", str(release_dir))
    )
    r = _python(code, {}, release_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ERROR:" in r.stdout and "solutions" in r.stdout and "student release" in r.stdout, r.stdout
    assert "STUB: Exercise 2.2" in r.stdout


def test_env_var_without_solutions_fails_at_import_with_clear_message(release_dir):
    code = _HIDE_SOLUTIONS.format(root=str(ROOT), release=str(release_dir)) + "    import course_lib\n"
    r = _python(code, {"COURSE_LIB_SOLUTIONS": "1"}, release_dir)
    assert r.returncode != 0
    assert (
        "RuntimeError" in r.stderr and "not available" in r.stderr and "COURSE_LIB_SOLUTIONS" in r.stderr
    ), r.stderr
