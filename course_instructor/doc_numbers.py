"""`course doc-numbers`: the measured numbers of the docs, written from results files.

    course run --out runs/latest && course doc-numbers --save-run runs/latest
    course seeds --out runs/seeds && course doc-numbers --save-seeds runs/seeds
    course bench --out runs/bench && python -m course_instructor.grading.bench_grading --out runs/bench \\
      && course doc-numbers --save-bench runs/bench
    course quality --out runs/quality && course doc-numbers --save-quality runs/quality
    course doc-numbers --check          # exit 1 if a doc or registry.UNIT_SECONDS disagrees with them

The results live in ``docs/results/`` (committed: ``course_run.json``, ``seeds.json``,
``seeds_alt.json``, ``bench.json``, ``grading.json``, ``tiny_quality.json``), each a command's own output plus
``provenance`` (date, commit, command, CPU count). Every table between ``<!-- NAME -->`` and
``<!-- /NAME -->`` in ``docs/benchmarks.md`` and ``docs/instructors.md`` is rendered from them (the
shipped models' facts from their ``build_info.json``), and ``course_lib/core/registry.py``'s
``UNIT_SECONDS`` (the run time shown under each notebook's title) is rewritten from the course
run; a test runs ``--check``, so a number in the docs cannot drift from the file it came from.
When the seconds change, rebuild the notebooks (``course build-notebooks``, ``course release``)."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
REGISTRY = REPO / "course_lib" / "core" / "registry.py"
FILES = {
    "run": ("course_run.json", "results.json", "course run"),
    "seeds": ("seeds.json", "seeds.json", "course seeds"),
    "seeds_alt": ("seeds_alt.json", "seeds_alt.json", "course seeds --impl alt"),
    "bench": ("bench.json", "bench.json", "course bench"),
    "grading": ("grading.json", "grading.json", "python -m course_instructor.grading.bench_grading"),
    "quality": ("tiny_quality.json", "tiny_quality.json", "course quality"),
    "entropy": (
        "entropy_collapse.json",
        "entropy_collapse.json",
        "python -m course_instructor.entropy_seeds",
    ),
    "estimators": ("estimators.json", "estimators.json", "python -m course_instructor.estimators"),
    "overlong": ("overlong_seeds.json", "overlong_seeds.json", "python -m course_instructor.overlong_seeds"),
    "tools": ("tools_seeds.json", "tools_seeds.json", "python -m course_instructor.tools_seeds"),
}
# The docs with rendered blocks; a block name appears in exactly one of them.
DOCS = (REPO / "docs" / "benchmarks.md", REPO / "docs" / "instructors.md")
ASSETS = REPO / "course_lib" / "assets"


class Pair:
    """A metric's (before, after), formatted by a template: ``{m}`` / ``{m:.2f}`` gives
    "0.47 → 0.94"; ``{m.after:.2f}`` one side."""

    def __init__(self, metric: dict):
        self.before, self.after = metric.get("before"), metric["after"]

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        before = "—" if self.before is None else format(self.before, spec)
        return f"{before} → {format(self.after, spec)}"


# The `course run` table: what each notebook's report_metrics() recorded, in words.
HEADLINES = {
    "01": "best-of-n sentiment reward {best_of_n_sentiment} (n = 1 → 16); hacked text repetition "
    "{hack_repetition} with the penalty",
    "02": "spread of the KL estimate relative to the KL, k1 → k3: {toy_rel_std_k1_to_k3:.1f}",
    "03": "format compliance {format_compliance} (TRL SFTTrainer: {format_compliance_trl.after:.2f})",
    "04": "held-out preference accuracy {rm_accuracy} (TRL RewardTrainer: {rm_accuracy_trl.after:.2f})",
    "05": "positive fraction {positive_fraction}, distinct-2 {distinct_2:.3f}, KL to reference "
    "{kl_to_ref.after:.2f} nats",
    "06": "positive fraction {positive_fraction} (KL {kl_to_ref.after:.2f}); held-out arithmetic "
    "accuracy {arithmetic_accuracy}",
    "07": "implicit-reward accuracy {preference_accuracy}, positive fraction {positive_fraction}, KL "
    "{kl_to_ref.after:.2f}",
    "08": "the four trained models compared on one task (reward-vs-KL frontier)",
    "09": "held-out accuracy {heldout_accuracy} on sums of four one-digit numbers, format rate "
    "{format_rate}, response length {response_length:.0f} tokens",
    "10": "held-out accuracy {heldout_accuracy} on sums of three 3-digit numbers with a calculator, "
    "tool-call rate {tool_call_rate}; with the environment's tokens in the loss "
    "{ablation_heldout_accuracy.after:.2f}",
}


def load(kind: str, results: Path | None = None) -> dict:
    path = (results or RESULTS) / FILES[kind][0]
    if not path.exists():
        raise FileNotFoundError(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} is missing: run "
            f"`{FILES[kind][2]}`, then `course doc-numbers --save-...` (see course doc-numbers --help)"
        )
    return json.loads(path.read_text())


def headline(unit: str, entry: dict) -> str:
    if "error" in entry:
        return f"FAILED: {entry['error'].splitlines()[0][:80]}"
    metrics = {
        k: Pair(v) for k, v in entry.get("metrics", {}).items() if isinstance(v, dict) and "after" in v
    }
    try:
        return HEADLINES[unit].format(**metrics)
    except KeyError as e:
        raise KeyError(
            f"unit {unit}'s headline needs metric {e} (report_metrics of notebook {unit})"
        ) from None


def course_run_table(run: dict) -> str:
    lines = ["| unit | seconds | longest cell: seconds (cell, first line) | headline (before → after) |"]
    lines.append("|---|---|---|---|")
    for unit, entry in sorted(run["units"].items()):
        cell = entry.get("longest_cell") or {}
        longest = (
            f"{cell['seconds']:.0f} (cell {cell['cell']}, `{cell['line']}`)" if cell.get("cell") else "—"
        )
        lines.append(f"| {unit} | {entry['seconds']:.0f} | {longest} | {headline(unit, entry)} |")
    return "\n".join(lines)


def provenance_line(doc: dict) -> str:
    p = doc.get("provenance", {})
    return (
        f"Measured with `{p.get('command', '?')}` on {p.get('cpus', '?')} CPU cores, saved {p.get('date', '?')} "
        f"at commit `{p.get('commit', '?')}` (`docs/results/{p.get('file', '?')}`)."
    )


def run_summary(run: dict) -> str:
    total = sum(e.get("seconds", 0) for e in run["units"].values())
    peak = run.get("peak_rss_mb")
    largest = run.get("max_rss_mb", {}).get("largest_child")
    text = f"{provenance_line(run)} All units: {total / 60:.1f} minutes"
    if peak:
        text += (
            f"; peak memory {peak:.0f} MB resident (runner + one kernel; the largest kernel {largest:.0f} MB)"
        )
    return text + "."


def seeds_table(docs: list[dict]) -> str:
    from course_instructor import seeds

    lines = ["| unit | seed 0 | seed 1 | seed 2 | worst seed vs bar |", "|---|---|---|---|---|"]
    for doc in docs:
        label = "" if doc.get("impl", "solutions") == "solutions" else f", `--impl {doc['impl']}`"
        for unit, e in sorted(doc["units"].items()):
            bars = seeds.BARS[unit]
            cells = []
            for seed in (0, 1, 2):
                r = next((r for r in e["seeds"] if r["seed"] == seed), None)
                if r is None:
                    cells.append("—")
                elif "error" in r:
                    cells.append("FAILED")
                else:
                    cells.append(", ".join(_bar(b.name, r["bars"][b.name]["value"]) for b in bars))
            worst = ", ".join(
                f"{_bar(b.name, e['worst'][b.name])} {'≥' if b.higher else '≤'} {_bar(b.name, b.threshold)}"
                for b in bars
            )
            verdict = "met" if e["all_met"] else "MISSED"
            lines.append(
                f"| {unit} {seeds.NAMES[unit]}{label} | " + " | ".join(cells) + f" | {worst}: {verdict} |"
            )
    return "\n".join(lines)


def _bar(name: str, v) -> str:
    from course_instructor import seeds

    return seeds._fmt_bar(name, math.nan if v is None else v)


def bench_table(bench: dict) -> str:
    lines = ["| | ours s/step | TRL s/step | TRL / ours |", "|---|---|---|---|"]
    for algo, r in bench.items():
        if not isinstance(r, dict) or "ours_s_per_step" not in r:
            continue
        lines.append(
            f"| {algo.upper()} | {r['ours_s_per_step']:.3f} | {r['trl_s_per_step']:.3f} | "
            f"{r['ratio_trl_over_ours']:.2f} |"
        )
    s = bench.get("settings", {})
    lines += [
        "",
        f"{provenance_line(bench)} Tiny model, batch {s.get('batch', '?')}, {s.get('steps', '?')} steps.",
    ]
    return "\n".join(lines)


def grading_summary(g: dict) -> str:
    solved = [s for s in g["submissions"] if s["solved"]]
    stubs = [s for s in g["submissions"] if not s["solved"]]

    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / max(1, len(rows))

    return (
        f"{g['seconds_per_submission']:.1f} s per submission ({len(g['submissions'])} made-up submissions in one "
        f"batch: a solutions copy {mean(solved, 'seconds'):.1f} s, untouched stubs {mean(stubs, 'seconds'):.1f} s; "
        f"of which the sandboxed code grading {mean(g['submissions'], 'code_seconds'):.1f} s, with "
        f"the notebooks executed {g['notebook_jobs']} at a time alongside). {provenance_line(g)}"
    )


QUALITY_ROWS = (
    (
        "VADER-positive fraction of continuations of neutral review prompts",
        "{positive_fraction:.2f}",
        "room for PPO/GRPO/DPO to push it up",
    ),
    (
        "accuracy on held-out sums, greedy / sampled",
        "{arithmetic_accuracy_greedy:.2f} / {arithmetic_accuracy_sampled:.2f}",
        "GRPO improves the sampled accuracy",
    ),
    (
        'format compliance ("Question: …\\nAnswer: …" from a bare question)',
        "{format_compliance:.2f}",
        "SFT takes it up (unit 03)",
    ),
    (
        "distinct-2 of review samples / longest run of one word",
        "{distinct_2:.2f} / {max_word_run}",
        "fluent-looking text, not loops",
    ),
)


def quality_table(q: dict) -> str:
    lines = ["| measure | value | why it matters |", "|---|---|---|"]
    lines += [f"| {what} | {value.format(**q)} | {why} |" for what, value, why in QUALITY_ROWS]
    return "\n".join(lines) + f"\n\n{provenance_line(q)} {q['n']} samples each, seed 0."


def build_info(model: str, assets: Path | None = None) -> dict:
    """A shipped model's build_info.json, with its weights' size in MB."""
    folder = (assets or ASSETS) / model
    info = json.loads((folder / "build_info.json").read_text())
    info["megabytes"] = (folder / "model.safetensors").stat().st_size / 1e6
    return info


def models_table(assets: Path | None = None) -> str:
    lines = [
        "| model | parameters | weights | pretraining | build time | final loss |",
        "|---|---|---|---|---|---|",
    ]
    shipped = (
        ("tiny", "course build-tiny"),
        ("tiny_reason", "course build-tiny --reasoning"),
        ("tiny_tool", "course build-tiny --tools"),
    )
    for name, command in shipped:
        if name == "tiny_tool" and not ((assets or ASSETS) / name / "build_info.json").exists():
            continue  # unit 10's start model, in a checkout that has not built it
        b = build_info(name, assets)
        unit = f"{b['block']} tokens" if b.get("block") else "documents, one per row"
        threads = f", {b['threads']} thread" + ("s" if b["threads"] > 1 else "") if b.get("threads") else ""
        lines.append(
            f"| `course_lib/assets/{name}/` (`{command}`) | {b['params'] / 1e6:.2f} M | {b['megabytes']:.1f} MB "
            f"| {b['steps']} steps × batch {b['batch_size']} ({unit}) | {b['build_seconds'] / 60:.0f} min "
            f"(2 cores{threads}) | {b['final_loss']:.2f} |"
        )
    return "\n".join(lines)


START_ROWS = (
    ("held-out accuracy", "heldout_accuracy"),
    ("format rate", "format_rate"),
    ("answers with a scratchpad", "scratchpad_rate"),
    ("accuracy when forced to start a scratchpad", "accuracy_forced_scratchpad"),
    ("accuracy when forced to answer directly", "accuracy_forced_direct"),
)


def reason_start_table(assets: Path | None = None) -> str:
    start = build_info("tiny_reason", assets)["start"]
    lines = ["| unit 09's start model | value |", "|---|---|"]
    lines += [f"| {what} | {start[key]:.2f} |" for what, key in START_ROWS]
    return "\n".join(lines)


def entropy_table(doc: dict) -> str:
    """Unit 06's entropy-collapse seeds (``python -m course_instructor.entropy_seeds``)."""
    labels = list(doc["runs"])
    lines = [
        "| seed | run | entropy start → final | final reward | positive fraction | distinct-2 |",
        "|---|---|---|---|---|---|",
    ]
    for seed, entry in doc["seeds"].items():
        for label in labels:
            s = entry["summary"][label]
            lines.append(
                f"| {seed} | {label} | {s['entropy_start']:.2f} → {s['entropy_final']:.2f} | "
                f"{s['reward_final']:.2f} | {s['positive_fraction']:.2f} | {s['distinct_2']:.2f} |"
            )
    bar, met = doc["bar"], doc["worst_seed_met"]
    parts = {
        "entropy": f"final entropy ≥ {bar['entropy_ratio_min']}× the collapsing run's",
        "positive_fraction": f"positive fraction at most {bar['positive_fraction_drop_max']} below it",
        "distinct_2": f"distinct-2 ≥ {bar['distinct_2_ratio_min']}× its",
    }
    verdict = "; ".join(f"{text}: {'met' if met[k] else '**missed**'}" for k, text in parts.items())
    config = ", ".join(f"{k} {v}" for k, v in doc["config"].items())
    return "\n".join(lines) + (
        f"\n\nCollapsing run: {config}. Bar for the worst seed (with {labels[-1]} vs {labels[0]}): "
        f"{verdict}. {provenance_line(doc)}"
    )


