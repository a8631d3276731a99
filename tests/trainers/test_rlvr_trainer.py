"""Unit 09's task (course_lib.labs.reasoning) and trainer (course_lib.trainers.rlvr), on tiny runs."""

from __future__ import annotations

import copy

import pytest
import torch

from course_lib.core.config import TINY, get_profile
from course_lib.core.switch import use_solutions
from course_lib.labs import reasoning
from course_lib.trainers import rlvr as T


@pytest.fixture(autouse=True)
def solutions():
    use_solutions()
    yield
    use_solutions(False)


@pytest.fixture(scope="module")
def tiny():
    from course_lib.core.models import load_policy

    return load_policy(get_profile("tiny").policy_model, profile=get_profile("tiny"))


# --------------------------------------------------------------------------- the task
def test_problems_are_deterministic_distinct_and_heldout_never_leaks():
    a, b = reasoning.make_problems("train", 300, seed=0), reasoning.make_problems("train", 300, seed=0)
    assert a == b
    assert reasoning.make_problems("train", 300, seed=1) != a
    held = reasoning.make_problems("heldout", 300)
    train_keys = {tuple(p["numbers"]) for p in a}
    held_keys = {tuple(p["numbers"]) for p in held}
    assert len(train_keys) == len(held_keys) == 300 and not train_keys & held_keys
    assert all(reasoning.is_heldout(k) for k in held_keys) and not any(
        reasoning.is_heldout(k) for k in train_keys
    )
    for p in a[:20]:
        assert p["answer"] == str(sum(p["numbers"])) and p["n_terms"] in reasoning.TRAIN_TERMS
        assert p["prompt"].endswith("Assistant:") and reasoning.question(p["numbers"]) in p["prompt"]
    docs = reasoning.pretraining_documents(2000)
    assert docs == reasoning.pretraining_documents(2000)
    held_questions = {reasoning.question(k) for k in held_keys}
    asked = [d.split("\nUser: ")[1].split("\n")[0] for d in docs if "\nUser: " in d]
    drills = [d for d in docs if "\nUser: " not in d]
    assert asked and drills and not any(q in held_questions for q in asked)
    held_pads = {reasoning.scratchpad(k) for k in held_keys}
    assert not any(line in held_pads for d in drills for line in d.split("\n"))
    with pytest.raises(ValueError, match="split"):
        reasoning.make_problems("test", 3)


def test_styles_and_what_the_rewards_say_about_them():
    nums = [37, 85, 12, 64]
    assert reasoning.scratchpad(nums) == "37+85=122, 122+12=134, 134+64=198"
    texts = {s: reasoning.completion(nums, s) for s in reasoning.STYLES}
    scores = reasoning.score(list(texts.values()), ["198"] * len(texts))
    got = {s: (f, c) for s, f, c in zip(texts, scores["format"], scores["correct"])}
    assert got == {
        "scratchpad": (1.0, 1.0),
        "direct": (1.0, 1.0),
        "no_tags": (0.0, 0.0),
        "no_answer_tags": (0.0, 0.0),
        "no_think": (0.0, 1.0),
    }
    assert reasoning.uses_scratchpad(texts["scratchpad"]) and not reasoning.uses_scratchpad(texts["direct"])
    with pytest.raises(ValueError, match="style"):
        reasoning.completion(nums, "poem")
    assert abs(sum(reasoning.DEFAULT_MIX.values()) - 1.0) < 1e-9 and set(reasoning.DEFAULT_MIX) == set(
        reasoning.STYLES
    )


