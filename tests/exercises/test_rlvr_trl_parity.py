"""Unit 09 (course_lib/rlvr.py): the solutions against TRL 1.16 and against hand arithmetic.

TRL parity: the same tensors go through TRL's own ``GRPOTrainer._compute_loss`` (the unbound
method, called on a minimal stand-in for the trainer that holds exactly the attributes the method
reads, derived from a real ``trl.GRPOConfig`` the way ``GRPOTrainer.__init__`` derives them) and
through ``solutions.rlvr.rlvr_policy_loss``; value, gradient w.r.t. the log-probs, and the clip
statistics TRL logs agree to 1e-6 (float64). Every GRPOConfig option that changes the result is
set explicitly: ``importance_sampling_level``, ``epsilon``, ``epsilon_high``, ``loss_type``
(grpo / dapo / dr_grpo / cispo), ``beta``, ``use_bias_correction_kl=False`` (TRL's default True
multiplies the KL by the ratio; the course's k3 term does not), ``delta=None`` (no two-sided
clipping), ``top_entropy_quantile=1.0``, ``off_policy_mask_threshold=None``, ``entropy_coef=0``,
``max_completion_length``, ``num_iterations`` / ``steps_per_generation`` /
``gradient_accumulation_steps`` = 1 (one process: TRL's ``dapo`` / ``cispo`` normaliser is then
the number of completion tokens of the batch).
"""

from __future__ import annotations

import math
import types
from collections import defaultdict

import pytest
import torch

pytest.importorskip("solutions")

from solutions import rlvr  # noqa: E402

ATOL = 1e-6
# GRPOConfig's own defaults trip transformers' deprecation warning; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")


def close(got, want, atol=ATOL):
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want, atol=atol, rtol=0), (got, want)


# ------------------------------------------------------------------------------------- TRL parity
def _batch(seed: int, B: int = 6, T: int = 7):
    """Random float64 log-probs with ratios far enough from 1 to clip on both sides, advantages of
    both signs, right-padded rows of different lengths (none empty) and junk on the padding."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3 - 0.05
    old = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.35
    ref = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    adv[0], adv[1] = abs(adv[0]) + 0.1, -abs(adv[1]) - 0.1
    lens = torch.randint(1, T + 1, (B,), generator=g)
    lens[0] = T
    mask = (torch.arange(T)[None] < lens[:, None]).long()
    junk = torch.randn(B, T, generator=g, dtype=torch.float64) * 5
    logp = torch.where(mask.bool(), logp, junk)
    return logp, old, ref, adv, mask


def _trl_loss(logp, old, ref, adv, mask, **options):
    """TRL 1.16's GRPOTrainer._compute_loss on these tensors: (loss, d loss / d logp, metrics)."""
    trl = pytest.importorskip("trl")
    from trl.trainer.grpo_trainer import GRPOTrainer

    args = trl.GRPOConfig(
        output_dir="/tmp/rlvr_parity_unused",
        report_to=[],
        use_cpu=True,
        bf16=False,
        use_bias_correction_kl=False,
        delta=None,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        entropy_coef=0.0,
        num_iterations=1,
        steps_per_generation=1,
        gradient_accumulation_steps=1,
        per_device_train_batch_size=logp.shape[0],
        num_generations=2,
        **options,
    )
    leaf = logp.detach().clone().requires_grad_(True)
    B, T = leaf.shape
    ns = types.SimpleNamespace(
        # what GRPOTrainer.__init__ derives from args (same names, same rules)
        args=args,
        loss_type=args.loss_type,
        beta=args.beta,
        epsilon_low=args.epsilon,
        epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        importance_sampling_level=args.importance_sampling_level,
        max_completion_length=args.max_completion_length,
        top_entropy_quantile=args.top_entropy_quantile,
        off_policy_mask_threshold=args.off_policy_mask_threshold,
        use_vllm=args.use_vllm,
        vllm_importance_sampling_correction=args.vllm_importance_sampling_correction,
        entropy_coef=args.entropy_coef,
        _entropy_bonus_enabled=args.entropy_coef != 0.0 or args.use_adaptive_entropy,
        aux_loss_enabled=False,
        # one process, no accumulation, training mode
        current_gradient_accumulation_steps=1,
        model=types.SimpleNamespace(training=True),
        accelerator=types.SimpleNamespace(
            num_processes=1, gather=lambda x: x, reduce=lambda x, reduction="sum": x
        ),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        # the policy's forward pass: our log-probs (and some entropies, only logged)
        _get_per_token_logps_and_entropies=lambda *a, **k: (leaf, torch.ones_like(leaf), None),
    )
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),  # TRL: completion tokens of the generation batch
    }
    loss = GRPOTrainer._compute_loss(ns, None, inputs)
    loss.backward()
    metrics = {k: v[-1] for k, v in ns._metrics["train"].items()}
    return loss.detach(), leaf.grad, metrics


