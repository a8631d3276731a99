"""Hidden tests of the code exercises: seeded random cases, the instructor's results on them, the
comparison and the partial-credit score. Trusted grader code, instructor only: it is never in the
student release, and it never runs inside a sandbox (it imports ``solutions/``).

One module per exercise module, as the visible checks in course_lib/checks/ are laid out:
rewards.py, kl.py, sft.py, reward_model.py, ppo.py, grpo.py, dpo.py, rlvr.py, tools.py, each with a
``CASES`` table (exercise name -> case maker); ``_cases.py`` holds what they share (the seeded
generator, the case format); ``_grader.py`` makes, compares and scores. A notebook's hidden test
block calls :func:`hidden_check`; the autograder does NOT trust that cell (it re-runs the same
cases in a sandbox, see course_instructor/grading/autograde.py).
"""

from course_instructor.grading.hidden._cases import DEFAULT_SEED, TRIVIAL_MAX_PASS
from course_instructor.grading.hidden._grader import (
    MAKERS,
    callees,
    close,
    compare,
    expected_results,
    explain_dependencies,
    hidden_check,
    make_cases,
    score,
    solution_function,
)

__all__ = [
    "DEFAULT_SEED",
    "MAKERS",
    "TRIVIAL_MAX_PASS",
    "callees",
    "close",
    "compare",
    "expected_results",
    "explain_dependencies",
    "hidden_check",
    "make_cases",
    "score",
    "solution_function",
]
