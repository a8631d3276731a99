"""Every source notebook is exactly what its builder script generates (one check for all units)."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from course_instructor.nbbuild import write

ROOT = Path(__file__).resolve().parents[1]
BUILDERS = sorted((ROOT / "notebooks" / "_build").glob("[0-9][0-9]_*.py"))


def test_every_notebook_has_a_builder():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks == {b.stem for b in BUILDERS}


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda p: p.stem)
def test_notebook_is_up_to_date_with_its_builder(builder, tmp_path):
    cells = runpy.run_path(str(builder), run_name="builder")["cells"]
    fresh = write(cells, tmp_path / f"{builder.stem}.ipynb")
    committed = ROOT / "notebooks" / f"{builder.stem}.ipynb"
    assert fresh.read_text() == committed.read_text(), \
        f"{committed.relative_to(ROOT)} is stale: run .venv/bin/python notebooks/_build/{builder.name}"


# --- conventions every unit notebook follows (one check for all units) --------------------------
def _unit(builder: Path) -> str:
    return builder.stem[:2]


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda p: p.stem)
def test_notebook_follows_the_conventions(builder):
    import nbformat

    from course_lib.core import registry as exercises
    unit = _unit(builder)
    nb = nbformat.read(str(ROOT / "notebooks" / f"{builder.stem}.ipynb"), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids[0] == f"setup_{unit}"
    for ex in exercises.for_unit(unit):
        assert ids.count(f"test_{ex.name}") == 1, ex.name
    assert sum(1 for i in ids if i and i.startswith("q_") and not i.endswith("_prompt")) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for module in {ex.module for ex in exercises.for_unit(unit)}:
        assert f"from course_lib.{module} import" not in src     # exercises go through their module


# --- with the stubs: the first exercise the notebook needs stops it, with the stub's message -----
@pytest.mark.notebook
@pytest.mark.parametrize("builder", BUILDERS, ids=lambda p: p.stem)
def test_notebook_with_stubs_stops_at_an_exercise_with_the_stub_message(builder, tmp_path):
    import re

    from nbclient.exceptions import CellExecutionError

    from course_lib.core import registry as exercises
    from course_instructor.execute import execute_notebook
    unit = _unit(builder)
    with pytest.raises(CellExecutionError) as err:
        execute_notebook(ROOT / "notebooks" / f"{builder.stem}.ipynb", solutions=False,
                         allow_errors=False, timeout=300,
                         env={"COURSE_RESULTS_DIR": str(tmp_path), "COURSE_PROFILE": "tiny",
                              "COURSE_CHECKPOINTS": str(tmp_path / "ckpt")})
    msg = str(err.value)
    assert "NotImplementedError" in msg
    named = re.search(r"Exercise (\d+\.\d+) \(notebook (\d\d)_\w+\)", msg)
    assert named, msg[-2000:]
    ex = next(e for e in exercises.EXERCISES if e.number == named.group(1))
    assert ex.name in msg and named.group(2) <= unit
    own = exercises.for_unit(unit)
    if unit in ("01", "02"):     # nothing earlier to rely on: the unit's first exercise, at its test cell
        assert ex == own[0], ex
        assert f'check("{ex.name}")' in msg
        assert not (tmp_path / "figures").exists()               # nothing after it ran
