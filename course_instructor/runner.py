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
next one; the exit code is then 1. Ctrl-C (SIGINT) or SIGTERM stops the run: the running
notebook's kernel is shut down, results.json records ``"interrupted": "NN"`` and the exit code is
130 (143 for SIGTERM).

Memory: each notebook's kernel is shut down when the notebook ends, so at any time the run holds
the runner and one kernel. :class:`PeakRSS` samples the resident memory of the runner plus all its
descendants (psutil, every 0.5 s) and results.json records the peak of that sum for the whole run
(``"peak_rss_mb"``) and for each unit (``units.NN.peak_rss_mb``), plus
``"max_rss_mb": {"runner": ..., "largest_child": ...}`` from ``resource.getrusage`` (RUSAGE_SELF
and RUSAGE_CHILDREN: the largest finished child, i.e. the biggest kernel; not sampled, so it also
sees short spikes). ``course run`` prints them at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import threading
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


class PeakRSS:
    """Peak resident memory (MB) of this process plus all its descendants, sampled in a thread.

    ``mem.start()`` ... ``mem.stop()``; ``mem.peak_mb`` is the largest sum seen since the start,
    ``mem.take_unit_peak()`` the largest since its previous call. Sampling every `interval`
    seconds can miss a spike shorter than that; :func:`max_rss_mb` cannot, but gives no sum.
    """

    def __init__(self, interval: float = 0.5):
        import psutil

        self._proc, self._interval = psutil.Process(), interval
        self.peak_mb = self._unit_peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def sample(self) -> float:
        """Resident MB of this process and its descendants now (processes that vanish are skipped)."""
        import psutil

        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        mb = total / 2**20
        self.peak_mb, self._unit_peak_mb = max(self.peak_mb, mb), max(self._unit_peak_mb, mb)
        return mb

    def take_unit_peak(self) -> float:
        self.sample()
        peak, self._unit_peak_mb = self._unit_peak_mb, 0.0
        return round(peak, 1)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def start(self) -> PeakRSS:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; return the peak (MB, rounded to 0.1)."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return round(self.peak_mb, 1)


def max_rss_mb() -> dict:
    """getrusage's peak resident MB of this process and of its largest finished (waited-for) child."""
    kb = 1 if sys.platform != "darwin" else 1 / 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "runner": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb / 1024, 1),
        "largest_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kb / 1024, 1),
    }


def _error_text(e: BaseException) -> str:
    """The useful part of a notebook failure (nbclient puts the cell's traceback in the message)."""
    msg = str(e).strip()
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    tail = "\n".join(lines[-15:]) if lines else repr(e)
    return f"{type(e).__name__}: {tail}"[-3000:]


