"""Unit 06 (GRPO): the notebook is built from its builder, runs headless with the solutions on the
tiny profile, and meets the issue's bars; the gpu code path runs on local stand-ins."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "06_grpo.ipynb"


def test_notebook_structure():
    nb = nbformat.read(str(NB), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids[0] == "setup_06"
    for name in ("group_advantages", "grpo_loss", "grpo_step"):
        assert f"test_{name}" in ids, name
    assert sum(1 for i in ids if i and i.startswith("q_") and not i.endswith("_prompt")) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert src.count("save_figure(") >= 3 and "report_metrics(\"06\"" in src
    assert "FAST" in src and "train_with_trl" in src


@pytest.mark.notebook
def test_notebook_meets_the_bars(run_notebook):
    run = run_notebook("06")
    m = run.metrics
    acc, pos, d2, kl = (m[k] for k in ("arithmetic_accuracy", "positive_fraction", "distinct_2", "kl_to_ref"))
    assert acc["after"] - acc["before"] >= 0.15, acc
    assert pos["after"] - pos["before"] >= 0.30, pos
    assert abs(d2["after"] - d2["before"]) <= 0.2 * d2["before"], d2
    assert kl["after"] <= 0.5, kl
    # speed is reported side by side, never asserted (timer noise); `course bench` measures it
    assert m["seconds_per_step_ours"]["after"] > 0 and m["seconds_per_step_trl"]["after"] > 0, m
    for fig in ("06_advantages", "06_sentiment_curves", "06_arithmetic_curves", "06_ablation_scale",
                "06_ablation_beta", "06_ablation_loss_type", "06_trl_side_by_side"):
        assert f"{fig}.png" in run.figures, fig


@pytest.mark.notebook
def test_notebook_saves_both_checkpoints(run_notebook, session_checkpoints):
    run_notebook("06")
    for name in ("grpo", "grpo_arithmetic"):
        assert (session_checkpoints / name / "config.json").exists(), name


@pytest.mark.notebook
def test_notebook_gpu_path_on_standins(run_notebook):
    run = run_notebook("06", profile="gpu")
    assert {"arithmetic_accuracy", "positive_fraction", "distinct_2", "kl_to_ref"} <= set(run.metrics)
    assert (run.dir / "ckpt" / "grpo" / "config.json").exists()
