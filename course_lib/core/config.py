"""Compute profiles (`tiny`, `gpu`) and training presets (`quick`, `medium`, `full`).

The profile is chosen automatically (a CUDA GPU → `gpu`, otherwise `tiny`) and can be forced
with the environment variable ``COURSE_PROFILE=tiny|gpu`` or ``get_profile("tiny")``.
Both profiles go through the same loaders: every model/dataset field is something
``from_pretrained`` / ``datasets.load_dataset`` accepts — a hub name or a local path — so the
gpu path is testable offline by pointing these fields at local stand-ins.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# The shipped tiny model + tokenizer (rebuilt by the instructor's `course build-tiny`).
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny"


@dataclass(frozen=True)
class Preset:
    """How much training a unit does. `steps` are optimizer steps for RL / DPO / SFT loops."""

    name: str
    steps: int
    batch_size: int  # prompts (RL) or examples (SFT/DPO/RM) per step
    eval_size: int  # prompts used to measure before/after metrics


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a CPU laptop and a GPU: models, data, lengths, presets."""

    name: str
    policy_model: str  # path or hub name of the base causal LM
    tokenizer: str  # path or hub name of its tokenizer
    sentiment_scorer: str  # "vader" or a path/hub name of a sequence classifier
    reward_model_base: str  # backbone of the learned reward model (unit 04)
    datasets: dict[str, str]  # task -> "synthetic" or a hub name / local path
    max_prompt_length: int
    max_completion_length: int
    presets: dict[str, Preset]
    dtype: str = "float32"  # weights of trained models (fp16 weights + AdamW underflow)
    extra: dict = field(default_factory=dict)

    def preset(self, name: str | None = None) -> Preset:
        name = name or os.environ.get("COURSE_PRESET", "quick")
        if name not in self.presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(self.presets)}")
        return self.presets[name]

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (e.g. point the gpu profile at local stand-ins)."""
        return dataclasses.replace(self, **changes)


TINY = Profile(
    name="tiny",
    policy_model=str(ASSET_DIR),
    tokenizer=str(ASSET_DIR),
    sentiment_scorer="vader",
    reward_model_base=str(ASSET_DIR),
    datasets={
        "sentiment": "synthetic",
        "qa": "synthetic",
        "preferences": "synthetic",
        "arithmetic": "synthetic",
    },
    max_prompt_length=32,
    max_completion_length=24,
    presets={
        "quick": Preset("quick", steps=60, batch_size=8, eval_size=64),
        "medium": Preset("medium", steps=150, batch_size=8, eval_size=128),
        "full": Preset("full", steps=300, batch_size=16, eval_size=256),
    },
)

GPU = Profile(
    name="gpu",
    policy_model="gpt2",
    tokenizer="gpt2",
    sentiment_scorer="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    reward_model_base="gpt2",
    datasets={
        "sentiment": "stanfordnlp/imdb",
        "qa": "rajpurkar/squad",
        "preferences": "Anthropic/hh-rlhf",
        "arithmetic": "openai/gsm8k",
    },
    max_prompt_length=64,
    max_completion_length=48,
    presets={
        "quick": Preset("quick", steps=50, batch_size=8, eval_size=64),
        "medium": Preset("medium", steps=150, batch_size=8, eval_size=128),
        "full": Preset("full", steps=300, batch_size=16, eval_size=256),
    },
    extra={
        "alt_policy_models": [
            "distilgpt2",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "Qwen/Qwen2.5-0.5B-Instruct",
        ],
        "reasoning_model": "Qwen/Qwen2.5-0.5B-Instruct",  # unit 09 (GSM8K, R1-zero prompt)
        "tool_model": "Qwen/Qwen2.5-0.5B-Instruct",  # unit 10 (the calculator task, plain-text calls)
    },
)

PROFILES = {"tiny": TINY, "gpu": GPU}

# --- the GPU: precision and memory (Colab's free T4 first) ----------------------------------------
# Largest batch (prompts for RL, examples for SFT / reward model / DPO) per model on a 16 GB T4 at
# the gpu profile's lengths. Estimated, not measured (no GPU here): training in float32 costs
# ~16 bytes/parameter (weights, gradients, AdamW's two moments) + 4 for the frozen reference,
# i.e. ~2.5 GB for gpt2 and ~10 GB for Qwen2.5-0.5B; what is left holds the activations.
T4_MEMORY_GB = 15.0
T4_BATCH_LIMITS = {
    "gpt2": 32,
    "distilgpt2": 32,
    "HuggingFaceTB/SmolLM2-135M-Instruct": 16,
    "Qwen/Qwen2.5-0.5B-Instruct": 4,
}


def max_batch_size(model: str, memory_gb: float) -> int | None:
    """The batch limit of `model` on a GPU with `memory_gb` (T4_BATCH_LIMITS scaled by memory,
    rounded down to a power of two, at least 1); None for a model not in the table."""
    if memory_gb <= 0:
        raise ValueError(f"memory_gb must be positive, got {memory_gb}")
    limit = T4_BATCH_LIMITS.get(model)
    if limit is None:
        return None
    scaled = max(1, int(limit * memory_gb / T4_MEMORY_GB))
    return 1 << (scaled.bit_length() - 1)


def fit_to_memory(profile: Profile, memory_gb: float) -> Profile:
    """`profile` with every preset's batch size capped at :func:`max_batch_size` of its policy."""
    cap = max_batch_size(profile.policy_model, memory_gb)
    if cap is None:
        return profile
    return profile.replace(
        presets={
            k: dataclasses.replace(p, batch_size=min(p.batch_size, cap)) for k, p in profile.presets.items()
        }
    )


