"""Visible tests for the exercises: ``check("kl_estimate")`` in a notebook's test cell.

Each check runs *your* function (looked up in its course_lib module at call time, so
``course_lib.use_solutions()`` is honoured) on a few small cases whose expected values were
worked out by hand and are written in the check files as literals. On success it prints one line::

    ✓ exercise 2.2 kl_estimate: 7/7 visible checks passed

On failure it raises ``AssertionError`` saying which case failed, what was expected, what came
back, and a hint naming the property that failed; ``check("kl_estimate", hint=2)`` adds a second,
more specific hint. A stub that still raises ``NotImplementedError`` stops the cell with its own
message. The grader runs other (random) inputs, so passing these is necessary, not sufficient.

One file per exercise module: rewards.py, kl.py, sft.py, reward_model.py, ppo.py, grpo.py, dpo.py,
rlvr.py, tools.py; the machinery is in _checker.py. ``pytest tests/exercises/test_exercises.py -k ex6.2-``
runs the same checks as ``check("grpo_loss")`` (``-k ex6.`` those of unit 06).
"""

from __future__ import annotations

from course_lib.checks import dpo, grpo, kl, ppo, reward_model, rewards, rlvr, sft, tools  # noqa: F401  (register)
from course_lib.checks._checker import CHECKS, Checker, check, known
from course_lib.checks._toys import toy_tokenizer as _toy_tokenizer  # noqa: F401  (tests/exercises/test_solutions.py)

__all__ = ["check", "CHECKS", "known", "Checker"]
