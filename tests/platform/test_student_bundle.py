"""The student bundle works on its own: run from a release, in a venv where the instructor package
is not importable (as on a student's machine), `course --help` lists only the commands that work
there, and every `course ...` command or `setup.sh` mode that the student README and setup.sh
mention works (or, for the instructor-only `setup.sh --run`, says so and stops)."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from course_instructor import release

    return release.build_bundle(tmp_path_factory.mktemp("student") / "out", ROOT / "exercises")


@pytest.fixture(scope="module")
def student_python(tmp_path_factory):
    """A venv with the course's packages but not the instructor's editable install."""
    from course_instructor.simenv import make_env

    return make_env(tmp_path_factory.mktemp("student_env") / "venv")


def run(py: Path, args, cwd: Path, timeout=300, **env):
    from course_instructor.simenv import clean_env

    return subprocess.run(
        [str(py), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(MPLBACKEND="Agg", COURSE_PROFILE="tiny", **env),
    )


def listed(help_text: str) -> set[str]:
    return set(re.findall(r"^  (\S+)\s", help_text, re.M))


def test_student_help_lists_only_student_commands(bundle, student_python):
    from course_lib import cli

    r = run(student_python, ["-c", "import course_instructor"], bundle)
    assert r.returncode != 0, "the student venv must not see the instructor package"
    r = run(student_python, ["-m", "course_lib.cli", "--help"], bundle)
    assert r.returncode == 0, r.stderr
    assert listed(r.stdout) == set(cli.COMMANDS) == {"selfcheck", "submit", "serve"}, r.stdout
    r = run(student_python, ["-m", "course_lib.cli", "run"], bundle)
    assert r.returncode == 2 and "instructor's repository" in r.stderr, r.stderr


def test_instructor_help_adds_the_instructor_commands():
    from course_instructor.commands import COMMANDS as INSTRUCTOR
    from course_lib import cli

    assert {"run", "release", "autograde", "bench", "quality", "build-tiny"} <= set(INSTRUCTOR)
    assert not set(INSTRUCTOR) & set(cli.COMMANDS)
    assert list(cli.all_commands()) == [*cli.COMMANDS, *INSTRUCTOR]
    for target, _ in INSTRUCTOR.values():  # every registered target exists
        mod, func = target.split(":")
        assert callable(getattr(__import__(mod, fromlist=[func]), func)), target


def test_every_command_the_student_is_told_about_exists(bundle):
    """`course X` in the student README, setup.sh and the notebooks' text is a student command
    (a mention just after the word "instructor" is not an instruction to the student)."""
    from course_lib import cli

    texts = [(bundle / "README.md").read_text(), (bundle / "setup.sh").read_text()]
    for nb in (bundle / "exercises").glob("*.ipynb"):
        texts += ["".join(c["source"]) for c in __import__("json").loads(nb.read_text())["cells"]]
    text = "\n".join(texts)
    mentioned = {}
    # `course X`, .venv/bin/course X, or a command line in a code block ("course serve  # ...")
    pattern = r"(?:`|/)course ([a-z][a-z-]+)|^course ([a-z][a-z-]+)(?=\s{2}|\s+-|\s+\S+/)"
    for m in re.finditer(pattern, text, re.M):
        if "instructor" not in text[max(0, m.start() - 60) : m.start()]:
            mentioned.setdefault(m.group(1) or m.group(2), text[max(0, m.start() - 60) : m.end()])
    assert {"submit", "serve"} <= set(mentioned), mentioned
    wrong = {cmd: line for cmd, line in mentioned.items() if cmd not in cli.COMMANDS}
    assert not wrong, f"the student copy mentions commands it does not have: {wrong}"


def test_setup_run_in_the_student_copy_explains_and_stops(bundle):
    r = subprocess.run(["bash", "setup.sh", "--run"], cwd=bundle, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "instructor's repository" in r.stderr and "jupyter lab" in r.stderr, r.stderr
    assert "==>" not in r.stdout, "it must stop before setting anything up"


def test_selfcheck_and_submit_from_the_bundle(bundle, student_python, tmp_path):
    r = run(student_python, ["-m", "course_lib.cli", "selfcheck", "--steps", "2"], bundle)
    assert r.returncode == 0 and "selfcheck passed" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "jd.zip"
    r = run(
        student_python, ["-m", "course_lib.cli", "submit", "--student-id", "jd", "--out", str(out)], bundle
    )
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    assert sorted(n for n in names if n.endswith(".ipynb")) == sorted(
        f"exercises/{p.name}" for p in (bundle / "exercises").glob("*.ipynb")
    )
    assert "course_lib/grpo.py" in names and not any("course_instructor" in n for n in names)


@pytest.mark.slow
def test_setup_sh_in_the_student_copy(bundle, tmp_path):
    """`bash setup.sh` of the bundle: installs the bundle (offline: every dependency is already
    there), registers the kernel (in a temporary Jupyter folder) and passes the self-check."""
    from course_instructor.simenv import make_env

    venv = tmp_path / "venv"
    make_env(venv)
    r = subprocess.run(
        ["bash", "setup.sh"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **__import__("course_instructor.simenv", fromlist=["x"]).clean_env(
                VENV=str(venv),
                PIP_NO_INDEX="1",
                PIP_NO_BUILD_ISOLATION="0",
                JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
                MPLBACKEND="Agg",
                COURSE_PROFILE="tiny",
            )
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "selfcheck passed" in r.stdout and "5/5 self-check" in r.stdout
    assert (tmp_path / "jupyter" / "kernels" / "rl-course" / "kernel.json").exists()
    r = subprocess.run(
        [str(venv / "bin" / "course"), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert r.returncode == 0 and listed(r.stdout) == {"selfcheck", "submit", "serve"}, r.stdout + r.stderr
    # the README's test commands: the public tests pass; an exercise not written yet fails clearly
    py = str(venv / "bin" / "python")
    pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    r = subprocess.run(
        [*pytest, "--deselect", "tests/exercises/test_exercises.py"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0 and " passed" in r.stdout, r.stdout[-3000:]
    r = subprocess.run(
        [*pytest, "tests/exercises/test_exercises.py", "-k", "ex1.1-"],  # 1.1 alone
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "not implemented yet" in r.stdout, r.stdout[-3000:]
    assert "1 failed" in r.stdout, r.stdout[-3000:]
