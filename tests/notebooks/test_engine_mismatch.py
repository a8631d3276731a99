"""course_lib/labs/engine_mismatch.py: an engine with other numerics, the per-token log-prob gap,
and truncated importance sampling (TRL's vllm_importance_sampling_correction, token_truncate)."""

from __future__ import annotations

import pytest
import torch

from course_lib import grpo, kl
from course_lib.core import sampling
from course_lib.labs import engine_mismatch as em


def test_tis_weights_are_capped_and_masked():
    g = torch.Generator().manual_seed(0)
    train, eng = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    w = em.tis_weights(train, eng, mask, cap=1.5)
    raw = torch.exp(train - eng)
    assert (w <= 1.5).all() and (w[mask == 0] == 0).all()
    below = (raw < 1.5) & (mask == 1)
    assert torch.allclose(w[below], raw[below])
    assert ((raw > 1.5) & (mask == 1)).any() and (w[(raw > 1.5) & (mask == 1)] == 1.5).all()
    with pytest.raises(ValueError, match="cap must be >= 1"):
        em.tis_weights(train, eng, mask, cap=0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        em.tis_weights(train, eng[:, :4], mask)


def test_unit_weights_give_the_uncorrected_gradient(solutions_on):
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(4, 6, 10, generator=g, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 10, (4, 6), generator=g)
    mask = torch.ones(4, 6, dtype=torch.float64)
    mask[0, 4:] = 0
    adv = torch.tensor([1.0, -0.5, 0.25, -0.75], dtype=torch.float64)

    def grad(weights):
        logp = kl.token_logprobs(theta, tokens)
        (gr,) = torch.autograd.grad(em.policy_gradient(logp, adv, mask, weights), theta)
        return gr

    plain = grad(None)
    assert torch.allclose(grad(torch.ones_like(mask)), plain)
    # the same as your grpo_loss at ratio 1 (clipping cannot act there)
    logp = kl.token_logprobs(theta, tokens)
    (ref,) = torch.autograd.grad(
        grpo.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0, loss_type="bnpo"), theta
    )
    assert torch.allclose(plain, ref)
    # weights scale each token's term: doubling every weight doubles the gradient
    assert torch.allclose(grad(2 * torch.ones_like(mask)), 2 * plain)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tis_gradient_is_closer_to_on_policy_than_uncorrected(solutions_on, seed):
    toy = em.toy_bias(mismatch=1.0, caps=(1.0, 2.0, 5.0, 1e9), seed=seed)
    assert toy["kl_pi_mu"] > 0.1 and toy["max_ratio"] > 5  # a real mismatch, some ratios capped
    errs = toy["error_tis"]
    assert errs[2.0] < toy["error_uncorrected"]
    assert errs[1e9] < 1e-6  # plain IS is unbiased in expectation
    assert errs[5.0] <= errs[2.0] <= errs[1.0]  # a higher cap, less bias ...
    spread = toy["spread_tis"]
    assert spread[1.0] < spread[2.0] < spread[5.0] < spread[1e9]  # ... and more noise


def test_engine_copies_and_the_gap_on_the_tiny_model(tiny, solutions_on):
    model, tok = tiny
    prompts = ["The movie was", "I thought the food"]
    with pytest.raises(ValueError, match="kind must be one of"):
        em.engine_copy(model, "fp8")
    bf16 = em.engine_copy(model, "bf16")
    noisy = em.engine_copy(model, "noise", scale=0.05)
    p = dict(model.named_parameters())["transformer.wte.weight"]
    assert torch.equal(dict(bf16.named_parameters())["transformer.wte.weight"], p.to(torch.bfloat16).float())
    gaps = {}
    for name, eng in (("bf16", bf16), ("noise", noisy)):
        gap = em.logprob_gap(model, eng, tok, prompts, num_samples=2, max_new_tokens=12, cap=1.5)
        s = gap.stats()
        assert s["tokens"] == int(gap.rollout.completion_mask.sum()) > 0
        assert (gap.weights <= 1.5).all() and s["mean_abs_gap"] > 0
        # the engine's log-probs are those of the engine's own model on its samples
        r = gap.rollout
        with torch.no_grad():
            direct = kl.token_logprobs(sampling.completion_logits(eng, r), r.completion_ids)
        assert torch.allclose(gap.engine_logp, direct * r.completion_mask)
        gaps[name] = s["mean_abs_gap"]
    assert gaps["bf16"] < gaps["noise"]
