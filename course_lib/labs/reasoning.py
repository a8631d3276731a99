"""Unit 09's reasoning task: chained additions with an R1-zero prompt, generated deterministically.

A problem adds ``TRAIN_TERMS`` one-digit numbers ("What is 7+8+5+9?"). The answer is reachable
in two ways, and the start model is much better at one of them:

* with a **scratchpad** of running sums inside ``<think>`` -- ``<think>7+8=15, 15+5=20,
  20+9=29</think><answer>29</answer>`` -- each step adds one digit to the sum so far;
* **directly** -- ``<think>I add them in my head.</think><answer>29</answer>`` -- in the
  pretraining text such answers are *guesses* (:func:`guess`: right :data:`GUESS_RIGHT` of the
  time), as written by someone who did not work it out.

``course build-tiny --reasoning`` pretrains ``assets/tiny_reason`` on a mix of both styles plus
badly formatted answers (:func:`pretraining_documents`), so that from the R1-zero prompt the
model sometimes writes a scratchpad, more often guesses, sometimes breaks the format: correct
answers are *reachable* but rare. RL with a verifiable reward (unit 09) has to find the
scratchpad -- and the responses get longer as it does.

Held-out problems never occur in training or pretraining: a problem belongs to the held-out
split iff :func:`is_heldout` (a fixed hash of its numbers) says so, whatever the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from course_lib.core.config import ASSET_DIR

TINY_REASON_DIR = ASSET_DIR.parent / "tiny_reason"  # the model unit 09 starts from (tiny profile)

R1_ZERO_PROMPT = (
    "A conversation between User and Assistant. The Assistant thinks in <think> </think>, "
    "then answers in <answer> </answer>.\nUser: {question}\nAssistant:"
)
DIRECT_THOUGHT = "I add them in my head."
TRAIN_TERMS = (4,)  # terms per problem in training and held-out problems
TERM_RANGE = (1, 9)  # each term is drawn uniformly from this range (inclusive)
GUESS_RIGHT = 0.15  # pretraining: how often an answer written without a scratchpad is right
STYLES = ("scratchpad", "direct", "no_tags", "no_answer_tags", "no_think")
# Pretraining mix (fractions of question documents): correct answers are reachable (scratchpad)
# but rare; every style but the scratchpads answers with a guess.
DEFAULT_MIX = {"scratchpad": 0.35, "direct": 0.35, "no_tags": 0.1, "no_answer_tags": 0.1, "no_think": 0.1}


# --------------------------------------------------------------------------- problems
def is_heldout(numbers: Sequence[int]) -> bool:
    """True for the ~20 % of problems reserved for evaluation (a fixed hash of the numbers)."""
    h = 0
    for x in numbers:
        h = (h * 1_000_003 + int(x)) % 2_147_483_647
    return h % 5 == 0


def question(numbers: Sequence[int]) -> str:
    return "What is " + "+".join(str(x) for x in numbers) + "?"


def prompt(numbers: Sequence[int], template: str = R1_ZERO_PROMPT) -> str:
    """The R1-zero-style prompt (ends with "Assistant:"; the completion starts with ``<think>``)."""
    return template.format(question=question(numbers))


def make_problems(
    split: str = "train", n: int = 256, seed: int = 0, n_terms: Sequence[int] = TRAIN_TERMS
) -> list[dict]:
    """`n` distinct problems of the split ("train" or "heldout"): dicts with ``prompt``,
    ``answer`` (str), ``numbers`` and ``n_terms``; the same (split, n, seed, n_terms) gives the
    same list."""
    if split not in ("train", "heldout"):
        raise ValueError(f"make_problems: split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"reasoning-{split}-{seed}")
    seen: set[tuple[int, ...]] = set()
    out: list = []
    while len(out) < n:
        k = rng.choice(list(n_terms))
        nums = tuple(rng.randint(*TERM_RANGE) for _ in range(k))
        if nums in seen or is_heldout(nums) != (split == "heldout"):
            continue
        seen.add(nums)
        out.append({"prompt": prompt(nums), "answer": str(sum(nums)), "numbers": list(nums), "n_terms": k})
    return out


def gsm8k_problems(split: str = "train", n: int | None = 256, profile=None) -> list[dict]:
    """The gpu profile's version of the task: GSM8K (the profile's ``arithmetic`` dataset, a hub
    name or a local stand-in) in the same R1-zero prompt; ``answer`` = the number after "####"."""
    from course_lib.core import data
    from course_lib.core.config import get_profile

    profile = profile or get_profile()
    src = profile.datasets["arithmetic"]
    if src == "synthetic":
        raise ValueError("gsm8k_problems: the tiny profile has no GSM8K; use make_problems (task 'addition')")
    ds = data._hub(src, split, n)
    return [
        {
            "prompt": R1_ZERO_PROMPT.format(question=ex["question"]),
            "answer": data.gsm8k_final_answer(ex["answer"]),
        }
        for ex in ds
    ]


# --------------------------------------------------------------------------- completions
def scratchpad(numbers: Sequence[int]) -> str:
    """Running sums: ``7+8=15, 15+5=20, 20+9=29``."""
    total, steps = numbers[0], []
    for x in numbers[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    return ", ".join(steps)


def guess(numbers: Sequence[int], rng: random.Random, p_right: float = GUESS_RIGHT) -> int:
    """An answer written without working: the sum with probability `p_right`, else the sum off by
    1-9 either way (never below 0)."""
    total = sum(numbers)
    if rng.random() < p_right:
        return total
    return total + rng.choice([d for d in range(-9, 10) if d and total + d >= 0])


def completion(numbers: Sequence[int], style: str = "scratchpad", answer: int | None = None) -> str:
    """A completion of one of the :data:`STYLES` (with a leading space, as after "Assistant:"),
    answering `answer` (default: the true sum; the scratchpad style always writes the true sum)."""
    ans = sum(numbers) if answer is None or style == "scratchpad" else answer
    if style == "scratchpad":
        return f" <think>{scratchpad(numbers)}</think><answer>{ans}</answer>"
    if style == "direct":
        return f" <think>{DIRECT_THOUGHT}</think><answer>{ans}</answer>"
    if style == "no_tags":
        return f" The sum is {ans}."
    if style == "no_answer_tags":
        return f" <think>{scratchpad(numbers)}</think> The answer is {ans}."
    if style == "no_think":
        return f" <answer>{ans}</answer>"
    raise ValueError(f"completion: style must be one of {STYLES}, got {style!r}")


def drill_document(rng: random.Random, chains: int = 4) -> str:
    """Practice without a question: `chains` scratchpads of 2-5 numbers, one per line (the
    skill the scratchpad needs, in the scratchpad's own notation)."""
    lines: list[str] = []
    while len(lines) < chains:
        nums = [rng.randint(*TERM_RANGE) for _ in range(rng.randint(2, 5))]
        if not is_heldout(nums):
            lines.append(scratchpad(nums))
    return "\n".join(lines)


def pretraining_documents(
    n_documents: int = 40_000,
    seed: int = 0,
    mix: dict[str, float] | None = None,
    n_terms: Sequence[int] = (3, 4, 5),
    drill_fraction: float = 0.25,
) -> list[str]:
    """Documents for ``assets/tiny_reason``: a `drill_fraction` of :func:`drill_document` (the
    addition skill), the rest prompt + completion with a style drawn from `mix` (default
    :data:`DEFAULT_MIX`: correct answers reachable but rare). Held-out problems never occur."""
    mix = mix or DEFAULT_MIX
    styles, weights = list(mix), [mix[s] for s in mix]
    rng = random.Random(f"reasoning-pretrain-{seed}")
    docs: list[str] = []
    while len(docs) < n_documents:
        if rng.random() < drill_fraction:
            docs.append(drill_document(rng))
            continue
        nums = [rng.randint(*TERM_RANGE) for _ in range(rng.choice(list(n_terms)))]
        if is_heldout(nums):
            continue
        style = rng.choices(styles, weights)[0]
        answer = None if style in ("scratchpad", "no_answer_tags") else guess(nums, rng)
        docs.append(prompt(nums) + completion(nums, style, answer))
    return docs


# --------------------------------------------------------------------------- evaluation
def _rewards():
    from course_lib import rlvr  # the exercise module: looked up when called (solutions switch)

    return rlvr.think_format_reward, rlvr.answer_reward


def score(completions: Sequence[str], answers: Sequence[str]) -> dict[str, list[float]]:
    """Per completion: ``format`` (exercise 9.1) and ``correct`` (exercise 9.2)."""
    fmt, ans = _rewards()
    return {
        "format": [float(fmt(c)) for c in completions],
        "correct": [float(ans(c, a)) for c, a in zip(completions, answers)],
    }


def uses_scratchpad(text: str) -> bool:
    """Whether a completion's think block contains at least one ``a+b=c`` step."""
    import re

    m = re.search(r"<think>(.*?)</think>", text, re.S)
    return bool(m and re.search(r"\d+\+\d+=\d+", m.group(1)))


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    problems: Sequence[dict],
    max_new_tokens: int = 64,
    seed: int = 0,
    temperature: float = 1.0,
    greedy: bool = False,
    batch_size: int = 64,
    prefix: str | Callable[[dict], str] = "",
) -> dict:
    """One sample per problem: ``accuracy`` (mean answer reward), ``format_rate``,
    ``response_length`` (mean completion tokens, EOS included), ``truncated_rate`` (the fraction
    cut off at `max_new_tokens` before EOS), ``scratchpad_rate``, and the
    ``samples`` (prompt, response, answer, correct, format). `prefix` (a string, or a function of
    the problem) is appended to every prompt and counted as part of the response (it forces the
    start of a style)."""
    from course_lib.core import sampling

    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    pre = [prefix(p) if callable(prefix) else prefix for p in problems]
    texts, lengths, truncated = [], [], []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i : i + batch_size]
        ro = sampling.sample(
            model,
            tokenizer,
            [p["prompt"] + q for p, q in zip(chunk, pre[i : i + batch_size])],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            generator=gen,
            greedy=greedy,
        )
        texts += [q + t for q, t in zip(pre[i : i + batch_size], ro.texts)]
        lengths += ro.completion_mask.sum(-1).tolist()
        truncated += ro.is_truncated(tokenizer.eos_token_id, tokenizer.pad_token_id).tolist()
    answers = [str(p["answer"]) for p in problems]
    s = score(texts, answers)
    n = max(1, len(problems))
    return {
        "accuracy": sum(s["correct"]) / n,
        "format_rate": sum(s["format"]) / n,
        "response_length": sum(lengths) / n,
        "truncated_rate": sum(truncated) / n,
        "scratchpad_rate": sum(uses_scratchpad(t) for t in texts) / n,
        "samples": [
            {"prompt": p["prompt"], "response": t, "answer": a, "correct": c, "format": f}
            for p, t, a, c, f in zip(problems, texts, answers, s["correct"], s["format"])
        ],
    }


