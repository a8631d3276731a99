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
    batch_size: int          # prompts (RL) or examples (SFT/DPO/RM) per step
    eval_size: int           # prompts used to measure before/after metrics


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a CPU laptop and a GPU: models, data, lengths, presets."""
    name: str
    policy_model: str                 # path or hub name of the base causal LM
    tokenizer: str                    # path or hub name of its tokenizer
    sentiment_scorer: str             # "vader" or a path/hub name of a sequence classifier
    reward_model_base: str            # backbone of the learned reward model (unit 04)
    datasets: dict[str, str]          # task -> "synthetic" or a hub name / local path
    max_prompt_length: int
    max_completion_length: int
    presets: dict[str, Preset]
    dtype: str = "float32"
    extra: dict = field(default_factory=dict)

    def preset(self, name: str | None = None) -> Preset:
        name = name or os.environ.get("COURSE_PRESET", "quick")
        if name not in self.presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(self.presets)}")
        return self.presets[name]

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (e.g. point the gpu profile at local stand-ins)."""
        return dataclasses.replace(self, **changes)


TINY = Profile(
    name="tiny",
    policy_model=str(ASSET_DIR),
    tokenizer=str(ASSET_DIR),
    sentiment_scorer="vader",
    reward_model_base=str(ASSET_DIR),
    datasets={"sentiment": "synthetic", "qa": "synthetic", "preferences": "synthetic",
              "arithmetic": "synthetic"},
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
    datasets={"sentiment": "stanfordnlp/imdb", "qa": "rajpurkar/squad",
              "preferences": "Anthropic/hh-rlhf", "arithmetic": "openai/gsm8k"},
    max_prompt_length=64,
    max_completion_length=48,
    presets={
        "quick": Preset("quick", steps=50, batch_size=8, eval_size=64),
        "medium": Preset("medium", steps=150, batch_size=8, eval_size=128),
        "full": Preset("full", steps=300, batch_size=16, eval_size=256),
    },
    extra={"alt_policy_models": ["distilgpt2", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                 "Qwen/Qwen2.5-0.5B-Instruct"]},
)

PROFILES = {"tiny": TINY, "gpu": GPU}


def get_profile(name: str | None = None) -> Profile:
    """`name`, else $COURSE_PROFILE, else `gpu` when CUDA is available, else `tiny`.

    $COURSE_PROFILE_OVERRIDES (a JSON object, or the path of a JSON file) replaces fields of the
    chosen profile, e.g. ``{"policy_model": "distilgpt2"}`` or local stand-ins for every hub name
    (the offline tests of the gpu path do this). Presets are given as {"quick": {"steps": 5, ...}}.
    """
    name = name or os.environ.get("COURSE_PROFILE")
    if not name:
        import torch
        name = "gpu" if torch.cuda.is_available() else "tiny"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
                         "(set COURSE_PROFILE or pass the name)")
    profile = PROFILES[name]
    raw = os.environ.get("COURSE_PROFILE_OVERRIDES", "").strip()
    if raw:
        overrides = json.loads(Path(raw).read_text() if not raw.startswith("{") else raw)
        if "presets" in overrides:
            overrides["presets"] = {k: dataclasses.replace(profile.presets.get(k, Preset(k, 1, 1, 1)), **v)
                                    for k, v in overrides["presets"].items()}
        unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)}
        if unknown:
            raise ValueError(f"COURSE_PROFILE_OVERRIDES: unknown profile fields {sorted(unknown)}")
        profile = profile.replace(**overrides)
    return profile


def checkpoint_dir() -> Path:
    """Where units save and find checkpoints (SFT → PPO/GRPO/DPO). $COURSE_CHECKPOINTS or ./checkpoints."""
    return Path(os.environ.get("COURSE_CHECKPOINTS", "checkpoints")).resolve()