def _ours(logp, old, ref, adv, mask, *, eps_low, eps_high, level, loss_type, beta, max_len):
    leaf = logp.detach().clone().requires_grad_(True)
    loss, stats = rlvr.rlvr_policy_loss(
        leaf,
        old,
        adv,
        mask,
        eps_low=eps_low,
        eps_high=eps_high,
        level=level,
        loss_type=loss_type,
        ref_logp=ref if beta else None,
        beta=beta,
        max_completion_length=max_len,
    )
    loss.backward()
    return loss.detach(), leaf.grad, stats


EPS = {  # (epsilon, epsilon_high): symmetric, DAPO clip-higher; CISPO's cap (epsilon_high itself)
    "grpo": [(0.2, None), (0.2, 0.28)],
    "dapo": [(0.2, None), (0.2, 0.28)],
    "dr_grpo": [(0.2, None), (0.1, 0.3)],
    "cispo": [(0.2, 5.0), (0.2, 1.1)],
}
GRID = [
    (level, lt, eps, eps_high, beta)
    for level in ("token", "sequence")
    for lt in ("grpo", "dapo", "dr_grpo", "cispo")
    for eps, eps_high in EPS[lt]
    for beta in (0.0, 0.04)
]


@pytest.mark.parametrize(
    "level, loss_type, eps, eps_high, beta",
    GRID,
    ids=[f"{lv}-{lt}-eps{e}-{eh}-beta{b}" for lv, lt, e, eh, b in GRID],
)
def test_rlvr_policy_loss_matches_trl_compute_loss(level, loss_type, eps, eps_high, beta):
    logp, old, ref, adv, mask = _batch(seed=len(level) * 100 + len(loss_type) * 10 + int(beta * 100))
    max_len = 9  # > T: dr_grpo's constant is max_completion_length, not T
    t_loss, t_grad, metrics = _trl_loss(
        logp,
        old,
        ref,
        adv,
        mask,
        importance_sampling_level=level,
        loss_type=loss_type,
        epsilon=eps,
        epsilon_high=eps_high,
        beta=beta,
        max_completion_length=max_len,
    )
    o_loss, o_grad, stats = _ours(
        logp,
        old,
        ref,
        adv,
        mask,
        eps_low=eps,
        eps_high=eps_high if eps_high is not None else eps,
        level=level,
        loss_type=loss_type,
        beta=beta,
        max_len=max_len,
    )
    close(o_loss, t_loss)
    close(o_grad, t_grad)
    assert torch.count_nonzero(o_grad * (1 - mask)) == 0, "a gradient leaked onto padding"
    if loss_type == "cispo":
        assert stats["clip_ratio_low"] == 0.0
        close(stats["clip_ratio_high"], metrics["cispo_clip_ratio"])
    else:
        close(stats["clip_ratio_low"], metrics["clip_ratio/low_mean"])
        close(stats["clip_ratio_high"], metrics["clip_ratio/high_mean"])
    if beta:
        assert "kl" in metrics


