"""`course release`: nbgrader generate_assignment for every unit -> exercises/, plus the student
bundle (folder + zip) with no solutions, no notebook sources and no hidden tests.

nbgrader wants ``<root>/<source_directory>/<assignment>/<notebook>.ipynb``; our sources are flat
in ``notebooks/``. A small *course root* (``build/nbgrader`` for the repository's
nbgrader_config.py, a temporary folder for `course release` / `course autograde`) holds
``notebooks/exercises -> <repo>/notebooks`` (a symlink): one nbgrader assignment called
``exercises`` whose notebooks are the unit notebooks. generate_assignment writes
``<root>/release/exercises/*.ipynb``, which is copied to ``exercises/``.

    course release                 # exercises/ + release/rl-course/ + release/rl-course.zip
    course release --out DIR       # the bundle in DIR instead of release/
    course release --check         # only verify that exercises/ is up to date (exit 1 if stale)
    course release --units 01,02,03,06
                                   # a syllabus subset: only those notebooks in the bundle, or exit 2
                                   # naming the units whose exercises they need (subset_problems)
    course release --repo-url https://github.com/OWNER/REPO.git
                                   # Colab notebooks clone the bundle from there (+ README badges);
                                   # publish release/rl-course as that repository

Without --repo-url the notebooks' first cell installs the course on Colab from the rl-course.zip
that the student uploads. No address is ever made up.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

from course_instructor import first_cell
from course_lib.core import registry as exercises

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "exercises"
BUNDLE_NAME = "rl-course"
EXERCISE_MODULES = tuple(exercises.modules())  # the student files nbgrader must not overwrite

# Files of the instructor repository that ship to students (relative to the repo root).
BUNDLE_FILES = ("setup.sh", "environment.yml", "pyproject.toml")
# What ships, by audience: the whole student package `course_lib` (exercise stubs, checks,
# trainers, labs, core). Instructor code lives in other packages (course_instructor, solutions)
# and never ships; nothing inside course_lib is instructor-only, so there is no deny-list.
STUDENT_PACKAGES = ("course_lib",)
# Strings that must never appear in the release.
FORBIDDEN_STRINGS = (
    "COURSE-SOLUTION-CANARY",
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "HIDDEN TESTS",
    "hidden_check",
    "course_instructor.grading.hidden",  # the hidden cases
)
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".sh", ".yml", ".yaml", ".toml", ".json", ".cfg", ".ini"}


# --- the nbgrader course root -------------------------------------------------------------------
def source_notebooks(source_dir: Path | None = None) -> list[Path]:
    source_dir = Path(source_dir or REPO / "notebooks")
    return sorted(p for p in source_dir.glob("[0-9][0-9]_*.ipynb"))


def make_course_root(root: Path, source_dir: Path | None = None) -> Path:
    """root/notebooks/exercises -> source_dir (symlink; a copy where symlinks fail)."""
    source_dir = Path(source_dir or REPO / "notebooks").resolve()
    link = root / "notebooks" / ASSIGNMENT
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and Path(os.path.realpath(link)) == source_dir:
        return root
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    try:
        link.symlink_to(os.path.relpath(source_dir, link.parent), target_is_directory=True)
    except OSError:  # e.g. no symlinks on this file system: copy the notebooks instead
        link.mkdir()
        for nb in source_notebooks(source_dir):
            shutil.copy(nb, link / nb.name)
    return root


def nbgrader_config(root: Path, *, cell_timeout: int = 60, kernel_name: str | None = None):
    """The nbgrader configuration of this course (the repository's nbgrader_config.py uses it too)."""
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = "rl-posttraining"
    c.CourseDirectory.source_directory = "notebooks"
    c.CourseDirectory.release_directory = "release"
    c.CourseDirectory.db_url = f"sqlite:///{Path(root) / 'gradebook.db'}"
    c.CourseDirectory.ignore = [
        ".ipynb_checkpoints",
        "*.pyc",
        "__pycache__",
        "feedback",
        "*.py",  # notebooks/NN_name.py: the jupytext sources of the .ipynb
        "*.bak",
        ".DS_Store",
    ]
    # Keep the student's own course_lib when autograding (nbgrader would otherwise overwrite every
    # non-notebook file of a submission with the copy from the source folder).
    c.Autograde.exclude_overwriting = {ASSIGNMENT: [f"course_lib/{m}.py" for m in EXERCISE_MODULES]}
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.enforce_metadata = True
    # Per-cell timeout while grading (nbgrader's default is 30 s): set on purpose. Under
    # NBGRADER_EXECUTION the notebooks' training cells shrink to a few steps, so 60 s is ample;
    # a cell that needs longer is a bug (or an infinite loop) and fails instead of hanging.
    c.Execute.timeout = cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.Execute.startup_timeout = 120
    # The kernel nbgrader executes with. nbgrader's autograde first overwrites a submission's
    # kernelspec with the source notebook's ("rl-course", the students' kernel from setup.sh), and
    # nbclient then starts the kernel the notebook names unless Execute.kernel_name is set. A
    # grading machine need not have run setup.sh, so plain nbgrader commands run "python3":
    # ipykernel's own kernel of the Python that nbgrader runs in. (The course's grader runs the
    # notebooks in its sandbox with its own "course-grader" kernel, grading/nbgrader_run.py.)
    c.Execute.kernel_name = kernel_name or "python3"
    # formgrader renders submissions in the instructor's logged-in session: besides the grader's own
    # neutralising of what a submission produced (grading/inert.py), nbconvert's HTML sanitiser
    c.HTMLExporter.sanitize_html = True
    c.GenerateAssignment.create_assignment = True
    c.Exchange.root = str(Path(root) / "exchange")  # not used (no JupyterHub exchange); keeps nbgrader quiet
    return c


def ensure_scripts_on_path() -> None:
    """nbgrader runs the `alembic` console script by name: put this interpreter's bin/ first on
    PATH (it is missing when the venv's python is called without activating the venv)."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in parts if p])


def _api(config):
    ensure_scripts_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir, config=config)


def generate(
    exercises_dir: Path | None = None,
    source_dir: Path | None = None,
    root: Path | None = None,
    quiet: bool = True,
) -> list[Path]:
    """nbgrader generate_assignment for every unit notebook; the result replaces exercises_dir."""
    exercises_dir = Path(exercises_dir or REPO / "exercises")
    notebooks = source_notebooks(source_dir)
    if not notebooks:
        raise FileNotFoundError(f"no unit notebooks NN_*.ipynb in {source_dir or REPO / 'notebooks'}")
    tmp = None
    if root is None:
        tmp = tempfile.mkdtemp(prefix="course_release_")
        root = Path(tmp)
    try:
        make_course_root(Path(root), source_dir)
        api = _api(nbgrader_config(Path(root)))
        result = api.generate_assignment(ASSIGNMENT, force=True, create=True)
        if not result.get("success"):
            raise RuntimeError(
                f"nbgrader generate_assignment failed:\n{result.get('error') or result.get('log')}"
            )
        out_dir = Path(root) / "release" / ASSIGNMENT
        exercises_dir.mkdir(parents=True, exist_ok=True)
        for old in exercises_dir.glob("*.ipynb"):
            old.unlink()
        written = []
        for nb in sorted(out_dir.glob("*.ipynb")):
            dst = exercises_dir / nb.name
            shutil.copy(nb, dst)
            written.append(dst)
        if not quiet:
            print(f"generated {len(written)} notebooks -> {exercises_dir}")
        return written
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# --- staleness ------------------------------------------------------------------------------------
def notebook_signature(path: Path) -> list[dict]:
    """What must agree between two generated notebooks: cell types, sources, nbgrader metadata
    (minus the checksums and fields nbgrader recomputes)."""
    nb = nbformat.read(str(path), as_version=4)
    sig = []
    for cell in nb.cells:
        meta = dict(cell.get("metadata", {}).get("nbgrader", {}))
        for k in ("checksum", "cell_type"):
            meta.pop(k, None)
        sig.append({"cell_type": cell.cell_type, "source": cell.source, "nbgrader": meta})
    return sig


def stale_notebooks(exercises_dir: Path | None = None, source_dir: Path | None = None) -> list[str]:
    """Notebooks of exercises_dir that differ from a fresh generation (missing / extra / changed)."""
    exercises_dir = Path(exercises_dir or REPO / "exercises")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp) / "ex", source_dir)
        problems = []
        have = {p.name for p in exercises_dir.glob("*.ipynb")}
        want = {p.name for p in fresh}
        problems += [f"missing {n}" for n in sorted(want - have)]
        problems += [f"extra {n}" for n in sorted(have - want)]
        for p in fresh:
            if p.name in have and notebook_signature(p) != notebook_signature(exercises_dir / p.name):
                problems.append(f"changed {p.name}")
        return problems


# --- a syllabus subset (--units) ------------------------------------------------------------------
def parse_units(spec: str) -> list[str]:
    """``"1,02, 6"`` -> ``["01", "02", "06"]``; a unit the course does not have raises ValueError."""
    units = []
    for part in spec.split(","):
        part = part.strip()
        if not part.isdigit() or f"{int(part):02d}" not in exercises.NOTEBOOKS:
            raise ValueError(f"--units: no unit {part!r}; the units are {', '.join(exercises.NOTEBOOKS)}")
        units.append(f"{int(part):02d}")
    return sorted(set(units))


def _exercise_refs(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(exercises a module / cell calls through their module -- ``kl.kl_estimate`` after ``from
    course_lib import kl`` -- or imports by name, the course_lib modules it imports)."""
    mods = set(exercises.modules())
    aliases, found, imported = {}, set(), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").split(".")[0] == "course_lib":
            for a in n.names:
                if n.module == "course_lib" and a.name in mods:
                    aliases[a.asname or a.name] = a.name
                elif n.module.split(".")[-1] in mods and a.name in exercises.BY_NAME:
                    found.add(a.name)
                else:
                    imported |= {n.module, f"{n.module}.{a.name}"}
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases:
            ex = exercises.BY_NAME.get(n.attr)
            if ex and ex.module == aliases[n.value.id]:
                found.add(n.attr)
    return found, imported


def notebook_uses(nb_path: Path) -> set[str]:
    """The exercises a unit notebook runs: called in its cells or in the trainers / labs it imports
    (``course_lib.trainers.*``, ``course_lib.labs.*``, followed through their own such imports).
    Static, so a lower bound: a call hidden behind ``course_lib.core`` is not seen."""
    nb = nbformat.read(str(nb_path), as_version=4)
    found, todo, seen = set(), [], set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(x for x in cell.source.splitlines() if not x.lstrip().startswith(("%", "!")))
        try:
            f, m = _exercise_refs(ast.parse(src))
        except SyntaxError:
            continue
        found |= f
        todo += list(m)
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith(("course_lib.trainers", "course_lib.labs")):
            continue
        seen.add(name)
        path = REPO / Path(*name.split("."))
        path = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
        if path.is_file():
            f, m = _exercise_refs(ast.parse(path.read_text()))
            found |= f
            todo += list(m)
    return found


def subset_problems(units: list[str], source_dir: Path | None = None) -> list[str]:
    """Why releasing only `units` would leave students stuck: one line per missing unit, naming
    the exercises needed and who needs them -- an exercise that calls another one (registry
    ``requires``, transitively) or a unit notebook that runs it (:func:`notebook_uses`)."""
    need: dict[str, dict[str, set[str]]] = {}  # missing unit -> {needed exercise: {needed by}}
    order = {e.name: i for i, e in enumerate(exercises.EXERCISES)}
    for ex in exercises.EXERCISES:
        if ex.unit in units:
            for pre in exercises.prerequisites(ex.name):
                if pre.unit not in units:
                    need.setdefault(pre.unit, {}).setdefault(pre.name, set()).add(f"{ex.number} {ex.name}")
    for nb in source_notebooks(source_dir):
        if nb.name[:2] in units:
            for name in notebook_uses(nb):
                pre = exercises.get(name)
                if pre.unit not in units:
                    need.setdefault(pre.unit, {}).setdefault(pre.name, set()).add(f"notebook {nb.stem}")
    return [
        f"unit {u} ({exercises.NOTEBOOKS.get(u, '?')}): "
        + "; ".join(
            f"{exercises.get(n).number} {n} (needed by {', '.join(sorted(by))})"
            for n, by in sorted(need[u].items(), key=lambda kv: order[kv[0]])
        )
        for u in sorted(need)
    ]


# --- the student bundle ---------------------------------------------------------------------------
def public_tests(tests_dir: Path | None = None) -> list[Path]:
    """Test files that need neither solutions/ nor the instructor's notebooks: they ship.

    A test file is public unless its text mentions solutions, hidden tests, executed notebooks,
    the instructor pipeline (the graded nbgrader batch) or the maintainers' tooling (pre-commit,
    which the student copy does not carry). conftest.py always ships (fixtures only). The files keep
    their folder under tests/ in the bundle, so a test has the same path in both copies."""
    tests_dir = Path(tests_dir or REPO / "tests")
    private_markers = (
        "solutions",
        "run_notebook",
        "hidden",
        "COURSE_LIB_SOLUTIONS",
        "course_instructor",
        "notebooks/",
        "nbbuild",
        "nbgrader_batch",
        ".pre-commit-config",
    )
    out = [tests_dir / "conftest.py"] if (tests_dir / "conftest.py").exists() else []
    for p in sorted(tests_dir.rglob("test_*.py")):
        text = p.read_text(errors="replace")
        if not any(m in text for m in private_markers):
            out.append(p)
    return out


# The student README: this template with its Colab section filled in (badges or the zip route).
STUDENT_README_TEMPLATE = Path(__file__).resolve().parent / "templates" / "student_README.md"
# The Validate button's settings (JupyterLab reads nbgrader_config.py from the folder it starts in).
STUDENT_NBGRADER_CONFIG = Path(__file__).resolve().parent / "templates" / "student_nbgrader_config.py"
COLAB_PLACEHOLDER = "{{COLAB_SECTION}}"


def colab_section(notebooks: list[str], repo_url: str | None = None, branch: str = "main") -> str:
    """The student README's Colab section: badges from a GitHub `repo_url`, else the zip route."""
    lines = ["## Start on Google Colab", ""]
    badges = [(nb, first_cell.colab_badge_url(repo_url, nb, branch)) for nb in notebooks] if repo_url else []
    if badges and all(url for _, url in badges):
        lines += [
            "Open a unit in Colab and run its first cell: it clones the course from",
            f"`{repo_url}` and installs what Colab lacks (Colab's torch, numpy and Jupyter stay).",
            "",
        ]
        lines += [
            f"- [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url}) `{nb}`"
            for nb, url in badges
        ]
        lines += ["", 'Save your work with File > Save a copy in Drive (it goes to "Colab Notebooks").']
    elif repo_url:
        lines += [
            "Upload a notebook from `exercises/` (File > Upload notebook) and run its first cell: it",
            f"clones the course from `{repo_url}` and installs what Colab lacks.",
        ]
    else:
        lines += [
            "1. Upload `rl-course.zip` (the file this folder came in) with Colab's Files panel",
            "   (folder icon on the left) into `/content`, or into My Drive if you set",
            "   `KEEP_WORK_ON_DRIVE = True`.",
            "2. Upload a notebook from `exercises/` (File > Upload notebook) and run its first cell:",
            "   it unpacks the zip into `rl-course/` and installs what Colab lacks (Colab's torch,",
            "   numpy and Jupyter stay). If something is missing it stops with one message saying",
            "   what to do.",
        ]
    lines += [
        "",
        "Set `KEEP_WORK_ON_DRIVE = True` in the first cell to keep the course folder, and your",
        "`course_lib` edits, on Google Drive across sessions (otherwise they end with the runtime).",
        "The notebooks name the kernel `rl-course` (the one `setup.sh` registers on a laptop);",
        'Colab runs its own Python 3 instead and may say so ("defaulting to python3"): expected.',
        "Edit the exercise files with Colab's file browser (`rl-course/course_lib/*.py`); the",
        "notebooks reload them automatically (autoreload). With a GPU (Runtime > Change runtime type",
        "> T4) the notebooks use the `gpu` profile; the first cell prints the device and dtype. A T4",
        "has no bfloat16, so the course never uses bf16 there (float16 is its mixed precision), and",
        "batch sizes shrink to fit the GPU's memory.",
        "",
        "",
    ]
    return "\n".join(lines)


def student_readme(notebooks: list[str], repo_url: str | None = None, branch: str = "main") -> str:
    """The student README: :data:`STUDENT_README_TEMPLATE` with :func:`colab_section` in its place."""
    template = STUDENT_README_TEMPLATE.read_text()
    if template.count(COLAB_PLACEHOLDER) != 1:
        raise ValueError(f"{STUDENT_README_TEMPLATE} must hold {COLAB_PLACEHOLDER} exactly once")
    return template.replace(COLAB_PLACEHOLDER, colab_section(notebooks, repo_url, branch).rstrip("\n"))


def set_repo_url(notebook: Path, repo_url: str) -> None:
    """Write `repo_url` into the set-up cell of a released notebook (and its nbgrader checksum,
    so that nbgrader's Validate does not report a changed locked cell)."""
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(str(notebook), as_version=4)
    cell = nb.cells[0]
    if not cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("setup_"):
        raise ValueError(f"{notebook.name}: the first cell is not the set-up cell")
    cell.source = first_cell.with_repo_url(cell.source, repo_url)
    if "checksum" in cell.metadata["nbgrader"]:
        cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    nbformat.write(nb, str(notebook))


def build_bundle(
    out_dir: Path, exercises_dir: Path | None = None, repo_url: str | None = None, branch: str = "main"
) -> Path:
    """out_dir/rl-course/ (+ out_dir/rl-course.zip): what a student gets. With `repo_url` (where
    the instructor publishes this folder as a git repository) every notebook's first cell clones
    from it on Colab and the README gets "Open in Colab" badges (GitHub addresses)."""
    exercises_dir = Path(exercises_dir or REPO / "exercises")
    out_dir = Path(out_dir)
    bundle = out_dir / BUNDLE_NAME
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    (bundle / "exercises").mkdir()
    for nb in sorted(exercises_dir.glob("*.ipynb")):
        shutil.copy(nb, bundle / "exercises" / nb.name)
        if repo_url:
            set_repo_url(bundle / "exercises" / nb.name, repo_url)

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_solutions_cache", "*.egg-info")
    for package in STUDENT_PACKAGES:
        shutil.copytree(REPO / package, bundle / package, ignore=ignore)
    for f in BUNDLE_FILES:
        if (REPO / f).exists():
            shutil.copy(REPO / f, bundle / f)
    tests_dir = REPO / "tests"
    for t in public_tests(tests_dir):
        (bundle / "tests" / t.relative_to(tests_dir)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(t, bundle / "tests" / t.relative_to(tests_dir))
    shutil.copy(STUDENT_NBGRADER_CONFIG, bundle / "nbgrader_config.py")
    notebooks = sorted(p.name for p in (bundle / "exercises").glob("*.ipynb"))
    (bundle / "README.md").write_text(student_readme(notebooks, repo_url, branch))
    (bundle / ".gitignore").write_text(
        ".venv/\n__pycache__/\n*.egg-info/\ncheckpoints/\noutputs/\nsubmission-*.zip\n.ipynb_checkpoints/\n"
    )
    zip_path = out_dir / f"{BUNDLE_NAME}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(bundle.rglob("*")):
            if p.is_file():
                z.write(p, Path(BUNDLE_NAME) / p.relative_to(bundle))
    return bundle


def scan_for_leaks(path: Path) -> list[str]:
    """Everything in a release folder or zip that must not be there."""
    path = Path(path)
    problems = []

    def check(name: str, data: bytes):
        parts = Path(name).parts
        if "solutions" in parts or "course_instructor" in parts or "notebooks" in parts[:2]:
            problems.append(f"{name}: instructor-only folder")
        if Path(name).suffix in TEXT_SUFFIXES or Path(name).suffix == "":
            text = data.decode("utf-8", "replace")
            for s in FORBIDDEN_STRINGS:
                if s in text:
                    problems.append(f"{name}: contains {s!r}")

    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    check(info.filename, z.read(info))
    else:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                check(str(p.relative_to(path)), p.read_bytes() if p.stat().st_size < 20 * 2**20 else b"")
    return problems


def release(
    out_dir: Path | None = None,
    exercises_dir: Path | None = None,
    source_dir: Path | None = None,
    repo_url: str | None = None,
    branch: str = "main",
    units: list[str] | None = None,
) -> dict:
    """exercises_dir + the bundle; `units` = only those notebooks (ValueError naming the units
    their exercises need when they are not all in it)."""
    exercises_dir = Path(exercises_dir or REPO / "exercises")
    if repo_url:
        repo_url = first_cell.check_repo_url(repo_url)  # fail before the slow part
    if units:
        problems = subset_problems(units, source_dir)
        if problems:
            raise ValueError(
                f"--units {','.join(units)} leaves out what they need; add these units:\n  "
                + "\n  ".join(problems)
            )
        subset = Path(tempfile.mkdtemp(prefix="course_subset_"))
        for nb in source_notebooks(source_dir):
            if nb.name[:2] in units:
                shutil.copy(nb, subset / nb.name)
        try:
            written = generate(exercises_dir, subset)
        finally:
            shutil.rmtree(subset, ignore_errors=True)
    else:
        written = generate(exercises_dir, source_dir)
    bundle = build_bundle(Path(out_dir or REPO / "release"), exercises_dir, repo_url, branch)
    problems = scan_for_leaks(bundle) + scan_for_leaks(bundle.parent / f"{BUNDLE_NAME}.zip")
    return {
        "notebooks": [str(p) for p in written],
        "bundle": str(bundle),
        "zip": str(bundle.parent / f"{BUNDLE_NAME}.zip"),
        "leaks": problems,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course release", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", default=str(REPO / "release"), help="where the student bundle goes (default release/)"
    )
    ap.add_argument(
        "--exercises",
        default=None,
        help="generated notebooks (default exercises/; with --units OUT/exercises-subset)",
    )
    ap.add_argument("--source", default=str(REPO / "notebooks"), help="source notebooks (default notebooks/)")
    ap.add_argument(
        "--repo-url",
        default=None,
        metavar="URL",
        help="git address where you publish the student bundle (release/rl-course): written into "
        "every notebook's first cell for Colab, plus Open-in-Colab badges in its README",
    )
    ap.add_argument("--branch", default="main", help="the branch the Colab badges open (default main)")
    ap.add_argument("--check", action="store_true", help="only check that exercises/ is up to date")
    ap.add_argument(
        "--units",
        default=None,
        metavar="NN,NN,...",
        help="release only these units (e.g. 01,02,03,06); exit 2 naming the units their exercises need",
    )
    args = ap.parse_args(argv)
    try:
        units = parse_units(args.units) if args.units else None
    except ValueError as e:
        print(f"course release: {e}", file=sys.stderr)
        return 2
    if args.exercises is None:
        args.exercises = str(Path(args.out) / "exercises-subset" if units else REPO / "exercises")
    if args.check:
        problems = stale_notebooks(Path(args.exercises), Path(args.source))
        print(
            "exercises/ is up to date"
            if not problems
            else "exercises/ is stale: " + ", ".join(problems) + "\n  run `course release` to regenerate it"
        )
        return 1 if problems else 0
    try:
        info = release(
            Path(args.out), Path(args.exercises), Path(args.source), args.repo_url, args.branch, units=units
        )
    except ValueError as e:
        print(f"course release: {e}", file=sys.stderr)
        return 2
    print(f"exercises: {len(info['notebooks'])} notebooks in {args.exercises}")
    print(f"student bundle: {info['bundle']}\n              + {info['zip']}")
    if info["leaks"]:
        print("LEAK CHECK FAILED:\n  " + "\n  ".join(info["leaks"]), file=sys.stderr)
        return 1
    print("leak check: no solution code, canary or hidden test in the bundle")
    if args.repo_url:
        print(
            f"Colab: the notebooks clone {args.repo_url}; publish {info['bundle']} there "
            f"(branch {args.branch})"
        )
    else:
        print("Colab: no --repo-url, so students upload rl-course.zip (the student README says how)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
