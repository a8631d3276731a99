"""The visible checks (course_lib/checks/): the solutions pass all of them, every stub stops with
its own NotImplementedError, and a plausible wrong implementation of each exercise fails with an
AssertionError that says what was expected."""

from __future__ import annotations

import ast
import functools
import importlib
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import course_lib
from course_lib import checks
from course_lib.core.registry import BY_NAME, EXERCISES

pytest.importorskip("solutions")  # instructor-only: the wrong implementations wrap the solutions

from solutions import dpo as S_dpo
from solutions import grpo as S_grpo
from solutions import kl as S_kl
from solutions import ppo as S_ppo
from solutions import reward_model as S_rm
from solutions import rewards as S_rw
from solutions import rlvr as S_rlvr
from solutions import sft as S_sft

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


CHECK_FILES = sorted(Path(checks.__file__).parent.glob("*.py"))


def test_one_check_file_per_exercise_module():
    modules = {e.module for e in EXERCISES}
    assert modules <= {p.stem for p in CHECK_FILES}, "course_lib/checks/ needs one file per exercise module"
    for m in modules:
        mod = importlib.import_module(f"course_lib.checks.{m}")
        mine = [n for n, (body, _) in checks.CHECKS.items() if body.__module__ == mod.__name__]
        assert sorted(mine) == sorted(e.name for e in EXERCISES if e.module == m), m


def test_checks_never_import_solutions():
    for p in CHECK_FILES:
        src = p.read_text()
        assert not re.search(r"^\s*(from|import)\s+solutions", src, re.M), (
            f"{p.name} must not import solutions"
        )
        assert "COURSE-SOLUTION-CANARY" not in src, p.name


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_solution_passes_its_visible_check(ex, capsys):
    course_lib.use_solutions(True)
    checks.check(ex.name)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    m = re.fullmatch(
        rf"✓ exercise {re.escape(ex.number)} {ex.name}: (\d+)/(\d+) visible checks passed", out[0]
    )
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 2, out[0]


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_stub_stops_the_check_with_its_own_message(ex):
    with pytest.raises(NotImplementedError) as info:
        checks.check(ex.name)
    assert f"Exercise {ex.number}" in str(info.value) and ex.notebook in str(info.value)


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_student_pytest_fails_on_a_stub_naming_the_exercise(ex):
    """tests/test_exercises.py (shipped): with the stubs every test fails and names its exercise."""
    import test_exercises

    with pytest.raises(
        pytest.fail.Exception, match=rf"exercise {re.escape(ex.number)} `{ex.name}`.*not implemented yet"
    ):
        test_exercises.test_exercise(ex)


def test_student_pytest_file_ships():
    from course_instructor import release

    assert Path(__file__).with_name("test_exercises.py") in release.public_tests()


