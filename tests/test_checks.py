"""The visible checks (course_lib/checks/): the solutions pass all of them, every stub stops with
its own NotImplementedError, and a plausible wrong implementation of each exercise fails with an
AssertionError that says what was expected."""
from __future__ import annotations

import importlib
import inspect
import math
import re

import pytest
import torch
import torch.nn.functional as F

import course_lib
from course_lib import checks
from course_lib.core.registry import EXERCISES

pytest.importorskip("solutions")  # instructor-only: the wrong implementations wrap the solutions

from solutions import dpo as S_dpo  # noqa: E402
from solutions import grpo as S_grpo  # noqa: E402
from solutions import kl as S_kl  # noqa: E402
from solutions import ppo as S_ppo  # noqa: E402
from solutions import reward_model as S_rm  # noqa: E402
from solutions import rewards as S_rw  # noqa: E402
from solutions import sft as S_sft  # noqa: E402

IDS = [f"{e.number}-{e.name}" for e in EXERCISES]


@pytest.fixture(autouse=True)
def _stubs_after():
    course_lib.use_solutions(False)
    yield
    course_lib.use_solutions(False)


def test_every_registry_exercise_has_a_visible_check():
    missing = [e.name for e in EXERCISES if e.name not in checks.CHECKS]
    assert not missing, f"course_lib/checks/ has no visible check for {missing}: add one"


def test_unknown_name_is_a_keyerror_listing_known_checks():
    with pytest.raises(KeyError) as info:
        checks.check("kl_estimat")
    assert "kl_estimat" in str(info.value) and "kl_estimate" in str(info.value)


def test_checks_never_import_solutions():
    src = inspect.getsource(checks)
    assert not re.search(r"^\s*(from|import)\s+solutions", src, re.M), "checks.py must not import solutions"
    assert "COURSE-SOLUTION-CANARY" not in src


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_solution_passes_its_visible_check(ex, capsys):
    course_lib.use_solutions(True)
    checks.check(ex.name)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    m = re.fullmatch(rf"✓ exercise {re.escape(ex.number)} {ex.name}: (\d+)/(\d+) visible checks passed", out[0])
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 2, out[0]


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_stops_the_check_with_its_own_message(ex):
    with pytest.raises(NotImplementedError) as info:
        checks.check(ex.name)
    assert f"Exercise {ex.number}" in str(info.value) and ex.notebook in str(info.value)


def test_stub_of_a_dependency_propagates_unchanged():
    """sft_train_step (solution) calls the student's sft_loss: if that is still a stub, the
    student sees exercise 3.3's message, not a failed check."""
    course_lib.use_solutions(True)
    stub = course_lib.core.switch._ORIGINALS[("sft", "sft_loss")]
    course_lib.sft.sft_loss = stub
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.3"):
        checks.check("sft_train_step")


# ----------------------------------------------------------------- plausible wrong implementations
def _w_format(completions, **kw):                       # re.search: trailing text accepted
    return [1.0 if re.search(S_rw.FORMAT_PATTERN, t) else -1.0 for t in S_rw.as_text(completions)]


def _w_correct(completions, answer, **kw):              # FIRST integer instead of the last
    out = []
    for c, a in zip(S_rw.as_text(completions), answer):
        got, want = re.findall(r"-?\d+", c), re.findall(r"-?\d+", str(a))
        out.append(1.0 if got and want and int(got[0]) == int(want[-1]) else 0.0)
    return out


def _w_sentiment(completions, **kw):                    # a score in [-1, 1], not a probability
    return [2 * p - 1 for p in S_rw.sentiment_reward(completions)]


def _w_repetition(completions, **kw):                   # forgets to lower-case
    return [1 - len(set(t.split())) / len(t.split()) if t.split() else 0.0 for t in S_rw.as_text(completions)]


def _w_length(completions, min_words=4, max_words=40, **kw):   # exclusive bounds
    return [0.0 if min_words < len(t.split()) < max_words else -1.0 for t in S_rw.as_text(completions)]


