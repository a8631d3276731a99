"""Reward-model training (unit 04): one readable Bradley–Terry loop, no framework in between.

    rm, tok = RewardModel.from_base(), load_tokenizer()
    history = train(rm, tok, data.preference_pairs("train"), RewardConfig(max_steps=60))
    r_chosen, r_rejected = score_pairs(rm, tok, data.preference_pairs("eval"))
    reward_model.preference_accuracy(r_chosen, r_rejected)

Each step scores prompt+chosen and prompt+rejected in one forward (``RewardModel.score`` pools
with the student's ``reward_model.last_token_pool``) and minimises the student's
``reward_model.bradley_terry_loss``. The reward is read at the last token of the text itself
(no EOS is appended, unlike TRL's RewardTrainer), so ``RewardModel.score_texts`` and
:func:`reward_texts` score new texts — e.g. decoded policy samples in unit 05 — exactly as in
training. The config uses TRL's
``RewardConfig`` names; :func:`run_trl_reward` is the side-by-side run. :func:`quick_train`
(shared entry point of every unit) trains on the preference pairs and saves
``checkpoint_dir()/"reward_model"`` (load it with ``RewardModel.from_pretrained``).
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

from course_lib import reward_model
from course_lib.core.config import Profile, checkpoint_dir, get_profile
from course_lib.core.utils import progress, shuffled_batches, warmup_linear_lambda

CHECKPOINT_NAME = "reward_model"


@dataclass
class RewardConfig:
    """Hyper-parameters, named as in ``trl.RewardConfig`` (the subset this loop uses)."""
    learning_rate: float = 2e-3
    per_device_train_batch_size: int = 8     # preference pairs per step
    max_steps: int = 60
    max_length: int | None = 128             # tokens per text (prompt + answer)
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"        # "linear" (TRL's default) or "constant"
    center_rewards_coefficient: float | None = None   # + c * mean((r_c + r_r)^2), keeps rewards near 0
    seed: int = 0
    logging_steps: int = 1

    def __post_init__(self):
        if self.max_steps < 1 or self.per_device_train_batch_size < 1:
            raise ValueError(f"RewardConfig: max_steps ({self.max_steps}) and per_device_train_batch_size "
                             f"({self.per_device_train_batch_size}) must be >= 1")
        if self.lr_scheduler_type not in ("linear", "constant"):
            raise ValueError(f"RewardConfig: lr_scheduler_type must be 'linear' or 'constant', "
                             f"got {self.lr_scheduler_type!r}")


def encode_texts(texts: Sequence[str], tokenizer, device="cpu", max_length: int | None = 128,
                 add_eos: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded ids + attention mask for raw texts (no special tokens; EOS only if asked)."""
    eos = tokenizer.eos_token
    texts = [t if (not add_eos or t.endswith(eos)) else t + eos for t in texts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False,
                    truncation=max_length is not None, max_length=max_length)
    tokenizer.padding_side = side
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def encode_pairs(prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str], tokenizer,
                 device="cpu", max_length: int | None = 128) -> dict[str, torch.Tensor]:
    """One batch of 2B texts: the B chosen ones (prompt + chosen) then the B rejected ones."""
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ValueError(f"encode_pairs: {len(prompts)} prompts, {len(chosen)} chosen, "
                         f"{len(rejected)} rejected answers (must be equal)")
    texts = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    return encode_texts(texts, tokenizer, device, max_length)