def test_student_runs_pytest_k_grpo_without_the_solutions(tmp_path):
    """As in the student bundle (no solutions package): `pytest -k grpo` runs the three unit-06
    exercises, and each stub fails naming its exercise."""
    import subprocess
    import sys

    block = tmp_path / "solutions"
    block.mkdir()
    (block / "__init__.py").write_text("raise ImportError('not in the student bundle')\n")
    # run from tmp_path: `python -m pytest` puts the cwd first on sys.path, so `solutions` is the block
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    tests = Path(__file__).parent
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "grpo",
            str(tests / "test_exercises.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert f"3 failed, {len(EXERCISES) - 3} deselected" in r.stdout, r.stdout[-3000:]
    for number, name in (("6.1", "group_advantages"), ("6.2", "grpo_loss"), ("6.3", "grpo_step")):
        assert f"exercise {number} `{name}` (course_lib/grpo.py) is not implemented yet" in r.stdout


def test_student_pytest_shows_the_check_message_for_a_wrong_function(monkeypatch):
    import test_exercises

    course_lib.use_solutions(True)
    no_min = next(w[2] for w in WRONG if w[0] == "grpo_loss" and "without the min" in w[1])
    monkeypatch.setattr(course_lib.grpo, "grpo_loss", no_min)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exercise 6\.2 `grpo_loss`.*expected.*hint: "):
        test_exercises.test_exercise(BY_NAME["grpo_loss"])


def test_stub_of_a_dependency_propagates_unchanged():
    """sft_train_step (solution) calls the student's sft_loss: if that is still a stub, the
    student sees exercise 3.3's message, not a failed check."""
    course_lib.use_solutions(True)
    stub = course_lib.core.switch._ORIGINALS[("sft", "sft_loss")]
    course_lib.sft.sft_loss = stub
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.3"):
        checks.check("sft_train_step")


# ----------------------------------------------------------------- plausible wrong implementations
# Each entry: (exercise, what is wrong, the wrong function, a phrase the failure's hint must contain
# -- the property that failed, never the answer). Most wrap the solution and change one thing.
# tests/test_hidden_cases.py runs every one of them through the grader's hidden cases as well.
WRONG: list[tuple[str, str, object, str]] = []


def wrong(name: str, label: str, phrase: str):
    def deco(f):
        WRONG.append((name, label, f, phrase))
        return f

    return deco


def variants(name: str, impl, rows) -> None:
    """Register impl(..., bug=b) for each (label, b, phrase) row: one function, several bugs."""
    for label, bug, phrase in rows:
        WRONG.append((name, label, functools.partial(impl, bug=bug), phrase))


def _texts(completions):
    return S_rw.as_text(completions)


def _last_int(x, pattern=r"-?\d+", commas=True):
    s = str(x).replace(",", "") if commas else str(x)
    found = re.findall(pattern, s)
    return int(found[-1]) if found else None


# 1.1 format_reward
@wrong("format_reward", "re.search: text after the answer accepted", "WHOLE")
def _w_format_search(completions, **kw):
    return [1.0 if re.search(S_rw.FORMAT_PATTERN, t.strip()) else -1.0 for t in _texts(completions)]


@wrong("format_reward", "no strip", "whitespace")
def _w_format_nostrip(completions, **kw):
    return [1.0 if re.fullmatch(S_rw.FORMAT_PATTERN, t) else -1.0 for t in _texts(completions)]


@wrong("format_reward", "1 / 0 instead of +1 / -1", "penalty")
def _w_format_01(completions, **kw):
    return [max(v, 0.0) for v in S_rw.format_reward(completions)]


# 1.2 correctness_reward
def _correct(completions, answer, pick=-1, pattern=r"-?\d+", commas=True):
    if len(completions) != len(answer):
        raise ValueError("length mismatch")
    out = []
    for c, a in zip(_texts(completions), answer):
        s = c.replace(",", "") if commas else c
        got = re.findall(pattern, s)
        want = a if isinstance(a, int) else _last_int(a, pattern, commas)
        out.append(1.0 if got and want is not None and int(got[pick]) == int(want) else 0.0)
    return out


wrong("correctness_reward", "first integer", "LAST")(
    lambda completions, answer, **kw: _correct(completions, answer, pick=0)
)
wrong("correctness_reward", r"\d+ without the minus sign", "minus")(
    lambda completions, answer, **kw: _correct(completions, answer, pattern=r"\d+")
)
wrong("correctness_reward", "commas kept ('1,000' read as 000)", "comma")(
    lambda completions, answer, **kw: _correct(completions, answer, commas=False)
)

# 1.3 sentiment_reward
wrong("sentiment_reward", "a score in [-1, 1]", "PROBABILITY")(
    lambda completions, **kw: [2 * p - 1 for p in S_rw.sentiment_reward(completions)]
)
wrong("sentiment_reward", "negative probability 1 - p", "PROBABILITY")(
    lambda completions, **kw: [1 - p for p in S_rw.sentiment_reward(completions)]
)


# 1.4 repetition_penalty
def _rep(completions, lower=True, sep=None, one_minus=True):
    out = []
    for text in _texts(completions):
        words = (text.lower() if lower else text).split(sep) if text else []
        share = len(set(words)) / len(words) if words else 1.0
        out.append((1.0 - share) if one_minus else (share if words else 0.0))
    return out


wrong("repetition_penalty", "case-sensitive", "case")(
    lambda completions, **kw: _rep(completions, lower=False)
)
wrong("repetition_penalty", "split(' ') instead of split()", "ANY run of whitespace")(
    lambda completions, **kw: _rep(completions, sep=" ")
)
wrong("repetition_penalty", "unique / total (no 1 -)", "NO penalty")(
    lambda completions, **kw: _rep(completions, one_minus=False)
)


# 1.5 length_penalty
@wrong("length_penalty", "exclusive bounds", "inclusive")
def _w_length_exclusive(completions, min_words=4, max_words=40, **kw):
    return [0.0 if min_words < len(t.split()) < max_words else -1.0 for t in _texts(completions)]


@wrong("length_penalty", "ignores min_words / max_words", "min_words")
def _w_length_fixed(completions, min_words=4, max_words=40, **kw):
    return S_rw.length_penalty(completions)


@wrong("length_penalty", "split(' ') instead of split()", "ANY run of whitespace")
def _w_length_split(completions, min_words=4, max_words=40, **kw):
    return [0.0 if min_words <= len(t.split(" ")) <= max_words else -1.0 for t in _texts(completions)]


# 1.6 exponential_shaping
def _shape(scores, temperature, f):
    if temperature <= 0:
        raise ValueError("temperature")
    if isinstance(scores, torch.Tensor):
        return f(scores, temperature)
    return [float(f(torch.tensor(float(s)), temperature)) for s in scores]


wrong("exponential_shaping", "multiplies by the temperature", "DIVIDED")(
    lambda scores, temperature=1.0: _shape(scores, temperature, lambda s, T: torch.exp(s * T) - 1)
)
wrong("exponential_shaping", "forgets the - 1", "MINUS 1")(
    lambda scores, temperature=1.0: _shape(scores, temperature, lambda s, T: torch.exp(s / T))
)


@wrong("exponential_shaping", "a tensor in, a list out", "tensor in")
def _w_shaping_list(scores, temperature=1.0):
    s = scores.tolist() if isinstance(scores, torch.Tensor) else scores
    return S_rw.exponential_shaping(s, temperature)


# 1.7 combine_rewards
def _combine(reward_funcs, weights, use_weights=True, pass_kwargs=True, mean=False):
    funcs, ws = list(reward_funcs), [float(w) for w in weights]
    if not funcs or len(funcs) != len(ws):
        raise ValueError("bad")

    def combined(completions, **kwargs):
        total = [0.0] * len(completions)
        for f, w in zip(funcs, ws):
            vals = f(completions, **kwargs) if pass_kwargs else f(completions)
            total = [t + (w if use_weights else 1.0) * float(v) for t, v in zip(total, vals)]
        return [t / len(funcs) for t in total] if mean else total

    return combined


wrong("combine_rewards", "ignores the weights", "ITS weight")(lambda f, w: _combine(f, w, use_weights=False))
wrong("combine_rewards", "keyword arguments not passed on", "keyword arguments")(
    lambda f, w: _combine(f, w, pass_kwargs=False)
)
wrong("combine_rewards", "weighted mean instead of sum", "summed")(lambda f, w: _combine(f, w, mean=True))


# 1.8 reinforce_loss
def _reinforce(logprobs, rewards, baseline=None, *, bug):
    if logprobs.dim() != 1 or rewards.shape != logprobs.shape or baseline not in (None, "mean"):
        if not isinstance(baseline, (int, float)):
            raise ValueError("reinforce_loss: bad input")
    R = rewards.float()
    b = R.mean() if baseline == "mean" else float(baseline or 0.0)
    if bug == "ignored" or (bug == "float-ignored" and not isinstance(b, torch.Tensor)):
        b = 0.0
    if bug == "attached":
        A = R - b  # nothing detached
    elif bug == "baseline-attached":
        A = R.detach() - b  # the batch mean keeps its graph
    else:
        A = (R + b if bug == "added" else R - b).detach()
    if bug == "std" and baseline == "mean" and len(R) > 1:
        A = A / R.detach().std()
    if bug == "outer":
        A = A.unsqueeze(-1)  # [B, 1] * [B] broadcasts to [B, B]
    per_sample = -(A * logprobs)
    return {"sign": -per_sample.mean(), "sum": per_sample.sum(), "vector": per_sample}.get(
        bug, per_sample.mean()
    )


variants(
    "reinforce_loss",
    _reinforce,
    [
        ("wrong sign (gradient ascent on the loss)", "sign", "sign"),
        ("sum instead of mean", "sum", "MEAN (not the sum)"),
        ("one loss per sample, no mean", "vector", "a scalar"),
        ("advantages not detached", "attached", "constants of the update"),
        ("baseline not detached", "baseline-attached", "constants of the update"),
        ("baseline ignored", "ignored", "subtracts the batch mean"),
        ("a number as baseline ignored", "float-ignored", "SUBTRACTED"),
        ("baseline added", "added", "subtracts the batch mean"),
        ("divides by the std (GRPO habit)", "std", "standard deviation"),
        (
            "rewards [B, 1]: outer product, mean over the wrong axes",
            "outer",
            "advantage times log-probability",
        ),
    ],
)

# 2.1 token_logprobs
wrong("token_logprobs", "probabilities, not log-probabilities", "log-probabilities")(
    lambda logits, tokens: S_kl.token_logprobs(logits, tokens).exp()
)


@wrong("token_logprobs", "softmax().log() (-inf for large logits)", "not finite")
def _w_tlp_unstable(logits, tokens):
    S_kl.token_logprobs(logits, tokens)  # shape checks
    return torch.softmax(logits, -1).log().gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@wrong("token_logprobs", "shifts by one like a causal-LM loss", "SAME position")
def _w_tlp_shift(logits, tokens):
    return S_kl.token_logprobs(logits[:, :-1], tokens[:, 1:])


@wrong("token_logprobs", "normalises over time instead of the vocabulary", "vocabulary")
def _w_tlp_dim(logits, tokens):
    S_kl.token_logprobs(logits, tokens)
    return F.log_softmax(logits, dim=1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


# 2.2 kl_estimate
wrong("kl_estimate", "log r = logp - ref_logp", "ref_logp - logp")(
    lambda logp, ref_logp, kind="k3": S_kl.kl_estimate(ref_logp, logp, kind)
)
wrong("kl_estimate", "k2 without the 1/2", "HALF")(
    lambda logp, ref_logp, kind="k3": S_kl.kl_estimate(logp, ref_logp, kind) * (2 if kind == "k2" else 1)
)
wrong("kl_estimate", "default kind k1", "default")(
    lambda logp, ref_logp, kind="k1": S_kl.kl_estimate(logp, ref_logp, kind)
)

# 2.3 exact_kl
wrong("exact_kl", "KL(q || p)", "FIRST argument")(
    lambda p_logits, q_logits: S_kl.exact_kl(q_logits, p_logits)
)


@wrong("exact_kl", "softmax().log() (nan for large logits)", "not finite")
def _w_exact_kl_unstable(p_logits, q_logits):
    S_kl.exact_kl(p_logits, q_logits)
    p, q = torch.softmax(p_logits, -1), torch.softmax(q_logits, -1)
    return (p * (p.log() - q.log())).sum(-1)


wrong("exact_kl", "sums over every dimension", "LAST dimension")(
    lambda p_logits, q_logits: S_kl.exact_kl(p_logits, q_logits).sum()
)


# 2.4 kl_penalized_rewards
@wrong("kl_penalized_rewards", "score at index -1 (padding)", "LAST")
def _w_klr_minus1(scores, logp, ref_logp, mask, beta):
    r = S_kl.kl_penalized_rewards(torch.zeros_like(scores), logp, ref_logp, mask, beta)
    r[:, -1] += scores
    return r


@wrong("kl_penalized_rewards", "penalty on padding too", "padding stays exactly 0")
def _w_klr_nomask(scores, logp, ref_logp, mask, beta):
    r = S_kl.kl_penalized_rewards(scores, logp, ref_logp, mask, beta)
    return r - beta * (logp - ref_logp) * (1 - mask.to(logp.dtype))


wrong("kl_penalized_rewards", "+beta: rewards the drift", "MORE likely")(
    lambda scores, logp, ref_logp, mask, beta: S_kl.kl_penalized_rewards(scores, logp, ref_logp, mask, -beta)
)


@wrong("kl_penalized_rewards", "accepts an all-zero mask row", "ValueError")
def _w_klr_empty(scores, logp, ref_logp, mask, beta):
    keep = mask.sum(-1) > 0
    r = torch.zeros_like(logp)
    r[keep] = S_kl.kl_penalized_rewards(scores[keep], logp[keep], ref_logp[keep], mask[keep], beta)
    return r


# 3.1 tokenize_prompt_and_completion
def _tok(prompts, completions, tokenizer, *, bug):
    eos, joined, left = bug == "eos", bug == "joined", bug == "left"
    shift_labels, shift_mask = bug != "labels-unshifted", bug != "mask-unshifted"
    if len(prompts) != len(completions):
        raise ValueError("mismatch")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs, comp = [], []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c + (tokenizer.eos_token if eos else ""), add_special_tokens=False)["input_ids"]
        full = tokenizer(p + c, add_special_tokens=False)["input_ids"] if joined else p_ids + c_ids
        seqs.append(full)
        comp.append([0] * len(p_ids) + [1] * (len(full) - len(p_ids)))
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    cm = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, comp)):
        sl = slice(L - len(s), L) if left else slice(0, len(s))
        ids[i, sl], cm[i, sl] = torch.tensor(s), torch.tensor(m)
    return {
        "input_ids": ids[:, :-1],
        "labels": ids[:, 1:] if shift_labels else ids[:, :-1],
        "completion_mask": cm[:, 1:] if shift_mask else cm[:, :-1],
    }


