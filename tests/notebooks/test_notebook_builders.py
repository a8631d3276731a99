"""Every source notebook notebooks/NN_name.ipynb is what its jupytext source NN_name.py builds
(course_instructor.nbbuild), every unit follows the cell conventions, and the tags of a percent
source become exactly the nbgrader cells the grader expects."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from course_instructor import nbbuild
from course_lib.core import registry as exercises

ROOT = Path(__file__).resolve().parents[2]
SOURCES = nbbuild.sources(ROOT / "notebooks")


def test_every_notebook_has_a_percent_source():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks and notebooks == {s.stem for s in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_is_up_to_date_with_its_source(source):
    assert nbbuild.stale([source]) == [], "run: course build-notebooks"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_source_opens_as_a_percent_notebook(source):
    nb = jupytext.read(source)  # the format comes from the header, as in Jupyter
    assert nb.metadata["jupytext"]["formats"] == "py:percent"
    assert nb.metadata["kernelspec"]["name"] == nbbuild.KERNEL_NAME  # the kernel setup.sh registers
    assert "jupytext_version:" not in source.read_text()  # re-saving with another jupytext: no churn


# --- conventions every unit notebook follows (one check for all units) --------------------------
def _unit(source: Path) -> str:
    return source.stem[:2]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_follows_the_conventions(source):
    unit = _unit(source)
    nb = nbformat.read(str(source.with_suffix(".ipynb")), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids[0] == f"setup_{unit}"
    for ex in exercises.for_unit(unit):
        assert ids.count(f"test_{ex.name}") == 1, ex.name
    assert sum(1 for i in ids if i and i.startswith("q_") and not i.endswith("_prompt")) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for module in {ex.module for ex in exercises.for_unit(unit)}:
        assert f"from course_lib.{module} import" not in src  # exercises go through their module


# --- the tag -> nbgrader conversion on a made-up source ------------------------------------------
MADE_UP = """# %% tags=["setup"]

# %% [markdown]
# # A made-up unit
# Two lines of $\\LaTeX$: `\\n` stays as written.

# %%
x = "a\\nb"   # plain code, escapes untouched
print(x)

# %% tags=["exercise-test:group_advantages"]

# %% [markdown] tags=["answer:q_made_up", "points:3"]
# Why?

# %% [markdown] tags=["answer:q_default_points"]
# And why not?

