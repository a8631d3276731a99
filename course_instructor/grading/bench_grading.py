"""Grading benchmark: seconds per submission for `course autograde` on this machine.

    python -m course_instructor.grading.bench_grading                 # the unit notebooks, 2 submissions
    python -m course_instructor.grading.bench_grading --no-notebooks  # code exercises only
    python -m course_instructor.grading.bench_grading --out runs/bench  # + runs/bench/grading.json

Builds made-up submissions from the released notebooks (a copy of the solutions, and the
untouched stubs), grades them in one batch, and prints the time per submission split into the
sandboxed code grading and the notebooks' execution (in their own sandbox).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from course_lib.core import registry as exercises

REPO = Path(__file__).resolve().parents[2]
MODULES = tuple(exercises.modules())


def solved_module(module: str) -> str:
    """The stub file with the solution appended: the solution's definitions replace the stubs."""
    stub = (REPO / "course_lib" / f"{module}.py").read_text()
    sol = (REPO / "solutions" / f"{module}.py").read_text()
    keep = [
        re.sub(r"^(\s*)from solutions\.(\w+) import", r"\1from course_lib.\2 import", ln)
        for ln in sol.splitlines()
        if not ln.startswith(f"from course_lib.{module} import") and not ln.startswith("from __future__")
    ]
    return stub + "\n\n# ---- the student's work ----\n" + "\n".join(keep) + "\n"


def make_submission(dest: Path, notebooks: list[Path], solved: bool) -> Path:
    (dest / "exercises").mkdir(parents=True)
    (dest / "course_lib").mkdir()
    for nb in notebooks:
        shutil.copy(nb, dest / "exercises" / nb.name)
    for m in MODULES:
        text = solved_module(m) if solved else (REPO / "course_lib" / f"{m}.py").read_text()
        (dest / "course_lib" / f"{m}.py").write_text(text)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=str(REPO / "notebooks"))
    ap.add_argument("--n", type=int, default=2, help="submissions (alternating solved / stubs)")
    ap.add_argument("--no-notebooks", action="store_true")
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="notebooks executed at once per submission (default: min(2, cores))",
    )
    ap.add_argument(
        "--cold-kernels", action="store_true", help="no kernel fork server (each kernel starts cold)"
    )
    ap.add_argument("--out", default=None, help="also write OUT/grading.json (for `course doc-numbers`)")
    args = ap.parse_args(argv)
    from course_instructor import release
    from course_instructor.grading import autograde

    work = Path(tempfile.mkdtemp(prefix="course_bench_"))
    try:
        released = release.generate(work / "ex", Path(args.source))
        for i in range(args.n):
            make_submission(work / "subs" / f"student{i}", released, solved=(i % 2 == 0))
        t0 = time.time()
        grader = autograde.Grader(
            work / "out",
            source_dir=Path(args.source),
            quiet=True,
            run_notebooks=not args.no_notebooks,
            jobs=args.jobs,
            warm_kernels=not args.cold_kernels,
        )
        results = grader.grade_all(autograde.find_submissions(work / "subs"))
        total = time.time() - t0
        print(
            f"cores: {os.cpu_count()} · notebooks executed at once: "
            f"{grader.jobs if not args.no_notebooks else 0} · kernels: "
            f"{'cold' if args.cold_kernels else 'forked from a warm server'}"
        )
        print(
            f"notebooks: {len(released)} · exercises: "
            f"{len({r['exercise'] for r in results[0]['rows']})} graded cells · submissions: {len(results)}"
        )
        for r in results:
            pts = sum(x["score"] or 0 for x in r["rows"])
            mx = sum(x["max_score"] for x in r["rows"])
            nb = (
                f", the notebooks {r['notebook_seconds']:.1f} s at the same time"
                if r.get("notebook_seconds")
                else ""
            )
            print(
                f"  {r['student_id']}: {r['seconds']:.1f} s per submission "
                f"(sandboxed code grading {r['code_seconds']:.1f} s{nb}) · {pts:g}/{mx:g} points"
            )
        per = sum(r["seconds"] for r in results) / len(results)
        print(f"batch {total:.1f} s incl. set-up · {per:.1f} s per submission")
        if args.out:
            summary = {
                "cores": os.cpu_count(),
                "notebook_jobs": grader.jobs if not args.no_notebooks else 0,
                "kernels": "cold" if args.cold_kernels else "forked",
                "notebooks": not args.no_notebooks,
                "batch_seconds": round(total, 1),
                "seconds_per_submission": round(per, 1),
                "submissions": [
                    {
                        "student": r["student_id"],
                        "solved": i % 2 == 0,
                        "seconds": round(r["seconds"], 1),
                        "code_seconds": round(r["code_seconds"], 1),
                        "notebook_seconds": round(r.get("notebook_seconds") or 0, 1),
                        "points": sum(x["score"] or 0 for x in r["rows"]),
                        "max_points": sum(x["max_score"] for x in r["rows"]),
                    }
                    for i, r in enumerate(results)
                ],
            }
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "grading.json").write_text(json.dumps(summary, indent=2))
            print(f"wrote {Path(args.out) / 'grading.json'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
