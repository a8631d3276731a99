"""Supervised fine-tuning (unit 03): one readable training loop, no framework in between.

    config = SFTConfig.from_profile(profile, max_steps=60)
    run = train(config, model, tok, data.qa_pairs("train"))      # a Run: model, history, seconds
    compliance, texts = format_compliance(run.model, tok, data.qa_pairs("eval")["prompt"])

Each step tokenizes a batch of (prompt, completion) pairs with the student's
``sft.tokenize_prompt_and_completion`` and hands it to the student's ``sft.sft_train_step``
(which calls ``sft.sft_loss``). The config uses TRL's ``SFTConfig`` names, so the side-by-side
run (:func:`train_with_trl`) gets exactly the same settings. The API shared by the trainers
(``Run``, history keys, ``save_checkpoint``, ``quick_train``) is described in
:mod:`course_lib.trainers._loop`; the SFT checkpoint is ``checkpoint_dir()/"sft"``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib import rewards, sft
from course_lib.core import sampling
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.trainers import _loop
from course_lib.trainers._loop import Run, save_checkpoint  # noqa: F401  (the shared API)


@dataclass
class SFTConfig(_loop.TrainerConfig):
    """Hyper-parameters, named as in ``trl.SFTConfig`` (the subset this loop uses)."""

    learning_rate: float = 2e-3
    per_device_train_batch_size: int = 8
    max_steps: int = 60
    max_length: int | None = 128  # truncate prompt+completion (tokens)
    completion_only_loss: bool = True  # False: the loss also covers the prompt tokens
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"  # "linear" (decay to 0, TRL's default) or "constant"
    seed: int = 0
    logging_steps: int = 1
    max_time: float | None = None  # stop early after this many seconds of training

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The preset's steps and batch size, a learning rate and length for the profile."""
        return {
            **super().profile_defaults(profile, preset),
            "learning_rate": 2e-3 if profile.name == "tiny" else 5e-5,
            "max_length": profile.max_prompt_length + profile.max_completion_length + 8,
        }


def with_eos(completions: Sequence[str], tokenizer) -> list[str]:
    """Append the EOS token to each completion (so the model learns to stop) unless present."""
    eos = tokenizer.eos_token
    return [c if c.endswith(eos) else c + eos for c in completions]


def all_tokens_mask(completion_mask: torch.Tensor) -> torch.Tensor:
    """A mask that is 1 on every real label (prompt *and* completion), 0 on the padding after.

    Padding sits after the last completion token (right padding), so "real" = every position up
    to each row's last completion label. Used for the "loss on all tokens" comparison."""
    seen_later = completion_mask.flip(-1).cumsum(-1).flip(-1)
    return (seen_later > 0).to(completion_mask.dtype)


