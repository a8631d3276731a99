"""Supervised fine-tuning (unit 03): one readable training loop, no framework in between.

    model, tok = load_policy()
    history = train(model, tok, data.qa_pairs("train"), SFTConfig(max_steps=60))
    compliance, texts = format_compliance(model, tok, data.qa_pairs("eval")["prompt"])

Each step tokenizes a batch of (prompt, completion) pairs with the student's
``sft.tokenize_prompt_and_completion`` and hands it to the student's ``sft.sft_train_step``
(which calls ``sft.sft_loss``). The config uses TRL's ``SFTConfig`` names, so the side-by-side
run (:func:`run_trl_sft`) gets exactly the same settings. :func:`quick_train` is the entry point
shared by every unit (`course run`, unit 08): it trains the profile's base model on the Q&A task
and saves the checkpoint ``checkpoint_dir()/"sft"``.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from course_lib import rewards, sft
from course_lib.core import sampling
from course_lib.core.config import Profile, checkpoint_dir, get_profile
from course_lib.core.utils import progress, shuffled_batches, warmup_linear_lambda

CHECKPOINT_NAME = "sft"


@dataclass
class SFTConfig:
    """Hyper-parameters, named as in ``trl.SFTConfig`` (the subset this loop uses)."""
    learning_rate: float = 2e-3
    per_device_train_batch_size: int = 8
    max_steps: int = 60
    max_length: int | None = 128          # truncate prompt+completion (tokens)
    completion_only_loss: bool = True     # False: the loss also covers the prompt tokens
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"     # "linear" (decay to 0, TRL's default) or "constant"
    seed: int = 0
    logging_steps: int = 1
    max_time: float | None = None         # stop early after this many seconds of training

    def __post_init__(self):
        if self.max_steps < 1 or self.per_device_train_batch_size < 1:
            raise ValueError(f"SFTConfig: max_steps ({self.max_steps}) and per_device_train_batch_size "
                             f"({self.per_device_train_batch_size}) must be >= 1")
        if self.lr_scheduler_type not in ("linear", "constant"):
            raise ValueError(f"SFTConfig: lr_scheduler_type must be 'linear' or 'constant', "
                             f"got {self.lr_scheduler_type!r}")


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


def make_batch(prompts: Sequence[str], completions: Sequence[str], tokenizer,
               device: torch.device | str = "cpu", completion_only_loss: bool = True,
               max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Tokenize a batch with the student's ``sft.tokenize_prompt_and_completion`` (EOS appended);
    with ``completion_only_loss=False`` the mask covers prompt tokens too."""
    batch = sft.tokenize_prompt_and_completion(list(prompts), with_eos(completions, tokenizer), tokenizer)
    if not completion_only_loss:
        batch["completion_mask"] = all_tokens_mask(batch["completion_mask"])
    if max_length is not None:
        batch = {k: v[:, :max_length] for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}