# --------------------------------------------------------------------------- the config
def test_config_variants_and_bad_values():
    p = get_profile("tiny")
    cfg = T.RLVRConfig.from_profile(p)
    assert (cfg.task, cfg.level, cfg.loss_type, cfg.beta, cfg.max_completion_length) == (
        "addition",
        "token",
        "grpo",
        0.0,
        64,
    )
    dapo = T.RLVRConfig.from_profile(p, variant="dapo")
    assert dapo.eps_high > dapo.eps_low and dapo.dynamic_sampling and dapo.loss_type == "dapo"
    assert T.RLVRConfig.from_profile(p, variant="gspo").level == "sequence"
    assert (
        T.RLVRConfig.from_profile(p, variant="dr_grpo", loss_type="grpo").loss_type == "grpo"
    )  # overrides win
    for bad, match in (
        ({"level": "word"}, "level"),
        ({"loss_type": "ppo"}, "loss_type"),
        ({"num_generations": 1}, "num_generations"),
        ({"eps_high": -0.1}, "eps"),
        ({"max_steps": 0}, "max_steps"),
    ):
        with pytest.raises(ValueError, match=match):
            T.RLVRConfig.from_profile(p, **bad)
    with pytest.raises(ValueError, match="variant"):
        T.RLVRConfig.from_profile(p, variant="ppo")
    with pytest.raises(ValueError, match="unknown field 'eps_hgih'.*eps_high"):
        T.RLVRConfig.from_profile(p, eps_hgih=0.3)


# --------------------------------------------------------------------------- the loop
def _run(tiny, **changes):
    p = get_profile("tiny")
    model, tok = tiny
    small = dict(max_steps=2, prompts_per_step=2, num_generations=4, max_completion_length=8, eval_size=4)
    cfg = T.RLVRConfig.from_profile(p, **{**small, "eval_every": 1, **changes})
    return T.train(
        cfg,
        copy.deepcopy(model),
        tok,
        dataset=reasoning.make_problems("train", 16),
        profile=p,
        show_progress=False,
    )


KEYS = {
    "step", "loss", "reward", "accuracy", "format_rate", "completion_length", "entropy", "kl", "clip_ratio_low",
    "clip_ratio_high", "mean_ratio", "frac_reward_zero_std", "kept_groups", "grad_norm", "lr", "seconds",
    "eval_accuracy", "eval_format_rate", "eval_response_length", "truncated_rate", "eval_truncated_rate",
}  # fmt: skip


def test_history_keys_seeded_and_every_variant_runs(tiny):
    a, b = _run(tiny), _run(tiny)
    assert KEYS <= set(a.history[0]) and len(a.history) == 2
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]
    assert set(a.info["start"]) >= {"accuracy", "format_rate", "response_length"}
    assert a.trainer == "rlvr" and a.checkpoint_name == "rlvr_addition"
    for changes in (
        dict(level="sequence"),
        dict(loss_type="cispo", eps_high=5.0),
        dict(loss_type="dr_grpo", scale_rewards=False),
        dict(num_iterations=3, clip=False),
        dict(beta=0.04),
    ):
        run = _run(tiny, **changes)
        assert all(h["loss"] == h["loss"] for h in run.history), changes  # no NaN


def test_num_iterations_move_the_ratio_and_clip(tiny, monkeypatch):
    monkeypatch.setattr(T.rlvr, "answer_reward", lambda c, a: float(len(c) % 2 == 0))  # a spread in groups
    run = _run(tiny, num_iterations=4, learning_rate=5e-2, eps_low=0.01, eps_high=0.01)
    one = _run(tiny, learning_rate=5e-2)
    assert all(
        h["mean_ratio"] == 1.0 and h["clip_ratio_low"] == h["clip_ratio_high"] == 0.0 for h in one.history
    )
    assert any(h["clip_ratio_low"] + h["clip_ratio_high"] > 0 for h in run.history)


def test_dynamic_sampling_keeps_only_groups_with_a_spread(tiny, monkeypatch):
    seen = []
    real = T.rlvr.rlvr_policy_loss

    def spy(logp, old_logp, advantages, mask, **kw):
        seen.append(advantages.clone())
        return real(logp, old_logp, advantages, mask, **kw)

    # reward = 1 for even-length completions: groups with and without a spread
    monkeypatch.setattr(T.rlvr, "answer_reward", lambda c, a: float(len(c) % 2 == 0))
    monkeypatch.setattr(T.rlvr, "rlvr_policy_loss", spy)
    run = _run(tiny, dynamic_sampling=True, format_weight=0.0, max_resample_rounds=3)
    hist = [h for h in run.history if h["kept_groups"]]
    assert len(seen) == len(hist)
    for adv, h in zip(seen, hist):
        groups = adv.view(-1, 4)
        assert (groups.abs().sum(-1) > 0).all()  # no all-zero group reached the loss
        assert groups.shape[0] == h["kept_groups"]