def pair_rewards(rm, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen [B], r_rejected [B]) from a batch made by :func:`encode_pairs`."""
    scores = rm.score(batch["input_ids"], batch["attention_mask"])
    return scores.chunk(2)






def train(rm, tokenizer, dataset, config: RewardConfig | None = None,
          eval_fn=None, eval_every: int = 0, desc: str = "reward model") -> list[dict]:
    """Train the reward model in place on a dataset with prompt / chosen / rejected columns.

    History rows: ``step``, ``loss``, ``accuracy`` and ``margin`` (mean r_c - r_r) on the
    training batch, ``lr``, ``seconds`` (wall time of the step), plus ``eval_fn(rm)`` every
    `eval_every` steps."""
    config = config or RewardConfig()
    for col in ("prompt", "chosen", "rejected"):
        if col not in dataset.column_names:
            raise ValueError(f"reward_model_trainer.train: the dataset needs a {col!r} column, "
                             f"has {dataset.column_names}")
    device = next(rm.parameters()).device
    P, C, R = list(dataset["prompt"]), list(dataset["chosen"]), list(dataset["rejected"])
    optimizer = torch.optim.AdamW(rm.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_lambda(config.lr_scheduler_type, config.warmup_steps, config.max_steps))
    batches = shuffled_batches(len(P), config.per_device_train_batch_size, random.Random(config.seed))
    history: list[dict] = []
    bar = progress(range(config.max_steps), desc=desc)
    for step in bar:
        t0 = time.perf_counter()
        idx = next(batches)
        batch = encode_pairs([P[i] for i in idx], [C[i] for i in idx], [R[i] for i in idx],
                             tokenizer, device, config.max_length)
        rm.train()
        r_c, r_r = pair_rewards(rm, batch)
        loss = reward_model.bradley_terry_loss(r_c, r_r)
        if config.center_rewards_coefficient:
            loss = loss + config.center_rewards_coefficient * ((r_c + r_r) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(rm.parameters(), config.max_grad_norm)
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"reward model: the loss became {loss.item()} at step {step}; check "
                                     "bradley_terry_loss (use F.logsigmoid) or lower the learning rate")
        with torch.no_grad():
            row = {"step": step + 1, "loss": loss.item(),
                   "accuracy": reward_model.preference_accuracy(r_c.detach(), r_r.detach()),
                   "margin": (r_c - r_r).mean().item(), "lr": lr, "seconds": time.perf_counter() - t0}
        if eval_fn is not None and eval_every and ((step + 1) % eval_every == 0 or step == 0):
            row.update(eval_fn(rm))
        history.append(row)
        if step % max(1, config.logging_steps) == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}")
    rm.eval()
    return history


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def score_pairs(rm, tokenizer, dataset, batch_size: int = 64, max_length: int | None = 128,
                score_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of every pair of a preference dataset: (r_chosen [N], r_rejected [N]).

    `score_fn(input_ids, attention_mask) -> [B]` scores another model the same way (TRL's)."""
    score_fn = score_fn or rm.score
    was_training = rm.training if rm is not None else False
    if rm is not None:
        rm.eval()
    device = next(rm.parameters()).device if rm is not None else "cpu"
    rc, rr = [], []
    for i in range(0, len(dataset), batch_size):
        rows = dataset[i:i + batch_size]
        b = encode_pairs(rows["prompt"], rows["chosen"], rows["rejected"], tokenizer, device, max_length)
        c, r = score_fn(b["input_ids"], b["attention_mask"]).float().chunk(2)
        rc.append(c.cpu())
        rr.append(r.cpu())
    if rm is not None and was_training:
        rm.train()
    return torch.cat(rc), torch.cat(rr)


def evaluate(rm, tokenizer, dataset, **kw) -> dict[str, float]:
    """Held-out accuracy (the student's ``preference_accuracy``) and mean margin."""
    rc, rr = score_pairs(rm, tokenizer, dataset, **kw)
    return {"eval_accuracy": reward_model.preference_accuracy(rc, rr),
            "eval_margin": (rc - rr).mean().item()}


@torch.no_grad()
def reward_texts(rm, tokenizer, texts: Sequence[str], batch_size: int = 64,
                 max_length: int | None = 128) -> list[float]:
    """Rewards of raw texts (prompt + completion), scored exactly as in training (the same as
    ``RewardModel.score_texts``). Unit 05 can use either as a learned reward."""
    rm.eval()
    device = next(rm.parameters()).device
    out: list[float] = []
    for i in range(0, len(texts), batch_size):
        b = encode_texts(texts[i:i + batch_size], tokenizer, device, max_length)
        out.extend(rm.score(b["input_ids"], b["attention_mask"]).float().tolist())
    return out


def accuracy_vs_margin(r_chosen: torch.Tensor, r_rejected: torch.Tensor, n_bins: int = 6):
    """Bucket pairs by |r_chosen - r_rejected| (equal-count bins) and return, per bucket, the
    mean |margin|, the accuracy (r_chosen > r_rejected) and the number of pairs. A calibrated
    reward model is right more often when it is confident (large |margin|)."""
    margin = (r_chosen - r_rejected).float()
    order = margin.abs().argsort()
    centers, accs, counts = [], [], []
    for chunk in order.tensor_split(min(n_bins, len(order))):
        if len(chunk) == 0:
            continue
        centers.append(margin[chunk].abs().mean().item())
        accs.append((margin[chunk] > 0).float().mean().item())
        counts.append(len(chunk))
    return centers, accs, counts


