"""Regenerate tests/snapshots/<exercise>.npz from the instructor solutions on seeded inputs.

    .venv/bin/python tests/snapshots/make_snapshots.py            # all
    .venv/bin/python tests/snapshots/make_snapshots.py grpo_loss  # some

Each .npz stores, per case ``<id>``: ``<id>/in/<name>`` (the inputs), ``<id>/w/<i>`` (the
weights of the scalar whose gradient is taken), ``<id>/out/<i>`` (every output) and
``<id>/grad/<name>`` (the gradient w.r.t. every floating-point input). tests/exercises/test_snapshots.py
recomputes all of them with the solutions and compares at atol 1e-6. Regenerate only on purpose
(a deliberate change of a solution's behaviour), and say why in the commit.
"""

from __future__ import annotations

import importlib
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from snapshot_cases import CASES, run_case  # noqa: E402


def seed_of(name: str, case_id: str) -> int:
    return zlib.crc32(f"{name}/{case_id}".encode()) % (2**31)


def solution(name: str):
    from course_lib.core.registry import get

    ex = get(name)
    return getattr(importlib.import_module(f"solutions.{ex.module}"), name)


def make(name: str) -> Path:
    fn = solution(name)
    arrays = {}
    for case_id, mk, call in CASES[name]:
        inputs, weights, outs, grads = run_case(fn, mk, call, seed_of(name, case_id))
        for k, v in inputs.items():
            arrays[f"{case_id}/in/{k}"] = v.detach().numpy()
        for i, (w, o) in enumerate(zip(weights, outs)):
            arrays[f"{case_id}/w/{i}"] = w.numpy()
            arrays[f"{case_id}/out/{i}"] = o.numpy()
        for k, gr in grads.items():
            arrays[f"{case_id}/grad/{k}"] = gr.numpy()
    path = HERE / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    return path


def main(names=None):
    torch.set_num_threads(1)
    for name in names or sorted(CASES):
        p = make(name)
        print(f"{p.name:<28} {p.stat().st_size / 1024:5.1f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