def test_overlong_shaping_and_truncation_masking_go_through_the_exercises(tiny, monkeypatch):
    """A budget of 6 tokens cuts most of the tiny model's samples off: with overlong_buffer the
    reward gets the soft punishment (exercise 9.6) of each completion's length, with
    mask_truncated_completions the loss sees the mask of exercise 9.7 (truncated rows all 0), only
    for the rows left with tokens, and TRL's normaliser over all B rows for 'grpo'."""
    calls = {"penalty": [], "masked": [], "loss": []}
    real_pen, real_mask, real_loss = (
        T.rlvr.overlong_penalty,
        T.rlvr.mask_truncated_completions,
        T.rlvr.rlvr_policy_loss,
    )

    def pen(lengths, L, buf):
        calls["penalty"].append((lengths.clone(), L, buf))
        return real_pen(lengths, L, buf)

    def masked(mask, truncated):
        calls["masked"].append((mask.clone(), truncated.clone()))
        return real_mask(mask, truncated)

    def loss(logp, old_logp, advantages, mask, **kw):
        calls["loss"].append(mask.clone())
        return real_loss(logp, old_logp, advantages, mask, **kw)

    monkeypatch.setattr(T.rlvr, "overlong_penalty", pen)
    monkeypatch.setattr(T.rlvr, "mask_truncated_completions", masked)
    monkeypatch.setattr(T.rlvr, "rlvr_policy_loss", loss)
    plain = _run(tiny, max_completion_length=6)
    assert not calls["penalty"] and not calls["masked"] and "overlong_penalty" not in plain.history[0]
    calls["loss"].clear()
    run = _run(tiny, max_completion_length=6, overlong_buffer=2, mask_truncated_completions=True)
    assert len(calls["penalty"]) == len(calls["masked"]) == len(run.history) == 2
    lengths, L, buf = calls["penalty"][0]
    assert (L, buf) == (6, 2) and lengths.max() <= 6
    want = real_pen(lengths, 6, 2).mean().item()
    assert run.history[0]["overlong_penalty"] == pytest.approx(want)
    assert 0 <= run.history[0]["truncated_rate"] <= 1 and "eval_truncated_rate" in run.history[-1]
    assert any(truncated.any() for _, truncated in calls["masked"])  # the budget did cut some off
    kept = [real_mask(mask, truncated) for mask, truncated in calls["masked"]]
    want_masks = [k[k.sum(-1) > 0] for k in kept if k.sum() > 0]  # no loss when all were cut off
    assert len(calls["loss"]) == len(want_masks)
    for seen, want_mask in zip(calls["loss"], want_masks):
        assert torch.equal(seen, want_mask)  # the rows with tokens; the truncated ones are gone
    with pytest.raises(ValueError, match="overlong_buffer"):
        T.RLVRConfig.from_profile(get_profile("tiny"), overlong_buffer=65)
    cfg = T.RLVRConfig.from_profile(get_profile("tiny"), overlong_buffer=8, mask_truncated_completions=True)
    args = T._loop.trl_arguments("rlvr", cfg.resolved(get_profile("tiny")))
    assert args["mask_truncated_completions"] is True and args["reward_weights"] == [1.0, 0.2, 1.0]


def test_concat_pads_prompts_left_and_completions_right():
    from course_lib.core.sampling import Rollout

    def ro(P, C, n):
        return Rollout(
            ["p"] * n, ["t"] * n, torch.full((n, P), 5), torch.ones(n, P, dtype=torch.long),
            torch.full((n, C), 7), torch.ones(n, C, dtype=torch.long),
        )  # fmt: skip

    out = T._concat([ro(3, 2, 1), ro(5, 4, 2)], pad_id=0)
    assert out.prompt_ids.shape == (3, 5) and out.completion_ids.shape == (3, 4)
    assert out.prompt_ids[0].tolist() == [0, 0, 5, 5, 5] and out.prompt_mask[0].tolist() == [0, 0, 1, 1, 1]
    assert out.completion_ids[0].tolist() == [7, 7, 0, 0] and out.completion_mask[0].tolist() == [1, 1, 0, 0]


def test_save_checkpoint_and_reload(tiny, tmp_path):
    run = _run(tiny)
    path = T.save_checkpoint(run, tmp_path / "ck")
    assert (path / "config.json").exists() and (path / "training_info.json").exists()


