"""PPO from scratch (unit 05): one readable training loop, no framework in between.

    policy, ref, tok = load_models()                       # SFT checkpoint if present, else base
    run = train(PPOConfig.from_profile(max_steps=60), policy, tok, ref_model=ref)   # a Run
    metrics = evaluate(run.model, ref, tok, data.load_task("sentiment", "eval", n=64)["prompt"])

One PPO step (:func:`train`), as in Ziegler et al. (2019) / InstructGPT and the classic "GPT-2
positive sentiment" assignment:

1. **rollout** — sample one completion per prompt with the KV-cached sampler
   (``sampling.sample``);
2. **score** — a sequence-level reward per completion (VADER / DistilBERT sentiment through the
   student's ``rewards.sentiment_reward``, optionally combined with ``rewards.repetition_penalty``
   and ``rewards.length_penalty``, or the unit-04 learned reward model);
3. **per-token rewards** — ``kl.kl_penalized_rewards``: -kl_coef * (log pi - log pi_ref) on every
   response token, the score added on the last one;
4. **values** — the value head of :class:`~course_lib.core.models.PolicyWithValueHead`, one per state;
5. **advantages** — ``ppo.compute_gae`` then ``ppo.whiten``;
6. **update** — `ppo_epochs` passes over `num_mini_batches` shuffled minibatches; each calls the
   student's ``ppo.ppo_minibatch_loss`` (clipped policy loss + vf_coef * clipped value loss -
   entropy_coef * entropy), back-propagates, clips the gradient norm and steps the optimizer;
7. **KL controller** — a fixed kl_coef, or Ziegler's adaptive controller that nudges kl_coef
   towards a target KL.

Every exercise is called through its module (``ppo.compute_gae(...)``), so the loop runs whatever
is active: the student's functions or, with ``course_lib.use_solutions()``, the instructor's.
TRL 1.16 has no PPO trainer any more (so there is no ``train_with_trl`` here); the config keeps
the names of TRL's old ``PPOConfig`` where they exist. The API it shares with the other trainers
(``Run``, history keys, ``save_checkpoint``, ``quick_train``) is described in
:mod:`course_lib.trainers._loop`; the checkpoint is ``checkpoint_dir()/"ppo"`` (the LM, loadable
with ``load_policy``, plus the value head).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from course_lib import kl, ppo, rewards, sft
from course_lib.core import data, evaluation, sampling
from course_lib.core.config import Preset, Profile, checkpoint_dir, get_profile
from course_lib.core.models import PolicyWithValueHead, frozen_copy, latest_checkpoint
from course_lib.core.utils import default_device
from course_lib.trainers import _loop
from course_lib.trainers._loop import Run, save_checkpoint  # noqa: F401  (the shared API)

REWARDS = ("sentiment", "combined", "reward_model")
COMBINED_WEIGHTS = (1.0, -0.5, 0.1)  # sentiment, repetition_penalty, length_penalty


@dataclass
class PPOConfig(_loop.TrainerConfig):
    """Hyper-parameters of :func:`train`, with the names of TRL's (old) PPOConfig where it had them.

    `batch_size` sequences are sampled per step (one per prompt) and split into
    `num_mini_batches` minibatches of `mini_batch_size`; each step makes
    ``ppo_epochs * num_mini_batches`` optimizer updates on its own samples.
    """

    max_steps: int = 60  # PPO steps (rollout + update)
    batch_size: int = 32  # prompts = sampled sequences per step
    num_mini_batches: int = 4
    ppo_epochs: int = 2
    learning_rate: float = 5e-4
    clip_range: float = 0.2  # epsilon of the clipped surrogate; None/inf = no clipping
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    kl_coef: float = 0.05  # beta: the KL penalty inside the reward (TRL's default)
    adaptive_kl: bool = False  # Ziegler et al.'s adaptive controller instead of a fixed beta
    target_kl: float = 6.0  # adaptive: target KL per *sequence* (nats, summed over tokens)
    horizon: int = 10000  # adaptive: how fast beta moves (in samples)
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    max_new_tokens: int = 24
    temperature: float = 1.0
    max_grad_norm: float | None = 1.0
    reward: str = "sentiment"  # "sentiment" | "combined" | "reward_model"
    reward_weights: tuple = COMBINED_WEIGHTS
    seed: int = 0
    max_time: float | None = None  # stop early after this many seconds of training

    COUNTS: ClassVar[tuple[str, ...]] = ("max_steps", "batch_size", "num_mini_batches", "ppo_epochs")
    CHOICES: ClassVar[dict[str, tuple]] = {"reward": REWARDS}

    def validate(self) -> None:
        """The counts and reward (:meth:`_loop.TrainerConfig.validate`), a batch that can be
        whitened and split into the minibatches, a usable KL controller and temperature."""
        super().validate()
        if self.batch_size < 2:
            raise ValueError(
                f"PPOConfig: batch_size must be >= 2 (advantages are whitened over the batch), "
                f"got {self.batch_size}"
            )
        if self.batch_size % self.num_mini_batches:
            raise ValueError(
                f"PPOConfig: batch_size ({self.batch_size}) must be a multiple of "
                f"num_mini_batches ({self.num_mini_batches})"
            )
        if self.adaptive_kl and (self.target_kl <= 0 or self.horizon <= 0):
            raise ValueError("PPOConfig: adaptive_kl needs target_kl > 0 and horizon > 0")
        if self.temperature <= 0:
            raise ValueError(f"PPOConfig: temperature must be > 0, got {self.temperature}")

    @property
    def mini_batch_size(self) -> int:
        return self.batch_size // self.num_mini_batches

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The unit's settings for a profile + preset: steps from the preset, 2 epochs over 4
        minibatches per step.

        Tiny (:data:`TINY_ROLLOUTS_PER_PROMPT_BATCH`): 64 sequences per step on the
        quick preset (minibatches of 16), lr 3e-4, kl_coef 0.07 moved by the adaptive controller
        (:data:`TINY_TARGET_KL`), entropy_coef 0.01. Gpu: ``4 * preset.batch_size`` sequences
        (:data:`ROLLOUTS_PER_PROMPT_BATCH`), lr 1.41e-5, kl_coef 0.1 fixed, no entropy bonus (TRL's
        old defaults; not yet measured on a GPU)."""
        tiny = profile.name == "tiny"
        per_prompt_batch = TINY_ROLLOUTS_PER_PROMPT_BATCH if tiny else ROLLOUTS_PER_PROMPT_BATCH
        defaults = {
            "max_steps": preset.steps,
            "batch_size": per_prompt_batch * preset.batch_size,
            "num_mini_batches": 4,
            "max_new_tokens": profile.max_completion_length,
            "learning_rate": 3e-4 if tiny else 1.41e-5,
            "kl_coef": 0.07 if tiny else 0.1,
            "entropy_coef": 0.01 if tiny else 0.0,
        }
        if tiny:  # adaptive beta: with a fixed one, the KL of an unlucky seed runs past the bar
            defaults.update(adaptive_kl=True, target_kl=TINY_TARGET_KL, horizon=TINY_KL_HORIZON)
        return defaults