variants(
    "tokenize_prompt_and_completion",
    _tok,
    [
        ("labels not shifted", "labels-unshifted", "shifted by one"),
        ("appends EOS", "eos", "EOS token"),
        ("tokenizes the joined string", "joined", "ONE string"),
        ("mask not shifted with the labels", "mask-unshifted", "LABELS"),
        ("left padding", "left", "RIGHT"),
    ],
)


# 3.2 masked_mean
def _mm(x, mask, dim, how):
    S_sft.masked_mean(x, mask, dim)  # the solution's input checks
    m = mask.to(x.dtype)
    if how == "numel":
        return (x * m).mean() if dim is None else (x * m).mean(dim)
    if how == "row-means" and dim is None:
        return ((x * m).sum(-1) / m.sum(-1)).mean()
    if how == "no-dim":
        return (x * m).sum() / m.sum()
    return S_sft.masked_mean(x, mask, dim)


wrong("masked_mean", "divides by every element", "number of masked entries")(
    lambda x, mask, dim=None: _mm(x, mask, dim, "numel")
)
wrong("masked_mean", "dim=None as a mean of per-row means", "weighs the same")(
    lambda x, mask, dim=None: _mm(x, mask, dim, "row-means")
)
wrong("masked_mean", "ignores dim", "one mean per row")(lambda x, mask, dim=None: _mm(x, mask, dim, "no-dim"))


# 3.3 sft_loss
def _nll(logits, labels, mask):
    safe = torch.where(mask != 0, labels, torch.zeros_like(labels))
    return -F.log_softmax(logits, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)


wrong("sft_loss", "mean of per-sequence means", "weighs the same")(
    lambda logits, labels, mask: -S_dpo.sequence_logprobs(logits, labels, mask, average=True).mean()
)
wrong("sft_loss", "mean over every position (padding too)", "completion tokens")(
    lambda logits, labels, mask: _nll(logits, labels, mask).mean()
)
wrong("sft_loss", "sum instead of mean", "completion tokens")(
    lambda logits, labels, mask: (_nll(logits, labels, mask) * mask).sum()
)
wrong("sft_loss", "looks up the -100 labels", "-100")(
    lambda logits, labels, mask: S_sft.masked_mean(
        -F.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1), mask
    )
)


# 3.4 sft_train_step
def _sft_step(model, batch, optimizer, max_grad_norm=1.0, order="right", clip=True, all_tokens=False):
    for k in ("input_ids", "labels", "completion_mask"):
        batch[k]
    model.train()
    mask = torch.ones_like(batch["completion_mask"]) if all_tokens else batch["completion_mask"]
    loss = S_sft.sft_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"], mask)
    if order == "right":
        optimizer.zero_grad()
    loss.backward()
    if order == "after-backward":
        optimizer.zero_grad()
    if clip and max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


wrong("sft_train_step", "zero_grad after backward", "did not move")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, order="after-backward"
    )
)
wrong("sft_train_step", "no gradient clipping", "clipped")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, clip=False
    )
)
wrong("sft_train_step", "loss on every token", "completion tokens only")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, all_tokens=True
    )
)

