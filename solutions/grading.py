"""Hidden tests (instructor only, never shipped): the student's function vs the solution on
seeded random cases, value AND gradients, with partial credit.

* :func:`make_cases` (name, seed) -> picklable cases (several shapes, padded masks, bad input).
  The rule for the cases of every exercise (tests/exercises/test_trivial_answers.py): no trivial answer
  -- a constant 0 or 1 (zeros / ones of the expected shape), an echo of an input, ``0.0`` or
  ``None`` -- passes more than ``TRIVIAL_MAX_PASS`` (a tenth) of its cases, so expected answers
  are varied: a reward case holds completions whose rewards differ (an ``each`` case calls the
  function once per input), a loss case has a non-zero value and gradient.
* :func:`compare` (expected, got) -> (ok, message) for two results of
  :func:`course_instructor.grading.caserun.run_case`.
* :func:`hidden_check` (name) runs course_lib's *current* function and the solution in-process.
  Notebook hidden-test cells call it; the autograder does NOT trust it (it re-runs the same cases
  in a sandbox, see course_instructor/grading/autograde.py).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import random
import textwrap
from collections.abc import Callable

import torch

from course_instructor.grading import caserun
from course_lib.core import registry as exercises

DEFAULT_SEED = 20240601
RTOL, ATOL = 1e-4, 1e-5  # values (float32 arithmetic, different op orders)
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-5  # gradients
TRIVIAL_MAX_PASS = 0.1  # the most a trivial answer (constant, echo, None) may pass of any exercise's cases


# --- helpers ----------------------------------------------------------------------------------
class _Gen:
    def __init__(self, name: str, seed: int):
        s = (hash_str(name) * 1_000_003 + int(seed)) % (2**31)
        self.g = torch.Generator().manual_seed(s)
        self.rng = random.Random(s)

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def logp(self, *shape):  # plausible token log-probs (<= 0)
        return -torch.rand(*shape, generator=self.g) * 4 - 0.01

    def mask(self, B, T, min_len=1):  # right padded, every row >= min_len tokens
        lens = torch.randint(min_len, T + 1, (B,), generator=self.g)
        lens[0] = T  # one full row
        return (torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)).long()

    def int_(self, lo, hi):
        return self.rng.randint(lo, hi)


def hash_str(s: str) -> int:
    h = 0
    for ch in s:
        h = (h * 131 + ord(ch)) % (2**31)
    return h


_WORDS = (
    "the movie was great fun and i loved it terrible boring plot acting bad good "
    "wonderful awful story film cast music"
).split()


def _sentence(gen: _Gen, n: int) -> str:
    return " ".join(gen.rng.choice(_WORDS) for _ in range(n))


def _case(
    cid,
    *args,
    grad=(),
    grad_seed=0,
    then_call=None,
    report_params=False,
    grad_model=False,
    report_kinds=False,
    **kwargs,
) -> dict:
    c = {
        "id": cid,
        "args": list(args),
        "kwargs": kwargs,
        "grad": list(grad),
        "grad_seed": grad_seed,
        "report_params": report_params,
        "grad_model": grad_model,
    }
    if then_call is not None:
        c["then_call"] = then_call
    if report_kinds:
        c["report_kinds"] = True
    return c


def _each(cid, *calls, report_kinds=False) -> dict:
    """A case that calls the function once per ``(args, kwargs)`` pair and compares the list of
    results: inputs with different answers in one case (a reward of 1 next to a reward of 0), so
    that no constant answer passes it."""
    c = _case(cid, report_kinds=report_kinds)
    c["each"] = [{"args": list(a), "kwargs": dict(k)} for a, k in calls]
    return c


# --- case makers, one per exercise --------------------------------------------------------------
def _format_reward(g):
    good = [
        "Question: What is 2 + 3?\nAnswer: 5",
        "  Question: who wrote it?\nAnswer: a cat  ",
        "Question: x\nAnswer: y",
    ]
    bad = [
        "Question: What is 2 + 3?\nAnswer: 5\nQuestion: more",
        "Answer: 5",
        "Question: \nAnswer: 5",
        "Question: why?\nAnswer:",
        "the movie was great",
        "",
        "Question: a\n\nAnswer: b",
    ]
    pool = good + bad
    cases = []
    for i in range(3):
        comps = [g.rng.choice(good), g.rng.choice(bad)] + [g.rng.choice(pool) for _ in range(4)]
        g.rng.shuffle(comps)  # a good and a bad one in every mix: no constant passes
        cases.append(_case(f"mix{i}", comps, prompts=["p"] * 6))
    cases.append(
        _case(
            "chat", [[{"role": "assistant", "content": good[0]}], [{"role": "assistant", "content": bad[0]}]]
        )
    )
    return cases


def _correctness_reward(g):
    cases = []
    for i in range(3):
        n = 5
        answers = [g.int_(-50, 200) for _ in range(n)]
        comps = []
        kinds = [g.int_(0, 1), g.int_(2, 3)] + [g.int_(0, 3) for _ in range(n - 2)]
        g.rng.shuffle(kinds)  # right (0, 1) and wrong (2, 3) answers in every case
        for a, kind in zip(answers, kinds):
            comps.append(
                [f"The answer is {a}", f"{a + 1} no wait {a}", f"{a} then {a + 3}", "no number here"][kind]
            )
        ans = [str(a) if i == 1 else (f"so ... #### {a}" if i == 2 else a) for a in answers]
        cases.append(_case(f"answers{i}", comps, ans, completion_ids=[[1, 2]] * n))
    cases.append(_case("kwarg", ["x = 12", "-7", "7"], answer=[12, -7, -7]))
    cases.append(
        _case(
            "commas",
            ["about 1,000 people", "it costs 12,500.", "3 then 2,000", "1,000 or 1,001"],  # commas deleted
            ["1000", 12500, "so ... #### 2,000", 1000],
        )
    )
    cases.append(_case("length-mismatch", ["1", "2"], [1]))
    return cases


def _sentiment_reward(g):
    return [
        _case(f"texts{i}", [_sentence(g, g.int_(1, 12)) for _ in range(5)], prompts=["p"] * 5)
        for i in range(2)
    ] + [_case("empty", [""])]


def _repetition_penalty(g):
    cases = []
    for i in range(3):
        comps = [_sentence(g, g.int_(1, 15)) for _ in range(5)] + ["Great great GREAT great"]
        cases.append(_case(f"texts{i}", comps))
    cases.append(_case("empty", ["", "one", "one one"]))
    cases.append(
        _case("whitespace", ["great  great\ngreat", "a\tb  a", " lead and trail "])
    )  # any whitespace
    return cases


def _length_penalty(g):
    comps = [_sentence(g, n) for n in (0, 1, 3, 4, 10, 40, 41, 60)]
    return [
        _case("defaults", comps),
        _case("bounds", comps, min_words=2, max_words=10),
        _case("kwargs", comps[:4], answer=[1, 2, 3, 4], max_words=3),
        _case("whitespace", ["a  b  c  d", "a\nb\tc d e", "  a b  "], min_words=2, max_words=4),
    ]


def _exponential_shaping(g):
    t = g.randn(6)
    return [
        _case("list", [float(x) for x in g.randn(5)], 1.0),
        _case("tensor", t, 0.5, grad=[0], grad_seed=3),
        _case("tensor2d", g.randn(3, 4), temperature=2.0),
        _case("bad-temperature", [0.1, 0.2], 0.0),
    ]


def _combine_rewards(g):
    comps = [_sentence(g, g.int_(1, 8)) for _ in range(4)]
    fn = lambda n: {caserun.MARKER: "reward_fn", "name": n}
    return [
        _case("two", [fn("len"), fn("has_a")], [0.5, -2.0], then_call={"args": [comps], "kwargs": {}}),
        _case(
            "kwargs",
            [fn("len"), fn("bonus")],
            [1.0, 3.0],
            then_call={"args": [comps], "kwargs": {"bonus": [1, 0, 2, 5], "prompts": ["p"] * 4}},
        ),
        _case("one", [fn("has_a")], [0.25], then_call={"args": [comps[:2]], "kwargs": {}}),
        _case("mismatch", [fn("len"), fn("has_a")], [1.0]),
        _case("empty", [], []),
    ]


def _reinforce_loss(g):
    # logprobs = summed log-probabilities of whole completions; gradients w.r.t. BOTH inputs: the
    # rewards must get none (compare() fails a gradient where the solution has none)
    cases = []
    for i, (B, baseline) in enumerate([(6, None), (5, "mean"), (4, 0.5), (2, "mean")]):
        cases.append(
            _case(
                f"baseline-{baseline}-B{B}",
                g.logp(B) * 5,
                g.randn(B) + 0.5,
                baseline,
                grad=[0, 1],
                grad_seed=i,
            )
        )
    cases.append(_case("int-baseline", g.logp(3) * 5, g.randn(3), baseline=1, grad=[0, 1]))
    # one completion with the mean baseline: advantage 0, loss 0 (no nan from a B - 1); next to a
    # batch of two, so that the case is no free point for a constant 0
    cases.append(
        _each(
            "baseline-mean-B1",
            ((g.logp(1) * 5, g.randn(1) + 0.5, "mean"), {}),
            ((g.logp(2) * 5, g.randn(2) + 0.5, "mean"), {}),
        )
    )
    cases.append(_case("per-token-logprobs", g.logp(2, 3), g.randn(2)))  # [B, T]: not summed
    cases.append(_case("shape-mismatch", g.logp(3), g.randn(4)))
    cases.append(_case("unknown-baseline", g.logp(3), g.randn(3), baseline="median"))
    return cases


def _token_logprobs(g):
    cases = []
    for i, (B, T, V) in enumerate([(2, 5, 7), (3, 4, 11), (1, 6, 3)]):
        logits = g.randn(B, T, V, scale=3.0)
        tokens = torch.randint(0, V, (B, T), generator=g.g)
        cases.append(_case(f"shape{B}x{T}x{V}", logits, tokens, grad=[0], grad_seed=i))
    cases.append(_case("bad-shape", g.randn(2, 5, 7), torch.zeros(2, 4, dtype=torch.long)))
    cases.append(
        _case(
            "large-logits",
            g.randn(2, 3, 5, scale=300),  # softmax underflows to 0
            torch.randint(0, 5, (2, 3), generator=g.g),
        )
    )
    return cases


def _kl_estimate(g):
    cases = []
    for i, kind in enumerate(["k1", "k2", "k3"]):
        for shape in [(3, 6), (10,)]:
            cases.append(
                _case(f"{kind}-{shape}", g.logp(*shape), g.logp(*shape), kind=kind, grad=[0, 1], grad_seed=i)
            )
    cases.append(_case("default-kind", g.logp(2, 4), g.logp(2, 4), grad=[0]))
    cases.append(_case("bad-kind", g.logp(3), g.logp(3), kind="k4"))
    cases.append(_case("bad-shape", g.logp(3), g.logp(4), kind="k1"))
    return cases


def _exact_kl(g):
    return [
        _case("2d", g.randn(4, 5, scale=2), g.randn(4, 5, scale=2), grad=[0, 1], grad_seed=1),
        _case("3d", g.randn(2, 3, 8), g.randn(2, 3, 8), grad=[0, 1], grad_seed=2),
        _case("large-logits", g.randn(3, 6, scale=40), g.randn(3, 6, scale=40), grad=[0]),
        _case("same", *_some_rows_equal(g, 4, 5)),
    ]


def _some_rows_equal(g, B, V):
    """p and q logits [B, V] with rows 0 and 2 identical (KL 0), the others not."""
    p, q = g.randn(B, V), g.randn(B, V)
    q[0::2] = p[0::2]
    return p, q


def _kl_penalized_rewards(g):
    cases = []
    for i, (B, T) in enumerate([(3, 6), (4, 5), (1, 4)]):
        cases.append(
            _case(f"padded{B}x{T}", g.randn(B), g.logp(B, T), g.logp(B, T), g.mask(B, T), [0.1, 0.05, 0.0][i])
        )
    m = g.mask(2, 4)
    m[1] = 0
    cases.append(_case("empty-row", g.randn(2), g.logp(2, 4), g.logp(2, 4), m, 0.1))
    return cases


def _tokenize_prompt_and_completion(g):
    tok = {caserun.MARKER: "tokenizer"}
    cases = []
    for i in range(2):
        prompts = [_sentence(g, g.int_(1, 6)) for _ in range(3)]
        comps = [" " + _sentence(g, g.int_(1, 6)) for _ in range(3)]
        cases.append(_case(f"pairs{i}", prompts, comps, tok))
    cases.append(_case("qa", ["Question: What is 2 + 3?\nAnswer:"], [" 5"], tok))
    cases.append(_case("no-space", ["the movie", "Answer:"], ["s were great", "5"], tok))  # tokenized apart
    cases.append(_case("mismatch", ["a", "b"], ["c"], tok))
    return cases


def _masked_mean(g):
    return [
        _case("all", g.randn(3, 5), g.mask(3, 5), grad=[0], grad_seed=1),
        _case("dim-1", g.randn(4, 6), g.mask(4, 6), dim=-1, grad=[0], grad_seed=2),
        _case("dim1", g.randn(2, 3), g.mask(2, 3), 1, grad=[0]),
        _case("float-mask", g.randn(3, 4), g.mask(3, 4).float(), grad=[0]),
        _case("bad-shape", g.randn(3, 4), g.mask(3, 5)),
    ]


def _sft_loss(g):
    cases = []
    for i, (B, T, V) in enumerate([(2, 5, 9), (3, 4, 6)]):
        labels = torch.randint(0, V, (B, T), generator=g.g)
        m = g.mask(B, T)
        labels = torch.where(m.bool(), labels, torch.full_like(labels, -100 if i else 0))
        cases.append(_case(f"padded{i}", g.randn(B, T, V, scale=2), labels, m, grad=[0], grad_seed=i))
    return cases


def _bradley_terry_loss(g):
    return [
        _case("plain", g.randn(6), g.randn(6), grad=[0, 1], grad_seed=1),
        _case("margin-float", g.randn(5, scale=3), g.randn(5), margin=0.5, grad=[0, 1]),
        _case("margin-tensor", g.randn(4), g.randn(4), g.rng.random() * torch.ones(4), grad=[0, 1]),
        _case("large-gap", torch.tensor([-200.0, 150.0, 0.5]), torch.zeros(3), grad=[0]),
        _case("bad-shape", g.randn(3), g.randn(4)),
    ]


def _preference_accuracy(g):
    def pair(n):  # one right and one wrong pair at least: the accuracy is neither 0 nor 1
        a, b = g.randn(n), g.randn(n)
        a[1], a[2] = b[1] + 0.5, b[2] - 0.5
        return a, b

    a, b = pair(8)
    b[0] = a[0]  # a tie counts as wrong (strictly greater)
    return [
        _case("random", a, b),
        _each(
            "all-right-all-wrong",
            ((torch.ones(3), torch.zeros(3)), {}),
            ((torch.zeros(3), torch.ones(3)), {}),
        ),
        _case("returns-float", *pair(5), report_kinds=True),  # a Python float, not a tensor
        _case("bad-shape", g.randn(3), g.randn(2)),
    ]


def _last_token_pool(g):
    return [
        _case("2d", g.randn(3, 5), g.mask(3, 5), grad=[0]),
        _case("3d", g.randn(4, 6, 2), g.mask(4, 6), grad=[0], grad_seed=1),
        _case("empty-row", g.randn(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]])),
    ]


def _compute_gae(g):
    cases = []
    for i, (B, T, gamma, lam) in enumerate([(3, 6, 1.0, 0.95), (2, 5, 0.9, 0.8), (4, 3, 0.99, 1.0)]):
        m = g.mask(B, T)
        cases.append(_case(f"padded{i}", g.randn(B, T) * m, g.randn(B, T) * m, m, gamma, lam))
    m = g.mask(2, 4)
    cases.append(_case("garbage-in-padding", g.randn(2, 4), g.randn(2, 4), m, gamma=1.0, lam=0.9))
    return cases


def _whiten(g):
    return [
        _case("shift", g.randn(3, 5, scale=3) + 2, g.mask(3, 5, 2), grad=[0]),
        _case("no-shift", g.randn(4, 4) - 1, g.mask(4, 4, 2), shift_mean=False, grad=[0], grad_seed=1),
        _case("1d", g.randn(7), torch.tensor([1, 1, 1, 0, 1, 1, 0]), grad=[0]),
    ]


def _ppo_policy_loss(g):
    cases = []
    for i, (B, T, eps) in enumerate([(3, 5, 0.2), (2, 6, 0.1), (4, 4, 0.3)]):
        logp = g.logp(B, T)
        old = logp + g.randn(B, T, scale=0.3)
        cases.append(_case(f"padded{i}", logp, old, g.randn(B, T), g.mask(B, T), eps, grad=[0], grad_seed=i))
    return cases


def _ppo_value_loss(g):
    cases = []
    for i, (B, T, cr) in enumerate([(3, 5, 0.2), (2, 4, 0.5)]):
        old = g.randn(B, T)
        cases.append(
            _case(
                f"padded{i}",
                old + g.randn(B, T, scale=0.5),
                old,
                g.randn(B, T),
                g.mask(B, T),
                cr,
                grad=[0],
                grad_seed=i,
            )
        )
    return cases


def _entropy_from_logits(g):
    return [
        _case("2d", g.randn(3, 7, scale=2), grad=[0]),
        _case("3d", g.randn(2, 4, 5), grad=[0], grad_seed=1),
        _case("peaked", g.randn(2, 6, scale=30), grad=[0]),
    ]


def _group_advantages(g):
    r = g.randn(8)
    same = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    return [
        _case("group", r, 4, grad=[0]),
        _case("group-ties", same, 4, "group"),
        _case("batch", g.randn(6), 3, scale="batch", grad=[0], grad_seed=1),
        _case("none", g.randn(6), 2, scale="none"),
        _case("eps", g.randn(4), 2, eps=0.5),
        _case("not-divisible", g.randn(7), 4),
    ]


def _grpo_loss(g):
    cases = []
    for i, lt in enumerate(["grpo", "bnpo", "dr_grpo", "dapo"]):
        B, T = 4, 5
        logp = g.logp(B, T)
        cases.append(
            _case(
                f"{lt}",
                logp,
                logp + g.randn(B, T, scale=0.2),
                g.logp(B, T),
                g.randn(B),
                g.mask(B, T),
                loss_type=lt,
                grad=[0],
                grad_seed=i,
            )
        )
    B, T = 3, 4
    logp = g.logp(B, T)
    cases.append(
        _case(
            "dr_grpo-maxlen",
            logp,
            logp.clone(),
            g.logp(B, T),
            g.randn(B),
            g.mask(B, T),
            0.1,
            0.0,
            "dr_grpo",
            8,
            grad=[0],
        )
    )
    cases.append(_case("no-ref", logp, logp + 0.1, None, g.randn(B), g.mask(B, T), beta=0.0, grad=[0]))
    cases.append(_case("bad-loss-type", logp, logp, logp, g.randn(B), g.mask(B, T), loss_type="ppo"))
    return cases


def _sequence_logprobs(g):
    cases = []
    for i, avg in enumerate([False, True]):
        B, T, V = 3, 5, 7
        labels = torch.randint(0, V, (B, T), generator=g.g)
        m = g.mask(B, T)
        labels = torch.where(m.bool(), labels, torch.full_like(labels, -100))
        cases.append(
            _case(f"average={avg}", g.randn(B, T, V, scale=2), labels, m, average=avg, grad=[0], grad_seed=i)
        )
    return cases


def _dpo_loss(g):
    cases = []
    for i, (lt, beta, ls) in enumerate(
        [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.1), ("ipo", 0.1, 0.0), ("hinge", 0.2, 0.0)]
    ):
        B = 5
        cases.append(
            _case(
                f"{lt}-{beta}-{ls}",
                *[g.logp(B) * 10 for _ in range(4)],
                beta=beta,
                loss_type=lt,
                label_smoothing=ls,
                grad=[0, 1],
                grad_seed=i,
            )
        )
    cases.append(  # the rewards are statistics: detached, the losses carry the gradient
        _case("detached-rewards", *[g.logp(3) * 10 for _ in range(4)], report_kinds=True, grad=[0])
    )
    cases.append(_case("bad-loss-type", *[g.logp(2) for _ in range(4)], loss_type="kto"))
    return cases


def _model(seed, vocab=32, stale_grad=False):
    """A tiny GPT-2; `stale_grad`: its parameters carry a gradient left from an earlier step."""
    return {caserun.MARKER: "model", "seed": seed, "vocab": vocab, "stale_grad": stale_grad}


def _sgd(lr=0.5):
    return {caserun.MARKER: "optimizer", "lr": lr}


def _ids(g, B, T, V=32):
    return torch.randint(1, V, (B, T), generator=g.g)


def _sft_train_step(g):
    cases = []
    for i, (B, T, clip) in enumerate([(2, 6, 1.0), (3, 5, None), (2, 4, 0.01)]):
        ids = _ids(g, B, T + 1)
        m = g.mask(B, T)
        m[:, 0] = 0  # the first label is a prompt token
        m[0, 1] = 1
        batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "completion_mask": m}
        cases.append(_case(f"step{i}", _model(i), batch, _sgd(), clip, report_params=True))
    cases.append(_case("stale-grad", _model(3, stale_grad=True), batch, _sgd(), None, report_params=True))
    cases.append(_case("missing-key", _model(0), {"input_ids": _ids(g, 2, 3)}, _sgd()))
    return cases


def _ppo_minibatch_loss(g):
    cases = []
    for i, (B, T, V, kw) in enumerate(
        [(2, 5, 6, {}), (3, 4, 5, {"vf_coef": 0.5, "entropy_coef": 0.01, "clip_range": 0.1})]
    ):
        m = g.mask(B, T)
        old_logp = g.logp(B, T)
        batch = {
            "response_ids": torch.randint(0, V, (B, T), generator=g.g),
            "mask": m,
            "old_logprobs": old_logp,
            "old_values": g.randn(B, T),
            "advantages": g.randn(B, T),
            "returns": g.randn(B, T),
        }
        cases.append(
            _case(f"minibatch{i}", g.randn(B, T, V), g.randn(B, T), batch, grad=[0, 1], grad_seed=i, **kw)
        )
    batch = {"response_ids": torch.zeros(2, 3, dtype=torch.long), "mask": torch.ones(2, 3)}
    cases.append(_case("missing-key", g.randn(2, 3, 4), g.randn(2, 3), batch))
    return cases


def _rollout(g, B, P, C, V=32):
    plen = torch.randint(1, P + 1, (B,), generator=g.g)
    pmask = (torch.arange(P).unsqueeze(0) >= (P - plen).unsqueeze(1)).long()  # left padded
    pids = torch.where(pmask.bool(), _ids(g, B, P, V), torch.zeros(B, P, dtype=torch.long))
    cmask = g.mask(B, C)
    cids = torch.where(cmask.bool(), _ids(g, B, C, V), torch.zeros(B, C, dtype=torch.long))
    return {
        caserun.MARKER: "rollout",
        "fields": {
            "prompts": ["p"] * B,
            "texts": ["t"] * B,
            "prompt_ids": pids,
            "prompt_mask": pmask,
            "completion_ids": cids,
            "completion_mask": cmask,
        },
    }


def _grpo_step(g):
    cases = []
    B, P, C = 4, 3, 5
    cases.append(
        _case(
            "on-policy",
            _model(1),
            _sgd(),
            _rollout(g, B, P, C),
            g.randn(B),
            ref_logp=g.logp(B, C),
            report_params=True,
        )
    )
    cases.append(
        _case(
            "old-logp-dapo",
            _model(2),
            _sgd(),
            _rollout(g, B, P, C),
            g.randn(B),
            g.logp(B, C),
            g.logp(B, C),
            loss_type="dapo",
            clip_eps=0.1,
            max_grad_norm=0.05,
            report_params=True,
        )
    )
    cases.append(
        _case(
            "beta0-temperature",
            _model(3),
            _sgd(),
            _rollout(g, 2, 2, 4),
            g.randn(2),
            beta=0.0,
            temperature=0.7,
            report_params=True,
        )
    )
    cases.append(
        _case(
            "stale-grad",
            _model(4, stale_grad=True),
            _sgd(),
            _rollout(g, B, P, C),
            g.randn(B),
            ref_logp=g.logp(B, C),
            report_params=True,
        )
    )
    cases.append(_case("bad-advantages", _model(0), _sgd(), _rollout(g, 2, 2, 3), g.randn(3)))
    return cases


def _dpo_batch_loss(g):
    cases = []
    for i, (B, T, kw) in enumerate(
        [
            (2, 5, {}),
            (3, 4, {"beta": 0.5, "loss_type": "ipo", "average": True}),
            (2, 4, {"loss_type": "hinge", "label_smoothing": 0.0}),
        ]
    ):
        m = g.mask(2 * B, T)
        labels = torch.where(m.bool(), _ids(g, 2 * B, T), torch.full((2 * B, T), -100))
        batch = {
            "input_ids": _ids(g, 2 * B, T),
            "labels": labels,
            "completion_mask": m,
            "ref_logps": g.logp(2 * B) * 5,
        }
        cases.append(_case(f"pairs{i}", _model(i), batch, grad_model=True, **kw))
    batch = {
        "input_ids": _ids(g, 3, 4),
        "labels": _ids(g, 3, 4),
        "completion_mask": torch.ones(3, 4),
        "ref_logps": g.logp(3),
    }
    cases.append(_case("odd-rows", _model(0), batch))
    return cases


# --- unit 09 (course_lib/rlvr.py) ------------------------------------------------------------------
def _think_format_reward(g):
    a, b = g.int_(10, 99), g.int_(10, 99)
    think = f"{a} + {b}: add the ones, carry, add the tens"
    good = {
        "plain": f"<think>{think}</think><answer>{a + b}</answer>",
        "multiline": f"<think>{a} + {b}\nones first\ntens next</think>\n<answer>\n{a + b}\n</answer>",
        "outer-space": f"\n  <think>{think}</think> <answer> {a + b} </answer>\n",
    }
    bad = {
        "after": f"<think>{think}</think><answer>{a + b}</answer> done",
        "before": f"ok <think>{think}</think><answer>{a + b}</answer>",
        "between": f"<think>{think}</think> so <answer>{a + b}</answer>",
        "empty-think": f"<think>\n</think><answer>{a + b}</answer>",
        "empty-answer": f"<think>{think}</think><answer> </answer>",
        "two-answers": f"<think>{think}</think><answer>{a}</answer><answer>{a + b}</answer>",
        "nested": f"<think>{a} <think>{b}</think><answer>{a + b}</answer>",
        "no-think": f"<answer>{a + b}</answer>",
        "no-answer": f"<think>{think}</think>",
        "unclosed": f"<think>{think}</think><answer>{a + b}",
        "empty": "",
    }

    # every case: its completion next to one of the other kind (shuffled), so a reward of 1 and a
    # reward of 0 are both asked for and no constant passes
    def mixed(cid, text, others, report_kinds=False):
        pair = [text, g.rng.choice(list(others.values()))]
        g.rng.shuffle(pair)
        return _each(cid, *(((t,), {}) for t in pair), report_kinds=report_kinds)

    cases = [mixed(f"good-{k}", v, bad) for k, v in good.items()]
    cases += [mixed(f"bad-{k}", v, good) for k, v in bad.items()]
    cases.append(mixed("returns-float", good["plain"], bad, report_kinds=True))
    return cases


def _answer_reward(g):
    n = g.rng.sample(range(-99, 1000), 3)  # three different numbers
    both = f"<answer>{n[0]}</answer> hmm <answer>{n[1]}</answer>"
    three = f"<answer>{n[2]}</answer><answer>{n[0]}</answer>\n<answer>{n[1]}</answer>"
    trailing = f"<answer>{n[2]}</answer> then <answer>{n[0]}"
    closed = f"the answer is <answer>{n[2]}</answer>"
    # (case, (completion, answer), a counterpart whose reward is the other one): both in one case
    # (shuffled), so every case asks for a reward of 1 and a reward of 0 and no constant passes
    rows = [
        ("one-block", (f"<think>x</think><answer>{n[0]}</answer>", str(n[0])), str(n[0] + 1)),
        ("int-answer", (f"<answer> {n[0]} </answer>", n[0]), n[0] + 1),
        ("multiline", (f"<answer>\n{n[1]}\n</answer>", f" {n[1]}"), f" {n[1] + 1}"),
        ("last-block", (both, str(n[1])), str(n[0])),
        ("not-first", (both, str(n[0])), str(n[1])),
        ("three-blocks", (three, n[1]), n[2]),
        ("trailing-unclosed", (trailing, n[2]), n[0]),
        ("unclosed", (f"<answer>{n[2]}", n[2]), (closed, n[2])),
        ("no-block", (f"the answer is {n[2]}", n[2]), (closed, n[2])),
        ("substring", (f"<answer>{n[2]}7</answer>", n[2]), f"{n[2]}7"),
        ("outside", (f"<answer>?</answer> {n[2]}", n[2]), "?"),
        ("returns-float", (f"<answer>{n[0]}</answer>", n[0]), n[1]),
    ]
    cases = []
    for cid, call, other in rows:
        other = other if isinstance(other, tuple) else (call[0], other)  # same completion
        calls = [(call, {}), (other, {})]
        g.rng.shuffle(calls)
        cases.append(_each(cid, *calls, report_kinds=cid == "returns-float"))
    return cases


def _sequence_log_ratio(g):
    cases = []
    for i, (B, T) in enumerate([(4, 6), (3, 5), (6, 3)]):
        logp = g.logp(B, T)
        cases.append(
            _case(f"padded{i}", logp, logp + g.randn(B, T, scale=0.3), g.mask(B, T), grad=[0, 1], grad_seed=i)
        )
    cases.append(_case("empty-row", g.logp(2, 3), g.logp(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]])))
    cases.append(_case("shapes", g.logp(2, 3), g.logp(2, 4), g.mask(2, 3)))
    return cases


def _rlvr_policy_loss(g):
    def batch(B=6, T=5, scale=0.35):
        logp = g.logp(B, T)
        adv = g.randn(B)
        adv[0], adv[1] = adv[0].abs() + 0.1, -adv[1].abs() - 0.1  # both signs
        return logp, logp + g.randn(B, T, scale=scale), adv, g.mask(B, T)

    settings = [
        ("token-grpo", dict()),
        ("token-grpo-clip-higher", dict(eps_low=0.2, eps_high=0.28)),
        ("token-dapo-clip-higher", dict(eps_low=0.1, eps_high=0.3, loss_type="dapo")),
        ("token-dr_grpo", dict(loss_type="dr_grpo", max_completion_length=8)),
        ("sequence-grpo", dict(level="sequence", eps_low=0.05, eps_high=0.1)),
        ("sequence-dapo", dict(level="sequence", eps_low=0.05, eps_high=0.08, loss_type="dapo")),
        ("token-cispo", dict(eps_high=1.2, loss_type="cispo")),
        ("sequence-cispo", dict(level="sequence", eps_high=1.02, loss_type="cispo")),
    ]
    cases = [_case(cid, *batch(), grad=[0], grad_seed=i, **kw) for i, (cid, kw) in enumerate(settings)]
    logp, old, adv, mask = batch()
    cases.append(_case("kl", logp, old, adv, mask, ref_logp=g.logp(6, 5), beta=0.05, grad=[0]))
    cases.append(_case("stats-are-floats", logp, old, adv, mask, report_kinds=True))
    cases.append(_case("bad-level", logp, old, adv, mask, level="segment"))
    cases.append(_case("bad-loss-type", logp, old, adv, mask, loss_type="bnpo"))
    return cases


def _dynamic_sampling_mask(g):
    def rewards(n_groups, G, levels=(0.0, 1.0)):
        r = torch.tensor([g.rng.choice(levels) for _ in range(n_groups * G)])
        r[:G] = levels[-1]  # one uniform group
        r[G : 2 * G] = torch.tensor([levels[0]] * (G - 1) + [levels[-1]])  # one mixed group
        return r

    return [
        _case("groups-of-4", rewards(5, 4), 4),
        _case("groups-of-2", rewards(6, 2), 2),
        _case("groups-of-3-graded", rewards(4, 3, (0.0, 0.5, 1.0)), 3),
        _each(
            "one-group",
            ((torch.tensor([0.25, 0.25, 0.25]), 3), {}),
            ((torch.tensor([0.25, 0.5, 0.25]), 3), {}),
        ),
        _case("not-divisible", g.randn(7), 3),
        _case("2d", g.randn(2, 4), 4),
    ]


MAKERS: dict[str, Callable] = {
    name[1:]: fn
    for name, fn in list(globals().items())
    if name.startswith("_") and callable(fn) and name[1:] in exercises.BY_NAME
}


def make_cases(name: str, seed: int = DEFAULT_SEED) -> list[dict]:
    """Seeded random cases for exercise `name` (several shapes, padded masks, bad input)."""
    ex = exercises.get(name)
    if ex.name not in MAKERS:
        raise KeyError(f"make_cases: no hidden cases for exercise {ex.name!r}")
    return MAKERS[ex.name](_Gen(ex.name, seed))


# --- comparison ---------------------------------------------------------------------------------
def compare(expected: dict, got: dict) -> tuple[bool, str]:
    """Compare two case results: errors, value and gradients. Returns (ok, message)."""
    if expected.get("error"):
        exp_type = expected["error_types"][0] if expected["error_types"] else "Exception"
        if got.get("error") and exp_type in got.get("error_types", []):
            return True, ""
        if got.get("error"):
            return False, f"expected {exp_type} for this bad input, got {got['error']}"
        return False, f"expected {exp_type} for this bad input, but it returned a value"
    if got.get("error"):
        return False, f"raised {got['error']}"
    ok, msg = caserun.close(expected["value"], got["value"], RTOL, ATOL)
    if not ok:
        return False, msg
    for k, g_exp in expected.get("grads", {}).items():
        g_got = got.get("grads", {}).get(k)
        if g_exp is None:  # the solution's result does not depend on this input through autograd
            if g_got is not None and torch.count_nonzero(g_got) > 0:
                return False, f"a gradient flows to input {k}, which must be a constant (detached)"
            continue
        if g_got is None:
            if torch.count_nonzero(g_exp) == 0:
                continue
            return False, (
                f"no gradient flows to input {k} (did you .detach(), use .item() or "
                "build a new tensor from Python numbers?)"
            )
        ok, msg = caserun.close(g_exp, g_got, GRAD_RTOL, GRAD_ATOL, f"gradient w.r.t. input {k}")
        if not ok:
            return False, msg
    return True, ""


@functools.cache
def callees(name: str) -> tuple[str, ...]:
    """The other exercises that exercise `name` calls, directly or through another one (read from
    the solution's code: every exercise name it mentions), e.g. grpo_step -> grpo_loss,
    kl_estimate, masked_mean, token_logprobs. A student's version of `name` is graded with the
    student's own versions of these (giving it ours would hand the answers to student code)."""
    seen: list[str] = []
    todo = [exercises.get(name).name]
    while todo:
        src = textwrap.dedent(inspect.getsource(solution_function(todo.pop())))
        for node in ast.walk(ast.parse(src)):
            ident = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if ident in exercises.BY_NAME and ident != name and ident not in seen:
                seen.append(ident)
                todo.append(ident)
    return tuple(sorted(seen, key=lambda n: exercises.get(n).number))


def explain_dependencies(scores: dict[str, dict]) -> None:
    """For every exercise that lost points while an exercise it calls failed its own cases, put
    one line first in its failures naming that callee (in place): "grpo_loss calls kl_estimate,
    which failed 3 of its own 9 hidden cases: fix kl_estimate first ...". Sets
    ``score["failed_callees"]`` (possibly empty) on every score."""
    for name, s in scores.items():
        s["failed_callees"] = []
        if s["passed"] == s["total"]:
            continue
        bad = [c for c in callees(name) if c in scores and scores[c]["passed"] < scores[c]["total"]]
        s["failed_callees"] = bad
        if bad:
            which = ", ".join(
                f"{c} ({scores[c]['total'] - scores[c]['passed']} of {scores[c]['total']})" for c in bad
            )
            s["failures"].insert(
                0,
                f"{name} calls {' and '.join(bad)}, which failed some of {'its' if len(bad) == 1 else 'their'} "
                f"own hidden cases [{which} failed]: your {name} runs with your "
                f"{'version' if len(bad) == 1 else 'versions'} of {'it' if len(bad) == 1 else 'them'}, so "
                f"fix {bad[0]} first -- the failures of {name} below may come from it alone.",
            )


def solution_function(name: str) -> Callable:
    ex = exercises.get(name)
    return getattr(importlib.import_module(f"solutions.{ex.module}"), ex.name)


def expected_results(name: str, seed: int = DEFAULT_SEED) -> tuple[list[dict], list[dict]]:
    """(cases, results of the solution on them) — computed in the trusted grader process.

    The solutions of the "one step" exercises call other exercises through course_lib's modules,
    so the solutions switch is on while they run (and restored afterwards)."""
    import course_lib

    cases = make_cases(name, seed)
    was_active = course_lib.solutions_active()
    course_lib.use_solutions(True)
    try:
        return cases, caserun.run_cases(solution_function(name), cases)
    finally:
        if not was_active:
            course_lib.use_solutions(False)


def score(name: str, expected: list[dict], got: list[dict] | None) -> dict:
    """Partial credit: fraction of cases passed x points; `got` None = nothing came back."""
    ex = exercises.get(name)
    msgs = []
    passed = 0
    for i, e in enumerate(expected):
        g = got[i] if got is not None and i < len(got) else None
        if g is None:
            ok, msg = False, "no result"
        else:
            ok, msg = compare(e, g)
        passed += ok
        if not ok:
            msgs.append(f"case {i + 1} ({e.get('id', '')}): {msg}")
    n = len(expected)
    # Cases that expect a ValueError for bad input only count once the function works at all:
    # a function that raises for everything must not collect those points.
    value_ok = any(
        not e.get("error")
        for i, e in enumerate(expected)
        if got is not None and i < len(got) and got[i] is not None and compare(e, got[i])[0]
    )
    earned = passed if value_ok else 0
    if not value_ok and passed:
        msgs.insert(0, "no case with a valid input passed, so the bad-input cases do not count")
    return {
        "exercise": ex.name,
        "passed": earned,
        "total": n,
        "max_score": float(ex.points),
        "score": round(ex.points * earned / n, 3) if n else 0.0,
        "failures": msgs,
    }


def hidden_check(name: str, seed: int = DEFAULT_SEED) -> dict:
    """Run course_lib's current `name` and the solution on the hidden cases, in this process.

    Raises AssertionError with a partial-credit summary unless every case passes."""
    ex = exercises.get(name)
    student = getattr(importlib.import_module(f"course_lib.{ex.module}"), ex.name)
    cases, expected = expected_results(name, seed)
    got = caserun.run_cases(student, cases)
    s = score(name, expected, got)
    if s["passed"] != s["total"]:
        lines = "\n  ".join(s["failures"][:5])
        raise AssertionError(
            f"hidden tests for {ex.name}: {s['passed']}/{s['total']} cases passed "
            f"(partial credit {s['score']:.2f}/{ex.points} points)\n  {lines}"
        )
    print(f"hidden tests for {ex.name}: {s['passed']}/{s['total']} cases passed")
    return s
