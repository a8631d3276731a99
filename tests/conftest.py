"""Shared fixtures and the test tiers. Tests never need the network; the gpu path runs against
local stand-ins.

Tiers: every test is in exactly one, set here at collection (registered in pyproject.toml):
  notebook  marked @pytest.mark.notebook: executes a whole notebook (minutes each)
  slow      marked @pytest.mark.slow (and not notebook): an nbgrader batch, a venv, a browser, ...
  fast      the rest of tests/exercises/: the exercise contract (about two minutes in all)
  standard  the rest of every other folder
In the instructor repository a bare `pytest` runs the fast tier only and says how to run the
rest; any path, -m or -k on the command line selects as usual (`pytest -m "not fast"`, `pytest
tests/grading`). `bash setup.sh --test` runs lint, then the fast tier, then the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("fast", "standard", "slow", "notebook")
FAST_FOLDERS = ("exercises",)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("COURSE_LIB_SOLUTIONS", None)
os.environ.pop("COURSE_PROFILE_OVERRIDES", None)
os.environ.setdefault("COURSE_PROFILE", "tiny")


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the shipped tiny model, on CPU, eval mode."""
    from course_lib.core.models import load_policy

    model, tok = load_policy(
        profile=__import__("course_lib.core.config", fromlist=["TINY"]).TINY, device="cpu"
    )
    return model.eval(), tok


@pytest.fixture(scope="session")
def gpu_standins(tmp_path_factory):
    """Path of a directory with gpu-profile stand-ins; its overrides.json feeds
    COURSE_PROFILE=gpu COURSE_PROFILE_OVERRIDES=<dir>/overrides.json."""
    from course_instructor.standins import make_gpu_standins

    d = tmp_path_factory.mktemp("gpu_standins")
    make_gpu_standins(d)
    return d


@pytest.fixture
def gpu_profile(gpu_standins, monkeypatch):
    """The gpu profile pointed at the stand-ins, for in-process tests."""
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_PROFILE_OVERRIDES", str(gpu_standins / "overrides.json"))
    from course_lib.core.config import get_profile

    return get_profile()


@pytest.fixture
def solutions_on():
    """Use the solutions for the duration of a test."""
    import course_lib

    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)


@pytest.fixture(autouse=True)
def _exercise_tests_use_the_solutions_in_the_instructor_repo(request):
    """tests/exercises/test_exercises.py checks the student's own functions. In the instructor repository
    (where the solutions exist) it checks the solutions, so the suite stays green there; in the
    student release it checks the student's code."""
    import course_lib

    if request.module.__name__.rpartition(".")[2] != "test_exercises" or not course_lib.solutions_available():
        yield
        return
    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)


class NotebookRun:
    """One headless execution of a source notebook with the solutions."""

    def __init__(self, path, out_dir, nb, seconds):
        import json

        self.path, self.dir, self.nb, self.seconds = path, out_dir, nb, seconds
        metrics = sorted(out_dir.glob("metrics_*.json"))
        self.metrics = json.loads(metrics[0].read_text()) if metrics else {}
        self.figures = (
            sorted(p.name for p in (out_dir / "figures").glob("*.png"))
            if (out_dir / "figures").exists()
            else []
        )

    def outputs_text(self) -> str:
        """All stream/text outputs of the executed notebook, joined (for asserting prints)."""
        parts = []
        for c in self.nb.cells:
            for o in c.get("outputs", []):
                if o.get("output_type") == "stream":
                    parts.append(o.get("text", ""))
                elif "data" in o and "text/plain" in o["data"]:
                    parts.append(o["data"]["text/plain"])
        return "\n".join(parts)


def repeated_images(nb) -> list[str]:
    """Cells of an executed notebook that show the same image more than once, as "cell N: k copies"
    (e.g. a figure shown by plt.show() and again as the value of the cell's last expression)."""
    found = []
    for i, c in enumerate(nb.cells):
        images = [
            o["data"][kind]
            for o in c.get("outputs", [])
            for kind in ("image/png", "image/svg+xml", "image/jpeg")
            if kind in o.get("data", {})
        ]
        found += [f"cell {i}: {images.count(x)} copies" for x in dict.fromkeys(images) if images.count(x) > 1]
    return found


@pytest.fixture(scope="session")
def session_checkpoints(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory, session_checkpoints, gpu_standins):
    """run_notebook("05") executes notebooks/05_*.ipynb once per session (solutions, tiny
    profile) and returns a NotebookRun (metrics from report_metrics, saved figure names,
    seconds); it fails if a cell shows the same image twice. run_notebook("05", profile="gpu")
    runs the gpu code path on local stand-ins. All runs of a session share one checkpoint
    directory, so later units find earlier ones."""
    from course_instructor.execute import execute_notebook

    root = TESTS.parent
    cache: dict = {}

    def _run(unit: str, profile: str = "tiny", preset: str = "quick", timeout: int = 900):
        key = (unit, profile, preset)
        if key not in cache:
            matches = sorted((root / "notebooks").glob(f"{unit}_*.ipynb"))
            assert matches, f"no notebook notebooks/{unit}_*.ipynb"
            out = tmp_path_factory.mktemp(f"nb{unit}_{profile}")
            env = {
                "COURSE_RESULTS_DIR": str(out),
                "COURSE_PROFILE": profile,
                "COURSE_PRESET": preset,
                "COURSE_CHECKPOINTS": str(session_checkpoints if profile == "tiny" else out / "ckpt"),
            }
            if profile == "gpu":
                env["COURSE_PROFILE_OVERRIDES"] = str(gpu_standins / "overrides.json")
            nb, secs = execute_notebook(
                matches[0], out / "executed.ipynb", solutions=True, env=env, timeout=timeout
            )
            cache[key] = NotebookRun(matches[0], out, nb, secs)
            repeated = repeated_images(nb)
            assert not repeated, f"{matches[0].name} shows the same figure twice in a cell: {repeated}"
        return cache[key]

    return _run


