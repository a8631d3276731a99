"""Optional experiment tracking: TensorBoard or Weights & Biases when installed, a no-op otherwise.

    from course_lib.core import tracking
    tracker = tracking.make_tracker("grpo_sentiment", config=asdict(cfg))   # "auto" backend
    run = grpo_trainer.train(cfg, on_step=tracker.callback())               # log every step live
    tracking.log_history(ppo_history, tracker)                              # or a finished history
    tracker.close()

Backends (``backend=`` or ``$COURSE_TRACKING``): ``"tensorboard"`` (needs the `tensorboard`
package; writes ``runs/<name>``, view with ``tensorboard --logdir runs``), ``"wandb"`` (needs
`wandb` and a login or ``WANDB_MODE=offline``), ``"none"``. ``"auto"`` (default) picks
TensorBoard if installed, else W&B if installed and configured, else none — so notebooks can always
call the tracker and nothing breaks on a machine without either.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
from pathlib import Path

BACKENDS = ("auto", "tensorboard", "wandb", "none")


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _scalars(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[str(k)] = float(v)
    return out


class Tracker:
    """The no-op tracker (backend "none"); the others override `_log` and `close`."""

    backend = "none"

    def __init__(self, name: str = "run"):
        self.name = name
        self.steps_logged = 0

    def log(self, metrics: dict, step: int | None = None) -> None:
        """Log the numeric entries of `metrics` (others are ignored) at `step`."""
        scalars = _scalars(metrics)
        if step is None:
            step = int(metrics.get("step", self.steps_logged + 1))
        if scalars:
            self._log(scalars, step)
            self.steps_logged += 1

    def _log(self, scalars: dict[str, float], step: int) -> None:
        pass

    def callback(self):
        """A function ``f(record)`` for trainers' ``on_step=`` hooks."""
        return lambda rec: self.log(rec)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TensorBoardTracker(Tracker):
    backend = "tensorboard"

    def __init__(self, name: str, log_dir: str | Path = "runs", config: dict | None = None):
        super().__init__(name)
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir) / name
        self.writer = SummaryWriter(str(self.log_dir))
        if config:
            self.writer.add_text("config", "\n".join(f"{k}: {v}" for k, v in config.items()))

    def _log(self, scalars, step):
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)

    def close(self):
        self.writer.flush()
        self.writer.close()


class WandbTracker(Tracker):
    backend = "wandb"

    def __init__(self, name: str, project: str = "rl-posttraining-course", config: dict | None = None):
        super().__init__(name)
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", project), name=name, config=config or {}, reinit=True
        )

    def _log(self, scalars, step):
        self.run.log(scalars, step=step)

    def close(self):
        self.run.finish()


def _wandb_configured() -> bool:
    return bool(
        os.environ.get("WANDB_API_KEY")
        or os.environ.get("WANDB_MODE")
        or (Path.home() / ".netrc").exists()
        and "api.wandb.ai" in (Path.home() / ".netrc").read_text()
    )


def choose_backend(backend: str | None = None) -> str:
    """The backend that will actually be used for `backend` (or $COURSE_TRACKING, default auto)."""
    backend = (backend or os.environ.get("COURSE_TRACKING") or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"tracking: unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        if _installed("tensorboard"):
            return "tensorboard"
        if _installed("wandb") and _wandb_configured():
            return "wandb"
        return "none"
    return backend


def make_tracker(
    name: str | None = None,
    backend: str | None = None,
    config: dict | None = None,
    log_dir: str | Path = "runs",
) -> Tracker:
    """A tracker for one run. An explicitly requested backend that is not installed raises
    ImportError with the install command; "auto" silently falls back to the no-op tracker."""
    chosen = choose_backend(backend)
    name = re.sub(r"[^\w.-]+", "_", name or time.strftime("run-%Y%m%d-%H%M%S"))
    if chosen == "tensorboard":
        if not _installed("tensorboard"):
            raise ImportError("tracking: TensorBoard logging needs `pip install tensorboard`")
        return TensorBoardTracker(name, log_dir, config)
    if chosen == "wandb":
        if not _installed("wandb"):
            raise ImportError(
                "tracking: Weights & Biases logging needs `pip install wandb` (then `wandb login`)"
            )
        return WandbTracker(name, config=config)
    return Tracker(name)


def log_history(history, tracker: Tracker) -> int:
    """Log a finished trainer history (a list of per-step dicts with a "step" key); returns how
    many steps were logged."""
    for i, rec in enumerate(history):
        tracker.log(rec, step=int(rec.get("step", i + 1)))
    return tracker.steps_logged
