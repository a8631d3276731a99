"""Visible checks of unit 09 (course_lib/rlvr.py): exercises 9.1-9.7."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import GARBAGE, LN2, PAD_HINT, padded, register, t


# ------------------------------------------------------------------------------ 9.1 format
@register(
    "think_format_reward",
    (
        "1.0 only when the WHOLE completion (outer whitespace aside) is one think block followed "
        "by one answer block, both with non-empty content and no tag inside; 0.0 otherwise",
        "anything before <think> or after </answer> (or between </think> and <answer>, other than "
        "whitespace) breaks the format; so does a repeated or nested tag",
    ),
)
def _think_format_reward(fn, c):
    good = [
        ("plain", "<think>2 + 3 = 5</think><answer>5</answer>"),
        ("outer whitespace and newlines", "  <think>carry the 1\nthen add</think>\n <answer> 15 </answer>\n"),
    ]
    for case, text in good:
        c.close(
            f"in format: {case}",
            c.call(case, fn, text),
            1.0,
            kind="float",
            hint=(
                "a completion in the format scores 1.0; whitespace around the whole completion, "
                "between the blocks and inside them is allowed, and the think text may span lines",
                "the contents may contain newlines: make sure your pattern's wildcard matches them",
            ),
        )
    bad = [
        ("text after </answer>", "<think>x</think><answer>5</answer> and more", "WHOLE"),
        ("text before <think>", "So: <think>x</think><answer>5</answer>", "WHOLE"),
        ("text between the blocks", "<think>x</think> so <answer>5</answer>", "WHOLE"),
        ("empty think", "<think>  </think><answer>5</answer>", "non-empty"),
        ("empty answer", "<think>x</think><answer>\n</answer>", "non-empty"),
        ("no think block", "<answer>5</answer>", "think block"),
        ("no answer block", "<think>the answer is 5</think>", "answer block"),
        ("blocks swapped", "<answer>5</answer><think>x</think>", "think block followed"),
        ("two answer blocks", "<think>x</think><answer>4</answer><answer>5</answer>", "no tag inside"),
        ("nested think", "<think>a <think>b</think><answer>5</answer>", "no tag inside"),
    ]
    for case, text, phrase in bad:
        c.close(
            f"not in format: {case}",
            c.call(case, fn, text),
            0.0,
            kind="float",
            hint=(
                f"this completion is not in the format ({case}) and must score 0.0: the format "
                f"is the WHOLE completion = one think block followed by one answer block, each "
                f"non-empty with no tag inside",
                f"property that failed here: {phrase}",
            ),
        )


# ------------------------------------------------------------------------------ 9.2 answer
@register(
    "answer_reward",
    (
        "1.0 when the stripped text of the LAST complete answer block equals the stripped "
        "reference answer, else 0.0",
        "a block needs both tags; an `answer` that is an int compares as its string; the "
        "comparison is exact (no substring match)",
    ),
)
def _answer_reward(fn, c):
    cases = [
        ("one block", "<think>2+3</think><answer>5</answer>", "5", 1.0, "exact"),
        ("int answer, whitespace", "<answer> 42 \n</answer>", 42, 1.0, "stripped"),
        ("multi-line block", "<answer>\n7\n</answer>", "7", 1.0, "newlines"),
        ("the LAST block counts", "<answer>4</answer> wait, <answer>5</answer>", "5", 1.0, "LAST"),
        ("not the first block", "<answer>4</answer> wait, <answer>5</answer>", "4", 0.0, "LAST"),
        ("last COMPLETE block", "<answer>5</answer> and then <answer>6", "5", 1.0, "both tags"),
        ("no closing tag", "<answer>5", "5", 0.0, "both tags"),
        ("no block at all", "the answer is 5", "5", 0.0, "both tags"),
        ("exact, not a substring", "<answer>15</answer>", "5", 0.0, "exact"),
        ("answer outside the block", "<answer>x</answer> 5", "5", 0.0, "inside"),
    ]
    for case, text, ans, want, phrase in cases:
        c.close(
            case,
            c.call(case, fn, text, ans),
            want,
            kind="float",
            hint=(
                f"the text inside the LAST complete answer block (it may span lines), stripped, "
                f"must equal the stripped answer exactly ({phrase})",
                "blocks are read left to right, each from <answer> to the first </answer> after "
                "it; their contents may span lines; an `answer` given as an int compares as its string",
            ),
        )


# ------------------------------------------------------------------------------ 9.3 sequence ratio
SEQ = (
    "for each row: the sum of (logp - old_logp) over ITS completion tokens divided by ITS number "
    "of completion tokens (the log of the geometric mean of the token ratios)",
    "padding positions (mask 0) must count neither in the sum nor in the length; return the LOG "
    "ratio, not the ratio",
)


@register("sequence_log_ratio", SEQ)
def _sequence_log_ratio(fn, c):
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    old = t([[-1.0, -2.0, -0.5], [-1.5, -1.0, -1.0]])
    # logp - old: row 0 [0.3, -0.1, 0.4] -> 0.6 / 3 = 0.2; row 1 [0.6, pad 5, pad -2] -> 0.6
    logp = (old + t([[0.3, -0.1, 0.4], [0.6, 5.0, -2.0]])).detach().requires_grad_(True)
    got = c.call("padded 2x3", fn, logp, old, mask)
    c.close(
        "padded 2x3: [0.6 / 3, 0.6 / 1]",
        got,
        [0.2, 0.6],
        kind="tensor",
        hint=SEQ,
    )
    c.grad(
        "gradient of 1 * s_0 + 2 * s_1: 1/|o_i| on each completion token of row i",
        (got * t([1.0, 2.0])).sum() if isinstance(got, torch.Tensor) else got,
        {"logp": logp},
        {"logp": [[1 / 3, 1 / 3, 1 / 3], [2.0, 0.0, 0.0]]},
        hint="each completion token of row i moves s_i by 1/|o_i|; padding none",
    )
    c.close(
        "padding holds garbage (logp -1e4, old_logp 1e4 under mask 0): the same ratios",
        c.call("padding garbage", fn, padded(logp, mask, -GARBAGE), padded(old, mask), mask),
        [0.2, 0.6],
        hint=PAD_HINT,
    )
    z = torch.zeros(1, 4)
    c.close(
        "ratios 2 and 1/2 on two tokens: geometric mean 1 -> log 0",
        c.call("geo", fn, t([[LN2, -LN2, 3.0, 3.0]]), z, torch.tensor([[1, 1, 0, 0]])),
        [0.0],
        hint=SEQ,
    )
    c.raises(
        "a row without completion tokens", ValueError, fn, old, old, torch.tensor([[1, 1, 1], [0, 0, 0]])
    )
    c.raises("old_logp [2, 4] for logp [2, 3]", ValueError, fn, old, torch.zeros(2, 4), mask)


# ------------------------------------------------------------------------------ 9.4 the loss
CLIP = (
    "per token the objective is the MINIMUM of rho*A and clip(rho, 1 - eps_low, 1 + eps_high)*A: "
    "the LOWER bound 1 - eps_low acts where A < 0, the UPPER bound 1 + eps_high where A > 0 "
    "(clip-higher: eps_high may differ from eps_low)",
    "row 0 token 1 has rho = 1.5, A = +1: clipped at 1 + eps_high = 1.28; row 1 token 0 has "
    "rho = 0.75, A = -1: clipped at 1 - eps_low = 0.8",
)
STATS = (
    "stats are Python floats: clip_ratio_low = fraction with rho < 1 - eps_low AND A < 0, "
    "clip_ratio_high = fraction with rho > 1 + eps_high AND A > 0, mean_ratio = mean of rho; "
    "over the completion tokens (padding never counts) at level='token', over the B completions "
    "at level='sequence'",
    "padding positions (mask 0) never count; at level='sequence' each completion counts once",
)


def _stats(c, case, stats, want: dict, hint=STATS):
    if not isinstance(stats, dict) or set(stats) != set(want):
        c.fail(case, f"a dict with keys {sorted(want)}", repr(stats)[:200], hint)
    for k, v in want.items():
        c.close(f"{case}: stats[{k!r}]", stats[k], v, kind="float", hint=hint)


@register(
    "rlvr_policy_loss",
    (
        "per completion token: the clipped objective (or CISPO's weighted log-prob) with the "
        "importance weight of `level`, plus the k3 KL if beta > 0, then the reduction of "
        "`loss_type`; stats as TRL logs them",
        "the docstring lists each formula; 'sequence' uses ONE ratio per completion (exercise "
        "9.3), 'cispo' caps the DETACHED weight at eps_high itself",
    ),
)
def _rlvr_policy_loss(fn, c):
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    z = torch.zeros(2, 3)
    A = t([1.0, -2.0])

    # on-policy, token level, grpo: per token -A -> row means -1 and 2 -> 0.5; padding has rho = e
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, stats = c.call(
        "on-policy grpo", fn, logp, t([[0.0, 0.0, 0.0], [0.0, -1.0, -1.0]]), A, mask, n_out=2
    )
    c.close(
        "on-policy, 'grpo': mean of the row means -1 and 2",
        loss,
        0.5,
        kind="tensor",
        hint=(
            "'grpo' averages per completion first (over ITS tokens), then over completions",
            "row means -1 and 2; padding positions (mask 0) must not count",
        ),
    )
    c.grad(
        "on-policy gradient: -A / (|o_i| * B)",
        loss,
        {"logp": logp},
        {"logp": [[-1 / 6, -1 / 6, -1 / 6], [1.0, 0.0, 0.0]]},
        hint="the gradient flows through rho = exp(logp - old_logp) (old_logp is a constant)",
    )
    _stats(c, "on-policy", stats, {"clip_ratio_low": 0.0, "clip_ratio_high": 0.0, "mean_ratio": 1.0})

    c.close(
        "'dapo': (-3 + 2) / 4 completion tokens",
        c.call("dapo", fn, z, z, A, mask, loss_type="dapo", n_out=2)[0],
        -0.25,
        hint="'dapo' divides the masked sum by the number of completion tokens in the batch",
    )
    c.close(
        "'dr_grpo', max_completion_length 4: -1 / (2 * 4)",
        c.call("dr_grpo", fn, z, z, A, mask, loss_type="dr_grpo", max_completion_length=4, n_out=2)[0],
        -0.125,
        hint=(
            "'dr_grpo' divides the masked sum by the constant B * max_completion_length",
            "use max_completion_length when it is given, T = mask.shape[1] otherwise",
        ),
    )
    c.close(
        "'dr_grpo' without max_completion_length: -1 / (2 * 3)",
        c.call("dr_grpo T", fn, z, z, A, mask, loss_type="dr_grpo", n_out=2)[0],
        -1 / 6,
        hint="without max_completion_length, 'dr_grpo' uses T = mask.shape[1]",
    )

    # clip-higher, eps_low 0.2, eps_high 0.28, A = [1, -1]
    # row 0: rho [1.25, 1.5, 1] -> -[1.25, 1.28, 1] -> mean -3.53 / 3; row 1: rho 0.75 -> -min(-0.75, -0.8) = 0.8
    logp = t([[math.log(1.25), math.log(1.5), 0.0], [math.log(0.75), 0.0, 0.0]], grad=True)
    loss, stats = c.call(
        "clip-higher", fn, logp, z, t([1.0, -1.0]), mask, eps_low=0.2, eps_high=0.28, n_out=2
    )
    c.close("clip-higher: ((-1.25 - 1.28 - 1) / 3 + 0.8) / 2", loss, -0.18833333, hint=CLIP)
    c.grad(
        "clip-higher gradient: zero on the clipped tokens",
        loss,
        {"logp": logp},
        {"logp": [[-1.25 / 6, 0.0, -1 / 6], [0.0, 0.0, 0.0]]},
        hint=(
            "where the clipped term is the minimum it is a constant: no gradient there",
            "row 0 token 1 (rho 1.5 > 1.28, A > 0) and row 1 token 0 (rho 0.75 < 0.8, A < 0) are clipped",
        ),
    )
    _stats(
        c,
        "clip-higher",
        stats,
        {"clip_ratio_low": 0.25, "clip_ratio_high": 0.25, "mean_ratio": 1.125},
    )

    # rho outside the range on the side where the min keeps the UNclipped term: nothing is clipped
    # row 0: rho 0.5 with A = +1 -> -0.5; row 1: rho 2 with A = -1 -> -min(-2, -1.2) = 2
    logp = t([[math.log(0.5), 0.0, 0.0], [math.log(2.0), 0.0, 0.0]])
    loss, stats = c.call("rho out of range, A of the other sign", fn, logp, z, t([1.0, -1.0]), mask, n_out=2)
    c.close(
        "rho out of range, A of the other sign: ((-0.5 - 1 - 1) / 3 + 2) / 2", loss, 0.58333333, hint=CLIP
    )
    _stats(
        c,
        "rho out of range, A of the other sign",
        stats,
        {"clip_ratio_low": 0.0, "clip_ratio_high": 0.0, "mean_ratio": 1.125},
        hint=(
            "a token counts as clipped only where the clipped term is the one the min keeps: "
            "rho < 1 - eps_low with A < 0 (low), rho > 1 + eps_high with A > 0 (high); rho 0.5 "
            "with A > 0 and rho 2 with A < 0 are not clipped",
        ),
    )

    # GSPO: logp - old: row 0 [0.3, 0, -0.15] -> s_0 = 0.05; row 1 [0.6, pad, pad] -> s_1 = 0.6
    old = t([[-1.0, -2.0, -0.5], [-1.5, -1.0, -1.0]])
    logp = (old + t([[0.3, 0.0, -0.15], [0.6, 4.0, -3.0]])).detach().requires_grad_(True)
    A = t([1.0, 2.0])
    r0, r1 = math.exp(0.05), math.exp(0.6)
    loss, stats = c.call("sequence", fn, logp, old, A, mask, level="sequence", n_out=2)
    seq_hint = (
        "level='sequence' (GSPO): ONE ratio per completion, rho_i = exp(length-normalised "
        "sequence log-ratio of exercise 9.3), clipped like a token ratio and used for every token "
        "of the row",
        f"rho_0 = exp(0.05) = {r0:.6f} (inside the clip range), rho_1 = exp(0.6) > 1.2 with A = 2 (clipped)",
    )
    c.close("GSPO 'grpo': (-rho_0 - 1.2 * 2) / 2", loss, (-r0 - 2.4) / 2, hint=seq_hint)
    c.grad(
        "GSPO gradient: -A_0 * rho_0 / (|o_0| * B) on row 0, 0 on the clipped row 1",
        loss,
        {"logp": logp},
        {"logp": [[-r0 / 6] * 3, [0.0, 0.0, 0.0]]},
        hint=seq_hint,
    )
    _stats(
        c,
        "GSPO",
        stats,
        {"clip_ratio_low": 0.0, "clip_ratio_high": 0.5, "mean_ratio": (r0 + r1) / 2},
    )
    c.close(
        "GSPO with 'dapo': each row's loss counted once per token, (3 * l_0 + 1 * l_1) / 4",
        c.call("sequence dapo", fn, logp.detach(), old, A, mask, level="sequence", loss_type="dapo", n_out=2)[
            0
        ],
        (-3 * r0 - 2.4) / 4,
        hint=(
            "at level='sequence' the row's loss is the per-token loss of each of its tokens; the "
            "reduction of loss_type is then applied as usual",
            "with 'dapo' a completion of 3 tokens weighs 3 times a completion of 1 token",
        ),
    )

    # CISPO, eps_high = 1.5 (the cap itself): rho row 0 [1, 2, 1], row 1 [0.5]; A = [1, -2]
    logp = t([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]], grad=True)
    old = (logp - t([[0.0, LN2, 0.0], [-LN2, 0.0, 0.0]])).detach()
    cispo_hint = (
        "'cispo': per token -w * A * logp with w = min(rho, eps_high) -- eps_high is the cap "
        "itself, not 1 + eps_high -- and w carries NO gradient; reduced like 'dapo'",
        "w = [1, 1.5, 1] and [0.5]: per-token losses [1, 3, 0.5] and [-1], sum 3.5 over 4 tokens; the "
        "gradient w.r.t. logp is -w * A / 4",
    )
    loss, stats = c.call(
        "cispo", fn, logp, old, t([1.0, -2.0]), mask, eps_high=1.5, loss_type="cispo", n_out=2
    )
    c.close("CISPO: (1 + 3 + 0.5 - 1) / 4", loss, 0.875, hint=cispo_hint)
    c.grad(
        "CISPO gradient: -w * A / 4, w detached",
        loss,
        {"logp": logp},
        {"logp": [[-0.25, -0.375, -0.25], [0.25, 0.0, 0.0]]},
        hint=cispo_hint,
    )
    _stats(
        c,
        "CISPO",
        stats,
        {"clip_ratio_low": 0.0, "clip_ratio_high": 0.25, "mean_ratio": 1.125},
        hint=(
            "for 'cispo': clip_ratio_high = fraction with rho > eps_high (the cap) AND A > 0, "
            "clip_ratio_low = 0.0, mean_ratio = mean of rho over the completion tokens",
            "row 0 token 1 has rho = 2 > 1.5 and A = 1: 1 of the 4 completion tokens",
        ),
    )

    # KL: A = 0, ref - logp = 1 at row 0 token 0 -> k3 = e - 2; beta 0.5, grpo
    ref = t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c.close(
        "KL term beta * k3 with log r = ref_logp - logp",
        c.call("kl", fn, z, z, t([0.0, 0.0]), mask, ref_logp=ref, beta=0.5, n_out=2)[0],
        0.5 * (math.e - 2) / 3 / 2,
        hint=(
            "beta times the k3 estimate per completion token, with log r = ref_logp - logp, "
            "then the usual reduction",
            "unit 02's kl_estimate(logp, ref_logp, 'k3')",
        ),
    )
    A = t([1.0, -2.0])
    # after the cases of each property, so that a wrong property is named by its own case
    loss, stats = c.call(
        "padding garbage",
        fn,
        padded(z, mask, -GARBAGE),
        padded(z, mask),
        A,
        mask,
        ref_logp=padded(z, mask, -2 * GARBAGE),
        beta=0.5,
        n_out=2,
    )
    c.close(
        "padding holds garbage (logp -1e4, old_logp 1e4, ref_logp -2e4), beta 0.5: still 0.5",
        loss,
        0.5,
        hint=PAD_HINT,
    )
    _stats(
        c,
        "padding garbage",
        stats,
        {"clip_ratio_low": 0.0, "clip_ratio_high": 0.0, "mean_ratio": 1.0},
        hint=PAD_HINT,
    )
    c.raises("unknown level", ValueError, fn, z, z, A, mask, level="segment")
    c.raises("unknown loss_type", ValueError, fn, z, z, A, mask, loss_type="ppo")
    c.raises("advantages [3] for B = 2", ValueError, fn, z, z, t([1.0, 2.0, 3.0]), mask)
    c.raises("beta > 0 without ref_logp", ValueError, fn, z, z, A, mask, beta=0.1)


# ------------------------------------------------------------------------------ 9.5 dynamic sampling
@register(
    "dynamic_sampling_mask",
    (
        "one flag per completion: True for every member of a GROUP (a contiguous run of "
        "group_size rewards) whose rewards are not all equal, False for every member of a group "
        "whose rewards all agree",
        "decide per group, not over the whole batch; rows 0..G-1 are the first prompt's group; "
        "return a bool tensor of the rewards' length",
    ),
)
def _dynamic_sampling_mask(fn, c):
    r = t([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0])
    got = c.call("4 groups of 3", fn, r, 3)
    want = [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    c.true(
        "a bool tensor",
        isinstance(got, torch.Tensor) and got.dtype == torch.bool,
        "a torch.Tensor of dtype torch.bool",
        f"{type(got).__name__} {getattr(got, 'dtype', '')}",
        hint="return a bool tensor with one flag per completion",
    )
    c.close(
        "groups all-1 / mixed / all-0 / mixed",
        got,
        want,
        hint=(
            "one flag per completion; each GROUP (a contiguous run of group_size rewards) keeps or "
            "drops all its members: kept when its rewards are not all equal",
            "group 0 = [1, 1, 1] (all agree: dropped), group 1 = [0, 1, 0] (kept)",
        ),
    )
    c.close(
        "groups of 2: [0, 0] dropped, [0, 1] kept",
        c.call("pairs", fn, t([0.0, 0.0, 0.0, 1.0]), 2),
        [False, False, True, True],
        hint="each GROUP decides on its own: a batch with some variation can still hold a uniform group",
    )
    c.raises("7 rewards, group_size 3", ValueError, fn, t([1.0] * 7), 3)
    c.raises("2-D rewards", ValueError, fn, torch.zeros(2, 3), 3)


# ------------------------------------------------------------------------------ 9.6 overlong penalty
OVERLONG = (
    "per completion of length L (EOS included, as given): 0 while L <= Lmax - buffer, then a "
    "straight line (Lmax - buffer - L) / buffer that reaches exactly -1.0 at L == Lmax, and -1.0 "
    "for every L > Lmax -- never positive, never below -1",
    "with Lmax = 10 and buffer = 4 the penalty starts after L = 6 and falls by 1/4 per token: "
    "L = 7 -> -0.25, L = 10 -> -1.0",
)


@register("overlong_penalty", OVERLONG)
def _overlong_penalty(fn, c):
    got = c.call("int lengths", fn, torch.tensor([3, 7]), 10, 4)
    c.true(
        "a float tensor",
        isinstance(got, torch.Tensor) and got.dtype == torch.float32,
        "a torch.Tensor of dtype torch.float32",
        f"{type(got).__name__} {getattr(got, 'dtype', '')}",
        hint=(
            "return a float32 tensor even when the lengths are integers: the penalty is a "
            "fraction, and integer arithmetic rounds it away",
            "convert the lengths to float before dividing by the buffer",
        ),
    )
    c.close(
        "the boundaries, Lmax 10, buffer 4: L = 6 and L = 10",
        c.call("boundaries", fn, torch.tensor([6, 10]), 10, 4),
        [0.0, -1.0],
        hint=(
            "off by one at a boundary, or the wrong sign: L == Lmax - buffer is still free (0.0) "
            "and L == Lmax gets exactly -1.0 (a penalty is NEGATIVE); count L as given (EOS "
            "included, nothing subtracted) and fall by 1/buffer per token",
            "L = 6 -> 0.0, L = 10 -> (6 - 10) / 4 = -1.0",
        ),
    )
    c.close(
        "inside the buffer, Lmax 10, buffer 4: L = 7, 8, 9",
        c.call("inside the buffer", fn, torch.tensor([7, 8, 9]), 10, 4),
        [-0.25, -0.5, -0.75],
        hint=(
            "inside the buffer the penalty is (Lmax - buffer - L) / buffer: NEGATIVE (never "
            "positive), one more token = 1/buffer more penalty, counting L as given (EOS "
            "included, nothing subtracted)",
            "L = 7 is one token past Lmax - buffer = 6: -1/4",
        ),
    )
    c.close(
        "beyond the budget, Lmax 10, buffer 4: L = 11, 30",
        c.call("beyond", fn, torch.tensor([11, 30]), 10, 4),
        [-1.0, -1.0],
        hint=(
            "past Lmax the penalty stays at -1.0: the straight line stops at L == Lmax, it does "
            "not keep falling below -1",
            "L = 11 -> -1.0, not (6 - 11) / 4",
        ),
    )
    c.close(
        "short ones free, buffer = Lmax = 4: L = 0, 2, 4, 5",
        c.call("buffer = Lmax", fn, torch.tensor([0.0, 2.0, 4.0, 5.0]), 4, 4),
        [0.0, -0.5, -1.0, -1.0],
        hint="with buffer == Lmax the ramp starts at L = 0: (0 - L) / 4",
    )
    lengths = torch.tensor([2.0, 9.0, 12.0])
    c.call("no mutation", fn, lengths, 10, 4)
    c.true(
        "the input is not modified",
        lengths.tolist() == [2.0, 9.0, 12.0],
        "lengths still [2.0, 9.0, 12.0] after the call",
        f"lengths changed to {lengths.tolist()}",
        hint=(
            "your function changed its input in place: the caller's lengths are still needed "
            "after the call (build a new tensor; avoid in-place ops such as sub_, div_, clamp_)",
            "an in-place op (a trailing underscore, or x[...] = ...) on `lengths` writes into the "
            "caller's tensor",
        ),
    )
    c.raises("overlong_buffer 0", ValueError, fn, torch.tensor([3]), 10, 0)
    c.raises("overlong_buffer > max_completion_length", ValueError, fn, torch.tensor([3]), 10, 11)
    c.raises("2-D lengths", ValueError, fn, torch.ones(2, 2), 10, 4)


# ------------------------------------------------------------------------------ 9.7 truncation masking
@register(
    "mask_truncated_completions",
    (
        "a NEW mask of the same shape and dtype: EVERY token of a truncated row (is_truncated "
        "True) is 0, every other row exactly as it was -- the decision is per ROW",
        "multiply each row by 0 or 1 from its own is_truncated flag (one flag per row, [B] -> [B, 1])",
    ),
)
def _mask_truncated_completions(fn, c):
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    trunc = torch.tensor([False, True, False])
    got = c.call("3 rows, row 1 truncated", fn, mask, trunc)
    c.true(
        "the same dtype",
        isinstance(got, torch.Tensor) and got.dtype == mask.dtype,
        f"a torch.Tensor of dtype {mask.dtype} (the mask's)",
        f"{type(got).__name__} {getattr(got, 'dtype', '')}",
        hint=(
            "return the mask in its own dtype (an int64 mask stays int64): the loss multiplies "
            "and sums it, and a bool mask would change that arithmetic",
            "convert the row flags to the mask's dtype before multiplying",
        ),
    )
    c.close(
        "row 1 truncated: all its tokens 0, rows 0 and 2 unchanged",
        got,
        [[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
        hint=(
            "EVERY token of a truncated row is 0 (not only its last one); rows that ended with "
            "EOS keep their mask exactly (padding stays 0); the flag True means truncated",
            "row 1 has is_truncated True: [0, 0, 0, 0]; rows 0 and 2 are returned as they were",
        ),
    )
    square = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    c.close(
        "a square float mask [3, 3], rows 0 and 2 truncated",
        c.call("square", fn, square, torch.tensor([True, False, True])),
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
        hint=(
            "the flag of row i decides row i: one flag per ROW (broadcast [B] as a column "
            "[B, 1]), not per column",
            "mask * flags broadcasts a [B] tensor along the LAST dimension, i.e. per column",
        ),
    )
    mask2 = torch.tensor([[1, 1, 0], [1, 1, 1]])
    c.call("no mutation", fn, mask2, torch.tensor([False, True]))
    c.true(
        "the input is not modified",
        mask2.tolist() == [[1, 1, 0], [1, 1, 1]],
        "completion_mask still [[1, 1, 0], [1, 1, 1]] after the call",
        f"completion_mask changed to {mask2.tolist()}",
        hint=(
            "your function changed its input in place: the caller's mask is still needed (the "
            "trainer's metrics read it), so return a new tensor",
            "an in-place op (mul_, masked_fill_, or mask[i] = 0) writes into the caller's tensor",
        ),
    )
    c.raises("is_truncated [3] for B = 2", ValueError, fn, mask2, torch.tensor([True, False, True]))
    c.raises("is_truncated as 0/1 floats", ValueError, fn, mask2, torch.tensor([0.0, 1.0]))
    c.raises("1-D completion_mask", ValueError, fn, torch.ones(3), torch.tensor([True, False, True]))
