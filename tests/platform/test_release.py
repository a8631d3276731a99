"""`course release`: leak-proof student bundle, up-to-date exercises/, nbgrader config."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import fixture_notebook  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A release of the repository's notebooks (or the fixture notebook while there are none),
    built into a temporary folder: (info, exercises dir)."""
    from course_instructor import release

    d = tmp_path_factory.mktemp("release")
    src = ROOT / "notebooks"
    if not release.source_notebooks(src):
        src = d / "src"
        fixture_notebook.build(src / "02_fixture.ipynb")
    info = release.release(d / "out", d / "exercises", src)
    return info, d / "exercises", src


def test_release_has_no_solutions_or_hidden_tests(built):
    info, ex, src = built
    assert info["leaks"] == []
    bundle = Path(info["bundle"])
    assert not (bundle / "solutions").exists() and not (bundle / "notebooks").exists()
    names = {p.name for p in (bundle / "exercises").glob("*.ipynb")}
    assert names == {p.name for p in src.glob("[0-9][0-9]_*.ipynb")}
    for f in (
        "setup.sh",
        "environment.yml",
        "pyproject.toml",
        "README.md",
        "course_lib/kl.py",
        "course_lib/submit.py",
        "course_lib/core/config.py",
        "course_lib/assets/tiny/config.json",
        "tests/conftest.py",
    ):
        assert (bundle / f).exists(), f
    # Allow-list by audience: the bundle holds the student package and nothing instructor-only.
    assert not (bundle / "course_instructor").exists()
    shipped = sorted(p.relative_to(bundle).as_posix() for p in (bundle / "course_lib").rglob("*.py"))
    repo_lib = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "course_lib").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert shipped == repo_lib
    top = sorted(p.name for p in (bundle / "course_lib").iterdir() if p.name != "__pycache__")
    assert top == [
        "__init__.py",
        "assets",
        "checks",
        "cli.py",
        "core",
        "dpo.py",
        "grpo.py",
        "kl.py",
        "labs",
        "ppo.py",
        "reward_model.py",
        "rewards.py",
        "rlvr.py",
        "sft.py",
        "submit.py",
        "tools.py",
        "trainers",
    ], top
    with zipfile.ZipFile(info["zip"]) as z:
        names = z.namelist()
    assert not any("/solutions/" in n or n.startswith("solutions/") for n in names)
    assert not any("/course_instructor/" in n or n.startswith("course_instructor/") for n in names)
    assert any(n.endswith("course_lib/kl.py") for n in names)


def test_stubs_not_solutions_in_release(built):
    info, _, _ = built
    kl = (Path(info["bundle"]) / "course_lib" / "kl.py").read_text()
    assert "raise NotImplementedError" in kl


def test_leak_scanner_catches_planted_leaks(built, tmp_path):
    """The scanner itself must be able to fail: plant each kind of leak in a copy."""
    import shutil

    from course_instructor import release
    from solutions import CANARY

    bundle = Path(built[0]["bundle"])
    for plant in (
        f"# {CANARY}\n",
        "### BEGIN SOLUTION\n",
        "### BEGIN HIDDEN TESTS\n",
        "from course_instructor.grading.hidden import hidden_check\n",
    ):
        copy = tmp_path / f"b{abs(hash(plant))}"
        shutil.copytree(bundle, copy)
        with open(copy / "course_lib" / "utils.py", "a") as f:
            f.write(plant)
        assert release.scan_for_leaks(copy), plant
    copy = tmp_path / "with_solutions"
    shutil.copytree(bundle, copy)
    (copy / "solutions").mkdir()
    (copy / "solutions" / "__init__.py").write_text("")
    assert release.scan_for_leaks(copy)
    copy = tmp_path / "with_grader"
    shutil.copytree(bundle, copy)
    (copy / "course_instructor" / "grading" / "hidden").mkdir(parents=True)
    (copy / "course_instructor" / "grading" / "hidden" / "kl.py").write_text("CASES = {}\n")
    assert any("instructor-only folder" in p for p in release.scan_for_leaks(copy))


