"""Unit 06's entropy-collapse experiment (notebook 06, last section): one GRPO run on sentiment
that collapses, and the same run trained only on its highest-entropy tokens
(``GRPOConfig.top_entropy_quantile``, your ``grpo.high_entropy_mask``, exercise 6.6).

The notebook runs :func:`collapse_pair` with seed 0; ``python -m course_instructor.entropy_seeds``
runs it on seeds 0, 1, 2 and checks :data:`BAR` on the worst seed
(``docs/results/entropy_collapse.json``)."""

from __future__ import annotations

import copy
from typing import Any

# The collapsing run: the sentiment task with a learning rate well above the main run's and no KL
# term, so nothing holds the policy near the reference (short runs of 4 prompts x 8 completions).
COLLAPSE: dict[str, Any] = dict(learning_rate=3e-3, beta=0.0, prompts_per_step=4, max_steps=40)
REMEDY_QUANTILE = 0.2  # the paper's rho: the top 20 % of the batch's tokens by entropy
RUNS = {"all tokens": 1.0, f"top {REMEDY_QUANTILE:.0%} entropy": REMEDY_QUANTILE}
LAST = 5  # "final" = the mean over the last LAST steps (one step's entropy is noisy)

# The bar, fixed before the seeds were measured; it must hold for the WORST of seeds 0, 1, 2:
# the remedy keeps at least 1.5x the final per-token entropy of the collapsing run, at least its
# distinct-2, and an evaluation positive fraction at most 0.15 below it.
BAR = {"entropy_ratio_min": 1.5, "positive_fraction_drop_max": 0.15, "distinct_2_ratio_min": 1.0}
BAR_PARTS = ("entropy", "positive_fraction", "distinct_2")


def collapse_pair(
    base_model,
    tokenizer,
    profile,
    seed: int = 0,
    n_eval: int | None = None,
    show_progress: bool = True,
    **overrides,
) -> dict[str, dict]:
    """Train :data:`COLLAPSE` (+ `overrides`) once per entry of :data:`RUNS` from a copy of
    `base_model`, evaluate each on the sentiment eval prompts: ``{label: {"history", "eval",
    "summary"}}`` (summary: :func:`summary`)."""
    from course_lib.trainers import grpo as grpo_trainer

    out = {}
    for label, q in RUNS.items():
        cfg = grpo_trainer.GRPOConfig.from_profile(
            profile, task="sentiment", seed=seed, top_entropy_quantile=q, **{**COLLAPSE, **overrides}
        )
        run = grpo_trainer.train(
            cfg,
            model=copy.deepcopy(base_model),
            tokenizer=tokenizer,
            profile=profile,
            desc=label,
            show_progress=show_progress,
        )
        ev = grpo_trainer.evaluate(
            run.model, tokenizer, "sentiment", ref_model=run.ref_model, n=n_eval, profile=profile
        )
        out[label] = {"history": run.history, "eval": ev, "summary": summary(run.history, ev)}
    return out


def summary(history: list[dict], ev: dict) -> dict[str, float]:
    """The numbers the bar reads: start and final entropy, final training reward, the eval's
    positive fraction and distinct-2."""
    tail = history[-LAST:]
    return {
        "entropy_start": float(history[0]["entropy"]),
        "entropy_final": sum(h["entropy"] for h in tail) / len(tail),
        "reward_final": sum(h["reward"] for h in tail) / len(tail),
        "positive_fraction": float(ev["positive_fraction"]),
        "distinct_2": float(ev["distinct_2"]),
    }


def bar_met(pair: dict[str, dict]) -> dict[str, bool]:
    """Each part of :data:`BAR` for one seed's :func:`collapse_pair` (summaries only needed)."""
    base, remedy = (pair[label]["summary"] for label in RUNS)
    return {
        "entropy": remedy["entropy_final"] >= BAR["entropy_ratio_min"] * base["entropy_final"],
        "positive_fraction": remedy["positive_fraction"]
        >= base["positive_fraction"] - BAR["positive_fraction_drop_max"],
        "distinct_2": remedy["distinct_2"] >= BAR["distinct_2_ratio_min"] * base["distinct_2"],
    }
