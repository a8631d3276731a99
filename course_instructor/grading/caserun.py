"""Run an exercise function on grading *cases* and collect what it returned (value + gradients).

The sandboxed grading process gets a copy of this file (it needs it without access to
``solutions/``): there it only *runs* a function and encodes what came back as JSON
(:func:`encode`). The grader parses that JSON with :func:`decode_result` into plain float64 /
int64 / bool tensors it builds itself, and the instructor's ``solutions/grading.py`` compares
(:func:`close`). Nothing the sandbox returns is unpickled or has a method called on it.

A case is a plain, picklable dict::

    {"id": "k3-padded", "args": [tensor, tensor], "kwargs": {"kind": "k3"},
     "grad": [0, 1],            # float-tensor inputs to differentiate w.r.t. (indices / kw names)
     "grad_seed": 7,            # seeds the random weights w of the backward pass sum(w * out)
     "then_call": {...}}        # optional: the function returns a function; call it like this

A case with ``"each": [{"args": [...], "kwargs": {...}}, ...]`` instead of ``"args"`` calls the
function once per entry and its value is the list of what the calls returned (no gradients):
one case can then hold inputs with different answers, e.g. a reward of 1 and a reward of 0.

Special inputs that cannot be pickled are *markers*, resolved here by :func:`resolve`:

* ``{"__marker__": "tokenizer"}``: the shipped tiny tokenizer (course_lib/assets/tiny),
* ``{"__marker__": "reward_fn", "name": "<one of REWARD_FNS>"}``: a small TRL-style reward
  function (``f(completions, **kwargs) -> list[float]``) for :func:`combine_rewards` cases,
* ``{"__marker__": "model", "seed": s, "vocab": V}``: a tiny randomly initialised GPT-2 (built
  the same way in every process, dropout off), for the "one training step" exercises;
  ``"stale_grad": True`` gives every parameter a seeded, non-zero ``.grad`` left over from an
  earlier step (a step that forgets ``optimizer.zero_grad()`` then moves the wrong way),
* ``{"__marker__": "optimizer", "lr": lr}``: SGD over the parameters of the case's model,
* ``{"__marker__": "rollout", "fields": {...}}``: a :class:`course_lib.core.sampling.Rollout`.

Case options for those exercises: ``"report_params": True`` returns ``{"return": <value>,
"params": <all model parameters after the call, flattened>}`` (was the step taken correctly?);
``"grad_model": True`` back-propagates the first returned tensor and reports the gradient of
the model's parameters as ``grads["model"]``; ``"report_kinds": True`` returns ``{"return":
<value>, "kinds": <what was returned>}``, where a kind is "float", "int", "bool", "tensor" or
"tensor requiring grad" (lists and dicts of kinds for containers): a 0-d tensor where a float is
asked for, or statistics that still carry the graph, then fail.

A result is ``{"id", "value", "grads": {...}, "error": None | str, "error_types": [...]}`` made of
tensors, numbers, strings, lists, dicts and None; on the wire (sandbox -> grader) tensors are
``{"__tensor__": dtype, "shape": [...], "data": [flat numbers]}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MARKER = "__marker__"


# --- marker resolution ------------------------------------------------------------------------
def _reward_len(completions, **kwargs):
    return [float(len(str(c).split())) for c in completions]


def _reward_has_a(completions, **kwargs):
    return [1.0 if "a" in str(c) else -1.0 for c in completions]


def _reward_bonus(completions, bonus=None, **kwargs):
    """Uses a dataset column passed as keyword argument (like TRL's `answer=`)."""
    if bonus is None:
        raise TypeError(
            "reward_bonus: missing keyword argument `bonus` (combine_rewards must pass "
            "every keyword argument through to each component)"
        )
    return [float(b) for b in bonus]


REWARD_FNS: dict[str, Callable] = {"len": _reward_len, "has_a": _reward_has_a, "bonus": _reward_bonus}

_TOKENIZER = None


def tiny_tokenizer():
    """The shipped tiny tokenizer (loaded once), found next to this package's assets."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import PreTrainedTokenizerFast

        path = Path(__file__).resolve().parents[2] / "course_lib" / "assets" / "tiny"
        _TOKENIZER = PreTrainedTokenizerFast.from_pretrained(str(path))
        if _TOKENIZER.pad_token_id is None:
            _TOKENIZER.pad_token = _TOKENIZER.eos_token
    return _TOKENIZER


def needs_tokenizer(obj) -> bool:
    if isinstance(obj, dict):
        if obj.get(MARKER) == "tokenizer":
            return True
        return any(needs_tokenizer(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(needs_tokenizer(v) for v in obj)
    return False


def tiny_gpt2(seed: int = 0, vocab: int = 32, n_positions: int = 32):
    """A 2-layer, 16-wide GPT-2 with dropout off, identical for identical arguments."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=n_positions,
        n_embd=16,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = GPT2LMHeadModel(cfg)
    finally:
        torch.random.set_rng_state(state)
    return model.float()


def stale_gradients(model, seed: int) -> None:
    """Give every parameter a seeded random ``.grad`` (as left by an earlier backward pass)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def kinds(x, depth: int = 0):
    """What a function returned, by kind: "float", "int", "bool", "tensor", "tensor requiring
    grad", "None", lists / dicts of kinds for containers (see ``report_kinds``)."""
    if depth > 6:
        return "nested"
    if isinstance(x, torch.Tensor):
        return "tensor requiring grad" if x.requires_grad else "tensor"
    if isinstance(x, (list, tuple)):
        return [kinds(v, depth + 1) for v in x[:64]]
    if isinstance(x, dict):
        return {str(k): kinds(v, depth + 1) for k, v in list(x.items())[:64]}
    for t in (bool, int, float, str):
        if isinstance(x, t):
            return t.__name__
    return "None" if x is None else "other"


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def flat_grads(model) -> torch.Tensor:
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten()
            for p in model.parameters()
        ]
    )


