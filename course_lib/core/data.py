"""Datasets for every task, the same schema in both profiles (`datasets.Dataset`).

| task          | columns                                   | tiny (synthetic)           | gpu (hub)          |
|---------------|-------------------------------------------|----------------------------|--------------------|
| sentiment     | prompt                                    | neutral review openings    | IMDB review starts |
| qa            | prompt, completion, question, answer      | invented-world facts       | SQuAD              |
| preferences   | prompt, chosen, rejected                  | rule: chosen is positive   | Anthropic HH-RLHF  |
|               |                                           | and not repetitive         |                    |
| arithmetic    | prompt, answer                            | a + b, held-out pairs eval | GSM8K              |

``split`` is "train" or "eval". The gpu loaders call ``datasets.load_dataset(name_or_path)``;
point a profile's ``datasets[task]`` at a local directory of files in the hub format (as the
tests do) to use them offline.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from datasets import Dataset

from course_lib.core import corpus
from course_lib.core.config import Profile, get_profile

SPLITS = ("train", "eval")
HUB_SPLITS = {
    "stanfordnlp/imdb": {"train": "train", "eval": "test"},
    "rajpurkar/squad": {"train": "train", "eval": "validation"},
    "Anthropic/hh-rlhf": {"train": "train", "eval": "test"},
    "openai/gsm8k": {"train": "train", "eval": "test"},
}
QA_EVAL_PLACES = {"Orrin", "Pell", "Norwick"}  # questions about these are never SFT-trained


def _check(split: str):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _hub(name: str, split: str, n: int | None):
    from datasets import load_dataset

    if Path(name).exists():
        hub_split = "train" if split == "train" else "test"
        files = sorted(
            p
            for p in Path(name).iterdir()
            if p.stem.startswith(hub_split) or (split == "eval" and p.stem.startswith("validation"))
        )
        if not files:
            raise FileNotFoundError(f"{name}: no {hub_split}* data file for split {split!r}")
        ext = files[0].suffix.lstrip(".").replace("jsonl", "json")
        ds = load_dataset(ext, data_files=[str(f) for f in files], split="train")
    else:
        kwargs = {"name": "main"} if name == "openai/gsm8k" else {}
        ds = load_dataset(name, split=HUB_SPLITS.get(name, {}).get(split, split), **kwargs)
    if n is not None:
        ds = ds.select(range(min(n, len(ds))))
    return ds


def _source(profile: Profile | None, task: str) -> tuple[Profile, str]:
    profile = profile or get_profile()
    return profile, profile.datasets[task]


# --------------------------------------------------------------------------- sentiment
def sentiment_prompts(
    split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
) -> Dataset:
    """Review openings whose continuation decides the sentiment. Column: prompt."""
    _check(split)
    profile, src = _source(profile, "sentiment")
    if src == "synthetic":
        rng = random.Random(1000 + seed + (0 if split == "train" else 1))
        return Dataset.from_dict({"prompt": [corpus.sentiment_prompt(rng) for _ in range(n or 512)]})
    ds = _hub(src, split, None if n is None else 4 * n)
    rng = random.Random(seed)

    def cut(ex):
        words = re.sub(r"<br\s*/?>", " ", ex["text"]).split()
        return {"prompt": " ".join(words[: rng.randint(3, 8)])}

    ds = ds.map(cut, remove_columns=ds.column_names)
    return ds.select(range(min(n, len(ds)))) if n else ds


# --------------------------------------------------------------------------- Q&A
def qa_format(question: str, answer: str) -> str:
    return corpus.QA_FORMAT.format(q=question.strip(), a=answer.strip())


def qa_pairs(
    split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
) -> Dataset:
    """Question → formatted answer. Columns: prompt (the bare question + newline), completion
    ("Question: …\\nAnswer: …"), question, answer."""
    _check(split)
    profile, src = _source(profile, "qa")
    rows = []
    if src == "synthetic":
        facts = [
            (q, a) for q, a in corpus.QA_FACTS if (any(p in q for p in QA_EVAL_PLACES)) == (split == "eval")
        ]
        arith = corpus.arithmetic_split(0)
        pairs = arith.train if split == "train" else arith.heldout
        rng = random.Random(seed + (0 if split == "train" else 1))
        for a, b in rng.sample(pairs, min(len(pairs), 3 * len(facts))):
            facts.append((f"What is {a} + {b}?", str(a + b)))
        rng.shuffle(facts)
        rows = facts
    else:
        ds = _hub(src, split, n)
        rows = [(ex["question"], ex["answers"]["text"][0] if ex["answers"]["text"] else "") for ex in ds]
    if n is not None:
        rows = rows[:n]
    return Dataset.from_dict(
        {
            "prompt": [f"{q.strip()}\n" for q, _ in rows],
            "completion": [qa_format(q, a) for q, a in rows],
            "question": [q for q, _ in rows],
            "answer": [a for _, a in rows],
        }
    )


# --------------------------------------------------------------------------- preferences
PREFERENCE_RULE = (
    "chosen = a positive continuation without repeated words; rejected = a "
    "negative continuation (80 %) or a positive one that repeats one word (20 %)"
)


def _continuation(rng: random.Random, positive: bool) -> str:
    return " " + " ".join(corpus._sentence(rng, positive) for _ in range(rng.randint(1, 2)))


def _repetitive(rng: random.Random) -> str:
    w = rng.choice(corpus.POSITIVE_ADJ)
    return " " + " ".join([w] * rng.randint(4, 9)) + "."


def _split_hh(text: str) -> tuple[str, str]:
    i = text.rfind("\n\nAssistant:")
    return text[: i + len("\n\nAssistant:")], text[i + len("\n\nAssistant:") :]


def preference_pairs(
    split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
) -> Dataset:
    """Preference pairs. Columns: prompt, chosen, rejected (chosen/rejected are continuations
    of prompt, without it). The tiny rule is :data:`PREFERENCE_RULE`."""
    _check(split)
    profile, src = _source(profile, "preferences")
    if src == "synthetic":
        rng = random.Random(2000 + seed + (0 if split == "train" else 1))
        rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
        for _ in range(n or (1024 if split == "train" else 256)):
            rows["prompt"].append(corpus.sentiment_prompt(rng))
            rows["chosen"].append(_continuation(rng, True))
            rows["rejected"].append(_continuation(rng, False) if rng.random() < 0.8 else _repetitive(rng))
        return Dataset.from_dict(rows)
    ds = _hub(src, split, n)
    rows = {"prompt": [], "chosen": [], "rejected": []}
    for ex in ds:
        p, c = _split_hh(ex["chosen"])
        p2, r = _split_hh(ex["rejected"])
        if p != p2:
            continue
        rows["prompt"].append(p)
        rows["chosen"].append(c)
        rows["rejected"].append(r)
    return Dataset.from_dict(rows)


# --------------------------------------------------------------------------- arithmetic
def gsm8k_final_answer(answer: str) -> str:
    """GSM8K answers end with '#### 42'."""
    return answer.split("####")[-1].strip().replace(",", "")


def arithmetic(
    split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
) -> Dataset:
    """Arithmetic prompts. Columns: prompt, answer (a string holding the integer answer).
    Tiny: eval uses only pairs that never appeared in pretraining (nor in train)."""
    _check(split)
    profile, src = _source(profile, "arithmetic")
    if src == "synthetic":
        split_pairs = corpus.arithmetic_split(0)
        pairs = list(split_pairs.train if split == "train" else split_pairs.heldout)
        random.Random(3000 + seed).shuffle(pairs)
        pairs = pairs[: n or len(pairs)]
        return Dataset.from_dict(
            {
                "prompt": [corpus.arithmetic_prompt(a, b) for a, b in pairs],
                "answer": [str(a + b) for a, b in pairs],
            }
        )
    ds = _hub(src, split, n)
    return Dataset.from_dict(
        {
            "prompt": [f"Question: {ex['question']}\nAnswer:" for ex in ds],
            "answer": [gsm8k_final_answer(ex["answer"]) for ex in ds],
        }
    )


def load_task(
    task: str, split: str = "train", n: int | None = None, profile: Profile | None = None, seed: int = 0
) -> Dataset:
    loaders = {
        "sentiment": sentiment_prompts,
        "qa": qa_pairs,
        "preferences": preference_pairs,
        "arithmetic": arithmetic,
    }
    if task not in loaders:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(loaders)}")
    return loaders[task](split=split, n=n, profile=profile, seed=seed)
