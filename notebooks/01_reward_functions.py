# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (rl-course)
#     language: python
#     name: rl-course
# ---

# %% tags=["setup"]

# %% [markdown]
# # Unit 01 — Reward functions
#
# Reinforcement learning post-training changes a language model so that its samples score higher
# under a **reward**: a number given to each completion. Everything later in the course (PPO, GRPO,
# DPO) only ever sees the model's samples and these numbers, so *the reward is the specification*.
# If it pays for something we did not mean, the optimiser will find it.
#
# In this notebook you will
#
# 1. write seven reward functions with **TRL's signature** `f(completions, **kwargs) -> list[float]`
#    (so they plug into `trl.GRPOTrainer` unchanged — we do exactly that at the end),
# 2. look at how they score samples from the course's base model,
# 3. improve the policy without any training (**best-of-n**),
# 4. watch a reward get **hacked** by a tiny optimiser, and fix it,
# 5. write the **policy-gradient (REINFORCE) loss** that turns rewards into a gradient — the
#    estimator every later RL unit refines — and measure what a baseline does to its noise.
#
# The exercises live in `course_lib/rewards.py`; each has a test cell right after its explanation.

# %%
import matplotlib.pyplot as plt
import torch

from course_lib import rewards
from course_lib.core import data, evaluation, sampling
from course_lib.core.models import load_policy
from course_lib.core.report import report_metrics, save_figure
from course_lib.labs import unit01

model, tokenizer = load_policy(profile=profile)
L = profile.max_completion_length
print(
    f"policy: {profile.policy_model}  ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)"
)

# %% [markdown]
# ## The signature TRL expects
#
# TRL calls every reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`:
# `completions` is a list of strings (or, for chat data, lists of messages — `rewards.as_text`
# turns both into strings), and every extra dataset column (e.g. `answer`) arrives as a keyword
# argument holding one value per completion. A reward function must therefore **accept and ignore
# keyword arguments it does not use**, and return one float per completion.
#
# ### Exercise 1.1 — `format_reward`
# The classic GPT-2 SQuAD assignment rewards answers of the form `Question: …\nAnswer: …`. Return
# **+1.0** when the stripped completion matches `rewards.FORMAT_PATTERN` *entirely*
# (`re.fullmatch`), **-1.0** otherwise.
#
# *Hint:* `[1.0 if re.fullmatch(FORMAT_PATTERN, t.strip()) else -1.0 for t in as_text(completions)]`
# is the whole idea; make sure unknown keyword arguments are accepted.

# %% tags=["exercise-test:format_reward"]

# %%
examples = [
    "Question: What is the capital of Avalon?\nAnswer: Lorin.",
    "The capital of Avalon is Lorin.",
    "Question: What is the capital of Avalon?\nAnswer: Lorin.\nQuestion: and more",
]
for text, r in zip(examples, rewards.format_reward(examples, prompts=["..."] * 3)):
    print(f"{r:+.0f}  {text!r}")

# %% [markdown]
# ### Exercise 1.2 — `correctness_reward`
# For arithmetic (and GSM8K) the reward is **1.0** when the *last* integer of the completion equals
# the answer, else **0.0**. `answer` is a dataset column, so it arrives as a keyword argument with one
# entry per completion (an int, or a string such as `"68"` or `"… #### 68"`).
#
# *Hint:* delete **every** comma of the text first (so a thousands separator as in `1,234` reads as
# 1234 — and `"3,4"` as 34), then `re.findall(r"-?\d+", text)` lists the integers; take the last one;
# do the same to a string `answer`; a completion without integers gets 0.0; different lengths of
# `completions` and `answer` → `ValueError`.

# %% tags=["exercise-test:correctness_reward"]

# %% [markdown]
# ### Exercise 1.3 — `sentiment_reward`
# The positive-sentiment score of each completion, in [0, 1], from the provided scorer
# `course_lib.core.sentiment.get_scorer().positive_probability(texts)`: VADER offline in the tiny
# profile, a DistilBERT classifier in the gpu profile. (This is the reward of the classic
# "make GPT-2 write positive IMDB reviews" assignment.)
#
# *Hint:* one line — convert the completions with `as_text` and return a list of Python floats.

# %% tags=["exercise-test:sentiment_reward"]

