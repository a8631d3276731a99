"""Local stand-ins for the gpu profile's hub models and datasets (offline tests, CI).

``make_gpu_standins(dir)`` writes, under `dir`:

* ``policy/``     a 2-layer random GPT-2 with the tiny tokenizer (stands in for gpt2),
* ``classifier/`` a 2-layer random DistilBERT sequence classifier with id2label
  NEGATIVE/POSITIVE and a WordPiece tokenizer (stands in for the SST-2 DistilBERT),
* ``imdb/ squad/ hh-rlhf/ gsm8k/`` small JSONL files in the hub datasets' own formats,

and returns the overrides dict for ``COURSE_PROFILE_OVERRIDES`` (also written to
``dir/overrides.json``): ``COURSE_PROFILE=gpu COURSE_PROFILE_OVERRIDES=dir/overrides.json``
then runs the gpu code path with no network.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from course_lib.core import corpus


def _jsonl(path: Path, rows: list[dict]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _datasets(root: Path, rng: random.Random, n: int = 24):
    def rev():
        return corpus.review(rng)

    for split in ("train", "test"):
        rows = []
        for _ in range(n):
            text, pos = rev()
            rows.append({"text": text.replace(". ", ". <br /><br />", 1), "label": int(pos)})
        _jsonl(root / "imdb" / f"{split}.jsonl", rows)
    for split in ("train", "validation"):
        rows = []
        for i, (q, a) in enumerate(corpus.QA_FACTS[:n]):
            rows.append(
                {
                    "id": str(i),
                    "title": "World",
                    "context": a,
                    "question": q,
                    "answers": {"text": [a.split(" is ")[-1].rstrip(".")], "answer_start": [0]},
                }
            )
        _jsonl(root / "squad" / f"{split}.jsonl", rows)
    for split in ("train", "test"):
        rows = []
        for _ in range(n):
            p = corpus.sentiment_prompt(rng)
            human = f"\n\nHuman: Finish this review: {p}\n\nAssistant:"
            rows.append(
                {
                    "chosen": human + " " + corpus._sentence(rng, True),
                    "rejected": human + " " + corpus._sentence(rng, False),
                }
            )
        _jsonl(root / "hh-rlhf" / f"{split}.jsonl", rows)
    for split in ("train", "test"):
        rows = []
        for _ in range(n):
            a, b = rng.randint(1, 40), rng.randint(1, 40)
            rows.append(
                {
                    "question": f"Tom has {a} apples and buys {b} more. How many now?",
                    "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}",
                }
            )
        _jsonl(root / "gsm8k" / f"{split}.jsonl", rows)


def _policy(root: Path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from course_lib.core.config import ASSET_DIR

    tok = AutoTokenizer.from_pretrained(str(ASSET_DIR))
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    GPT2LMHeadModel(cfg).save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")


def _classifier(root: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast

    words = sorted(
        {w.strip(".,!?").lower() for d in corpus.pretraining_corpus(500, seed=3) for w in d.split()} - {""}
    )
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    wp = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    cfg = DistilBertConfig(
        vocab_size=len(vocab),
        dim=32,
        hidden_dim=64,
        n_layers=2,
        n_heads=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    DistilBertForSequenceClassification(cfg).save_pretrained(root / "classifier")
    tok.save_pretrained(root / "classifier")


def make_gpu_standins(root: str | Path, seed: int = 0) -> dict:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    import torch

    from course_lib.core.config import GPU

    torch.manual_seed(seed)
    _policy(root)
    _classifier(root)
    _datasets(root, random.Random(seed))
    overrides = {
        "policy_model": str(root / "policy"),
        "tokenizer": str(root / "policy"),
        "reward_model_base": str(root / "policy"),
        "sentiment_scorer": str(root / "classifier"),
        "datasets": {
            "sentiment": str(root / "imdb"),
            "qa": str(root / "squad"),
            "preferences": str(root / "hh-rlhf"),
            "arithmetic": str(root / "gsm8k"),
        },
        "max_prompt_length": 32,
        "max_completion_length": 8,
        "presets": {"quick": {"steps": 2, "batch_size": 2, "eval_size": 4}},
        # units 09/10: the stand-in policy instead of the instruct model, completions that fit 256 positions
        "extra": {
            **GPU.extra,
            "reasoning_model": str(root / "policy"),
            "reasoning_max_completion_length": 16,
            # unit 10: the same stand-in for the tool-use model, short episodes
            "tool_model": str(root / "policy"),
            "tool_max_completion_length": 16,
        },
    }
    (root / "overrides.json").write_text(json.dumps(overrides, indent=2))
    return overrides
