"""Unit 06 — GRPO (notebook 06_grpo).

Conventions: a batch holds `B = n_prompts * group_size` completions, each prompt's group
*contiguous* (rows 0..G-1 are prompt 0, and so on). Per-token tensors are [B, T] over completion
tokens, `mask` 1 on completion tokens. The KL to the reference is in the *loss* (not the reward),
with the k3 estimator and ``log r = ref_logp - logp``.

Exercises 6.1–6.6: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Exercise 6.1: group-relative advantages, one per completion.

    rewards [N] -> advantages [N]. Subtract each group's mean reward, then divide by

    * ``"group"``: that group's standard deviation (Bessel-corrected, ``unbiased=True``) + eps,
    * ``"batch"``: the standard deviation of all N rewards (Bessel-corrected) + eps,
    * ``"none"``:  nothing (Dr. GRPO: no std scaling).

    N not divisible by `group_size`, ``group_size < 2`` (a std needs two samples), or an unknown
    `scale` raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 6.1 (notebook 06_grpo): implement `group_advantages` in course_lib/grpo.py"
    )


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Exercise 6.4: RLOO (REINFORCE Leave-One-Out) advantages, one per completion.

    rewards [N] -> advantages [N] (float), groups contiguous as in :func:`group_advantages`.
    Each completion's baseline is the mean reward of the OTHER ``G - 1`` completions of its group:

        ``A_i = r_i - (sum_{j in group} r_j - r_i) / (G - 1)``   (= ``G / (G - 1) * (r_i - mean)``)

    No std scaling. This is TRL's ``RLOOTrainer`` advantage with ``normalize_advantages=False``
    (its default) and ``beta=0`` (``beta > 0`` first subtracts the KL from the reward).
    N not divisible by `group_size` or ``group_size < 2`` (no "others" to average) raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 6.4 (notebook 06_grpo): implement `rloo_advantages` in course_lib/grpo.py"
    )


def reinforce_pp_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Exercise 6.5: REINFORCE++-baseline advantages (Hu et al. 2025, arXiv 2501.03262; OpenRLHF
    ``--advantage_estimator reinforce_baseline``), one per completion.

    rewards [N] -> advantages [N], groups contiguous. Subtract each GROUP's mean, then divide by
    the standard deviation of those centred rewards over the whole BATCH:

        ``d_i = r_i - mean(r of i's group)``,   ``A_i = d_i / (std(d_1..d_N) + eps)``

    with the Bessel-corrected std (``unbiased=True``, as TRL's) and eps added to the std.
    REINFORCE++ also subtracts the batch mean of ``d``; it is 0 (every group is centred), so it is
    left out. Not ``group_advantages(scale="batch")``: that divides by the std of the raw rewards,
    which also counts how much the groups' means differ. In TRL it is ``RLOOTrainer`` with
    ``normalize_advantages=True`` (whitening cancels RLOO's factor ``G / (G - 1)``; TRL's fixed
    1e-4 then corresponds to ``eps = 1e-4 * (G - 1) / G``). OpenRLHF whitens per token with the
    population std. N not divisible by `group_size` or ``group_size < 2`` raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 6.5 (notebook 06_grpo): implement `reinforce_pp_advantages` in course_lib/grpo.py"
    )


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Exercise 6.2: the GRPO loss (a scalar to minimise).

    logp, old_logp, ref_logp, mask [B, T]; advantages [B] (one per sequence, broadcast over its
    tokens). Per token, with ``rho = exp(logp - old_logp)``:

        ``l = -min(rho * A, clip(rho, 1 - clip_eps, 1 + clip_eps) * A) + beta * k3``

    where k3 = ``exp(ref_logp - logp) - 1 - (ref_logp - logp)``; with ``beta == 0`` the KL term
    is skipped and `ref_logp` may be None. Reduction by `loss_type`:

    * ``"grpo"``: mean over each sequence's tokens, then mean over sequences (a row whose mask
      is all zero has no mean: ValueError),
    * ``"bnpo"`` and ``"dapo"``: sum over all tokens / number of completion tokens in the batch
      (ValueError if the whole mask is zero). On one batch they are the same number; in TRL they
      differ under gradient accumulation: ``bnpo`` normalises by the tokens of the local batch,
      ``dapo`` by the tokens of the whole generation batch across the accumulation steps,
    * ``"dr_grpo"``: sum over all tokens / (B * max_completion_length); when
      `max_completion_length` is None, T (= mask.shape[1]) is used.

    Unknown `loss_type` or mismatched shapes raise ValueError.
    """
    raise NotImplementedError("Exercise 6.2 (notebook 06_grpo): implement `grpo_loss` in course_lib/grpo.py")


