"""Sharded grading (course_instructor/grading/shards.py) on made-up grade outputs, plus one
end-to-end run: 2 shards on one machine == the unsharded grades.csv, byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from course_instructor.grading import autograde, export, shards

EXERCISES = [("01", "format_reward", 2.0), ("02", "kl_estimate", 3.0), ("06", "q_written", 1.0)]


CONTESTED = {"id": "ada", "claimants": ["a.zip", "b.zip"]}


def fake_result(sid: str, k: int) -> dict:
    """What Grader.grade_all returns, with made-up scores (a written answer pending: None); an id
    ``ada-conflict-...`` is a claimant of the contested id ``ada``."""
    rows = [
        {
            "student_id": sid,
            "unit": u,
            "exercise": e,
            "score": None if e.startswith("q_") else (k * 0.37 + i) % (m + 0.01),
            "max_score": m,
        }
        for i, (u, e, m) in enumerate(EXERCISES)
    ]
    conflict = CONTESTED if sid.startswith("ada-conflict-") else None
    return {
        "student_id": sid,
        "rows": rows,
        "seconds": 1.0 + k,
        "details": {},
        "status": "ok",
        "id_conflict": conflict,
    }


def write_out(out: Path, results: list[dict], feedback: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    export.write_results(results, out)
    if feedback:
        for r in results:
            (out / "feedback" / r["student_id"]).mkdir(parents=True, exist_ok=True)
            (out / "feedback" / r["student_id"] / "01_x.html").write_text(f"<p>{r['student_id']}</p>")


def make_shards(tmp: Path, ids: list[str], n: int) -> list[Path]:
    """Shard folders as `--shard i/n` would leave them (grades, feedback, shard.json)."""
    names = [f"{sid}.zip" for sid in ids]
    dirs = []
    for i in range(1, n + 1):
        mine = shards.select(list(enumerate(ids)), i, n)
        results = [fake_result(sid, k) for k, sid in mine]
        d = tmp / f"shard-{i}"
        write_out(d, results)
        shards.write_manifest(d, i, n, names, results)
        dirs.append(d)
    return dirs


def test_parse_shard():
    assert shards.parse_shard("2/8") == (2, 8) and shards.parse_shard(" 1 / 1 ") == (1, 1)
    for bad, msg in [
        ("0/2", "numbered from 1"),
        ("3/2", "1 <= i <= n"),
        ("1-2", "look like i/n"),
        ("a/b", "look like i/n"),
        ("1/0", "1 <= i <= n"),
    ]:
        with pytest.raises(ValueError, match=msg):
            shards.parse_shard(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_select_partitions_in_stable_order(n):
    items = [f"s{i:02d}" for i in range(10)]
    parts = [shards.select(items, i, n) for i in range(1, n + 1)]
    assert sorted(x for p in parts for x in p) == items  # all, each once
    assert all(p == sorted(p) for p in parts)  # order kept
    assert parts[0][0] == "s00" and (n == 1 or parts[1][0] == "s01")  # every n-th from i


@pytest.mark.parametrize("n", [2, 3])
def test_merge_equals_unsharded_byte_for_byte(tmp_path, n):
    ids = ["ada", "bob", "cy", "dee", "eve"]
    write_out(tmp_path / "whole", [fake_result(sid, k) for k, sid in enumerate(ids)])
    dirs = make_shards(tmp_path, ids, n)
    merged = shards.merge(list(reversed(dirs)), tmp_path / "merged")  # any order of folders
    assert [r["student_id"] for r in merged] == ids
    for f in ("grades.csv", "grades.json"):
        assert (tmp_path / "merged" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    assert sorted(p.name for p in (tmp_path / "merged" / "feedback").iterdir()) == sorted(ids)
    assert (tmp_path / "merged" / "feedback" / "cy" / "01_x.html").read_text() == "<p>cy</p>"


def test_a_contested_id_split_over_shards_merges_as_one_batch_writes_it(tmp_path):
    # every shard decided the ids from the whole folder: the two claimants of "ada" (positions 0
    # and 1: shards 1 and 2) already carry their conflict ids and the conflict itself
    ids = ["ada-conflict-0a1b2c3d", "ada-conflict-9f8e7d6c", "bob"]
    write_out(tmp_path / "whole", [fake_result(sid, k) for k, sid in enumerate(ids)])
    merged = shards.merge(make_shards(tmp_path, ids, 2), tmp_path / "merged")
    assert [r["student_id"] for r in merged] == ids
    for f in ("grades.csv", "grades.json", "lms.csv"):
        assert (tmp_path / "merged" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    lms = list(csv.reader(open(tmp_path / "merged" / "lms.csv")))
    assert lms[0][-1] == "flag" and lms[1][:3] == ["ada", "", ""]  # the contested id: no score
    assert lms[1][3].startswith("CONFLICT: a.zip, b.zip claim the id ada")
    assert (tmp_path / "merged" / "feedback" / "ada-conflict-9f8e7d6c").is_dir()


def test_merge_refuses_shards_that_disagree_on_ids(tmp_path):
    # one id graded in two shards: the shards did not decide ids from the same folder
    dirs = make_shards(tmp_path, ["ada", "ada", "bob"], 2)
    with pytest.raises(ValueError, match="both graded a submission as 'ada'"):
        shards.merge(dirs, tmp_path / "merged")


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path):
    ids = ["a", "b", "c", "d"]
    dirs = make_shards(tmp_path / "x", ids, 3)
    with pytest.raises(ValueError, match=r"missing \[2\]"):
        shards.merge([dirs[0], dirs[2]], tmp_path / "m1")
    with pytest.raises(ValueError, match=r"repeated \[1\]"):
        shards.merge([dirs[0], dirs[0], dirs[1], dirs[2]], tmp_path / "m2")
    other = make_shards(tmp_path / "y", ids + ["e"], 3)
    with pytest.raises(ValueError, match="different splits or batches"):
        shards.merge([dirs[0], dirs[1], other[2]], tmp_path / "m3")
    with pytest.raises(ValueError, match="not a finished shard"):
        shards.merge([tmp_path / "nowhere"], tmp_path / "m4")
    with pytest.raises(ValueError, match="must not be one of the shard folders"):
        shards.merge(dirs, dirs[0])
    (dirs[1] / "grades.json").write_text(json.dumps([]))
    with pytest.raises(ValueError, match="grades.json has 0 results"):
        shards.merge(dirs, tmp_path / "m5")


def test_command_line_flags(tmp_path, capsys):
    dirs = make_shards(tmp_path, ["ada", "bob", "cy"], 2)
    assert autograde.main(["--merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "grades.csv").read_text().count("\n") == 1 + 3 * len(EXERCISES)
    assert autograde.main(["--merge", str(dirs[0]), "--out", str(tmp_path / "m2")]) == 2
    assert "missing [2]" in capsys.readouterr().err
    assert autograde.main([str(tmp_path), "--shard", "3/2"]) == 2
    assert "1 <= i <= n" in capsys.readouterr().err


def test_gradebooks_merge(tmp_path):
    from nbgrader.api import Gradebook

    from course_instructor.release import ensure_scripts_on_path

    ensure_scripts_on_path()

    def shard_db(root: Path, students: dict[str, float]) -> Path:
        (root / "nbgrader").mkdir(parents=True)
        with Gradebook(f"sqlite:///{root / 'nbgrader' / 'gradebook.db'}") as gb:
            gb.add_assignment("exercises")
            gb.add_notebook("01_x", "exercises")
            gb.add_grade_cell("t1", "01_x", "exercises", max_score=2, cell_type="code")
            for sid, score in students.items():
                gb.add_student(sid)
                gb.add_submission("exercises", sid)
                g = gb.find_grade("t1", "01_x", "exercises", sid)
                g.auto_score = score
                gb.db.commit()
            (root / "nbgrader" / "autograded" / next(iter(students))).mkdir(parents=True)
        return root / "nbgrader"

    a = shard_db(tmp_path / "s1", {"ada": 2.0})
    b = shard_db(tmp_path / "s2", {"bob": 0.5, "cy": 1.0})
    shards.merge_gradebooks([a, b], tmp_path / "out" / "nbgrader")
    with Gradebook(f"sqlite:///{tmp_path / 'out' / 'nbgrader' / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == ["ada", "bob", "cy"]
        scores = {s: gb.find_grade("t1", "01_x", "exercises", s).score for s in ("ada", "bob", "cy")}
    assert scores == {"ada": 2.0, "bob": 0.5, "cy": 1.0}
    assert (tmp_path / "out" / "nbgrader" / "autograded" / "bob").is_dir()


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_two_shards_grade_like_one_machine(tmp_path, fixture_course):  # noqa: F811
    """Real grading (code points only, the cheapest setting) of made-up submissions: shards 1/2
    and 2/2 merged give the unsharded grades.csv byte for byte."""
    import submissions as S

    src, released = fixture_course
    subs = tmp_path / "subs"
    S.make_submission(subs / "a_stubs", released)
    S.make_submission(subs / "b_solved", released, solved="all")
    S.make_submission(subs / "c_partial", released, solved=("kl",))
    kw = dict(source_dir=src, run_notebooks=False, exercise_timeout=8, sandbox_timeout=60, quiet=True)
    autograde.autograde(subs, tmp_path / "whole", **kw)
    parts = [tmp_path / f"shard-{i}" for i in (1, 2)]
    flags = ["--source", str(src), "--no-notebooks", "--exercise-timeout", "8", "--sandbox-timeout", "60"]
    for i, d in enumerate(parts, 1):  # through the command line: course autograde --shard i/2
        assert autograde.main([str(subs), "--shard", f"{i}/2", "--out", str(d), *flags]) == 0
    assert [s["name"] for s in json.loads((parts[0] / "shard.json").read_text())["submissions"]] == [
        "a_stubs",
        "c_partial",
    ]
    assert autograde.main(["--merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    whole = (tmp_path / "whole" / "grades.csv").read_bytes()
    assert (tmp_path / "merged" / "grades.csv").read_bytes() == whole
    scores = {}
    for line in whole.decode().splitlines()[1:]:
        sid, _, _, score, *_ = line.split(",")  # student_id, unit, exercise, score, max_score, student_total
        scores[sid] = scores.get(sid, 0.0) + float(score or 0)
    assert scores["b_solved"] > scores["c_partial"] > scores["a_stubs"] == 0.0