# %% [markdown]
# ### Exercise 1.4 — `repetition_penalty`
# `1 - unique / total` over the lower-cased, whitespace-separated words: 0.0 for text without
# repeats, close to 1 for `great great great …`, 0.0 for an empty completion. It is a *penalty*:
# combine it with a negative weight.
#
# *Hint:* `words = text.lower().split()`; `len(set(words)) / len(words)`.

# %% tags=["exercise-test:repetition_penalty"]

# %% [markdown]
# ### Exercise 1.5 — `length_penalty`
# **0.0** when the number of whitespace words lies in `[min_words, max_words]`, **-1.0** outside.
# Without it a policy can learn that the shortest (or the longest) answer pays best.
#
# *Hint:* both bounds are inclusive; `min_words` and `max_words` are keyword arguments with defaults.

# %% tags=["exercise-test:length_penalty"]

# %% [markdown]
# ### Exercise 1.6 — `exponential_shaping`
# Reward *shaping* changes the numbers but not the order: `exp(s / T) - 1`. A small temperature `T`
# makes the curve steep, so the few best samples get much larger rewards than the merely good ones —
# useful when a reward saturates (VADER scores of 0.93 and 0.97 are "equally positive" to a
# policy-gradient update, after shaping with `T = 0.1` they differ by a factor 1.5).
#
# *Hint:* lists in → list of floats out; a tensor in → a tensor out (`torch.exp`); `T <= 0` → `ValueError`.

# %% tags=["exercise-test:exponential_shaping"]

# %% [markdown]
# ### Exercise 1.7 — `combine_rewards`
# Real rewards are weighted sums, e.g. `R = w_s·sentiment + w_r·repetition + w_l·length`.
# `combine_rewards(funcs, weights)` returns a **new reward function** with the same TRL signature
# that passes every keyword argument through to each component.
#
# *Hint:* define an inner `def combined(completions, **kwargs)` and return it (a closure);
# mismatched lengths or an empty list of functions → `ValueError`.

# %% tags=["exercise-test:combine_rewards"]

# %% [markdown]
# ## What the base model writes, and how each reward sees it
#
# We sample from the **base** model (no post-training yet) on three tasks: continuations of neutral
# review openings (sentiment), bare questions (format), and sums `a + b =` on pairs never seen in
# pretraining (correctness). Looking at reward *distributions* before training tells you what an RL
# algorithm has to work with: a reward that is the same for every sample gives no signal at all.

# %%
n_prompts = 8 if FAST else min(32, profile.preset().eval_size)
gen = torch.Generator().manual_seed(0)
reviews = data.load_task("sentiment", "eval", n=n_prompts)["prompt"]
qa = data.load_task("qa", "eval", n=n_prompts)
arith = data.load_task("arithmetic", "eval", n=n_prompts)
review_texts = sampling.sample(
    model, tokenizer, reviews, max_new_tokens=L, num_samples=4, generator=gen
).texts
qa_texts = sampling.sample(
    model, tokenizer, qa["prompt"], max_new_tokens=2 * L, num_samples=4, generator=gen
).texts
arith_texts = sampling.sample(
    model, tokenizer, arith["prompt"], max_new_tokens=8, num_samples=4, generator=gen
).texts
for p, t in list(zip([p for p in reviews for _ in range(4)], review_texts))[:3]:
    print(repr(p), "->", repr(t))

# %%
answers = [a for a in arith["answer"] for _ in range(4)]
scores = {
    "format (questions)": rewards.format_reward(qa_texts),
    "correctness (sums)": rewards.correctness_reward(arith_texts, answer=answers),
    "sentiment (reviews)": rewards.sentiment_reward(review_texts),
    "repetition (reviews)": rewards.repetition_penalty(review_texts),
    "length (reviews)": rewards.length_penalty(review_texts),
}
fig, axes = plt.subplots(1, len(scores), figsize=(16, 3))
for ax, (name, vals) in zip(axes, scores.items()):
    ax.hist(vals, bins=20, color="tab:blue")
    ax.set_title(f"{name}\nmean {sum(vals) / len(vals):.2f}", fontsize=9)
    ax.set_xlabel("reward")
