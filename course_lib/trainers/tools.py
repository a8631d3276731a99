"""RL with a tool, multi-turn (unit 10): GRPO on calculator episodes, calling *your* functions.

Each step:

1. roll out a group of ``num_generations`` episodes for each of ``prompts_per_step`` problems
   (:func:`course_lib.labs.tools.rollout`: batched, KV-cached, all episodes advancing together;
   a turn that ends at ``</tool>`` gets the environment's ``<result>`` tokens appended and the
   model goes on, at most ``max_turns`` model turns). The calls are read by ``tools.parse_tool_call``
   (exercise 10.1); the environment's tokens and their positions (``env_spans``) are recorded;
2. reward = ``tools.tool_reward`` (10.3): ``rlvr.answer_reward`` (9.2) of the whole episode's
   text, minus ``malformed_penalty`` per malformed call, minus ``budget_penalty`` for an episode
   still calling the tool after its last turn;
3. advantages relative to the group -- unit 06's ``grpo.group_advantages`` (6.1);
4. ``num_iterations`` optimizer steps on ``rlvr.rlvr_policy_loss`` (9.4, ``loss_type``, clip
   ``eps_low`` / ``eps_high``, optional k3 KL ``beta``) over the tokens of
   ``tools.environment_mask`` (10.2): the model's own tokens only. The environment's result
   tokens are *in the context* (the model reads them) but not *in the loss* (it did not write
   them). ``train_on_env_tokens=True`` is the ablation: the loss mask is the plain completion
   mask, so the policy gradient also pushes the model's probability of the calculator's output.

History keys (besides ``_loop``'s): ``accuracy`` / ``tool_call_rate`` / ``malformed_rate`` /
``turns_per_episode`` / ``over_budget_rate`` / ``truncated_rate`` of the step's episodes (the
rates of :func:`course_lib.labs.tools.episode_metrics`), ``env_token_fraction`` (the fraction of
the episodes' tokens the environment wrote), ``entropy``, ``clip_ratio_low`` /
``clip_ratio_high`` / ``mean_ratio`` (9.4's stats), ``frac_reward_zero_std`` and, every
``eval_every`` steps, ``eval_accuracy`` / ``eval_tool_call_rate`` / ``eval_malformed_rate`` /
``eval_turns_per_episode`` / ``eval_over_budget_rate`` on held-out problems (the start model's
in ``run.info["start"]``).

TRL: TRL 1.16's ``GRPOTrainer`` runs tools through ``tools=`` / ``environment_factory`` with a
chat template and JSON tool calls, which the tiny model has neither of; ``engine="trl"`` is
refused with that reason, and docs/engines.md maps each piece here to TRL's and verl's names.
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

from course_lib import grpo, kl, rlvr, sft, tools
from course_lib.core import sampling
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.labs import tools as tool_lab
from course_lib.trainers import _loop
from course_lib.trainers._loop import HeadlineRun, Run, save_checkpoint  # noqa: F401  (shared API)

ENGINES = ("ours", "trl")
LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
# Unit 10's tiny-profile run, whatever the preset: the model calls on every episode by step ~8.
UNIT10_TINY_STEPS = {"max_steps": 12, "prompts_per_step": 8}
TRL_REFUSAL = (
    "tools train: engine='trl' is not supported. TRL 1.16's GRPOTrainer runs tools through "
    "`tools=` / `environment_factory`, which need a chat template and JSON tool calls parsed by "
    "the tokenizer's template; the tiny model has no chat template and calls the calculator as "
    "<tool>12+47</tool> in plain text, so TRL cannot run it. Use engine='ours'; docs/engines.md "
    "maps each piece of this trainer to TRL's and verl's names."
)


@dataclass
class ToolConfig(_loop.GroupConfig):
    """Hyper-parameters (TRL 1.16's ``GRPOConfig`` names where TRL has the knob).

    One step rolls out ``prompts_per_step`` x ``num_generations`` episodes of at most
    ``max_turns`` model turns and ``max_completion_length`` tokens (model and environment
    tokens together); ``max_steps`` counts such batches. None = from the profile
    (:meth:`~_loop.GroupConfig.resolved`, which validates)."""

    CHOICES: ClassVar[dict[str, tuple]] = {"loss_type": LOSS_TYPES, "engine": ENGINES}
    COUNTS: ClassVar[tuple[str, ...]] = (
        "max_steps",
        "prompts_per_step",
        "max_completion_length",
        "max_turns",
    )

    max_steps: int | None = None
    prompts_per_step: int | None = None
    num_generations: int = 8
    max_turns: int = tool_lab.MAX_TURNS  # model turns per episode
    train_on_env_tokens: bool = False  # the ablation: the environment's tokens in the loss
    malformed_penalty: float = 0.5  # 10.3: reward lost per malformed call
    budget_penalty: float = 1.0  # 10.3: reward lost by an episode over the turn budget
    learning_rate: float = 5e-4
    beta: float = 0.0  # k3 KL to the reference in the loss
    eps_low: float = 0.2
    eps_high: float = 0.2
    loss_type: str = "grpo"  # "grpo" | "dapo" | "dr_grpo" (9.4's aggregations)
    scale_rewards: bool = True  # divide advantages by the group's std
    num_iterations: int = 1
    max_completion_length: int | None = None
    temperature: float = 1.0
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    eval_every: int = 10  # steps between held-out evaluations (0: only at the start and end)
    eval_size: int | None = None
    train_size: int = 2048
    seed: int = 0
    engine: str = "ours"  # "ours" | "trl" (refused: see TRL_REFUSAL)

    def validate(self) -> None:
        """:meth:`_loop.GroupConfig.validate`, no negative penalty or clip range, a temperature > 0."""
        super().validate()
        for key in ("malformed_penalty", "budget_penalty", "eps_low", "eps_high", "beta"):
            if getattr(self, key) < 0:
                raise ValueError(f"ToolConfig: {key} must be >= 0, got {getattr(self, key)}")
        if not self.temperature > 0:
            raise ValueError(f"ToolConfig: temperature must be > 0, got {self.temperature}")
        if self.eval_every < 0:
            raise ValueError(
                f"ToolConfig: eval_every must be >= 0 (0: start and end only), got {self.eval_every}"
            )

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The unit's defaults for the profile (tiny: :data:`UNIT10_TINY_STEPS`, 64-token
        episodes; gpu: the preset's steps, a small learning rate, longer episodes)."""
        if profile.name == "tiny":
            return dict(max_completion_length=64, eval_every=4, **UNIT10_TINY_STEPS)
        return dict(
            learning_rate=1e-6,
            max_completion_length=profile.extra.get("tool_max_completion_length", 192),
            eval_every=20,
        )


# --------------------------------------------------------------------------- data & rewards
def task_problems(split: str = "train", n: int = 256, seed: int = 0) -> list[dict]:
    """Problems (dicts with ``prompt``, ``answer``, ``numbers``) of :mod:`course_lib.labs.tools`
    ("eval" = the held-out split)."""
    return tool_lab.make_problems("heldout" if split == "eval" else "train", n, seed=seed)


def episode_rewards(episodes: tool_lab.Episodes, answers: list[str], cfg: ToolConfig) -> torch.Tensor:
    """[B] rewards: exercise 10.3 (``tools.tool_reward``) of each episode."""
    return torch.tensor(
        [
            float(
                tools.tool_reward(
                    text,
                    answer,
                    n_malformed,
                    over,
                    malformed_penalty=cfg.malformed_penalty,
                    budget_penalty=cfg.budget_penalty,
                )
            )
            for text, answer, n_malformed, over in zip(
                episodes.texts, answers, episodes.malformed, episodes.over_budget
            )
        ]
    )


def loss_mask(episodes: tool_lab.Episodes, train_on_env_tokens: bool = False) -> torch.Tensor:
    """[B, C] the tokens the policy loss sees: ``tools.environment_mask`` (10.2) of the episodes'
    completion mask and environment spans -- or, for the ablation, the completion mask itself."""
    mask = episodes.rollout.completion_mask
    if train_on_env_tokens:
        return mask
    return tools.environment_mask(mask, episodes.env_spans)


def _entropy(logits: torch.Tensor, mask: torch.Tensor) -> float:
    with torch.no_grad():
        ent = torch.distributions.Categorical(logits=logits.float()).entropy()
        return float(sft.masked_mean(ent, mask))


def sample_step(model, tokenizer, rows, batches, cfg: ToolConfig, generator):
    """Steps 1-2 of a training step: a group of ``num_generations`` episodes for each of the next
    ``prompts_per_step`` problems, and their rewards. Returns (episodes, rewards [B], metrics)."""
    assert cfg.max_completion_length is not None  # resolved
    G = cfg.num_generations
    batch = [rows[i] for i in next(batches)]
    episodes = tool_lab.rollout(
        model,
        tokenizer,
        [r["prompt"] for r in batch],
        max_new_tokens=cfg.max_completion_length,
        max_turns=cfg.max_turns,
        num_samples=G,
        temperature=cfg.temperature,
        generator=generator,
        parse_call=lambda text: tools.parse_tool_call(text),  # exercise 10.1, looked up at each call
    )
    answers = [str(r["answer"]) for r in batch for _ in range(G)]
    rewards = episode_rewards(episodes, answers, cfg)
    m = tool_lab.episode_metrics(episodes, answers)
    tokens = episodes.rollout.completion_mask.sum().clamp(min=1)
    env_tokens = sum(e - s for spans in episodes.env_spans for s, e in spans)
    metrics = {
        "reward": rewards.mean().item(),
        "reward_std": rewards.std().item(),
        **{
            k: m[k]
            for k in (
                "accuracy",
                "tool_call_rate",
                "malformed_rate",
                "turns_per_episode",
                "over_budget_rate",
                "truncated_rate",
            )
        },
        "completion_length": m["response_length"],
        "env_token_fraction": env_tokens / float(tokens),
        "frac_reward_zero_std": float((rewards.view(-1, G).std(-1) < 1e-6).float().mean()),
    }
    return episodes, rewards, metrics


# --------------------------------------------------------------------------- the loop
EVAL_KEYS = ("accuracy", "tool_call_rate", "malformed_rate", "turns_per_episode", "over_budget_rate")


def train(
    config: ToolConfig | None = None,
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
    """Train with multi-turn GRPO on the calculator task; returns a :class:`Run` (with
    ``ref_model``; ``info["start"]`` = held-out metrics of the start model). Defaults: the
    profile's config, the unit's start model (:func:`course_lib.labs.tools.load_start_model`),
    ``train_size`` training problems and ``eval_size`` held-out ones. `dataset`: dicts (or a
    ``datasets.Dataset``) with ``prompt`` and ``answer``. ``config.engine="trl"`` is refused
    (:data:`TRL_REFUSAL`)."""
    from course_lib.core.models import frozen_copy

    profile = profile or get_profile()
    cfg = (config or ToolConfig.from_profile(profile)).resolved(profile)
    if cfg.engine == "trl":
        raise ValueError(TRL_REFUSAL)
    # resolved() fills these from the profile and preset; the asserts tell the type checker so
    assert cfg.max_steps is not None and cfg.prompts_per_step is not None
    assert cfg.max_completion_length is not None and cfg.eval_size is not None
    torch.manual_seed(cfg.seed)
    start = None
    if model is None:
        model, tokenizer = tool_lab.load_start_model(profile=profile)
        start = "start model"
    elif tokenizer is None:
        raise ValueError("tools train: pass the tokenizer together with the model")
    _loop.disable_dropout(model)
    if ref_model is None:  # the KL to the start model is tracked even when beta = 0
        ref_model = frozen_copy(model)
    rows = [dict(r) for r in (dataset if dataset is not None else task_problems("train", cfg.train_size))]
    if not rows or "prompt" not in rows[0] or "answer" not in rows[0]:
        raise ValueError("tools train: the training data needs `prompt` and `answer` columns")
    if eval_problems is None:
        eval_problems = task_problems("eval", cfg.eval_size)
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    batches = _loop.shuffled_batches(
        len(rows), cfg.prompts_per_step, random.Random(cfg.seed), keep_remainder=True
    )
    optimizer, scheduler = _loop.optimizer_and_schedule(
        model, cfg, cfg.max_steps * cfg.num_iterations, warmup_offset=1
    )
    G, history = cfg.num_generations, []
    t_start, eval_seconds = time.perf_counter(), 0.0
    info_start = None
    if evaluate_start:
        te = time.perf_counter()
        start_eval = evaluate(model, tokenizer, eval_problems, cfg, seed=cfg.seed)
        eval_seconds += time.perf_counter() - te
        info_start = {k: start_eval[k] for k in EVAL_KEYS}
    label = "env tokens in the loss" if cfg.train_on_env_tokens else "env mask"
    bar = _loop.progress_bar(cfg.max_steps, desc or f"tool GRPO ({label})", show_progress)
    for step in bar:
        t0 = time.perf_counter()
        # 1-2. roll out the groups' episodes, score them (exercises 10.1 and 10.3)
        episodes, rewards, sampled = sample_step(model, tokenizer, rows, batches, cfg, gen)
        rec = {"step": step + 1, **sampled, "lr": scheduler.get_last_lr()[0]}
        ro = episodes.rollout
        # 3. group-relative advantages (exercise 6.1)
        advantages = grpo.group_advantages(rewards.to(dev), G, scale="group" if cfg.scale_rewards else "none")
        # 4. the loss sees the model's own tokens only (exercise 10.2) -- or all, for the ablation
        mask = loss_mask(episodes, cfg.train_on_env_tokens)
        with torch.no_grad():
            ref_logp = kl.token_logprobs(
                sampling.completion_logits(ref_model, ro, cfg.temperature), ro.completion_ids
            )
            old_logp = None
            if cfg.num_iterations > 1:  # the batch is reused: freeze pi_old before it moves
                old_logp = kl.token_logprobs(
                    sampling.completion_logits(model, ro, cfg.temperature), ro.completion_ids
                )
        losses, stats_all, grad_norms, entropy, kl_now = [], [], [], math.nan, math.nan
        model.train()
        for it in range(cfg.num_iterations):
            logits = sampling.completion_logits(model, ro, cfg.temperature)  # [B, C, V]
            logp = kl.token_logprobs(logits, ro.completion_ids)  # [B, C]
            if it == 0:
                entropy = _entropy(logits, mask)
                kl_now = float(sft.masked_mean(kl.kl_estimate(logp.detach(), ref_logp, "k3"), mask))
            optimizer.zero_grad(set_to_none=True)
            loss, stats = rlvr.rlvr_policy_loss(
                logp,
                old_logp if old_logp is not None else logp.detach(),
                advantages,
                mask,
                eps_low=cfg.eps_low,
                eps_high=cfg.eps_high,
                loss_type=cfg.loss_type,
                ref_logp=ref_logp if cfg.beta != 0 else None,
                beta=cfg.beta,
                max_completion_length=cfg.max_completion_length,
            )
            loss.backward()
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)))
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
            **{
                k: sum(float(s[k]) for s in stats_all) / n
                for k in ("clip_ratio_low", "clip_ratio_high", "mean_ratio")
            },
        )
        rec["seconds"] = time.perf_counter() - t0
        last = step + 1 == cfg.max_steps
        if last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0):
            te = time.perf_counter()
            ev = evaluate(model, tokenizer, eval_problems, cfg, seed=cfg.seed)
            eval_seconds += time.perf_counter() - te
            rec.update({f"eval_{k}": ev[k] for k in EVAL_KEYS})
        history.append(rec)
        if show_progress:
            post = dict(acc=f"{rec['accuracy']:.2f}", calls=f"{rec['tool_call_rate']:.2f}")
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
        trainer="tools",
        checkpoint_name=_loop.checkpoint_name("tools"),
        ref_model=ref_model,
        info={
            "profile": profile.name,
            "task": "calculator",
            "start_model": start,
            "start": info_start,
            "train_on_env_tokens": cfg.train_on_env_tokens,
            "eval_seconds": eval_seconds,
            "train_seconds": total - eval_seconds,
        },
    )


