"""Exercise metadata: every registry row has it, and `requires` matches the code.

`requires` is checked against the call graph of the reference implementations: which exercise
functions each solution in ``solutions/<module>.py`` calls -- by name (``from solutions.kl import
kl_estimate``), through a module (``from course_lib import sft; sft.sft_loss(...)``), or through
a private helper of its own module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from course_lib.core import registry

REPO = Path(__file__).resolve().parents[2]


def solution_calls(root: Path = REPO / "solutions") -> dict[str, list[str]]:
    """{exercise: the exercises its solution calls (directly or via private helpers), registry order}."""
    mods = set(registry.modules())
    out: dict[str, list[str]] = {}
    for mod in sorted(mods):
        tree = ast.parse((root / f"{mod}.py").read_text())
        names: dict[str, str] = {}  # local name -> exercise it imports
        aliases: set[str] = set()  # local names bound to an exercise module
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module in ("solutions", "course_lib"):
                aliases |= {a.asname or a.name for a in node.names if a.name in mods}
            elif node.module.split(".")[0] in ("solutions", "course_lib"):
                names |= {a.asname or a.name: a.name for a in node.names if a.name in registry.BY_NAME}
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

        def refs(fn, funcs=funcs, aliases=aliases):
            for n in ast.walk(fn):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                    yield n.id, n.id in funcs
                elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases:
                    yield n.attr, False

        for ex in registry.EXERCISES:
            if ex.module != mod or ex.name not in funcs:
                continue
            seen, todo, found = set(), [ex.name], set()
            while todo:
                f = todo.pop()
                if f in seen:
                    continue
                seen.add(f)
                for name, local in refs(funcs[f]):
                    target = names.get(name, name)
                    if target == ex.name:
                        continue
                    if target in registry.BY_NAME:
                        found.add(target)
                    elif local:
                        todo.append(name)
            out[ex.name] = [e.name for e in registry.EXERCISES if e.name in found]
    return out


def test_call_graph_finds_the_known_calls():
    """The analysis itself: calls by imported name, through a module alias and via helpers."""
    calls = solution_calls()
    assert calls["sft_train_step"] == ["sft_loss"]  # `from course_lib import sft; sft.sft_loss(...)`
    assert "kl_estimate" in calls["ppo_minibatch_loss"]  # imported inside the function
    assert calls["masked_mean"] == []


def test_requires_match_the_solutions_call_graph():
    calls = solution_calls()
    wrong = {
        e.name: {"declared": list(e.requires or ()), "solution calls": calls[e.name]}
        for e in registry.EXERCISES
        if e.name in calls and list(e.requires or ()) != calls[e.name]
    }
    assert not wrong, f"registry `requires` differ from what solutions/ calls (registry order): {wrong}"


def test_every_row_has_metadata():
    """Fails for a row added without difficulty / minutes / requires (fill them in)."""
    missing = []
    for e in registry.EXERCISES:
        bad = [
            what
            for what, ok in (
                ("difficulty (1-3)", e.difficulty in (1, 2, 3)),
                ("minutes (> 0)", isinstance(e.minutes, int) and e.minutes > 0),
                ("requires (a tuple; () for none)", isinstance(e.requires, tuple)),
            )
            if not ok
        ]
        if bad:
            missing.append(f"{e.number} {e.name}: " + ", ".join(bad))
    assert not missing, "registry rows without metadata:\n  " + "\n  ".join(missing)
    units = {e.unit for e in registry.EXERCISES} | set(registry.NOTEBOOKS)
    assert not units - set(registry.UNIT_SECONDS), (
        f"UNIT_SECONDS lacks units {sorted(units - set(registry.UNIT_SECONDS))}"
    )


def test_requires_point_backwards():
    """A prerequisite exists and comes earlier in the course (no cycles, nothing from a later unit)."""
    order = {e.name: i for i, e in enumerate(registry.EXERCISES)}
    for e in registry.EXERCISES:
        for r in e.requires or ():
            assert r in order, f"{e.number} {e.name} requires unknown exercise {r!r}"
            assert order[r] < order[e.name], f"{e.number} {e.name} requires the later exercise {r}"


def test_prerequisites_closure():
    assert [e.name for e in registry.prerequisites("grpo_step")] == [
        "token_logprobs",
        "kl_estimate",
        "masked_mean",
        "grpo_loss",
    ]
    assert registry.prerequisites("format_reward") == []
    with pytest.raises(KeyError, match="no exercise named"):
        registry.prerequisites("nope")


# --- the metadata in the notebooks (course_instructor/nbbuild.py) -------------------------------
def test_nbbuild_puts_the_metadata_under_the_headings():
    from course_instructor import nbbuild

    text = "# Unit 06 — GRPO\n\nIntro.\n\n## 2. Exercise 6.2 — the loss\n\nText.\n\n## Exercise 9.99 — not in the registry"
    out = nbbuild.with_metadata(text, "06")
    lines = out.splitlines()
    ex = registry.get("grpo_loss")
    assert (
        lines[2].startswith(f"*{len(registry.for_unit('06'))} exercises")
        and f"{registry.UNIT_SECONDS['06']} s on 2 CPU cores" in lines[2]
    )
    i = lines.index("## 2. Exercise 6.2 — the loss")
    assert lines[i + 2] == nbbuild.exercise_line(ex)
    assert "difficulty ★★★" in lines[i + 2] and f"{ex.minutes} min" in lines[i + 2]
    assert "calls 2.2 `kl_estimate`, 3.2 `masked_mean`" in lines[i + 2]
    assert out.endswith("## Exercise 9.99 — not in the registry")  # unknown exercise: untouched
    assert nbbuild.with_metadata("# Unit 02 — KL", "06") == "# Unit 02 — KL"  # another unit's title
    bare = registry.Exercise("9.9", "kl", "made_up", 4)  # a row without metadata still renders
    assert nbbuild.exercise_line(bare) == "*4 points*"


def test_built_notebooks_show_each_exercise_line():
    """Every exercise's metadata line is in its built source notebook (stale until rebuilt:
    `course build-notebooks`)."""
    import nbformat

    from course_instructor import nbbuild

    missing = []
    for ex in registry.EXERCISES:
        path = REPO / "notebooks" / f"{ex.notebook}.ipynb"
        if not path.exists():
            continue
        text = "\n".join(
            c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "markdown"
        )
        if nbbuild.exercise_line(ex) not in text:
            missing.append(f"{ex.number} {ex.name} ({path.name})")
    assert not missing, "metadata line missing (run course build-notebooks): " + ", ".join(missing)


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
WORDS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
COUNT = re.compile(
    r"\b(\d+|" + "|".join(WORDS) + r")\s+(?:student\s+|graded\s+|hand-graded\s+|code\s+)?"
    r"(units|notebooks|exercises|code points|written[- ]answer points)\b",
    re.IGNORECASE,
)


def test_metadata_table_in_docs_is_the_registry():
    from course_instructor import nbbuild

    assert nbbuild.metadata_table() in (REPO / "docs" / "instructors.md").read_text(), (
        "docs/instructors.md's Exercise metadata table differs from the registry; paste the output of "
        'python -c "from course_instructor import nbbuild; print(nbbuild.metadata_table())"'
    )


def test_contributing_layout_names_every_exercise_module_and_trainer():
    """CONTRIBUTING's layout lists the exercise modules of the registry and every trainer file."""
    import re

    layout = (REPO / "CONTRIBUTING.md").read_text().split("```")[1]
    files = set(layout.split())
    missing = [m for m in registry.modules() if f"{m}.py" not in files]
    assert not missing, f"CONTRIBUTING.md's layout does not list the exercise modules {missing}"
    listed = re.search(r"one readable file per algorithm\s*\(([^)]*)\)", layout)
    assert listed, "CONTRIBUTING.md's layout no longer lists the trainers"
    trainers = {p.stem for p in (REPO / "course_lib" / "trainers").glob("[!_]*.py")}
    assert {t.strip() for t in listed.group(1).split(",")} == trainers


