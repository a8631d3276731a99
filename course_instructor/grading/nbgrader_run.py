"""The nbgrader side of `course autograde`: the course configuration, the isolated kernels (a
per-submission fork server inside bubblewrap), the nbgrader processes and the gradebook.

Layout of the batch's course root (``OUT/nbgrader``)::

    nbgrader_config.py, gradebook.db, source/, release/, submitted/<sid>/, autograded/<sid>/
    jupyter/kernels/course-grader/kernel.json    the kernelspec nbgrader uses (a launcher)
    kernel/                                      grader_kernel.py, sandbox_hook.py, limits.py and
                                                 kernel_spec.json (rewritten per submission)

Per submission the grader makes a short private folder (``/tmp/course_k_*``: Jupyter's connection
files, the kernels' Unix sockets and the fork server's socket) and starts the fork server
(`KernelZygote`) inside bubblewrap, where only that folder, ``kernel/`` (read-only) and the
student's ``autograded/<sid>/exercises`` exist. The kernelspec's launcher (run by nbgrader, outside)
asks the server for a kernel; the kernel forks, loads the fork ban, the limits and the audit
hook, and runs ipykernel. When the submission is done the server's sandbox is killed, and with
its pid namespace every process a student started. Without a server (``--cold-kernels``) the
launcher starts each kernel in its own sandbox.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_instructor import release
from course_instructor.grading import limits, sandbox
from course_instructor.grading.isolation import Isolation, interpreter

ASSIGNMENT = release.ASSIGNMENT
KERNEL_FILES = {
    "grader_kernel.py": "grader_kernel.py",
    "sandbox_child.py": "sandbox_hook.py",
    "limits.py": "limits.py",
}


def write_course_config(root: Path, cell_timeout: int, iso: Isolation, threads: int = 2) -> None:
    """root/nbgrader_config.py for the nbgrader subprocess, the kernel's files and the kernelspec."""
    (root / "nbgrader_config.py").write_text(
        "from pathlib import Path\n"
        "from course_instructor.release import nbgrader_config\n"
        f"c.merge(nbgrader_config(Path({str(root)!r}), cell_timeout={int(cell_timeout)}, "
        "kernel_name='course-grader'))\n"
    )
    kdir = root / "jupyter" / "kernels" / "course-grader"
    kdir.mkdir(parents=True, exist_ok=True)
    (root / "kernel").mkdir(exist_ok=True)
    for src, dst in KERNEL_FILES.items():
        shutil.copy(Path(__file__).with_name(src), root / "kernel" / dst)
    home = "/tmp/home" if iso.enabled else str(root / "home")
    (root / "home").mkdir(exist_ok=True)
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-I",
                    "-S",
                    str(root / "kernel" / "grader_kernel.py"),
                    str(root / "kernel" / "kernel_spec.json"),
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "course grader (sandboxed)",
                "language": "python",
                "env": {
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
                },
            }
        )
    )


class SubmissionKernels:
    """The kernels of one submission: its private folder, the sandbox binds, kernel_spec.json, and
    (warm) the fork server. :meth:`close` kills every process of the submission."""

    def __init__(self, root: Path, iso: Isolation, sid: str, notebook_timeout: float, warm: bool = True):
        self.root, self.iso, self.warm = root, iso, warm
        self.run_dir = Path(tempfile.mkdtemp(prefix="course_k_"))  # short: socket paths <= 107 bytes
        (self.run_dir / "runtime").mkdir()
        self.cwd = root / "autograded" / sid / ASSIGNMENT
        kdir = root / "kernel"
        writable = [
            str(self.cwd),
            str(self.run_dir),
            "/tmp" if iso.enabled else str(root / "home"),
            tempfile.gettempdir(),
        ]
        self.binds = {
            "ro": {str(kdir): str(kdir)},
            "rw": {str(self.cwd): str(self.cwd), str(self.run_dir): str(self.run_dir)},
        }
        env = {"PATH": "/usr/bin:/bin"}
        self.prefix = iso.command(
            [], env=env, cwd=str(self.cwd), new_session=False, tmp_mb=1024, **self.binds
        )
        self.spec = {
            "site_dirs": iso.site_paths(),
            "mem_mb": 6144,
            "cpu_seconds": int(notebook_timeout) + 60,
            "fsize_mb": 64,
            "kernel_dir": str(kdir),
            "python": _python(iso),
            "zygote_socket": str(self.run_dir / "zygote.sock") if warm else "",
            "zygote_wait": 60,
            "kernel_cwd_root": str(self.cwd),
            "isolated_argv": self.prefix if iso.enabled else [],
            "writable": writable,
            "forbidden": sandbox.forbidden_roots()
            + [str(root / "source"), str(root / "gradebook.db"), str(root / "nbgrader_config.py")],
            "allowed_read": [sys.prefix, sys.base_prefix, *iso.site_paths()],
            # the whole environment of a kernel: nothing of the grader's own leaks in
            "kernel_env": {
                "PATH": "/usr/bin:/bin",
                **json.loads((root / "jupyter" / "kernels" / "course-grader" / "kernel.json").read_text())[
                    "env"
                ],
            },
        }
        (kdir / "kernel_spec.json").write_text(json.dumps(self.spec))
        self.zygote = KernelZygote(self) if warm else None

    def env(self, base: dict) -> dict:
        """The environment of the nbgrader processes of this submission: connection files (which
        jupyter_client writes to TMPDIR) in the folder the sandbox sees."""
        return {
            **base,
            "JUPYTER_RUNTIME_DIR": str(self.run_dir / "runtime"),
            "TMPDIR": str(self.run_dir / "runtime"),
        }

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)


