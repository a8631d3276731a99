"""The maintainer tooling agrees with itself: ruff's target version with requires-python, the
pre-commit ruff hooks with the ruff of the `dev` extra, and every package-data glob with a file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pin(extra: str, package: str) -> str:
    pins = [
        req.split("==", 1)[1]
        for req in PYPROJECT["project"]["optional-dependencies"][extra]
        if re.split(r"[=<>!~\[ ]", req, maxsplit=1)[0].lower() == package
    ]
    assert len(pins) == 1 and pins[0], f"the {extra!r} extra must pin {package} exactly once: {pins}"
    return pins[0]


def test_ruff_targets_the_oldest_supported_python():
    oldest = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert oldest, PYPROJECT["project"]["requires-python"]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{oldest.group(1)}"


def test_pre_commit_ruff_hooks_use_the_pinned_ruff():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    ruff = [r for r in config["repos"] if r["repo"] == "https://github.com/astral-sh/ruff-pre-commit"]
    assert len(ruff) == 1, "one ruff-pre-commit repo in .pre-commit-config.yaml"
    assert ruff[0]["rev"] == "v" + _pin("dev", "ruff")
    assert {h["id"] for h in ruff[0]["hooks"]} == {"ruff-check", "ruff-format"}


def test_every_package_data_glob_matches_a_file():
    for package, globs in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        folder = ROOT / package.replace(".", "/")
        for pattern in globs:
            assert any(p.is_file() for p in folder.glob(pattern)), f"{package}: {pattern!r} matches no file"


def test_mypy_is_pinned_and_run_by_setup_test():
    assert _pin("dev", "mypy")
    setup = (ROOT / "setup.sh").read_text()
    assert '"$VENV/bin/mypy" course_lib/core course_lib/trainers course_lib/labs' in setup
