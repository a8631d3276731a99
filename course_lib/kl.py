"""Unit 02 — KL penalties (notebook 02_kl_penalties).

Conventions: tensors are torch; `B` = batch, `T` = time steps, `V` = vocabulary; `mask` is 1 on
response (completion) tokens and 0 elsewhere, right padded. For the sampled tokens the per-token
log-ratio is ``log r = ref_logp - logp`` (reference over policy), so for samples from the policy
E[-log r] = KL(policy || reference).

Exercises 2.1–2.4: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Exercise 2.1: log-probability of each given token under the logits.

    logits [B, T, V], tokens [B, T] (int) -> [B, T], ``log_softmax(logits)[b, t, tokens[b, t]]``.
    No shifting: logits[:, t] is the distribution the token at position t was drawn from.
    Mismatched batch/time shapes raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 2.1 (notebook 02_kl_penalties): implement `token_logprobs` in course_lib/kl.py"
    )


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Exercise 2.2: per-token Monte-Carlo estimate of KL(policy || reference).

    With ``log r = ref_logp - logp`` (same shape, any shape), element-wise:

    * ``"k1"``: ``-log r``                 (unbiased, high variance, can be negative)
    * ``"k2"``: ``(log r)**2 / 2``         (biased, low variance, >= 0)
    * ``"k3"``: ``exp(log r) - 1 - log r`` (unbiased, low variance, >= 0; GRPO's estimator)

    Returns a tensor of the same shape. An unknown `kind` or mismatched shapes raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 2.2 (notebook 02_kl_penalties): implement `kl_estimate` in course_lib/kl.py"
    )


def exact_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Exercise 2.3: exact KL(p || q) between categorical distributions given as logits.

    p_logits, q_logits [..., V] -> [...]: ``sum_v p_v (log p_v - log q_v)`` with
    ``p = softmax(p_logits)``; compute it from log-softmax (stable for large logits).
    """
    raise NotImplementedError(
        "Exercise 2.3 (notebook 02_kl_penalties): implement `exact_kl` in course_lib/kl.py"
    )


def kl_penalized_rewards(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """Exercise 2.4: per-token rewards for PPO with the KL penalty inside the reward.

    scores [B] (one scalar reward per sequence), logp / ref_logp / mask [B, T] -> rewards [B, T]:

    * every response token gets ``-beta * k1 = -beta * (logp - ref_logp)``,
    * the sequence score is *added* on the last response token (last t with mask 1),
    * positions where mask is 0 are exactly 0.

    A row whose mask is all zero has no last token: raise ValueError naming the row.
    """
    raise NotImplementedError(
        "Exercise 2.4 (notebook 02_kl_penalties): implement `kl_penalized_rewards` in course_lib/kl.py"
    )
