"""Every source notebook is exactly what its builder script generates (one check for all units)."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from course_lib.pipeline.nbbuild import write

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
