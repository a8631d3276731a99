"""Unit 09, exercises 9.6 and 9.7 (course_lib/rlvr.py): the solutions against TRL 1.16.

* 9.6 ``overlong_penalty`` against TRL's own ``trl.rewards.get_soft_overlong_punishment`` on the
  same completions (token-id lists, EOS included, as TRL's reward functions receive them), and
  through the trainer's reward function (``trainers.rlvr.reward_functions``) on a real rollout.
* 9.7 ``mask_truncated_completions`` against the ``mask_truncated_completions`` block of TRL's
  ``GRPOTrainer._generate_and_score_completions``, read from TRL's installed source and run on
  the same completions (the method itself needs a model, a dataloader and a generation backend;
  the block needs only the ids and the mask). Truncation is decided on each side its own way:
  TRL from the unpadded id lists, ours by ``Rollout.is_truncated`` on the padded tensors.
"""

from __future__ import annotations

import inspect
import textwrap
import types

import pytest
import torch

pytest.importorskip("solutions")

from solutions import rlvr  # noqa: E402

ATOL = 1e-6
EOS, PAD = 0, 1


def _trl_overlong(lengths: list[int], max_len: int, cache: int) -> list[float]:
    trl_rewards = pytest.importorskip("trl.rewards")
    fn = trl_rewards.get_soft_overlong_punishment(max_completion_len=max_len, soft_punish_cache=cache)
    return fn(completion_ids=[[7] * n for n in lengths])


@pytest.mark.parametrize("max_len, cache", [(16, 4), (20, 1), (64, 16), (12, 12), (40, 8)])
def test_overlong_penalty_matches_trl(max_len, cache):
    lengths = list(range(0, max_len + 4))  # every length up to past the budget: both boundaries
    want = torch.tensor(_trl_overlong(lengths, max_len, cache), dtype=torch.float64)
    for dtype in (torch.long, torch.int32, torch.float32, torch.float64):
        got = rlvr.overlong_penalty(torch.tensor(lengths, dtype=dtype), max_len, cache)
        assert got.dtype == torch.float32 and got.shape == (len(lengths),)
        assert torch.allclose(got.double(), want, atol=ATOL, rtol=0), (dtype, got, want)


def test_overlong_penalty_hand_values_and_errors():
    got = rlvr.overlong_penalty(torch.tensor([6, 7, 9, 10, 11]), 10, 4)
    assert got.tolist() == [0.0, -0.25, -0.75, -1.0, -1.0]
    lengths = torch.tensor([3.0, 12.0])
    rlvr.overlong_penalty(lengths, 10, 4)
    assert lengths.tolist() == [3.0, 12.0]  # not modified
    for bad in (0, -2, 11):
        with pytest.raises(ValueError, match="overlong_buffer"):
            rlvr.overlong_penalty(torch.tensor([3]), 10, bad)
    with pytest.raises(ValueError, match="1-D"):
        rlvr.overlong_penalty(torch.ones(2, 2), 10, 4)


