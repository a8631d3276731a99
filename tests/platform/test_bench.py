"""`course bench`: runs with a tiny number of steps; checks the JSON schema, not the timings."""

from __future__ import annotations

import json
import math

import pytest

from course_instructor import bench


@pytest.fixture
def solutions_restored():
    """`course bench` switches the solutions on (its default); put the switch back afterwards."""
    import course_lib

    before = course_lib.solutions_active()
    yield
    course_lib.use_solutions(before)


@pytest.mark.slow
def test_bench_writes_side_by_side_numbers(tmp_path, capsys, solutions_restored):
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "profile": "tiny",
                "preset": "quick",
                "units": {"05": {"seconds": 61.5, "metrics": {}}, "06": {"seconds": 70.0, "metrics": {}}},
            }
        )
    )
    grading = tmp_path / "grading.json"
    grading.write_text(json.dumps({"submissions": [{"seconds": 10.0}, {"seconds": 14.0}]}))
    rc = bench.main(
        [
            "--steps",
            "2",
            "--batch",
            "4",
            "--num-generations",
            "2",
            "--threads",
            "2",
            "--out",
            str(tmp_path / "b"),
            "--results",
            str(results),
            "--autograde",
            str(grading),
        ]
    )
    out = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert rc == 0, out
    for algo in ("sft", "grpo", "dpo"):
        r = out[algo]
        assert "error" not in r, r
        for key in ("ours_s_per_step", "trl_s_per_step", "ratio_trl_over_ours"):
            assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (algo, key, r)
        assert r["ratio_trl_over_ours"] == pytest.approx(r["trl_s_per_step"] / r["ours_s_per_step"])
        assert r["steps"] == 2
    assert out["grpo"]["batch"] == 4 and out["grpo"]["num_generations"] == 2
    assert out["settings"]["exercise_code"] == "solutions" and out["settings"]["profile"] == "tiny"
    assert out["notebooks"] == {"05": {"seconds": 61.5}, "06": {"seconds": 70.0}}
    assert out["autograde"]["seconds_per_submission"] == pytest.approx(12.0)
    printed = capsys.readouterr().out
    assert "TRL / ours" in printed and "grpo" in printed and "12.0 s per submission" in printed


def test_a_failing_trainer_is_reported_not_fatal(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise NotImplementedError("Exercise 3.3 (notebook 03_sft): implement `sft_loss`")

    monkeypatch.setitem(bench.BENCHES, "sft", boom)
    res = bench.run(steps=2, batch=2, algos=["sft"], results=tmp_path / "missing.json")
    assert res["sft"]["error"].startswith("NotImplementedError: Exercise 3.3")
    assert "failed: NotImplementedError" in bench.format_table(res)
    assert res["notebooks"] == {} and res["autograde"] == {}


def test_collected_timings_parsing(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"units": {"01": {"seconds": 3}, "02": {"metrics": {}}}}))
    assert bench.notebook_runtimes(p) == {"01": {"seconds": 3.0}}
    assert bench.notebook_runtimes(None) == {}
    p.write_text(json.dumps({"seconds_per_submission": 7.5}))
    assert bench.autograde_times(p)["seconds_per_submission"] == 7.5
    p.write_text(json.dumps(["not", "a", "dict"]))
    assert bench.autograde_times(p) == {}


def test_bench_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench.main(["--steps", "1"])
    with pytest.raises(ValueError, match="unknown trainer 'ppo'"):
        bench.run(steps=2, algos=["ppo"])