def test_released_notebooks_keep_grading_metadata(built):
    _, ex, _ = built
    for nb_path in ex.glob("*.ipynb"):
        nb = nbformat.read(str(nb_path), as_version=4)
        tests = [
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
        ]
        for c in tests:
            assert c.metadata["nbgrader"]["locked"] and c.metadata["nbgrader"]["grade"]
            assert "check(" in c.source and "hidden_check" not in c.source


def _setup_sh_kernel(setup: Path) -> tuple[str, str]:
    """(name, display name) of the Jupyter kernel that `setup` (a setup.sh) registers."""
    import shlex

    line = next(ln for ln in setup.read_text().splitlines() if "ipykernel install" in ln)
    words = shlex.split(line.split(">")[0])
    return words[words.index("--name") + 1], words[words.index("--display-name") + 1]


def test_every_notebook_names_the_kernel_setup_sh_registers(built):
    """notebooks/, exercises/ and a release's notebooks (and the jupytext sources) all name the
    kernel setup.sh registers, so Jupyter opens each of them on the course's venv."""
    from course_instructor import nbbuild

    info, ex, src = built
    name, display = _setup_sh_kernel(ROOT / "setup.sh")
    assert (name, display) == (nbbuild.KERNEL_NAME, nbbuild.KERNEL_DISPLAY_NAME)
    assert _setup_sh_kernel(Path(info["bundle"]) / "setup.sh") == (name, display)
    folders = [ROOT / "notebooks", ROOT / "exercises", ex, Path(info["bundle"]) / "exercises"]
    paths = [p for d in folders for p in sorted(d.glob("[0-9][0-9]_*.ipynb"))]
    assert len(paths) >= 4 * len(nbbuild.sources()) > 0
    for p in paths:
        spec = nbformat.read(str(p), as_version=4).metadata.get("kernelspec", {})
        assert (spec.get("name"), spec.get("display_name")) == (name, display), p
    for p in nbbuild.sources():
        assert f"#     name: {name}\n" in p.read_text() and f"display_name: {display}\n" in p.read_text(), p


def test_plain_nbgrader_runs_the_graders_python_not_the_students_kernel(tmp_path):
    """nbgrader's autograde gives a submission the source notebook's kernelspec ("rl-course"), which
    a grading machine need not have: the course's nbgrader configuration names the kernel itself."""
    from course_instructor import release

    assert release.nbgrader_config(tmp_path).Execute.kernel_name == "python3"
    assert release.nbgrader_config(tmp_path, kernel_name="k").Execute.kernel_name == "k"


def test_public_tests_do_not_need_solutions():
    from course_instructor import release

    for p in release.public_tests():
        text = p.read_text()
        if p.name != "conftest.py":
            assert "solutions" not in text and "run_notebook" not in text, p


def test_exercises_folder_is_up_to_date():
    """exercises/ must be what `course release` generates from notebooks/ (run it after editing
    a notebook)."""
    from course_instructor import release

    if not release.source_notebooks():
        pytest.skip("no unit notebooks yet")
    problems = release.stale_notebooks()
    assert problems == [], f"exercises/ is stale ({problems}): run `course release`"


