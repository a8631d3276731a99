"""The instructor switch: make `course_lib` use the implementations in `solutions/`.

    COURSE_LIB_SOLUTIONS=1 python ...      # at import of course_lib
    course_lib.use_solutions()             # or at run time (False restores the stubs)

It rebinds each exercise function *as a module attribute* (``course_lib.kl.kl_estimate``), so
provided code must call exercises through their module (``kl.kl_estimate(...)``), never through
a name imported before the switch. In the student release there is no `solutions/` package and
the switch raises a clear error.
"""

from __future__ import annotations

import importlib
import os

from course_lib.core.registry import EXERCISES

_ORIGINALS: dict[tuple[str, str], object] = {}
_ACTIVE = False


def solutions_available() -> bool:
    try:
        importlib.import_module("solutions")
        return True
    except ImportError:
        return False


def use_solutions(enable: bool = True) -> None:
    """Point every exercise function of course_lib at solutions/ (or back at the student code)."""
    global _ACTIVE
    if enable and not solutions_available():
        raise RuntimeError(
            "use_solutions(): the `solutions` package is not available. It exists only in the "
            "instructor repository, not in the student release: implement the exercises in "
            "course_lib/ instead (or unset COURSE_LIB_SOLUTIONS)."
        )
    for ex in EXERCISES:
        mod = importlib.import_module(f"course_lib.{ex.module}")
        key = (ex.module, ex.name)
        if enable:
            _ORIGINALS.setdefault(key, getattr(mod, ex.name))
            sol = importlib.import_module(f"solutions.{ex.module}")
            setattr(mod, ex.name, getattr(sol, ex.name))
        elif key in _ORIGINALS:
            setattr(mod, ex.name, _ORIGINALS[key])
    _ACTIVE = enable


def solutions_active() -> bool:
    return _ACTIVE


def enabled_by_env() -> bool:
    return os.environ.get("COURSE_LIB_SOLUTIONS", "").strip().lower() in {"1", "true", "yes"}