# --------------------------------------------------------------------------- evaluation
def evaluate(model, tokenizer, problems, cfg: ToolConfig, seed: int = 0) -> dict:
    """Held-out accuracy / tool-call rate / malformed rate / turns per episode / over-budget rate
    (one episode each at the training temperature, :func:`course_lib.labs.tools.evaluate`)."""
    assert cfg.max_completion_length is not None, "evaluate needs a resolved config (ToolConfig.resolved)"
    return tool_lab.evaluate(
        model,
        tokenizer,
        problems,
        max_new_tokens=cfg.max_completion_length,
        max_turns=cfg.max_turns,
        seed=seed,
        temperature=cfg.temperature,
    )


def headline_run(
    config: ToolConfig | None = None,
    profile: Profile | None = None,
    start: tuple | None = None,
    show_progress: bool = True,
) -> HeadlineRun:
    """Notebook 10's runs -- what the notebook and the seed runs both call: held-out metrics of
    the start model (`start` = (model, tokenizer); None: :func:`tool_lab.load_start_model`),
    :func:`train` on a copy of it (seeded with ``config.seed``), held-out metrics after (one
    episode per problem, seed 0: the same problems and sampler for every training seed).
    ``config.train_on_env_tokens=True`` gives the ablation."""
    import copy

    profile = profile or get_profile()
    cfg = (config or ToolConfig.from_profile(profile)).resolved(profile)
    assert cfg.eval_size is not None  # resolved() fills it from the preset
    model, tokenizer = start[:2] if start is not None else tool_lab.load_start_model(profile=profile)
    heldout = task_problems("eval", cfg.eval_size)
    before = evaluate(model, tokenizer, heldout, cfg)
    run = train(
        cfg,
        copy.deepcopy(model),
        tokenizer,
        task_problems("train", cfg.train_size),
        eval_problems=heldout,
        profile=profile,
        show_progress=show_progress,
        evaluate_start=False,  # `before` is that evaluation
    )
    run.info["start"] = {k: before[k] for k in EVAL_KEYS}
    return HeadlineRun(run, before, evaluate(run.model, tokenizer, heldout, cfg))


# --------------------------------------------------------------------------- course run
def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """from_profile -> train -> save_checkpoint (``checkpoint_dir()/"tools"``); the path."""
    return _loop.quick_train(train, ToolConfig, profile, preset, out_dir, **overrides)
