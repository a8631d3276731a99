"""Visible checks of unit 07 (course_lib/dpo.py): exercises 7.1-7.3."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import LN2, LN3, PAD_HINT, padded, register, t
from course_lib.checks._toys import ToyLM


@register(
    "sequence_logprobs",
    (
        "one number per sequence: the SUM of the labels' log-probabilities over "
        "its completion tokens (mask 1), or their mean with average=True",
        "labels under mask 0 may be -100 and must not be looked up as they are",
    ),
)
def _sequence_logprobs(fn, c):
    logits = t([[[0.0, 0.0], [LN3, 0.0], [5.0, 5.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]], grad=True)
    labels = torch.tensor([[0, 0, -100], [0, -100, -100]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # row 0: ln 1/2 + ln 3/4 = -0.9808293; row 1: ln 1/4 = -1.3862944
    got = c.call(
        "sum",
        fn,
        logits,
        labels,
        mask,
        hint="labels under mask 0 may be -100 (not a token id): they must not make it fail",
    )
    c.close(
        "summed log-probs",
        got,
        [-0.9808293, -1.3862944],
        kind="tensor",
        hint=(
            "a SUM over each sequence's completion tokens (padding excluded) unless average=True",
            "row 0: ln 1/2 + ln 3/4; the labels are already aligned with the logits (no shift)",
        ),
    )
    c.close(
        "padding holds garbage (logits 1e4 under mask 0): the same sums",
        c.call("padding garbage", fn, padded(logits, mask), labels, mask),
        [-0.9808293, -1.3862944],
        hint=PAD_HINT,
    )
    c.grad("gradient", got.sum(), {"logits": logits})
    c.close(
        "average=True",
        c.call("average", fn, logits, labels, mask, average=True),
        [-0.4904146, -1.3862944],
        hint="average=True divides each row by ITS number of completion tokens",
    )
    c.raises("labels [2, 2] for logits [2, 3, 2]", ValueError, fn, logits, labels[:, :2], mask[:, :2])


@register(
    "dpo_loss",
    (
        "with h = (policy chosen - policy rejected) - (reference chosen - reference "
        "rejected), the 'sigmoid' loss is -log sigmoid(beta * h) (mixed with label "
        "smoothing); the implicit rewards beta * (policy - reference) carry no gradient",
        "beta scales h INSIDE the sigmoid",
    ),
)
def _dpo_loss(fn, c):
    pc, pr = t([-1.0, -2.0], grad=True), t([-2.0, -1.0], grad=True)
    rc, rr = t([-1.5, -2.0]), t([-1.5, -1.0])
    # h = [1, 0]
    losses, ch, rj = c.call("sigmoid", fn, pc, pr, rc, rr, beta=0.5, n_out=3)
    c.close(
        "sigmoid: -logsigmoid(0.5 * h) for h = [1, 0]",
        losses,
        [0.4740770, 0.6931472],
        kind="tensor",
        hint=(
            "beta scales the margin difference h INSIDE the sigmoid; h is the policy's margin "
            "(chosen minus rejected) minus the reference's",
            "-beta * logsigmoid(h) is not the same loss; h = [1, 0] here",
        ),
    )
    c.grad(
        "d mean loss / d pi_chosen = -beta * sigmoid(-beta h) / B",
        losses.mean(),
        {"pi_chosen": pc},
        {"pi_chosen": [-0.0943852, -0.125]},
    )
    c.close(
        "chosen rewards beta * (pi_c - ref_c)",
        ch,
        [0.25, 0.0],
        hint="the implicit reward is beta times (policy minus reference) log-prob",
    )
    c.close(
        "rejected rewards beta * (pi_r - ref_r)",
        rj,
        [-0.25, 0.0],
        hint="the implicit reward is beta times (policy minus reference) log-prob",
    )
    c.true(
        "rewards detached",
        not ch.requires_grad and not rj.requires_grad,
        "detached rewards",
        "rewards with requires_grad=True",
        hint="the implicit rewards are for logging: no gradient",
    )
    c.close(
        "label_smoothing 0.1 (cDPO)",
        c.call("cdpo", fn, pc, pr, rc, rr, beta=0.5, label_smoothing=0.1, n_out=3)[0],
        [0.5240770, 0.6931472],
        hint=(
            "label smoothing ls mixes in the loss of the SWAPPED pair with "
            "weight ls: (1-ls) * loss(h) + ls * loss(-h)",
            "ls = 0 must give plain DPO",
        ),
    )
    c.close(
        "ipo: (h - 1/(2 beta))^2",
        c.call("ipo", fn, pc, pr, rc, rr, beta=0.5, loss_type="ipo", n_out=3)[0],
        [0.0, 1.0],
        hint="'ipo' is the squared distance of h (not beta*h) from 1/(2 beta)",
    )
    c.close(
        "hinge: relu(1 - beta h)",
        c.call("hinge", fn, pc, pr, rc, rr, beta=0.5, loss_type="hinge", n_out=3)[0],
        [0.5, 1.0],
        hint="'hinge' is relu(1 - beta * h)",
    )
    c.raises("beta = 0", ValueError, fn, pc, pr, rc, rr, beta=0.0)
    c.raises("unknown loss_type", ValueError, fn, pc, pr, rc, rr, loss_type="kto")
    c.raises("shapes [2] vs [3]", ValueError, fn, pc, pr, rc, t([0.0, 0.0, 0.0]))


@register(
    "dpo_batch_loss",
    (
        "one forward over all 2B rows, sequence log-probs (exercise 7.1), then the "
        "mean DPO loss (exercise 7.2) of the pairs; pair i is row i (chosen) and "
        "row B + i (rejected), for the policy and for ref_logps alike",
        "rows 0..B-1 are chosen, rows B..2B-1 rejected: split in halves, not even/odd rows",
    ),
)
def _dpo_batch_loss(fn, c):
    # uniform logits over 4 tokens: a sequence log-prob is n_tokens * ln 1/4
    batch = {
        "input_ids": torch.tensor([[0, 1], [0, 2], [0, 3], [0, 1]]),
        "labels": torch.tensor([[1, 2], [2, -100], [3, -100], [1, 2]]),
        "completion_mask": torch.tensor([[1, 1], [1, 0], [1, 0], [1, 1]]),
        "ref_logps": t([-3.0, -1.0, -1.5, -2.0]),
    }
    model = ToyLM()
    # pi = [-2 ln4, -ln4 | -ln4, -2 ln4], ref = [-3, -1 | -1.5, -2]; h = [1.5 - ln 4, ln 4 - 1]
    loss, stats = c.call("two pairs", fn, model, batch, beta=0.5, n_out=2)
    h = [1.5 - 2 * LN2, 2 * LN2 - 1]
    want = sum(math.log1p(math.exp(-0.5 * x)) for x in h) / 2
    c.close(
        "mean of -logsigmoid(0.5 * h)",
        loss,
        want,
        kind="tensor",
        hint=(
            "pair i is row i (chosen) and row B + i (rejected): rows 0..B-1 are the chosen "
            "half, for the policy log-probs and for ref_logps alike",
            "split the 2B rows in two halves (not even/odd rows); chosen first",
        ),
    )
    c.true(
        "stats keys",
        isinstance(stats, dict) and {"chosen_rewards", "rejected_rewards", "logps"} <= set(stats),
        "a dict with chosen_rewards, rejected_rewards, logps",
        repr(stats)[:200],
    )
    c.close(
        "logps (policy sequence log-probs)", stats["logps"], [-2.7725887, -1.3862944, -1.3862944, -2.7725887]
    )
    c.close("chosen_rewards = beta * (pi_c - ref_c)", stats["chosen_rewards"], [0.1137056, -0.1931472])
    c.close("rejected_rewards = beta * (pi_r - ref_r)", stats["rejected_rewards"], [0.0568528, -0.3862944])
    c.grad("gradient reaches the model", loss, {"table": model.table.weight})
    loss, _ = c.call("average", fn, ToyLM(), batch, beta=0.5, average=True, n_out=2)
    # average: pi = -ln 4 for every row -> h = [0 - (-1.5), 0 - 1] = [1.5, -1]
    c.close(
        "average=True",
        loss,
        (math.log1p(math.exp(-0.75)) + math.log1p(math.exp(0.5))) / 2,
        hint="`average` changes the sequence log-probs (exercise 7.1's argument)",
    )
    odd = {k: v[:3] for k, v in batch.items()}
    c.raises("3 rows (odd)", ValueError, fn, ToyLM(), odd)
    c.raises("ref_logps [2] for 4 rows", ValueError, fn, ToyLM(), {**batch, "ref_logps": t([0.0, 0.0])})
