"""Run a student's exercise functions on grading cases in a separate, isolated process.

The grader never imports student code. :func:`run_student_cases` lays the student's exercise
modules over a copy of the course's own ``course_lib`` in a fresh folder (the "box", with the jobs
and the child's helpers) and starts ``python -I -S sandbox_child.py`` on it inside bubblewrap
(isolation.py): the box is mounted read-only at ``/box``, the only writable place is a private
``/tmp``; the instructor repository, ``solutions/``, the gradebook, the grades and every other
submission do not exist in there; no network, uid nobody, its own pid namespace.

Inside, the child loads the fork ban and the audit hook (an extra alarm) before importing student
code; rlimits (limits.py) bound CPU, memory, file size and open files. Results come back as JSON
lines on the child's stdout, read with a size cap and parsed by :func:`wire.decode_result`
into tensors the grader builds itself -- nothing is unpickled, no method of a student object is
ever called here. Wall-clock bounds: start-up, and each exercise on its own (no new result line
for ``exercise_timeout`` s: the whole sandbox is killed, that exercise gets no result and a fresh
sandbox runs the remaining ones, each again with its own ``exercise_timeout``). So an exercise
that loops or sleeps forever loses only its own points; a submission takes at most about
(exercises x exercise_timeout) plus one start-up per stopped exercise. ``total_timeout`` (None by
default) is an optional overall cap on top. A sandbox that does not start is tried once more; if
it fails again its exercises are marked ``grader_side`` (the grader's problem, not the student's).
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
import time
from pathlib import Path

import torch

from course_instructor.grading import wire
from course_instructor.grading.isolation import Isolation
from course_instructor.grading.sandboxed import caserun, limits
from course_lib.core import registry as exercises

REPO = Path(__file__).resolve().parents[2]  # the instructor repository (when it is one)
PACKAGE = REPO / "course_lib"  # the course_lib that grading lays student files over
EXERCISE_MODULES = tuple(exercises.modules())
MAX_RESULT_BYTES = 32 * 2**20
SANDBOXED = Path(__file__).with_name("sandboxed")  # the code that runs inside the sandbox
HELPERS = ("sandbox_child.py", "caserun.py", "limits.py")  # of SANDBOXED, copied into the box with wire.py
BOX = "/box"  # where the box is mounted inside the sandbox


def student_files(student_course_lib: Path | None, base: Path = PACKAGE) -> dict[str, Path]:
    """The files of a student's course_lib that grading uses: the exercise modules, plus any
    *new* top-level .py helper module the student added. Provided infrastructure always comes
    from the grader's own copy (`base`)."""
    if student_course_lib is None or not Path(student_course_lib).is_dir():
        return {}
    out = {}
    for p in sorted(Path(student_course_lib).glob("*.py")):
        if p.is_symlink() or not p.is_file():
            continue
        if p.stem in EXERCISE_MODULES or not (base / p.name).exists():
            out[p.name] = p
    return out


def copy_package(dest: Path, base: Path = PACKAGE) -> Path:
    """dest = a copy of course_lib (+ assets) without caches or symlinks."""
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), symlinks=False)
    return dest


def prepare_course_lib(student_course_lib: Path | None, dest: Path, base: Path = PACKAGE) -> Path:
    """dest/course_lib = the grader's course_lib (`base`) with the student's files laid over it."""
    target = copy_package(dest / "course_lib", base)
    for name, src in student_files(student_course_lib, base).items():
        shutil.copyfile(src, target / name)
    return target


def prepare_box(student_course_lib: Path | None, dest: Path, base: Path = PACKAGE) -> Path:
    """prepare_course_lib + the child process and its helpers (trusted code) next to it."""
    target = prepare_course_lib(student_course_lib, dest, base)
    grading = dest / "course_instructor" / "grading"
    (grading / "sandboxed").mkdir(parents=True)
    for package in (dest / "course_instructor", grading, grading / "sandboxed"):
        (package / "__init__.py").write_text("")
    shutil.copyfile(Path(__file__).with_name("wire.py"), grading / "wire.py")
    for helper in HELPERS:
        shutil.copyfile(SANDBOXED / helper, grading / "sandboxed" / helper)
    return target


