"""The visible checks (course_lib/checks/): the solutions pass all of them, every stub stops with
its own NotImplementedError, and a plausible wrong implementation of each exercise fails with an
AssertionError that says what was expected."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import math
import re
from pathlib import Path

import pytest
import torch

import course_lib
from course_lib import checks
from course_lib.core.registry import BY_NAME, EXERCISES

pytest.importorskip("solutions")  # instructor-only: the wrong implementations wrap the solutions

from wrong_versions import CHECK_ONLY, VISIBLE_ONLY, WRONG, wrong_id

from solutions import ppo as S_ppo
from solutions import reward_model as S_rm

IDS = [f"{e.number}-{e.name}" for e in EXERCISES]


@pytest.fixture(autouse=True)
def _stubs_after():
    course_lib.use_solutions(False)
    yield
    course_lib.use_solutions(False)


def test_every_registry_exercise_has_a_visible_check():
    missing = [e.name for e in EXERCISES if e.name not in checks.CHECKS]
    assert not missing, f"course_lib/checks/ has no visible check for {missing}: add one"


def test_unknown_name_is_a_keyerror_listing_known_checks():
    with pytest.raises(KeyError) as info:
        checks.check("kl_estimat")
    assert "kl_estimat" in str(info.value) and "kl_estimate" in str(info.value)


CHECK_FILES = sorted(Path(checks.__file__).parent.glob("*.py"))


def test_one_check_file_per_exercise_module():
    modules = {e.module for e in EXERCISES}
    assert modules <= {p.stem for p in CHECK_FILES}, "course_lib/checks/ needs one file per exercise module"
    for m in modules:
        mod = importlib.import_module(f"course_lib.checks.{m}")
        mine = [n for n, (body, _) in checks.CHECKS.items() if body.__module__ == mod.__name__]
        assert sorted(mine) == sorted(e.name for e in EXERCISES if e.module == m), m


def test_checks_never_import_solutions():
    for p in CHECK_FILES:
        src = p.read_text()
        assert not re.search(r"^\s*(from|import)\s+solutions", src, re.M), (
            f"{p.name} must not import solutions"
        )
        assert "COURSE-SOLUTION-CANARY" not in src, p.name


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_solution_passes_its_visible_check(ex, capsys):
    course_lib.use_solutions(True)
    checks.check(ex.name)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    m = re.fullmatch(
        rf"✓ exercise {re.escape(ex.number)} {ex.name}: (\d+)/(\d+) visible checks passed", out[0]
    )
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 2, out[0]


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_stops_the_check_with_its_own_message(ex):
    with pytest.raises(NotImplementedError) as info:
        checks.check(ex.name)
    assert f"Exercise {ex.number}" in str(info.value) and ex.notebook in str(info.value)


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_student_pytest_fails_on_a_stub_naming_the_exercise(ex):
    """tests/exercises/test_exercises.py (shipped): with the stubs every test fails and names its exercise."""
    import test_exercises

    with pytest.raises(
        pytest.fail.Exception, match=rf"exercise {re.escape(ex.number)} `{ex.name}`.*not implemented yet"
    ):
        test_exercises.test_exercise(ex)


def test_student_pytest_file_ships():
    from course_instructor import release

    assert Path(__file__).with_name("test_exercises.py") in release.public_tests()


def test_student_runs_pytest_k_grpo_without_the_solutions(tmp_path):
    """As in the student bundle (no solutions package): `pytest -k grpo` runs the unit-06
    exercises, and each stub fails naming its exercise."""
    import subprocess
    import sys

    block = tmp_path / "solutions"
    block.mkdir()
    (block / "__init__.py").write_text("raise ImportError('not in the student bundle')\n")
    # run from tmp_path: `python -m pytest` puts the cwd first on sys.path, so `solutions` is the block
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    tests = Path(__file__).parent
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "grpo",
            str(tests / "test_exercises.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    unit06 = [e for e in EXERCISES if e.module == "grpo"]
    assert f"{len(unit06)} failed, {len(EXERCISES) - len(unit06)} deselected" in r.stdout, r.stdout[-3000:]
    for number, name in ((e.number, e.name) for e in unit06):
        assert f"exercise {number} `{name}` (course_lib/grpo.py) is not implemented yet" in r.stdout


def test_student_pytest_shows_the_check_message_for_a_wrong_function(monkeypatch):
    import test_exercises

    course_lib.use_solutions(True)
    no_min = next(w[2] for w in WRONG if w[0] == "grpo_loss" and "without the min" in w[1])
    monkeypatch.setattr(course_lib.grpo, "grpo_loss", no_min)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exercise 6\.2 `grpo_loss`.*expected.*hint: "):
        test_exercises.test_exercise(BY_NAME["grpo_loss"])


def test_stub_of_a_dependency_propagates_unchanged():
    """sft_train_step (solution) calls the student's sft_loss: if that is still a stub, the
    student sees exercise 3.3's message, not a failed check."""
    course_lib.use_solutions(True)
    stub = course_lib.core.switch._ORIGINALS[("sft", "sft_loss")]
    course_lib.sft.sft_loss = stub
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.3"):
        checks.check("sft_train_step")


