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
# # Unit 03 — Supervised fine-tuning (SFT)
#
# Every RLHF pipeline (InstructGPT, Llama-2-Chat, the classic GPT-2 assignments) starts with
# **supervised fine-tuning**: show the pretrained model examples of the behaviour we want and
# maximise their likelihood. RL comes *after* SFT because RL can only reinforce what the model
# already samples now and then: if the base model almost never produces the target format, a
# reward for the format is almost never paid, and there is nothing to reinforce.
#
# Our task: answer a bare question in the format
#
# ```
# Question: <the question>
# Answer: <the answer>
# ```
#
# (the format that unit 01's `format_reward` checks). The base model saw this format in
# pretraining among several others, so it produces it only sometimes. After this notebook it should
# do so almost always — and stop right after the answer.
#
# You will write four functions in `course_lib/sft.py`: the tokenization with a **completion mask**,
# a **masked mean**, the **SFT loss** and **one training step**. The provided loop
# (`course_lib/trainers/sft.py`, one readable file) calls them; at the end TRL's `SFTTrainer` does the
# same job side by side.

# %%
import dataclasses
import statistics
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from course_lib import sft
from course_lib.core import data
from course_lib.core.models import load_policy
from course_lib.core.report import report_metrics, save_figure
from course_lib.core.serving import format_response
from course_lib.labs import speed as speed_lab
from course_lib.trainers import sft as sft_trainer

preset = profile.preset()
train_ds = data.qa_pairs("train", profile=profile)
eval_ds = data.qa_pairs("eval", n=16 if FAST else preset.eval_size, profile=profile)
MAX_NEW = profile.max_completion_length + 16  # room to see whether the model stops
print(f"{len(train_ds)} training pairs, {len(eval_ds)} held-out questions (never trained on)")
for ex in train_ds.select(range(3)):
    print(repr(ex["prompt"]), "->", repr(ex["completion"]))

# %% [markdown]
# ## How often does the base model use the format?
#
# We sample one completion per held-out question (temperature 1, as RL will) and score it with
# **your** `rewards.format_reward` from unit 01: compliance = fraction of samples with reward +1.
# Held-out means these questions are about places that never appear in the SFT data, so a high
# score afterwards means the model learned the *format*, not the answers by heart.

# %%
model, tokenizer = load_policy(profile=profile)
before, base_texts = sft_trainer.format_compliance(model, tokenizer, eval_ds["prompt"], MAX_NEW)
print(f"base model: format compliance {before:.0%}")
for p, t in list(zip(eval_ds["prompt"], base_texts))[:4]:
    print(f"{p!r:>40} -> {t!r}")

# %% [markdown]
# ## Exercise 3.1 — `tokenize_prompt_and_completion`
#
# A causal LM is trained to predict token *t+1* from tokens *≤ t*. We therefore build, for each
# pair, the ids of `prompt + completion` and shift by one:
#
# | position        | 0 | 1 | … | L-2 |
# |-----------------|---|---|---|-----|
# | `input_ids`     | x₀ | x₁ | … | x_{L-2} |
# | `labels`        | x₁ | x₂ | … | x_{L-1} |
# | `completion_mask` | 1 if x_{t+1} is a completion token | | | |
#
# so that `logits[:, t]` from `model(input_ids)` predicts `labels[:, t]` with no further shifting.
# Tokenize prompt and completion **separately** and concatenate the ids: then you know exactly where
# the completion starts (tokenizing the joined string can merge tokens across the boundary). Pad on
# the right; padding gets mask 0. Add **no** EOS inside this function: the trainer appends
# `tokenizer.eos_token` to every completion *text* before calling it (`sft_trainer.with_eos`), so
# the EOS arrives as an ordinary completion token and the model learns *to stop* after the answer.
#
# *Hint:* build Python lists first (`p_ids + c_ids`, `[0]*len(p_ids) + [1]*len(c_ids)`), pad them to
# the longest length `L`, turn them into int64 tensors, then slice `[:, :-1]` and `[:, 1:]`.

