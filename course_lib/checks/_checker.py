"""The machinery of the visible checks: the registry, :func:`check` and the :class:`Checker`.

A check is a function ``body(fn, c)`` registered under an exercise name; `fn` is the student's
function, looked up *through its module* (``getattr(course_lib.grpo, "grpo_loss")``) at the
moment ``check()`` runs, so the instructor's solutions switch (which rebinds module attributes)
is honoured. The bodies live in one file per exercise module (rewards.py, kl.py, ...).

Hints come in two tiers. A hint is a string (tier 1) or a pair ``(tier 1, tier 2)``:

* tier 1 (always shown) says which *property* of the result failed, without code;
* tier 2 (shown with ``check(name, hint=2)``) narrows the mistake down.

No hint spells out the one-line answer.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import torch

from course_lib.core import registry as exercises

LN2, LN3 = math.log(2.0), math.log(3.0)

Hint = str | tuple | None  # "tier 1" or ("tier 1", "tier 2")


def _tiers(hint: Hint) -> tuple[str, str | None]:
    if isinstance(hint, tuple):
        return hint[0], (hint[1] if len(hint) > 1 else None)
    return hint or "", None


class Checker:
    """Runs the cases of one exercise and formats helpful failures."""

    def __init__(self, ex: exercises.Exercise, hint: Hint, level: int = 1):
        self.ex, self.hint, self.level, self.passed = ex, hint, level, 0

    # ------------------------------------------------------------------ helpers
    def _hint_text(self, hint: Hint) -> str:
        first, second = _tiers(hint or self.hint)
        text = f"  hint: {first}"
        if second and self.level >= 2:
            text += f"\n  hint 2: {second}"
        elif second:
            text += (
                f"\n  (a more specific hint: check({self.ex.name!r}, hint=2), or COURSE_HINT=2 pytest "
                f"tests/exercises/test_exercises.py -k ex{self.ex.number}-)"
            )
        return text

    def fail(self, case: str, expected, got, hint: Hint = None):
        raise AssertionError(
            f"exercise {self.ex.number} `{self.ex.name}` (course_lib/{self.ex.module}.py), "
            f"case '{case}':\n  expected: {expected}\n  got:      {got}\n{self._hint_text(hint)}"
        )

    def call(self, case: str, fn: Callable, *args, hint: Hint = None, n_out: int | None = None, **kwargs):
        """Call the student's function; any error other than NotImplementedError becomes a
        failure of this case (with the original exception chained). `n_out`: the function must
        return a tuple of that many values."""
        try:
            out = fn(*args, **kwargs)
        except (NotImplementedError, AssertionError):
            raise
        except Exception as e:
            raise AssertionError(
                f"exercise {self.ex.number} `{self.ex.name}` (course_lib/{self.ex.module}.py), "
                f"case '{case}':\n  expected: a result\n  got:      {type(e).__name__}: {e}\n"
                f"{self._hint_text(hint)}"
            ) from e
        if n_out is not None and not (isinstance(out, (tuple, list)) and len(out) == n_out):
            self.fail(
                case,
                f"a tuple of {n_out} values",
                f"{type(out).__name__}: {out!r}"[:300],
                hint or f"return all {n_out} values as a tuple, see the docstring",
            )
        return out

    def ok(self):
        self.passed += 1

    def close(self, case: str, got, expected, hint: Hint = None, atol: float = 1e-4, kind: str | None = None):
        """`got` (tensor, list or number) equals `expected` (nested list or number) within atol.
        kind="list" additionally demands a Python list, kind="tensor" a torch.Tensor,
        kind="float" a Python float."""
        if kind == "list" and not isinstance(got, list):
            self.fail(case, f"a Python list of floats {expected}", f"{type(got).__name__} {got!r}", hint)
        if kind == "tensor" and not isinstance(got, torch.Tensor):
            self.fail(case, f"a torch.Tensor {expected}", f"{type(got).__name__} {got!r}", hint)
        if kind == "float" and not (isinstance(got, float) and not isinstance(got, bool)):
            self.fail(
                case,
                f"a Python float {expected}",
                f"{type(got).__name__} {got!r}",
                "the result must be a plain Python float, not a tensor",
            )
        try:
            g = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got, dtype=torch.float64)
        except Exception:  # noqa: BLE001
            self.fail(case, fmt(expected), repr(got), hint)
        e = torch.as_tensor(expected, dtype=torch.float64)
        if g.shape != e.shape:
            self.fail(
                case, f"shape {list(e.shape)}: {fmt(expected)}", f"shape {list(g.shape)}: {fmt(got)}", hint
            )
        if not torch.allclose(g, e, atol=atol, rtol=0, equal_nan=False) or not torch.isfinite(g).all():
            self.fail(case, fmt(expected), fmt(got), hint)
        self.ok()

    def true(self, case: str, cond: bool, expected: str, got: str, hint: Hint = None):
        if not cond:
            self.fail(case, expected, got, hint)
        self.ok()

    def raises(self, case: str, exc: type, fn: Callable, *args, hint: Hint = None, **kwargs):
        try:
            fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except exc:
            self.ok()
            return
        except Exception as e:  # noqa: BLE001
            self.fail(
                case,
                f"{exc.__name__} with a clear message",
                f"{type(e).__name__}: {e}",
                hint or f"check this input first and raise {exc.__name__}(...) naming the problem",
            )
        self.fail(
            case,
            f"{exc.__name__} with a clear message",
            "no exception",
            hint or f"check this input first and raise {exc.__name__}(...) naming the problem",
        )

    def grad(
        self,
        case: str,
        loss,
        tensors: dict,
        expected: dict | None = None,
        hint: Hint = None,
        atol: float = 1e-4,
    ):
        """loss.backward() works, every tensor gets a finite gradient (equal to expected[name])."""
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            self.fail(
                case,
                "a loss tensor connected to the inputs (requires_grad=True)",
                f"{type(loss).__name__} without a gradient",
                hint
                or "the result is cut off from the inputs' gradient (a Python number, a "
                "detached tensor or a tensor built anew breaks the chain)",
            )
        if loss.dim() != 0:
            self.fail(case, "a scalar loss (0-d tensor)", f"shape {list(loss.shape)}", hint)
        loss.backward()
        for name, t_ in tensors.items():
            if t_.grad is None or not torch.isfinite(t_.grad).all():
                self.fail(
                    case,
                    f"a finite gradient for `{name}`",
                    "None" if t_.grad is None else fmt(t_.grad),
                    hint
                    or "the gradient is missing or not finite: keep the computation in "
                    "torch and use numerically stable operations",
                )
            if expected and name in expected:
                self.close(f"{case}: d loss / d {name}", t_.grad, expected[name], hint)
                self.passed -= 1  # the gradient values count with this case
        self.ok()


def fmt(x) -> str:
    """A short, readable rendering: integer tensors print as integers, floats rounded to 6."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.is_floating_point():
            x = x.double()
        if x.dim() == 0:
            return str(_round(x.item()))
        return str(_round(x.tolist() if x.dim() <= 1 else x.reshape(x.shape[0], -1).tolist()))
    return str(_round(x))


