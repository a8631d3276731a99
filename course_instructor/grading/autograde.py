"""`course autograde SUBMISSIONS [--out DIR]`: grade a folder of submissions with nbgrader.

SUBMISSIONS is a folder whose entries are submissions (a ``.zip`` made by `course submit`, or a
folder with ``exercises/*.ipynb`` and ``course_lib/*.py``), or one such zip / folder.

For each submission:

1. **Code exercises are graded where student code never runs in the trusted process.** This
   process computes the expected results with ``solutions/`` (seeded cases from
   ``solutions.grading.make_cases``); a sandboxed subprocess (course_instructor/grading/sandbox.py) runs
   the student's functions on the same cases and returns values + gradients in a file; this
   process compares them. Partial credit = fraction of cases passed x points.
2. **nbgrader autograde** executes the student's notebooks, while step 1 runs and in ``jobs``
   concurrent processes (``NBGRADER_EXECUTION`` is set, so the
   training cells shrink) in a locked-down kernel (course_instructor/grading/grader_kernel.py; no
   access to solutions/ or the instructor repository; forked from a per-batch server that has
   imported torch & co once, `KernelZygote`), keeping the student's course_lib
   (``Autograde.exclude_overwriting``), with a per-cell timeout and an overall bound per
   submission. Its score for a code test cell is then *replaced* in the gradebook by the score
   from step 1: what the kernel reports about itself is never trusted.
3. Outputs: ``DIR/grades.csv`` (student_id, unit, exercise, score, max_score; a written-answer
   cell has an EMPTY score = pending manual grading in nbgrader's formgrader),
   ``DIR/grades.json`` (per-case details, errors, seconds), ``DIR/feedback/<student>/*.html``
   (hidden test code and its output removed; per-exercise grader summary instead) and the
   nbgrader course folder ``DIR/nbgrader`` (gradebook.db for the formgrader).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat

from course_lib.core import registry as exercises
from course_instructor import release
from course_instructor.grading import sandbox

REPO = release.REPO
ASSIGNMENT = release.ASSIGNMENT
HIDDEN_MARK = "### BEGIN HIDDEN TESTS"
MAX_UNZIPPED = 200 * 2 ** 20


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
            name = gid[len("test_"):] if gid.startswith("test_") else None
            kind = "code" if name in exercises.BY_NAME and cell.cell_type == "code" else "manual"
            out.append({"notebook": nb_path.stem, "unit": unit, "grade_id": gid,
                        "exercise": name if kind == "code" else gid, "kind": kind,
                        "max_score": float(meta.get("points", 0))})
    return out


# --- unpacking submissions ----------------------------------------------------------------------
def find_submissions(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file() or (path / "exercises").is_dir() or (path / "course_lib").is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if (p.is_dir() or p.suffix == ".zip") and not p.name.startswith("."))


def unpack(sub: Path, dest: Path) -> Path:
    """Copy/extract a submission into dest (zip members with absolute or '..' paths, symlinks and
    oversized archives are refused)."""
    dest.mkdir(parents=True, exist_ok=True)
    if sub.is_file():
        with zipfile.ZipFile(sub) as z:
            total = 0
            for info in z.infolist():
                name = info.filename
                if info.is_dir():
                    continue
                parts = Path(name).parts
                if name.startswith("/") or ".." in parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
                    continue
                total += info.file_size
                if total > MAX_UNZIPPED:
                    raise ValueError("the zip is larger than 200 MB unpacked")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        shutil.copytree(sub, dest, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", ".venv"))
        for p in list(dest.rglob("*")):
            if p.is_symlink():
                p.unlink()
    # a zip may hold one top folder
    if not (dest / "exercises").exists() and not (dest / "course_lib").exists():
        subdirs = [p for p in dest.iterdir() if p.is_dir()]
        if len(subdirs) == 1:
            return subdirs[0]
    return dest


def student_id_of(sub: Path, unpacked: Path) -> str:
    from course_lib.submit import clean_id
    meta = unpacked / "SUBMISSION.json"
    sid = None
    if meta.is_file() and meta.stat().st_size < 10000:
        try:
            sid = json.loads(meta.read_text()).get("student_id")
        except (ValueError, AttributeError):
            sid = None
    if not isinstance(sid, str) or not sid.strip():
        sid = re.sub(r"^submission-", "", sub.stem if sub.is_file() else sub.name)
    return clean_id(sid)


# --- the nbgrader side --------------------------------------------------------------------------
def write_course_config(root: Path, cell_timeout: int, kernel_spec: dict, threads: int = 2) -> None:
    """root/nbgrader_config.py for the nbgrader subprocess + the locked-down kernelspec."""
    (root / "nbgrader_config.py").write_text(
        "from pathlib import Path\n"
        "from course_instructor.release import nbgrader_config\n"
        f"c.merge(nbgrader_config(Path({str(root)!r}), cell_timeout={int(cell_timeout)}, "
        "kernel_name='course-grader'))\n")
    kdir = root / "jupyter" / "kernels" / "course-grader"
    kdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("grader_kernel.py"), root / "grader_kernel.py")
    shutil.copy(Path(__file__).with_name("sandbox_child.py"), root / "sandbox_hook.py")
    (root / "kernel_spec.json").write_text(json.dumps(kernel_spec))
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-I", "-S", str(root / "grader_kernel.py"), str(root / "kernel_spec.json"),
                 "-f", "{connection_file}"],
        "display_name": "course grader (sandboxed)", "language": "python",
        "env": {"COURSE_PROFILE": "tiny", "COURSE_LIB_SOLUTIONS": "0", "MPLBACKEND":
                "module://matplotlib_inline.backend_inline", "OMP_NUM_THREADS": str(int(threads)),
                "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "HOME": str(root / "home"),
                "MPLCONFIGDIR": str(root / "home" / "mpl"), "COURSE_CHECKPOINTS": str(root / "home" / "ckpt")}}))
    (root / "home").mkdir(exist_ok=True)


def grading_kernel_spec(root: Path, notebook_timeout: float, warm: bool = True) -> dict:
    """What grader_kernel.py locks itself down to (kernel_spec.json): limits, readable / writable
    folders, and the fork server's socket (empty: every kernel starts cold)."""
    return {"site_dirs": sandbox._site_dirs(), "mem_mb": 6144, "cpu_seconds": int(notebook_timeout) + 60,
            "fsize_mb": 64, "hook_module": str(root / "sandbox_hook.py"),
            "zygote_socket": str(root / "zygote" / "kernels.sock") if warm else "",
            "kernel_cwd_root": str(root / "autograded"),
            "writable": [str(root / "autograded"), str(root / "home"), tempfile.gettempdir()],
            "forbidden": sandbox.forbidden_roots() + [str(root / "source"), str(root / "zygote"),
                                                      str(root / "gradebook.db"), str(root / "nbgrader_config.py")],
            "allowed_read": [sys.prefix, sys.base_prefix, *sandbox._site_dirs()]}


