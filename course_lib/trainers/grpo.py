"""GRPO from scratch (unit 06): one readable training loop that calls *your* exercise functions.

Each step (DeepSeekMath's Group Relative Policy Optimization, with TRL's names):

1. take ``prompts_per_step`` prompts and sample a *group* of ``num_generations`` completions for
   each (KV-cached sampler, :func:`course_lib.core.sampling.sample`);
2. score every completion with one or more TRL-style reward functions (weighted sum);
3. turn the rewards into advantages *relative to the group* -- ``grpo.group_advantages``
   (exercise 6.1): no value network, the group mean is the baseline (``advantage_estimator``
   "rloo" / "reinforce_pp": exercises 6.4 / 6.5 instead, :func:`estimate_advantages`);
4. log-probs of the sampled tokens under the frozen reference (for the KL term) and, when the
   batch is reused (``num_iterations > 1``), under the sampling policy ("old" log-probs, kept
   fixed while the policy moves);
5. ``num_iterations`` optimizer steps on that batch -- ``grpo.grpo_step`` (exercise 6.3), which
   calls ``grpo.grpo_loss`` (exercise 6.2): clipped ratio objective + beta * k3 KL, gradient
   clipping; a cosine learning-rate schedule over the whole run. With ``top_entropy_quantile < 1``
   only the batch's highest-entropy completion tokens enter the loss (``grpo.high_entropy_mask``,
   exercise 6.6).

Use it as::

    cfg = GRPOConfig.from_profile(task="sentiment")     # presets from the profile
    run = train(cfg)                                    # a Run: model, tokenizer, history, ref_model
    evaluate(run.model, run.tokenizer, "sentiment", ref_model=run.ref_model)

or ``quick_train()`` (what ``course run`` and unit 08 call). :func:`train_with_trl` runs TRL's
``GRPOTrainer`` with the same settings and reward functions for the side-by-side comparison.
The API shared by the trainers (``Run``, history keys, ``save_checkpoint``) is described in
:mod:`course_lib.trainers._loop`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch

from course_lib import grpo, kl, rewards, sft
from course_lib.core import sampling
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.trainers import _loop
from course_lib.trainers._loop import HeadlineRun, Run, save_checkpoint, start_model  # noqa: F401  (shared API)

TASKS = ("sentiment", "arithmetic")
ADVANTAGE_ESTIMATORS = ("grpo", "rloo", "reinforce_pp")


# --------------------------------------------------------------------------- configuration
@dataclass
class GRPOConfig(_loop.GroupConfig):
    """Hyper-parameters, named as in ``trl.GRPOConfig`` wherever TRL has the knob.

    ``prompts_per_step`` prompts x ``num_generations`` completions = one batch
    (TRL: ``per_device_train_batch_size = prompts_per_step * num_generations``).
    ``max_steps`` counts sampled batches; each gives ``num_iterations`` optimizer steps.
    None means "from the profile / preset" (:meth:`~_loop.GroupConfig.resolved`, which validates).
    """

    CHOICES: ClassVar[dict[str, tuple]] = {
        "task": TASKS,
        "loss_type": grpo.LOSS_TYPES,
        "scale_rewards": grpo.SCALES,
        "advantage_estimator": ADVANTAGE_ESTIMATORS,
    }

    task: str = "sentiment"  # "sentiment" | "arithmetic" (picks data + rewards)
    max_steps: int | None = None  # preset.steps
    prompts_per_step: int | None = None  # preset.batch_size
    num_generations: int = 8  # G, the group size
    learning_rate: float = 1e-4
    beta: float = 0.04  # weight of the k3 KL to the reference (in the loss)
    epsilon: float = 0.2  # PPO clip range of the ratio
    loss_type: str = "grpo"  # "grpo" | "bnpo" | "dr_grpo" | "dapo"
    scale_rewards: str = "group"  # "group" | "batch" | "none" (the "grpo" estimator's only)
    advantage_estimator: str = "grpo"  # "grpo" | "rloo" | "reinforce_pp" (:func:`estimate_advantages`)
    max_completion_length: int | None = None  # profile.max_completion_length
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_iterations: int = 1  # optimizer steps per sampled batch (mu)
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    reward_weights: list[float] | None = None
    shaping_temperature: float | None = None  # sentiment: exp(s / T) - 1 (rewards.exponential_shaping)
    disable_dropout: bool = True  # dropout would make pi_theta != pi_old at ratio 1
    # < 1: only this top fraction of the batch's completion tokens by entropy enters the loss
    # ("Beyond the 80/20 rule"; grpo.high_entropy_mask, exercise 6.6); 1.0 = every token
    top_entropy_quantile: float = 1.0
    eval_size: int | None = None  # preset.eval_size
    seed: int = 0
    log_grad_variance: bool = (
        False  # log grad_variance / grad_noise_ratio (:func:`gradient_noise`; ~+40 % per step)
    )

    SELECTOR: ClassVar[str | None] = "task"

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, task: str = "sentiment", **selector) -> dict:
        """The unit's defaults for a task (``from_profile(task=...)``; steps, prompts per step and
        lengths come from the preset when :meth:`~_loop.GroupConfig.resolved`):

        * sentiment: ``scale_rewards="none"`` -- VADER saturates, and dividing by a group's tiny
          std amplifies meaningless differences (the notebook shows the reward hacking);
        * arithmetic: a 0/1 reward, ``scale_rewards="group"``, short completions (an answer is a
          few tokens; the tiny profile caps them at 8).
        """
        if task == "sentiment":
            # lr 7e-4 / beta 0.05: with a larger lr or a smaller beta some seed loses its distinct-2 bar
            base = dict(task=task, learning_rate=7e-4, beta=0.05, scale_rewards="none", num_generations=8)
        elif task == "arithmetic":
            base = dict(
                task=task,
                learning_rate=2e-4,
                beta=0.04,
                scale_rewards="group",
                num_generations=8,
                max_completion_length=min(8, profile.max_completion_length),
            )
        else:
            raise ValueError(f"GRPOConfig.from_profile: unknown task {task!r}; choose one of {TASKS}")
        return base

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.top_entropy_quantile <= 1.0:
            raise ValueError(
                f"GRPOConfig.top_entropy_quantile must be in (0, 1], got {self.top_entropy_quantile}"
            )

    def to_trl(self, output_dir: str | Path, **extra):
        """The equivalent ``trl.GRPOConfig`` (:func:`_loop.trl_config`; CPU settings when there is
        no GPU); `extra` are TRL options that win."""
        # TRL 1.16's default use_bias_correction_kl=True multiplies the KL by the ratio; grpo.grpo_loss does not
        return _loop.trl_config(
            "grpo",
            self,
            output_dir,
            use_cpu=not torch.cuda.is_available(),
            use_bias_correction_kl=False,
            **extra,
        )


# --------------------------------------------------------------------------- rewards & data
def task_rewards(task: str, shaping_temperature: float | None = None) -> list[Callable]:
    """The task's TRL-style reward functions. They look the exercise up *when called*
    (``rewards.sentiment_reward``...), so they always run the active implementation.

    * sentiment: positive probability, optionally shaped with ``rewards.exponential_shaping``
      (exp(s/T) - 1 grows fastest near s = 1: it rewards *very* positive text more);
    * arithmetic: ``rewards.correctness_reward`` (the last integer equals the answer).
    """
    if task == "sentiment":
        if shaping_temperature is None:
            return [
                _loop.named(
                    lambda completions, **kw: rewards.sentiment_reward(completions, **kw), "sentiment_reward"
                )
            ]
        T = float(shaping_temperature)
        return [
            _loop.named(
                lambda completions, **kw: [
                    float(x)
                    for x in rewards.exponential_shaping(rewards.sentiment_reward(completions, **kw), T)
                ],
                "shaped_sentiment_reward",
            )
        ]
    if task == "arithmetic":
        return [
            _loop.named(
                lambda completions, answer, **kw: rewards.correctness_reward(
                    completions, answer=answer, **kw
                ),
                "correctness_reward",
            )
        ]
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def task_prompts(
    task: str, split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
):
    """A ``datasets.Dataset`` with a ``prompt`` column (+ ``answer`` for arithmetic)."""
    from course_lib.core import data

    return data.load_task(task, split, n=n, profile=profile, seed=seed)


# --------------------------------------------------------------------------- advantages & gradient noise
def estimate_advantages(scores: torch.Tensor, group_size: int, config: GRPOConfig) -> torch.Tensor:
    """Advantages [B] of a step's rewards [B] with ``config.advantage_estimator``, through *your*
    exercise functions:

    * ``"grpo"``: ``grpo.group_advantages(scores, G, scale=config.scale_rewards)`` (exercise 6.1);
    * ``"rloo"``: ``grpo.rloo_advantages(scores, G)`` (exercise 6.4) -- the leave-one-out baseline,
      ``G / (G - 1)`` times GRPO's centred reward, never divided by a std;
    * ``"reinforce_pp"``: ``grpo.reinforce_pp_advantages(scores, G)`` (exercise 6.5) -- group
      mean, then one std for the whole batch.

    ``scale_rewards`` only applies to ``"grpo"``: the other two estimators fix their own scaling.
    """
    if config.advantage_estimator == "rloo":
        return grpo.rloo_advantages(scores, group_size)
    if config.advantage_estimator == "reinforce_pp":
        return grpo.reinforce_pp_advantages(scores, group_size)
    return grpo.group_advantages(scores, group_size, scale=config.scale_rewards)


def _rows(rollout: sampling.Rollout, rows: slice) -> sampling.Rollout:
    """The rollout restricted to `rows` (whole groups, so the prompts travel with their completions)."""
    return sampling.Rollout(
        prompts=rollout.prompts[rows],
        texts=rollout.texts[rows],
        prompt_ids=rollout.prompt_ids[rows],
        prompt_mask=rollout.prompt_mask[rows],
        completion_ids=rollout.completion_ids[rows],
        completion_mask=rollout.completion_mask[rows],
    )


def gradient_noise(
    model, rollout: sampling.Rollout, advantages: torch.Tensor, group_size: int, config: GRPOConfig
) -> dict[str, float]:
    """How noisy the step's policy gradient is: ``{"grad_variance", "grad_noise_ratio"}``.

    The advantage estimator changes the policy-gradient term ``-A * rho`` (the KL term is the same
    for every estimator), so this measures that term's gradient alone, at rho = 1 (the step's first
    update), with your ``grpo.grpo_loss`` (``beta=0``) and the config's ``loss_type``. The batch's
    prompts are split into two halves -- independent samples of prompts and completions -- and
    ``g1``, ``g2`` are the gradients of the loss on each half:

    * ``grad_variance = ||g1 - g2||^2 / 4``: each half's gradient scatters with covariance
      ``2 * S`` around the expected gradient (S: the full batch's), so ``E||g1 - g2||^2 = 4 tr S``:
      an unbiased estimate of the total variance of the full batch's gradient. It carries the
      advantage's units squared: RLOO's is (G / (G - 1))^2 times that of ``"grpo"`` with
      ``scale_rewards="none"`` on the same batch;
    * ``grad_noise_ratio = ||g1 - g2||^2 / ||g1 + g2||^2``: scale free, so estimators that scale
      the advantages differently compare. Near 0: both halves point the same way (signal); near 1
      or above: they are unrelated (noise). Multiplying the advantages by a constant leaves it unchanged.

    Needs at least 2 prompts per step (NaN otherwise) and one more forward and backward pass of the
    batch, so the trainer runs it only with ``config.log_grad_variance``. The parameters' ``.grad``
    are left untouched (``torch.autograd.grad``).
    """
    n_prompts = len(rollout) // group_size
    if n_prompts < 2:
        return {"grad_variance": float("nan"), "grad_noise_ratio": float("nan")}
    half = (n_prompts // 2) * group_size
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    grads = []
    for rows in (slice(0, half), slice(half, 2 * half)):
        part = _rows(rollout, rows)
        logp = kl.token_logprobs(
            sampling.completion_logits(model, part, config.temperature), part.completion_ids
        )
        loss = grpo.grpo_loss(
            logp,
            logp.detach(),
            None,
            advantages[rows],
            part.completion_mask,
            clip_eps=config.epsilon,
            beta=0.0,
            loss_type=config.loss_type,
            max_completion_length=config.max_completion_length,
        )
        g = torch.autograd.grad(loss, params, allow_unused=True)
        grads.append(
            torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)])
        )
    diff, total = (grads[0] - grads[1]).pow(2).sum(), (grads[0] + grads[1]).pow(2).sum()
    return {
        "grad_variance": diff.item() / 4,
        "grad_noise_ratio": (diff / total).item() if total > 0 else float("nan"),
    }


# --------------------------------------------------------------------------- the loop
def train(
    config: GRPOConfig | None = None,
    model=None,
    tokenizer=None,
    dataset=None,
    *,
    ref_model=None,
    reward_funcs: Sequence[Callable] | None = None,
    profile: Profile | None = None,
    desc: str | None = None,
    show_progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> Run:
    """Train with GRPO; returns a :class:`Run` (with ``ref_model``).

    Defaults: the task's config (:meth:`GRPOConfig.from_profile`), the SFT checkpoint or base
    model, its frozen copy as reference, the task's reward functions and training prompts.
    `dataset` is a ``datasets.Dataset`` (or list of dicts) with a ``prompt`` column; its other
    columns (e.g. ``answer``) reach the reward functions as keyword arguments. History keys (see
    ``_loop``): step, loss, reward, reward_std, ``rewards/<function>`` (mean of each reward
    function), ``frac_reward_zero_std`` (groups whose rewards all tie), kl, clip_fraction,
    grad_norm, completion_length, ``entropy`` (mean per-token entropy of the sampling policy on its
    completion tokens, nats), lr, seconds; with ``config.log_grad_variance`` also ``grad_variance``
    and ``grad_noise_ratio`` (:func:`gradient_noise`, counted in seconds). The advantages come from
    :func:`estimate_advantages` (``config.advantage_estimator``). `on_step(row)` is called after
    every step.
    """
    from course_lib.core.models import frozen_copy

    profile = profile or get_profile()
    cfg = (config or GRPOConfig.from_profile(profile)).resolved(profile)
    # resolved() fills these from the profile and preset; the asserts tell the type checker so
    assert cfg.max_steps is not None and cfg.prompts_per_step is not None
    assert cfg.max_completion_length is not None
    torch.manual_seed(cfg.seed)
    start = None
    if model is None:
        model, tokenizer, start = start_model(profile)
    elif tokenizer is None:
        raise ValueError("grpo train: pass the tokenizer together with the model")
    if cfg.disable_dropout:
        _loop.disable_dropout(model)
    if ref_model is None:
        ref_model = frozen_copy(model)
    reward_funcs = list(reward_funcs or task_rewards(cfg.task, cfg.shaping_temperature))
    weights = list(cfg.reward_weights or [1.0] * len(reward_funcs))
    if len(weights) != len(reward_funcs):
        raise ValueError(f"train: {len(reward_funcs)} reward functions but {len(weights)} reward_weights")
    rows = dataset if dataset is not None else task_prompts(cfg.task, "train", profile=profile)
    rows = [dict(r) for r in rows]
    if not rows or "prompt" not in rows[0]:
        raise ValueError("grpo train: the training data needs a non-empty `prompt` column")
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    batches = _loop.shuffled_batches(
        len(rows), cfg.prompts_per_step, random.Random(cfg.seed), keep_remainder=True
    )

    optimizer, scheduler = _loop.optimizer_and_schedule(
        model, cfg, cfg.max_steps * cfg.num_iterations, warmup_offset=1
    )
    G, history = cfg.num_generations, []
    t_start = time.perf_counter()
    bar = _loop.progress_bar(cfg.max_steps, desc or f"GRPO {cfg.task}", show_progress)
    for step in bar:
        t0 = time.perf_counter()
        # 1. a group of G completions for each of this step's prompts: B = prompts_per_step * G rows
        batch = [rows[i] for i in next(batches)]
        rollout = sampling.sample(
            model,
            tokenizer,
            [r["prompt"] for r in batch],
            max_new_tokens=cfg.max_completion_length,
            num_samples=G,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            generator=gen,
        )
        mask = rollout.completion_mask  # [B, C], 1 on completion tokens
        # 2. rewards (extra columns repeated once per completion, as TRL does)
        columns = {k: [r[k] for r in batch for _ in range(G)] for k in batch[0] if k != "prompt"}
        scores, per_func = _loop.score_rollout(reward_funcs, weights, rollout, columns)  # [B]
        # 3. group-relative advantages (exercise 6.1; 6.4 or 6.5 with another advantage_estimator)
        advantages = estimate_advantages(scores.to(dev), G, cfg)  # [B]
        noise = gradient_noise(model, rollout, advantages, G, cfg) if cfg.log_grad_variance else {}
        # 4. reference and "old" log-probs, and the policy's per-token entropy, no gradients
        with torch.no_grad():
            ref_logp = kl.token_logprobs(
                sampling.completion_logits(ref_model, rollout, cfg.temperature), rollout.completion_ids
            )  # [B, C]
            model.eval()
            logits = sampling.completion_logits(model, rollout, cfg.temperature)
            entropies = torch.distributions.Categorical(logits=logits.float()).entropy()  # [B, C]
            old_logp = None
            if cfg.num_iterations > 1:  # the batch is reused: freeze pi_old before it moves
                old_logp = kl.token_logprobs(logits, rollout.completion_ids)
            del logits
        step_rollout, step_advantages = rollout, advantages
        if cfg.top_entropy_quantile < 1.0:
            step_rollout, step_advantages = _high_entropy_only(rollout, advantages, entropies, cfg)
        # 5. num_iterations optimizer steps on this batch (exercise 6.3 calls 6.2)
        losses, clip_fracs, grad_norms, first_logp = [], [], [], None
        lr = scheduler.get_last_lr()[0]
        for _ in range(cfg.num_iterations):
            out = grpo.grpo_step(
                model,
                optimizer,
                step_rollout,
                step_advantages,
                old_logp=old_logp,
                ref_logp=ref_logp,
                clip_eps=cfg.epsilon,
                beta=cfg.beta,
                loss_type=cfg.loss_type,
                max_completion_length=cfg.max_completion_length,
                max_grad_norm=cfg.max_grad_norm,
                temperature=cfg.temperature,
            )
            scheduler.step()
            logp = out["logp"]  # [B, C]
            first_logp = logp if first_logp is None else first_logp
            ratio = torch.exp(logp - (old_logp if old_logp is not None else logp))
            clipped = ((ratio < 1 - cfg.epsilon) | (ratio > 1 + cfg.epsilon)).float()
            clip_fracs.append(float(sft.masked_mean(clipped, mask)))
            losses.append(out["loss"])
            grad_norms.append(out["grad_norm"])
        assert first_logp is not None  # validate(): num_iterations >= 1, so the loop above ran
        with torch.no_grad():
            kl_now = float(sft.masked_mean(kl.kl_estimate(first_logp, ref_logp, "k3"), mask))
        groups = scores.view(-1, G)
        rec = {
            "step": step + 1,
            "loss": sum(losses) / len(losses),
            "reward": scores.mean().item(),
            "reward_std": scores.std().item() if len(scores) > 1 else 0.0,
            **{f"rewards/{k}": v for k, v in per_func.items()},
            "frac_reward_zero_std": (groups.std(-1) < 1e-6).float().mean().item(),
            "kl": kl_now,
            "clip_fraction": sum(clip_fracs) / len(clip_fracs),
            "grad_norm": sum(grad_norms) / len(grad_norms),
            "completion_length": mask.sum(-1).float().mean().item(),
            "entropy": float(sft.masked_mean(entropies, mask)),
            "lr": lr,
            **noise,
            "seconds": time.perf_counter() - t0,
        }
        history.append(rec)
        if show_progress:
            bar.set_postfix(
                reward=f"{rec['reward']:.3f}", kl=f"{kl_now:.3f}", len=f"{rec['completion_length']:.1f}"
            )
        if on_step:
            on_step(rec)
    model.eval()
    return Run(
        model,
        tokenizer,
        history,
        time.perf_counter() - t_start,
        cfg,
        trainer="grpo",
        checkpoint_name=_loop.checkpoint_name("grpo", cfg.task),
        ref_model=ref_model,
        info={"profile": profile.name, "task": cfg.task, "start": start},
    )


@dataclass
class _LossMaskedRollout(sampling.Rollout):
    """A rollout whose ``completion_mask`` -- the tokens the loss averages over -- is a subset of
    the tokens the forward pass attends to (``attend_mask``): dropping a token from the loss must
    not hide it from the tokens after it."""

    attend_mask: torch.Tensor | None = None

    @property
    def attention_mask(self) -> torch.Tensor:
        attend = self.completion_mask if self.attend_mask is None else self.attend_mask
        return torch.cat([self.prompt_mask, attend], dim=1)


def _high_entropy_only(rollout, advantages, entropies, cfg):
    """``top_entropy_quantile < 1``: the rollout whose loss mask holds only the batch's
    high-entropy completion tokens (``grpo.high_entropy_mask``, exercise 6.6), and the advantages.

    TRL multiplies only the policy term by this mask and still averages over every completion
    token (its KL term covers them all); here the mask goes through your ``grpo_step`` as the loss
    mask, so the policy term and the KL term both cover the kept tokens and the average is over
    them. A row with no kept token would leave ``loss_type="grpo"`` a mean over nothing: it keeps
    its whole mask with advantage 0 -- only its KL term, as in TRL."""
    mask = rollout.completion_mask
    keep = grpo.high_entropy_mask(entropies, mask, cfg.top_entropy_quantile).to(mask.dtype) * mask
    empty = keep.sum(-1) == 0
    keep[empty] = mask[empty]
    own = {f.name: getattr(rollout, f.name) for f in fields(sampling.Rollout)}
    masked = _LossMaskedRollout(**{**own, "completion_mask": keep}, attend_mask=mask)
    return masked, advantages.masked_fill(empty, 0.0)


# --------------------------------------------------------------------------- evaluation
def evaluate(
    model,
    tokenizer,
    task: str = "sentiment",
    ref_model=None,
    n: int | None = None,
    profile: Profile | None = None,
    max_new_tokens: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
) -> dict:
    """Fresh samples on the task's *eval* prompts (never training prompts), with the shared
    :func:`course_lib.core.evaluation.evaluate_policy`.

    sentiment: positive_fraction (prompt + completion), distinct_2, kl_to_ref, reward_mean;
    arithmetic: accuracy (mean ``correctness_reward`` of one sample per problem),
    first_integer_accuracy, distinct_2, kl_to_ref, tokens_mean.
    """
    from course_lib.core import evaluation

    profile = profile or get_profile()
    n = n or profile.preset().eval_size
    ds = task_prompts(task, "eval", n=n, profile=profile)
    if max_new_tokens is None:
        max_new_tokens = (
            min(8, profile.max_completion_length) if task == "arithmetic" else profile.max_completion_length
        )
    kwargs = {"answer": list(ds["answer"])} if task == "arithmetic" else None
    res = evaluation.evaluate_policy(
        model,
        tokenizer,
        list(ds["prompt"]),
        reward_fn=task_rewards(task)[0],
        ref=ref_model,
        max_new_tokens=max_new_tokens,
        seed=seed,
        temperature=temperature,
        sentiment=(task == "sentiment"),
        reward_kwargs=kwargs,
    )
    if task == "arithmetic":
        res["accuracy"] = res["reward_mean"]
        res["first_integer_accuracy"] = evaluation.first_integer_accuracy(
            [s["response"] for s in res["samples"]], ds["answer"]
        )
    return res


def headline_run(
    config: GRPOConfig | None = None,
    profile: Profile | None = None,
    start: tuple | None = None,
    n_eval: int | None = None,
    show_progress: bool = True,
) -> HeadlineRun:
    """The sentiment run of notebook 06 -- what the notebook and ``course seeds`` both call: the
    metrics of the start model (`start` = (model, tokenizer), None: :func:`start_model`, the SFT
    checkpoint when it exists) on `n_eval` eval prompts (None: the preset's), :func:`train` on a
    copy of it (seeded with ``config.seed``; the start model is left as it was), the metrics after."""
    import copy

    profile = profile or get_profile()
    config = config or GRPOConfig.from_profile(profile, task="sentiment")
    model, tokenizer = start[:2] if start is not None else start_model(profile)[:2]
    task = config.task
    before = evaluate(model, tokenizer, task, n=n_eval, profile=profile)
    run = train(
        config,
        model=copy.deepcopy(model),
        tokenizer=tokenizer,
        profile=profile,
        desc=f"GRPO {task}",
        show_progress=show_progress,
    )
    after = evaluate(run.model, tokenizer, task, ref_model=run.ref_model, n=n_eval, profile=profile)
    return HeadlineRun(run, before, after)


# --------------------------------------------------------------------------- TRL side by side
def train_with_trl(
    config: GRPOConfig,
    model,
    tokenizer,
    dataset=None,
    output_dir: str | Path | None = None,
    *,
    reward_funcs: Sequence[Callable] | None = None,
    profile: Profile | None = None,
) -> Run:
    """TRL's ``GRPOTrainer`` with the same config, model and reward functions (default: the
    task's, on its training prompts). A :class:`Run` whose history has step, loss, lr, seconds,
    reward, kl, completion_length."""
    import tempfile

    from datasets import Dataset
    from trl import GRPOTrainer

    profile = profile or get_profile()
    cfg = config.resolved(profile)
    reward_funcs = list(reward_funcs or task_rewards(cfg.task, cfg.shaping_temperature))
    ds = dataset if dataset is not None else task_prompts(cfg.task, "train", profile=profile)
    if not isinstance(ds, Dataset):
        ds = Dataset.from_list([dict(r) for r in ds])
    out = Path(output_dir or tempfile.mkdtemp(prefix="trl_grpo_"))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[*reward_funcs],
        args=cfg.to_trl(out),
        train_dataset=ds,
        processing_class=tokenizer,
    )
    return _loop.run_trl(
        trainer,
        cfg,
        tokenizer,
        "grpo",
        desc="TRL GRPOTrainer",
        keys={"reward": "reward", "kl": "kl", "completions/mean_length": "completion_length"},
    )


# --------------------------------------------------------------------------- course run / unit 08
def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """Train GRPO with the active exercise functions (``task="sentiment"`` or ``"arithmetic"``
    among the `overrides`, which are :class:`GRPOConfig` fields) and save it to `out_dir` or
    ``checkpoint_dir()/"grpo"`` (sentiment) / ``"grpo_arithmetic"``; returns the path."""
    return _loop.quick_train(train, GRPOConfig, profile, preset, out_dir, **overrides)
