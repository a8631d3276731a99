"""Evaluation metrics shared by every unit (unit 08 builds its comparison on these).

Metrics that *are* exercises (rewards, KL estimates) are not re-implemented here: code that needs
them calls the exercise functions through their modules (``rewards.repetition_penalty``,
``kl.kl_estimate``), so in a student's course they run the student's own code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from course_lib.core.utils import GRADING_SIZES

_INT = re.compile(r"-?\d+")


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Corpus-level distinct-n: unique word n-grams / total word n-grams over all texts
    (lower-cased, whitespace words). 0.0 when there are no n-grams."""
    total, unique = 0, set()
    for t in texts:
        w = t.lower().split()
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def first_integer(text: str) -> int | None:
    m = _INT.search(text)
    return int(m.group()) if m else None


def first_integer_accuracy(completions: Sequence[str], answers: Sequence) -> float:
    """Fraction of completions whose *first* integer equals the answer (the model's immediate
    answer after "a + b ="; stricter than unit 01's last-integer `correctness_reward`)."""
    if len(completions) != len(answers) or not completions:
        raise ValueError("first_integer_accuracy: need equally many, non-zero completions and answers")
    return sum(first_integer(c) == int(a) for c, a in zip(completions, answers)) / len(completions)


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Mean/std/min/max number of whitespace words."""
    import statistics

    lens = [len(t.split()) for t in texts] or [0]
    return {
        "mean": statistics.fmean(lens),
        "std": statistics.pstdev(lens),
        "min": float(min(lens)),
        "max": float(max(lens)),
    }


def reward_stats(rewards: Sequence[float]) -> dict[str, float]:
    """Mean/std (population)/min/max of a list of rewards."""
    import statistics

    r = [float(x) for x in rewards]
    if not r:
        raise ValueError("reward_stats: no rewards")
    return {"mean": statistics.fmean(r), "std": statistics.pstdev(r), "min": min(r), "max": max(r)}


# --------------------------------------------------------------------------- policy evaluation
# Shared by units 05-08: KL to the reference, one-call evaluation of a policy, samples as JSONL.


def _slice_rollout(rollout, start: int, stop: int, device=None):
    """Rows [start, stop) of a Rollout (optionally moved to `device`)."""
    from course_lib.core.sampling import Rollout

    def t(x):
        x = x[start:stop]
        return x.to(device) if device is not None else x

    return Rollout(
        prompts=rollout.prompts[start:stop],
        texts=rollout.texts[start:stop],
        prompt_ids=t(rollout.prompt_ids),
        prompt_mask=t(rollout.prompt_mask),
        completion_ids=t(rollout.completion_ids),
        completion_mask=t(rollout.completion_mask),
    )


def _device(model):
    return next(model.parameters()).device


def _kl_parts(policy, ref, rollout, batch_size: int = 32) -> tuple[float, float]:
    """(sum over chunks of masked-mean k3 * tokens, tokens): lets callers combine batches."""
    import torch

    from course_lib import kl, sft
    from course_lib.core import sampling

    total, tokens = 0.0, 0.0
    modes = (policy.training, ref.training)
    policy.eval()
    ref.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(rollout), batch_size):
                part = _slice_rollout(rollout, i, i + batch_size, _device(policy))
                n = float(part.completion_mask.sum())
                if n == 0:
                    continue
                logp = kl.token_logprobs(sampling.completion_logits(policy, part), part.completion_ids)
                ref_part = _slice_rollout(part, 0, len(part), _device(ref))
                ref_logp = kl.token_logprobs(
                    sampling.completion_logits(ref, ref_part), ref_part.completion_ids
                ).to(logp.device)
                k3 = kl.kl_estimate(logp, ref_logp, "k3")
                total += float(sft.masked_mean(k3, part.completion_mask)) * n
                tokens += n
    finally:
        policy.train(modes[0])
        ref.train(modes[1])
    return total, tokens


def kl_to_ref(policy, ref, rollout, batch_size: int = 32) -> float:
    """Mean per-token KL(policy || ref) over the response tokens of `rollout` (sampled from
    `policy` with :func:`course_lib.core.sampling.sample`), estimated with k3.

    Calls the exercises through their modules — ``kl.token_logprobs``, ``kl.kl_estimate(..., "k3")``
    and ``sft.masked_mean`` — so in a student's course it runs the student's own functions.
    Every response token in the rollout counts equally (batches of `batch_size` rows bound memory).
    """
    if rollout is None or len(rollout) == 0:
        raise ValueError("kl_to_ref: the rollout is empty (sample from the policy first)")
    if rollout.completion_ids.shape != rollout.completion_mask.shape:
        raise ValueError(
            f"kl_to_ref: rollout.completion_ids{list(rollout.completion_ids.shape)} and "
            f"completion_mask{list(rollout.completion_mask.shape)} must have the same shape"
        )
    total, tokens = _kl_parts(policy, ref, rollout, batch_size)
    if tokens == 0:
        raise ValueError("kl_to_ref: the rollout has no response tokens (completion_mask is all zero)")
    return total / tokens


def _is_sentiment(reward_fn) -> bool:
    name = getattr(reward_fn, "__name__", "") or type(reward_fn).__name__
    return "sentiment" in name.lower()


def evaluate_policy(
    policy,
    tokenizer,
    prompts: Sequence[str],
    reward_fn=None,
    ref=None,
    max_new_tokens: int | None = None,
    seed: int = 0,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    batch_size: int = 32,
    sentiment: bool | None = None,
    reward_kwargs: dict | None = None,
    scorer=None,
) -> dict:
    """Sample fresh completions of `prompts` from `policy` and measure them.

    * ``reward_fn``: a TRL-style reward function ``f(completions, prompts=..., **reward_kwargs)``
      (e.g. ``rewards.sentiment_reward``); ``reward_kwargs`` holds extra per-prompt columns such as
      ``{"answer": [...]}`` (repeated for `num_samples`). None: no reward statistics.
    * ``ref``: the frozen reference model; gives ``kl_to_ref`` (see :func:`kl_to_ref`).
    * ``sentiment``: add ``positive_fraction`` (:func:`course_lib.core.sentiment.positive_fraction` on
      prompt + completion). None = automatically when `reward_fn`'s name contains "sentiment".

    Returns a dict: ``n``, ``reward_mean/std/min/max``, ``positive_fraction``, ``kl_to_ref`` (only
    when the corresponding input is given), ``distinct_1``, ``distinct_2``, ``repetition`` (mean
    ``rewards.repetition_penalty``), ``length_mean/std/min/max`` (words), ``tokens_mean`` (response
    tokens), plus ``samples``: a list of ``{"prompt", "response"}`` (for :func:`write_samples_jsonl`)
    and ``rewards``: the per-sample rewards (when `reward_fn` is given).
    Use :func:`scalar_metrics` to keep only the numbers. Seeded: same seed, same samples.
    """
    import torch

    from course_lib import rewards
    from course_lib.core import sampling

    prompts = list(prompts)
    if not prompts:
        raise ValueError("evaluate_policy: no prompts")
    if max_new_tokens is None:
        from course_lib.core.config import get_profile

        max_new_tokens = get_profile().max_completion_length
    gen = torch.Generator(device=_device(policy)).manual_seed(seed)
    texts, rows, tokens = [], [], []
    kl_total, kl_tokens = 0.0, 0.0
    for i in range(0, len(prompts), max(1, batch_size // max(1, num_samples))):
        chunk = prompts[i : i + max(1, batch_size // max(1, num_samples))]
        roll = sampling.sample(
            policy,
            tokenizer,
            chunk,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            temperature=temperature,
            generator=gen,
        )
        texts += roll.texts
        rows += roll.prompts
        tokens += roll.completion_mask.sum(1).tolist()
        if ref is not None:
            t, n = _kl_parts(policy, ref, roll, batch_size)
            kl_total, kl_tokens = kl_total + t, kl_tokens + n
    out: dict = {"n": len(texts)}
    if reward_fn is not None:
        kw = {k: [v for v in vals for _ in range(num_samples)] for k, vals in (reward_kwargs or {}).items()}
        for k, v in kw.items():
            if len(v) != len(texts):
                raise ValueError(
                    f"evaluate_policy: reward_kwargs[{k!r}] has {len(v) // num_samples} "
                    f"entries, expected one per prompt ({len(prompts)})"
                )
        scores = reward_fn(texts, prompts=rows, **kw)
        if len(scores) != len(texts):
            raise ValueError(
                f"evaluate_policy: reward_fn returned {len(scores)} rewards for {len(texts)} completions"
            )
        out.update({f"reward_{k}": v for k, v in reward_stats(scores).items()})
        out["rewards"] = [float(x) for x in scores]
    if sentiment or (sentiment is None and reward_fn is not None and _is_sentiment(reward_fn)):
        from course_lib.core.sentiment import positive_fraction

        out["positive_fraction"] = positive_fraction([p + t for p, t in zip(rows, texts)], scorer=scorer)
    if ref is not None:
        out["kl_to_ref"] = kl_total / kl_tokens if kl_tokens else 0.0
    out["distinct_1"] = distinct_n(texts, 1)
    out["distinct_2"] = distinct_n(texts, 2)
    rep = rewards.repetition_penalty(texts)
    out["repetition"] = sum(rep) / len(rep)
    out.update({f"length_{k}": v for k, v in length_stats(texts).items()})
    out["tokens_mean"] = sum(tokens) / len(tokens)
    out["samples"] = [{"prompt": p, "response": t} for p, t in zip(rows, texts)]
    return out


def scalar_metrics(result: dict) -> dict[str, float]:
    """The numeric entries of an :func:`evaluate_policy` result (drops ``samples``, ``rewards``, ``n``)."""
    return {
        k: float(v)
        for k, v in result.items()
        if k != "n" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def write_samples_jsonl(path, prompts: Sequence[str], responses: Sequence[str], limit: int | None = None):
    """Write one ``{"prompt": ..., "response": ...}`` JSON object per line (the IEMS-490
    samples format; ~20 per model). Creates parent folders; returns the path."""
    import json
    from pathlib import Path

    prompts, responses = list(prompts), list(responses)
    if len(prompts) != len(responses):
        raise ValueError(f"write_samples_jsonl: {len(prompts)} prompts but {len(responses)} responses")
    rows = list(zip(prompts, responses))[:limit]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"prompt": p, "response": r}, ensure_ascii=False) + "\n" for p, r in rows),
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------- unit 08: comparison
COMPARED = ("sft", "ppo", "grpo", "dpo")
"""Checkpoint names compared in unit 08, in training order (RL and DPO start from SFT)."""

FAST_OVERRIDES = {
    "sft": {"max_steps": 1},
    "ppo": {"max_steps": 1, **GRADING_SIZES["ppo"]},
    "grpo": dict(GRADING_SIZES["grpo"]),
    "dpo": {"max_steps": 1, "num_pairs": 16},
}
"""One small step per trainer (the sizes units 05-07 use under the grader): what unit 08 trains
under nbgrader (FAST) when a checkpoint is missing - it only has to run, fast."""


def checkpoint_or_train(
    name: str, profile=None, preset: str | None = "quick", train_if_missing: bool = True, **overrides
) -> dict:
    """The checkpoint ``checkpoint_dir()/name`` if it exists, else train it now with
    ``course_lib.trainers.<name>.quick_train(profile, preset, **overrides)`` (the active exercise
    functions: the student's own, or the solutions).

    Returns ``{"name", "path", "origin": "found" | "trained here", "seconds", "info"}`` where
    `info` is the checkpoint's ``training_info.json`` when it has one (steps, config, ...).
    """
    import importlib
    import json
    import time
    from pathlib import Path

    from course_lib.core.config import checkpoint_dir, get_profile

    profile = profile or get_profile()
    path = checkpoint_dir() / name
    origin, seconds = "found", 0.0
    if not (path / "config.json").exists():
        if not train_if_missing:
            raise FileNotFoundError(
                f"checkpoint_or_train: no checkpoint {path} (run unit "
                f"{name!r} first, or pass train_if_missing=True)"
            )
        trainer = importlib.import_module(f"course_lib.trainers.{name}")
        t0 = time.perf_counter()
        path = Path(trainer.quick_train(profile=profile, preset=preset, **overrides))
        origin, seconds = "trained here", time.perf_counter() - t0
    info_file = path / "training_info.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    return {"name": name, "path": path, "origin": origin, "seconds": seconds, "info": info}