def run(
    out: Path,
    profile: str = "tiny",
    preset: str = "quick",
    units: list[str] | None = None,
    source_dir: Path | None = None,
    timeout: int = 3600,
    quiet: bool = False,
) -> dict:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"profile": profile, "preset": preset, "units": {}}
    env = {
        "COURSE_RESULTS_DIR": str(out),
        "COURSE_PROFILE": profile,
        "COURSE_PRESET": preset,
        "COURSE_CHECKPOINTS": str(out / "checkpoints"),
    }
    notebooks = unit_notebooks(source_dir, units)
    unit, mem = None, PeakRSS().start()
    try:
        for unit, nb in notebooks:
            results["units"][unit] = entry = {"notebook": nb.name}
            why = _not_runnable(unit, profile)
            if why:
                entry["skipped"] = why
                if not quiet:
                    print(f"[{unit}] {nb.name} skipped: {why}", flush=True)
                continue
            _run_unit(unit, nb, out, env, timeout, quiet, entry)
            entry["peak_rss_mb"] = mem.take_unit_peak()
            (out / "results.json").write_text(json.dumps(results, indent=2))  # partial results survive
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through main's handler
        results["interrupted"] = unit
        raise
    finally:
        results["peak_rss_mb"] = mem.stop()
        results["max_rss_mb"] = max_rss_mb()
        (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _not_runnable(unit: str, profile: str) -> str | None:
    """Why a unit's notebook cannot give its results on this profile, or None.

    Unit 09 on the tiny profile needs ``assets/tiny_reason``; without it the notebook runs on a
    stand-in model whose numbers mean nothing, so ``course run`` skips it and says why."""
    if unit == "09" and profile == "tiny":
        from course_lib.labs import reasoning

        if not reasoning.start_model_shipped():
            return "its start model assets/tiny_reason is missing (course build-tiny --reasoning)"
    return None


def _run_unit(unit: str, nb: Path, out: Path, env: dict, timeout: int, quiet: bool, entry: dict) -> None:
    """Execute one unit's notebook into `out` and fill `entry` (seconds, metrics, error)."""
    from course_instructor.execute import execute_notebook

    metrics_file = out / f"metrics_{unit}.json"
    if metrics_file.exists():
        metrics_file.unlink()  # never report a previous run's numbers
    if not quiet:
        print(f"[{unit}] {nb.name} ...", flush=True)
    t0 = time.time()
    try:
        executed, secs = execute_notebook(nb, out / nb.name, solutions=True, env=env, timeout=timeout)
        entry["seconds"] = round(secs, 1)
        entry["longest_cell"] = longest_cell(executed)
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


def longest_cell(nb) -> dict:
    """``{"seconds", "cell", "line"}`` of the slowest code cell of an executed notebook (nbclient's
    timestamps in each cell's ``metadata.execution``; "cell" counts code cells from 1, as a student
    counts them, and "line" is the cell's first line of code)."""
    import datetime

    best = {"seconds": 0.0, "cell": 0, "line": ""}
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code, 1):
        t = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" not in t or "shell.execute_reply" not in t:
            continue
        start, end = (
            datetime.datetime.fromisoformat(t[k].replace("Z", "+00:00"))
            for k in ("iopub.execute_input", "shell.execute_reply")
        )
        secs = (end - start).total_seconds()
        if secs > best["seconds"]:
            lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            best = {"seconds": round(secs, 1), "cell": i, "line": (lines[0] if lines else "")[:80]}
    return best


def table(results: dict) -> str:
    lines = [
        f"profile {results['profile']} · preset {results['preset']}",
        f"{'unit':<5} {'seconds':>8}  {'metric':<26} {'before':>8} {'after':>8}",
    ]
    for unit, e in results["units"].items():
        secs = f"{e.get('seconds', 0):.0f}"
        metrics = e.get("metrics") or {}
        if "skipped" in e:
            lines.append(f"{unit:<5} {'—':>8}  skipped: {e['skipped'][:70]}")
            continue
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
    ap.add_argument(
        "--out", default=str(REPO / "runs" / "latest"), help="output folder (default runs/latest)"
    )
    ap.add_argument("--source", default=str(REPO / "notebooks"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds (default 3600)")
    args = ap.parse_args(argv)
    units = [u.strip() for u in args.units.split(",") if u.strip()] if args.units else None
    results_file = Path(args.out) / "results.json"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main_thread else None
    try:
        results = run(Path(args.out), args.profile, args.preset, units, Path(args.source), args.timeout)
    except FileNotFoundError as e:
        print(f"course run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        print(
            f"course run: stopped by {'SIGTERM' if isinstance(e, Terminated) else 'Ctrl-C'} during unit "
            f"{results.get('interrupted')}; its kernel is shut down",
            file=sys.stderr,
        )
        print(memory_line(results), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception:  # noqa: BLE001 - unexpected, but say where and exit 1
        traceback.print_exc()
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(table(results))
    print(memory_line(results))
    print(f"results: {results_file}")
    failed = [u for u, e in results["units"].items() if "error" in e]
    if failed:
        print(f"FAILED units: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the run stops like on Ctrl-C (results written)."""


def _terminated(signum, frame):
    raise Terminated("SIGTERM")


def memory_line(results: dict) -> str:
    m = results.get("max_rss_mb", {})
    return (
        f"peak memory: {results.get('peak_rss_mb', 0):.0f} MB resident (runner + kernels, sampled "
        f"every 0.5 s); getrusage: runner {m.get('runner', 0):.0f} MB, largest kernel "
        f"{m.get('largest_child', 0):.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
