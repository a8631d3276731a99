"""What the trainers sft, reward_model, ppo, grpo and dpo share: one API, one copy of each piece.

Every trainer module has the same four entry points::

    config = XConfig.from_profile(profile, preset, **overrides)   # GRPO: from_profile(task="arithmetic")
    run = train(config, model=None, tokenizer=None, dataset=None)  # None: the unit's start model / data
    path = save_checkpoint(run)                                    # checkpoint_dir()/run.checkpoint_name
    trl_run = train_with_trl(config, model, tokenizer, dataset)    # TRL's trainer, same settings (not PPO)

``train`` and ``train_with_trl`` both return a :class:`Run`. ``quick_train(profile, preset, out_dir,
**overrides)`` = from_profile -> train -> save_checkpoint (what ``course run`` and unit 08 call).

History: ``run.history`` is one dict per step. A key means the same thing in every trainer:

==================  ==========================================================================
``step``            1, 2, ... (one step = one batch: examples, pairs, or a sampled rollout)
``loss``            training loss of the step (mean over its optimizer updates if several)
``lr``              learning rate of the step's (first) optimizer update
``seconds``         wall time of that step, in seconds (not time since the start)
``accuracy``        fraction of the step's pairs with chosen reward > rejected (reward model, DPO)
``margin``          mean (chosen reward - rejected reward) on the step's pairs (reward model, DPO)
``chosen_reward``   DPO: mean implicit reward beta * (log pi - log pi_ref) of the chosen answers
``rejected_reward`` DPO: the same for the rejected answers
``reward``          mean sequence reward of the step's samples (PPO, GRPO)
``reward_std``      their standard deviation (PPO, GRPO)
``kl``              mean per-token k3 KL to the reference over the sampled tokens (PPO, GRPO)
``grad_norm``       gradient norm before clipping (mean over the step's updates) (PPO, GRPO)
``clip_fraction``   fraction of response tokens whose probability ratio was clipped (PPO, GRPO)
``completion_length`` mean number of completion tokens sampled (PPO, GRPO)
``eval_*``          held-out metrics, on the steps where an evaluation ran
==================  ==========================================================================

Trainer-specific keys are listed in each ``train`` docstring. :func:`median_step_seconds` is
the one "seconds per step" of the course (notebooks' side-by-side tables, ``course bench``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_lib.core.config import Profile, checkpoint_dir, get_profile
from course_lib.core.utils import progress

LR_SCHEDULES = ("constant", "linear", "cosine")


# --------------------------------------------------------------------------- the result
@dataclass
class Run:
    """What ``train`` and ``train_with_trl`` return.

    `model` is trained in place (PPO: the policy with its value head, ``PolicyWithValueHead``);
    `history` one dict per step (keys: module docstring); `seconds` the wall time of training;
    `ref_model` the frozen reference of PPO / GRPO; `info` what else ``training_info.json`` records
    (start model, task, final kl_coef, ...)."""

    model: Any
    tokenizer: Any
    history: list[dict]
    seconds: float
    config: Any = None
    trainer: str = ""  # "sft" | "reward_model" | "ppo" | "grpo" | "dpo"
    checkpoint_name: str = ""  # default folder under checkpoint_dir()
    ref_model: Any = None
    info: dict = field(default_factory=dict)

    def curve(self, key: str) -> list[float]:
        """``[row[key] for row in history]`` for the rows that have `key`."""
        return [h[key] for h in self.history if key in h]

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of one step (:func:`median_step_seconds`)."""
        return median_step_seconds(self.history)


def save_checkpoint(run: Run, path: str | Path | None = None) -> Path:
    """``save_pretrained`` the model and tokenizer to `path` (default ``checkpoint_dir() /
    run.checkpoint_name``) and write ``training_info.json`` (trainer, config, steps, seconds, the
    last history row, ``run.info``); returns the folder."""
    out = Path(path) if path is not None else checkpoint_dir() / (run.checkpoint_name or run.trainer)
    out.mkdir(parents=True, exist_ok=True)
    run.model.save_pretrained(out)
    run.tokenizer.save_pretrained(out)
    info = {
        "trainer": run.trainer,
        "config": (
            dataclasses.asdict(run.config)
            if dataclasses.is_dataclass(run.config) and not isinstance(run.config, type)
            else None
        ),
        "steps": len(run.history),
        "seconds": run.seconds,
        "final": run.history[-1] if run.history else None,
        **run.info,
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2, default=str))
    return out