# %% tags=["exercise-test:tokenize_prompt_and_completion"]

# %% [markdown]
# What the loss will see: each row of the picture below is one training example, each column a
# label position. Only the green cells (completion tokens, including the final EOS) count in the SFT
# loss; the prompt (blue) is context the model reads but is not asked to produce.

# %%
rows = train_ds.select(range(8))
batch = sft_trainer.make_batch(rows["prompt"], rows["completion"], tokenizer)
kind = (
    sft_trainer.all_tokens_mask(batch["completion_mask"]) + batch["completion_mask"]
)  # 0 pad, 1 prompt, 2 completion
fig, ax = plt.subplots(figsize=(9, 3))
ax.imshow(kind, cmap=plt.matplotlib.colors.ListedColormap(["#dddddd", "#6fa8dc", "#93c47d"]), aspect="auto")
ax.set_xlabel("label position t")
ax.set_ylabel("example")
ax.set_title("labels the loss sees: grey = padding, blue = prompt, green = completion (+EOS)")
save_figure(fig, "03_completion_mask")
plt.show()
first = batch["labels"][0][batch["completion_mask"][0] == 1]
print("completion labels of row 0:", repr(tokenizer.decode(first)))

# %% [markdown]
# ## Exercise 3.2 — `masked_mean`
#
# Almost every loss in this course is an average over *some* tokens (completion tokens here,
# response tokens in PPO/GRPO). `masked_mean(x, mask, dim)` = `sum(x·mask, dim) / sum(mask, dim)`.
# Averaging over nothing is undefined: raise `ValueError` rather than returning `nan` silently.

# %% tags=["exercise-test:masked_mean"]

# %% [markdown]
# ## Exercise 3.3 — `sft_loss`
#
# The SFT loss is the negative log-likelihood of the completion tokens, averaged over **all
# completion tokens of the batch** (a token-level mean, as TRL does): a long answer weighs more than
# a short one. Use `log_softmax` (stable) and `gather` the label's log-probability. Labels under
# mask 0 may be padding or `-100`: make sure they cannot crash `gather`.

# %% tags=["exercise-test:sft_loss"]

# %% [markdown]
# ### Why only the completion?
#
# Below: the base model's per-token loss on one training example. The informative tokens of the
# question (which place? which numbers?) are expensive — nobody can predict which question a user
# will ask. In the completion almost everything is cheap: the echo copies the question and the
# pretrained model already knows the facts of its world. What is expensive is the one decision we
# want to change: starting the answer with `Question:`. With the mask, the gradient goes to that
# decision (and to the answer and the EOS); a loss over *all* tokens would also spend gradient on
# modelling the **user's** questions — something the assistant never has to produce — and on a chat
# model it would teach the model to imitate users, including prompts we do not want it to write.

# %%
one = sft_trainer.make_batch(
    train_ds["prompt"][:1], train_ds["completion"][:1], tokenizer, completion_only_loss=False
)
with torch.no_grad():
    logp = torch.log_softmax(model(input_ids=one["input_ids"]).logits, -1)
nll = -logp[0].gather(-1, one["labels"][0, :, None]).squeeze(-1)
comp = sft_trainer.make_batch(train_ds["prompt"][:1], train_ds["completion"][:1], tokenizer)[
    "completion_mask"
][0]
fig, ax = plt.subplots(figsize=(10, 3))
ax.bar(range(len(nll)), nll, color=["#93c47d" if c else "#6fa8dc" for c in comp])
ax.set_xticks(range(len(nll)))
ax.set_xticklabels([tokenizer.decode([int(i)]) for i in one["labels"][0]], rotation=90, fontsize=7)
ax.set_ylabel("-log p(label)")
ax.set_title("base model, one example: blue = prompt, green = completion")
save_figure(fig, "03_per_token_loss")
plt.show()
m_all = sft_trainer.all_tokens_mask(comp[None])[0]
print(
    f"mean NLL over completion tokens {sft.sft_loss(logp, one['labels'], comp[None]).item():.2f}, "
    f"over all tokens {sft.sft_loss(logp, one['labels'], m_all[None]).item():.2f}"
)

