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
# # Unit 10 — RL with a tool, over several turns
#
# Unit 09's model added four one-digit numbers with a scratchpad. Give it three numbers of three
# digits ("What is 123+456+789?") and a scratchpad of running sums becomes long and error-prone for
# a 1M-parameter model. A **calculator** makes the problem easy — if the model calls it, with
# the right syntax, and then copies its result into the answer. This is the smallest case of what
# agentic RL does with search engines, code interpreters and browsers:
#
# * **the tool syntax**: the model writes `<tool>123+456+789</tool>`; the **environment** (not the
#   model) parses the call, computes the sum and appends `<result>1368</result>`; the model goes on
#   and answers in unit 09's block, `<answer>1368</answer>`;
# * **an episode has several turns**: a *turn* is one model generation, ending at `</tool>` (the
#   environment answers, the next turn starts) or at `</answer>` / EOS / the token budget (the
#   episode is over); at most `max_turns` model turns per episode;
# * **the start model** (`assets/tiny_tool`, shipped with the course) was pretrained on text where
#   people *sometimes* used the calculator and usually guessed: it calls the tool now and then,
#   and its guesses are rarely right. RL has to discover that calling pays.
#
# Three things change when the environment writes part of the episode, one per exercise: the
# environment must **read** the model's call (10.1), the loss must **leave out** the tokens the
# model did not write (10.2), and the reward must **price** bad calls and endless calling (10.3).
#
# **Plan.** The task → parse a call (10.1) → the environment mask (10.2), one episode drawn token by
# token → the reward (10.3), a table of episodes and their rewards → GRPO on episodes with *your*
# functions: held-out accuracy, tool-call rate, malformed calls, turns per episode → the ablation:
# the same run with the environment's tokens *in* the loss, measured.

# %%
import random

import matplotlib.pyplot as plt
import torch

from course_lib import kl, tools
from course_lib.core import registry, sampling
from course_lib.core.report import claim, report_metrics, save_figure
from course_lib.labs import tools as tool_lab
from course_lib.trainers import tools as tools_trainer

N_EVAL = 8 if FAST else None  # held-out problems per evaluation (None = the preset's eval_size)
# under the grader (FAST) every run shrinks to one step of 2 problems x 4 episodes
FAST_SIZE = (
    {**course_lib.core.utils.GRADING_SIZES["grpo"], "max_completion_length": 48, "eval_every": 0}
    if FAST
    else {}
)


def tool_config(**overrides):  # the unit's ToolConfig on this profile
    return tools_trainer.ToolConfig.from_profile(profile, **{"eval_size": N_EVAL, **overrides, **FAST_SIZE})


cfg = tool_config()
start_model, tokenizer = tool_lab.load_start_model(profile=profile)
heldout = tools_trainer.task_problems("eval", cfg.resolved(profile).eval_size)
print(f"held-out problems: {len(heldout)}; up to {cfg.max_turns} model turns per episode")
print(heldout[0]["prompt"] + "   [answer: " + heldout[0]["answer"] + "]")

# %% [markdown]
# ## The task and the tool syntax
#
# What the pretraining text looked like, one line per style: a call and its result, two calls
# (summing pairwise), a guess, a call the calculator cannot read (the environment answers
# `<result>error</result>`), and no tags at all.

# %%
rng = random.Random(0)
nums = [123, 456, 789]
for style in tool_lab.STYLES:
    print(f"{style:>10}: {tool_lab.completion(nums, style, rng)!r}")

# %% [markdown]
# ## Exercise 10.1 — read the model's call
#
# `tools.parse_tool_call(text)` returns the terms of the **first** call in one turn's text, as
# ints, or None when there is no `<tool>`. The call is the text from the first `<tool>` to the
# first `</tool>` after it; its terms are separated by `+`, and each, stripped of whitespace, must
# be ASCII digits. Anything else raises `tools.MalformedToolCall` (a `ValueError`): the
# environment then answers `<result>error</result>`, and the trainer counts a malformed call.
#
# Why so strict? The calculator is part of the *environment*: what it accepts defines what the
# policy is rewarded for. A parser that guesses what `12 + x` meant, or lets `int()` read `-3`
# and full-width digits, teaches the policy to lean on the leniency — and the policy will find
# every hole in it.

# %% tags=["exercise-test:parse_tool_call"]