# %% [markdown] tags=["locked:intro_locked"]
# Read-only text.
"""


def _write(tmp_path: Path, text: str, name: str = "05_made_up.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_tags_become_the_nbgrader_cells(tmp_path):
    out = nbbuild.build(_write(tmp_path, MADE_UP))
    assert out == tmp_path / "05_made_up.ipynb"
    cells = nbformat.read(str(out), as_version=4).cells
    assert [c.id for c in cells] == [f"c{i:03d}" for i in range(len(cells))]
    grading = [(c.cell_type, c.metadata.get("nbgrader", {}).get("grade_id")) for c in cells]
    assert grading == [
        ("code", "setup_05"),
        ("markdown", None),
        ("code", None),
        ("code", "test_group_advantages"),
        ("markdown", "q_made_up_prompt"),
        ("markdown", "q_made_up"),
        ("markdown", "q_default_points_prompt"),
        ("markdown", "q_default_points"),
        ("markdown", "intro_locked"),
    ]
    setup, intro, plain, test, prompt, ans, _, ans2, locked = cells
    assert setup.source == nbbuild.setup("05").source and 'unit="05"' in setup.source
    assert setup.metadata.nbgrader["locked"] and not setup.metadata.nbgrader["grade"]
    assert intro.source == "# A made-up unit\nTwo lines of $\\LaTeX$: `\\n` stays as written."
    assert plain.source == 'x = "a\\nb"   # plain code, escapes untouched\nprint(x)'
    assert intro.metadata == {} and plain.metadata == {}
    ex = exercises.get("group_advantages")
    assert test.metadata.nbgrader == {
        "grade": True,
        "grade_id": "test_group_advantages",
        "locked": True,
        "points": ex.points,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    assert 'check("group_advantages")' in test.source
    assert "### BEGIN HIDDEN TESTS" in test.source and 'hidden_check("group_advantages")' in test.source
    assert prompt.source == "**Question (3 points).** Why?" and prompt.metadata.nbgrader["locked"]
    assert ans.source == "YOUR ANSWER HERE"
    assert (
        ans.metadata.nbgrader["grade"],
        ans.metadata.nbgrader["solution"],
        ans.metadata.nbgrader["points"],
    ) == (True, True, 3)
    assert ans2.metadata.nbgrader["points"] == nbbuild.DEFAULT_ANSWER_POINTS
    assert locked.metadata.nbgrader["locked"] and not locked.metadata.nbgrader["grade"]


@pytest.mark.parametrize(
    "cell, problem",
    [
        ('# %% tags=["exercise_test:kl_estimate"]\n', "bad tag 'exercise_test:kl_estimate'"),
        ('# %% tags=["exercise-test:no_such_function"]\n', "no exercise named 'no_such_function'"),
        ('# %% tags=["setup"]\nx = 1\n', "empty code cell"),
        ('# %% tags=["setup:05"]\n', "bad tag 'setup:05'"),
        ('# %% tags=["answer:q_why"]\nx = 1\n', "got a code cell"),
        ('# %% [markdown] tags=["answer:why"]\n# Why?\n', "answer:q_<id>"),
        ('# %% [markdown] tags=["answer:q_why", "points:two"]\n# Why?\n', "whole number"),
        ('# %% tags=["exercise-test:kl_estimate", "points:3"]\n', "'points:' goes with an 'answer:'"),
        ('# %% tags=["exercise-test:kl_estimate", "locked:x"]\n', "one role per cell"),
        ('# %% [markdown] slide="yes"\n# Hi\n', "unsupported cell metadata ['slide']"),
    ],
)
def test_a_bad_tag_is_an_error_naming_the_cell(tmp_path, cell, problem):
    path = _write(tmp_path, "# %%\nfirst = 1\n\n" + cell)
    with pytest.raises(nbbuild.SourceError) as err:
        nbbuild.cells_from_percent(path)
    assert "05_made_up.py cell 2" in str(err.value) and problem in str(err.value)


def test_a_source_is_named_after_its_unit(tmp_path):
    with pytest.raises(nbbuild.SourceError, match="NN_name.py"):
        nbbuild.cells_from_percent(_write(tmp_path, "# %%\nx = 1\n", name="made_up.py"))


def test_check_mode_names_stale_and_missing_notebooks_and_build_fixes_them(tmp_path, capsys):
    src = _write(tmp_path, MADE_UP)
    assert nbbuild.main(["--check", str(src)]) == 1
    assert "05_made_up.ipynb is missing" in capsys.readouterr().err
    assert nbbuild.main([str(src)]) == 0
    assert "rebuilt: " in capsys.readouterr().out
    assert nbbuild.main(["--check", str(src)]) == 0
    src.write_text(MADE_UP.replace("Why?", "Why not?"), encoding="utf-8")  # edited, not rebuilt
    assert nbbuild.main(["--check", str(src)]) == 1
    assert "05_made_up.ipynb is stale" in capsys.readouterr().err
    assert nbbuild.main([str(src)]) == 0
    assert "Why not?" in (tmp_path / "05_made_up.ipynb").read_text()
    assert nbbuild.main([str(src)]) == 0
    assert "1 notebooks up to date" in capsys.readouterr().out


def test_a_notebook_without_source_is_named(tmp_path):
    nbbuild.build(_write(tmp_path, MADE_UP))
    (tmp_path / "06_orphan.ipynb").write_text("{}")
    assert nbbuild.orphans(tmp_path) == [f"{tmp_path / '06_orphan.ipynb'} has no source 06_orphan.py"]


def test_check_mode_reports_a_bad_source_instead_of_a_traceback(tmp_path, capsys):
    src = _write(tmp_path, '# %% tags=["nonsense"]\n')
    assert nbbuild.main(["--check", str(src)]) == 1
    assert "error: 05_made_up.py cell 1" in capsys.readouterr().err
    assert nbbuild.main(["--check", str(tmp_path / "07_absent.py")]) == 1
    assert "no such notebook source" in capsys.readouterr().err


# --- with the stubs: the first exercise the notebook needs stops it, with the stub's message -----
@pytest.mark.notebook
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_with_stubs_stops_at_an_exercise_with_the_stub_message(source, tmp_path):
    import re

    from nbclient.exceptions import CellExecutionError

    from course_instructor.execute import execute_notebook

    unit = _unit(source)
    with pytest.raises(CellExecutionError) as err:
        execute_notebook(
            source.with_suffix(".ipynb"),
            solutions=False,
            allow_errors=False,
            timeout=300,
            env={
                "COURSE_RESULTS_DIR": str(tmp_path),
                "COURSE_PROFILE": "tiny",
                "COURSE_CHECKPOINTS": str(tmp_path / "ckpt"),
            },
        )
    msg = str(err.value)
    assert "NotImplementedError" in msg
    named = re.search(r"Exercise (\d+\.\d+) \(notebook (\d\d)_\w+\)", msg)
    assert named, msg[-2000:]
    ex = next(e for e in exercises.EXERCISES if e.number == named.group(1))
    assert ex.name in msg and named.group(2) <= unit
    own = exercises.for_unit(unit)
    if unit in ("01", "02"):  # nothing earlier to rely on: the unit's first exercise, at its test cell
        assert ex == own[0], ex
        assert f'check("{ex.name}")' in msg
        assert not (tmp_path / "figures").exists()  # nothing after it ran
