"""RL with verifiable rewards (unit 09): R1-zero-style GRPO and its variants, calling *your* functions.

Each step:

1. sample a group of ``num_generations`` completions for each of ``prompts_per_step`` problems
   (the R1-zero prompt of :mod:`course_lib.labs.reasoning`; the same KV-cached sampler and
   reward scoring as unit 06's trainer);
2. reward = ``rlvr.answer_reward`` (exercise 9.2) + ``format_weight`` * ``rlvr.think_format_reward``
   (exercise 9.1), + DAPO's soft overlong punishment ``rlvr.overlong_penalty`` (9.6) of the
   completion's length when ``overlong_buffer > 0``;
3. DAPO's dynamic sampling (``dynamic_sampling=True``): ``rlvr.dynamic_sampling_mask`` (9.5)
   drops the groups whose rewards all agree (their advantages are 0: no signal) and more
   problems are sampled to refill the batch, at most ``max_resample_rounds`` times;
4. advantages relative to the group -- unit 06's ``grpo.group_advantages`` (6.1), with the
   group std (``scale_rewards=True``) or without it (Dr. GRPO);
5. ``num_iterations`` optimizer steps on ``rlvr.rlvr_policy_loss`` (9.4): token-level ratios
   (GRPO/DAPO) or GSPO's sequence-level ratio (``level="sequence"``, 9.3), asymmetric clipping
   (``eps_low`` / ``eps_high``: DAPO's clip-higher; ``clip=False``: no clipping at all), loss
   aggregation ``loss_type`` and an optional k3 KL (``beta``); with ``mask_truncated_completions``
   the completions that used the whole budget without EOS are masked out of the loss
   (``rlvr.mask_truncated_completions``, 9.7; their rewards still count in the group's advantages).

Named variants (:data:`VARIANTS`) are just settings: ``train(RLVRConfig.from_profile(**VARIANTS["gspo"]))``.
History keys (besides ``_loop``'s): ``accuracy`` / ``format_rate`` (of the step's samples),
``entropy`` (mean per-token entropy of the policy on its samples), ``clip_ratio_low`` /
``clip_ratio_high`` / ``mean_ratio`` (from 9.4's stats), ``frac_reward_zero_std``, ``kept_groups``,
``truncated_rate`` (fraction of the step's samples that hit ``max_completion_length`` without EOS),
``overlong_penalty`` (its mean, when ``overlong_buffer > 0``) and, every ``eval_every`` steps,
``eval_accuracy`` / ``eval_format_rate`` / ``eval_response_length`` / ``eval_truncated_rate``
on held-out problems (step 0 = the start model, in ``run.info["start"]``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from course_lib import grpo, kl, rlvr, sft
from course_lib.core import sampling
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.labs import reasoning
from course_lib.trainers import _loop
from course_lib.trainers._loop import HeadlineRun, Run, save_checkpoint  # noqa: F401  (shared API)

TASKS = ("addition", "gsm8k")
LEVELS = ("token", "sequence")
LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "cispo")
# The variants of the notebook, as overrides of the defaults.
VARIANTS: dict[str, dict] = {
    "grpo": {},
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": False},
    "dapo": {"loss_type": "dapo", "eps_high": 0.28, "dynamic_sampling": True},
    "gspo": {"level": "sequence", "eps_low": 3e-4, "eps_high": 4e-4},
    "cispo": {"loss_type": "cispo", "eps_high": 5.0},
}
UNIT09_TINY_STEPS = {"max_steps": 60, "prompts_per_step": 8}  # quick preset of the tiny profile (~70 s)


@dataclass
class RLVRConfig(_loop.GroupConfig):
    """Hyper-parameters (TRL 1.16's ``GRPOConfig`` names where TRL has the knob).

    One step samples ``prompts_per_step`` x ``num_generations`` completions; ``max_steps`` counts
    such batches, each used for ``num_iterations`` optimizer steps. None = from the profile
    (:meth:`~_loop.GroupConfig.resolved`, which validates).
    """

    CHOICES: ClassVar[dict[str, tuple]] = {"task": TASKS, "level": LEVELS, "loss_type": LOSS_TYPES}

    task: str = "addition"  # "addition" (tiny: labs.reasoning) | "gsm8k" (gpu profile)
    max_steps: int | None = None
    prompts_per_step: int | None = None
    num_generations: int = 8
    learning_rate: float = 5e-4
    beta: float = 0.0  # k3 KL to the reference in the loss (R1-zero / DAPO: none)
    eps_low: float = 0.2  # ratio clipped below at 1 - eps_low
    eps_high: float = 0.2  # ... and above at 1 + eps_high (DAPO clip-higher: 0.28)
    clip: bool = True  # False: no clipping (eps = inf)
    level: str = "token"  # "token" | "sequence" (GSPO); TRL: importance_sampling_level
    loss_type: str = "grpo"  # "grpo" | "dapo" | "dr_grpo" | "cispo"
    scale_rewards: bool = True  # divide advantages by the group's std (False: Dr. GRPO)
    dynamic_sampling: bool = False  # DAPO: drop zero-std groups and refill
    max_resample_rounds: int = 2
    num_iterations: int = 1
    format_weight: float = 0.2
    max_completion_length: int | None = None
    # DAPO's soft overlong punishment (9.6): the last `overlong_buffer` tokens before the budget
    # cost up to -1 reward (TRL: the reward function get_soft_overlong_punishment); 0 = off
    overlong_buffer: int = 0
    mask_truncated_completions: bool = False  # 9.7: no loss from completions cut off without EOS
    temperature: float = 1.0
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    eval_every: int = 10  # steps between held-out evaluations (0: only at the start and end)
    eval_size: int | None = None
    train_size: int = 2048
    seed: int = 0

    @property
    def reward_weights(self) -> list[float]:
        """The weights of :func:`reward_functions` (answer, format[, overlong])."""
        return reward_functions(self.format_weight, self.max_completion_length, self.overlong_buffer)[1]

    def validate(self) -> None:
        """:meth:`_loop.GroupConfig.validate`, no negative clip range, an overlong buffer
        inside the completion budget."""
        super().validate()
        if self.eps_low < 0 or self.eps_high < 0:
            raise ValueError(f"RLVRConfig: eps_low/eps_high must be >= 0, got {self.eps_low}/{self.eps_high}")
        budget = self.max_completion_length
        if self.overlong_buffer < 0 or (budget is not None and self.overlong_buffer > budget):
            raise ValueError(
                f"RLVRConfig: overlong_buffer must be in 0..max_completion_length ({budget}), "
                f"got {self.overlong_buffer} (0 = no overlong punishment)"
            )

    SELECTOR: ClassVar[str | None] = "variant"

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, variant: str = "grpo", **selector) -> dict:
        """The unit's defaults for the profile (tiny: the addition task, 64-token completions;
        gpu: GSM8K) with a named variant of :data:`VARIANTS` (``from_profile(variant=...)``)."""
        if variant not in VARIANTS:
            raise ValueError(
                f"RLVRConfig.from_profile: unknown variant {variant!r}; choose one of {list(VARIANTS)}"
            )
        if profile.name == "tiny":
            base = dict(task="addition", max_completion_length=64, **UNIT09_TINY_STEPS)
        else:
            base = dict(
                task="gsm8k",
                learning_rate=1e-6,
                max_completion_length=profile.extra.get("reasoning_max_completion_length", 256),
                eval_every=20,
            )
        return {**base, **VARIANTS[variant]}


# --------------------------------------------------------------------------- data & rewards
def task_problems(
    task: str, split: str = "train", n: int = 256, profile: Profile | None = None, seed: int = 0
):
    """Problems (dicts with ``prompt`` and ``answer``) of the task: "addition" =
    :func:`course_lib.labs.reasoning.make_problems` ("eval" = the held-out split); "gsm8k" = the
    profile's arithmetic dataset (GSM8K) in the R1-zero prompt."""
    if task == "addition":
        return reasoning.make_problems("heldout" if split == "eval" else "train", n, seed=seed)
    if task == "gsm8k":
        return reasoning.gsm8k_problems(split, n, profile=profile)
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def reward_functions(
    format_weight: float = 0.2, max_completion_length: int | None = None, overlong_buffer: int = 0
) -> tuple[list[Callable], list[float]]:
    """TRL-style reward functions (answer, format and, with ``overlong_buffer > 0``, the soft
    overlong punishment of the completion's length in tokens, EOS included, as TRL counts it) and
    their weights; they look the exercises up when called, so they run the active implementation."""
    answer = _loop.named(
        lambda completions, answer, **kw: [rlvr.answer_reward(c, a) for c, a in zip(completions, answer)],
        "answer_reward",
    )
    fmt = _loop.named(
        lambda completions, **kw: [rlvr.think_format_reward(c) for c in completions], "format_reward"
    )
    if overlong_buffer <= 0:
        return [answer, fmt], [1.0, format_weight]
    if max_completion_length is None:
        raise ValueError("rlvr reward_functions: overlong_buffer > 0 needs max_completion_length")
    overlong = _loop.named(
        lambda completion_ids, **kw: rlvr.overlong_penalty(
            torch.tensor([len(ids) for ids in completion_ids]), max_completion_length, overlong_buffer
        ).tolist(),
        "overlong_penalty",
    )
    return [answer, fmt, overlong], [1.0, format_weight, 1.0]


