"""`course seeds`: the main training runs of units 05 (PPO), 06 (GRPO, sentiment), 07 (DPO) and 09
(RLVR, from ``assets/tiny_reason``) for several seeds, measured against the units' bars -- the
worst seed must meet them.

    course seeds                                     # seeds 0,1,2, units 05,06,07,09, tiny + quick -> runs/seeds
    course seeds --seeds 1,2 --units 05 --out runs/seeds
    course seeds --impl alt                          # a numerically different PPO/GRPO (float64 inside)

A student's correct code does not reproduce the solutions' floating-point order, so every student
in effect trains with another seed: a result that holds for seed 0 only is luck. Each run calls the
unit's ``headline_run`` -- the function the notebook itself calls for its main run, so the numbers
of seed 0 are the notebook's -- from the notebook's start (the unit-03 SFT checkpoint; trained here
with ``sft.quick_train``, notebook 03's recipe, when ``DIR/checkpoints/sft`` is missing) with the
notebook's configuration (``XConfig.from_profile(profile, preset)``) and ``seed=N``. The seed sets
the trainer's sampling, prompt / batch order and (PPO) the value head; the evaluation samples and
the data (DPO's pairs) stay the notebook's.

Every run is written to ``DIR/runs/<impl>_<unit>_seed<N>.json`` as soon as it ends; the table
(``DIR/seeds.md`` and ``DIR/seeds.json``, one per `--impl`) is rebuilt from *all* run files of that
implementation in DIR, so several invocations (e.g. one unit at a time) add up. Use a fresh DIR
after changing a default. Per unit: metric before -> after for each seed, the mean and the worst
seed, each bar met or not. Exit code 1 when a bar is missed or a run failed.

``--impl solutions`` (default) runs the instructor's solutions; ``--impl alt`` replaces PPO's and
GRPO's exercise functions with :mod:`course_instructor.alt_impl` (correct, numerically different),
to show that a student's own implementation reaches the bars too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = ("05", "06", "07", "09")
IMPLS = ("solutions", "alt")


@dataclass(frozen=True)
class Bar:
    """One bar on one quantity of a run: ``value(metrics) >= threshold`` (``higher=True``) or
    ``<= threshold``. `metrics` is ``{name: {"before": b, "after": a}}``."""

    name: str
    label: str
    threshold: float
    higher: bool

    def value(self, m: dict) -> float:
        pf, d2 = m.get("positive_fraction"), m.get("distinct_2")
        if self.name == "positive_gain":
            return pf["after"] - pf["before"]
        if self.name == "distinct_2_change":  # relative change, either way
            return abs(d2["after"] - d2["before"]) / d2["before"]
        if self.name == "kl":
            return m["kl_to_ref"]["after"]
        if self.name == "preference_accuracy":
            return m["preference_accuracy"]["after"]
        if self.name == "accuracy_gain":
            return m["heldout_accuracy"]["after"] - m["heldout_accuracy"]["before"]
        if self.name == "format_rate":
            return m["format_rate"]["after"]
        raise KeyError(self.name)

    def met(self, v: float) -> bool:
        return math.isfinite(v) and (v >= self.threshold if self.higher else v <= self.threshold)

    def worst(self, values: list[float]) -> float:
        if any(not math.isfinite(v) for v in values):
            return math.nan
        return min(values) if self.higher else max(values)


RL_BARS = (
    Bar("positive_gain", "positive fraction gain >= +0.30", 0.30, True),
    Bar("distinct_2_change", "distinct-2 change within 20 %", 0.20, False),
    Bar("kl", "KL to reference <= 0.5 nats/token", 0.5, False),
)
BARS: dict[str, tuple[Bar, ...]] = {
    "05": RL_BARS,
    "06": RL_BARS,
    "07": (
        Bar("preference_accuracy", "held-out preference accuracy >= 0.9", 0.9, True),
        Bar("positive_gain", "positive fraction gain >= +0.15", 0.15, True),
        Bar("distinct_2_change", "distinct-2 change within 20 %", 0.20, False),
        Bar("kl", "KL to reference <= 0.5 nats/token", 0.5, False),
    ),
    "09": (
        Bar("accuracy_gain", "held-out accuracy gain >= +0.30", 0.30, True),
        Bar("format_rate", "format rate >= 0.95", 0.95, True),
    ),
}
"""The bars of each unit (notebooks 05-07 and 09 state them; tests/notebooks/test_unit0N.py assert them for seed 0).
A run that raises or ends with a non-finite metric has diverged and misses every bar."""

NAMES = {"05": "PPO", "06": "GRPO (sentiment)", "07": "DPO", "09": "RLVR (R1-zero addition)"}


# --------------------------------------------------------------------------- one run
def _pair(before, after) -> dict:
    return {"before": None if before is None else float(before), "after": float(after)}


def bar_script_main(
    module: str, description: str, key: str, default_out: Path, run_seed, summarize_seeds, argv=None
) -> int:
    """The command line of a one-unit seed script (``python -m course_instructor.<module>``):
    `run_seed(seed)` for each of ``--seeds``, with the solutions and 2 torch threads, then
    ``{"units": {key: summarize_seeds(runs)}, "provenance": ...}`` written to ``--out``; exit
    status 0 iff every bar held on every seed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    import torch

    import course_lib

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    course_lib.use_solutions(True)
    runs = []
    for s in [int(x) for x in args.seeds.split(",")]:
        runs.append(run_seed(s))
        print(json.dumps(runs[-1]["bars"]), f"seed {s}: {runs[-1]['seconds']} s", flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    summary = summarize_seeds(runs)
    out = {
        "impl": "solutions",
        "preset": "quick",
        "profile": "tiny",
        "provenance": {
            "command": f"python -m course_instructor.{module} --seeds {args.seeds}",
            "commit": commit,
            "cpus": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "file": Path(args.out).name,
        },
        "units": {key: summary},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(json.dumps(summary["mean"], indent=1), "\nall met:", summary["all_met"])
    return 0 if summary["all_met"] else 1


def run_unit(unit: str, seed: int, profile=None, preset: str | None = None, **overrides) -> dict:
    """The notebook's main run of `unit` with ``seed`` (and config `overrides`, e.g. for a sweep):
    ``{"unit", "seed", "metrics": {name: {"before", "after"}}, "seconds", "config"}``. Uses the
    checkpoints of ``$COURSE_CHECKPOINTS`` and the exercise functions active now."""
    import dataclasses

    from course_lib.core.config import get_profile

    profile = profile or get_profile("tiny")
    preset = profile.preset(preset).name
    t0 = time.perf_counter()
    if unit == "05":
        from course_lib.trainers import ppo as T

        config = T.PPOConfig.from_profile(profile, preset, seed=seed, **overrides)
        h = T.headline_run(config, profile, T.eval_prompts(profile), show_progress=False)
        metrics = {k: _pair(*v) for k, v in h.headline().items()}
    elif unit == "06":
        from course_lib.trainers import grpo as T

        config = T.GRPOConfig.from_profile(profile, preset, task="sentiment", seed=seed, **overrides)
        h = T.headline_run(config, profile, show_progress=False)
        metrics = {k: _pair(h.before[k], h.after[k]) for k in ("positive_fraction", "distinct_2")}
        metrics["kl_to_ref"] = _pair(0.0, h.after["kl_to_ref"])
    elif unit == "07":
        from course_lib.core.models import frozen_copy
        from course_lib.trainers import dpo as T

        config = T.DPOConfig.from_profile(profile, preset, seed=seed, **overrides)
        model, tok, start = T.start_model(profile)
        reference = frozen_copy(model)
        data = headline_data_once(T, model, tok, profile, start)
        h = T.headline_run(config, model, reference, tok, data, profile, show_progress=False)
        metrics = {"preference_accuracy": _pair(h.ref_preference, h.final["accuracy"])}
        for k in ("positive_fraction", "distinct_2", "kl_to_ref"):
            metrics[k] = _pair(h.before[k], h.after[k])
    elif unit == "09":
        from course_lib.trainers import rlvr as T

        config = T.RLVRConfig.from_profile(profile, preset, seed=seed, **overrides)
        h = T.headline_run(config, profile, show_progress=False)
        names = {
            "heldout_accuracy": "accuracy",
            "format_rate": "format_rate",
            "response_length": "response_length",
        }
        metrics = {k: _pair(h.before[b], h.after[b]) for k, b in names.items()}
        # as the notebook reports it: the mean of the run's last held-out evaluations, not the last one
        from course_lib.labs.reasoning import end_of_run_accuracy

        metrics["heldout_accuracy"]["after"] = end_of_run_accuracy(h.run.history)
    else:
        raise ValueError(f"course seeds: unit must be one of {UNITS}, got {unit!r}")
    cfg = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
    keys = ("step", "reward", "kl", "kl_seq", "kl_coef", "entropy", "margin", "eval_accuracy")
    curve = [{k: round(float(r[k]), 4) for k in keys if k in r} for r in h.run.history]
    return {
        "unit": unit,
        "seed": seed,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": cfg,
        "history": curve,  # a few keys per step, to see how a run that misses a bar got there
    }


_DPO_DATA: dict = {}


def _fingerprint(path: str) -> tuple:
    """(name, size, mtime) of the files of a checkpoint folder (or file): changes when it is rewritten."""
    p = Path(path)
    files = sorted(p.iterdir()) if p.is_dir() else [p] if p.exists() else []
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())


def headline_data_once(T, model, tokenizer, profile, start: str):
    """Notebook 07's pairs (``dpo.headline_data``) for the start model at `start`, built once per
    process and shared by every seed's run: they are drawn with their own seeded generator (not
    the global RNG, not the run's seed), so each seed would build the same pairs again (about 7 s
    on 2 cores). A rewritten checkpoint, another profile or another COURSE_PRESET builds anew."""
    key = (str(start), _fingerprint(start), repr(profile), os.environ.get("COURSE_PRESET"))
    if key not in _DPO_DATA:
        _DPO_DATA.clear()
        _DPO_DATA[key] = T.headline_data(model, tokenizer, profile)
    return _DPO_DATA[key]


def judge(unit: str, run: dict) -> dict:
    """``{bar name: {"value", "met"}}`` for one run (a failed run misses them all)."""
    out = {}
    for bar in BARS[unit]:
        try:
            v = bar.value(run["metrics"]) if "error" not in run else math.nan
        except (KeyError, TypeError, ZeroDivisionError):
            v = math.nan
        out[bar.name] = {"value": v, "met": bar.met(v)}
    return out


# --------------------------------------------------------------------------- the table
def summarize(runs: list[dict]) -> dict:
    """``{unit: {"seeds": [...runs with "bars"], "mean": {bar: v}, "worst": {bar: v}, "met": {bar:
    bool}, "all_met": bool}}`` over the runs of each unit (sorted by seed)."""
    units: dict = {}
    for unit in UNITS:
        rs = sorted((r for r in runs if r["unit"] == unit), key=lambda r: r["seed"])
        if not rs:
            continue
        for r in rs:
            r["bars"] = judge(unit, r)
        entry = {"seeds": rs, "mean": {}, "worst": {}, "met": {}}
        for bar in BARS[unit]:
            vals = [r["bars"][bar.name]["value"] for r in rs]
            finite = [v for v in vals if math.isfinite(v)]
            entry["mean"][bar.name] = statistics.fmean(finite) if finite else math.nan
            entry["worst"][bar.name] = bar.worst(vals)
            entry["met"][bar.name] = bar.met(entry["worst"][bar.name])
        entry["all_met"] = all(entry["met"].values())
        units[unit] = entry
    return units


def _fmt_metric(m: dict | None) -> str:
    if not m:
        return "—"
    b = "—" if m.get("before") is None else f"{m['before']:.2f}"
    return f"{b} → {m['after']:.2f}"


def _fmt_bar(name: str, v: float) -> str:
    if not math.isfinite(v):
        return "diverged"
    if name in ("positive_gain", "accuracy_gain"):
        return f"{v * 100:+.0f} pts"
    if name == "distinct_2_change":
        return f"{v * 100:.0f} %"
    return f"{v:.2f}"


def markdown(summary: dict, impl: str, profile: str, preset: str) -> str:
    """The seed table: one block per unit, a row per seed, then mean and worst (the bar row)."""
    lines = [f"Seed table · implementation: {impl} · profile {profile} · preset {preset}", ""]
    for unit, e in summary.items():
        bars = BARS[unit]
        metric_names = list(e["seeds"][0].get("metrics") or {}) or ["positive_fraction"]
        head = ["seed", *metric_names, *(b.label for b in bars), "seconds"]
        lines += [f"**{unit} {NAMES[unit]}**", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for r in e["seeds"]:
            if "error" in r:
                cells = [str(r["seed"]), f"FAILED: {r['error'].splitlines()[0][:60]}"]
                cells += [""] * (len(head) - 2)
            else:
                cells = [str(r["seed"]), *(_fmt_metric(r["metrics"].get(k)) for k in metric_names)]
                cells += [
                    _fmt_bar(b.name, r["bars"][b.name]["value"]) + ("" if r["bars"][b.name]["met"] else " ✗")
                    for b in bars
                ]
                cells.append(f"{r.get('seconds', 0):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        pad = [""] * len(metric_names)
        lines.append(
            "| mean | " + " | ".join(pad + [_fmt_bar(b.name, e["mean"][b.name]) for b in bars]) + " | |"
        )
        worst = [_fmt_bar(b.name, e["worst"][b.name]) + (" ✓" if e["met"][b.name] else " ✗") for b in bars]
        lines.append("| **worst** | " + " | ".join(pad + worst) + " | |")
        verdict = (
            "every bar met by the worst seed"
            if e["all_met"]
            else "MISSED: " + ", ".join(b.label for b in bars if not e["met"][b.name])
        )
        lines += ["", f"{unit}: {verdict}", ""]
    return "\n".join(lines)


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def write_table(out: Path, impl: str, profile: str, preset: str) -> dict:
    """Rebuild ``seeds.md`` / ``seeds.json`` (``seeds_alt.*`` for --impl alt) from every run file
    of `impl` in ``out/runs``; returns the summary."""
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob(f"{impl}_*_seed*.json"))]
    runs = [r for r in runs if r.get("profile", profile) == profile and r.get("preset", preset) == preset]
    summary = summarize(runs)
    stem = "seeds" if impl == "solutions" else f"seeds_{impl}"
    (out / f"{stem}.md").write_text(markdown(summary, impl, profile, preset) + "\n")
    doc = {"impl": impl, "profile": profile, "preset": preset, "units": summary}
    (out / f"{stem}.json").write_text(json.dumps(_jsonable(doc), indent=2))
    return summary


# --------------------------------------------------------------------------- the command
def activate(impl: str) -> None:
    """Solutions everywhere; with "alt", PPO's and GRPO's exercises from alt_impl on top."""
    import course_lib

    course_lib.use_solutions()
    if impl == "alt":
        from course_instructor import alt_impl

        alt_impl.install()


def ensure_start(profile, preset: str) -> str:
    """The SFT checkpoint the notebooks start from (``$COURSE_CHECKPOINTS/sft``): found, or trained
    now with notebook 03's recipe (``sft.quick_train``, seed 0)."""
    from course_lib.core import evaluation

    found = evaluation.checkpoint_or_train("sft", profile, preset)
    return f"{found['path']} ({found['origin']})"


def parse_list(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError(f"course seeds: --{what} is empty")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course seeds", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--units", default=",".join(UNITS), help="comma-separated, of 05,06,07,09 (default all)")
    ap.add_argument("--impl", choices=IMPLS, default="solutions", help="exercise implementation")
    ap.add_argument("--profile", choices=["tiny", "gpu"], default="tiny")
    ap.add_argument("--preset", choices=["quick", "medium", "full"], default="quick")
    ap.add_argument("--out", default=str(REPO / "runs" / "seeds"), help="output folder (default runs/seeds)")
    ap.add_argument(
        "--checkpoints", default=None, help="checkpoint folder with the SFT start (default OUT/checkpoints)"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as the notebooks)")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in parse_list(args.seeds, "seeds")]
        units = [f"{int(u):02d}" for u in parse_list(args.units, "units")]
    except ValueError as e:
        print(f"course seeds: {e}", file=sys.stderr)
        return 2
    bad = [u for u in units if u not in UNITS]
    if bad:
        print(
            f"course seeds: no seed runs for unit(s) {bad}; choose from {', '.join(UNITS)}", file=sys.stderr
        )
        return 2
    out = Path(args.out).resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    os.environ["COURSE_CHECKPOINTS"] = str(Path(args.checkpoints or out / "checkpoints").resolve())
    os.environ["COURSE_PROFILE"] = args.profile
    import torch

    from course_lib.core.config import get_profile

    torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    activate(args.impl)
    if set(units) - {"09"}:  # 05-07 start from the unit-03 SFT checkpoint; 09 from assets/tiny_reason
        print("start:", ensure_start(profile, args.preset), flush=True)
    failed = False
    for unit in units:
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                run = run_unit(unit, seed, profile, args.preset)
            except Exception as e:  # noqa: BLE001 - a diverged or broken run is a row of the table
                traceback.print_exc()
                run = {"unit": unit, "seed": seed, "error": f"{type(e).__name__}: {e}"[:2000]}
                run["seconds"] = round(time.perf_counter() - t0, 1)
                failed = True
            run.update(impl=args.impl, profile=args.profile, preset=args.preset, threads=args.threads)
            (out / "runs" / f"{args.impl}_{unit}_seed{seed}.json").write_text(
                json.dumps(_jsonable(run), indent=2)
            )
            bars = judge(unit, run)
            print(
                f"[{unit} seed {seed}] {run['seconds']:.0f}s "
                + " · ".join(
                    f"{k} {_fmt_bar(k, v['value'])}{'' if v['met'] else ' MISSED'}" for k, v in bars.items()
                ),
                flush=True,
            )
    summary = write_table(out, args.impl, args.profile, args.preset)
    stem = "seeds" if args.impl == "solutions" else f"seeds_{args.impl}"
    print((out / f"{stem}.md").read_text())
    print(f"table: {out / stem}.md, {out / stem}.json")
    missed = [u for u, e in summary.items() if not e["all_met"]]
    if missed:
        print(f"course seeds: bars missed by the worst seed in unit(s) {', '.join(missed)}", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