def _w_shaping(scores, temperature=1.0):                # multiplies by T
    return S_rw.exponential_shaping([s * temperature ** 2 for s in scores], temperature) \
        if not isinstance(scores, torch.Tensor) else S_rw.exponential_shaping(scores * temperature ** 2, temperature)


def _w_combine(reward_funcs, weights):                  # ignores the weights
    return S_rw.combine_rewards(reward_funcs, [1.0] * len(list(weights)))


def _w_token_logprobs(logits, tokens):                  # probabilities, not log-probabilities
    return S_kl.token_logprobs(logits, tokens).exp()


def _w_kl_estimate(logp, ref_logp, kind="k3"):          # log r = logp - ref_logp (sign flipped)
    return S_kl.kl_estimate(ref_logp, logp, kind)


def _w_exact_kl(p_logits, q_logits):                    # KL(q || p)
    return S_kl.exact_kl(q_logits, p_logits)


def _w_kl_rewards(scores, logp, ref_logp, mask, beta):  # score on position -1, even if padding
    r = -beta * (logp - ref_logp) * mask
    r[:, -1] += scores
    return r


def _w_tokenize(prompts, completions, tokenizer):       # labels not shifted
    out = S_sft.tokenize_prompt_and_completion(prompts, completions, tokenizer)
    return {**out, "labels": out["input_ids"].clone()}


def _w_masked_mean(x, mask, dim=None):                  # divides by every element
    return (x * mask).mean() if dim is None else (x * mask).mean(dim)


def _w_sft_loss(logits, labels, mask):                  # mean of per-sequence means
    return -S_dpo.sequence_logprobs(logits, labels, mask, average=True).mean()


def _w_sft_train_step(model, batch, optimizer, max_grad_norm=1.0):   # forgets zero_grad
    model.train()
    loss = S_sft.sft_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"], batch["completion_mask"])
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def _w_bt(r_chosen, r_rejected, margin=None):           # adds the margin
    return S_rm.bradley_terry_loss(r_chosen, r_rejected, None if margin is None else -margin)


def _w_pref_acc(r_chosen, r_rejected):                  # ties count as right
    if r_chosen.numel() == 0:
        raise ValueError("empty")
    return (r_chosen >= r_rejected).float().mean().item()


def _w_last_token(values, attention_mask):              # position -1 (padding!)
    if (attention_mask.sum(-1) == 0).any():
        raise ValueError("empty row")
    return values[:, -1]


def _w_gae(rewards, values, mask, gamma=1.0, lam=0.95):  # ignores the mask
    return S_ppo.compute_gae(rewards, values, torch.ones_like(mask), gamma, lam)


def _w_whiten(x, mask, shift_mean=True):                 # biased variance
    m = mask.to(x.dtype)
    n = m.sum()
    if n < 2:
        raise ValueError("too few")
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / n
    out = (x - mean) / torch.sqrt(var + 1e-8)
    return out if shift_mean else out + mean


def _w_policy_loss(logp, old_logp, advantages, mask, clip_eps=0.2):  # min instead of max
    ratio = torch.exp(logp - old_logp)
    un, cl = -advantages * ratio, -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    return S_sft.masked_mean(torch.minimum(un, cl), mask), S_sft.masked_mean((cl > un).float(), mask)


def _w_value_loss(values, old_values, returns, mask, clip_range=0.2):   # no 0.5
    return 2 * S_ppo.ppo_value_loss(values, old_values, returns, mask, clip_range)


def _w_entropy(logits):                                   # naive -sum p log p (nan for large logits)
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum(-1)


def _w_minibatch(logits, values, batch, clip_range=0.2, cliprange_value=0.2, vf_coef=0.1, entropy_coef=0.0):
    loss, stats = S_ppo.ppo_minibatch_loss(logits, values, batch, clip_range, cliprange_value, vf_coef,
                                           entropy_coef)
    return loss + 2 * entropy_coef * stats["entropy"], stats   # entropy as a penalty, not a bonus