# %% [markdown]
# ## Exercise 10.2 — the environment mask
#
# One episode is one row of tokens after the prompt: the model's tokens and the environment's,
# in the order they were written. The trainer scores the whole row in one forward pass (the model
# must *read* the result to copy it), but the policy gradient
# $\nabla \log \pi_\theta(o_t \mid o_{<t})$ only makes sense where the model **sampled** $o_t$. The
# result tokens were not sampled: the environment wrote them, whatever the policy's probabilities.
# Pushing up their log-probability on a good episode teaches the model to *predict the
# calculator* — a different skill, learned from the advantage of a choice it did not make.
#
# `tools.environment_mask(completion_mask, env_spans)` returns a new mask: the completion mask with
# every position of the environment's spans set to 0 (span `(start, end)`: start inclusive, end
# exclusive, one list of spans per row). TRL's `GRPOTrainer` builds the same mask as `tool_mask`
# when it runs tools, veRL as `response_mask` (docs/engines.md maps every piece of this unit).

# %% tags=["exercise-test:environment_mask"]

# %%
# One episode of the start model, token by token: what the loss sees (your 10.2)
gen = torch.Generator().manual_seed(0)
episodes = tool_lab.rollout(start_model, tokenizer, [p["prompt"] for p in heldout[:32]],
                            max_new_tokens=cfg.resolved(profile).max_completion_length,
                            max_turns=cfg.max_turns, generator=gen)  # fmt: skip
