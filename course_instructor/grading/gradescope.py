"""`course gradescope`: a Gradescope autograder zip that grades one submission like `course autograde`.

    course gradescope                              # -> gradescope_autograder.zip
    course gradescope --out ag.zip --visibility visible --stdout-visibility hidden

Upload the zip as a "Programming Assignment" autograder. Gradescope builds an image from it once
(``setup.sh``, as root) and, for each submission, runs ``run_autograder`` with the student's files
in ``/autograder/submission`` and this zip unpacked in ``/autograder/source``. ``run_autograder``
calls :func:`run` (``python -m course_instructor.grading.gradescope``), which grades with the very
same code as `course autograde --no-notebooks` (``autograde.Grader``: expected results from
``solutions/``, the student's functions run in the sandbox, compared here; partial credit per
exercise) and writes ``/autograder/results/results.json`` per Gradescope's specification
(gradescope-autograders.readthedocs.io/en/latest/specs/): one test per code exercise with
``name``, ``number``, ``score``, ``max_score``, ``output`` (the HTML feedback's verdict text:
cases passed, the first failures; never the hidden-test code), ``visibility`` and ``tags``;
top-level ``score``, ``execution_time``, ``output``, ``stdout_visibility`` and ``extra_data``.

Only the code exercises are graded here. The notebooks are not executed (that costs ~40 s per
submission and earns no automatic points): the written answers are graded by hand -- the results'
``output`` says so and lists them with their points.

What a submission may be: the zip from `course submit` (Gradescope unpacks uploaded zips; a zip
left as is is read too), its unpacked folder (``course_lib/`` + ``exercises/``), or loose files
(``rewards.py`` ..., ``01_reward_functions.ipynb`` ...). Only ``course_lib/*.py``,
``exercises/*.ipynb`` and ``SUBMISSION.json`` are ever read (submissions.py).

Isolation (``--isolation``, recorded in the zip): student code must not read ``solutions/`` or
write ``results.json``, reach the network or see other processes, and Gradescope runs it in the
same container as the grader.

* ``bwrap``: bubblewrap, exactly as `course autograde` (needs user namespaces in the container);
* ``bwrap-root``: where user namespaces are forbidden but the grader is root with CAP_SYS_ADMIN:
  bwrap run by root creates the same mount / pid / network / IPC / UTS namespaces without a user
  namespace, and ``setpriv`` makes the process the real user ``nobody`` with no capabilities
  (isolation.RootNamespaceIsolation); the same sandbox as ``bwrap``;
* ``auto`` (default): ``bwrap`` where it works, else ``bwrap-root``, else REFUSE: results.json
  gets 0 points and a sentence naming what the container lacks. Never the weak mode below;
* ``uid-weak`` (only when named; ``uid`` in zips built before): for containers that allow no
  namespaces at all (Docker's defaults: no CAP_SYS_ADMIN, a seccomp profile that forbids user
  namespaces). The process runs as user ``nobody`` (``setpriv``) with the usual rlimits, fork ban
  and audit hook, and ``setup.sh`` makes ``/autograder/source`` readable by root only, so the
  answers and results.json stay out of reach -- but it has the container's network (127.0.0.1
  included), sees every process in ``/proc``, and can disable the audit hook in its own process.
  Every run prints that, loudly;
* ``none``: no wall at all (trusted submissions only).

Paths are configurable (``--root``, default ``/autograder``), so the tests run ``run_autograder``
against a fake tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

from course_instructor import release
from course_instructor.grading import export, feedback
from course_instructor.grading.isolation import (
    NOBODY,
    Isolation,
    IsolationUnavailable,
    RootNamespaceIsolation,
    setpriv_nobody,
)
from course_instructor.grading.isolation import check as bwrap_problem
from course_instructor.grading.isolation import check_root_namespaces as root_ns_problem
from course_lib.core import registry

REPO = release.REPO
VISIBILITY = ("hidden", "after_due_date", "after_published", "visible")
ISOLATION = ("auto", "bwrap", "bwrap-root", "uid-weak", "none")
# the weak mode's name in zips built before it said so; still honoured, as the instructor named it
LEGACY_ISOLATION = {"uid": "uid-weak"}
CONFIG = "gradescope.json"
# What the zip carries besides setup.sh / run_autograder (paths relative to the repository).
PACKAGES = ("course_lib", "course_instructor", "solutions")
FILES = ("pyproject.toml", "nbgrader_config.py")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "_solutions_cache", ".ipynb_checkpoints")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (Ubuntu).
# Written by `course gradescope`.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
# bubblewrap (the grader's sandbox), setpriv (util-linux: becomes user nobody in the bwrap-root and
# uid-weak modes) and Python >= 3.11 (the course's pins need it): the image's python3 where it is new
# enough (Ubuntu 24.04: 3.12), else python3.11 (Ubuntu 22.04 has it in universe).
apt-get install -y bubblewrap util-linux
PY=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  apt-get install -y python3.11
  PY=python3.11
fi
apt-get install -y "$PY-venv"
"$PY" -m venv /opt/course-venv
/opt/course-venv/bin/pip install --upgrade pip
# torch: the CPU wheel (the default index would pull GBs of CUDA packages)
/opt/course-venv/bin/pip install "{torch}" --index-url https://download.pytorch.org/whl/cpu
/opt/course-venv/bin/pip install -r /autograder/source/requirements.txt
# The grader, solutions/ and the hidden cases: root only (student code runs as nobody)
chown -R root:root /autograder/source
chmod -R go-rwx /autograder/source
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (working directory /autograder).
# Written by `course gradescope`. COURSE_AUTOGRADER_ROOT / COURSE_AUTOGRADER_PYTHON: for tests.
set -euo pipefail
ROOT="${COURSE_AUTOGRADER_ROOT:-/autograder}"
PY="${COURSE_AUTOGRADER_PYTHON:-/opt/course-venv/bin/python}"
cd "$ROOT/source"
export PYTHONPATH="$ROOT/source" COURSE_PROFILE=tiny HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PY" -m course_instructor.grading.gradescope --root "$ROOT"
"""


