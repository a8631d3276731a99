"""Notebooks report their headline numbers and figures here; `course run` collects them.

``report_metrics("05", {"positive_fraction": (0.45, 0.83), "kl_to_ref": (0.0, 0.21)})`` prints a
small table and, when $COURSE_RESULTS_DIR is set (as `course run` and the tests do), writes
``$COURSE_RESULTS_DIR/metrics_05.json`` = {"<name>": {"before": x, "after": y}}.
``claim("the KL stays below 0.5", kl < 0.5)`` prints a sentence about a run with whether it holds on
this run's numbers, so that the text never asserts a result the plotted run does not show.
``save_figure(fig, "05_reward_curve")`` saves a PNG there too. It returns None and never displays the
figure: the cell's ``plt.show()`` does. (Returning the figure would make a cell that ends with
``save_figure(...)`` display it a second time, as the value of its last expression.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def results_dir() -> Path | None:
    d = os.environ.get("COURSE_RESULTS_DIR")
    if not d:
        return None
    p = Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


def report_metrics(unit: str, metrics: dict[str, tuple[float, float]]) -> dict:
    unit = f"{int(unit):02d}"
    table = {
        k: {"before": float(b) if b is not None else None, "after": float(a)} for k, (b, a) in metrics.items()
    }
    print(f"unit {unit} headline metrics")
    for k, v in table.items():
        before = "—" if v["before"] is None else f"{v['before']:.3f}"
        print(f"  {k:<22} {before:>8} -> {v['after']:.3f}")
    d = results_dir()
    if d:
        f = d / f"metrics_{unit}.json"
        old = json.loads(f.read_text()) if f.exists() else {}
        old.update(table)
        f.write_text(json.dumps(old, indent=2))
    return table


def save_figure(fig, name: str) -> None:
    d = results_dir()
    if d:
        (d / "figures").mkdir(exist_ok=True)
        fig.savefig(d / "figures" / f"{name}.png", dpi=80, bbox_inches="tight")


def claim(statement: str, holds) -> bool:
    """Print `statement` (a sentence about this run, with its numbers in it) marked ``[yes]`` or
    ``[no]`` by `holds`; returns ``bool(holds)``. A notebook states a result this way, checked on
    the run the student is looking at, instead of in prose written for another run."""
    ok = bool(holds)
    print(f"[{'yes' if ok else 'no '}] {statement}")
    return ok