# 4.1 bradley_terry_loss
wrong("bradley_terry_loss", "adds the margin", "LARGER")(
    lambda r_chosen, r_rejected, margin=None: S_rm.bradley_terry_loss(
        r_chosen, r_rejected, None if margin is None else -margin
    )
)
wrong("bradley_terry_loss", "rejected minus chosen", "CHOSEN")(
    lambda r_chosen, r_rejected, margin=None: S_rm.bradley_terry_loss(r_rejected, r_chosen, margin)
)
wrong("bradley_terry_loss", "log(sigmoid()) (inf for a large gap)", "not finite")(
    lambda r_chosen, r_rejected, margin=None: (
        -torch.log(torch.sigmoid(r_chosen - r_rejected - (0.0 if margin is None else margin))).mean()
        if r_chosen.shape == r_rejected.shape
        else S_rm.bradley_terry_loss(r_chosen, r_rejected)
    )
)
wrong("bradley_terry_loss", "sum over pairs", "mean over pairs")(
    lambda r_chosen, r_rejected, margin=None: (
        S_rm.bradley_terry_loss(r_chosen, r_rejected, margin) * r_chosen.numel()
    )
)


# 4.2 preference_accuracy
@wrong("preference_accuracy", "ties count as right", "tie")
def _w_pref_acc(r_chosen, r_rejected):
    if r_chosen.numel() == 0 or r_chosen.shape != r_rejected.shape:
        raise ValueError("empty / shapes")
    return (r_chosen >= r_rejected).float().mean().item()


wrong("preference_accuracy", "a count, not a fraction", "fraction")(
    lambda r_chosen, r_rejected: S_rm.preference_accuracy(r_chosen, r_rejected) * r_chosen.numel()
)


# 4.3 last_token_pool
def _pool(values, attention_mask, index):
    if (attention_mask.sum(-1) == 0).any() or values.shape[:2] != attention_mask.shape:
        raise ValueError("empty row / shapes")
    return values[torch.arange(values.shape[0]), index(attention_mask)]


wrong("last_token_pool", "position -1 (padding)", "padding")(
    lambda values, attention_mask: _pool(values, attention_mask, lambda m: torch.full((m.shape[0],), -1))
)
wrong("last_token_pool", "index = number of real tokens (off by one)", "LAST real token")(
    lambda values, attention_mask: _pool(
        values, attention_mask, lambda m: m.sum(-1).clamp(max=m.shape[1] - 1)
    )
)


# 5.1 compute_gae
def _gae(rewards, values, mask, gamma=1.0, lam=0.95, *, bug):
    use_mask, backward, add_values, use_lam = (
        bug != b for b in ("no-mask", "forward", "no-values", "no-lam")
    )
    m = mask.to(rewards.dtype) if use_mask else torch.ones_like(rewards)
    r, v = rewards.detach() * m, values.detach() * m
    T = r.shape[-1]
    adv, last = torch.zeros_like(r), torch.zeros_like(r[..., 0])
    for t in reversed(range(T)) if backward else range(T):
        next_v = v[..., t + 1] if t + 1 < T else torch.zeros_like(last)
        last = r[..., t] + gamma * next_v - v[..., t] + gamma * (lam if use_lam else 1.0) * last
        adv[..., t] = last
    adv = adv * m
    return adv, (adv + v) if add_values else adv


variants(
    "compute_gae",
    _gae,
    [
        ("ignores the mask", "no-mask", "padding"),
        ("runs forward in time", "forward", "FUTURE"),
        ("returns = advantages", "no-values", "PLUS"),
        ("ignores lam", "no-lam", "gamma * lam"),
    ],
)


# 5.2 whiten
def _whiten(x, mask, shift_mean=True, ddof=1, use_mask=True, shift=True):
    m = mask.to(x.dtype) if use_mask else torch.ones_like(x)
    n = mask.to(x.dtype).sum()
    if n < 2:
        raise ValueError("too few")
    n = m.sum()
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / (n - ddof)
    out = (x - mean) / torch.sqrt(var + 1e-8)
    return out if (shift_mean or not shift) else out + mean


wrong("whiten", "biased variance", "Bessel")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, ddof=0)
)
wrong("whiten", "statistics over every entry", "masked entries only")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, use_mask=False)
)
wrong("whiten", "ignores shift_mean", "original mean")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, shift=False)
)


# 5.3 ppo_policy_loss
def _pg(logp, old_logp, advantages, mask, clip_eps=0.2, *, bug):
    how = bug
    ratio = torch.exp(logp - old_logp)
    un, cl = -advantages * ratio, -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    per = {"min": torch.minimum(un, cl), "unclipped": un, "clipped": cl}.get(how, torch.maximum(un, cl))
    loss = per.mean() if how == "unmasked" else S_sft.masked_mean(per, mask)
    frac = S_sft.masked_mean(((cl >= un) if how == "ties-clipped" else (cl > un)).float(), mask)
    return loss, frac


variants(
    "ppo_policy_loss",
    _pg,
    [
        ("min instead of max", "min", "LARGER"),
        ("unclipped term only", "unclipped", "LARGER"),
        ("clipped term only", "clipped", "LARGER"),
        ("mean over padding too", "unmasked", "response tokens only"),
        ("clip fraction counts ties", "ties-clipped", "strictly larger"),
    ],
)


# 5.4 ppo_value_loss
def _vl(values, old_values, returns, mask, clip_range=0.2, *, bug):
    how = bug
    v_clip = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    a, b = (values - returns) ** 2, (v_clip - returns) ** 2
    per = {"min": torch.minimum(a, b), "unclipped": a}.get(how, torch.maximum(a, b))
    return (1.0 if how == "no-half" else 0.5) * S_sft.masked_mean(per, mask)


variants(
    "ppo_value_loss",
    _vl,
    [
        ("no 0.5", "no-half", "times 0.5"),
        ("min instead of max", "min", "LARGER"),
        ("unclipped only", "unclipped", "LARGER"),
    ],
)


# 5.5 entropy_from_logits
@wrong("entropy_from_logits", "-sum p log p (nan for large logits)", "not finite")
def _w_entropy_naive(logits):
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum(-1)


wrong("entropy_from_logits", "sign flipped", ">= 0")(lambda logits: -S_ppo.entropy_from_logits(logits))
wrong("entropy_from_logits", "sums over every dimension", "last dimension")(
    lambda logits: S_ppo.entropy_from_logits(logits).sum()
)


