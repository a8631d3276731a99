"""Notebook 06's advantage-estimator comparison (GRPO vs RLOO vs REINFORCE++) on several seeds.

    python -m course_instructor.estimators                 # seeds 0,1,2, tiny + quick -> runs/estimators.json
    python -m course_instructor.estimators --seeds 0 --out /tmp/est.json
    python -m course_instructor.estimators --out docs/results/estimators.json  # the course's numbers

Each seed runs :func:`course_lib.labs.estimators.compare`, as the notebook does (the ablations'
baseline on sentiment, once per ``advantage_estimator``), with ``seed=N`` from the notebook's start
model. The bar the notebook states before measuring: on every seed RLOO's positive-fraction gain is
at least ``BAR`` (0.8) x GRPO's. Runs the solutions (``COURSE_LIB_SOLUTIONS=1``); exit code 1 when the bar is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from course_lib.labs.estimators import BAR


def measure(seed: int, profile=None) -> dict:
    """``{estimator: {positive_gain, kl_to_ref, grad_variance, grad_noise_ratio, seconds}}`` for
    `seed` (:func:`course_lib.labs.estimators.compare`)."""
    from course_lib.core.config import get_profile
    from course_lib.labs import estimators
    from course_lib.trainers import grpo as T

    profile = profile or get_profile("tiny")
    model, tok, _ = T.start_model(profile)
    before = T.evaluate(model, tok, "sentiment", profile=profile)
    result = estimators.compare(model, tok, profile, before, seed=seed, show_progress=False)
    return {name: {**r["row"], "seconds": round(r["seconds"], 1)} for name, r in result.items()}


def main(argv: list[str] | None = None) -> int:
    import course_lib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/estimators.json")
    args = ap.parse_args(argv)
    course_lib.use_solutions()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {str(s): measure(s) for s in seeds}
    ratios = {s: r["rloo"]["positive_gain"] / max(r["grpo"]["positive_gain"], 1e-9) for s, r in runs.items()}
    import datetime
    import os
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    ).stdout.strip()
    result = {
        "provenance": {
            "command": f"python -m course_instructor.estimators --seeds {args.seeds}",
            "commit": commit,
            "date": datetime.date.today().isoformat(),
            "cpus": os.cpu_count(),
            "file": "estimators.json",
        },
        "profile": "tiny",
        "bar": f"RLOO positive-fraction gain >= {BAR} x GRPO's on every seed",
        "rloo_over_grpo_gain": ratios,
        "worst_ratio": min(ratios.values()),
        "met": min(ratios.values()) >= BAR,
        "seeds": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