END_OF_RUN_EVALS = 3  # held-out evaluations averaged into a run's end-of-run accuracy

# Notebook 09's truncation comparison (and its seed runs): a budget the start model's scratchpads
# barely fit -- they take 34 to 38 tokens with EOS, so at 36 the longer ones are cut off before
# their answer block -- and the three ways to treat a cut-off completion, as RLVRConfig overrides.
TIGHT_BUDGET = 36
TRUNCATION_RUNS: dict[str, dict] = {
    "plain": {},
    "overlong shaping": {"overlong_buffer": 6},
    "masking": {"mask_truncated_completions": True},
}
TRUNCATION_STEPS = 20  # steps per run (held-out evaluation every 5: four, the last three averaged)


def end_of_run_accuracy(
    history: Sequence[dict], n: int = END_OF_RUN_EVALS, key: str = "eval_accuracy"
) -> float:
    """A training run's end-of-run held-out accuracy: the mean of its last `n` held-out evaluations
    (the `history` records that carry `key`; fewer if the run made fewer).

    One evaluation samples one answer per held-out problem at temperature 1, so it is itself a
    random draw: on 64 problems a policy that is right 80 % of the time scores anywhere from about
    0.7 to 0.9, and the policy also moves from one evaluation to the next. The last evaluation
    alone can land on a high or a low draw; the mean of the last few is what the run ended at.
    Notebook 09 reports it and `course seeds` holds it to unit 09's bar."""
    values = [float(h[key]) for h in history if key in h and h[key] == h[key]]
    if not values:
        raise ValueError(
            f"end_of_run_accuracy: no record of the history has {key!r} (no held-out evaluation)"
        )
    last = values[-n:]
    return sum(last) / len(last)


