"""Sharded grading: spread `course autograde` over machines, then merge the outputs.

    course autograde SUBMISSIONS --shard i/n --out grades/shard-i   # on machine i (i = 1..n)
    course autograde --merge grades/shard-* --out grades              # anywhere, afterwards

Shard i of n grades submissions i, i+n, i+2n, ... (1-based) of the stable order in which
``course autograde`` finds them (names sorted), and writes, besides the usual outputs,
``shard.json``: which submissions it graded, at which positions of the whole batch. Every shard
decides the student ids and the seed from the whole folder (``Grader.grade_all``'s `batch`), so
an id contested by submissions in different shards is flagged exactly as one batch flags it,
and the merge only puts the results back in order. ``--merge``
checks that the shards are all there (1..n, each once, same batch) and writes one
``grades.csv`` / ``grades.json`` in the unsharded order (byte for byte what one machine writes
for the same batch), one ``feedback/`` tree, and one nbgrader ``gradebook.db`` when the shards
ran the notebooks (the first shard's course folder, with every other shard's submissions and
scores added).

Slurm (one array task per shard; shared file system)::

    #SBATCH --array=1-8 --cpus-per-task=2
    course autograde submissions/ --shard ${SLURM_ARRAY_TASK_ID}/8 \\
        --out grades/shard-${SLURM_ARRAY_TASK_ID}
    # after the array:
    sbatch --dependency=afterok:<array job id> --wrap "course autograde --merge grades/shard-* --out grades"

GNU parallel over ssh (each host has the repository at ~/course and the submissions)::

    parallel --sshloginfile hosts.txt --jobs 1 --return grades/shard-{} --cleanup \\
        'cd ~/course && .venv/bin/course autograde submissions --shard {}/4 --out grades/shard-{}' ::: 1 2 3 4
    course autograde --merge grades/shard-* --out grades
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

MANIFEST = "shard.json"


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 1 <= i <= n. Anything else raises ValueError naming the problem."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not m:
        raise ValueError(f"--shard must look like i/n (e.g. 2/8), got {spec!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: need 1 <= i <= n (shards are numbered from 1), got i={i}, n={n}")
    return i, n


def select(items: Sequence, index: int, count: int) -> list:
    """Shard `index` of `count` (1-based): items index-1, index-1+count, ... of `items`."""
    parse_shard(f"{index}/{count}")
    return list(items)[index - 1 :: count]


def write_manifest(
    out: Path, index: int, count: int, all_names: Sequence[str], results: Sequence[dict]
) -> dict:
    """``out/shard.json``: the shard, the batch size and, for each graded submission in order,
    its name, its position in the whole batch and the student id it was graded under."""
    mine = select(all_names, index, count)
    if len(mine) != len(results):
        raise ValueError(f"shard {index}/{count}: {len(mine)} submissions but {len(results)} results")
    positions = list(range(index - 1, len(all_names), count))
    manifest = {
        "shard": index,
        "of": count,
        "total": len(all_names),
        "submissions": [
            {"name": name, "position": pos, "student_id": r["student_id"]}
            for name, pos, r in zip(mine, positions, results)
        ],
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


# --------------------------------------------------------------------------- merge
def _load(shard_dirs: Sequence[Path]) -> list[tuple[Path, dict, list[dict]]]:
    shards = []
    for d in (Path(x).resolve() for x in shard_dirs):
        man, res = d / MANIFEST, d / "grades.json"
        if not man.is_file() or not res.is_file():
            raise ValueError(f"{d}: not a finished shard ({MANIFEST} or grades.json missing)")
        shards.append((d, json.loads(man.read_text()), json.loads(res.read_text())))
    if not shards:
        raise ValueError("--merge: no shard folders given")
    counts = {(m["of"], m["total"]) for _, m, _ in shards}
    if len(counts) != 1:
        raise ValueError(
            f"--merge: the shards come from different splits or batches: "
            f"{sorted((str(d), m['shard'], m['of'], m['total']) for d, m, _ in shards)}"
        )
    count, total = counts.pop()
    got = sorted(m["shard"] for _, m, _ in shards)
    if got != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(got))
        dup = sorted({i for i in got if got.count(i) > 1})
        raise ValueError(f"--merge: need shards 1..{count} once each; missing {missing}, repeated {dup}")
    for d, m, res in shards:
        if len(m["submissions"]) != len(res):
            raise ValueError(
                f"{d}: shard.json lists {len(m['submissions'])} submissions, "
                f"grades.json has {len(res)} results"
            )
    positions = sorted(s["position"] for _, m, _ in shards for s in m["submissions"])
    if positions != list(range(total)):
        raise ValueError(f"--merge: the shards do not cover the batch of {total} submissions exactly")
    return shards


def merge_results(shards: list[tuple[Path, dict, list[dict]]]) -> list[tuple[Path, str, dict]]:
    """[(shard dir, student id, result)] in the unsharded order. The ids are the shards' own:
    every shard decided them from the whole folder, so they are already one batch's ids (a
    contested id included); two results with one id mean shards of different folders."""
    rows = sorted(
        (
            (s["position"], d, s["student_id"], r)
            for d, m, res in shards
            for s, r in zip(m["submissions"], res)
        ),
        key=lambda t: t[0],
    )
    seen: dict[str, Path] = {}
    for _, d, sid, _ in rows:
        if sid in seen:
            raise ValueError(
                f"--merge: {seen[sid]} and {d} both graded a submission as {sid!r}: "
                "were the shards graded from the same submissions folder?"
            )
        seen[sid] = d
    return [(d, sid, r) for _, d, sid, r in rows]


def merge(shard_dirs: Sequence[Path], out: Path) -> list[dict]:
    """Combine finished shard folders into `out`: grades.csv + grades.json (unsharded order),
    feedback/<student>/, and nbgrader/gradebook.db when the shards have one. Returns the results."""
    from course_instructor.grading import export

    shards = _load(shard_dirs)
    out = Path(out).resolve()
    if any(out == d for d, _, _ in shards):
        raise ValueError(f"--merge: --out {out} must not be one of the shard folders")
    out.mkdir(parents=True, exist_ok=True)
    merged = merge_results(shards)
    results = [r for _, _, r in merged]
    export.write_results(results, out)
    for cid, names in export.contested_ids(results).items():
        print(
            f"course autograde --merge: STUDENT ID CONFLICT {cid!r}: {', '.join(names)} claim it; none is "
            "graded under it (flagged rows in grades.csv and lms.csv). Check by hand which one is the student's.",
            file=sys.stderr,
            flush=True,
        )
    fb = out / "feedback"
    if fb.exists():
        shutil.rmtree(fb)
    for d, sid, r in merged:
        src = Path(d) / "feedback" / sid
        if src.is_dir():
            shutil.copytree(src, fb / r["student_id"])
    dbs = [
        (Path(d) / "nbgrader", m) for d, m, _ in shards if (Path(d) / "nbgrader" / "gradebook.db").is_file()
    ]
    if dbs:
        merge_gradebooks([p for p, _ in sorted(dbs, key=lambda t: t[1]["shard"])], out / "nbgrader")
    return results


def merge_main(shard_dirs: Sequence[str], out: str) -> int:
    """``course autograde --merge DIR... --out OUT``: exit status 0, or 2 with the reason."""
    try:
        results = merge([Path(d) for d in shard_dirs], Path(out).resolve())
    except ValueError as e:
        print(f"course autograde --merge: {e}", file=sys.stderr)
        return 2
    print(f"merged {len(shard_dirs)} shard(s): {len(results)} submission(s) -> {Path(out) / 'grades.csv'}")
    return 0


def merge_gradebooks(roots: Sequence[Path], dest: Path) -> None:
    """The first shard's nbgrader course folder becomes `dest`; every other shard's students,
    submissions and scores are added to its gradebook.db (nbgrader's Gradebook API), and their
    submitted/ and autograded/ folders copied."""
    from nbgrader.api import Gradebook

    from course_instructor.release import ensure_scripts_on_path

    ensure_scripts_on_path()  # nbgrader runs `alembic` by name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(roots[0], dest, symlinks=True)
    with Gradebook(f"sqlite:///{dest / 'gradebook.db'}") as gb:
        for root in roots[1:]:
            with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as src:
                for sub in src.assignment_submissions(_assignment(src)):
                    sid = sub.student.id
                    gb.update_or_create_student(
                        sid, first_name=sub.student.first_name, last_name=sub.student.last_name
                    )
                    gb.add_submission(sub.assignment.name, sid, timestamp=sub.timestamp)
                    for nb in sub.notebooks:
                        new_nb = gb.find_submission_notebook(nb.name, sub.assignment.name, sid)
                        new_nb.flagged = nb.flagged
                        new_nb.late_submission_penalty = nb.late_submission_penalty
                        for grade in nb.grades:
                            g = gb.find_grade(grade.name, nb.name, sub.assignment.name, sid)
                            g.auto_score, g.manual_score = grade.auto_score, grade.manual_score
                            g.extra_credit = grade.extra_credit
                            g.needs_manual_grade = grade.needs_manual_grade
                        for c in nb.comments:
                            gc = gb.find_comment(c.name, nb.name, sub.assignment.name, sid)
                            gc.auto_comment, gc.manual_comment = c.auto_comment, c.manual_comment
                    gb.db.commit()
                    for part in ("submitted", "autograded"):
                        s = root / part / sub.student.id
                        if s.is_dir():
                            shutil.copytree(s, dest / part / sid, symlinks=True, dirs_exist_ok=True)


def _assignment(gb) -> str:
    names = [a.name for a in gb.assignments]
    if len(names) != 1:
        raise ValueError(f"merge_gradebooks: expected one assignment per gradebook, found {names}")
    return names[0]
