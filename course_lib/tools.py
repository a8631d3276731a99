"""Unit 10 — RL with a tool, over several turns (notebook 10_tool_use).

The policy solves sums with a calculator it may call. It writes a call with a fixed syntax,
``<tool>12+47</tool>``; the *environment* (not the model) parses it, computes the sum and
appends ``<result>59</result>``; then the model goes on. The final answer goes in unit 09's
``<answer>59</answer>`` block, so exercise 9.2 (``rlvr.answer_reward``) scores it.

A *turn* is one model generation: it ends at ``</tool>`` (the environment answers and the next
turn starts) or at EOS / ``</answer>`` / the token budget (the episode is over). ``max_turns``
bounds the model turns of an episode; a model still calling the tool in its last turn is *over
budget*. The update is GRPO (unit 06) on whole episodes, with three changes that make it
multi-turn:

* the environment parses each call (10.1) -- a call it cannot read is *malformed* and gets
  ``<result>error</result>`` instead of a number;
* the loss covers only the tokens the model wrote: the environment's result tokens are masked
  out of the completion mask (10.2) -- the model did not sample them, so there is no
  log-probability of *its* action there to push up or down;
* the reward is 9.2's answer reward minus penalties for malformed calls and for running over
  the turn budget (10.3).

Conventions: per-token tensors are [B, T] over the episode's tokens after the prompt (model and
environment tokens alike, one row per episode), ``completion_mask`` is 1 on those tokens and 0
on padding; an environment span ``(start, end)`` is a range of token positions in that row,
start inclusive, end exclusive.

Exercises 10.1–10.3: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import re  # noqa: F401  (you may need these)

import torch

from course_lib import rlvr  # noqa: F401  (10.3 calls rlvr.answer_reward, your exercise 9.2)

TOOL_OPEN, TOOL_CLOSE = "<tool>", "</tool>"
RESULT_OPEN, RESULT_CLOSE = "<result>", "</result>"


class MalformedToolCall(ValueError):
    """A ``<tool>`` call the environment cannot compute (10.1); the message says what is wrong."""


def parse_tool_call(text: str) -> list[int] | None:
    """Exercise 10.1: the terms of the FIRST tool call in one turn's text.

    No ``<tool>`` in `text`: return None (the model did not call the tool). Otherwise the call is
    the text between the first ``<tool>`` and the first ``</tool>`` after it, a sum of terms
    separated by ``+``. Each term, stripped of surrounding whitespace, must be a non-empty
    string of ASCII digits ``[0-9]+`` (leading zeros allowed: ``"007"`` is 7). Return the terms
    as ints, in order: ``"a <tool>12 + 47</tool> b"`` -> ``[12, 47]``.

    Raise :class:`MalformedToolCall` (a ValueError) with a message saying what is wrong when there
    is no ``</tool>`` after the ``<tool>``, the call is empty, or a term is not digits (an empty
    term as in ``"1++2"``, a sign, a letter, a decimal point...).
    """
    raise NotImplementedError(
        "Exercise 10.1 (notebook 10_tool_use): implement `parse_tool_call` in course_lib/tools.py"
    )


def environment_mask(completion_mask: torch.Tensor, env_spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Exercise 10.2: the loss mask of a multi-turn rollout -- only the tokens the model wrote.

    `completion_mask` [B, T] (1 on the episode's tokens after the prompt, 0 on padding; any
    integer or float dtype), `env_spans` one list per row of ``(start, end)`` spans: the token
    positions the environment appended (start inclusive, end exclusive). Returns a NEW tensor of
    the same shape, dtype and device: `completion_mask` with every position of every span set to
    0. `completion_mask` is not modified. An empty span (``start == end``) changes nothing.

    `completion_mask` not 2-D, ``len(env_spans) != B``, or a span with ``start < 0``,
    ``end > T`` or ``start > end`` raise ValueError (name the row and the span).
    """
    raise NotImplementedError(
        "Exercise 10.2 (notebook 10_tool_use): implement `environment_mask` in course_lib/tools.py"
    )


def tool_reward(
    completion: str,
    answer,
    n_malformed: int,
    over_budget: bool,
    malformed_penalty: float = 0.5,
    budget_penalty: float = 1.0,
) -> float:
    """Exercise 10.3: the reward of one episode.

    ``rlvr.answer_reward(completion, answer)`` (call your exercise 9.2 through the module, do not
    rewrite it) minus ``malformed_penalty * n_malformed`` minus ``budget_penalty`` if
    `over_budget`. `completion` is the whole episode's text after the prompt, the environment's
    ``<result>`` blocks included; `n_malformed` the number of calls the environment could not
    parse; `over_budget` True when the model still called the tool in its last allowed turn.
    Returns a Python float (1.0 at best, negative possible).

    ``n_malformed < 0`` or a negative penalty raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 10.3 (notebook 10_tool_use): implement `tool_reward` in course_lib/tools.py"
    )
