"""Sentiment scoring behind one interface: `positive_probability(texts) -> list[float]`.

* ``"vader"`` (tiny profile): VADER, rule-based, offline (vaderSentiment ships its lexicon).
  Its compound score c in [-1, 1] is mapped to ``(c + 1) / 2`` — a score in [0, 1], > 0.5 for
  positive text, *not* a calibrated probability.
* any other name (gpu profile): a `transformers` sequence classifier (hub name or local path,
  e.g. DistilBERT fine-tuned on SST-2); returns softmax P(label "POSITIVE").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch


class VaderScorer:
    name = "vader"

    def __init__(self):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()

    def compound(self, texts: Sequence[str]) -> list[float]:
        return [self._vader.polarity_scores(t)["compound"] for t in texts]

    def positive_probability(self, texts: Sequence[str]) -> list[float]:
        return [(c + 1.0) / 2.0 for c in self.compound(texts)]


class ClassifierScorer:
    """A hub/local sequence-classification model; P(positive) from its softmax."""

    def __init__(self, name_or_path: str, device: str | None = None, batch_size: int = 32):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name_or_path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path).to(self.device).eval()
        labels = {v.lower(): k for k, v in self.model.config.id2label.items()}
        self.positive_index = labels.get("positive", labels.get("pos", self.model.config.num_labels - 1))
        self.batch_size = batch_size

    @torch.no_grad()
    def positive_probability(self, texts: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=256,
            ).to(self.device)
            probs = self.model(**enc).logits.float().softmax(-1)[:, self.positive_index]
            out.extend(probs.tolist())
        return out


@lru_cache(maxsize=4)
def _make(name: str):
    return VaderScorer() if name == "vader" else ClassifierScorer(name)


def get_scorer(name: str | None = None):
    """The profile's scorer (cached): ``get_scorer()`` or ``get_scorer("vader")``."""
    if name is None:
        from course_lib.core.config import get_profile

        name = get_profile().sentiment_scorer
    return _make(name)


def positive_fraction(texts: Sequence[str], scorer=None) -> float:
    """Fraction of texts whose positive probability is > 0.5 (VADER: compound > 0)."""
    if not texts:
        raise ValueError("positive_fraction: no texts")
    probs = (scorer or get_scorer()).positive_probability(list(texts))
    return sum(p > 0.5 for p in probs) / len(probs)
