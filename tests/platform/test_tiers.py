"""The test tiers (tests/conftest.py): every test in exactly one tier, a bare `pytest` runs the fast
tier in the instructor repository and everything in the student copy, and the suite's files live
in the folders the tiers and docs/instructors.md name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"exercises", "trainers", "notebooks", "grading", "platform"}

PYPROJECT = """[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers"
markers = ["fast: f", "standard: s", "slow: s", "notebook: n"]
"""
FILES = {
    "tests/exercises/test_contract.py": "def test_contract():\n    pass\n",
    "tests/grading/test_batch.py": (
        "import pytest\n\ndef test_plain():\n    pass\n\n@pytest.mark.slow\ndef test_batch():\n    pass\n"
    ),
    "tests/notebooks/test_unit.py": "import pytest\n\n@pytest.mark.notebook\ndef test_nb():\n    pass\n",
}


def _course(tmp_path: Path, instructor: bool, files: dict[str, str] = FILES) -> Path:
    """A miniature course: the real tests/conftest.py and one test per tier."""
    root = tmp_path / "course"
    (root / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", root / "tests" / "conftest.py")
    (root / "pyproject.toml").write_text(PYPROJECT)
    if instructor:
        (root / "course_instructor").mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _selected(r: subprocess.CompletedProcess) -> set[str]:
    return {line.split("::")[1] for line in r.stdout.splitlines() if "::" in line}


def test_a_bare_run_is_the_fast_tier_and_says_how_to_run_the_rest(tmp_path):
    root = _course(tmp_path, instructor=True)
    r = _pytest(root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 3 deselected" in r.stdout, r.stdout
    assert "ran the fast tier only (1 tests). The rest (1 standard, 1 slow, 1 notebook)" in r.stdout
    assert 'pytest -m "not fast"' in r.stdout and "bash setup.sh --test" in r.stdout
    # a path, -m or -k selects as usual
    assert _selected(_pytest(root, "--co", "tests/grading")) == {"test_plain", "test_batch"}
    assert _selected(_pytest(root, "--co", "-k", "nb")) == {"test_nb"}


def test_every_test_is_in_exactly_one_tier(tmp_path):
    root = _course(tmp_path, instructor=True)
    tiers = {t: _selected(_pytest(root, "--co", "-m", t)) for t in ("fast", "standard", "slow", "notebook")}
    assert tiers == {
        "fast": {"test_contract"},
        "standard": {"test_plain"},
        "slow": {"test_batch"},
        "notebook": {"test_nb"},
    }
    assert _selected(_pytest(root, "--co", "-m", "not fast")) == {"test_plain", "test_batch", "test_nb"}


def test_a_test_marked_with_two_tiers_is_refused_by_name(tmp_path):
    both = "import pytest\n\n@pytest.mark.slow\n@pytest.mark.notebook\ndef test_both():\n    pass\n"
    root = _course(tmp_path, instructor=True, files={**FILES, "tests/notebooks/test_both.py": both})
    r = _pytest(root, "-m", "notebook")
    assert r.returncode != 0
    assert "test_both.py::test_both is marked both notebook and slow" in r.stdout + r.stderr


def test_the_student_copy_runs_every_test_it_ships(tmp_path):
    root = _course(tmp_path, instructor=False)
    r = _pytest(root)
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout + r.stderr
    assert "fast tier only" not in r.stdout


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_the_suite_lives_in_the_tier_folders(folder):
    assert not sorted((ROOT / "tests").glob("test_*.py")), "put a test file in one of the folders"
    assert {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"} == (
        FOLDERS | {"fixtures", "snapshots"}
    )
    assert sorted((ROOT / "tests" / folder).glob("test_*.py")), folder


def test_two_workers_keep_the_notebook_chain_and_a_files_tests_together(tmp_path):
    """`setup.sh --test` runs the slower tiers with `-n 2`: the notebook tests on one worker (later
    units load earlier units' checkpoints), a file's tests on one worker."""
    files = {
        **FILES,
        "tests/notebooks/test_unit2.py": "import pytest\n\n@pytest.mark.notebook\ndef test_nb2():\n    pass\n",
        "tests/trainers/test_runs.py": "def test_run_a():\n    pass\n\ndef test_run_b():\n    pass\n",
    }
    root = _course(tmp_path, instructor=True, files=files)
    r = _pytest(root, "-m", "not fast", "-n", "2", "-vv")
    assert r.returncode == 0, r.stdout + r.stderr
    worker = {
        line.split("::")[-1].strip(): line.split("[gw")[1][0]
        for line in r.stdout.splitlines()
        if "PASSED" in line and "[gw" in line
    }
    assert set(worker) == {"test_plain", "test_batch", "test_nb", "test_nb2", "test_run_a", "test_run_b"}, (
        r.stdout
    )
    assert worker["test_nb"] == worker["test_nb2"], r.stdout
    assert worker["test_plain"] == worker["test_batch"] and worker["test_run_a"] == worker["test_run_b"], (
        r.stdout
    )
    assert len(set(worker.values())) == 2, r.stdout  # both workers had work


FIXTURES_OF_EVERY_TEST = """
import json, sys, pytest
class Record:
    def pytest_collection_finish(self, session):
        print("FIXTURES", json.dumps({i.nodeid: list(i.fixturenames) for i in session.items}))
pytest.main(["--co", "-q", "-p", "no:cacheprovider", "-m", "not fast", "tests"], plugins=[Record()])
"""


def test_the_worker_groups_match_the_fixtures_the_tests_share():
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    r = subprocess.run(
        [sys.executable, "-c", FIXTURES_OF_EVERY_TEST], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    line = next((x for x in r.stdout.splitlines() if x.startswith("FIXTURES ")), None)
    assert line, r.stdout[-2000:] + r.stderr[-2000:]
    fixtures = __import__("json").loads(line[len("FIXTURES ") :])
    for nodeid, names in fixtures.items():
        group = conftest.worker_group(nodeid)
        if "run_notebook" in names:
            assert group == "notebooks", f"{nodeid} executes a notebook: add its file to NOTEBOOK_CHAIN"
        if "nbgrader_batch" in names:
            assert group == "nbgrader_batch", f"{nodeid} uses nbgrader_batch: add it to NBGRADER_BATCH_FILES"
    for path in (*conftest.NBGRADER_BATCH_FILES, *conftest.PER_TEST_FILES):
        assert (ROOT / path).is_file(), f"tests/conftest.py names {path}, which does not exist"
