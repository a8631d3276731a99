"""The project's import graph: modules, import edges, imports against the layering, and cycles.

Layers, lowest first (a module may import its own layer and the layers below it, never above):

0. the exercise modules  ``course_lib.<m>`` for each ``solutions.<m>``: the stubs the student edits,
                         which import nothing of the project (provided code calls them through the
                         module, so the solutions switch can rebind them)
1. ``course_lib.core``   provided infrastructure
2. ``course_lib``        the rest of the student package: checks, trainers, labs, cli
3. ``solutions``         the instructor's implementations of the exercises
4. ``course_instructor`` release, course runs and the grader

So ``course_lib`` never imports ``solutions`` or ``course_instructor`` (the student release ships
``course_lib`` alone), and ``solutions`` never imports ``course_instructor`` (solutions are
implementations, not grader logic). Every import counts, also one inside a function: a lazy import
still ties the two modules together. Cycles are strongly connected components of more than one
module.

    python -m course_instructor.import_graph [--root DIR]   # exit status 1 on any upward import or cycle

Only the standard library (``ast``) is used: the graph is read from the source, nothing is imported.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("course_lib", "solutions", "course_instructor")
LAYERS = (("course_lib.core", 1), ("course_lib", 2), ("solutions", 3), ("course_instructor", 4))


def exercise_modules(known: dict[str, Path]) -> set[str]:
    """The stubs: each ``course_lib.<m>`` that has a solution module ``solutions.<m>``."""
    return {
        f"course_lib.{m.split('.')[1]}" for m in known if m.count(".") == 1 and m.startswith("solutions.")
    } & set(known)


def layer(module: str, exercises: set[str]) -> int:
    """The layer of a module name (see the module docstring); `exercises` are the layer-0 stubs."""
    if module in exercises:
        return 0
    for prefix, level in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return level
    raise ValueError(f"{module!r} belongs to none of the layers {[p for p, _ in LAYERS]}")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        base = root / package
        if not (base / "__init__.py").is_file():
            raise FileNotFoundError(
                f"{base} is not a package (no __init__.py): is {root} the repository root?"
            )
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, node: ast.AST, known: dict[str, Path]) -> list[str]:
    """The project modules one import statement of module `name` refers to."""
    candidates: list[str] = []
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # `from pkg import mod` imports the module pkg.mod where there is one, else a name of pkg.
        candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    targets = []
    for candidate in candidates:
        # `import a.b.c` of a missing module: count the nearest enclosing project module.
        while candidate and candidate not in known:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != name:
            targets.append(candidate)
    return targets


def edges(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[name].update(_imported(name, path, node, known))
    return graph


def upward(graph: dict[str, set[str]], exercises: set[str]) -> list[tuple[str, str]]:
    """The imports from a lower layer into a higher one."""
    return sorted(
        (a, b) for a, targets in graph.items() for b in targets if layer(b, exercises) > layer(a, exercises)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


@dataclass
class Report:
    modules: int
    edges: int
    upward: list[tuple[str, str]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)


def analyse(root: Path) -> Report:
    known = modules(root)
    graph = edges(known)
    return Report(
        modules=len(known),
        edges=sum(len(t) for t in graph.values()),
        upward=upward(graph, exercise_modules(known)),
        cycles=cycles(graph),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    report = analyse(args.root)
    print(f"modules: {report.modules}")
    print(f"import edges: {report.edges}")
    print(f"upward imports: {len(report.upward)}")
    for a, b in report.upward:
        print(f"  {a} -> {b}")
    print(f"cycles: {len(report.cycles)}")
    for component in report.cycles:
        print(f"  {' <-> '.join(component)}")
    return 1 if report.upward or report.cycles else 0


if __name__ == "__main__":
    sys.exit(main())
