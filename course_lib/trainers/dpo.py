"""Unit 07 — Direct Preference Optimization, one readable training loop (nanoGPT style).

DPO needs no reward model and no sampling during training: for each preference pair
(prompt, chosen, rejected) it raises log π(chosen) − log π(rejected) *relative to* the frozen
reference model, through your exercises ``dpo.sequence_logprobs`` (7.1), ``dpo.dpo_loss`` (7.2)
and ``dpo.dpo_batch_loss`` (7.3). The reference never changes, so its log-probs are computed
**once, before training** (:func:`precompute_ref_logps`) — the loop itself has no reference
forward pass. What the loop does each step::

    batch = collate(8 pairs)                      # 16 rows: 8 prompt+chosen, 8 prompt+rejected
    batch["ref_logps"] = the precomputed numbers  # a table look-up, not a forward pass
    loss, stats = dpo.dpo_batch_loss(model, batch, beta, loss_type)   # your exercise 7.3
    loss.backward(); clip; optimizer.step()

Data (:func:`build_pairs`): the fixed synthetic pairs of ``data.preference_pairs`` (rule
``data.PREFERENCE_RULE``), on-policy pairs made from the starting model's own samples ranked by
the sentiment scorer (tiny), or Anthropic HH-RLHF (gpu profile; local stand-ins in tests).

The API shared by the trainers (``DPOConfig.from_profile``, ``train -> Run``, history keys,
``save_checkpoint``, ``train_with_trl``, ``quick_train``) is described in
:mod:`course_lib.trainers._loop`; the checkpoint is ``checkpoint_dir()/"dpo"``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from course_lib import dpo, reward_model, sft
from course_lib.core.config import Preset, Profile, get_profile
from course_lib.core.utils import progress
from course_lib.trainers import _loop
from course_lib.trainers._loop import Run, disable_dropout, save_checkpoint, start_model  # noqa: F401

if TYPE_CHECKING:  # for annotations only: datasets is imported where it is used
    import datasets


@dataclass
class DPOConfig(_loop.TrainerConfig):
    """Hyper-parameters, named as in TRL's ``DPOConfig`` (1.16) where TRL has the same knob."""

    learning_rate: float = 1e-5
    beta: float = 0.1
    loss_type: str = "sigmoid"  # "sigmoid" | "ipo" | "hinge" (see dpo.dpo_loss)
    label_smoothing: float = 0.0  # > 0 with "sigmoid" = conservative DPO (cDPO)
    per_device_train_batch_size: int = 8  # preference pairs per step
    max_steps: int = 60
    max_length: int | None = 64  # prompt + completion tokens, longer rows are cut (keep start)
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    lr_scheduler_type: str = "constant"  # "constant" | "linear" (decay to 0)
    warmup_steps: int = 0
    precompute_ref_batch_size: int = 64
    use_average_logps: bool = False  # average instead of sum the log-probs (IPO as TRL does it)
    train_sampling_strategy: str = "random"  # "random" (reshuffle every epoch) | "sequential"
    pair_source: str = "mixed"  # train()'s default pairs: see build_pairs (not a TRL knob)
    num_pairs: int | None = None  # how many of them (None: the source's default)
    seed: int = 0

    CHOICES: ClassVar[dict[str, tuple]] = {"train_sampling_strategy": ("random", "sequential")}

    @classmethod
    def profile_defaults(cls, profile: Profile, preset: Preset, **selector) -> dict:
        """The profile's tuned defaults (:data:`DEFAULTS`) for a preset.

        A DPO step samples nothing and scores nothing, so it costs a fraction of an RL step:
        DPO runs ``STEP_MULTIPLIER`` times the preset's steps."""
        return {
            "max_steps": preset.steps * STEP_MULTIPLIER,
            "per_device_train_batch_size": preset.batch_size,
            "max_length": profile.max_prompt_length + profile.max_completion_length,
            **DEFAULTS.get(profile.name, {}),
        }


