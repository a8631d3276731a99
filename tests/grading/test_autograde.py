"""`course autograde` on made-up submissions against the small fixture notebook
(tests/fixtures/fixture_notebook.py: kl_estimate 3 pts, group_advantages 3 pts,
combine_rewards 2 pts, one written answer 2 pts).

Many hostile / broken submissions are graded in ONE batch with the notebooks skipped (the code
points never depend on them); a second, slower batch also executes the notebooks
(conftest's `nbgrader_batch`, shared with test_attacks' kernel attacker)."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import submissions as S

ROOT = Path(__file__).resolve().parents[2]
POINTS = {"kl_estimate": 3.0, "group_advantages": 3.0, "combine_rewards": 2.0}
SOLVED = ("kl", "grpo", "rewards")


repo_hashes = S.instructor_hashes


def read_grades(out: Path) -> dict[str, dict[str, str]]:
    grades: dict[str, dict[str, str]] = {}
    with open(out / "grades.csv") as f:
        for row in csv.DictReader(f):
            grades.setdefault(row["student_id"], {})[row["exercise"]] = row["score"]
    return grades


def code_points(g: dict[str, str]) -> dict[str, float]:
    return {k: float(g[k]) for k in POINTS}


# --- hostile / broken code, graded in one batch (code points only) -----------------------------
HOSTILE = {
    # name: (solved modules, {module: appended code}) -> expected code points
    "infinite_loop": (
        SOLVED,
        {"kl": "def kl_estimate(logp, ref_logp, kind='k3'):\n    while True:\n        pass"},
    ),
    "sys_exit": (SOLVED, {"grpo": "import sys\ndef group_advantages(*a, **k):\n    sys.exit(3)"}),
    "os_exit": (SOLVED, {"rewards": "import os\ndef combine_rewards(*a, **k):\n    os._exit(0)"}),
    "big_output": (
        SOLVED,
        {
            "kl": "_inner = kl_estimate\ndef kl_estimate(*a, **k):\n"
            "    import sys\n    sys.stdout.write('x' * 100_000_000)\n"
            "    print('y' * 1_000_000, file=sys.stderr)\n    return _inner(*a, **k)"
        },
    ),
    "import_error": (SOLVED, {"rewards": "raise RuntimeError('broken at import')"}),
    "patch_comparisons": (
        (),
        {
            "kl": (
                "import torch, numpy, math\n"
                "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                "torch.testing.assert_close = lambda *a, **k: None\nnumpy.allclose = lambda *a, **k: True\n"
                "math.isclose = lambda *a, **k: True\n"
                "def kl_estimate(logp, ref_logp, kind='k3'):\n    return torch.zeros_like(logp)"
            )
        },
    ),
    "patch_grading": (
        (),
        {
            "grpo": (
                "import sys, types\n"
                "fake = types.ModuleType('course_instructor.grading.hidden')\n"
                "fake.compare = lambda *a, **k: (True, '')\nfake.score = lambda *a, **k: {'score': 99}\n"
                "sys.modules['course_instructor.grading.hidden'] = fake\n"
                "from course_lib.pipeline import caserun\n"
                "caserun.close = lambda *a, **k: (True, '')\n"
                "caserun.run_case = lambda f, c: {'id': '', 'value': 0.0, 'grads': {}, 'error': None, 'error_types': []}"
            )
        },
    ),
    "read_solutions_path": (
        (),
        {
            "kl": (
                f"def kl_estimate(logp, ref_logp, kind='k3'):\n"
                f"    ns = {{}}\n"
                f"    exec(open({str(ROOT / 'solutions' / 'kl.py')!r}).read(), ns)\n"
                f"    return ns['kl_estimate'](logp, ref_logp, kind)"
            )
        },
    ),
    "read_solutions_import": (
        (),
        {
            "kl": (
                f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                f"def kl_estimate(logp, ref_logp, kind='k3'):\n"
                f"    import importlib\n    return importlib.import_module('solutions.kl').kl_estimate(logp, ref_logp, kind)"
            )
        },
    ),
    "subprocess_escape": (
        (),
        {
            "kl": (
                f"import subprocess, os\n"
                f"def kl_estimate(logp, ref_logp, kind='k3'):\n"
                f"    subprocess.run(['cp', {str(ROOT / 'solutions' / 'kl.py')!r}, '/tmp/course_leak.py'])\n"
                f"    os.system('touch {ROOT}/PWNED')\n"
                f"    raise RuntimeError('no')"
            ),
            "grpo": (
                "import ctypes\n"
                "def group_advantages(*a, **k):\n"
                f"    ctypes.CDLL(None).system(b'touch {ROOT}/PWNED2')\n"
                "    raise RuntimeError('no')"
            ),
        },
    ),
    "write_instructor_files": (
        (),
        {
            "kl": (
                f"def kl_estimate(logp, ref_logp, kind='k3'):\n"
                f"    open({str(ROOT / 'solutions' / 'kl.py')!r}, 'a').write('# pwned')\n"
                f"    open({str(ROOT / 'README_PWNED.md')!r}, 'w').write('pwned')\n"
                f"    raise RuntimeError('no')"
            )
        },
    ),
    "raise_everywhere": (
        (),
        {
            "kl": "def kl_estimate(*a, **k):\n    raise ValueError('always')",
            "grpo": "def group_advantages(*a, **k):\n    raise ValueError('always')",
            "rewards": "def combine_rewards(*a, **k):\n    raise ValueError('always')",
        },
    ),
}
EXPECTED = {
    "infinite_loop": {"kl_estimate": 0, "group_advantages": 3, "combine_rewards": 2},
    "sys_exit": {"kl_estimate": 3, "group_advantages": 0, "combine_rewards": 2},
    "os_exit": {"kl_estimate": 3, "group_advantages": 3, "combine_rewards": 0},
    "big_output": {"kl_estimate": 3, "group_advantages": 3, "combine_rewards": 2},  # correct, just loud
    "import_error": {"kl_estimate": 3, "group_advantages": 3, "combine_rewards": 0},
}


@pytest.fixture(scope="module")
def hostile_batch(fixture_course, tmp_path_factory):
    from course_instructor.grading import autograde

    src, released = fixture_course
    subs = tmp_path_factory.mktemp("hostile_subs")
    for name, (solved, over) in HOSTILE.items():
        S.make_submission(subs / name, released, solved=solved, overrides=over)
    # untouched stubs, a zip of the solutions, exactly one wrong exercise, a corrupt zip
    S.make_submission(subs / "stubs", released)
    sol = S.make_submission(tmp_path_factory.mktemp("z") / "solved", released, solved="all")
    (sol / "SUBMISSION.json").write_text(json.dumps({"student_id": "zipped_solutions"}))
    S.zip_folder(sol, subs / "submission-zipped.zip")
    S.make_submission(
        subs / "one_wrong",
        released,
        solved=SOLVED,
        overrides={
            "grpo": "_ok = group_advantages\ndef group_advantages(rewards, group_size, scale='group', eps=1e-4):\n"
            "    return _ok(rewards, group_size, scale, eps) * 1.5"
        },
    )
    (subs / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    out = tmp_path_factory.mktemp("hostile_out")
    before = repo_hashes()
    t0 = time.time()
    results = autograde.autograde(
        subs, out, source_dir=src, run_notebooks=False, exercise_timeout=8, sandbox_timeout=60
    )
    seconds = time.time() - t0
    after = repo_hashes()
    return {
        "out": out,
        "results": results,
        "seconds": seconds,
        "before": before,
        "after": after,
        "grades": read_grades(out),
    }


def test_batch_completes_and_instructor_files_unchanged(hostile_batch):
    g = hostile_batch["grades"]
    expected_ids = set(HOSTILE) | {"stubs", "zipped_solutions", "one_wrong", "corrupt"}
    assert set(g) == expected_ids
    assert hostile_batch["before"] == hostile_batch["after"], "grading changed instructor files"
    assert not (ROOT / "PWNED").exists() and not (ROOT / "PWNED2").exists()
    assert not (ROOT / "README_PWNED.md").exists()
    assert not Path("/tmp/course_leak.py").exists()
    for r in hostile_batch["results"]:
        assert r["seconds"] < 60, f"{r['student_id']} took {r['seconds']:.0f} s"


def test_stubs_zero_solutions_full_one_wrong_loses_its_points(hostile_batch):
    g = hostile_batch["grades"]
    assert code_points(g["stubs"]) == {k: 0.0 for k in POINTS}
    assert code_points(g["zipped_solutions"]) == POINTS
    assert code_points(g["one_wrong"]) == {**POINTS, "group_advantages": 0.0}
    assert code_points(g["corrupt"]) == {k: 0.0 for k in POINTS}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_submissions_keep_what_they_earned(hostile_batch, name):
    assert code_points(hostile_batch["grades"][name]) == {k: float(v) for k, v in EXPECTED[name].items()}


@pytest.mark.parametrize(
    "name",
    [
        "patch_comparisons",
        "patch_grading",
        "read_solutions_path",
        "read_solutions_import",
        "subprocess_escape",
        "write_instructor_files",
        "raise_everywhere",
    ],
)
def test_cheating_scores_nothing(hostile_batch, name):
    assert code_points(hostile_batch["grades"][name]) == {k: 0.0 for k in POINTS}


def test_failures_are_explained(hostile_batch):
    details = {r["student_id"]: r["details"] for r in hostile_batch["results"]}
    assert "timed out" in " ".join(details["infinite_loop"]["kl_estimate"]["failures"])
    assert "SystemExit" in " ".join(details["sys_exit"]["group_advantages"]["failures"])
    assert "exited early" in " ".join(details["os_exit"]["combine_rewards"]["failures"])
    assert "broken at import" in " ".join(details["import_error"]["combine_rewards"]["failures"])
    assert "PermissionError" in " ".join(details["read_solutions_path"]["kl_estimate"]["failures"])


def test_manual_answers_pending_in_csv(hostile_batch):
    with open(hostile_batch["out"] / "grades.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["exercise"] == "q_fixture_why"]
    assert rows and all(r["score"] == "" and r["max_score"] == "2" for r in rows)
    assert {r["unit"] for r in rows} == {"unit_02"}


def test_feedback_has_no_hidden_tests(hostile_batch):
    fb = hostile_batch["out"] / "feedback" / "zipped_solutions" / "02_fixture.html"
    html = fb.read_text()
    assert (
        "hidden_check" not in html and "HIDDEN TESTS" not in html and "course_instructor.grading" not in html
    )
    assert "Grader: 9/9 hidden cases passed" in html  # kl_estimate has 9 cases


# --- the full path: nbgrader executes the notebooks too ------------------------------------------
def nbgrader_submissions(subs: Path, released: list[Path]) -> None:
    """This file's submissions of the shared nbgrader batch (conftest's `nbgrader_batch`)."""
    S.make_submission(subs / "solved", released, solved="all")

    def vandalize(path: Path):  # edit one locked test cell, delete another
        nb = nbformat.read(str(path), as_version=4)
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade_id") == "test_kl_estimate":
                c.source = "print('all tests passed')"
        nb.cells = [
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_combine_rewards"
        ]
        nbformat.write(nb, str(path))

    S.make_submission(subs / "vandal", released, notebook_edit=vandalize)
    # hangs at `import course_lib` in the notebook kernel (course_lib/__init__ imports rewards)
    # and when the sandbox imports course_lib/rewards.py
    S.make_submission(
        subs / "hang_at_import", released, solved=SOLVED, overrides={"rewards": "while True:\n    pass"}
    )


@pytest.mark.slow
def test_autograde_with_nbgrader_notebooks(nbgrader_batch):
    from nbgrader.api import Gradebook

    out, results = nbgrader_batch["out"], nbgrader_batch["results"]
    assert nbgrader_batch["after"] == nbgrader_batch["before"]
    g = read_grades(out)
    assert code_points(g["solved"]) == POINTS
    assert code_points(g["vandal"]) == {k: 0.0 for k in POINTS}
    assert code_points(g["hang_at_import"]) == {**POINTS, "combine_rewards": 0.0}
    secs = {sid: r["seconds"] for sid, r in results.items()}
    assert secs["solved"] < 90 and secs["hang_at_import"] < 150, secs
    # only the hang is the grader's trouble (a notebook group with no notebook starts no nbgrader)
    failures = {sid: r["grader_failures"] for sid, r in results.items()}
    assert failures["solved"] == failures["vandal"] == [], failures
    # the gradebook holds the grader's scores, not the kernel's
    with Gradebook(f"sqlite:///{out / 'nbgrader' / 'gradebook.db'}", "rl-posttraining") as gb:
        assert gb.find_grade("test_kl_estimate", "02_fixture", "exercises", "solved").score == 3.0
        assert gb.find_grade("test_kl_estimate", "02_fixture", "exercises", "vandal").score == 0.0
        ans = gb.find_grade("q_fixture_why", "02_fixture", "exercises", "solved")
        # an unchanged "YOUR ANSWER HERE" is scored 0 by nbgrader itself; a written answer would
        # be flagged needs_manual_grade for the formgrader
        assert ans.max_score == 2 and ans.auto_score in (None, 0)
    # the executed notebook reached the training cell, which shrank under nbgrader
    executed = nbformat.read(
        str(out / "nbgrader" / "autograded" / "solved" / "exercises" / "02_fixture.ipynb"), as_version=4
    )
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "trained 2 steps" in text
    html = (out / "feedback" / "solved" / "02_fixture.html").read_text()
    assert "hidden_check" not in html and "HIDDEN TESTS" not in html and "trained 2 steps" in html


# --- the real course through nbgrader: what a grader runs --------------------------------------
@pytest.mark.notebook
def test_real_course_solutions_copy_grades_in_full_and_fast_cells_run(tmp_path):
    """A solutions copy of the released course, autograded as a grader would: full code points,
    every FAST (NBGRADER_EXECUTION) cell of every notebook runs without an error, in bounded time
    (`python -m course_instructor.grading.bench_grading` measures how long)."""
    from course_instructor import release
    from course_instructor.grading import autograde, bench_grading

    released = release.generate(tmp_path / "ex", ROOT / "notebooks")
    bench_grading.make_submission(tmp_path / "subs" / "solved", released, solved=True)
    (r,) = autograde.autograde(tmp_path / "subs", tmp_path / "out", quiet=True)
    code = [x for x in r["rows"] if x["score"] is not None]
    assert code and sum(x["score"] for x in code) == sum(x["max_score"] for x in code), r["status"]
    assert "Notebook execution" not in r["status"], r["status"]
    graded = sorted((tmp_path / "out" / "nbgrader" / "autograded" / "solved" / "exercises").glob("*.ipynb"))
    assert [p.name for p in graded] == [p.name for p in released]
    for path in graded:
        nb = nbformat.read(str(path), as_version=4)
        setup = [
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("setup_")
        ]
        assert setup and "grading mode" in json.dumps(setup[0].get("outputs", [])), path.name  # FAST on
        errors = [
            (c.source.splitlines()[0][:60], o["ename"], o["evalue"][:200])
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, (path.name, errors)
    # a hang guard, not a speed bar (that is bench_grading's job): under `pytest -n 2` the other
    # worker's training shares the two cores, which makes this batch about three times slower
    assert r["seconds"] < 600, r["seconds"]


# --- isolation, integrity, feedback ----------------------------------------------------------------
def test_grader_refuses_to_run_student_code_without_isolation(fixture_course, tmp_path, monkeypatch, capsys):
    from course_instructor.grading import autograde, isolation

    src, released = fixture_course
    S.make_submission(tmp_path / "subs" / "s", released)
    monkeypatch.setattr(isolation, "check", lambda: "bubblewrap (bwrap) is not installed: install it")
    rc = autograde.main(
        [str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--source", str(src), "--no-notebooks"]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2 and "refusing to run student code without isolation" in err and "--unsafe-no-isolation" in err
    )
    assert not (tmp_path / "out" / "grades.csv").exists()
    # with the flag it runs, and says loudly that it is unsafe
    rc = autograde.main(
        [
            str(tmp_path / "subs"),
            "--out",
            str(tmp_path / "out"),
            "--source",
            str(src),
            "--no-notebooks",
            "--unsafe-no-isolation",
        ]
    )
    assert rc == 0 and "UNSAFE" in capsys.readouterr().err
    assert code_points(read_grades(tmp_path / "out")["s"]) == {k: 0.0 for k in POINTS}


def test_a_changed_grader_file_stops_the_batch_without_grades(fixture_course, tmp_path, monkeypatch):
    """Integrity: the source notebooks are hashed before the batch; a change after a submission
    (here: simulated by the test itself) aborts with an alarm and leaves grades.csv unwritten."""
    import shutil

    from course_instructor.grading import autograde
    from course_instructor.grading.integrity import IntegrityError

    src0, released = fixture_course
    src = tmp_path / "src"
    shutil.copytree(src0, src)
    for name in ("a", "b"):
        S.make_submission(tmp_path / "subs" / name, released)
    real = autograde.Grader.grade_one

    def grade_then_tamper(self, sub):
        r = real(self, sub)
        with open(src / "02_fixture.ipynb", "a") as f:
            f.write(" ")
        return r

    monkeypatch.setattr(autograde.Grader, "grade_one", grade_then_tamper)
    with pytest.raises(IntegrityError, match=r"GRADER INTEGRITY ALARM after grading a .*02_fixture.ipynb"):
        autograde.autograde(
            tmp_path / "subs", tmp_path / "out", source_dir=src, run_notebooks=False, quiet=True
        )
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_feedback_escapes_everything_the_student_wrote(tmp_path):
    from course_instructor.grading import feedback

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("<script>alert(1)</script>\n\n[x](javascript:alert(2)) **ok**"),
        nbformat.v4.new_code_cell(
            "print('<b>')",
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="<script>alert(3)</script>"),
                nbformat.v4.new_output(
                    "display_data",
                    data={"text/html": "<img src=x onerror=alert(4)>", "text/plain": "<HTML object>"},
                ),
                nbformat.v4.new_output("display_data", data={"image/png": 'x" onerror="alert(5)'}),
                nbformat.v4.new_output("error", ename="E", evalue="<i>", traceback=["<svg onload=alert(6)>"]),
            ],
        ),
    ]
    nbformat.write(nb, str(tmp_path / "02_x.ipynb"))
    scores = {
        "kl_estimate": {
            "passed": 0,
            "total": 1,
            "score": 0.0,
            "max_score": 3.0,
            "failures": ["case 1: raised ValueError: <script>alert(7)</script>"],
            "error": None,
        }
    }
    cells = [
        {
            "notebook": "02_x",
            "grade_id": "test_kl_estimate",
            "kind": "code",
            "exercise": "kl_estimate",
            "max_score": 3.0,
        }
    ]
    feedback.write_feedback(tmp_path / "02_x.ipynb", tmp_path / "fb.html", cells, scores, "status <b>")
    html = (tmp_path / "fb.html").read_text()
    for bad in (
        "<script>alert",
        "<img src=x",
        'onerror="alert(5)',
        "<svg",
        "javascript:alert",
        "<i>",
        "status <b>",
    ):
        assert bad not in html, bad
    assert (
        "&lt;script&gt;alert(3)" in html and "<strong>ok</strong>" in html and "&lt;HTML object&gt;" in html
    )
