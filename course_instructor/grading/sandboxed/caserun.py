"""Run an exercise function on grading *cases* and collect what it returned (value + gradients).

This file runs inside the code sandbox (sandbox_child.py; the box carries a copy of it, without
access to ``solutions/``) and in the instructor's own notebook runs (hidden_check). It only
*runs* a function; the results travel to the grader as JSON (../wire.py), where the grader's
hidden/ compares them. Nothing the sandbox returns is unpickled or has a method called on it.

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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from course_instructor.grading.wire import MAX_ELEMENTS

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

        # <root>/course_instructor/grading/sandboxed/caserun.py: the repository or the sandbox box
        path = Path(__file__).resolve().parents[3] / "course_lib" / "assets" / "tiny"
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


def describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{list(x.shape)}"
    if isinstance(x, list):
        return f"list[{len(x)}]"
    return type(x).__name__


def run_cases(func: Callable, cases: list[dict]) -> list[dict]:
    return [run_case(func, c) for c in cases]