def _w_group_adv(rewards, group_size, scale="group", eps=1e-4):   # population std
    if rewards.numel() % group_size or group_size < 2 or scale not in ("group", "batch", "none"):
        raise ValueError("bad input")
    g = rewards.view(-1, group_size)
    adv = g - g.mean(-1, keepdim=True)
    if scale == "group":
        adv = adv / (g.std(-1, unbiased=False, keepdim=True) + eps)
    elif scale == "batch":
        adv = adv / (rewards.std(unbiased=False) + eps)
    return adv.reshape(-1)


def _w_grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps=0.2, beta=0.04, loss_type="grpo",
                 max_completion_length=None):            # grpo reduced like bnpo
    return S_grpo.grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps, beta,
                            "bnpo" if loss_type == "grpo" else loss_type, max_completion_length)


def _w_grpo_step(model, optimizer, rollout, advantages, old_logp=None, ref_logp=None, **kw):
    return S_grpo.grpo_step(model, optimizer, rollout, advantages, None, ref_logp, **kw)   # ignores old_logp


def _w_seq_logprobs(logits, labels, mask, average=False):   # always averages
    return S_dpo.sequence_logprobs(logits, labels, mask, average=True)


def _w_dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta=0.1, loss_type="sigmoid",
                label_smoothing=0.0):                    # beta outside the sigmoid
    losses, c, r = S_dpo.dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, 1.0, loss_type,
                                  label_smoothing)
    if loss_type == "sigmoid":
        h = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)
        losses = -beta * F.logsigmoid(h)
    return losses, beta * (pi_chosen - ref_chosen).detach(), beta * (pi_rejected - ref_rejected).detach()


def _w_dpo_batch(model, batch, beta=0.1, loss_type="sigmoid", label_smoothing=0.0, average=False):
    if batch["input_ids"].shape[0] % 2 or batch["ref_logps"].shape != batch["input_ids"].shape[:1]:
        raise ValueError("bad batch")
    logps = S_dpo.sequence_logprobs(model(input_ids=batch["input_ids"]).logits, batch["labels"],
                                    batch["completion_mask"], average)
    ref = batch["ref_logps"]                              # pairs taken as interleaved rows
    losses, c, r = S_dpo.dpo_loss(logps[0::2], logps[1::2], ref[0::2], ref[1::2], beta, loss_type,
                                  label_smoothing)
    return losses.mean(), {"chosen_rewards": c, "rejected_rewards": r, "logps": logps.detach()}


WRONG = {
    "format_reward": _w_format, "correctness_reward": _w_correct, "sentiment_reward": _w_sentiment,
    "repetition_penalty": _w_repetition, "length_penalty": _w_length,
    "exponential_shaping": _w_shaping, "combine_rewards": _w_combine,
    "token_logprobs": _w_token_logprobs, "kl_estimate": _w_kl_estimate, "exact_kl": _w_exact_kl,
    "kl_penalized_rewards": _w_kl_rewards, "tokenize_prompt_and_completion": _w_tokenize,
    "masked_mean": _w_masked_mean, "sft_loss": _w_sft_loss, "sft_train_step": _w_sft_train_step,
    "bradley_terry_loss": _w_bt, "preference_accuracy": _w_pref_acc, "last_token_pool": _w_last_token,
    "compute_gae": _w_gae, "whiten": _w_whiten, "ppo_policy_loss": _w_policy_loss,
    "ppo_value_loss": _w_value_loss, "entropy_from_logits": _w_entropy,
    "ppo_minibatch_loss": _w_minibatch, "group_advantages": _w_group_adv, "grpo_loss": _w_grpo_loss,
    "grpo_step": _w_grpo_step, "sequence_logprobs": _w_seq_logprobs, "dpo_loss": _w_dpo_loss,
    "dpo_batch_loss": _w_dpo_batch,
}
# the hint each wrong implementation must trigger (a word or phrase of the exercise-specific hint)
HINT = {"kl_estimate": "ref_logp - logp", "grpo_loss": "per sequence first", "whiten": "Bessel",
        "dpo_loss": "INSIDE", "compute_gae": "mask", "exact_kl": "FIRST argument",
        "kl_penalized_rewards": "LAST", "masked_mean": "number of masked entries",
        "sft_train_step": "zero_grad", "entropy_from_logits": "logsumexp"}


