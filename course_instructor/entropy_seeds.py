"""Unit 06's entropy-collapse experiment on several seeds (:mod:`course_lib.labs.entropy`):

    COURSE_CHECKPOINTS=runs/seeds/checkpoints python -m course_instructor.entropy_seeds \\
        [--seeds 0,1,2] [--out docs/results/entropy_collapse.json]

Starts from the unit-03 SFT checkpoint in ``$COURSE_CHECKPOINTS`` (trained there first if missing,
as ``course seeds`` does), runs :func:`~course_lib.labs.entropy.collapse_pair` per seed with the
solutions, prints a table and writes the JSON (summaries, the bar, whether the worst seed met it,
provenance). Exit code 1 if the worst seed misses a part of the bar."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from course_instructor.doc_numbers import RESULTS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_instructor.entropy_seeds", description=__doc__)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(RESULTS / "entropy_collapse.json"))
    args = ap.parse_args(argv)

    import course_lib
    from course_lib.core.config import get_profile
    from course_lib.core.models import latest_checkpoint
    from course_lib.labs import entropy
    from course_lib.trainers import grpo as grpo_trainer
    from course_lib.trainers import sft as sft_trainer

    course_lib.use_solutions(True)
    profile = get_profile("tiny")
    if not latest_checkpoint("sft"):
        sft_trainer.quick_train(profile)
    model, tokenizer, start = grpo_trainer.start_model(profile)
    seeds, t0 = [int(s) for s in args.seeds.split(",")], time.perf_counter()
    per_seed = {}
    for seed in seeds:
        pair = entropy.collapse_pair(model, tokenizer, profile, seed=seed, show_progress=False)
        per_seed[seed] = {
            "summary": {label: r["summary"] for label, r in pair.items()},
            "bar": entropy.bar_met(pair),
            "entropy_curve": {
                label: [round(h["entropy"], 4) for h in r["history"]] for label, r in pair.items()
            },
        }
        print(f"seed {seed}:", json.dumps(per_seed[seed]["summary"]), per_seed[seed]["bar"], flush=True)
    met = {k: all(s["bar"][k] for s in per_seed.values()) for k in entropy.BAR_PARTS}
    doc = {
        "experiment": "unit 06 entropy collapse vs top_entropy_quantile",
        "config": entropy.COLLAPSE,
        "runs": entropy.RUNS,
        "bar": entropy.BAR,
        "worst_seed_met": met,
        "seeds": per_seed,
        "start": str(start),
        "seconds": round(time.perf_counter() - t0, 1),
        "provenance": _provenance(argv, args.out),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"worst seed meets the bar: {met} -> {args.out}")
    return 0 if all(met.values()) else 1


def _provenance(argv, out: str) -> dict:
    import datetime
    import os
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "command": "python -m course_instructor.entropy_seeds " + " ".join(argv or sys.argv[1:]),
        "cpus": os.cpu_count(),
        "file": Path(out).name,
    }


if __name__ == "__main__":
    raise SystemExit(main())
