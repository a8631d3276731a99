"""Unit 09 (reasoning with verifiable rewards): the notebook is built from its source, runs headless
with the solutions on the tiny profile and meets the unit's bars; the gpu code path (GSM8K, R1-zero
prompt) runs on local stand-ins; the shipped start model is what `course build-tiny --reasoning`
describes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NB = ROOT / "notebooks" / "09_reasoning_rlvr.ipynb"
from course_lib.labs.reasoning import TINY_REASON_DIR  # noqa: E402

FIGURES = (
    "09_task",
    "09_clip_higher",
    "09_main_curves",
    "09_ablations",
    "09_ablation_length",
    "09_overlong",
    "09_trl_side_by_side",
)


def test_notebook_structure():
    nb = nbformat.read(str(NB), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids[0] == "setup_09"
    for name in (
        "think_format_reward",
        "answer_reward",
        "sequence_log_ratio",
        "rlvr_policy_loss",
        "dynamic_sampling_mask",
        "overlong_penalty",
        "mask_truncated_completions",
    ):
        assert f"test_{name}" in ids, name
    assert sum(1 for i in ids if i and i.startswith("q_") and not i.endswith("_prompt")) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r'report_metrics\(\s*"09"', src) and "FAST" in src and "FULL_SWEEP" in src
    for fig in FIGURES:
        assert f'"{fig}"' in src, fig


def test_shipped_start_model_is_reachable_but_not_solved():
    """build_info.json of assets/tiny_reason (written by `course build-tiny --reasoning`): the
    start is low but not zero, the format sometimes right, and the scratchpad helps (forced
    scratchpad vs forced direct answer: measured on 256 held-out problems at the build)."""
    from course_lib.labs import reasoning

    path = reasoning.TINY_REASON_DIR / "build_info.json"
    assert path.exists(), f"{path.parent} is missing: build it with `course build-tiny --reasoning`"
    info = json.loads(path.read_text())
    start = info["start"]
    assert 0.05 <= start["heldout_accuracy"] <= 0.5, start  # reachable; room for the +30-point bar
    assert 0.2 <= start["format_rate"] <= 0.9, start
    assert start["accuracy_forced_scratchpad"] >= start["accuracy_forced_direct"] + 0.3, start
    assert (reasoning.TINY_REASON_DIR / "model.safetensors").stat().st_size < 10e6


@pytest.mark.notebook
def test_notebook_meets_the_bars(run_notebook):
    run = run_notebook("09")
    m = run.metrics
    acc, fmt, length = (m[k] for k in ("heldout_accuracy", "format_rate", "response_length"))
    assert acc["after"] - acc["before"] >= 0.30, acc
    assert fmt["after"] >= 0.95, fmt
    assert length["after"] > length["before"], length  # the scratchpad took over
    assert m["train_seconds"]["after"] > 0
    assert m["seconds_per_step_ours"]["after"] > 0 and m["seconds_per_step_trl"]["after"] > 0, m  # TRL ran
    for fig in FIGURES:
        assert f"{fig}.png" in run.figures, fig


@pytest.mark.notebook
def test_notebook_gpu_path_on_standins(run_notebook):
    run = run_notebook("09", profile="gpu")
    assert {"heldout_accuracy", "format_rate", "response_length"} <= set(run.metrics)
    assert (run.dir / "ckpt" / "rlvr_gsm8k" / "config.json").exists()


# Seeds 1 and 2 of the notebook's main run: tests/trainers/test_seeds.py (seeds.UNITS includes 09, with
# the accuracy-gain and format-rate bars of seeds.BARS["09"]).


def test_start_model_ships_with_the_package():
    """assets/tiny_reason is committed and in the package data (students' installs get it)."""
    assert (TINY_REASON_DIR / "model.safetensors").is_file() and (
        TINY_REASON_DIR / "tokenizer.json"
    ).is_file()
    assert '"assets/tiny_reason/*"' in (ROOT / "pyproject.toml").read_text()


def test_missing_start_model_falls_back_loudly_and_course_run_skips(tmp_path, monkeypatch):
    """If assets/tiny_reason is missing (a damaged install): the notebook runs on the general tiny
    model with a NOTE (students and the grader are never stopped by a missing file), and `course
    run` skips unit 09 with the reason instead of reporting numbers that mean nothing."""
    from course_instructor import runner
    from course_lib.core.config import get_profile
    from course_lib.labs import reasoning

    monkeypatch.setattr(reasoning, "TINY_REASON_DIR", tmp_path / "absent")
    assert not reasoning.start_model_shipped()
    with pytest.warns(UserWarning, match="is missing from this installation"):
        model, tok = reasoning.load_start_model(profile=get_profile("tiny"))
    assert model.config.vocab_size == len(tok)
    assert "build-tiny --reasoning" in runner._not_runnable("09", "tiny")
    assert runner._not_runnable("09", "gpu") is None and runner._not_runnable("06", "tiny") is None
    (tmp_path / "absent").mkdir()
    (tmp_path / "absent" / "config.json").write_text("{}")
    assert reasoning.start_model_shipped() and runner._not_runnable("09", "tiny") is None


def test_build_reasoning_rows_keep_each_document_at_position_0(tmp_path):
    """`course build-tiny --reasoning` trains on one document per row (unpacked): each row is the
    document's tokens from position 0, then EOS, then padding that is never learned."""
    from course_instructor import tiny_model
    from course_lib.core.models import load_policy
    from course_lib.labs import reasoning

    docs = reasoning.pretraining_documents(n_documents=64, seed=0)
    assert any("<think>I add them in my head.</think>" in d for d in docs)
    assert not any(
        reasoning.prompt(p["numbers"]) in d for p in reasoning.make_problems("heldout", 64) for d in docs
    )
    info = tiny_model.build(out=tmp_path, steps=2, batch_size=4, docs=docs, packed=False, desc="smoke")
    assert info["packed"] is False and info["block"] is None and info["steps"] == 2
    model, tok = load_policy(tmp_path, profile=None)
    rows = tiny_model.rows(docs[:3], tok)
    for row, doc in zip(rows.tolist(), docs[:3]):
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        assert row[: len(ids) + 1] == ids + [tok.eos_token_id]
        assert set(row[len(ids) + 1 :]) <= {tok.pad_token_id}
    assert model.config.vocab_size == len(tok)


def test_end_of_run_accuracy_is_the_mean_of_the_last_three_evaluations():
    """The notebook and `course seeds` report this, not the last evaluation (one random draw of 64
    problems): a run at 0.89, 0.78, 0.94, 0.77 ended at (0.78 + 0.94 + 0.77) / 3."""
    from course_lib.labs import reasoning

    hist = [{"step": s} for s in range(1, 41)]
    for step, acc in ((10, 0.89), (20, 0.78), (30, 0.94), (40, 0.77)):
        hist[step - 1]["eval_accuracy"] = acc
    assert reasoning.END_OF_RUN_EVALS == 3
    assert reasoning.end_of_run_accuracy(hist) == pytest.approx((0.78 + 0.94 + 0.77) / 3)
    assert reasoning.end_of_run_accuracy(hist[:10]) == pytest.approx(0.89)  # fewer evaluations: all of them
    with pytest.raises(ValueError, match="no held-out evaluation"):
        reasoning.end_of_run_accuracy(hist[:9])
