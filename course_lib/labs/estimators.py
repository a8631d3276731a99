"""Unit 06's advantage-estimator comparison (notebook 06, "GRPO vs RLOO vs REINFORCE++, trained"):
the ablations' baseline run once per ``GRPOConfig.advantage_estimator``, through your
``group_advantages``, ``rloo_advantages`` and ``reinforce_pp_advantages`` (exercises 6.1, 6.4, 6.5).

The notebook runs :func:`compare` with seed 0; ``python -m course_instructor.estimators`` runs it
on seeds 0, 1, 2 and checks :data:`BAR` on the worst seed (``docs/results/estimators.json``)."""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

# The ablations' baseline on sentiment: 25 steps of 4 prompts x 8 completions, lr 1e-3, beta 0.04.
RUN: dict[str, Any] = dict(max_steps=25, prompts_per_step=4, learning_rate=1e-3, beta=0.04)
# The bar, fixed before the seeds were measured: on every seed RLOO's positive-fraction gain is at
# least BAR x GRPO's.
BAR = 0.8


def compare(
    base_model,
    tokenizer,
    profile,
    before: dict,
    seed: int = 0,
    n_eval: int | None = None,
    show_progress: bool = True,
    **overrides,
) -> dict[str, dict]:
    """Train :data:`RUN` (+ `overrides`) from a copy of `base_model` once per advantage estimator
    (with ``log_grad_variance``), evaluate each on the sentiment eval prompts: ``{estimator:
    {"history", "row", "seconds"}}``. seconds: the arm's training and evaluation; row:
    positive_gain (vs `before`, an evaluation of `base_model`), kl_to_ref, grad_variance (mean over
    steps), grad_noise_ratio (median over steps)."""
    from course_lib.trainers import grpo as grpo_trainer

    out = {}
    for name in grpo_trainer.ADVANTAGE_ESTIMATORS:
        t0 = time.perf_counter()
        cfg = grpo_trainer.GRPOConfig.from_profile(
            profile,
            task="sentiment",
            seed=seed,
            advantage_estimator=name,
            log_grad_variance=True,
            **{**RUN, **overrides},
        )
        run = grpo_trainer.train(
            cfg,
            model=copy.deepcopy(base_model),
            tokenizer=tokenizer,
            profile=profile,
            desc=name,
            show_progress=show_progress,
        )
        ev = grpo_trainer.evaluate(
            run.model, tokenizer, "sentiment", ref_model=run.ref_model, n=n_eval, profile=profile
        )
        row = {
            "positive_gain": ev["positive_fraction"] - before["positive_fraction"],
            "kl_to_ref": ev["kl_to_ref"],
            "grad_variance": statistics.mean(h["grad_variance"] for h in run.history),
            "grad_noise_ratio": statistics.median(h["grad_noise_ratio"] for h in run.history),
        }
        out[name] = {"history": run.history, "row": row, "seconds": time.perf_counter() - t0}
    return out


def rloo_over_grpo(result: dict[str, dict]) -> float:
    """RLOO's positive-fraction gain over GRPO's (the quantity :data:`BAR` bounds)."""
    return result["rloo"]["row"]["positive_gain"] / max(result["grpo"]["row"]["positive_gain"], 1e-9)
