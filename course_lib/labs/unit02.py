"""Provided experiment code for notebook 02_kl_penalties (too long for a notebook cell).

Nothing here implements an exercise: log-probabilities, KL estimates and exact KLs come from the
student's functions, called through their module (``kl.kl_estimate(...)``).

* :func:`toy_pair`, :func:`estimator_moments`, :func:`estimator_samples` — k1/k2/k3 against the
  exact KL on toy categoricals (exact bias and standard deviation, no sampling noise).
* :func:`fit_one_mode` — fit a one-mode distribution to a two-mode one by gradient descent on
  the forward or the reverse KL (mode covering vs mode seeking).
* :class:`SteeredPolicy`, :func:`rollout_stats` — a policy that moved away from its reference
  (a logit bonus on positive words, like a policy after sentiment RL) and per-token KLs of its
  samples under the tiny model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from course_lib import kl
from course_lib.core import sampling

if TYPE_CHECKING:
    from transformers import PreTrainedModel

KINDS = ("k1", "k2", "k3")


# --------------------------------------------------------------------------- toy categoricals
def toy_pair(distance: float, vocab: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy_logits [V], ref_logits [V]): a random reference and a policy moved `distance`
    along a fixed random direction of the logits (distance 0: the same distribution)."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(vocab, generator=g, dtype=torch.float64)
    direction = torch.randn(vocab, generator=g, dtype=torch.float64)
    return ref + distance * direction, ref


def estimator_moments(policy_logits: torch.Tensor, ref_logits: torch.Tensor) -> dict:
    """Exact mean and standard deviation of each estimator for x ~ policy, and the exact KL.

    Every token v of the vocabulary is a possible sample: its estimate is
    ``kl.kl_estimate(logp[v], ref_logp[v], kind)`` and its probability p[v], so
    E[k] = sum_v p[v] k[v] and Var[k] = sum_v p[v] (k[v] - E[k])^2 — no sampling noise.
    Returns {"exact": KL, "k1": {"mean", "std", "bias"}, ...}.
    """
    logp = torch.log_softmax(policy_logits, -1)
    ref_logp = torch.log_softmax(ref_logits, -1)
    p = logp.exp()
    exact = float(kl.exact_kl(policy_logits, ref_logits))
    out: dict[str, Any] = {"exact": exact}
    for kind in KINDS:
        k = kl.kl_estimate(logp, ref_logp, kind)
        mean = float((p * k).sum())
        std = float((p * (k - mean) ** 2).sum().sqrt())
        out[kind] = {"mean": mean, "std": std, "bias": mean - exact}
    return out


def estimator_samples(
    policy_logits: torch.Tensor, ref_logits: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """`n` tokens sampled from the policy and each estimator's value on them: {kind: [n]}."""
    logp = torch.log_softmax(policy_logits, -1)
    ref_logp = torch.log_softmax(ref_logits, -1)
    x = torch.multinomial(logp.exp(), n, replacement=True, generator=generator)
    return {kind: kl.kl_estimate(logp[x], ref_logp[x], kind) for kind in KINDS}


def sweep(distances: Sequence[float], vocab: int = 50, seed: int = 0) -> list[dict]:
    """:func:`estimator_moments` for each distance (with the distance under key "distance")."""
    return [{"distance": float(d), **estimator_moments(*toy_pair(d, vocab, seed))} for d in distances]


# --------------------------------------------------------------------------- mode covering/seeking
def two_mode_target(
    grid: torch.Tensor, centers=(-2.0, 2.0), width: float = 0.5, weights=(0.5, 0.5)
) -> torch.Tensor:
    """Logits over `grid` of a mixture of two bumps (a categorical over the grid points)."""
    dens = sum(w * torch.exp(-0.5 * ((grid - c) / width) ** 2) for c, w in zip(centers, weights))
    return torch.log(dens + 1e-30)