class KernelZygote:
    """The kernels' fork server (grader_kernel.py --zygote): torch, transformers and ipykernel are
    imported once per batch instead of once per notebook. If it is not running, each kernel
    starts cold (the launcher falls back), so it only ever changes speed."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.socket = Path(json.loads((root / "kernel_spec.json").read_text())["zygote_socket"])
        self.proc = None

    def start(self) -> None:
        self.stop()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)      # a dead server's: ready means the new one listens
        with open(self.root / "zygote.log", "ab") as log:   # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(self.root / "grader_kernel.py"),
                                          "--zygote", str(self.root / "kernel_spec.json")],
                                         cwd=str(self.root / "home"), env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 60) -> bool:
        """True once it accepts launchers (then kernels start warm)."""
        t_end = time.time() + timeout
        while self.alive() and time.time() < t_end:
            if self.socket.exists():
                return True
            time.sleep(0.05)
        return False

    def kill_kernels(self) -> None:
        """Between submissions: no kernel outlives the submission it ran."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def nbgrader_env(root: Path) -> dict:
    """The environment of the nbgrader processes: ours, minus the solutions switch, plus the course's
    Jupyter folders."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(root / "jupyter")
    env["JUPYTER_RUNTIME_DIR"] = str(root / "home" / "runtime")   # connection files (kernel-writable)
    env.pop("COURSE_LIB_SOLUTIONS", None)
    return env


def kernel_env(root: Path) -> dict:
    """The environment a grading kernel gets: nbgrader's plus the kernelspec's."""
    env = nbgrader_env(root)
    env.update(json.loads((root / "jupyter" / "kernels" / "course-grader" / "kernel.json").read_text())["env"])
    return env


def notebook_groups(jobs: int) -> list[str]:
    """`jobs` nbgrader --notebook patterns that split the NN_*.ipynb notebooks by the last digit of
    their unit number (01 03 05 07 | 02 04 06 08 for two jobs): neighbouring units, which cost
    about the same, land in different groups."""
    jobs = max(1, min(int(jobs), 5))
    if jobs == 1:
        return ["*"]
    return ["[0-9][" + "".join(str(d % 10) for d in range(1, 11) if d % jobs == k % jobs) + "]_*"
            for k in range(1, jobs + 1)]


class NbgraderAutograde:
    """`nbgrader autograde` of one student, started in the background, bounded in time by wait().

    With jobs > 1 the notebooks are split into `jobs` groups (``--notebook`` patterns) graded by
    concurrent nbgrader processes, each with its own kernel. The caller has already laid out
    autograded/<sid>/ (the student's course_lib) and created the student and the submission in
    the gradebook, so the processes share no set-up step.
    """

    def __init__(self, root: Path, sid: str, jobs: int = 1):
        release.ensure_scripts_on_path()
        env = nbgrader_env(root)
        base = [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, f"--student={sid}", "--force"]
        groups = notebook_groups(jobs)
        self.sockets = tempfile.mkdtemp(prefix="course_ipc_")
        self.started = time.time()
        self.procs = []
        for k, pattern in enumerate(groups):
            cmd = base if pattern == "*" else base + [f"--notebook={pattern}"]
            # kernels talk over Unix sockets (not TCP on localhost), one prefix per process, in a
            # short private folder (a socket path has at most 107 bytes)
            cmd = cmd + ["--KernelManager.transport=ipc", f"--KernelManager.ip={os.path.join(self.sockets, f'k{k}')}"]
            log = root / f"autograde_{sid}{'' if len(groups) == 1 else f'_{k}'}.log"
            with open(log, "wb") as f:   # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(cmd, cwd=str(root), env=env, stdout=f, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs.append((proc, log))

    def kill(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        shutil.rmtree(self.sockets, ignore_errors=True)

    def wait(self, timeout: float) -> tuple[bool, str]:
        """Wait until `timeout` seconds after the start; stop everything past it."""
        problems = []
        for proc, log in self.procs:
            try:
                rc = proc.wait(timeout=max(0.1, self.started + timeout - time.time()))
            except subprocess.TimeoutExpired:
                self.kill()
                return False, f"nbgrader autograde took longer than {timeout:.0f} s and was stopped"
            if rc != 0:
                problems.append(f"nbgrader autograde failed (exit {rc}): "
                                f"{log.read_text(errors='replace')[-500:]}")
        shutil.rmtree(self.sockets, ignore_errors=True)
        return (not problems), "; ".join(problems)


def prepare_gradebook(root: Path, sid: str) -> None:
    """Create the student and the submission before the concurrent nbgrader processes start (so
    none of them has to create a row another one is creating)."""
    import warnings
    from nbgrader.api import Gradebook
    with warnings.catch_warnings():   # nbgrader's own SQLAlchemy autoflush warnings
        warnings.simplefilter("ignore")
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "rl-posttraining") as gb:
            gb.update_or_create_student(sid)
            gb.update_or_create_submission(ASSIGNMENT, sid)


def set_gradebook_scores(root: Path, sid: str, code_scores: dict[str, dict], cells: list[dict]) -> None:
    """Replace the kernel's auto scores of code test cells by the grader's scores."""
    from nbgrader.api import Gradebook, MissingEntry
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "rl-posttraining") as gb:
        for c in cells:
            if c["kind"] != "code" or c["exercise"] not in code_scores:
                continue
            try:
                g = gb.find_grade(c["grade_id"], c["notebook"], ASSIGNMENT, sid)
            except MissingEntry:
                continue
            g.auto_score = code_scores[c["exercise"]]["score"]
            g.manual_score = None
            g.needs_manual_grade = False
        gb.db.commit()


# --- feedback -------------------------------------------------------------------------------------
def sanitize_for_feedback(nb, cells_by_id: dict, code_scores: dict, status: str):
    """Strip hidden tests (code and output) from test cells; add the grader's verdicts."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if cell.cell_type == "code" and (HIDDEN_MARK in cell.source or gid in cells_by_id):
            cell.source = cell.source.split(HIDDEN_MARK)[0].rstrip()
            info = cells_by_id.get(gid)
            lines = []
            if info and info["kind"] == "code":
                s = code_scores.get(info["exercise"])
                if s:
                    lines.append(f"Grader: {s['passed']}/{s['total']} hidden cases passed -> "
                                 f"{s['score']:g}/{s['max_score']:g} points")
                    lines += [f"  {m}" for m in s["failures"][:3]]
                    if s.get("error"):
                        lines.append(f"  {s['error']}")
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")] \
                if lines else []
        elif HIDDEN_MARK in cell.get("source", ""):
            cell.source = cell.source.split(HIDDEN_MARK)[0]
            if cell.cell_type == "code":
                cell.outputs = []
    header = ["# Feedback", "", status, "", "| exercise | score | max |", "|---|---|---|"]
    for gid, info in cells_by_id.items():
        if info["kind"] == "code" and info["exercise"] in code_scores:
            s = code_scores[info["exercise"]]
            header.append(f"| {info['exercise']} | {s['score']:g} | {s['max_score']:g} |")
        elif info["kind"] == "manual":
            header.append(f"| {gid} (written answer) | pending | {info['max_score']:g} |")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("\n".join(header)))
    return nb


