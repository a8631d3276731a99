"""The registry of student exercises: which function, in which module, for which notebook.

This table is the single list that the stub/solution tests, the solutions switch, the visible
checks and the grader iterate over. Adding an exercise = a stub in ``course_lib/<module>.py``,
the same function in ``solutions/<module>.py``, and one row here.

Each row also carries metadata for choosing a syllabus (the "Exercise metadata" table of docs/instructors.md, the
line under each exercise's heading in the notebooks, ``course release --units``): ``difficulty``
1-3, ``minutes`` a student needs (estimate), ``requires`` = the exercises its reference
implementation calls (tests/exercises/test_registry_metadata.py derives them from solutions/ and compares).
A row without them still works everywhere (defaults: 0 / 0 / None = not declared yet); the
metadata test fails until they are filled in.

Training runs call exercises too, often of earlier units: ``TRAINER_CALLS`` lists what each
provided trainer calls, ``UNIT_TRAINERS`` which trainers a notebook trains with. From them and
``requires``, :func:`training_needs` is every exercise a notebook's training runs; the notebook
names them at its top, and its first training cell calls :func:`check_training_needs`, which
names every one that is still a stub in one message (rather than the first one failing deep
inside the training loop).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass

NOTEBOOKS = {
    "01": "01_reward_functions",
    "02": "02_kl_penalties",
    "03": "03_sft",
    "04": "04_reward_model",
    "05": "05_ppo",
    "06": "06_grpo",
    "07": "07_dpo",
    "08": "08_evaluation",
    "09": "09_reasoning_rlvr",
    "10": "10_tool_use",
}


@dataclass(frozen=True)
class Exercise:
    number: str  # "2.3" = unit 02, exercise 3
    module: str  # module under course_lib/ and solutions/
    name: str  # function name (fixed by DESIGN.md; graders rely on it)
    points: int = 2
    difficulty: int = 0  # 1 (a few lines) .. 3 (the algorithm's core); 0 = not set
    minutes: int = 0  # estimated student minutes, reading included; 0 = not set
    requires: tuple[str, ...] | None = None  # exercises it calls; None = not declared

    @property
    def unit(self) -> str:
        return f"{int(self.number.split('.')[0]):02d}"

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.unit]

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


EXERCISES: list[Exercise] = [
    Exercise("1.1", "rewards", "format_reward", difficulty=1, minutes=10, requires=()),
    Exercise("1.2", "rewards", "correctness_reward", difficulty=1, minutes=15, requires=()),
    Exercise("1.3", "rewards", "sentiment_reward", 1, difficulty=1, minutes=5, requires=()),
    Exercise("1.4", "rewards", "repetition_penalty", difficulty=1, minutes=10, requires=()),
    Exercise("1.5", "rewards", "length_penalty", difficulty=1, minutes=10, requires=()),
    Exercise("1.6", "rewards", "exponential_shaping", difficulty=1, minutes=5, requires=()),
    Exercise("1.7", "rewards", "combine_rewards", difficulty=2, minutes=15, requires=()),
    Exercise("1.8", "rewards", "reinforce_loss", difficulty=2, minutes=20, requires=()),
    Exercise("2.1", "kl", "token_logprobs", difficulty=1, minutes=10, requires=()),
    Exercise("2.2", "kl", "kl_estimate", 3, difficulty=2, minutes=15, requires=()),
    Exercise("2.3", "kl", "exact_kl", difficulty=2, minutes=15, requires=()),
    Exercise("2.4", "kl", "kl_penalized_rewards", 3, difficulty=2, minutes=25, requires=()),
    Exercise("3.1", "sft", "tokenize_prompt_and_completion", 3, difficulty=2, minutes=30, requires=()),
    Exercise("3.2", "sft", "masked_mean", difficulty=1, minutes=10, requires=()),
    Exercise("3.3", "sft", "sft_loss", 3, difficulty=2, minutes=20, requires=("masked_mean",)),
    Exercise("3.4", "sft", "sft_train_step", 2, difficulty=2, minutes=15, requires=("sft_loss",)),
    Exercise("4.1", "reward_model", "bradley_terry_loss", 3, difficulty=1, minutes=10, requires=()),
    Exercise("4.2", "reward_model", "preference_accuracy", 1, difficulty=1, minutes=5, requires=()),
    Exercise("4.3", "reward_model", "last_token_pool", 2, difficulty=2, minutes=15, requires=()),
    Exercise("5.1", "ppo", "compute_gae", 4, difficulty=3, minutes=40, requires=()),
    Exercise("5.2", "ppo", "whiten", 2, difficulty=2, minutes=15, requires=()),
    Exercise("5.3", "ppo", "ppo_policy_loss", 4, difficulty=3, minutes=30, requires=("masked_mean",)),
    Exercise("5.4", "ppo", "ppo_value_loss", 3, difficulty=2, minutes=20, requires=("masked_mean",)),
    Exercise("5.5", "ppo", "entropy_from_logits", 2, difficulty=1, minutes=10, requires=()),
    Exercise(
        "5.6",
        "ppo",
        "ppo_minibatch_loss",
        3,
        difficulty=3,
        minutes=30,
        requires=(
            "token_logprobs",
            "kl_estimate",
            "masked_mean",
            "ppo_policy_loss",
            "ppo_value_loss",
            "entropy_from_logits",
        ),
    ),
    Exercise("6.1", "grpo", "group_advantages", 3, difficulty=2, minutes=20, requires=()),
    Exercise(
        "6.2", "grpo", "grpo_loss", 5, difficulty=3, minutes=40, requires=("kl_estimate", "masked_mean")
    ),
    Exercise(
        "6.3", "grpo", "grpo_step", 3, difficulty=2, minutes=20, requires=("token_logprobs", "grpo_loss")
    ),
    Exercise("6.4", "grpo", "rloo_advantages", 2, difficulty=1, minutes=15, requires=()),
    Exercise("6.5", "grpo", "reinforce_pp_advantages", 2, difficulty=1, minutes=15, requires=()),
    Exercise("6.6", "grpo", "high_entropy_mask", 2, difficulty=1, minutes=15, requires=()),
    Exercise("7.1", "dpo", "sequence_logprobs", 3, difficulty=2, minutes=15, requires=()),
    Exercise("7.2", "dpo", "dpo_loss", 5, difficulty=3, minutes=30, requires=()),
    Exercise(
        "7.3",
        "dpo",
        "dpo_batch_loss",
        3,
        difficulty=2,
        minutes=20,
        requires=("sequence_logprobs", "dpo_loss"),
    ),
    Exercise("9.1", "rlvr", "think_format_reward", 2, difficulty=1, minutes=15, requires=()),
    Exercise("9.2", "rlvr", "answer_reward", 2, difficulty=1, minutes=10, requires=()),
    Exercise("9.3", "rlvr", "sequence_log_ratio", 2, difficulty=1, minutes=10, requires=("masked_mean",)),
    Exercise(
        "9.4",
        "rlvr",
        "rlvr_policy_loss",
        5,
        difficulty=3,
        minutes=45,
        requires=("kl_estimate", "masked_mean", "sequence_log_ratio"),
    ),
    Exercise("9.5", "rlvr", "dynamic_sampling_mask", 2, difficulty=1, minutes=10, requires=()),
    Exercise("9.6", "rlvr", "overlong_penalty", 2, difficulty=1, minutes=15, requires=()),
    Exercise("9.7", "rlvr", "mask_truncated_completions", 2, difficulty=1, minutes=10, requires=()),
    Exercise("10.1", "tools", "parse_tool_call", 2, difficulty=1, minutes=20, requires=()),
    Exercise("10.2", "tools", "environment_mask", 2, difficulty=1, minutes=15, requires=()),
    Exercise("10.3", "tools", "tool_reward", 2, difficulty=1, minutes=10, requires=("answer_reward",)),
]

BY_NAME = {e.name: e for e in EXERCISES}

# Seconds of one whole unit notebook, training included, on 2 CPU cores (tiny profile, quick
# preset), from the `course run` in docs/results/course_run.json: written by `course doc-numbers`,
# checked by its --check (a test), shown under each notebook's title.
UNIT_SECONDS: dict[str, int | None] = {
    "01": 16,
    "02": 14,
    "03": 24,
    "04": 25,
    "05": 124,
    "06": 159,
    "07": 118,
    "08": 14,
    "09": 227,
    "10": 47,
}


# The exercises each provided trainer (course_lib/trainers/<trainer>.py) calls itself, in registry
# order (tests/exercises/test_registry_metadata.py reads them off the trainers' source and compares).
TRAINER_CALLS: dict[str, tuple[str, ...]] = {
    "sft": ("format_reward", "tokenize_prompt_and_completion", "sft_loss", "sft_train_step"),
    "reward_model": ("bradley_terry_loss", "preference_accuracy"),
    "ppo": (
        "sentiment_reward",
        "combine_rewards",
        "token_logprobs",
        "kl_estimate",
        "kl_penalized_rewards",
        "masked_mean",
        "compute_gae",
        "whiten",
        "ppo_minibatch_loss",
    ),
    "grpo": (
        "correctness_reward",
        "sentiment_reward",
        "exponential_shaping",
        "token_logprobs",
        "kl_estimate",
        "masked_mean",
        "group_advantages",
        "grpo_loss",
        "grpo_step",
        "rloo_advantages",
        "reinforce_pp_advantages",
        "high_entropy_mask",
    ),
    "dpo": ("tokenize_prompt_and_completion", "preference_accuracy", "sequence_logprobs", "dpo_batch_loss"),
    "rlvr": (
        "token_logprobs",
        "kl_estimate",
        "masked_mean",
        "group_advantages",
        "think_format_reward",
        "answer_reward",
        "rlvr_policy_loss",
        "dynamic_sampling_mask",
        "overlong_penalty",
        "mask_truncated_completions",
    ),
    "tools": (
        "token_logprobs",
        "kl_estimate",
        "masked_mean",
        "group_advantages",
        "rlvr_policy_loss",
        "parse_tool_call",
        "environment_mask",
        "tool_reward",
    ),
}
# The trainers each notebook's training cells run (notebooks whose training calls exercises of
# earlier units; the check at their first training cell names what is missing).
UNIT_TRAINERS: dict[str, tuple[str, ...]] = {
    "05": ("ppo",),
    "06": ("grpo",),
    "07": ("dpo",),
    "09": ("rlvr",),
    "10": ("tools",),
}


def get(name: str) -> Exercise:
    """Look an exercise up by function name (``"kl_estimate"``) or ``"kl.kl_estimate"``."""
    key = name.split(".")[-1]
    if key not in BY_NAME:
        raise KeyError(f"no exercise named {name!r}; known: {sorted(BY_NAME)}")
    return BY_NAME[key]


def for_unit(unit: str) -> list[Exercise]:
    return [e for e in EXERCISES if e.unit == f"{int(unit):02d}"]


def modules() -> list[str]:
    return sorted({e.module for e in EXERCISES})


def prerequisites(name: str) -> list[Exercise]:
    """Every exercise `name` needs, directly or through the ones it calls (registry order);
    undeclared ``requires`` count as none."""
    seen: set[str] = set()
    todo = list(get(name).requires or ())
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += list(get(n).requires or ())
    return [e for e in EXERCISES if e.name in seen]


def training_needs(unit: str, earlier_only: bool = False) -> list[Exercise]:
    """Every exercise the training runs of notebook `unit` call (registry order): what its
    trainers call (``TRAINER_CALLS``) and what those exercises call in turn (``requires``).
    ``earlier_only``: only those of other units (the ones a student may not expect here)."""
    unit = f"{int(unit):02d}"
    names: set[str] = set()
    for trainer in UNIT_TRAINERS.get(unit, ()):
        for name in TRAINER_CALLS[trainer]:
            names |= {name, *(e.name for e in prerequisites(name))}
    return [e for e in EXERCISES if e.name in names and not (earlier_only and e.unit == unit)]


def describe(exercises: list[Exercise]) -> str:
    """``2.1 `token_logprobs` (unit 02), 6.1 `group_advantages` (unit 06)``."""
    return ", ".join(f"{e.number} `{e.name}` (unit {e.unit})" for e in exercises)


def is_stub(func) -> bool:
    """True if `func` is still an unwritten stub: its body (after the docstring) only raises
    NotImplementedError (or passes). Read from the source file, so an edit counts as soon as it is
    saved; a function whose source cannot be read counts as written."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if fn is None:
        return False
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]

    def raises_not_implemented(stmt: ast.stmt) -> bool:
        if not isinstance(stmt, ast.Raise) or stmt.exc is None:
            return False
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"

    return bool(body) and all(isinstance(s, ast.Pass) or raises_not_implemented(s) for s in body)


def unwritten(exercises: list[Exercise]) -> list[Exercise]:
    """The exercises among `exercises` whose function (as course_lib has it now: the student's,
    or the solution under the solutions switch) is still a stub."""
    return [
        e
        for e in exercises
        if is_stub(getattr(importlib.import_module(f"course_lib.{e.module}"), e.name, None))
    ]


def check_training_needs(unit: str) -> None:
    """Raise NotImplementedError naming *every* exercise that notebook `unit`'s training needs and
    that is still a stub (see the module doc); return quietly when all are written."""
    missing = unwritten(training_needs(unit))
    if missing:
        files = sorted({f"course_lib/{e.module}.py" for e in missing})
        they = "they still raise" if len(missing) > 1 else "it still raises"
        raise NotImplementedError(
            f"Training needs: {describe(missing)} — {they} NotImplementedError. Implement "
            f"{'them' if len(missing) > 1 else 'it'} in {', '.join(files)} (each unit's notebook "
            "has the test cell), then run this cell again."
        )
