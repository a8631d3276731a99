"""Unit 06: exercise 6.3 (`grpo_step`) and the from-scratch GRPO trainer on seeded tiny cases."""

from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch

import course_lib
from course_lib import grpo, kl
from course_lib.core import sampling
from course_lib.core.config import TINY
from course_lib.trainers import grpo as gt


@pytest.fixture
def rollout(tiny):
    model, tok = tiny
    g = torch.Generator().manual_seed(0)
    return sampling.sample(
        model, tok, ["The film was", "I watched it and"], max_new_tokens=6, num_samples=4, generator=g
    )


def _fresh(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    return m, torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.0)


def _logp(model, rollout):
    with torch.no_grad():
        return kl.token_logprobs(sampling.completion_logits(model, rollout), rollout.completion_ids)


# --------------------------------------------------------------------------- exercise 6.3
def test_stub_raises_naming_notebook_and_exercise():
    from course_lib.grpo import grpo_step as stub  # the module attribute may be rebound

    if course_lib.solutions_active():
        pytest.skip("solutions active")
    with pytest.raises(NotImplementedError, match=r"Exercise 6\.3 \(notebook 06_grpo\)"):
        stub(None, None, None, torch.zeros(1))


def test_registered_and_signature_matches_solution():
    import solutions.grpo
    from course_lib.core import registry as exercises

    ex = exercises.get("grpo_step")
    assert (ex.number, ex.module, ex.notebook) == ("6.3", "grpo", "06_grpo")
    stub = course_lib.core.switch._ORIGINALS.get(("grpo", "grpo_step"), grpo.grpo_step)
    assert inspect.signature(stub) == inspect.signature(solutions.grpo.grpo_step)


def test_grpo_step_loss_logp_and_update(tiny, rollout, solutions_on):
    model, _ = _fresh(tiny)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # small first-order step
    ref_logp = _logp(tiny[0], rollout)
    before = _logp(model, rollout)
    adv = grpo.group_advantages(torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0]), 4)
    expected = grpo.grpo_loss(before, before, ref_logp, adv, rollout.completion_mask, beta=0.04)
    out = grpo.grpo_step(model, opt, rollout, adv, ref_logp=ref_logp, beta=0.04)
    assert set(out) >= {"loss", "grad_norm", "logp"}
    assert out["loss"] == pytest.approx(expected.item(), abs=1e-6)
    torch.testing.assert_close(out["logp"], before)  # log-probs *before* the update
    assert not out["logp"].requires_grad
    after = _logp(model, rollout)
    assert (after - before).abs().max() > 1e-4  # the optimizer stepped
    # the update moves probability towards the completions with positive advantage
    m = rollout.completion_mask
    gain = ((after - before) * m).sum(-1) / m.sum(-1)
    assert gain[adv > 0].mean() > 0 > gain[adv < 0].mean(), gain


def test_grpo_step_clips_gradient_and_reports_norm_before_clipping(tiny, rollout, solutions_on):
    model, opt = _fresh(tiny)
    adv = grpo.group_advantages(torch.tensor([3.0, 0, 1, 0, 2, 0, 0, 1]), 4)
    out = grpo.grpo_step(model, opt, rollout, adv, beta=0.0, max_grad_norm=1e-3)
    total = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
    assert out["grad_norm"] > 1e-3
    assert total.item() == pytest.approx(1e-3, rel=1e-3)


