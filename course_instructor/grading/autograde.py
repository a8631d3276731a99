"""`course autograde SUBMISSIONS [--out DIR]`: grade a folder of submissions with nbgrader.

SUBMISSIONS is a folder whose entries are submissions (a ``.zip`` made by `course submit`, or a
folder with ``exercises/*.ipynb`` and ``course_lib/*.py``), or one such zip / folder.

Student code only ever runs inside bubblewrap (isolation.py); without it the grader refuses to
run unless ``--unsafe-no-isolation`` is given. The pieces:

* shards.py: ``--shard i/n`` grades a part of the batch (:func:`grade_shard`), ``--merge`` joins them;
* submissions.py: unpacking (only the files grading reads) and student ids, decided for the whole
  batch before grading starts (an id two submissions claim goes to neither: ``assign_ids``);
* sandbox.py: the **code points**. This process computes the expected results with ``solutions/``
  (seeded cases from ``hidden.make_cases``; student code never runs here); an isolated
  process (sandboxed/sandbox_child.py) runs the student's functions on the same cases and sends
  values + gradients back as JSON (wire.py), parsed into tensors this process builds; this
  process compares (hidden/). Partial credit =
  fraction of cases passed x points;
* nbgrader_run.py: the **notebooks** run meanwhile in a sandbox of their own (``NBGRADER_EXECUTION``
  set, so training cells shrink; hidden tests cut out), for the written answers and the
  feedback; only their outputs come back, made inert (inert.py), and nbgrader's autograde files
  them in the gradebook without executing anything; its score for a code test cell is then
  *replaced* by the score from the code sandbox;
* feedback.py: ``DIR/feedback/<student>/*.html`` (hidden tests removed, student text escaped);
* integrity.py: solutions/, the grader's code (this package, hidden cases included), the
  course_lib grading lays student files over, the source notebooks and the batch's configuration
  are hashed before the batch and checked after every submission; a change stops the batch and no grades are written.

Outputs (export.py): ``DIR/grades.csv`` (student_id, unit as ``unit_01``, exercise, score, max_score,
student_total, flag; a written-answer cell has an EMPTY score = pending manual grading in nbgrader's
formgrader; flag: a contested student id), ``DIR/junit.xml`` (a testcase per exercise),
``DIR/lms.csv`` (a row per student: a column per unit + total), ``DIR/grades.json``
(per-case details, errors, seconds), the feedback pages, and the nbgrader course folder
``DIR/nbgrader`` (gradebook.db for the formgrader). At the end of the batch every failure is
printed, one line each: GRADER-SIDE (not the student's fault: re-grade), SUBMISSION (malformed
or incomplete) and CODE (an exercise that crashed or ran out of its time).

One result (a dict; ``grades.json`` is the list of them, exporters read these keys):
``student_id``; ``id_conflict`` (None, or {"id": the contested id, "claimants": file names}: see
``Grader.assign_ids``); ``rows`` (the grades.csv rows: student_id, unit, exercise, score -- None for a
written answer --, max_score); ``details`` ({exercise: score dict from
``hidden.score``: passed, total, score, max_score, failures, error, failed_callees,
grader_side}); ``seed`` (of the hidden cases); ``problems`` (the submission's own, one line
each); ``grader_failures`` (the grader's own, one line each); ``status`` (the feedback's first
line); ``seconds``, ``code_seconds``, ``notebook_seconds``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import nbformat

from course_instructor import release
from course_instructor.grading import export, feedback, hidden, nbgrader_run, sandbox, shards, submissions
from course_instructor.grading.integrity import Integrity, IntegrityError
from course_instructor.grading.isolation import Isolation, IsolationUnavailable, warn_unsafe
from course_lib.core import registry as exercises

REPO = release.REPO
ASSIGNMENT = release.ASSIGNMENT
HIDDEN_MARK = feedback.HIDDEN_MARK
find_submissions = submissions.find_submissions
GRADER_SIDE_NOTE = (
    "The grader could not finish part of its own work on your submission (a busy or failing grading "
    "machine, not your code); your instructor has been told and will grade it again."
)


# --- what the source notebooks grade ------------------------------------------------------------
def graded_cells(source_dir: Path) -> list[dict]:
    """Every graded cell of the source notebooks: code tests (exercise) and written answers."""
    out = []
    for nb_path in release.source_notebooks(source_dir):
        nb = nbformat.read(str(nb_path), as_version=4)
        unit = nb_path.name[:2]
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade"):
                continue
            gid = meta["grade_id"]
            name = gid[len("test_") :] if gid.startswith("test_") else None
            kind = "code" if name in exercises.BY_NAME and cell.cell_type == "code" else "manual"
            out.append(
                {
                    "notebook": nb_path.stem,
                    "unit": unit,
                    "grade_id": gid,
                    "exercise": name if kind == "code" else gid,
                    "kind": kind,
                    "max_score": float(meta.get("points", 0)),
                }
            )
    return out


# --- the batch ------------------------------------------------------------------------------------
class Grader:
    def __init__(
        self,
        out: Path,
        source_dir: Path | None = None,
        *,
        seed: int | None = None,
        cell_timeout: int = 60,
        notebook_timeout: float = 240,
        exercise_timeout: float = 20,
        sandbox_timeout: float | None = None,
        run_notebooks: bool = True,
        quiet: bool = False,
        jobs: int | None = None,
        warm_kernels: bool = True,
        isolate: bool = True,
        isolation: Isolation | None = None,
    ):
        self.grading = hidden
        # absolute once, here: nbgrader runs in another working directory, where a relative
        # gradebook path names no file ("unable to open database file")
        self.out = Path(out).resolve()
        self.source_dir = Path(source_dir or REPO / "notebooks")
        self.seed = seed  # None: drawn from the batch in grade_all (submissions.batch_seed)
        self.cell_timeout, self.notebook_timeout = cell_timeout, notebook_timeout
        self.exercise_timeout, self.sandbox_timeout = exercise_timeout, sandbox_timeout
        self.run_notebooks, self.quiet = run_notebooks, quiet
        # notebooks graded at once (one kernel each): one per core, at most 2 by default
        self.jobs = max(1, jobs if jobs is not None else min(2, os.cpu_count() or 1))
        self.cells = graded_cells(self.source_dir)
        self.names = list(dict.fromkeys(c["exercise"] for c in self.cells if c["kind"] == "code"))
        self.root = self.out / "nbgrader"
        self.course_lib = self.root / "course_lib_base"
        # kernels forked from a per-submission server that imported torch & co once (grader_kernel.py)
        self.warm_kernels = warm_kernels
        # raises IsolationUnavailable where bwrap cannot run; `isolation`: another wall (gradescope.py)
        self.iso = isolation if isolation is not None else Isolation(isolate)
        if not isolate and isolation is None:
            warn_unsafe(lambda m: print(m, file=sys.stderr, flush=True))
        self.import_api = None  # nbgrader's API that files executed notebooks (prepare)
        self.expected: dict[str, tuple[list, list]] = {}
        self.integrity: Integrity | None = None
        self.ids: dict[str, str] = {}  # submission (file name) -> the student id it is graded under
        self.conflicts: dict[str, list[str]] = {}  # contested id -> the file names claiming it
        self.warnings: dict[str, str] = {}  # graded id -> what its feedback says first (a conflict)
        self.alarms: list[str] = []  # contested ids etc., printed at the end of the batch

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def guarded_paths(self) -> list[Path]:
        """What decides grades: solutions/, the grader's code (this package: the trusted side, the
        sandboxed code, the wire format and the hidden cases), the batch's copy of course_lib that
        grading lays student files over, the source notebooks, the course and batch config."""
        paths = [
            REPO / "solutions",
            Path(__file__).parent,
            REPO / "course_instructor" / "release.py",
            self.course_lib,
            self.source_dir,
            REPO / "nbgrader_config.py",
        ]
        if self.run_notebooks:
            paths += [self.root / "nbgrader_config.py", self.root / "source", self.root / "kernel"]
        return paths

    def prepare(self) -> None:
        os.environ.setdefault("COURSE_PROFILE", "tiny")
        self.out.mkdir(parents=True, exist_ok=True)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        sandbox.copy_package(self.course_lib)  # one course_lib for the whole batch
        if self.seed is None:  # grade_all draws it from the batch; a caller that did not: the fixed one
            self.seed = self.grading.DEFAULT_SEED
        t0 = time.time()
        for n in self.names:
            self.expected[n] = self.grading.expected_results(n, self.seed)
        self.log(f"expected results for {len(self.names)} exercises ({time.time() - t0:.1f} s)")
        if self.run_notebooks:
            release.make_course_root(self.root, self.source_dir)
            api = release._api(release.nbgrader_config(self.root))
            res = api.generate_assignment(ASSIGNMENT, force=True, create=True)
            if not res.get("success"):
                raise RuntimeError(f"nbgrader generate_assignment failed: {res.get('log', '')[-2000:]}")
            nbgrader_run.write_course_config(self.root, self.cell_timeout)
            self.import_api = release._api(nbgrader_run.import_config(self.root))
        self.integrity = Integrity(self.guarded_paths())

    def grade_code(self, course_lib_dir: Path | None) -> dict[str, dict]:
        jobs = {n: self.expected[n][0] for n in self.names}
        got = sandbox.run_student_cases(
            course_lib_dir,
            jobs,
            isolation=self.iso,
            base=self.course_lib,
            exercise_timeout=self.exercise_timeout,
            total_timeout=self.sandbox_timeout,
        )
        scores = {}
        for n in self.names:
            o = got.get(n, {"results": None, "error": "not run"})
            s = self.grading.score(n, self.expected[n][1], o["results"])
            s["error"] = o.get("error")
            s["grader_side"] = bool(o.get("grader_side"))
            if o.get("error") and o["results"] is None:
                s["failures"].insert(0, GRADER_SIDE_NOTE if s["grader_side"] else o["error"])
            scores[n] = s
        # an exercise graded with the student's own (failing) version of an exercise it calls says so
        self.grading.explain_dependencies(scores)
        return scores

    def grade_one(self, sub: Path) -> dict:
        t0 = time.time()
        work = Path(tempfile.mkdtemp(prefix="course_grade_"))
        try:
            try:
                notes: list[str] = []  # what unpacking skipped (names that are not UTF-8)
                unpacked = submissions.unpack(sub, work / "sub", notes)
                sid, dup = self._claim(sub)
            except (ValueError, OSError) as e:
                return self._broken(self._claim(sub)[0], f"unreadable submission: {e}", t0)
            problems = notes + submissions.problems_of(unpacked)  # the submission's own, shown to the student
            grader_failures: list[str] = []  # the grader's own: flagged for the instructor
            cl = unpacked / "course_lib"
            cl = cl if cl.is_dir() else None
            nb_dir = unpacked / "exercises" if (unpacked / "exercises").is_dir() else unpacked
            bad_notebooks = {}  # a corrupt notebook is left out of nbgrader's run (not its group)
            for nb in sorted(nb_dir.glob("*.ipynb")):
                why = submissions.notebook_problem(nb) if nb.is_file() and not nb.is_symlink() else None
                if why:
                    bad_notebooks[nb.stem] = why
                    problems.append(why)
            # the notebooks run in their sandbox in the background while the code sandbox grades
            run = None
            try:
                if self.run_notebooks:
                    run = self._start_notebooks(sid, nb_dir, cl, skip=set(bad_notebooks))
                    problems += run.problems
                code_scores = self.grade_code(cl)
                t_code = time.time() - t0
                grader_failures += [
                    f"code exercise {n}: {s['error']}" for n, s in code_scores.items() if s.get("grader_side")
                ]
                t_nb = None
                if run:
                    ok, msg = run.finish(self.source_dir, self.import_api)
                    t_nb = time.time() - run.started
                    try:
                        nbgrader_run.set_gradebook_scores(self.root, sid, code_scores, self.cells)
                    except Exception as e:  # noqa: BLE001 - the csv is the source of truth; the db is a convenience
                        ok, msg = False, (msg + f"; gradebook not updated: {e}").strip("; ")
                    if not ok:  # the cells are bounded (--cell-timeout): the run as a whole is ours
                        grader_failures.append(f"notebook execution: {msg[:600]}")
            finally:
                if run:
                    run.close()
            status = dup + "Code exercises graded by running your functions on hidden inputs in a sandbox."
            if problems:
                status += " Problems with your submission: " + " / ".join(problems) + "."
            if grader_failures:
                status += " " + GRADER_SIDE_NOTE
            self._feedback(sid, nb_dir, code_scores, status, bad_notebooks)
            rows = self._rows(sid, code_scores)
            secs = time.time() - t0
            self.log(
                f"  {sid}: {sum(r['score'] or 0 for r in rows):g}/{sum(r['max_score'] for r in rows):g} "
                f"points ({secs:.1f} s; code {t_code:.1f} s)"
            )
            return {
                "student_id": sid,
                "rows": rows,
                "seconds": secs,
                "code_seconds": t_code,
                "notebook_seconds": t_nb,
                "details": code_scores,
                "status": status,
                "seed": self.seed,
                "problems": problems,
                "grader_failures": grader_failures,
            }
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _start_notebooks(self, sid, nb_dir: Path, cl: Path | None, skip: set[str] = frozenset()):
        """Prepare the submission's notebooks and start their sandbox (nbgrader_run.NotebookRun)."""
        wanted = {c["notebook"] for c in self.cells} | {
            p.stem for p in release.source_notebooks(self.source_dir)
        }
        notebooks = [
            nb
            for nb in sorted(nb_dir.glob("*.ipynb"))
            if nb.stem in wanted
            and nb.stem not in skip
            and nb.is_file()
            and not nb.is_symlink()
            and nb.stat().st_size < 50 * 2**20
        ]
        nbgrader_run.prepare_gradebook(self.root, sid)
        return nbgrader_run.NotebookRun(
            self.root,
            self.iso,
            sid,
            notebooks,
            cl,
            self.course_lib,
            cell_timeout=self.cell_timeout,
            notebook_timeout=self.notebook_timeout,
            jobs=self.jobs,
            threads=max(1, (os.cpu_count() or 1) // self.jobs),
            warm=self.warm_kernels,
        )

    def _feedback(self, sid, nb_dir: Path, code_scores, status, bad_notebooks: dict | None = None) -> None:
        fb = self.out / "feedback" / sid
        if fb.exists():
            shutil.rmtree(fb)
        for src in release.source_notebooks(self.source_dir):
            if bad_notebooks and src.stem in bad_notebooks:
                fb.mkdir(parents=True, exist_ok=True)
                (fb / f"{src.stem}.html").write_text(feedback.message_page(status, bad_notebooks[src.stem]))
                continue
            graded = self.root / "autograded" / sid / ASSIGNMENT / src.name
            nb_path = graded if graded.is_file() and not graded.is_symlink() else nb_dir / src.name
            if not nb_path.is_file() or nb_path.is_symlink():
                continue
            try:
                feedback.write_feedback(nb_path, fb / f"{src.stem}.html", self.cells, code_scores, status)
            except Exception as e:  # noqa: BLE001 - a corrupt notebook still gets a page
                fb.mkdir(parents=True, exist_ok=True)
                (fb / f"{src.stem}.html").write_text(
                    feedback.message_page(status, f"Your notebook could not be read ({type(e).__name__}).")
                )
        if not fb.is_dir() or not any(fb.iterdir()):  # no notebook at all: one page with the status
            fb.mkdir(parents=True, exist_ok=True)
            (fb / "submission.html").write_text(
                feedback.message_page(status, "No notebook of this assignment was found in your submission.")
            )

    def _rows(self, sid, code_scores) -> list[dict]:
        rows = []
        for c in self.cells:
            if c["kind"] == "code":
                s = code_scores.get(c["exercise"])
                rows.append(
                    {
                        "student_id": sid,
                        "unit": c["unit"],
                        "exercise": c["exercise"],
                        "score": s["score"] if s else 0.0,
                        "max_score": c["max_score"],
                    }
                )
            else:
                rows.append(
                    {
                        "student_id": sid,
                        "unit": c["unit"],
                        "exercise": c["exercise"],
                        "score": None,
                        "max_score": c["max_score"],
                    }
                )
        return rows

    def _broken(self, sid, msg, t0, grader_side: bool = False) -> dict:
        """The record of a submission that could not be graded at all: 0 points, one line saying
        why (in grades.json, on a feedback page and in the batch summary)."""
        self.log(f"  {sid}: {msg}")
        shown = GRADER_SIDE_NOTE if grader_side else msg
        warning = self.warnings.get(sid, "")  # a contested id's claimant hears it here too
        scores = {
            n: {
                "exercise": n,
                "passed": 0,
                "total": len(self.expected[n][0]),
                "max_score": float(exercises.get(n).points),
                "score": 0.0,
                "failures": [shown],
                "error": msg,
                "failed_callees": [],
                "grader_side": grader_side,
            }
            for n in self.names
        }
        fb = self.out / "feedback" / sid
        shutil.rmtree(fb, ignore_errors=True)
        fb.mkdir(parents=True, exist_ok=True)
        (fb / "submission.html").write_text(
            feedback.message_page(warning + "Your submission was not graded.", shown)
        )
        return {
            "student_id": sid,
            "rows": self._rows(sid, scores),
            "seconds": time.time() - t0,
            "code_seconds": 0.0,
            "details": scores,
            "status": warning + shown,
            "seed": self.seed,
            "problems": [] if grader_side else [msg],
            "grader_failures": [msg] if grader_side else [],
        }

    def grade_all(self, subs: list[Path], batch: list[Path] | None = None) -> list[dict]:
        """Grade every submission; raises IntegrityError (and writes no grades) if an instructor
        or grader file changed on the way. `batch`: the whole folder `subs` were taken from (a
        shard grades some of it), which decides the student ids and the seed."""
        batch = list(subs if batch is None else batch)
        if self.seed is None:
            self.seed = submissions.batch_seed(batch)
        self.log(f"hidden cases drawn with seed {self.seed} (recorded in grades.json; --seed repeats them)")
        self.assign_ids(batch)
        self.prepare()
        results = []
        for sub in subs:
            try:
                r = self.grade_one(sub)
            except Exception as e:  # noqa: BLE001 - one bad submission must not stop the batch
                r = self._broken(
                    self._claim(sub)[0],  # the id of the id pass: a failure never claims one again
                    f"grading failed: {type(e).__name__}: {str(e)[:300]}",
                    time.time(),
                    grader_side=True,
                )
            self.integrity.verify(f"grading {r['student_id']} ({sub.name})")
            r["id_conflict"] = self._conflict_of(sub)
            results.append(r)
        self.write(results)
        for a in self.alarms:
            print(f"course autograde: {a}", file=sys.stderr, flush=True)
        lines = failure_summary(results)
        if lines:
            print(
                f"course autograde: {len(lines)} failure(s) in this batch (seed {self.seed}):\n"
                + "\n".join(lines)
                + (
                    "\nGRADER-SIDE failures are not the students' fault: grade those submissions again "
                    "(on a quieter machine, or with a larger --notebook-timeout)."
                    if any("GRADER-SIDE" in x for x in lines)
                    else ""
                ),
                file=sys.stderr,
                flush=True,
            )
        return results

    def assign_ids(self, batch: list[Path]) -> None:
        """The id pass, over the whole batch before any grading (``submissions.assign_ids``): the
        ids cannot depend on which file comes first, and a contested id goes to none of its
        claimants (each graded under ``<id>-conflict-<hash>``; flagged in the outputs, alarmed)."""
        claims = {sub.name: submissions.identify(sub) for sub in batch}
        self.ids, self.conflicts = submissions.assign_ids(claims)
        self.warnings = {}
        for cid, names in self.conflicts.items():
            graded_as = ", ".join(f"{self.ids[n]!r} ({n})" for n in names)
            self.alarms.append(
                f"STUDENT ID CONFLICT {cid!r}: {len(names)} submissions claim it ({', '.join(names)}); "
                f"none is graded under it: graded as {graded_as}. Check by hand which one is the "
                "student's (grades.csv and lms.csv have a flagged row for it)."
            )
            for n in names:
                self.warnings[self.ids[n]] = (
                    f"STUDENT ID CONFLICT: {len(names)} submissions of this batch claim the student id "
                    f"{cid!r} (this one is {n}), so none of them is graded under it: this one is graded "
                    f"as {self.ids[n]!r} until your instructor checks by hand which one is yours. "
                )
        for a in self.alarms:
            self.log(a)

    def _claim(self, sub: Path) -> tuple[str, str]:
        """(the id this submission is graded under, the warning its feedback starts with or ""),
        as the id pass decided. A submission graded on its own (grade_one without grade_all)
        claims its own id."""
        if sub.name not in self.ids:
            self.ids[sub.name] = submissions.identify(sub)
        sid = self.ids[sub.name]
        return sid, self.warnings.get(sid, "")

    def _conflict_of(self, sub: Path) -> dict | None:
        for cid, names in self.conflicts.items():
            if sub.name in names:
                return {"id": cid, "claimants": names}
        return None

    def write(self, results: list[dict]) -> None:
        export.write_results(results, self.out)


def failure_summary(results: list[dict]) -> list[str]:
    """Every failure of a batch, one line each: GRADER-SIDE (ours: re-grade), SUBMISSION (malformed
    or incomplete), CODE (an exercise whose run crashed, timed out or sent back nothing usable)."""
    lines = []
    for r in results:
        sid = r["student_id"]
        lines += [f"  GRADER-SIDE {sid}: {m}" for m in r.get("grader_failures", [])]
        lines += [f"  SUBMISSION  {sid}: {m}" for m in r.get("problems", [])]
        for n, s in r.get("details", {}).items():
            err = s.get("error")
            if err and not s.get("grader_side") and err not in r.get("problems", []):
                lines.append(f"  CODE        {sid}: {n}: {err[:300]}")
    return lines


def autograde(submissions_path: Path, out: Path, **kw) -> list[dict]:
    subs = submissions.find_submissions(Path(submissions_path))
    return Grader(Path(out), **kw).grade_all(subs)


def grade_shard(submissions_path: Path, out: Path, spec: str, **grader_kw) -> list[dict]:
    """Grade shard `spec` ("i/n") of the submissions in `submissions_path` into `out`
    (``grader_kw`` go to :class:`Grader`); writes the usual outputs + shard.json (shards.py)."""
    index, count = shards.parse_shard(spec)
    out = Path(out).resolve()  # nbgrader runs in another working directory
    subs = submissions.find_submissions(Path(submissions_path))
    results = Grader(out, **grader_kw).grade_all(shards.select(subs, index, count), batch=subs)
    shards.write_manifest(out, index, count, [s.name for s in subs], results)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course autograde", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "submissions", nargs="?", help="a folder of submissions (zips or folders), or one submission"
    )
    ap.add_argument(
        "--shard",
        metavar="I/N",
        default=None,
        help="grade only shard I of N (submissions I, I+N, ... of the sorted batch; shards.py)",
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="SHARD_DIR",
        default=None,
        help="combine the --out folders of shards 1..N into --out (no grading)",
    )
    ap.add_argument("--out", default="grades", help="output folder (default grades/)")
    ap.add_argument("--source", default=str(REPO / "notebooks"), help="source notebooks (default notebooks/)")
    ap.add_argument("--cell-timeout", type=int, default=60, help="nbgrader per-cell timeout, s (default 60)")
    ap.add_argument(
        "--notebook-timeout",
        type=float,
        default=240,
        help="bound on nbgrader autograde for one submission, s (default 240)",
    )
    ap.add_argument(
        "--exercise-timeout", type=float, default=20, help="sandbox: one exercise, s (default 20)"
    )
    ap.add_argument(
        "--sandbox-timeout",
        type=float,
        default=None,
        help="sandbox: optional cap for one submission's code, s (default none: every exercise has "
        "its own --exercise-timeout, so one that hangs costs only its points)",
    )
    ap.add_argument(
        "--no-notebooks",
        action="store_true",
        help="skip executing the notebooks (code points only, feedback without outputs)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the hidden cases (default: drawn from the batch's files; recorded in grades.json)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="notebooks of one submission executed at once (default: min(2, cores))",
    )
    ap.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every notebook's kernel from scratch (no fork server; slower, same grades)",
    )
    ap.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run student code WITHOUT bubblewrap (unsafe: only for trusted submissions)",
    )
    args = ap.parse_args(argv)
    # absolute once, at the entry: nbgrader runs in another working directory (Grader does the same)
    out = Path(args.out).resolve()
    if args.merge or args.shard:
        if args.merge:
            return shards.merge_main(args.merge, out)
        try:
            shards.parse_shard(args.shard)
        except ValueError as e:
            print(f"course autograde: {e}", file=sys.stderr)
            return 2
    if args.submissions is None:
        ap.error("give a folder of submissions (or --merge SHARD_DIR ...)")
    if not Path(args.submissions).exists():
        print(f"course autograde: {args.submissions} does not exist", file=sys.stderr)
        return 2
    try:
        import solutions  # noqa: F401
    except ImportError:
        print("course autograde: needs the instructor repository (solutions/ is missing)", file=sys.stderr)
        return 2
    t0 = time.time()
    # every shard of a batch sees the whole folder, so they draw the same seed
    seed = (
        args.seed
        if args.seed is not None
        else submissions.batch_seed(find_submissions(Path(args.submissions)))
    )
    try:
        grade = partial(grade_shard, spec=args.shard) if args.shard else autograde
        results = grade(
            Path(args.submissions),
            out,
            source_dir=Path(args.source).resolve(),
            cell_timeout=args.cell_timeout,
            notebook_timeout=args.notebook_timeout,
            exercise_timeout=args.exercise_timeout,
            sandbox_timeout=args.sandbox_timeout,
            run_notebooks=not args.no_notebooks,
            seed=seed,
            jobs=args.jobs,
            warm_kernels=not args.cold_kernels,
            isolate=not args.unsafe_no_isolation,
        )
    except IsolationUnavailable as e:
        print(
            f"course autograde: refusing to run student code without isolation: {e}.\n"
            "(--unsafe-no-isolation runs it anyway, for trusted submissions only.)",
            file=sys.stderr,
        )
        return 2
    except IntegrityError as e:
        print(f"course autograde: {e}", file=sys.stderr)
        return 3
    n = len(results)
    print(
        f"graded {n} submission(s) in {time.time() - t0:.1f} s "
        f"({(time.time() - t0) / max(n, 1):.1f} s per submission) -> {out / 'grades.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
