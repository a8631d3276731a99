"""grading/export.py: grades.csv, junit.xml and lms.csv from a batch's results (issues 18, 22).
Made-up results (the shape autograde.Grader.grade_one returns); test_gradescope.py checks the
same files from a real grading batch against Gradescope's results.json."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

from course_instructor.grading import export, feedback


def verdict(passed, total, score, max_score, failures=(), error=None):
    return {
        "passed": passed,
        "total": total,
        "score": score,
        "max_score": max_score,
        "failures": list(failures),
        "error": error,
    }


def result(sid, scores: dict, details: dict, seconds=1.5):
    """scores: {(unit, exercise): (score or None, max)}; details: the code exercises' verdicts."""
    rows = [
        {"student_id": sid, "unit": u, "exercise": ex, "score": s, "max_score": m}
        for (u, ex), (s, m) in scores.items()
    ]
    return {"student_id": sid, "rows": rows, "details": details, "seconds": seconds}


RESULTS = [
    result(
        "ada",
        {
            ("01", "format_reward"): (1.5, 2.0),
            ("01", "q_reward_offset"): (None, 2.0),
            ("02", "kl_estimate"): (3.0, 3.0),
            ("10", "dpo_loss"): (0.333, 5.0),
            ("11", "q_compare"): (None, 3.0),  # a unit of written answers only: no lms.csv column
        },
        {
            "format_reward": verdict(3, 4, 1.5, 2.0, ["case 4 (empty): got \x1b[31m<b>\x00</b>"]),
            "kl_estimate": verdict(9, 9, 3.0, 3.0),
            "dpo_loss": verdict(1, 15, 0.333, 5.0, error="while running dpo_loss: timed out after 20 s"),
        },
    ),
    result(
        "bob",
        {
            ("01", "format_reward"): (0.0, 2.0),
            ("01", "q_reward_offset"): (None, 2.0),
            ("02", "kl_estimate"): (0.0, 3.0),
            ("10", "dpo_loss"): (0.0, 5.0),
        },
        {
            "format_reward": verdict(0, 4, 0.0, 2.0, ["case 1 (a): raised NotImplementedError"]),
            "kl_estimate": verdict(0, 9, 0.0, 3.0),
            "dpo_loss": verdict(0, 15, 0.0, 5.0),
        },
    ),
]


def test_grades_csv_units_are_text_and_each_row_has_the_total(tmp_path):
    export.write_grades_csv(RESULTS, tmp_path / "grades.csv")
    with open(tmp_path / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == export.GRADES_FIELDS
    assert [r["unit"] for r in rows[:5]] == ["unit_01", "unit_01", "unit_02", "unit_10", "unit_11"]
    assert {r["student_total"] for r in rows if r["student_id"] == "ada"} == {"4.833"}
    assert {r["student_total"] for r in rows if r["student_id"] == "bob"} == {"0"}
    assert [r["score"] for r in rows if r["exercise"] == "q_reward_offset"] == ["", ""]  # pending


def test_lms_csv_one_row_per_student_id_first(tmp_path):
    export.write_lms_csv(RESULTS, tmp_path / "lms.csv")
    lines = (tmp_path / "lms.csv").read_text().splitlines()
    assert lines[0] == "student_id,unit_01,unit_02,unit_10,total,max_total"
    assert lines[1:] == ["ada,1.5,3,0.333,4.833,10", "bob,0,0,0,0,10"]  # written answers: not in it


def test_junit_one_testcase_per_exercise_failures_carry_the_feedback(tmp_path):
    export.write_junit(RESULTS, tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()  # well-formed despite \x00 / ANSI from the student
    assert root.get("tests") == "9" and root.get("failures") == "5"
    ada = root.find("testsuite[@name='ada']")
    assert (ada.get("tests"), ada.get("failures"), ada.get("skipped")) == ("5", "2", "2")
    cases = {c.get("name"): c for c in ada.iter("testcase")}
    assert cases["format_reward"].get("classname") == "ada.unit_01"
    fail = cases["format_reward"].find("failure")
    assert fail.get("message") == "1.5/2 points" and fail.get("type") == "PartialCredit"
    text = "\n".join(feedback.verdict_lines(RESULTS[0]["details"]["format_reward"]))
    assert fail.text == text.replace("\x00", "\ufffd").replace("\x1b", "\ufffd")
    assert "timed out" in cases["dpo_loss"].find("failure").text
    assert cases["kl_estimate"].find("failure") is None
    assert "graded by hand" in cases["q_reward_offset"].find("skipped").get("message")
    bob = root.find("testsuite[@name='bob']")
    assert {c.find("failure").get("type") for c in bob.iter("testcase") if c.find("failure") is not None} == {
        "NoCredit"
    }


def test_write_all_and_an_empty_batch(tmp_path):
    export.write_all([], tmp_path)
    assert (tmp_path / "grades.csv").read_text().strip() == ",".join(export.GRADES_FIELDS)
    assert (tmp_path / "lms.csv").read_text().strip() == "student_id,total,max_total"
    assert ET.parse(tmp_path / "junit.xml").getroot().get("tests") == "0"
