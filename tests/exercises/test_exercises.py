"""Your exercises under pytest: one test per exercise, running its visible checks.

    pytest tests/exercises/test_exercises.py                 # every exercise
    pytest tests/exercises/test_exercises.py -k ex6.         # the exercises of unit 06
    pytest tests/exercises/test_exercises.py -k ex6.2-       # exercise 6.2 alone
    COURSE_HINT=2 pytest tests/exercises/test_exercises.py -k ex6.2-    # with the second, more specific hint

Each test's id starts with ``ex<number>-`` (``ex6.2-grpo-grpo_loss``): ``-k`` matches any part of
an id, so a function name can select more than one exercise (``-k rewards`` also picks unit 02's
``kl_penalized_rewards``), while ``ex6.2-`` selects exactly one and ``ex6.`` exactly one unit.

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


def exercise_id(ex) -> str:
    """``ex6.2-grpo-grpo_loss``: ``-k ex6.2-`` selects this exercise alone, ``-k ex6.`` its unit."""
    return f"ex{ex.number}-{ex.module}-{ex.name}"


@pytest.mark.parametrize("ex", EXERCISES, ids=[exercise_id(e) for e in EXERCISES])
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