# ----------------------------------------------------------------- plausible wrong implementations
# The catalogue is wrong_versions.py (test_hidden_cases.py runs it through the hidden cases).


def test_every_exercise_has_wrong_implementations():
    names = {w[0] for w in WRONG}
    missing = [e.name for e in EXERCISES if e.name not in names]
    assert not missing, (
        f"add plausible wrong implementations for {missing} to tests/exercises/wrong_versions.py"
    )


@pytest.mark.parametrize("w", WRONG + VISIBLE_ONLY + CHECK_ONLY, ids=wrong_id)
def test_wrong_implementation_fails_with_expected_and_hint(w, monkeypatch):
    name, label, fn, phrase = w
    ex = BY_NAME[name]
    course_lib.use_solutions(True)  # dependencies (e.g. sft_loss inside sft_train_step) are right
    monkeypatch.setattr(importlib.import_module(f"course_lib.{ex.module}"), name, fn)
    with pytest.raises(AssertionError) as info:
        checks.check(name)
    msg = str(info.value)
    assert "expected" in msg and "got" in msg and "hint" in msg, msg
    assert f"exercise {ex.number}" in msg, msg
    assert phrase in msg, f"{label}: the hint should name the property ({phrase!r}):\n{msg}"


def test_no_hint_spells_out_the_answer():
    """Tier-1 hints name a property, never the one-line code that solves the exercise."""
    answers = [
        "re.fullmatch(FORMAT_PATTERN",
        "get_scorer().positive_probability(texts)",
        "len(set(words)) / len(words)",
        ".gather(-1, tokens.unsqueeze(-1))",
        "text.lower().split()",
        "rewards.view(-1, group_size)",
        "chunk(2)",
        "logp.detach()",
        "logsumexp(logits) - sum(p * logits)",
        "F.log_softmax",
    ]
    texts = [
        node.value
        for p in CHECK_FILES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    leaked = [a for a in answers if any(a in s for s in texts)]
    assert not leaked, f"hints that give the answer away: {leaked}"


def _message_of(monkeypatch, name: str, label_part: str, hint: int = 1) -> str:
    """The failure message of check(name) on the WRONG variant whose label contains label_part."""
    course_lib.use_solutions(True)
    fn = next(w[2] for w in WRONG if w[0] == name and label_part in w[1])
    monkeypatch.setattr(importlib.import_module(f"course_lib.{BY_NAME[name].module}"), name, fn)
    with pytest.raises(AssertionError) as info:
        checks.check(name, hint=hint)
    return str(info.value)


def test_second_hint_tier_only_on_request(monkeypatch):
    first = _message_of(monkeypatch, "grpo_loss", "without the min")
    second = _message_of(monkeypatch, "grpo_loss", "without the min", hint=2)
    assert "hint 2:" not in first and "check('grpo_loss', hint=2)" in first, first
    assert "hint 2:" in second and "rho = 1.5, A = -1" in second, second
    with pytest.raises(ValueError, match="hint must be 1 or 2"):
        checks.check("grpo_loss", hint=3)


def test_integer_tensors_print_as_integers(monkeypatch):
    msg = _message_of(monkeypatch, "tokenize_prompt_and_completion", "mask not shifted")
    assert "got:      [[0, 0, 1], [0, 1, 1]]" in msg, msg


def test_a_component_crash_names_the_component_not_the_checker(monkeypatch):
    msg = _message_of(monkeypatch, "combine_rewards", "keyword")
    assert "answer_value" in msg and "<locals>" not in msg and "_combine_rewards" not in msg, msg


def test_failure_message_names_case_expected_and_got(monkeypatch):
    msg = _message_of(monkeypatch, "kl_estimate", "logp - ref_logp")
    assert "case 'k1 = -log r'" in msg and "[1.0, -1.0, 0.0]" in msg and "[-1.0, 1.0, 0.0]" in msg, msg


@pytest.mark.parametrize(
    "name, label, names_the_mistake",
    [
        ("tokenize_prompt_and_completion", "appends EOS", "an EOS token (id 1) appears"),
        ("tokenize_prompt_and_completion", "joined string", "tokenized as ONE string"),
        ("grpo_step", "not detached", "the gradient is ZERO"),
    ],
)
def test_hints_name_the_mistake_not_a_neighbouring_one(monkeypatch, name, label, names_the_mistake):
    """These mistakes get a hint that names them, not "input_ids drop the LAST position" or a
    zero_grad hint, which would send the student to the wrong fix."""
    msg = _message_of(monkeypatch, name, label)
    assert names_the_mistake in msg and "LAST position" not in msg and "zero_grad" not in msg, msg


def test_a_crash_inside_the_student_function_becomes_a_failed_case(monkeypatch):
    def broken(logp, ref_logp, kind="k3"):
        return logp.view(7)  # RuntimeError: shape '[7]' is invalid

    monkeypatch.setattr(course_lib.kl, "kl_estimate", broken)
    with pytest.raises(AssertionError) as info:
        checks.check("kl_estimate")
    assert "RuntimeError" in str(info.value) and "expected" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_detached_loss_fails_the_gradient_check(monkeypatch):
    def detached(r_chosen, r_rejected, margin=None):
        return S_rm.bradley_terry_loss(r_chosen, r_rejected, margin).detach()

    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.reward_model, "bradley_terry_loss", detached)
    with pytest.raises(AssertionError, match="requires_grad"):
        checks.check("bradley_terry_loss")


