"""Past one machine: the course's GRPO and DPO on TRL + accelerate (DDP / DeepSpeed) + vLLM.

The same algorithms as units 06-07, run by existing engines instead of the course's loops:
TRL's ``GRPOTrainer`` with *your* reward functions from ``course_lib.rewards`` (looked up when
called, so the active implementation runs), and TRL's ``DPOTrainer``, on the profile's data
(``course_lib.core.data``; ``COURSE_PROFILE=gpu`` for IMDB / SQuAD / HH-RLHF / GSM8K).
Launch it with accelerate; every file named below ships in ``course_lib/labs/scale_configs/``::

    # one process (CPU or one GPU)
    python -m course_lib.labs.scale_out grpo --task arithmetic --max-steps 50
    # DDP on 8 GPUs (one process per GPU)
    accelerate launch --config_file course_lib/labs/scale_configs/ddp.yaml --num_processes 8 \\
        -m course_lib.labs.scale_out grpo --task arithmetic --bf16
    # DeepSpeed ZeRO-2 / ZeRO-3 (pip install deepspeed; the yaml points at deepspeed_zero{2,3}.json)
    accelerate launch --config_file course_lib/labs/scale_configs/zero3.yaml \\
        -m course_lib.labs.scale_out grpo --task arithmetic --bf16
    # two CPU processes, gloo backend (what tests/platform/test_scale.py runs)
    accelerate launch --config_file course_lib/labs/scale_configs/ddp_cpu.yaml \\
        -m course_lib.labs.scale_out grpo --generation seeded --check-sync
    # vLLM in the training processes (colocate) or in a server on its own GPU(s)
    ... grpo --generation vllm-colocate --vllm-gpu-memory-utilization 0.3
    CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model Qwen/Qwen2.5-0.5B-Instruct &
    CUDA_VISIBLE_DEVICES=1,2,3 accelerate launch --num_processes 3 -m course_lib.labs.scale_out \\
        grpo --generation vllm-server --vllm-server-host 127.0.0.1 --model Qwen/Qwen2.5-0.5B-Instruct
    # one T4 (16 GB, no bf16): LoRA, or QLoRA (4-bit base) -- pip install peft bitsandbytes
    python -m course_lib.labs.scale_out grpo --lora --load-in-4bit --fp16 --model Qwen/Qwen2.5-0.5B-Instruct

``--generation seeded`` samples every completion with the course's sampler
(:func:`course_lib.core.sampling.sample`) and a generator seeded by (seed, step, global row):
the text of a run no longer depends on how many processes share the batch, so a 2-process run
can be compared with a 1-process run on the same global batch. ``--check-sync`` hashes the
parameters on every rank after each optimizer step and stops if the ranks disagree;
``--trace FILE`` appends one JSON line per rank and step (step, loss, digest) to FILE.rank<r>.
README "Scaling out" and docs/engines.md (course names -> TRL / veRL / OpenRLHF) say more.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from course_lib import kl, rewards
from course_lib.core import data, sampling
from course_lib.core.config import get_profile

CONFIG_DIR = Path(__file__).resolve().with_name("scale_configs")
TASK_REWARDS = {
    "sentiment": ["sentiment_reward"],
    "arithmetic": ["correctness_reward"],
    "qa": ["format_reward", "correctness_reward"],
}
GENERATION = ("transformers", "seeded", "vllm-colocate", "vllm-server")


# --------------------------------------------------------------------------- rewards
def reward_funcs(names: Sequence[str]) -> list[Any]:
    """TRL reward functions ``f(completions, **kw) -> list[float]`` that call
    ``course_lib.rewards.<name>`` *when called* (so the solutions switch and a student's edits
    both apply). Unknown names raise ValueError."""
    funcs = []
    for name in names:
        if name.startswith("_") or not callable(getattr(rewards, name, None)):
            known = sorted(
                n
                for n in (
                    "format_reward",
                    "correctness_reward",
                    "sentiment_reward",
                    "repetition_penalty",
                    "length_penalty",
                )
                if hasattr(rewards, n)
            )
            raise ValueError(f"unknown reward function {name!r}; course_lib.rewards has {known}")

        def f(completions, _name=name, **kw):
            return [float(x) for x in getattr(rewards, _name)(completions, **kw)]

        f.__name__ = f.__qualname__ = name
        funcs.append(f)
    return funcs


# --------------------------------------------------------------------------- seeded rollouts
def row_seed(seed: int, step: int, row: int) -> int:
    """The generator seed of global row `row` at optimizer step `step` (layout independent)."""
    return (seed * 1_000_003 + step * 10_007 + row) % (2**63)


def seeded_rollout_func(
    seed: int, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> Callable:
    """A TRL ``rollout_func(prompts, trainer) -> {prompt_ids, completion_ids, logprobs}``.

    Each process receives its contiguous slice of the global batch (one row per completion);
    row i of process r is global row ``r * len(prompts) + i`` and is sampled alone with
    ``torch.Generator().manual_seed(row_seed(seed, step, global_row))`` by the course's sampler.
    ``logprobs`` are the sampler's own log-probs (``kl.token_logprobs``, exercise 2.1).
    """

    def rollout(prompts: list, trainer) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer.processing_class
        dev = next(model.parameters()).device
        first = trainer.accelerator.process_index * len(prompts)
        step = trainer.state.global_step
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError("--generation seeded takes plain-text prompts (not chat messages)")
            g = torch.Generator(device=dev).manual_seed(row_seed(seed, step, first + i))
            r = sampling.sample(
                model,
                tok,
                [prompt],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=g,
            )
            n = int(r.completion_mask[0].sum())
            with torch.no_grad():
                logp = kl.token_logprobs(sampling.completion_logits(model, r, temperature), r.completion_ids)
            out["prompt_ids"].append(r.prompt_ids[0][r.prompt_mask[0].bool()].tolist())
            out["completion_ids"].append(r.completion_ids[0, :n].tolist())
            out["logprobs"].append(logp[0, :n].float().tolist())
        return out

    return rollout


# --------------------------------------------------------------------------- sync check / trace
def param_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in name order (equal digests = identical weights)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def sync_callback(check: bool, trace: str | None):
    """A TrainerCallback: after each optimizer step, the parameter digest of every rank
    (gathered); raises RuntimeError if they differ (with `check`); with `trace`, each rank
    appends ``{"step", "rank", "world_size", "digest", "digests", ...logged metrics}`` to
    ``<trace>.rank<r>`` (metrics of a step arrive with TRL's log, after the step)."""
    from accelerate.utils import gather_object
    from transformers import TrainerCallback

    class SyncCallback(TrainerCallback):
        def __init__(self):
            self.pending: dict | None = None

        def _flush(self, args):
            if trace and self.pending is not None:
                with open(f"{trace}.rank{self.pending['rank']}", "a") as fh:
                    fh.write(json.dumps(self.pending) + "\n")
            self.pending = None

        def on_step_end(self, args, state, control, model=None, **kw):
            self._flush(args)
            digest = param_digest(model)
            digests = gather_object([digest])
            if check and len(set(digests)) != 1:
                raise RuntimeError(
                    f"--check-sync: the ranks' parameters differ after step {state.global_step}: {digests}"
                )
            self.pending = {
                "step": state.global_step,
                "rank": args.process_index,
                "world_size": args.world_size,
                "digest": digest,
                "digests": digests,
            }

        def on_log(self, args, state, control, logs=None, **kw):
            if self.pending is not None and logs:
                self.pending.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})

        def on_train_end(self, args, state, control, **kw):
            self._flush(args)

    return SyncCallback()


