"""Google Colab, simulated offline: the real first cell of a released notebook runs in a fresh venv
with a fake ``google.colab`` (Drive mounted to a temporary folder), Colab-like preinstalled
packages older than our pins, and either a local git repository as COURSE_REPO_URL or an uploaded
rl-course.zip. It must install only what Colab lacks, leave the preinstalled stack alone, let a
student's function pass its check, and submit the notebooks the student worked in."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("COURSE_WHEELHOUSE", Path.home() / ".cache" / "rl-course-wheels"))
# What Colab lacks (installed by the cell from the wheelhouse) and a Colab-like preinstalled stack
# older than the course's pins (the cell must keep it).
MISSING = {"trl": "1.16.0", "vaderSentiment": "3.3.2"}
PREINSTALLED = {"numpy": "2.3.5", "matplotlib": "3.10.8", "transformers": "5.22.2"}
HIDDEN = ("trl", "vaderSentiment", "nbgrader")

FAKE_COLAB = {
    "__init__.py": "",
    "drive.py": """
        import os
        def mount(mountpoint, force_remount=False):
            os.makedirs(os.environ["FAKE_DRIVE"] + "/MyDrive", exist_ok=True)
            if not os.path.islink(mountpoint):
                os.symlink(os.environ["FAKE_DRIVE"], mountpoint)
            print("Mounted at", mountpoint)
        """,
    "files.py": """
        import os, shutil
        def download(path):
            shutil.copy(path, os.environ["FAKE_DOWNLOADS"])
        """,
    "_message.py": """
        import json, os
        def blocking_request(request, timeout_sec=None):
            assert request == "get_ipynb", request
            with open(os.environ["FAKE_OPEN_NOTEBOOK"]) as f:
                return {"ipynb": json.load(f)}
        """,
}
RUNNER = """
import io, json, os, sys
import google.colab                     # imported at start-up on Colab: the first cell tests for it
from IPython.core.interactiveshell import InteractiveShell
# As a kernel's output stream: what a cell prints reaches the front end when the stream is flushed
# (after the cell, or by the cell itself), so a process killed inside a cell loses the rest.
sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(os.dup(1), "w"), 1 << 20), write_through=False)
InteractiveShell.enable_gui = lambda self, gui=None: None   # as ipykernel's shell does for `inline`
shell = InteractiveShell.instance()
for i, cell in enumerate(json.load(open(sys.argv[1]))):
    result = shell.run_cell(cell)
    sys.stdout.flush()
    if not result.success:
        err = result.error_in_exec or result.error_before_exec
        print(f"CELL {i} FAILED: {type(err).__name__}")
        sys.exit(3)
print("ALL CELLS RAN")
"""
VERSIONS = (
    "import importlib.metadata as m, json\n"
    "print('VERSIONS', json.dumps({p: [m.version(p), str(m.distribution(p).locate_file(''))] "
    f"for p in {sorted({**MISSING, **PREINSTALLED})!r}}}))"
)


@pytest.fixture(scope="module")
def wheels():
    """The wheelhouse (pip download once from the package registry; skip if that is impossible)."""
    want = {**MISSING, **PREINSTALLED}
    have = {p.name.split("-")[0].lower(): p for p in WHEELHOUSE.glob("*.whl")}
    if any(name.lower() not in have for name in want):
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(WHEELHOUSE),
                *[f"{k}=={v}" for k, v in want.items()],
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if r.returncode:
            pytest.skip(
                f"the simulated Colab needs wheels in {WHEELHOUSE} (pip download failed: {r.stderr[-300:]})"
            )
    return WHEELHOUSE


@pytest.fixture(scope="module")
def colab_stack(wheels, tmp_path_factory):
    """A folder of Colab-like preinstalled packages older than our pins (pip install --target)."""
    d = tmp_path_factory.mktemp("colab_stack")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(wheels),
            "--target",
            str(d),
            *[f"{k}=={v}" for k, v in PREINSTALLED.items()],
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return d


@pytest.fixture(scope="module")
def fake_colab(tmp_path_factory):
    d = tmp_path_factory.mktemp("fakecolab")
    pkg = d / "google" / "colab"  # google/ stays a namespace package (like protobuf's)
    pkg.mkdir(parents=True)
    for name, src in FAKE_COLAB.items():
        (pkg / name).write_text(textwrap.dedent(src))
    return d


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Two student bundles of the current exercises/: one with a git URL (a local repository made
    from it, as an instructor would publish it) and the plain one with rl-course.zip."""
    from course_instructor import release

    d = tmp_path_factory.mktemp("colab_release")
    remote = d / "published.git"
    url = f"file://{remote}"
    with_url = release.build_bundle(d / "with_url", ROOT / "exercises", repo_url=url)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(with_url)], check=True, timeout=60)
    subprocess.run([*git, "-C", str(with_url), "add", "-A"], check=True, timeout=60)
    subprocess.run([*git, "-C", str(with_url), "commit", "-q", "-m", "course"], check=True, timeout=60)
    subprocess.run(["git", "clone", "-q", "--bare", str(with_url), str(remote)], check=True, timeout=60)
    plain = release.build_bundle(d / "plain", ROOT / "exercises")
    return {"url": url, "with_url": with_url, "zip": plain.parent / "rl-course.zip", "plain": plain}