def estimators_table(doc: dict) -> str:
    """Unit 06's advantage estimators per seed (``python -m course_instructor.estimators``)."""
    names = {"grpo": "GRPO", "rloo": "RLOO", "reinforce_pp": "REINFORCE++"}
    lines = [
        "| seed | estimator | positive-fraction gain | KL to ref | grad variance | grad noise ratio |",
        "|---|---|---|---|---|---|",
    ]
    for seed, runs in doc["seeds"].items():
        for key, r in runs.items():
            lines.append(
                f"| {seed} | {names.get(key, key)} | {r['positive_gain']:+.2f} | {r['kl_to_ref']:.2f} | "
                f"{r['grad_variance']:.3f} | {r['grad_noise_ratio']:.2f} |"
            )
    ratios = ", ".join(f"{v:.2f}" for v in doc["rloo_over_grpo_gain"].values())
    verdict = "met" if doc["met"] else "**missed**"
    return "\n".join(lines) + (
        f"\n\nBar: {doc['bar']}: {verdict} (RLOO gain / GRPO gain per seed: {ratios}). {provenance_line(doc)}"
    )


def overlong_table(doc: dict) -> str:
    """Unit 09's overlong shaping and truncation masking per seed (``python -m course_instructor.overlong_seeds``)."""
    unit = doc["units"]["09_overlong"]
    lines = [
        "| seed | run | truncated (last 3 steps) | held-out accuracy | held-out truncated | length |",
        "|---|---|---|---|---|---|",
    ]
    order = ("plain", "overlong shaping", "masking")
    for entry in unit["seeds"]:
        runs = entry["runs"]
        for label in sorted(runs, key=lambda k: order.index(k) if k in order else len(order)):
            r = runs[label]
            lines.append(
                f"| {entry['seed']} | {label} | {r['truncated_rate']:.2f} | {r['heldout_accuracy']:.2f} | "
                f"{r['heldout_truncated_rate']:.2f} | {r['completion_length']:.1f} |"
            )
    drops = ", ".join(f"{e['bars']['truncation_drop']['value']:.2f}" for e in unit["seeds"])
    verdict = "met" if unit["all_met"] else "**missed**"
    return "\n".join(lines) + (
        f"\n\nBar: {unit['bar']}: {verdict} (drop per seed: {drops}). {provenance_line(doc)}"
    )


