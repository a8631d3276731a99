"""Provided experiment code for notebook 01_reward_functions (too long for a notebook cell).

Nothing here implements an exercise: every reward is computed by calling the student's functions
through their module (``rewards.sentiment_reward(...)``), so the plots show the student's code.

* :func:`positive_word_count` — a deliberately *naive* reward (count of positive words) for the
  reward-hacking demo; :func:`greedy_word_search` — a tiny optimiser that exploits it.
* :func:`expected_best_of_n` — E[max of n rewards] from N >= n samples per prompt (exact, no
  resampling noise), for the best-of-n curve.
* :func:`run_trl_grpo` — a few steps of TRL's ``GRPOTrainer`` with a reward function unchanged.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from course_lib import rewards as _rewards
from course_lib.core import corpus
from course_lib.rewards import as_text

POSITIVE_WORDS = frozenset(
    corpus.POSITIVE_ADJ + ["good", "best", "love", "loved", "enjoyed", "nice", "fun", "happy", "beautifully"]
)
"""The lexicon of the naive reward (the adjectives of the synthetic corpus plus common ones)."""


def _words(text: str) -> list[str]:
    return [w.strip(".,!?;:\"'()").lower() for w in text.split()]


def positive_word_count(completions: Sequence, **kwargs) -> list[float]:
    """A naive reward in TRL's signature: the number of words from :data:`POSITIVE_WORDS`.

    It looks reasonable ("more praise = more positive") and is trivially hacked: repeating one
    positive word raises it without limit."""
    return [float(sum(w in POSITIVE_WORDS for w in _words(t))) for t in as_text(completions)]


def expected_best_of_n(rewards, ns: Sequence[int]) -> list[float]:
    """Mean over prompts of E[max reward among n samples] for each n in `ns`.

    `rewards` is [P, N] (N samples for each of P prompts). For a subset of size n drawn without
    replacement from the N samples, the i-th smallest reward (1-based) is the maximum with
    probability C(i-1, n-1) / C(N, n): averaging over *all* subsets, not one random draw, gives a
    smooth curve from a single batch of samples.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if r.dim() != 2:
        raise ValueError(f"expected_best_of_n: rewards must be [P, N], got shape {list(r.shape)}")
    P, N = r.shape
    srt = r.sort(dim=1).values
    out = []
    for n in ns:
        if not 1 <= n <= N:
            raise ValueError(f"expected_best_of_n: n={n} must be between 1 and N={N}")
        w = torch.tensor([math.comb(i, n - 1) for i in range(N)], dtype=torch.float64) / math.comb(N, n)
        out.append(float((srt * w).sum(1).mean()))
    return out


def best_of_n_texts(texts: Sequence[str], rewards: Sequence[float], n: int) -> list[tuple[str, float]]:
    """For groups of `n` consecutive samples (one prompt's samples are contiguous), the
    highest-reward text of each group with its reward: what best-of-n returns."""
    if len(texts) != len(rewards) or len(texts) % n:
        raise ValueError(f"best_of_n_texts: {len(texts)} texts, {len(rewards)} rewards, groups of {n}")
    out = []
    for g in range(0, len(texts), n):
        i = max(range(g, g + n), key=lambda j: rewards[j])
        out.append((texts[i], float(rewards[i])))
    return out


def candidate_words(texts: Sequence[str], k: int = 200) -> list[str]:
    """The `k` most frequent words of `texts` (most frequent first): the search space of
    :func:`greedy_word_search` (words the model actually uses)."""
    counts = Counter(w for t in texts for w in _words(t) if w.isalpha())
    return [w for w, _ in counts.most_common(k)]


def greedy_word_search(
    reward_func: Callable, words: Sequence[str], length: int = 10, prefix: str = ""
) -> str:
    """Build a text word by word, each time appending the word that maximises
    ``reward_func([text])`` (ties: the earlier word in `words`). A crude optimiser, but an
    optimiser: whatever the reward pays for, it finds."""
    if not words:
        raise ValueError("greedy_word_search: no candidate words")
    text = prefix
    for _ in range(length):
        cands = [f"{text} {w}".strip() for w in words]
        scores = reward_func(cands)
        best = max(range(len(cands)), key=lambda i: (scores[i], -i))
        text = cands[best]
    return text


def run_trl_grpo(
    model,
    tokenizer,
    reward_func: Callable,
    prompts: Sequence[str],
    steps: int,
    max_completion_length: int,
    num_generations: int = 4,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    seed: int = 0,
) -> list[dict]:
    """Train `model` in place for `steps` steps with ``trl.GRPOTrainer(reward_funcs=[reward_func])``
    on CPU-friendly settings; return TRL's log history (one dict per step).

    The reward function is passed to TRL *unchanged*: TRL calls it as
    ``reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns)``."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if steps <= 0:
        return []
    cfg = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_grpo_"),
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        activation_checkpointing=False,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        learning_rate=learning_rate,
        beta=0.04,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=False,
        seed=seed,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_func],
        args=cfg,
        train_dataset=Dataset.from_dict({"prompt": list(prompts)}),
        processing_class=tokenizer,
    )
    trainer.train()
    return [h for h in trainer.state.log_history if "reward" in h]


def reinforce_gradients(
    logits, rewards, n: int, repeats: int, baseline: str = "none", generator: torch.Generator | None = None
) -> torch.Tensor:
    """`repeats` REINFORCE estimates of the gradient of E[R] with respect to the logits of a
    softmax policy over K outcomes (a toy "policy" whose completions are K fixed texts).

    Each estimate samples `n` outcomes x_i ~ softmax(logits) and differentiates the student's
    policy-gradient loss ``rewards.reinforce_loss(log pi(x), R(x), baseline)`` (exercise 1.8:
    ``mean_i(-A_i * log pi(x_i))`` with A_i = R(x_i) - b) with autograd; the returned row is minus
    that gradient (the ascent direction of E[R]). `rewards` is [K] (the reward of each outcome);
    `baseline`: "none" (b = 0) or "mean" (b = mean of the n sampled rewards, GRPO's group mean).
    Returns [repeats, K].
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    if logits.dim() != 1 or logits.shape != rewards.shape:
        raise ValueError(
            f"reinforce_gradients: logits and rewards must both be [K], got "
            f"{list(logits.shape)} and {list(rewards.shape)}"
        )
    if baseline not in ("none", "mean"):
        raise ValueError(f"reinforce_gradients: baseline must be 'none' or 'mean', got {baseline!r}")
    if n < 1 or repeats < 1:
        raise ValueError(f"reinforce_gradients: n and repeats must be >= 1, got {n}, {repeats}")
    out = torch.empty(repeats, len(logits), dtype=torch.float64)
    probs = torch.softmax(logits, -1)
    for k in range(repeats):
        theta = logits.clone().requires_grad_(True)
        x = torch.multinomial(probs, n, replacement=True, generator=generator)
        loss = _rewards.reinforce_loss(
            torch.log_softmax(theta, -1)[x], rewards[x], None if baseline == "none" else "mean"
        )
        (grad,) = torch.autograd.grad(loss, theta)
        out[k] = -grad
    return out


def exact_policy_gradient(logits, rewards) -> torch.Tensor:
    """The true gradient of E[R] = sum_x pi(x) R(x) with respect to the logits, [K]:
    pi * (R - E[R]) (what :func:`reinforce_gradients` estimates)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    p = torch.softmax(logits, -1)
    return p * (rewards - (p * rewards).sum())
