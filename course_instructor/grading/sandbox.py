"""Run a student's exercise functions on grading cases in a separate, locked-down process.

The grader never imports student code. :func:`run_student_cases` copies the course's own
``course_lib`` into a fresh temporary folder, lays the student's exercise modules over it, and
starts ``python -I -S course_instructor/grading/sandbox_child.py`` there:

* isolated interpreter (``-I -S``): no PYTHON* variables, no user site, no ``.pth`` files (the
  editable install's finder would map ``solutions`` to the instructor repository); ``sys.path`` is
  the sandbox folder + the standard library + site-packages, set explicitly;
* an audit hook (installed before the student's modules are imported) refuses reads under the
  instructor repository (except the interpreter's own files), writes outside the sandbox folder,
  subprocesses / os.system / exec / fork, ctypes and sockets;
* resource limits: CPU seconds, address space, file size (caps any output file), no core dumps;
  stdout/stderr go to /dev/null and a capped in-memory sink; a new session so the whole process
  group can be killed;
* wall-clock bounds: start-up, each exercise (no new result file for ``exercise_timeout`` s = the
  exercise hangs: the process is killed, that exercise gets no result and the sandbox restarts for
  the remaining ones) and the whole submission (``total_timeout``);
* optional: when ``unshare`` can create user + mount namespaces, the instructor repository is
  additionally hidden behind an empty tmpfs (``hide_repo=True``; off by default).

The child writes one result file per exercise; the parent checks size and structure and loads it
with ``torch.load(weights_only=True)`` (plain tensors / numbers / strings only).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

from course_lib.core import registry as exercises
from course_instructor.grading import caserun

REPO = Path(__file__).resolve().parents[2]             # the instructor repository (when it is one)
PACKAGE = REPO / "course_lib"                          # the course_lib that grading lays student files over
EXERCISE_MODULES = tuple(exercises.modules())
MAX_RESULT_BYTES = 32 * 2 ** 20


def student_files(student_course_lib: Path | None) -> dict[str, Path]:
    """The files of a student's course_lib that grading uses: the exercise modules, plus any
    *new* top-level .py helper module the student added. Provided infrastructure always comes
    from the grader's own copy."""
    if student_course_lib is None or not Path(student_course_lib).is_dir():
        return {}
    out = {}
    for p in sorted(Path(student_course_lib).glob("*.py")):
        if p.is_symlink() or not p.is_file():
            continue
        if p.stem in EXERCISE_MODULES or not (PACKAGE / p.name).exists():
            out[p.name] = p
    return out


def prepare_course_lib(student_course_lib: Path | None, dest: Path) -> Path:
    """dest/course_lib = this course_lib (+ assets) with the student's files laid over it."""
    target = dest / "course_lib"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    symlinks=False)
    for name, src in student_files(student_course_lib).items():
        shutil.copyfile(src, target / name)
    # The child process and its case runner (trusted code, copied next to the student's package).
    grading = dest / "course_instructor" / "grading"
    grading.mkdir(parents=True)
    (dest / "course_instructor" / "__init__.py").write_text("")
    (grading / "__init__.py").write_text("")
    for helper in ("sandbox_child.py", "caserun.py"):
        shutil.copyfile(Path(__file__).with_name(helper), grading / helper)
    return target


