"""The project's import graph keeps its layering (exercise stubs < course_lib.core < course_lib <
solutions < course_instructor) and has no cycle; the graph reader itself finds both on small trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from course_instructor import import_graph

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_has_no_upward_import_and_no_cycle():
    report = import_graph.analyse(ROOT)
    assert report.modules > 50 and report.edges > 100, report  # it read the real tree
    assert report.upward == [], f"imports against the layering: {report.upward}"
    assert report.cycles == [], f"import cycles: {report.cycles}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in import_graph.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return tmp_path


def test_upward_imports_are_found_also_inside_functions_and_relative(tmp_path):
    root = _tree(
        tmp_path,
        {
            "course_lib/kl.py": "",
            "solutions/kl.py": "from course_lib import kl\n",
            "course_lib/core/models.py": "def f():\n    from course_lib import kl\n",
            "course_lib/checks/unit.py": "import solutions.kl\n",
            "solutions/helpers.py": "def f():\n    from course_instructor.grading import run\n",
            "course_instructor/grading/run.py": "from . import other\n",
            "course_instructor/grading/other.py": "from ...course_lib.core import models\n",
        },
    )
    report = import_graph.analyse(root)
    assert report.upward == [
        ("course_lib.checks.unit", "solutions.kl"),
        ("solutions.helpers", "course_instructor.grading.run"),
    ]
    assert report.cycles == []


def test_an_exercise_stub_importing_provided_code_is_upward(tmp_path):
    root = _tree(
        tmp_path,
        {
            "course_lib/kl.py": "from course_lib.core import utils\n",
            "course_lib/core/utils.py": "",
            "solutions/kl.py": "",
        },
    )
    assert import_graph.analyse(root).upward == [("course_lib.kl", "course_lib.core.utils")]


def test_cycles_are_found_through_lazy_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "course_instructor/a.py": "from course_instructor import b\n",
            "course_instructor/b.py": "def f():\n    import course_instructor.c\n",
            "course_instructor/c.py": "from course_instructor.a import thing\n",
            "course_instructor/d.py": "from course_instructor import a\n",
        },
    )
    assert import_graph.analyse(root).cycles == [
        ["course_instructor.a", "course_instructor.b", "course_instructor.c"]
    ]


def test_a_folder_that_is_not_the_repository_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no __init__.py"):
        import_graph.analyse(tmp_path)


def test_sandboxed_code_imports_nothing_of_the_trusted_grader():
    """What runs inside the sandboxes is copied there alone (with wire.py and the student's
    course_lib): an import of a trusted grading module would fail in there, or pull grader code
    next to student code."""
    known = import_graph.modules(ROOT)
    graph = import_graph.edges(known)
    inside = {m for m in known if m.startswith("course_instructor.grading.sandboxed")}
    allowed = inside | {"course_instructor.grading.wire"}
    assert len(inside) > 3
    reaches = {
        (m, t)
        for m in inside | {"course_instructor.grading.wire"}
        for t in graph[m]
        if t not in allowed and not t.startswith("course_lib")
    }
    assert reaches == set(), f"sandboxed code importing the trusted side: {sorted(reaches)}"