# 5.6 ppo_minibatch_loss
def _mb(logits, values, batch, clip_range=0.2, cliprange_value=0.2, vf_coef=0.1, entropy_coef=0.0, *, bug):
    loss, stats = S_ppo.ppo_minibatch_loss(
        logits, values, batch, clip_range, cliprange_value, vf_coef, entropy_coef
    )
    if bug == "entropy-penalty":
        loss = loss + 2 * entropy_coef * S_sft.masked_mean(S_ppo.entropy_from_logits(logits), batch["mask"])
    if bug == "no-vf-coef":
        loss = loss + (1 - vf_coef) * S_ppo.ppo_value_loss(
            values, batch["old_values"], batch["returns"], batch["mask"], cliprange_value
        )
    if bug in ("kl-reversed", "kl-k1"):
        logp = S_kl.token_logprobs(logits, batch["response_ids"]).detach()
        args = (
            (logp, batch["old_logprobs"], "k3")
            if bug == "kl-reversed"
            else (batch["old_logprobs"], logp, "k1")
        )
        stats = {**stats, "approx_kl": S_sft.masked_mean(S_kl.kl_estimate(*args), batch["mask"])}
    return loss, stats


variants(
    "ppo_minibatch_loss",
    _mb,
    [
        ("entropy as a penalty", "entropy-penalty", "BONUS"),
        ("ignores vf_coef", "no-vf-coef", "vf_coef"),
        ("approx_kl = KL(current || old)", "kl-reversed", "KL(old || current)"),
        ("approx_kl with k1", "kl-k1", "k3"),
    ],
)


# 6.1 group_advantages
def _ga(rewards, group_size, scale="group", eps=1e-4, *, bug):
    if rewards.numel() % group_size or group_size < 2 or scale not in ("group", "batch", "none"):
        raise ValueError("bad input")
    g = rewards.view(group_size, -1).t() if bug == "interleaved" else rewards.view(-1, group_size)
    centre = rewards.mean() if bug == "batch-mean" and scale == "batch" else g.mean(-1, keepdim=True)
    adv = g - centre
    e = 0.0 if bug == "no-eps" else eps
    if scale == "group":
        adv = adv / (g.std(-1, unbiased=bug != "population", keepdim=True) + e)
    elif scale == "batch":
        adv = adv / (rewards.std(unbiased=bug != "population") + e)
    return adv.t().reshape(-1) if bug == "interleaved" else adv.reshape(-1)


variants(
    "group_advantages",
    _ga,
    [
        ("population std", "population", "Bessel"),
        ("interleaved groups", "interleaved", "one prompt's group"),
        ("no eps", "no-eps", "eps"),
        ("'batch' subtracts the batch mean", "batch-mean", "GROUP's mean"),
    ],
)


# 6.2 grpo_loss
def _gl(
    logp,
    old_logp,
    ref_logp,
    advantages,
    mask,
    clip_eps=0.2,
    beta=0.04,
    loss_type="grpo",
    max_completion_length=None,
    *,
    bug,
):
    if loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo") or advantages.shape != logp.shape[:1]:
        raise ValueError("bad input")
    ratio = torch.exp(logp - old_logp)
    A = advantages.unsqueeze(-1)
    un, cl = ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A
    per = -{"clipped": cl, "unclipped": un}.get(bug, torch.minimum(un, cl))
    if beta != 0:
        per = per + beta * (
            S_kl.kl_estimate(ref_logp, logp, "k3")
            if bug == "kl-sign"
            else S_kl.kl_estimate(logp, ref_logp, "k3")
        )
    m = mask.to(per.dtype)
    if loss_type == "grpo" and bug == "bnpo":
        loss_type = "bnpo"
    if loss_type == "grpo":
        return per.mean(-1).mean() if bug == "unmasked" else S_sft.masked_mean(per, m, dim=-1).mean()
    if loss_type in ("bnpo", "dapo"):
        return S_sft.masked_mean(per, m)
    L = (
        mask.shape[-1]
        if (max_completion_length is None or bug == "ignore-max-len")
        else max_completion_length
    )
    return (per * m).sum() / (logp.shape[0] * L)


variants(
    "grpo_loss",
    _gl,
    [
        ("'grpo' reduced like 'bnpo'", "bnpo", "per sequence first"),
        ("clipped term alone, without the min", "clipped", "MINIMUM"),
        ("unclipped term alone", "unclipped", "MINIMUM"),
        ("KL with log r = logp - ref_logp", "kl-sign", "ref_logp - logp"),
        ("'dr_grpo' ignores max_completion_length", "ignore-max-len", "max_completion_length"),
        ("'grpo' averages over padding too", "unmasked", "ITS completion tokens"),
    ],
)


# 6.3 grpo_step
def _gs(
    model,
    optimizer,
    rollout,
    advantages,
    old_logp=None,
    ref_logp=None,
    *,
    clip_eps=0.2,
    beta=0.04,
    loss_type="grpo",
    max_completion_length=None,
    max_grad_norm=1.0,
    temperature=1.0,
    bug=None,
):
    from course_lib.core.sampling import completion_logits

    ids = rollout.completion_ids
    if advantages.shape != ids.shape[:1]:
        raise ValueError("advantages")
    model.train()
    logp = S_kl.token_logprobs(
        completion_logits(model, rollout, 1.0 if bug == "no-temperature" else temperature), ids
    )
    if old_logp is None or bug == "ignore-old":
        old_logp = logp if bug == "not-detached" else logp.detach()
    loss = S_grpo.grpo_loss(
        logp,
        old_logp,
        ref_logp,
        advantages,
        rollout.completion_mask,
        clip_eps,
        beta,
        loss_type,
        max_completion_length,
    )
    optimizer.zero_grad()
    loss.backward()
    if bug == "no-clip":
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    else:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        if bug == "norm-after":
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    optimizer.step()
    return {"loss": loss.item(), "grad_norm": float(norm), "logp": logp.detach()}


variants(
    "grpo_step",
    _gs,
    [
        ("ignores old_logp", "ignore-old", "given"),
        ("ignores temperature", "no-temperature", "temperature"),
        ("old_logp = logp, not detached (zero gradient)", "not-detached", "ZERO"),
        ("no gradient clipping", "no-clip", "clipped to max_grad_norm"),
        ("grad_norm after clipping", "norm-after", "AFTER clipping"),
    ],
)


# 7.1 sequence_logprobs
def _slp(logits, labels, mask, average=False, *, bug):
    if labels.shape != logits.shape[:2]:
        raise ValueError("shapes")
    if bug == "lookup-100":
        tok = F.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    else:
        tok = -_nll(logits, labels, mask)
    m = torch.ones_like(tok) if bug == "unmasked" else mask.to(tok.dtype)
    avg = {"always-average": True, "never-average": False}.get(bug, average)
    return (tok * m).sum(-1) / (m.sum(-1) if avg else 1.0)


variants(
    "sequence_logprobs",
    _slp,
    [
        ("always averages", "always-average", "SUM"),
        ("ignores average", "never-average", "ITS number"),
        ("sums over padding too", "unmasked", "padding excluded"),
        ("looks up the -100 labels", "lookup-100", "-100"),
    ],
)


