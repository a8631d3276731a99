"""Unit 07: exercise 7.3 (dpo_batch_loss) and the from-scratch DPO trainer (course_lib.trainers.dpo)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from course_lib import dpo
from course_lib.core.config import TINY
from course_lib.trainers import dpo as T


def _toy_model(seed=0, vocab=40):
    """The grader's tiny GPT-2 (2 layers, 16 wide, dropout off), in eval mode. Same weights as the
    builder this file had (torch.manual_seed(seed) then GPT2LMHeadModel, compared tensor by tensor);
    it leaves the global RNG as it was instead of re-seeding it (no test here draws from it after)."""
    from course_instructor.grading.sandboxed.caserun import tiny_gpt2

    return tiny_gpt2(seed, vocab, n_positions=64).eval()


def _toy_batch(B=3, T_=7, vocab=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (2 * B, T_), generator=g)
    labels = torch.randint(2, vocab, (2 * B, T_), generator=g)
    mask = torch.zeros(2 * B, T_, dtype=torch.long)
    for i in range(2 * B):
        start, end = 2, T_ - (i % 3)
        mask[i, start:end] = 1
        labels[i, end:] = -100  # padding labels must not break anything
    attn = torch.ones_like(mask)
    ref = -torch.rand(2 * B, generator=g) * 20
    return {
        "input_ids": ids,
        "labels": labels,
        "completion_mask": mask,
        "attention_mask": attn,
        "ref_logps": ref,
    }


def visible_check_dpo_batch_loss(fn):
    """The visible check proposed for course_lib/checks/ (exercise 7.3)."""
    from solutions import dpo as sol  # in checks.py: the same numbers computed from tensors

    model, batch = _toy_model(), _toy_batch()
    loss, stats = fn(model, batch, beta=0.1)
    assert loss.dim() == 0, f"dpo_batch_loss: the loss must be a scalar, got shape {list(loss.shape)}"
    assert loss.requires_grad, "dpo_batch_loss: the loss carries no gradient (did you detach it?)"
    assert set(stats) >= {"chosen_rewards", "rejected_rewards", "logps"}, (
        f"dpo_batch_loss: stats needs chosen_rewards, rejected_rewards, logps; got {sorted(stats)}"
    )
    assert stats["chosen_rewards"].shape == (3,) and stats["logps"].shape == (6,), (
        "dpo_batch_loss: chosen_rewards must be [B] and logps [2B]"
    )
    assert not stats["chosen_rewards"].requires_grad, "dpo_batch_loss: rewards must be detached"
    logits = model(input_ids=batch["input_ids"]).logits
    lp = sol.sequence_logprobs(logits, batch["labels"], batch["completion_mask"])
    assert torch.allclose(stats["logps"], lp, atol=1e-4), (
        "dpo_batch_loss: logps are not the summed completion log-probs of each row (sum, not mean?)"
    )
    losses, c, r = sol.dpo_loss(lp[:3], lp[3:], batch["ref_logps"][:3], batch["ref_logps"][3:], beta=0.1)
    assert torch.allclose(stats["chosen_rewards"], c, atol=1e-4), (
        "dpo_batch_loss: rows 0..B-1 are chosen and rows B..2B-1 rejected (pair i = rows i and B+i)"
    )
    assert abs(loss.item() - losses.mean().item()) < 1e-4, "dpo_batch_loss: loss != mean of dpo_loss"
    with pytest.raises(ValueError):
        fn(model, {**batch, "ref_logps": batch["ref_logps"][:4]})


def test_stub_raises_naming_the_exercise():
    from course_lib.core import switch as _solutions

    assert not _solutions.solutions_active()
    with pytest.raises(NotImplementedError, match=r"Exercise 7\.3 \(notebook 07_dpo\)"):
        dpo.dpo_batch_loss(_toy_model(), _toy_batch())


def test_solution_passes_visible_check(solutions_on):
    visible_check_dpo_batch_loss(dpo.dpo_batch_loss)


def test_visible_check_catches_wrong_implementations(solutions_on):
    from solutions import dpo as sol

    def averaged(model, batch, **kw):  # mean instead of sum
        return sol.dpo_batch_loss(model, batch, average=True, **{k: v for k, v in kw.items()})

    def swapped(model, batch, **kw):  # halves the wrong way round
        b = dict(batch)
        for k in ("input_ids", "labels", "completion_mask", "attention_mask", "ref_logps"):
            b[k] = torch.cat(batch[k].chunk(2)[::-1])
        loss, st = sol.dpo_batch_loss(model, b, **kw)
        return loss, {**st, "logps": torch.cat(st["logps"].chunk(2)[::-1])}

    for wrong in (averaged, swapped):
        with pytest.raises(AssertionError):
            visible_check_dpo_batch_loss(wrong)


def test_batch_loss_gradient_and_errors(solutions_on):
    model, batch = _toy_model(), _toy_batch()
    model.train()
    loss, _ = dpo.dpo_batch_loss(model, batch, beta=0.5, loss_type="ipo")
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match="odd"):
        dpo.dpo_batch_loss(model, {k: v[:5] for k, v in batch.items()})
    with pytest.raises(ValueError, match="ref_logps"):
        dpo.dpo_batch_loss(model, {**batch, "ref_logps": batch["ref_logps"][:, None]})
    with pytest.raises(ValueError, match="lacks"):
        dpo.dpo_batch_loss(model, {"input_ids": batch["input_ids"]})


def test_collate_layout(tiny, solutions_on):
    _, tok = tiny
    b = T.collate(["The film was", "I think"], [" great.", " good and warm."], [" bad.", " dull dull."], tok)
    assert b["input_ids"].shape[0] == 4
    for i, (p, c) in enumerate(
        [
            ("The film was", " great."),
            ("I think", " good and warm."),
            ("The film was", " bad."),
            ("I think", " dull dull."),
        ]
    ):
        n_real = int(b["attention_mask"][i].sum())
        comp = b["labels"][i][b["completion_mask"][i] == 1].tolist()
        assert comp == tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        full = tok(p + c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert b["input_ids"][i, :n_real].tolist() == full[:-1]
    cut = T.collate(["The film was"], [" great and warm and lovely."], [" bad."], tok, max_length=5)
    assert cut["input_ids"].shape[1] == 5 and cut["attention_mask"].shape[1] == 5
    with pytest.raises(ValueError, match="collate"):
        T.collate(["a"], ["b", "c"], ["d"], tok)


def test_reference_logps_do_not_depend_on_padding(tiny, solutions_on):
    model, tok = tiny
    pairs = T.build_pairs("synthetic", "eval", n=12, profile=TINY)
    together = T.precompute_ref_logps(model, tok, pairs, T.DPOConfig(precompute_ref_batch_size=12))
    one_by_one = T.precompute_ref_logps(model, tok, pairs, T.DPOConfig(precompute_ref_batch_size=1))
    assert together.shape == (12, 2)
    assert torch.allclose(together, one_by_one, atol=1e-4)
    assert (together < 0).all()


class _CountingModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, *a, **kw):
        self.calls += 1
        return self.inner(*a, **kw)


def test_no_reference_forward_during_training(tiny, solutions_on):
    base, tok = tiny
    model, ref = copy.deepcopy(base), _CountingModel(copy.deepcopy(base))
    pairs = T.build_pairs("synthetic", "train", n=32, profile=TINY)
    cfg = T.DPOConfig(
        max_steps=6, per_device_train_batch_size=4, precompute_ref_batch_size=16, learning_rate=1e-4
    )
    ref_logps = T.precompute_ref_logps(ref, tok, pairs, cfg)
    assert ref.calls == 2
    hist = T.train(cfg, model, tok, pairs, ref_model=ref, ref_logps=ref_logps, show_progress=False).history
    assert ref.calls == 2, "the training loop ran the reference model"
    assert len(hist) == 6
    assert {"loss", "chosen_reward", "rejected_reward", "margin", "lr", "seconds"} <= set(hist[0])
    assert abs(hist[0]["loss"] - torch.log(torch.tensor(2.0)).item()) < 1e-4  # π = π_ref at step 1
    assert hist[0]["margin"] == pytest.approx(0.0, abs=1e-4)


def test_training_learns_the_preference(tiny, solutions_on):
    base, tok = tiny
    model = copy.deepcopy(base)
    torch.manual_seed(0)
    pairs = T.build_pairs("synthetic", "train", n=256, profile=TINY)
    held = T.build_pairs("synthetic", "eval", n=64, profile=TINY)
    cfg = T.DPOConfig(max_steps=25, per_device_train_batch_size=8, learning_rate=5e-5)
    held_ref = T.precompute_ref_logps(base, tok, held, cfg)
    before = T.evaluate_pairs(model, tok, held, held_ref, cfg)
    assert before["accuracy"] == 0.0 and abs(before["margin"]) < 1e-4  # all rewards exactly 0
    T.train(cfg, model, tok, pairs, show_progress=False)
    after = T.evaluate_pairs(model, tok, held, held_ref, cfg)
    assert after["accuracy"] >= 0.75 and after["margin"] > 0.1, after


def test_on_policy_pairs_rank_by_the_scorer(tiny):
    model, tok = tiny

    class Scorer:  # longer text = "better": a deterministic stand-in for VADER
        def positive_probability(self, texts):
            return [min(1.0, len(t) / 100) for t in texts]

    prompts = ["The film was", "I think the plot was", "Overall, this movie"]
    ds = T.on_policy_pairs(
        model, tok, prompts, num_samples=4, max_new_tokens=12, min_gap=0.01, scorer=Scorer(), seed=0
    )
    assert set(ds.column_names) >= {"prompt", "chosen", "rejected"} and len(ds) >= 1
    for row in ds:
        assert row["chosen_score"] >= row["rejected_score"] + 0.01
        assert row["prompt"] in prompts


def test_sample_metrics_zero_kl_against_itself(tiny, solutions_on):
    model, tok = tiny
    m = T.sample_metrics(model, model, tok, ["The film was", "I think the plot was"] * 4, max_new_tokens=10)
    assert abs(m["kl_to_ref"]) < 1e-5
    assert 0.0 <= m["positive_fraction"] <= 1.0 and 0.0 < m["distinct_2"] <= 1.0
    assert len(m["samples"]) == 8


def test_first_step_loss_equals_trl(tiny, solutions_on):
    """Policy != reference (perturbed weights), so the loss is not the trivial log 2."""
    base, tok = tiny
    ref = copy.deepcopy(base)
    torch.manual_seed(0)
    policy = copy.deepcopy(base)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    pairs = T.build_pairs("synthetic", "train", n=16, profile=TINY)
    cfg = T.DPOConfig(
        max_steps=1, per_device_train_batch_size=8, learning_rate=1e-5, train_sampling_strategy="sequential"
    )
    ours_model = copy.deepcopy(policy)
    ref_logps = T.precompute_ref_logps(ref, tok, pairs, cfg)
    first = pairs.select(range(8))
    batch = T.collate(first["prompt"], first["chosen"], first["rejected"], tok, cfg.max_length)
    batch["ref_logps"] = torch.cat([ref_logps[:8, 0], ref_logps[:8, 1]])
    ours, stats = dpo.dpo_batch_loss(ours_model, batch, beta=cfg.beta)
    trl_hist = T.train_with_trl(cfg, copy.deepcopy(policy), tok, pairs, ref_model=copy.deepcopy(ref)).history
    assert abs(ours.item() - 0.6931) > 1e-3, "the comparison should not be at the trivial loss"
    assert abs(ours.item() - trl_hist[0]["loss"]) < 1e-5
    assert abs(stats["logps"][:8].mean().item() - trl_hist[0]["logps_chosen"]) < 1e-3
    assert abs(stats["chosen_rewards"].mean().item() - trl_hist[0]["chosen_reward"]) < 1e-5


def test_quick_train_tiny_saves_a_checkpoint(tmp_path, monkeypatch, solutions_on):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ckpt"))
    out = T.quick_train(profile=TINY, pair_source="synthetic", max_steps=2)
    assert out == tmp_path / "ckpt" / "dpo" and (out / "config.json").exists()
    from course_lib.core.models import load_policy

    model, _ = load_policy(out, profile=TINY, device="cpu")
    assert model.config.vocab_size > 0


def test_quick_train_gpu_path_on_standins(gpu_profile, tmp_path, monkeypatch, solutions_on):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ckpt"))
    out = T.quick_train(profile=gpu_profile, out_dir=tmp_path / "dpo")
    assert (out / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["n_layer"] == 2  # the stand-in policy
    pairs = T.build_pairs("mixed", "train", profile=gpu_profile)  # HH-RLHF stand-in
    assert pairs[0]["prompt"].endswith("Assistant:")
