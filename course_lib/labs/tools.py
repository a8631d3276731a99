"""Unit 10's tool-use task: sums of three 3-digit numbers, with a calculator the model may call.

A problem adds :data:`N_TERMS` numbers drawn from :data:`TERM_RANGE` ("What is 123+456+789?"),
sums that unit 09's scratchpad model gets wrong. The model may call a calculator with a fixed
syntax: it writes ``<tool>123+456+789</tool>``, the environment appends ``<result>1368</result>``
(tokens the model did not write), and the model goes on; it answers in unit 09's answer block::

     <tool>123+456+789</tool> <result>1368</result> <answer>1368</answer>   # a call, then the answer
     <answer>1351</answer>                                                  # a guess

``course build-tiny --tools`` pretrains ``assets/tiny_tool`` on documents of several styles
(:func:`pretraining_documents`): most answer with a *guess* (right :data:`GUESS_RIGHT` of the
time), some call the tool once (``tool``) or twice, summing pairwise (``tool_chain``), a few
write a malformed call (``bad_tool``: the environment answers ``<result>error</result>``) and
then guess; a share of the documents, under a prompt that says the Assistant must call
(:data:`FORCED_PROMPT`), always calls, so that the model learns to copy numbers into a call.
From the task's prompt the start model calls the tool on a quarter of the episodes and is then
right 78 % of the time; its guesses are almost never right (held-out accuracy 0.20 on 256
problems, ``assets/tiny_tool/build_info.json``): RL (unit 10) has to find that calling pays.

One episode = up to ``max_turns`` model turns. A turn is one model generation that ends at
``</tool>`` (the environment answers, :func:`environment_reply`, and the next turn starts) or at
EOS / ``</answer>`` / the token budget (the episode is over). :func:`rollout` samples a batch of
episodes together with one KV cache; the environment's tokens are fed in like sampled ones and
their positions recorded (``env_spans``: what exercise 10.2 masks out of the loss).

Held-out problems never occur in training or pretraining: :func:`is_heldout` (the hash of
unit 09's :func:`course_lib.labs.reasoning.is_heldout`) reserves about 20 % of all problems.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_lib.core import sampling
from course_lib.core.config import ASSET_DIR
from course_lib.labs import reasoning

TINY_TOOL_DIR = ASSET_DIR.parent / "tiny_tool"  # the model unit 10 starts from (tiny profile)

TOOL_PROMPT = (
    "The Assistant may call a calculator, <tool>2+3</tool> gives <result>5</result>, and answers "
    "in <answer> </answer>.\nUser: {question}\nAssistant:"
)
FORCED_PROMPT = TOOL_PROMPT.replace("may call", "must call")  # pretraining only (FORCED_FRACTION)
TOOL_OPEN, TOOL_CLOSE = "<tool>", "</tool>"
RESULT_OPEN, RESULT_CLOSE = "<result>", "</result>"
ANSWER_CLOSE = "</answer>"
ERROR_RESULT = "error"  # what the environment returns for a malformed call
N_TERMS = 3  # terms per problem
TERM_RANGE = (100, 999)  # each term uniform in this range (inclusive): three digits
MAX_TURNS = 3  # model turns per episode (the default turn budget)
GUESS_RIGHT = 0.1  # pretraining: how often an answer written without the tool is right
STYLES = ("tool", "tool_chain", "direct", "bad_tool", "no_tags")
# Pretraining mix (fractions of the documents with the task's prompt): about a fifth call the
# tool (and are then right), most guess, a few write a call the calculator cannot read.
DEFAULT_MIX = {"tool": 0.15, "tool_chain": 0.05, "direct": 0.7, "bad_tool": 0.04, "no_tags": 0.06}
# Copying the three numbers into a call and the result into the answer is what the start model
# must be able to do for a call to pay; a fifth of the documents is too few examples to learn
# it. So a share of the documents uses FORCED_PROMPT, a prompt of the same length in tokens that
# says the Assistant *must* call, always followed by a call: the model learns the copying there
# (at the same positions as under TOOL_PROMPT) without calling more often under TOOL_PROMPT.
FORCED_FRACTION = 0.4
FORCED_MIX = {"tool": 0.8, "tool_chain": 0.2}


# --------------------------------------------------------------------------- problems
def is_heldout(numbers: Sequence[int]) -> bool:
    """True for the ~20 % of problems reserved for evaluation (unit 09's fixed hash)."""
    return reasoning.is_heldout(numbers)


def question(numbers: Sequence[int]) -> str:
    return "What is " + "+".join(str(x) for x in numbers) + "?"


def prompt(numbers: Sequence[int], template: str = TOOL_PROMPT) -> str:
    """The prompt (ends with "Assistant:"; the completion starts with a space)."""
    return template.format(question=question(numbers))


def make_problems(split: str = "train", n: int = 256, seed: int = 0, n_terms: int = N_TERMS) -> list[dict]:
    """`n` distinct problems of the split ("train" or "heldout"): dicts with ``prompt``,
    ``answer`` (str) and ``numbers``; the same (split, n, seed, n_terms) gives the same list."""
    if split not in ("train", "heldout"):
        raise ValueError(f"make_problems: split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"tools-{split}-{seed}-{n_terms}")
    seen: set[tuple[int, ...]] = set()
    out: list[dict] = []
    while len(out) < n:
        nums = tuple(rng.randint(*TERM_RANGE) for _ in range(n_terms))
        if nums in seen or is_heldout(nums) != (split == "heldout"):
            continue
        seen.add(nums)
        out.append({"prompt": prompt(nums), "answer": str(sum(nums)), "numbers": list(nums)})
    return out


# --------------------------------------------------------------------------- the environment
def environment_reply(terms: Sequence[int] | None) -> str:
    """The environment's answer to one call: `` <result>sum</result>``, or
    `` <result>error</result>`` for a call it could not read (`terms` None).

    The leading space, and the space the documents put before whatever follows the reply, keep
    the tokenizer from merging the reply's first and last characters with their neighbours
    (``><`` is one token when written together): the reply tokenized alone, as the environment
    appends it, is then exactly the tokens the model saw in pretraining."""
    value = ERROR_RESULT if terms is None else str(sum(terms))
    return f" {RESULT_OPEN}{value}{RESULT_CLOSE}"


def call_text(numbers: Sequence[int]) -> str:
    return TOOL_OPEN + "+".join(str(x) for x in numbers) + TOOL_CLOSE


# --------------------------------------------------------------------------- pretraining
def guess(numbers: Sequence[int], rng: random.Random, p_right: float = GUESS_RIGHT) -> int:
    """An answer written without the tool: the sum with probability `p_right`, else off by 1-30
    either way (never below 0)."""
    total = sum(numbers)
    if rng.random() < p_right:
        return total
    return total + rng.choice([d for d in range(-30, 31) if d and total + d >= 0])


def _bad_call(numbers: Sequence[int], rng: random.Random) -> str:
    """A call the calculator cannot read: a dangling '+', a word, or an '=' at the end."""
    kind = rng.randrange(3)
    if kind == 0:
        return TOOL_OPEN + "+".join(str(x) for x in numbers) + "+" + TOOL_CLOSE
    if kind == 1:
        return TOOL_OPEN + " plus ".join(str(x) for x in numbers) + TOOL_CLOSE
    return TOOL_OPEN + "+".join(str(x) for x in numbers) + "=" + TOOL_CLOSE


def completion(numbers: Sequence[int], style: str, rng: random.Random) -> str:
    """A completion of one of the :data:`STYLES` (with a leading space, as after "Assistant:").
    The tool styles answer what the tool returned; the others guess (:func:`guess`)."""
    total = sum(numbers)
    if style == "tool":
        return f" {call_text(numbers)}{environment_reply(numbers)} <answer>{total}</answer>"
    if style == "tool_chain":  # pairwise: a+b first, then that sum + c
        first = list(numbers[:2])
        second = [sum(first), *numbers[2:]]
        return (
            f" {call_text(first)}{environment_reply(first)}"
            f" {call_text(second)}{environment_reply(second)} <answer>{total}</answer>"
        )
    if style == "direct":
        return f" <answer>{guess(numbers, rng)}</answer>"
    if style == "bad_tool":
        return f" {_bad_call(numbers, rng)}{environment_reply(None)} <answer>{guess(numbers, rng)}</answer>"
    if style == "no_tags":
        return f" The sum is {guess(numbers, rng)}."
    raise ValueError(f"completion: style must be one of {STYLES}, got {style!r}")


def pretraining_documents(
    n_documents: int = 40_000,
    seed: int = 0,
    mix: dict[str, float] | None = None,
    forced_fraction: float = FORCED_FRACTION,
) -> list[str]:
    """Documents for ``assets/tiny_tool``: a `forced_fraction` under :data:`FORCED_PROMPT`
    (always a call: :data:`FORCED_MIX`), the rest under the task's :data:`TOOL_PROMPT` with a
    style drawn from `mix` (default :data:`DEFAULT_MIX`). Held-out problems never occur."""
    mix = mix or DEFAULT_MIX
    rng = random.Random(f"tools-pretrain-{seed}")
    docs: list[str] = []
    while len(docs) < n_documents:
        forced = rng.random() < forced_fraction
        table = FORCED_MIX if forced else mix
        nums = [rng.randint(*TERM_RANGE) for _ in range(N_TERMS)]
        if is_heldout(nums):
            continue
        style = rng.choices(list(table), [table[k] for k in table])[0]
        template = FORCED_PROMPT if forced else TOOL_PROMPT
        docs.append(prompt(nums, template) + completion(nums, style, rng))
    return docs


# --------------------------------------------------------------------------- multi-turn rollout
@dataclass
class Episodes:
    """A batch of multi-turn episodes (B = len(prompts) * num_samples, groups contiguous).

    `rollout` is an ordinary :class:`~course_lib.core.sampling.Rollout` over the whole episode:
    ``completion_ids`` [B, C] hold the model's and the environment's tokens in the order they
    were written, ``completion_mask`` [B, C] is 1 on all of them (0 on padding), so
    ``sampling.completion_logits`` scores an episode in one forward. ``env_spans[i]`` lists the
    (start, end) positions in the completion of the environment's replies in row i (start
    inclusive, end exclusive: exercise 10.2's input). Per row: ``turns`` (model turns),
    ``calls`` (tool calls, malformed ones included), ``malformed`` (calls the environment could
    not read), ``over_budget`` (still calling after the last of ``max_turns`` turns) and
    ``truncated`` (stopped by the token budget)."""

    rollout: sampling.Rollout
    env_spans: list[list[tuple[int, int]]]
    turns: list[int]
    calls: list[int]
    malformed: list[int]
    over_budget: list[bool]
    truncated: list[bool]
    answers: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """The episodes' text after the prompt (model and environment tokens)."""
        return self.rollout.texts

    def __len__(self) -> int:
        return len(self.rollout)


def _exercises():
    from course_lib import tools  # the exercise module: looked up when called (solutions switch)

    return tools


@torch.no_grad()
def rollout(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 64,
    max_turns: int = MAX_TURNS,
    num_samples: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    greedy: bool = False,
    parse_call: Callable[[str], list[int] | None] | None = None,
) -> Episodes:
    """Sample `num_samples` multi-turn episodes per prompt, all advancing together.

    One forward over the left-padded prompts fills the KV cache; then each step feeds one token
    per row: a sampled one while the model writes, the next token of the environment's reply
    while the environment answers (token in, token out: the reply is tokenized once and fed
    as is, never re-tokenized with the model's text). When a model turn's text contains
    ``</tool>`` the turn is over: `parse_call` (default: the exercise ``tools.parse_tool_call``,
    10.1, looked up when called) reads the call,
    the reply is :func:`environment_reply` of its terms (``error`` for a
    ``tools.MalformedToolCall`` or a ``</tool>`` without ``<tool>``), unless that was turn
    `max_turns`: then the episode ends, over budget. A turn that reaches EOS or ``</answer>``
    ends the episode; `max_new_tokens` bounds the episode's tokens, replies included.
    A token is sampled for every row at every step (and then ignored where the environment or
    padding writes), so the generator's draws do not depend on which rows called the tool."""
    if not prompts:
        raise ValueError("rollout: no prompts")
    if max_turns < 1:
        raise ValueError(f"rollout: max_turns must be >= 1, got {max_turns}")
    if temperature <= 0 and not greedy:
        raise ValueError("rollout: temperature must be > 0 (or pass greedy=True)")
    exercises = _exercises()
    parse = parse_call or exercises.parse_tool_call
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = [p for p in prompts for _ in range(num_samples)]
    ids, prompt_mask, pos, past, logits = sampling.prefill(model, tokenizer, rows, dev)
    attn = prompt_mask  # grows by one column per generated token
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    B = ids.shape[0]
    strings: dict[int, str] = {}  # token id -> its text (decoded once)
    pending: list[list[int]] = [[] for _ in range(B)]  # environment tokens still to feed
    turn_text = [""] * B
    done = [False] * B
    env_spans: list[list[tuple[int, int]]] = [[] for _ in range(B)]
    turns, calls, malformed = [0] * B, [0] * B, [0] * B
    over_budget, by_model_last = [False] * B, [False] * B
    tokens, masks = [], []
    next_pos = pos[:, -1:]
    for t in range(max_new_tokens):
        if greedy:
            sampled = logits.argmax(-1)
        else:
            probs = (logits.float() / temperature).softmax(-1)
            sampled = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        step = sampled.tolist()
        real = [not d for d in done]
        for i in range(B):
            if done[i]:
                step[i] = pad
            elif pending[i]:  # the environment writes
                step[i] = pending[i].pop(0)
                if not pending[i]:
                    env_spans[i][-1] = (env_spans[i][-1][0], t + 1)
            else:  # the model writes
                tok = step[i]
                if not by_model_last[i]:
                    turns[i] += 1
                by_model_last[i] = True
                if tok == eos:
                    done[i] = True
                    continue
                if tok not in strings:
                    strings[tok] = tokenizer.decode([tok])
                turn_text[i] += strings[tok]
                if ANSWER_CLOSE in turn_text[i]:
                    done[i] = True
                elif TOOL_CLOSE in turn_text[i]:
                    calls[i] += 1
                    try:
                        terms = parse(turn_text[i])
                    except exercises.MalformedToolCall:
                        terms = None
                    if terms is None:
                        malformed[i] += 1
                    if turns[i] >= max_turns:  # no turn left to read a result in
                        over_budget[i], done[i] = True, True
                        continue
                    pending[i] = tokenizer(environment_reply(terms), add_special_tokens=False)["input_ids"]
                    env_spans[i].append((t + 1, t + 1))  # the reply starts at the next position
                    turn_text[i], by_model_last[i] = "", False
        nxt = torch.tensor(step, device=dev)
        tokens.append(nxt)
        masks.append(torch.tensor(real, device=dev))
        if all(done):
            break
        attn = torch.cat([attn, masks[-1].long().unsqueeze(-1)], dim=1)
        next_pos = next_pos + 1
        out = model(
            input_ids=nxt.unsqueeze(-1),
            attention_mask=attn,
            position_ids=next_pos,
            past_key_values=past,
            use_cache=True,
        )
        past, logits = out.past_key_values, out.logits[:, -1]
    comp = torch.stack(tokens, 1)
    cmask = torch.stack(masks, 1).long()
    # a reply cut off by the token budget: its span ends where the episode does
    C = comp.shape[1]
    env_spans = [[(s, min(e if e > s else C, C)) for s, e in spans] for spans in env_spans]
    texts = tokenizer.batch_decode(comp.masked_fill(cmask == 0, pad), skip_special_tokens=True)
    if was_training:
        model.train()
    ro = sampling.Rollout(
        prompts=rows,
        texts=texts,
        prompt_ids=ids,
        prompt_mask=prompt_mask,
        completion_ids=comp,
        completion_mask=cmask,
    )
    return Episodes(
        rollout=ro,
        env_spans=env_spans,
        turns=turns,
        calls=calls,
        malformed=malformed,
        over_budget=over_budget,
        truncated=[not d for d in done],
    )


# --------------------------------------------------------------------------- evaluation
def episode_metrics(episodes: Episodes, answers: Sequence[str]) -> dict:
    """Per-batch rates of a set of episodes: ``accuracy`` (exercise 9.2's answer reward of the
    episode's text), ``tool_call_rate`` (episodes with at least one call), ``malformed_rate``
    (episodes with at least one malformed call), ``turns_per_episode``, ``over_budget_rate``,
    ``truncated_rate``, ``response_length`` (tokens, replies included), and the accuracy of the
    episodes that called the tool / did not (NaN where there are none)."""
    from course_lib import rlvr

    n = max(1, len(episodes))
    correct = [float(rlvr.answer_reward(t, str(a))) for t, a in zip(episodes.texts, answers)]
    called = [c > 0 for c in episodes.calls]

    def acc(sel: list[bool]) -> float:
        k = sum(sel)
        return sum(c for c, s in zip(correct, sel) if s) / k if k else float("nan")

    return {
        "accuracy": sum(correct) / n,
        "tool_call_rate": sum(called) / n,
        "malformed_rate": sum(m > 0 for m in episodes.malformed) / n,
        "turns_per_episode": sum(episodes.turns) / n,
        "over_budget_rate": sum(episodes.over_budget) / n,
        "truncated_rate": sum(episodes.truncated) / n,
        "response_length": float(episodes.rollout.completion_mask.sum()) / n,
        "accuracy_with_tool": acc(called),
        "accuracy_without_tool": acc([not c for c in called]),
        "correct": correct,
    }


def evaluate(
    model,
    tokenizer,
    problems: Sequence[dict],
    max_new_tokens: int = 64,
    max_turns: int = MAX_TURNS,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> dict:
    """One episode per problem (:func:`rollout`): the rates of :func:`episode_metrics` and the
    ``samples`` (prompt, response, answer, correct, calls, malformed)."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    sums: dict[str, float] = {}
    samples: list[dict] = []
    keys = (
        "accuracy",
        "tool_call_rate",
        "malformed_rate",
        "turns_per_episode",
        "over_budget_rate",
        "truncated_rate",
        "response_length",
    )
    for i in range(0, len(problems), batch_size):
        chunk = list(problems[i : i + batch_size])
        ep = rollout(
            model,
            tokenizer,
            [p["prompt"] for p in chunk],
            max_new_tokens=max_new_tokens,
            max_turns=max_turns,
            temperature=temperature,
            generator=gen,
        )
        answers = [str(p["answer"]) for p in chunk]
        m = episode_metrics(ep, answers)
        for k in keys:
            sums[k] = sums.get(k, 0.0) + m[k] * len(chunk)
        samples += [
            {"prompt": p["prompt"], "response": t, "answer": a, "correct": c, "calls": k, "malformed": b}
            for p, t, a, c, k, b in zip(chunk, ep.texts, answers, m["correct"], ep.calls, ep.malformed)
        ]
    n = max(1, len(problems))
    res: dict[str, Any] = {k: sums.get(k, 0.0) / n for k in keys}
    called = [s for s in samples if s["calls"]]
    rest = [s for s in samples if not s["calls"]]
    res["accuracy_with_tool"] = sum(s["correct"] for s in called) / len(called) if called else float("nan")
    res["accuracy_without_tool"] = sum(s["correct"] for s in rest) / len(rest) if rest else float("nan")
    res["samples"] = samples
    return res


START_MODEL_MISSING = (
    "unit 10's start model (course_lib/assets/tiny_tool) is missing from this installation (it "
    "ships with the course; reinstall it, or the instructor rebuilds it with `course build-tiny "
    "--tools`). This run falls back to the general tiny model, which has never seen the task: "
    "expect no tool calls and numbers that do not match the text. Exercises 10.1-10.3 and their "
    "checks do not need the model."
)


def start_model_shipped() -> bool:
    """Whether ``assets/tiny_tool`` (unit 10's tiny-profile start model) exists."""
    return (TINY_TOOL_DIR / "config.json").is_file()


def load_start_model(path: str | Path | None = None, profile=None):
    """(model, tokenizer) unit 10 starts from: `path`, else ``assets/tiny_tool`` on the tiny
    profile, else the gpu profile's ``extra["tool_model"]`` (a small instruct model).

    If ``assets/tiny_tool`` is missing (a damaged install), the tiny profile falls back to the
    general tiny model and says so loudly (:data:`START_MODEL_MISSING`)."""
    import warnings

    from course_lib.core.config import get_profile
    from course_lib.core.models import load_policy

    profile = profile or get_profile()
    if path is None:
        if profile.name != "tiny":
            path = profile.extra.get("tool_model", profile.policy_model)
        elif start_model_shipped():
            path = TINY_TOOL_DIR
        else:
            warnings.warn(START_MODEL_MISSING, stacklevel=2)
            print("NOTE: " + START_MODEL_MISSING)
            path = profile.policy_model
    return load_policy(path, profile=profile)
