"""Solutions for unit 10 — RL with a tool, over several turns."""

from __future__ import annotations

import re

import torch

from course_lib.core.utils import check_ndim
from course_lib.tools import TOOL_CLOSE, TOOL_OPEN, MalformedToolCall

_TERM = re.compile(r"[0-9]+")


def parse_tool_call(text: str) -> list[int] | None:
    # COURSE-SOLUTION-CANARY-7f3a9c
    if not isinstance(text, str):
        raise TypeError(f"parse_tool_call: text must be a str, got {type(text).__name__}")
    start = text.find(TOOL_OPEN)
    if start < 0:
        return None
    start += len(TOOL_OPEN)
    end = text.find(TOOL_CLOSE, start)
    if end < 0:
        raise MalformedToolCall(f"parse_tool_call: no {TOOL_CLOSE} after {TOOL_OPEN} in {text!r}")
    call = text[start:end]
    if not call.strip():
        raise MalformedToolCall(f"parse_tool_call: empty call {TOOL_OPEN}{call}{TOOL_CLOSE}")
    terms = [t.strip() for t in call.split("+")]
    for i, term in enumerate(terms):
        if not _TERM.fullmatch(term):
            what = "is empty" if not term else "is not a string of digits 0-9"
            raise MalformedToolCall(f"parse_tool_call: term {i} ({term!r}) of the call {call!r} {what}")
    return [int(t) for t in terms]


def environment_mask(completion_mask: torch.Tensor, env_spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    # COURSE-SOLUTION-CANARY-7f3a9c
    name = "environment_mask"
    check_ndim(name, "completion_mask", completion_mask, 2, "[B, T]")
    B, T = completion_mask.shape
    if len(env_spans) != B:
        raise ValueError(f"{name}: env_spans has {len(env_spans)} rows, completion_mask{[B, T]} has B = {B}")
    out = completion_mask.clone()
    for row, spans in enumerate(env_spans):
        for start, end in spans:
            if start < 0 or end > T or start > end:
                raise ValueError(
                    f"{name}: span ({start}, {end}) of row {row} is not a range of positions 0 <= start "
                    f"<= end <= T = {T}"
                )
            out[row, start:end] = 0
    return out


def tool_reward(
    completion: str,
    answer,
    n_malformed: int,
    over_budget: bool,
    malformed_penalty: float = 0.5,
    budget_penalty: float = 1.0,
) -> float:
    # COURSE-SOLUTION-CANARY-7f3a9c
    from course_lib import rlvr

    if n_malformed < 0:
        raise ValueError(f"tool_reward: n_malformed must be >= 0, got {n_malformed}")
    if malformed_penalty < 0 or budget_penalty < 0:
        raise ValueError(
            f"tool_reward: penalties must be >= 0, got malformed_penalty={malformed_penalty}, "
            f"budget_penalty={budget_penalty}"
        )
    reward = rlvr.answer_reward(completion, answer) - malformed_penalty * n_malformed
    if over_budget:
        reward -= budget_penalty
    return float(reward)