@pytest.fixture(scope="session")
def fixture_course(tmp_path_factory):
    """(source dir with the fixture notebook tests/fixtures/02_fixture.py, its released version):
    built once per session (a release takes seconds) and shared by the grading tests, which only
    read it (a test that changes the source copies it first)."""
    import sys

    sys.path.insert(0, str(TESTS / "fixtures"))
    import fixture_notebook

    from course_instructor import release

    d = tmp_path_factory.mktemp("fixture_course")
    fixture_notebook.build(d / "src" / "02_fixture.ipynb")
    return d / "src", release.generate(d / "ex", d / "src")


@pytest.fixture(scope="session")
def nbgrader_batch(tmp_path_factory, fixture_course):
    """ONE `course autograde` batch through nbgrader (notebook kernels, ~15 s per submission) on
    the fixture notebook, shared by the tests that need notebook kernels: test_autograde's
    submissions (solved, vandal, hang_at_import) and test_attacks' kernel attacker (graded after
    `solved`, whose files it attacks). ``{"out", "results": {student_id: result}, "before",
    "after", "host_before", "host_after"}``; before/after are the instructor files' hashes around
    the batch, host_* the content and mode of the files outside the batch that it attacks."""
    import sys

    sys.path.insert(0, str(TESTS / "fixtures"))
    sys.path.insert(0, str(TESTS / "grading"))
    import submissions as S
    import test_attacks
    import test_autograde

    from course_instructor.grading import autograde

    src, released = fixture_course
    d = tmp_path_factory.mktemp("nbgrader_batch")
    subs, out = d / "subs", d / "out"
    test_autograde.nbgrader_submissions(subs, released)
    victims = test_attacks.host_victims(d / "host")
    test_attacks.kernel_attacker(subs, released, out, victim="solved", host=d / "host")
    before = S.instructor_hashes()
    results = autograde.autograde(
        subs,
        out,
        source_dir=src,
        cell_timeout=5,  # hang_at_import waits it out in its four course_lib cells (others: < 1 s)
        notebook_timeout=60,
        exercise_timeout=8,
        sandbox_timeout=40,
    )
    return {
        "out": out,
        "results": {r["student_id"]: r for r in results},
        "before": before,
        "after": S.instructor_hashes(),
        "host_before": victims,
        "host_after": S.file_states(victims),
    }


_COUNTS = pytest.StashKey[dict]()


def tier(item: pytest.Item) -> str:
    """The one tier of a collected test (see the module docstring)."""
    marked = [t for t in ("notebook", "slow") if item.get_closest_marker(t)]
    if len(marked) == 2:
        raise pytest.UsageError(f"{item.nodeid} is marked both notebook and slow: keep one (its tier)")
    if marked:
        return marked[0]
    path = Path(str(item.path)).resolve()
    fast = path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in FAST_FOLDERS
    return "fast" if fast else "standard"


# Which tests share one pytest-xdist worker (`pytest -n 2`, as `setup.sh --test` runs the slower
# tiers; the scheduler below): the notebooks, in unit order, because each finds the checkpoints of
# the units before it in the session's checkpoint folder; the files that share the one nbgrader
# batch (the session fixture `nbgrader_batch`, minutes); the independent minute-long runs of
# PER_TEST_FILES one by one; any other file as a whole, so that its module fixtures are built once.
# tests/platform/test_tiers.py checks these lists against the fixtures the tests use.
NOTEBOOK_CHAIN = "tests/notebooks/test_unit"
NBGRADER_BATCH_FILES = (
    "tests/grading/test_attacks.py",
    "tests/grading/test_autograde.py",
    "tests/grading/test_formgrader_browser.py",
)
PER_TEST_FILES = ("tests/trainers/test_seeds.py",)


def worker_group(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    if path.startswith(NOTEBOOK_CHAIN):
        return "notebooks"
    if path in NBGRADER_BATCH_FILES:
        return "nbgrader_batch"
    return nodeid if path in PER_TEST_FILES else path


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # the student copy runs without pytest-xdist
    pass
else:

    class WorkerGroups(LoadScopeScheduling):
        """xdist's scope scheduler (a whole group to one worker, the largest groups first) with
        :func:`worker_group` as the scope."""

        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        return WorkerGroups(config, log) if config.getvalue("dist") in ("load", "loadgroup") else None


def _bare_run(config: pytest.Config) -> bool:
    """`pytest` with no path, -m or -k, in the instructor repository (the student copy has no
    course_instructor/ and runs every test it ships)."""
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.markexpr
        and not config.option.keyword
        and (TESTS.parent / "course_instructor").is_dir()
    )


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers = {item.nodeid: tier(item) for item in items}
    for item in items:
        item.add_marker(tiers[item.nodeid])
    config.stash[_COUNTS] = {t: list(tiers.values()).count(t) for t in TIERS}
    if _bare_run(config):
        config.hook.pytest_deselected(items=[i for i in items if tiers[i.nodeid] != "fast"])
        items[:] = [i for i in items if tiers[i.nodeid] == "fast"]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if _bare_run(config) and _COUNTS in config.stash:
        counts = config.stash[_COUNTS]
        rest = ", ".join(f"{counts[t]} {t}" for t in TIERS[1:])
        terminalreporter.write_line(
            f"ran the fast tier only ({counts['fast']} tests). The rest ({rest}): "
            'pytest -m "not fast"; one tier: pytest -m slow; everything with lint: bash setup.sh --test'
        )