def _entropy(logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean per-token entropy (nats) of the distributions that sampled the completion tokens."""
    with torch.no_grad():
        ent = torch.distributions.Categorical(logits=logits.float()).entropy()
        return float(sft.masked_mean(ent, mask))


def _select(rollout: sampling.Rollout, keep: torch.Tensor) -> sampling.Rollout:
    idx = keep.nonzero().squeeze(-1).tolist()
    return sampling.Rollout(
        prompts=[rollout.prompts[i] for i in idx],
        texts=[rollout.texts[i] for i in idx],
        prompt_ids=rollout.prompt_ids[idx],
        prompt_mask=rollout.prompt_mask[idx],
        completion_ids=rollout.completion_ids[idx],
        completion_mask=rollout.completion_mask[idx],
    )


def _concat(parts: list[sampling.Rollout], pad_id: int) -> sampling.Rollout:
    """One rollout from several (prompts left-padded, completions right-padded to a common width)."""
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_ids.shape[1] for r in parts)
    C = max(r.completion_ids.shape[1] for r in parts)

    def left(x, w, v):
        return torch.nn.functional.pad(x, (w - x.shape[1], 0), value=v)

    def right(x, w, v):
        return torch.nn.functional.pad(x, (0, w - x.shape[1]), value=v)

    return sampling.Rollout(
        prompts=[p for r in parts for p in r.prompts],
        texts=[t for r in parts for t in r.texts],
        prompt_ids=torch.cat([left(r.prompt_ids, P, pad_id) for r in parts]),
        prompt_mask=torch.cat([left(r.prompt_mask, P, 0) for r in parts]),
        completion_ids=torch.cat([right(r.completion_ids, C, pad_id) for r in parts]),
        completion_mask=torch.cat([right(r.completion_mask, C, 0) for r in parts]),
    )


def sample_groups(model, tokenizer, rows, batches, reward_funcs, weights, cfg: RLVRConfig, generator):
    """Steps 1-3 of a training step: a group of ``num_generations`` completions for each of the
    next ``prompts_per_step`` problems, scored. With ``dynamic_sampling`` only the groups whose
    rewards differ are kept (``rlvr.dynamic_sampling_mask``), and more problems are sampled, at
    most ``max_resample_rounds`` more times, until ``prompts_per_step`` groups are kept.

    Returns (rollout, rewards [B], metrics): what the update learns from (None, None when every
    group agreed) and the step's sampling metrics -- reward, accuracy, format_rate and
    completion_length of the first round's samples, frac_reward_zero_std over every round,
    kept_groups."""
    assert cfg.max_completion_length is not None and cfg.prompts_per_step is not None  # resolved
    G = cfg.num_generations
    parts, part_scores, kept, sampled_groups, zero_groups = [], [], 0, 0, 0
    first = None
    for round_ in range(1 + (cfg.max_resample_rounds if cfg.dynamic_sampling else 0)):
        batch = [rows[i] for i in next(batches)]
        ro = sampling.sample(
            model,
            tokenizer,
            [r["prompt"] for r in batch],
            max_new_tokens=cfg.max_completion_length,
            num_samples=G,
            temperature=cfg.temperature,
            generator=generator,
        )
        cols = {"answer": [str(r["answer"]) for r in batch for _ in range(G)]}
        scores, per_func = _loop.score_rollout(reward_funcs, weights, ro, cols)  # [B]
        sampled_groups += len(batch)
        zero_groups += int((scores.view(-1, G).std(-1) < 1e-6).sum())
        if round_ == 0:
            first = (ro, scores, per_func)
        if cfg.dynamic_sampling:
            keep = rlvr.dynamic_sampling_mask(scores, G)
            if keep.any():
                parts.append(_select(ro, keep))
                part_scores.append(scores[keep])
                kept += int(keep.sum()) // G
            if kept >= cfg.prompts_per_step:
                break
        else:
            parts, part_scores, kept = [ro], [scores], len(batch)
    assert first is not None  # the loop runs at least once
    ro0, scores0, per_func0 = first
    metrics = {
        "reward": scores0.mean().item(),
        "accuracy": per_func0["answer_reward"],
        "format_rate": per_func0["format_reward"],
        "completion_length": ro0.completion_mask.sum(-1).float().mean().item(),
        "truncated_rate": ro0.is_truncated(tokenizer.eos_token_id, tokenizer.pad_token_id)
        .float()
        .mean()
        .item(),
        "frac_reward_zero_std": zero_groups / max(1, sampled_groups),
        "kept_groups": kept,
    }
    if "overlong_penalty" in per_func0:
        metrics["overlong_penalty"] = per_func0["overlong_penalty"]
    if not parts:
        return None, None, metrics
    return _concat(parts, tokenizer.pad_token_id), torch.cat(part_scores), metrics


# --------------------------------------------------------------------------- the loop
def train(
    config: RLVRConfig | None = None,
    model=None,
    tokenizer=None,
    dataset=None,
    *,
    ref_model=None,
    eval_problems=None,
    profile: Profile | None = None,
    desc: str | None = None,
    show_progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
    evaluate_start: bool = True,
) -> Run:
    """Train with RLVR; returns a :class:`Run` (with ``ref_model``; ``info["start"]`` = held-out
    metrics of the start model). Defaults: the profile's config, the unit's start model
    (:func:`course_lib.labs.reasoning.load_start_model`), ``train_size`` training problems and
    ``eval_size`` held-out ones. `dataset`: dicts (or a ``datasets.Dataset``) with ``prompt`` and
    ``answer``. `evaluate_start=False` skips the start model's held-out evaluation (info["start"]
    is then None)."""
    from course_lib.core.models import frozen_copy

    profile = profile or get_profile()
    cfg = (config or RLVRConfig.from_profile(profile)).resolved(profile)
    # resolved() fills these from the profile and preset; the asserts tell the type checker so
    assert cfg.max_steps is not None and cfg.prompts_per_step is not None
    assert cfg.max_completion_length is not None and cfg.eval_size is not None
    torch.manual_seed(cfg.seed)
    start = None
    if model is None:
        model, tokenizer = reasoning.load_start_model(profile=profile)
        start = "start model"
    elif tokenizer is None:
        raise ValueError("rlvr train: pass the tokenizer together with the model")
    _loop.disable_dropout(model)
    if ref_model is None:  # the KL to the start model is tracked even when beta = 0
        ref_model = frozen_copy(model)
    rows = [
        dict(r)
        for r in (
            dataset if dataset is not None else task_problems(cfg.task, "train", cfg.train_size, profile)
        )
    ]
    if not rows or "prompt" not in rows[0] or "answer" not in rows[0]:
        raise ValueError("rlvr train: the training data needs `prompt` and `answer` columns")
    if eval_problems is None:
        eval_problems = task_problems(cfg.task, "eval", cfg.eval_size, profile)
    reward_funcs, weights = reward_functions(
        cfg.format_weight, cfg.max_completion_length, cfg.overlong_buffer
    )
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    batches = _loop.shuffled_batches(
        len(rows), cfg.prompts_per_step, random.Random(cfg.seed), keep_remainder=True
    )
    eps_low, eps_high = (cfg.eps_low, cfg.eps_high) if cfg.clip else (math.inf, math.inf)
    optimizer, scheduler = _loop.optimizer_and_schedule(
        model, cfg, cfg.max_steps * cfg.num_iterations, warmup_offset=1
    )
    G, history = cfg.num_generations, []
    t_start, eval_seconds = time.perf_counter(), 0.0
    info_start = None
    if evaluate_start:
        start_eval = evaluate(model, tokenizer, eval_problems, cfg, seed=cfg.seed)
        info_start = {
            k: start_eval[k] for k in ("accuracy", "format_rate", "response_length", "scratchpad_rate")
        }
    bar = _loop.progress_bar(cfg.max_steps, desc or f"RLVR {cfg.loss_type}/{cfg.level}", show_progress)
    for step in bar:
        t0 = time.perf_counter()
        # 1-3. sample groups, score them; with dynamic sampling keep only groups with a spread
        rollout, scores, sampled = sample_groups(
            model, tokenizer, rows, batches, reward_funcs, weights, cfg, gen
        )
        rec = {"step": step + 1, **sampled}
        lr = scheduler.get_last_lr()[0]
        if rollout is None:  # every group agreed: nothing to learn from this step
            rec.update(loss=0.0, kl=0.0, entropy=float("nan"), grad_norm=0.0, lr=lr)
            rec.update(clip_ratio_low=0.0, clip_ratio_high=0.0, mean_ratio=1.0)
        else:
            scores = scores.to(dev)
            mask = rollout.completion_mask
            # 4. group-relative advantages (exercise 6.1): with or without the group's std
            advantages = grpo.group_advantages(scores, G, scale="group" if cfg.scale_rewards else "none")
            loss_mask, row_scale, n_kept = mask, 1.0, mask.shape[0]
            kept: torch.Tensor | slice = slice(None)  # the rows the loss sees: all, as sampled
            if cfg.mask_truncated_completions:  # exercise 9.7: no loss from cut-off completions
                truncated = rollout.is_truncated(tokenizer.eos_token_id, tokenizer.pad_token_id)
                loss_mask = rlvr.mask_truncated_completions(mask, truncated)
                # the loss sees only the rows left with tokens (a row without any has no mean);
                # TRL still divides 'grpo' and 'dr_grpo' by all B rows, hence the scale
                live = loss_mask.sum(-1) > 0
                kept, n_kept = live.nonzero().squeeze(-1), int(live.sum())
                if cfg.loss_type in ("grpo", "dr_grpo"):
                    row_scale = n_kept / len(live)
            with torch.no_grad():
                ref_logp = kl.token_logprobs(
                    sampling.completion_logits(ref_model, rollout, cfg.temperature), rollout.completion_ids
                )
                old_logp = None
                if cfg.num_iterations > 1:  # the batch is reused: freeze pi_old before it moves
                    model.eval()
                    old_logp = kl.token_logprobs(
                        sampling.completion_logits(model, rollout, cfg.temperature), rollout.completion_ids
                    )
            # 5. num_iterations optimizer steps on rlvr_policy_loss (exercise 9.4)
            losses, stats_all, grad_norms, entropy, kl_now = [], [], [], None, None
            model.train()
            for _ in range(cfg.num_iterations):
                logits = sampling.completion_logits(model, rollout, cfg.temperature)  # [B, C, V]
                logp = kl.token_logprobs(logits, rollout.completion_ids)  # [B, C]
                if entropy is None:
                    entropy = _entropy(logits, mask)
                    kl_now = float(sft.masked_mean(kl.kl_estimate(logp.detach(), ref_logp, "k3"), mask))
                optimizer.zero_grad(set_to_none=True)
                if n_kept == 0:  # every completion was cut off: nothing to learn from
                    loss = logp.sum() * 0.0
                    stats = {"clip_ratio_low": 0.0, "clip_ratio_high": 0.0, "mean_ratio": 1.0}
                else:
                    loss, stats = rlvr.rlvr_policy_loss(
                        logp[kept],
                        (old_logp if old_logp is not None else logp.detach())[kept],
                        advantages[kept],
                        loss_mask[kept],
                        eps_low=eps_low,
                        eps_high=eps_high,
                        level=cfg.level,
                        loss_type=cfg.loss_type,
                        ref_logp=ref_logp[kept] if cfg.beta != 0 else None,
                        beta=cfg.beta,
                        max_completion_length=cfg.max_completion_length,
                    )
                    loss = loss * row_scale
                loss.backward()
                grad_norms.append(
                    float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
                )
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                stats_all.append(stats)
            model.eval()
            n = len(stats_all)
            rec.update(
                loss=sum(losses) / n,
                kl=kl_now,
                entropy=entropy,
                grad_norm=sum(grad_norms) / n,
                lr=lr,
                **{
                    k: sum(float(s[k]) for s in stats_all) / n
                    for k in ("clip_ratio_low", "clip_ratio_high", "mean_ratio")
                },
            )
        rec["seconds"] = time.perf_counter() - t0
        if (
            cfg.eval_every
            and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.max_steps)
            or (not cfg.eval_every and step + 1 == cfg.max_steps)
        ):
            te = time.perf_counter()
            ev = evaluate(model, tokenizer, eval_problems, cfg, seed=cfg.seed)
            eval_seconds += time.perf_counter() - te
            rec.update(
                eval_accuracy=ev["accuracy"],
                eval_format_rate=ev["format_rate"],
                eval_response_length=ev["response_length"],
                eval_scratchpad_rate=ev["scratchpad_rate"],
                eval_truncated_rate=ev["truncated_rate"],
            )
        history.append(rec)
        if show_progress:
            post = dict(acc=f"{rec['accuracy']:.2f}", len=f"{rec['completion_length']:.0f}")
            if "eval_accuracy" in rec:
                post["held_out"] = f"{rec['eval_accuracy']:.2f}"
            bar.set_postfix(**post)
        if on_step:
            on_step(rec)
    model.eval()
    total = time.perf_counter() - t_start
    return Run(
        model,
        tokenizer,
        history,
        total,
        cfg,
        trainer="rlvr",
        checkpoint_name=_loop.checkpoint_name("rlvr", cfg.task),
        ref_model=ref_model,
        info={
            "profile": profile.name,
            "task": cfg.task,
            "start_model": start,
            "start": info_start,
            "eval_seconds": eval_seconds,
            "train_seconds": total - eval_seconds,
        },
    )


# --------------------------------------------------------------------------- evaluation
def evaluate(model, tokenizer, problems, cfg: RLVRConfig, seed: int = 0) -> dict:
    """Held-out accuracy / format rate / response length (one sample each at the training
    temperature, :func:`course_lib.labs.reasoning.evaluate`)."""
    assert cfg.max_completion_length is not None, "evaluate needs a resolved config (RLVRConfig.resolved)"
    return reasoning.evaluate(
        model,
        tokenizer,
        problems,
        max_new_tokens=cfg.max_completion_length,
        seed=seed,
        temperature=cfg.temperature,
    )


def headline_run(
    config: RLVRConfig | None = None,
    profile: Profile | None = None,
    start: tuple | None = None,
    show_progress: bool = True,
) -> HeadlineRun:
    """Notebook 09's main run -- what the notebook and the seed runs both call: held-out metrics
    of the start model (`start` = (model, tokenizer); None: :func:`reasoning.load_start_model`),
    :func:`train` on a copy of it (seeded with ``config.seed``), held-out metrics after (one
    sample per problem, seed 0: the same problems and sampler for every training seed)."""
    import copy

    profile = profile or get_profile()
    cfg = (config or RLVRConfig.from_profile(profile)).resolved(profile)
    assert cfg.eval_size is not None  # resolved() fills it from the preset
    model, tokenizer = start[:2] if start is not None else reasoning.load_start_model(profile=profile)
    problems = task_problems(cfg.task, "train", cfg.train_size, profile)
    heldout = task_problems(cfg.task, "eval", cfg.eval_size, profile)
    before = evaluate(model, tokenizer, heldout, cfg)
    run = train(
        cfg,
        copy.deepcopy(model),
        tokenizer,
        problems,
        eval_problems=heldout,
        profile=profile,
        desc=f"RLVR {cfg.loss_type}/{cfg.level}",
        show_progress=show_progress,
    )
    return HeadlineRun(run, before, evaluate(run.model, tokenizer, heldout, cfg))


# --------------------------------------------------------------------------- TRL side by side
def train_with_trl(
    config: RLVRConfig,
    model,
    tokenizer,
    dataset=None,
    output_dir: str | Path | None = None,
    *,
    profile: Profile | None = None,
) -> Run:
    """TRL 1.16's ``GRPOTrainer`` with the same settings (:func:`_loop.trl_config`: ``eps_low`` /
    ``eps_high`` -> ``epsilon`` / ``epsilon_high``, ``level`` -> ``importance_sampling_level``,
    ``loss_type`` as is, ``scale_rewards`` -> "group" / "none", ``mask_truncated_completions`` as
    is), the same reward functions and weights (answer + ``format_weight`` * format; with
    ``overlong_buffer > 0`` TRL's own ``get_soft_overlong_punishment(max_completion_length,
    overlong_buffer)``, weight 1, in place of 9.6), on `dataset` (default: ``train_size`` of the
    task's training problems). A :class:`Run` whose history has step, loss, lr, seconds, reward,
    accuracy, format_rate, kl, entropy, completion_length, truncated_rate, the clip ratios and,
    with the overlong punishment, overlong_penalty.

    TRL has no dynamic sampling: a config with ``dynamic_sampling=True`` is refused rather than
    compared against a different algorithm."""
    import tempfile

    from datasets import Dataset
    from trl import GRPOTrainer

    profile = profile or get_profile()
    cfg = config.resolved(profile)
    if cfg.dynamic_sampling:
        raise ValueError(
            "rlvr train_with_trl: TRL 1.16's GRPOTrainer has no dynamic sampling (DAPO's refill of "
            "zero-spread groups), so it would train a different algorithm; compare with "
            "dynamic_sampling=False"
        )
    rows = dataset if dataset is not None else task_problems(cfg.task, "train", cfg.train_size, profile)
    rows = [dict(r) for r in rows]
    if not rows or "prompt" not in rows[0] or "answer" not in rows[0]:
        raise ValueError("rlvr train_with_trl: the training data needs `prompt` and `answer` columns")
    ds = Dataset.from_list([{"prompt": r["prompt"], "answer": str(r["answer"])} for r in rows])
    reward_funcs, _ = reward_functions(cfg.format_weight, cfg.max_completion_length, cfg.overlong_buffer)
    if cfg.overlong_buffer > 0:  # TRL's own overlong punishment in place of exercise 9.6
        from trl.rewards import get_soft_overlong_punishment

        reward_funcs[2] = get_soft_overlong_punishment(cfg.max_completion_length, cfg.overlong_buffer)
    out = Path(output_dir or tempfile.mkdtemp(prefix="trl_rlvr_"))
    # what rlvr.rlvr_policy_loss computes: the k3 KL without TRL's ratio factor, no two-sided
    # clipping (delta), every token (no entropy quantile, no off-policy mask); dropout off as ours
    args = _loop.trl_config(
        "rlvr",
        cfg,
        out,
        use_cpu=not torch.cuda.is_available(),
        use_bias_correction_kl=False,
        delta=None,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        entropy_coef=0.0,
        disable_dropout=True,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[*reward_funcs], args=args, train_dataset=ds, processing_class=tokenizer
    )
    return _loop.run_trl(
        trainer,
        cfg,
        tokenizer,
        "rlvr",
        desc="TRL GRPOTrainer (RLVR)",
        keys={
            "reward": "reward",
            "rewards/answer_reward/mean": "accuracy",
            "rewards/format_reward/mean": "format_rate",
            "kl": "kl",
            "entropy": "entropy",
            "completions/mean_length": "completion_length",
            "completions/clipped_ratio": "truncated_rate",
            "rewards/soft_overlong_punishment_reward/mean": "overlong_penalty",
            "clip_ratio/low_mean": "clip_ratio_low",
            "clip_ratio/high_mean": "clip_ratio_high",
            "frac_reward_zero_std": "frac_reward_zero_std",
        },
    )


# --------------------------------------------------------------------------- course run
def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """from_profile -> train -> save_checkpoint (``checkpoint_dir()/"rlvr_<task>"``); the path."""
    return _loop.quick_train(train, RLVRConfig, profile, preset, out_dir, **overrides)
