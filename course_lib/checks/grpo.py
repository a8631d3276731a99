"""Visible checks of unit 06 (course_lib/grpo.py): exercises 6.1-6.6."""

from __future__ import annotations

import math

import torch

from course_lib.checks._checker import GARBAGE, LN2, LN3, PAD_HINT, padded, register, t
from course_lib.checks._toys import ToyLM, toy_rollout


@register(
    "group_advantages",
    (
        "each reward minus the mean of ITS group (groups are contiguous runs of "
        "group_size rows), divided by a spread chosen by `scale`",
        "'group': the group's Bessel std + eps; 'batch': the Bessel std of all "
        "rewards + eps; 'none': no division",
    ),
)
def _group_advantages(fn, c):
    r = t([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
    # group 0: mean 2, std 1; group 1: mean 4/3, std sqrt(16/3) = 2.3094
    c.close(
        "scale='group'",
        c.call("group", fn, r, 3),
        [-0.9999, 0.0, 0.9999, -0.5773253, -0.5773253, 1.1546506],
        kind="tensor",
        hint=(
            "rows 0..2 are one prompt's group, rows 3..5 the next; each group is centred on its "
            "mean and divided by its Bessel-corrected std plus eps",
            "group 0 = [1, 2, 3] has std 1 with Bessel (0.816 without); eps is added to the std",
        ),
    )
    c.close(
        "scale='batch' (std of all 6 = 1.63299)",
        c.call("batch", fn, r, 3, scale="batch"),
        [-0.6123349, 0.0, 0.6123349, -0.8164465, -0.8164465, 1.6328930],
        hint=(
            "'batch' still subtracts each GROUP's mean, but divides by the std of ALL rewards",
            "the Bessel std of all 6 rewards is 1.633",
        ),
    )
    c.close(
        "scale='none' (Dr. GRPO)",
        c.call("none", fn, r, 3, scale="none"),
        [-1.0, 0.0, 1.0, -4 / 3, -4 / 3, 8 / 3],
        hint="'none' only subtracts the group mean",
    )
    c.close(
        "a group with equal rewards -> 0 (eps avoids 0/0)",
        c.call("flat", fn, t([2.0, 2.0, 1.0, 3.0]), 2),
        [0.0, 0.0, -0.7070568, 0.7070568],
        hint="a group whose rewards are all equal has std 0: eps added to the std keeps 0/0 away",
    )
    c.raises("5 rewards, group_size 3", ValueError, fn, t([1.0] * 5), 3)
    c.raises("group_size 1", ValueError, fn, t([1.0, 2.0]), 1)
    c.raises("unknown scale", ValueError, fn, r, 3, scale="median")


@register(
    "rloo_advantages",
    (
        "each reward minus the mean of the OTHER G - 1 rewards of its group (groups are "
        "contiguous runs of group_size rows); no std scaling",
        "the leave-one-out baseline of row i is (group sum - r_i) / (G - 1); equivalently "
        "A_i = G / (G - 1) * (r_i - group mean)",
    ),
)
def _rloo_advantages(fn, c):
    # G = 2: each completion's baseline is its one sibling
    c.close(
        "G=2: [1, 3] -> [1 - 3, 3 - 1]",
        c.call("G=2", fn, t([1.0, 3.0]), 2),
        [-2.0, 2.0],
        kind="tensor",
        hint=(
            "the baseline of a completion is the mean of the OTHER G - 1 rewards of its group: "
            "it leaves the completion itself out (with G = 2 it is the other reward alone)",
            "including r_i in its own baseline gives r_i - mean = [-1, 1], half the RLOO advantage",
        ),
    )
    # G = 4: sum 12, baselines (12 - r) / 3 = [11/3, 10/3, 3, 2]
    c.close(
        "G=4: [1, 2, 3, 6] -> [-8/3, -4/3, 0, 4]",
        c.call("G=4", fn, t([1.0, 2.0, 3.0, 6.0]), 4),
        [-8 / 3, -4 / 3, 0.0, 4.0],
        hint=(
            "the mean of the OTHER rewards divides by G - 1 (there are G - 1 of them), not by G",
            "row 0: baseline (2 + 3 + 6) / 3 = 11/3",
        ),
    )
    c.close(
        "a group with equal rewards -> 0",
        c.call("flat", fn, t([2.0, 2.0, 2.0]), 3),
        [0.0, 0.0, 0.0],
        hint="when every sibling scored the same, no completion beats its baseline",
    )
    # group 0 mean 2 -> 3/2 * [-1, 0, 1]; group 1 mean 4/3 -> 3/2 * [-4/3, -4/3, 8/3]
    c.close(
        "a batch of two groups of 3",
        c.call("batch", fn, t([1.0, 2.0, 3.0, 0.0, 0.0, 4.0]), 3),
        [-1.5, 0.0, 1.5, -2.0, -2.0, 4.0],
        hint=(
            "rows 0..2 are one prompt's group, rows 3..5 the next: the baseline averages the "
            "other rewards of the SAME group only",
            "row 3: baseline (0 + 4) / 2 = 2",
        ),
    )
    got = c.call("int rewards", fn, torch.tensor([1, 0, 1, 1]), 2)
    c.true(
        "integer rewards -> float advantages",
        isinstance(got, torch.Tensor) and got.is_floating_point(),
        "a floating-point tensor",
        repr(got)[:120],
        hint="0/1 rewards may arrive as an integer tensor; advantages are fractions: return floats",
    )
    c.close("integer rewards: values", got, [1.0, -1.0, 0.0, 0.0])
    c.raises("5 rewards, group_size 3", ValueError, fn, t([1.0] * 5), 3)
    c.raises("group_size 1 (no other completion)", ValueError, fn, t([1.0, 2.0]), 1)


@register(
    "reinforce_pp_advantages",
    (
        "subtract each GROUP's mean, then divide by ONE number for the whole batch: the Bessel "
        "std of all the centred rewards, + eps",
        "not the std of the raw rewards (that is group_advantages' 'batch'), not each group's own std",
    ),
)
def _reinforce_pp_advantages(fn, c):
    # one group [1, 3]: centred [-1, 1], Bessel std sqrt(2)
    c.close(
        "G=2: [1, 3] -> [-1, 1] / (sqrt(2) + eps)",
        c.call("G=2", fn, t([1.0, 3.0]), 2),
        [-0.7070568, 0.7070568],
        kind="tensor",
        hint=(
            "centre on the group mean, then divide by the Bessel-corrected std of the centred "
            "rewards plus eps",
            "[-1, 1] has Bessel std sqrt(2) (1 without Bessel)",
        ),
    )
    # centred [-1, 0, 1, -4/3, -4/3, 8/3]: sum of squares 38/3, Bessel var 38/15, std 1.591645
    c.close(
        "a batch of two groups of 3: one std for the batch",
        c.call("batch", fn, t([1.0, 2.0, 3.0, 0.0, 0.0, 4.0]), 3),
        [-0.6282414, 0.0, 0.6282414, -0.8376552, -0.8376552, 1.6753104],
        hint=(
            "divide by the Bessel std of the CENTRED rewards d = r - group mean over the whole "
            "batch (1.5916 here) plus eps; the raw rewards' std (1.633) also counts the gap "
            "between the groups' means",
            "each group is centred on its own mean; only the division is batch-wide",
        ),
    )
    # centred [0, 0, 0, 0, -3, -1, 1, 3]: sum of squares 20, Bessel std sqrt(20/7) = 1.690309
    c.close(
        "G=4, a group with equal rewards stays 0, the other is scaled by the BATCH std",
        c.call("flat group", fn, t([1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 4.0, 6.0]), 4),
        [0.0, 0.0, 0.0, 0.0, -1.774719, -0.591573, 0.591573, 1.774719],
        hint=(
            "one std for the whole batch: a group's own std (sqrt(20/3) for [0, 2, 4, 6]) is "
            "never used, so a flat group cannot blow up the others' scale",
            "batch std of the centred rewards: sqrt(20 / 7) = 1.6903 with Bessel",
        ),
    )
    c.close(
        "eps = 0.5 is added to the std",
        c.call("eps", fn, t([0.0, 1.0]), 2, eps=0.5),
        [-0.4142135, 0.4142135],
        hint="use the eps argument: A = d / (std + eps); here 0.5 / (0.7071 + 0.5)",
    )
    c.raises("5 rewards, group_size 3", ValueError, fn, t([1.0] * 5), 3)
    c.raises("group_size 1", ValueError, fn, t([1.0, 2.0]), 1)


CLIP = (
    "per token the objective is the MINIMUM of the unclipped rho*A and the clipped clip(rho)*A: "
    "a move past the clip range in the direction A favours earns nothing more, a move against it "
    "is never clipped",
    "row 0, token 0 of the second clipping case: rho = 1.5, A = -1 -> the objective is -1.5 "
    "(the unclipped one, the smaller), not the clipped -1.2",
)


@register(
    "grpo_loss",
    (
        "per completion token the pessimistic clipped objective (the docstring's formula) plus "
        "the k3 KL penalty, then the reduction that loss_type names",
        "'grpo' averages within each sequence first, then over sequences; 'bnpo'/'dapo' "
        "divide the masked sum by the number of completion tokens; 'dr_grpo' by "
        "B * max_completion_length",
    ),
)
def _grpo_loss(fn, c):
    z = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    A = t([1.0, -2.0])
    # on-policy (rho = 1), beta = 0: per token -A -> row 0: [-1, -1, -1], row 1: [2, (pad), (pad)]
    # padding positions of row 1 have rho = e: they must not count
    logp, z_pad = torch.zeros(2, 3, requires_grad=True), t([[0.0, 0.0, 0.0], [0.0, -1.0, -1.0]])
    got = c.call("grpo", fn, logp, z_pad, None, A, mask, beta=0.0, loss_type="grpo")
    c.close(
        "grpo: mean(-1, 2) = 0.5",
        got,
        0.5,
        kind="tensor",
        hint=(
            "'grpo' averages per sequence first (over ITS completion tokens), then over "
            "sequences: every sequence weighs the same",
            "row means -1 and 2; a mean over all 4 tokens gives -0.25",
        ),
    )
    c.grad(
        "grpo gradient: -A / (n_tokens(row) * B)",
        got,
        {"logp": logp},
        {"logp": [[-1 / 6, -1 / 6, -1 / 6], [1.0, 0.0, 0.0]]},
        hint="the gradient of rho = exp(logp - old_logp) flows through logp (old_logp is a constant)",
    )
    c.close(
        "bnpo: (-3 + 2) / 4",
        c.call("bnpo", fn, z, z, None, A, mask, beta=0.0, loss_type="bnpo"),
        -0.25,
        hint="'bnpo': the masked sum over the whole batch divided by the number of completion tokens (4)",
    )
    c.close(
        "dapo = bnpo",
        c.call("dapo", fn, z, z, None, A, mask, beta=0.0, loss_type="dapo"),
        -0.25,
        hint="'dapo' reduces like 'bnpo' here (the docstring explains the difference in TRL)",
    )
    c.close(
        "dr_grpo, max_completion_length 4: -1 / (2 * 4)",
        c.call("dr_grpo", fn, z, z, None, A, mask, beta=0.0, loss_type="dr_grpo", max_completion_length=4),
        -0.125,
        hint=(
            "'dr_grpo' divides the masked sum by a CONSTANT: B * max_completion_length",
            "use the max_completion_length argument when it is given",
        ),
    )
    c.close(
        "dr_grpo without max_completion_length uses T = 3",
        c.call("dr_grpo T", fn, z, z, None, A, mask, beta=0.0, loss_type="dr_grpo"),
        -1 / 6,
        hint="without max_completion_length, 'dr_grpo' uses T = mask.shape[1]",
    )
    # clipping, A = [1, -2]: row 0 t0 rho 1.5 -> -min(1.5, 1.2) = -1.2;
    # row 1 t0 rho 0.5 -> -min(-1, -1.6) = 1.6
    # padding positions (rho 1, -A = 2) must not count
    lp = t([[math.log(1.5), 0.0, 0.0], [math.log(0.5), 0.0, 0.0]])
    c.close(
        "clipping helps: mean((-1.2 - 1 - 1)/3, 1.6)",
        c.call("clip", fn, lp, z, None, A, mask, beta=0.0),
        0.2666667,
        hint=CLIP,
    )
    # A = [-1, 2]: row 0 t0 rho 1.5 -> -min(-1.5, -1.2) = 1.5, t1, t2: 1 -> 7/6;
    # row 1 t0 rho 0.5 -> -min(1, 1.6) = -1
    c.close(
        "clipping never helps the other way: mean((1.5 + 1 + 1)/3, -1)",
        c.call("clip other side", fn, lp, z, None, t([-1.0, 2.0]), mask, beta=0.0),
        1 / 12,
        hint=CLIP,
    )
    # KL: A = 0, ref - logp = 1 at row 0 t0: k3 = e - 2; beta 0.5 -> row 0 mean 0.5*(e-2)/3, row 1: 0
    ref = t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c.close(
        "KL term beta * k3 with log r = ref_logp - logp",
        c.call("kl", fn, z, z, ref, t([0.0, 0.0]), mask, beta=0.5),
        0.5 * (math.e - 2) / 3 / 2,
        hint=(
            "the KL penalty is beta times the k3 estimate per completion token, with log r = ref_logp - logp",
            "exercise 2.2's kl_estimate(logp, ref_logp, 'k3')",
        ),
    )
    # after the cases of each property, so that a wrong property is named by its own case
    c.close(
        "padding holds garbage (logp -1e4, old_logp 1e4, ref_logp -2e4), beta 0.5: still 0.5",
        c.call(
            "padding garbage",
            fn,
            padded(z, mask, -GARBAGE),
            padded(z, mask),
            padded(z, mask, -2 * GARBAGE),
            A,
            mask,
            beta=0.5,
            loss_type="grpo",
        ),
        0.5,
        hint=PAD_HINT,
    )
    c.raises("unknown loss_type", ValueError, fn, z, z, None, A, mask, beta=0.0, loss_type="mean")
    c.raises("advantages [3] for B = 2", ValueError, fn, z, z, None, t([1.0, 2.0, 3.0]), mask, beta=0.0)


def _grad_norm_hint(norm) -> tuple[str, str]:
    if isinstance(norm, float) and abs(norm) < 1e-6:
        return (
            "the gradient is ZERO: with old_logp None the ratio exp(logp - old_logp) must be 1 in "
            "value but still depend on logp; here the loss does not depend on the parameters",
            "a copy of logp used as old_logp must carry no gradient of its own",
        )
    if isinstance(norm, float) and norm > 10:
        return (
            "the gradient norm is huge: the stale gradient left in the parameters (100 everywhere) "
            "was added to this step's gradient",
            "clear old gradients BEFORE backward",
        )
    if isinstance(norm, float) and abs(norm - 1.0) < 1e-3:
        return (
            "this is the norm AFTER clipping; report the total norm BEFORE clipping",
            "clip_grad_norm_ returns the norm before it clips",
        )
    return (
        "the gradient norm (before clipping) of this step's loss",
        "clear old gradients before backward; return what clip_grad_norm_ returns",
    )


@register(
    "grpo_step",
    (
        "one step = training mode, log-probs of the completions at the given "
        "temperature (with gradient), grpo_loss, gradients of THIS batch only, clipped, "
        "one optimizer step; return loss, grad_norm (before clipping) and logp",
        "the docstring lists the steps in order",
    ),
)
def _grpo_step(fn, c):
    roll = toy_rollout([[1, 2], [3, 1]], [[1, 1], [1, 0]])
    A = t([1.0, -3.0])
    # uniform logits (zero table): logp = ln 1/4 everywhere; rho = 1; grpo loss = mean(-1, 3) = 1
    model = ToyLM().eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model.table.weight.grad = torch.full_like(model.table.weight, 100.0)  # stale gradient
    out = c.call("on-policy step", fn, model, opt, roll, A, beta=0.0, max_grad_norm=1.0)
    c.true(
        "returns a dict",
        isinstance(out, dict) and {"loss", "grad_norm", "logp"} <= set(out),
        "a dict with loss, grad_norm, logp",
        repr(out)[:200],
    )
    c.close(
        "loss (grpo: mean of the row means -1 and 3)",
        out["loss"],
        1.0,
        kind="float",
        hint="the loss of exercise 6.2 as a Python float; with old_logp None the ratio is exactly 1",
    )
    c.close(
        "logp = ln 1/4 per completion token",
        out["logp"],
        [[-1.3862944] * 2] * 2,
        hint="logp are the log-probabilities of rollout.completion_ids under the model (exercise 2.1 "
        "on sampling.completion_logits)",
    )
    c.close(
        "grad_norm before clipping",
        out["grad_norm"],
        1.4031215,
        kind="float",
        hint=_grad_norm_hint(out["grad_norm"]),
    )
    c.close(
        "the clipped update has norm max_grad_norm = 1",
        model.table.weight.detach().norm(),
        1.0,
        atol=1e-3,
        hint=(
            "the gradient's total norm is clipped to max_grad_norm before the step",
            "between backward and step",
        ),
    )
    c.true(
        "training mode",
        model.training,
        "the model in training mode",
        "model is in eval mode",
        hint="the step must put the model in training mode",
    )
    model = ToyLM()
    out = c.call(
        "with old_logp",
        fn,
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        roll,
        A,
        old_logp=torch.full((2, 2), math.log(0.25) - LN2),
        beta=0.0,
    )
    # rho = 2: row 0 -min(2, 1.2) = -1.2; row 1 -min(-6, -3.6) = 6 -> mean 2.4
    c.close(
        "given old_logp (rho = 2, clipped)",
        out["loss"],
        2.4,
        kind="float",
        hint="an old_logp that is given (not None) is the sampling policy's: the ratio uses it",
    )
    model = ToyLM()
    out = c.call(
        "padding garbage",
        fn,
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        roll,
        A,
        old_logp=padded(torch.full((2, 2), math.log(0.25) - LN2), roll.completion_mask),
        beta=0.0,
    )
    c.close("padding holds garbage (old_logp 1e4 there): the same loss", out["loss"], 2.4, hint=PAD_HINT)
    # every table row = [0, ln 3, 0, 0]: at T = 0.5 the logits double -> p(1) = 9/12, p(other) = 1/12
    model = ToyLM()
    with torch.no_grad():
        model.table.weight[:, 1] = LN3
    out = c.call(
        "temperature 0.5",
        fn,
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        roll,
        A,
        beta=0.0,
        temperature=0.5,
    )
    c.close(
        "logp at temperature 0.5: [[ln 3/4, ln 1/12], [ln 1/12, ln 3/4]]",
        out["logp"],
        [[math.log(0.75), math.log(1 / 12)], [math.log(1 / 12), math.log(0.75)]],
        hint=(
            "the log-probs must be those of the SAMPLING distribution, i.e. at the given temperature",
            "pass `temperature` on to sampling.completion_logits (which divides "
            "the logits by it; do not divide twice)",
        ),
    )
    c.raises(
        "advantages [3] for 2 completions", ValueError, fn, ToyLM(), opt, roll, t([1.0, 2.0, 3.0]), beta=0.0
    )


def _flags(x: torch.Tensor | list) -> list:
    return x.int().tolist() if isinstance(x, torch.Tensor) else x


@register(
    "high_entropy_mask",
    (
        "True on the completion tokens whose entropy is at least the (1 - quantile) quantile of "
        "the entropies of ALL completion tokens of the batch; padding always False",
        "one threshold for the whole batch from the masked entries only (torch.quantile), ties "
        "at the threshold kept; quantile is the fraction to KEEP",
    ),
)
def _high_entropy_mask(fn, c):
    # one completion of 5 tokens, entropies [1, 3, 2, 4, 0.5] -> sorted 0.5 1 2 3 4; quantile 0.4
    # keeps the top 40%: threshold = the 0.6 quantile = 2 + 0.4 * (3 - 2) = 2.4 -> 3 and 4
    one = t([[1.0, 3.0, 2.0, 4.0, 0.5]])
    full = torch.ones(1, 5, dtype=torch.long)
    got = c.call("quantile 0.4", fn, one, full, 0.4)
    c.true(
        "a bool tensor of the entropies' shape",
        isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == one.shape,
        f"a torch.Tensor of dtype torch.bool, shape {list(one.shape)}",
        f"{type(got).__name__} {getattr(got, 'dtype', '')} {list(getattr(got, 'shape', []))}",
        hint="return one bool flag per position, of the entropies' shape (as TRL's mask)",
    )
    c.close(
        "quantile 0.4 of 5 tokens: the two highest (3 and 4)",
        _flags(got),
        [[0, 1, 0, 1, 0]],
        hint=(
            "`quantile` is the fraction of tokens to KEEP: the threshold is the (1 - quantile) "
            "quantile of the completion entropies (torch.quantile interpolates linearly)",
            "here the 0.6 quantile of [1, 3, 2, 4, 0.5] is 2.4: only 3 and 4 reach it",
        ),
    )
    # rows on different scales: [0.1 .. 0.4] and [1 .. 4]; the batch's median is 0.7 -> row 1 only
    scales = t([[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]])
    c.close(
        "quantile 0.5 across the batch: the low-entropy row keeps nothing",
        _flags(c.call("batch", fn, scales, torch.ones(2, 4, dtype=torch.long), 0.5)),
        [[0, 0, 0, 0], [1, 1, 1, 1]],
        hint=(
            "ONE threshold for the whole batch, from all its completion tokens together, not one per row",
            "the 0.5 quantile of all 8 entropies is 0.7: no token of row 0 reaches it",
        ),
    )
    # ties: [1, 1, 1, 2], the 0.5 quantile is 1 -> every token reaches it
    c.close(
        "ties at the threshold are kept (>=)",
        _flags(c.call("ties", fn, t([[1.0, 1.0, 1.0, 2.0]]), torch.ones(1, 4, dtype=torch.long), 0.5)),
        [[1, 1, 1, 1]],
        hint=(
            "a token whose entropy EQUALS the threshold is kept: compare with >=",
            "the 0.5 quantile of [1, 1, 1, 2] is 1 itself",
        ),
    )
    # the same 5 entropies as above over two right-padded rows (padding 0): the same two tokens
    ent = t([[1.0, 3.0, 2.0, 0.0], [4.0, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    want = [[0, 1, 0, 0], [1, 0, 0, 0]]
    c.close(
        "padded rows: the 0.4 quantile of the 5 completion tokens [1, 3, 2, 4, 0.5] only",
        _flags(c.call("padded", fn, ent, mask, 0.4)),
        want,
        hint=(
            "the threshold comes from the completion tokens only (mask 1): padding positions "
            "must not enter the quantile",
            "with the three padding zeros the 0.6 quantile would drop to 1.2",
        ),
    )
    for value in (GARBAGE, -GARBAGE):
        c.close(
            f"padding holds garbage (entropies {value:+.0e} there): the same flags",
            _flags(c.call("padding garbage", fn, padded(ent, mask, value), mask, 0.4)),
            want,
            hint=(
                "padding (mask 0) is never True and never enters the quantile, whatever its entropy holds",
                PAD_HINT[1],
            ),
        )
    c.close(
        "quantile 1.0 keeps every completion token",
        _flags(c.call("all", fn, ent, mask, 1.0)),
        [[1, 1, 1, 0], [1, 1, 0, 0]],
        hint=(
            "quantile 1 = keep everything: the threshold is the smallest completion entropy, "
            "which must itself be kept (>=); padding stays False",
            "the 0.0 quantile is the minimum, 0.5 here",
        ),
    )
    c.close(
        "no completion token at all: all False",
        _flags(c.call("empty", fn, ent, torch.zeros(2, 4, dtype=torch.long), 0.2)),
        [[0, 0, 0, 0], [0, 0, 0, 0]],
        hint="a mask without any completion token has nothing to keep (and no quantile to take)",
    )
    for q in (0.0, 1.5, -0.2):
        c.raises(f"quantile {q}", ValueError, fn, ent, mask, q)
    c.raises("mask of another shape", ValueError, fn, ent, torch.ones(2, 3, dtype=torch.long), 0.5)
