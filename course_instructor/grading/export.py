"""What `course autograde` writes for other tools: grades.csv, JUnit XML and an LMS gradebook CSV.

All three are written from the batch's results (``autograde.Grader.grade_one``'s dicts: ``rows``
with student_id / unit / exercise / score / max_score, ``details`` with each code exercise's
verdict), so they always agree with each other and with grades.json:

* ``grades.csv``: one row per student and graded cell: student_id, unit, exercise, score,
  max_score, student_total, flag. ``unit`` is written ``unit_01`` (a spreadsheet turns a bare
  ``01`` into the number 1); ``student_total`` = the student's points so far (code points; written
  answers count once graded by hand), repeated on each of the student's rows. A written answer
  has an EMPTY score = pending manual grading. ``flag`` is empty but for a contested id (below).
* ``junit.xml``: one ``<testsuite>`` per student, one ``<testcase>`` per code exercise
  (classname ``<student>.unit_NN``; a ``<failure>`` whose message is the score and whose text is
  the same verdict as the HTML feedback, ``feedback.verdict_lines``); written answers are
  ``<skipped>`` (graded by hand). CI dashboards and most LMS plug-ins read this.
* ``lms.csv``: one row per student -- ``student_id`` first, then ``unit_01`` ... (points earned in
  that unit), ``total`` and ``max_total`` (code points; written answers are graded by hand and
  not in it). Import it as a gradebook column set (Canvas / Moodle "import grades from CSV").
  It has a last column ``flag`` only when an id of the batch is contested.

A **contested id** (two or more submissions claim it; ``result["id_conflict"]`` = {"id",
"claimants"}, see ``submissions.assign_ids``) is graded under none of the claimants: each has
its own ``<id>-conflict-<hash>`` rows, flagged, and the contested id itself gets one flagged row
with EMPTY scores in both CSVs (an LMS import then leaves that student's grade unset instead of
taking an impostor's) and a ``<testsuite>`` with an ``<error>`` in junit.xml.

Every text cell goes through :func:`cell` (OWASP's CSV-injection rule: no cell a spreadsheet
would run as a formula); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from course_instructor.grading import feedback

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
GRADES_FIELDS = ["student_id", "unit", "exercise", "score", "max_score", "student_total", "flag"]
# first characters that make a spreadsheet read a cell as a formula (OWASP: CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(text) -> str:
    """A text cell no spreadsheet runs as a formula: one that starts with = + - @ tab, CR or LF
    gets a leading single quote. Ids are cleaned to start with a letter or digit already
    (``submit.clean_id``); this also covers exercise names, file names and older grades.json."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def conflict_flag(contested: str, claimants: list[str]) -> str:
    """The flag of a contested id's rows: which files claim it."""
    return f"CONFLICT: {', '.join(claimants)} claim the id {contested}; check by hand whose it is"


def contested_ids(results: list[dict]) -> dict[str, list[str]]:
    """{contested id: claimants} over the batch, in the order of the first claimant's result."""
    out: dict[str, list[str]] = {}
    for res in results:
        c = res.get("id_conflict")
        if c:
            out.setdefault(c["id"], list(c["claimants"]))
    return out


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
    flagged: set[str] = set()
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=GRADES_FIELDS)
        w.writeheader()
        for res in results:
            total = _num(student_total(res))
            flag = _flag(res)
            if flag and res["id_conflict"]["id"] not in flagged:  # the contested id's own row, once
                flagged.add(res["id_conflict"]["id"])
                w.writerow({"student_id": cell(res["id_conflict"]["id"]), "flag": flag})
            for row in res["rows"]:
                w.writerow(
                    {
                        "student_id": cell(row["student_id"]),
                        "unit": unit_label(row["unit"]),
                        "exercise": cell(row["exercise"]),
                        "score": "" if row["score"] is None else f"{row['score']:g}",
                        "max_score": f"{row['max_score']:g}",
                        "student_total": total,
                        "flag": flag,
                    }
                )
    return Path(path)


def _flag(res: dict) -> str:
    c = res.get("id_conflict")
    return cell(conflict_flag(c["id"], c["claimants"])) if c else ""


def write_lms_csv(results: list[dict], path: Path) -> Path:
    """lms.csv: student_id, unit_01 ..., total, max_total (one row per student, code points), and
    flag where an id is contested (an extra text column would otherwise be in an import's way)."""
    # units with code exercises (a unit of written answers only would be an always-empty column)
    units = sorted(
        {r["unit"] for res in results for r in res["rows"] if r["exercise"] in res.get("details", {})}
    )
    flags = bool(contested_ids(results))
    flagged: set[str] = set()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["student_id", *map(unit_label, units), "total", "max_total", *(["flag"] if flags else [])]
        )
        for res in results:
            per = unit_scores(res)
            flag = _flag(res)
            if flag and res["id_conflict"]["id"] not in flagged:  # the contested id: no score at all
                flagged.add(res["id_conflict"]["id"])
                w.writerow([cell(res["id_conflict"]["id"]), *[""] * (len(units) + 2), flag])
            w.writerow(
                [
                    cell(res["student_id"]),
                    *(_num(per[u][0]) if u in per else "" for u in units),
                    _num(sum(v[0] for v in per.values())),
                    _num(sum(v[1] for v in per.values())),
                    *([flag] if flags else []),
                ]
            )
    return Path(path)


def junit_tree(results: list[dict]) -> ET.ElementTree:
    """The JUnit XML document (see the module docstring)."""
    suites = ET.Element("testsuites", name="course autograde")
    n_all = f_all = e_all = 0
    contested = contested_ids(results)
    for res in results:
        c = res.get("id_conflict")
        if c and c["id"] in contested:  # the contested id's suite, before its first claimant's
            flag = _xml_text(cell(conflict_flag(c["id"], contested.pop(c["id"]))))
            cid = _xml_text(cell(c["id"]))
            suite = ET.SubElement(
                suites, "testsuite", name=cid, tests="1", failures="0", errors="1", skipped="0", time="0.000"
            )
            case = ET.SubElement(suite, "testcase", classname=f"{cid}.student_id", name="student_id_conflict")
            ET.SubElement(case, "error", message=flag, type="StudentIdConflict")
            n_all, e_all = n_all + 1, e_all + 1
        # ids are [A-Za-z0-9_.-] from a letter or digit (submit.clean_id); cell() and _xml_text()
        # keep a hostile one from an older grades.json out of formulae and out of the XML's syntax
        sid, details = _xml_text(cell(res["student_id"])), res.get("details", {})
        suite = ET.SubElement(suites, "testsuite", name=sid)
        n = fails = skipped = 0
        for row in res["rows"]:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{sid}.{unit_label(row['unit'])}",
                name=_xml_text(cell(row["exercise"])),
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
    suites.set("errors", str(e_all))
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


def write_results(results: list[dict], out: Path) -> None:
    """A batch's outputs in `out`: :func:`write_all`'s files and grades.json (every result in full);
    one writer for a graded batch and for merged shards, so both write the same bytes."""
    write_all(results, out)
    (Path(out) / "grades.json").write_text(json.dumps(results, indent=1, default=str))
