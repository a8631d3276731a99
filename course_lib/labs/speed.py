"""Ours-vs-TRL speed inside a notebook (units 03, 04 and 06): both loops back to back, several times.

A single pair of runs on a laptop says little: the machine's load changes between two cells, and a
run's first steps warm caches. :func:`compare_speed` therefore runs the two trainers alternately
(ours, TRL, TRL, ours, ...) `repeats` times on the same short setting, takes each run's median
seconds per step (first step dropped, ``_loop.median_step_seconds``), and reports the ratio
TRL / ours of every repeat with its spread. It is a look, not a benchmark: ``course bench`` (run
alone on an idle machine) is the measurement the course quotes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from course_lib.core.utils import progress


def compare_speed(run_ours: Callable[[], Any], run_trl: Callable[[], Any], repeats: int = 3) -> dict:
    """Call ``run_ours()`` and ``run_trl()`` alternately `repeats` times each (the order flips every
    repeat, so neither always runs first); each returns a trainer result with a per-step
    ``seconds`` history (a trainer ``Run``: ``run.seconds_per_step`` is its median seconds per
    step, first step dropped).

    Returns ``{"ours": [s/step per repeat], "trl": [...], "ratio": [TRL/ours per repeat],
    "ratio_median", "ratio_min", "ratio_max", "repeats", "wall_seconds"}``.
    """
    if repeats < 1:
        raise ValueError(f"compare_speed: repeats must be >= 1, got {repeats}")
    t0 = time.perf_counter()
    ours: list[float] = []
    trl: list[float] = []
    bar = progress(total=2 * repeats, desc="timing ours and TRL, back to back")
    for r in range(repeats):
        order = [("ours", run_ours), ("trl", run_trl)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            s = fn().seconds_per_step
            if s != s:
                raise RuntimeError(f"compare_speed: the {name} run timed no step")
            (ours if name == "ours" else trl).append(s)
            bar.update(1)
    bar.close()
    ratio = [t / o for o, t in zip(ours, trl)]
    return {
        "ours": ours,
        "trl": trl,
        "ratio": ratio,
        "ratio_median": statistics.median(ratio),
        "ratio_min": min(ratio),
        "ratio_max": max(ratio),
        "repeats": repeats,
        "wall_seconds": time.perf_counter() - t0,
    }


def describe(result: dict) -> str:
    """One paragraph for the notebook: the ratio with its spread, and where the real number is."""
    n = result["repeats"]
    spread = (
        f"{result['ratio_min']:.2f}–{result['ratio_max']:.2f} over {n} back-to-back repeats"
        if n > 1
        else "1 repeat: no spread"
    )
    return (
        f"seconds per step (median of each run): ours {statistics.median(result['ours']):.3f}, "
        f"TRL {statistics.median(result['trl']):.3f}\n"
        f"TRL / ours = {result['ratio_median']:.2f} ({spread}).\n"
        "A look on this machine under its current load, not a benchmark: `course bench`, run alone "
        "on an idle machine, is the measurement."
    )


def plot_speed(ax, result: dict, ylabel: str = "seconds / step (median of a run)") -> None:
    """Draw a :func:`compare_speed` result on `ax`: one grey line per back-to-back pair (ours at
    x = 0, TRL at x = 1, y = median seconds per step of each run, from 0 up), titled with the
    ratio TRL / ours (median and range over the repeats)."""
    for k, (o, t) in enumerate(zip(result["ours"], result["trl"])):
        ax.plot(
            [0, 1], [o, t], "o-", color="gray", alpha=0.6, label="one back-to-back pair" if k == 0 else None
        )
    ax.set_xticks([0, 1], ["ours", "TRL"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.set_title(
        f"TRL / ours = {result['ratio_median']:.2f} ({result['ratio_min']:.2f}–{result['ratio_max']:.2f})"
    )


def plot_ours_vs_trl(
    ours_history: list[dict],
    trl_history: list[dict],
    result: dict,
    *,
    trl_label: str,
    ylabel: str,
    title: str,
):
    """The side-by-side figure of units 03 and 04: the training loss of both loops per step (left,
    histories of ``{"step", "loss"}`` rows) and the speed pairs of :func:`plot_speed` (right).
    Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    axes[0].plot([h["step"] for h in ours_history], [h["loss"] for h in ours_history], label="our loop")
    axes[0].plot([h["step"] for h in trl_history], [h["loss"] for h in trl_history], label=trl_label)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    plot_speed(axes[1], result)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