class KernelZygote:
    """The kernels' fork server (grader_kernel.py --zygote), inside the submission's sandbox:
    torch, transformers and ipykernel are imported once per submission instead of once per
    notebook. If it is not running, each kernel starts cold (the launcher falls back)."""

    def __init__(self, kernels: SubmissionKernels):
        self.k = kernels
        self.socket = Path(kernels.spec["zygote_socket"])
        self.proc = None
        self.start()

    def start(self) -> None:
        k = self.k
        env = dict(k.spec["kernel_env"])
        argv = [
            _python(k.iso),
            "-I",
            "-S",
            str(k.root / "kernel" / "grader_kernel.py"),
            "--zygote",
            str(k.root / "kernel" / "kernel_spec.json"),
        ]
        cmd = k.iso.command(argv, env=env, cwd=str(k.cwd), new_session=True, tmp_mb=1024, **k.binds)
        with open(k.root / "zygote.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                cmd,
                cwd=str(k.cwd),
                env=env if not k.iso.enabled else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                preexec_fn=lambda: limits.apply(k.spec["cpu_seconds"] + 60, 16384, 64, nofile=1024),
            )

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

    def stop(self) -> None:
        """Kill the server's sandbox: its pid namespace, so every kernel and whatever they started."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        self.proc = None


def _python(iso: Isolation) -> str:
    return interpreter() if iso.enabled else sys.executable


def nbgrader_env(root: Path) -> dict:
    """The environment of the nbgrader processes: ours, minus the solutions switch, plus the course's
    Jupyter folders."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(root / "jupyter")
    env.pop("COURSE_LIB_SOLUTIONS", None)
    return env


def notebook_groups(jobs: int) -> list[str]:
    """`jobs` nbgrader --notebook patterns that split the NN_*.ipynb notebooks by the last digit of
    their unit number (01 03 05 07 | 02 04 06 08 for two jobs): neighbouring units, which cost
    about the same, land in different groups."""
    jobs = max(1, min(int(jobs), 5))
    if jobs == 1:
        return ["*"]
    return [
        "[0-9][" + "".join(str(d % 10) for d in range(1, 11) if d % jobs == k % jobs) + "]_*"
        for k in range(1, jobs + 1)
    ]


class NbgraderAutograde:
    """`nbgrader autograde` of one student, started in the background, bounded in time by wait().

    With jobs > 1 the notebooks are split into `jobs` groups (``--notebook`` patterns) graded by
    concurrent nbgrader processes, each with its own kernel; a group none of the submitted
    notebooks falls in gets no process (nbgrader would only start, match nothing and fail with
    "No notebooks were matched", a false grader-side failure). The caller has already laid out
    autograded/<sid>/ (the student's course_lib), created the student and the submission in the
    gradebook and started the submission's kernels, so the processes share no set-up step.
    """

    def __init__(self, root: Path, sid: str, kernels: SubmissionKernels, jobs: int = 1):
        release.ensure_scripts_on_path()
        env = kernels.env(nbgrader_env(root))
        base = [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, f"--student={sid}", "--force"]
        groups = notebook_groups(jobs)
        if len(groups) > 1:
            names = [p.name for p in (root / "submitted" / sid / ASSIGNMENT).glob("*.ipynb")]
            groups = [g for g in groups if fnmatch.filter(names, f"{g}.ipynb")] or groups[:1]
        self.started = time.time()
        self.procs = []
        for k, pattern in enumerate(groups):
            cmd = base if pattern == "*" else base + [f"--notebook={pattern}"]
            # kernels talk over Unix sockets in the submission's private folder (bound into the
            # sandbox; TCP cannot cross its network namespace), one prefix per process
            cmd = cmd + ["--KernelManager.transport=ipc", f"--KernelManager.ip={kernels.run_dir / f'k{k}'}"]
            log = root / f"autograde_{sid}{'' if len(groups) == 1 else f'_{k}'}.log"
            with open(log, "wb") as f:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    cmd,
                    cwd=str(root),
                    env=env,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.procs.append((proc, log))

    def kill(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

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
                problems.append(
                    f"nbgrader autograde failed (exit {rc}): {log.read_text(errors='replace')[-500:]}"
                )
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