def tools_table(doc: dict) -> str:
    """Unit 10's tool-use runs per seed (``python -m course_instructor.tools_seeds``): the env-mask
    run first, then the ablation; start -> end of each held-out metric, both bars per seed."""
    unit = doc["units"]["10_tools"]
    lines = [
        "| seed | run | held-out accuracy | tool-call rate | malformed rate | turns per episode | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    order = ("env mask", "env tokens in the loss")
    for entry in unit["seeds"]:
        runs = entry["runs"]
        for label in sorted(runs, key=lambda k: order.index(k) if k in order else len(order)):
            r = runs[label]
            cells = " | ".join(
                f"{r['start'][k]:.2f} → {r['end'][k]:.2f}"
                for k in ("accuracy", "tool_call_rate", "malformed_rate", "turns_per_episode")
            )
            lines.append(f"| {entry['seed']} | {label} | {cells} | {r['seconds']:.0f} |")
    per_seed = {
        b: ", ".join(f"{e['bars'][b]['value']:+.2f}" for e in unit["seeds"])
        for b in ("main_gain", "ablation_gap")
    }
    met = unit.get("met", {})
    verdict = {b: "met" if met.get(b, unit["all_met"]) else "**missed**" for b in per_seed}
    return "\n".join(lines) + (
        f"\n\nBars: {unit['bar']}. Gain of the env-mask run per seed: {per_seed['main_gain']} "
        f"({verdict['main_gain']}); the env-mask run minus the ablation per seed: "
        f"{per_seed['ablation_gap']} ({verdict['ablation_gap']}). {provenance_line(doc)}"
    )


def blocks(results: Path | None = None) -> dict[str, str]:
    """{marker name: rendered markdown} for docs/benchmarks.md."""
    results = results or RESULTS
    run = load("run", results)
    seed_docs = [load("seeds", results)]
    if (results / FILES["seeds_alt"][0]).exists():
        seed_docs.append(load("seeds_alt", results))
    return {
        "course-run-table": course_run_table(run),
        "course-run-summary": run_summary(run),
        "seeds-table": seeds_table(seed_docs) + "\n\n" + " ".join(provenance_line(d) for d in seed_docs),
        "bench-table": bench_table(load("bench", results)),
        "grading-speed": (
            grading_summary(load("grading", results))
            if (results / FILES["grading"][0]).exists()
            else "No measurement saved yet: run the command above with `--out runs/bench`, then "
            "`course doc-numbers --save-bench runs/bench`."
        ),
        "tiny-quality": quality_table(load("quality", results)),
        "tiny-models": models_table(),
        "tiny-reason-start": reason_start_table(),
        "entropy-collapse": (
            entropy_table(load("entropy", results))
            if (results / FILES["entropy"][0]).exists()
            else "No measurement saved yet: run the command above."
        ),
        "estimators": (
            estimators_table(load("estimators", results))
            if (results / FILES["estimators"][0]).exists()
            else "No measurement saved yet: run the command above."
        ),
        "overlong": (
            overlong_table(load("overlong", results))
            if (results / FILES["overlong"][0]).exists()
            else "No measurement saved yet: run the command above."
        ),
        "tools-seeds": (
            tools_table(load("tools", results))
            if (results / FILES["tools"][0]).exists()
            else "No measurement saved yet: run the command above."
        ),
    }


def unit_seconds(results: Path | None = None) -> dict[str, int | None]:
    """Each unit's seconds in the saved course run; None for a registry unit that no saved run
    has measured yet (a new notebook: its title then shows no time until `course run` has run it)."""
    from course_lib.core import registry

    measured = {
        u: round(e["seconds"]) for u, e in sorted(load("run", results)["units"].items()) if "seconds" in e
    }
    return {u: measured.get(u) for u in sorted(set(registry.NOTEBOOKS) | set(measured))}


def render(text: str, rendered: dict[str, str]) -> str:
    for name, body in rendered.items():
        pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n)(?:.*?\n)?(<!-- /{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"the doc has no <!-- {name} --> ... <!-- /{name} --> block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def registry_text(text: str, seconds: dict[str, int | None]) -> str:
    body = "".join(f'    "{u}": {s},\n' for u, s in sorted(seconds.items()))
    new, n = re.subn(
        r"(UNIT_SECONDS: dict\[str, int \| None\] = \{\n).*?(\})",
        lambda m: m.group(1) + body + m.group(2),
        text,
        count=1,
        flags=re.S,
    )
    if n != 1:
        raise ValueError("course_lib/core/registry.py: no UNIT_SECONDS dict to rewrite")
    return new


def rendered_docs(results: Path | None = None) -> dict[Path, str]:
    """{doc: its text with every block it holds re-rendered}; each block must be in one doc."""
    rendered, out = blocks(results), {}
    for doc in DOCS:
        text = doc.read_text()
        mine = {k: v for k, v in rendered.items() if f"<!-- {k} -->" in text}
        out[doc] = render(text, mine)
        for k in mine:
            rendered.pop(k)
    if rendered:
        raise ValueError(f"no doc has the block(s) {sorted(rendered)}: add <!-- NAME --> ... <!-- /NAME -->")
    return out


def stale(results: Path | None = None) -> list[str]:
    """What disagrees with the results files (empty: the docs are up to date)."""
    problems = [
        str(doc.relative_to(REPO)) for doc, text in rendered_docs(results).items() if text != doc.read_text()
    ]
    if registry_text(REGISTRY.read_text(), unit_seconds(results)) != REGISTRY.read_text():
        problems.append("course_lib/core/registry.py UNIT_SECONDS")
    return problems


def save(kind: str, folder: Path, command: str | None = None) -> Path:
    """Copy a command's results file into docs/results/ with its provenance."""
    name, produced, default_command = FILES[kind]
    src = Path(folder) / produced
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist: run `{default_command}` with --out {folder} first")
    doc = json.loads(src.read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    doc["provenance"] = {
        "date": datetime.date.fromtimestamp(src.stat().st_mtime).isoformat(),
        "commit": commit.stdout.strip() or "?",
        "command": command or default_command,
        "cpus": os.cpu_count(),
        "file": name,
    }
    if kind == "run":
        doc = _merge_run(doc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(_slim(doc), indent=1, sort_keys=True) + "\n")
    return RESULTS / name


def _merge_run(doc: dict) -> dict:
    """A `course run --units ...` replaces only its units in the saved course run (rerun a changed
    notebook with the same --out, so that it finds the earlier units' checkpoints); each unit keeps
    the provenance of the run that measured it."""
    for entry in doc["units"].values():
        entry["measured"] = {k: doc["provenance"][k] for k in ("date", "commit")}
    path = RESULTS / FILES["run"][0]
    if not path.exists():
        return doc
    old = json.loads(path.read_text())
    if (old.get("profile"), old.get("preset")) != (doc.get("profile"), doc.get("preset")):
        return doc
    merged = {**old, **{k: v for k, v in doc.items() if k != "units"}}
    merged["units"] = dict(sorted({**old["units"], **doc["units"]}.items()))
    if set(doc["units"]) != set(old["units"]):
        merged["provenance"]["command"] = (
            f"{doc['provenance']['command']} (units {', '.join(sorted(doc['units']))})"
        )
    return merged


def _slim(doc: dict) -> dict:
    """Drops what only the machine that ran it can use (executed-notebook paths, per-step curves)."""
    for entry in doc.get("units", {}).values():
        if isinstance(entry, dict):
            entry.pop("notebook", None)
            for r in entry.get("seeds", []):
                r.pop("history", None)
    return doc


def _rewrite_metadata_table(seconds: dict[str, int | None]) -> None:
    """docs/instructors.md's exercise metadata table shows UNIT_SECONDS too: redraw it with `seconds`."""
    from course_instructor import nbbuild
    from course_lib.core import registry

    doc = REPO / "docs" / "instructors.md"
    old_table = nbbuild.metadata_table()
    previous = dict(registry.UNIT_SECONDS)
    registry.UNIT_SECONDS.update(seconds)
    try:
        doc.write_text(doc.read_text().replace(old_table, nbbuild.metadata_table()))
    finally:
        registry.UNIT_SECONDS.clear()
        registry.UNIT_SECONDS.update(previous)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="course doc-numbers", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--save-run", metavar="DIR", help="copy DIR/results.json of a `course run` into docs/results/"
    )
    ap.add_argument(
        "--save-seeds", metavar="DIR", help="copy DIR/seeds.json (+ seeds_alt.json) of `course seeds`"
    )
    ap.add_argument(
        "--save-bench",
        metavar="DIR",
        help="copy DIR/bench.json of `course bench` and/or DIR/grading.json of bench_grading",
    )
    ap.add_argument("--save-quality", metavar="DIR", help="copy DIR/tiny_quality.json of `course quality`")
    ap.add_argument("--check", action="store_true", help="only check; exit 1 naming what is stale")
    args = ap.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            print(
                "stale: " + ", ".join(problems) + "\n  run `course doc-numbers`" if problems else "up to date"
            )
            return 1 if problems else 0
        if args.save_run:
            print("saved", save("run", Path(args.save_run)))
        if args.save_seeds:
            print("saved", save("seeds", Path(args.save_seeds)))
            if (Path(args.save_seeds) / FILES["seeds_alt"][1]).exists():
                print("saved", save("seeds_alt", Path(args.save_seeds)))
        if args.save_bench:  # `course bench` writes bench.json, bench_grading grading.json: either or both
            folder = Path(args.save_bench)
            kinds = [k for k in ("bench", "grading") if (folder / FILES[k][1]).exists()]
            for kind in kinds or ["bench"]:  # neither: save() names the commands that write them
                print("saved", save(kind, folder))
        if args.save_quality:
            print("saved", save("quality", Path(args.save_quality)))
        for doc, text in rendered_docs().items():
            doc.write_text(text)
        old = REGISTRY.read_text()
        REGISTRY.write_text(registry_text(old, unit_seconds()))
        _rewrite_metadata_table(unit_seconds())
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"course doc-numbers: {e}", file=sys.stderr)
        return 2
    print("wrote docs/benchmarks.md, docs/instructors.md and registry.UNIT_SECONDS from docs/results/")
    if REGISTRY.read_text() != old:
        print(
            "UNIT_SECONDS changed: run `course build-notebooks` and `course release` (the notebooks show them)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
