"""Whose grade a row is, and what a spreadsheet does with it: `course autograde`'s outputs when
submissions fight over a student id, when ids and names are written to be formulae, and when
--out is a relative path.

* Student ids are decided for the whole batch before any grading: an id that two submissions
  claim goes to NEITHER of them, whichever file comes first; each is graded under its own
  ``<id>-conflict-<hash of its file name>`` and the contested id is flagged in grades.csv,
  lms.csv, junit.xml and the feedback. A grading failure keeps the student's id. Shards decide
  ids from the whole folder, so a sharded batch writes what one batch writes.
* No CSV cell starts with = + - @ tab or CR (OWASP's CSV-injection rule), and ids start with a
  letter or digit.
* ``--out grades`` (relative, the README's example) grades like an absolute --out, notebooks
  included.

Most tests here are about ids and outputs, not about running student code, so they replace the
sandbox's code grading by `fake_code` (test_attacks grades an impostor for real).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_autograde import POINTS

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import submissions as S

from course_instructor.grading import autograde, export, submissions

ZERO = {k: 0.0 for k in POINTS}
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def tag(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


@pytest.fixture
def fake_code(monkeypatch):
    """Code points without the sandbox: full marks where the submission's course_lib has
    ``full.py``, none elsewhere; a course_lib with ``crash.py`` makes the grading itself raise."""

    def grade_code(self, cl):
        if cl is not None and (cl / "crash.py").is_file():
            raise RuntimeError("the grading machine fell over")
        full = cl is not None and (cl / "full.py").is_file()
        return {
            n: {
                **self.grading.score(n, self.expected[n][1], self.expected[n][1] if full else None),
                "error": None,
                "grader_side": False,
            }
            for n in self.names
        }

    monkeypatch.setattr(autograde.Grader, "grade_code", grade_code)


def make(subs: Path, released, name: str, sid: str | None = None, full=False, crash=False) -> Path:
    """A submission `name` (a folder, or a zip if the name ends in .zip) claiming `sid` in its
    SUBMISSION.json (else its name is its id)."""
    folder = S.make_submission(
        subs.parent / "src_subs" / name if name.endswith(".zip") else subs / name, released
    )
    for flag, module in ((full, "full"), (crash, "crash")):
        if flag:
            (folder / "course_lib" / f"{module}.py").write_text("x = 1\n")
    if sid is not None:
        (folder / "SUBMISSION.json").write_text(json.dumps({"student_id": sid}))
    subs.mkdir(parents=True, exist_ok=True)
    return S.zip_folder(folder, subs / name) if name.endswith(".zip") else folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


CODE_ONLY = dict(run_notebooks=False, quiet=True)


# --- student ids: decided for the whole batch, a contested one goes to nobody ------------------------
def test_ids_depend_on_the_batch_not_on_the_order_of_its_files():
    claims = {
        "impostor.zip": "victim",
        "victim": "victim",
        "bob": "bob",
        "z.zip": f"victim-conflict-{tag('victim')}",  # claims the id the victim's conflict produces
    }
    first = submissions.assign_ids(claims)
    for order in itertools.permutations(claims.items()):
        assert submissions.assign_ids(dict(order)) == first
    ids, conflicts = first
    assert conflicts == {"victim": ["impostor.zip", "victim"]}
    assert ids == {
        "impostor.zip": f"victim-conflict-{tag('impostor.zip')}",
        "victim": f"victim-conflict-{tag('victim')}",
        "bob": "bob",
        "z.zip": f"victim-conflict_{tag('victim')}",  # a claim never takes a conflict's id
    }


@pytest.mark.parametrize("impostor", ["a_impostor.zip", "z_impostor.zip"])  # graded before / after
def test_an_impostor_takes_no_id_whichever_file_comes_first(
    fixture_course,
    fake_code,
    tmp_path,
    capsys,
    impostor,
):
    src, released = fixture_course
    subs, out = tmp_path / "subs", tmp_path / "out"
    make(subs, released, "victim", full=True)
    make(subs, released, impostor, sid="victim")
    make(subs, released, "bob", full=True)
    results = {r["student_id"]: r for r in autograde.autograde(subs, out, source_dir=src, **CODE_ONLY)}
    victim, imp = f"victim-conflict-{tag('victim')}", f"victim-conflict-{tag(impostor)}"
    assert sorted(results) == sorted(["bob", victim, imp])  # nobody has "victim"
    g = S.code_grades(out, POINTS)
    assert "victim" not in g and g[victim] == POINTS and g[imp] == ZERO and g["bob"] == POINTS
    claimants = sorted([impostor, "victim"])
    flag = f"CONFLICT: {', '.join(claimants)} claim the id victim; check by hand whose it is"
    for sid in (victim, imp):  # each claimant's feedback says it, and its rows are flagged
        assert results[sid]["status"].startswith("STUDENT ID CONFLICT: 2 submissions of this batch claim")
        assert results[sid]["id_conflict"] == {"id": "victim", "claimants": claimants}
        assert (out / "feedback" / sid).is_dir()
    rows = read_csv(out / "grades.csv")
    contested = [r for r in rows if r["student_id"] == "victim"]
    assert contested == [dict.fromkeys(export.GRADES_FIELDS, "") | {"student_id": "victim", "flag": flag}]
    assert {r["flag"] for r in rows if r["student_id"] in (victim, imp)} == {flag}
    assert {r["flag"] for r in rows if r["student_id"] == "bob"} == {""}
    lms = {r["student_id"]: r for r in read_csv(out / "lms.csv")}
    assert lms["victim"] == {
        "student_id": "victim",
        "unit_02": "",
        "total": "",
        "max_total": "",
        "flag": flag,
    }
    assert lms[victim]["total"] == "8" and lms[imp]["total"] == "0" and lms["bob"]["flag"] == ""
    junit = ET.parse(out / "junit.xml").getroot()
    error = junit.find("testsuite[@name='victim']/testcase/error")
    assert error.get("type") == "StudentIdConflict" and error.get("message") == flag
    assert junit.get("errors") == "1"
    err = capsys.readouterr().err
    assert "STUDENT ID CONFLICT 'victim'" in err and impostor in err


def test_a_failed_grading_keeps_the_students_own_id(fixture_course, fake_code, tmp_path, capsys):
    src, released = fixture_course
    subs, out = tmp_path / "subs", tmp_path / "out"
    make(subs, released, "honest", full=True, crash=True)  # the grader fails on this one
    make(subs, released, "other", full=True)
    results = autograde.autograde(subs, out, source_dir=src, **CODE_ONLY)
    assert [r["student_id"] for r in results] == ["honest", "other"]
    honest = results[0]
    assert honest["grader_failures"] == ["grading failed: RuntimeError: the grading machine fell over"]
    assert honest["id_conflict"] is None and "CONFLICT" not in honest["status"]
    assert S.code_grades(out, POINTS)["honest"] == ZERO and S.code_grades(out, POINTS)["other"] == POINTS
    assert {r["flag"] for r in read_csv(out / "grades.csv")} == {""}
    assert "flag" not in read_csv(out / "lms.csv")[0]  # no conflict, no flag column
    err = capsys.readouterr().err
    assert "CONFLICT" not in err and "DUPLICATE" not in err


def test_shards_decide_ids_as_one_batch_does(fixture_course, fake_code, tmp_path):
    """The impostor (shard 1) and its victim (shard 2) in different shards: merged, the outputs are
    those of one batch, the conflict flagged in them."""
    src, released = fixture_course
    subs = tmp_path / "subs"
    make(subs, released, "impostor.zip", sid="victim")
    make(subs, released, "victim", full=True)
    make(subs, released, "z_other", full=True)
    flags = [str(subs), "--source", str(src), "--no-notebooks"]
    assert autograde.main([*flags, "--out", str(tmp_path / "whole")]) == 0
    parts = [tmp_path / f"shard-{i}" for i in (1, 2)]
    for i, d in enumerate(parts, 1):
        assert autograde.main([*flags, "--shard", f"{i}/2", "--out", str(d)]) == 0
    assert [s["name"] for s in json.loads((parts[1] / "shard.json").read_text())["submissions"]] == ["victim"]
    assert autograde.main(["--merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    whole, merged = tmp_path / "whole", tmp_path / "merged"
    for f in ("grades.csv", "lms.csv"):
        assert (merged / f).read_bytes() == (whole / f).read_bytes(), f

    def untimed(path: Path) -> str:
        return re.sub(r' time="[^"]*"', "", path.read_text())

    def unclocked(path: Path) -> list[dict]:
        return [
            {k: v for k, v in r.items() if not k.endswith("seconds")} for r in json.loads(path.read_text())
        ]

    assert untimed(merged / "junit.xml") == untimed(whole / "junit.xml")
    assert unclocked(merged / "grades.json") == unclocked(whole / "grades.json")
    g = S.code_grades(merged, POINTS)
    assert "victim" not in g and g[f"victim-conflict-{tag('victim')}"] == POINTS
    assert [r["student_id"] for r in read_csv(merged / "lms.csv")][:2] == [
        "victim",
        f"victim-conflict-{tag('impostor.zip')}",
    ]
    assert read_csv(merged / "lms.csv")[0]["flag"].startswith("CONFLICT: impostor.zip, victim")


# --- spreadsheet formulae ---------------------------------------------------------------------------------
HOSTILE_IDS = ['=HYPERLINK("http://x")', "+1", "-2-3", "@SUM(A1)", "\tx", "\ry"]
HOSTILE_NAMES = ["-4-5", "=7+8.zip", "@cmd"]  # no SUBMISSION.json: the file name is the id


def test_no_id_or_cell_becomes_a_formula(fixture_course, fake_code, tmp_path):
    src, released = fixture_course
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i, sid in enumerate(HOSTILE_IDS):
        make(subs, released, f"s{i}", sid=sid, full=i % 2 == 0)
    for name in HOSTILE_NAMES:
        make(subs, released, name)
    results = autograde.autograde(subs, out, source_dir=src, **CODE_ONLY)
    assert {r["student_id"] for r in results} == {
        "HYPERLINK__http___x",
        "1",
        "2-3",
        "SUM_A1",
        "x",
        "y",
        "4-5",
        "7_8",
        "cmd",
    }
    for f in ("grades.csv", "lms.csv"):
        with open(out / f, newline="") as fh:
            cells = [c for row in csv.reader(fh) for c in row]
        assert not [c for c in cells if c.startswith(FORMULA)], f
    junit = ET.parse(out / "junit.xml").getroot()
    names = [e.get(a) for e in junit.iter() for a in ("name", "classname") if e.get(a)]
    assert not [n for n in names if n.startswith(FORMULA)]


def test_export_never_writes_a_formula_even_from_an_old_grades_json(tmp_path):
    """Ids written by an older grader (or a hand-edited grades.json): every text cell that starts
    with = + - @ tab or CR gets a leading quote; numbers stay numbers; the XML stays well formed."""
    hostile = ['=HYPERLINK("http://x")', "+1", "-2-3", "@SUM(A1)", "\tx", "\rx", 'a"<b>&]]>\x00']
    results = [
        {
            "student_id": sid,
            "rows": [{"student_id": sid, "unit": "02", "exercise": "-kl", "score": 1.5, "max_score": 3.0}],
            "details": {"-kl": {"score": 1.5, "max_score": 3.0, "passed": 1, "total": 2, "failures": []}},
        }
        for sid in hostile
    ]
    export.write_all(results, tmp_path)
    lms = read_csv(tmp_path / "lms.csv")
    assert [r["student_id"] for r in lms] == ["'" + s for s in hostile[:6]] + [hostile[6]]
    assert {(r["unit_02"], r["total"]) for r in lms} == {("1.5", "1.5")}
    rows = read_csv(tmp_path / "grades.csv")
    assert {r["exercise"] for r in rows} == {"'-kl"} and {r["score"] for r in rows} == {"1.5"}
    assert rows[2]["student_id"] == "'-2-3"
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    suites = [s.get("name") for s in junit.iter("testsuite")]
    assert suites[:6] == ["'" + s for s in hostile[:6]]
    assert suites[6] == 'a"<b>&]]>\ufffd'
    assert {c.get("name") for c in junit.iter("testcase")} == {"'-kl"}


# --- --out: relative or absolute, the same grades ---------------------------------------------------------
@pytest.mark.slow
def test_a_relative_out_grades_like_an_absolute_one(fixture_course, tmp_path, monkeypatch):
    """`course autograde submissions/ --out grades/` (the README's example) with nbgrader's
    notebook execution, which runs in another working directory."""
    from nbgrader.api import Gradebook

    src, released = fixture_course
    S.make_submission(tmp_path / "subs" / "solved", released, solved="all")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    flags = ["--source", str(src), "--exercise-timeout", "8"]
    assert autograde.main([str(tmp_path / "subs"), "--out", "grades", *flags]) == 0
    assert autograde.main([str(tmp_path / "subs"), "--out", str(tmp_path / "abs" / "grades"), *flags]) == 0
    rel, absolute = tmp_path / "cwd" / "grades", tmp_path / "abs" / "grades"
    for f in ("grades.csv", "lms.csv"):
        assert (rel / f).read_bytes() == (absolute / f).read_bytes(), f
    for out in (rel, absolute):
        (r,) = json.loads((out / "grades.json").read_text())
        assert r["grader_failures"] == [] and r["notebook_seconds"] is not None, r["grader_failures"]
        with Gradebook(f"sqlite:///{out / 'nbgrader' / 'gradebook.db'}") as gb:
            sub = gb.find_submission(autograde.ASSIGNMENT, "solved")
            assert sub.score == sum(POINTS.values())  # code points, set in the gradebook
    assert S.code_grades(rel, POINTS)["solved"] == POINTS