def test_counts_written_in_the_docs_are_the_registry():
    """A count the registry knows (units, exercises, code points) is either not written as a literal
    in README.md / docs/*.md or equals the registry's; written-answer points live in the notebooks,
    so the docs never state them as a number."""
    truth = {
        "units": len(registry.NOTEBOOKS),
        "notebooks": len(registry.NOTEBOOKS),
        "exercises": len(registry.EXERCISES),
        "code points": sum(e.points for e in registry.EXERCISES),
    }
    wrong = []
    for doc in DOCS:
        for m in COUNT.finditer(doc.read_text()):
            n = int(m.group(1)) if m.group(1).isdigit() else WORDS[m.group(1).lower()]
            kind = m.group(2).lower()
            if kind not in truth or n != truth[kind]:
                wrong.append(
                    f"{doc.relative_to(REPO)}: {m.group(0)!r} (registry: {truth.get(kind, 'not a literal')})"
                )
    assert not wrong, (
        "counts that disagree with course_lib/core/registry.py (write them without a number): "
        + ("; ".join(wrong))
    )


def test_course_run_seconds_in_benchmarks_are_the_registry():
    """docs/benchmarks.md's `course run` table shows the seconds recorded in registry.UNIT_SECONDS
    (the notebooks' title lines and the metadata table read them from there)."""
    text = (REPO / "docs" / "benchmarks.md").read_text()
    table = text.split("<!-- course-run-table -->")[1].split("<!-- /course-run-table -->")[0]
    shown = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| (\d\d) \| (\d+) \|", table, re.M)}
    expected = {u: s for u, s in registry.UNIT_SECONDS.items() if s is not None}
    assert shown == expected, "docs/benchmarks.md's course run table and registry.UNIT_SECONDS disagree"