ROLLOUTS_PER_PROMPT_BATCH = 4
"""Gpu profile: PPO samples ``4 * preset.batch_size`` prompts per step (32 on the quick preset):
with only 8 sequences the whitened advantages are too noisy."""

TINY_ROLLOUTS_PER_PROMPT_BATCH = 8
"""Tiny profile: ``8 * preset.batch_size`` prompts per step (64 on the quick preset, 4 minibatches
of 16, lr 3e-4, 2 PPO epochs, entropy_coef 0.01, adaptive KL from kl_coef 0.07): every bar of
unit 05 holds for the worst of seeds 0, 1 and 2, with the solutions and with a numerically
different implementation.

Why so many samples: each minibatch is one Adam update, and Adam moves every weight by about the
learning rate whatever the noise in the gradient. With fewer, smaller minibatches the policy
jitters from step to step, its KL to the reference goes up and down across the KL bar, and where
the run stops decides whether it meets it. 64 sequences per step in minibatches of 16 halve the
noise of each Adam step's gradient and keep the per-token KL within the bar for every seed. The
other values sit where the diversity (distinct-2) bar holds too: another learning rate or entropy
bonus, a single minibatch or more PPO epochs each cost some seed its diversity, its gain or its
KL. The run starts from the unit-03 SFT checkpoint: the base model is already mostly positive and leaves
PPO less to gain."""