def _site_dirs() -> list[str]:
    dirs = []
    for d in [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if d and os.path.isdir(d) and d not in dirs:
            dirs.append(d)
    return dirs


def forbidden_roots() -> list[str]:
    roots = [str(REPO / "solutions")]
    if (REPO / "solutions").exists() or (REPO / ".git").exists():
        roots.append(str(REPO))
    return roots


def _limits(cpu_seconds: int, mem_mb: int, fsize_mb: int):
    def apply():
        import resource
        os.setsid()
        for res, val in ((resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_AS, mem_mb * 2 ** 20),
                         (resource.RLIMIT_FSIZE, fsize_mb * 2 ** 20), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(res, (val, val))
            except (ValueError, OSError):
                pass
    return apply


def unshare_available() -> bool:
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        r = subprocess.run([exe, "--user", "--map-root-user", "--mount", "true"], capture_output=True,
                           timeout=10)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def _load_result(path: Path, name: str, n_cases: int) -> tuple[list | None, str | None]:
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            return None, "the result file is too large"
        data = torch.load(path, weights_only=True)
        if not isinstance(data, dict) or data.get("name") != name:
            return None, "malformed result file"
        res = data.get("results")
        if not isinstance(res, list) or len(res) != n_cases:
            return None, "malformed result file (wrong number of cases)"
        return [caserun.validate_result(r) for r in res], None
    except Exception as e:  # noqa: BLE001 - anything odd in a student-written file = no result
        return None, f"unreadable result file ({type(e).__name__})"


def run_student_cases(student_course_lib: Path | None, jobs: dict[str, list[dict]], *,
                      exercise_timeout: float = 20.0, startup_timeout: float = 90.0,
                      total_timeout: float = 120.0, cpu_seconds: int = 300, mem_mb: int = 6144,
                      fsize_mb: int = 64, hide_repo: bool = False, workdir: Path | None = None) -> dict:
    """Run the student's function of every exercise in `jobs` ({name: cases}) in the sandbox.

    Returns {name: {"results": [case result, ...] | None, "error": str | None, "output": str}}.
    A result of None means nothing usable came back (crash, timeout, malformed file)."""
    names = [n for n in jobs if n in exercises.BY_NAME]
    outcome: dict[str, dict] = {}
    base = Path(tempfile.mkdtemp(prefix="course_sandbox_", dir=workdir))
    try:
        root = base / "box"
        root.mkdir()
        prepare_course_lib(student_course_lib, root)
        torch.save({n: jobs[n] for n in names}, root / "jobs.pt")
        preload = any(caserun.needs_tokenizer(c) or _needs_model(c) for n in names for c in jobs[n])
        deadline = time.monotonic() + total_timeout
        pending = list(names)
        attempt = 0
        while pending:
            attempt += 1
            out = root / f"out{attempt}"
            out.mkdir()
            spec = {"root": str(root), "site_dirs": _site_dirs(), "jobs": str(root / "jobs.pt"),
                    "out": str(out), "order": pending,
                    "modules": {n: exercises.get(n).module for n in pending},
                    "forbidden": forbidden_roots(),
                    "allowed_read": [sys.prefix, sys.base_prefix, sys.exec_prefix, *_site_dirs()],
                    "preload_transformers": preload, "output_cap": 65536}
            (root / "spec.json").write_text(json.dumps(spec))
            cmd = [sys.executable, "-I", "-S", str(root / "course_instructor/grading/sandbox_child.py"),
                   str(root / "spec.json")]
            if hide_repo and unshare_available():
                script = (f"mount -t tmpfs none {REPO} 2>/dev/null; exec " +
                          " ".join(f"'{c}'" for c in cmd))
                cmd = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
                   "TMPDIR": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "COURSE_PROFILE": "tiny", "TOKENIZERS_PARALLELISM": "false",
                   "HF_HOME": str(root / "hf"), "MPLCONFIGDIR": str(root / "mpl")}
            with open(root / f"stderr{attempt}.txt", "wb") as err:
                proc = subprocess.Popen(cmd, cwd=str(root), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err,
                                        preexec_fn=_limits(cpu_seconds, mem_mb, fsize_mb))
                reason = _watch(proc, out, len(pending), exercise_timeout, startup_timeout, deadline)
            stderr_tail = (root / f"stderr{attempt}.txt").read_bytes()[-2000:].decode("utf-8", "replace")
            got = 0
            for i, name in enumerate(pending):
                f = out / f"{i:03d}.pt"
                if not f.exists():
                    break
                res, err = _load_result(f, name, len(jobs[name]))
                outcome[name] = {"results": res, "error": err, "output": ""}
                got += 1
            rest = pending[got:]
            if not rest:
                break
            if not (out / "ready").exists():
                msg = f"the grading sandbox did not start ({reason}); {stderr_tail.strip()[-300:]}"
                for name in rest:
                    outcome[name] = {"results": None, "error": msg, "output": ""}
                break
            outcome[rest[0]] = {"results": None, "output": "",
                                "error": f"while importing or running {rest[0]}: {reason}"}
            pending = rest[1:]
            if time.monotonic() >= deadline:
                for name in pending:
                    outcome[name] = {"results": None, "error": "the submission's time budget "
                                     f"({total_timeout:.0f} s) ran out", "output": ""}
                break
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return outcome


def _needs_model(obj) -> bool:
    if isinstance(obj, dict):
        if obj.get(caserun.MARKER) in ("model", "rollout"):
            return True
        return any(_needs_model(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_needs_model(v) for v in obj)
    return False


def _watch(proc, out: Path, n: int, exercise_timeout, startup_timeout, deadline) -> str:
    """Wait for the child; kill it when it stops making progress. Returns why it ended."""
    last_count, last_change = -1, time.monotonic()
    started = time.monotonic()
    ready_at = None
    while True:
        rc = proc.poll()
        now = time.monotonic()
        if rc is not None:
            if (out / "done").exists():
                return "finished"
            if rc < 0:
                sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else -rc
                return f"the process was killed by {sig} (a resource limit: CPU time, memory or output size)"
            return f"the process exited early with status {rc} (sys.exit / os._exit?)"
        ready = (out / "ready").exists()
        if ready and ready_at is None:
            ready_at = now
        count = len(list(out.glob("*.pt")))
        if count != last_count:
            last_count, last_change = count, now
        if not ready and now - started > startup_timeout:
            _kill(proc)
            return f"start-up took longer than {startup_timeout:.0f} s"
        if ready and now - max(last_change, ready_at) > exercise_timeout:
            _kill(proc)
            return f"timed out after {exercise_timeout:.0f} s (an infinite loop?)"
        if now > deadline:
            _kill(proc)
            return "the submission's time budget ran out"
        time.sleep(0.05)
