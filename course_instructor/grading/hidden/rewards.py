"""Hidden cases of the exercises of course_lib/rewards.py (unit 01, reward functions): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

from course_instructor.grading.hidden._cases import case, each, sentence
from course_instructor.grading.sandboxed.caserun import MARKER


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
        cases.append(case(f"mix{i}", comps, prompts=["p"] * 6))
    cases.append(
        case(
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
        cases.append(case(f"answers{i}", comps, ans, completion_ids=[[1, 2]] * n))
    cases.append(case("kwarg", ["x = 12", "-7", "7"], answer=[12, -7, -7]))
    cases.append(
        case(
            "commas",
            ["about 1,000 people", "it costs 12,500.", "3 then 2,000", "1,000 or 1,001"],  # commas deleted
            ["1000", 12500, "so ... #### 2,000", 1000],
        )
    )
    cases.append(case("length-mismatch", ["1", "2"], [1]))
    return cases


def _sentiment_reward(g):
    return [
        case(f"texts{i}", [sentence(g, g.int_(1, 12)) for _ in range(5)], prompts=["p"] * 5) for i in range(2)
    ] + [case("empty", [""])]


def _repetition_penalty(g):
    cases = []
    for i in range(3):
        comps = [sentence(g, g.int_(1, 15)) for _ in range(5)] + ["Great great GREAT great"]
        cases.append(case(f"texts{i}", comps))
    cases.append(case("empty", ["", "one", "one one"]))
    cases.append(case("whitespace", ["great  great\ngreat", "a\tb  a", " lead and trail "]))  # any whitespace
    return cases


def _length_penalty(g):
    comps = [sentence(g, n) for n in (0, 1, 3, 4, 10, 40, 41, 60)]
    return [
        case("defaults", comps),
        case("bounds", comps, min_words=2, max_words=10),
        case("kwargs", comps[:4], answer=[1, 2, 3, 4], max_words=3),
        case("whitespace", ["a  b  c  d", "a\nb\tc d e", "  a b  "], min_words=2, max_words=4),
    ]


def _exponential_shaping(g):
    t = g.randn(6)
    return [
        case("list", [float(x) for x in g.randn(5)], 1.0),
        case("tensor", t, 0.5, grad=[0], grad_seed=3),
        case("tensor2d", g.randn(3, 4), temperature=2.0),
        case("bad-temperature", [0.1, 0.2], 0.0),
    ]


def _combine_rewards(g):
    comps = [sentence(g, g.int_(1, 8)) for _ in range(4)]
    fn = lambda n: {MARKER: "reward_fn", "name": n}
    return [
        case("two", [fn("len"), fn("has_a")], [0.5, -2.0], then_call={"args": [comps], "kwargs": {}}),
        case(
            "kwargs",
            [fn("len"), fn("bonus")],
            [1.0, 3.0],
            then_call={"args": [comps], "kwargs": {"bonus": [1, 0, 2, 5], "prompts": ["p"] * 4}},
        ),
        case("one", [fn("has_a")], [0.25], then_call={"args": [comps[:2]], "kwargs": {}}),
        case("mismatch", [fn("len"), fn("has_a")], [1.0]),
        case("empty", [], []),
    ]


def _reinforce_loss(g):
    # logprobs = summed log-probabilities of whole completions; gradients w.r.t. BOTH inputs: the
    # rewards must get none (compare() fails a gradient where the solution has none)
    cases = []
    for i, (B, baseline) in enumerate([(6, None), (5, "mean"), (4, 0.5), (2, "mean")]):
        cases.append(
            case(
                f"baseline-{baseline}-B{B}",
                g.logp(B) * 5,
                g.randn(B) + 0.5,
                baseline,
                grad=[0, 1],
                grad_seed=i,
            )
        )
    cases.append(case("int-baseline", g.logp(3) * 5, g.randn(3), baseline=1, grad=[0, 1]))
    # one completion with the mean baseline: advantage 0, loss 0 (no nan from a B - 1); next to a
    # batch of two, so that the case is no free point for a constant 0
    cases.append(
        each(
            "baseline-mean-B1",
            ((g.logp(1) * 5, g.randn(1) + 0.5, "mean"), {}),
            ((g.logp(2) * 5, g.randn(2) + 0.5, "mean"), {}),
        )
    )
    cases.append(case("per-token-logprobs", g.logp(2, 3), g.randn(2)))  # [B, T]: not summed
    cases.append(case("shape-mismatch", g.logp(3), g.randn(4)))
    cases.append(case("unknown-baseline", g.logp(3), g.randn(3), baseline="median"))
    return cases


CASES = {
    "format_reward": _format_reward,
    "correctness_reward": _correctness_reward,
    "sentiment_reward": _sentiment_reward,
    "repetition_penalty": _repetition_penalty,
    "length_penalty": _length_penalty,
    "exponential_shaping": _exponential_shaping,
    "combine_rewards": _combine_rewards,
    "reinforce_loss": _reinforce_loss,
}
