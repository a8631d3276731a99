"""Measure the shipped tiny model (``course quality``; ``--out DIR`` writes DIR/tiny_quality.json, which
``course doc-numbers --save-quality DIR`` turns into docs/instructors.md's table).

* positive fraction (VADER) of samples from neutral review prompts      — target 0.3–0.7
* accuracy on held-out sums (pairs never in pretraining), greedy/sampled — target 20–70 %
* fluency: distinct-2 of review samples and the longest run of one word
* "Question/Answer" format compliance from bare questions (before SFT)   — clearly imperfect
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from course_lib.core import data, evaluation, sampling
from course_lib.core.config import get_profile
from course_lib.core.models import load_policy
from course_lib.core.sentiment import get_scorer
from course_lib.core.utils import seed_everything
from course_lib.rewards import FORMAT_PATTERN


def _longest_run(text: str) -> int:
    w, best, run = text.lower().split(), 0, 0
    for i, x in enumerate(w):
        run = run + 1 if i and x == w[i - 1] else 1
        best = max(best, run)
    return best


def measure(model=None, tokenizer=None, n: int = 256, seed: int = 0) -> dict:
    seed_everything(seed)
    profile = get_profile("tiny")
    if model is None:
        model, tokenizer = load_policy(profile=profile, device="cpu")
    g = torch.Generator().manual_seed(seed)
    L = profile.max_completion_length
    t0 = time.time()
    prompts = data.sentiment_prompts("eval", n=n)["prompt"]
    reviews = sampling.sample(model, tokenizer, prompts, max_new_tokens=L, generator=g).texts
    probs = get_scorer("vader").positive_probability([p + t for p, t in zip(prompts, reviews)])
    ar = data.arithmetic("eval", n=n)
    greedy = sampling.sample(model, tokenizer, ar["prompt"], max_new_tokens=6, greedy=True).texts
    sampled = sampling.sample(model, tokenizer, ar["prompt"], max_new_tokens=6, generator=g).texts
    qa = data.qa_pairs("eval", n=min(n, 128))
    fmt = sampling.sample(model, tokenizer, qa["prompt"], max_new_tokens=40, generator=g).texts
    return {
        "positive_fraction": sum(p > 0.5 for p in probs) / len(probs),
        "arithmetic_accuracy_greedy": evaluation.first_integer_accuracy(greedy, ar["answer"]),
        "arithmetic_accuracy_sampled": evaluation.first_integer_accuracy(sampled, ar["answer"]),
        "distinct_2": evaluation.distinct_n(reviews, 2),
        "max_word_run": max(_longest_run(t) for t in reviews),
        "format_compliance": sum(bool(re.fullmatch(FORMAT_PATTERN, t.strip())) for t in fmt) / len(fmt),
        "n": n,
        "seconds": round(time.time() - t0, 1),
        "samples": {
            "review": [p + t for p, t in zip(prompts[:3], reviews[:3])],
            "arithmetic": [p + t for p, t in zip(ar["prompt"][:3], sampled[:3])],
            "qa": [p + t for p, t in zip(qa["prompt"][:3], fmt[:3])],
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(prog="course quality", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--out", metavar="DIR", help="also write DIR/tiny_quality.json")
    args = ap.parse_args(argv)
    res = measure(n=args.n)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tiny_quality.json").write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for k, v in res.items():
        if k != "samples":
            print(f"{k:>28}: {v:.3f}" if isinstance(v, float) else f"{k:>28}: {v}")
    for kind, texts in res["samples"].items():
        for t in texts:
            print(f"[{kind}] {t!r}")


if __name__ == "__main__":
    main()