def quick_train(
    train: Callable[..., Run],
    config_cls,
    profile: Profile | None = None,
    preset: str | None = None,
    out_dir: str | Path | None = None,
    **overrides,
) -> Path:
    """``config_cls.from_profile(profile, preset, **overrides)`` -> ``train(config)`` (the unit's
    start model and data, the active exercise functions) -> :func:`save_checkpoint`; the path."""
    profile = profile or get_profile()
    run = train(config_cls.from_profile(profile, preset, **overrides), profile=profile)
    return save_checkpoint(run, out_dir)


# --------------------------------------------------------------------------- config
def config_from(cls, defaults: dict, overrides: dict):
    """``cls(**defaults, **overrides)`` (overrides win); an override that is not a field of `cls`
    raises a ValueError naming it (and the closest field name).

    ``None`` for a field whose own default is None (None = "not set", e.g. GRPO's and RLVR's
    ``max_steps``) is no override: the profile's value in `defaults` stays, so
    ``from_profile(max_steps=STEPS)`` with ``STEPS = None`` runs the unit's default. Where None is a
    value of its own (PPO's ``clip_range=None``: no clipping), it wins like any override."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in overrides:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{cls.__name__}.from_profile: unknown field {key!r}{hint}; the fields are {', '.join(fields)}"
            )
    unset = {k for k, v in overrides.items() if v is None and fields[k].default is None}
    return cls(**{**defaults, **{k: v for k, v in overrides.items() if k not in unset}})


class PresetConfig:
    """Base of the SFT and reward-model configs: ``from_profile`` takes max_steps and
    per_device_train_batch_size from the preset and the rest from ``cls.profile_defaults``."""

    @classmethod
    def from_profile(cls, profile: Profile | None = None, preset: str | None = None, **overrides):
        """The unit's settings for a profile + preset (None: $COURSE_PRESET or "quick"): steps and
        batch size from the preset; `overrides` are fields and win."""
        profile = profile or get_profile()
        p = profile.preset(preset)
        return config_from(
            cls,
            {
                "max_steps": p.steps,
                "per_device_train_batch_size": p.batch_size,
                **cls.profile_defaults(profile),
            },
            overrides,
        )

    @staticmethod
    def profile_defaults(profile: Profile) -> dict:
        return {}


def check_schedule(cls_name: str, kind: str) -> None:
    if kind not in LR_SCHEDULES:
        raise ValueError(f"{cls_name}: lr_scheduler_type must be one of {LR_SCHEDULES}, got {kind!r}")


def check_config(config, fields: tuple[str, ...] = ("max_steps", "per_device_train_batch_size")) -> None:
    """ValueError naming the field unless each of `fields` that the config has is an int >= 1 (None
    only where the field's default is None: "the preset's") and lr_scheduler_type, where the
    config has one, is one of :data:`LR_SCHEDULES`."""
    name = type(config).__name__
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for key in fields:
        if key not in defaults:
            continue
        value = getattr(config, key)
        if value is None and defaults[key] is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {key} must be an int >= 1, got {value!r}")
    if hasattr(config, "lr_scheduler_type"):
        check_schedule(name, config.lr_scheduler_type)


# --------------------------------------------------------------------------- shared loop pieces
def lr_schedule(optimizer, kind: str, warmup_steps: int, max_steps: int, warmup_offset: int = 0):
    """``LambdaLR`` with TRL's schedule names: warm-up factor ``(step + 1) / (warmup_steps +
    warmup_offset)`` for the first `warmup_steps` updates, then "constant" (1.0), "linear" (decay
    to 0 at `max_steps`) or "cosine" (half a cosine down to 0). GRPO warms up with offset 1, the
    others with 0: each trainer's recipe and pinned test numbers are tuned with its own offset."""
    check_schedule("lr_schedule", kind)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + warmup_offset)
        if kind == "constant":
            return 1.0
        if kind == "linear":
            return max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))
        t = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_and_schedule(
    model: torch.nn.Module, config, total_steps: int | None = None, warmup_offset: int = 0
):
    """``(AdamW, LambdaLR)``: AdamW over every parameter with ``config.learning_rate`` and
    ``config.weight_decay``, and :func:`lr_schedule` with ``config.lr_scheduler_type`` and
    ``warmup_steps`` over `total_steps` optimizer updates (default ``config.max_steps``; GRPO
    and RLVR pass ``max_steps * num_iterations`` and ``warmup_offset=1``)."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = lr_schedule(
        optimizer,
        config.lr_scheduler_type,
        config.warmup_steps,
        config.max_steps if total_steps is None else total_steps,
        warmup_offset=warmup_offset,
    )
    return optimizer, schedule


def check_columns(dataset, columns: Sequence[str], who: str) -> None:
    """ValueError naming the trainer (`who`, e.g. "sft train") and the first missing column
    unless `dataset` (a ``datasets.Dataset``) has every one of `columns`."""
    for col in columns:
        if col not in dataset.column_names:
            raise ValueError(f"{who}: the dataset needs a {col!r} column, has {dataset.column_names}")


def shuffled_batches(
    n: int,
    batch_size: int,
    rng: random.Random | torch.Generator | None,
    keep_remainder: bool = False,
    from_end: bool = False,
) -> Iterator[list[int]]:
    """Endless mini-batches of indices into `n` examples, a fresh permutation every epoch.

    The permutation comes from `rng`: ``random.Random.shuffle``, ``torch.randperm`` with a
    ``torch.Generator``, or ``range(n)`` in order when None. An epoch's last incomplete batch is
    dropped (a batch is all n when n < batch_size), unless `keep_remainder`: then the next
    epoch's permutation is appended to it. `from_end` takes the indices from the end of the
    permutation (PPO's order). A permutation is drawn only when a batch needs it, so the RNG is
    consumed at the same moments as a hand-written loop would."""
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            if rng is None:
                fresh = list(range(n))
            elif isinstance(rng, torch.Generator):
                fresh = torch.randperm(n, generator=rng).tolist()
            else:
                fresh = list(range(n))
                rng.shuffle(fresh)
            order = order + fresh if keep_remainder else fresh
        if from_end:
            batch, order = order[::-1][:batch_size], order[:-batch_size]
        else:
            batch, order = order[:batch_size], order[batch_size:]
        yield batch


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability to 0 (as TRL does): RL and DPO compare log-probs of the same
    text under two models or two moments, and dropout noise would make a ratio differ from 1."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def start_model(
    profile: Profile | None = None, init_from: str | Path | None = None, device=None, seed: int | None = None
):
    """(model, tokenizer, path) a trainer starts from: `init_from`, else the unit-03 SFT
    checkpoint when it exists, else the profile's base model. Seeds everything first if `seed`."""
    from course_lib.core.models import latest_checkpoint, load_policy
    from course_lib.core.utils import seed_everything

    if seed is not None:
        seed_everything(seed)
    profile = profile or get_profile()
    path = init_from or latest_checkpoint("sft") or profile.policy_model
    model, tok = load_policy(path, profile=profile, device=device)
    return model, tok, str(path)


def progress_bar(steps: int, desc: str, show: bool = True):
    return progress(range(steps), desc=desc, disable=not show)


def median_step_seconds(history: Sequence[dict]) -> float:
    """Median wall time of one step, without the first step (it warms caches) and NaNs."""
    xs = [float(h["seconds"]) for h in history if h.get("seconds") == h.get("seconds")]
    xs = xs[1:] if len(xs) > 1 else xs
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------- TRL side by side
def trl_training_args(config, output_dir, use_cpu: bool) -> dict:
    """``TrainingArguments`` keywords mirroring one of our configs (SFT, reward model): same steps,
    batch, optimiser and schedule, one log per step, nothing saved, fp32 on CPU."""
    return dict(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm if config.max_grad_norm is not None else 0.0,
        max_length=config.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=use_cpu,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def run_trl(
    trainer,
    config,
    tokenizer,
    trainer_name: str,
    desc: str,
    keys: dict[str, str] | None = None,
    losses: Sequence[float] | None = None,
) -> Run:
    """Train a HF/TRL `trainer` with a course progress bar instead of its log printer, time each
    optimizer step, and return a :class:`Run` whose history has ``step``, ``loss``, ``lr``,
    ``seconds`` (that step) and ``keys`` renamed from TRL's logs (``{trl_name: our_name}``).
    `losses`, if given, is filled during training with the exact per-step losses (DPO)."""
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t0, self.bar = [], None, None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = progress(total=state.max_steps, desc=desc)

        def on_step_begin(self, args, state, control, **kw):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t0)
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and self.bar is not None:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        trainer.remove_callback(NotebookProgressCallback)
    except ImportError:  # pragma: no cover
        pass
    timer = StepTimer()
    trainer.add_callback(timer)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    trainer.model.eval()
    logs = [r for r in trainer.state.log_history if "loss" in r and "step" in r]
    history = []
    for i, t in enumerate(timer.times):
        log = logs[i] if i < len(logs) else {}
        row = {
            "step": i + 1,
            "loss": losses[i] if losses is not None else log.get("loss"),
            "lr": log.get("learning_rate"),
            "seconds": t,
        }
        row.update({ours: log[theirs] for theirs, ours in (keys or {}).items() if theirs in log})
        history.append(row)
    impl = next(c.__name__ for c in type(trainer).__mro__ if not c.__name__.startswith("_"))
    return Run(
        trainer.model,
        tokenizer,
        history,
        seconds,
        config,
        trainer=trainer_name,
        info={"implementation": f"trl.{impl}"},
    )
