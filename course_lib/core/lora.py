"""Optional LoRA (low-rank adapters, via `peft`) for the larger gpu-profile models.

Full fine-tuning of Qwen2.5-0.5B with AdamW needs ~4x the model's size in GPU memory (weights,
gradients, two optimizer moments); on a 16 GB T4 that is tight once a reference model and
generation caches join. LoRA freezes the model and trains two small matrices per adapted layer,
W + (alpha / r) * B A, so only ~1 % of the parameters get gradients and optimizer state.

    from course_lib.core import lora
    model = lora.apply_lora(model, r=16)        # needs `pip install peft` (or `pip install -e ".[gpu]"`)
    print(lora.trainable_parameters(model))     # (trainable, total)
    model = lora.merge(model)                   # fold the adapters back in before save_pretrained

:func:`maybe_lora` is what a trainer or notebook calls: it applies LoRA only when asked (argument,
``$COURSE_LORA=1`` or the profile's ``extra["lora"]``) and otherwise returns the model unchanged.
The tiny profile never needs it (1 M parameters train in full in seconds).
"""

from __future__ import annotations

import importlib.util
import os
import warnings

PEFT_MISSING = (
    "LoRA needs the `peft` package, which is not installed. Install it with "
    '`pip install peft` (or `pip install -e ".[gpu]"`), or train without LoRA '
    "(full fine-tuning; fine for the tiny profile and for gpt2 on a T4)."
)

# Modules to adapt per architecture (attention + MLP projections). None: peft's own default.
TARGET_MODULES = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def _lm(model):
    """The causal LM inside (a PolicyWithValueHead wraps it as `.lm`)."""
    return getattr(model, "lm", model)


def target_modules_for(model) -> list[str] | None:
    return TARGET_MODULES.get(getattr(_lm(model).config, "model_type", ""))


def apply_lora(
    model,
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: list[str] | None = None,
):
    """Wrap `model` (a causal LM, or a PolicyWithValueHead: its `.lm` is wrapped and the value head
    stays fully trainable) with LoRA adapters; returns the wrapped model. Raises ImportError with
    an install hint when peft is missing, ValueError for a rank < 1."""
    if r < 1:
        raise ValueError(f"apply_lora: the rank r must be >= 1, got {r}")
    if not peft_available():
        raise ImportError(f"course_lib.core.lora.apply_lora: {PEFT_MISSING}")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules or target_modules_for(model),
    )
    if hasattr(model, "lm") and hasattr(model, "value_head"):
        model.lm = get_peft_model(model.lm, config)
        return model
    return get_peft_model(model, config)


def trainable_parameters(model) -> tuple[int, int]:
    """(parameters with requires_grad, all parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def merge(model):
    """Fold LoRA adapters into the weights (``merge_and_unload``) so that ``save_pretrained``
    writes a plain model any loader can read; models without adapters are returned as they are."""
    inner = _lm(model)
    if hasattr(inner, "merge_and_unload"):
        merged = inner.merge_and_unload()
        if inner is not model:
            model.lm = merged
            return model
        return merged
    return model


def lora_requested(profile=None) -> bool:
    env = os.environ.get("COURSE_LORA", "").strip().lower()
    if env:
        return env in {"1", "true", "yes"}
    return bool(profile is not None and profile.extra.get("lora"))


def maybe_lora(model, profile=None, enabled: bool | None = None, **lora_kwargs):
    """Apply LoRA when requested (`enabled`, else $COURSE_LORA, else ``profile.extra["lora"]``).
    When requested but peft is missing, warn and train the full model instead."""
    if not (lora_requested(profile) if enabled is None else enabled):
        return model
    if not peft_available():
        warnings.warn(
            f"course_lib.core.lora: LoRA was requested but {PEFT_MISSING} Training the full model.",
            stacklevel=2,
        )
        return model
    return apply_lora(model, **lora_kwargs)
