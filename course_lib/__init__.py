"""course_lib — the library behind the course "Post-training LLMs with reinforcement learning".

Provided infrastructure (config, data, models, sampling, sentiment, trainers) plus the student
exercises as stubs in rewards, kl, sft, reward_model, ppo, grpo, dpo, rlvr and tools. Instructors switch every
exercise to the reference implementations with ``COURSE_LIB_SOLUTIONS=1`` or
:func:`use_solutions`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from course_lib import dpo, grpo, kl, ppo, reward_model, rewards, rlvr, sft, tools
from course_lib.core.config import get_profile
from course_lib.core.switch import enabled_by_env, solutions_active, solutions_available, use_solutions
from course_lib.core.utils import grading_mode, progress, seed_everything

__all__ = [
    "use_solutions",
    "solutions_active",
    "solutions_available",
    "get_profile",
    "grading_mode",
    "progress",
    "seed_everything",
    "setup_notebook",
    "rewards",
    "kl",
    "sft",
    "reward_model",
    "ppo",
    "grpo",
    "dpo",
    "rlvr",
    "tools",
]


def setup_notebook(unit: str | None = None, seed: int = 0, quiet: bool = False):
    """First cell of every notebook: seed, pick the profile, honour COURSE_LIB_SOLUTIONS.

    Returns the active :class:`~course_lib.core.config.Profile`."""
    import torch

    seed_everything(seed)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    if enabled_by_env():
        use_solutions()
    profile = get_profile()
    if not quiet:
        mode = "solutions" if solutions_active() else "your course_lib code"
        grading = " · grading mode (training shrinks)" if grading_mode() else ""
        print(
            f"course_lib {__version__} · profile {profile.name} · {mode}{grading}"
            + (f" · unit {unit}" if unit else "")
        )
        from course_lib.core.config import describe_precision, precision

        print(describe_precision(precision(profile)))
    return profile


if enabled_by_env():
    use_solutions()
