"""Notebook 04 (reward model) executed headless with the solutions meets the unit's bars."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.notebook


def test_reward_model_notebook_meets_the_bars(run_notebook, session_checkpoints):
    run = run_notebook("04")
    m = run.metrics
    acc = m["rm_accuracy"]
    assert acc["after"] >= 0.90, m  # held-out preference accuracy
    assert acc["before"] < 0.75, m
    assert m["rm_train_seconds"]["after"] > 0, m
    assert m["seconds_per_step_ours"]["after"] > 0 and m["seconds_per_step_trl"]["after"] > 0
    assert 0 <= m["rm_accuracy_trl"]["after"] <= 1
    for fig in [
        "04_bt_loss",
        "04_rm_training",
        "04_reward_along_text",
        "04_accuracy_vs_margin",
        "04_ours_vs_trl",
    ]:
        assert f"{fig}.png" in run.figures, run.figures
    rows = [
        json.loads(x) for x in (run.dir / "analysis" / "reward_model_mistakes.jsonl").read_text().splitlines()
    ]
    assert len(rows) >= 20
    assert {"idx", "prompt", "chosen", "rejected", "reward_chosen", "reward_rejected"} <= set(rows[0])
    n_mistakes = int(m["rm_mistakes"]["after"])
    assert sum(r["reward_chosen"] <= r["reward_rejected"] for r in rows) == n_mistakes
    assert (session_checkpoints / "reward_model" / "reward_head.safetensors").exists()


def test_reward_model_notebook_gpu_path_runs_on_standins(run_notebook):
    run = run_notebook("04", profile="gpu")
    assert "rm_accuracy" in run.metrics
    assert (run.dir / "ckpt" / "reward_model" / "reward_head.safetensors").exists()