TINY_TARGET_KL = 3.0
TINY_KL_HORIZON = 320
"""Tiny profile: Ziegler's adaptive KL controller from beta 0.07 towards 3 nats per sequence
(summed k1 of the training samples, about 0.2-0.3 nats per token), horizon 320 samples (5 steps
of 64): beta moves by at most 4 % per step. A higher target lowers beta and lets a seed end above
the KL bar or below the distinct-2 bar; a fixed beta leaves the KL of an unlucky seed unchecked."""


# --------------------------------------------------------------------------- KL controllers
class FixedKLController:
    """kl_coef stays what it is."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value


class AdaptiveKLController:
    """Ziegler et al. (2019), section 2.2: a proportional controller on log(beta).

    ``error = clip(KL / target - 1, -0.2, 0.2)`` and ``beta <- beta * (1 + error * n_steps /
    horizon)``, with KL the mean KL per *sequence* of the latest batch and n_steps the number of
    samples it held: too much KL raises beta, too little lowers it, by at most 20 % per horizon.
    """

    def __init__(self, kl_coef: float, target: float, horizon: int):
        self.value, self.target, self.horizon = float(kl_coef), float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


def make_kl_controller(config: PPOConfig):
    if config.adaptive_kl:
        return AdaptiveKLController(config.kl_coef, config.target_kl, config.horizon)
    return FixedKLController(config.kl_coef)


# --------------------------------------------------------------------------- models and reward
def load_models(
    profile: Profile | None = None,
    init_from: str | Path | None = None,
    device: torch.device | str | None = None,
):
    """(policy with a fresh value head, frozen reference = the starting LM, tokenizer).

    Starts from `init_from`, else the unit-03 SFT checkpoint when it exists, else the base model."""
    lm, tok, start = _loop.start_model(profile, init_from, device)
    ref = frozen_copy(lm)
    policy = PolicyWithValueHead(lm).to(next(lm.parameters()).device)
    policy.start = start
    return policy, ref, tok


def make_reward_fn(
    config: PPOConfig, tokenizer=None, reward_model_path: str | Path | None = None
) -> Callable[..., list]:
    """The sequence-level reward: ``f(completions, prompts=[...]) -> list[float]`` (TRL style).

    * "sentiment": the student's ``rewards.sentiment_reward`` on the completions;
    * "combined": ``rewards.combine_rewards([sentiment_reward, repetition_penalty,
      length_penalty], reward_weights)`` — the PPO-sentiment project's guard against
      "great great great" (weights 1.0 / -0.5 / 0.1);
    * "reward_model": the unit-04 learned reward model (checkpoint "reward_model") on
      prompt + completion.
    """
    if config.reward == "sentiment":

        def sentiment(completions, **kw):
            return rewards.sentiment_reward(completions)

        return sentiment
    if config.reward == "combined":
        combined = rewards.combine_rewards(
            [rewards.sentiment_reward, rewards.repetition_penalty, rewards.length_penalty],
            list(config.reward_weights),
        )

        def combined_sentiment(completions, **kw):
            return combined(completions)

        return combined_sentiment
    from course_lib.core.models import RewardModel

    path = reward_model_path or latest_checkpoint("reward_model")
    if path is None:
        raise FileNotFoundError(
            f"PPOConfig(reward='reward_model'): no checkpoint {checkpoint_dir() / 'reward_model'}; "
            "run notebook 04 (or reward_model_trainer.quick_train()) first, or use reward='sentiment'"
        )
    rm = RewardModel.from_pretrained(path).to(default_device()).eval()
    from course_lib.core.models import load_tokenizer

    rm_tok = load_tokenizer(path) if (Path(path) / "tokenizer_config.json").exists() else tokenizer

    def learned_reward(completions, prompts=None, **kw):
        texts = [p + c for p, c in zip(prompts, completions)] if prompts else list(completions)
        return rm.score_texts(texts, rm_tok)

    return learned_reward


# --------------------------------------------------------------------------- one PPO step
def policy_forward(
    policy: PolicyWithValueHead,
    rollout: sampling.Rollout,
    temperature: float = 1.0,
    rows: slice | torch.Tensor | None = None,
):
    """Logits [B, C, V] (divided by `temperature`) that predict each completion token, and the
    value [B, C] of the state *before* each completion token — one forward of prompt + completion.
    `rows` selects a minibatch of the rollout."""
    ids, attn = rollout.input_ids, rollout.attention_mask
    if rows is not None:
        ids, attn = ids[rows], attn[rows]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    logits, values = policy(input_ids=ids, attention_mask=attn, position_ids=pos)
    P = rollout.prompt_ids.shape[1]
    logits, values = logits[:, P - 1 : -1], values[:, P - 1 : -1]
    return (logits / temperature if temperature != 1.0 else logits), values


@torch.no_grad()
def collect_rollout(
    policy: PolicyWithValueHead,
    ref,
    tokenizer,
    prompts: Sequence[str],
    reward_fn: Callable,
    kl_coef: float,
    config: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict:
    """Steps 1-5 of PPO for one batch of prompts. Returns a dict with the rollout (`rollout`,
    `texts`), the sequence `scores` [B] and the [B, C] tensors ``response_ids``, ``mask``,
    ``old_logprobs``, ``ref_logprobs``, ``old_values``, ``rewards`` (KL-penalised, per token),
    ``advantages`` (whitened) and ``returns`` — everything the update needs."""
    roll = sampling.sample(
        policy.lm,
        tokenizer,
        list(prompts),
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        generator=generator,
    )
    dev = roll.completion_ids.device
    scores = torch.tensor(reward_fn(roll.texts, prompts=roll.prompts), dtype=torch.float32, device=dev)
    policy.eval()
    logits, values = policy_forward(policy, roll, config.temperature)
    old_logp = kl.token_logprobs(logits, roll.completion_ids)
    ref_logp = kl.token_logprobs(
        sampling.completion_logits(ref, roll, config.temperature), roll.completion_ids
    )
    mask = roll.completion_mask
    values = values.float() * mask
    token_rewards = kl.kl_penalized_rewards(scores, old_logp, ref_logp, mask, kl_coef)
    advantages, returns = ppo.compute_gae(token_rewards, values, mask, config.gamma, config.lam)
    if config.whiten_advantages:
        advantages = ppo.whiten(advantages, mask)
    return {
        "rollout": roll,
        "texts": roll.texts,
        "scores": scores,
        "response_ids": roll.completion_ids,
        "mask": mask,
        "old_logprobs": old_logp,
        "ref_logprobs": ref_logp,
        "old_values": values,
        "rewards": token_rewards,
        "advantages": advantages.detach(),
        "returns": returns.detach(),
    }


def ppo_update(
    policy: PolicyWithValueHead,
    optimizer: torch.optim.Optimizer,
    batch: dict,
    config: PPOConfig,
    rng: random.Random | None = None,
) -> dict[str, float]:
    """Step 6: `ppo_epochs` passes over shuffled minibatches of one rollout. Each minibatch: the
    student's ``ppo.ppo_minibatch_loss``, backward, gradient clipping, optimizer step.
    Returns the statistics averaged over all minibatches (plus ``grad_norm``)."""
    rng = rng or random.Random(0)
    roll, B = batch["rollout"], len(batch["rollout"])
    keys = ("response_ids", "mask", "old_logprobs", "old_values", "advantages", "returns")
    clip = config.clip_range if config.clip_range is not None else math.inf
    sums: dict[str, float] = {}
    minibatches = _loop.shuffled_batches(B, config.mini_batch_size, rng)  # a fresh shuffle per epoch
    n_updates = config.ppo_epochs * config.num_mini_batches
    policy.eval()  # dropout off (as in TRL's PPO): at the first minibatch the ratio is exactly 1
    for _ in range(n_updates):
        rows = torch.tensor(next(minibatches), device=batch["mask"].device)  # [b]
        logits, values = policy_forward(policy, roll, config.temperature, rows)  # [b, C, V], [b, C]
        mb = {k: batch[k][rows] for k in keys}  # each [b, C]
        loss, stats = ppo.ppo_minibatch_loss(
            logits,
            values,
            mb,
            clip_range=clip,
            cliprange_value=config.cliprange_value,
            vf_coef=config.vf_coef,
            entropy_coef=config.entropy_coef,
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"PPO: the minibatch loss became {loss.item()}; check ppo_minibatch_loss and "
                "the losses it calls (or lower the learning rate)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gn = (
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            if config.max_grad_norm is not None
            else torch.tensor(0.0)
        )
        optimizer.step()
        for k, v in {"loss": loss.detach(), "grad_norm": gn, **stats}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / n_updates for k, v in sums.items()}


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainState:
    """What :func:`train` keeps in ``run.state`` so that ``train(config, resume=run)`` goes on where
    the run stopped: the prompts and reward, the optimizer (Adam's running moments), the KL
    controller (its beta) and the random streams (prompt order and minibatch shuffles, sampling).
    Starting these afresh would make the second half a different run from the first."""

    prompts: list[str]
    reward_fn: Callable
    optimizer: torch.optim.Optimizer
    controller: FixedKLController | AdaptiveKLController
    rng: random.Random
    generator: torch.Generator
    batches: Iterator[list[int]]


def train(
    config: PPOConfig | None = None,
    model: PolicyWithValueHead | None = None,
    tokenizer=None,
    dataset=None,
    *,
    ref_model=None,
    reward_fn: Callable | None = None,
    profile: Profile | None = None,
    desc: str = "PPO",
    show_progress: bool = True,
    resume: Run | None = None,
) -> Run:
    """Train the policy (a ``PolicyWithValueHead``) in place with PPO against the frozen `ref_model`.

    Defaults: :meth:`PPOConfig.from_profile`; :func:`load_models` (seeded with ``config.seed``:
    the SFT checkpoint or the base model, a fresh value head, its frozen copy as reference); the
    sentiment training prompts (`dataset`: a list of prompts or a dataset with a ``prompt``
    column); the config's reward (:func:`make_reward_fn`). History keys (see ``_loop``): step,
    reward, reward_std, kl, ``kl_seq`` (mean summed k1 per sequence, what the adaptive controller
    sees), ``kl_coef`` (beta of this step), completion_length, ``entropy``, clip_fraction,
    ``approx_kl``, ``policy_loss``, ``value_loss``, loss, grad_norm, lr, seconds.
    ``run.info["kl_coef"]`` is the final beta (it moves when adaptive).

    ``resume=run`` (a run this function returned) trains that run on until it has
    ``config.max_steps`` steps in all, with its policy, reference, tokenizer, prompts, reward,
    optimizer state, KL controller and random streams (:class:`TrainState`): 30 steps and then 30
    more give the same numbers as 60 steps at once, so a notebook can look at the curves halfway.
    The learning rate is constant, so stopping halfway changes no schedule. `config` (None: the
    run's) may differ from the run's only in max_steps; the returned run holds the whole history."""
    if resume is not None:
        state = resume.state
        if not isinstance(state, TrainState):
            raise ValueError("ppo train: resume= takes a run returned by ppo train")
        config = config or resume.config
        if dataclasses.replace(config, max_steps=resume.config.max_steps) != resume.config:
            raise ValueError("ppo train: a resumed run keeps its config; only max_steps may change")
        profile_name = resume.info["profile"]
        policy, ref, tokenizer = resume.model, resume.ref_model, resume.tokenizer
        history, seconds_before = list(resume.history), resume.seconds
    else:
        profile = profile or get_profile()
        config = config or PPOConfig.from_profile(profile)
        if model is None:
            from course_lib.core.utils import seed_everything

            seed_everything(config.seed)
            model, ref_model, tokenizer = load_models(profile)
        elif tokenizer is None:
            raise ValueError("ppo train: pass the tokenizer together with the model")
        policy = model if isinstance(model, PolicyWithValueHead) else PolicyWithValueHead(model)
        ref = ref_model if ref_model is not None else frozen_copy(policy.lm)
        if dataset is None:
            dataset = data.load_task("sentiment", "train", profile=profile)
        prompts = list(dataset["prompt"]) if hasattr(dataset, "column_names") else list(dataset)
        if len(prompts) < config.batch_size:
            raise ValueError(f"ppo train: {len(prompts)} prompts for batch_size {config.batch_size}")
        dev = next(policy.parameters()).device
        rng = random.Random(config.seed)  # prompt order and minibatch shuffles
        state = TrainState(
            prompts=prompts,
            reward_fn=reward_fn or make_reward_fn(config, tokenizer),
            optimizer=torch.optim.AdamW(policy.parameters(), lr=config.learning_rate, eps=1e-5),
            controller=make_kl_controller(config),
            rng=rng,
            generator=torch.Generator(device=dev).manual_seed(config.seed),  # sampling
            batches=_loop.shuffled_batches(len(prompts), config.batch_size, rng, from_end=True),
        )
        history, seconds_before, profile_name = [], 0.0, profile.name
    controller = state.controller
    started = time.perf_counter()
    bar = _loop.progress_bar(max(0, config.max_steps - len(history)), desc, show_progress)
    for _ in bar:
        t0 = time.perf_counter()
        batch_prompts = [state.prompts[i] for i in next(state.batches)]
        beta = controller.value
        # rollout, scores [B], per-token tensors [B, C]: mask, old/ref logprobs, values, advantages
        batch = collect_rollout(
            policy, ref, tokenizer, batch_prompts, state.reward_fn, beta, config, state.generator
        )
        stats = ppo_update(policy, state.optimizer, batch, config, state.rng)
        mask = batch["mask"]  # [B, C]
        kl_tok = kl.kl_estimate(batch["old_logprobs"], batch["ref_logprobs"], "k3")  # [B, C]
        kl_seq = ((batch["old_logprobs"] - batch["ref_logprobs"]) * mask).sum(-1).mean().item()
        controller.update(kl_seq, config.batch_size)
        row = {
            "step": len(history) + 1,
            "reward": batch["scores"].mean().item(),
            "reward_std": batch["scores"].std().item(),
            "kl": sft.masked_mean(kl_tok, mask).item(),
            "kl_seq": kl_seq,
            "kl_coef": beta,
            "completion_length": mask.sum(-1).float().mean().item(),
            **stats,
            "lr": config.learning_rate,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        bar.set_postfix(reward=f"{row['reward']:.2f}", kl=f"{row['kl']:.3f}")
        if config.max_time is not None and time.perf_counter() - started > config.max_time:
            break
    policy.eval()
    return Run(
        policy,
        tokenizer,
        history,
        seconds_before + time.perf_counter() - started,
        config,
        trainer="ppo",
        checkpoint_name=_loop.checkpoint_name("ppo"),
        ref_model=ref,
        info={"profile": profile_name, "start": getattr(policy, "start", None), "kl_coef": controller.value},
        state=state,
    )


# --------------------------------------------------------------------------- evaluation
# How evaluate() merges a metric over draws, by the key's last "_" part: counts add up, extremes
# stay extremes; every other number is averaged.
_DRAW_TOTALS: dict[str, Callable[[list[float]], float]] = {"n": sum, "min": min, "max": max}


def evaluate(
    policy,
    ref,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int | None = None,
    seed: int = 1234,
    temperature: float = 1.0,
    draws: int = 1,
) -> dict:
    """The shared metrics on fresh samples (``evaluation.evaluate_policy``): positive_fraction
    (prompt + completion), distinct_2, kl_to_ref (mean per-token k3), reward statistics, samples.
    `policy` may be a PolicyWithValueHead or a plain causal LM.

    ``draws > 1`` samples one completion per prompt `draws` times (seeds ``seed, seed + 1, ...``) and
    averages each metric over the draws (``n`` is the total, ``*_min``/``*_max`` the extremes;
    ``samples`` and ``rewards`` are the first draw's): each metric keeps its meaning (distinct-2 of
    ``len(prompts)`` samples), with less chance in it -- see :data:`EVAL_DRAWS`."""
    if draws < 1:
        raise ValueError(f"ppo.evaluate: draws must be >= 1, got {draws}")
    lm = policy.lm if isinstance(policy, PolicyWithValueHead) else policy
    results = [
        evaluation.evaluate_policy(
            lm,
            tokenizer,
            list(prompts),
            reward_fn=rewards.sentiment_reward,
            ref=ref,
            max_new_tokens=max_new_tokens,
            seed=seed + i,
            temperature=temperature,
            sentiment=True,
        )
        for i in range(draws)
    ]
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = [r[key] for r in results]
        pick = _DRAW_TOTALS.get(key.rsplit("_", 1)[-1])  # n, *_min, *_max
        out[key] = pick(values) if pick else sum(values) / draws
    out["draws"] = draws
    return out


EVAL_DRAWS = 4
""":func:`headline_run` measures before and after on ``EVAL_DRAWS`` draws of one completion per
held-out prompt and averages. One draw of 128 prompts is itself a random measurement: the same
trained policy, evaluated with different sampling seeds, moves its distinct-2 and positive fraction
by several points, as much as a bar's margin. Four draws halve that spread, so a bar judges the
policy, not one sampling seed."""


HEADLINE = ("positive_fraction", "distinct_2", "kl_to_ref")


def headline(before: dict, after: dict) -> dict[str, tuple[float, float]]:
    """{name: (before, after)} for ``report.report_metrics("05", ...)``."""
    return {k: (before[k], after[k]) for k in HEADLINE}


def eval_prompts(profile: Profile | None = None, n: int | None = None) -> list[str]:
    """Notebook 05's held-out sentiment prompts: ``n`` (None: twice the preset's eval_size, 128 on
    quick, because the positive fraction of 64 samples moves by about +-6 points by chance)."""
    profile = profile or get_profile()
    n = n or 2 * profile.preset().eval_size
    return list(data.load_task("sentiment", "eval", n=n, profile=profile)["prompt"])


@dataclass
class HeadlineRun:
    """Notebook 05's main run: the trained `run` (policy ``run.model``, reference ``run.ref_model``,
    ``run.tokenizer``), the :func:`evaluate` dicts `before` / `after` and the training seconds.

    A run paused halfway (``headline_run(..., pause_after=n)``) has trained `n` of
    ``config.max_steps`` steps and no `after` yet: :meth:`finish` trains it on and measures it."""

    run: Run
    before: dict
    after: dict | None
    train_seconds: float
    config: PPOConfig | None = None  # the whole run's (max_steps: all its steps)
    prompts: list[str] | None = None  # the held-out prompts of `before` and `after`

    def headline(self) -> dict[str, tuple[float, float]]:
        if self.after is None:
            raise ValueError("ppo HeadlineRun: the run is paused; call finish() first")
        return headline(self.before, self.after)

    def finish(self, show_progress: bool = True) -> HeadlineRun:
        """Train the paused run on to ``config.max_steps`` (the same run: :func:`train` with
        ``resume=``) and measure `after`; returns self."""
        if self.after is not None:
            return self
        config = self.config or self.run.config
        if len(self.run.history) < config.max_steps:
            t0 = time.perf_counter()
            self.run = train(config, resume=self.run, show_progress=show_progress)
            self.train_seconds += time.perf_counter() - t0
        self.after = evaluate(
            self.run.model, self.run.ref_model, self.run.tokenizer, self.prompts or [], draws=EVAL_DRAWS
        )
        return self


def headline_run(
    config: PPOConfig | None = None,
    profile: Profile | None = None,
    prompts: Sequence[str] | None = None,
    show_progress: bool = True,
    pause_after: int | None = None,
) -> HeadlineRun:
    """The main run of notebook 05 (section 9) -- what the notebook and ``course seeds`` both call:
    ``torch.manual_seed(config.seed)``, :func:`load_models` (the SFT checkpoint when it exists), the
    metrics before on `prompts` (None: :func:`eval_prompts`; averaged over :data:`EVAL_DRAWS`
    draws), ``torch.manual_seed(config.seed)`` again, :func:`train`, the metrics after (same).
    ``config.seed`` seeds the value head, the sampling and the prompt order; the evaluation samples
    always use :func:`evaluate`'s own seeds.

    ``pause_after=n`` stops after `n` training steps and returns the run without `after`;
    :meth:`HeadlineRun.finish` trains the remaining steps and measures it. Paused or not, it is
    the same run with the same numbers: the notebook pauses halfway to show the first curves in a
    cell of its own (each cell then stays under a minute), ``course seeds`` runs it in one go."""
    profile = profile or get_profile()
    config = config or PPOConfig.from_profile(profile)
    prompts = list(prompts) if prompts is not None else eval_prompts(profile)
    torch.manual_seed(config.seed)
    policy, ref, tok = load_models(profile)
    before = evaluate(policy, ref, tok, prompts, draws=EVAL_DRAWS)
    torch.manual_seed(config.seed)
    steps = config.max_steps if pause_after is None else min(pause_after, config.max_steps)
    t0 = time.perf_counter()
    first = dataclasses.replace(config, max_steps=steps)
    run = train(first, policy, tok, ref_model=ref, profile=profile, show_progress=show_progress)
    main = HeadlineRun(run, before, None, time.perf_counter() - t0, config, prompts)
    if steps == config.max_steps:
        main.after = evaluate(policy, ref, tok, prompts, draws=EVAL_DRAWS)
    return main


def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """Train the positive-sentiment policy with the active exercise functions (from the SFT
    checkpoint when it exists, else the base model) and save it to `out_dir` or
    ``checkpoint_dir()/"ppo"``. `overrides` are :class:`PPOConfig` fields (e.g. ``max_steps=5``)."""
    return _loop.quick_train(train, PPOConfig, profile, preset, out_dir, **overrides)