def _completions(seed: int, B: int = 10, T: int = 9):
    """Padded completions (ids [B, T], mask [B, T]) of three kinds: ended by EOS, cut off at the
    budget T without EOS, and ended by a token equal to the pad id (which TRL counts as ended)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 30, (B, T), generator=g)
    lens = torch.randint(1, T + 1, (B,), generator=g)
    lens[:3] = T  # some use the whole budget
    mask = (torch.arange(T)[None] < lens[:, None]).long()
    last = (lens - 1).clamp(min=0)
    kind = torch.randint(0, 3, (B,), generator=g)
    kind[0], kind[1], kind[2] = 1, 0, 2  # every kind at least once
    ended = kind != 1
    ids[torch.arange(B)[ended], last[ended]] = torch.where(kind[ended] == 0, EOS, PAD)
    ids[torch.arange(B)[~ended], last[~ended]] = 5  # cut off mid-answer
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, PAD))
    return ids, mask


def _trl_masked(completion_ids_list: list[list[int]], completion_mask: torch.Tensor) -> torch.Tensor:
    """Run the ``if self.mask_truncated_completions:`` block of TRL's installed
    ``GRPOTrainer._generate_and_score_completions`` on these completions."""
    pytest.importorskip("trl")
    from trl.trainer.grpo_trainer import GRPOTrainer

    src = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    start = src.index("if self.mask_truncated_completions:")
    start = src.rindex("\n", 0, start) + 1
    end = src.index("loss_mask = ", start)
    end = src.rindex("\n", 0, end) + 1
    block = textwrap.dedent(src[start:end])
    assert "is_truncated" in block and "completion_mask" in block, block
    trainer = types.SimpleNamespace(
        mask_truncated_completions=True,
        eos_token_ids=[EOS],
        _tokenizer=types.SimpleNamespace(pad_token_id=PAD),
    )
    ns = {
        "self": trainer,
        "torch": torch,
        "device": "cpu",
        "completion_ids_list": completion_ids_list,
        "completion_mask": completion_mask.clone(),
        "tool_mask": None,
    }
    exec(block, ns)  # noqa: S102 -- TRL's own code, from the installed package
    return ns["completion_mask"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mask_truncated_completions_matches_trl(seed):
    from course_lib.core.sampling import Rollout

    ids, mask = _completions(seed)
    unpadded = [row[: int(n)].tolist() for row, n in zip(ids, mask.sum(-1))]
    want = _trl_masked(unpadded, mask)
    B = ids.shape[0]
    ro = Rollout(["p"] * B, ["t"] * B, torch.zeros(B, 1, dtype=torch.long), torch.ones(B, 1), ids, mask)
    truncated = ro.is_truncated(EOS, PAD)
    assert truncated.tolist() == [r[-1] not in (EOS, PAD) for r in unpadded]
    assert truncated.any() and not truncated.all()
    before = mask.clone()
    got = rlvr.mask_truncated_completions(mask, truncated)
    assert torch.equal(mask, before)  # the input is not modified
    assert got.dtype == mask.dtype and torch.equal(got, want.to(got.dtype)), (got, want)


def test_mask_truncated_completions_dtypes_and_errors():
    trunc = torch.tensor([True, False])
    for dtype in (torch.long, torch.int32, torch.float32):
        m = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=dtype)
        got = rlvr.mask_truncated_completions(m, trunc)
        assert got.dtype == dtype and got.tolist() == [[0, 0, 0], [1, 0, 0]]
    m = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"is_truncated\[3\] must be \[B\] = \[2\]"):
        rlvr.mask_truncated_completions(m, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="bool"):
        rlvr.mask_truncated_completions(m, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="2-D"):
        rlvr.mask_truncated_completions(torch.ones(3), torch.tensor([True, False, True]))


def test_trainer_reward_function_matches_trl_on_a_rollout():
    """The trainer's overlong reward (what train() adds, weight 1) on a real sampled rollout: the
    completion_ids it gets are unpadded with EOS kept, so it equals TRL's function on them."""
    import course_lib
    from course_lib.core import sampling
    from course_lib.labs import reasoning
    from course_lib.trainers import _loop
    from course_lib.trainers import rlvr as trainer

    course_lib.use_solutions(True)
    try:
        model, tok = reasoning.load_start_model()
        prompts = [p["prompt"] for p in reasoning.make_problems("train", 3)]
        gen = torch.Generator().manual_seed(0)
        ro = sampling.sample(model, tok, prompts, max_new_tokens=24, num_samples=4, generator=gen)
        funcs, weights = trainer.reward_functions(0.2, 24, 6)
        assert weights == [1.0, 0.2, 1.0] and funcs[2].__name__ == "overlong_penalty"
        lengths = ro.completion_mask.sum(-1).tolist()
        ids = [row[:n] for row, n in zip(ro.completion_ids.tolist(), lengths)]
        got = funcs[2](completions=ro.texts, completion_ids=ids)
        want = _trl_overlong(lengths, 24, 6)
        assert max(abs(a - b) for a, b in zip(got, want)) < ATOL
        assert any(v < 0 for v in want) and any(v == 0 for v in want), lengths  # both kinds seen
        _, per_func = _loop.score_rollout(funcs, weights, ro, {"answer": ["0"] * len(ro)})
        assert abs(per_func["overlong_penalty"] - sum(want) / len(want)) < ATOL
    finally:
        course_lib.use_solutions(False)
