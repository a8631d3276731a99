"""Throwaway Python environments that borrow this venv's packages (no download, ~1 s to make).

``make_env(dest, hide=("trl",))`` creates a venv at `dest` (without pip: ``python -m pip`` still
works, pip is borrowed) that sees every package of the current environment through one ``.pth``
line -- *except* the instructor's own editable install (so ``course_instructor`` and the
repository's ``course_lib`` are not importable) and the distributions named in `hide`. Packages
installed into `dest` take precedence over the borrowed ones (its site-packages comes first), so
a test can put older or newer versions on top, and pip never uninstalls a borrowed package
("outside environment"). Used by the student-bundle and simulated-Colab tests and by the drift
tier (course_instructor.drift).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

# Entries of site-packages that belong to this repository's editable install.
_OWN = re.compile(r"(__editable__.*|rl_posttraining_course.*|.*\.pth|__pycache__)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _top_levels(site: Path, dist_info: Path) -> set[str]:
    """Import names a distribution installed (top_level.txt, else the RECORD's first path parts)."""
    top = dist_info / "top_level.txt"
    if top.exists():
        return {line.strip() for line in top.read_text().splitlines() if line.strip()}
    names = set()
    record = dist_info / "RECORD"
    if record.exists():
        for line in record.read_text().splitlines():
            first = line.split(",")[0].split("/")[0]
            if first and not first.endswith((".dist-info", ".data")) and first != "..":
                names.add(first[:-3] if first.endswith(".py") else first)
    return names


def borrowed_site(dest: Path, hide=(), site: Path | None = None) -> Path:
    """A folder of symlinks to this environment's site-packages minus our editable install and the
    distributions in `hide` (their dist-info and import packages)."""
    site = Path(site or sysconfig.get_paths()["purelib"])
    hidden = {_norm(h) for h in hide}
    skip = set()
    for info in site.glob("*.dist-info"):
        if _norm(info.name.split("-")[0]) in hidden:
            skip |= {info.name} | _top_levels(site, info) | {t + ".py" for t in _top_levels(site, info)}
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if _OWN.fullmatch(entry.name) or entry.name in skip:
            continue
        link = dest / entry.name
        if not link.exists():
            link.symlink_to(entry)
    return dest


def make_env(dest: Path, hide=(), python: str | None = None, first=()) -> Path:
    """A venv at `dest` borrowing this environment's packages (see the module doc); returns its
    python. `first`: folders of packages (e.g. ``pip install --target``) that shadow the borrowed ones."""
    dest = Path(dest)
    base = python or getattr(sys, "_base_executable", sys.executable)
    subprocess.run(
        [base, "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True, timeout=120
    )
    py = dest / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    borrowed = borrowed_site(dest / "borrowed-site-packages", hide)
    Path(purelib, "zz_borrowed.pth").write_text("".join(f"{p}\n" for p in [*first, borrowed]))
    return py


def clean_env(**extra: str) -> dict:
    """os.environ without this venv's activation and PYTHONPATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(Path(sys.prefix)))
    )
    env.update(extra)
    return env