def _logsig(x):
    return -math.log1p(math.exp(-x))


LITERALS = [  # (check file, the literal written there, the same value derived from first principles)
    ("kl", "0.1438410", 0.5 * math.log(4 / 3)),  # exact_kl two coins
    ("kl", "0.3678794", math.exp(-1) - 1 + 1),  # k3 at log r = -1
    ("sft", "0.7890412", (math.log(2) + math.log(4 / 3) + math.log(4)) / 3),  # sft_loss token mean
    ("reward_model", "0.4100376", -(_logsig(2.0) + _logsig(0.0)) / 2),  # Bradley-Terry
    ("reward_model", "0.8132617", -(_logsig(1.0) + _logsig(-1.0)) / 2),  # margin 1
    ("ppo", "0.02875", -0.05 + 0.45 * (-0.05 + 0.45 * 0.5)),  # GAE A_0
    ("ppo", "0.5623351", -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),  # entropy (1/4, 3/4)
    ("grpo", "1.1546506", (4 - 4 / 3) / (math.sqrt(16 / 3) + 1e-4)),  # group advantage
    (
        "grpo",
        "1.4031215",
        math.sqrt(0.3125**2 * 2 + 0.5625**2 + 1.1875**2 + 3 * 0.0625**2 + 0.1875**2),
    ),  # grpo_step grad norm
    ("dpo", "0.4740770", -_logsig(0.5)),  # DPO, beta h = 0.5
    ("rlvr", "-0.18833333", ((-1.25 - 1.28 - 1) / 3 + 0.8) / 2),  # clip-higher 0.2 / 0.28
]


@pytest.mark.parametrize("module, literal, derived", LITERALS, ids=[f"{m}-{v}" for m, v, _ in LITERALS])
def test_literals_of_the_check_files_match_hand_arithmetic(module, literal, derived):
    """The expected values written in course_lib/checks/<module>.py, re-derived here."""
    src = (Path(checks.__file__).parent / f"{module}.py").read_text()
    assert literal in src, f"{literal} no longer appears in course_lib/checks/{module}.py: update LITERALS"
    assert math.isclose(float(literal), derived, abs_tol=1e-6), (literal, derived)


def test_a_result_of_the_wrong_structure_fails_clearly(monkeypatch):
    def loss_only(logp, old_logp, advantages, mask, clip_eps=0.2):
        return S_ppo.ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps)[0]

    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.ppo, "ppo_policy_loss", loss_only)
    with pytest.raises(AssertionError, match=r"expected: a tuple of 2 values"):
        checks.check("ppo_policy_loss")


# ------------------------------------------------------------------------ hints that point at the mistake
def _got_and_hint2(msg: str) -> tuple[str, str]:
    got = re.search(r"^  got:\s+(.*)$", msg, re.M).group(1)
    hint2 = re.search(r"^  hint 2: (.*)$", msg, re.M).group(1)
    return got, hint2


