"""Reward-model training (unit 04): one readable Bradley–Terry loop, no framework in between.

    rm, tok = RewardModel.from_base(), load_tokenizer()
    run = train(RewardConfig.from_profile(max_steps=60), rm, tok, data.preference_pairs("train"))
    r_chosen, r_rejected = score_pairs(run.model, tok, data.preference_pairs("eval"))
    reward_model.preference_accuracy(r_chosen, r_rejected)

Each step scores prompt+chosen and prompt+rejected in one forward (``RewardModel.score`` pools
with the student's ``reward_model.last_token_pool``) and minimises the student's
``reward_model.bradley_terry_loss``. The reward is read at the last token of the text itself
(no EOS is appended, unlike TRL's RewardTrainer), so ``RewardModel.score_texts`` and
:func:`reward_texts` score new texts — e.g. decoded policy samples in unit 05 — exactly as in
training. The config uses TRL's
``RewardConfig`` names; :func:`train_with_trl` is the side-by-side run. The API shared by the
trainers (``Run``, history keys, ``save_checkpoint``, ``quick_train``) is described in
:mod:`course_lib.trainers._loop`; the checkpoint ``checkpoint_dir()/"reward_model"`` loads with
``RewardModel.from_pretrained``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib import reward_model
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.trainers import _loop
from course_lib.trainers._loop import Run, save_checkpoint  # noqa: F401  (the shared API)


@dataclass
class RewardConfig(_loop.TrainerConfig):
    """Hyper-parameters, named as in ``trl.RewardConfig`` (the subset this loop uses)."""

    learning_rate: float = 2e-3
    per_device_train_batch_size: int = 8  # preference pairs per step
    max_steps: int = 60
    max_length: int | None = 128  # tokens per text (prompt + answer)
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"  # "linear" (TRL's default) or "constant"
    center_rewards_coefficient: float | None = None  # + c * mean((r_c + r_r)^2), keeps rewards near 0
    seed: int = 0
    logging_steps: int = 1

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The preset's steps and batch size, a learning rate and length for the profile."""
        return {
            **super().profile_defaults(profile, preset),
            "learning_rate": 2e-3 if profile.name == "tiny" else 1e-5,
            "max_length": 128 if profile.name == "tiny" else 256,
        }


