"""Unit 06's baseline exercises (course_lib/grpo.py: 6.4 rloo_advantages, 6.5
reinforce_pp_advantages) against TRL 1.16's ``RLOOTrainer``.

TRL computes RLOO advantages inline in ``RLOOTrainer._generate_and_score_completions`` (no
separate function), so the test calls that unbound method on a minimal stand-in for the trainer:
generation, the two log-prob forward passes and the reward functions are replaced by stubs that
return our seeded rewards; everything from the weighted reward sum to ``output["advantages"]`` is
TRL's own code. One process, ``beta=0`` (``beta > 0`` subtracts the sequence KL from the reward
before the baseline), no ``reward_clip_range``, one reward function of weight 1, every completion
scorable (no NaN rewards).

The mapping of TRL's options:

* ``normalize_advantages=False`` (TRL's default): exactly ``rloo_advantages(rewards, G)``.
* ``normalize_advantages=True``: TRL whitens the RLOO advantages over the generation batch,
  ``(A - mean(A)) / (std(A) + 1e-4)`` with the Bessel std. RLOO's advantages are
  ``G/(G-1) * (r - group mean)`` and their batch mean is 0, so the factor ``G/(G-1)`` cancels except
  against the 1e-4: this is REINFORCE++-baseline, ``reinforce_pp_advantages(rewards, G,
  eps=1e-4 * (G - 1) / G)``, to float64 rounding.
"""

from __future__ import annotations

import types
from collections import defaultdict, deque

import pytest
import torch

pytest.importorskip("solutions")

from solutions import grpo  # noqa: E402

ATOL = 1e-6
# RLOOConfig's own defaults trip transformers' deprecation warning; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")


def _trl_advantages(rewards: torch.Tensor, group_size: int, normalize: bool) -> torch.Tensor:
    """``output["advantages"]`` of TRL 1.16's RLOOTrainer._generate_and_score_completions for
    these rewards (one prompt per group, `group_size` completions each)."""
    trl = pytest.importorskip("trl")
    from trl.trainer.rloo_trainer import RLOOTrainer

    n = rewards.numel()
    args = trl.RLOOConfig(
        output_dir="/tmp/rloo_parity_unused",
        report_to=[],
        use_cpu=True,
        bf16=False,
        num_generations=group_size,
        per_device_train_batch_size=n,
        normalize_advantages=normalize,
        beta=0.0,
    )
    completions = [[5, 6, 7]] * n  # token ids; never looked at by the stubs
    ns = types.SimpleNamespace(
        # what RLOOTrainer.__init__ derives from args (same names, same rules)
        args=args,
        num_generations=args.num_generations,
        normalize_advantages=args.normalize_advantages,
        beta=args.beta,
        reward_clip_range=args.reward_clip_range,
        mask_truncated_completions=args.mask_truncated_completions,
        pad_to_multiple_of=args.pad_to_multiple_of,
        reward_weights=torch.ones(1, dtype=rewards.dtype),
        reward_func_names=["reward"],
        log_multimodal=False,
        # one process, training mode, no gradient checkpointing
        model=types.SimpleNamespace(training=True, is_gradient_checkpointing=False),
        accelerator=types.SimpleNamespace(
            device=torch.device("cpu"),
            process_index=0,
            gather=lambda x: x,
            reduce=lambda x, reduction="sum": x,
        ),
        _tokenizer=types.SimpleNamespace(pad_token_id=0),
        # the stubs: generation, the policy's forward pass, the reward functions
        _generate=lambda prompts: ([[1, 2]] * len(prompts), completions, ["c"] * len(prompts)),
        _get_per_token_logps_and_entropies=lambda *a, **k: (torch.zeros(n, 3), None, None),
        _calculate_rewards=lambda *a: rewards.view(-1, 1).clone(),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _logs={
            "prompt": deque(),
            "completion": deque(),
            "rewards": defaultdict(deque),
            "advantages": deque(),
            "extra": defaultdict(deque),
        },
        _pending_extra_logs={},
        _pending_metrics={},
    )
    inputs = [{"prompt": f"prompt {i // group_size}"} for i in range(n)]
    return RLOOTrainer._generate_and_score_completions(ns, inputs)["advantages"]


def _rewards(seed: int, n: int, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "binary":  # 0/1 correctness, some groups all right or all wrong
        return (torch.rand(n, generator=g, dtype=torch.float64) < 0.5).double()
    return torch.randn(n, generator=g, dtype=torch.float64) * 2 + 0.5


CASES = [(G, n_groups, kind) for G in (2, 4, 8) for n_groups in (1, 3) for kind in ("gauss", "binary")]


def close(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got.double(), want.double(), atol=ATOL, rtol=0), (got, want)


@pytest.mark.parametrize("G, n_groups, kind", CASES, ids=[f"G{g}-x{n}-{k}" for g, n, k in CASES])
def test_rloo_advantages_match_trl_rloo_trainer(G, n_groups, kind):
    r = _rewards(10 * G + n_groups, G * n_groups, kind)
    close(grpo.rloo_advantages(r, G), _trl_advantages(r, G, normalize=False))


@pytest.mark.parametrize("G, n_groups, kind", CASES, ids=[f"G{g}-x{n}-{k}" for g, n, k in CASES])
def test_reinforce_pp_is_trl_rloo_with_normalize_advantages(G, n_groups, kind):
    r = _rewards(100 * G + n_groups, G * n_groups, kind)
    if kind == "binary" and bool((r.view(-1, G) == r.view(-1, G)[:, :1]).all()):
        r[0] = 1 - r[0]  # every group flat: both sides are 0 / (0 + eps) = 0; keep a spread
    trl_adv = _trl_advantages(r, G, normalize=True)
    close(grpo.reinforce_pp_advantages(r, G, eps=1e-4 * (G - 1) / G), trl_adv)
    # with the default eps the two differ only by the eps term (a relative 1e-4 / std)
    assert torch.allclose(grpo.reinforce_pp_advantages(r, G), trl_adv, atol=1e-3, rtol=0)
