"""Visible checks of unit 05 (course_lib/ppo.py): exercises 5.1-5.6."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import GARBAGE, LN2, LN3, PAD_HINT, fmt, padded, register, t


@register(
    "compute_gae",
    (
        "generalised advantage estimation: each advantage collects the discounted FUTURE "
        "TD errors (a backward recursion over time); padding contributes nothing; the "
        "returns are advantages plus values",
        "after the last response token V = A = 0; zero rewards and values where "
        "the mask is 0 before the recursion",
    ),
)
def _compute_gae(fn, c):
    # gamma 0.9, lam 0.5, r = [0, 0, 1], V = 0.5: A2 = 1 - 0.5 = 0.5;
    # A1 = (0 + 0.45 - 0.5) + 0.45*0.5 = 0.175; A0 = -0.05 + 0.45*0.175 = 0.02875
    values = t([[0.5, 0.5, 0.5]], grad=True)
    adv, ret = c.call("1x3", fn, t([[0.0, 0.0, 1.0]]), values, torch.ones(1, 3), gamma=0.9, lam=0.5, n_out=2)
    c.close(
        "advantages, gamma 0.9, lam 0.5",
        adv,
        [[0.02875, 0.175, 0.5]],
        kind="tensor",
        hint=(
            "an advantage collects the FUTURE: A_t depends on A_{t+1}, discounted by gamma * lam",
            "loop t from T-1 down to 0; both gamma and lam enter",
        ),
    )
    c.close(
        "returns = advantages + values",
        ret,
        [[0.52875, 0.675, 1.0]],
        hint="the returns (value targets) are the advantages PLUS the values",
    )
    c.true(
        "no gradient",
        not adv.requires_grad and not ret.requires_grad,
        "advantages/returns that do not require grad",
        "tensors with requires_grad=True",
        hint="advantages and returns are targets: no gradient may flow into them",
    )
    # padded: r = [0, 1, (5)], V = [0.5, 0.5, (9)], gamma = lam = 1 -> zeroed r/V:
    # A2 = 0 -> masked; A1 = 1 - 0.5 = 0.5; A0 = 0 + 0.5 - 0.5 + 0.5 = 0.5
    adv, ret = c.call(
        "padding",
        fn,
        t([[0.0, 1.0, 5.0]]),
        t([[0.5, 0.5, 9.0]]),
        torch.tensor([[1, 1, 0]]),
        gamma=1.0,
        lam=1.0,
        n_out=2,
    )
    c.close(
        "padding is ignored (rewards/values zeroed, V after the end = 0)",
        adv,
        [[0.5, 0.5, 0.0]],
        hint=(
            "rewards and values under mask 0 (padding) must not reach the real tokens; outputs "
            "are 0 on padding",
            "multiply rewards and values by the mask BEFORE the recursion",
        ),
    )
    c.close("returns with padding", ret, [[1.0, 1.0, 0.0]])
    pad_mask = torch.tensor([[1, 1, 0]])
    adv, ret = c.call(
        "padding garbage",
        fn,
        padded(t([[0.0, 1.0, 0.0]]), pad_mask),
        padded(t([[0.5, 0.5, 0.0]]), pad_mask, -GARBAGE),
        pad_mask,
        gamma=1.0,
        lam=1.0,
        n_out=2,
    )
    c.close(
        "padding holds garbage (rewards 1e4, values -1e4): advantages", adv, [[0.5, 0.5, 0.0]], hint=PAD_HINT
    )
    c.close(
        "padding holds garbage (rewards 1e4, values -1e4): returns", ret, [[1.0, 1.0, 0.0]], hint=PAD_HINT
    )
    adv, _ = c.call("defaults", fn, t([[0.0, 0.0, 1.0]]), torch.zeros(1, 3), torch.ones(1, 3), n_out=2)
    c.close("defaults gamma=1, lam=0.95: [0.95^2, 0.95, 1]", adv, [[0.9025, 0.95, 1.0]])


@register(
    "whiten",
    (
        "(x - mean) / std with the mean and the Bessel-corrected variance of the MASKED "
        "entries only, applied to every position",
        "Bessel: divide the squared deviations by (n - 1); eps 1e-8 inside the square root",
    ),
)
def _whiten(fn, c):
    x, mask = t([[1.0, 3.0, 5.0, 100.0]]), torch.tensor([[1, 1, 1, 0]])
    # masked mean 3, Bessel variance (4 + 0 + 4) / 2 = 4 -> std 2
    got = c.call("basic", fn, x, mask)
    c.close(
        "mean 3, std 2 (Bessel)",
        got,
        [[-1.0, 0.0, 1.0, 48.5]],
        kind="tensor",
        hint=(
            "statistics over the masked entries only, with the Bessel-corrected variance "
            "(n - 1 in the denominator); every position is transformed",
            "here n = 3: var = (4 + 0 + 4) / 2 = 4; dividing by n gives +-1.2247",
        ),
    )
    c.close(
        "padding holds garbage (1e4): the statistics do not move, the padding is transformed too",
        c.call("padding garbage", fn, padded(x, mask), mask),
        [[-1.0, 0.0, 1.0, (GARBAGE - 3.0) / 2.0]],
        hint=PAD_HINT,
    )
    c.close(
        "shift_mean=False adds the mean back",
        c.call("no shift", fn, x, mask, shift_mean=False),
        [[2.0, 3.0, 4.0, 51.5]],
        hint="shift_mean=False keeps the original mean: (x - mean)/std + mean",
    )
    c.raises("only one masked entry", ValueError, fn, x, torch.tensor([[1, 0, 0, 0]]))


@register(
    "ppo_policy_loss",
    (
        "per token the PESSIMISTIC (larger) of the unclipped loss -A*rho and the "
        "clipped one -A*clip(rho); masked mean; the clip fraction counts tokens "
        "where the clipped term is strictly larger",
        "rho = exp(logp - old_logp): new over old policy",
    ),
)
def _ppo_policy_loss(fn, c):
    rho, adv, mask_ = [1.5, 0.5, 1.1, 0.5, 3.0], [1.0, 1.0, -1.0, -1.0, 10.0], [1, 1, 1, 1, 0]
    logp = t([[math.log(r) for r in rho]], grad=True)
    old = torch.zeros(1, 5)
    A = t([adv])
    mask = torch.tensor([mask_])
    # per token: max(-1.5, -1.2) = -1.2 (clipped); max(-0.5, -0.8) = -0.5; 1.1; max(0.5, 0.8) = 0.8
    loss, frac = c.call("5 tokens, last one padding", fn, logp, old, A, mask, 0.2, n_out=2)
    # The second hint quotes what the usual wrong reductions give on THIS case, derived from its
    # numbers so that it always matches what the student sees.
    kept = [(r, a) for r, a, m in zip(rho, adv, mask_) if m]
    unclipped = [-a * r for r, a in kept]
    clipped = [-a * min(max(r, 0.8), 1.2) for r, a in kept]
    n = len(kept)
    un_mean, cl_mean = sum(unclipped) / n, sum(clipped) / n
    low_mean = sum(min(u, v) for u, v in zip(unclipped, clipped)) / n
    every = [max(-a * r, -a * min(max(r, 0.8), 1.2)) for r, a in zip(rho, adv)]
    all_mean = sum(every) / len(every)
    c.close(
        "loss = (-1.2 - 0.5 + 1.1 + 0.8) / 4",
        loss,
        0.05,
        kind="tensor",
        hint=(
            "per token the LARGER (pessimistic) of the unclipped and the clipped loss, averaged "
            "over response tokens only",
            f"-min(objectives) = max(losses); on this case the unclipped term alone gives "
            f"{fmt(un_mean)}, the clipped alone {fmt(cl_mean)}, the smaller of the two per token "
            f"{fmt(low_mean)}, the mean over the padding too {fmt(all_mean)}",
        ),
    )
    c.close(
        "clip fraction 2/4",
        frac,
        0.5,
        hint="a token counts as clipped when the clipped term is strictly larger than the unclipped one",
    )
    c.true(
        "clip fraction detached",
        not frac.requires_grad,
        "clip_fraction without grad",
        "requires_grad=True",
        hint="the clip fraction is a statistic for logging: it carries no gradient",
    )
    c.grad(
        "d loss / d logp: 0 where clipped, -A*rho/4 elsewhere",
        loss,
        {"logp": logp},
        {"logp": [[0.0, -0.125, 0.275, 0.0, 0.0]]},
    )
    loss, frac = c.call(
        "padding garbage",
        fn,
        padded(logp, mask, -GARBAGE),
        padded(old, mask),
        padded(A, mask),
        mask,
        0.2,
        n_out=2,
    )
    c.close("padding holds garbage (logp -1e4, old_logp and A 1e4): the same loss", loss, 0.05, hint=PAD_HINT)
    c.close("padding holds garbage: the same clip fraction", frac, 0.5, hint=PAD_HINT)
    loss, frac = c.call(
        "on-policy",
        fn,
        torch.zeros(2, 2),
        torch.zeros(2, 2),
        t([[1.0, 2.0], [3.0, 4.0]]),
        torch.ones(2, 2),
        n_out=2,
    )
    c.close("rho = 1: loss = -mean(A)", loss, -2.5)
    c.close(
        "rho = 1: nothing is clipped",
        frac,
        0.0,
        hint="with rho = 1 both terms are equal: a token is clipped only when the clipped term is "
        "STRICTLY larger",
    )


@register(
    "ppo_value_loss",
    (
        "0.5 * masked mean of the LARGER of the unclipped squared error and the "
        "squared error of the clipped value (clipped around old_values)",
        "v_clip = old_values + clip(values - old_values, -clip_range, clip_range)",
    ),
)
def _ppo_value_loss(fn, c):
    values = t([[1.0, 2.0, 10.0]], grad=True)
    old, ret = t([[0.5, 2.5, 0.0]]), t([[2.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    # t0: v_clip = 0.7: max(1, 1.69) = 1.69; t1: v_clip = 2.3: max(1, 0.49) = 1 -> 0.5 * 2.69 / 2
    got = c.call("clipping both ways", fn, values, old, ret, mask, 0.2)
    c.close(
        "0.5 * (1.69 + 1) / 2",
        got,
        0.6725,
        kind="tensor",
        hint=(
            "per token the LARGER of the clipped and unclipped squared errors, times 0.5, "
            "averaged over response tokens",
            "the value is clipped around old_values; without 0.5 you get 1.345, with the smaller term 0.3725",
        ),
    )
    c.grad("d loss / d values", got, {"values": values}, {"values": [[0.0, -0.5, 0.0]]})
    c.close(
        "padding holds garbage (values and returns 1e4, old_values -1e4): the same loss",
        c.call(
            "padding garbage",
            fn,
            padded(values, mask),
            padded(old, mask, -GARBAGE),
            padded(ret, mask),
            mask,
            0.2,
        ),
        0.6725,
        hint=PAD_HINT,
    )
    c.close(
        "no clipping needed",
        c.call("small change", fn, t([[1.0]]), t([[1.0]]), t([[3.0]]), torch.ones(1, 1)),
        2.0,
    )


@register(
    "entropy_from_logits",
    (
        "H = -sum_v p_v log p_v of softmax(logits) over the LAST dimension, finite for any logits",
        "log p = logits - logsumexp(logits) never takes the log of an underflowed probability",
    ),
)
def _entropy(fn, c):
    logits = t([[0.0, 0.0, 0.0, 0.0], [0.0, LN3, -1e9, -1e9]], grad=True)
    got = c.call("uniform / two-point", fn, logits)
    # uniform over 4: ln 4; p = [1/4, 3/4]: -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623351
    c.close(
        "[ln 4, H(1/4, 3/4)]",
        got,
        [1.3862944, 0.5623351],
        kind="tensor",
        hint=(
            "an entropy is >= 0, one per distribution (the last dimension), and stays finite when a "
            "probability underflows to 0 (the -1e9 logits here): not finite means 0 * log 0 "
            "was formed",
            "if a probability underflows to 0, 0 * log 0 is nan: avoid forming log p directly",
        ),
    )
    c.grad("gradient", got.sum(), {"logits": logits})
    c.close(
        "large logits [1000, 0, 0] -> 0",
        c.call("large", fn, t([1000.0, 0.0, 0.0])),
        0.0,
        hint=(
            "the entropy is not finite for large logits: 0 * log 0 gives nan",
            "log p = logits - logsumexp(logits) is finite where softmax(logits).log() is not",
        ),
    )
    c.close(
        "[2, 3, 5] -> [2, 3]",
        c.call("shape", fn, torch.zeros(2, 3, 5)),
        [[math.log(5)] * 3] * 2,
        hint="one entropy per distribution: reduce the LAST dimension only",
    )


def _parts_seen(stats) -> str:
    """Tier 2 of the loss case: the parts as the student's own stats report them, next to the
    expected ones, so the part that is off shows (the parts themselves passed their checks)."""
    want = {"policy_loss": 2.5, "value_loss": 0.25, "entropy": LN2}
    try:
        got = ", ".join(f"{k} {fmt(float(stats[k]))} (expected {fmt(v)})" for k, v in want.items())
    except Exception:  # noqa: BLE001 -- malformed stats are reported by the stats cases
        return "the loss combines the parts with vf_coef = 0.1 and entropy_coef = 0.01"
    return (
        f"your stats: {got}; if they match, the combination is off: the loss is policy_loss "
        f"+ vf_coef * value_loss - entropy_coef * entropy with vf_coef = 0.1, entropy_coef = 0.01"
    )


@register(
    "ppo_minibatch_loss",
    (
        "loss = policy loss + vf_coef * value loss - entropy_coef * entropy "
        "(the entropy is a BONUS), each built from your exercises 2.1, 3.2, "
        "5.3-5.5; the stats are detached numbers for logging",
        "approx_kl is the masked mean of the k3 estimate of KL(old || current)",
    ),
)
def _ppo_minibatch_loss(fn, c):
    logits = torch.zeros(1, 2, 2, requires_grad=True)  # uniform over 2 tokens: logp = ln 1/2
    values = t([[1.0, 0.0]], grad=True)
    batch = {
        "response_ids": torch.tensor([[0, 1]]),
        "mask": torch.tensor([[1, 1]]),
        "old_logprobs": t([[math.log(0.5), math.log(0.25)]]),  # rho = [1, 2]
        "old_values": t([[1.0, 0.0]]),
        "advantages": t([[1.0, -3.0]]),
        "returns": t([[2.0, 0.0]]),
    }
    # policy: max(-1, -1) = -1; max(6, 3.6) = 6 -> 2.5; value: 0.5 * mean(1, 0) = 0.25; entropy ln 2
    loss, stats = c.call(
        "one minibatch",
        fn,
        logits,
        values,
        batch,
        clip_range=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        entropy_coef=0.01,
        n_out=2,
    )
    c.close(
        "loss = 2.5 + 0.1 * 0.25 - 0.01 * ln 2",
        loss,
        2.5 + 0.025 - 0.01 * LN2,
        kind="tensor",
        hint=(
            "the value loss is weighted by vf_coef, and the entropy is a BONUS (higher entropy, "
            "lower loss) weighted by entropy_coef",
            _parts_seen(stats),
        ),
    )
    c.true(
        "stats keys",
        isinstance(stats, dict)
        and {"policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl"} <= set(stats),
        "policy_loss, value_loss, entropy, clip_fraction, approx_kl",
        str(sorted(stats)) if isinstance(stats, dict) else repr(stats),
    )
    c.close(
        "stats: policy_loss, value_loss, entropy, clip_fraction",
        [float(stats[k]) for k in ("policy_loss", "value_loss", "entropy", "clip_fraction")],
        [2.5, 0.25, LN2, 0.0],
    )
    # approx_kl = masked mean of k3 with log r = logp - old_logprobs = [0, ln 2]: (2 - 1 - ln 2) / 2
    c.close(
        "approx_kl = masked mean of kl_estimate(old_logprobs, logp, 'k3')",
        stats["approx_kl"],
        (1 - LN2) / 2,
        hint=(
            "approx_kl estimates KL(old || current) per response token with k3 and averages it",
            "the OLD log-probs play the role of `logp` in kl_estimate, the current ones of `ref_logp`",
        ),
    )
    c.true(
        "stats detached",
        not any(getattr(v, "requires_grad", False) for v in stats.values()),
        "detached stats",
        str([k for k, v in stats.items() if getattr(v, "requires_grad", False)]),
        hint="the stats are for logging: they carry no gradient",
    )
    c.grad(
        "gradient reaches logits and values",
        loss,
        {"logits": logits, "values": values},
        {"values": [[-0.05, 0.0]]},
    )
    # the same minibatch with a third, padded position holding garbage everywhere; its logits
    # [1e4, -1e4] have entropy 0, so an entropy averaged over the padding too shows
    G = GARBAGE
    pad_logits = t([[[0.0, 0.0], [0.0, 0.0], [G, -G]]], grad=True)
    pad_batch = {
        "response_ids": torch.tensor([[0, 1, 0]]),
        "mask": torch.tensor([[1, 1, 0]]),
        "old_logprobs": t([[math.log(0.5), math.log(0.25), G]]),
        "old_values": t([[1.0, 0.0, -G]]),
        "advantages": t([[1.0, -3.0, G]]),
        "returns": t([[2.0, 0.0, G]]),
    }
    loss, stats = c.call(
        "padding garbage",
        fn,
        pad_logits,
        t([[1.0, 0.0, G]], grad=True),
        pad_batch,
        clip_range=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        entropy_coef=0.01,
        n_out=2,
    )
    c.close("padding holds garbage: the same loss", loss, 2.5 + 0.025 - 0.01 * LN2, hint=PAD_HINT)
    c.close(
        "padding holds garbage: the same stats policy_loss, value_loss, entropy, clip_fraction, approx_kl",
        [float(stats[k]) for k in ("policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl")],
        [2.5, 0.25, LN2, 0.0, (1 - LN2) / 2],
        hint=PAD_HINT,
    )
    c.raises(
        "a batch without 'returns'",
        KeyError,
        fn,
        logits,
        values,
        {k: v for k, v in batch.items() if k != "returns"},
    )
