"""`course submit`: pack your notebooks and your course_lib code into one zip for grading.

    course submit                               # -> submission-<your id>.zip in the course folder
    course submit --student-id jdoe --out ~/jdoe.zip
    course submit --notebooks ~/my-copies       # also look for your notebooks in another folder
    course submit --root ~/rl-course            # pack that course folder, wherever you run it

It packs the course folder it is run in (the current folder, or the nearest folder above it that
holds ``course_lib/`` and ``exercises/``), not the copy its Python was installed from: with two
copies of the course, the one you are in is the one submitted. It prints that folder, every file it
packed and the zip's path, and refuses (exit 2) a folder that is not a course copy.

On Google Colab, run in a notebook (it saves the open notebook first, then downloads the zip):

    from course_lib.submit import submit_from_colab
    submit_from_colab("jdoe")

The zip holds one notebook per unit as ``exercises/NN_name.ipynb``, ``course_lib/*.py`` (the files
you edit; the rest of course_lib comes from the grader's copy) and ``SUBMISSION.json`` with your
student id and where each notebook came from. For each unit the notebook is the one you worked in:
among the course's ``exercises/NN_name.ipynb`` and the copies found in the extra folders (on Colab:
Google Drive's "Colab Notebooks" folder, e.g. "Copy of 01_reward_functions.ipynb"), a notebook with
outputs or written answers wins over a blank one, and the newest wins among those.
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

from course_lib.core.registry import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
# The modules a student edits: a course copy's course_lib/ holds at least one of them.
EXERCISE_MODULES = sorted({ex.module for ex in EXERCISES})
MAX_FILE_BYTES = 20 * 2**20
BLANK_ANSWER = "YOUR ANSWER HERE"
# nbgrader's stub of a code solution cell (ClearSolutions.code_stub), as lines; older nbgrader
# versions write `raise NotImplementedError` without the parentheses.
BLANK_CODE = (
    ["# YOUR CODE HERE", "raise NotImplementedError()"],
    ["# YOUR CODE HERE", "raise NotImplementedError"],
)
# Google Drive as the first cell mounts it on Colab ($COURSE_DRIVE_DIR is set by that cell).
COLAB_DRIVE = "/content/drive/MyDrive"


def clean_id(student_id: str) -> str:
    """The id as a file name and a spreadsheet cell can hold it: letters, digits, '_', '-', '.',
    at most 64 characters, starting with a letter or digit (a leading '-' or '.' would make
    ``-2-3`` a formula in the grades spreadsheet, ``..`` a parent folder) and not ending in '.'."""
    sid = re.sub(r"[^A-Za-z0-9_.-]", "_", student_id.strip())[:64]
    sid = re.sub(r"^[^A-Za-z0-9]+", "", sid).rstrip("._")
    if not sid:
        raise ValueError(
            f"invalid student id {student_id!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return sid


def default_student_id() -> str:
    for var in ("COURSE_STUDENT_ID", "USER", "USERNAME", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "student"


def _read_notebook(path: Path) -> dict:
    """The notebook's JSON, or {} if it is not a readable notebook (too big, broken, not JSON)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return {}
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return nb if isinstance(nb, dict) else {}


def notebook_unit(nb: dict) -> str | None:
    """The unit ("01", ...) of a course notebook: from its set-up cell's nbgrader id `setup_NN`."""
    for cell in nb.get("cells", [])[:3]:
        grade_id = (
            cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "") if isinstance(cell, dict) else ""
        )
        if isinstance(grade_id, str) and re.fullmatch(r"setup_\d\d", grade_id):
            return grade_id[-2:]
    return None