# --- what training runs need (registry.TRAINER_CALLS / UNIT_TRAINERS) ----------------------------
def trainer_calls(trainer: str) -> list[str]:
    """The exercises `course_lib/trainers/<trainer>.py` calls through their module (``kl.x(...)``),
    registry order."""
    tree = ast.parse((REPO / "course_lib" / "trainers" / f"{trainer}.py").read_text())
    mods = set(registry.modules())
    found = {
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id in mods
        and registry.BY_NAME.get(n.func.attr, None) is not None
        and registry.BY_NAME[n.func.attr].module == n.func.value.id
    }
    return [e.name for e in registry.EXERCISES if e.name in found]


def test_trainer_calls_match_the_trainers():
    trainers = sorted(p.stem for p in (REPO / "course_lib" / "trainers").glob("[!_]*.py"))
    assert sorted(registry.TRAINER_CALLS) == trainers
    wrong = {
        t: {"declared": list(calls), "trainer calls": trainer_calls(t)}
        for t, calls in registry.TRAINER_CALLS.items()
        if list(calls) != trainer_calls(t)
    }
    assert not wrong, f"registry.TRAINER_CALLS differ from what the trainers call (registry order): {wrong}"
    assert all(t in registry.TRAINER_CALLS for ts in registry.UNIT_TRAINERS.values() for t in ts)


def test_check_training_needs_names_every_missing_exercise_at_once(monkeypatch):
    """Unit 09 trains with exercises of units 02, 03 and 06: one message names every one that is
    still a stub, with its unit; nothing is raised once all are written."""
    import importlib

    def stub(*args, **kwargs):
        """Doc."""
        raise NotImplementedError("Exercise (notebook): implement it")

    for e in registry.training_needs("09"):  # all written (the solutions) ...
        monkeypatch.setattr(
            importlib.import_module(f"course_lib.{e.module}"),
            e.name,
            getattr(importlib.import_module(f"solutions.{e.module}"), e.name),
        )
    registry.check_training_needs("09")  # ... : quiet
    from course_lib import grpo, kl

    monkeypatch.setattr(kl, "token_logprobs", stub)  # ... but two
    monkeypatch.setattr(grpo, "group_advantages", stub)
    with pytest.raises(NotImplementedError) as e:
        registry.check_training_needs("09")
    msg = str(e.value)
    assert msg.startswith(
        "Training needs: 2.1 `token_logprobs` (unit 02), 6.1 `group_advantages` (unit 06) — they still "
        "raise NotImplementedError."
    ), msg
    assert "course_lib/grpo.py, course_lib/kl.py" in msg and "kl_estimate" not in msg
    monkeypatch.setattr(kl, "token_logprobs", importlib.import_module("solutions.kl").token_logprobs)
    with pytest.raises(NotImplementedError, match=r"^Training needs: 6\.1 `group_advantages` \(unit 06\) — it "):
        registry.check_training_needs("09")
    assert registry.training_needs("01") == []
    registry.check_training_needs("01")  # a unit without training needs


def test_is_stub_reads_the_body():
    from course_lib import kl
    from solutions import kl as skl

    assert registry.is_stub(kl.__dict__["exact_kl"]) or "COURSE_LIB_SOLUTIONS" in __import__("os").environ
    assert not registry.is_stub(skl.exact_kl)

    def partly(x):
        """Doc."""
        y = x + 1
        raise NotImplementedError("still here")

    def bare():
        raise NotImplementedError

    assert not registry.is_stub(partly) and registry.is_stub(bare) and not registry.is_stub(len)


def test_training_notebooks_name_and_check_their_needs():
    """Each notebook whose training calls earlier units' exercises names them under its title and
    calls the check in its first training cell (before any trainer call that trains)."""
    import nbformat

    from course_instructor import nbbuild

    assert registry.UNIT_TRAINERS.keys() >= {"05", "06", "07", "09"}
    for unit, trainers in registry.UNIT_TRAINERS.items():
        nb = nbformat.read(str(REPO / "notebooks" / f"{registry.NOTEBOOKS[unit]}.ipynb"), as_version=4)
        title = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# Unit"))
        line = nbbuild.needs_line(unit)
        assert line and line in title, f"unit {unit}: needs line missing (run course build-notebooks)"
        assert all(f"`{e.name}`" in line for e in registry.training_needs(unit, earlier_only=True))
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        first = next(
            i
            for i, src in enumerate(code)
            if any(re.search(rf"\b{t}_trainer\.(headline_run|train)\(", src) for t in trainers)
        )
        assert f'registry.check_training_needs("{unit}")' in code[first], (unit, code[first][:200])
        assert not any("check_training_needs" in src for src in code[:first]), unit
