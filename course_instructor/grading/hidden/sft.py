"""Hidden cases of the exercises of course_lib/sft.py (unit 03, SFT): one maker per exercise,
``Gen -> list of cases``, listed in :data:`CASES`."""

from __future__ import annotations

import torch

from course_instructor.grading.hidden._cases import case, random_ids, sentence, sgd, tiny_model
from course_instructor.grading.sandboxed.caserun import MARKER


def _tokenize_prompt_and_completion(g):
    tok = {MARKER: "tokenizer"}
    cases = []
    for i in range(2):
        prompts = [sentence(g, g.int_(1, 6)) for _ in range(3)]
        comps = [" " + sentence(g, g.int_(1, 6)) for _ in range(3)]
        cases.append(case(f"pairs{i}", prompts, comps, tok))
    cases.append(case("qa", ["Question: What is 2 + 3?\nAnswer:"], [" 5"], tok))
    cases.append(case("no-space", ["the movie", "Answer:"], ["s were great", "5"], tok))  # tokenized apart
    cases.append(case("mismatch", ["a", "b"], ["c"], tok))
    return cases


def _masked_mean(g):
    return [
        case("all", g.randn(3, 5), g.mask(3, 5), grad=[0], grad_seed=1),
        case("dim-1", g.randn(4, 6), g.mask(4, 6), dim=-1, grad=[0], grad_seed=2),
        case("dim1", g.randn(2, 3), g.mask(2, 3), 1, grad=[0]),
        case("float-mask", g.randn(3, 4), g.mask(3, 4).float(), grad=[0]),
        case("bad-shape", g.randn(3, 4), g.mask(3, 5)),
    ]


def _sft_loss(g):
    cases = []
    for i, (B, T, V) in enumerate([(2, 5, 9), (3, 4, 6)]):
        labels = torch.randint(0, V, (B, T), generator=g.g)
        m = g.mask(B, T)
        labels = torch.where(m.bool(), labels, torch.full_like(labels, -100 if i else 0))
        cases.append(case(f"padded{i}", g.randn(B, T, V, scale=2), labels, m, grad=[0], grad_seed=i))
    return cases


def _sft_train_step(g):
    cases = []
    for i, (B, T, clip) in enumerate([(2, 6, 1.0), (3, 5, None), (2, 4, 0.01)]):
        ids = random_ids(g, B, T + 1)
        m = g.mask(B, T)
        m[:, 0] = 0  # the first label is a prompt token
        m[0, 1] = 1
        batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "completion_mask": m}
        cases.append(case(f"step{i}", tiny_model(i), batch, sgd(), clip, report_params=True))
    cases.append(case("stale-grad", tiny_model(3, stale_grad=True), batch, sgd(), None, report_params=True))
    cases.append(case("missing-key", tiny_model(0), {"input_ids": random_ids(g, 2, 3)}, sgd()))
    return cases


CASES = {
    "tokenize_prompt_and_completion": _tokenize_prompt_and_completion,
    "masked_mean": _masked_mean,
    "sft_loss": _sft_loss,
    "sft_train_step": _sft_train_step,
}
