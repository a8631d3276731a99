"""`course run`: execute the source notebooks headless with the solutions and collect results.

    course run                                   # every unit, tiny profile, quick preset -> runs/latest
    course run --profile gpu --preset full --units 05,06 --out runs/gpu

For each unit notebook ``notebooks/NN_*.ipynb`` (in order) it runs
:func:`course_instructor.execute.execute_notebook` with ``COURSE_LIB_SOLUTIONS=1``,
``COURSE_RESULTS_DIR=DIR``, ``COURSE_PROFILE``, ``COURSE_PRESET`` and
``COURSE_CHECKPOINTS=DIR/checkpoints`` (later units find the checkpoints of earlier ones), saves
the executed notebook as ``DIR/NN_name.ipynb``, collects the ``DIR/metrics_NN.json`` that the
notebook wrote through :func:`course_lib.core.report.report_metrics`, and writes ``DIR/results.json``::

    {"profile": "tiny", "preset": "quick",
     "units": {"05": {"seconds": 212.4, "metrics": {"positive_fraction": {"before": 0.45, "after": 0.83}}}}}

A unit that fails is recorded with its error (``"error": "..."``) and the run goes on with the
next one; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def unit_notebooks(source_dir: Path | None = None, units: list[str] | None = None) -> list[tuple[str, Path]]:
    source_dir = Path(source_dir or REPO / "notebooks")
    found = [(p.name[:2], p) for p in sorted(source_dir.glob("[0-9][0-9]_*.ipynb"))]
    if units:
        wanted = {f"{int(u):02d}" for u in units}
        missing = wanted - {u for u, _ in found}
        if missing:
            raise FileNotFoundError(f"no notebook for unit(s) {sorted(missing)} in {source_dir}")
        found = [(u, p) for u, p in found if u in wanted]
    return found


def _error_text(e: BaseException) -> str:
    """The useful part of a notebook failure (nbclient puts the cell's traceback in the message)."""
    msg = str(e).strip()
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    tail = "\n".join(lines[-15:]) if lines else repr(e)
    return f"{type(e).__name__}: {tail}"[-3000:]


def run(out: Path, profile: str = "tiny", preset: str = "quick", units: list[str] | None = None,
        source_dir: Path | None = None, timeout: int = 3600, quiet: bool = False) -> dict:
    from course_instructor.execute import execute_notebook

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"profile": profile, "preset": preset, "units": {}}
    env = {"COURSE_RESULTS_DIR": str(out), "COURSE_PROFILE": profile, "COURSE_PRESET": preset,
           "COURSE_CHECKPOINTS": str(out / "checkpoints")}
    for unit, nb in unit_notebooks(source_dir, units):
        metrics_file = out / f"metrics_{unit}.json"
        if metrics_file.exists():
            metrics_file.unlink()             # never report a previous run's numbers
        if not quiet:
            print(f"[{unit}] {nb.name} ...", flush=True)
        entry: dict = {"notebook": nb.name}
        t0 = time.time()
        try:
            _, secs = execute_notebook(nb, out / nb.name, solutions=True, env=env, timeout=timeout)
            entry["seconds"] = round(secs, 1)
        except Exception as e:  # noqa: BLE001 - record, go on with the next unit
            entry["seconds"] = round(time.time() - t0, 1)
            entry["error"] = _error_text(e)
            if not quiet:
                print(f"[{unit}] FAILED: {entry['error'].splitlines()[0]}", flush=True)
        try:
            entry["metrics"] = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        except ValueError:
            entry["metrics"] = {}
            entry.setdefault("error", f"unreadable {metrics_file.name}")
        results["units"][unit] = entry
        (out / "results.json").write_text(json.dumps(results, indent=2))   # partial results survive
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def table(results: dict) -> str:
    lines = [f"profile {results['profile']} · preset {results['preset']}",
             f"{'unit':<5} {'seconds':>8}  {'metric':<26} {'before':>8} {'after':>8}"]
    for unit, e in results["units"].items():
        secs = f"{e.get('seconds', 0):.0f}"
        metrics = e.get("metrics") or {}
        if "error" in e:
            lines.append(f"{unit:<5} {secs:>8}  FAILED: {e['error'].splitlines()[0][:70]}")
        if not metrics and "error" not in e:
            lines.append(f"{unit:<5} {secs:>8}  (no metrics reported)")
        for i, (name, v) in enumerate(metrics.items()):
            b = "—" if v.get("before") is None else f"{v['before']:.3f}"
            a = "—" if v.get("after") is None else f"{v['after']:.3f}"
            lead = f"{unit:<5} {secs:>8}" if i == 0 and "error" not in e else " " * 14
            lines.append(f"{lead}  {name:<26} {b:>8} {a:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=["tiny", "gpu"], default="tiny")
    ap.add_argument("--preset", choices=["quick", "medium", "full"], default="quick")
    ap.add_argument("--units", default=None, help="comma-separated units, e.g. 05,06 (default: all)")
    ap.add_argument("--out", default=str(REPO / "runs" / "latest"), help="output folder (default runs/latest)")
    ap.add_argument("--source", default=str(REPO / "notebooks"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds (default 3600)")
    args = ap.parse_args(argv)
    units = [u.strip() for u in args.units.split(",") if u.strip()] if args.units else None
    try:
        results = run(Path(args.out), args.profile, args.preset, units, Path(args.source), args.timeout)
    except FileNotFoundError as e:
        print(f"course run: {e}", file=sys.stderr)
        return 2
    except Exception:  # pragma: no cover - unexpected, but say where
        traceback.print_exc()
        return 1
    print(table(results))
    print(f"results: {Path(args.out) / 'results.json'}")
    failed = [u for u, e in results["units"].items() if "error" in e]
    if failed:
        print(f"FAILED units: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