# --- building the zip -------------------------------------------------------------------------------
def requirements() -> list[str]:
    """The pinned dependencies of pyproject.toml (torch is installed on its own by setup.sh)."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(meta["project"]["dependencies"])


def torch_spec() -> str:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    return meta["project"]["optional-dependencies"]["torch"][0]


def build_zip(
    out: Path,
    *,
    source_dir: Path | None = None,
    visibility: str = "after_due_date",
    stdout_visibility: str = "hidden",
    isolation: str = "auto",
    seed: int | None = None,
    exercise_timeout: float = 20,
    sandbox_timeout: float | None = None,
) -> Path:
    """Write the autograder zip: setup.sh and run_autograder at its root, the grader, solutions/,
    course_lib, the source notebooks (which cells are graded, their points) and gradescope.json."""
    for name, value, allowed in (
        ("visibility", visibility, VISIBILITY),
        ("stdout_visibility", stdout_visibility, VISIBILITY),
        ("isolation", isolation, ISOLATION),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    source_dir = Path(source_dir or REPO / "notebooks")
    notebooks = release.source_notebooks(source_dir)
    if not notebooks:
        raise ValueError(f"no source notebooks NN_*.ipynb in {source_dir}")
    config = {
        "visibility": visibility,
        "stdout_visibility": stdout_visibility,
        "isolation": isolation,
        "seed": seed,
        "exercise_timeout": exercise_timeout,
        "sandbox_timeout": sandbox_timeout,
        "notebooks": [p.name for p in notebooks],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="course_gradescope_") as tmp:
        stage = Path(tmp)
        for pkg in PACKAGES:
            shutil.copytree(REPO / pkg, stage / pkg, ignore=SKIP, symlinks=False)
        for f in FILES:
            if (REPO / f).is_file():
                shutil.copy(REPO / f, stage / f)
        (stage / "notebooks").mkdir()
        for nb in notebooks:
            shutil.copy(nb, stage / "notebooks" / nb.name)
        (stage / CONFIG).write_text(json.dumps(config, indent=1))
        (stage / "requirements.txt").write_text("\n".join(requirements()) + "\n")
        (stage / "setup.sh").write_text(SETUP_SH.replace("{torch}", torch_spec()))
        (stage / "run_autograder").write_text(RUN_AUTOGRADER)
        tmp_zip = out.with_name(out.name + ".part")
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(stage.rglob("*")):
                if p.is_file():
                    info = zipfile.ZipInfo.from_file(p, p.relative_to(stage).as_posix())
                    executable = p.name in ("setup.sh", "run_autograder")
                    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, p.read_bytes())
        tmp_zip.replace(out)
    return out


# --- isolation ----------------------------------------------------------------------------------------
WEAK_WARNING = (
    "!" * 78 + "\n"
    "!! WEAK ISOLATION (--isolation uid-weak): student code runs as user nobody in the grader's own\n"
    "!! namespaces. It cannot read the grader's files (root only) or write results.json, but it\n"
    "!! CAN reach the network (127.0.0.1 included), SEE every process in /proc, and disable the\n"
    "!! audit hook in its own process. Real isolation: --isolation auto in a container with user\n"
    "!! namespaces, or with CAP_SYS_ADMIN for the grader (root).\n" + "!" * 78
)


class UidIsolation(Isolation):
    """The weak wall (``uid-weak``): student code as user ``nobody`` via ``setpriv`` (no namespaces
    needed), host paths, network and process list as they are. The sandbox's box and scratch
    folders are opened to that user just before it starts."""

    def __init__(self):
        super().__init__(enabled=False)
        self.setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or not self.setpriv:
            raise IsolationUnavailable(
                "the uid wall needs root and setpriv (util-linux): "
                f"euid {os.geteuid()}, setpriv {'found' if self.setpriv else 'missing'}"
            )

    def command(self, argv, *, env, cwd, ro=None, rw=None, **kw) -> list[str]:
        for host in ro or {}:  # the box (trusted code, the cases' inputs, the student's files)
            os.chmod(Path(host).parent, 0o711)
            for d, _dirs, files in os.walk(host):
                os.chmod(d, 0o755)
                for f in files:
                    os.chmod(os.path.join(d, f), 0o644)
        os.chown(cwd, NOBODY, NOBODY)  # the scratch folder: the only place it may write
        os.chmod(cwd, 0o700)
        return [*setpriv_nobody(self.setpriv), *argv]


def choose_isolation(mode: str) -> tuple[Isolation, str]:
    """(the Isolation to grade with, a sentence for the log) for --isolation `mode`. `auto` takes
    the strongest that works here and refuses (IsolationUnavailable) rather than fall back to the
    weak wall, which is used only when named."""
    mode = LEGACY_ISOLATION.get(mode, mode)
    if mode not in ISOLATION:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATION)}; got {mode!r}")
    if mode == "none":
        return Isolation(False), "NO isolation (--isolation none): trusted submissions only"
    if mode == "uid-weak":
        return UidIsolation(), "uid-weak: student code runs as nobody, with the network and process list"
    userns = bwrap_problem() if mode in ("auto", "bwrap") else None
    if mode in ("auto", "bwrap") and userns is None:
        return Isolation(True), "bubblewrap (as course autograde)"
    if mode == "bwrap":
        raise IsolationUnavailable(userns)
    root = root_ns_problem()
    if root is None:
        why = "no user namespaces here" if mode == "auto" else "--isolation bwrap-root"
        return RootNamespaceIsolation(), f"bubblewrap run as root, no user namespace ({why})"
    if mode == "bwrap-root":
        raise IsolationUnavailable(root)
    raise IsolationUnavailable(
        "no way to isolate student code here (its own network and process namespaces): "
        f"no user namespaces for bubblewrap -- {userns}; and no namespaces for root either -- {root}. "
        "Either give the container what one of them needs, or build the autograder with "
        "`course gradescope --isolation uid-weak`, which runs student code as user nobody but "
        "leaves it the network and the process list"
    )


# --- one submission -----------------------------------------------------------------------------------
def gather(sub_dir: Path, work: Path) -> Path:
    """The submission as `course autograde` reads it: a zip of `course submit` found in the folder,
    the folder itself (course_lib/ + exercises/), or loose .py / .ipynb files put in that shape."""
    sub_dir = Path(sub_dir)
    if not sub_dir.is_dir():
        raise ValueError(f"no submission folder {sub_dir}")
    top = [p for p in sub_dir.iterdir() if not p.name.startswith(".")]
    if (sub_dir / "course_lib").is_dir() or (sub_dir / "exercises").is_dir():
        return sub_dir
    zips = [p for p in top if p.is_file() and p.suffix == ".zip"]
    if len(zips) == 1:
        return zips[0]
    dest = work / "submission-gradescope"
    dest.mkdir(parents=True)
    for p in top:
        if p.is_dir() and not p.is_symlink() and ((p / "course_lib").is_dir() or (p / "exercises").is_dir()):
            return p  # one top folder (an unpacked `course submit` zip)
        if not p.is_file() or p.is_symlink():
            continue
        if p.suffix == ".py":
            (dest / "course_lib").mkdir(exist_ok=True)
            shutil.copyfile(p, dest / "course_lib" / p.name)
        elif p.suffix == ".ipynb":
            (dest / "exercises").mkdir(exist_ok=True)
            shutil.copyfile(p, dest / "exercises" / p.name)
        elif p.name == "SUBMISSION.json":
            shutil.copyfile(p, dest / p.name)
    return dest


def results_json(result: dict, cells: list[dict], config: dict, seconds: float, how: str) -> dict:
    """Gradescope's results.json for one graded submission (a result of autograde.Grader)."""
    vis = config.get("visibility", "after_due_date")
    tests = []
    for c in cells:
        if c["kind"] != "code":
            continue
        s = result["details"][c["exercise"]]
        ex = registry.get(c["exercise"])
        tests.append(
            {
                "name": f"Exercise {ex.number}: {ex.name} (course_lib/{ex.module}.py, {c['notebook']})",
                "number": ex.number,
                "score": s["score"],
                "max_score": s["max_score"],
                "output": "\n".join(feedback.verdict_lines(s)),
                "output_format": "text",
                "name_format": "text",
                "visibility": vis,
                "tags": [export.unit_label(c["unit"]), ex.module],
            }
        )
    manual = [c for c in cells if c["kind"] == "manual"]
    lines = [result.get("status", "").strip()]
    if manual:
        lines.append(
            f"Written answers ({len(manual)} questions, {sum(c['max_score'] for c in manual):g} points) are "
            "graded by hand, not here: " + ", ".join(f"{c['exercise']} ({c['max_score']:g})" for c in manual)
        )
    lines.append(
        "Each exercise earns the fraction of hidden cases it passes; a case shows its id and what "
        "went wrong, never the hidden inputs' code."
    )
    return {
        "score": export.student_total(result),
        "execution_time": round(seconds),
        "output": "\n\n".join(x for x in lines if x),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "stdout_visibility": config.get("stdout_visibility", "hidden"),
        "tests": tests,
        "extra_data": {
            "student_id": result["student_id"],
            "seed": result.get("seed", config.get("seed")),
            "isolation": how,
            "grader": "course_instructor.grading.autograde.Grader (code exercises, sandboxed)",
        },
    }