def write_feedback(nb_path: Path, out_html: Path, cells: list[dict], code_scores: dict, status: str) -> None:
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(nb_path), as_version=4)
    mine = {c["grade_id"]: c for c in cells if c["notebook"] == nb_path.stem}
    nb = sanitize_for_feedback(nb, mine, code_scores, status)
    html, _ = HTMLExporter().from_notebook_node(nb)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html)


# --- the batch ------------------------------------------------------------------------------------
class Grader:
    def __init__(self, out: Path, source_dir: Path | None = None, *, seed: int | None = None,
                 cell_timeout: int = 60, notebook_timeout: float = 240, exercise_timeout: float = 20,
                 sandbox_timeout: float = 120, run_notebooks: bool = True, quiet: bool = False,
                 jobs: int | None = None, warm_kernels: bool = True):
        from solutions import grading
        self.grading = grading
        self.out = Path(out)
        self.source_dir = Path(source_dir or REPO / "notebooks")
        self.seed = grading.DEFAULT_SEED if seed is None else seed
        self.cell_timeout, self.notebook_timeout = cell_timeout, notebook_timeout
        self.exercise_timeout, self.sandbox_timeout = exercise_timeout, sandbox_timeout
        self.run_notebooks, self.quiet = run_notebooks, quiet
        # notebooks graded at once (one kernel each): one per core, at most 2 by default
        self.jobs = max(1, jobs if jobs is not None else min(2, os.cpu_count() or 1))
        self.cells = graded_cells(self.source_dir)
        self.names = list(dict.fromkeys(c["exercise"] for c in self.cells if c["kind"] == "code"))
        self.root = self.out / "nbgrader"
        # kernels forked from a server that imported torch & co once (grader_kernel.py)
        self.warm_kernels, self.zygote = warm_kernels, None
        self.expected: dict[str, tuple[list, list]] = {}

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def prepare(self) -> None:
        os.environ.setdefault("COURSE_PROFILE", "tiny")
        self.out.mkdir(parents=True, exist_ok=True)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
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
            write_course_config(self.root, self.cell_timeout,
                                grading_kernel_spec(self.root, self.notebook_timeout, self.warm_kernels),
                                threads=max(1, (os.cpu_count() or 1) // self.jobs))
            if self.warm_kernels:
                self.zygote = KernelZygote(self.root, kernel_env(self.root))
                self.zygote.start()

    def ensure_zygote(self) -> None:
        """Before a submission: the fork server is up (restarted if a previous one died)."""
        if self.zygote is None:
            return
        if not self.zygote.alive():
            self.zygote.start()
        if not self.zygote.wait_ready():
            self.log("  kernel fork server not available: kernels start cold")
            self.zygote.stop()

    def grade_code(self, course_lib_dir: Path | None) -> dict[str, dict]:
        jobs = {n: self.expected[n][0] for n in self.names}
        got = sandbox.run_student_cases(course_lib_dir, jobs, exercise_timeout=self.exercise_timeout,
                                        total_timeout=self.sandbox_timeout)
        scores = {}
        for n in self.names:
            o = got.get(n, {"results": None, "error": "not run"})
            s = self.grading.score(n, self.expected[n][1], o["results"])
            s["error"] = o.get("error")
            if o.get("error") and o["results"] is None:
                s["failures"].insert(0, o["error"])
            scores[n] = s
        return scores

    def grade_one(self, sub: Path) -> dict:
        t0 = time.time()
        work = Path(tempfile.mkdtemp(prefix="course_grade_"))
        try:
            try:
                unpacked = unpack(sub, work / "sub")
                sid = student_id_of(sub, unpacked)
            except (ValueError, zipfile.BadZipFile, OSError) as e:
                sid = re.sub(r"[^A-Za-z0-9_.-]", "_", sub.stem)[:64] or "unknown"
                return self._broken(sid, f"unreadable submission: {e}", t0)
            cl = unpacked / "course_lib"
            cl = cl if cl.is_dir() else None
            nb_dir = unpacked / "exercises" if (unpacked / "exercises").is_dir() else unpacked
            # nbgrader executes the notebooks in the background while the sandbox grades the code
            run = self._start_notebooks(sid, nb_dir, cl) if self.run_notebooks else None
            try:
                code_scores = self.grade_code(cl)
            except BaseException:
                if run:
                    run.kill()
                raise
            t_code = time.time() - t0
            status = "Code exercises graded by running your functions on hidden inputs in a sandbox."
            t_nb = None
            if run:
                ok, msg = run.wait(self.notebook_timeout)
                t_nb = time.time() - run.started
                if self.zygote is not None:
                    self.zygote.kill_kernels()
                try:
                    set_gradebook_scores(self.root, sid, code_scores, self.cells)
                except Exception as e:  # noqa: BLE001 - the csv is the source of truth; the db is a convenience
                    ok, msg = False, (msg + f"; gradebook not updated: {e}").strip("; ")
                if not ok:
                    status += f" Notebook execution: {msg}"
            self._feedback(sid, nb_dir, code_scores, status)
            rows = self._rows(sid, code_scores)
            secs = time.time() - t0
            self.log(f"  {sid}: {sum(r['score'] or 0 for r in rows):g}/{sum(r['max_score'] for r in rows):g} "
                     f"points ({secs:.1f} s; code {t_code:.1f} s)")
            return {"student_id": sid, "rows": rows, "seconds": secs, "code_seconds": t_code,
                    "notebook_seconds": t_nb, "details": code_scores, "status": status}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _start_notebooks(self, sid, nb_dir: Path, cl: Path | None) -> NbgraderAutograde:
        subdir = self.root / "submitted" / sid / ASSIGNMENT
        if subdir.exists():
            shutil.rmtree(subdir)
        subdir.mkdir(parents=True)
        wanted = {c["notebook"] for c in self.cells} | {p.stem for p in release.source_notebooks(self.source_dir)}
        for nb in nb_dir.glob("*.ipynb"):
            if nb.stem in wanted and nb.is_file() and nb.stat().st_size < 50 * 2 ** 20:
                shutil.copy(nb, subdir / nb.name)
        # the student's course_lib goes straight where the kernels run (autograded/), not through
        # submitted/: nbgrader then copies no files, so concurrent processes cannot race on them
        graded = self.root / "autograded" / sid / ASSIGNMENT
        if graded.exists():
            shutil.rmtree(graded)
        graded.mkdir(parents=True)
        sandbox.prepare_course_lib(cl, graded)
        prepare_gradebook(self.root, sid)
        self.ensure_zygote()
        return NbgraderAutograde(self.root, sid, self.jobs)

    def _feedback(self, sid, nb_dir: Path, code_scores, status) -> None:
        fb = self.out / "feedback" / sid
        if fb.exists():
            shutil.rmtree(fb)
        for src in release.source_notebooks(self.source_dir):
            graded = self.root / "autograded" / sid / ASSIGNMENT / src.name
            nb_path = graded if graded.exists() else nb_dir / src.name
            if not nb_path.is_file():
                continue
            try:
                write_feedback(nb_path, fb / f"{src.stem}.html", self.cells, code_scores, status)
            except Exception as e:  # noqa: BLE001 - a corrupt notebook still gets a page
                fb.mkdir(parents=True, exist_ok=True)
                (fb / f"{src.stem}.html").write_text(f"<html><body><h1>Feedback</h1><p>{status}</p>"
                                                     f"<p>Your notebook could not be read: {type(e).__name__}</p>"
                                                     "</body></html>")

    def _rows(self, sid, code_scores) -> list[dict]:
        rows = []
        for c in self.cells:
            if c["kind"] == "code":
                s = code_scores.get(c["exercise"])
                rows.append({"student_id": sid, "unit": c["unit"], "exercise": c["exercise"],
                             "score": s["score"] if s else 0.0, "max_score": c["max_score"]})
            else:
                rows.append({"student_id": sid, "unit": c["unit"], "exercise": c["exercise"],
                             "score": None, "max_score": c["max_score"]})
        return rows

    def _broken(self, sid, msg, t0) -> dict:
        self.log(f"  {sid}: {msg}")
        scores = {n: {"exercise": n, "passed": 0, "total": len(self.expected[n][0]),
                      "max_score": float(exercises.get(n).points), "score": 0.0, "failures": [msg],
                      "error": msg} for n in self.names}
        return {"student_id": sid, "rows": self._rows(sid, scores), "seconds": time.time() - t0,
                "code_seconds": 0.0, "details": scores, "status": msg}

    def grade_all(self, submissions: list[Path]) -> list[dict]:
        try:
            return self._grade_all(submissions)
        finally:
            if self.zygote is not None:
                self.zygote.stop()

    def _grade_all(self, submissions: list[Path]) -> list[dict]:
        self.prepare()
        results = []
        seen = set()
        for sub in submissions:
            try:
                r = self.grade_one(sub)
            except Exception as e:  # noqa: BLE001 - one bad submission must not stop the batch
                sid = re.sub(r"[^A-Za-z0-9_.-]", "_", sub.stem)[:64] or "unknown"
                r = self._broken(sid, f"grading failed: {type(e).__name__}: {e}", time.time())
            if r["student_id"] in seen:
                r["student_id"] += f"-{len(seen)}"
                for row in r["rows"]:
                    row["student_id"] = r["student_id"]
            seen.add(r["student_id"])
            results.append(r)
        self.write(results)
        return results

    def write(self, results: list[dict]) -> None:
        with open(self.out / "grades.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["student_id", "unit", "exercise", "score", "max_score"])
            w.writeheader()
            for r in results:
                for row in r["rows"]:
                    w.writerow({**row, "score": "" if row["score"] is None else f"{row['score']:g}",
                                "max_score": f"{row['max_score']:g}"})
        (self.out / "grades.json").write_text(json.dumps(results, indent=1, default=str))


def autograde(submissions: Path, out: Path, **kw) -> list[dict]:
    subs = find_submissions(Path(submissions))
    return Grader(Path(out), **kw).grade_all(subs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course autograde", description=__doc__.split("\n\n")[0])
    ap.add_argument("submissions", help="a folder of submissions (zips or folders), or one submission")
    ap.add_argument("--out", default="grades", help="output folder (default grades/)")
    ap.add_argument("--source", default=str(REPO / "notebooks"), help="source notebooks (default notebooks/)")
    ap.add_argument("--cell-timeout", type=int, default=60, help="nbgrader per-cell timeout, s (default 60)")
    ap.add_argument("--notebook-timeout", type=float, default=240,
                    help="bound on nbgrader autograde for one submission, s (default 240)")
    ap.add_argument("--exercise-timeout", type=float, default=20, help="sandbox: one exercise, s (default 20)")
    ap.add_argument("--sandbox-timeout", type=float, default=120, help="sandbox: one submission, s (default 120)")
    ap.add_argument("--no-notebooks", action="store_true",
                    help="skip nbgrader's notebook execution (code points only, feedback without outputs)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the hidden cases (default fixed)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="notebooks of one submission executed at once (default: min(2, cores))")
    ap.add_argument("--cold-kernels", action="store_true",
                    help="start every notebook's kernel from scratch (no fork server; slower, same grades)")
    args = ap.parse_args(argv)
    if not Path(args.submissions).exists():
        print(f"course autograde: {args.submissions} does not exist", file=sys.stderr)
        return 2
    try:
        import solutions  # noqa: F401
    except ImportError:
        print("course autograde: needs the instructor repository (solutions/ is missing)", file=sys.stderr)
        return 2
    t0 = time.time()
    results = autograde(Path(args.submissions), Path(args.out), source_dir=Path(args.source),
                        cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                        exercise_timeout=args.exercise_timeout, sandbox_timeout=args.sandbox_timeout,
                        run_notebooks=not args.no_notebooks, seed=args.seed, jobs=args.jobs,
                        warm_kernels=not args.cold_kernels)
    n = len(results)
    print(f"graded {n} submission(s) in {time.time() - t0:.1f} s "
          f"({(time.time() - t0) / max(n, 1):.1f} s per submission) -> {Path(args.out) / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
