"""course_lib.core.evaluation: kl_to_ref, evaluate_policy, write_samples_jsonl (shared by units 05-08)."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib import kl, rewards
from course_lib.core import data, evaluation, sampling
from course_lib.core.models import frozen_copy


@pytest.fixture(scope="module")
def prompts():
    return list(data.load_task("sentiment", "eval", n=6)["prompt"])


def _perturbed(model, scale=0.05, seed=1):
    other = frozen_copy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return other


def _rollout(model, tok, prompts, seed=0):
    return sampling.sample(
        model, tok, prompts, max_new_tokens=12, generator=torch.Generator().manual_seed(seed)
    )


def test_kl_to_ref_is_zero_for_the_same_model(tiny, prompts, solutions_on):
    model, tok = tiny
    roll = _rollout(model, tok, prompts)
    assert evaluation.kl_to_ref(model, frozen_copy(model), roll) == pytest.approx(0.0, abs=1e-6)


def test_kl_to_ref_matches_a_direct_k3_average(tiny, prompts, solutions_on):
    model, tok = tiny
    ref = _perturbed(model)
    roll = _rollout(model, tok, prompts)
    with torch.no_grad():
        lp = torch.log_softmax(sampling.completion_logits(model, roll), -1)
        rlp = torch.log_softmax(sampling.completion_logits(ref, roll), -1)
    idx = roll.completion_ids.unsqueeze(-1)
    log_r = rlp.gather(-1, idx).squeeze(-1) - lp.gather(-1, idx).squeeze(-1)
    k3 = log_r.exp() - 1 - log_r
    m = roll.completion_mask.float()
    expected = float((k3 * m).sum() / m.sum())
    got = evaluation.kl_to_ref(model, ref, roll)
    assert expected > 0.01
    assert got == pytest.approx(expected, rel=1e-4)
    # chunking must not change the token-weighted mean (rows have different lengths)
    assert evaluation.kl_to_ref(model, ref, roll, batch_size=4) == pytest.approx(expected, rel=1e-4)
    # a farther reference is farther away
    assert evaluation.kl_to_ref(model, _perturbed(model, 0.2), roll) > got


def test_kl_to_ref_calls_the_exercises_through_their_modules(tiny, prompts, monkeypatch):
    model, tok = tiny
    roll = _rollout(model, tok, prompts)
    with pytest.raises(NotImplementedError, match="token_logprobs"):  # stubs: the student's code runs
        evaluation.kl_to_ref(model, frozen_copy(model), roll)
    import course_lib

    course_lib.use_solutions(True)
    try:
        kinds = []
        orig = kl.kl_estimate
        monkeypatch.setattr(kl, "kl_estimate", lambda a, b, kind="k3": kinds.append(kind) or orig(a, b, kind))
        evaluation.kl_to_ref(model, frozen_copy(model), roll)
        assert kinds == ["k3"]
    finally:
        course_lib.use_solutions(False)


def test_kl_to_ref_rejects_empty_rollouts(tiny, prompts, solutions_on):
    model, tok = tiny
    roll = _rollout(model, tok, prompts)
    roll.completion_mask = torch.zeros_like(roll.completion_mask)
    with pytest.raises(ValueError, match="kl_to_ref: .*no response tokens"):
        evaluation.kl_to_ref(model, model, roll)
    roll.completion_mask = roll.completion_mask[:, :-1]
    with pytest.raises(ValueError, match="kl_to_ref: .*completion_mask"):
        evaluation.kl_to_ref(model, model, roll)


def test_evaluate_policy_metrics(tiny, prompts, solutions_on):
    model, tok = tiny
    ref = _perturbed(model)
    res = evaluation.evaluate_policy(
        model, tok, prompts, rewards.sentiment_reward, ref=ref, max_new_tokens=12, seed=3, num_samples=2
    )
    expected = {
        "n",
        "reward_mean",
        "reward_std",
        "reward_min",
        "reward_max",
        "positive_fraction",
        "kl_to_ref",
        "distinct_1",
        "distinct_2",
        "repetition",
        "length_mean",
        "length_std",
        "length_min",
        "length_max",
        "tokens_mean",
        "samples",
        "rewards",
    }
    assert set(res) == expected
    assert res["n"] == len(res["samples"]) == 2 * len(prompts)
    texts = [s["response"] for s in res["samples"]]
    assert [s["prompt"] for s in res["samples"]] == [p for p in prompts for _ in range(2)]
    scores = rewards.sentiment_reward(texts)
    assert res["reward_mean"] == pytest.approx(sum(scores) / len(scores))
    assert res["rewards"] == pytest.approx(scores)
    assert res["reward_min"] <= res["reward_mean"] <= res["reward_max"]
    assert res["kl_to_ref"] > 0
    assert 0 <= res["positive_fraction"] <= 1
    assert res["distinct_2"] == pytest.approx(evaluation.distinct_n(texts, 2))
    rep = rewards.repetition_penalty(texts)
    assert res["repetition"] == pytest.approx(sum(rep) / len(rep))
    assert 1 <= res["tokens_mean"] <= 12
    # seeded: the same seed gives the same samples, another seed other samples
    again = evaluation.evaluate_policy(
        model, tok, prompts, rewards.sentiment_reward, ref=ref, max_new_tokens=12, seed=3, num_samples=2
    )
    assert again["samples"] == res["samples"]
    other = evaluation.evaluate_policy(
        model, tok, prompts, rewards.sentiment_reward, max_new_tokens=12, seed=4, num_samples=2
    )
    assert other["samples"] != res["samples"]
    assert "kl_to_ref" not in other
    nums = evaluation.scalar_metrics(res)
    assert (
        "samples" not in nums
        and "n" not in nums
        and "rewards" not in nums
        and all(isinstance(v, float) for v in nums.values())
    )


def test_evaluate_policy_kl_is_zero_against_itself(tiny, prompts, solutions_on):
    model, tok = tiny
    res = evaluation.evaluate_policy(
        model, tok, prompts, rewards.sentiment_reward, ref=frozen_copy(model), max_new_tokens=8, batch_size=4
    )
    assert res["kl_to_ref"] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_policy_passes_reward_columns(tiny, solutions_on):
    model, tok = tiny
    ds = data.load_task("arithmetic", "eval", n=4)
    res = evaluation.evaluate_policy(
        model,
        tok,
        ds["prompt"],
        rewards.correctness_reward,
        max_new_tokens=4,
        reward_kwargs={"answer": ds["answer"]},
    )
    assert "positive_fraction" not in res  # not a sentiment reward
    assert set(res["samples"][0]) == {"prompt", "response"}
    assert 0.0 <= res["reward_mean"] <= 1.0
    with pytest.raises(ValueError, match="reward_kwargs\\['answer'\\]"):
        evaluation.evaluate_policy(
            model,
            tok,
            ds["prompt"],
            rewards.correctness_reward,
            max_new_tokens=4,
            reward_kwargs={"answer": ds["answer"][:2]},
        )
    with pytest.raises(ValueError, match="no prompts"):
        evaluation.evaluate_policy(model, tok, [], rewards.correctness_reward)


def test_write_samples_jsonl(tmp_path):
    path = evaluation.write_samples_jsonl(
        tmp_path / "samples" / "ppo.jsonl", ["a", "b", "c"], [" x", ' "quoted"\nnew line', " é"]
    )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"prompt": "a", "response": " x"},
        {"prompt": "b", "response": ' "quoted"\nnew line'},
        {"prompt": "c", "response": " é"},
    ]
    short = evaluation.write_samples_jsonl(
        tmp_path / "short.jsonl", ["a", "b", "c"], ["1", "2", "3"], limit=2
    )
    assert len(short.read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="3 prompts but 2 responses"):
        evaluation.write_samples_jsonl(tmp_path / "bad.jsonl", ["a", "b", "c"], ["1", "2"])


def test_checkpoint_or_train_finds_or_trains(tmp_path, monkeypatch):
    import shutil
    import sys
    import types

    from course_lib.core.config import ASSET_DIR

    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    shutil.copytree(ASSET_DIR, tmp_path / "sft")
    (tmp_path / "sft" / "training_info.json").write_text(json.dumps({"steps": 60}))
    found = evaluation.checkpoint_or_train("sft")
    assert found["origin"] == "found" and found["path"] == tmp_path / "sft" and found["info"] == {"steps": 60}
    calls = []

    def quick_train(profile=None, preset="quick", out_dir=None, **overrides):  # a stand-in trainer
        calls.append((preset, overrides))
        shutil.copytree(ASSET_DIR, tmp_path / "ppo")
        return tmp_path / "ppo"

    monkeypatch.setitem(
        sys.modules, "course_lib.trainers.ppo", types.SimpleNamespace(quick_train=quick_train)
    )
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluation.checkpoint_or_train("ppo", train_if_missing=False)
    made = evaluation.checkpoint_or_train("ppo", preset="quick", **evaluation.FAST_OVERRIDES["ppo"])
    assert made["origin"] == "trained here" and made["path"] == tmp_path / "ppo"
    assert calls == [
        ("quick", {"max_steps": 1, "batch_size": 8, "num_mini_batches": 2, "max_new_tokens": 12})
    ]


def test_fast_overrides_are_fields_each_trainer_accepts():
    """A misspelt override would only show up under nbgrader: every one is a config field (from_profile
    rejects anything else) and shrinks the run to one step."""
    from course_lib.core.config import get_profile
    from course_lib.trainers import dpo, grpo, ppo, sft

    p = get_profile("tiny")
    o = evaluation.FAST_OVERRIDES
    assert set(o) == set(evaluation.COMPARED)
    for name, config_cls in [
        ("sft", sft.SFTConfig),
        ("ppo", ppo.PPOConfig),
        ("grpo", grpo.GRPOConfig),
        ("dpo", dpo.DPOConfig),
    ]:
        assert config_cls.from_profile(p, "quick", **o[name]).max_steps == 1, name