# a penalty that never fires is one bar at 0: show what it looks at instead (words per sample)
n_words = [len(t.split()) for t in review_texts]
fired = sum(v != 0 for v in scores["length (reviews)"])
axes[-1].clear()
axes[-1].hist(n_words, bins=range(0, 45), color="tab:blue")
for bound in (4, 40):  # length_penalty's default bounds
    axes[-1].axvline(bound, color="tab:red", ls="--", lw=1)
axes[-1].set_xlabel("words per sample (red: the allowed range)")
axes[-1].set_title(f"length (reviews): penalty -1 on\n{fired} of {len(n_words)} samples", fontsize=9)
axes[0].set_ylabel("samples")
fig.suptitle("Rewards of base-model samples")
fig.tight_layout()
save_figure(fig, "01_reward_histograms")
plt.show()
first_int = evaluation.first_integer_accuracy(arith_texts, answers)
print(
    f"sums: last integer right {sum(scores['correctness (sums)']) / len(answers):.2f}, "
    f"first integer right {first_int:.2f}"
)
print(
    f"sentiment: {sum(abs(v - 0.5) < 1e-9 for v in scores['sentiment (reviews)'])} of {len(review_texts)} "
    "samples score exactly 0.5 (VADER found no sentiment word)"
)

# %% [markdown]
# Binary rewards (format, correctness) give the optimiser only "better or worse than the others".
# The base model gets about half of the held-out sums right (the printed numbers), and its *first*
# integer is right a little more often than its *last*: some samples give the answer and then keep
# writing (`25. 12 +`), so the reward's exact definition — the last integer — decides what "correct"
# means and what a policy trained on it will learn (to stop after the answer). The sentiment score
# is graded and spread over the whole range, with one spike at exactly 0.5: VADER scores a text
# without any sentiment word as neutral. The repetition penalty is small for most samples, and the
# length penalty never fires on these samples (all between 4 and 40 words, last panel): a penalty
# should bite only on the rare bad sample, and a penalty that never bites is one you cannot see
# working until the policy drifts — that is why we test it on made-up extremes above.
#
# ## Shaping: same order, different gaps
#
# `exponential_shaping` keeps the ranking of samples but changes how much more the best one is worth.
# Move the slider (in Jupyter/Colab) to see the curve and what it does to the sentiment rewards above.

# %%
s = torch.linspace(0, 1, 101)
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for T in (0.1, 0.25, 0.5, 1.0, 2.0):
    shaped_s = rewards.exponential_shaping(s, T)
    a.plot(s[1:], shaped_s[1:], label=f"T = {T}")  # s = 0 gives 0: no place on a log axis
    b.plot(s, shaped_s / shaped_s[-1], label=f"T = {T}")
a.set_yscale("log")
a.set_xlabel("score s")
a.set_ylabel("exp(s/T) - 1  (log scale)")
a.set_title("shaped reward")
b.set_xlabel("score s")
b.set_ylabel("shaped reward / shaped reward at s = 1")
b.set_title("the same, relative to the best score")
b.legend(fontsize=8)
fig.suptitle("Exponential shaping: same order, different gaps")
fig.tight_layout()
save_figure(fig, "01_exponential_shaping")
plt.show()

# %%
import ipywidgets as widgets

sent = torch.tensor(scores["sentiment (reviews)"])


def show_shaping(temperature=0.25):
    shaped = rewards.exponential_shaping(sent, temperature)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
    a.plot(s, rewards.exponential_shaping(s, temperature))
    a.set_title(f"exp(s/{temperature:.2f}) - 1")
    b.hist(shaped, bins=20)
    b.set_title(
        f"shaped sentiment rewards (max/median = {shaped.max() / shaped.median().clamp(min=1e-6):.1f})"
    )
    plt.show()


widgets.interact(
    show_shaping,
    temperature=widgets.FloatLogSlider(
        value=0.25, base=10, min=-1.3, max=0.5, step=0.05, continuous_update=False
    ),
)

# %% [markdown]
# ## Best-of-n: the simplest policy improvement
#
# Sample `n` completions, keep the one with the highest reward. No gradient, no training — and yet
# the *best-of-n policy* is a better policy. We draw N = 16 samples per prompt once and compute, for
# every n ≤ 16, the expected best reward over all subsets of size n
# (`unit01.expected_best_of_n`), so the curve has no resampling noise.

