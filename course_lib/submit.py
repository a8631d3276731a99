"""`course submit`: pack your notebooks and your course_lib code into one zip for grading.

    course submit                               # -> submission-<your id>.zip in the course folder
    course submit --student-id jdoe --out ~/jdoe.zip

The zip holds ``exercises/*.ipynb``, ``course_lib/*.py`` (the files you edit; the rest of
course_lib comes from the grader's copy) and ``SUBMISSION.json`` with your student id.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 20 * 2 ** 20


def clean_id(student_id: str) -> str:
    sid = re.sub(r"[^A-Za-z0-9_.-]", "_", student_id.strip())[:64].strip("._")
    if not sid:
        raise ValueError(f"invalid student id {student_id!r}: use letters, digits, '_', '-' or '.'")
    return sid


def default_student_id() -> str:
    for var in ("COURSE_STUDENT_ID", "USER", "USERNAME", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "student"


def submit(student_id: str, out: Path | None = None, root: Path = ROOT) -> Path:
    sid = clean_id(student_id)
    root = Path(root)
    notebooks = sorted((root / "exercises").glob("*.ipynb"))
    code = sorted((root / "course_lib").glob("*.py"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {root / 'exercises'}: run this from the course folder")
    out = Path(out) if out else root / f"submission-{sid}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in notebooks + code:
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_FILE_BYTES:
                z.write(p, p.relative_to(root).as_posix())
        z.writestr("SUBMISSION.json", json.dumps({"student_id": sid, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                  "notebooks": [p.name for p in notebooks]}, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course submit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--student-id", default=None, help="your student id (default: $USER)")
    ap.add_argument("--out", default=None, help="the zip to write (default submission-<id>.zip)")
    ap.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        path = submit(args.student_id or default_student_id(), Path(args.out) if args.out else None,
                      Path(args.root))
    except (ValueError, FileNotFoundError) as e:
        print(f"course submit: {e}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    print(f"wrote {path} ({sum(n.endswith('.ipynb') for n in names)} notebooks, "
          f"{sum(n.endswith('.py') for n in names)} course_lib files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