def encode_texts(
    texts: Sequence[str], tokenizer, device="cpu", max_length: int | None = 128, add_eos: bool = False
) -> dict[str, torch.Tensor]:
    """Right-padded ids + attention mask for raw texts (no special tokens; EOS only if asked)."""
    eos = tokenizer.eos_token
    texts = [t if (not add_eos or t.endswith(eos)) else t + eos for t in texts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    enc = tokenizer(
        list(texts),
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
        truncation=max_length is not None,
        max_length=max_length,
    )
    tokenizer.padding_side = side
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def encode_pairs(
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    tokenizer,
    device="cpu",
    max_length: int | None = 128,
) -> dict[str, torch.Tensor]:
    """One batch of 2B texts: the B chosen ones (prompt + chosen) then the B rejected ones."""
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ValueError(
            f"encode_pairs: {len(prompts)} prompts, {len(chosen)} chosen, "
            f"{len(rejected)} rejected answers (must be equal)"
        )
    texts = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    return encode_texts(texts, tokenizer, device, max_length)


def pair_rewards(rm, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen [B], r_rejected [B]) from a batch made by :func:`encode_pairs`."""
    scores = rm.score(batch["input_ids"], batch["attention_mask"])
    return scores.chunk(2)


def train(
    config: RewardConfig | None = None,
    model=None,
    tokenizer=None,
    dataset=None,
    *,
    profile: Profile | None = None,
    eval_fn=None,
    eval_every: int = 0,
    desc: str = "reward model",
    show_progress: bool = True,
) -> Run:
    """Train a reward model (``RewardModel``) in place on prompt / chosen / rejected pairs.

    Defaults: :meth:`RewardConfig.from_profile`, a fresh ``RewardModel.from_base`` (seeded with
    ``config.seed``), the profile's preference pairs. History keys (see ``_loop``): ``step``,
    ``loss``, ``accuracy`` and ``margin`` on the training batch, ``lr``, ``seconds``, plus
    ``eval_fn(model)`` every `eval_every` steps."""
    profile = profile or get_profile()
    config = config or RewardConfig.from_profile(profile)
    if model is None:
        from course_lib.core.models import RewardModel, load_tokenizer
        from course_lib.core.utils import default_device, seed_everything

        seed_everything(config.seed)
        tokenizer = load_tokenizer(profile=profile)
        model = RewardModel.from_base(profile=profile).to(default_device())
    elif tokenizer is None:
        raise ValueError("reward model train: pass the tokenizer together with the model")
    if dataset is None:
        from course_lib.core import data

        dataset = data.preference_pairs("train", profile=profile)
    _loop.check_columns(dataset, ("prompt", "chosen", "rejected"), "reward model train")
    rm = model
    device = next(rm.parameters()).device
    P, C, R = list(dataset["prompt"]), list(dataset["chosen"]), list(dataset["rejected"])
    optimizer, scheduler = _loop.optimizer_and_schedule(rm, config)
    batches = _loop.shuffled_batches(len(P), config.per_device_train_batch_size, random.Random(config.seed))
    history: list[dict] = []
    started = time.perf_counter()
    bar = _loop.progress_bar(config.max_steps, desc, show_progress)
    for step in bar:
        t0 = time.perf_counter()
        idx = next(batches)
        # input_ids, attention_mask: [2B, T], rows 0..B-1 prompt + chosen, B..2B-1 prompt + rejected
        batch = encode_pairs(
            [P[i] for i in idx],
            [C[i] for i in idx],
            [R[i] for i in idx],
            tokenizer,
            device,
            config.max_length,
        )
        rm.train()
        r_c, r_r = pair_rewards(rm, batch)  # [B], [B]
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
            raise FloatingPointError(
                f"reward model: the loss became {loss.item()} at step {step}; check "
                "bradley_terry_loss (use F.logsigmoid) or lower the learning rate"
            )
        with torch.no_grad():
            row = {
                "step": step + 1,
                "loss": loss.item(),
                "accuracy": reward_model.preference_accuracy(r_c.detach(), r_r.detach()),
                "margin": (r_c - r_r).mean().item(),
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
        if eval_fn is not None and eval_every and ((step + 1) % eval_every == 0 or step == 0):
            row.update(eval_fn(rm))
        history.append(row)
        if step % max(1, config.logging_steps) == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}")
    rm.eval()
    return Run(
        rm,
        tokenizer,
        history,
        time.perf_counter() - started,
        config,
        trainer="reward_model",
        checkpoint_name=_loop.checkpoint_name("reward_model"),
        info={"profile": profile.name, "append_eos": False},
    )


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def score_pairs(
    rm, tokenizer, dataset, batch_size: int = 64, max_length: int | None = 128, score_fn=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of every pair of a preference dataset: (r_chosen [N], r_rejected [N]).

    `score_fn(input_ids, attention_mask) -> [B]` scores another model the same way (TRL's)."""
    score_fn = score_fn or rm.score
    was_training = rm.training if rm is not None else False
    if rm is not None:
        rm.eval()
    device = next(rm.parameters()).device if rm is not None else "cpu"
    rc, rr = [], []
    for i in range(0, len(dataset), batch_size):
        rows = dataset[i : i + batch_size]
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
    return {"eval_accuracy": reward_model.preference_accuracy(rc, rr), "eval_margin": (rc - rr).mean().item()}


@torch.no_grad()
def reward_texts(
    rm, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int | None = 128
) -> list[float]:
    """Rewards of raw texts (prompt + completion), scored exactly as in training (the same as
    ``RewardModel.score_texts``). Unit 05 can use either as a learned reward."""
    rm.eval()
    device = next(rm.parameters()).device
    out: list[float] = []
    for i in range(0, len(texts), batch_size):
        b = encode_texts(texts[i : i + batch_size], tokenizer, device, max_length)
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


def mistakes(
    dataset, r_chosen: torch.Tensor, r_rejected: torch.Tensor, k: int = 20
) -> tuple[list[dict], int]:
    """Error analysis: the pairs where the model prefers the rejected answer or ties, worst first.

    Returns (cases, n_mistakes). If there are fewer than `k` mistakes, the lowest-margin correct
    pairs fill the list up to `k` (each case says which with ``"mistake": true/false``)."""
    margin = (r_chosen - r_rejected).float()
    order = margin.argsort().tolist()  # most negative margin first
    n_mistakes = int((margin <= 0).sum())
    take = order[: max(k, n_mistakes)]
    cases = [
        {
            "idx": i,
            "prompt": dataset[i]["prompt"],
            "chosen": dataset[i]["chosen"],
            "rejected": dataset[i]["rejected"],
            "reward_chosen": float(r_chosen[i]),
            "reward_rejected": float(r_rejected[i]),
            "margin": float(margin[i]),
            "mistake": bool(margin[i] <= 0),
        }
        for i in take
    ]
    return cases, n_mistakes


def write_mistakes(cases: list[dict], path: str | Path = "analysis/reward_model_mistakes.jsonl") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return path


# --------------------------------------------------------------------------- TRL side by side
def train_with_trl(
    config: RewardConfig, model, tokenizer, dataset, output_dir: str | Path | None = None
) -> Run:
    """TRL's ``RewardTrainer`` on the same data and settings. `model` is a base model name/path
    (loaded as ``AutoModelForSequenceClassification(num_labels=1)``) or such a model. A
    :class:`Run` whose history has step, loss, lr, accuracy, seconds."""
    import tempfile

    from transformers import AutoModelForSequenceClassification
    from trl import RewardTrainer

    if isinstance(model, (str, Path)):
        model = AutoModelForSequenceClassification.from_pretrained(str(model), num_labels=1)
        model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    model.config.pad_token_id = tokenizer.pad_token_id
    use_cpu = next(model.parameters()).device.type == "cpu"
    out = output_dir or tempfile.mkdtemp(prefix="trl_reward_")
    trainer = RewardTrainer(
        model=model,
        args=_loop.trl_config("reward_model", config, out, use_cpu),
        processing_class=tokenizer,
        train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
    )
    return _loop.run_trl(
        trainer, config, tokenizer, "reward_model", desc="TRL RewardTrainer", keys={"accuracy": "accuracy"}
    )


def trl_score_fn(model):
    """Score function of a sequence-classification reward model for :func:`score_pairs`."""

    def f(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]

    return f


def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """Train a reward model on the profile's preference pairs with the active exercise functions
    and save it to `out_dir` or ``checkpoint_dir()/"reward_model"`` (``RewardModel.save_pretrained``
    + the tokenizer). `overrides` are :class:`RewardConfig` fields."""
    return _loop.quick_train(train, RewardConfig, profile, preset, out_dir, **overrides)
