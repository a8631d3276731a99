"""The wire format between the sandboxes and the trusted grader: what a sandboxed process may send
back, and how the grader reads it.

Both sides use this file: the sandbox writes with :func:`encode` (the box carries a copy of this
file), the grader reads with :class:`LineReader` and :func:`decode_result`. Stdlib and torch only.

* Messages are JSON lines on the sandboxed process's stdout. The code sandbox
  (sandboxed/sandbox_child.py) sends :data:`READY`, then ``{"i": i, "name": ..., "results":
  [...], "output": "..."}`` per exercise, then :data:`DONE`; the notebook runner
  (sandboxed/nb_runner.py) sends one line per notebook.
* The grader reads them with :class:`LineReader`: at most a fixed number of bytes in all, a line
  longer than that is never held in memory.
* A case result is ``{"id", "value", "grads", "error", "error_types"}``; tensors travel as
  ``{"__tensor__": dtype, "shape": [...], "data": [flat numbers]}``. :func:`decode_result` turns
  that into float64 / int64 / bool tensors the grader builds itself, or raises
  :class:`MalformedResult` naming the problem: nothing is unpickled, no method of an object the
  sandbox made is ever called.
"""

from __future__ import annotations

import math
import queue
import threading

import torch

MAX_ELEMENTS = 1_000_000  # a returned tensor larger than this is not plausible: refuse it
READY = {"ready": True}  # the code sandbox is set up and about to import student code
DONE = {"done": True}  # every exercise has its result line


class LineReader:
    """Reads the child's result lines in a thread: at most `cap` bytes in all, each line handed
    over as text on ``q`` (None after the last); past the cap the reader stops (and says so)."""

    def __init__(self, stream, cap: int):
        self.q: queue.Queue = queue.Queue()
        self.overflow = False
        threading.Thread(target=self._read, args=(stream, cap), daemon=True).start()

    def _read(self, stream, cap: int) -> None:
        total = 0
        try:
            for raw in iter(lambda: stream.readline(cap + 1), b""):
                total += len(raw)
                if total > cap or not raw.endswith(b"\n"):
                    self.overflow = total > cap
                    break
                self.q.put(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass
        finally:
            self.q.put(None)


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