def one_mode_logits(grid: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Logits over `grid` of one Gaussian bump (unnormalised; softmax normalises)."""
    return -0.5 * ((grid - mean) / log_std.exp()) ** 2


def fit_one_mode(
    target_logits: torch.Tensor,
    grid: torch.Tensor,
    direction: str,
    steps: int = 400,
    lr: float = 0.05,
    init_mean: float = 0.5,
    init_std: float = 1.0,
) -> dict:
    """Fit a one-bump model q to the target p by Adam on

    * ``"forward"``: KL(p || q) = ``kl.exact_kl(target, model)`` — pays wherever p has mass and
      q has none: q spreads to *cover* both modes;
    * ``"reverse"``: KL(q || p) = ``kl.exact_kl(model, target)`` — pays wherever q puts mass that
      p lacks: q *seeks* one mode. (RLHF's penalty KL(policy || reference) is of this kind.)

    Returns {"logits", "mean", "std", "losses"}.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"fit_one_mode: direction must be 'forward' or 'reverse', got {direction!r}")
    mean = torch.tensor(float(init_mean), dtype=grid.dtype, requires_grad=True)
    log_std = torch.tensor(float(init_std), dtype=grid.dtype).log().requires_grad_(True)
    opt = torch.optim.Adam([mean, log_std], lr=lr)
    losses = []
    for _ in range(steps):
        q = one_mode_logits(grid, mean, log_std)
        loss = kl.exact_kl(target_logits, q) if direction == "forward" else kl.exact_kl(q, target_logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        logits = one_mode_logits(grid, mean, log_std)
    return {
        "logits": logits,
        "mean": float(mean.detach()),
        "std": float(log_std.detach().exp()),
        "losses": losses,
    }


# --------------------------------------------------------------------------- the tiny model
def word_token_ids(tokenizer, words) -> list[int]:
    """Ids of the vocabulary entries that decode to one of `words` (case and spaces ignored)."""
    words = {w.lower() for w in words}
    return [i for i in range(len(tokenizer)) if tokenizer.decode([i]).strip().lower() in words]


class SteeredPolicy(nn.Module):
    """A policy that moved away from its reference: the reference's logits plus
    ``strength`` on a set of token ids (e.g. positive words). A crude stand-in for a policy after
    sentiment RL: it shares the reference's weights, so its KL to the reference is only the bonus."""

    def __init__(self, model: PreTrainedModel, token_ids: Sequence[int], strength: float = 2.0):
        super().__init__()
        self.model = model
        vocab = model.get_output_embeddings().weight.shape[0]
        bonus = torch.zeros(vocab)
        bonus[list(token_ids)] = 1.0
        self.register_buffer("bonus", bonus)
        self.strength = float(strength)

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        out.logits = out.logits + self.strength * self.bonus.to(out.logits.dtype)
        return out


@dataclass
class RolloutStats:
    """Samples from a policy and per-token quantities on them ([B, C] tensors, 0 off the mask)."""

    rollout: sampling.Rollout
    logp: torch.Tensor  # log pi(token)
    ref_logp: torch.Tensor  # log pi_ref(token)
    exact: torch.Tensor  # exact KL(pi(.|prefix) || pi_ref(.|prefix)) per position
    mask: torch.Tensor

    def seq_sum(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.mask).sum(-1)

    def token_mean(self, x: torch.Tensor) -> float:
        return float((x * self.mask).sum() / self.mask.sum())


@torch.no_grad()
def rollout_stats(
    policy,
    reference,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    generator: torch.Generator | None = None,
    num_samples: int = 1,
) -> RolloutStats:
    """Sample from `policy` (sampling.sample), then score every completion token under both
    models (sampling.completion_logits + kl.token_logprobs) and the exact per-position KL
    (kl.exact_kl on the two next-token distributions)."""
    ro = sampling.sample(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        generator=generator,
    )
    pol_logits = sampling.completion_logits(policy, ro).float()
    ref_logits = sampling.completion_logits(reference, ro).float()
    mask = ro.completion_mask.float()
    logp = kl.token_logprobs(pol_logits, ro.completion_ids) * mask
    ref_logp = kl.token_logprobs(ref_logits, ro.completion_ids) * mask
    exact = kl.exact_kl(pol_logits, ref_logits) * mask
    return RolloutStats(ro, logp, ref_logp, exact, mask)


def penalized_return(scores: torch.Tensor, stats: RolloutStats, beta: float) -> torch.Tensor:
    """Per-sequence sum of ``kl.kl_penalized_rewards(scores, logp, ref_logp, mask, beta)``:
    score - beta * (sequence k1), the quantity PPO maximises."""
    return kl.kl_penalized_rewards(scores, stats.logp, stats.ref_logp, stats.mask, beta).sum(-1)