def test_nbgrader_config_works_with_plain_nbgrader(tmp_path):
    """`nbgrader generate_assignment exercises` from the repository root uses nbgrader_config.py."""
    env = dict(
        os.environ,
        COURSE_NBGRADER_ROOT=str(tmp_path / "nbroot"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    src = ROOT / "notebooks"
    if not list(src.glob("[0-9][0-9]_*.ipynb")):
        pytest.skip("no unit notebooks yet")
    r = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "exercises", "--force"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = {p.name for p in (tmp_path / "nbroot" / "release" / "exercises").glob("*.ipynb")}
    assert out == {p.name for p in src.glob("[0-9][0-9]_*.ipynb")}


def test_student_copy_has_validate_settings(built):
    """The student copy's nbgrader_config.py (read by JupyterLab's Validate button) loads on its own
    (no instructor code) and waits for a busy laptop's outputs longer than nbgrader's 4 s default."""
    from traitlets.config.loader import PyFileConfigLoader

    bundle = Path(built[0]["bundle"])
    config = PyFileConfigLoader("nbgrader_config.py", path=str(bundle)).load_config()
    assert config.Execute.iopub_timeout >= 30 and config.Execute.timeout >= 120, config
    assert "course_instructor" not in (bundle / "nbgrader_config.py").read_text()


@pytest.mark.slow
def test_first_cell_sets_up_course_lib_from_exercises(built):
    """Run a released notebook's set-up cell from <bundle>/exercises: course_lib must come from
    the bundle (not from the instructor repository) and the visible checks must be importable."""
    from course_instructor.execute import execute_notebook

    info, _, _ = built
    bundle = Path(info["bundle"])
    nb_path = sorted((bundle / "exercises").glob("*.ipynb"))[0]
    nb = nbformat.read(str(nb_path), as_version=4)
    probe = nbformat.v4.new_notebook()
    probe.cells = [
        nb.cells[0],
        nbformat.v4.new_code_cell(
            "import os, course_lib, course_lib.checks\nprint('LIB', course_lib.__file__)\nprint('CWD', os.getcwd())\n"
            "print('FAST', FAST)\nimport importlib.util\nprint('SOL', importlib.util.find_spec('solutions') is not None "
            "and 'site' not in str(importlib.util.find_spec('solutions').origin))"
        ),
    ]
    probe_path = bundle / "exercises" / "_probe.ipynb"
    nbformat.write(probe, str(probe_path))
    try:
        executed, _ = execute_notebook(probe_path, solutions=False, cwd=bundle / "exercises", timeout=300)
    finally:
        probe_path.unlink()
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"LIB {bundle / 'course_lib' / '__init__.py'}" in text, text
    assert f"CWD {bundle}" in text and "FAST False" in text


# --- a syllabus subset: course release --units ----------------------------------------------------
def test_subset_names_the_missing_units_and_who_needs_them():
    from course_instructor import release

    assert release.parse_units("6, 1,02,1") == ["01", "02", "06"]
    with pytest.raises(ValueError, match="no unit '42'"):
        release.parse_units("01,42")
    problems = release.subset_problems(["01", "02", "06"])
    assert len(problems) == 1 and problems[0].startswith("unit 03 (03_sft): 3.2 masked_mean")
    assert "6.2 grpo_loss" in problems[0] and "notebook 06_grpo" in problems[0]
    assert release.subset_problems(["01", "02", "03", "06"]) == []
    # 05's PPO trainer runs the student's kl_penalized_rewards: found through the notebook's imports
    assert "2.4 kl_penalized_rewards (needed by notebook 05_ppo)" in " ".join(release.subset_problems(["05"]))
    assert release.notebook_uses(release.REPO / "notebooks" / "07_dpo.ipynb") >= {"preference_accuracy"}


def test_subset_release_exit_2_or_only_those_notebooks(tmp_path, capsys):
    from course_instructor import release

    assert release.main(["--units", "01,02,06", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "add these units" in err and "unit 03 (03_sft)" in err and "masked_mean" in err
    assert not (tmp_path / "bad").exists()
    assert release.main(["--units", "1,2", "--out", str(tmp_path / "ok")]) == 0
    bundle = tmp_path / "ok" / "rl-course"
    assert sorted(p.name for p in (bundle / "exercises").glob("*.ipynb")) == [
        "01_reward_functions.ipynb",
        "02_kl_penalties.ipynb",
    ]
    assert (tmp_path / "ok" / "exercises-subset").is_dir()  # exercises/ of the repository untouched
    assert release.scan_for_leaks(bundle) == []