def train(model, tokenizer, dataset, config: SFTConfig | None = None,
          eval_fn=None, eval_every: int = 0, desc: str = "SFT") -> list[dict]:
    """Fine-tune `model` in place on a dataset with ``prompt`` and ``completion`` columns.

    Returns the history: one dict per step with ``step``, ``loss``, ``lr``, ``seconds`` (wall
    time of the step) and, every `eval_every` steps, whatever ``eval_fn(model)`` returns (a dict).
    """
    config = config or SFTConfig()
    for col in ("prompt", "completion"):
        if col not in dataset.column_names:
            raise ValueError(f"sft_trainer.train: the dataset needs a {col!r} column, has {dataset.column_names}")
    device = next(model.parameters()).device
    prompts, completions = list(dataset["prompt"]), list(dataset["completion"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_lambda(config.lr_scheduler_type, config.warmup_steps, config.max_steps))
    batches = shuffled_batches(len(prompts), config.per_device_train_batch_size, random.Random(config.seed))
    history: list[dict] = []
    started = time.perf_counter()
    bar = progress(range(config.max_steps), desc=desc)
    for step in bar:
        t0 = time.perf_counter()
        idx = next(batches)
        batch = make_batch([prompts[i] for i in idx], [completions[i] for i in idx], tokenizer, device,
                           config.completion_only_loss, config.max_length)
        loss = sft.sft_train_step(model, batch, optimizer, config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if not math.isfinite(loss):
            raise FloatingPointError(f"SFT: the loss became {loss} at step {step}; check sft_loss / "
                                     "sft_train_step (or lower the learning rate)")
        row = {"step": step + 1, "loss": loss, "lr": lr, "seconds": time.perf_counter() - t0}
        if eval_fn is not None and eval_every and ((step + 1) % eval_every == 0 or step == 0):
            row.update(eval_fn(model))
        history.append(row)
        if step % max(1, config.logging_steps) == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if config.max_time is not None and time.perf_counter() - started > config.max_time:
            break
    model.eval()
    return history


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def format_compliance(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 40,
                      seed: int = 0, temperature: float = 1.0) -> tuple[float, list[str]]:
    """Fraction of *sampled* completions that have the "Question: …\\nAnswer: …" format, scored
    with the (student's) ``rewards.format_reward`` (+1 = compliant). Returns (fraction, texts)."""
    roll = sampling.sample(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens,
                           temperature=temperature, generator=torch.Generator().manual_seed(seed))
    scores = rewards.format_reward(roll.texts)
    return sum(s == 1 for s in scores) / len(scores), roll.texts


@torch.no_grad()
def eval_loss(model, tokenizer, dataset, completion_only_loss: bool = True,
              batch_size: int = 32) -> float:
    """Mean completion-token NLL (``sft.sft_loss``) over a dataset: the held-out loss."""
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(dataset), batch_size):
        rows = dataset[i:i + batch_size]
        b = make_batch(rows["prompt"], rows["completion"], tokenizer, device, completion_only_loss)
        n = int(b["completion_mask"].sum())
        total += sft.sft_loss(model(input_ids=b["input_ids"]).logits, b["labels"], b["completion_mask"]).item() * n
        count += n
    return total / count


# --------------------------------------------------------------------------- TRL side by side
def trl_training_args(config, output_dir, use_cpu: bool) -> dict:
    """TRL/`TrainingArguments` keywords that mirror one of our configs (SFTConfig, RewardConfig):
    same steps, batch, optimiser and schedule, one log per step, nothing saved, fp32 on CPU."""
    return dict(
        output_dir=str(output_dir), max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm if config.max_grad_norm is not None else 0.0,
        max_length=config.max_length, logging_steps=1, save_strategy="no", report_to="none",
        seed=config.seed, use_cpu=use_cpu, bf16=False, fp16=False, activation_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True)


def run_trl_sft(model, tokenizer, dataset, config: SFTConfig, output_dir: str | Path) -> dict:
    """Train `model` in place with TRL's SFTTrainer using the same settings as :func:`train`.

    Returns {"history": [{"step", "loss"}...], "seconds_per_step": median wall time of a step
    (measured by a callback around each optimizer step), "seconds": total of train()}."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    use_cpu = next(model.parameters()).device.type == "cpu"
    args = TRLSFTConfig(**trl_training_args(config, output_dir, use_cpu),
                        completion_only_loss=config.completion_only_loss)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=dataset.select_columns(["prompt", "completion"]))
    timer = trl_step_timer(trainer, desc="TRL SFTTrainer")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.eval()
    hist = [{"step": r["step"], "loss": r["loss"]} for r in trainer.state.log_history if "loss" in r]
    return {"history": hist, "seconds_per_step": _median(timer.times), "seconds": seconds}


def trl_step_timer(trainer, desc: str = "TRL"):
    """Replace a HF/TRL trainer's log printer with a course progress bar and time every optimizer
    step (``.times``: seconds per step, measured from step begin to step end)."""
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t0, self.bar = [], None, None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = progress(total=state.max_steps, desc=desc)

        def on_step_begin(self, args, state, control, **kw):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t0)
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and self.bar is not None:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    try:
        from transformers.utils.notebook import NotebookProgressCallback
        trainer.remove_callback(NotebookProgressCallback)
    except ImportError:  # pragma: no cover
        pass
    timer = StepTimer()
    trainer.add_callback(timer)
    return timer


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else float("nan")


def seconds_per_step(history: Sequence[dict]) -> float:
    """Median wall time of one step of our loop (robust to the first, slower step)."""
    return _median([h["seconds"] for h in history])


# --------------------------------------------------------------------------- shared entry point
def default_config(profile: Profile, preset: str | None = "quick", **overrides) -> SFTConfig:
    """The unit's settings for a profile + preset: steps and batch size from the preset."""
    p = profile.preset(preset)
    base = {"max_steps": p.steps, "per_device_train_batch_size": p.batch_size,
            "learning_rate": 2e-3 if profile.name == "tiny" else 5e-5,
            "max_length": profile.max_prompt_length + profile.max_completion_length + 8}
    base.update(overrides)
    return SFTConfig(**base)


def quick_train(profile: Profile | None = None, preset: str | None = "quick",
                out_dir: str | Path | None = None, **overrides) -> Path:
    """Fine-tune the profile's base model on the Q&A task with the active exercise functions,
    save it (``save_pretrained``) to `out_dir` or ``checkpoint_dir()/"sft"`` and return the path.
    `overrides` are :class:`SFTConfig` fields (e.g. ``max_steps=5``)."""
    from course_lib.core import data
    from course_lib.core.models import load_policy
    from course_lib.core.utils import seed_everything

    profile = profile or get_profile()
    config = default_config(profile, preset, **overrides)
    seed_everything(config.seed)
    model, tok = load_policy(profile=profile)
    history = train(model, tok, data.qa_pairs("train", profile=profile), config)
    return save_checkpoint(model, tok, out_dir, config=config, history=history, profile=profile)


def save_checkpoint(model, tokenizer, out_dir: str | Path | None = None, config: SFTConfig | None = None,
                    history: Sequence[dict] = (), profile: Profile | None = None) -> Path:
    """``save_pretrained`` the model and tokenizer to `out_dir` or ``checkpoint_dir()/"sft"`` (where
    PPO, GRPO and DPO look for it) with a small training_info.json; returns the path."""
    out = Path(out_dir) if out_dir else checkpoint_dir() / CHECKPOINT_NAME
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"trainer": "sft", "profile": (profile or get_profile()).name,
            "config": asdict(config) if config else None, "steps": len(history),
            "final_loss": history[-1]["loss"] if history else None}
    (out / "training_info.json").write_text(json.dumps(info, indent=2))
    return out