DEFAULTS: dict[str, dict] = {
    "tiny": {"learning_rate": 1e-4, "beta": 0.2},
    "gpu": {"learning_rate": 5e-7, "beta": 0.1},
}
"""Tuned on the tiny profile (notebook 07): held-out implicit-reward accuracy >= 0.9, positive
fraction +30 points, per-token KL to the reference ~0.4 nats, from the base model or the SFT
checkpoint. 1e-3 (ten times) turns the text to gibberish."""
STEP_MULTIPLIER = 5


# --------------------------------------------------------------------------- data
@torch.no_grad()
def on_policy_pairs(
    model,
    tokenizer,
    prompts: Sequence[str],
    num_samples: int = 4,
    max_new_tokens: int = 24,
    min_gap: float = 0.2,
    scorer=None,
    seed: int = 0,
) -> datasets.Dataset:
    """Preference pairs from the model's *own* samples: for each prompt, sample `num_samples`
    completions, score prompt+completion with the sentiment scorer, and keep (best, worst) as
    (chosen, rejected) when their scores differ by at least `min_gap` (near-ties teach nothing).
    Columns: prompt, chosen, rejected, chosen_score, rejected_score."""
    from datasets import Dataset

    from course_lib.core import sampling
    from course_lib.core.sentiment import get_scorer

    scorer = scorer or get_scorer()
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    rows: dict[str, list[Any]] = {
        "prompt": [],
        "chosen": [],
        "rejected": [],
        "chosen_score": [],
        "rejected_score": [],
    }
    for i in range(0, len(prompts), 128):
        chunk = list(prompts[i : i + 128])
        roll = sampling.sample(
            model, tokenizer, chunk, max_new_tokens=max_new_tokens, num_samples=num_samples, generator=gen
        )
        scores = scorer.positive_probability([p + c for p, c in zip(roll.prompts, roll.texts)])
        for j, prompt in enumerate(chunk):
            group = list(range(j * num_samples, (j + 1) * num_samples))
            best = max(group, key=lambda k: scores[k])
            worst = min(group, key=lambda k: scores[k])
            if (
                scores[best] - scores[worst] < min_gap
                or not roll.texts[best].strip()
                or not roll.texts[worst].strip()
            ):
                continue
            rows["prompt"].append(prompt)
            rows["chosen"].append(roll.texts[best])
            rows["rejected"].append(roll.texts[worst])
            rows["chosen_score"].append(scores[best])
            rows["rejected_score"].append(scores[worst])
    return Dataset.from_dict(rows)


def build_pairs(
    source: str = "mixed",
    split: str = "train",
    n: int | None = None,
    model=None,
    tokenizer=None,
    profile: Profile | None = None,
    seed: int = 0,
):
    """Preference pairs (a ``datasets.Dataset`` with prompt, chosen, rejected).

    ``source``: ``"synthetic"`` (``data.preference_pairs``: the tiny rule, or HH-RLHF in the gpu
    profile), ``"on_policy"`` (:func:`on_policy_pairs` of `model` on sentiment prompts) or
    ``"mixed"`` (both, shuffled; the default for tiny). The gpu profile always uses its
    preference dataset (HH-RLHF): ``"mixed"`` and ``"on_policy"`` fall back to it there.
    """
    from datasets import concatenate_datasets

    from course_lib.core import data

    profile = profile or get_profile()
    if source not in ("synthetic", "on_policy", "mixed"):
        raise ValueError(f"build_pairs: source must be synthetic, on_policy or mixed, got {source!r}")
    if profile.datasets["preferences"] != "synthetic":  # gpu profile: HH-RLHF
        source = "synthetic"
    parts = []
    if source in ("synthetic", "mixed"):
        parts.append(
            data.load_task("preferences", split, n=n, profile=profile, seed=seed).select_columns(
                ["prompt", "chosen", "rejected"]
            )
        )
    if source in ("on_policy", "mixed"):
        if model is None or tokenizer is None:
            raise ValueError("build_pairs: on-policy pairs need the starting model and tokenizer")
        prompts = data.load_task("sentiment", split, n=n or 128, profile=profile, seed=seed)["prompt"]
        parts.append(
            on_policy_pairs(
                model, tokenizer, prompts, max_new_tokens=profile.max_completion_length, seed=seed
            ).select_columns(["prompt", "chosen", "rejected"])
        )
    ds = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return ds.shuffle(seed=seed) if len(parts) > 1 else ds