# --------------------------------------------------------------------------- models / LoRA
def load_model(name_or_path: str, args, profile):
    """(model, tokenizer). ``--load-in-4bit``: NF4 weights (bitsandbytes, GPU only) for QLoRA."""
    from course_lib.core.models import load_policy, load_tokenizer

    if not args.load_in_4bit:
        model, tok = load_policy(name_or_path, profile=profile, device="cpu")
        return model, tok
    if not args.lora:
        raise ValueError("--load-in-4bit trains LoRA adapters on a frozen 4-bit base: add --lora")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if args.bf16 else torch.float16,
    )
    local = int(os.environ.get("LOCAL_RANK", "0"))
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, quantization_config=quant, device_map={"": local}
    )
    tok = load_tokenizer(name_or_path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


def lora_config(args):
    """peft.LoraConfig from --lora-r/--lora-alpha/--lora-dropout/--lora-target-modules, or None."""
    if not args.lora:
        return None
    try:
        from peft import LoraConfig
    except ImportError as e:
        raise SystemExit(
            "--lora needs peft: pip install 'rl-posttraining-course[gpu]' (or pip install peft bitsandbytes)"
        ) from e
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def common_args(args, profile) -> dict:
    """TrainingArguments shared by GRPO and DPO (TRL / transformers names)."""
    on_cpu = args.cpu or not torch.cuda.is_available()
    kw = dict(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        beta=args.beta,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
        lr_scheduler_type="constant",
        optim=args.optim,
        logging_steps=1,
        report_to=args.report_to,
        disable_tqdm=True,
        save_strategy="no",
        use_cpu=on_cpu,
        bf16=args.bf16 and not on_cpu,
        fp16=args.fp16 and not on_cpu,
        activation_checkpointing=args.gradient_checkpointing,
        dataloader_num_workers=0,
    )
    if args.deepspeed:
        kw["deepspeed"] = args.deepspeed
    return kw


# --------------------------------------------------------------------------- GRPO
def run_grpo(args) -> object:
    from trl import GRPOConfig, GRPOTrainer

    profile = get_profile(args.profile)
    task = args.task
    ds = data.load_task(task, "train", n=args.num_prompts, profile=profile, seed=args.seed)
    keep = [c for c in ds.column_names if c in ("prompt", "answer")]
    ds = ds.select_columns(keep)
    model, tok = load_model(args.model or profile.policy_model, args, profile)
    max_new = args.max_completion_length or profile.max_completion_length
    extra = {}
    if args.generation.startswith("vllm"):
        extra = dict(
            use_vllm=True,
            vllm_mode=args.generation.split("-", 1)[1],
            vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            vllm_tensor_parallel_size=args.vllm_tensor_parallel_size,
            vllm_server_host=args.vllm_server_host,
            vllm_server_port=args.vllm_server_port,
            vllm_importance_sampling_correction=not args.no_importance_sampling_correction,
            vllm_importance_sampling_mode=args.vllm_importance_sampling_mode,
            vllm_importance_sampling_clip_max=args.vllm_importance_sampling_clip_max,
        )
    config = GRPOConfig(
        **common_args(args, profile),
        num_generations=args.num_generations,
        epsilon=args.epsilon,
        loss_type=args.loss_type,
        scale_rewards=args.scale_rewards,
        max_completion_length=max_new,
        temperature=args.temperature,
        num_iterations=args.num_iterations,
        disable_dropout=True,
        **extra,
    )
    rollout = None
    if args.generation == "seeded":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        rollout = seeded_rollout_func(args.seed, max_new, args.temperature)
    callbacks = [sync_callback(args.check_sync, args.trace)] if (args.check_sync or args.trace) else []
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs(args.rewards or TASK_REWARDS[task]),
        args=config,
        train_dataset=ds,
        processing_class=tok,
        peft_config=lora_config(args),
        rollout_func=rollout,
        callbacks=callbacks,
    )
    trainer.train()
    trainer.save_model(args.output_dir)  # rank 0 writes (ZeRO-3: gathers the shards first)
    if trainer.accelerator.is_main_process:
        tok.save_pretrained(args.output_dir)
    finish(trainer)
    return trainer


