"""Unit 06's exercise 6.6 (course_lib/grpo.py: high_entropy_mask) against TRL 1.16's
``GRPOTrainer.get_high_entropy_mask``, the mask behind ``GRPOConfig.top_entropy_quantile``.

The test calls TRL's own method, unbound, on a minimal stand-in for the trainer: one process, so
``accelerator.pad_across_processes`` and ``accelerator.gather`` return their input (TRL pads each
rank's masked entropies with a -1e9 sentinel and drops it again after the gather). TRL takes the
quantile *threshold*, ``1 - top_entropy_quantile`` (``grpo_trainer.py``: ``get_high_entropy_mask(
entropies, mask, 1 - self.top_entropy_quantile)``); ours takes the fraction to keep. The masks must
be equal, flag for flag.
"""

from __future__ import annotations

import types

import pytest
import torch

pytest.importorskip("solutions")

from solutions import grpo  # noqa: E402


def _trl_mask(entropies: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    pytest.importorskip("trl")
    from trl.trainer.grpo_trainer import GRPOTrainer

    one_process = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(
            pad_across_processes=lambda x, dim=0, pad_index=0: x, gather=lambda x: x
        )
    )
    return GRPOTrainer.get_high_entropy_mask(one_process, entropies, mask, 1 - quantile)


def _batch(seed: int, B: int, T: int, pad: float | None = None, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ent = (torch.randn(B, T, generator=g, dtype=torch.float64).abs() * 2).to(dtype)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).long()
    if pad is not None:
        ent = torch.where(mask.bool(), ent, torch.full_like(ent, pad))
    return ent, mask


CASES = [
    (seed, B, T, q, pad)
    for seed, (B, T) in enumerate([(1, 7), (4, 6), (8, 24), (16, 32)])
    for q in (0.05, 0.2, 0.5, 0.8, 1.0)
    for pad in (None, 0.0, 1e4, -1e4)
]


@pytest.mark.parametrize(
    "seed, B, T, q, pad", CASES, ids=[f"s{s}-{b}x{t}-q{q}-pad{p}" for s, b, t, q, p in CASES]
)
def test_high_entropy_mask_matches_trl(seed, B, T, q, pad):
    ent, mask = _batch(seed, B, T, pad)
    ours, theirs = grpo.high_entropy_mask(ent, mask, q), _trl_mask(ent, mask, q)
    assert ours.dtype == theirs.dtype == torch.bool
    assert torch.equal(ours, theirs), (ours.int(), theirs.int())


def test_ties_float64_bool_mask_and_an_empty_mask_match_trl():
    ties = torch.tensor([[0.5, 1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 3.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    for q in (0.2, 0.5, 0.75, 1.0):
        assert torch.equal(grpo.high_entropy_mask(ties, mask, q), _trl_mask(ties, mask, q)), q
    ent, m = _batch(99, 5, 9, dtype=torch.float64)
    assert torch.equal(grpo.high_entropy_mask(ent, m, 0.3), _trl_mask(ent, m, 0.3))
    assert torch.equal(grpo.high_entropy_mask(ent, m.bool(), 0.3), _trl_mask(ent, m.bool(), 0.3))
    empty = torch.zeros_like(m)
    assert torch.equal(grpo.high_entropy_mask(ent, empty, 0.2), _trl_mask(ent, empty, 0.2))
    assert not grpo.high_entropy_mask(ent, empty, 0.2).any()


def test_the_trainer_option_maps_to_trl_top_entropy_quantile():
    from course_lib.trainers import _loop
    from course_lib.trainers.grpo import GRPOConfig

    cfg = GRPOConfig.from_profile(task="sentiment", top_entropy_quantile=0.2)
    assert _loop.trl_arguments("grpo", cfg)["top_entropy_quantile"] == 0.2
    assert (
        _loop.trl_arguments("grpo", GRPOConfig.from_profile(task="sentiment"))["top_entropy_quantile"] == 1.0
    )
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="top_entropy_quantile must be in"):
            GRPOConfig.from_profile(task="sentiment", top_entropy_quantile=bad)