def test_the_parity_batches_exercise_every_branch():
    """The parity grid would be vacuous if nothing clipped: on these batches both clip sides fire at
    the token level, the clip-higher bound changes the loss, and the CISPO cap binds."""
    logp, old, ref, adv, mask = _batch(seed=len("token") * 100 + len("grpo") * 10)
    kw = dict(level="token", loss_type="grpo", beta=0.0, max_len=None)
    _, _, s = _ours(logp, old, ref, adv, mask, eps_low=0.2, eps_high=0.2, **kw)
    assert s["clip_ratio_low"] > 0 and s["clip_ratio_high"] > 0, s
    sym = _ours(logp, old, ref, adv, mask, eps_low=0.2, eps_high=0.2, **kw)[0]
    higher = _ours(logp, old, ref, adv, mask, eps_low=0.2, eps_high=0.28, **kw)[0]
    assert abs(sym - higher) > 1e-4
    _, _, s = _ours(logp, old, ref, adv, mask, eps_low=0.2, eps_high=1.1, **{**kw, "loss_type": "cispo"})
    assert s["clip_ratio_high"] > 0, s
    # sequence level: at least one sequence ratio outside [0.8, 1.2]
    rho = torch.exp(rlvr.sequence_log_ratio(logp, old, mask))
    assert ((rho < 0.8) | (rho > 1.2)).any(), rho


def test_sequence_log_ratio_matches_trl_formula():
    """TRL: ``(log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)`` (no empty rows here)."""
    logp, old, _, _, mask = _batch(seed=5)
    want = ((logp - old) * mask).sum(-1) / mask.sum(-1)
    close(rlvr.sequence_log_ratio(logp, old, mask), want)


# ------------------------------------------------------------------------------------ hand cases
LN2 = math.log(2.0)


def test_think_format_reward():
    ok = [
        "<think>a</think><answer>b</answer>",
        "\n <think>line 1\nline 2</think>\n\n<answer>\n 42 \n</answer>  ",
    ]
    bad = [
        "<think>a</think><answer>b</answer>x",
        "x<think>a</think><answer>b</answer>",
        "<think>a</think>x<answer>b</answer>",
        "<think> </think><answer>b</answer>",
        "<think>a</think><answer></answer>",
        "<think>a</think><answer>b</answer><answer>c</answer>",
        "<think>a<answer>b</answer></think><answer>c</answer>",
        "<think>a</think></think><answer>b</answer>",
        "<answer>b</answer>",
        "<think>a</think>",
        "",
    ]
    assert [rlvr.think_format_reward(s) for s in ok] == [1.0, 1.0]
    assert [rlvr.think_format_reward(s) for s in bad] == [0.0] * len(bad)
    assert isinstance(rlvr.think_format_reward(ok[0]), float)
    with pytest.raises(TypeError, match="think_format_reward: completion must be a str"):
        rlvr.think_format_reward(["<think>a</think><answer>b</answer>"])


def test_answer_reward():
    assert rlvr.answer_reward("<answer>1</answer> no, <answer> 2\n</answer>", 2) == 1.0
    assert rlvr.answer_reward("<answer>1</answer> no, <answer>2</answer>", "1") == 0.0
    assert rlvr.answer_reward("<answer>1</answer> <answer>2", "1") == 1.0  # last COMPLETE block
    assert rlvr.answer_reward("<answer>\n-3\n</answer>", "-3 ") == 1.0
    assert rlvr.answer_reward("<answer>12</answer>", "2") == 0.0
    assert rlvr.answer_reward("2", "2") == 0.0
    assert rlvr.answer_reward("<answer>2", "2") == 0.0


