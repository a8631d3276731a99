"""What the seven trainers (sft, reward_model, ppo, grpo, dpo, rlvr, tools) share: one API, one copy of each piece.

Every trainer module has the same four entry points::

    config = XConfig.from_profile(profile, preset, **overrides)   # GRPO: task=..., RLVR: variant=...
    run = train(config, model=None, tokenizer=None, dataset=None)  # None: the unit's start model / data
    path = save_checkpoint(run)                                    # checkpoint_dir()/run.checkpoint_name
    trl_run = train_with_trl(config, model, tokenizer, dataset)    # TRL's trainer, same settings (not PPO, tools)

A run's checkpoint folder is :func:`checkpoint_name` (the trainer, plus the task where a trainer has
several); the TRL side by sides build their TRL config with :func:`trl_config`, from the one table
:data:`TRL_NAMES` of our field names and TRL's.

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
``reward``          mean sequence reward of the step's samples (PPO, GRPO, RLVR, tools)
``reward_std``      their standard deviation (PPO, GRPO)
``kl``              mean per-token k3 KL to the reference over the sampled tokens (PPO, GRPO, RLVR)
``grad_norm``       gradient norm before clipping (mean over the step's updates) (PPO, GRPO, RLVR)
``clip_fraction``   fraction of response tokens whose probability ratio was clipped (PPO, GRPO)
``completion_length`` mean number of completion tokens sampled (PPO, GRPO, RLVR)
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
from typing import Any, ClassVar, cast

import torch

from course_lib.core.config import Preset, Profile, checkpoint_dir, get_profile
from course_lib.core.utils import progress

LR_SCHEDULES = ("constant", "linear", "cosine")


# --------------------------------------------------------------------------- the result
@dataclass
class Run:
    """What ``train`` and ``train_with_trl`` return.

    `model` is trained in place (PPO: the policy with its value head, ``PolicyWithValueHead``);
    `history` one dict per step (keys: module docstring); `seconds` the wall time of training;
    `ref_model` the frozen reference of PPO / GRPO; `info` what else ``training_info.json`` records
    (start model, task, final kl_coef, ...); `state` what the trainer needs to go on training this
    run where it stopped (PPO: ``ppo.train(config, resume=run)``), None where it cannot."""

    model: Any
    tokenizer: Any
    history: list[dict]
    seconds: float
    config: Any = None
    trainer: str = ""  # "sft" | "reward_model" | "ppo" | "grpo" | "dpo" | "rlvr" | "tools"
    checkpoint_name: str = ""  # default folder under checkpoint_dir(): checkpoint_name(trainer, task)
    ref_model: Any = None
    info: dict = field(default_factory=dict)
    state: Any = field(default=None, repr=False)

    def curve(self, key: str) -> list[float]:
        """``[row[key] for row in history]`` for the rows that have `key`."""
        return [h[key] for h in self.history if key in h]

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of one step (:func:`median_step_seconds`)."""
        return median_step_seconds(self.history)


DEFAULT_TASKS = {"grpo": "sentiment"}
"""The task whose checkpoint is named after the trainer alone (what later units look for)."""


def checkpoint_name(trainer: str, task: str | None = None) -> str:
    """The folder under ``checkpoint_dir()`` a run saves to: the trainer's name, with ``_<task>``
    appended for a task other than the trainer's :data:`DEFAULT_TASKS` one (``grpo``,
    ``grpo_arithmetic``, ``rlvr_addition``)."""
    if task is None or task == DEFAULT_TASKS.get(trainer):
        return trainer
    return f"{trainer}_{task}"


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


