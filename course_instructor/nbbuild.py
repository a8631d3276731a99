"""Build the nbgrader *source* notebooks ``notebooks/NN_name.ipynb`` from jupytext percent files.

A unit's source is ``notebooks/NN_name.py`` in jupytext's percent format (it opens as a notebook in
Jupyter / VS Code with jupytext): ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell.
Cells are plain Python / Markdown; a cell with a special role says so with one tag:

* ``# %% tags=["setup"]`` (empty code cell): the set-up cell of unit ``NN`` (from the file name),
  written by :func:`setup` -- Colab install, autoreload, ``profile``, ``FAST``.
* ``# %% tags=["exercise-test:grpo_loss"]`` (empty code cell): the locked, graded test cell of one
  exercise of :mod:`course_lib.core.registry`, worth that exercise's points (:func:`exercise_test`).
* ``# %% [markdown] tags=["answer:q_grpo_std"]`` (the question's text): a locked question cell
  followed by a manually graded "YOUR ANSWER HERE" cell (:func:`answer`); 2 points unless a
  second tag says otherwise, e.g. ``tags=["answer:q_eval_pick", "points:3"]``.
* ``tags=["locked:<grade_id>"]`` (any cell): a read-only cell with that nbgrader id.

Any other tag is an error naming the cell. Markdown is copied as written, except that the
registry's exercise metadata is shown under two kinds of headings (:func:`with_metadata`): a line
under the unit's title (``# Unit NN ...``: exercises, points, student minutes, how long the
notebook runs on 2 cores; then, for a unit whose training calls earlier units' exercises, which
ones: :func:`needs_line`) and one under each exercise heading (``## Exercise 2.2 ...`` or
``## 3. Exercise 5.3 ...``: difficulty, minutes, points, the earlier exercises it calls).
Build every unit with ``course build-notebooks`` (``python -m course_instructor.nbbuild``);
``--check`` only reports stale notebooks (exit 1).

Conventions (the grading pipeline relies on them):

* the test cell ``test_<function>`` runs the visible checks (``course_lib.checks.check``) then the
  hidden block (``course_instructor.grading.hidden.hidden_check``), which nbgrader strips from the release;
* a written answer is graded by hand (``grade_id`` = ``q_...``), its question cell is locked;
* every other cell is a plain cell with cleared outputs; cell ids are ``c000, c001, ...``.

The Python helpers (:func:`md`, :func:`code`, ... , :func:`write`) are the same cells for tests
that build a throwaway notebook in code.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from course_instructor import first_cell
from course_lib.core import registry as exercises

SCHEMA = 3
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DEFAULT_ANSWER_POINTS = 2
# The Jupyter kernel every notebook names: the one `setup.sh` registers (the course's venv), so that
# Jupyter opens a notebook on the course's packages, not on whatever "Python 3" is first on the path.
# Colab and the grader choose their own kernel and ignore this name (docs/colab-gpu.md, docs/grading.md).
KERNEL_NAME = "rl-course"
KERNEL_DISPLAY_NAME = "Python 3 (rl-course)"


def _meta(
    grade_id: str | None = None,
    *,
    grade=False,
    solution=False,
    locked=False,
    points: int | float = 0,
    task=False,
) -> dict:
    if grade_id is None:
        return {}
    m = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA,
        "solution": solution,
        "task": task,
    }
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


def setup(unit: str):
    """The first code cell of every notebook: Colab/Drive set-up, autoreload, course_lib, seeds."""
    src = first_cell.setup_source(unit)  # Colab install (pure Python), autoreload, profile, FAST
    if unit > "02":
        src += (
            "\n# This unit also runs functions you wrote in earlier units: a NotImplementedError that names\n"
            '# another notebook\'s exercise (e.g. "Exercise 1.3 (notebook 01_reward_functions)") means:\n'
            "# finish that exercise there first; its test cell tells you when it is right."
        )
    return code(src, grade_id=f"setup_{unit}", locked=True)


def exercise_test(name: str):
    """The graded, locked test cell of one exercise (visible checks + hidden block)."""
    ex = exercises.get(name)
    src = (
        f"# Tests for exercise {ex.number}: `{ex.name}` in course_lib/{ex.module}.py "
        f"({ex.points} points)\n"
        f"from course_lib.checks import check\n"
        f'check("{ex.name}")\n'
        "### BEGIN HIDDEN TESTS\n"
        "from course_instructor.grading.hidden import hidden_check\n"
        f'hidden_check("{ex.name}")\n'
        "### END HIDDEN TESTS"
    )
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata.update(_meta(f"test_{ex.name}", grade=True, locked=True, points=ex.points))
    return cell


def answer(grade_id: str, question: str, points: int = DEFAULT_ANSWER_POINTS):
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


def notebook(cells) -> nbformat.NotebookNode:
    """The source notebook of a list of cells (nested lists allowed), with stable ids c000, c001, ..."""
    nb = nbformat.v4.new_notebook()
    nb.cells = flatten(cells)
    for i, c in enumerate(nb.cells):  # stable ids: regenerating gives an identical file
        c["id"] = f"c{i:03d}"
    nb.metadata = {
        "kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY_NAME, "language": "python"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def render(nb) -> str:
    """The exact text :func:`write` puts on disk."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write(cells, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(notebook(cells)), encoding="utf-8")
    return path