# %%
N = 16
bon_texts = []
for i in course_lib.progress(range(0, len(reviews), 8), desc="sampling 16 per prompt"):
    bon_texts += sampling.sample(
        model, tokenizer, reviews[i : i + 8], max_new_tokens=L, num_samples=N, generator=gen
    ).texts
bon_reward = torch.tensor(rewards.sentiment_reward(bon_texts)).view(len(reviews), N)
shaped = rewards.combine_rewards(
    [rewards.sentiment_reward, rewards.repetition_penalty, rewards.length_penalty], [1.0, -0.5, 0.5]
)
bon_combined = torch.tensor(shaped(bon_texts)).view(len(reviews), N)
ns = list(range(1, N + 1))
curve = unit01.expected_best_of_n(bon_reward, ns)
curve_combined = unit01.expected_best_of_n(bon_combined, ns)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(ns, curve, "o-", label="sentiment_reward")
ax.plot(ns, curve_combined, "s-", label="sentiment - 0.5·repetition + 0.5·length")
ax.set_xscale("log", base=2)
ax.set_xlabel("n (samples per prompt)")
ax.set_ylabel("E[best reward]")
ax.set_title("Best-of-n")
ax.legend(fontsize=8)
save_figure(fig, "01_best_of_n")
plt.show()
print(f"best-of-1 {curve[0]:.3f} -> best-of-{N} {curve[-1]:.3f}")

# %% [markdown]
# The gain per doubling of n shrinks: the maximum of n samples grows slowly once n is past the
# bulk of the distribution, while the cost (n forward passes per answer) grows linearly. RL
# post-training *amortises* this search into the weights. (Best-of-n is also a yardstick: its KL
# from the base policy is at most `log n - (n-1)/n` nats — unit 02 explains what that means.)
#
# ## Reward hacking
#
# Here is a reward that sounds sensible: *count the positive words*. Let an optimiser loose on it.
# Our optimiser is tiny — it builds a text word by word, always appending the word (from the 200
# words the model uses most) that raises the reward most — but it is an optimiser, and that is enough.

# %%
words = unit01.candidate_words(bon_texts, k=200)
no_repeats = rewards.combine_rewards([unit01.positive_word_count, rewards.repetition_penalty], [1.0, -2.0])
searches = {
    "positive words": unit01.positive_word_count,
    "sentiment_reward": rewards.sentiment_reward,
    "positive words - 2·repetition": no_repeats,
}
hacked = {name: unit01.greedy_word_search(f, words, length=10) for name, f in searches.items()}
for name, text in hacked.items():
    print(f"{name:>30}: {text!r}")
    print(
        f"{'':>30}  positive words {unit01.positive_word_count([text])[0]:.0f}, "
        f"sentiment {rewards.sentiment_reward([text])[0]:.2f}, repetition {rewards.repetition_penalty([text])[0]:.2f}"
    )

# %%
best_naive = unit01.best_of_n_texts(bon_texts, unit01.positive_word_count(bon_texts), N)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, metric, f in zip(
    axes,
    ["positive words", "sentiment_reward", "repetition_penalty"],
    [unit01.positive_word_count, rewards.sentiment_reward, rewards.repetition_penalty],
):
    names = ["base samples (mean)", "best-of-16 by count"] + [f"greedy: {k}" for k in hacked]
    vals = [sum(f(bon_texts)) / len(bon_texts), sum(f([t for t, _ in best_naive])) / len(best_naive)]
    vals += [f([t])[0] for t in hacked.values()]
    ax.bar(range(len(vals)), vals, color=["gray", "tab:blue", "tab:red", "tab:red", "tab:green"])
    ax.set_xticks(range(len(vals)), names, fontsize=7, rotation=30, ha="right")
    ax.set_title(metric)
    ax.set_ylabel(f"{metric} (mean over texts)", fontsize=8)
fig.suptitle("Optimising a reward: what the optimiser finds")
fig.tight_layout()
save_figure(fig, "01_reward_hacking")
plt.show()

