"""Visible checks of unit 10 (course_lib/tools.py): exercises 10.1-10.3."""

from __future__ import annotations

import torch

from course_lib.checks._checker import register
from course_lib.tools import MalformedToolCall


# ------------------------------------------------------------------------------ 10.1 parse a call
@register(
    "parse_tool_call",
    (
        "None when the text has no <tool>; else the ints of the terms of the FIRST call (the text "
        "from the first <tool> to the first </tool> after it, terms separated by '+'); a call the "
        "environment cannot compute raises MalformedToolCall",
        "each term, stripped of whitespace, must be one or more ASCII digits 0-9; anything else "
        "(an empty term, a sign, a letter, a decimal point, another script's digits) is malformed",
    ),
)
def _parse_tool_call(fn, c):
    got = c.call("no call", fn, "the answer is <answer>59</answer>")
    c.true(
        "no <tool> in the text: None",
        got is None,
        "None",
        repr(got),
        hint=(
            "a turn without <tool> is not a call: return None (not [] and not 0), so that the "
            "environment can tell 'no call' from a call",
            "test whether the text contains <tool> at all before anything else",
        ),
    )
    got = c.call("one call", fn, "<tool>12+47</tool>")
    c.true(
        "a list of Python ints",
        isinstance(got, list) and all(type(x) is int for x in got),
        "a list of ints [12, 47]",
        f"{type(got).__name__} {got!r}"[:200],
        hint=(
            "return the terms as a list of Python ints (the environment sums them), not as "
            "strings, floats or a tensor",
            "convert each term once it has passed the digits test",
        ),
    )
    c.close("one call", got, [12, 47], hint="the terms of the call, in order")
    good = [
        (
            "text around the call, whitespace around the terms",
            "so: <tool> 12 + 7 +300 </tool> and",
            [12, 7, 300],
            "whitespace",
        ),
        ("a single term", "<tool>8</tool>", [8], "one term"),
        ("leading zeros", "<tool>007+010</tool>", [7, 10], "leading zeros"),
        ("only the FIRST call", "<tool>1+2</tool> then <tool>30+4</tool>", [1, 2], "FIRST"),
        ("a stray </tool> before the <tool>", "</tool> x <tool>5+6</tool>", [5, 6], "AFTER"),
    ]
    for case, text, want, phrase in good:
        c.close(
            case,
            c.call(case, fn, text, hint=f"{text!r} is a well-formed call: it must not raise ({phrase})"),
            want,
            hint=(
                f"{text!r}: the call is the text from the FIRST <tool> to the first </tool> AFTER "
                f"it; terms are stripped of surrounding whitespace; leading zeros are fine "
                f"(property: {phrase})",
                "a greedy pattern (.*) runs to the LAST </tool>; a search from the start of the "
                "text finds a </tool> that comes before the <tool>",
            ),
        )
    bad = [
        ("no </tool> after <tool>", "<tool>12+47", "no </tool> after the <tool>"),
        ("an empty call", "<tool></tool>", "an empty call"),
        ("a call of whitespace", "<tool>  </tool>", "an empty call"),
        ("an empty term", "<tool>12++47</tool>", "an empty term"),
        ("a trailing +", "<tool>12+</tool>", "an empty term"),
        ("a sign", "<tool>-3+4</tool>", "a sign is not a digit"),
        ("a minus", "<tool>12-4</tool>", "only '+' separates terms"),
        ("a decimal point", "<tool>1.5+2</tool>", "a decimal point is not a digit"),
        ("a letter", "<tool>12+x</tool>", "a letter is not a digit"),
        ("full-width digits", "<tool>\uff11\uff12+3</tool>", "ASCII digits 0-9 only"),
        ("a superscript", "<tool>\u00b2+1</tool>", "ASCII digits 0-9 only"),
    ]
    for case, text, phrase in bad:
        c.raises(
            f"malformed: {case} ({text!r})",
            MalformedToolCall,
            fn,
            text,
            hint=(
                f"{text!r} is malformed ({phrase}): raise MalformedToolCall (the exception class "
                "of course_lib/tools.py, a ValueError) with a message saying what is wrong -- not "
                "a plain ValueError, and never a result",
                "str.isdigit() and int() accept more than the ASCII digits 0-9 (int(' -3') is "
                "-3, '\uff11'.isdigit() is True); test each stripped term against [0-9]+ itself",
            ),
        )


# ------------------------------------------------------------------------------ 10.2 the mask
ENV = (
    "a NEW mask, the completion mask with every position of every span of THAT row set to 0; "
    "spans are (start, end) with start inclusive and end exclusive; padding stays 0",
    "row i's spans touch row i only; an empty span (start == end) changes nothing; the result "
    "has the mask's dtype",
)