def mistakes(dataset, r_chosen: torch.Tensor, r_rejected: torch.Tensor, k: int = 20) -> tuple[list[dict], int]:
    """Error analysis: the pairs where the model prefers the rejected answer or ties, worst first.

    Returns (cases, n_mistakes). If there are fewer than `k` mistakes, the lowest-margin correct
    pairs fill the list up to `k` (each case says which with ``"mistake": true/false``)."""
    margin = (r_chosen - r_rejected).float()
    order = margin.argsort().tolist()            # most negative margin first
    n_mistakes = int((margin <= 0).sum())
    take = order[: max(k, n_mistakes)]
    cases = [{"idx": i, "prompt": dataset[i]["prompt"], "chosen": dataset[i]["chosen"],
              "rejected": dataset[i]["rejected"], "reward_chosen": float(r_chosen[i]),
              "reward_rejected": float(r_rejected[i]), "margin": float(margin[i]),
              "mistake": bool(margin[i] <= 0)} for i in take]
    return cases, n_mistakes


def write_mistakes(cases: list[dict], path: str | Path = "analysis/reward_model_mistakes.jsonl") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return path


# --------------------------------------------------------------------------- TRL side by side
def run_trl_reward(model_name_or_path: str, tokenizer, dataset, config: RewardConfig,
                   output_dir: str | Path, device=None) -> dict:
    """Train a ``AutoModelForSequenceClassification(num_labels=1)`` on the same base, data and
    settings with TRL's RewardTrainer. Returns {"model", "history" (step, loss, accuracy),
    "seconds_per_step" (median, timed by a callback), "seconds"}."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    from course_lib.trainers.sft import trl_step_timer, trl_training_args

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_name_or_path), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = TRLRewardConfig(**trl_training_args(config, output_dir, device.type == "cpu"),
                           center_rewards_coefficient=config.center_rewards_coefficient)
    trainer = RewardTrainer(model=model, args=args, processing_class=tokenizer,
                            train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]))
    timer = trl_step_timer(trainer, desc="TRL RewardTrainer")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.eval()
    hist = [{"step": r["step"], "loss": r["loss"], "accuracy": r.get("accuracy")}
            for r in trainer.state.log_history if "loss" in r]
    times = sorted(timer.times)
    return {"model": model, "history": hist, "seconds": seconds,
            "seconds_per_step": times[len(times) // 2] if times else float("nan")}


def trl_score_fn(model):
    """Score function of a sequence-classification reward model for :func:`score_pairs`."""
    def f(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
    return f


def seconds_per_step(history: Sequence[dict]) -> float:
    """Median wall time of one step of our loop."""
    s = sorted(h["seconds"] for h in history)
    return s[len(s) // 2] if s else float("nan")


# --------------------------------------------------------------------------- shared entry point
def default_config(profile: Profile, preset: str | None = "quick", **overrides) -> RewardConfig:
    p = profile.preset(preset)
    base = {"max_steps": p.steps, "per_device_train_batch_size": p.batch_size,
            "learning_rate": 2e-3 if profile.name == "tiny" else 1e-5,
            "max_length": 128 if profile.name == "tiny" else 256}
    base.update(overrides)
    return RewardConfig(**base)


def quick_train(profile: Profile | None = None, preset: str | None = "quick",
                out_dir: str | Path | None = None, **overrides) -> Path:
    """Train a reward model on the profile's preference pairs with the active exercise functions,
    save it to `out_dir` or ``checkpoint_dir()/"reward_model"`` (``RewardModel.save_pretrained``
    + the tokenizer) and return the path. `overrides` are :class:`RewardConfig` fields."""
    from course_lib.core import data
    from course_lib.core.models import RewardModel, load_tokenizer
    from course_lib.core.utils import default_device, seed_everything

    profile = profile or get_profile()
    config = default_config(profile, preset, **overrides)
    seed_everything(config.seed)
    tok = load_tokenizer(profile=profile)
    rm = RewardModel.from_base(profile=profile).to(default_device())
    history = train(rm, tok, data.preference_pairs("train", profile=profile), config)
    return save_checkpoint(rm, tok, out_dir, config=config, history=history, profile=profile)


def save_checkpoint(rm, tokenizer, out_dir: str | Path | None = None, config: RewardConfig | None = None,
                    history: Sequence[dict] = (), profile: Profile | None = None) -> Path:
    """``RewardModel.save_pretrained`` + the tokenizer to `out_dir` or
    ``checkpoint_dir()/"reward_model"`` with a training_info.json; returns the path. Load it
    with ``RewardModel.from_pretrained(path)`` and score texts with :func:`reward_texts`."""
    out = Path(out_dir) if out_dir else checkpoint_dir() / CHECKPOINT_NAME
    out.mkdir(parents=True, exist_ok=True)
    rm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"trainer": "reward_model", "profile": (profile or get_profile()).name,
            "config": asdict(config) if config else None, "append_eos": False, "steps": len(history),
            "final_loss": history[-1]["loss"] if history else None}
    (out / "training_info.json").write_text(json.dumps(info, indent=2))
    return out
