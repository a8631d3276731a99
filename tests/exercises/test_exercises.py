"""Your exercises under pytest: one test per exercise, running its visible checks.

    pytest tests/exercises/test_exercises.py                 # every exercise
    pytest tests/exercises/test_exercises.py -k grpo         # the exercises of course_lib/grpo.py
    pytest tests/exercises/test_exercises.py -k grpo_loss    # one exercise
    COURSE_HINT=2 pytest tests/exercises/test_exercises.py -k grpo_loss    # with the second, more specific hint

A test fails with the same message as ``check("<name>")`` in the notebook: the exercise, the case,
what was expected, what came back and a hint. A function you have not written yet fails with
"not implemented yet". Passing these checks is necessary, not sufficient: the grader uses other
inputs.
"""

from __future__ import annotations

import os

import pytest

from course_lib.checks import check
from course_lib.core.registry import EXERCISES

HINT_LEVEL = int(os.environ.get("COURSE_HINT", "1"))


@pytest.mark.parametrize("ex", EXERCISES, ids=[f"{e.module}-{e.number}-{e.name}" for e in EXERCISES])
def test_exercise(ex):
    try:
        check(ex.name, hint=HINT_LEVEL)
    except NotImplementedError as e:
        message = f"exercise {ex.number} `{ex.name}` (course_lib/{ex.module}.py) is not implemented yet: {e}"
    except AssertionError as e:
        message = str(e)
    else:
        return
    pytest.fail(message, pytrace=False)  # outside the except: no chained traceback
