"""`course selfcheck`: prove the installation works — load the tiny model, sample from it, take a
few training steps, score sentiment offline — and say what was done. Exit code 1 on failure."""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="course selfcheck", description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    t0 = time.time()
    step = "import torch / transformers"
    try:
        import torch
        import transformers

        from course_lib.core import data, sampling
        from course_lib.core.config import get_profile
        from course_lib.core.models import load_policy
        from course_lib.core.sentiment import get_scorer
        from course_lib.core.utils import seed_everything

        print(
            f"[1/4] torch {torch.__version__} · transformers {transformers.__version__} · "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}"
        )
        seed_everything(0)
        profile = get_profile("tiny")
        step = "load the tiny model"
        model, tok = load_policy(profile=profile, device="cpu")
        n = sum(p.numel() for p in model.parameters())
        print(f"[2/4] loaded the tiny model: {n / 1e6:.2f} M parameters, vocab {len(tok)}")
        step = "sample from the model"
        prompts = data.sentiment_prompts("eval", n=4)["prompt"]
        roll = sampling.sample(
            model, tok, prompts, max_new_tokens=20, generator=torch.Generator().manual_seed(0)
        )
        scores = get_scorer("vader").positive_probability([p + t for p, t in zip(prompts, roll.texts)])
        print("[3/4] sampled 4 completions (VADER positive score in brackets):")
        for p, t, s in zip(prompts, roll.texts, scores):
            print(f"      [{s:.2f}] {p!r} -> {t!r}")
        step = "take training steps"
        qa = data.qa_pairs("train", n=8)
        texts = [p + c + tok.eos_token for p, c in zip(qa["prompt"], qa["completion"])]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        losses = []
        for _ in range(args.steps):
            loss = model(**enc, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"[4/4] {args.steps} training steps on 8 Q&A pairs: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        if not losses[-1] < losses[0]:
            raise RuntimeError("the loss did not go down")
    except Exception as e:  # noqa: BLE001 - report which step failed and what to do
        print(
            f"\nselfcheck FAILED at step '{step}': {type(e).__name__}: {e}\n"
            "What to do: re-run `bash setup.sh` (it reinstalls the pinned packages); if the tiny "
            "model (course_lib/assets/tiny) is missing, download the course again.",
            file=sys.stderr,
        )
        return 1
    print(f"selfcheck passed in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