# --- exercise metadata under the headings ------------------------------------------------------------
UNIT_TITLE = re.compile(r"^# Unit (\d\d)\b.*$", re.M)
EXERCISE_HEADING = re.compile(r"^#{2,4} (?:\d+\. )?Exercise (\d+\.\d+)\b.*$", re.M)


def exercise_line(ex: exercises.Exercise) -> str:
    """``*difficulty ★★☆ · about 15 min · 3 points · calls 2.2 `kl_estimate`*`` (fields not set yet
    in the registry are left out)."""
    parts = []
    if ex.difficulty:
        parts.append("difficulty " + "\u2605" * ex.difficulty + "\u2606" * (3 - ex.difficulty))
    if ex.minutes:
        parts.append(f"about {ex.minutes} min")
    parts.append(f"{ex.points} points")
    if ex.requires:
        parts.append("calls " + ", ".join(f"{exercises.get(n).number} `{n}`" for n in ex.requires))
    return "*" + " \u00b7 ".join(parts) + "*"


def unit_line(unit: str) -> str | None:
    """The line under a unit's title: its exercises, points and minutes, its run time on 2 cores."""
    exs = exercises.for_unit(unit)
    parts = []
    if exs:
        minutes = sum(e.minutes for e in exs)
        parts.append(
            f"{len(exs)} exercises, {sum(e.points for e in exs)} points"
            + (f", about {minutes} min of work" if minutes and all(e.minutes for e in exs) else "")
        )
    if exercises.UNIT_SECONDS.get(unit) is not None:
        parts.append(
            f"the notebook runs in about {exercises.UNIT_SECONDS[unit]} s on 2 CPU cores (tiny profile)"
        )
    return "*" + "; ".join(parts) + "*" if parts else None


def needs_line(unit: str) -> str | None:
    """The note under a unit's title naming the earlier units' exercises its training runs call
    (registry.training_needs), so a student finishes them before reaching the training cells."""
    earlier = exercises.training_needs(unit, earlier_only=True)
    if not earlier:
        return None
    return (
        f"**Before the training cells:** they also run your exercises {exercises.describe(earlier)}"
        " — implement those first. The first training cell checks, and names every exercise it "
        "needs that still raises `NotImplementedError`."
    )


def metadata_table() -> str:
    """The "Exercise metadata" table of docs/instructors.md (markdown), from the registry."""
    rows = [
        "| # | exercise | points | difficulty | minutes | calls |",
        "|---|---|---|---|---|---|",
    ]
    for ex in exercises.EXERCISES:
        calls = ", ".join(f"{exercises.get(n).number} `{n}`" for n in ex.requires or ()) or "—"
        stars = "\u2605" * ex.difficulty + "\u2606" * (3 - ex.difficulty) if ex.difficulty else "?"
        rows.append(f"| {ex.number} | `{ex.name}` | {ex.points} | {stars} | {ex.minutes or '?'} | {calls} |")
    seconds = ", ".join(f"{u} {s} s" for u, s in sorted(exercises.UNIT_SECONDS.items()) if s is not None)
    return "\n".join(rows) + f"\n\nWhole notebook on 2 CPU cores (tiny profile, quick preset): {seconds}.\n"


def with_metadata(text: str, unit: str) -> str:
    """Markdown `text` with the metadata line after the unit title / each exercise heading it has."""

    def exercise(m: re.Match) -> str:
        try:
            ex = exercises.get(next(e.name for e in exercises.EXERCISES if e.number == m.group(1)))
        except StopIteration:
            return m.group(0)  # not (yet) a registry exercise: the heading stays as written
        return f"{m.group(0)}\n\n{exercise_line(ex)}"

    def title(m: re.Match) -> str:
        if m.group(1) != unit:
            return m.group(0)
        lines = [line for line in (unit_line(unit), needs_line(unit)) if line]
        return "\n\n".join([m.group(0), *lines])

    return EXERCISE_HEADING.sub(exercise, UNIT_TITLE.sub(title, text))


# --- percent source -> nbgrader cells ---------------------------------------------------------------
class SourceError(ValueError):
    """A percent source that does not follow the cell conventions (the message names the cell)."""


def _unit_of(source: Path) -> str:
    m = re.match(r"(\d\d)_", source.name)
    if not m:
        raise SourceError(
            f"{source}: a notebook source is named NN_name.py (NN = the unit), got {source.name!r}"
        )
    return m.group(1)


JUPYTEXT_LAYOUT_KEYS = {"lines_to_next_cell", "lines_to_end_of_cell_marker"}


