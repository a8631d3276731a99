"""course_lib.trainers.sft: the provided SFT loop, its helpers, the TRL side-by-side and quick_train."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib import sft
from course_lib.core import data
from course_lib.core.config import get_profile
from course_lib.core.models import load_policy
from course_lib.trainers import sft as sft_trainer


@pytest.fixture
def fresh_tiny():
    torch.manual_seed(0)
    return load_policy(profile=get_profile("tiny"), device="cpu")


def test_stub_of_exercise_3_4_names_the_notebook():
    import course_lib

    course_lib.use_solutions(False)
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.4 \(notebook 03_sft\)"):
        sft.sft_train_step(None, {}, None)


def test_all_tokens_mask_covers_prompt_and_completion_but_not_padding():
    cm = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0]])
    assert sft_trainer.all_tokens_mask(cm).tolist() == [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0],
    ]


def test_make_batch_appends_eos_and_masks(solutions_on, tiny):
    _, tok = tiny
    b = sft_trainer.make_batch(
        ["What is 1 + 2?\n", "Hi\n"], ["Question: What is 1 + 2?\nAnswer: 3", "Question: Hi\nAnswer: yo"], tok
    )
    assert set(b) == {"input_ids", "labels", "completion_mask"}
    for row in range(2):
        labels = b["labels"][row][b["completion_mask"][row] == 1]
        assert labels[-1].item() == tok.eos_token_id  # the model learns to stop
        assert tok.decode(labels[:-1]).startswith("Question:")
    # the second row is shorter: its padding is masked out
    assert b["completion_mask"][1].sum() < b["completion_mask"][0].sum()
    b_all = sft_trainer.make_batch(["Hi\n"], ["Question: Hi\nAnswer: yo"], tok, completion_only_loss=False)
    assert (
        b_all["completion_mask"].sum()
        > sft_trainer.make_batch(["Hi\n"], ["Question: Hi\nAnswer: yo"], tok)["completion_mask"].sum()
    )
    assert sft_trainer.with_eos(["a" + tok.eos_token], tok) == ["a" + tok.eos_token]  # not twice


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="max_steps"):
        sft_trainer.SFTConfig(max_steps=0)
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        sft_trainer.SFTConfig(lr_scheduler_type="cosine_with_restarts")
    with pytest.raises(ValueError, match="unknown field 'max_step' \\(did you mean 'max_steps'\\?\\)"):
        sft_trainer.SFTConfig.from_profile(get_profile("tiny"), "quick", max_step=3)


def test_train_needs_prompt_and_completion_columns(solutions_on, fresh_tiny):
    model, tok = fresh_tiny
    with pytest.raises(ValueError, match="'completion'"):
        sft_trainer.train(sft_trainer.SFTConfig(max_steps=1), model, tok, data.preference_pairs("train", n=8))


def test_train_lowers_the_loss_and_records_history(solutions_on, fresh_tiny):
    model, tok = fresh_tiny
    ds = data.qa_pairs("train", n=8)
    before = sft_trainer.eval_loss(model, tok, ds)
    cfg = sft_trainer.SFTConfig(max_steps=12, per_device_train_batch_size=8, learning_rate=3e-3)
    calls = []
    hist = sft_trainer.train(
        cfg, model, tok, ds, eval_every=4, eval_fn=lambda m: calls.append(1) or {"probe": 1.0}
    ).history
    assert len(hist) == 12 and [h["step"] for h in hist] == list(range(1, 13))
    assert all(h["seconds"] > 0 and h["lr"] > 0 for h in hist)
    assert hist[0]["lr"] > hist[-1]["lr"]  # linear decay
    assert sum("probe" in h for h in hist) == len(calls) == 4  # step 1, 4, 8, 12
    after = sft_trainer.eval_loss(model, tok, ds)
    assert after < before - 0.05, (before, after)
    assert not model.training


@pytest.mark.filterwarnings(
    "ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning"
)  # the fake step never steps the optimizer
def test_train_uses_the_active_sft_train_step(monkeypatch, solutions_on, fresh_tiny):
    model, tok = fresh_tiny
    seen = []

    def spy(m, batch, opt, max_grad_norm=1.0):
        seen.append((tuple(batch["input_ids"].shape), int(batch["completion_mask"].sum()), max_grad_norm))
        return 0.5

    monkeypatch.setattr(sft, "sft_train_step", spy)
    cfg = sft_trainer.SFTConfig(max_steps=2, per_device_train_batch_size=4, max_grad_norm=0.3)
    hist = sft_trainer.train(cfg, model, tok, data.qa_pairs("train", n=8)).history
    assert [h["loss"] for h in hist] == [0.5, 0.5]
    assert len(seen) == 2 and all(s[0][0] == 4 and s[1] > 0 and s[2] == 0.3 for s in seen)


@pytest.mark.filterwarnings(
    "ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning"
)  # the fake step never steps the optimizer
def test_nan_loss_is_reported(monkeypatch, solutions_on, fresh_tiny):
    model, tok = fresh_tiny
    monkeypatch.setattr(sft, "sft_train_step", lambda *a, **k: float("nan"))
    with pytest.raises(FloatingPointError, match="sft_loss"):
        sft_trainer.train(sft_trainer.SFTConfig(max_steps=2), model, tok, data.qa_pairs("train", n=8))


def test_format_compliance_uses_format_reward(monkeypatch, solutions_on, tiny):
    from course_lib import rewards

    model, tok = tiny
    monkeypatch.setattr(
        rewards, "format_reward", lambda c, **k: [1.0 if i % 4 == 0 else -1.0 for i in range(len(c))]
    )
    frac, texts = sft_trainer.format_compliance(
        model, tok, data.qa_pairs("eval", n=8)["prompt"], max_new_tokens=4
    )
    assert frac == 0.25 and len(texts) == 8


def test_quick_train_saves_a_loadable_checkpoint(solutions_on, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ck"))
    path = sft_trainer.quick_train(get_profile("tiny"), max_steps=2)
    assert path == tmp_path / "ck" / "sft"
    info = json.loads((path / "training_info.json").read_text())
    assert info["steps"] == 2 and info["config"]["max_steps"] == 2
    model, tok = load_policy(path, profile=get_profile("tiny"), device="cpu")
    assert tok.eos_token_id is not None and model.config.n_layer >= 1
    from course_lib.core.models import latest_checkpoint

    assert latest_checkpoint("sft") == path


def test_quick_train_runs_the_gpu_path_on_standins(solutions_on, gpu_profile, tmp_path):
    path = sft_trainer.quick_train(gpu_profile, out_dir=tmp_path / "sft_gpu")
    assert (path / "config.json").exists()
    assert json.loads((path / "training_info.json").read_text())["profile"] == "gpu"


def test_trl_side_by_side_runs_same_steps(solutions_on, fresh_tiny, tmp_path):
    model, tok = fresh_tiny
    cfg = sft_trainer.SFTConfig(max_steps=3, per_device_train_batch_size=4)
    w0 = model.transformer.wte.weight.detach().clone()
    out = sft_trainer.train_with_trl(cfg, model, tok, data.qa_pairs("train", n=16), tmp_path)
    assert [h["step"] for h in out.history] == [1, 2, 3]
    assert all(h["loss"] > 0 and h["seconds"] > 0 for h in out.history)
    assert out.seconds >= sum(h["seconds"] for h in out.history) and out.model is model
    assert not torch.equal(w0, model.transformer.wte.weight)  # TRL trained the model in place