def make_batch(
    prompts: Sequence[str],
    completions: Sequence[str],
    tokenizer,
    device: torch.device | str = "cpu",
    completion_only_loss: bool = True,
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """Tokenize a batch with the student's ``sft.tokenize_prompt_and_completion`` (EOS appended);
    with ``completion_only_loss=False`` the mask covers prompt tokens too."""
    batch = sft.tokenize_prompt_and_completion(list(prompts), with_eos(completions, tokenizer), tokenizer)
    if not completion_only_loss:
        batch["completion_mask"] = all_tokens_mask(batch["completion_mask"])
    if max_length is not None:
        batch = {k: v[:, :max_length] for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


def train(
    config: SFTConfig | None = None,
    model=None,
    tokenizer=None,
    dataset=None,
    *,
    profile: Profile | None = None,
    eval_fn=None,
    eval_every: int = 0,
    desc: str = "SFT",
    show_progress: bool = True,
) -> Run:
    """Fine-tune `model` in place on a dataset with ``prompt`` and ``completion`` columns.

    Defaults: :meth:`SFTConfig.from_profile`, the profile's base model (seeded with
    ``config.seed``), the Q&A training pairs. History keys: ``step``, ``loss``, ``lr``,
    ``seconds`` (see ``_loop``) and, every `eval_every` steps, whatever ``eval_fn(model)``
    returns (a dict, e.g. ``{"eval_loss": ...}``)."""
    profile = profile or get_profile()
    config = config or SFTConfig.from_profile(profile)
    if model is None:
        model, tokenizer, _ = _loop.start_model(profile, profile.policy_model, seed=config.seed)
    elif tokenizer is None:
        raise ValueError("sft train: pass the tokenizer together with the model")
    if dataset is None:
        from course_lib.core import data

        dataset = data.qa_pairs("train", profile=profile)
    _loop.check_columns(dataset, ("prompt", "completion"), "sft train")
    device = next(model.parameters()).device
    prompts, completions = list(dataset["prompt"]), list(dataset["completion"])
    optimizer, scheduler = _loop.optimizer_and_schedule(model, config)
    batches = _loop.shuffled_batches(
        len(prompts), config.per_device_train_batch_size, random.Random(config.seed)
    )
    history: list[dict] = []
    started = time.perf_counter()
    bar = _loop.progress_bar(config.max_steps, desc, show_progress)
    for step in bar:
        t0 = time.perf_counter()
        idx = next(batches)
        # input_ids, labels, completion_mask: [B, T] (labels = input_ids shifted left by one)
        batch = make_batch(
            [prompts[i] for i in idx],
            [completions[i] for i in idx],
            tokenizer,
            device,
            config.completion_only_loss,
            config.max_length,
        )
        loss = sft.sft_train_step(model, batch, optimizer, config.max_grad_norm)  # mean NLL, a float
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"SFT: the loss became {loss} at step {step}; check sft_loss / "
                "sft_train_step (or lower the learning rate)"
            )
        row = {"step": step + 1, "loss": loss, "lr": lr, "seconds": time.perf_counter() - t0}
        if eval_fn is not None and eval_every and ((step + 1) % eval_every == 0 or step == 0):
            row.update(eval_fn(model))
        history.append(row)
        if step % max(1, config.logging_steps) == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if config.max_time is not None and time.perf_counter() - started > config.max_time:
            break
    model.eval()
    return Run(
        model,
        tokenizer,
        history,
        time.perf_counter() - started,
        config,
        trainer="sft",
        checkpoint_name=_loop.checkpoint_name("sft"),
        info={"profile": profile.name},
    )


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def format_compliance(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 40,
    seed: int = 0,
    temperature: float = 1.0,
) -> tuple[float, list[str]]:
    """Fraction of *sampled* completions that have the "Question: …\\nAnswer: …" format, scored
    with the (student's) ``rewards.format_reward`` (+1 = compliant). Returns (fraction, texts)."""
    roll = sampling.sample(
        model,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        generator=torch.Generator().manual_seed(seed),
    )
    scores = rewards.format_reward(roll.texts)
    return sum(s == 1 for s in scores) / len(scores), roll.texts


@torch.no_grad()
def eval_loss(model, tokenizer, dataset, completion_only_loss: bool = True, batch_size: int = 32) -> float:
    """Mean completion-token NLL (``sft.sft_loss``) over a dataset: the held-out loss."""
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(dataset), batch_size):
        rows = dataset[i : i + batch_size]
        b = make_batch(rows["prompt"], rows["completion"], tokenizer, device, completion_only_loss)
        n = int(b["completion_mask"].sum())
        total += (
            sft.sft_loss(model(input_ids=b["input_ids"]).logits, b["labels"], b["completion_mask"]).item() * n
        )
        count += n
    return total / count


# --------------------------------------------------------------------------- TRL side by side
def train_with_trl(config: SFTConfig, model, tokenizer, dataset, output_dir: str | Path | None = None) -> Run:
    """Train `model` in place with TRL's ``SFTTrainer`` and the same settings as :func:`train`;
    a :class:`Run` whose history has step, loss, lr, seconds (timed around each optimizer step)."""
    import tempfile

    from trl import SFTTrainer

    use_cpu = next(model.parameters()).device.type == "cpu"
    out = output_dir or tempfile.mkdtemp(prefix="trl_sft_")
    trainer = SFTTrainer(
        model=model,
        args=_loop.trl_config("sft", config, out, use_cpu),
        processing_class=tokenizer,
        train_dataset=dataset.select_columns(["prompt", "completion"]),
    )
    return _loop.run_trl(trainer, config, tokenizer, "sft", desc="TRL SFTTrainer")


def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """Fine-tune the profile's base model on the Q&A task with the active exercise functions and
    save it to `out_dir` or ``checkpoint_dir()/"sft"`` (where PPO, GRPO and DPO look for it).
    `overrides` are :class:`SFTConfig` fields (e.g. ``max_steps=5``)."""
    return _loop.quick_train(train, SFTConfig, profile, preset, out_dir, **overrides)