def test_gpu_path_on_standins(gpu_standins, monkeypatch):
    """The gpu profile's unit 09: GSM8K in the R1-zero prompt, the profile's reasoning model
    (here the stand-ins of course_instructor/standins.py), one step end to end."""
    monkeypatch.setenv("COURSE_PROFILE_OVERRIDES", str(gpu_standins / "overrides.json"))
    p = get_profile("gpu")
    cfg = T.RLVRConfig.from_profile(p, max_steps=1, num_generations=2, eval_size=2)
    assert cfg.task == "gsm8k" and cfg.max_completion_length == 16
    problems = T.task_problems("gsm8k", "train", 3, p)
    assert problems[0]["prompt"].startswith(reasoning.R1_ZERO_PROMPT.split("{")[0])
    assert problems[0]["answer"] and "####" not in problems[0]["answer"]
    h = T.headline_run(cfg, p, show_progress=False)
    assert h.run.info["task"] == "gsm8k" and len(h.run.history) == 1
    assert {"accuracy", "format_rate", "response_length"} <= set(h.after)
    with pytest.raises(ValueError, match="tiny profile has no GSM8K"):
        reasoning.gsm8k_problems("train", 2, profile=TINY)


# --------------------------------------------------------------------------- TRL side by side
def test_trl_side_by_side_runs_with_our_rewards_and_settings(tiny, tmp_path, monkeypatch):
    """TRL's GRPOTrainer, two steps on the tiny model: our reward functions score its samples
    with our weights (reward = answer + format_weight * format)."""
    # rewards with a spread on the tiny model's samples, so that a wrong weight shows
    monkeypatch.setattr(T.rlvr, "answer_reward", lambda c, a: float(len(c) % 3 == 0))
    monkeypatch.setattr(T.rlvr, "think_format_reward", lambda c: float(len(c) % 2 == 0))
    p = get_profile("tiny")
    model, tok = tiny
    cfg = T.RLVRConfig.from_profile(
        p, variant="gspo", max_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=6
    )
    run = T.train_with_trl(
        cfg, copy.deepcopy(model), tok, reasoning.make_problems("train", 8), tmp_path, profile=p
    )
    assert run.trainer == "rlvr" and run.info["implementation"] == "trl.GRPOTrainer"
    assert [h["step"] for h in run.history] == [1, 2] and all(h["seconds"] > 0 for h in run.history)
    # TRL logs kl only when beta != 0; ours tracks it always
    compared = {"reward", "accuracy", "format_rate", "entropy", "completion_length", "clip_ratio_low"}
    for h in run.history:
        assert compared <= set(h) and compared <= KEYS, sorted(compared - set(h))  # named as ours
        assert 0.0 <= h["accuracy"] <= 1.0 and 0.0 <= h["format_rate"] <= 1.0, h
        assert h["reward"] == pytest.approx(h["accuracy"] + cfg.format_weight * h["format_rate"], abs=1e-5)
        assert h["completion_length"] <= 6 and h["lr"] == pytest.approx(cfg.learning_rate)
    assert any(h["format_rate"] > 0 for h in run.history)
    # TRL's own overlong punishment and truncation masking: logged under our names
    cfg = T.RLVRConfig.from_profile(
        p, max_steps=1, prompts_per_step=2, num_generations=2, max_completion_length=6,
        overlong_buffer=3, mask_truncated_completions=True,
    )  # fmt: skip
    run = T.train_with_trl(
        cfg, copy.deepcopy(model), tok, reasoning.make_problems("train", 8), tmp_path / "o", profile=p
    )
    h = run.history[0]
    assert -1.0 <= h["overlong_penalty"] <= 0.0 and 0.0 <= h["truncated_rate"] <= 1.0, h
    assert h["reward"] == pytest.approx(
        h["accuracy"] + cfg.format_weight * h["format_rate"] + h["overlong_penalty"], abs=1e-5
    )
    dapo = T.RLVRConfig.from_profile(p, variant="dapo", max_steps=1)
    with pytest.raises(ValueError, match="no dynamic sampling"):
        T.train_with_trl(dapo, copy.deepcopy(model), tok, profile=p)
