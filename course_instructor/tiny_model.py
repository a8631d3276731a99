"""Build the `tiny` profile's tokenizer and GPT-2 model from scratch, offline and seeded.

    course build-tiny [--steps 3000] [--out course_lib/assets/tiny]
    course build-tiny --reasoning      # unit 09's assets/tiny_reason (see build_reasoning)
    course build-tiny --tools          # unit 10's assets/tiny_tool (see build_tools)

1. generate the synthetic corpus (:mod:`course_lib.core.corpus`),
2. train a byte-level BPE tokenizer on it with the `tokenizers` library,
3. pretrain a 4-layer, 128-wide GPT-2 (`transformers.GPT2LMHeadModel`) on packed 128-token
   chunks with AdamW, warm-up and cosine decay,
4. save both with `save_pretrained` so that `from_pretrained(path)` loads them like a hub model.

The result ships inside the package (a few MB). Rebuilding takes about as long as the README says
(measured on 2 CPU cores); the same seed and step count give the same weights on the same
machine and torch version.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from course_lib.core import corpus
from course_lib.core.config import ASSET_DIR
from course_lib.core.utils import progress, seed_everything

EOS, PAD = "<|endoftext|>", "<|pad|>"
REASON_STEPS, REASON_DOCUMENTS, REASON_BATCH = 2000, 50_000, 32  # `course build-tiny --reasoning` (unit 09)
TOOL_STEPS, TOOL_DOCUMENTS, TOOL_BATCH = 1500, 40_000, 32  # `course build-tiny --tools` (unit 10)


def train_tokenizer(docs: list[str], vocab_size: int = 3000):
    """Byte-level BPE (GPT-2 style, digits split one by one) as a `PreTrainedTokenizerFast`.

    Splitting digits lets the model learn addition digit by digit instead of memorising one
    token per number, so it can generalise to sums it never saw."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(docs, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=PAD, model_max_length=256
    )
    tok.padding_side = "right"
    return tok


def make_model(vocab_size: int, eos_id: int, pad_id: int, n_layer=4, n_embd=128, n_head=4, n_positions=256):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg)


def rows(docs: list[str], tok) -> torch.Tensor:
    """One document per row, EOS-terminated, right-padded with the pad id: [N, longest + 1].

    Unpacked rows keep every document at position 0, as a prompt is when the model is sampled,
    so copying a number from the question is a lookup at a fixed offset (unit 09 needs this:
    packed chunks start documents anywhere, and a 1M-parameter model then miscopies terms)."""
    enc = tok(docs, add_special_tokens=False)["input_ids"]
    out = torch.full((len(enc), max(map(len, enc)) + 1), tok.pad_token_id)
    for i, ids in enumerate(enc):
        out[i, : len(ids) + 1] = torch.tensor(ids + [tok.eos_token_id])
    return out


def pack(docs: list[str], tok, block: int) -> torch.Tensor:
    """Concatenate documents separated by EOS and cut into [N, block] chunks."""
    ids: list[int] = []
    for enc in tok(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tok.eos_token_id)
    n = len(ids) // block
    return torch.tensor(ids[: n * block]).view(n, block)