# %% [markdown]
# Both the naive count **and** the VADER sentiment reward are maximised by repeating one word:
# neither was written with that text in mind, and neither punishes it. (The same thing happens to
# real RL runs: GRPO on VADER drifts into "happy happy happy" within a minute, see unit 06.)
# Adding the repetition penalty removes the repetition — the combined reward's optimum uses every
# positive word once. Be honest about what that fixed: the result is still a word salad that no
# reader would call a review. Each patch closes one loophole; the general fix is to keep the policy
# close to a model that writes fluent text — the KL penalty of unit 02.
#
# ## Plugging a reward into TRL unchanged
#
# Your `sentiment_reward` already has TRL's signature, so it goes straight into
# `trl.GRPOTrainer(reward_funcs=[...])`. A few CPU steps (one while grading) show TRL calling it
# and logging its mean under the function's name.

# %%
trl_model, _ = load_policy(profile=profile)
trl_log = unit01.run_trl_grpo(
    trl_model,
    tokenizer,
    rewards.sentiment_reward,
    data.load_task("sentiment", "train", n=32)["prompt"],
    steps=1 if FAST else 4,
    max_completion_length=L,
)
key = "rewards/sentiment_reward/mean"
print("TRL logged", key, [round(h[key], 3) for h in trl_log])
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([h["step"] for h in trl_log], [h[key] for h in trl_log], "o-")
# the reward lives in [0, 1]: a y-axis fitted to the points would blow up a few thousandths of noise
# into what looks like a trend
ax.set_ylim(0, 1)
ax.set_xlabel("GRPOTrainer step")
ax.set_ylabel(key)
ax.set_title("TRL calling rewards.sentiment_reward")
save_figure(fig, "01_trl_grpo")
plt.show()
logged = [h[key] for h in trl_log]
print(f"mean reward from {min(logged):.3f} to {max(logged):.3f} over {len(logged)} step(s): "
      f"a spread of {max(logged) - min(logged):.3f} on the 0-1 scale")  # fmt: skip

# %% [markdown]
# The curve is flat: a handful of steps is not training, and the step-to-step differences are the
# noise of sampling a few completions (unit 06 trains properly and compares TRL with our own loop).
# The point is the interface: the same function you wrote and tested here is what TRL optimises.
#
# ## How a reward becomes a gradient: REINFORCE
#
# Every RL unit of the course (PPO, GRPO) is a refinement of one estimator. We want to raise
# $J(\theta) = \mathbb{E}_{x\sim\pi_\theta}[R(x)]$, but $x$ is *sampled*, so we cannot backpropagate
# through it. The log-derivative trick, $\nabla\pi = \pi\,\nabla\log\pi$, gives
#
# $$\nabla_\theta J = \mathbb{E}_{x\sim\pi_\theta}\big[R(x)\,\nabla_\theta \log \pi_\theta(x)\big]
# \approx \frac1n\sum_{i=1}^n R(x_i)\,\nabla_\theta\log\pi_\theta(x_i),$$
#
# so the **policy-gradient loss** is $-\frac1n\sum_i A_i \log\pi_\theta(x_i)$ with $A_i = R(x_i)$
# held constant (no gradient through the reward), and `loss.backward()` does the rest. Each sample pushes its own
# log-probability up in proportion to `A`: up if `A > 0`, down if `A < 0`, not at all if `A = 0`.
# Since $\mathbb{E}[\nabla\log\pi] = \sum_x \nabla\pi(x) = \nabla 1 = 0$, subtracting any constant
# **baseline** `b` (`A = R - b`) leaves the expected gradient unchanged but changes its noise; GRPO's
# group mean and PPO's value network are such baselines.
#
# ### Exercise 1.8 — `reinforce_loss`
# `reinforce_loss(logprobs, rewards, baseline=None)` returns the scalar loss above for a batch of
# B sampled completions: `logprobs` [B] is the log-probability of each *whole* completion (the sum
# of its token log-probabilities; it carries the gradient), `rewards` [B] its reward. The baseline
# is `None` (b = 0), `"mean"` (the batch mean of the rewards) or a number (that constant).
#
# *Hint:* three things go wrong in practice: the sign (minimising the loss must *raise* the
# log-probability of a sample with positive advantage), the reduction (a mean over the batch, so
# the step size does not grow with B), and the gradient path (the advantages are constants — no
# gradient may flow into the rewards or the baseline; units 05–07 meet the same rule again).
# Non-1-d `logprobs`, `rewards` of another shape or an unknown baseline → `ValueError`.