def forbidden_roots() -> list[str]:
    """What the audit hook refuses to read (inside the sandbox these do not even exist)."""
    roots = [str(REPO / "solutions")]
    if (REPO / "solutions").exists() or (REPO / ".git").exists():
        roots.append(str(REPO))
    return roots


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


def _parse(line: str, index: int, name: str, n_cases: int) -> tuple[list | None, str | None, str]:
    """(results, error, output) of one result line; never trusts its content."""
    try:
        msg = json.loads(line)
        if type(msg) is not dict or msg.get("i") != index or msg.get("name") != name:
            raise wire.MalformedResult("a result line for another exercise")
        res = msg.get("results")
        if type(res) is not list or len(res) != n_cases:
            raise wire.MalformedResult("wrong number of case results")
        out = msg.get("output") if type(msg.get("output")) is str else ""
        return [wire.decode_result(r) for r in res], None, out[:70000]
    except (ValueError, RecursionError) as e:  # MalformedResult is a ValueError
        return None, f"the sandbox sent back a malformed result ({str(e)[:200]})", ""


def run_student_cases(
    student_course_lib: Path | None,
    jobs: dict[str, list[dict]],
    *,
    isolation: Isolation | None = None,
    exercise_timeout: float = 20.0,
    startup_timeout: float = 90.0,
    total_timeout: float | None = None,
    cpu_seconds: int = 300,
    mem_mb: int = 6144,
    fsize_mb: int = 64,
    workdir: Path | None = None,
    base: Path = PACKAGE,
) -> dict:
    """Run the student's function of every exercise in `jobs` ({name: cases}) in the sandbox.

    Returns {name: {"results": [case result, ...] | None, "error": str | None, "output": str}}
    (+ ``"grader_side": True`` where the sandbox itself could not start, twice).
    A result of None means nothing usable came back (crash, timeout, malformed output).
    `isolation` None = bubblewrap (raises IsolationUnavailable where it cannot run); `base` = the
    course_lib the student's files are laid over."""
    iso = isolation if isolation is not None else Isolation(True)
    names = [n for n in jobs if n in exercises.BY_NAME]
    outcome: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="course_sandbox_", dir=workdir))
    try:
        box = work / "box"
        box.mkdir()
        prepare_box(student_course_lib, box, base)
        torch.save({n: jobs[n] for n in names}, box / "jobs.pt")
        inner = BOX if iso.enabled else str(box)
        scratch = "/tmp" if iso.enabled else str(work / "scratch")
        os.makedirs(work / "scratch", exist_ok=True)
        preload = any(caserun.needs_tokenizer(c) or _needs_model(c) for n in names for c in jobs[n])
        deadline = time.monotonic() + (total_timeout if total_timeout is not None else float("inf"))
        pending = list(names)
        attempt = start_failures = 0
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": scratch,
            "TMPDIR": scratch,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "COURSE_PROFILE": "tiny",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HOME": scratch + "/hf",
            "MPLCONFIGDIR": scratch + "/mpl",
        }
        while pending:
            attempt += 1
            spec = {
                "root": inner,
                "site_dirs": iso.site_paths(),
                "jobs": f"{inner}/jobs.pt",
                "order": pending,
                "modules": {n: exercises.get(n).module for n in pending},
                "forbidden": forbidden_roots(),
                "writable": [scratch],
                "allowed_read": [sys.prefix, sys.base_prefix, sys.exec_prefix, *iso.site_paths()],
                "preload_transformers": preload,
                "output_cap": 65536,
            }
            (box / f"spec{attempt}.json").write_text(json.dumps(spec))
            argv = [
                isolation_python(iso),
                "-I",
                "-S",
                f"{inner}/course_instructor/grading/sandboxed/sandbox_child.py",
                f"{inner}/spec{attempt}.json",
            ]
            cmd = iso.command(argv, env=env, cwd=scratch, ro={str(box): BOX}, tmp_mb=512)
            with open(work / f"stderr{attempt}.txt", "wb") as err:
                proc = subprocess.Popen(
                    cmd,
                    cwd=scratch if not iso.enabled else str(work),
                    env=env if not iso.enabled else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=lambda: limits.apply(cpu_seconds, mem_mb, fsize_mb),
                )
                try:
                    got, reason = _collect(
                        proc, pending, jobs, outcome, exercise_timeout, startup_timeout, deadline
                    )
                finally:
                    _kill(proc)
                    proc.stdout.close()
            stderr_tail = (work / f"stderr{attempt}.txt").read_bytes()[-2000:].decode("utf-8", "replace")
            rest = pending[got:]
            if not rest:
                break
            if reason.startswith("start-up:"):
                start_failures += 1
                if start_failures == 1 and got == 0 and time.monotonic() < deadline:
                    continue  # a busy machine: try once more before blaming anyone
                msg = f"the grading sandbox did not start ({reason[9:]}); {stderr_tail.strip()[-300:]}"
                for name in rest:
                    outcome[name] = {"results": None, "error": msg, "output": "", "grader_side": True}
                break
            outcome[rest[0]] = {
                "results": None,
                "output": "",
                "error": f"while importing or running {rest[0]}: {reason}",
            }
            pending = rest[1:]
            if time.monotonic() >= deadline:
                for name in pending:
                    outcome[name] = {
                        "results": None,
                        "error": f"the submission's time budget ({total_timeout:.0f} s) ran out",
                        "output": "",
                    }
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outcome