def resolve(obj, ctx: dict | None = None):
    """Replace markers by the objects they stand for (recursively); copies containers.

    `ctx` collects objects a case creates (its model), so later markers can refer to them."""
    ctx = {} if ctx is None else ctx
    if isinstance(obj, dict):
        kind = obj.get(MARKER)
        if kind == "model":
            ctx["model"] = tiny_gpt2(int(obj.get("seed", 0)), int(obj.get("vocab", 32)))
            if obj.get("stale_grad"):
                stale_gradients(ctx["model"], int(obj.get("seed", 0)))
            return ctx["model"]
        if kind == "optimizer":
            if "model" not in ctx:
                raise ValueError("caserun: an optimizer marker needs a model marker before it")
            return torch.optim.SGD(ctx["model"].parameters(), lr=float(obj.get("lr", 0.1)))
        if kind == "rollout":
            from course_lib.core.sampling import Rollout

            return Rollout(**resolve(obj["fields"], ctx))
        if kind == "tokenizer":
            return tiny_tokenizer()
        if kind == "reward_fn":
            name = obj.get("name")
            if name not in REWARD_FNS:
                raise ValueError(f"caserun: unknown reward_fn marker {name!r}")
            return REWARD_FNS[name]
        if kind is not None:
            raise ValueError(f"caserun: unknown marker {kind!r}")
        return {k: resolve(v, ctx) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, ctx) for v in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(v, ctx) for v in obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    return obj


# --- normalising outputs ------------------------------------------------------------------------
MAX_ELEMENTS = 1_000_000  # a returned tensor larger than this is not plausible: refuse it


