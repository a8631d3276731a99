"""The docs' measured numbers come from results files (course_instructor/doc_numbers.py): the
committed docs/results/ render to exactly what docs/benchmarks.md and registry.UNIT_SECONDS say,
and the renderer itself is right on made-up results."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from course_instructor import doc_numbers, runner, seeds


def test_docs_and_registry_agree_with_the_results_files():
    problems = doc_numbers.stale()
    assert not problems, f"{problems} disagree with docs/results/: run `course doc-numbers`"


def test_each_results_file_says_where_it_came_from():
    for kind in ("run", "seeds", "bench", "quality"):
        p = doc_numbers.load(kind)["provenance"]
        assert p["date"][:2] == "20" and p["commit"] != "?" and p["command"].startswith("course "), p


def test_a_pair_formats_both_sides_and_one_side():
    pair = doc_numbers.Pair({"before": 0.4712, "after": 0.9})
    assert f"{pair}" == "0.47 → 0.90" and f"{pair:.1f}" == "0.5 → 0.9" and f"{pair.after:.3f}" == "0.900"
    assert f"{doc_numbers.Pair({'before': None, 'after': 2.0})}" == "— → 2.00"


def _run() -> dict:
    metrics = {
        "positive_fraction": {"before": 0.47, "after": 0.94},
        "distinct_2": {"before": 0.455, "after": 0.396},
        "kl_to_ref": {"before": None, "after": 0.17},
    }
    return {
        "units": {
            "05": {
                "seconds": 234.6,
                "metrics": metrics,
                "longest_cell": {"seconds": 80.2, "cell": 12, "line": "run = x()"},
            },
            "08": {"seconds": 12.2, "metrics": {}},
        }
    }


def test_the_course_run_table():
    table = doc_numbers.course_run_table(_run())
    assert (
        "| 05 | 235 | 80 (cell 12, `run = x()`) | positive fraction 0.47 → 0.94, "
        "distinct-2 0.455 → 0.396, KL to reference 0.17 nats |" in table
    )
    assert "| 08 | 12 | — |" in table


def test_a_headline_names_the_metric_it_misses():
    with pytest.raises(KeyError, match="unit 05's headline needs metric 'kl_to_ref'"):
        doc_numbers.headline(
            "05",
            {
                "metrics": {
                    "positive_fraction": {"before": 0, "after": 1},
                    "distinct_2": {"before": 0, "after": 1},
                }
            },
        )
    assert doc_numbers.headline("05", {"error": "RuntimeError: boom\nmore"}) == "FAILED: RuntimeError: boom"


def test_render_replaces_only_the_marked_block():
    text = "a\n<!-- t -->\nold\n<!-- /t -->\nb 0.5\n"
    assert doc_numbers.render(text, {"t": "new"}) == "a\n<!-- t -->\nnew\n<!-- /t -->\nb 0.5\n"
    empty = "<!-- t -->\n<!-- /t -->\n"
    assert doc_numbers.render(empty, {"t": "x\ny"}) == "<!-- t -->\nx\ny\n<!-- /t -->\n"
    assert (
        doc_numbers.render(doc_numbers.render(empty, {"t": "x"}), {"t": "x"})
        == "<!-- t -->\nx\n<!-- /t -->\n"
    )
    with pytest.raises(ValueError, match="no <!-- u -->"):
        doc_numbers.render(text, {"u": "x"})


def test_registry_seconds_are_rewritten_in_place():
    text = 'A = 1\nUNIT_SECONDS: dict[str, int | None] = {\n    "01": 14,\n}\nB = 2\n'
    assert doc_numbers.registry_text(text, {"01": 20, "02": 9}) == (
        'A = 1\nUNIT_SECONDS: dict[str, int | None] = {\n    "01": 20,\n    "02": 9,\n}\nB = 2\n'
    )


def test_the_seeds_table_shows_every_seed_and_the_worst_against_the_bar():
    def run(seed, gain, kl):
        return {
            "unit": "06",
            "seed": seed,
            "metrics": {
                "positive_fraction": {"before": 0.5, "after": 0.5 + gain},
                "distinct_2": {"before": 0.5, "after": 0.45},
                "kl_to_ref": {"before": 0.0, "after": kl},
            },
        }

    summary = seeds.summarize([run(0, 0.40, 0.2), run(1, 0.35, 0.3), run(2, 0.25, 0.25)])
    table = doc_numbers.seeds_table([{"impl": "solutions", "units": summary}])
    row = next(line for line in table.splitlines() if line.startswith("| 06"))
    assert "+40 pts, 10 %, 0.20" in row and "+35 pts, 10 %, 0.30" in row
    assert "+25 pts ≥ +30 pts, 10 % ≤ 20 %, 0.30 ≤ 0.50: MISSED" in row


def test_save_adds_provenance_and_drops_machine_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_numbers, "RESULTS", tmp_path / "results")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(
        json.dumps({"units": {"01": {"notebook": "/x/01.ipynb", "seconds": 3}}})
    )
    saved = json.loads(doc_numbers.save("run", tmp_path / "run").read_text())
    assert "notebook" not in saved["units"]["01"] and saved["units"]["01"]["seconds"] == 3
    assert saved["provenance"]["command"] == "course run" and saved["provenance"]["file"] == "course_run.json"
    with pytest.raises(FileNotFoundError, match="run `course bench`"):
        doc_numbers.save("bench", tmp_path / "nothing")


def test_longest_cell_reads_nbclients_timestamps():
    nb = nbformat.v4.new_notebook()

    def cell(src, start, end):
        c = nbformat.v4.new_code_cell(src)
        c.metadata["execution"] = {
            "iopub.execute_input": f"2026-12-05T10:00:{start:02d}.000000Z",
            "shell.execute_reply": f"2026-12-05T10:00:{end:02d}.500000Z",
        }
        return c

    nb.cells = [
        nbformat.v4.new_markdown_cell("x"),
        cell("a = 1", 0, 1),
        cell("# train\nrun = train()", 1, 31),
    ]
    assert runner.longest_cell(nb) == {"seconds": 30.5, "cell": 2, "line": "run = train()"}


def test_the_command_checks_and_names_what_is_stale(monkeypatch, capsys, tmp_path):
    real_stale = doc_numbers.stale
    monkeypatch.setattr(doc_numbers, "stale", lambda: ["docs/benchmarks.md"])
    assert doc_numbers.main(["--check"]) == 1
    assert "stale: docs/benchmarks.md" in capsys.readouterr().out
    # no results files: exit 2 naming the file and the command that makes it
    monkeypatch.setattr(doc_numbers, "stale", real_stale)
    monkeypatch.setattr(doc_numbers, "RESULTS", Path(tmp_path))
    assert doc_numbers.main(["--check"]) == 2
    assert "course_run.json is missing: run `course run`" in capsys.readouterr().err
    assert doc_numbers.main(["--save-run", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_partial_course_run_replaces_only_its_units(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_numbers, "RESULTS", tmp_path / "results")
    full = {"profile": "tiny", "preset": "quick", "units": {"01": {"seconds": 10}, "05": {"seconds": 200}}}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(full))
    doc_numbers.save("run", tmp_path / "a")
    part = {"profile": "tiny", "preset": "quick", "units": {"05": {"seconds": 150}}}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(part))
    saved = json.loads(doc_numbers.save("run", tmp_path / "b").read_text())
    assert {u: e["seconds"] for u, e in saved["units"].items()} == {"01": 10, "05": 150}
    assert saved["units"]["01"]["measured"]["commit"] and "units 05" in saved["provenance"]["command"]


def test_grading_speed_is_rendered_from_its_file():
    g = {
        "seconds_per_submission": 43.1,
        "notebook_jobs": 2,
        "submissions": [
            {"solved": True, "seconds": 53.9, "code_seconds": 7.0},
            {"solved": False, "seconds": 32.3, "code_seconds": 9.0},
        ],
        "provenance": {
            "command": "x",
            "cpus": 2,
            "date": "2026-12-05",
            "commit": "abc",
            "file": "grading.json",
        },
    }
    text = doc_numbers.grading_summary(g)
    assert text.startswith("43.1 s per submission (2 made-up submissions") and "solutions copy 53.9 s" in text
    assert "untouched stubs 32.3 s" in text and "code grading 8.0 s" in text


def test_the_shipped_models_tables_come_from_their_build_info(tmp_path):
    for name in ("tiny", "tiny_reason"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x" * 2_500_000)
        info = {
            "params": 958848,
            "steps": 3000,
            "batch_size": 16,
            "block": 128,
            "build_seconds": 928.2,
            "final_loss": 0.9913,
        }
        if name == "tiny_reason":
            info.update(block=None, threads=1, start={k: 0.5 for _, k in doc_numbers.START_ROWS})
            info["start"]["heldout_accuracy"] = 0.421875
        (tmp_path / name / "build_info.json").write_text(json.dumps(info))
    table = doc_numbers.models_table(tmp_path)
    assert "| 0.96 M | 2.5 MB | 3000 steps × batch 16 (128 tokens) | 15 min (2 cores) | 0.99 |" in table
    assert "(documents, one per row) | 15 min (2 cores, 1 thread) |" in table
    assert "| held-out accuracy | 0.42 |" in doc_numbers.reason_start_table(tmp_path)


def test_the_quality_table():
    q = {
        "positive_fraction": 0.641,
        "arithmetic_accuracy_greedy": 0.64,
        "arithmetic_accuracy_sampled": 0.484,
        "format_compliance": 0.4,
        "distinct_2": 0.318,
        "max_word_run": 4,
        "n": 256,
        "provenance": {},
    }
    table = doc_numbers.quality_table(q)
    assert "| accuracy on held-out sums, greedy / sampled | 0.64 / 0.48 |" in table
    assert "| 0.32 / 4 |" in table and "256 samples each" in table


def test_a_block_that_no_doc_holds_is_an_error(monkeypatch):
    real = doc_numbers.blocks
    monkeypatch.setattr(doc_numbers, "blocks", lambda results=None: {**real(results), "nowhere": "x"})
    with pytest.raises(ValueError, match=r"no doc has the block\(s\) \['nowhere'\]"):
        doc_numbers.rendered_docs()


def test_the_estimators_table_reports_every_run_and_a_missed_bar():
    run = {"positive_gain": 0.3, "kl_to_ref": 0.25, "grad_variance": 0.0354, "grad_noise_ratio": 0.94}
    doc = {
        "bar": "RLOO gain >= 0.8 x GRPO's",
        "met": False,
        "rloo_over_grpo_gain": {"0": 0.5},
        "seeds": {"0": {"grpo": run, "rloo": {**run, "positive_gain": 0.15}}},
        "provenance": {"command": "python -m course_instructor.estimators"},
    }
    table = doc_numbers.estimators_table(doc)
    assert "| 0 | GRPO | +0.30 | 0.25 | 0.035 | 0.94 |" in table and "| 0 | RLOO | +0.15 |" in table
    assert "**missed** (RLOO gain / GRPO gain per seed: 0.50)" in table


def test_the_overlong_table_puts_plain_first_and_states_the_bar():
    r = {
        "truncated_rate": 0.2,
        "heldout_accuracy": 0.3,
        "heldout_truncated_rate": 0.1,
        "completion_length": 25.04,
    }
    seed = {"seed": 0, "runs": {"masking": r, "plain": r}, "bars": {"truncation_drop": {"value": 0.12}}}
    doc = {
        "units": {"09_overlong": {"seeds": [seed], "all_met": True, "bar": "drop >= 0.10"}},
        "provenance": {},
    }
    table = doc_numbers.overlong_table(doc)
    assert table.index("| 0 | plain |") < table.index("| 0 | masking |")
    assert "| 0.20 | 0.30 | 0.10 | 25.0 |" in table and "drop >= 0.10: met (drop per seed: 0.12)" in table


def test_the_tools_table_puts_the_env_mask_run_first_and_states_both_bars():
    side = {"accuracy": 0.25, "tool_call_rate": 0.2, "malformed_rate": 0.04, "turns_per_episode": 1.2}
    run = {"start": side, "end": {**side, "accuracy": 0.9, "tool_call_rate": 0.95}, "seconds": 61.4}
    seed = {
        "seed": 0,
        "runs": {"env tokens in the loss": {**run, "end": side}, "env mask": run},
        "bars": {"main_gain": {"value": 0.65, "met": True}, "ablation_gap": {"value": 0.65, "met": True}},
    }
    unit = {"seeds": [seed], "all_met": False, "met": {"main_gain": True, "ablation_gap": False}, "bar": "B"}
    table = doc_numbers.tools_table({"units": {"10_tools": unit}, "provenance": {}})
    assert table.index("| 0 | env mask |") < table.index("| 0 | env tokens in the loss |")
    assert "| 0 | env mask | 0.25 → 0.90 | 0.20 → 0.95 | 0.04 → 0.04 | 1.20 → 1.20 | 61 |" in table
    assert "per seed: +0.65 (met)" in table and "+0.65 (**missed**)" in table