called = [i for i, spans in enumerate(episodes.env_spans) if spans]
row = next((i for i in called if not episodes.malformed[i]), called[0] if called else 0)  # a good call
ro = episodes.rollout
loss_mask = tools.environment_mask(ro.completion_mask, episodes.env_spans)
ids = ro.completion_ids[row][ro.completion_mask[row].bool()].tolist()
print("episode:", repr(episodes.texts[row]))
print("environment spans of this row:", episodes.env_spans[row])
PER_LINE = 16
fig, ax = plt.subplots(figsize=(12, 0.55 * (len(ids) // PER_LINE + 2)))
for k, tok_id in enumerate(ids):
    x, y = k % PER_LINE, -(k // PER_LINE)
    env = loss_mask[row, k].item() == 0
    ax.add_patch(plt.Rectangle((x, y), 0.95, 0.8, color="C1" if env else "C0", alpha=0.35))
    ax.text(x + 0.47, y + 0.4, repr(tokenizer.decode([tok_id]))[1:-1], ha="center", va="center", fontsize=8)
ax.set_xlim(0, PER_LINE)
ax.set_ylim(-(len(ids) // PER_LINE) - 0.2, 1)
ax.axis("off")
ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="C0", alpha=0.35, label="model's token: in the loss (mask 1)"),
                   plt.Rectangle((0, 0), 1, 1, color="C1", alpha=0.35, label="environment's token: mask 0")],
          loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)  # fmt: skip
ax.set_title("One episode, token by token: the environment's reply is read, never trained on")
save_figure(fig, "10_episode_mask")
plt.show()
env_frac = 1 - loss_mask.sum().item() / ro.completion_mask.sum().item()
print(f"the environment wrote {env_frac:.1%} of these {len(ro)} episodes' tokens")
with torch.no_grad():  # how well the start model predicts each kind of token
    logp = kl.token_logprobs(sampling.completion_logits(start_model, ro, 1.0), ro.completion_ids)
env_pos = ro.completion_mask.bool() & (loss_mask == 0)
own_pos = loss_mask.bool()
logp_env, logp_own = logp[env_pos].mean().item(), logp[own_pos].mean().item()
print(f"mean log-probability the start model gives the environment's tokens: {logp_env:.2f}; "
      f"the tokens it sampled itself: {logp_own:.2f} (question q_tools_mask asks what training on them would do)")  # fmt: skip

# %% [markdown]
# ## Exercise 10.3 — the reward
#
# `tools.tool_reward(completion, answer, n_malformed, over_budget, malformed_penalty=0.5,
# budget_penalty=1.0)`: unit 09's `rlvr.answer_reward` of the whole episode (call your 9.2, do not
# rewrite it), minus `malformed_penalty` per malformed call, minus `budget_penalty` if the episode
# is **over budget** (it was still calling the tool when its last turn ended, so it never
# answered). Nothing rewards calling the tool as such: a call pays only through the answer it
# makes right. The penalties say what the environment will not put up with — calls it cannot read
# (each costs a turn and teaches the policy nothing), and episodes that call forever.

# %% tags=["exercise-test:tool_reward"]

# %%
# The reward of a few hand-written episodes (answer 1368), by your 10.3
EPISODES = {  # label: (episode text, malformed calls, over budget)
    "tool, then the answer": (" <tool>123+456+789</tool> <result>1368</result> <answer>1368</answer>", 0, False),
    "guess, right": (" <answer>1368</answer>", 0, False),
    "guess, wrong": (" <answer>1351</answer>", 0, False),
    "bad call, then a right answer": (" <tool>123+456+seven</tool> <result>error</result> <answer>1368</answer>", 1, False),
    "bad call, then a wrong answer": (" <tool>123 456</tool> <result>error</result> <answer>1351</answer>", 1, False),
    "calls until the turns run out": (" <tool>123+456</tool> <result>579</result> <tool>579+789</tool> "
                                      "<result>1368</result> <tool>1368+0</tool>", 0, True),
    "copies the result wrong": (" <tool>123+456+789</tool> <result>1368</result> <answer>1386</answer>", 0, False),
}  # fmt: skip
rewards = {k: tools.tool_reward(t, "1368", m, o) for k, (t, m, o) in EPISODES.items()}
for k, r in rewards.items():
    print(f"{r:>5.2f}  {k:<32} {EPISODES[k][0]!r}")
fig, ax = plt.subplots(figsize=(8, 3))
ax.barh(list(rewards)[::-1], list(rewards.values())[::-1],
        color=["C2" if r > 0 else ("C3" if r < 0 else "C7") for r in list(rewards.values())[::-1]])  # fmt: skip
ax.axvline(0, color="black", lw=0.6)
ax.set_xlabel("reward (answer 1/0, - 0.5 per malformed call, - 1 over budget)")
ax.set_title("What each kind of episode earns")
fig.tight_layout()
save_figure(fig, "10_reward_table")
plt.show()

# %% [markdown]
# Note the two *right* answers: the guess and the tool episode earn the same 1.0. The reward
# cannot tell luck from method — but a policy that calls the tool is right far more often than one
# that guesses, so over many episodes GRPO's group comparison favours calling. How often, for the
# start model?

# %%
start = tools_trainer.evaluate(start_model, tokenizer, heldout, cfg.resolved(profile))
print(
    f"start model on {len(heldout)} held-out problems: accuracy {start['accuracy']:.2f}, tool called in "
    f"{start['tool_call_rate']:.0%} of the episodes, malformed {start['malformed_rate']:.0%}, "
    f"{start['turns_per_episode']:.2f} turns per episode"
)
print(f"accuracy when it called the tool: {start['accuracy_with_tool']:.2f}; when it did not: "
      f"{start['accuracy_without_tool']:.2f}")  # fmt: skip
fig, ax = plt.subplots(figsize=(6, 2.8))
bars = {"all episodes": start["accuracy"], "with a call": start["accuracy_with_tool"],
        "without a call": start["accuracy_without_tool"], "tool-call rate": start["tool_call_rate"]}  # fmt: skip
ax.bar(list(bars), [v if v == v else 0 for v in bars.values()], color=["C0", "C2", "C3", "C7"])
for i, v in enumerate(bars.values()):
    if v == v:  # NaN: no episode of that kind
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center")
ax.set_ylim(0, 1.1)
ax.set_title("Start model: mostly right when it calls, but it mostly guesses")
save_figure(fig, "10_start")
plt.show()

# %% [markdown]
# ## GRPO on episodes (provided loop, your functions)
#
# `course_lib/trainers/tools.py` — open it. Each step: roll out $G = 8$ episodes for each of
# 8 problems (all episodes advance together, one KV cache; an episode that called the tool gets
# the result tokens appended and goes on) → reward = your `tool_reward` → unit 06's
# `group_advantages` → unit 09's `rlvr_policy_loss` on the tokens of your `environment_mask` →
# AdamW. Held-out problems (never in training or pretraining) are evaluated every 10 steps.
#
# *Predict before you run*: which rises first, the tool-call rate or the accuracy? And what
# happens to the number of turns per episode?

# %%
registry.check_training_needs("10")  # names every exercise this training runs that is still a stub
print(cfg)
main_run = tools_trainer.headline_run(cfg, profile, start=(start_model, tokenizer))
main, after = main_run.run, main_run.after
print(f"trained {len(main.history)} steps in {main.info['train_seconds']:.0f} s "
      f"(+{main.info['eval_seconds']:.0f} s of held-out evaluation)")  # fmt: skip
for k in tools_trainer.EVAL_KEYS:
    print(f"{k:>18}: {main_run.before[k]:.3f} -> {after[k]:.3f}")
for s in after["samples"][:4]:
    print(f"  [{'ok' if s['correct'] else '--'}] {s['response']!r}")

# %% [markdown]
# ## The ablation: the environment's tokens in the loss
#
# The same run, same seed, same problems, with one change: `train_on_env_tokens=True`, so the loss
# mask is the plain completion mask and the policy gradient also acts on the `<result>` tokens.
# *Predict before you run*: better, worse, or the same? The bars, set before measuring (seeds 0, 1
# and 2, the worst seed must meet them): **the main run ends at least 0.20 above the start model's
# held-out accuracy; the ablation ends at least 0.10 below the main run.** The cells below check
# them on this run.

# %%
abl_run = tools_trainer.headline_run(
    tool_config(train_on_env_tokens=True), profile, start=(start_model, tokenizer)
)
abl, abl_after = abl_run.run, abl_run.after
for k in tools_trainer.EVAL_KEYS:
    print(
        f"{k:>18}: start {main_run.before[k]:.3f}   env mask {after[k]:.3f}   env tokens in the loss {abl_after[k]:.3f}"
    )

# %%
PANELS = {
    "eval_accuracy": "held-out accuracy",
    "eval_tool_call_rate": "held-out tool-call rate",
    "eval_malformed_rate": "held-out malformed rate",
    "eval_turns_per_episode": "held-out turns per episode",
    "accuracy": "accuracy (step's episodes)",
    "tool_call_rate": "tool-call rate (step's episodes)",
    "env_token_fraction": "tokens written by the environment",
    "entropy": "entropy (nats/token)",
}
RUNS = {"env mask (main)": main, "env tokens in the loss": abl}
fig, axes = plt.subplots(2, 4, figsize=(14.4, 5.6))
for ax, (key, title) in zip(axes.flat, PANELS.items()):
    for i, (label, run) in enumerate(RUNS.items()):
        pts = [(h["step"], h[key]) for h in run.history if key in h and h[key] == h[key]]
        if key.startswith("eval_"):  # step 0 = the start model
            pts = [(0, main_run.before[key[5:]])] + pts
        if pts:
            ax.plot(*zip(*pts), marker=".", ms=4, label=label, color=f"C{i}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
fig.suptitle("GRPO on calculator episodes: the environment mask vs the environment's tokens in the loss")
fig.tight_layout()
fig.legend(*axes[0][0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
save_figure(fig, "10_curves")
plt.show()

# %%
gain = after["accuracy"] - main_run.before["accuracy"]
gap = after["accuracy"] - abl_after["accuracy"]
claim(f"the bar: held-out accuracy rose by at least 0.20: {main_run.before['accuracy']:.2f} -> "
      f"{after['accuracy']:.2f} ({gain:+.2f})", gain >= 0.20)  # fmt: skip
claim(f"the model learned to call: tool-call rate {main_run.before['tool_call_rate']:.2f} -> "
      f"{after['tool_call_rate']:.2f}", after["tool_call_rate"] > main_run.before["tool_call_rate"])  # fmt: skip
claim(f"more turns per episode: {main_run.before['turns_per_episode']:.2f} -> {after['turns_per_episode']:.2f} "
      "(a call adds a turn)", after["turns_per_episode"] > main_run.before["turns_per_episode"])  # fmt: skip
print(
    f"malformed calls: {main_run.before['malformed_rate']:.2f} -> {after['malformed_rate']:.2f} of the episodes"
)
print(f"the ablation's bar (at least 0.10 below the main run): {abl_after['accuracy']:.2f} vs "
      f"{after['accuracy']:.2f} ({-gap:+.2f}): {'met' if gap >= 0.10 else 'MISSED'} on this run")  # fmt: skip
print(f"tool-call rate at the end: env mask {after['tool_call_rate']:.2f}, env tokens in the loss "
      f"{abl_after['tool_call_rate']:.2f}")  # fmt: skip

# %%
report_metrics(
    "10",
    {
        "heldout_accuracy": (main_run.before["accuracy"], after["accuracy"]),
        "tool_call_rate": (main_run.before["tool_call_rate"], after["tool_call_rate"]),
        "malformed_rate": (main_run.before["malformed_rate"], after["malformed_rate"]),
        "turns_per_episode": (main_run.before["turns_per_episode"], after["turns_per_episode"]),
        "ablation_heldout_accuracy": (main_run.before["accuracy"], abl_after["accuracy"]),
        "ablation_tool_call_rate": (main_run.before["tool_call_rate"], abl_after["tool_call_rate"]),
        "train_seconds": (None, main.info["train_seconds"]),
    },
)
tools_trainer.save_checkpoint(main)  # checkpoints/tools

# %% [markdown]
# **Why the mask matters, and what this run shows.** With the environment's tokens in the loss,
# every episode that called the tool hands its advantage to tokens the model did not choose. On a
# good episode the update raises the probability of `<result>1368</result>` after the call — the
# model is trained to *be the calculator*, a skill it does not need (the environment writes those
# tokens whatever the model predicts). On a bad episode it lowers the probability of the
# calculator's output, even when the sum was right and the model only copied it wrongly afterwards.
# And the loss averages each episode over its loss tokens (`loss_type="grpo"`): the more tokens the
# environment wrote, the smaller the share of the episode's push that reaches the tokens the model
# *did* choose. That is why TRL's and veRL's multi-turn trainers mask the tool's tokens.
#
# How much it costs *here* is what the lines above measured, against a bar set before measuring.
# Read them honestly: on this tiny task the result tokens are few and short (compare the two
# log-probabilities printed with the episode figure), so the credit they take can be small, and
# one seed of a short run decides little. The seed runs of
# `python -m course_instructor.tools_seeds` (docs/benchmarks.md) say whether the bar held on
# seeds 0, 1 and 2. The argument for the mask does not rest on this run: a gradient on tokens the
# policy did not sample is not a policy gradient.
#
# **Turns and budgets.** Every call costs a turn; `max_turns` bounds them, and the budget penalty
# makes an episode that is still calling at the end worse than a wrong answer. Without it, a
# policy that never answers would score 0 — the same as a wrong guess — and nothing would push it
# to stop.
#
# TRL side by side: TRL 1.16's `GRPOTrainer` runs tools through `tools=` / `environment_factory`,
# with a chat template and JSON tool calls, which the tiny model has neither of;
# `ToolConfig(engine="trl")` is refused with that reason, and docs/engines.md maps each piece of
# this loop to TRL's and veRL's names.

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_tools_mask"]
# *Predict, then compute.* Take one episode of the main run that called the tool (`episodes` and
# `loss_mask` above come from the start model; roll out the trained `main.model` the same way).
# (a) Predict whether the trained model's log-probabilities of the `<result>` digits are high or
# low, then compute them with `kl.token_logprobs` on `sampling.completion_logits`. (b) With a
# positive advantage, what would the ablation's update do to those tokens, and with a negative
# one? (c) Compare the ablation's tool-call rate and accuracy with the main run's in the lines
# above: which of (b)'s two effects do they suggest won on this task, and why might a task whose
# tool results are long and varied turn the outcome around?

# %% [markdown] tags=["answer:q_tools_reward"]
# *Design the reward.* (a) With `malformed_penalty = 0`, what does a malformed call cost the policy
# (think about the turns it uses)? Is that enough to make it learn the syntax? (b) With
# `budget_penalty = 0` and `max_turns = 1`, compare the reward of an episode that calls once and is
# cut off with a wrong guess. What would GRPO learn? (c) Should a *right* guess earn as much as a
# right answer with the tool? Give one argument for and one against rewarding the call itself.

# %% [markdown] tags=["answer:q_tools_reach"]
# *What RL can find.* The start model calls the tool in about the fraction of episodes printed
# above. (a) If the pretraining text had no tool calls at all, would this run learn to call? Why
# (think about what GRPO compares)? (b) Name one change to the environment or the prompt, not to
# the model, that would raise the start model's call rate. (c) Real agents call tools whose
# results are long (a web page). What fraction of an episode's tokens would the environment write,
# and what does that do to the ablation's damage?
