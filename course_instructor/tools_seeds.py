"""Notebook 10's two runs (GRPO with the environment mask, and the ablation that trains on the
environment's tokens too) for several seeds, judged against the bars the notebook states before
it measures:

* ``main_gain``: the main run's held-out accuracy ends at least ``GAIN_BAR`` above the start
  model's, on every seed (the worst seed is the number that counts);
* ``ablation_gap``: the ablation ends at least ``ABLATION_BAR`` below the main run, on every seed.

    python -m course_instructor.tools_seeds                       # seeds 0,1,2 -> docs/results/tools_seeds.json
    python -m course_instructor.tools_seeds --seeds 0 --out /tmp/x.json

Each run is the notebook's own (:func:`course_lib.trainers.tools.headline_run` with
``ToolConfig.from_profile(tiny, "quick", seed=N)``, and ``train_on_env_tokens=True`` for the
ablation; solutions active). Per run: start and end held-out accuracy, tool-call rate,
malformed rate and turns per episode (one episode per held-out problem, the same problems and
sampler for every seed), and the run's seconds. The file follows docs/results/seeds.json (per
unit: seeds, bars, mean, all_met). Exit code 1 when a bar is missed on a seed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GAIN_BAR = 0.20  # main run: held-out accuracy at least this far above the start, every seed
ABLATION_BAR = 0.10  # ablation: at least this far below the main run, every seed
KEY = "10_tools"
METRICS = ("accuracy", "tool_call_rate", "malformed_rate", "turns_per_episode")
RUNS = {"env mask": {}, "env tokens in the loss": {"train_on_env_tokens": True}}


def run_seed(seed: int, profile=None, preset: str = "quick") -> dict:
    """Both runs for one seed: ``{"seed", "runs": {name: {"start": ..., "end": ..., "seconds"}},
    "bars", "seconds"}``."""
    from course_lib.core.config import get_profile
    from course_lib.labs import tools as lab
    from course_lib.trainers import tools as T

    profile = profile or get_profile("tiny")
    t0 = time.perf_counter()
    start = lab.load_start_model(profile=profile)
    runs = {}
    for name, knobs in RUNS.items():
        t = time.perf_counter()
        cfg = T.ToolConfig.from_profile(profile, preset, seed=seed, **knobs)
        h = T.headline_run(cfg, profile=profile, start=start, show_progress=False)
        runs[name] = {
            "start": {k: float(h.before[k]) for k in METRICS},
            "end": {k: float(h.after[k]) for k in METRICS},
            "seconds": round(time.perf_counter() - t, 1),
        }
    main, ablation = runs["env mask"], runs["env tokens in the loss"]
    gain = main["end"]["accuracy"] - main["start"]["accuracy"]
    gap = main["end"]["accuracy"] - ablation["end"]["accuracy"]
    return {
        "seed": seed,
        "runs": runs,
        "bars": {
            "main_gain": {"value": gain, "met": gain >= GAIN_BAR},
            "ablation_gap": {"value": gap, "met": gap >= ABLATION_BAR},
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(seeds: list[dict]) -> dict:
    names = list(seeds[0]["runs"])
    mean = {
        n: {
            side: {k: statistics.fmean(s["runs"][n][side][k] for s in seeds) for k in METRICS}
            for side in ("start", "end")
        }
        for n in names
    }
    bars = list(seeds[0]["bars"])
    return {
        "bar": (
            f"env mask: held-out accuracy >= start + {GAIN_BAR:.2f}, every seed; env tokens in the loss: "
            f"held-out accuracy >= {ABLATION_BAR:.2f} below the env-mask run, every seed"
        ),
        "all_met": all(s["bars"][b]["met"] for s in seeds for b in bars),
        "met": {b: all(s["bars"][b]["met"] for s in seeds) for b in bars},
        "worst": {b: min(s["bars"][b]["value"] for s in seeds) for b in bars},
        "mean": mean,
        "seeds": seeds,
    }


def main(argv: list[str] | None = None) -> int:
    from course_instructor.seeds import bar_script_main

    return bar_script_main(
        "tools_seeds",
        __doc__.split("\n\n")[0],
        KEY,
        REPO / "docs" / "results" / "tools_seeds.json",
        run_seed,
        summarize,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