# %% [markdown]
# ## Exercise 3.4 — `sft_train_step`
#
# One optimizer step, the way every PyTorch training loop does it: forward pass → your `sft_loss`
# → `optimizer.zero_grad()` → `loss.backward()` → clip the gradient norm (a cheap guard against the
# occasional huge gradient, TRL's `max_grad_norm=1.0` default) → `optimizer.step()`. Return the loss
# as a Python float (`.item()`) so the loop can log it without keeping the graph alive. The provided
# loop (`sft_trainer.train`) calls your function once per step, with a learning-rate schedule around it.

# %% tags=["exercise-test:sft_train_step"]

# %% [markdown]
# ## Training
#
# The quick preset: a few dozen steps of 8 examples with AdamW and a linearly decaying learning
# rate (TRL's defaults). The learning rate is high by LLM standards because the model is tiny.
# Every few steps the loop measures the **held-out** completion loss; under the grader (`FAST`) the
# run shrinks to 3 steps.

# %%
config = sft_trainer.SFTConfig.from_profile(profile, **({"max_steps": 3} if FAST else {}))
print(config)
held_out = lambda m: {"eval_loss": sft_trainer.eval_loss(m, tokenizer, eval_ds)}
eval_every = max(1, config.max_steps // 6)
course_lib.seed_everything(0)
model, tokenizer = load_policy(profile=profile)
t0 = time.perf_counter()
run = sft_trainer.train(config, model, tokenizer, train_ds, eval_fn=held_out, eval_every=eval_every)
history = run.history
train_seconds = time.perf_counter() - t0
print(f"{len(history)} steps in {train_seconds:.1f} s")

# %%
after, sft_texts = sft_trainer.format_compliance(model, tokenizer, eval_ds["prompt"], MAX_NEW)
print(f"format compliance: base {before:.0%} -> SFT {after:.0%}")
for p, t in list(zip(eval_ds["prompt"], sft_texts))[:4]:
    print(f"{p!r:>40} -> {t!r}")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="training batch")
ev = [h for h in history if "eval_loss" in h]
ax.plot([h["step"] for h in ev], [h["eval_loss"] for h in ev], "o-", label="held-out questions")
ax.set_xlabel("step")
ax.set_ylabel("completion NLL")
ax.legend()
ax.set_title(f"SFT: format compliance {before:.0%} -> {after:.0%}")
save_figure(fig, "03_sft_loss")
plt.show()

# %% [markdown]
# The held-out loss follows the training loss: the format transfers to questions about places the
# model never saw in SFT. Now read the samples above closely: the *form* is right, but the model
# may copy the question inaccurately and many sums are wrong. SFT on a few hundred examples teaches
# form, not knowledge or arithmetic — a reward for correctness (unit 06, GRPO) targets exactly that. Notice how little training was needed — SFT does not teach the model
# *new knowledge*, it selects a behaviour the pretrained model already had among several (the
# "superficial alignment" observation behind LIMA).
#
# ## Loss on all tokens vs completion only
#
# Same model, data, steps and seed; the only change is the mask: `completion_only_loss=False` makes
# the loop pass a mask over prompt **and** completion tokens to your `sft_train_step`.