def precision(profile: Profile | None = None, device: str | None = None) -> dict:
    """How models run here: {"device", "gpu" (name or None), "dtype", "mixed", "fp16", "bf16"}.

    `dtype` is the profile's weight dtype. `mixed` is the mixed-precision dtype this device allows:
    "bfloat16" on GPUs that support it (compute capability 8+: A100, L4, H100), "float16" on older
    ones -- a T4 (7.5) has no bfloat16, so never bf16 there -- and None on the CPU; `fp16` / `bf16`
    are the matching TRL flags (TrainingArguments(fp16=..., bf16=...))."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = mixed = None
    if device.startswith("cuda"):
        gpu = torch.cuda.get_device_name(torch.device(device))
        mixed = "bfloat16" if torch.cuda.is_bf16_supported(including_emulation=False) else "float16"
    return {
        "device": device,
        "gpu": gpu,
        "dtype": (profile or get_profile()).dtype,
        "mixed": mixed,
        "fp16": mixed == "float16",
        "bf16": mixed == "bfloat16",
    }


def describe_precision(info: dict) -> str:
    """One line for the notebooks' first cell, e.g. "device cuda (Tesla T4) · dtype float32 · no
    bfloat16 on this GPU: mixed precision is float16"."""
    where = f"{info['device']} ({info['gpu']})" if info["gpu"] else info["device"]
    line = f"device {where} · dtype {info['dtype']}"
    if info["mixed"] == "float16":
        line += " · no bfloat16 on this GPU: mixed precision is float16"
    elif info["mixed"]:
        line += f" · mixed precision {info['mixed']}"
    return line


def get_profile(name: str | None = None) -> Profile:
    """`name`, else $COURSE_PROFILE, else `gpu` when CUDA is available, else `tiny`.

    $COURSE_PROFILE_OVERRIDES (a JSON object, or the path of a JSON file) replaces fields of the
    chosen profile, e.g. ``{"policy_model": "distilgpt2"}`` or local stand-ins for every hub name
    (the offline tests of the gpu path do this). Presets are given as {"quick": {"steps": 5, ...}}.
    """
    name = name or os.environ.get("COURSE_PROFILE")
    import torch

    if not name:
        name = "gpu" if torch.cuda.is_available() else "tiny"
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
            "(set COURSE_PROFILE or pass the name)"
        )
    profile = PROFILES[name]
    raw = os.environ.get("COURSE_PROFILE_OVERRIDES", "").strip()
    if raw:
        overrides = json.loads(Path(raw).read_text() if not raw.startswith("{") else raw)
        if "presets" in overrides:
            overrides["presets"] = {
                k: dataclasses.replace(profile.presets.get(k, Preset(k, 1, 1, 1)), **v)
                for k, v in overrides["presets"].items()
            }
        unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)}
        if unknown:
            raise ValueError(f"COURSE_PROFILE_OVERRIDES: unknown profile fields {sorted(unknown)}")
        profile = profile.replace(**overrides)
    if profile.name == "gpu" and torch.cuda.is_available():  # memory-aware batch sizes (T4: 15 GB)
        try:
            memory_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
        except (AssertionError, RuntimeError):  # CUDA reported but unusable: keep the presets
            memory_gb = None
        if memory_gb:
            profile = fit_to_memory(profile, memory_gb)
    return profile


def checkpoint_dir() -> Path:
    """Where units save and find checkpoints (SFT → PPO/GRPO/DPO). $COURSE_CHECKPOINTS or ./checkpoints."""
    return Path(os.environ.get("COURSE_CHECKPOINTS", "checkpoints")).resolve()