def normalize(x, depth: int = 0):
    """Turn a returned object into plain data (tensors detached to CPU, tuples to lists)."""
    if depth > 6:
        raise TypeError("returned object is nested too deeply")
    if isinstance(x, torch.Tensor):
        if type(x) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"returned a {type(x).__name__} (a torch.Tensor subclass): return a plain tensor")
        if x.numel() > MAX_ELEMENTS:
            raise ValueError(f"returned tensor is too large ({x.numel()} elements)")
        return torch.Tensor.detach(x).to("cpu").clone()
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, (list, tuple)):
        if len(x) > MAX_ELEMENTS:
            raise ValueError("returned sequence is too long")
        return [normalize(v, depth + 1) for v in x]
    if isinstance(x, dict):
        return {str(k): normalize(v, depth + 1) for k, v in x.items()}
    if x is None:
        return None
    if isinstance(x, str):
        return x[:1000]
    try:  # numpy scalars / arrays
        import numpy as np

        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.array(x, copy=True))
        if isinstance(x, np.generic):
            return x.item()
    except Exception:  # noqa: BLE001 - any failure to convert = not comparable (below)
        pass
    raise TypeError(f"returned an object of type {type(x).__name__}, which the grader cannot compare")


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _grad_inputs(args: list, kwargs: dict, keys: list) -> dict:
    picked = {}
    for k in keys:
        t = args[k] if isinstance(k, int) else kwargs[k]
        if not (isinstance(t, torch.Tensor) and t.is_floating_point()):
            raise ValueError(f"caserun: grad input {k!r} is not a float tensor")
        t.requires_grad_(True)
        picked[str(k)] = t
    return picked


