"""Small shared helpers: seeding, progress bars, devices, grading-mode detection, shape checks.

The trainers' shared loop pieces (LR schedule, shuffled batches, ...) live in course_lib.trainers._loop."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that renders as a widget in Jupyter and as text elsewhere."""
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def grading_mode() -> bool:
    """True while nbgrader executes a notebook (autograde/validate): training cells shrink."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


GRADING_SIZES = {
    "ppo": {"batch_size": 8, "num_mini_batches": 2, "max_new_tokens": 12},
    "grpo": {"max_steps": 1, "prompts_per_step": 2, "num_generations": 4},
}
"""Config overrides that shrink a PPO / GRPO run while the grader executes a notebook (units 05,
06, and unit 08 when it trains a missing model): small batches, short completions."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_same_shape(exercise: str, **tensors: torch.Tensor) -> None:
    """Raise ValueError naming the exercise and every tensor's shape unless all shapes agree."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k}{list(s)}" for k, s in shapes.items())
        raise ValueError(f"{exercise}: tensors must have the same shape, got {desc}")


def check_ndim(exercise: str, name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    if x.dim() != ndim:
        raise ValueError(f"{exercise}: `{name}` must be {ndim}-D {layout}, got shape {list(x.shape)}")