def scratchpad_gap(model, tokenizer, problems: Sequence[dict], seed: int = 0, **kw) -> dict[str, float]:
    """Accuracy when the response is forced to start a scratchpad (``<think>`` + the first
    number and "+") vs forced to answer directly (``<think>I add them in my head.</think>
    <answer>``): how much the intermediate steps help this model."""
    direct = evaluate(
        model, tokenizer, problems, seed=seed, prefix=f" <think>{DIRECT_THOUGHT}</think><answer>", **kw
    )
    steps = evaluate(
        model, tokenizer, problems, seed=seed, prefix=lambda p: f" <think>{p['numbers'][0]}+", **kw
    )
    return {"with_scratchpad": steps["accuracy"], "direct": direct["accuracy"]}


START_MODEL_MISSING = (
    "unit 09's start model (course_lib/assets/tiny_reason) is missing from this installation (it "
    "ships with the course; reinstall it, or the instructor rebuilds it with `course build-tiny "
    "--reasoning`). This run falls back to the "
    "general tiny model, which has never seen the task: expect the format to be learned, not the "
    "answers, and numbers that do not match the text. Exercises 9.1-9.7 and their checks do not "
    "need the model."
)


def start_model_shipped() -> bool:
    """Whether ``assets/tiny_reason`` (unit 09's tiny-profile start model) exists."""
    return (TINY_REASON_DIR / "config.json").is_file()


def load_start_model(path: str | Path | None = None, profile=None):
    """(model, tokenizer) unit 09 starts from: `path`, else ``assets/tiny_reason`` on the tiny
    profile, else the gpu profile's ``extra["reasoning_model"]`` (a small instruct model).

    If ``assets/tiny_reason`` is missing (a damaged install), the tiny profile falls back to the general tiny
    model and says so loudly (:data:`START_MODEL_MISSING`), so that the notebook still runs."""
    import warnings

    from course_lib.core.config import get_profile
    from course_lib.core.models import load_policy

    profile = profile or get_profile()
    if path is None:
        if profile.name != "tiny":
            path = profile.extra.get("reasoning_model", profile.policy_model)
        elif start_model_shipped():
            path = TINY_REASON_DIR
        else:
            warnings.warn(START_MODEL_MISSING, stacklevel=2)
            print("NOTE: " + START_MODEL_MISSING)
            path = profile.policy_model
    return load_policy(path, profile=profile)
