"""Visible checks of unit 04 (course_lib/reward_model.py): exercises 4.1-4.3."""

from __future__ import annotations

import torch

from course_lib.checks._checker import PAD_HINT, padded, register, t


@register(
    "bradley_terry_loss",
    (
        "the mean over pairs of -log sigmoid(r_chosen - r_rejected - margin): "
        "small when the chosen reward beats the rejected one by more than "
        "the margin",
        "the margin is SUBTRACTED from the reward difference",
    ),
)
def _bradley_terry(fn, c):
    rc, rr = t([2.0, 0.0], grad=True), t([0.0, 0.0])
    got = c.call("basic", fn, rc, rr)
    # -logsigmoid(2) = ln(1 + e^-2) = 0.126928, -logsigmoid(0) = ln 2
    c.close(
        "mean(ln(1+e^-2), ln 2)",
        got,
        0.4100376,
        kind="tensor",
        hint=(
            "the loss is small when the CHOSEN reward is the larger one; it is a mean over pairs",
            "chosen minus rejected inside -log sigmoid",
        ),
    )
    c.grad(
        "d loss / d r_chosen = -sigmoid(-(rc - rr)) / B",
        got,
        {"r_chosen": rc},
        {"r_chosen": [-0.0596015, -0.25]},
    )
    c.close(
        "margin 1.0",
        c.call("margin float", fn, rc, rr, margin=1.0),
        0.8132617,
        hint=(
            "a margin makes the loss LARGER: the chosen reward must win by at least the margin",
            "subtract the margin from r_chosen - r_rejected",
        ),
    )
    c.close(
        "margin [1, 0]",
        c.call("margin tensor", fn, rc, rr, margin=t([1.0, 0.0])),
        0.5032044,
        hint="a margin tensor gives one margin per pair",
    )
    c.close(
        "r_c - r_r = -200 (stability)",
        c.call("large", fn, t([-200.0]), t([0.0])),
        200.0,
        atol=1e-2,
        hint=(
            "the loss is not finite for a large reward gap: sigmoid underflows to 0 before its log",
            "torch.nn.functional has a stable log-sigmoid",
        ),
    )
    c.raises("shapes [2] vs [3]", ValueError, fn, rc, t([0.0, 0.0, 0.0]))


@register(
    "preference_accuracy",
    (
        "the fraction of pairs where the chosen reward is STRICTLY greater "
        "(a tie counts as wrong), as a Python float",
        "return a float, not a tensor",
    ),
)
def _preference_accuracy(fn, c):
    got = c.call("basic", fn, t([1.0, 2.0, 3.0, 0.0]), t([0.0, 2.0, 4.0, -1.0]))
    c.close(
        "[right, tie, wrong, right] -> 0.5",
        got,
        0.5,
        kind="float",
        hint="the fraction (in [0, 1]) of pairs where chosen is strictly greater: a tie counts as wrong",
    )
    c.close("all right", c.call("all", fn, t([1.0, 1.0]), t([0.0, 0.5])), 1.0, kind="float")
    c.raises("empty batch", ValueError, fn, t([]), t([]))


@register(
    "last_token_pool",
    (
        "each row's value at its LAST real token (the last position where "
        "attention_mask is 1); position -1 can be padding",
        "under right padding that position is (number of real tokens) - 1",
    ),
)
def _last_token_pool(fn, c):
    values = t([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]], grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    got = c.call("[B, T]", fn, values, mask)
    c.close(
        "last real tokens",
        got,
        [3.0, 8.0, 9.0],
        kind="tensor",
        hint=(
            "each row's LAST real token: row 0's is at position 2 (position 3 is padding), row 2's at 0",
            "count the real tokens of each row; the last one is one before that count",
        ),
    )
    c.grad(
        "gradient reaches the picked positions",
        got.sum(),
        {"values": values},
        {"values": [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]},
    )
    c.close(
        "padding holds garbage (1e4 after the last real token)",
        c.call("padding garbage", fn, padded(values, mask), mask),
        [3.0, 8.0, 9.0],
        hint=PAD_HINT,
    )
    got = c.call("[B, T, H]", fn, torch.arange(12.0).reshape(2, 3, 2), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    c.close(
        "[B, T, H] -> [B, H]",
        got,
        [[2.0, 3.0], [10.0, 11.0]],
        hint="hidden states [B, T, H] give one vector per row: [B, H]",
    )
    c.raises(
        "a row with no real token",
        ValueError,
        fn,
        values,
        torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]),
    )