def _cell_from_percent(cell, unit: str, where: str):
    """One jupytext cell -> the nbgrader cell(s) its tags ask for."""
    # jupytext records how many blank lines follow a cell when a formatter leaves two after a
    # `def` (PEP 8): layout only, never part of the built notebook.
    extra = sorted(set(cell.metadata) - {"tags"} - JUPYTEXT_LAYOUT_KEYS)
    if extra:
        raise SourceError(f"{where}: unsupported cell metadata {extra} (only tags=[...] is used)")
    roles = {}
    for tag in cell.metadata.get("tags", []):
        key, _, value = tag.partition(":")
        if (
            key not in ("setup", "exercise-test", "answer", "points", "locked")
            or key in roles
            or (key == "setup") == bool(value)
        ):
            raise SourceError(
                f"{where}: bad tag {tag!r}; a cell takes one of 'setup', "
                "'exercise-test:<function>', 'answer:q_<id>' (+ 'points:<n>'), "
                "'locked:<grade_id>'"
            )
        roles[key] = value
    kind, text = cell.cell_type, cell.source
    if "points" in roles and "answer" not in roles:
        raise SourceError(
            f"{where}: 'points:' goes with an 'answer:' tag only (exercise points "
            "come from course_lib/core/registry.py)"
        )
    if len(roles.keys() - {"points"}) > 1:
        raise SourceError(f"{where}: one role per cell, got tags {cell.metadata['tags']}")
    if "setup" in roles or "exercise-test" in roles:
        if kind != "code" or text.strip():
            raise SourceError(
                f"{where}: a {'setup' if 'setup' in roles else 'exercise-test'} cell is "
                "an empty code cell (nbbuild writes its source)"
            )
        if "setup" in roles:
            return setup(unit)
        try:
            return exercise_test(roles["exercise-test"])
        except KeyError as e:
            raise SourceError(f"{where}: {e.args[0]}") from None
    if "answer" in roles:
        if kind != "markdown" or not roles["answer"].startswith("q_") or not text.strip():
            raise SourceError(
                f"{where}: an answer cell is a markdown cell holding the question, "
                f"tagged 'answer:q_<id>', got a {kind} cell tagged answer:{roles['answer']}"
            )
        points = roles.get("points", str(DEFAULT_ANSWER_POINTS))
        if not points.isdigit():
            raise SourceError(f"{where}: points must be a whole number, got {points!r}")
        return answer(roles["answer"], text, points=int(points))
    if kind == "markdown":
        return md(with_metadata(text, unit), grade_id=roles.get("locked"), locked="locked" in roles)
    return code(text, grade_id=roles.get("locked"), locked="locked" in roles)


def cells_from_percent(source: str | Path) -> list:
    """The nbgrader cells of a percent source ``NN_name.py`` (see the module docstring)."""
    import jupytext

    source = Path(source)
    unit = _unit_of(source)
    nb = jupytext.read(source, fmt="py:percent")
    out = []
    for i, cell in enumerate(nb.cells):
        first = cell.source.strip().splitlines()
        label = f"{cell.cell_type}, " + (f"starts {first[0][:50]!r}" if first else "empty")
        out.append(_cell_from_percent(cell, unit, f"{source.name} cell {i + 1} ({label})"))
    return out


def build(source: str | Path, target: str | Path | None = None) -> Path:
    """Write the nbgrader notebook of a percent source (default: next to it, ``.ipynb``)."""
    source = Path(source)
    return write(cells_from_percent(source), target or source.with_suffix(".ipynb"))


def sources(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(Path(folder).glob("[0-9][0-9]_*.py"))


def stale(paths: list[Path], *, fix: bool = False) -> list[str]:
    """One line per percent source whose ``.ipynb`` is missing or differs from what it builds;
    ``fix=True`` also rewrites those notebooks."""
    problems = []
    for src in map(Path, paths):
        if not src.is_file():
            raise SourceError(f"{src}: no such notebook source")
        nb_path, fresh = src.with_suffix(".ipynb"), render(notebook(cells_from_percent(src)))
        if nb_path.exists() and nb_path.read_text(encoding="utf-8") == fresh:
            continue
        problems.append(f"{nb_path} is {'stale' if nb_path.exists() else 'missing'}")
        if fix:
            nb_path.write_text(fresh, encoding="utf-8")
    return problems


def orphans(folder: Path = NOTEBOOKS) -> list[str]:
    """One line per ``NN_*.ipynb`` of ``folder`` without its percent source."""
    return [
        f"{nb} has no source {nb.with_suffix('.py').name}"
        for nb in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
        if not nb.with_suffix(".py").exists()
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="course build-notebooks",
        description="Write notebooks/NN_name.ipynb from notebooks/NN_name.py "
        "(only the notebooks that changed).",
    )
    ap.add_argument("sources", nargs="*", type=Path, help="percent sources (default: notebooks/NN_*.py)")
    ap.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming every stale or missing notebook"
    )
    args = ap.parse_args(argv)
    paths = args.sources or sources()
    try:
        changed = stale(paths, fix=not args.check)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    errors = [] if args.sources else orphans()
    if args.check:
        errors = changed + errors
        if errors:
            errors.append("run: course build-notebooks")
    else:
        print("\n".join(f"rebuilt: {c}" for c in changed) or f"{len(paths)} notebooks up to date")
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