def build(
    out: Path = ASSET_DIR,
    steps: int = 3000,
    batch_size: int = 16,
    block: int = 128,
    lr: float = 3e-3,
    n_documents: int = 100_000,
    seed: int = 0,
    threads: int | None = None,
    docs: list[str] | None = None,
    desc: str = "pretrain tiny",
    packed: bool = True,
):
    """Pretrain on `docs` (default: the synthetic corpus of ``n_documents``) and save to `out`.

    `packed`: documents concatenated and cut into `block`-token chunks (the tiny model); else one
    document per row (:func:`rows`), each batch trimmed to its longest row, padding not learned."""
    t0 = time.time()
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
    if docs is None:
        docs = corpus.pretraining_corpus(n_documents=n_documents, seed=seed)
    tok = train_tokenizer(docs)
    data = pack(docs, tok, block) if packed else rows(docs, tok)
    n_tokens = int((data != tok.pad_token_id).sum())
    print(f"corpus: {len(docs)} documents, {n_tokens} tokens, vocab {len(tok)}")
    model = make_model(len(tok), tok.eos_token_id, tok.pad_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in (bar := progress(range(steps), desc=desc)):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=g)
        batch = data[idx]
        labels = batch
        if not packed:  # causal attention: right padding never reaches a real token; mask its loss
            batch = batch[:, : int((batch != tok.pad_token_id).sum(1).max())]
            labels = batch.masked_fill(batch == tok.pad_token_id, -100)
        loss = model(input_ids=batch, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info = {
        "steps": steps,
        "batch_size": batch_size,
        "block": block if packed else None,
        "packed": packed,
        "lr": lr,
        "seed": seed,
        "n_documents": n_documents,
        "tokens": n_tokens,
        "params": n_params,
        "final_loss": sum(losses[-100:]) / len(losses[-100:]),
        "build_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))
    return info


def build_reasoning(
    out: Path | None = None,
    steps: int = REASON_STEPS,
    n_documents: int = REASON_DOCUMENTS,
    seed: int = 0,
    threads: int | None = None,
):
    """Unit 09's ``assets/tiny_reason``: the same architecture pretrained on R1-zero-style
    addition documents (:func:`course_lib.labs.reasoning.pretraining_documents`: drills of running
    sums, scratchpads, guessed direct answers and broken formats), one document per row (so that
    the question's numbers sit at fixed positions: copying them is a lookup), batches of
    :data:`REASON_BATCH` documents; then its starting accuracy measured on held-out problems."""
    from course_lib.labs import reasoning

    out = Path(out or reasoning.TINY_REASON_DIR)
    docs = reasoning.pretraining_documents(n_documents=n_documents, seed=seed)
    info = build(
        out=out,
        steps=steps,
        batch_size=REASON_BATCH,
        n_documents=n_documents,
        seed=seed,
        threads=threads,
        docs=docs,
        desc="pretrain tiny_reason",
        packed=False,
    )
    info["start"] = measure_reasoning_start(out)
    (out / "build_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info["start"], indent=2))
    return info


def measure_reasoning_start(path: Path, n: int = 256) -> dict:
    """Held-out accuracy / format rate / length of the model at `path` (sampled, T=1) and the
    scratchpad gap (forced scratchpad vs forced direct answer), with the reference rewards."""
    from course_lib.core.models import load_policy
    from course_lib.core.switch import use_solutions
    from course_lib.labs import reasoning

    use_solutions()
    model, tok = load_policy(path, profile=None)
    problems = reasoning.make_problems("heldout", n)
    res = reasoning.evaluate(model, tok, problems)
    gap = reasoning.scratchpad_gap(model, tok, problems)
    return {
        "heldout_accuracy": res["accuracy"],
        "format_rate": res["format_rate"],
        "response_length": res["response_length"],
        "scratchpad_rate": res["scratchpad_rate"],
        "accuracy_forced_scratchpad": gap["with_scratchpad"],
        "accuracy_forced_direct": gap["direct"],
    }


def build_tools(
    out: Path | None = None,
    steps: int = TOOL_STEPS,
    n_documents: int = TOOL_DOCUMENTS,
    seed: int = 0,
    threads: int | None = None,
):
    """Unit 10's ``assets/tiny_tool``: the same architecture pretrained on the tool-use documents
    of :func:`course_lib.labs.tools.pretraining_documents` (mostly guessed answers, about a fifth
    calling the calculator, a few malformed calls), one document per row as ``tiny_reason``;
    then its start measured on held-out problems (:func:`measure_tools_start`)."""
    from course_lib.labs import tools

    out = Path(out or tools.TINY_TOOL_DIR)
    docs = tools.pretraining_documents(n_documents=n_documents, seed=seed)
    info = build(
        out=out,
        steps=steps,
        batch_size=TOOL_BATCH,
        n_documents=n_documents,
        seed=seed,
        threads=threads,
        docs=docs,
        desc="pretrain tiny_tool",
        packed=False,
    )
    info["start"] = measure_tools_start(out)
    (out / "build_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info["start"], indent=2))
    return info


def measure_tools_start(path: Path, n: int = 256) -> dict:
    """Held-out accuracy, tool-call rate, malformed-call rate, turns per episode and the accuracy
    of the episodes that called the tool / did not, of the model at `path` (sampled, T=1, the
    reference exercise functions)."""
    from course_lib.core.models import load_policy
    from course_lib.core.switch import use_solutions
    from course_lib.labs import tools

    use_solutions()
    model, tok = load_policy(path, profile=None)
    res = tools.evaluate(model, tok, tools.make_problems("heldout", n))
    return {k: v for k, v in res.items() if k != "samples"}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="course build-tiny", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="default: assets/tiny (tiny_reason, tiny_tool)")
    ap.add_argument("--steps", type=int, default=None, help=f"default 3000 ({REASON_STEPS} with --reasoning)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--reasoning", action="store_true", help="build unit 09's assets/tiny_reason (R1-zero addition)"
    )
    ap.add_argument(
        "--tools", action="store_true", help="build unit 10's assets/tiny_tool (calculator calls)"
    )
    args = ap.parse_args(argv)
    if args.tools:
        build_tools(out=args.out, steps=args.steps or TOOL_STEPS, seed=args.seed, threads=args.threads)
    elif args.reasoning:
        build_reasoning(out=args.out, steps=args.steps or REASON_STEPS, seed=args.seed, threads=args.threads)
    else:
        build(out=args.out or ASSET_DIR, steps=args.steps or 3000, seed=args.seed)


if __name__ == "__main__":
    main()
