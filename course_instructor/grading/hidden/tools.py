"""Hidden cases of the exercises of course_lib/tools.py (unit 10, a tool over several turns): one maker per
exercise, ``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, each


def _terms(g, k):
    return [g.int_(10, 999) for _ in range(k)]


def _parse_tool_call(g):
    a, b, c = _terms(g, 3)
    d, e = _terms(g, 2)
    calls = {
        "two-terms": f"<tool>{a}+{b}</tool>",
        "three-terms": f"let me add <tool>{a}+{b}+{c}</tool>",
        "spaces": f"<tool> {a} +\t{b}  + {c} </tool>",
        "single-term": f"<tool>{d}</tool>",
        "leading-zeros": f"<tool>00{a}+0{e}</tool>",
        "first-call": f"<tool>{a}+{b}</tool><result>?</result> then <tool>{d}+{e}</tool>",
        "stray-close": f"</tool> oops <tool>{d}+{e}</tool>",
        "text-after": f"<tool>{e}+{c}</tool> and <answer>{e + c}</answer>",
    }
    plain = [f"the sum is <answer>{a + b}</answer>", f"{a} + {b} = {a + b}", "", f"<answer>{d}</answer>"]

    # every well-formed call next to a text without any call (shuffled): a list of ints and None
    # in one case, so no constant passes
    cases = []
    for cid, text in calls.items():
        pair = [text, g.rng.choice(plain)]
        g.rng.shuffle(pair)
        cases.append(each(cid, *(((x,), {}) for x in pair)))
    malformed = {
        "unclosed": f"<tool>{a}+{b}",
        "closed-before-only": f"{a}+{b}</tool> <tool>{c}",
        "empty": "<tool></tool>",
        "blank": "<tool> \n </tool>",
        "empty-term": f"<tool>{a}++{b}</tool>",
        "trailing-plus": f"<tool>{a}+{b}+</tool>",
        "leading-plus": f"<tool>+{a}</tool>",
        "sign": f"<tool>-{a}+{b}</tool>",
        "minus": f"<tool>{a}-{b}</tool>",
        "times": f"<tool>{a}*{b}</tool>",
        "decimal": f"<tool>{a}.5+{b}</tool>",
        "letter": f"<tool>{a}+x{b}</tool>",
        "fullwidth-digits": "<tool>" + "".join(chr(0xFF10 + int(ch)) for ch in str(a)) + f"+{b}</tool>",
        "superscript": f"<tool>{a}+\u00b2</tool>",
        "arabic-indic-digits": "<tool>" + "".join(chr(0x0660 + int(ch)) for ch in str(b)) + "</tool>",
    }
    cases += [case(f"malformed-{k}", v) for k, v in malformed.items()]
    cases.append(case("returns-ints", f"<tool>{d}+{e}</tool>", report_kinds=True))
    return cases


def _environment_mask(g):
    def batch(B, T, dtype=torch.long, empty_row=True):
        m = g.mask(B, T, min_len=2)
        spans = []
        for i in range(B):
            n = int(m[i].sum())
            row = []
            pos = g.int_(0, 1)
            while pos < n - 1:  # a few non-overlapping spans inside the row's tokens
                length = g.int_(1, 3)
                end = min(pos + length, n)
                row.append((pos, end))
                pos = end + g.int_(1, 3)
            if g.rng.random() < 0.3:
                row.append((n // 2, n // 2))  # an empty span
            spans.append(row)
        if empty_row and B > 2:
            spans[B - 1] = []  # a row the environment never answered
        spans[0] = spans[0] or [(0, 1)]
        return m.to(dtype), spans

    cases = [case(f"b{B}-t{T}", *batch(B, T)) for B, T in [(4, 8), (6, 12), (3, 5)]]
    cases.append(case("float-mask", *batch(5, 9, torch.float32)))
    cases.append(case("int32-mask", *batch(4, 7, torch.int32)))
    m = torch.ones(3, 6, dtype=torch.long)
    m[1, 4:] = 0
    cases.append(case("span-to-the-end", m, [[(4, 6)], [(3, 6)], [(0, 2), (5, 6)]]))
    cases.append(case("spans-over-padding", m, [[(1, 2)], [(2, 6)], [(6, 6)]]))
    m, spans = batch(4, 6)
    cases.append(case("too-many-rows", m, spans + [[]]))
    cases.append(case("too-few-rows", m, spans[:-1]))
    cases.append(case("end-past-T", m, [[(0, 1)], [(4, 7)], [], []]))
    cases.append(case("negative-start", m, [[(-2, 1)], [], [], []]))
    cases.append(case("start-after-end", m, [[(3, 2)], [], [], []]))
    return cases


def _tool_reward(g):
    a, b = g.int_(10, 99), g.int_(10, 99)
    s = a + b
    right = f"<tool>{a}+{b}</tool><result>{s}</result> so <answer>{s}</answer>"
    wrong = f"<tool>{a}+{b}</tool><result>{s}</result> so <answer>{s + 1}</answer>"
    guess = f"<answer>{s - 10}</answer>"
    result_only = f"<tool>{a}+{b}</tool><result>{s}</result>"
    m1, m2 = g.int_(1, 3), g.int_(1, 3)
    pm, pb = g.rng.choice([0.1, 0.25, 0.75]), g.rng.choice([0.2, 0.6, 2.0])
    # (case, two calls whose rewards differ): both in one case (shuffled), so no constant passes
    rows = [
        ("right-vs-wrong", ((right, s, 0, False), {}), ((wrong, s, 0, False), {})),
        ("int-and-str-answer", ((right, str(s), 0, False), {}), ((guess, s, 0, False), {})),
        ("result-is-not-an-answer", ((result_only, s, 0, False), {}), ((right, s, 0, False), {})),
        ("malformed-counts", ((right, s, m1, False), {}), ((right, s, m1 + m2, False), {})),
        ("malformed-wrong", ((wrong, s, m2, False), {}), ((right, s, 0, False), {})),
        ("over-budget", ((right, s, 0, True), {}), ((wrong, s, 0, True), {})),
        ("over-budget-or-not", ((wrong, s, 0, True), {}), ((wrong, s, 1, False), {})),
        (
            "custom-penalties",
            ((right, s, m1, True), {"malformed_penalty": pm, "budget_penalty": pb}),
            ((guess, s, m2, False), {"malformed_penalty": pm, "budget_penalty": pb}),
        ),
        (
            "custom-malformed-penalty",
            ((right, s, m1 + 1, False), {"malformed_penalty": pm}),
            ((right, s, 0, True), {"budget_penalty": pb}),
        ),
    ]
    cases = []
    for cid, *calls in rows:
        g.rng.shuffle(calls)
        cases.append(each(cid, *calls))
    cases.append(
        each("returns-float", ((right, s, 1, False), {}), ((wrong, s, 0, True), {}), report_kinds=True)
    )
    cases.append(case("negative-n-malformed", right, s, -1, False))
    cases.append(case("negative-malformed-penalty", right, s, 1, False, malformed_penalty=-0.5))
    cases.append(case("negative-budget-penalty", right, s, 0, True, budget_penalty=-1.0))
    return cases


CASES = {
    "parse_tool_call": _parse_tool_call,
    "environment_mask": _environment_mask,
    "tool_reward": _tool_reward,
}
