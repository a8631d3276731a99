"""Unit 01 — reward functions (notebook 01_reward_functions).

Every reward function has TRL's signature ``f(completions, **kwargs) -> list[float]``, so it
plugs into ``trl.GRPOTrainer(reward_funcs=[...])`` unchanged: `completions` is a list of strings
(or of chat messages, see :func:`as_text`), extra dataset columns such as `answer` arrive as
keyword arguments (one value per completion), and unknown keyword arguments must be ignored.
Exercise 1.8 (:func:`reinforce_loss`) turns such rewards into a policy-gradient loss.

Exercises 1.1–1.8: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import math  # noqa: F401  (you may need these)
import re  # noqa: F401
from collections.abc import Callable, Sequence

import torch  # noqa: F401

RewardFunc = Callable[..., list]

FORMAT_PATTERN = r"Question: [^\n]*\S[^\n]*\nAnswer: [^\n]*\S[^\n]*"
"""The target format: a non-empty question line, a newline, a non-empty answer line, nothing else
(leading/trailing whitespace of the whole completion is ignored)."""


def as_text(completions: Sequence) -> list[str]:
    """Provided: TRL passes plain strings, or for chat data a list of messages per completion
    (``[{"role": "assistant", "content": "..."}]``). Return the plain text of each."""
    out = []
    for c in completions:
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, (list, tuple)) and all(isinstance(m, dict) for m in c):
            out.append("".join(str(m.get("content", "")) for m in c))
        else:
            raise TypeError(
                f"rewards: a completion must be a str or a list of chat messages, got {type(c).__name__}"
            )
    return out


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """Exercise 1.1: +1.0 if a completion follows the "Question: …\\nAnswer: …" format, else -1.0.

    Strip leading/trailing whitespace, then the *whole* completion must match
    :data:`FORMAT_PATTERN` (``re.fullmatch``): a completion that rambles on after the answer line
    is not in the format.
    """
    raise NotImplementedError(
        "Exercise 1.1 (notebook 01_reward_functions): implement `format_reward` in course_lib/rewards.py"
    )


def correctness_reward(completions: Sequence, answer: Sequence, **kwargs) -> list[float]:
    """Exercise 1.2: 1.0 if the *last* integer in the completion equals the answer, else 0.0.

    `answer` holds one entry per completion (an int, or a string whose last integer is the
    answer, e.g. ``"68"`` or GSM8K's ``"... #### 68"``). Every comma is deleted from the
    completion and from a string answer before integers are matched with ``-?\\d+``, so the
    thousands separator in ``"1,000"`` reads as 1000 (and ``"3,4"`` as 34). A completion with no
    integer gets 0.0. Lengths must agree (ValueError otherwise).
    """
    raise NotImplementedError(
        "Exercise 1.2 (notebook 01_reward_functions): implement `correctness_reward` in course_lib/rewards.py"
    )


def sentiment_reward(completions: Sequence, **kwargs) -> list[float]:
    """Exercise 1.3: the positive-sentiment probability of each completion, in [0, 1].

    Use the provided scorer: ``course_lib.core.sentiment.get_scorer().positive_probability(texts)``
    (VADER offline in the tiny profile, a DistilBERT classifier in the gpu profile).
    """
    raise NotImplementedError(
        "Exercise 1.3 (notebook 01_reward_functions): implement `sentiment_reward` in course_lib/rewards.py"
    )


def repetition_penalty(completions: Sequence, **kwargs) -> list[float]:
    """Exercise 1.4: ``1 - unique / total`` over the whitespace-separated, lower-cased words.

    0.0 for text without repeats, close to 1 for "great great great …"; 0.0 for an empty
    completion. It is a *penalty*: combine it with a negative weight.
    """
    raise NotImplementedError(
        "Exercise 1.4 (notebook 01_reward_functions): implement `repetition_penalty` in course_lib/rewards.py"
    )


def length_penalty(completions: Sequence, min_words: int = 4, max_words: int = 40, **kwargs) -> list[float]:
    """Exercise 1.5: 0.0 if ``min_words <= number of whitespace words <= max_words``, else -1.0."""
    raise NotImplementedError(
        "Exercise 1.5 (notebook 01_reward_functions): implement `length_penalty` in course_lib/rewards.py"
    )


def exponential_shaping(scores, temperature: float = 1.0):
    """Exercise 1.6: ``exp(score / temperature) - 1`` element-wise.

    `scores` is a list of floats (returns a list of floats) or a tensor (returns a tensor of the
    same shape). A temperature <= 0 raises ValueError. Shaping keeps the order of rewards but
    stretches the gaps between high scores: smaller temperature, steeper curve.
    """
    raise NotImplementedError(
        "Exercise 1.6 (notebook 01_reward_functions): implement `exponential_shaping` in course_lib/rewards.py"
    )


def combine_rewards(reward_funcs: Sequence[RewardFunc], weights: Sequence[float]) -> RewardFunc:
    """Exercise 1.7: a new reward function ``R = sum_i w_i * f_i(completions, **kwargs)``.

    E.g. ``combine_rewards([sentiment_reward, repetition_penalty, length_penalty],
    [1.0, -0.5, 0.1])``. The returned function has the same TRL signature and passes every
    keyword argument through to each component. Different numbers of functions and weights, or
    no functions at all, raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 1.7 (notebook 01_reward_functions): implement `combine_rewards` in course_lib/rewards.py"
    )


def reinforce_loss(logprobs, rewards, baseline=None):
    """Exercise 1.8: the REINFORCE (policy-gradient) loss ``-mean_i(A_i * logprobs_i)``, a scalar.

    `logprobs` [B]: the log-probability of each sampled completion under the policy (the SUM of
    its token log-probabilities), carrying the gradient. `rewards` [B]: the reward of each.
    The advantages are ``A = rewards - b`` with the baseline b: ``None`` -> 0, ``"mean"`` -> the
    mean of `rewards` over the batch, a number -> that constant. The advantages are constants
    of the update: no gradient flows through `rewards` or the baseline, only through `logprobs`.
    The loss is the MEAN over the batch (not the sum), so its gradient w.r.t. ``logprobs_i`` is
    ``-A_i / B``. `logprobs` not 1-d, `rewards` of another shape, an empty batch or an unknown
    baseline raise ValueError naming the argument.
    """
    raise NotImplementedError(
        "Exercise 1.8 (notebook 01_reward_functions): implement `reinforce_loss` in course_lib/rewards.py"
    )
