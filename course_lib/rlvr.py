"""Unit 09 — reasoning with verifiable rewards (notebook 09_reasoning_rlvr).

RLVR ("RL with verifiable rewards"), DeepSeek-R1-zero style: the policy writes its reasoning in
``<think>...</think>`` and its final answer in ``<answer>...</answer>``, and a *rule* -- not a
learned reward model -- scores the result: a format reward (9.1) and an exact-match answer reward
(9.2). The update is GRPO (unit 06) plus the variants that reasoning runs made popular, with
TRL 1.16's names and math:

* GSPO (``importance_sampling_level="sequence"``): one length-normalised importance ratio per
  completion instead of one per token (9.3, 9.4),
* DAPO: clip-higher (``epsilon_low`` < ``epsilon_high``), the token-level ``"dapo"`` reduction
  (9.4), dynamic sampling: drop the groups whose rewards all agree (9.5), and the two remedies
  for completions that hit the length budget: the soft overlong punishment, a reward term that
  grows more negative near the budget (9.6), and masking truncated completions out of the loss
  (9.7, TRL's ``mask_truncated_completions``),
* Dr. GRPO's constant normaliser (``"dr_grpo"``) and CISPO (``loss_type="cispo"``): clip the
  importance *weight*, detached, and keep every token's gradient (9.4).

Conventions as in unit 06: a batch holds ``B = n_prompts * group_size`` completions, each
prompt's group *contiguous*; per-token tensors are [B, T] over completion tokens, `mask` is 1 on
completion tokens and 0 on padding; `advantages` are [B] (one per completion).

Exercises 9.1–9.7: replace each ``raise NotImplementedError`` with your implementation.
"""

from __future__ import annotations

import re  # noqa: F401  (you may need these)

import torch

LEVELS = ("token", "sequence")
LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "cispo")
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def think_format_reward(completion: str) -> float:
    """Exercise 9.1: the R1-zero format reward of one completion, 1.0 or 0.0.

    1.0 iff the completion -- leading and trailing whitespace ignored -- is *exactly*
    ``<think>X</think>``, optional whitespace, ``<answer>Y</answer>``, nothing else, where X and Y
    are non-empty after stripping whitespace and contain none of the four tags of :data:`TAGS`.
    Anything before ``<think>`` or after ``</answer>``, a missing or repeated tag, an empty
    think or answer: 0.0. X and Y may span several lines.
    """
    raise NotImplementedError(
        "Exercise 9.1 (notebook 09_reasoning_rlvr): implement `think_format_reward` in course_lib/rlvr.py"
    )


def answer_reward(completion: str, answer: str) -> float:
    """Exercise 9.2: the exact-match answer reward of one completion, 1.0 or 0.0.

    Read the answer blocks left to right: a block runs from an ``<answer>`` to the first
    ``</answer>`` after it, and the next block is looked for after that. 1.0 iff the text inside
    the LAST block, stripped of whitespace, equals ``str(answer).strip()`` (so `answer` may be an
    int). No complete block (no ``<answer>``, or no ``</answer>`` after it): 0.0. The format is
    not checked here (that is 9.1's job): text around the block does not matter.
    """
    raise NotImplementedError(
        "Exercise 9.2 (notebook 09_reasoning_rlvr): implement `answer_reward` in course_lib/rlvr.py"
    )


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 9.3: GSPO's length-normalised log importance ratio, one per completion.

    logp, old_logp, mask [B, T] -> [B]: for row i, the sum over its completion tokens of
    ``logp - old_logp`` divided by its number of completion tokens (``mask.sum(-1)``), i.e.
    ``log s_i = (1/|o_i|) * sum_t log(pi(o_it) / pi_old(o_it))`` -- the log of the geometric mean
    of the per-token ratios. Padding positions (mask 0) never count, whatever they hold. Keep it
    differentiable w.r.t. `logp`.

    Mismatched shapes, a tensor that is not 2-D, or a row whose mask is all zero (no tokens: the
    mean is undefined) raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 9.3 (notebook 09_reasoning_rlvr): implement `sequence_log_ratio` in course_lib/rlvr.py"
    )


