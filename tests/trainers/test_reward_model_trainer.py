"""course_lib.trainers.reward_model: the provided Bradley-Terry loop, evaluation, error analysis,
the TRL side-by-side and quick_train."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib import reward_model
from course_lib.core import data
from course_lib.core.config import get_profile
from course_lib.core.models import RewardModel, load_tokenizer
from course_lib.trainers import reward_model as rmt


@pytest.fixture
def tok():
    return load_tokenizer(profile=get_profile("tiny"))


@pytest.fixture
def fresh_rm():
    torch.manual_seed(0)
    return RewardModel.from_base(profile=get_profile("tiny"))


def test_encode_pairs_chosen_first_right_padded(tok):
    b = rmt.encode_pairs(["P1", "P2 longer prompt"], [" good", " great"], [" bad", " awful awful"], tok)
    assert b["input_ids"].shape[0] == 4
    for row, text in enumerate(
        ["P1 good", "P2 longer prompt great", "P1 bad", "P2 longer prompt awful awful"]
    ):
        am = b["attention_mask"][row]
        assert am.tolist() == sorted(am.tolist(), reverse=True)  # ones then zeros
        assert tok.decode(b["input_ids"][row][am == 1]) == text  # no EOS: scored as decoded samples
    with_eos = rmt.encode_texts(["P1 good"], tok, add_eos=True)["input_ids"][0]
    assert with_eos[-1].item() == tok.eos_token_id
    with pytest.raises(ValueError, match="2 prompts, 1 chosen"):
        rmt.encode_pairs(["a", "b"], ["c"], ["d", "e"], tok)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="per_device_train_batch_size"):
        rmt.RewardConfig(per_device_train_batch_size=0)


def test_train_learns_the_rule_and_uses_the_exercises(monkeypatch, solutions_on, fresh_rm, tok):
    calls = {"bt": 0, "pool": 0}
    bt, pool = reward_model.bradley_terry_loss, reward_model.last_token_pool

    def bt_spy(*a, **k):
        calls["bt"] += 1
        return bt(*a, **k)

    def pool_spy(*a, **k):
        calls["pool"] += 1
        return pool(*a, **k)

    monkeypatch.setattr(reward_model, "bradley_terry_loss", bt_spy)
    monkeypatch.setattr(reward_model, "last_token_pool", pool_spy)
    ev = data.preference_pairs("eval", n=64)
    before = rmt.evaluate(fresh_rm, tok, ev)["eval_accuracy"]
    hist = rmt.train(
        rmt.RewardConfig(max_steps=60, learning_rate=2e-3), fresh_rm, tok, data.preference_pairs("train")
    ).history
    after = rmt.evaluate(fresh_rm, tok, ev)["eval_accuracy"]
    assert calls["bt"] == 60 and calls["pool"] >= 60
    assert len(hist) == 60 and {"loss", "accuracy", "margin", "seconds", "lr"} <= set(hist[0])
    assert sum(h["loss"] for h in hist[-5:]) < sum(h["loss"] for h in hist[:5])
    assert after > max(before, 0.85), (before, after)


def test_train_needs_the_preference_columns(solutions_on, fresh_rm, tok):
    with pytest.raises(ValueError, match="'chosen'"):
        rmt.train(rmt.RewardConfig(max_steps=1), fresh_rm, tok, data.qa_pairs("train", n=8))


def test_accuracy_vs_margin_bins():
    rc = torch.tensor([0.1, -0.2, 1.0, 2.0, 3.0, 4.0])
    rr = torch.zeros(6)
    centers, accs, counts = rmt.accuracy_vs_margin(rc, rr, n_bins=3)
    assert counts == [2, 2, 2]
    assert centers == pytest.approx([0.15, 1.5, 3.5])
    assert accs == pytest.approx([0.5, 1.0, 1.0])


def test_mistakes_worst_first_and_filled_to_k():
    ds = data.preference_pairs("eval", n=30)
    rc = torch.linspace(-1, 2, 30)
    rr = torch.zeros(30)
    rr[5] = 10.0  # a clear mistake far down the list
    cases, n = rmt.mistakes(ds, rc, rr, k=20)
    assert n == int(((rc - rr) <= 0).sum())
    assert len(cases) == 20 and cases[0]["idx"] == 5
    margins = [c["margin"] for c in cases]
    assert margins == sorted(margins)
    assert [c["mistake"] for c in cases] == [m <= 0 for m in margins]
    assert cases[0]["prompt"] == ds[5]["prompt"] and cases[0]["reward_rejected"] == 10.0
    many = torch.full((30,), -1.0)
    assert len(rmt.mistakes(ds, many, torch.zeros(30), k=20)[0]) == 30  # all mistakes are kept


def test_write_mistakes_jsonl(tmp_path):
    ds = data.preference_pairs("eval", n=25)
    cases, _ = rmt.mistakes(ds, torch.zeros(25), torch.zeros(25), k=20)  # ties are mistakes
    path = rmt.write_mistakes(cases, tmp_path / "a" / "m.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 25
    assert {"idx", "prompt", "chosen", "rejected", "reward_chosen", "reward_rejected"} <= set(rows[0])


def test_quick_train_saves_and_reloads_identical_scores(solutions_on, tmp_path, monkeypatch, tok):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ck"))
    path = rmt.quick_train(get_profile("tiny"), max_steps=3)
    assert path == tmp_path / "ck" / "reward_model"
    info = json.loads((path / "training_info.json").read_text())
    assert info["append_eos"] is False and info["steps"] == 3
    rm = RewardModel.from_pretrained(path)
    ds = data.preference_pairs("eval", n=8)
    rc, rr = rmt.score_pairs(rm, tok, ds)
    texts = [p + c for p, c in zip(ds["prompt"], ds["chosen"])]
    assert torch.allclose(rc, torch.tensor(rmt.reward_texts(rm, tok, texts)), atol=1e-5)
    assert torch.allclose(rc, torch.tensor(rm.score_texts(texts, tok)), atol=1e-5)  # what unit 05 calls
    rm2 = RewardModel.from_pretrained(path)
    assert torch.allclose(rmt.score_pairs(rm2, tok, ds)[1], rr)


def test_quick_train_runs_the_gpu_path_on_standins(solutions_on, gpu_profile, tmp_path):
    path = rmt.quick_train(gpu_profile, out_dir=tmp_path / "rm_gpu")
    assert (path / "reward_head.safetensors").exists()


def test_trl_reward_side_by_side(solutions_on, tok, tmp_path):
    cfg = rmt.RewardConfig(max_steps=3, per_device_train_batch_size=4)
    out = rmt.train_with_trl(
        cfg, get_profile("tiny").reward_model_base, tok, data.preference_pairs("train", n=32), tmp_path
    )
    assert [h["step"] for h in out.history] == [1, 2, 3]
    assert all(h["seconds"] > 0 and 0.0 <= h["accuracy"] <= 1.0 for h in out.history)
    rc, rr = rmt.score_pairs(
        out.model, tok, data.preference_pairs("eval", n=8), score_fn=rmt.trl_score_fn(out.model)
    )
    assert rc.shape == rr.shape == (8,) and torch.isfinite(rc).all()