@register("environment_mask", ENV)
def _environment_mask(fn, c):
    mask = torch.ones(1, 7, dtype=torch.long)
    got = c.call("one row", fn, mask, [[(1, 3), (4, 5)]])
    c.true(
        "the same dtype",
        isinstance(got, torch.Tensor) and got.dtype == mask.dtype,
        f"a torch.Tensor of dtype {mask.dtype} (the mask's)",
        f"{type(got).__name__} {getattr(got, 'dtype', '')}",
        hint=(
            "return the mask in its own dtype (an int64 mask stays int64, a float mask float): "
            "the loss multiplies and sums it",
            "copy the mask and write zeros into the copy, rather than building a bool tensor",
        ),
    )
    c.close(
        "one row, spans (1, 3) and (4, 5)",
        got,
        [[1, 0, 0, 1, 0, 1, 1]],
        hint=(
            "spans are (start, end) with start inclusive and END EXCLUSIVE, like a Python slice: "
            "(1, 3) is positions 1 and 2, (4, 5) the single position 4",
            "every position from start up to, not including, end is set to 0",
        ),
    )
    c.close(
        "2 rows: (1, 3) on row 0; (0, 2) and (4, 5) on row 1",
        c.call("2 rows", fn, torch.ones(2, 7, dtype=torch.long), [[(1, 3)], [(0, 2), (4, 5)]]),
        [[1, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1, 1]],
        hint=(
            "each row has its OWN list of spans: row i's spans zero positions of row i only",
            "a span of row 1 must not change row 0: loop over the rows together with their span lists",
        ),
    )
    c.close(
        "a span of row 0 only, row 1 without spans",
        c.call("one row's span", fn, torch.ones(2, 4), [[(2, 4)], []]),
        [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]],
        hint=(
            "each row has its OWN list of spans: row i's spans zero positions of row i only, and "
            "a row without spans keeps its mask",
            "loop over the rows together with their span lists (row index, then that row's spans)",
        ),
    )
    c.close(
        "padding stays 0: span (2, 4) on a row of 3 tokens + padding",
        c.call("padding", fn, torch.tensor([[1, 1, 1, 0, 0]]), [[(2, 4)]]),
        [[1, 1, 0, 0, 0]],
        hint=(
            "start from the completion mask, not from ones: padding (mask 0) is never a loss "
            "position, whatever the spans say",
            "only zeros are written; a position the mask has at 0 stays 0",
        ),
    )
    c.close(
        "empty spans (2, 2) and a span ending at T: (5, 6) with T = 6",
        c.call("empty and end == T", fn, torch.ones(1, 6), [[(2, 2), (5, 6)]]),
        [[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]],
        hint=(
            "an empty span (start == end) covers no position; end == T is allowed (the span "
            "reaches the last position), only end > T is out of range",
            "(2, 2) covers nothing, (5, 6) covers position 5",
        ),
    )
    mask2 = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    c.call("no mutation", fn, mask2, [[(0, 1)], [(1, 3)]])
    c.true(
        "the input is not modified",
        mask2.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]],
        "completion_mask still [[1, 1, 1, 0], [1, 1, 1, 1]] after the call",
        f"completion_mask changed to {mask2.tolist()}",
        hint=(
            "your function changed its input in place: the caller's completion mask is still "
            "needed (the metrics and the ablation use it), so return a new tensor",
            "x[i, a:b] = 0 on the argument itself writes into the caller's tensor; write into a copy",
        ),
    )
    m = torch.ones(2, 5)
    c.raises("3 span lists for B = 2", ValueError, fn, m, [[], [], []], hint="len(env_spans) must be B")
    c.raises(
        "span (3, 7) with end > T = 5",
        ValueError,
        fn,
        m,
        [[], [(3, 7)]],
        hint="a span with end > T is out of range: slicing would silently cut it, raise ValueError",
    )
    c.raises(
        "span (-1, 2) with start < 0",
        ValueError,
        fn,
        m,
        [[(-1, 2)], []],
        hint="a span with start < 0 is out of range: a negative index counts from the end, raise ValueError",
    )
    c.raises(
        "span (3, 1) with start > end", ValueError, fn, m, [[(3, 1)], []], hint="start > end: ValueError"
    )
    c.raises("1-D completion_mask", ValueError, fn, torch.ones(5), [[(0, 1)]])


# ------------------------------------------------------------------------------ 10.3 the reward
REWARD = (
    "answer_reward (9.2) of the whole episode text, minus malformed_penalty for EACH malformed "
    "call, minus budget_penalty once if over_budget; a Python float, negative allowed",
    "the penalties are the arguments (defaults 0.5 and 1.0), subtracted, never clipped at 0; "
    "a number inside <result> is the environment's, not the model's answer",
)


@register("tool_reward", REWARD)
def _tool_reward(fn, c):
    episode = "<tool>12+47</tool><result>59</result> so <answer>59</answer>"
    cases = [
        ("right, no penalty", (episode, 59, 0, False), {}, 1.0, "answer_reward"),
        (
            "the result block is not an answer",
            ("<tool>12+47</tool><result>59</result>", 59, 0, False),
            {},
            0.0,
            "answer block",
        ),
        (
            "wrong answer, no penalty",
            (episode.replace("<answer>59", "<answer>58"), 59, 0, False),
            {},
            0.0,
            "the answer block of 9.2",
        ),
        ("right, 1 malformed call", (episode, "59", 1, False), {}, 0.5, "EACH malformed"),
        ("right, 3 malformed calls", (episode, 59, 3, False), {}, -0.5, "EACH malformed"),
        ("wrong, over budget", ("<tool>1+2</tool><result>3</result>", 59, 0, True), {}, -1.0, "subtracted"),
        (
            "right, 2 malformed, over budget, penalties 0.25 and 0.3",
            (episode, 59, 2, True),
            {"malformed_penalty": 0.25, "budget_penalty": 0.3},
            0.2,
            "the arguments",
        ),
    ]
    for case, args, kwargs, want, phrase in cases:
        c.close(
            case,
            c.call(case, fn, *args, **kwargs),
            want,
            kind="float",
            hint=(
                f"answer_reward (9.2) minus malformed_penalty per malformed call, minus "
                f"budget_penalty if over budget: penalties are subtracted and the sum may be "
                f"negative (property: {phrase})",
                "call rlvr.answer_reward(completion, answer) through the module; use the "
                "penalties passed in, not the defaults; do not clip the result",
            ),
        )
    c.raises("n_malformed = -1", ValueError, fn, episode, 59, -1, False)
    c.raises("malformed_penalty = -0.5", ValueError, fn, episode, 59, 0, False, malformed_penalty=-0.5)
    c.raises("budget_penalty = -1", ValueError, fn, episode, 59, 0, True, budget_penalty=-1.0)