# 7.2 dpo_loss
def _dpo(
    pi_chosen,
    pi_rejected,
    ref_chosen,
    ref_rejected,
    beta=0.1,
    loss_type="sigmoid",
    label_smoothing=0.0,
    *,
    bug,
):
    pc, pr, rc, rr, ls = pi_chosen, pi_rejected, ref_chosen, ref_rejected, label_smoothing
    losses, c, r = S_dpo.dpo_loss(pc, pr, rc, rr, beta, loss_type, ls)  # the input checks
    h = (pc - pr) - (rc - rr)
    if bug == "h-sign":
        h = -h
    if loss_type == "sigmoid":
        sign = -1 if bug == "ls-sign" else 1
        losses = -(1 - ls) * F.logsigmoid(beta * h) - sign * ls * F.logsigmoid(-beta * h)
        if bug == "beta-outside":
            losses = -beta * F.logsigmoid(h)
    elif loss_type == "ipo":
        losses = (beta * h - 1 / (2 * beta)) ** 2 if bug == "ipo-beta-h" else (h - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - (h if bug == "hinge-no-beta" else beta * h))
    if bug == "rewards-no-beta":
        c, r = (pc - rc).detach(), (pr - rr).detach()
    return losses, c, r


variants(
    "dpo_loss",
    _dpo,
    [
        ("beta outside the sigmoid", "beta-outside", "INSIDE"),
        ("h = reference margin - policy margin", "h-sign", "policy's margin"),
        ("label-smoothing term with a plus sign", "ls-sign", "SWAPPED"),
        ("ipo with beta * h", "ipo-beta-h", "not beta*h"),
        ("hinge without beta", "hinge-no-beta", "relu(1 - beta * h)"),
        ("rewards without beta", "rewards-no-beta", "beta times"),
    ],
)


# 7.3 dpo_batch_loss
def _dpob(model, batch, beta=0.1, loss_type="sigmoid", label_smoothing=0.0, average=False, *, bug):
    if batch["input_ids"].shape[0] % 2 or batch["ref_logps"].shape != batch["input_ids"].shape[:1]:
        raise ValueError("bad batch")
    logps = S_dpo.sequence_logprobs(
        model(input_ids=batch["input_ids"]).logits,
        batch["labels"],
        batch["completion_mask"],
        False if bug == "ignore-average" else average,
    )
    ref = batch["ref_logps"]

    def split(x, interleave):
        return (x[0::2], x[1::2]) if interleave else x.chunk(2)

    pc, pr = split(logps, bug == "interleaved")
    rc, rr = split(ref, bug in ("interleaved", "ref-interleaved"))
    if bug == "swapped":
        pc, pr, rc, rr = pr, pc, rr, rc
    losses, c, r = S_dpo.dpo_loss(pc, pr, rc, rr, beta, loss_type, label_smoothing)
    return losses.mean(), {"chosen_rewards": c, "rejected_rewards": r, "logps": logps.detach()}


variants(
    "dpo_batch_loss",
    _dpob,
    [
        ("pairs as interleaved rows", "interleaved", "row B + i"),
        ("ignores average", "ignore-average", "average"),
        ("chosen and rejected swapped", "swapped", "chosen"),
        ("ref_logps split differently from the policy", "ref-interleaved", "alike"),
    ],
)


# 9.1 think_format_reward
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _think(completion, *, bug):
    text = completion if bug == "no-strip" else completion.strip()
    flags = 0 if bug == "no-dotall" else re.DOTALL
    pat = r"<think>(.*)</think>\s*<answer>(.*)</answer>"
    m = re.search(pat, text, flags) if bug == "search" else re.fullmatch(pat, text, flags)
    if m is None:
        return False if bug == "bool" else 0.0
    parts = m.groups()
    ok = all(
        (bug == "empty-ok" or p.strip()) and (bug == "tags-ok" or not any(tg in p for tg in _TAGS))
        for p in parts
    )
    if bug == "bool":
        return ok
    return 1.0 if ok else 0.0


variants(
    "think_format_reward",
    _think,
    [
        ("re.search: text around the blocks accepted", "search", "WHOLE"),
        ("empty think / answer accepted", "empty-ok", "non-empty"),
        ("tags inside the blocks accepted", "tags-ok", "no tag inside"),
        ("wildcard does not match newlines", "no-dotall", "span lines"),
        ("outer whitespace not stripped", "no-strip", "whitespace"),
        ("returns a bool", "bool", "plain Python float"),
    ],
)


# 9.2 answer_reward
def _answer(completion, answer, *, bug):
    pat = {"greedy": r"<answer>(.*)</answer>", "unclosed-ok": r"<answer>(.*?)(?:</answer>|$)"}.get(
        bug, r"<answer>(.*?)</answer>"
    )
    blocks = re.findall(pat, completion, 0 if bug == "no-dotall" else re.DOTALL)
    if not blocks:
        return 0.0
    got = blocks[0] if bug == "first" else blocks[-1]
    want = str(answer).strip()
    if bug == "substring":
        return 1.0 if want in got else 0.0
    return 1.0 if (got if bug == "no-strip" else got.strip()) == want else 0.0


variants(
    "answer_reward",
    _answer,
    [
        ("the FIRST answer block", "first", "LAST"),
        ("a greedy block spans from the first <answer> to the last </answer>", "greedy", "LAST"),
        ("wildcard does not match newlines", "no-dotall", "span lines"),
        ("substring match", "substring", "exact"),
        ("block contents not stripped", "no-strip", "stripped"),
        ("an unclosed block counts", "unclosed-ok", "both tags"),
    ],
)


# 9.3 sequence_log_ratio
def _slr(logp, old_logp, mask, *, bug):
    S_rlvr.sequence_log_ratio(logp, old_logp, mask)  # the input checks
    d = old_logp - logp if bug == "sign" else logp - old_logp
    m = torch.ones_like(d) if bug == "unmasked" else mask.to(d.dtype)
    den = {"sum": 1.0, "by-T": float(mask.shape[-1])}.get(bug, m.sum(-1))
    s = (d * m).sum(-1) / den
    return s.exp() if bug == "ratio" else s


variants(
    "sequence_log_ratio",
    _slr,
    [
        ("summed, not length-normalised", "sum", "ITS number"),
        ("divided by T, not the row's length", "by-T", "ITS number"),
        ("padding counted", "unmasked", "ITS completion tokens"),
        ("the ratio instead of its log", "ratio", "log of the geometric mean"),
        ("old_logp - logp", "sign", "logp - old_logp"),
    ],
)