def _is_blank_solution(text: str) -> bool:
    """A solution cell as released: empty, "YOUR ANSWER HERE", or nbgrader's code stub."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return not lines or lines == [BLANK_ANSWER] or lines in BLANK_CODE


def worked_in(nb: dict) -> bool:
    """True if the notebook was run (a code cell has outputs) or a solution cell (a written answer,
    or code in place of nbgrader's stub) was filled in."""
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "code" and cell.get("outputs"):
            return True
        meta = cell.get("metadata", {})
        meta = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
        if isinstance(meta, dict) and meta.get("solution"):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            if not _is_blank_solution(text):
                return True
    return False


def course_copy_problems(folder: Path) -> list[str]:
    """What `folder` lacks to be a copy of the course (one short phrase each); [] for a course copy:
    ``course_lib/`` with at least one exercise module and ``exercises/`` with NN_*.ipynb notebooks."""
    folder = Path(folder)
    if not folder.is_dir():
        return ["no such folder"]
    out = []
    cl = folder / "course_lib"
    if not cl.is_dir():
        out.append("no course_lib/ folder")
    elif not any((cl / f"{m}.py").is_file() for m in EXERCISE_MODULES):
        out.append(
            f"course_lib/ has none of the exercise modules ({', '.join(m + '.py' for m in EXERCISE_MODULES)})"
        )
    ex = folder / "exercises"
    if not ex.is_dir():
        out.append("no exercises/ folder")
    elif not any(re.match(r"\d\d_", p.name) for p in ex.glob("*.ipynb")):
        out.append("exercises/ has no NN_*.ipynb notebooks")
    return out


def find_course_root(start: Path) -> Path:
    """`start` or the nearest folder above it that is a course copy; ValueError (one line naming
    what `start` lacks) if there is none."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if not course_copy_problems(folder):
            return folder
    raise ValueError(
        f"{start} is not a course folder ({'; '.join(course_copy_problems(start))}), nor is any folder "
        "above it: run `course submit` inside your copy of the course, or pass --root DIR"
    )


def colab_notebook_dirs() -> list[Path]:
    """Where Colab keeps a student's notebooks, if Google Drive is mounted: "Colab Notebooks"."""
    drive = Path(os.environ.get("COURSE_DRIVE_DIR") or COLAB_DRIVE)
    return [d for d in (drive / "Colab Notebooks",) if d.is_dir()]


def choose_notebooks(root: Path, search_dirs=()) -> dict[str, Path]:
    """exercises/<name> -> the notebook of that unit the student worked in (see the module doc)."""
    course = sorted((Path(root) / "exercises").glob("*.ipynb"))
    units = {}
    for p in course:  # the course's notebooks define the units: NN_name.ipynb
        m = re.match(r"(\d\d)_", p.name)
        if m:
            units[m.group(1)] = p.name
    candidates: dict[str, list[Path]] = {p.name: [p] for p in course}
    for d in search_dirs:
        for p in sorted(Path(d).glob("*.ipynb")):
            unit = notebook_unit(_read_notebook(p))
            if unit in units and p.resolve() != (Path(root) / "exercises" / units[unit]).resolve():
                candidates[units[unit]].append(p)

    def rank(p: Path):
        return (worked_in(_read_notebook(p)), p.stat().st_mtime)

    return {name: max(paths, key=rank) for name, paths in candidates.items()}


def submit(student_id: str, out: Path | None = None, root: Path = ROOT, search_dirs=()) -> Path:
    """Write the submission zip (see the module doc) and return its path."""
    sid = clean_id(student_id)
    root = Path(root).resolve()
    problems = course_copy_problems(root)
    if problems:
        raise ValueError(f"{root} is not a course folder ({'; '.join(problems)})")
    notebooks = choose_notebooks(root, search_dirs)
    code = sorted((root / "course_lib").glob("*.py"))
    out = Path(out) if out else root / f"submission-{sid}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, p in notebooks.items():
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_FILE_BYTES:
                z.write(p, f"exercises/{name}")
                sources[name] = str(p)
        for p in code:
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_FILE_BYTES:
                z.write(p, p.relative_to(root).as_posix())
        z.writestr(
            "SUBMISSION.json",
            json.dumps(
                {
                    "student_id": sid,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "notebooks": sorted(sources),
                    "sources": sources,
                },
                indent=1,
            ),
        )
    return out


# --- Google Colab -------------------------------------------------------------------------------
def save_open_notebook(root: Path = ROOT) -> Path:
    """Colab only: write the notebook open in this browser tab to <course>/exercises/NN_name.ipynb
    (Colab keeps it in the browser / on Drive, not in the course folder)."""
    from google.colab import _message  # Colab's own module: the front end sends the open notebook

    nb = _message.blocking_request("get_ipynb", timeout_sec=60)
    nb = nb.get("ipynb", nb) if isinstance(nb, dict) else {}
    unit = notebook_unit(nb)
    if unit is None:
        raise ValueError(
            "the open notebook is not one of the course's (its first cell is not the set-up cell)"
        )
    matches = sorted((Path(root) / "exercises").glob(f"{unit}_*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"no exercises/{unit}_*.ipynb in {root}: is this the course folder?")
    matches[0].write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    return matches[0]


def submit_from_colab(
    student_id: str, out: Path | None = None, root: Path = ROOT, download: bool = True
) -> Path:
    """On Colab: save the open notebook into the course folder, zip the notebooks you worked in (the
    course folder + Drive's "Colab Notebooks") and your course_lib, and download the zip."""
    saved = save_open_notebook(root)
    path = submit(student_id, out, root, colab_notebook_dirs())
    print(f"saved the open notebook as {saved}")
    print(_summary(path, Path(root).resolve()))
    for line in untouched_warnings(path):
        print(line)
    if download:
        from google.colab import files

        files.download(str(path))
    return path


def _summary(path: Path, root: Path | None = None) -> str:
    """The course folder packed, every file in the zip (relative paths; a notebook taken from
    outside the course folder names where it came from) and the zip's path."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        sources = json.loads(z.read("SUBMISSION.json")).get("sources", {})
    lines = [f"packed the course folder {root}:"] if root else []
    for name in names:
        src = sources.get(name.removeprefix("exercises/")) if name.startswith("exercises/") else None
        if src and root and Path(src).resolve() == (Path(root) / name).resolve():
            src = None
        lines.append(f"  {name}" + (f" <- {src}" if src else ""))
    lines.append(
        f"wrote {path} ({sum(n.endswith('.ipynb') for n in names)} notebooks, "
        f"{sum(n.endswith('.py') for n in names)} course_lib files)"
    )
    return "\n".join(lines)


def untouched_warnings(path: Path) -> list[str]:
    """One warning per notebook (unit) in the zip that looks untouched: no cell outputs and every
    solution cell still as released ("YOUR ANSWER HERE", "# YOUR CODE HERE" stub) -- often the sign
    of packing the wrong copy of the course."""
    out = []
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("exercises/") and name.endswith(".ipynb"):
                try:
                    nb = json.loads(z.read(name))
                except ValueError:
                    nb = {}
                if not worked_in(nb if isinstance(nb, dict) else {}):
                    out.append(
                        f"warning: {name} looks untouched (no outputs, no answers, solution cells "
                        "still the stub); if you worked in "
                        "another copy of the course, run `course submit --root DIR` with that folder "
                        "(or --notebooks DIR for a folder of notebook copies)"
                    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course submit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--student-id", default=None, help="your student id (default: $USER)")
    ap.add_argument("--out", default=None, help="the zip to write (default submission-<id>.zip)")
    ap.add_argument(
        "--notebooks",
        action="append",
        default=[],
        metavar="DIR",
        help="another folder holding your notebooks (repeatable; Colab's Drive folder is added "
        "automatically when Drive is mounted)",
    )
    ap.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="the course folder to pack (default: the current folder or the nearest one above it "
        "that holds course_lib/ and exercises/)",
    )
    args = ap.parse_args(argv)
    dirs = [Path(d) for d in args.notebooks]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        print(f"course submit: --notebooks {missing[0]}: no such folder", file=sys.stderr)
        return 2
    try:
        # The folder it runs in (or --root), never the copy this Python imported course_lib from:
        # a student with two copies of the course submits the one they are working in.
        root = Path(args.root).resolve() if args.root else find_course_root(Path.cwd())
        path = submit(
            args.student_id or default_student_id(),
            Path(args.out) if args.out else None,
            root,
            dirs + colab_notebook_dirs(),
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"course submit: {e}", file=sys.stderr)
        return 2
    print(_summary(path, root))
    for line in untouched_warnings(path):
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