def run(root: Path = Path("/autograder"), config: dict | None = None) -> dict:
    """Grade root/submission, write root/results/results.json; returns what it wrote."""
    from course_instructor.grading import autograde

    t0 = time.time()
    root = Path(root)
    source = root / "source"
    if config is None:
        cfg_path = source / CONFIG
        config = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    (root / "results").mkdir(parents=True, exist_ok=True)
    iso, how = choose_isolation(config.get("isolation", "auto"))
    print(f"course gradescope: isolation = {how}", flush=True)
    if isinstance(iso, UidIsolation):
        print(WEAK_WARNING, flush=True)
    work = Path(tempfile.mkdtemp(prefix="course_gradescope_run_"))
    try:
        grader = autograde.Grader(
            work / "out",
            source / "notebooks" if (source / "notebooks").is_dir() else None,
            seed=config.get("seed"),
            exercise_timeout=config.get("exercise_timeout", 20),
            sandbox_timeout=config.get("sandbox_timeout"),
            run_notebooks=False,
            quiet=False,
            isolation=iso,
            isolate=iso.enabled,
        )
        note = ""
        try:
            sub = gather(root / "submission", work / "gathered")
        except (ValueError, OSError) as e:  # graded as an empty submission, and said so
            note = f"Your submission could not be read ({e}): nothing was graded. "
            sub = work / "submission-empty"
            sub.mkdir()
        result = grader.grade_all([sub])[0]
        result["status"] = note + result.get("status", "")
        result.setdefault("seed", grader.seed)
        out = results_json(result, grader.cells, config, time.time() - t0, how)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (root / "results" / "results.json").write_text(json.dumps(out, indent=1))
    print(f"course gradescope: {out['score']:g} points -> {root / 'results' / 'results.json'}", flush=True)
    return out