# 9.4 rlvr_policy_loss
def _rpl(
    logp,
    old_logp,
    advantages,
    mask,
    eps_low=0.2,
    eps_high=0.2,
    level="token",
    loss_type="grpo",
    ref_logp=None,
    beta=0.0,
    max_completion_length=None,
    *,
    bug,
):
    S_rlvr.rlvr_policy_loss(
        logp, old_logp, advantages, mask, eps_low, eps_high, level, loss_type, ref_logp, beta
    )
    if bug == "symmetric":
        eps_high = eps_low
    if bug == "swapped":
        eps_low, eps_high = eps_high, eps_low
    m = mask.to(logp.dtype)
    if level == "token" or bug == "level-ignored":
        log_w = logp - old_logp
    else:
        log_w = S_rlvr.sequence_log_ratio(logp, old_logp, mask)
        if bug == "seq-sum":
            log_w = log_w * m.sum(-1)
        log_w = log_w.unsqueeze(-1)
    rho = torch.exp(log_w)
    A = advantages.unsqueeze(-1)
    if loss_type == "cispo":
        cap = 1 + eps_high if bug == "cispo-1+eps" else eps_high
        w = torch.clamp(rho, max=cap)
        per = -(w if bug == "cispo-attached" else w.detach()) * A * logp
    else:
        per = -torch.minimum(rho * A, torch.clamp(rho, 1 - eps_low, 1 + eps_high) * A)
    if beta != 0:
        args = (ref_logp, logp) if bug == "kl-sign" else (logp, ref_logp)
        per = per + beta * S_kl.kl_estimate(*args, "k3")
    per = per.expand_as(logp)
    if loss_type == "grpo" or (loss_type == "cispo" and bug == "cispo-grpo"):
        loss = S_sft.masked_mean(per, m, dim=-1).mean()
    elif bug == "seq-dapo-rows" and level == "sequence":
        loss = per[:, 0].mean()
    elif loss_type in ("dapo", "cispo"):
        loss = S_sft.masked_mean(per, m)
    else:
        L = max_completion_length or mask.shape[-1]
        loss = (per * m).sum() / (logp.shape[0] * L)
    with torch.no_grad():
        if loss_type == "cispo":
            low, high = torch.zeros_like(rho), ((rho > eps_high) & (A > 0)).to(rho.dtype)
        elif bug == "clip-any-sign":
            low = (rho < 1 - eps_low).to(rho.dtype) * torch.ones_like(A)
            high = (rho > 1 + eps_high).to(rho.dtype) * torch.ones_like(A)
        else:
            low = ((rho < 1 - eps_low) & (A < 0)).to(rho.dtype)
            high = ((rho > 1 + eps_high) & (A > 0)).to(rho.dtype)

        def mean(x):
            x = x.expand_as(logp)
            w = torch.ones_like(x) if bug == "stats-unmasked" else m
            if level == "sequence" and bug != "stats-by-token":
                x, w = x[:, :1], torch.ones_like(x[:, :1])
            return ((x * w).sum() / w.sum().clamp(min=1.0)).item()

        stats = {"clip_ratio_low": mean(low), "clip_ratio_high": mean(high), "mean_ratio": mean(rho)}
    return loss, stats


variants(
    "rlvr_policy_loss",
    _rpl,
    [
        ("symmetric clip: eps_high ignored", "symmetric", "clip-higher"),
        ("eps_low and eps_high swapped", "swapped", "LOWER bound 1 - eps_low acts where A < 0"),
        ("level ignored: always token ratios", "level-ignored", "ONE ratio per completion"),
        ("sequence ratio not length-normalised", "seq-sum", "length-normalised"),
        ("sequence-level 'dapo' averaged over rows", "seq-dapo-rows", "each of its tokens"),
        ("cispo: gradient through the weight", "cispo-attached", "NO gradient"),
        ("cispo: cap at 1 + eps_high", "cispo-1+eps", "cap"),
        ("cispo reduced like 'grpo'", "cispo-grpo", "reduced like 'dapo'"),
        ("KL with log r = logp - ref_logp", "kl-sign", "ref_logp - logp"),
        ("stats counted over padding", "stats-unmasked", "padding"),
        ("sequence-level stats counted per token", "stats-by-token", "over the B completions"),
        ("clipped tokens counted whatever the advantage's sign", "clip-any-sign", "the one the min keeps"),
    ],
)


# 9.5 dynamic_sampling_mask
def _dsm(rewards, group_size, *, bug):
    S_rlvr.dynamic_sampling_mask(rewards, group_size)  # the input checks
    if bug == "batch":
        return (rewards.max() != rewards.min()).repeat(rewards.numel())
    if bug == "interleaved":
        g = rewards.view(group_size, -1).t()
        return (g.amax(-1) != g.amin(-1)).repeat(group_size)
    g = rewards.view(-1, group_size)
    varied = g.amax(-1) != g.amin(-1)
    if bug == "inverted":
        varied = ~varied
    if bug == "per-group":
        return varied
    out = varied.repeat_interleave(group_size)
    return out.float() if bug == "float" else out


variants(
    "dynamic_sampling_mask",
    _dsm,
    [
        ("decided over the whole batch", "batch", "GROUP"),
        ("interleaved groups", "interleaved", "contiguous"),
        ("keeps the groups that agree", "inverted", "not all equal"),
        ("one flag per group", "per-group", "one flag per completion"),
        ("float flags", "float", "bool tensor"),
    ],
)


# Bugs only the visible checks can see: the grader's cases start each step from a fresh model (no
# stale gradient, dropout off) and compare values and the loss's gradient, not `requires_grad` of
# logged statistics or float-vs-0-d-tensor.
VISIBLE_ONLY: list[tuple[str, str, object, str]] = [
    (
        "sft_train_step",
        "forgets zero_grad",
        lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
            model, batch, optimizer, max_grad_norm, order="none"
        ),
        "stale gradient",
    ),
    ("grpo_step", "forgets zero_grad", None, "stale gradient"),
    ("dpo_loss", "rewards not detached", None, "no gradient"),
    (
        "preference_accuracy",
        "returns a tensor",
        lambda r_chosen, r_rejected: S_rm.preference_accuracy(r_chosen, r_rejected) * torch.ones(()),
        "float",
    ),
]


def _grpo_step_no_zero_grad(model, optimizer, rollout, advantages, old_logp=None, ref_logp=None, **kw):
    optimizer.zero_grad = lambda *a, **k: None  # a student who never clears gradients
    return _gs(model, optimizer, rollout, advantages, old_logp, ref_logp, **kw)


def _dpo_loss_attached(
    pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta=0.1, loss_type="sigmoid", label_smoothing=0.0
):
    losses, _, _ = S_dpo.dpo_loss(
        pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, loss_type, label_smoothing
    )
    return losses, beta * (pi_chosen - ref_chosen), beta * (pi_rejected - ref_rejected)


VISIBLE_ONLY[1] = ("grpo_step", "forgets zero_grad", _grpo_step_no_zero_grad, "stale gradient")
VISIBLE_ONLY[2] = ("dpo_loss", "rewards not detached", _dpo_loss_attached, "no gradient")


def _rlvr_stats_tensors(*args, **kwargs):
    loss, stats = S_rlvr.rlvr_policy_loss(*args, **kwargs)
    return loss, {k: torch.tensor(v) for k, v in stats.items()}  # 0-d tensors, not Python floats


VISIBLE_ONLY.append(("rlvr_policy_loss", "stats as 0-d tensors", _rlvr_stats_tensors, "plain Python float"))


def _wid(w):
    return f"{w[0]}: {w[1]}"


def test_every_exercise_has_wrong_implementations():
    names = {w[0] for w in WRONG}
    missing = [e.name for e in EXERCISES if e.name not in names]
    assert not missing, f"add plausible wrong implementations for {missing} to tests/test_checks.py"