def _round(v):
    if isinstance(v, torch.Tensor):
        return _round(v.detach().tolist())
    if isinstance(v, float):
        return round(v, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    if isinstance(v, (list, tuple)):
        return [_round(u) for u in v]
    return v


def t(x, grad: bool = False) -> torch.Tensor:
    """A float32 tensor (optionally requiring grad) from a nested list."""
    return torch.tensor(x, dtype=torch.float32, requires_grad=grad)


GARBAGE = 1e4  # what the padding holds in a check's "padding holds garbage" case


def padded(x: torch.Tensor, mask: torch.Tensor, value: float = GARBAGE) -> torch.Tensor:
    """`x` with `value` at every padding position (mask 0; trailing dims, e.g. a vocabulary, all
    of it), as a fresh leaf that requires grad when `x` did. A function that lets padding leak
    into its result then fails visibly: a masked-out 1e4 is invisible, a leaked one is not."""
    keep = mask.bool()
    while keep.dim() < x.dim():
        keep = keep.unsqueeze(-1)
    out = torch.where(keep, x.detach(), torch.full_like(x.detach(), value))
    return out.requires_grad_(x.requires_grad)


PAD_HINT = (
    "padding positions (mask 0) hold huge values here: they must not reach the result -- not "
    "through a mean, a sum, a max or a ratio",
    "select or zero the padding BEFORE it can mix with the real tokens (0 * a huge number is 0, "
    "but exp(huge) is inf and inf * 0 is nan)",
)

# ---------------------------------------------------------------------------------- registry
CHECKS: dict[str, tuple[Callable[[Callable, Checker], None], Hint]] = {}


def register(name: str, hint: Hint):
    """Decorator: register `body(fn, c)` as the visible check of exercise `name`; `hint` is the
    exercise-wide hint (tier 1, or (tier 1, tier 2)) used where a case gives none."""
    if name not in exercises.BY_NAME:
        raise KeyError(f"checks: {name!r} is not an exercise of the registry")

    def deco(f):
        CHECKS[name] = (f, hint)
        return f

    return deco


def known() -> list[str]:
    return sorted(CHECKS)


def check(name: str, hint: int = 1) -> None:
    """Run the visible checks of exercise `name` (e.g. ``"kl_estimate"``) on your function.

    ``hint=2`` shows a second, more specific hint when a case fails."""
    key = name.split(".")[-1]
    if key not in CHECKS:
        raise KeyError(f"check: no visible checks for {name!r}; known: {known()}")
    if hint not in (1, 2):
        raise ValueError(f"check: hint must be 1 or 2, got {hint!r}")
    ex = exercises.get(key)
    broken = _broken_part(ex, hint)
    if broken is None:
        passed = _run(ex, hint)
    else:
        try:  # a composite not written yet says so, before any word about its parts
            _run(ex, hint)
        except AssertionError:
            pass
        part, err = broken
        raise AssertionError(
            f"exercise {ex.number} `{ex.name}` (course_lib/{ex.module}.py), case 'its parts':\n"
            f"  expected: the exercises it calls pass their own checks\n"
            f"  got:      your {part.name} ({part.number}) fails its own check\n"
            f"  hint: your {part.name} ({part.number}) fails its own check; fix it first: "
            f"{ex.name} calls it, so {ex.name}'s cases cannot pass before it does -- its own check "
            f"says:\n\n{err}"
        ) from err
    print(f"✓ exercise {ex.number} {ex.name}: {passed}/{passed} visible checks passed")


def _run(ex: exercises.Exercise, hint: int) -> int:
    """Run the cases of `ex` on the student's function; the number of cases passed."""
    fn = getattr(importlib.import_module(f"course_lib.{ex.module}"), ex.name)
    body, ex_hint = CHECKS[ex.name]
    c = Checker(ex, ex_hint, hint)
    body(fn, c)
    return c.passed


def _broken_part(ex: exercises.Exercise, hint: int = 1) -> tuple[exercises.Exercise, AssertionError] | None:
    """An exercise that calls other exercises (the registry's ``requires``) runs with the
    student's versions of them, so a wrong part makes a correct composite fail, and that
    composite's hints would send the student to the wrong place. The parts' checks therefore run
    first, silently, at the hint level asked for: the first part that fails, with its failure.
    A part that is still a stub is skipped: if the composite calls it, the composite's own run
    raises the part's NotImplementedError unchanged."""
    for part in exercises.prerequisites(ex.name):
        if part.name not in CHECKS:
            continue
        try:
            _run(part, hint)
        except NotImplementedError:
            continue
        except AssertionError as e:
            return part, e
    return None