def collate(
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    tokenizer,
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """B pairs -> 2B right-padded rows (chosen first, then rejected), with your exercise 3.1.

    Like TRL, the EOS token is appended to each completion (the model learns where to stop).
    Rows longer than `max_length` keep their start. Keys: input_ids, labels, completion_mask,
    attention_mask (1 on real tokens).
    """
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ValueError(f"collate: {len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected")
    eos = tokenizer.eos_token or ""
    completions = [c if c.endswith(eos) else c + eos for c in list(chosen) + list(rejected)]
    batch = sft.tokenize_prompt_and_completion(list(prompts) * 2, completions, tokenizer)
    if max_length is not None:
        batch = {k: v[:, :max_length] for k, v in batch.items()}
    # real tokens run up to the last completion label; everything after is right padding
    mask = batch["completion_mask"]
    pos = torch.arange(mask.shape[1])
    last = torch.where(mask != 0, pos, -1).max(-1).values
    last = torch.where(last < 0, mask.shape[1] - 1, last)
    batch["attention_mask"] = (pos[None, :] <= last[:, None]).long()
    return batch


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def precompute_ref_logps(
    ref_model, tokenizer, pairs, config: DPOConfig, show_progress: bool = False
) -> torch.Tensor:
    """The reference model's sequence log-probs of every pair, once: [N, 2] (chosen, rejected)."""
    was_training = ref_model.training
    ref_model.eval()
    out = []
    bs = config.precompute_ref_batch_size
    starts = range(0, len(pairs), bs)
    for i in progress(starts, desc="reference log-probs") if show_progress else starts:
        rows = pairs[i : i + bs]
        batch = collate(rows["prompt"], rows["chosen"], rows["rejected"], tokenizer, config.max_length)
        batch = {k: v.to(_device(ref_model)) for k, v in batch.items()}
        logits = ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logps = dpo.sequence_logprobs(
            logits, batch["labels"], batch["completion_mask"], average=config.use_average_logps
        )
        out.append(torch.stack(logps.float().chunk(2), dim=1).cpu())
    ref_model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------- training
def train(
    config: DPOConfig | None = None,
    model=None,
    tokenizer=None,
    dataset=None,
    *,
    ref_model=None,
    ref_logps: torch.Tensor | None = None,
    eval_pairs=None,
    eval_ref_logps: torch.Tensor | None = None,
    eval_every: int = 0,
    profile: Profile | None = None,
    show_progress: bool = True,
    desc: str = "DPO",
) -> Run:
    """Train `model` in place on preference pairs (`dataset`) for ``config.max_steps`` steps.

    Defaults: :meth:`DPOConfig.from_profile`; :func:`start_model` (seeded with ``config.seed``);
    ``build_pairs(config.pair_source, n=config.num_pairs)``. The reference is `ref_model` if
    given, else `model` itself as it is *now* (before any update): either way only its
    precomputed log-probs are used (pass `ref_logps` [N, 2] to reuse them). History keys (see
    ``_loop``): step, loss, chosen_reward, rejected_reward, margin, accuracy (this batch), lr,
    seconds, and every `eval_every` steps eval_accuracy / eval_margin on `eval_pairs`.
    """
    profile = profile or get_profile()
    config = config or DPOConfig.from_profile(profile)
    start = None
    if model is None:
        model, tokenizer, start = start_model(profile, seed=config.seed)
    elif tokenizer is None:
        raise ValueError("dpo train: pass the tokenizer together with the model")
    if dataset is None:
        dataset = build_pairs(
            config.pair_source, "train", n=config.num_pairs, model=model, tokenizer=tokenizer, profile=profile
        )
    pairs = dataset
    B = config.per_device_train_batch_size
    if len(pairs) < B:
        raise ValueError(f"dpo train: {len(pairs)} pairs is fewer than one batch ({B})")
    dev = _device(model)
    if ref_logps is None:  # [N, 2]
        ref_logps = precompute_ref_logps(ref_model or model, tokenizer, pairs, config)
    if eval_pairs is not None and eval_ref_logps is None:
        eval_ref_logps = precompute_ref_logps(ref_model or model, tokenizer, eval_pairs, config)
    disable_dropout(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = _loop.lr_schedule(opt, config.lr_scheduler_type, config.warmup_steps, config.max_steps)
    g = torch.Generator().manual_seed(config.seed)
    batches = _loop.shuffled_batches(len(pairs), B, g if config.train_sampling_strategy == "random" else None)
    history: list[dict] = []
    started = time.perf_counter()
    bar = _loop.progress_bar(config.max_steps, desc, show_progress)
    for step in bar:
        t0 = time.perf_counter()
        idx = torch.tensor(next(batches))  # [B]
        rows = pairs[idx.tolist()]
        # input_ids, labels, completion_mask, attention_mask: [2B, T] (chosen rows, then rejected)
        batch = collate(rows["prompt"], rows["chosen"], rows["rejected"], tokenizer, config.max_length)
        batch = {k: v.to(dev) for k, v in batch.items()}
        batch["ref_logps"] = torch.cat([ref_logps[idx, 0], ref_logps[idx, 1]]).to(dev)  # [2B]

        loss, stats = dpo.dpo_batch_loss(
            model,
            batch,
            beta=config.beta,
            loss_type=config.loss_type,
            label_smoothing=config.label_smoothing,
            average=config.use_average_logps,
        )
        lr = sched.get_last_lr()[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        sched.step()

        c, r = stats["chosen_rewards"].float(), stats["rejected_rewards"].float()  # [B], [B]
        rec = {
            "step": step + 1,
            "loss": loss.item(),
            "chosen_reward": c.mean().item(),
            "rejected_reward": r.mean().item(),
            "margin": (c - r).mean().item(),
            "accuracy": (c > r).float().mean().item(),
            "lr": lr,
            "seconds": time.perf_counter() - t0,
        }
        if (
            eval_every
            and eval_pairs is not None
            and eval_ref_logps is not None
            and ((step + 1) % eval_every == 0 or step == 0)
        ):
            ev = evaluate_pairs(model, tokenizer, eval_pairs, eval_ref_logps, config)
            rec.update(eval_accuracy=ev["accuracy"], eval_margin=ev["margin"])
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", margin=f"{rec['margin']:.2f}")
    model.eval()
    return Run(
        model,
        tokenizer,
        history,
        time.perf_counter() - started,
        config,
        trainer="dpo",
        checkpoint_name=_loop.checkpoint_name("dpo"),
        info={"profile": profile.name, "start": start},
    )


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_pairs(model, tokenizer, pairs, ref_logps: torch.Tensor, config: DPOConfig) -> dict:
    """Held-out implicit rewards r = β·(log π − log π_ref): accuracy (chosen > rejected, with
    your ``reward_model.preference_accuracy``), mean margin, mean chosen / rejected reward."""
    was_training = model.training
    model.eval()
    cr, rr = [], []
    bs = config.precompute_ref_batch_size
    for i in range(0, len(pairs), bs):
        rows = pairs[i : i + bs]
        batch = collate(rows["prompt"], rows["chosen"], rows["rejected"], tokenizer, config.max_length)
        batch = {k: v.to(_device(model)) for k, v in batch.items()}
        ref = ref_logps[i : i + bs].to(_device(model))
        batch["ref_logps"] = torch.cat([ref[:, 0], ref[:, 1]])
        _, stats = dpo.dpo_batch_loss(
            model,
            batch,
            beta=config.beta,
            loss_type=config.loss_type,
            label_smoothing=config.label_smoothing,
            average=config.use_average_logps,
        )
        cr.append(stats["chosen_rewards"].float().cpu())
        rr.append(stats["rejected_rewards"].float().cpu())
    model.train(was_training)
    c, r = torch.cat(cr), torch.cat(rr)
    return {
        "accuracy": reward_model.preference_accuracy(c, r),
        "margin": (c - r).mean().item(),
        "chosen_reward": c.mean().item(),
        "rejected_reward": r.mean().item(),
    }


def reference_preference(ref_logps: torch.Tensor) -> float:
    """How often the *reference* already gives the chosen completion the higher log-prob
    (the "before" of preference accuracy: implicit rewards are all 0 before training)."""
    return (ref_logps[:, 0] > ref_logps[:, 1]).float().mean().item()


def sample_metrics(
    model, ref_model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 24, seed: int = 0, scorer=None
) -> dict:
    """Fresh samples from `prompts` (the shared ``evaluation.evaluate_policy``): positive_fraction
    (prompt + completion), distinct_2 of the completions, kl_to_ref (mean per-token k3 over the
    sampled tokens, computed with your ``kl`` and ``sft`` functions), and the texts."""
    from course_lib.core import evaluation

    res = evaluation.evaluate_policy(
        model,
        tokenizer,
        list(prompts),
        ref=ref_model,
        max_new_tokens=max_new_tokens,
        seed=seed,
        sentiment=True,
        batch_size=64,
        scorer=scorer,
    )
    return {
        "positive_fraction": res["positive_fraction"],
        "distinct_2": res["distinct_2"],
        "kl_to_ref": res["kl_to_ref"],
        "samples": [s["prompt"] + s["response"] for s in res["samples"]],
    }


# --------------------------------------------------------------------------- notebook 07's main run
@dataclass
class HeadlineData:
    """Notebook 07's data: training pairs, held-out synthetic pairs, sentiment prompts for samples."""

    train_pairs: object  # datasets.Dataset: prompt, chosen, rejected
    heldout_pairs: object
    eval_prompts: list[str]


def headline_data(
    model,
    tokenizer,
    profile: Profile | None = None,
    n_pairs: int | None = None,
    n_heldout: int = 128,
    n_eval: int | None = None,
) -> HeadlineData:
    """The pairs of notebook 07 (section 1): ``build_pairs("mixed", "train", n_pairs)`` with
    on-policy pairs of the start `model`, ``n_heldout`` held-out synthetic pairs, and the
    preset's sentiment eval prompts (`n_eval`, None: eval_size) twice (two samples each)."""
    from course_lib.core import data

    profile = profile or get_profile()
    train_pairs = build_pairs("mixed", "train", n=n_pairs, model=model, tokenizer=tokenizer, profile=profile)
    heldout = build_pairs("synthetic", "eval", n=n_heldout, profile=profile)
    n_eval = n_eval or profile.preset().eval_size
    prompts = list(data.load_task("sentiment", "eval", n=n_eval, profile=profile)["prompt"]) * 2
    return HeadlineData(train_pairs, heldout, prompts)


@dataclass
class HeadlineRun:
    """Notebook 07's main run: `run`, the sample metrics `before` / `after`
    (:func:`sample_metrics`), `ref_preference` (the reference's held-out accuracy), `final`
    (:func:`evaluate_pairs` after training), the reference log-probs [N, 2] of the training and
    held-out pairs, and the seconds of the reference pass and of training."""

    run: Run
    before: dict
    after: dict
    ref_preference: float
    final: dict
    ref_logps: torch.Tensor
    heldout_ref_logps: torch.Tensor
    ref_seconds: float
    train_seconds: float


def headline_run(
    config: DPOConfig,
    model,
    reference,
    tokenizer,
    data: HeadlineData,
    profile: Profile | None = None,
    show_progress: bool = True,
) -> HeadlineRun:
    """The main run of notebook 07 (section 5) -- what the notebook and ``course seeds`` both call:
    reference log-probs of the pairs, sample metrics before, :func:`train` (in place, seeded with
    ``config.seed``, held-out accuracy every ``max_steps // 12`` steps), held-out accuracy and
    sample metrics after."""
    profile = profile or get_profile()
    t0 = time.perf_counter()
    ref_logps = precompute_ref_logps(
        reference, tokenizer, data.train_pairs, config, show_progress=show_progress
    )
    heldout_ref_logps = precompute_ref_logps(reference, tokenizer, data.heldout_pairs, config)
    ref_seconds = time.perf_counter() - t0
    n_new = profile.max_completion_length
    before = sample_metrics(model, reference, tokenizer, data.eval_prompts, max_new_tokens=n_new)
    t0 = time.perf_counter()
    run = train(
        config,
        model,
        tokenizer,
        data.train_pairs,
        ref_logps=ref_logps,
        eval_pairs=data.heldout_pairs,
        eval_ref_logps=heldout_ref_logps,
        eval_every=max(1, config.max_steps // 12),
        profile=profile,
        show_progress=show_progress,
    )
    train_seconds = time.perf_counter() - t0
    final = evaluate_pairs(model, tokenizer, data.heldout_pairs, heldout_ref_logps, config)
    after = sample_metrics(model, reference, tokenizer, data.eval_prompts, max_new_tokens=n_new)
    return HeadlineRun(
        run,
        before,
        after,
        reference_preference(heldout_ref_logps),
        final,
        ref_logps,
        heldout_ref_logps,
        ref_seconds,
        train_seconds,
    )


# --------------------------------------------------------------------------- TRL side by side
def train_with_trl(
    config: DPOConfig, model, tokenizer, dataset, output_dir: str | Path | None = None, *, ref_model=None
) -> Run:
    """The same run with TRL 1.16's ``DPOTrainer``, for the side-by-side comparison.

    TRL tokenizes ``prompt`` and ``prompt + completion + EOS`` itself; on these datasets the
    tokens equal :func:`collate`'s (a test checks it). Reference log-probs are precomputed like
    ours; with ``config.train_sampling_strategy="sequential"`` both trainers take the batches in
    dataset order, so they see the same batches; no dropout. A :class:`Run` whose history has
    step, loss (the exact value TRL optimised), lr, seconds, chosen_reward, rejected_reward,
    margin and TRL's logps_chosen / logps_rejected.
    """
    import tempfile

    from trl import DPOTrainer

    losses: list[float] = []

    class _Recorder(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                losses.append((loss[0] if return_outputs else loss).detach().float().item())
            return loss

    if config.loss_type == "sigmoid" and config.label_smoothing:
        raise ValueError(
            "train_with_trl: TRL 1.16's loss_type='sigmoid' ignores label_smoothing (cDPO), so TRL "
            f"would train a different loss than ours (label_smoothing={config.label_smoothing}); "
            "compare with label_smoothing=0.0"
        )
    out = Path(output_dir or tempfile.mkdtemp(prefix="trl_dpo_"))
    # reference log-probs computed once before training, as ours are; no padding to a multiple
    args = _loop.trl_config(
        "dpo",
        config,
        out,
        use_cpu=not torch.cuda.is_available(),
        precompute_ref_log_probs=True,
        pad_to_multiple_of=None,
    )
    trainer = _Recorder(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
        processing_class=tokenizer,
    )
    return _loop.run_trl(
        trainer,
        config,
        tokenizer,
        "dpo",
        desc="TRL DPOTrainer",
        losses=losses,
        keys={
            "rewards/chosen": "chosen_reward",
            "rewards/rejected": "rejected_reward",
            "rewards/margins": "margin",
            "logps/chosen": "logps_chosen",
            "logps/rejected": "logps_rejected",
        },
    )


# --------------------------------------------------------------------------- quick_train
def quick_train(
    profile: Profile | None = None, preset: str | None = None, out_dir: str | Path | None = None, **overrides
) -> Path:
    """Train the unit's default DPO run with the active exercise functions and save it to
    `out_dir` or ``checkpoint_dir()/"dpo"``: the SFT checkpoint (else the base model) as start and
    frozen reference, ``config.num_pairs`` pairs from ``build_pairs(config.pair_source)``.
    `overrides` are :class:`DPOConfig` fields (e.g. ``pair_source="synthetic", max_steps=2``)."""
    return _loop.quick_train(train, DPOConfig, profile, preset, out_dir, **overrides)