def run_case(func: Callable, case: dict) -> dict:
    """Call ``func`` on one case. Never raises: an exception becomes ``result["error"]``."""
    result: dict[str, Any] = {
        "id": str(case.get("id", "")),
        "value": None,
        "grads": {},
        "error": None,
        "error_types": [],
    }
    try:
        ctx: dict = {}
        args = list(resolve(case.get("args", []), ctx))
        kwargs = dict(resolve(case.get("kwargs", {}), ctx))
        inputs = _grad_inputs(args, kwargs, case.get("grad", []))
        with torch.enable_grad():
            if case.get("each") is not None:  # one call per input; the value is the list of results
                out = [
                    func(*resolve(c.get("args", []), ctx), **dict(resolve(c.get("kwargs", {}), ctx)))
                    for c in case["each"]
                ]
            else:
                out = func(*args, **kwargs)
            if case.get("grad_model"):
                target = _first_tensor(out)
                if target is None or not target.requires_grad:
                    raise TypeError(
                        "expected a loss tensor that carries the gradient, got "
                        + describe(target if target is not None else out)
                    )
                ctx["model"].zero_grad(set_to_none=True)
                target.backward()
                result["grads"]["model"] = flat_grads(ctx["model"])
            then = case.get("then_call")
            if then is not None:
                if not callable(out):
                    raise TypeError(f"expected a function back, got {type(out).__name__}")
                out = out(*resolve(then.get("args", [])), **resolve(then.get("kwargs", {})))
            if inputs:
                target = _first_tensor(out)
                grads = {k: None for k in inputs}
                if target is not None and target.requires_grad:
                    g = torch.Generator().manual_seed(int(case.get("grad_seed", 0)))
                    w = torch.rand(target.shape, generator=g, dtype=torch.float64) + 0.5
                    total = (target.to(torch.float64) * w).sum()
                    got = torch.autograd.grad(total, list(inputs.values()), allow_unused=True)
                    grads = {k: (None if v is None else v.detach().clone()) for k, v in zip(inputs, got)}
                result["grads"].update(grads)
        if case.get("report_kinds"):
            out = {"return": out, "kinds": kinds(out)}
        if case.get("report_params"):
            out = {"return": out, "params": flat_params(ctx["model"])}
        result["value"] = normalize(out)
    except BaseException as e:  # noqa: BLE001 - SystemExit / KeyboardInterrupt from student code too
        result["value"] = None
        result["grads"] = {}
        result["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        result["error_types"] = [c.__name__ for c in type(e).__mro__]
    return result


def run_cases(func: Callable, cases: list[dict]) -> list[dict]:
    return [run_case(func, c) for c in cases]


# --- comparison helpers shared by the grader (pure functions of two results) --------------------
def describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{list(x.shape)}"
    if isinstance(x, list):
        return f"list[{len(x)}]"
    return type(x).__name__


def _magnitude(x: float) -> str:
    """An order of magnitude ("1e-02"): how large, without the exact number."""
    return f"1e{round(math.log10(x)):+03d}" if math.isfinite(x) and x > 0 else str(x)


def error_size(err: float, scale: float) -> str:
    """The size of an error, coarsely: absolute and relative orders of magnitude (exact numbers
    together with the student's own value would give the expected one away)."""
    if not math.isfinite(err):
        return "nan or inf"
    rel = f", relative ~{_magnitude(err / scale)}" if scale > 0 else ""
    return f"error ~{_magnitude(err)}{rel}"


def close(a, b, rtol: float, atol: float, path: str = "value") -> tuple[bool, str]:
    """Recursive allclose over tensors / numbers / lists / dicts: (ok, message). A message names
    where (path, shape, how many entries) and how large the error is, never the expected numbers
    (a student must not learn a hidden case's answer from the feedback)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            if isinstance(a, torch.Tensor) and a.numel() == 1 and isinstance(b, (int, float)):
                return close(a.item(), b, rtol, atol, path)
            if isinstance(b, torch.Tensor) and b.numel() == 1 and isinstance(a, (int, float)):
                return close(a, b.item(), rtol, atol, path)
            return False, f"{path}: expected {describe(a)}, got {describe(b)}"
        if tuple(a.shape) != tuple(b.shape):
            return False, f"{path}: expected shape {list(a.shape)}, got {list(b.shape)}"
        if a.dtype == torch.bool:
            if b.dtype != torch.bool:
                return False, f"{path}: expected a bool tensor, got {b.dtype}"
            return (True, "") if torch.equal(a, b) else (False, f"{path}: boolean values differ")
        if b.dtype == torch.bool or b.is_complex():
            return False, f"{path}: expected a tensor of real numbers ({a.dtype}), got {b.dtype}"
        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        if not torch.isfinite(b64).all() and torch.isfinite(a64).all():
            return False, f"{path}: contains nan/inf"
        bad = ~torch.isclose(b64, a64, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            err = (b64 - a64).abs().nan_to_num(float("inf"))[bad].max().item()
            return False, (
                f"{path}: {int(bad.sum())} of {a.numel()} values are wrong (largest "
                f"{error_size(err, a64[bad].abs().max().item())})"
            )
        return True, ""
    if isinstance(a, bool) or isinstance(b, bool):
        if type(a) is not type(b):
            return False, f"{path}: expected {type(a).__name__}, got {type(b).__name__}"
        return (a == b, "" if a == b else f"{path}: the wrong truth value")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return True, ""
        if not math.isclose(fa, fb, rel_tol=rtol, abs_tol=atol):
            err = abs(fb - fa) if math.isfinite(fb) else math.inf
            return False, f"{path}: wrong ({error_size(err, abs(fa))})"
        return True, ""
    if isinstance(a, list):
        if not isinstance(b, list):
            if isinstance(b, torch.Tensor):
                return close(torch.tensor(a, dtype=torch.float64), b, rtol, atol, path)
            return False, f"{path}: expected {describe(a)}, got {describe(b)}"
        if len(a) != len(b):
            return False, f"{path}: expected {len(a)} entries, got {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            ok, msg = close(x, y, rtol, atol, f"{path}[{i}]")
            if not ok:
                return ok, msg
        return True, ""
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return False, f"{path}: expected a dict with keys {sorted(a)}, got {describe(b)}"
        for k in a:
            ok, msg = close(a[k], b[k], rtol, atol, f"{path}[{k!r}]")
            if not ok:
                return ok, msg
        return True, ""
    if isinstance(a, str):  # only kinds ("float", "tensor", ...) are strings: not a secret
        return (a == b, "" if a == b else f"{path}: expected {a!r}, got {str(b)[:60]!r}")
    if a is None or b is None:
        return (a == b, "" if a == b else f"{path}: expected {describe(a)}, got {describe(b)}")
    return False, f"{path}: cannot compare {describe(a)} with {describe(b)}"


# --- the wire format (sandbox -> grader) ------------------------------------------------------------
DTYPES = {
    "float16": torch.float64,
    "bfloat16": torch.float64,
    "float32": torch.float64,
    "float64": torch.float64,
    "uint8": torch.int64,
    "int8": torch.int64,
    "int16": torch.int64,
    "int32": torch.int64,
    "int64": torch.int64,
    "bool": torch.bool,
}
MAX_DEPTH = 8


def encode(x):
    """A normalized value (see :func:`normalize`) as JSON-able data; tensors become
    ``{"__tensor__": dtype, "shape": [...], "data": [...]}`` (NaN / inf as JSON's NaN / Infinity)."""
    if isinstance(x, torch.Tensor):
        t = torch.Tensor.detach(x).cpu()
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in DTYPES:
            raise TypeError(f"returned a tensor of dtype {dtype}, which the grader cannot compare")
        flat = t.reshape(-1)
        return {
            "__tensor__": dtype,
            "shape": list(t.shape),
            "data": flat.tolist() if dtype != "bfloat16" else flat.float().tolist(),
        }
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, dict):
        return {str(k): encode(v) for k, v in x.items()}
    return x


class MalformedResult(ValueError):
    """What the sandbox sent back is not a well-formed result (wrong types, sizes or structure)."""


def decode(x, depth: int = 0):
    """Parse JSON data from the sandbox into values the grader builds itself: float64 / int64 /
    bool tensors of the declared shape, plain numbers, strings, lists, dicts. Raises
    :class:`MalformedResult` naming the problem for anything else."""
    if depth > MAX_DEPTH:
        raise MalformedResult("the result is nested too deeply")
    if x is None or type(x) in (bool, int, float):
        return x
    if type(x) is str:
        if len(x) > 1000:
            raise MalformedResult("a string in the result is longer than 1000 characters")
        return x
    if type(x) is list:
        if len(x) > MAX_ELEMENTS:
            raise MalformedResult("a list in the result is too long")
        return [decode(v, depth + 1) for v in x]
    if type(x) is not dict:
        raise MalformedResult(f"unexpected {type(x).__name__} in the result")
    if "__tensor__" not in x:
        return {str(k): decode(v, depth + 1) for k, v in x.items()}
    dtype, shape, data = x.get("__tensor__"), x.get("shape"), x.get("data")
    if set(x) != {"__tensor__", "shape", "data"} or dtype not in DTYPES:
        raise MalformedResult(f"a tensor of unknown dtype {str(dtype)[:40]!r} in the result")
    if type(shape) is not list or len(shape) > 8 or any(type(d) is not int or d < 0 for d in shape):
        raise MalformedResult("a tensor with a malformed shape in the result")
    n = math.prod(shape)
    if type(data) is not list or n > MAX_ELEMENTS or len(data) != n:
        raise MalformedResult(
            f"a tensor of shape {shape} with {len(data) if type(data) is list else '?'} values in the result"
        )
    kinds = (bool,) if dtype == "bool" else (int,) if DTYPES[dtype] == torch.int64 else (int, float)
    if not all(type(v) in kinds for v in data):
        raise MalformedResult(
            f"a {dtype} tensor with values that are not {'/'.join(k.__name__ for k in kinds)}"
        )
    return torch.tensor(data, dtype=DTYPES[dtype]).reshape(shape)


def decode_result(r) -> dict:
    """One case result from the sandbox, parsed by :func:`decode` and checked for structure."""
    if type(r) is not dict or set(r) != {"id", "value", "grads", "error", "error_types"}:
        raise MalformedResult("malformed case result")
    grads, error, types = r["grads"], r["error"], r["error_types"]
    if type(grads) is not dict or type(types) is not list or not all(type(t) is str for t in types):
        raise MalformedResult("malformed case result")
    if error is not None and type(error) is not str:
        raise MalformedResult("malformed case result")
    return {
        "id": decode(r["id"]),
        "value": decode(r["value"]),
        "error": decode(error),
        "grads": {str(k): decode(v) for k, v in grads.items()},
        "error_types": types[:64],
    }