def student_rewards_py(bundle: Path) -> str:
    """The bundle's course_lib/rewards.py with format_reward implemented, as a student would."""
    from solutions import rewards as sol

    text = (bundle / "course_lib" / "rewards.py").read_text()
    start = text.index("def format_reward(")
    end = text.index("\ndef ", start + 1)
    return text[:start] + inspect.getsource(sol.format_reward) + "\n" + text[end:]


def worked_notebook(path: Path, marker: str) -> dict:
    """A released notebook as the student left it: outputs and a written answer."""
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    answer = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "markdown"
    )
    answer.source = marker
    return nb


def run_colab(
    tmp: Path, fake_colab: Path, stack: Path, first_cell: str, cells=(), drive_files=(), before=(), more=()
):
    """Run [*before, first cell, *cells] as a Colab kernel would: fresh venv, /content = tmp/content
    (the same `tmp` again: the runtime reconnected, with /content and the venv as they were).
    `more`: folders of packages preinstalled in front of `stack`."""
    from course_instructor.simenv import clean_env, make_env

    py = make_env(tmp / "venv", hide=HIDDEN, first=[*more, *([stack] if stack else [])])
    content, drive, downloads = tmp / "content", tmp / "drive_store", tmp / "downloads"
    for d in (content, drive / "MyDrive" / "Colab Notebooks", downloads):
        d.mkdir(parents=True, exist_ok=True)
    for name, nb in drive_files:
        nbformat.write(nb, str(drive / "MyDrive" / "Colab Notebooks" / name))
    (tmp / "cells.json").write_text(json.dumps([*before, first_cell, *cells, VERSIONS]))
    (tmp / "runner.py").write_text(RUNNER)
    env = clean_env(
        PYTHONPATH=str(fake_colab),
        FAKE_DRIVE=str(drive),
        FAKE_DOWNLOADS=str(downloads),
        FAKE_OPEN_NOTEBOOK=str(tmp / "open.ipynb"),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(WHEELHOUSE),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        MPLBACKEND="Agg",
        COURSE_PROFILE="tiny",
    )
    r = subprocess.run(
        [str(py), str(tmp / "runner.py"), str(tmp / "cells.json")],
        cwd=content,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = r.stdout + r.stderr
    versions = json.loads(out.split("VERSIONS ", 1)[1].splitlines()[0]) if "VERSIONS " in out else None
    return r.returncode, out, versions, tmp / "venv", downloads


def _first_cell(bundle: Path, unit: str = "01", drive: bool = False) -> str:
    nb = nbformat.read(str(next((bundle / "exercises").glob(f"{unit}_*.ipynb"))), as_version=4)
    src = nb.cells[0].source
    return src.replace("KEEP_WORK_ON_DRIVE = False", "KEEP_WORK_ON_DRIVE = True") if drive else src


def _check_installed_lightly(versions: dict, venv: Path):
    for pkg, version in PREINSTALLED.items():  # Colab's stack kept (inside the supported window)
        assert versions[pkg][0] == version, (pkg, versions[pkg])
    for pkg, version in MISSING.items():  # what Colab lacks, installed into the runtime
        assert versions[pkg][0] == version and str(venv) in versions[pkg][1], (pkg, versions[pkg])


@pytest.mark.slow
def test_colab_from_git_url_on_drive(tmp_path, fake_colab, colab_stack, releases):
    bundle = releases["with_url"]
    first = _first_cell(bundle, drive=True)
    assert f"COURSE_REPO_URL = {releases['url']!r}" in first
    ast.parse(first)  # pure Python: no `!` or `%` magics
    nbformat.write(
        worked_notebook(bundle / "exercises" / "01_reward_functions.ipynb", "MY ANSWER 01"),
        str(tmp_path / "open.ipynb"),
    )
    drive_copy = worked_notebook(bundle / "exercises" / "02_kl_penalties.ipynb", "MY ANSWER 02")
    edit = f"open('course_lib/rewards.py', 'w').write({student_rewards_py(bundle)!r})"
    rc, out, versions, venv, downloads = run_colab(
        tmp_path,
        fake_colab,
        colab_stack,
        first,
        [
            edit,
            "from course_lib.checks import check\ncheck('format_reward')",
            "from course_lib.submit import submit_from_colab\nsubmit_from_colab('jdoe')",
        ],
        drive_files=[("Copy of 02_kl_penalties.ipynb", drive_copy)],
    )
    assert rc == 0 and "ALL CELLS RAN" in out, out[-5000:]
    assert "format_reward: " in out and "visible checks passed" in out, out[-3000:]
    assert "device cpu · dtype float32" in out
    _check_installed_lightly(versions, venv)
    course = tmp_path / "drive_store" / "MyDrive" / "rl-course"  # on Drive: survives the runtime
    assert (course / "course_lib" / "rewards.py").read_text() == student_rewards_py(bundle)
    with zipfile.ZipFile(downloads / "submission-jdoe.zip") as z:
        names = set(z.namelist())
        assert {f"exercises/{p.name}" for p in (bundle / "exercises").glob("*.ipynb")} <= names
        assert "MY ANSWER 01" in z.read("exercises/01_reward_functions.ipynb").decode()  # the open notebook
        assert "MY ANSWER 02" in z.read("exercises/02_kl_penalties.ipynb").decode()  # the Drive copy
        assert "COURSE-SOLUTION-CANARY" in z.read("course_lib/rewards.py").decode()  # the student's code
        sources = json.loads(z.read("SUBMISSION.json"))["sources"]
    assert sources["02_kl_penalties.ipynb"].endswith("Colab Notebooks/Copy of 02_kl_penalties.ipynb")


@pytest.mark.slow
def test_colab_from_uploaded_zip(tmp_path, fake_colab, colab_stack, releases):
    bundle = releases["plain"]
    first = _first_cell(bundle)
    assert 'COURSE_REPO_URL = ""' in first
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "rl-course.zip").write_bytes(releases["zip"].read_bytes())
    nbformat.write(
        worked_notebook(bundle / "exercises" / "01_reward_functions.ipynb", "ZIP ANSWER"),
        str(tmp_path / "open.ipynb"),
    )
    rc, out, versions, venv, downloads = run_colab(
        tmp_path,
        fake_colab,
        colab_stack,
        first,
        [
            "import subprocess, sys\nr = subprocess.run([sys.executable, '-m', 'course_lib.cli', 'submit', "
            "'--student-id', 'zed'], capture_output=True, text=True)\n"
            "print(r.stdout, r.stderr)\nassert r.returncode == 0",
            "import course_lib.submit as s\ns.submit_from_colab('zed')",
        ],
    )
    assert rc == 0 and "ALL CELLS RAN" in out, out[-5000:]
    _check_installed_lightly(versions, venv)
    course = tmp_path / "content" / "rl-course"
    assert (course / "course_lib" / "kl.py").exists()
    with zipfile.ZipFile(downloads / "submission-zed.zip") as z:
        assert "ZIP ANSWER" in z.read("exercises/01_reward_functions.ipynb").decode()
    assert "is not the zip" not in out  # nothing newer to notice

    # The instructor's update: a different zip uploaded later (as a browser names a second download).
    # The runtime reconnects; the student had edited rewards.py. The new zip is noticed and unpacked,
    # except rewards.py, whose new version lands next to it.
    mine = student_rewards_py(bundle)
    (course / "course_lib" / "rewards.py").write_text(mine)
    newer = tmp_path / "content" / "rl-course (1).zip"
    with zipfile.ZipFile(releases["zip"]) as old, zipfile.ZipFile(newer, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename in ("rl-course/README.md", "rl-course/course_lib/rewards.py"):
                data += b"\n# updated by the instructor\n"
            new.writestr(item, data)
    os.utime(newer, (2e9, 2e9))
    rc, out, *_ = run_colab(tmp_path, fake_colab, colab_stack, first, ["print('NEXT CELL RAN')"])
    assert rc == 0 and "NEXT CELL RAN" in out, out[-5000:]
    assert f"{newer} is not the zip {course} was unpacked from: unpacked it there" in out, out[-3000:]
    assert "kept your changed files course_lib/rewards.py" in out and "NAME.new" in out
    assert (course / "course_lib" / "rewards.py").read_text() == mine  # the student's work stays
    assert (course / "course_lib" / "rewards.py.new").read_text().endswith("# updated by the instructor\n")
    assert (course / "README.md").read_text().endswith("# updated by the instructor\n")  # the update is in
    rc, out, *_ = run_colab(tmp_path, fake_colab, colab_stack, first, ["print('NEXT CELL RAN')"])
    assert rc == 0 and "is not the zip" not in out, out[-3000:]  # the same zip again: nothing to do


def _fake_dist(folder: Path, name: str, version: str, requires=(), module: str | None = None) -> None:
    """A preinstalled distribution (its dist-info, and an importable module) as Colab's image has."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    (info / "METADATA").write_text(meta + "".join(f"Requires-Dist: {r}\n" for r in requires))
    files = [f"{info.name}/METADATA"]
    if module:
        (folder / module).mkdir()
        (folder / module / "__init__.py").write_text("")
        (info / "top_level.txt").write_text(module + "\n")
        files.append(f"{module}/__init__.py")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


@pytest.mark.slow
def test_colab_shows_pip_warnings_and_the_restart_message(tmp_path, fake_colab, colab_stack, releases):
    """pip exits 0 but warns (a preinstalled package conflicts with what it installed): the cell
    shows the warning. pip replaces a package that is already imported: the cell says to run it
    again after the restart, and that line reaches the output before the process is killed."""
    old = tmp_path / "colab_extras"
    _fake_dist(old, "vaderSentiment", "3.3.1", module="vaderSentiment")  # older than our pin
    _fake_dist(old, "colab-tool", "1.0", requires=["trl<1"])  # conflicts with the trl we install
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "rl-course.zip").write_bytes(releases["zip"].read_bytes())
    rc, out, _, _, _ = run_colab(
        tmp_path,
        fake_colab,
        colab_stack,
        _first_cell(releases["plain"]),
        ["print('NEXT CELL RAN')"],
        before=["import vaderSentiment"],
        more=[old],
    )
    assert rc == -9 and "NEXT CELL RAN" not in out, out[-3000:]  # the runtime restarts
    assert "pip installed the course's packages and said:" in out and "colab-tool" in out, out[-3000:]
    assert "already imported here (vaderSentiment): restarting the runtime. When it reconnects, run " in out


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bad_url", "no_zip"])
def test_colab_first_cell_fails_loudly(tmp_path, fake_colab, releases, case):
    """A failed clone (or a missing zip) stops the first cell with its own message, not later
    with ModuleNotFoundError; nothing is installed."""
    first = _first_cell(releases["plain"])
    if case == "bad_url":
        first = first.replace('COURSE_REPO_URL = ""', f"COURSE_REPO_URL = 'file://{tmp_path}/nowhere.git'")
    rc, out, _, _, _ = run_colab(tmp_path, fake_colab, None, first, ["print('NEXT CELL RAN')"])
    assert rc == 3 and "CELL 0 FAILED: RuntimeError" in out, out[-3000:]
    assert "ModuleNotFoundError" not in out and "NEXT CELL RAN" not in out
    expected = "git clone file://" if case == "bad_url" else "no course to install"
    assert f"course set-up failed: {expected}" in out and "What to do:" in out, out[-3000:]
    if case == "bad_url":
        assert "does not exist" in out or "not found" in out.lower() or "fatal:" in out  # git's own reason


def test_colab_extra_has_upper_bounds_at_the_tested_versions():
    """Every package the first cell installs has an upper bound; datasets and accelerate are capped
    at the versions this environment tests (a newer major release never reaches Colab untried)."""
    import tomllib

    from packaging.requirements import Requirement

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["colab"]
    reqs = {Requirement(r).name.lower(): Requirement(r).specifier for r in extra}
    for name, spec in reqs.items():
        assert any(s.operator in ("==", "<", "<=", "~=") for s in spec), f"{name} has no upper bound"
    for name in ("datasets", "accelerate"):
        tested = importlib.metadata.version(name)
        assert reqs[name].contains(tested) and {s.version for s in reqs[name] if s.operator == "<="} == {
            tested
        }, (name, str(reqs[name]), tested)


def test_colab_extra_is_what_the_first_cell_installs():
    """The cell installs pyproject's `colab` extra; it must not pull the Jupyter/grading stack."""
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["colab"]
    names = {r.split("=")[0].split(">")[0].split("<")[0].lower() for r in extra}
    assert {"trl", "vadersentiment"} <= names
    assert not names & {
        "torch",
        "numpy",
        "matplotlib",
        "ipykernel",
        "jupyterlab",
        "nbgrader",
        "nbconvert",
        "pytest",
    }
    assert importlib.metadata.version("trl") in " ".join(extra)


# --- fast: what `course release --repo-url` writes, and how `course submit` picks notebooks --------
def test_release_repo_url_goes_into_first_cells_and_badges(tmp_path):
    from nbgrader.utils import compute_checksum

    from course_instructor import release

    url = "https://github.com/OWNER/REPO.git"
    bundle = release.build_bundle(tmp_path / "with", ROOT / "exercises", repo_url=url, branch="fall")
    notebooks = sorted((bundle / "exercises").glob("*.ipynb"))
    assert len(notebooks) == len(list((ROOT / "exercises").glob("*.ipynb"))) > 0
    readme = (bundle / "README.md").read_text()
    for nb_path in notebooks:
        cell = nbformat.read(str(nb_path), as_version=4).cells[0]
        assert f"COURSE_REPO_URL = {url!r}" in cell.source, nb_path.name
        assert cell.metadata.nbgrader["checksum"] == compute_checksum(cell)  # Validate stays quiet
        assert (
            f"https://colab.research.google.com/github/OWNER/REPO/blob/fall/exercises/{nb_path.name}"
        ) in readme
    with zipfile.ZipFile(bundle.parent / "rl-course.zip") as z:  # the zip carries the same cells
        assert url in z.read(f"rl-course/exercises/{notebooks[0].name}").decode()
    plain = release.build_bundle(tmp_path / "plain", ROOT / "exercises")
    text = (plain / "README.md").read_text()
    assert "colab-badge" not in text and "rl-course.zip" in text
    assert (
        'COURSE_REPO_URL = ""'
        in nbformat.read(str(next((plain / "exercises").glob("*.ipynb"))), 4).cells[0].source
    )


def test_release_rejects_a_bad_repo_url(tmp_path, capsys):
    from course_instructor import first_cell, release

    with pytest.raises(ValueError, match="not a git address"):
        first_cell.check_repo_url("github.com/x/y; rm -rf ~")
    assert release.main(["--repo-url", "not a url", "--out", str(tmp_path)]) == 2
    assert "not a git address" in capsys.readouterr().err
    assert first_cell.colab_badge_url("git@gitlab.com:a/b.git", "01_x.ipynb") is None  # Colab: GitHub only


def test_no_made_up_address_anywhere():
    """The course never names a repository that does not exist."""
    r = subprocess.run(
        [
            "git",
            "grep",
            "-n",
            "-I",
            "rl-posttraining-course/course",
            "--",
            ".",
            ":!tests/platform/test_colab.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.stdout == "", r.stdout
    for nb in sorted((ROOT / "exercises").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert "rl-posttraining-course/course" not in nb.read_text(), nb


def _course_folder(root: Path, units=("01", "02")) -> Path:
    (root / "exercises").mkdir(parents=True)
    (root / "course_lib").mkdir()
    (root / "course_lib" / "kl.py").write_text("# mine\n")
    for u in units:
        nb = nbformat.v4.new_notebook()
        setup = nbformat.v4.new_code_cell("import course_lib")
        setup.metadata["nbgrader"] = {"grade_id": f"setup_{u}", "locked": True}
        answer = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE")
        answer.metadata["nbgrader"] = {"grade_id": f"q_{u}", "solution": True, "grade": True}
        nb.cells = [setup, answer]
        nbformat.write(nb, str(root / "exercises" / f"{u}_unit.ipynb"))
    return root


def test_submit_takes_the_notebook_the_student_worked_in(tmp_path):
    from course_lib import submit

    root = _course_folder(tmp_path / "course")
    copies = tmp_path / "Colab Notebooks"
    copies.mkdir()
    worked = nbformat.read(str(root / "exercises" / "01_unit.ipynb"), 4)
    worked.cells[1].source = "My answer."
    nbformat.write(worked, str(copies / "Copy of 01_unit.ipynb"))
    blank_but_newer = nbformat.read(str(root / "exercises" / "02_unit.ipynb"), 4)
    nbformat.write(blank_but_newer, str(copies / "02_unit (1).ipynb"))
    os.utime(copies / "02_unit (1).ipynb", (2e9, 2e9))
    (copies / "unrelated.ipynb").write_text("not json")
    chosen = submit.choose_notebooks(root, [copies])
    assert chosen == {
        "01_unit.ipynb": copies / "Copy of 01_unit.ipynb",  # worked in beats blank
        "02_unit.ipynb": copies / "02_unit (1).ipynb",
    }  # both blank: the newest
    assert submit.main(["--root", str(root), "--student-id", "s1", "--notebooks", str(copies)]) == 0
    with zipfile.ZipFile(root / "submission-s1.zip") as z:
        assert "My answer." in z.read("exercises/01_unit.ipynb").decode()
        assert z.read("course_lib/kl.py") == b"# mine\n"
    assert submit.main(["--root", str(root), "--notebooks", str(tmp_path / "nope")]) == 2


def test_save_open_notebook_needs_a_course_notebook(tmp_path, monkeypatch, fake_colab):
    from course_lib import submit

    root = _course_folder(tmp_path / "course")
    monkeypatch.syspath_prepend(str(fake_colab))
    for mod in [m for m in sys.modules if m.startswith("google.colab")]:
        monkeypatch.delitem(sys.modules, mod)
    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(other, str(tmp_path / "open.ipynb"))
    monkeypatch.setenv("FAKE_OPEN_NOTEBOOK", str(tmp_path / "open.ipynb"))
    with pytest.raises(ValueError, match="not one of the course's"):
        submit.save_open_notebook(root)
    mine = nbformat.read(str(root / "exercises" / "02_unit.ipynb"), 4)
    mine.cells[1].source = "Answer two."
    nbformat.write(mine, str(tmp_path / "open.ipynb"))
    assert submit.save_open_notebook(root) == root / "exercises" / "02_unit.ipynb"
    assert "Answer two." in (root / "exercises" / "02_unit.ipynb").read_text()
