"""Visible checks of unit 02 (course_lib/kl.py): exercises 2.1-2.4."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import GARBAGE, LN2, LN3, PAD_HINT, padded, register, t

STABLE = (
    "the result is not finite for large logits: the log of a probability that underflows to 0 is -inf",
    "torch has a log-softmax that never forms the probabilities first",
)


@register(
    "token_logprobs",
    (
        "out[b, t] = the LOG-probability that the distribution of logits[b, t] "
        "gives to tokens[b, t]: same position, no shifting",
        "normalise over the vocabulary (the last dimension), then pick the token",
    ),
)
def _token_logprobs(fn, c):
    # t0: logits [0,0,0] -> p = 1/3 each;  t1: [0, ln 2, 0] -> p = [1/4, 1/2, 1/4]
    logits = t([[[0.0, 0.0, 0.0], [0.0, LN2, 0.0]]], grad=True)
    tokens = torch.tensor([[2, 1]])
    got = c.call("uniform and skewed", fn, logits, tokens)
    c.close(
        "[[log 1/3, log 1/2]]",
        got,
        [[-1.0986123, -0.6931472]],
        kind="tensor",
        hint=(
            "log-probabilities (<= 0) of the given token at the SAME position, normalised over "
            "the vocabulary (last dimension)",
            "[log 1/3, log 1/2]: position t's logits score position t's token; no shift",
        ),
    )
    c.grad(
        "gradient of the sum",
        got.sum(),
        {"logits": logits},
        {"logits": [[[-1 / 3, -1 / 3, 2 / 3], [-0.25, 0.5, -0.25]]]},
    )
    got = c.call("large logits", fn, t([[[1000.0, 0.0]]]), torch.tensor([[1]]))
    c.close("logits [1000, 0], token 1 -> -1000", got, [[-1000.0]], atol=1e-2, hint=STABLE)
    got = c.call("batch of 2", fn, t([[[0.0, LN3]], [[LN3, 0.0]]]), torch.tensor([[1], [1]]))
    c.close("[[log 3/4], [log 1/4]]", got, [[-0.2876821], [-1.3862944]])
    c.raises(
        "tokens [1, 3] for logits [1, 2, 3]", ValueError, fn, t([[[0.0] * 3] * 2]), torch.tensor([[0, 1, 2]])
    )


SIGN = (
    "the log-ratio is log r = ref_logp - logp (reference over policy), not the other way round",
    "with logp = -1, ref_logp = -2: log r = -1 and k1 = -log r = +1",
)


@register(
    "kl_estimate",
    (
        "each estimator is a function of the per-token log-ratio log r = ref_logp - "
        "logp (reference over policy), as the docstring defines it",
        SIGN[1],
    ),
)
def _kl_estimate(fn, c):
    logp, ref = t([-1.0, -2.0, -0.5], grad=True), t([-2.0, -1.0, -0.5])
    # log r = ref - logp = [-1, 1, 0]
    c.close("k1 = -log r", c.call("k1", fn, logp, ref, "k1"), [1.0, -1.0, 0.0], kind="tensor", hint=SIGN)
    c.close(
        "k2 = (log r)^2 / 2",
        c.call("k2", fn, logp, ref, "k2"),
        [0.5, 0.5, 0.0],
        hint="k2 is HALF the squared log-ratio",
    )
    k3 = c.call("k3", fn, logp, ref, "k3")
    c.close("k3 = exp(log r) - 1 - log r", k3, [0.3678794, 0.7182818, 0.0], hint=SIGN)
    c.close(
        "default kind is k3",
        c.call("default", fn, logp, ref),
        [0.3678794, 0.7182818, 0.0],
        hint="without `kind` the estimator is the signature's default",
    )
    c.grad(
        "d k3 / d logp = 1 - exp(log r)",
        k3.sum(),
        {"logp": logp},
        {"logp": [1 - math.exp(-1), 1 - math.e, 0.0]},
    )
    c.raises("unknown kind 'k4'", ValueError, fn, logp, ref, "k4")
    c.raises("shapes [3] vs [2]", ValueError, fn, logp, t([0.0, 0.0]))


@register(
    "exact_kl",
    (
        "KL(p || q) = sum over the vocabulary of p * (log p - log q), p from the FIRST "
        "argument's logits; one value per distribution (the last dimension is summed)",
        "KL is not symmetric: it weighs by p",
    ),
)
def _exact_kl(fn, c):
    # p = [1/2, 1/2], q = [1/4, 3/4]: KL(p||q) = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3)
    p = t([0.0, 0.0], grad=True)
    got = c.call("two coins", fn, p, t([0.0, LN3]))
    c.close(
        "KL([1/2,1/2] || [1/4,3/4]) = 0.5 ln(4/3)",
        got,
        0.1438410,
        kind="tensor",
        hint=(
            "KL(p||q) is not symmetric: it weighs by p, the distribution of the FIRST argument",
            "KL(q||p) would be 0.1308; a mean over the vocabulary instead of a sum 0.0719",
        ),
    )
    c.grad("gradient", got, {"p_logits": p})
    c.close(
        "identical distributions -> 0",
        c.call("same", fn, t([[1.0, 2.0, 3.0]]), t([[1.0, 2.0, 3.0]])),
        [0.0],
        hint="one KL per distribution: reduce the LAST dimension only",
    )
    c.close(
        "logits shifted by a constant describe the same distribution",
        c.call("shift", fn, t([5.0, 5.0]), t([7.0, 7.0 + LN3])),
        0.1438410,
        hint="logits are unnormalised: normalise both before comparing",
    )
    c.close(
        "large logits [1000, 0] vs [0, 1000] -> 1000",
        c.call("large", fn, t([1000.0, 0.0]), t([0.0, 1000.0])),
        1000.0,
        atol=1e-2,
        hint=STABLE,
    )
    got = c.call("shape", fn, torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    c.close(
        "[2, 3, 4] logits -> [2, 3]",
        got,
        [[0.0] * 3] * 2,
        hint="one KL per distribution: reduce the LAST dimension only",
    )


@register(
    "kl_penalized_rewards",
    (
        "every response token gets the penalty -beta * (logp - ref_logp); "
        "the score is added on each row's LAST response token; padding "
        "positions (mask 0) stay 0",
        "under right padding, position -1 can be padding: find the last position where the mask is 1",
    ),
)
def _kl_penalized_rewards(fn, c):
    scores = t([1.0, 2.0])
    logp = t([[-1.0, -1.0, -1.0], [-2.0, -2.0, 5.0]])
    ref = t([[-1.5, -1.0, -0.5], [-1.0, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # k1 = logp - ref: [[0.5, 0, -0.5], [-1, 0, (5: padding)]]; -0.1 * k1 = [[-.05, 0, .05], [.1, 0, 0]]
    got = c.call("batch", fn, scores, logp, ref, mask, 0.1)
    c.close(
        "[[-0.05, 0, 0.05 + 1], [0.1, 0 + 2, 0 (padding)]]",
        got,
        [[-0.05, 0.0, 1.05], [0.1, 2.0, 0.0]],
        kind="tensor",
        hint=(
            "each response token gets the KL penalty (a token the policy finds MORE "
            "likely than the reference is penalised) and each row's LAST response "
            "token also gets the score; padding stays exactly 0",
            "the per-token part is -beta * k1, k1 = logp - ref_logp, times the mask",
        ),
    )
    c.close(
        "padding holds garbage (logp -1e4, ref_logp +1e4 under mask 0): the same rewards",
        c.call("padding garbage", fn, scores, padded(logp, mask, -GARBAGE), padded(ref, mask), mask, 0.1),
        [[-0.05, 0.0, 1.05], [0.1, 2.0, 0.0]],
        hint=PAD_HINT,
    )
    got = c.call("beta 0", fn, scores, logp, ref, mask, 0.0)
    c.close(
        "beta = 0: only the scores on the last response tokens",
        got,
        [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]],
        hint=(
            "the score goes on the LAST position where mask == 1 (row 1's last position is padding)",
            "under right padding that position is mask.sum(-1) - 1",
        ),
    )
    c.raises(
        "a row with an all-zero mask",
        ValueError,
        fn,
        scores,
        logp,
        ref,
        torch.tensor([[1, 1, 1], [0, 0, 0]]),
        0.1,
    )
    c.raises("scores [3] for a batch of 2", ValueError, fn, t([1.0, 2.0, 3.0]), logp, ref, mask, 0.1)