def test_every_exercise_has_a_wrong_implementation():
    missing = [e.name for e in EXERCISES if e.name not in WRONG]
    assert not missing, f"add a plausible wrong implementation for {missing} to tests/test_checks.py"


@pytest.mark.parametrize("ex", [e for e in EXERCISES if e.name in WRONG], ids=lambda e: f"{e.number}-{e.name}")
def test_wrong_implementation_fails_with_expected_and_hint(ex, monkeypatch):
    course_lib.use_solutions(True)      # dependencies (e.g. sft_loss inside sft_train_step) are right
    mod = importlib.import_module(f"course_lib.{ex.module}")
    monkeypatch.setattr(mod, ex.name, WRONG[ex.name])
    with pytest.raises(AssertionError) as info:
        checks.check(ex.name)
    msg = str(info.value)
    assert "expected" in msg and "got" in msg and "hint" in msg, msg
    assert f"exercise {ex.number}" in msg, msg
    if ex.name in HINT:
        assert HINT[ex.name] in msg, msg


def test_failure_message_names_case_expected_and_got(monkeypatch):
    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.kl, "kl_estimate", _w_kl_estimate)
    with pytest.raises(AssertionError) as info:
        checks.check("kl_estimate")
    msg = str(info.value)
    assert "case 'k1 = -log r'" in msg and "[1.0, -1.0, 0.0]" in msg and "[-1.0, 1.0, 0.0]" in msg, msg


def test_a_crash_inside_the_student_function_becomes_a_failed_case(monkeypatch):
    def broken(logp, ref_logp, kind="k3"):
        return logp.view(7)                       # RuntimeError: shape '[7]' is invalid
    monkeypatch.setattr(course_lib.kl, "kl_estimate", broken)
    with pytest.raises(AssertionError) as info:
        checks.check("kl_estimate")
    assert "RuntimeError" in str(info.value) and "expected" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_detached_loss_fails_the_gradient_check(monkeypatch):
    def detached(r_chosen, r_rejected, margin=None):
        return S_rm.bradley_terry_loss(r_chosen, r_rejected, margin).detach()
    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.reward_model, "bradley_terry_loss", detached)
    with pytest.raises(AssertionError, match="requires_grad"):
        checks.check("bradley_terry_loss")


def test_literals_match_hand_arithmetic():
    """A few expected values of checks.py re-derived here from first principles."""
    assert math.isclose(0.5 * math.log(4 / 3), 0.1438410, abs_tol=1e-7)          # exact_kl
    assert math.isclose(math.log(2) + math.log(4 / 3) + math.log(4), 3 * 0.7890412, abs_tol=1e-6)
    assert math.isclose(math.sqrt(0.3125 ** 2 * 2 + 0.5625 ** 2 + 1.1875 ** 2 + 3 * 0.0625 ** 2 + 0.1875 ** 2),
                        1.4031215, abs_tol=1e-6)                                 # grpo_step grad norm
    assert math.isclose(-0.05 + 0.45 * (-0.05 + 0.45 * 0.5), 0.02875)           # GAE A_0


def test_a_result_of_the_wrong_structure_fails_clearly(monkeypatch):
    def loss_only(logp, old_logp, advantages, mask, clip_eps=0.2):
        return S_ppo.ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps)[0]
    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.ppo, "ppo_policy_loss", loss_only)
    with pytest.raises(AssertionError, match=r"expected: a tuple of 2 values"):
        checks.check("ppo_policy_loss")
