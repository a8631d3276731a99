"""Grading that is fair to honest students: knock-on losses are named, every exercise
has its own time budget, hidden cases are drawn per batch, grader-side failures are flagged and
malformed submissions get one clear line each.

The small tests grade the fixture notebook (tests/fixtures/fixture_notebook.py: kl_estimate,
group_advantages, combine_rewards) with the code points only; the two real-course tests (marked
slow) grade every exercise of the course in one code-only batch of two submissions."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("solutions")

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import submissions as S
from test_attacks import odd_name_zip
from test_autograde import POINTS, SOLVED

from course_instructor.grading import autograde, feedback, hidden, sandbox, submissions
from course_lib.core import registry as exercises

ROOT = Path(__file__).resolve().parents[2]


def feedback_text(out: Path, sid: str) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "feedback" / sid).glob("*.html")))


# --- the real course: knock-on losses and per-exercise budgets ---------------------------------
K3_BUG = (
    "_kl_ok = kl_estimate\n"
    "def kl_estimate(logp, ref_logp, kind='k3'):\n"
    "    if kind == 'k3':  # forgot the -1 of exp(r) - r - 1\n"
    "        r = ref_logp - logp\n"
    "        return torch.exp(r) - r\n"
    "    return _kl_ok(logp, ref_logp, kind)"
)
# six exercises that no other exercise calls, each sleeping "forever"
SLEEPERS = {
    "rewards": ("format_reward", "correctness_reward", "repetition_penalty"),
    "kl": ("exact_kl", "kl_penalized_rewards"),
    "reward_model": ("preference_accuracy",),
}


@pytest.fixture(scope="module")
def course_batch(tmp_path_factory):
    subs = tmp_path_factory.mktemp("course_subs")
    for sid, over in (
        ("k3_bug", {"kl": K3_BUG}),
        (
            "sleepers",
            {
                m: "\n".join(f"import time\ndef {n}(*a, **k):\n    time.sleep(10**6)" for n in names)
                for m, names in SLEEPERS.items()
            },
        ),
    ):
        (subs / sid).mkdir()
        S.make_course_lib(subs / sid, solved="all", overrides=over)
    out = tmp_path_factory.mktemp("course_out")
    results = autograde.autograde(subs, out, run_notebooks=False, exercise_timeout=10, quiet=True)
    return {r["student_id"]: r for r in results}, out


@pytest.mark.slow
def test_one_wrong_exercise_costs_its_points_and_names_itself_in_every_knock_on_loss(course_batch):
    """An honest submission whose only bug is k3 in kl_estimate: kl_estimate loses points; every
    other exercise that loses points calls kl_estimate and its feedback says so first; every
    exercise that does not call it keeps all its points (README, "Graders")."""
    r = course_batch[0]["k3_bug"]
    lost = {n: s for n, s in r["details"].items() if s["score"] < s["max_score"]}
    assert "kl_estimate" in lost, r["details"]["kl_estimate"]
    for name, s in r["details"].items():
        if name == "kl_estimate":
            continue
        if "kl_estimate" not in hidden.callees(name):
            assert s["score"] == s["max_score"], (name, s["failures"])
        elif name in lost:
            # kl_estimate, and any callee that lost points through it (grpo_step -> grpo_loss)
            assert "kl_estimate" in s["failed_callees"], (name, s)
            assert all(c == "kl_estimate" or "kl_estimate" in hidden.callees(c) for c in s["failed_callees"])
            assert s["failures"][0].startswith(f"{name} calls kl_estimate"), s["failures"]
            assert "fix kl_estimate first" in s["failures"][0]
    knock_on = sorted(set(lost) - {"kl_estimate"})
    assert knock_on and all("kl_estimate" in hidden.callees(n) for n in knock_on), knock_on
    # what the feedback shows of each (the submission has no notebooks: the verdict lines)
    for name in knock_on:
        assert f"{name} calls kl_estimate" in feedback.verdict_lines(r["details"][name])[1]


@pytest.mark.slow
def test_sleep_in_six_exercises_loses_only_those(course_batch):
    """Each exercise has its own time budget: six that sleep forever get 0, all the others (71 of
    the course's points) are kept -- a budget shared by all exercises would lose nearly all."""
    r = course_batch[0]["sleepers"]
    sleepers = {n for names in SLEEPERS.values() for n in names}
    for name, s in r["details"].items():
        if name in sleepers:
            assert s["score"] == 0 and "timed out" in (s["error"] or ""), (name, s)
        else:
            assert s["score"] == s["max_score"], (name, s["failures"])
    kept = sum(s["score"] for s in r["details"].values())
    total = sum(e.points for e in exercises.EXERCISES if e.name in r["details"])
    assert kept == total - sum(exercises.get(n).points for n in sleepers)


def test_callees_read_from_the_solutions():
    assert hidden.callees("grpo_step") == ("token_logprobs", "kl_estimate", "masked_mean", "grpo_loss")
    assert hidden.callees("dpo_batch_loss") == ("sequence_logprobs", "dpo_loss")
    assert hidden.callees("kl_estimate") == ()


def test_explain_dependencies_names_only_failed_callees():
    def s(name, passed, total=4):
        return {"exercise": name, "passed": passed, "total": total, "failures": ["case 1 (x): y"]}

    scores = {
        "masked_mean": s("masked_mean", 4),
        "kl_estimate": s("kl_estimate", 1),
        "grpo_loss": s("grpo_loss", 2),
    }
    hidden.explain_dependencies(scores)
    assert scores["grpo_loss"]["failed_callees"] == ["kl_estimate"]
    assert scores["grpo_loss"]["failures"][0].startswith("grpo_loss calls kl_estimate, which failed")
    assert "masked_mean" not in scores["grpo_loss"]["failures"][0]
    assert scores["kl_estimate"]["failed_callees"] == [] and len(scores["kl_estimate"]["failures"]) == 1


# --- the fixture course: seeds, malformed submissions, grader-side failures -------------------
MALFORMED = {
    # student id: a phrase of the one line it gets (feedback, grades.json, batch summary)
    "empty": "the submission is empty",
    "no_code": "has no course_lib/*.py",
    "odd_name": "not valid UTF-8",
    "corrupt_nb": "02_fixture.ipynb is not a readable notebook",
}


@pytest.fixture(scope="module")
def malformed_batch(fixture_course, tmp_path_factory):
    src, released = fixture_course
    subs = tmp_path_factory.mktemp("malformed_subs")
    with zipfile.ZipFile(subs / "empty.zip", "w"):
        pass
    nb_only = S.make_submission(subs.parent / "nb_only", released)
    with zipfile.ZipFile(subs / "no_code.zip", "w") as z:
        for nb in (nb_only / "exercises").glob("*.ipynb"):
            z.write(nb, f"exercises/{nb.name}")
    odd_name_zip(subs / "odd_name.zip", S.make_submission(subs.parent / "odd_src", released, solved=SOLVED))
    S.make_submission(subs / "corrupt_nb", released, solved=SOLVED)
    (subs / "corrupt_nb" / "exercises" / "02_fixture.ipynb").write_text('{"cells": [ not json')
    S.make_submission(subs / "honest", released, solved=SOLVED)
    out = tmp_path_factory.mktemp("malformed_out")
    rc = autograde.main([str(subs), "--out", str(out), "--source", str(src), "--no-notebooks"])
    assert rc == 0
    return subs, out, {r["student_id"]: r for r in json.loads((out / "grades.json").read_text())}


@pytest.mark.parametrize("sid", sorted(MALFORMED))
def test_a_malformed_submission_gets_one_clear_line(malformed_batch, sid):
    _, out, results = malformed_batch
    r = results[sid]
    phrase = MALFORMED[sid]
    assert [p for p in r["problems"] if phrase in p] and len(r["problems"]) == 1, r["problems"]
    assert phrase in r["status"]
    page = feedback_text(out, sid)
    assert phrase in page and "Traceback" not in page, page[:2000]
    assert any(phrase in x and sid in x for x in autograde.failure_summary(list(results.values())))


def test_a_corrupt_notebook_or_an_odd_file_name_costs_no_code_points(malformed_batch):
    """The rest of such a submission is graded: the corrupt notebook is left out, the member whose
    name is not UTF-8 is skipped."""
    _, _, results = malformed_batch
    for sid in ("corrupt_nb", "odd_name"):
        assert {n: results[sid]["details"][n]["score"] for n in POINTS} == POINTS, sid
    assert results["honest"]["problems"] == [] and results["honest"]["grader_failures"] == []


def test_seed_is_drawn_per_batch_recorded_and_repeatable(malformed_batch, fixture_course, tmp_path):
    subs, out, results = malformed_batch
    seed = submissions.batch_seed(submissions.find_submissions(subs))
    assert {r["seed"] for r in results.values()} == {seed}
    assert submissions.batch_seed(submissions.find_submissions(subs)) == seed  # the same folder
    (subs / "honest" / "course_lib" / "kl.py").write_text("# resubmitted\n")
    assert submissions.batch_seed(submissions.find_submissions(subs)) != seed  # any change: new cases
    # other seeds draw other cases; --seed repeats a batch's
    assert hidden.make_cases("kl_estimate", seed)[0]["args"][0].tolist() != (
        hidden.make_cases("kl_estimate", seed + 1)[0]["args"][0].tolist()
    )
    src, released = fixture_course
    one = S.make_submission(tmp_path / "subs" / "again", released, solved=SOLVED)
    assert (
        autograde.main(
            [
                str(one),
                "--out",
                str(tmp_path / "o"),
                "--source",
                str(src),
                "--no-notebooks",
                "--seed",
                str(seed),
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "o" / "grades.json").read_text())[0]
    assert again["seed"] == seed
    assert {n: again["details"][n]["score"] for n in POINTS} == POINTS


def test_a_sandbox_that_cannot_start_is_retried_then_flagged_as_grader_side(
    fixture_course, tmp_path, monkeypatch, capsys
):
    src, released = fixture_course
    S.make_submission(tmp_path / "subs" / "unlucky", released, solved=SOLVED)
    starts = []

    def broken_python(iso):  # the injected grader-side failure: the sandbox's Python does not start
        starts.append(1)
        return "/bin/false"

    monkeypatch.setattr(sandbox, "isolation_python", broken_python)
    out = tmp_path / "out"
    [r] = autograde.autograde(tmp_path / "subs", out, source_dir=src, run_notebooks=False)
    assert len(starts) == 2  # tried once more before anyone is blamed
    assert r["grader_failures"] and all("did not start" in m for m in r["grader_failures"])
    assert r["problems"] == []
    page = feedback_text(out, "unlucky")
    assert autograde.GRADER_SIDE_NOTE in page and "did not start" not in page
    err = capsys.readouterr().err
    assert "GRADER-SIDE unlucky: code exercise kl_estimate" in err and "grade those submissions again" in err


def test_a_notebook_timeout_is_the_graders_not_the_students(fixture_course, tmp_path):
    """The notebooks' sandbox stopped at --notebook-timeout (every cell has its own --cell-timeout):
    flagged as grader-side; the student's feedback says so and keeps the code points."""
    src, released = fixture_course
    sub = S.make_submission(tmp_path / "subs" / "busy", released, solved=SOLVED)
    g = autograde.Grader(tmp_path / "out", source_dir=src, notebook_timeout=2, quiet=True)
    g.prepare()
    r = g.grade_one(sub)
    assert r["grader_failures"] == [
        "notebook execution: notebook execution took longer than 2 s and was stopped"
    ]
    assert {n: r["details"][n]["score"] for n in POINTS} == POINTS
    page = feedback_text(tmp_path / "out", "busy")
    assert autograde.GRADER_SIDE_NOTE in page and "took longer" not in page
    assert any(x.startswith("  GRADER-SIDE busy: notebook execution") for x in autograde.failure_summary([r]))