def run_main(argv: list[str] | None = None) -> int:
    """What run_autograder calls: ``python -m course_instructor.grading.gradescope [--root R]``."""
    ap = argparse.ArgumentParser(prog="run_autograder", description="grade one Gradescope submission")
    ap.add_argument("--root", default="/autograder", help="Gradescope's tree (default /autograder)")
    args = ap.parse_args(argv)
    try:
        run(Path(args.root))
    except IsolationUnavailable as e:
        msg = f"the grader refused to run student code without isolation: {e}"
        print(f"course gradescope: {msg}", file=sys.stderr)
        (Path(args.root) / "results").mkdir(parents=True, exist_ok=True)
        (Path(args.root) / "results" / "results.json").write_text(
            json.dumps(
                {"score": 0, "output": f"Autograder configuration error (tell your instructor): {msg}"}
            )
        )
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """`course gradescope`: build the autograder zip."""
    ap = argparse.ArgumentParser(prog="course gradescope", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gradescope_autograder.zip", help="the zip to write")
    ap.add_argument("--source", default=str(REPO / "notebooks"), help="source notebooks (default notebooks/)")
    ap.add_argument(
        "--visibility",
        default="after_due_date",
        choices=VISIBILITY,
        help="when students see each exercise's result (default after_due_date: the hidden cases' "
        "verdicts stay hidden until the deadline)",
    )
    ap.add_argument(
        "--stdout-visibility", default="hidden", choices=VISIBILITY, help="the grader's log (default hidden)"
    )
    ap.add_argument(
        "--isolation",
        default="auto",
        choices=ISOLATION,
        help="auto (default): bubblewrap, else bubblewrap as root without a user namespace, else refuse; "
        "uid-weak: only user nobody (network and process list stay visible); see the module docstring",
    )
    ap.add_argument("--seed", type=int, default=None, help="seed of the hidden cases (default fixed)")
    ap.add_argument("--exercise-timeout", type=float, default=20, help="sandbox: one exercise, s")
    ap.add_argument(
        "--sandbox-timeout",
        type=float,
        default=None,
        help="optional cap on one submission's code grading, s (default: none; each exercise has its own budget)",
    )
    args = ap.parse_args(argv)
    try:
        out = build_zip(
            Path(args.out),
            source_dir=Path(args.source),
            visibility=args.visibility,
            stdout_visibility=args.stdout_visibility,
            isolation=args.isolation,
            seed=args.seed,
            exercise_timeout=args.exercise_timeout,
            sandbox_timeout=args.sandbox_timeout,
        )
    except ValueError as e:
        print(f"course gradescope: {e}", file=sys.stderr)
        return 2
    if args.isolation == "uid-weak":
        print(WEAK_WARNING, file=sys.stderr)
    with zipfile.ZipFile(out) as z:
        n = len(z.namelist())
    print(
        f"wrote {out} ({n} files, {out.stat().st_size / 2**20:.1f} MB): upload it as the autograder of a "
        "Gradescope programming assignment"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main())