# --------------------------------------------------------------------------- DPO
def run_dpo(args) -> object:
    from trl import DPOConfig, DPOTrainer

    profile = get_profile(args.profile)
    ds = data.load_task("preferences", "train", n=args.num_prompts, profile=profile, seed=args.seed)
    model, tok = load_model(args.model or profile.policy_model, args, profile)
    config = DPOConfig(
        **common_args(args, profile),
        loss_type=[args.dpo_loss_type],
        label_smoothing=args.label_smoothing,
        max_length=profile.max_prompt_length + profile.max_completion_length,
        precompute_ref_log_probs=False,
        pad_to_multiple_of=None,
    )
    callbacks = [sync_callback(args.check_sync, args.trace)] if (args.check_sync or args.trace) else []
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=ds.select_columns(["prompt", "chosen", "rejected"]),
        processing_class=tok,
        peft_config=lora_config(args),
        callbacks=callbacks,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    if trainer.accelerator.is_main_process:
        tok.save_pretrained(args.output_dir)
    finish(trainer)
    return trainer


def finish(trainer) -> None:
    """Every rank waits here until rank 0 has written the checkpoint, so that no rank leaves (and
    tears down its gloo threads) while another still saves. The process group is left to the
    interpreter's exit: destroying it can block a rank whose peer, holding the rendezvous store,
    has already gone."""
    trainer.accelerator.wait_for_everyone()


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m course_lib.labs.scale_out",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("algo", choices=("grpo", "dpo"))
    g = ap.add_argument_group("data and model")
    g.add_argument("--profile", default=None, help="tiny | gpu (default: $COURSE_PROFILE, else by CUDA)")
    g.add_argument("--task", default="arithmetic", choices=sorted(TASK_REWARDS), help="GRPO task")
    g.add_argument(
        "--rewards",
        nargs="+",
        default=None,
        help="course_lib.rewards functions (default: the task's; qa: format + correctness)",
    )
    g.add_argument("--model", default=None, help="hub name or path (default: the profile's policy model)")
    g.add_argument("--num-prompts", type=int, default=None, help="rows of the training set (default all)")
    g.add_argument("--output-dir", default="outputs/scale_out")
    t = ap.add_argument_group("training (TRL names)")
    t.add_argument("--max-steps", type=int, default=20)
    t.add_argument(
        "--per-device-train-batch-size",
        type=int,
        default=8,
        help="completions (GRPO) or pairs (DPO) per process and micro-step",
    )
    t.add_argument("--gradient-accumulation-steps", type=int, default=1)
    t.add_argument("--learning-rate", type=float, default=1e-5)
    t.add_argument(
        "--beta",
        type=float,
        default=None,
        help="GRPO: weight of the k3 KL in the loss (default 0.04); DPO: beta (default 0.1)",
    )
    t.add_argument("--max-grad-norm", type=float, default=1.0)
    t.add_argument(
        "--optim",
        default="adamw_torch",
        help="transformers optimizer name (adamw_torch, adamw_8bit for QLoRA, sgd, ...)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--num-generations", type=int, default=4, help="GRPO group size G")
    t.add_argument("--epsilon", type=float, default=0.2, help="GRPO clip range")
    t.add_argument("--loss-type", default="grpo", choices=("grpo", "bnpo", "dr_grpo", "dapo"))
    t.add_argument("--scale-rewards", default="group", choices=("group", "batch", "none"))
    t.add_argument("--num-iterations", type=int, default=1)
    t.add_argument("--max-completion-length", type=int, default=None)
    t.add_argument("--temperature", type=float, default=1.0)
    t.add_argument("--dpo-loss-type", default="sigmoid", choices=("sigmoid", "ipo", "hinge"))
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--report-to", default="none")
    h = ap.add_argument_group("hardware")
    h.add_argument("--cpu", action="store_true", help="train on CPU even if a GPU is there")
    h.add_argument("--bf16", action="store_true", help="bf16 mixed precision (A100/H100; not T4)")
    h.add_argument("--fp16", action="store_true", help="fp16 mixed precision (T4)")
    h.add_argument("--gradient-checkpointing", action="store_true")
    h.add_argument(
        "--deepspeed",
        default=None,
        help="a DeepSpeed json (scale_configs/deepspeed_zero2.json / _zero3.json) when the "
        "accelerate config does not name one",
    )
    h.add_argument("--lora", action="store_true", help="train LoRA adapters (peft)")
    h.add_argument("--load-in-4bit", action="store_true", help="QLoRA: NF4 base weights (bitsandbytes)")
    h.add_argument("--lora-r", type=int, default=16)
    h.add_argument("--lora-alpha", type=int, default=32)
    h.add_argument("--lora-dropout", type=float, default=0.05)
    h.add_argument("--lora-target-modules", default="all-linear")
    v = ap.add_argument_group("generation (GRPO)")
    v.add_argument("--generation", default="transformers", choices=GENERATION)
    v.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3, help="colocate mode")
    v.add_argument("--vllm-tensor-parallel-size", type=int, default=1, help="colocate mode")
    v.add_argument("--vllm-server-host", default="0.0.0.0", help="server mode")
    v.add_argument("--vllm-server-port", type=int, default=8000, help="server mode")
    v.add_argument(
        "--no-importance-sampling-correction",
        action="store_true",
        help="turn off TRL's vllm_importance_sampling_correction",
    )
    v.add_argument(
        "--vllm-importance-sampling-mode",
        default="token_truncate",
        choices=("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    )
    v.add_argument("--vllm-importance-sampling-clip-max", type=float, default=2.0, help="the TIS cap C")
    d = ap.add_argument_group("checks")
    d.add_argument(
        "--check-sync",
        action="store_true",
        help="after every step, fail unless all ranks hold identical parameters",
    )
    d.add_argument("--trace", default=None, help="append per-step JSON lines to TRACE.rank<r>")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bf16 and args.fp16:
        raise SystemExit("choose one of --bf16 and --fp16")
    if args.beta is None:
        args.beta = 0.04 if args.algo == "grpo" else 0.1
    if args.algo == "grpo":
        run_grpo(args)
    else:
        run_dpo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
