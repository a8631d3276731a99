"""Notebook 09's truncation comparison (plain vs overlong shaping vs masking truncated completions,
under ``reasoning.TIGHT_BUDGET``) for several seeds, judged against the bar the notebook states
before it measures: overlong shaping ends with a truncation rate at least ``BAR`` below the plain
run's, on every seed.

    python -m course_instructor.overlong_seeds                       # seeds 0,1,2 -> runs/overlong_seeds.json
    python -m course_instructor.overlong_seeds --seeds 0 --out /tmp/x.json

Each run is the notebook's own (``reasoning.TRUNCATION_RUNS``, ``TRUNCATION_STEPS`` steps, a
held-out evaluation every 5 steps, the quick preset of the tiny profile, solutions active) with
``seed=N``. Per run: the truncation rate, accuracy and mean length of the step's samples (mean of
the last 3 steps) and the held-out accuracy and truncation rate (mean of the last 3 evaluations),
as the notebook's table shows them. The file follows docs/results/seeds.json (per unit: seeds,
bars, mean, all_met). Exit code 1 when the bar is missed on a seed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BAR = 0.10  # truncation rate: overlong shaping at least this far below plain, every seed
KEY = "09_overlong"


def _end(history: list[dict], key: str, n: int = 3) -> float:
    vals = [float(h[key]) for h in history if key in h and h[key] == h[key]][-n:]
    return sum(vals) / len(vals) if vals else float("nan")


def run_seed(seed: int, profile=None, preset: str = "quick") -> dict:
    """The three runs of the comparison for one seed: ``{"seed", "runs": {name: metrics}, "bars",
    "seconds"}``."""
    import copy

    from course_lib.core.config import get_profile
    from course_lib.labs import reasoning
    from course_lib.trainers import rlvr as T

    profile = profile or get_profile("tiny")
    t0 = time.perf_counter()
    model, tok = reasoning.load_start_model(profile=profile)
    runs = {}
    for name, knobs in reasoning.TRUNCATION_RUNS.items():
        cfg = T.RLVRConfig.from_profile(
            profile,
            preset,
            seed=seed,
            max_steps=reasoning.TRUNCATION_STEPS,
            eval_every=5,
            max_completion_length=reasoning.TIGHT_BUDGET,
            **knobs,
        )
        h = T.train(
            cfg, copy.deepcopy(model), tok, profile=profile, show_progress=False, evaluate_start=False
        )
        runs[name] = {
            "truncated_rate": _end(h.history, "truncated_rate"),
            "accuracy": _end(h.history, "accuracy"),
            "completion_length": _end(h.history, "completion_length"),
            "heldout_accuracy": _end(h.history, "eval_accuracy"),
            "heldout_truncated_rate": _end(h.history, "eval_truncated_rate"),
            "first_truncated_rate": float(h.history[0]["truncated_rate"]),
        }
    drop = runs["plain"]["truncated_rate"] - runs["overlong shaping"]["truncated_rate"]
    return {
        "seed": seed,
        "runs": runs,
        "bars": {"truncation_drop": {"value": drop, "met": drop >= BAR}},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(seeds: list[dict]) -> dict:
    names = list(seeds[0]["runs"])
    keys = list(seeds[0]["runs"][names[0]])
    mean = {n: {k: statistics.fmean(s["runs"][n][k] for s in seeds) for k in keys} for n in names}
    drops = [s["bars"]["truncation_drop"]["value"] for s in seeds]
    return {
        "bar": f"overlong shaping: truncation rate >= {BAR:.2f} below plain (last 3 steps), every seed",
        "all_met": all(s["bars"]["truncation_drop"]["met"] for s in seeds),
        "worst": {"truncation_drop": min(drops)},
        "mean": mean,
        "seeds": seeds,
    }


def main(argv: list[str] | None = None) -> int:
    from course_instructor.seeds import bar_script_main

    return bar_script_main(
        "overlong_seeds",
        __doc__.split("\n\n")[0],
        KEY,
        REPO / "runs" / "overlong_seeds.json",
        run_seed,
        summarize,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