# %% tags=["exercise-test:reinforce_loss"]

# %% [markdown]
# **Predict, then run.** A toy policy chooses among four completions: one passes the format
# (probability 0.1), three fail. Below, `unit01.reinforce_gradients` computes 2000 estimates from 8
# samples each, with autograd on *your* `reinforce_loss`, for the format reward as +1/-1 and as 1/0,
# with and without the batch-mean baseline. Before running: which setting has the noisiest
# gradient *relative to its size*, and do +1/-1 and 1/0 point the same way once the mean is
# subtracted? Write your prediction in `q_reward_offset` at the end, then run the cell.

# %%
toy_logits = torch.log(torch.tensor([0.1, 0.3, 0.3, 0.3]))  # outcome 0 passes the format
g_pg = torch.Generator().manual_seed(0)
print(f"{'rewards':>8} {'baseline':>9} {'E[estimate]/true (pass logit)':>30} {'noise/|true gradient|':>22}")
for label, R in {"+1 / -1": [1.0, -1.0, -1.0, -1.0], "1 / 0": [1.0, 0.0, 0.0, 0.0]}.items():
    true = unit01.exact_policy_gradient(toy_logits, R)
    for baseline in ("none", "mean"):
        est = unit01.reinforce_gradients(toy_logits, R, n=8, repeats=2000, baseline=baseline, generator=g_pg)
        noise = float(est.var(0).sum().sqrt() / true.norm())
        print(f"{label:>8} {baseline:>9} {float(est[:, 0].mean() / true[0]):>30.2f} {noise:>22.2f}")
print(
    "true gradient (+1/-1):",
    [round(v, 3) for v in unit01.exact_policy_gradient(toy_logits, [1.0, -1, -1, -1]).tolist()],
)

# %% [markdown]
# ## Headline numbers

# %%
report_metrics(
    "01",
    {
        "best_of_n_sentiment": (curve[0], curve[-1]),
        "best_of_n_combined": (curve_combined[0], curve_combined[-1]),
        "hack_repetition": (
            rewards.repetition_penalty([hacked["positive words"]])[0],
            rewards.repetition_penalty([hacked["positive words - 2·repetition"]])[0],
        ),
        "trl_logged_sentiment_reward": (None, sum(h[key] for h in trl_log) / len(trl_log)),
    },
)

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_reward_offset"]
# *Predict first* (before running the REINFORCE cell), then explain the printed table. (a) In a
# batch of 8 where 7 samples fail the format, what does one failing sample do to its own
# probability under +1/-1 and under 1/0 rewards, without a baseline? (b) Your prediction: which of
# the four settings is noisiest relative to the true gradient — and what did the cell print?
# (c) With the batch-mean baseline, why do +1/-1 and 1/0 give the same update up to a factor
# (which factor?), and why is the "E[estimate]/true" column below 1 with that baseline when n = 8?
# (Hint: the sample's own reward is part of the mean.)

# %% [markdown] tags=["answer:q_hacking"]
# The repetition penalty stopped `great great great …`. Give a text that still scores high under
# `positive words - 2·repetition` (or under `sentiment_reward`) but is not a good review, and
# propose one more reward term *or* a constraint that rules out your text. Why can a finite list of
# penalties never close every loophole?

# %% [markdown] tags=["answer:q_best_of_n"]
# *Predict, then run* (add a cell). (a) Before computing: if best-of-16 selects by the hackable
# `unit01.positive_word_count` instead of `sentiment_reward`, will the selected texts be as
# positive (sentiment) as best-of-16 by sentiment, and will they look like `warm warm warm …`?
# Then compute it with `unit01.best_of_n_texts(bon_texts, unit01.positive_word_count(bon_texts), 16)`
# and report the mean `sentiment_reward` and `repetition_penalty` of the selected texts next to
# those selected by sentiment. Explain why best-of-n cannot produce the greedy optimiser's text.
# (b) The KL of best-of-n from the base policy is at most `log n - (n-1)/n` nats: compute it for
# n = 2, 4, 16 and, from the curve above, pick the n you would deploy and say what it costs per answer.
