"""What `course autograde` writes for other tools: grades.csv, JUnit XML and an LMS gradebook CSV.

All three are written from the batch's results (``autograde.Grader.grade_one``'s dicts: ``rows``
with student_id / unit / exercise / score / max_score, ``details`` with each code exercise's
verdict), so they always agree with each other and with grades.json:

* ``grades.csv``: one row per student and graded cell: student_id, unit, exercise, score,
  max_score, student_total. ``unit`` is written ``unit_01`` (a spreadsheet turns a bare ``01``
  into the number 1); ``student_total`` = the student's points so far (code points; written
  answers count once graded by hand), repeated on each of the student's rows. A written answer
  has an EMPTY score = pending manual grading.
* ``junit.xml``: one ``<testsuite>`` per student, one ``<testcase>`` per code exercise
  (classname ``<student>.unit_NN``; a ``<failure>`` whose message is the score and whose text is
  the same verdict as the HTML feedback, ``feedback.verdict_lines``); written answers are
  ``<skipped>`` (graded by hand). CI dashboards and most LMS plug-ins read this.
* ``lms.csv``: one row per student -- ``student_id`` first, then ``unit_01`` ... (points earned in
  that unit), ``total`` and ``max_total`` (code points; written answers are graded by hand and
  not in it). Import it as a gradebook column set (Canvas / Moodle "import grades from CSV").
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from course_instructor.grading import feedback

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
GRADES_FIELDS = ["student_id", "unit", "exercise", "score", "max_score", "student_total"]


def unit_label(unit: str) -> str:
    """``"01"`` -> ``"unit_01"``: a column / cell value no spreadsheet reads as a number."""
    return f"unit_{int(unit):02d}"


def _xml_text(text: str) -> str:
    """Student text (exception messages) without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("\ufffd", text)


def _num(x: float) -> str:
    return f"{round(x, 3):g}"


def student_total(result: dict) -> float:
    """Points earned by one student (rows with a score; pending written answers count 0)."""
    return round(sum(r["score"] for r in result["rows"] if r["score"] is not None), 3)


def unit_scores(result: dict, *, code_only: bool = True) -> dict[str, tuple[float, float]]:
    """{"01": (earned, max)} over the student's rows, in unit order; `code_only` leaves out the
    written answers (rows whose exercise is not a code exercise of ``details``)."""
    out: dict[str, list[float]] = {}
    for r in result["rows"]:
        if code_only and r["exercise"] not in result.get("details", {}):
            continue
        e = out.setdefault(r["unit"], [0.0, 0.0])
        e[0] += r["score"] or 0.0
        e[1] += r["max_score"]
    return {u: (round(v[0], 3), round(v[1], 3)) for u, v in sorted(out.items())}


def write_grades_csv(results: list[dict], path: Path) -> Path:
    """grades.csv (see the module docstring)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=GRADES_FIELDS)
        w.writeheader()
        for res in results:
            total = _num(student_total(res))
            for row in res["rows"]:
                w.writerow(
                    {
                        **row,
                        "unit": unit_label(row["unit"]),
                        "score": "" if row["score"] is None else f"{row['score']:g}",
                        "max_score": f"{row['max_score']:g}",
                        "student_total": total,
                    }
                )
    return Path(path)


def write_lms_csv(results: list[dict], path: Path) -> Path:
    """lms.csv: student_id, unit_01 ..., total, max_total (one row per student, code points)."""
    # units with code exercises (a unit of written answers only would be an always-empty column)
    units = sorted(
        {r["unit"] for res in results for r in res["rows"] if r["exercise"] in res.get("details", {})}
    )
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", *map(unit_label, units), "total", "max_total"])
        for res in results:
            per = unit_scores(res)
            w.writerow(
                [
                    res["student_id"],
                    *(_num(per[u][0]) if u in per else "" for u in units),
                    _num(sum(v[0] for v in per.values())),
                    _num(sum(v[1] for v in per.values())),
                ]
            )
    return Path(path)


def junit_tree(results: list[dict]) -> ET.ElementTree:
    """The JUnit XML document (see the module docstring)."""
    suites = ET.Element("testsuites", name="course autograde")
    n_all = f_all = 0
    for res in results:
        sid, details = res["student_id"], res.get("details", {})
        suite = ET.SubElement(suites, "testsuite", name=sid)  # ids are [A-Za-z0-9_.-] (submit.clean_id)
        n = fails = skipped = 0
        for row in res["rows"]:
            case = ET.SubElement(
                suite, "testcase", classname=f"{sid}.{unit_label(row['unit'])}", name=row["exercise"]
            )
            n += 1
            s = details.get(row["exercise"])
            if s is None:  # a written answer (or a cell the grader has no verdict for)
                skipped += 1
                ET.SubElement(
                    case, "skipped", message=f"written answer ({row['max_score']:g} points): graded by hand"
                )
                continue
            if s["score"] < s["max_score"]:
                fails += 1
                fail = ET.SubElement(
                    case,
                    "failure",
                    message=f"{s['score']:g}/{s['max_score']:g} points",
                    type="PartialCredit" if s["score"] > 0 else "NoCredit",
                )
                fail.text = _xml_text("\n".join(feedback.verdict_lines(s)))
            else:
                ET.SubElement(case, "system-out").text = _xml_text("\n".join(feedback.verdict_lines(s)))
        suite.set("tests", str(n))
        suite.set("failures", str(fails))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        suite.set("time", f"{res.get('seconds') or 0:.3f}")
        n_all, f_all = n_all + n, f_all + fails
    suites.set("tests", str(n_all))
    suites.set("failures", str(f_all))
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(results: list[dict], path: Path) -> Path:
    junit_tree(results).write(path, encoding="utf-8", xml_declaration=True)
    return Path(path)


def write_all(results: list[dict], out: Path) -> None:
    """grades.csv, junit.xml and lms.csv in `out`."""
    out = Path(out)
    write_grades_csv(results, out / "grades.csv")
    write_junit(results, out / "junit.xml")
    write_lms_csv(results, out / "lms.csv")
