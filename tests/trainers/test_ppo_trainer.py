"""The from-scratch PPO trainer (course_lib/trainers/ppo.py), on seeded tiny cases with the solutions."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest
import torch

from course_lib import kl, ppo
from course_lib.core import sampling
from course_lib.core.config import TINY
from course_lib.trainers import ppo as pt

PROMPTS = ["The movie was", "I think the plot was", "Overall, this film", "The acting in this film"]


@pytest.fixture
def models(tiny):
    """A fresh policy-with-value-head on a copy of the tiny model, and the frozen reference."""
    from course_lib.core.models import PolicyWithValueHead, frozen_copy

    model, tok = tiny
    torch.manual_seed(0)
    lm = copy.deepcopy(model)
    return PolicyWithValueHead(lm), frozen_copy(lm), tok


def _const_reward(value):
    def reward(completions, **kw):
        return [value] * len(completions)

    return reward


def _rollout(models, config, reward_fn=None, kl_coef=0.1, seed=0):
    policy, ref, tok = models
    return pt.collect_rollout(
        policy,
        ref,
        tok,
        PROMPTS,
        reward_fn or _const_reward(1.0),
        kl_coef,
        config,
        torch.Generator().manual_seed(seed),
    )


# --------------------------------------------------------------------------- config and KL control
def test_config_validates_and_derives_minibatch_size():
    cfg = pt.PPOConfig(batch_size=8, num_mini_batches=4)
    assert cfg.mini_batch_size == 2
    with pytest.raises(ValueError, match="multiple of num_mini_batches"):
        pt.PPOConfig(batch_size=8, num_mini_batches=3)
    with pytest.raises(ValueError, match="reward must be one of"):
        pt.PPOConfig(reward="vibes")
    p = TINY.preset("quick")
    cfg = pt.PPOConfig.from_profile(TINY, "quick", learning_rate=1e-5)
    # tiny steps sample 8 prompts per preset batch (64 on quick), in minibatches of 16
    assert (cfg.max_steps, cfg.batch_size, cfg.learning_rate) == (p.steps, 8 * p.batch_size, 1e-5)
    assert (cfg.mini_batch_size, cfg.target_kl) == (16, 3.0)
    from course_lib.core.config import get_profile

    gpu = get_profile("gpu")
    assert pt.PPOConfig.from_profile(gpu, "quick").batch_size == 4 * gpu.preset("quick").batch_size
    with pytest.raises(ValueError, match="PPOConfig: ppo_epochs must be an int >= 1, got 0"):
        pt.PPOConfig(ppo_epochs=0)


def test_adaptive_kl_controller_math():
    c = pt.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    assert c.update(6.6, 1000) == pytest.approx(0.1 * (1 + 0.1 * 1000 / 10000))  # error 0.1
    c = pt.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    assert c.update(60.0, 1000) == pytest.approx(0.1 * 1.02)  # error clipped at +0.2
    c = pt.AdaptiveKLController(0.1, target=6.0, horizon=100)
    assert c.update(0.0, 50) == pytest.approx(0.1 * 0.9)  # error clipped at -0.2
    c = pt.AdaptiveKLController(0.1, target=6.0, horizon=100)
    assert c.update(6.0, 50) == pytest.approx(0.1)  # on target: unchanged
    f = pt.FixedKLController(0.3)
    assert f.update(100.0, 1000) == 0.3
    assert isinstance(pt.make_kl_controller(pt.PPOConfig(adaptive_kl=True)), pt.AdaptiveKLController)


# --------------------------------------------------------------------------- rollout -> advantages
def test_policy_forward_matches_the_sampler_logits(models, solutions_on):
    policy, ref, tok = models
    roll = sampling.sample(
        policy.lm, tok, PROMPTS, max_new_tokens=6, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        logits, values = pt.policy_forward(policy, roll)
        expected = sampling.completion_logits(policy.lm, roll)
    assert logits.shape == expected.shape and values.shape == roll.completion_ids.shape
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        sub_logits, sub_values = pt.policy_forward(policy, roll, rows=torch.tensor([2, 0]))
    torch.testing.assert_close(sub_logits, logits[[2, 0]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sub_values, values[[2, 0]], atol=1e-5, rtol=1e-5)


def test_rollout_rewards_advantages_shapes_and_sums(models, solutions_on):
    cfg = pt.PPOConfig(batch_size=4, max_new_tokens=8, gamma=1.0, lam=1.0, whiten_advantages=False)
    b = _rollout(models, cfg, reward_fn=_const_reward(2.0), kl_coef=0.1)
    B, C = b["response_ids"].shape
    assert B == 4 and 1 <= C <= 8
    for k in ("mask", "old_logprobs", "ref_logprobs", "old_values", "rewards", "advantages", "returns"):
        assert b[k].shape == (B, C), k
    mask = b["mask"].float()
    # the reference is the starting policy: KL 0, so the per-token rewards sum to the score
    torch.testing.assert_close(b["old_logprobs"], b["ref_logprobs"], atol=1e-5, rtol=0)
    torch.testing.assert_close(b["rewards"].sum(-1), torch.full((B,), 2.0), atol=1e-4, rtol=0)
    # gamma = lam = 1 and V after the end = 0: the return of the first token is the total reward
    torch.testing.assert_close(b["returns"][:, 0], b["rewards"].sum(-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(b["returns"] - b["old_values"], b["advantages"], atol=1e-5, rtol=0)
    assert (b["advantages"] * (1 - mask)).abs().sum() == 0
    assert not b["advantages"].requires_grad


def test_kl_penalty_enters_the_rewards(models, solutions_on):
    policy, ref, tok = models
    with torch.no_grad():  # move the policy away from the reference
        for p in policy.lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = pt.PPOConfig(batch_size=4, max_new_tokens=8)
    b = _rollout((policy, ref, tok), cfg, reward_fn=_const_reward(0.0), kl_coef=0.5)
    k1 = (b["old_logprobs"] - b["ref_logprobs"]) * b["mask"]
    torch.testing.assert_close(b["rewards"], -0.5 * k1, atol=1e-5, rtol=0)
    adv = b["advantages"][b["mask"].bool()]
    assert abs(adv.mean().item()) < 1e-4 and adv.std().item() == pytest.approx(1.0, abs=1e-3)  # whitened


# --------------------------------------------------------------------------- the update
def test_one_ppo_update_lowers_the_surrogate_loss(models, solutions_on):
    policy, ref, tok = models
    cfg = pt.PPOConfig(
        batch_size=4, num_mini_batches=1, ppo_epochs=1, max_new_tokens=8, learning_rate=1e-3, vf_coef=0.0
    )
    scores = iter([[1.0, 0.0, 1.0, 0.0]])
    b = pt.collect_rollout(
        policy, ref, tok, PROMPTS, lambda c, **kw: next(scores), 0.0, cfg, torch.Generator().manual_seed(0)
    )
    keys = ("response_ids", "mask", "old_logprobs", "old_values", "advantages", "returns")

    def surrogate():
        with torch.no_grad():
            logits, values = pt.policy_forward(policy, b["rollout"])
            return ppo.ppo_minibatch_loss(logits, values, {k: b[k] for k in keys}, vf_coef=0.0)

    loss0, _ = surrogate()
    stats = pt.ppo_update(policy, torch.optim.SGD(policy.parameters(), lr=0.05), b, cfg, random.Random(0))
    # first (and only) minibatch: the policy is still the rollout policy -> ratio 1, nothing clipped
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6) and stats["clip_fraction"] == 0.0
    assert stats["policy_loss"] == pytest.approx(loss0.item(), abs=1e-5)
    loss1, after = surrogate()
    assert loss1.item() < loss0.item() - 1e-4
    assert after["approx_kl"].item() > 0
    # rewarded sequences became more likely, unrewarded ones less likely
    with torch.no_grad():
        logits, _ = pt.policy_forward(policy, b["rollout"])
    new = (kl.token_logprobs(logits, b["response_ids"]) - b["old_logprobs"]) * b["mask"]
    delta = new.sum(-1)
    assert delta[[0, 2]].mean() > 0 > delta[[1, 3]].mean()


def test_no_clipping_means_zero_clip_fraction(models, solutions_on):
    policy, ref, tok = models
    cfg = pt.PPOConfig(
        batch_size=4, num_mini_batches=2, ppo_epochs=4, max_new_tokens=8, learning_rate=3e-3, clip_range=None
    )
    b = pt.collect_rollout(
        policy,
        ref,
        tok,
        PROMPTS,
        lambda c, **kw: [1.0, 0.0, 1.0, 0.0],
        0.0,
        cfg,
        torch.Generator().manual_seed(0),
    )
    stats = pt.ppo_update(policy, torch.optim.AdamW(policy.parameters(), lr=3e-3), b, cfg)
    assert stats["clip_fraction"] == 0.0 and stats["approx_kl"] > 0


def test_the_value_head_learns(models, solutions_on):
    policy, ref, tok = models
    cfg = pt.PPOConfig(
        batch_size=4,
        num_mini_batches=1,
        ppo_epochs=1,
        max_new_tokens=8,
        vf_coef=1.0,
        cliprange_value=10.0,
        learning_rate=3e-3,
    )
    b = pt.collect_rollout(
        policy,
        ref,
        tok,
        PROMPTS,
        lambda c, **kw: [2.0, -1.0, 2.0, -1.0],
        0.0,
        cfg,
        torch.Generator().manual_seed(0),
    )
    for p in policy.lm.parameters():  # train the critic only: the rollout stays valid
        p.requires_grad_(False)
    opt = torch.optim.AdamW(policy.value_head.parameters(), lr=3e-2)
    first = pt.ppo_update(policy, opt, b, cfg)["value_loss"]
    for _ in range(40):
        last = pt.ppo_update(policy, opt, b, cfg)["value_loss"]
    assert last < 0.3 * first, (first, last)


# --------------------------------------------------------------------------- the loop and quick_train
def test_train_history_and_adaptive_beta(models, solutions_on):
    policy, ref, tok = models
    cfg = pt.PPOConfig(
        max_steps=3,
        batch_size=4,
        max_new_tokens=8,
        learning_rate=3e-3,
        kl_coef=0.2,
        adaptive_kl=True,
        target_kl=1e-3,
        horizon=8,
    )
    res = pt.train(cfg, policy, tok, PROMPTS * 2, ref_model=ref, reward_fn=_const_reward(0.5), profile=TINY)
    assert res.model is policy and res.ref_model is ref
    assert [h["step"] for h in res.history] == [1, 2, 3]
    for key in (
        "reward",
        "kl",
        "kl_coef",
        "entropy",
        "clip_fraction",
        "value_loss",
        "policy_loss",
        "approx_kl",
        "completion_length",
        "lr",
        "seconds",
    ):
        assert all(torch.isfinite(torch.tensor(h[key])) for h in res.history), key
    assert res.history[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # starts at the reference
    assert res.history[-1]["kl"] > 0
    # the loop feeds each step's mean KL per sequence to Ziegler's controller
    for prev, nxt in zip(res.history, res.history[1:]):
        error = min(max(prev["kl_seq"] / 1e-3 - 1, -0.2), 0.2)
        assert nxt["kl_coef"] == pytest.approx(prev["kl_coef"] * (1 + error * 4 / 8))
    assert res.history[1]["kl_coef"] == pytest.approx(0.2 * 0.9)  # step 1: KL 0 -> beta lowered
    last = res.history[-1]  # the final beta: one more update
    error = min(max(last["kl_seq"] / 1e-3 - 1, -0.2), 0.2)
    assert res.info["kl_coef"] == pytest.approx(last["kl_coef"] * (1 + error * 4 / 8))


def _length_reward(completions, **kw):
    """A reward that differs between samples (so the advantages are not all zero)."""
    return [len(c) % 7 / 7 for c in completions]


def _run_state(run):
    return run.history, [p.detach().clone() for p in run.model.parameters()], run.info["kl_coef"]


def test_a_resumed_run_is_the_same_run(tiny, solutions_on):
    """Two steps, then two more with resume=, give the numbers of four steps at once: the optimizer,
    the KL controller and the random streams go on where they stopped (notebook 05 pauses halfway)."""
    from course_lib.core.models import PolicyWithValueHead, frozen_copy

    cfg = pt.PPOConfig(max_steps=4, batch_size=4, num_mini_batches=2, max_new_tokens=6, learning_rate=3e-3,
                       adaptive_kl=True, target_kl=0.5, horizon=8)  # fmt: skip
    results = []
    for pause in (None, 2):
        torch.manual_seed(0)
        lm = copy.deepcopy(tiny[0])
        policy, ref = PolicyWithValueHead(lm), frozen_copy(lm)
        first = cfg if pause is None else dataclasses.replace(cfg, max_steps=pause)
        run = pt.train(first, policy, tiny[1], PROMPTS * 3, ref_model=ref, reward_fn=_length_reward,
                       profile=TINY, show_progress=False)  # fmt: skip
        if pause is not None:
            assert [h["step"] for h in run.history] == [1, 2]
            run = pt.train(cfg, resume=run, show_progress=False)
        results.append(run)
    (h_all, w_all, beta_all), (h_split, w_split, beta_split) = map(_run_state, results)
    assert [h["step"] for h in h_split] == [1, 2, 3, 4]
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in h_split] == [
        {k: v for k, v in h.items() if k not in drop} for h in h_all
    ]
    assert all(torch.equal(a, b) for a, b in zip(w_all, w_split)) and beta_all == beta_split
    with pytest.raises(ValueError, match="only max_steps"):
        pt.train(dataclasses.replace(cfg, max_steps=6, learning_rate=1e-3), resume=results[1])
    with pytest.raises(ValueError, match="resume= takes"):
        pt.train(cfg, resume=pt.Run(None, None, [], 0.0))


def test_headline_run_paused_halfway_finishes_as_one_run(solutions_on, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))  # no SFT checkpoint: the base model
    cfg = pt.PPOConfig(max_steps=2, batch_size=4, num_mini_batches=2, max_new_tokens=6)
    whole = pt.headline_run(cfg, TINY, PROMPTS, show_progress=False)
    paused = pt.headline_run(cfg, TINY, PROMPTS, show_progress=False, pause_after=1)
    assert paused.after is None and len(paused.run.history) == 1
    with pytest.raises(ValueError, match="finish"):
        paused.headline()
    paused.finish(show_progress=False)
    assert len(paused.run.history) == 2 and paused.train_seconds > 0
    assert [h["reward"] for h in paused.run.history] == [h["reward"] for h in whole.run.history]
    assert paused.headline() == whole.headline()


def test_reward_functions(solutions_on, tmp_path, monkeypatch):
    combined = pt.make_reward_fn(pt.PPOConfig(reward="combined"))
    r_plain, r_rep = combined(["a really great and lovely film", "great great great great great"])
    assert r_plain > r_rep
    sentiment = pt.make_reward_fn(pt.PPOConfig(reward="sentiment"))
    good, bad = sentiment(["a wonderful, great film", "an awful, terrible film"], prompts=["", ""])
    assert good > 0.5 > bad
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="reward_model"):
        pt.make_reward_fn(pt.PPOConfig(reward="reward_model"))


def test_quick_train_saves_a_loadable_checkpoint(tmp_path, monkeypatch, solutions_on):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ckpts"))
    out = pt.quick_train(TINY, "quick", max_steps=2, batch_size=4)
    assert out == tmp_path / "ckpts" / "ppo"
    assert (out / "value_head.safetensors").exists() and (out / "training_info.json").exists()
    from course_lib.core.models import load_policy

    model, tok = load_policy(out, profile=TINY, device="cpu")
    roll = sampling.sample(
        model, tok, PROMPTS[:1], max_new_tokens=4, generator=torch.Generator().manual_seed(0)
    )
    assert roll.completion_ids.shape[0] == 1


def test_evaluate_reports_the_shared_metrics(models, solutions_on):
    policy, ref, tok = models
    m = pt.evaluate(policy, ref, tok, PROMPTS, max_new_tokens=8)
    assert 0 <= m["positive_fraction"] <= 1 and 0 <= m["distinct_2"] <= 1
    assert m["kl_to_ref"] == pytest.approx(0.0, abs=1e-5)
    assert set(pt.headline(m, m)) == {"positive_fraction", "distinct_2", "kl_to_ref"}


def test_evaluate_draws_average_each_metric_over_independent_draws(models, solutions_on):
    """draws=k is k single-draw evaluations with seeds seed..seed+k-1: means of the metrics, the
    extremes of min/max, the total n, and the first draw's samples (one draw of the held-out
    prompts moves distinct-2 by several points by chance)."""
    policy, ref, tok = models
    with torch.no_grad():  # a policy away from the reference, so kl_to_ref is not 0 in both
        for p in policy.lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    singles = [pt.evaluate(policy, ref, tok, PROMPTS, max_new_tokens=8, seed=7 + i) for i in range(3)]
    assert (
        singles[0]["distinct_2"] != singles[1]["distinct_2"]
        or singles[0]["kl_to_ref"] != singles[1]["kl_to_ref"]
    )
    m = pt.evaluate(policy, ref, tok, PROMPTS, max_new_tokens=8, seed=7, draws=3)
    for key in ("positive_fraction", "distinct_2", "kl_to_ref", "reward_mean", "length_mean"):
        assert m[key] == pytest.approx(sum(s[key] for s in singles) / 3), key
    assert m["reward_min"] == min(s["reward_min"] for s in singles)
    assert m["reward_max"] == max(s["reward_max"] for s in singles)
    assert m["n"] == 3 * len(PROMPTS) and m["draws"] == 3 and m["samples"] == singles[0]["samples"]
    assert (
        pt.evaluate(policy, ref, tok, PROMPTS, max_new_tokens=8, seed=7)["distinct_2"]
        == singles[0]["distinct_2"]
    )
    with pytest.raises(ValueError, match="draws must be >= 1, got 0"):
        pt.evaluate(policy, ref, tok, PROMPTS, draws=0)


def test_gpu_path_on_standins(gpu_profile, tmp_path, solutions_on):
    """The gpu profile (DistilBERT reward, gpt2-style policy, IMDB prompts) on local stand-ins."""
    out = pt.quick_train(gpu_profile, "quick", out_dir=tmp_path / "ppo")
    info = __import__("json").loads((out / "training_info.json").read_text())
    assert info["profile"] == "gpu" and info["steps"] == gpu_profile.preset("quick").steps
    assert 0.0 <= info["final"]["reward"] <= 1.0  # P(positive) from the classifier stand-in
    assert (out / "config.json").exists()