def test_sequence_log_ratio_hand_and_errors():
    logp = torch.tensor([[LN2, -LN2, 9.0], [0.6, 5.0, -2.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(rlvr.sequence_log_ratio(logp, torch.zeros(2, 3), mask), [0.0, 0.6])
    with pytest.raises(ValueError, match=r"sequence_log_ratio: all-zero mask in rows \[1\]"):
        rlvr.sequence_log_ratio(logp, logp, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"sequence_log_ratio: .*old_logp\[2, 2\]"):
        rlvr.sequence_log_ratio(logp, torch.zeros(2, 2), mask)
    with pytest.raises(ValueError, match=r"sequence_log_ratio: `logp` must be 2-D"):
        rlvr.sequence_log_ratio(torch.zeros(3), torch.zeros(3), torch.ones(3))


def test_rlvr_policy_loss_errors_name_the_argument():
    z, m, a = torch.zeros(2, 3), torch.ones(2, 3), torch.ones(2)
    f = rlvr.rlvr_policy_loss
    with pytest.raises(ValueError, match=r"unknown level 'segment'"):
        f(z, z, a, m, level="segment")
    with pytest.raises(ValueError, match=r"unknown loss_type 'bnpo'"):
        f(z, z, a, m, loss_type="bnpo")
    with pytest.raises(ValueError, match=r"advantages\[3\] must be \[B\] = \[2\]"):
        f(z, z, torch.ones(3), m)
    with pytest.raises(ValueError, match=r"mask\[2, 4\]"):
        f(z, z, a, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"ref_logp is None but beta != 0"):
        f(z, z, a, m, beta=0.1)
    with pytest.raises(ValueError, match=r"ref_logp\[2, 2\]"):
        f(z, z, a, m, beta=0.1, ref_logp=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"eps_low and eps_high must be >= 0"):
        f(z, z, a, m, eps_high=-0.1)
    with pytest.raises(ValueError, match=r"all-zero mask in rows \[1\]"):
        f(z, z, a, torch.tensor([[1, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"whole mask\[2, 3\] is zero: 'cispo'"):
        f(z, z, a, torch.zeros(2, 3), loss_type="cispo")
    loss, stats = f(z, z, a, torch.zeros(2, 3), loss_type="dr_grpo")  # a constant normaliser: 0
    assert loss.item() == 0.0 and stats == {"clip_ratio_low": 0.0, "clip_ratio_high": 0.0, "mean_ratio": 0.0}


def test_rlvr_policy_loss_reduces_to_unit06_grpo_loss():
    """Token level, symmetric clip: the unit-06 loss (grpo_loss) on the same tensors, for every
    reduction they share, with and without the KL term."""
    from solutions import grpo

    logp, old, ref, adv, mask = _batch(seed=11)
    for lt in ("grpo", "dapo", "dr_grpo"):
        for beta in (0.0, 0.04):
            ours = rlvr.rlvr_policy_loss(
                logp, old, adv, mask, 0.2, 0.2, "token", lt, ref, beta, max_completion_length=8
            )[0]
            close(ours, grpo.grpo_loss(logp, old, ref, adv, mask, 0.2, beta, lt, 8))


def test_dynamic_sampling_mask():
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 1.0])
    got = rlvr.dynamic_sampling_mask(r, 2)
    assert got.dtype == torch.bool
    assert got.tolist() == [False] * 6 + [True, True]  # [1, 1] [0, 0] [.5, .5] agree; [0, 1] does not
    assert rlvr.dynamic_sampling_mask(r, 4).tolist() == [True] * 8
    assert rlvr.dynamic_sampling_mask(r, 1).tolist() == [False] * 8  # a group of one always agrees
    with pytest.raises(ValueError, match=r"8 rewards do not split into groups of 3"):
        rlvr.dynamic_sampling_mask(r, 3)
    with pytest.raises(ValueError, match=r"group_size must be >= 1"):
        rlvr.dynamic_sampling_mask(r, 0)
    with pytest.raises(ValueError, match=r"`rewards` must be 1-D"):
        rlvr.dynamic_sampling_mask(r.view(2, 4), 4)