class TrainerConfig:
    """Base of the seven trainers' configs (dataclasses), so that every config works one way:

    * ``XConfig.from_profile(profile, preset, **overrides)``: :meth:`profile_defaults` (the unit's
      settings for that profile and preset), then `overrides` (fields; they win, an unknown name
      is refused by :func:`config_from`). A trainer with named set-ups takes one selector keyword
      (:attr:`SELECTOR`: GRPO's ``task``, RLVR's ``variant``) that :meth:`profile_defaults` receives;
    * :meth:`validate` runs when a config is made (and on every ``dataclasses.replace``): a field
      outside :attr:`CHOICES`, or a count of :attr:`COUNTS` that is not an int >= 1, is a
      ValueError naming it. A trainer adds its own rules by extending :meth:`validate`."""

    COUNTS: ClassVar[tuple[str, ...]] = ("max_steps", "per_device_train_batch_size")
    CHOICES: ClassVar[dict[str, tuple]] = {}
    SELECTOR: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        name = type(self).__name__
        for key, allowed in self.CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{name}.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        check_config(self, self.COUNTS)

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The unit's settings for `profile` and `preset`: the preset's steps and batch size."""
        return {"max_steps": preset.steps, "per_device_train_batch_size": preset.batch_size}

    @classmethod
    def from_profile(cls, profile: Profile | None = None, preset: str | None = None, **overrides):
        """The unit's settings for a profile + preset (None: $COURSE_PRESET or "quick");
        `overrides` are fields and win (and :attr:`SELECTOR`, where the trainer has one)."""
        profile = profile or get_profile()
        selector = {cls.SELECTOR: overrides.pop(cls.SELECTOR)} if cls.SELECTOR in overrides else {}
        return config_from(cls, cls.profile_defaults(profile, profile.preset(preset), **selector), overrides)


class GroupConfig(TrainerConfig):
    """Base of the GRPO and RLVR configs (``max_steps``, ``prompts_per_step``,
    ``num_generations``, ``num_iterations``, ``max_completion_length``, ``eval_size``): a None
    field means "the profile's / preset's", filled in by :meth:`resolved` (``from_profile``
    returns a resolved config)."""

    COUNTS: ClassVar[tuple[str, ...]] = ("max_steps", "prompts_per_step", "max_completion_length")

    @property
    def per_device_train_batch_size(self) -> int:
        """Completions per step: ``prompts_per_step * num_generations`` (TRL's batch size)."""
        cfg = cast(Any, self)
        return int(cfg.prompts_per_step or 1) * cfg.num_generations

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """None of the counts: :meth:`resolved` fills them in from the preset."""
        return {}

    @classmethod
    def from_profile(cls, profile: Profile | None = None, preset: str | None = None, **overrides):
        """:meth:`TrainerConfig.from_profile`, :meth:`resolved` against the same profile and preset."""
        profile = profile or get_profile()
        return super().from_profile(profile, preset, **overrides).resolved(profile, preset)

    def resolved(self, profile: Profile | None = None, preset: str | None = None):
        """A copy with every None filled in from the profile and preset (validated)."""
        profile = profile or get_profile()
        p = profile.preset(preset)
        cfg: Any = self
        return dataclasses.replace(
            cfg,
            max_steps=p.steps if cfg.max_steps is None else cfg.max_steps,
            prompts_per_step=p.batch_size if cfg.prompts_per_step is None else cfg.prompts_per_step,
            max_completion_length=cfg.max_completion_length or profile.max_completion_length,
            eval_size=p.eval_size if cfg.eval_size is None else cfg.eval_size,
        )

    def validate(self) -> None:
        """:meth:`TrainerConfig.validate`, a group of at least 2 and an optimizer step per batch."""
        super().validate()
        name, cfg = type(self).__name__, cast(Any, self)
        if cfg.num_generations < 2:
            raise ValueError(
                f"{name}.num_generations must be >= 2 (a group needs a spread), got {cfg.num_generations}"
            )
        if cfg.num_iterations < 1:
            raise ValueError(f"{name}.num_iterations must be >= 1, got {cfg.num_iterations}")


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


# --------------------------------------------------------------------------- GRPO and RLVR pieces
def named(fn: Callable, name: str) -> Callable:
    """`fn` with ``__name__`` `name`: TRL and :func:`score_rollout` log a reward function under it."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def score_rollout(
    reward_funcs: Sequence[Callable], weights: Sequence[float], rollout, columns: dict[str, list]
):
    """Weighted sum of TRL-style reward functions over a sampled ``Rollout`` -> (rewards [B],
    {function name: mean reward}). Each function gets ``completions``, ``prompts``,
    ``completion_ids`` (without padding) and the dataset's other `columns`, one value per completion."""
    B = len(rollout)
    total = torch.zeros(B)
    per_func = {}
    lengths = rollout.completion_mask.sum(-1).tolist()
    ids = [row[:n] for row, n in zip(rollout.completion_ids.tolist(), lengths)]
    for f, w in zip(reward_funcs, weights):
        vals = f(completions=rollout.texts, prompts=rollout.prompts, completion_ids=ids, **columns)
        if len(vals) != B:
            raise ValueError(
                f"reward function {getattr(f, '__name__', f)} returned {len(vals)} "
                f"rewards for {B} completions"
            )
        v = torch.tensor([float(x) for x in vals])
        per_func[getattr(f, "__name__", "reward")] = v.mean().item()
        total += w * v
    return total, per_func


@dataclass
class HeadlineRun:
    """A notebook's main run (GRPO's, RLVR's ``headline_run``): the trained `run` (``run.model``,
    ``run.ref_model``) and the ``evaluate`` dicts `before` (the start model) / `after`."""

    run: Run
    before: dict
    after: dict


# --------------------------------------------------------------------------- TRL side by side
TRL_CONFIGS = {
    "sft": "SFTConfig",
    "reward_model": "RewardConfig",
    "dpo": "DPOConfig",
    "grpo": "GRPOConfig",
    "rlvr": "GRPOConfig",
}
"""The ``trl`` config class each trainer's side by side runs with (PPO has none in TRL 1.16)."""

_OPTIMIZER = (
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "seed",
)


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


TRL_NAMES: dict[str, dict[str, str]] = {
    "sft": _same(*_OPTIMIZER, "per_device_train_batch_size", "max_length", "completion_only_loss"),
    "reward_model": _same(
        *_OPTIMIZER, "per_device_train_batch_size", "max_length", "center_rewards_coefficient"
    ),
    "dpo": _same(
        *_OPTIMIZER,
        "per_device_train_batch_size",
        "max_length",
        "beta",
        "loss_type",
        "label_smoothing",
        "precompute_ref_batch_size",
        "train_sampling_strategy",
    ),
    "grpo": _same(
        *_OPTIMIZER,
        "per_device_train_batch_size",
        "num_generations",
        "beta",
        "epsilon",
        "loss_type",
        "scale_rewards",
        "max_completion_length",
        "temperature",
        "top_k",
        "top_p",
        "num_iterations",
        "reward_weights",
        "disable_dropout",
        "top_entropy_quantile",
    ),
    "rlvr": {
        **_same(
            *_OPTIMIZER,
            "per_device_train_batch_size",
            "num_generations",
            "beta",
            "loss_type",
            "scale_rewards",
            "max_completion_length",
            "temperature",
            "num_iterations",
            "reward_weights",
            "mask_truncated_completions",
        ),
        "eps_low": "epsilon",
        "eps_high": "epsilon_high",
        "level": "importance_sampling_level",
    },
}
"""Our config field -> the TRL argument with the same meaning, per trainer (properties such as
GRPO's ``per_device_train_batch_size`` count as fields). The only place the two sets of names meet."""


def _no_clip(value, config):
    return value if config.clip else math.inf


TRL_VALUES: dict[tuple[str, str], Callable[[Any, Any], Any]] = {
    # our None = no gradient clipping; TRL's is 0.0
    **{(t, "max_grad_norm"): (lambda v, c: 0.0 if v is None else v) for t in TRL_NAMES},
    ("dpo", "loss_type"): lambda v, c: [v],  # TRL takes a list of losses to sum
    ("rlvr", "scale_rewards"): lambda v, c: "group" if v else "none",
    ("rlvr", "eps_low"): _no_clip,  # clip=False: no clipping on either side
    ("rlvr", "eps_high"): _no_clip,
}
"""Where a value means the same in a different form: (trainer, our field) -> f(value, config)."""

TRL_ONLY: dict[tuple[str, str], tuple[Any, str]] = {
    ("grpo", "advantage_estimator"): (
        "grpo",
        "TRL's GRPOTrainer always computes group advantages (its scale_rewards picks the std). "
        "RLOO is trl.RLOOTrainer with RLOOConfig(normalize_advantages=False), REINFORCE++-baseline "
        "the same with normalize_advantages=True, but that trainer optimises another objective "
        "(the KL, k1 summed over the sequence, subtracted from the reward instead of k3 in the loss; "
        "a sequence-level ratio; no loss_type), so a side by side with it would not compare one "
        "objective. Compare the estimators in our loop; run TRL's side by side with 'grpo'.",
    ),
}
"""Our fields TRL's config cannot express for a trainer: (trainer, field) -> (the only value
TRL's trainer computes, why). :func:`trl_arguments` refuses a config with another value rather
than let TRL silently train something else."""

TRL_RUN = dict(
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    disable_tqdm=True,
    bf16=False,
    fp16=False,
    activation_checkpointing=False,
    dataloader_num_workers=0,
)
"""How every side by side runs: one log per step, nothing saved or reported, fp32, no workers."""


def trl_arguments(trainer: str, config) -> dict:
    """``{TRL argument: value}`` for `config` (a resolved config of `trainer`), from
    :data:`TRL_NAMES` and :data:`TRL_VALUES`; a ValueError when a field of :data:`TRL_ONLY`
    has a value TRL's trainer cannot compute."""
    if trainer not in TRL_NAMES:
        raise ValueError(f"trl_arguments: no TRL side by side for {trainer!r}; one of {sorted(TRL_NAMES)}")
    for (t, ours), (value, why) in TRL_ONLY.items():
        if t == trainer and getattr(config, ours, value) != value:
            raise ValueError(
                f"trl_arguments: TRL cannot express {ours}={getattr(config, ours)!r} for {trainer!r}: {why}"
            )
    convert = {field: f for (t, field), f in TRL_VALUES.items() if t == trainer}
    return {
        theirs: convert[ours](getattr(config, ours), config) if ours in convert else getattr(config, ours)
        for ours, theirs in TRL_NAMES[trainer].items()
    }


def trl_config(trainer: str, config, output_dir: str | Path, use_cpu: bool, **fixed):
    """The ``trl`` config (:data:`TRL_CONFIGS`) of `trainer`'s side by side: our settings
    (:func:`trl_arguments`), :data:`TRL_RUN`, ``use_cpu``, then `fixed` -- the TRL-only options a
    trainer pins so that TRL computes what our loop computes (they win)."""
    import trl

    kw = {"output_dir": str(output_dir), **trl_arguments(trainer, config), **TRL_RUN, "use_cpu": use_cpu}
    return getattr(trl, TRL_CONFIGS[trainer])(**{**kw, **fixed})


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