# %%
course_lib.seed_everything(0)
model_all, _ = load_policy(profile=profile)
config_all = dataclasses.replace(config, completion_only_loss=False)
history_all = sft_trainer.train(
    config_all,
    model_all,
    tokenizer,
    train_ds,
    eval_fn=held_out,
    eval_every=eval_every,
    desc="SFT, loss on all tokens",
).history
after_all, all_texts = sft_trainer.format_compliance(model_all, tokenizer, eval_ds["prompt"], MAX_NEW)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for h, name in [(history, "completion only"), (history_all, "all tokens")]:
    axes[0].plot(
        [r["step"] for r in h], [r["loss"] for r in h], label=f"{name}: training loss (its own mask)"
    )
    ev = [r for r in h if "eval_loss" in r]
    axes[0].plot(
        [r["step"] for r in ev], [r["eval_loss"] for r in ev], "o--", label=f"{name}: held-out completion NLL"
    )
axes[0].set_xlabel("step")
axes[0].legend(fontsize=7)
axes[0].set_title("loss")


def own_question(texts):  # the format AND the echoed question is the one asked (serving's format_ok)
    return sum(format_response(p, t)[1] for p, t in zip(eval_ds["prompt"], texts)) / len(texts)


variants = {
    "base": (before, own_question(base_texts)),
    "completion only": (after, own_question(sft_texts)),
    "all tokens": (after_all, own_question(all_texts)),
}
xs = torch.arange(len(variants))
axes[1].bar(
    xs - 0.2, [v[0] for v in variants.values()], width=0.4, color="#93c47d", label="format (format_reward)"
)
axes[1].bar(
    xs + 0.2,
    [v[1] for v in variants.values()],
    width=0.4,
    color="#e69138",
    label="format + the user's own question echoed",
)
axes[1].set_xticks(range(3), list(variants))
axes[1].set_ylim(0, 1.15)
axes[1].legend(fontsize=7, loc="upper left")
axes[1].set_ylabel("fraction of held-out samples")
axes[1].set_title("what the samples get right")
axes[0].set_ylabel("NLL per token")
fig.tight_layout()
save_figure(fig, "03_mask_vs_all_tokens")
plt.show()
print(
    f"held-out completion NLL after training: completion only {sft_trainer.eval_loss(model, tokenizer, eval_ds):.3f}, "
    f"all tokens {sft_trainer.eval_loss(model_all, tokenizer, eval_ds):.3f}; "
    f"format compliance {after:.0%} vs {after_all:.0%}; own question echoed "
    f"{variants['completion only'][1]:.0%} vs {variants['all tokens'][1]:.0%} (base {variants['base'][1]:.0%})"
)

# %% [markdown]
# Read the two panels together. The all-tokens training loss sits higher because it also averages
# the (unpredictable) question tokens — the two training curves measure different things and
# cannot be compared directly; the held-out completion NLL can, and it is lower with the mask
# (printed above). **Format compliance cannot tell the two apart**: both reach (nearly) 100 %,
# because `format_reward` only checks the *shape* `Question: …\nAnswer: …`. The stricter orange
# bars ask whether the model echoed **the user's own question** (the serving endpoint's
# `format_ok`): most SFT samples fail that — `What is 5 + 8?` comes back as `Question: What is
# 5 + 13?` — the copying failure of a tiny model. The mask helps a little there too (the printed
# numbers, on 60 questions: a difference of a few samples, so treat it as a hint, not a proof),
# but neither variant fixes copying: SFT on a few hundred pairs teaches the form, and a reward
# that checks the echo would be the RL fix. The mask's effect grows with long prompts (chat
# histories, documents to summarise), where prompt tokens outnumber answer tokens many times
# over and an all-tokens loss spends most of its gradient on text the assistant never writes.
#
# ## Side by side: TRL's `SFTTrainer`
#
# The same model, data, number of steps, batch size, learning rate and schedule, with TRL's
# `SFTTrainer` on a prompt–completion dataset (`completion_only_loss=True`, EOS appended by TRL).
# For the speed, both loops then run **back to back** on 12 steps, three times, alternating which
# goes first (`labs.speed.compare_speed`): each pair sees the same load, and the spread of the
# three ratios says how far one pair can be trusted. It is a look, not a benchmark: the course's
# own timing benchmark, run alone on an idle machine, is the measurement.

