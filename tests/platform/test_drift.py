"""The drift tier's pure parts (the tier itself runs with `python -m course_instructor.drift`)."""

from __future__ import annotations

import pytest

from course_instructor import drift


def test_previous_minor_is_the_newest_patch_of_the_minor_before():
    versions = ["5.24.0", "5.23.0", "5.22.2", "5.22.1", "5.22.0", "5.21.1", "4.57.0"]
    assert drift.previous_minor("5.23.0", versions) == "5.22.2"
    assert drift.previous_minor("5.0.1", ["5.0.1", "4.57.3", "4.57.0", "4.56.2"]) == "4.57.3"
    assert drift.previous_minor("1.0.0", ["1.0.0"]) is None


def test_pins_come_from_pyproject(tmp_path):
    assert set(drift.pinned()) == {"transformers", "trl"}
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\ndependencies = ["transformers>=5", "trl==1.16.0"]\n')
    with pytest.raises(ValueError, match="transformers"):
        drift.pinned(bad)


def _row(transformers, trl, units, pinned=False):
    return {
        "transformers": transformers,
        "trl": trl,
        "pinned": pinned,
        "install": "ok",
        "contract": {"ok": True, "summary": "80 passed"},
        "units": units,
        "seconds": 90,
    }


def test_table_reports_each_pair():
    rows = [
        _row("5.23.0", "1.16.0", {"01": "ok", "02": "ok"}, pinned=True),
        _row("5.22.2", "1.15.0", {"01": "ok", "06": "TypeError: x"}),
        {
            "transformers": "4.0.0",
            "trl": "1.16.0",
            "pinned": False,
            "install": "failed",
            "detail": "no match",
        },
    ]
    text = drift.table(rows)
    assert "| 5.23.0 (pin) | 1.16.0 | ok | 80 passed | 2/2 pass | 90 |" in text
    assert "1/2 pass (failed 06: TypeError: x)" in text and "failed: no match" in text
    assert [drift.passed(r) for r in rows] == [True, False, False]
