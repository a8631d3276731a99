"""Unit 05 — PPO (notebook 05_ppo).

Conventions: per-token tensors are [B, T] over the *response* tokens; `mask` is 1 on response
tokens and 0 on right padding. Rewards come from ``kl.kl_penalized_rewards`` (KL inside the
reward, score on the last token). All averages are token-level masked means
(``sft.masked_mean``): every response token in the batch weighs the same.

Exercises 5.1–5.6: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 5.1: generalised advantage estimation, backwards over time.

    rewards, values, mask [B, T] -> (advantages [B, T], returns [B, T]).
    First zero `rewards` and `values` where mask is 0. With V_T = 0 (nothing after the end):
    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``
    (A_T = 0), computed from t = T-1 down to 0. ``returns = advantages + values`` (the zeroed
    values). Both outputs are 0 where mask is 0 and carry no gradient (detach the inputs).
    """
    raise NotImplementedError("Exercise 5.1 (notebook 05_ppo): implement `compute_gae` in course_lib/ppo.py")


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Exercise 5.2: normalise `x` with the mean and variance of its masked entries.

    mean = masked mean; var = *Bessel-corrected* masked variance
    ``sum(mask * (x - mean)**2) / (sum(mask) - 1)``; result ``(x - mean) / sqrt(var + 1e-8)``,
    plus `mean` added back if ``shift_mean=False`` (rescale without centring). Every position is
    transformed (mask positions out in the loss). Fewer than 2 masked entries: ValueError.
    """
    raise NotImplementedError("Exercise 5.2 (notebook 05_ppo): implement `whiten` in course_lib/ppo.py")


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 5.3: the clipped surrogate loss of PPO and the fraction of clipped tokens.

    all [B, T] -> (loss scalar, clip_fraction scalar). With ``rho = exp(logp - old_logp)``:
    per token ``max(-A * rho, -A * clip(rho, 1 - clip_eps, 1 + clip_eps))``, then the masked
    mean. clip_fraction = masked mean of (clipped term > unclipped term), detached.
    """
    raise NotImplementedError(
        "Exercise 5.3 (notebook 05_ppo): implement `ppo_policy_loss` in course_lib/ppo.py"
    )


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> torch.Tensor:
    """Exercise 5.4: the clipped value loss.

    all [B, T] -> scalar. ``v_clip = old_values + clip(values - old_values, -clip_range,
    clip_range)``; loss = ``0.5 * masked_mean(max((values - returns)**2, (v_clip - returns)**2))``.
    """
    raise NotImplementedError(
        "Exercise 5.4 (notebook 05_ppo): implement `ppo_value_loss` in course_lib/ppo.py"
    )


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Exercise 5.5: entropy of the categorical distribution at every position, in nats.

    logits [..., V] -> [...]: ``H = logsumexp(logits) - sum(softmax(logits) * logits)``
    (equal to ``-sum p log p``, but stable for large logits).
    """
    raise NotImplementedError(
        "Exercise 5.5 (notebook 05_ppo): implement `entropy_from_logits` in course_lib/ppo.py"
    )


MINIBATCH_KEYS = ("response_ids", "mask", "old_logprobs", "old_values", "advantages", "returns")
"""The stored rollout tensors (all [B, T] over response tokens) that :func:`ppo_minibatch_loss`
reads from its `batch` dict."""


def ppo_minibatch_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    batch: dict[str, torch.Tensor],
    clip_range: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 0.1,
    entropy_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exercise 5.6: wire exercises 2.1 and 5.3–5.5 into the loss of one PPO minibatch.

    Inputs, for a minibatch of B sequences and T response positions:

    * `logits` [B, T, V]: the *current* policy's logits that predict each response token (already
      divided by the sampling temperature), with gradient;
    * `values` [B, T]: the current value head's outputs at the same positions, with gradient;
    * `batch`: the tensors stored at rollout time (no gradient), each [B, T]:
      ``response_ids``, ``mask``, ``old_logprobs``, ``old_values``, ``advantages`` (already
      whitened) and ``returns`` (see :data:`MINIBATCH_KEYS`).

    In order:

    1. ``logp = kl.token_logprobs(logits, batch["response_ids"])`` (exercise 2.1);
    2. ``policy_loss, clip_fraction = ppo_policy_loss(logp, old_logprobs, advantages, mask,
       clip_range)`` (5.3);
    3. ``value_loss = ppo_value_loss(values, old_values, returns, mask, cliprange_value)`` (5.4);
    4. ``entropy = sft.masked_mean(entropy_from_logits(logits), mask)`` (5.5 and 3.2);
    5. ``loss = policy_loss + vf_coef * value_loss - entropy_coef * entropy`` (the entropy is a
       *bonus*: more entropy, lower loss).

    Returns ``(loss, stats)``: `loss` a scalar with gradient; `stats` a dict of *detached* scalar
    tensors ``policy_loss``, ``value_loss``, ``entropy``, ``clip_fraction`` and ``approx_kl`` — the
    masked mean of ``kl.kl_estimate(old_logprobs, logp, "k3")``, i.e. KL(old policy || current
    policy) estimated on the stored samples (how far this update has moved the policy).
    The provided trainer (course_lib/trainers/ppo.py) calls this once per minibatch, then
    back-propagates, clips the gradient norm and steps the optimizer. A `batch` missing one of
    the keys raises KeyError naming it.
    """
    raise NotImplementedError(
        "Exercise 5.6 (notebook 05_ppo): implement `ppo_minibatch_loss` in course_lib/ppo.py"
    )
