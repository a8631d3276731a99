"""Seeded inputs for the value + gradient snapshots (CS336 style).

``CASES[name]`` is a list of ``(case_id, make_inputs, call)``: ``make_inputs(g)`` builds a dict of
tensors from a seeded ``torch.Generator``; ``call(fn, inputs)`` runs the exercise function and
returns its outputs (a tensor, a tuple of tensors or a number). Gradients are taken w.r.t. every
floating-point input tensor, through ``sum_i (out_i * w_i).sum()`` with fixed random weights
``w_i`` (a plain sum would hide errors whose gradients cancel, e.g. after mean-centering).
The inputs, weights, outputs and gradients are all stored in ``tests/snapshots/<name>.npz``.
"""

from __future__ import annotations

import torch

B, T, V = 3, 5, 7


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def mask(g, b=B, t=T, min_len=1):
    """Right-padded 0/1 mask (long) with a random length >= min_len per row."""
    lengths = torch.randint(min_len, t + 1, (b,), generator=g)
    return (torch.arange(t) < lengths[:, None]).long()


def _c(case_id, make, call):
    return (case_id, make, call)


def _kl_cases():
    mk = lambda g: {"logp": randn(g, B, T), "ref_logp": randn(g, B, T)}
    return [_c(k, mk, lambda f, x, k=k: f(x["logp"], x["ref_logp"], k)) for k in ("k1", "k2", "k3")]


def _masked_mean_cases():
    def mk(g):
        m = mask(g)
        m[0] = 1  # every column has an entry (dim=0 is defined)
        return {"x": randn(g, B, T), "mask": m}

    return [_c(f"dim{d}", mk, lambda f, x, d=d: f(x["x"], x["mask"], dim=d)) for d in (None, 0, 1)]


def _grpo_cases():
    def mk(g):
        return {
            "logp": randn(g, 4, T, scale=0.3) - 1,
            "old_logp": randn(g, 4, T, scale=0.3) - 1,
            "ref_logp": randn(g, 4, T, scale=0.3) - 1,
            "advantages": randn(g, 4),
            "mask": mask(g, 4),
        }

    out = []
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        out.append(
            _c(
                lt,
                mk,
                lambda f, x, lt=lt: f(
                    x["logp"],
                    x["old_logp"],
                    x["ref_logp"],
                    x["advantages"],
                    x["mask"],
                    0.2,
                    0.04,
                    lt,
                    8 if lt == "dr_grpo" else None,
                ),
            )
        )
    return out


