"""Solutions for unit 01 — reward functions."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch

from course_lib.rewards import FORMAT_PATTERN, RewardFunc, as_text

_INT = re.compile(r"-?\d+")


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    return [1.0 if re.fullmatch(FORMAT_PATTERN, t.strip()) else -1.0 for t in as_text(completions)]


def _last_int(x) -> int | None:
    if isinstance(x, int):
        return x
    found = _INT.findall(str(x).replace(",", ""))
    return int(found[-1]) if found else None


def correctness_reward(completions: Sequence, answer: Sequence, **kwargs) -> list[float]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    texts = as_text(completions)
    if isinstance(answer, (str, int)):
        raise ValueError(
            "correctness_reward: `answer` must hold one entry per completion, "
            f"got a single {type(answer).__name__}"
        )
    if len(texts) != len(answer):
        raise ValueError(f"correctness_reward: {len(texts)} completions but {len(answer)} answers")
    out = []
    for text, ans in zip(texts, answer):
        got, want = _last_int(text), _last_int(ans)
        out.append(1.0 if got is not None and want is not None and got == want else 0.0)
    return out


def sentiment_reward(completions: Sequence, **kwargs) -> list[float]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    from course_lib.core.sentiment import get_scorer

    return [float(p) for p in get_scorer().positive_probability(as_text(completions))]


def repetition_penalty(completions: Sequence, **kwargs) -> list[float]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    out = []
    for text in as_text(completions):
        words = text.lower().split()
        out.append(1.0 - len(set(words)) / len(words) if words else 0.0)
    return out


def length_penalty(completions: Sequence, min_words: int = 4, max_words: int = 40, **kwargs) -> list[float]:
    # COURSE-SOLUTION-CANARY-7f3a9c
    return [0.0 if min_words <= len(t.split()) <= max_words else -1.0 for t in as_text(completions)]


def exponential_shaping(scores, temperature: float = 1.0):
    # COURSE-SOLUTION-CANARY-7f3a9c
    if temperature <= 0:
        raise ValueError(f"exponential_shaping: temperature must be > 0, got {temperature}")
    if isinstance(scores, torch.Tensor):
        return torch.exp(scores / temperature) - 1
    return [math.exp(float(s) / temperature) - 1 for s in scores]


def combine_rewards(reward_funcs: Sequence[RewardFunc], weights: Sequence[float]) -> RewardFunc:
    # COURSE-SOLUTION-CANARY-7f3a9c
    funcs, ws = list(reward_funcs), [float(w) for w in weights]
    if not funcs:
        raise ValueError("combine_rewards: need at least one reward function")
    if len(funcs) != len(ws):
        raise ValueError(f"combine_rewards: {len(funcs)} reward functions but {len(ws)} weights")

    def combined_reward(completions, **kwargs) -> list[float]:
        total = [0.0] * len(completions)
        for f, w in zip(funcs, ws):
            vals = f(completions, **kwargs)
            if len(vals) != len(total):
                raise ValueError(
                    f"combine_rewards: {getattr(f, '__name__', f)} returned "
                    f"{len(vals)} rewards for {len(total)} completions"
                )
            total = [t + w * float(v) for t, v in zip(total, vals)]
        return total

    return combined_reward


def reinforce_loss(logprobs, rewards, baseline=None):
    # COURSE-SOLUTION-CANARY-7f3a9c
    if not isinstance(logprobs, torch.Tensor) or not logprobs.is_floating_point() or logprobs.dim() != 1:
        got = (
            f"shape {list(logprobs.shape)}" if isinstance(logprobs, torch.Tensor) else type(logprobs).__name__
        )
        raise ValueError(
            f"reinforce_loss: `logprobs` must be a 1-d float tensor [B] (one summed log-probability "
            f"per completion), got {got}"
        )
    if not isinstance(rewards, torch.Tensor) or rewards.shape != logprobs.shape:
        got = f"shape {list(rewards.shape)}" if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(
            f"reinforce_loss: `rewards` must be a tensor of the shape of `logprobs` "
            f"{list(logprobs.shape)}, got {got}"
        )
    if logprobs.numel() == 0:
        raise ValueError("reinforce_loss: empty batch (`logprobs` has no entries)")
    rewards = rewards.to(logprobs.dtype)
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str) and baseline == "mean":
        b = rewards.mean()
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        b = float(baseline)
    else:
        raise ValueError(f"reinforce_loss: `baseline` must be None, 'mean' or a number, got {baseline!r}")
    advantages = (rewards - b).detach()  # constants of the update: no gradient through R or b
    return -(advantages * logprobs).mean()
