"""`course bench`: how fast are our from-scratch trainers next to TRL's, on the same everything?

    course bench                     # 20 steps each, batch 8, prints a table, writes runs/bench/bench.json
    course bench --steps 50 --out runs/bench --results runs/course/results.json

For SFT, GRPO, DPO and unit 09's RLVR it trains the profile's base model twice in one process, side by side —
once with our loop (``course_lib.trainers.<algo>.train``, calling the active exercise functions)
and once with TRL's trainer (``SFTTrainer`` / ``GRPOTrainer`` / ``DPOTrainer`` through the same
module's TRL helper) — with the same model, data, batch size, learning rate and lengths, and
reports the median seconds per optimizer step of each (the first step, which warms caches, is
dropped). It is a benchmark, not a test: numbers depend on the machine; run it alone (on a
shared machine: ``flock /tmp/course_cpu.lock course bench``).

bench.json::

    {"sft":  {"ours_s_per_step": x, "trl_s_per_step": y, "ratio_trl_over_ours": y / x, ...},
     "grpo": {...}, "dpo": {...},
     "settings": {...}, "machine": {...},
     "notebooks": {"05": {"seconds": s}, ...},          # from a `course run` results.json, if any
     "autograde": {"seconds_per_submission": s, ...}}     # from an autograde benchmark, if any

An algorithm that fails (e.g. a student's exercise is not implemented yet) gets
``{"error": "..."}`` instead of numbers; the others still run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ALGOS = ("sft", "grpo", "dpo", "rlvr")


def _fresh(profile, device):
    from course_lib.core.models import load_policy
    from course_lib.core.utils import seed_everything

    seed_everything(0)
    return load_policy(profile=profile, device=device)


def _side_by_side(ours, trl, steps: int) -> dict:
    """Median seconds per step of two Runs (``_loop.median_step_seconds``: first step dropped)."""
    from course_lib.trainers._loop import median_step_seconds

    result = {
        "ours_s_per_step": median_step_seconds(ours.history),
        "trl_s_per_step": median_step_seconds(trl.history),
        "steps": steps,
    }
    if any(v != v for v in result.values()):
        raise RuntimeError("no step was timed")
    return result


def bench_sft(profile, steps: int, batch: int, device=None) -> dict:
    from course_lib.core import data
    from course_lib.trainers import sft

    ds = data.load_task("qa", "train", profile=profile)
    cfg = sft.SFTConfig.from_profile(profile, None, max_steps=steps, per_device_train_batch_size=batch)
    model, tok = _fresh(profile, device)
    ours = sft.train(cfg, model, tok, ds, profile=profile, desc="bench SFT (ours)")
    model, tok = _fresh(profile, device)
    with tempfile.TemporaryDirectory(prefix="bench_trl_sft_") as d:
        trl = sft.train_with_trl(cfg, model, tok, ds, d)
    return {
        **_side_by_side(ours, trl, steps),
        "batch": batch,
        "learning_rate": cfg.learning_rate,
        "max_length": cfg.max_length,
    }


def bench_grpo(profile, steps: int, batch: int, device=None, num_generations: int = 4) -> dict:
    from course_lib.core.models import frozen_copy
    from course_lib.trainers import grpo

    prompts = max(1, batch // num_generations)
    cfg = grpo.GRPOConfig.from_profile(
        profile,
        None,
        task="sentiment",
        max_steps=steps,
        prompts_per_step=prompts,
        num_generations=num_generations,
    )
    model, tok = _fresh(profile, device)
    ours = grpo.train(
        cfg, model, tok, ref_model=frozen_copy(model), profile=profile, desc="bench GRPO (ours)"
    )
    model, tok = _fresh(profile, device)
    with tempfile.TemporaryDirectory(prefix="bench_trl_grpo_") as d:
        trl = grpo.train_with_trl(cfg, model, tok, output_dir=d, profile=profile)
    return {
        **_side_by_side(ours, trl, steps),
        "batch": prompts * num_generations,
        "prompts_per_step": prompts,
        "num_generations": num_generations,
        "max_completion_length": cfg.max_completion_length,
        "learning_rate": cfg.learning_rate,
        "beta": cfg.beta,
    }


def bench_dpo(profile, steps: int, batch: int, device=None) -> dict:
    from course_lib.core import data
    from course_lib.core.models import frozen_copy
    from course_lib.trainers import dpo

    pairs = data.load_task("preferences", "train", n=max(4 * batch, batch * (steps + 1)), profile=profile)
    cfg = dpo.DPOConfig.from_profile(profile, None, max_steps=steps, per_device_train_batch_size=batch)
    model, tok = _fresh(profile, device)
    ours = dpo.train(
        cfg, model, tok, pairs, ref_model=frozen_copy(model), profile=profile, desc="bench DPO (ours)"
    )
    model, tok = _fresh(profile, device)
    with tempfile.TemporaryDirectory(prefix="bench_trl_dpo_") as d:
        trl = dpo.train_with_trl(cfg, model, tok, pairs, d, ref_model=frozen_copy(model))
    return {
        **_side_by_side(ours, trl, steps),
        "batch": batch,
        "learning_rate": cfg.learning_rate,
        "max_length": cfg.max_length,
    }


def bench_rlvr(profile, steps: int, batch: int, device=None, num_generations: int = 4) -> dict:
    """Unit 09: our RLVR loop (R1-zero GRPO on the unit's task and start model) vs TRL's
    GRPOTrainer with the same model, problems, rewards (answer + 0.2 format), group, lengths and
    learning rate (beta 0, symmetric clip 0.2, loss "grpo", std scaling, constant lr)."""
    from course_lib.core.models import frozen_copy
    from course_lib.core.utils import seed_everything
    from course_lib.labs import reasoning
    from course_lib.trainers import grpo, rlvr

    prompts = max(1, batch // num_generations)
    cfg = rlvr.RLVRConfig.from_profile(
        profile,
        None,
        max_steps=steps,
        prompts_per_step=prompts,
        num_generations=num_generations,
        eval_every=0,
    )
    problems = rlvr.task_problems(cfg.task, "train", cfg.train_size, profile)
    seed_everything(0)
    model, tok = reasoning.load_start_model(profile=profile)
    ours = rlvr.train(
        cfg, model.to(device or model.device), tok, problems, ref_model=frozen_copy(model),
        eval_problems=problems[:1], profile=profile, desc="bench RLVR (ours)",
    )  # fmt: skip
    funcs, weights = rlvr.reward_functions(cfg.format_weight)
    trl_cfg = grpo.GRPOConfig(
        task="arithmetic", max_steps=steps, prompts_per_step=prompts, num_generations=num_generations,
        learning_rate=cfg.learning_rate, beta=0.0, epsilon=cfg.eps_low, loss_type="grpo", scale_rewards="group",
        max_completion_length=cfg.max_completion_length, lr_scheduler_type="constant", reward_weights=weights,
        eval_size=1,
    )  # fmt: skip
    seed_everything(0)
    model, tok = reasoning.load_start_model(profile=profile)
    with tempfile.TemporaryDirectory(prefix="bench_trl_rlvr_") as d:
        rows = [{"prompt": p["prompt"], "answer": p["answer"]} for p in problems]
        trl = grpo.train_with_trl(
            trl_cfg, model, tok, rows, output_dir=d, reward_funcs=funcs, profile=profile
        )
    return {
        **_side_by_side(ours, trl, steps),
        "batch": prompts * num_generations,
        "prompts_per_step": prompts,
        "num_generations": num_generations,
        "max_completion_length": cfg.max_completion_length,
        "learning_rate": cfg.learning_rate,
    }


def default_algos() -> tuple[str, ...]:
    """ALGOS, without rlvr while unit 09's start model (assets/tiny_reason) is not built."""
    from course_lib.labs.reasoning import TINY_REASON_DIR

    return tuple(a for a in ALGOS if a != "rlvr" or (TINY_REASON_DIR / "model.safetensors").exists())


BENCHES = {"sft": bench_sft, "grpo": bench_grpo, "dpo": bench_dpo, "rlvr": bench_rlvr}


# --------------------------------------------------------------------------- collected timings
def _default_results() -> Path | None:
    cands = [
        p
        for pat in ("results.json", "outputs/**/results.json", "runs/**/results.json")
        for p in Path(".").glob(pat)
    ]
    return max(cands, key=lambda p: p.stat().st_mtime) if cands else None


def notebook_runtimes(path: str | Path | None) -> dict:
    """{"<unit>": {"seconds": s}} from a `course run` results.json ({"units": {"05": {"seconds"}}})."""
    if not path or not Path(path).exists():
        return {}
    raw = json.loads(Path(path).read_text())
    units = raw.get("units", raw) if isinstance(raw, dict) else {}
    out = {}
    for unit, info in units.items():
        if isinstance(info, dict) and isinstance(info.get("seconds"), (int, float)):
            out[str(unit)] = {"seconds": float(info["seconds"])}
    return out


def autograde_times(path: str | Path | None) -> dict:
    """Autograde timing from a JSON file written by the grading benchmark / `course autograde`:
    any of ``seconds_per_submission``, ``per_submission`` or ``{"submissions": [{"seconds"}]}``."""
    if not path or not Path(path).exists():
        return {}
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        return {}
    for key in ("seconds_per_submission", "per_submission"):
        if isinstance(raw.get(key), (int, float)):
            return {"seconds_per_submission": float(raw[key]), "source": str(path)}
    subs = raw.get("submissions")
    if isinstance(subs, list):
        secs = [
            s["seconds"] for s in subs if isinstance(s, dict) and isinstance(s.get("seconds"), (int, float))
        ]
        if secs:
            return {
                "seconds_per_submission": statistics.mean(secs),
                "submissions": len(secs),
                "source": str(path),
            }
    return {}


def machine_info() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError:
        pass
    return info


def format_table(result: dict) -> str:
    lines = [f"{'trainer':<8}{'ours s/step':>13}{'TRL s/step':>13}{'TRL / ours':>12}"]
    for algo in ALGOS:
        r = result.get(algo, {})
        if "error" in r:
            lines.append(f"{algo:<8}  failed: {r['error']}")
        elif r:
            lines.append(
                f"{algo:<8}{r['ours_s_per_step']:>13.4f}{r['trl_s_per_step']:>13.4f}"
                f"{r['trl_s_per_step'] / r['ours_s_per_step']:>11.2f}x"
            )
    if result.get("notebooks"):
        lines.append("")
        lines.append("notebook headless runtimes (course run):")
        lines += [f"  {u:<6}{v['seconds']:>8.1f} s" for u, v in sorted(result["notebooks"].items())]
    if result.get("autograde"):
        lines.append(f"autograde: {result['autograde']['seconds_per_submission']:.1f} s per submission")
    return "\n".join(lines)


def run(
    steps: int = 20,
    batch: int = 8,
    algos=ALGOS,
    profile=None,
    device=None,
    results: str | Path | None = None,
    autograde: str | Path | None = None,
    num_generations: int = 4,
) -> dict:
    """Run the side-by-side benchmark; returns the bench.json dict."""
    import torch

    from course_lib.core.config import get_profile

    profile = profile or get_profile()
    out: dict = {}
    for algo in algos:
        if algo not in BENCHES:
            raise ValueError(f"bench: unknown trainer {algo!r}; choose from {ALGOS}")
        t0 = time.perf_counter()
        try:
            kw = {"num_generations": num_generations} if algo in ("grpo", "rlvr") else {}
            out[algo] = BENCHES[algo](profile, steps, batch, device, **kw)
            r = out[algo]
            r["ratio_trl_over_ours"] = r["trl_s_per_step"] / r["ours_s_per_step"]
        except Exception as e:  # noqa: BLE001  (one failing trainer must not hide the others' numbers)
            out[algo] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        out[algo]["wall_seconds"] = round(time.perf_counter() - t0, 2)
    from course_lib import solutions_active

    out["settings"] = {
        "profile": profile.name,
        "policy_model": profile.policy_model,
        "steps": steps,
        "batch": batch,
        "exercise_code": "solutions" if solutions_active() else "course_lib",
        "device": str(device or ("cuda" if torch.cuda.is_available() else "cpu")),
    }
    out["machine"] = machine_info()
    out["notebooks"] = notebook_runtimes(results if results is not None else _default_results())
    out["autograde"] = autograde_times(autograde)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="course bench",
        description="Seconds per training step, our from-scratch trainers vs TRL's, measured side by side.",
    )
    ap.add_argument(
        "--out", default="runs/bench", help="folder for bench.json (default runs/bench, git-ignored)"
    )
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per trainer (default 20)")
    ap.add_argument(
        "--batch",
        type=int,
        default=8,
        help="examples (SFT), pairs (DPO) or completions (GRPO) per step (default 8)",
    )
    ap.add_argument("--num-generations", type=int, default=4, help="GRPO group size (default 4)")
    ap.add_argument(
        "--only",
        default=",".join(default_algos()),
        help="comma-separated subset of sft,grpo,dpo,rlvr (default: all; rlvr once assets/tiny_reason exists)",
    )
    ap.add_argument("--profile", default=None, help="tiny or gpu (default: automatic)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument(
        "--results",
        default=None,
        help="a `course run` results.json for notebook runtimes "
        "(default: the newest ./results.json, outputs/, runs/)",
    )
    ap.add_argument("--autograde", default=None, help="JSON with autograde seconds per submission")
    ap.add_argument(
        "--student", action="store_true", help="time your own course_lib exercises instead of the solutions"
    )
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up and is not timed)")
    import torch

    import course_lib
    from course_lib.core.config import get_profile

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.student and course_lib.solutions_available():
        course_lib.use_solutions()
    algos = [a.strip() for a in args.only.split(",") if a.strip()]
    result = run(
        args.steps,
        args.batch,
        algos,
        get_profile(args.profile),
        results=args.results,
        autograde=args.autograde,
        num_generations=args.num_generations,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    print(format_table(result))
    print(f"\nwrote {out / 'bench.json'}")
    return 0 if all("error" not in result[a] for a in algos) else 1


if __name__ == "__main__":
    sys.exit(main())
