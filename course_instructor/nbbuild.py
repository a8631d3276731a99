"""Build nbgrader *source* notebooks from Python, so every unit has the same cell conventions.

A unit's builder script (``notebooks/_build/NN_name.py``) lists cells and calls :func:`write`:

    from course_instructor.nbbuild import md, code, setup, exercise_test, answer, write
    cells = [setup("02", "KL penalties"), md("# ..."), code("x = 1"),
             exercise_test("kl_estimate"), answer("q_kl_sign", "Why can k1 be negative?"), ...]
    write(cells, "notebooks/02_kl_penalties.ipynb")

Conventions (the grading pipeline relies on them):

* :func:`exercise_test` makes the locked, graded test cell ``test_<function>`` for one exercise
  of :mod:`course_lib.core.registry`, worth that exercise's points: visible checks
  (``course_lib.checks.check``) then the hidden block (``solutions.grading.hidden_check``),
  which nbgrader strips from the release.
* :func:`answer` makes a manually graded markdown answer cell (``grade_id`` = ``q_...``) preceded
  by a locked question cell.
* every other cell is a plain cell with cleared outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib.core import registry as exercises

SCHEMA = 3
COLAB_REPO = "https://github.com/rl-posttraining-course/course.git"


def _meta(grade_id: str | None = None, *, grade=False, solution=False, locked=False,
          points: int | float = 0, task=False) -> dict:
    if grade_id is None:
        return {}
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA,
         "solution": solution, "task": task}
    if grade or task:
        m["points"] = points
    return {"nbgrader": m}


def md(text: str, grade_id: str | None = None, locked: bool = False):
    cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
    if grade_id:
        cell.metadata.update(_meta(grade_id, locked=locked))
    return cell


def code(src: str, grade_id: str | None = None, locked: bool = False, tags: list[str] | None = None):
    cell = nbformat.v4.new_code_cell(src.strip("\n"))
    if grade_id:
        cell.metadata.update(_meta(grade_id, locked=locked))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def setup(unit: str, title: str):
    """The first code cell of every notebook: Colab/Drive set-up, autoreload, course_lib, seeds."""
    src = f'''# Set-up (run first). On Colab this installs the course; locally use the `rl-course` kernel.
import os, sys
if "google.colab" in sys.modules and not os.path.exists("course_lib"):
    KEEP_WORK_ON_DRIVE = False   # True: clone into Google Drive so your course_lib edits persist
    root = "/content"
    if KEEP_WORK_ON_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive"); root = "/content/drive/MyDrive"
    if not os.path.exists(f"{{root}}/rl-course"):
        !git clone -q {COLAB_REPO} {{root}}/rl-course
    %cd {{root}}/rl-course
    !pip install -q -e .
    sys.path.insert(0, os.getcwd())
elif os.path.basename(os.getcwd()) in ("notebooks", "exercises"):
    os.chdir("..")                # run from the course root so course_lib/ is importable
    sys.path.insert(0, os.getcwd())
%load_ext autoreload
%autoreload 2
%matplotlib inline
import course_lib
profile = course_lib.setup_notebook(unit="{unit}")   # seeds, picks the profile (tiny on CPU)
FAST = course_lib.grading_mode()                    # True while the grader runs this notebook'''
    if unit > "02":
        src += ("\n# This unit also runs functions you wrote in earlier units: a NotImplementedError that names\n"
                "# another notebook's exercise (e.g. \"Exercise 1.3 (notebook 01_reward_functions)\") means:\n"
                "# finish that exercise there first; its test cell tells you when it is right.")
    return code(src, grade_id=f"setup_{unit}", locked=True)


def exercise_test(name: str, extra_visible: str = ""):
    """The graded, locked test cell of one exercise (visible checks + hidden block)."""
    ex = exercises.get(name)
    src = (f"# Tests for exercise {ex.number}: `{ex.name}` in course_lib/{ex.module}.py "
           f"({ex.points} points)\n"
           f"from course_lib.checks import check\n"
           f"check(\"{ex.name}\")\n")
    if extra_visible:
        src += extra_visible.strip("\n") + "\n"
    src += ("### BEGIN HIDDEN TESTS\n"
            "from solutions.grading import hidden_check\n"
            f"hidden_check(\"{ex.name}\")\n"
            "### END HIDDEN TESTS")
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata.update(_meta(f"test_{ex.name}", grade=True, locked=True, points=ex.points))
    return cell


def answer(grade_id: str, question: str, points: int = 2):
    """A locked question cell followed by a manually graded markdown answer cell."""
    q = nbformat.v4.new_markdown_cell(f"**Question ({points} points).** {question.strip()}")
    q.metadata.update(_meta(f"{grade_id}_prompt", locked=True))
    a = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE")
    a.metadata.update(_meta(grade_id, grade=True, solution=True, points=points))
    return [q, a]


def flatten(cells) -> list:
    out = []
    for c in cells:
        out.extend(flatten(c) if isinstance(c, (list, tuple)) else [c])
    return out


def write(cells, path: str | Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = flatten(cells)
    for i, c in enumerate(nb.cells):   # stable ids: regenerating gives an identical file
        c["id"] = f"c{i:03d}"
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path