def isolation_python(iso: Isolation) -> str:
    from course_instructor.grading.isolation import interpreter

    return interpreter() if iso.enabled else sys.executable


def _collect(
    proc,
    pending: list[str],
    jobs: dict,
    outcome: dict,
    exercise_timeout: float,
    startup_timeout: float,
    deadline: float,
) -> tuple[int, str]:
    """Read result lines until the child finishes, stalls or runs out of time.
    Returns (exercises that got a result, why it ended; "start-up: ..." if it never got ready)."""
    lines = wire.LineReader(proc.stdout, MAX_RESULT_BYTES)
    started = last = time.monotonic()
    ready, got = False, 0
    while True:
        now = time.monotonic()
        limit = (last + exercise_timeout) if ready else (started + startup_timeout)
        try:
            line = lines.q.get(timeout=max(0.01, min(limit, deadline) - now))
        except queue.Empty:
            now = time.monotonic()
            if now >= deadline:
                return got, (
                    "the submission's time budget ran out"
                    if ready
                    else "start-up: the submission's time budget ran out"
                )
            if not ready:
                return got, f"start-up: start-up took longer than {startup_timeout:.0f} s"
            return got, f"timed out after {exercise_timeout:.0f} s (an infinite loop?)"
        if line is None:  # the child closed its output: it ended
            rc = proc.wait()
            if lines.overflow:
                return got, "it sent back more than 32 MB of results"
            if not ready:
                return got, f"start-up: the process ended with status {rc}"
            if rc < 0:
                sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else -rc
                return (
                    got,
                    f"the process was killed by {sig} (a resource limit: CPU time, memory or output size)",
                )
            return got, f"the process exited early with status {rc} (sys.exit / os._exit?)"
        last = time.monotonic()
        if not ready:
            ready = line.strip() == json.dumps(wire.READY)
            if not ready:
                return got, "start-up: the sandbox sent something before it was ready"
            continue
        if got >= len(pending):
            if line.strip() == json.dumps(wire.DONE):
                return got, "finished"
            continue
        name = pending[got]
        res, err, out = _parse(line, got, name, len(jobs[name]))
        outcome[name] = {"results": res, "error": err, "output": out}
        got += 1


def _needs_model(obj) -> bool:
    if isinstance(obj, dict):
        if obj.get(caserun.MARKER) in ("model", "rollout"):
            return True
        return any(_needs_model(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_needs_model(v) for v in obj)
    return False