def test_zero_advantages_and_no_kl_leave_the_model_unchanged(tiny, rollout, solutions_on):
    model, opt = _fresh(tiny)
    before = [p.detach().clone() for p in model.parameters()]
    out = grpo.grpo_step(model, opt, rollout, torch.zeros(len(rollout)), beta=0.0)
    assert out["loss"] == 0.0 and out["grad_norm"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_old_logp_is_used_when_given(tiny, rollout, solutions_on):
    model, opt = _fresh(tiny)
    logp = _logp(model, rollout)
    adv = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
    # an old policy that gave the sampled tokens much *lower* probability: ratios > 1 + eps,
    # the positive-advantage tokens are clipped (no gradient), so the loss differs from rho=1
    old = logp - 1.0
    out = grpo.grpo_step(model, opt, rollout, adv, old_logp=old, beta=0.0)
    expected = grpo.grpo_loss(logp, old, None, adv, rollout.completion_mask, beta=0.0)
    assert out["loss"] == pytest.approx(expected.item(), abs=1e-5)
    assert out["loss"] != pytest.approx(
        grpo.grpo_loss(logp, logp, None, adv, rollout.completion_mask, beta=0.0).item(), abs=1e-3
    )


@pytest.mark.parametrize("bad", ["advantages", "old_logp", "ref_logp"])
def test_grpo_step_bad_shapes_name_the_tensor(tiny, rollout, solutions_on, bad):
    model, opt = _fresh(tiny)
    kw = {"advantages": torch.zeros(len(rollout)), "old_logp": None, "ref_logp": None}
    kw[bad] = torch.zeros(3) if bad == "advantages" else torch.zeros(len(rollout), 2)
    with pytest.raises(ValueError, match=bad):
        grpo.grpo_step(
            model, opt, rollout, kw["advantages"], old_logp=kw["old_logp"], ref_logp=kw["ref_logp"], beta=0.0
        )


def test_shipped_visible_check_passes_with_solution_and_catches_mistakes(solutions_on, monkeypatch):
    """The check the notebook's test cell runs (course_lib/checks/grpo.py), against the solution and
    two plausible mistakes."""
    from course_lib.checks import check

    check("grpo_step")
    import solutions.grpo as sol

    def no_clip(model, optimizer, rollout, advantages, old_logp=None, ref_logp=None, **kw):
        kw["max_grad_norm"] = 1e9
        return sol.grpo_step(model, optimizer, rollout, advantages, old_logp, ref_logp, **kw)

    monkeypatch.setattr(grpo, "grpo_step", no_clip)
    with pytest.raises(AssertionError, match="max_grad_norm"):
        check("grpo_step")

    def ignores_old(model, optimizer, rollout, advantages, old_logp=None, ref_logp=None, **kw):
        return sol.grpo_step(model, optimizer, rollout, advantages, None, ref_logp, **kw)

    monkeypatch.setattr(grpo, "grpo_step", ignores_old)
    with pytest.raises(AssertionError, match="old_logp"):
        check("grpo_step")


# --------------------------------------------------------------------------- the trainer
def _small(task="sentiment", **kw):
    base = dict(max_steps=3, prompts_per_step=2, num_generations=4, max_completion_length=8, eval_size=8)
    base.update(kw)
    return gt.GRPOConfig.from_profile(TINY, "quick", task=task, **base)


def test_config_names_follow_trl_and_validate():
    from trl import GRPOConfig as TRLConfig

    names = {f.name for f in __import__("dataclasses").fields(TRLConfig)}
    ours = {f.name for f in __import__("dataclasses").fields(gt.GRPOConfig)}
    shared = {
        "num_generations",
        "beta",
        "epsilon",
        "loss_type",
        "scale_rewards",
        "max_completion_length",
        "temperature",
        "num_iterations",
        "learning_rate",
        "max_grad_norm",
        "lr_scheduler_type",
        "reward_weights",
        "max_steps",
    }
    assert shared <= names and shared <= ours
    cfg = _small(loss_type="dr_grpo", scale_rewards="batch", num_iterations=2)
    trl_cfg = cfg.to_trl("/tmp/unused_trl_dir")
    for n in shared - {"reward_weights"}:
        assert getattr(trl_cfg, n) == getattr(cfg, n), n
    assert trl_cfg.per_device_train_batch_size == 2 * 4
    for bad in (
        {"loss_type": "ppo"},
        {"scale_rewards": "std"},
        {"num_generations": 1},
        {"num_iterations": 0},
        {"task": "chess"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _small(**bad) if "task" not in bad else gt.GRPOConfig(**bad).validate()


def test_presets_fill_steps_batch_and_lengths():
    cfg = gt.GRPOConfig.from_profile(TINY, "medium", task="sentiment")
    assert (cfg.max_steps, cfg.prompts_per_step, cfg.eval_size) == (150, 8, 128)
    assert cfg.max_completion_length == TINY.max_completion_length
    assert gt.GRPOConfig.from_profile(TINY, "quick", task="arithmetic").max_completion_length == 8
    with pytest.raises(ValueError, match="unknown field 'num_generation'"):
        gt.GRPOConfig.from_profile(TINY, "quick", num_generation=4)


def test_cosine_schedule():
    from course_lib.trainers._loop import lr_schedule

    def lrs(warmup, offset, steps=10):
        sched = lr_schedule(
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
            "cosine",
            warmup,
            steps,
            warmup_offset=offset,
        )
        out = []
        for _ in range(steps + 1):
            out.append(sched.get_last_lr()[0])
            sched.optimizer.step()
            sched.step()
        return out

    f = lrs(0, 1)
    assert f[0] == 1.0 and f[5] == pytest.approx(0.5) and f[10] == pytest.approx(0.0)
    assert lrs(2, 1)[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])  # GRPO warms up: (step + 1) / (warmup + 1)


def test_train_is_seeded_and_starts_at_the_reference(tiny, solutions_on):
    runs = [gt.train(_small(), copy.deepcopy(tiny[0]), tiny[1], show_progress=False) for _ in range(2)]
    h1, h2 = runs[0].history, runs[1].history
    assert len(h1) == 3
    assert [h["reward"] for h in h1] == [h["reward"] for h in h2]
    assert h1[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # before any update: policy == ref
    assert h1[-1]["kl"] > 0
    # loss at step 1: ratio 1, KL 0, group-centred advantages -> exactly zero on average
    assert h1[0]["loss"] == pytest.approx(0.0, abs=1e-6)
    for k in (
        "loss",
        "reward",
        "reward_std",
        "kl",
        "clip_fraction",
        "grad_norm",
        "completion_length",
        "lr",
        "seconds",
        "frac_reward_zero_std",
        "rewards/sentiment_reward",
    ):
        assert k in h1[0], k
    lr = _small().learning_rate  # cosine over 3 steps: the LR each step used
    assert h1[0]["lr"] == lr and h1[-1]["lr"] == pytest.approx(0.25 * lr)


def test_weighted_rewards_and_extra_columns_reach_reward_functions(tiny, solutions_on):
    seen = {}

    def words(completions, **kw):
        seen.update(kw)
        return [float(len(c.split())) for c in completions]

    def one(completions, **kw):
        return [1.0] * len(completions)

    data = [{"prompt": "The film was", "tag": "a"}, {"prompt": "I watched it and", "tag": "b"}]
    run = gt.train(
        _small(max_steps=1, reward_weights=[0.5, 2.0]),
        copy.deepcopy(tiny[0]),
        tiny[1],
        data,
        reward_funcs=[words, one],
        show_progress=False,
    )
    h = run.history[0]
    assert h["reward"] == pytest.approx(0.5 * h["rewards/words"] + 2.0)
    assert sorted(set(seen["tag"])) == ["a", "b"] and len(seen["tag"]) == 8
    assert len(seen["prompts"]) == 8 and len(seen["completion_ids"]) == 8


def test_num_iterations_reuses_the_batch_with_old_logprobs(tiny, solutions_on):
    run = gt.train(
        _small(max_steps=2, num_iterations=3, learning_rate=3e-2),
        copy.deepcopy(tiny[0]),
        tiny[1],
        show_progress=False,
    )
    assert len(run.history) == 2
    # iterations 2 and 3 see ratios != 1 (old log-probs are fixed): some tokens get clipped
    assert max(h["clip_fraction"] for h in run.history) > 0


def test_top_entropy_quantile_masks_the_loss_not_the_attention(tiny, solutions_on, monkeypatch):
    """top_entropy_quantile < 1: grpo_step gets the high-entropy tokens (grpo.high_entropy_mask on
    the sampling policy's entropies) as its loss mask, attends to every completion token, and a
    row without a kept token keeps its mask with advantage 0 (a 'grpo' mean needs a token)."""
    seen, masks = [], []
    step, hem = grpo.grpo_step, grpo.high_entropy_mask

    def spy_mask(entropies, mask, quantile):
        out = hem(entropies, mask, quantile)
        masks.append((entropies, mask.clone(), quantile, out))
        return out

    def spy_step(model, optimizer, rollout, advantages, *a, **k):
        seen.append((rollout, advantages.clone()))
        return step(model, optimizer, rollout, advantages, *a, **k)

    monkeypatch.setattr(grpo, "high_entropy_mask", spy_mask)
    monkeypatch.setattr(grpo, "grpo_step", spy_step)
    run = gt.train(
        _small(max_steps=2, top_entropy_quantile=0.2), copy.deepcopy(tiny[0]), tiny[1], show_progress=False
    )
    assert len(masks) == len(seen) == 2 and all(m[2] == 0.2 for m in masks)
    for (entropies, full, _, keep), (roll, adv) in zip(masks, seen):
        assert entropies.shape == full.shape and (entropies[full.bool()] > 0).all()
        empty = keep.sum(-1) == 0
        expected = torch.where(empty[:, None], full, keep.long())
        assert torch.equal(roll.completion_mask.long(), expected.long())
        assert torch.equal(roll.attention_mask[:, roll.prompt_ids.shape[1] :], full)
        assert (adv[empty] == 0).all()
        assert keep.sum() < full.sum()
    assert all(h["entropy"] > 0 for h in run.history)
    with pytest.raises(ValueError, match="top_entropy_quantile"):
        _small(top_entropy_quantile=0.0)


def test_trainer_learns_a_simple_reward(tiny, solutions_on):
    """Reward = -number of words: GRPO must shorten the completions within a few steps."""

    def short(completions, **kw):
        return [-float(len(c.split())) for c in completions]

    run = gt.train(
        _small(
            max_steps=12,
            prompts_per_step=4,
            num_generations=8,
            learning_rate=1e-3,
            max_completion_length=16,
            beta=0.0,
        ),
        copy.deepcopy(tiny[0]),
        tiny[1],
        reward_funcs=[short],
        show_progress=False,
    )
    first = sum(h["reward"] for h in run.history[:3]) / 3
    last = sum(h["reward"] for h in run.history[-3:]) / 3
    assert last > first + 2, (first, last)


def test_stub_mode_raises_the_exercise_error(tiny):
    if course_lib.solutions_active():
        pytest.skip("solutions active")
    with pytest.raises(NotImplementedError, match="Exercise"):
        gt.train(_small(max_steps=1), copy.deepcopy(tiny[0]), tiny[1], show_progress=False)


def test_quick_train_saves_checkpoints(tmp_path, monkeypatch, solutions_on):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    path = gt.quick_train(TINY, "quick", max_steps=1, prompts_per_step=2, num_generations=2)
    assert path == tmp_path / "grpo" and (path / "config.json").exists()
    path2 = gt.quick_train(
        TINY, "quick", task="arithmetic", max_steps=1, prompts_per_step=2, num_generations=2
    )
    assert path2 == tmp_path / "grpo_arithmetic"
    from course_lib.core.models import load_policy

    model, tok = load_policy(path2, profile=TINY, device="cpu")
    assert model.config.n_layer == tiny_layers()


def tiny_layers():
    import json

    from course_lib.core.config import ASSET_DIR

    return json.loads((ASSET_DIR / "config.json").read_text())["n_layer"]


def test_gpu_path_on_standins(gpu_profile, tmp_path, solutions_on):
    out = gt.quick_train(gpu_profile, "quick", out_dir=tmp_path / "g", task="arithmetic")
    assert (out / "config.json").exists()
    res = gt.evaluate(
        *__import__("course_lib.core.models", fromlist=["load_policy"]).load_policy(
            out, profile=gpu_profile, device="cpu"
        ),
        task="arithmetic",
        profile=gpu_profile,
        n=4,
    )
    assert 0.0 <= res["accuracy"] <= 1.0 and res["n"] == 4


def test_evaluate_reports_the_shared_metrics(tiny, solutions_on):
    from course_lib.core.models import frozen_copy

    model, tok = tiny
    res = gt.evaluate(model, tok, "sentiment", ref_model=frozen_copy(model), n=8, profile=TINY)
    assert {"positive_fraction", "distinct_2", "kl_to_ref", "reward_mean"} <= set(res)
    assert res["kl_to_ref"] == pytest.approx(0.0, abs=1e-6)
    res = gt.evaluate(model, tok, "arithmetic", n=8, profile=TINY)
    assert {"accuracy", "first_integer_accuracy"} <= set(res)
    assert not math.isnan(res["accuracy"])


def test_train_trl_side_by_side_runs_with_our_reward_functions(tiny, solutions_on, tmp_path):
    cfg = _small(max_steps=2)
    res = gt.train_with_trl(cfg, copy.deepcopy(tiny[0]), tiny[1], output_dir=tmp_path, profile=TINY)
    assert [h["step"] for h in res.history] == [1, 2] and all(h["seconds"] > 0 for h in res.history)
    assert all(0.0 <= h["reward"] <= 1.0 for h in res.history)


# --------------------------------------------------------------------------- advantage estimators
def test_advantage_estimator_dispatches_to_the_exercise_functions(solutions_on, monkeypatch):
    r = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.91, 0.92, 0.93, 0.92])
    torch.testing.assert_close(
        gt.estimate_advantages(r, 4, _small(scale_rewards="batch")),
        grpo.group_advantages(r, 4, scale="batch"),
    )
    torch.testing.assert_close(
        gt.estimate_advantages(r, 4, _small(advantage_estimator="rloo")), grpo.rloo_advantages(r, 4)
    )
    torch.testing.assert_close(
        gt.estimate_advantages(r, 4, _small(advantage_estimator="reinforce_pp")),
        grpo.reinforce_pp_advantages(r, 4),
    )
    calls = []
    monkeypatch.setattr(
        grpo, "rloo_advantages", lambda rewards, G: calls.append(G) or torch.zeros_like(rewards)
    )
    gt.estimate_advantages(r, 4, _small(advantage_estimator="rloo"))  # looked up on the module: the student's
    assert calls == [4]
    with pytest.raises(ValueError, match="advantage_estimator"):
        _small(advantage_estimator="ppo")


def test_gradient_noise_is_scale_free_and_logged_per_step(tiny, rollout, solutions_on):
    model = copy.deepcopy(tiny[0])
    before = [p.detach().clone() for p in model.parameters()]
    adv = grpo.group_advantages(torch.tensor([3.0, 0, 1, 0, 2, 0, 0, 1]), 4, scale="none")
    cfg = _small()
    one, two = (
        gt.gradient_noise(model, rollout, adv, 4, cfg),
        gt.gradient_noise(model, rollout, 2 * adv, 4, cfg),
    )
    assert one["grad_variance"] > 0 and two["grad_variance"] == pytest.approx(
        4 * one["grad_variance"], rel=1e-4
    )
    assert two["grad_noise_ratio"] == pytest.approx(one["grad_noise_ratio"], rel=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing trained
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    assert math.isnan(
        gt.gradient_noise(model, rollout, adv, 8, cfg)["grad_variance"]
    )  # one prompt: no halves
    run = gt.train(
        _small(max_steps=2, advantage_estimator="rloo", log_grad_variance=True),
        copy.deepcopy(tiny[0]),
        tiny[1],
        show_progress=False,
    )
    assert all(h["grad_variance"] >= 0 and h["grad_noise_ratio"] >= 0 for h in run.history)
    assert (
        "grad_variance"
        not in gt.train(_small(max_steps=1), copy.deepcopy(tiny[0]), tiny[1], show_progress=False).history[0]
    )


def test_equal_rewards_give_loss_zero_gradient_zero_and_frac_zero_std_one(tiny, solutions_on):
    """The notebook's "why is my loss 0?": every group ties -> advantages 0, and at step 1 KL 0."""
    run = gt.train(
        _small(max_steps=1),
        copy.deepcopy(tiny[0]),
        tiny[1],
        reward_funcs=[lambda completions, **kw: [1.0] * len(completions)],
        show_progress=False,
    )
    h = run.history[0]
    assert (h["loss"], h["grad_norm"], h["frac_reward_zero_std"]) == (0.0, 0.0, 1.0)


def test_trl_side_by_side_refuses_an_estimator_trls_grpo_cannot_compute():
    assert _small().to_trl("/tmp/unused_trl_dir").loss_type == "grpo"
    with pytest.raises(ValueError, match="RLOOTrainer"):
        _small(advantage_estimator="rloo").to_trl("/tmp/unused_trl_dir")