def _dpo_cases():
    mk = lambda g: {k: randn(g, 4, scale=3.0) - 10 for k in ("pc", "pr", "rc", "rr")}
    out = []
    for lt, ls in (("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("hinge", 0.0)):
        out.append(
            _c(
                f"{lt}_ls{ls}",
                mk,
                lambda f, x, lt=lt, ls=ls: f(x["pc"], x["pr"], x["rc"], x["rr"], 0.3, lt, ls),
            )
        )
    return out


def _minibatch(g):
    m = mask(g)
    return {
        "logits": randn(g, B, T, V),
        "values": randn(g, B, T),
        "response_ids": torch.randint(0, V, (B, T), generator=g),
        "mask": m,
        "old_logprobs": randn(g, B, T, scale=0.2) - 2,
        "old_values": randn(g, B, T),
        "advantages": randn(g, B, T),
        "returns": randn(g, B, T),
    }


def _minibatch_call(f, x):
    batch = {
        k: x[k].detach()
        for k in ("response_ids", "mask", "old_logprobs", "old_values", "advantages", "returns")
    }
    loss, stats = f(x["logits"], x["values"], batch, 0.2, 0.2, 0.1, 0.01)
    return (loss,) + tuple(stats[k] for k in sorted(stats))


def _rlvr_cases():
    """Unit 09: rlvr_policy_loss over levels x loss types (clip-higher, GSPO, CISPO caps, KL);
    outputs loss and [clip_ratio_low, clip_ratio_high, mean_ratio] (one array: small .npz)."""

    def mk(with_ref):
        def make(g):
            x = {
                "logp": randn(g, 4, T, scale=0.3) - 1,
                "old_logp": randn(g, 4, T, scale=0.3) - 1,
                "advantages": randn(g, 4),
                "mask": mask(g, 4),
            }
            if with_ref:
                x["ref_logp"] = randn(g, 4, T, scale=0.3) - 1
            return x

        return make

    def call(kw):
        def run(f, x):
            loss, st = f(
                x["logp"], x["old_logp"], x["advantages"], x["mask"], ref_logp=x.get("ref_logp"), **kw
            )
            return loss, torch.tensor([st["clip_ratio_low"], st["clip_ratio_high"], st["mean_ratio"]])

        return run

    settings = {
        "token-grpo-clip-higher-kl": dict(eps_low=0.2, eps_high=0.28, beta=0.04),
        "sequence-grpo": dict(level="sequence", eps_low=0.05, eps_high=0.1),
        "sequence-dapo-kl": dict(level="sequence", eps_low=0.05, eps_high=0.1, loss_type="dapo", beta=0.04),
        "token-cispo": dict(loss_type="cispo", eps_high=1.2),
        "sequence-cispo": dict(level="sequence", loss_type="cispo", eps_high=1.05),
    }
    return [_c(cid, mk("beta" in kw), call(kw)) for cid, kw in settings.items()]


CASES = {
    "exponential_shaping": [
        _c("tensor", lambda g: {"scores": randn(g, 6)}, lambda f, x: f(x["scores"], 0.7))
    ],
    "reinforce_loss": [  # summed log-probabilities of 6 completions; no gradient may reach the rewards
        _c(
            cid,
            lambda g: {"logprobs": randn(g, 6, scale=2.0) - 8, "rewards": randn(g, 6)},
            lambda f, x, b=b: f(x["logprobs"], x["rewards"], b),
        )
        for cid, b in (("none", None), ("mean", "mean"), ("const", 0.5))
    ],
    "token_logprobs": [
        _c(
            "basic",
            lambda g: {
                "logits": randn(g, B, T, V, scale=2.0),
                "tokens": torch.randint(0, V, (B, T), generator=g),
            },
            lambda f, x: f(x["logits"], x["tokens"]),
        )
    ],
    "kl_estimate": _kl_cases(),
    "exact_kl": [
        _c(
            "basic",
            lambda g: {"p": randn(g, B, T, V), "q": randn(g, B, T, V)},
            lambda f, x: f(x["p"], x["q"]),
        )
    ],
    "kl_penalized_rewards": [
        _c(
            "basic",
            lambda g: {"scores": randn(g, B), "logp": randn(g, B, T), "ref": randn(g, B, T), "mask": mask(g)},
            lambda f, x: f(x["scores"], x["logp"], x["ref"], x["mask"], 0.05),
        )
    ],
    "masked_mean": _masked_mean_cases(),
    "sft_loss": [
        _c(
            "basic",
            lambda g: {
                "logits": randn(g, B, T, V),
                "labels": torch.randint(0, V, (B, T), generator=g),
                "mask": mask(g),
            },
            lambda f, x: f(x["logits"], x["labels"].masked_fill(x["mask"] == 0, -100), x["mask"]),
        )
    ],
    "bradley_terry_loss": [
        _c("no_margin", lambda g: {"rc": randn(g, 6), "rr": randn(g, 6)}, lambda f, x: f(x["rc"], x["rr"])),
        _c(
            "margin",
            lambda g: {"rc": randn(g, 6), "rr": randn(g, 6), "margin": randn(g, 6).abs()},
            lambda f, x: f(x["rc"], x["rr"], x["margin"]),
        ),
    ],
    "preference_accuracy": [
        _c(
            "basic",
            lambda g: {"rc": randn(g, 16), "rr": randn(g, 16)},
            lambda f, x: torch.tensor(f(x["rc"].detach(), x["rr"].detach())),
        )
    ],
    "last_token_pool": [
        _c(
            "2d",
            lambda g: {"values": randn(g, B, T), "mask": mask(g)},
            lambda f, x: f(x["values"], x["mask"]),
        ),
        _c(
            "3d",
            lambda g: {"values": randn(g, B, T, 4), "mask": mask(g)},
            lambda f, x: f(x["values"], x["mask"]),
        ),
    ],
    "compute_gae": [
        _c(
            "basic",
            lambda g: {"rewards": randn(g, B, T), "values": randn(g, B, T), "mask": mask(g)},
            lambda f, x: f(x["rewards"], x["values"], x["mask"], 0.99, 0.9),
        )
    ],
    "whiten": [
        _c(
            f"shift{s}",
            lambda g: {"x": randn(g, B, T, scale=3.0) + 1, "mask": mask(g, min_len=2)},
            lambda f, x, s=s: f(x["x"], x["mask"], shift_mean=s),
        )
        for s in (True, False)
    ],
    "ppo_policy_loss": [
        _c(
            "basic",
            lambda g: {
                "logp": randn(g, B, T, scale=0.3),
                "old": randn(g, B, T, scale=0.3),
                "adv": randn(g, B, T),
                "mask": mask(g),
            },
            lambda f, x: f(x["logp"], x["old"], x["adv"], x["mask"], 0.2),
        )
    ],
    "ppo_value_loss": [
        _c(
            "basic",
            lambda g: {
                "values": randn(g, B, T),
                "old": randn(g, B, T, scale=0.3),
                "returns": randn(g, B, T),
                "mask": mask(g),
            },
            lambda f, x: f(x["values"], x["values"].detach() + x["old"], x["returns"], x["mask"], 0.2),
        )
    ],
    "entropy_from_logits": [
        _c("basic", lambda g: {"logits": randn(g, B, T, V, scale=3.0)}, lambda f, x: f(x["logits"]))
    ],
    "ppo_minibatch_loss": [_c("basic", _minibatch, _minibatch_call)],
    "group_advantages": [
        _c(s, lambda g: {"rewards": randn(g, 12)}, lambda f, x, s=s: f(x["rewards"], 4, s))
        for s in ("group", "batch", "none")
    ],
    "grpo_loss": _grpo_cases(),
    "rloo_advantages": [
        _c(f"G{G}", lambda g: {"rewards": randn(g, 12)}, lambda f, x, G=G: f(x["rewards"], G)) for G in (2, 4)
    ],
    "reinforce_pp_advantages": [
        _c(f"G{G}", lambda g: {"rewards": randn(g, 12)}, lambda f, x, G=G: f(x["rewards"], G)) for G in (2, 4)
    ],
    "high_entropy_mask": [
        _c(
            f"q{q}",
            lambda g: {"entropies": randn(g, B, T).abs(), "mask": mask(g)},
            lambda f, x, q=q: f(x["entropies"], x["mask"], q).long(),  # bool -> int64 (npz / allclose)
        )
        for q in (0.2, 0.7)
    ],
    "sequence_logprobs": [
        _c(
            f"average{a}",
            lambda g: {
                "logits": randn(g, B, T, V),
                "labels": torch.randint(0, V, (B, T), generator=g),
                "mask": mask(g),
            },
            lambda f, x, a=a: f(x["logits"], x["labels"].masked_fill(x["mask"] == 0, -100), x["mask"], a),
        )
        for a in (False, True)
    ],
    "dpo_loss": _dpo_cases(),
    "sequence_log_ratio": [
        _c(
            "padded",
            lambda g: {
                "logp": randn(g, 4, T, scale=0.3) - 1,
                "old_logp": randn(g, 4, T, scale=0.3) - 1,
                "mask": mask(g, 4),
            },
            lambda f, x: f(x["logp"], x["old_logp"], x["mask"]),
        )
    ],
    "rlvr_policy_loss": _rlvr_cases(),
    "dynamic_sampling_mask": [
        _c(
            "pairs",
            lambda g: {"rewards": torch.randint(0, 2, (12,), generator=g).float()},
            lambda f, x: f(x["rewards"], 2).long(),  # bool -> int64 (npz / allclose)
        )
    ],
    "overlong_penalty": [
        _c(
            "lmax16-buffer5",
            lambda g: {"lengths": torch.randint(0, 22, (12,), generator=g)},
            lambda f, x: f(x["lengths"], 16, 5),
        )
    ],
    "mask_truncated_completions": [
        _c(
            "padded",
            lambda g: {"mask": mask(g, 6), "is_truncated": torch.randint(0, 2, (6,), generator=g).bool()},
            lambda f, x: f(x["mask"], x["is_truncated"]),
        )
    ],
    "environment_mask": [
        _c(
            "float-mask-one-span-per-row",
            lambda g: {
                "mask": mask(g, 4, 8).float(),
                "spans": torch.sort(torch.randint(0, 9, (4, 2), generator=g), dim=-1).values,
            },
            # a float mask: the gradient w.r.t. it is 1 outside the spans, 0 inside
            lambda f, x: f(x["mask"], [[(int(a), int(b))] for a, b in x["spans"].tolist()]),
        )
    ],
}


def outputs(result) -> list[torch.Tensor]:
    """Normalise a function's result to a list of tensors."""
    if isinstance(result, (tuple, list)):
        return [r if isinstance(r, torch.Tensor) else torch.tensor(float(r)) for r in result]
    return [result if isinstance(result, torch.Tensor) else torch.tensor(float(result))]


def run_case(fn, make, call, seed: int, inputs: dict | None = None, weights: list | None = None):
    """(inputs, weights, outputs, grads) of one case. Pass stored `inputs`/`weights` to recompute."""
    if inputs is None:
        inputs = make(torch.Generator().manual_seed(seed))
    inputs = {k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
    outs = outputs(call(fn, inputs))
    if weights is None:
        wg = torch.Generator().manual_seed(seed + 10_000)
        weights = [torch.randn(o.shape, generator=wg) for o in outs]
    grads = {}
    diff = [(o * w).sum() for o, w in zip(outs, weights) if o.requires_grad]
    if diff:
        torch.stack(diff).sum().backward()
        grads = {k: v.grad for k, v in inputs.items() if v.is_floating_point() and v.grad is not None}
    return inputs, weights, [o.detach() for o in outs], grads