def rlvr_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    level: str = "token",
    loss_type: str = "grpo",
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    max_completion_length: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """Exercise 9.4: the policy loss of GRPO / GSPO / DAPO / Dr. GRPO / CISPO, as TRL 1.16 computes it.

    logp, old_logp, mask (and ref_logp) [B, T]; advantages [B], broadcast over each row's tokens.
    Returns ``(loss, stats)``: a scalar tensor to minimise and a dict of Python floats.

    **Importance weight** (`level`, TRL's ``importance_sampling_level``):

    * ``"token"``: ``rho_it = exp(logp_it - old_logp_it)``, one per token;
    * ``"sequence"`` (GSPO): ``rho_i = exp(sequence_log_ratio(logp, old_logp, mask)_i)`` (your
      exercise 9.3), one per completion, used for every token of that row.

    **Per-token loss** (`loss_type`):

    * ``"grpo"``, ``"dapo"``, ``"dr_grpo"``: ``l = -min(rho * A, clip(rho, 1 - eps_low,
      1 + eps_high) * A)`` -- DAPO's "clip-higher" is ``eps_high > eps_low`` (TRL: ``epsilon``,
      ``epsilon_high``);
    * ``"cispo"`` (MiniMax-M1): ``l = -w * A * logp`` with ``w = min(rho, eps_high)`` *detached*
      (no gradient flows through w), so every token keeps the gradient ``w * A * grad log pi``.
      Note: here `eps_high` is the cap itself, not 1 + eps_high (TRL's ``epsilon_high`` for
      cispo; ScaleRL recommends 5.0); `eps_low` is not used.

    With ``beta > 0`` add ``beta * k3`` per token, k3 = ``exp(ref_logp - logp) - (ref_logp -
    logp) - 1`` (unit 06's estimator; TRL with ``use_bias_correction_kl=False``); then
    `ref_logp` is required. With ``beta == 0`` it is ignored (may be None).

    **Reduction** over the completion tokens (mask 1), as unit 06's grpo_loss:

    * ``"grpo"``: mean over each row's tokens, then mean over rows (an all-zero mask row:
      ValueError);
    * ``"dapo"`` and ``"cispo"``: sum over all tokens / number of completion tokens in the batch
      (all-zero mask: ValueError);
    * ``"dr_grpo"``: sum over all tokens / (B * max_completion_length), T = mask.shape[1] when
      `max_completion_length` is None.

    At ``level="sequence"`` the per-row loss is counted once per token of the row, like TRL: with
    ``"grpo"`` each completion weighs the same (GSPO's setting), with the sum-based reductions a
    completion weighs by its length.

    **stats** (floats, no gradient), as TRL logs them: ``clip_ratio_low`` = fraction with
    ``rho < 1 - eps_low`` and ``A < 0``; ``clip_ratio_high`` = fraction with ``rho > 1 +
    eps_high`` and ``A > 0`` (for ``"cispo"``: ``rho > eps_high`` and ``A > 0``, and
    ``clip_ratio_low`` = 0.0); ``mean_ratio`` = the mean of rho. At ``level="token"`` the
    fractions / mean are over the completion tokens of the batch; at ``level="sequence"`` over the
    B completions (one rho each). (TRL divides by ``max(count, 1)``; so do these stats.)

    Mismatched shapes (logp / old_logp / mask / ref_logp [B, T], advantages [B]), a `logp` that
    is not 2-D, an unknown `level` or `loss_type`, a negative eps, or ``beta > 0`` without
    `ref_logp` raise ValueError naming the argument.
    """
    raise NotImplementedError(
        "Exercise 9.4 (notebook 09_reasoning_rlvr): implement `rlvr_policy_loss` in course_lib/rlvr.py"
    )


def dynamic_sampling_mask(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Exercise 9.5: DAPO's dynamic sampling filter, which completions to keep.

    rewards [N] (N = n_prompts * group_size, each prompt's group *contiguous*) -> bool [N]: True
    for every completion of a group whose rewards are NOT all exactly equal, False for every
    completion of a group whose rewards all agree (all right or all wrong: its advantages are all
    zero, it teaches nothing). The trainer drops the False groups and samples more to refill.

    `rewards` not 1-D, ``group_size < 1`` or N not divisible by `group_size` raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 9.5 (notebook 09_reasoning_rlvr): implement `dynamic_sampling_mask` in course_lib/rlvr.py"
    )


def overlong_penalty(lengths: torch.Tensor, max_completion_length: int, overlong_buffer: int) -> torch.Tensor:
    """Exercise 9.6: DAPO's soft overlong punishment, one reward term per completion.

    `lengths` [B] (int or float): each completion's number of tokens, **EOS included** -- what
    TRL's ``trl.rewards.get_soft_overlong_punishment(max_completion_len, soft_punish_cache)``
    counts (``len(completion_ids)``, the ids without padding, whose last one is EOS when the
    completion ended). With ``Lmax = max_completion_length`` and ``buffer = overlong_buffer`` (TRL's
    ``soft_punish_cache``), per completion of length L:

    * ``0.0`` when ``L <= Lmax - buffer`` (the boundary itself is still free);
    * ``(Lmax - buffer - L) / buffer`` when ``Lmax - buffer < L <= Lmax``: a straight line from 0
      down to exactly ``-1.0`` at ``L == Lmax``;
    * ``-1.0`` when ``L > Lmax``.

    Returns a new float32 tensor [B] (never positive: shorter completions are not rewarded, only
    long ones punished); `lengths` is not modified. The trainer adds it to the reward with
    weight 1.

    `lengths` not 1-D, ``overlong_buffer <= 0`` or ``overlong_buffer > max_completion_length``
    raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 9.6 (notebook 09_reasoning_rlvr): implement `overlong_penalty` in course_lib/rlvr.py"
    )


def mask_truncated_completions(completion_mask: torch.Tensor, is_truncated: torch.Tensor) -> torch.Tensor:
    """Exercise 9.7: drop truncated completions from the loss (TRL's ``mask_truncated_completions``).

    `completion_mask` [B, T] (1 on completion tokens, 0 on padding; any integer or float dtype),
    `is_truncated` bool [B]: True for a completion that used the whole length budget without
    writing EOS (the trainer decides it as TRL 1.16 does: the completion's last token, padding
    removed, is neither EOS nor the pad token). Returns a NEW mask of the same shape and dtype:
    every token of a truncated row is 0, every other row unchanged -- so a truncated completion
    adds nothing to the loss, its gradient or the token count of the ``dapo`` reduction. The
    inputs are not modified.

    Shapes that do not match (`completion_mask` not 2-D, `is_truncated` not [B]) or an
    `is_truncated` that is not a bool tensor raise ValueError.
    """
    raise NotImplementedError(
        "Exercise 9.7 (notebook 09_reasoning_rlvr): implement `mask_truncated_completions` in course_lib/rlvr.py"
    )