def grpo_step(
    model,
    optimizer: torch.optim.Optimizer,
    rollout,
    advantages: torch.Tensor,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
) -> dict:
    """Exercise 6.3: one GRPO optimizer step on a batch of sampled completions.

    `rollout` is a :class:`course_lib.core.sampling.Rollout` (B rows = prompts x group size),
    `advantages` [B] come from :func:`group_advantages`, `old_logp` / `ref_logp` [B, C] are the
    per-token log-probs of ``rollout.completion_ids`` under the sampling policy / the frozen
    reference, computed *without* gradients by the caller. In order:

    1. put the model in training mode; ``logits = sampling.completion_logits(model, rollout,
       temperature)`` and ``logp = kl.token_logprobs(logits, rollout.completion_ids)`` (your
       exercise 2.1), *with* gradients;
    2. if `old_logp` is None, the batch was just sampled from this very model (one update per
       batch, ``num_iterations == 1``): use ``logp.detach()`` -- the ratio is exactly 1 but its
       gradient is not, and it saves a forward pass;
    3. ``loss = grpo_loss(logp, old_logp, ref_logp, advantages, rollout.completion_mask,
       clip_eps, beta, loss_type, max_completion_length)`` (exercise 6.2; `ref_logp` may be
       None only when ``beta == 0``);
    4. clear old gradients, back-propagate, clip the gradient norm to `max_grad_norm` with
       ``torch.nn.utils.clip_grad_norm_`` (it returns the norm *before* clipping), take the
       optimizer step;
    5. return ``{"loss": loss.item(), "grad_norm": <float, before clipping>,
       "logp": logp.detach()}`` (the trainer logs the KL and the clip fraction from `logp`).

    `advantages` that are not [B], or `old_logp` / `ref_logp` whose shape differs from
    ``rollout.completion_ids``, raise ValueError naming the tensor and both shapes.
    """
    raise NotImplementedError("Exercise 6.3 (notebook 06_grpo): implement `grpo_step` in course_lib/grpo.py")


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """Exercise 6.6: which completion tokens are among the top-`quantile` highest-entropy ones
    ("Beyond the 80/20 rule", Wang et al. 2025, arXiv 2506.01939; TRL's
    ``GRPOConfig.top_entropy_quantile``, ``GRPOTrainer.get_high_entropy_mask``).

    entropies, mask [B, T] -> bool [B, T]. The conventions, TRL 1.16's:

    * the threshold is ``torch.quantile(x, 1 - quantile)`` (linear interpolation, torch's
      default) where ``x`` holds the entropies of the *completion tokens only* (mask 1), of the
      *whole batch* at once (not row by row), as float32;
    * a completion token is True when its entropy is ``>=`` the threshold: ties at the threshold
      are all kept, so ``quantile=1.0`` keeps every completion token;
    * padding (mask 0) is always False, whatever its entropy holds; a mask with no completion token
      gives all False.

    `quantile` outside (0, 1], or `entropies` and `mask` of different shapes or not 2-D, raise
    ValueError.
    """
    raise NotImplementedError(
        "Exercise 6.6 (notebook 06_grpo): implement `high_entropy_mask` in course_lib/grpo.py"
    )
