"""Provided model infrastructure: policy / frozen reference loading, a value head for PPO and a
scalar reward head for reward models. Everything loads with ``from_pretrained(path_or_name)``
and saves with ``save_pretrained(dir)``, so a checkpoint directory works wherever a hub name does.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from course_lib.core.config import Profile, get_profile
from course_lib.core.utils import default_device

if TYPE_CHECKING:  # annotations only: transformers is imported where a model is loaded
    from transformers import PreTrainedModel

# TRL 1.16 reads transformers' deprecated `model.is_gradient_checkpointing` while it generates, so
# every TRL cell printed a FutureWarning about code the student never wrote; silence exactly that one.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


class _RightPaddingIsMasked(logging.Filter):
    """transformers asks for an `attention_mask` whenever a batch's first or last id is the pad id.
    The course pads on the RIGHT and masks padding out of every loss (completion_mask): under causal
    attention no real token ever attends to a later pad, so the advice does not apply (students met
    it in every SFT step of unit 03). Only that message is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "strongly recommend passing in an `attention_mask`" not in record.getMessage()


logging.getLogger("transformers.modeling_utils").addFilter(_RightPaddingIsMasked())


def load_tokenizer(name_or_path: str | Path | None = None, profile: Profile | None = None):
    """Tokenizer with a pad token (GPT-2 has none: its EOS is used) and right padding."""
    from transformers import AutoTokenizer

    name_or_path = name_or_path or (profile or get_profile()).tokenizer
    tok = AutoTokenizer.from_pretrained(str(name_or_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_policy(
    name_or_path: str | Path | None = None,
    profile: Profile | None = None,
    device: torch.device | str | None = None,
):
    """(model, tokenizer) for a causal LM: the profile's base model unless a path/name is given."""
    from transformers import AutoModelForCausalLM

    profile = profile or get_profile()
    name_or_path = str(name_or_path or profile.policy_model)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=getattr(torch, profile.dtype))
    if getattr(model, "loss_type", None) is None:
        # GPT-2's class name matches no entry of transformers' loss table, so every loss computed
        # by the model (TRL side-by-side cells) logged "`loss_type=None` was set in the config".
        # The loss it falls back to is this one; naming it silences the warning, nothing else.
        model.loss_type = "ForCausalLM"
    tok_src = name_or_path if (Path(name_or_path) / "tokenizer_config.json").exists() else profile.tokenizer
    tok = load_tokenizer(tok_src)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    # transformers types PreTrainedModel.to as a decorated method whose first parameter is the
    # model itself, so a device argument looks wrong to a type checker; it is nn.Module.to.
    return model.to(device or default_device()), tok  # type: ignore[arg-type]


def frozen_copy(model: nn.Module) -> nn.Module:
    """The reference policy: a deep copy in eval mode with gradients off."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def latest_checkpoint(*names: str) -> Path | None:
    """The newest existing checkpoint among ``checkpoint_dir()/name`` for the given names."""
    from course_lib.core.config import checkpoint_dir

    found = [checkpoint_dir() / n for n in names if (checkpoint_dir() / n / "config.json").exists()]
    return max(found, key=lambda p: (p / "config.json").stat().st_mtime) if found else None


class ValueHead(nn.Module):
    """A linear map from the last hidden state to one scalar per token (PPO's critic)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden).squeeze(-1)


class PolicyWithValueHead(nn.Module):
    """A causal LM and a value head sharing its transformer: one forward gives logits and values.

    ``forward(input_ids, attention_mask, position_ids=None) -> (logits [B, T, V], values [B, T])``
    """

    def __init__(self, lm: PreTrainedModel):
        super().__init__()
        self.lm = lm
        self.value_head = ValueHead(
            lm.config.hidden_size if hasattr(lm.config, "hidden_size") else lm.config.n_embd
        )

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        out = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=True,
        )
        return out.logits, self.value_head(out.hidden_states[-1])

    def save_pretrained(self, path: str | Path):
        from safetensors.torch import save_file

        path = Path(path)
        self.lm.save_pretrained(path)
        save_file(self.value_head.state_dict(), str(path / "value_head.safetensors"))

    @classmethod
    def from_pretrained(cls, path: str | Path, profile: Profile | None = None):
        """Load what :meth:`save_pretrained` wrote (the LM and ``value_head.safetensors``)."""
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        head = Path(path) / "value_head.safetensors"
        if not head.exists():
            raise FileNotFoundError(
                f"{head} not found: not a PolicyWithValueHead checkpoint (to start "
                "from a plain LM, use PolicyWithValueHead(load_policy(path)[0]))"
            )
        dtype = getattr(torch, (profile or get_profile()).dtype)
        model = cls(AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype))
        model.value_head.load_state_dict(load_file(str(head)))
        return model


class RewardModel(nn.Module):
    """Transformer backbone + linear scalar head (unit 04).

    ``forward(input_ids, attention_mask) -> values [B, T]`` (one scalar per token);
    ``score(input_ids, attention_mask) -> [B]`` keeps the value at each sequence's last real
    token via the student's ``reward_model.last_token_pool``.
    """

    def __init__(self, backbone: PreTrainedModel):
        super().__init__()
        self.backbone = backbone
        hidden = getattr(backbone.config, "hidden_size", None) or backbone.config.n_embd
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden + 1))
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_base(cls, name_or_path: str | Path | None = None, profile: Profile | None = None):
        from transformers import AutoModel

        profile = profile or get_profile()
        return cls(AutoModel.from_pretrained(str(name_or_path or profile.reward_model_base)))

    @classmethod
    def from_pretrained(cls, path: str | Path):
        from safetensors.torch import load_file
        from transformers import AutoModel

        rm = cls(AutoModel.from_pretrained(str(path)))
        rm.head.load_state_dict(load_file(str(Path(path) / "reward_head.safetensors")))
        return rm

    def save_pretrained(self, path: str | Path):
        from safetensors.torch import save_file

        path = Path(path)
        self.backbone.save_pretrained(path)
        save_file(self.head.state_dict(), str(path / "reward_head.safetensors"))

    def forward(self, input_ids, attention_mask=None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden).squeeze(-1)

    def score(self, input_ids, attention_mask):
        from course_lib import reward_model

        return reward_model.last_token_pool(self.forward(input_ids, attention_mask), attention_mask)

    @torch.no_grad()
    def score_texts(self, texts: list[str], tokenizer, batch_size: int = 32) -> list[float]:
        """Scores for raw texts (tokenized with right padding, no special tokens)."""
        dev = next(self.parameters()).device
        out: list[float] = []
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[i : i + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
                truncation=True,
                max_length=256,
            ).to(dev)
            out.extend(self.score(enc["input_ids"], enc["attention_mask"]).float().tolist())
        return out