# %%
course_lib.seed_everything(0)
model_trl, _ = load_policy(profile=profile)
with tempfile.TemporaryDirectory() as tmp:
    trl_run = sft_trainer.train_with_trl(config, model_trl, tokenizer, train_ds, tmp)
after_trl, _ = sft_trainer.format_compliance(model_trl, tokenizer, eval_ds["prompt"], MAX_NEW)
print(f"format compliance: ours {after:.0%}, TRL {after_trl:.0%}")


def _fresh_model():
    course_lib.seed_everything(0)
    return load_policy(profile=profile)[0]


speed_cfg = dataclasses.replace(config, max_steps=min(config.max_steps, 12))
speed = speed_lab.compare_speed(
    lambda: sft_trainer.train(speed_cfg, _fresh_model(), tokenizer, train_ds, show_progress=False),
    lambda: sft_trainer.train_with_trl(speed_cfg, _fresh_model(), tokenizer, train_ds),
    repeats=1 if FAST else 3,
)
print(speed_lab.describe(speed))
ours_sps, trl_sps = statistics.median(speed["ours"]), statistics.median(speed["trl"])

# %%
fig = speed_lab.plot_ours_vs_trl(
    history,
    trl_run.history,
    speed,
    trl_label="TRL SFTTrainer",
    ylabel="completion NLL (training batch)",
    title=f"same model, data and steps — compliance ours {after:.0%}, TRL {after_trl:.0%}",
)
save_figure(fig, "03_ours_vs_trl")
plt.show()

# %% [markdown]
# The curves differ in detail (the two loops draw batches in a different order), not in trend. TRL
# adds machinery our loop does not have — dataset preprocessing, a data collator, the `Trainer`
# callbacks, logging of token accuracy and entropy, mixed precision and multi-GPU support. On a
# model this small the step itself is tiny, so the two come out about equally fast: the printed
# ratio sits near 1 and its spread over three back-to-back pairs (tens of percent on a shared
# laptop) is larger than any difference between them — which is why one timing is never the answer.
#
# ## Save the checkpoint
#
# PPO, GRPO and DPO (units 05–07) start from `checkpoints/sft` when it exists. Under the grader we
# skip saving, so a 3-step model never overwrites a real one.

# %%
if not FAST:
    path = sft_trainer.save_checkpoint(run)
    print("saved", path)
report_metrics(
    "03",
    {
        "format_compliance": (before, after),
        "format_compliance_all_tokens": (before, after_all),
        "format_compliance_trl": (before, after_trl),
        "sft_train_seconds": (None, train_seconds),
        "seconds_per_step_ours": (None, ours_sps),
        "seconds_per_step_trl": (None, trl_sps),
    },
)

# %% [markdown]
# ## Questions

# %% [markdown] tags=["answer:q_sft_mask"]
# *Compute, then explain.* (a) For one batch of 8 training rows (`sft_trainer.make_batch`), count the
# prompt tokens and the completion tokens: what fraction of the all-tokens loss's gradient weight
# goes to tokens the assistant never has to produce? Now suppose each prompt were a 2 000-token
# conversation with a 50-token answer: what is that fraction then, and what does that do to the
# learning signal for the answer at a fixed number of steps? (b) The format-compliance bars could
# not tell the two variants apart while the held-out completion NLL could: name one more
# measurement (not in this notebook) that would show the difference on *our* data, and predict
# which variant wins it.

# %% [markdown] tags=["answer:q_sft_eos"]
# Every completion ends with the EOS token and the EOS label is a completion token. What would the
# fine-tuned model's samples look like if we had not appended it, and what would happen to the
# format compliance measured here? (You may try it: train with completions without
# `tokenizer.eos_token`.)

# %% [markdown] tags=["answer:q_sft_trl"]
# Compare your loop with TRL's `SFTTrainer` on this run: loss curves, final compliance, seconds per
# step. Name two things TRL does on every step that our loop does not, and say when you would pick
# each implementation.
