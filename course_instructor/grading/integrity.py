"""The grader checks itself: a hash of everything that decides grades, taken before a batch and
verified after each submission (:class:`Integrity`). A change means something wrote where no
student code should reach: the batch stops with :class:`IntegrityError` and no grades are written.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}


class IntegrityError(RuntimeError):
    """An instructor or grader file changed while a batch was being graded."""


def snapshot(paths: list[Path]) -> dict[str, str]:
    """{path: sha256} of every file under `paths` (files or folders; caches skipped); a missing
    path is recorded as missing, so that its appearance counts as a change too."""
    out: dict[str, str] = {}
    for root in map(Path, paths):
        if root.is_file() or root.is_symlink():
            out[str(root)] = _digest(root)
            continue
        if not root.is_dir():
            out[str(root)] = "missing"
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for f in sorted(filenames):
                if not f.endswith(".pyc"):
                    p = Path(dirpath) / f
                    out[str(p)] = _digest(p)
    return out


def _digest(p: Path) -> str:
    if p.is_symlink():
        return "link:" + os.readlink(p)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Integrity:
    """snapshot(paths) now; :meth:`verify` raises IntegrityError naming what changed."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        self.before = snapshot(self.paths)

    def changes(self) -> list[str]:
        after = snapshot(self.paths)
        return sorted(p for p in set(self.before) | set(after) if self.before.get(p) != after.get(p))

    def verify(self, after_what: str) -> None:
        changed = self.changes()
        if changed:
            shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
            raise IntegrityError(
                f"GRADER INTEGRITY ALARM after {after_what}: {len(changed)} instructor/grader "
                f"file(s) changed during grading: {shown}. The batch stopped; no grades were "
                "written. Restore these files (git status / git diff) before grading again."
            )