QUOTED = [
    ("ppo_policy_loss", "min instead of max"),
    ("ppo_policy_loss", "unclipped term only"),
    ("ppo_policy_loss", "clipped term only"),
    ("ppo_policy_loss", "mean over padding too"),
    ("sft_loss", "mean of per-sequence means"),
    ("sft_loss", "mean over every position"),
    ("sft_loss", "sum instead of mean"),
]


@pytest.mark.parametrize("name, label", QUOTED, ids=[f"{n}: {lab}" for n, lab in QUOTED])
def test_second_hint_quotes_the_number_the_student_sees(monkeypatch, name, label):
    """Where a second hint lists what the usual mistakes give on its case, the value the student
    got is among them, written as the message writes it (derived from the case: it cannot go
    stale)."""
    got, hint2 = _got_and_hint2(_message_of(monkeypatch, name, label, hint=2))
    assert re.search(rf"(?<![\d.]){re.escape(got)}(?![\d])", hint2), (got, hint2)


def test_no_hint_points_at_text_that_is_not_there():
    """A failure message is the case, expected, got and the hints: a hint that says "the docstring
    says which" or "the stats below" refers to something the student is not shown."""
    dangling = ["docstring says which", "below show", "stats below", "see below", "as above"]
    texts = [
        node.value
        for p in CHECK_FILES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    found = [(d, s) for s in texts for d in dangling if d in s]
    assert not found, found


def test_minibatch_hint_shows_the_students_parts(monkeypatch):
    msg = _message_of(monkeypatch, "ppo_minibatch_loss", "ignores vf_coef", hint=2)
    assert "your stats: policy_loss 2.5 (expected 2.5), value_loss 0.25 (expected 0.25)" in msg, msg


# ------------------------------------------------------------------------ composites check their parts first
COMPOSITE_PARTS = [
    (e.name, p.name)
    for e in EXERCISES
    for p in __import__("course_lib.core.registry", fromlist=["x"]).prerequisites(e.name)
]


def test_every_composite_has_its_parts_in_the_registry():
    assert {"ppo_minibatch_loss", "grpo_step", "dpo_batch_loss", "sft_train_step", "rlvr_policy_loss"} <= {
        c for c, _ in COMPOSITE_PARTS
    }


@pytest.mark.parametrize("composite, part", COMPOSITE_PARTS, ids=[f"{c}<-{p}" for c, p in COMPOSITE_PARTS])
def test_a_wrong_part_under_a_correct_composite_is_named(monkeypatch, composite, part):
    """A correct composite with a wrong part fails naming the part (not the composite's own
    coefficients): "your ppo_policy_loss (5.3) fails its own check; fix it first"."""
    course_lib.use_solutions(True)
    ex, p = BY_NAME[composite], BY_NAME[part]
    bad = next(w[2] for w in WRONG if w[0] == part)
    monkeypatch.setattr(importlib.import_module(f"course_lib.{p.module}"), part, bad)
    with pytest.raises(AssertionError) as info:
        checks.check(composite)
    msg = str(info.value)
    assert msg.startswith(f"exercise {ex.number} `{composite}`"), msg
    assert f"your {part} ({p.number}) fails its own check; fix it first" in msg, msg
    assert f"exercise {p.number} `{part}`" in msg, msg  # the part's own failure follows


# ------------------------------------------------------------------------ selecting one exercise's test
def _selected(expr: str) -> list[str]:
    """The ids of test_exercises.py's tests that `pytest -k expr` selects (pytest's own -k grammar,
    matched case-insensitively against the test's name and its parents', as pytest does)."""
    import test_exercises
    from _pytest.mark.expression import Expression

    compiled = Expression.compile(expr)
    out = []
    for e in EXERCISES:
        names = [f"test_exercise[{test_exercises.exercise_id(e)}]", "test_exercises.py", "exercises", "tests"]
        if compiled.evaluate(lambda sub, names=names: any(sub.lower() in n.lower() for n in names)):
            out.append(e.name)
    return out


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_k_ex_number_selects_exactly_one_exercise(ex):
    assert _selected(f"ex{ex.number}-") == [ex.name]


def test_k_ex_unit_selects_exactly_the_unit():
    assert _selected("ex6.") == [e.name for e in EXERCISES if e.unit == "06"]
    assert _selected("ex1.") == [e.name for e in EXERCISES if e.unit == "01"]
    assert "kl_penalized_rewards" in _selected("rewards")  # why the docs use the number, not a name


def test_docs_select_one_exercise_by_its_number():
    """Where the docs tell a student how to run one exercise's tests, they use the `ex<number>-`
    pattern (a function name can match several exercises)."""
    root = Path(__file__).parents[2]
    for rel in ("docs/students.md", "course_instructor/templates/student_README.md"):
        text = (root / rel).read_text()
        ks = re.findall(r"test_exercises\.py -k (\S+)", text)
        assert ks and all(re.fullmatch(r"ex\d+\.(\d+-)?", k) for k in ks), (rel, ks)


# ------------------------------------------------------------------------ padding holds garbage
def _masks_and_floats(fn, args, kwargs):
    """The mask tensors (an argument, a batch key or a rollout field whose name has 'mask') and the
    floating tensors of one call, by name."""
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    masks, floats = [], []

    def visit(name, v):
        if isinstance(v, torch.Tensor):
            if "mask" in name:
                masks.append(v)
            elif v.is_floating_point():
                floats.append((name, v))
        elif isinstance(v, dict):
            for k, u in v.items():
                visit(f"{name}[{k!r}]", u)
        elif dataclasses.is_dataclass(v):
            for f in dataclasses.fields(v):
                visit(f"{name}.{f.name}", getattr(v, f.name))

    for n, v in bound.arguments.items():
        visit(n, v)
    return masks, floats


def _padded_inputs(masks, floats) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    """(padding, the floating inputs laid out like its mask: [B, T] or [B, T, ...]) per mask with
    padding."""
    out = []
    for m in masks:
        if m.dim() == 2 and (m == 0).any():
            aligned = [x.detach() for _, x in floats if x.dim() >= 2 and tuple(x.shape[:2]) == tuple(m.shape)]
            out.append((m == 0, aligned))
    return out


def _all_garbage(pad, aligned, big=1e3) -> bool:
    return bool(aligned) and all(((x[pad].abs() >= big) | x[pad].isnan()).all() for x in aligned)


MASKED = [
    e
    for e in EXERCISES
    if any(
        "mask" in p or p in ("batch", "rollout")
        for p in inspect.signature(
            getattr(importlib.import_module(f"course_lib.{e.module}"), e.name)
        ).parameters
    )
]


def test_the_masked_exercises_are_found():
    assert {"masked_mean", "compute_gae", "ppo_minibatch_loss", "grpo_step", "rlvr_policy_loss"} <= {
        e.name for e in MASKED
    }


@pytest.mark.parametrize("ex", MASKED, ids=[f"{e.number}-{e.name}" for e in MASKED])
def test_every_masked_check_has_a_case_with_garbage_in_the_padding(ex, monkeypatch):
    """A check of a function that takes a mask runs (at least) one case whose padding positions
    hold huge values in EVERY floating input laid out like the mask, so that a leak of padding into
    the result cannot hide behind small, harmless padding values."""
    course_lib.use_solutions(True)
    mod = importlib.import_module(f"course_lib.{ex.module}")
    solution = getattr(mod, ex.name)
    calls = []

    def spy(*args, **kwargs):
        calls.append(_masks_and_floats(solution, args, kwargs))
        return solution(*args, **kwargs)

    monkeypatch.setattr(mod, ex.name, spy)
    checks.check(ex.name)
    padded_calls = [p for m, f in calls for p in _padded_inputs(m, f)]
    assert padded_calls, f"{ex.name}: no case of the check has padding (a 0 in the mask)"
    if not any(aligned for _, aligned in padded_calls):
        return  # no floating input laid out like the mask (token ids only): padding is all it needs
    assert any(_all_garbage(pad, aligned) for pad, aligned in padded_calls), (
        f"course_lib/checks/{ex.module}.py: no case of {ex.name} puts garbage (e.g. checks._checker.padded) "
        f"in the padding of every float input"
    )


def test_a_wrong_part_shows_its_second_hint_when_asked(monkeypatch):
    course_lib.use_solutions(True)
    bad = next(w[2] for w in WRONG if w[0] == "ppo_policy_loss" and w[1] == "min instead of max")
    monkeypatch.setattr(course_lib.ppo, "ppo_policy_loss", bad)
    with pytest.raises(AssertionError) as info:
        checks.check("ppo_minibatch_loss", hint=2)
    assert "your ppo_policy_loss (5.3) fails its own check" in str(info.value)
    assert "hint 2: -min(objectives)" in str(info.value), str(info.value)