@pytest.mark.parametrize("w", WRONG + VISIBLE_ONLY, ids=_wid)
def test_wrong_implementation_fails_with_expected_and_hint(w, monkeypatch):
    name, label, fn, phrase = w
    ex = BY_NAME[name]
    course_lib.use_solutions(True)  # dependencies (e.g. sft_loss inside sft_train_step) are right
    monkeypatch.setattr(importlib.import_module(f"course_lib.{ex.module}"), name, fn)
    with pytest.raises(AssertionError) as info:
        checks.check(name)
    msg = str(info.value)
    assert "expected" in msg and "got" in msg and "hint" in msg, msg
    assert f"exercise {ex.number}" in msg, msg
    assert phrase in msg, f"{label}: the hint should name the property ({phrase!r}):\n{msg}"


def test_no_hint_spells_out_the_answer():
    """Tier-1 hints name a property, never the one-line code that solves the exercise."""
    answers = [
        "re.fullmatch(FORMAT_PATTERN",
        "get_scorer().positive_probability(texts)",
        "len(set(words)) / len(words)",
        ".gather(-1, tokens.unsqueeze(-1))",
        "text.lower().split()",
        "rewards.view(-1, group_size)",
        "chunk(2)",
        "logp.detach()",
        "logsumexp(logits) - sum(p * logits)",
        "F.log_softmax",
    ]
    texts = [
        node.value
        for p in CHECK_FILES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    leaked = [a for a in answers if any(a in s for s in texts)]
    assert not leaked, f"hints that give the answer away: {leaked}"


def _message_of(monkeypatch, name: str, label_part: str, hint: int = 1) -> str:
    """The failure message of check(name) on the WRONG variant whose label contains label_part."""
    course_lib.use_solutions(True)
    fn = next(w[2] for w in WRONG if w[0] == name and label_part in w[1])
    monkeypatch.setattr(importlib.import_module(f"course_lib.{BY_NAME[name].module}"), name, fn)
    with pytest.raises(AssertionError) as info:
        checks.check(name, hint=hint)
    return str(info.value)


def test_second_hint_tier_only_on_request(monkeypatch):
    first = _message_of(monkeypatch, "grpo_loss", "without the min")
    second = _message_of(monkeypatch, "grpo_loss", "without the min", hint=2)
    assert "hint 2:" not in first and "check('grpo_loss', hint=2)" in first, first
    assert "hint 2:" in second and "rho = 1.5, A = -1" in second, second
    with pytest.raises(ValueError, match="hint must be 1 or 2"):
        checks.check("grpo_loss", hint=3)


def test_integer_tensors_print_as_integers(monkeypatch):
    msg = _message_of(monkeypatch, "tokenize_prompt_and_completion", "mask not shifted")
    assert "got:      [[0, 0, 1], [0, 1, 1]]" in msg, msg


def test_a_component_crash_names_the_component_not_the_checker(monkeypatch):
    msg = _message_of(monkeypatch, "combine_rewards", "keyword")
    assert "answer_value" in msg and "<locals>" not in msg and "_combine_rewards" not in msg, msg


def test_failure_message_names_case_expected_and_got(monkeypatch):
    msg = _message_of(monkeypatch, "kl_estimate", "logp - ref_logp")
    assert "case 'k1 = -log r'" in msg and "[1.0, -1.0, 0.0]" in msg and "[-1.0, 1.0, 0.0]" in msg, msg


@pytest.mark.parametrize(
    "name, label, names_the_mistake",
    [
        ("tokenize_prompt_and_completion", "appends EOS", "an EOS token (id 1) appears"),
        ("tokenize_prompt_and_completion", "joined string", "tokenized as ONE string"),
        ("grpo_step", "not detached", "the gradient is ZERO"),
    ],
)
def test_hints_name_the_mistake_not_a_neighbouring_one(monkeypatch, name, label, names_the_mistake):
    """These mistakes get a hint that names them, not "input_ids drop the LAST position" or a
    zero_grad hint, which would send the student to the wrong fix."""
    msg = _message_of(monkeypatch, name, label)
    assert names_the_mistake in msg and "LAST position" not in msg and "zero_grad" not in msg, msg


def test_a_crash_inside_the_student_function_becomes_a_failed_case(monkeypatch):
    def broken(logp, ref_logp, kind="k3"):
        return logp.view(7)  # RuntimeError: shape '[7]' is invalid

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


def _logsig(x):
    return -math.log1p(math.exp(-x))


LITERALS = [  # (check file, the literal written there, the same value derived from first principles)
    ("kl", "0.1438410", 0.5 * math.log(4 / 3)),  # exact_kl two coins
    ("kl", "0.3678794", math.exp(-1) - 1 + 1),  # k3 at log r = -1
    ("sft", "0.7890412", (math.log(2) + math.log(4 / 3) + math.log(4)) / 3),  # sft_loss token mean
    ("reward_model", "0.4100376", -(_logsig(2.0) + _logsig(0.0)) / 2),  # Bradley-Terry
    ("reward_model", "0.8132617", -(_logsig(1.0) + _logsig(-1.0)) / 2),  # margin 1
    ("ppo", "0.02875", -0.05 + 0.45 * (-0.05 + 0.45 * 0.5)),  # GAE A_0
    ("ppo", "0.5623351", -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),  # entropy (1/4, 3/4)
    ("grpo", "1.1546506", (4 - 4 / 3) / (math.sqrt(16 / 3) + 1e-4)),  # group advantage
    (
        "grpo",
        "1.4031215",
        math.sqrt(0.3125**2 * 2 + 0.5625**2 + 1.1875**2 + 3 * 0.0625**2 + 0.1875**2),
    ),  # grpo_step grad norm
    ("dpo", "0.4740770", -_logsig(0.5)),  # DPO, beta h = 0.5
    ("rlvr", "-0.18833333", ((-1.25 - 1.28 - 1) / 3 + 0.8) / 2),  # clip-higher 0.2 / 0.28
]


@pytest.mark.parametrize("module, literal, derived", LITERALS, ids=[f"{m}-{v}" for m, v, _ in LITERALS])
def test_literals_of_the_check_files_match_hand_arithmetic(module, literal, derived):
    """The expected values written in course_lib/checks/<module>.py, re-derived here."""
    src = (Path(checks.__file__).parent / f"{module}.py").read_text()
    assert literal in src, f"{literal} no longer appears in course_lib/checks/{module}.py: update LITERALS"
    assert math.isclose(float(literal), derived, abs_tol=1e-6), (literal, derived)


def test_a_result_of_the_wrong_structure_fails_clearly(monkeypatch):
    def loss_only(logp, old_logp, advantages, mask, clip_eps=0.2):
        return S_ppo.ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps)[0]

    course_lib.use_solutions(True)
    monkeypatch.setattr(course_lib.ppo, "ppo_policy_loss", loss_only)
    with pytest.raises(AssertionError, match=r"expected: a tuple of 2 values"):
        checks.check("ppo_policy_loss")
