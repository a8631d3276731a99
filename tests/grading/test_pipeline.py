"""Hidden-test machinery (course_instructor/grading/hidden/ + sandboxed/caserun.py), the sandbox on every exercise,
`course run` and `course submit`."""

from __future__ import annotations

import json
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import submissions as S

from course_instructor.grading import wire
from course_instructor.grading.sandboxed import caserun
from course_lib.core import registry as exercises

ROOT = Path(__file__).resolve().parents[2]


def canon(x):
    if isinstance(x, torch.Tensor):
        return ("T", x.dtype, tuple(x.shape), x.tolist())
    if isinstance(x, dict):
        return {k: canon(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [canon(v) for v in x]
    return x


# --- cases and comparison ---------------------------------------------------------------------
@pytest.mark.parametrize("name", [e.name for e in exercises.EXERCISES])
def test_cases_are_seeded_picklable_and_varied(name):
    from course_instructor.grading import hidden

    a, b = hidden.make_cases(name, 1), hidden.make_cases(name, 1)
    assert len(a) >= 2
    pickle.loads(pickle.dumps(a))
    assert canon(a) == canon(b)
    assert canon(hidden.make_cases(name, 2)) != canon(a), "the seed must change the cases"
    ids = [c["id"] for c in a]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", [e.name for e in exercises.EXERCISES])
def test_solution_passes_and_stub_scores_zero(name):
    import course_lib
    from course_instructor.grading import hidden

    ex = exercises.get(name)
    cases, expected = hidden.expected_results(name)
    assert any(not r["error"] for r in expected), "every exercise needs valid-input cases"
    stub = getattr(__import__(f"course_lib.{ex.module}", fromlist=[name]), name)
    assert hidden.score(name, expected, caserun.run_cases(stub, cases))["score"] == 0
    course_lib.use_solutions(True)
    try:
        assert hidden.hidden_check(name)["score"] == ex.points
    finally:
        course_lib.use_solutions(False)


def test_hidden_check_reports_partial_credit(monkeypatch):
    from course_instructor.grading import hidden
    from course_lib import kl
    from solutions import kl as sol

    def half_right(logp, ref_logp, kind="k3"):
        return sol.kl_estimate(logp, ref_logp, "k1" if kind == "k3" else kind)

    monkeypatch.setattr(kl, "kl_estimate", half_right)
    with pytest.raises(AssertionError, match=r"hidden tests for kl_estimate: \d+/9 cases passed"):
        hidden.hidden_check("kl_estimate")
    s = hidden.score("kl_estimate", *[hidden.expected_results("kl_estimate")[1]] * 2)
    assert s["score"] == 3


def test_compare_checks_values_and_gradients():
    from course_instructor.grading import hidden

    case = {"id": "c", "args": [torch.randn(3, 4), torch.randn(3, 4)], "kwargs": {}, "grad": [0, 1]}
    good = caserun.run_case(lambda a, b: (a - b).pow(2).mean(), case)
    detached = caserun.run_case(lambda a, b: (a.detach() - b.detach()).pow(2).mean().requires_grad_(), case)
    wrong = caserun.run_case(lambda a, b: (a - b).pow(2).sum(), case)
    wrong_shape = caserun.run_case(lambda a, b: (a - b).pow(2).mean(-1), case)
    raised = caserun.run_case(lambda a, b: 1 / 0, case)
    assert hidden.compare(good, good) == (True, "")
    ok, msg = hidden.compare(good, detached)
    assert not ok and "gradient" in msg
    ok, msg = hidden.compare(good, wrong)
    assert not ok and "values are wrong" in msg  # never the expected numbers (issue 22)
    ok, msg = hidden.compare(good, wrong_shape)
    assert not ok and ("shape" in msg or "expected" in msg)
    ok, msg = hidden.compare(good, raised)
    assert not ok and "ZeroDivisionError" in msg


def test_raising_for_everything_earns_no_bad_input_points():
    from course_instructor.grading import hidden

    cases, expected = hidden.expected_results("kl_estimate")
    got = caserun.run_cases(lambda *a, **k: (_ for _ in ()).throw(ValueError("no")), cases)
    assert hidden.score("kl_estimate", expected, got)["score"] == 0


def test_caserun_markers_and_normalize():
    tok = caserun.resolve({caserun.MARKER: "tokenizer"})
    assert tok("hello")["input_ids"]
    f = caserun.resolve({caserun.MARKER: "reward_fn", "name": "bonus"})
    assert f(["a", "b"], bonus=[1, 2]) == [1.0, 2.0]
    m1 = caserun.resolve({caserun.MARKER: "model", "seed": 3})
    m2 = caserun.resolve({caserun.MARKER: "model", "seed": 3})
    assert torch.equal(caserun.flat_params(m1), caserun.flat_params(m2))
    with pytest.raises(ValueError, match="unknown marker"):
        caserun.resolve({caserun.MARKER: "nope"})
    r = caserun.run_case(lambda: (torch.ones(2, requires_grad=True) * 2, {"k": 1.5}), {"args": []})
    assert r["error"] is None and isinstance(r["value"][0], torch.Tensor) and not r["value"][0].requires_grad
    r = caserun.run_case(lambda: object(), {"args": []})
    assert "cannot compare" in r["error"]


# --- the sandbox on every exercise --------------------------------------------------------------
@pytest.mark.slow
def test_sandbox_grades_every_exercise(tmp_path):
    """A copy of the solutions gets full marks on all exercises, run in the sandbox."""
    from course_instructor.grading import hidden, sandbox

    cl = S.make_course_lib(tmp_path / "sub", solved="all")
    jobs, expected = {}, {}
    for e in exercises.EXERCISES:
        jobs[e.name], expected[e.name] = hidden.expected_results(e.name)
    out = sandbox.run_student_cases(cl, jobs)
    for e in exercises.EXERCISES:
        s = hidden.score(e.name, expected[e.name], out[e.name]["results"])
        assert s["score"] == e.points, (e.name, out[e.name]["error"], s["failures"][:2])


def test_sandbox_uses_only_exercise_modules_from_student(tmp_path):
    from course_instructor.grading import sandbox

    cl = tmp_path / "course_lib"
    cl.mkdir()
    (cl / "kl.py").write_text("x = 1\n")
    (cl / "cli.py").write_text("raise SystemExit('a student copy of provided code must not be used')\n")
    (cl / "my_helpers.py").write_text("y = 2\n")
    files = sandbox.student_files(cl)
    assert set(files) == {"kl.py", "my_helpers.py"}


# --- course run -------------------------------------------------------------------------------
def test_course_run_collects_metrics_and_survives_a_failing_unit(tmp_path, capsys):
    from course_instructor import nbbuild, runner

    src = tmp_path / "notebooks"
    nbbuild.write(
        [
            nbbuild.code(
                "from course_lib.core.report import report_metrics\n"
                "import os\nprint(os.environ['COURSE_PROFILE'], os.environ['COURSE_CHECKPOINTS'])\n"
                "report_metrics('01', {'format_compliance': (0.25, 0.75)})"
            )
        ],
        src / "01_ok.ipynb",
    )
    nbbuild.write([nbbuild.code("raise RuntimeError('unit two is broken')")], src / "02_broken.ipynb")
    nbbuild.write(
        [
            nbbuild.code(
                "from course_lib.core.report import report_metrics\n"
                "report_metrics('03', {'kl_to_ref': (None, 0.5)})"
            )
        ],
        src / "03_ok.ipynb",
    )
    out = tmp_path / "run"
    rc = runner.main(["--out", str(out), "--source", str(src), "--preset", "quick"])
    assert rc == 1
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "tiny" and res["preset"] == "quick"
    assert res["units"]["01"]["metrics"] == {"format_compliance": {"before": 0.25, "after": 0.75}}
    assert res["units"]["01"]["seconds"] > 0 and "error" not in res["units"]["01"]
    assert "unit two is broken" in res["units"]["02"]["error"]
    assert res["units"]["03"]["metrics"]["kl_to_ref"] == {"before": None, "after": 0.5}
    assert (out / "01_ok.ipynb").exists()
    printed = capsys.readouterr().out
    assert "format_compliance" in printed and "0.250" in printed and "FAILED" in printed
    # memory: the peak of runner + kernels, overall and per unit, and getrusage's largest kernel
    assert res["peak_rss_mb"] >= max(e["peak_rss_mb"] for e in res["units"].values()) > 0
    assert res["max_rss_mb"]["largest_child"] > 0 and f"peak memory: {res['peak_rss_mb']:.0f} MB" in printed
    assert runner.main(["--out", str(out), "--source", str(src), "--units", "01,03"]) == 0
    assert runner.main(["--out", str(out), "--source", str(src), "--units", "09"]) == 2


# --- course submit ----------------------------------------------------------------------------
def test_submit_packs_notebooks_and_course_lib(tmp_path, monkeypatch):
    from course_lib import submit

    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "01_x.ipynb").write_text("{}")
    S.make_course_lib(tmp_path)
    (tmp_path / "course_lib" / "assets").mkdir()
    (tmp_path / "course_lib" / "assets" / "big.bin").write_bytes(b"0" * 100)
    monkeypatch.setenv("USER", "Jane Doe")
    monkeypatch.delenv("COURSE_STUDENT_ID", raising=False)
    assert submit.main(["--root", str(tmp_path), "--out", str(tmp_path / "s.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "s.zip") as z:
        names = set(z.namelist())
        meta = json.loads(z.read("SUBMISSION.json"))
    assert "exercises/01_x.ipynb" in names and "course_lib/kl.py" in names
    assert not any("assets" in n for n in names)
    assert meta["student_id"] == "Jane_Doe"
    assert submit.main(["--root", str(tmp_path), "--student-id", "jd7"]) == 0
    assert (tmp_path / "submission-jd7.zip").exists()
    assert submit.main(["--root", str(tmp_path), "--student-id", "../.."]) == 2


def _course_copy(root: Path, kl_text: str, answer: str | None = None) -> Path:
    """A copy of the course: course_lib/ with the exercise modules and one unit notebook,
    answered (an output and a written answer) when `answer` is given, else untouched."""
    S.make_course_lib(root, overrides={"kl": kl_text})
    (root / "exercises").mkdir(parents=True)
    answer_cell = {
        "cell_type": "markdown",
        "metadata": {"nbgrader": {"grade_id": "q_01", "solution": True, "grade": True}},
        "source": answer or "YOUR ANSWER HERE",
    }
    code_cell = {
        "cell_type": "code",
        "metadata": {},
        "execution_count": 1 if answer else None,
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "ran\n"}] if answer else [],
        "source": "print('ran')",
    }
    nb = {"cells": [code_cell, answer_cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "exercises" / "01_x.ipynb").write_text(json.dumps(nb))
    return root


def test_submit_packs_the_course_folder_it_runs_in(tmp_path, monkeypatch, capsys):
    """Two copies of the course -- the one this Python imported course_lib from (the repository)
    and the student's -- : the one the command runs in (or a folder below it) is packed and named,
    with every file it packed and the zip's path."""
    from course_lib import submit

    assert not submit.course_copy_problems(submit.ROOT)  # the imported copy would qualify too
    mine = _course_copy(tmp_path / "my course", "# MINE", answer="My answer.")
    (mine / "exercises" / "deeper").mkdir()
    monkeypatch.chdir(mine / "exercises" / "deeper")
    assert submit.main(["--student-id", "jd"]) == 0
    out, err = capsys.readouterr()
    zip_path = mine.resolve() / "submission-jd.zip"
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        assert "# MINE" in z.read("course_lib/kl.py").decode()
        assert "My answer." in z.read("exercises/01_x.ipynb").decode()
    assert f"packed the course folder {mine.resolve()}:" in out and str(submit.ROOT) not in out
    assert all(f"  {n}\n" in out for n in names) and "course_lib/kl.py" in names
    assert f"wrote {zip_path} (1 notebooks" in out
    assert "untouched" not in err


def test_submit_refuses_a_folder_that_is_not_a_course_copy(tmp_path, monkeypatch, capsys):
    from course_lib import submit

    elsewhere = tmp_path / "downloads"
    (elsewhere / "exercises").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert submit.main(["--student-id", "jd"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "not a course folder" in err and "no course_lib/ folder" in err and "--root" in err
    assert "exercises/ has no NN_*.ipynb notebooks" in err
    assert not list(tmp_path.rglob("*.zip"))
    # --root names the folder; a folder that is not a course copy is refused the same way
    (tmp_path / "half" / "course_lib").mkdir(parents=True)
    (tmp_path / "half" / "course_lib" / "notes.py").write_text("")
    assert submit.main(["--root", str(tmp_path / "half"), "--student-id", "jd"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "none of the exercise modules" in err, err
    assert "no exercises/ folder" in err
    mine = _course_copy(tmp_path / "mine", "# MINE", answer="A.")
    assert submit.main(["--root", str(mine), "--student-id", "jd", "--out", str(tmp_path / "o.zip")]) == 0
    assert f"packed the course folder {mine.resolve()}:" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "o.zip") as z:
        assert "# MINE" in z.read("course_lib/kl.py").decode()


def test_submit_warns_about_an_untouched_notebook(tmp_path, monkeypatch, capsys):
    """A notebook with no outputs and no answers is packed, with a warning per unit saying how to
    point --root at the copy the student worked in."""
    from course_lib import submit

    fresh = _course_copy(tmp_path / "fresh", "# fresh")
    monkeypatch.chdir(fresh)
    assert submit.main(["--student-id", "jd"]) == 0
    out, err = capsys.readouterr()
    assert "exercises/01_x.ipynb" in out and (fresh / "submission-jd.zip").exists()
    warnings = [line for line in err.splitlines() if "untouched" in line]
    assert len(warnings) == 1 and "exercises/01_x.ipynb" in warnings[0] and "--root DIR" in warnings[0]


def test_submit_warns_per_unit_and_counts_code_solutions(tmp_path, monkeypatch, capsys):
    """One warning per untouched unit, naming it; a solution code cell still holding nbgrader's
    stub counts as untouched, one with the student's code as worked in (even never run)."""
    from course_lib import submit

    root = _course_copy(tmp_path / "c", "# c")
    stub = {
        "cell_type": "code",
        "metadata": {"nbgrader": {"grade_id": "code_1", "solution": True, "grade": False}},
        "execution_count": None,
        "outputs": [],
        "source": "# YOUR CODE HERE\nraise NotImplementedError()",
    }
    for unit, source in (("02_y", stub["source"]), ("03_z", "x = 1  # mine")):
        nb = {"cells": [{**stub, "source": source}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (root / "exercises" / f"{unit}.ipynb").write_text(json.dumps(nb))
    assert submit.main(["--root", str(root), "--student-id", "jd"]) == 0
    out, err = capsys.readouterr()
    warned = sorted(line.split()[1] for line in err.splitlines() if "looks untouched" in line)
    assert warned == ["exercises/01_x.ipynb", "exercises/02_y.ipynb"], err
    assert all("--root DIR" in line for line in err.splitlines() if "looks untouched" in line)
    assert f"packed the course folder {root.resolve()}:" in out and "  exercises/03_z.ipynb\n" in out


def test_results_from_the_sandbox_are_parsed_strictly():
    """The wire format: tensors come back as float64 / int64 / bool tensors the grader builds;
    anything malformed is refused with a named error; a bool tensor never passes for numbers."""
    from course_instructor.grading import hidden

    t = torch.tensor([[0.5, -1.0], [2.0, float("nan")]])
    r = caserun.run_case(lambda: (t, {"n": 3}), {"args": []})
    back = wire.decode_result(json.loads(json.dumps(wire.encode(r))))
    v = back["value"][0]
    assert type(v) is torch.Tensor and v.dtype == torch.float64 and v.shape == (2, 2)
    assert torch.equal(v.nan_to_num(7.0), t.double().nan_to_num(7.0)) and back["value"][1] == {"n": 3}
    for bad, msg in [
        ({"__tensor__": "float32", "shape": [3], "data": [1.0, 2.0]}, "shape"),
        ({"__tensor__": "object", "shape": [1], "data": [1]}, "dtype"),
        ({"__tensor__": "bool", "shape": [1], "data": [1]}, "bool"),
        ({"__tensor__": "int64", "shape": [1], "data": [0.5]}, "int"),
        ("x" * 2000, "longer than"),
        ([[[[[[[[[[1]]]]]]]]]], "nested"),
    ]:
        with pytest.raises(wire.MalformedResult, match=msg):
            wire.decode(bad)
    with pytest.raises(wire.MalformedResult):
        wire.decode_result({"value": 1, "grads": {}, "error": None, "error_types": [], "id": "", "x": 1})
    expected = caserun.run_case(lambda: torch.tensor([0.3, 0.7]), {"args": []})
    as_bool = wire.decode_result(
        wire.encode(caserun.run_case(lambda: torch.tensor([True, True]), {"args": []}))
    )
    ok, msg = hidden.compare(expected, as_bool)
    assert not ok and "expected a tensor of real numbers" in msg and "bool" in msg
    ok, msg = hidden.compare(caserun.run_case(lambda: 1.0, {"args": []}), {**expected, "value": True})
    assert not ok
    r = caserun.run_case(lambda: torch.zeros(2).as_subclass(type("Sub", (torch.Tensor,), {})), {"args": []})
    assert "subclass" in r["error"]
