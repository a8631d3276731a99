"""The notebook side of `course autograde`: the submission's notebooks run inside its sandbox, and
nbgrader, outside, only ever reads inert data.

Per submission (:class:`NotebookRun`):

1. **prepare** (trusted, here): each submitted notebook goes through nbgrader's own sanitising
   preprocessors (outputs cleared, the instructor's locked and test cells restored from the
   gradebook), then the hidden-test blocks are cut from the test cells: code points come from
   the code sandbox, so the kernel never needs, and never sees, hidden test code;
2. **execute** (untrusted, in bubblewrap): ``sandboxed/nb_runner.py`` runs them with nbgrader's Execute
   preprocessor (``NBGRADER_EXECUTION=autograde``: training cells shrink), kernels forked by a
   per-submission fork server (sandboxed/grader_kernel.py). The sandbox sees the prepared notebooks and
   the submission's course_lib read-only, and writes only to size-bounded tmpfs folders
   (:data:`WORK_MB` for the notebooks' folder, :data:`TMP_MB` for /tmp, 64 MB of /dev/shm) that
   vanish with it. No host folder is writable in there, so nothing it leaves behind (a symlink,
   a fifo, a huge file) is ever seen by a trusted process. Its one way out is a pipe: a JSON
   line of cell outputs per notebook, read here with a size cap (wire.LineReader);
3. **import** (trusted): the outputs are grafted onto the prepared notebooks by cell index and
   made inert (inert.py: no HTML, JavaScript or SVG reaches formgrader or the feedback), then
   written as regular files to ``submitted/<sid>/`` and graded by nbgrader's autograde,
   in-process, with execution and output clearing switched off (:func:`import_config`). The
   grader then replaces the code cells' scores by the code sandbox's (:func:`set_gradebook_scores`).

Layout of the batch's course root (``OUT/nbgrader``): nbgrader_config.py, gradebook.db, source/,
release/, submitted/<sid>/, autograded/<sid>/ (all written by trusted code only) and kernel/
(copies of sandboxed/'s grader_kernel.py, sandbox_child.py as sandbox_hook.py, limits.py and
nb_runner.py: mounted read-only in the sandbox).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from course_instructor import release
from course_instructor.grading import inert, sandbox, wire
from course_instructor.grading.isolation import Isolation, interpreter
from course_instructor.grading.sandboxed import limits

ASSIGNMENT = release.ASSIGNMENT
KERNEL_FILES = {
    "grader_kernel.py": "grader_kernel.py",
    "sandbox_child.py": "sandbox_hook.py",
    "limits.py": "limits.py",
    "nb_runner.py": "nb_runner.py",
}
KERNEL_NAME = "course-grader"
# where things are inside the sandbox
KERNEL_DIR, INBOX, WORK = "/grade/kernel", "/grade/inbox", "/grade/work"
WORK_MB, TMP_MB = 256, 768  # with 64 MB of /dev/shm: at most ~1 GiB of disk (RAM) per submission
MAX_RESULT_BYTES = 96 * 2**20  # every notebook's outputs together (figures are a few 100 kB each)


def write_course_config(root: Path, cell_timeout: int) -> None:
    """root/nbgrader_config.py (for formgrader and plain nbgrader commands) and root/kernel/ (the
    files the sandbox runs, mounted read-only)."""
    (root / "nbgrader_config.py").write_text(
        "from pathlib import Path\n"
        "from course_instructor.release import nbgrader_config\n"
        f"c.merge(nbgrader_config(Path({str(root)!r}), cell_timeout={int(cell_timeout)}))\n"
    )
    (root / "kernel").mkdir(exist_ok=True)
    for src, dst in KERNEL_FILES.items():
        shutil.copy(sandbox.SANDBOXED / src, root / "kernel" / dst)


def import_config(root: Path):
    """nbgrader's configuration for step 3: autograde WITHOUT executing and without clearing the
    outputs (they are the sandbox's, already inert); everything else as nbgrader does it."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader import preprocessors as pp

    c = release.nbgrader_config(root)
    c.Autograde.sanitize_preprocessors = [
        pp.DeduplicateIds,
        pp.OverwriteKernelspec,
        pp.OverwriteCells,
        pp.CheckCellMetadata,
    ]
    c.Autograde.autograde_preprocessors = [
        pp.IgnorePattern,
        ClearMetadataPreprocessor,
        pp.LimitOutput,
        pp.SaveAutoGrades,
        pp.AssignLatePenalties,
        pp.CheckCellMetadata,
    ]
    return c


def prepare_notebook(root: Path, path: Path):
    """Step 1 on one submitted notebook: nbgrader's sanitising preprocessors (as its autograde runs
    them), then the hidden-test blocks cut from the grade cells (the instructor's, restored)."""
    from nbgrader import preprocessors as pp
    from nbgrader import utils

    nb = nbformat.read(str(path), as_version=4)
    resources = {
        "nbgrader": {
            "db_url": f"sqlite:///{root / 'gradebook.db'}",
            "assignment": ASSIGNMENT,
            "notebook": path.stem,
        }
    }
    for step in (
        pp.ClearOutput,
        pp.DeduplicateIds,
        pp.OverwriteKernelspec,
        pp.OverwriteCells,
        pp.CheckCellMetadata,
    ):
        nb, resources = step().preprocess(nb, resources)
    hidden = pp.ClearHiddenTests()
    for i, cell in enumerate(nb.cells):
        if utils.is_grade(cell):
            hidden.preprocess_cell(cell, resources, i)
    return nb


def instructor_sources(source_notebook: Path) -> set[str]:
    """The sources of the instructor's markdown / raw cells (rendered as they are)."""
    if not source_notebook.is_file():
        return set()
    nb = nbformat.read(str(source_notebook), as_version=4)
    return {c.source for c in nb.cells if c.cell_type != "code"}


class _Tail:
    """The last `size` bytes of a stream, read in a thread (a sandbox's stderr, for messages)."""

    def __init__(self, stream, size: int = 4000):
        self.buf = b""
        self.thread = threading.Thread(target=self._read, args=(stream, size), daemon=True)
        self.thread.start()

    def _read(self, stream, size: int) -> None:
        try:
            for chunk in iter(lambda: stream.read1(65536), b""):
                self.buf = (self.buf + chunk)[-size:]
        except (OSError, ValueError):
            pass

    @property
    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


class NotebookRun:
    """Steps 1 and 2 for one submission: constructing it prepares the notebooks and starts the
    sandbox in the background; :meth:`finish` waits (bounded), imports what came back (step 3)
    and kills everything of the submission; :meth:`close` also removes its inbox. `notebooks`
    are the submitted files to run."""

    def __init__(
        self,
        root: Path,
        iso: Isolation,
        sid: str,
        notebooks: list[Path],
        course_lib: Path | None,
        base: Path,
        *,
        cell_timeout: int,
        notebook_timeout: float,
        jobs: int,
        threads: int,
        warm: bool = True,
    ):
        self.root, self.iso, self.sid = root, iso, sid
        self.notebook_timeout = notebook_timeout
        self.inbox = Path(tempfile.mkdtemp(prefix="course_nb_"))
        self.problems: list[str] = []  # the submission's own (a notebook nbgrader cannot read)
        self.prepared: dict[str, object] = {}
        (self.inbox / "notebooks").mkdir()
        self.subdir = root / "submitted" / sid / ASSIGNMENT  # only inert notebooks go there
        if self.subdir.exists():
            shutil.rmtree(self.subdir)
        self.subdir.mkdir(parents=True)
        for path in notebooks:
            try:
                nb = prepare_notebook(root, path)
            except Exception as e:  # noqa: BLE001 - a notebook nbgrader cannot sanitise is not run
                self.problems.append(f"{path.name} could not be prepared for grading ({type(e).__name__})")
                continue
            self.prepared[path.name] = nb
            nbformat.write(nb, str(self.inbox / "notebooks" / path.name))
        sandbox.prepare_course_lib(course_lib, self.inbox, base)
        self.proc = None
        self.started = time.time()
        if self.prepared:
            self._start(cell_timeout, jobs, threads, warm)

    # --- step 2 -------------------------------------------------------------------------------
    def _start(self, cell_timeout: int, jobs: int, threads: int, warm: bool) -> None:
        iso, inbox = self.iso, self.inbox
        if iso.enabled:
            kdir, box, work, tmp = KERNEL_DIR, INBOX, WORK, "/tmp"
        else:  # --unsafe-no-isolation: host folders of this submission
            kdir, box, work, tmp = (
                str(self.root / "kernel"),
                str(inbox),
                str(inbox / "work"),
                str(inbox / "tmp"),
            )
            shutil.copytree(inbox / "course_lib", inbox / "work" / "course_lib")
            (inbox / "tmp").mkdir()
        python = interpreter() if iso.enabled else sys.executable
        home = f"{tmp}/home"
        kernel_env = {
            "PATH": "/usr/bin:/bin",
            "COURSE_PROFILE": "tiny",
            "COURSE_LIB_SOLUTIONS": "0",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "OMP_NUM_THREADS": str(int(threads)),
            "TQDM_DISABLE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HOME": home,
            "MPLCONFIGDIR": f"{home}/mpl",
            "COURSE_CHECKPOINTS": f"{home}/ckpt",
        }
        kernel_spec = {
            "site_dirs": iso.site_paths(),
            "mem_mb": 6144,
            "cpu_seconds": int(self.notebook_timeout) + 60,
            "fsize_mb": 64,
            "kernel_dir": kdir,
            "python": python,
            "zygote_socket": f"{tmp}/zygote.sock" if warm else "",
            "zygote_wait": 60,
            "kernel_cwd_root": work,
            "writable": [work, tmp],
            "forbidden": sandbox.forbidden_roots() + [str(self.root)],
            "allowed_read": [sys.prefix, sys.base_prefix, *iso.site_paths()],
            "kernel_env": kernel_env,  # the whole environment of a kernel
        }
        (inbox / "kernel_spec.json").write_text(json.dumps(kernel_spec))
        kspec = inbox / "jupyter" / "kernels" / KERNEL_NAME
        kspec.mkdir(parents=True)
        launcher = [python, "-I", "-S", f"{kdir}/grader_kernel.py", f"{box}/kernel_spec.json"]
        (kspec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": launcher + ["-f", "{connection_file}"],
                    "display_name": "course grader (sandboxed)",
                    "language": "python",
                    "env": kernel_env,
                }
            )
        )
        runner = {
            "site_dirs": iso.site_paths(),
            "notebooks": f"{box}/notebooks",
            "order": sorted(self.prepared),
            "cwd": work,
            "jobs": jobs,
            "cell_timeout": int(cell_timeout),
            "startup_timeout": 120,
            "kernel_name": KERNEL_NAME,
            "zygote": [python, "-I", "-S", f"{kdir}/grader_kernel.py", "--zygote", f"{box}/kernel_spec.json"]
            if warm
            else None,
            "env": {
                "PATH": "/usr/bin:/bin",
                "HOME": home,
                "JUPYTER_PATH": f"{box}/jupyter",
                "JUPYTER_RUNTIME_DIR": f"{tmp}/runtime",
                "JUPYTER_PLATFORM_DIRS": "1",
                "NBGRADER_EXECUTION": "autograde",
                "TMPDIR": tmp,
            },
        }
        (inbox / "runner.json").write_text(json.dumps(runner))
        argv = [python, "-I", "-S", f"{kdir}/nb_runner.py", f"{box}/runner.json"]
        cmd = iso.command(
            argv,
            env=runner["env"],
            cwd=work,
            scratch={WORK: WORK_MB},
            ro={
                str(self.root / "kernel"): KERNEL_DIR,
                str(inbox): INBOX,
                str(inbox / "course_lib"): f"{WORK}/course_lib",
            },
            tmp_mb=TMP_MB,
            as_pid_1=True,  # the runner alone holds the result pipe (bwrap's reaper would too)
        )
        self.proc = subprocess.Popen(
            cmd,
            cwd=work if not iso.enabled else str(inbox),
            env=runner["env"] if not iso.enabled else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: limits.apply(kernel_spec["cpu_seconds"] + 60, 16384, 64, nofile=1024),
        )
        self.out = wire.LineReader(self.proc.stdout, MAX_RESULT_BYTES)
        self.err = _Tail(self.proc.stderr)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.inbox, ignore_errors=True)

    # --- step 3 -------------------------------------------------------------------------------
    def finish(self, source_dir: Path, api) -> tuple[bool, str]:
        """Wait for the sandbox (until `notebook_timeout` after the start), import every notebook
        (outputs where they came back), run nbgrader's autograde on them. (ok, what went wrong)."""
        problems = []
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(0.1, self.started + self.notebook_timeout - time.time()))
            except subprocess.TimeoutExpired:
                problems.append(
                    f"notebook execution took longer than {self.notebook_timeout:.0f} s and was stopped"
                )
            self.kill()
            self.err.thread.join(5)
        lines = []
        while self.proc is not None:  # the reader ends with None once the pipe closes
            try:
                line = self.out.q.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
        if self.proc is not None and self.out.overflow:
            problems.append(f"the notebooks' outputs exceeded {MAX_RESULT_BYTES // 2**20} MB")
        results = {}
        for raw in lines:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if type(msg) is dict and msg.get("notebook") in self.prepared and msg["notebook"] not in results:
                results[msg["notebook"]] = msg
        missing = sorted(set(self.prepared) - set(results))
        if missing and not problems:
            problems.append(
                f"no outputs came back for {', '.join(missing)} (the sandbox ended early: "
                f"{self.err.text.strip()[-300:]})"
            )
        for name, nb in self.prepared.items():
            msg = results.get(name, {})
            cells = msg.get("cells") if type(msg.get("cells")) is list else []
            if cells and len(cells) != len(nb.cells):
                problems.append(f"{name}: the sandbox sent back outputs of another notebook")
                cells = []
            for cell, got in zip(nb.cells, cells):
                if cell.cell_type == "code" and type(got) is dict:
                    cell.outputs = got.get("outputs", [])
                    count = got.get("execution_count")
                    cell.execution_count = count if type(count) is int else None
            inert.notebook(nb, instructor_sources(source_dir / name))
            try:
                nbformat.validate(nb)
            except nbformat.ValidationError:
                for cell in nb.cells:
                    if cell.cell_type == "code":
                        cell.outputs, cell.execution_count = [], None
                problems.append(f"{name}: its outputs were not valid and were dropped")
            nbformat.write(nb, str(self.subdir / name))
        res = api.autograde(ASSIGNMENT, self.sid, force=True, create=True)
        if not res.get("success"):
            problems.append(f"nbgrader autograde failed: {str(res.get('log', ''))[-500:]}")
        return (not problems), "; ".join(problems)


def prepare_gradebook(root: Path, sid: str) -> None:
    """Create the student and the submission before the concurrent nbgrader processes start (so
    none of them has to create a row another one is creating)."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings():  # nbgrader's own SQLAlchemy autoflush warnings
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
