"""Hidden cases of the exercises of course_lib/rlvr.py (unit 09, verifiable rewards): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, each


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
        return each(cid, *(((t,), {}) for t in pair), report_kinds=report_kinds)

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
        cases.append(each(cid, *calls, report_kinds=cid == "returns-float"))
    return cases


def _sequence_log_ratio(g):
    cases = []
    for i, (B, T) in enumerate([(4, 6), (3, 5), (6, 3)]):
        logp = g.logp(B, T)
        cases.append(
            case(f"padded{i}", logp, logp + g.randn(B, T, scale=0.3), g.mask(B, T), grad=[0, 1], grad_seed=i)
        )
    cases.append(case("empty-row", g.logp(2, 3), g.logp(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]])))
    cases.append(case("shapes", g.logp(2, 3), g.logp(2, 4), g.mask(2, 3)))
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
    cases = [case(cid, *batch(), grad=[0], grad_seed=i, **kw) for i, (cid, kw) in enumerate(settings)]
    logp, old, adv, mask = batch()
    cases.append(case("kl", logp, old, adv, mask, ref_logp=g.logp(6, 5), beta=0.05, grad=[0]))
    cases.append(case("stats-are-floats", logp, old, adv, mask, report_kinds=True))
    cases.append(case("bad-level", logp, old, adv, mask, level="segment"))
    cases.append(case("bad-loss-type", logp, old, adv, mask, loss_type="bnpo"))
    return cases


def _dynamic_sampling_mask(g):
    def rewards(n_groups, G, levels=(0.0, 1.0)):
        r = torch.tensor([g.rng.choice(levels) for _ in range(n_groups * G)])
        r[:G] = levels[-1]  # one uniform group
        r[G : 2 * G] = torch.tensor([levels[0]] * (G - 1) + [levels[-1]])  # one mixed group
        return r

    return [
        case("groups-of-4", rewards(5, 4), 4),
        case("groups-of-2", rewards(6, 2), 2),
        case("groups-of-3-graded", rewards(4, 3, (0.0, 0.5, 1.0)), 3),
        each(
            "one-group",
            ((torch.tensor([0.25, 0.25, 0.25]), 3), {}),
            ((torch.tensor([0.25, 0.5, 0.25]), 3), {}),
        ),
        case("not-divisible", g.randn(7), 3),
        case("2d", g.randn(2, 4), 4),
    ]


def _overlong_penalty(g):
    def lengths(L, buf, n=10, dtype=torch.long):
        free = L - buf
        # every region and both boundaries in each case, so that no constant passes
        fixed = [free, free + 1, L - 1, L, L + 1]
        rest = [g.int_(0, L + 8) for _ in range(n - len(fixed))]
        x = fixed + rest
        g.rng.shuffle(x)
        return torch.tensor(x, dtype=dtype)

    cases = [
        case(f"lmax{L}-buffer{buf}", lengths(L, buf), L, buf)
        for L, buf in [(16, 4), (24, 8), (32, 5), (64, 16), (40, 3)]
    ]
    cases.append(case("buffer-equals-lmax", lengths(12, 12), 12, 12))
    cases.append(case("float-lengths", lengths(20, 6, dtype=torch.float32), 20, 6))
    cases.append(case("int32-lengths", lengths(30, 7, dtype=torch.int32), 30, 7))
    cases.append(case("buffer-0", lengths(16, 4), 16, 0))
    cases.append(case("buffer-too-large", lengths(16, 4), 16, 17))
    return cases


def _mask_truncated_completions(g):
    def batch(B, T, dtype=torch.long):
        m = g.mask(B, T).to(dtype)
        trunc = torch.tensor([g.rng.random() < 0.4 for _ in range(B)])
        trunc[0], trunc[1] = True, False  # both kinds in every case
        perm = torch.randperm(B, generator=g.g)
        return m[perm], trunc[perm]

    cases = [case(f"b{B}-t{T}", *batch(B, T)) for B, T in [(6, 8), (8, 5), (4, 12)]]
    cases.append(case("square", *batch(5, 5)))
    cases.append(case("float-mask", *batch(6, 7, torch.float32)))
    cases.append(case("int32-mask", *batch(5, 6, torch.int32)))
    m, tr = batch(4, 6)
    cases.append(case("flags-wrong-length", m, torch.cat([tr, tr[:1]])))
    cases.append(case("flags-not-bool", m, tr.float()))
    return cases


CASES = {
    "think_format_reward": _think_format_reward,
    "answer_reward": _answer_reward,
    "sequence_log_ratio": _sequence_log_ratio,
    "rlvr_policy_loss": _rlvr_policy_loss,
    "dynamic_sampling_mask": _dynamic_sampling_mask,
    "overlong_penalty": _overlong_penalty,
    "mask_truncated_completions": _mask_truncated_completions,
}
