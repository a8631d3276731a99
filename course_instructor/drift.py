"""The version-drift tier: does the course still work with the previous minor transformers / TRL?

    python -m course_instructor.drift                   # pins + previous minors, all four pairs
    python -m course_instructor.drift --units 01,06     # fewer notebooks (faster)
    python -m course_instructor.drift --pairs 5.22.2/1.16.0,5.23.0/1.15.0

Not part of the default CI run (it downloads wheels from the package registry and takes minutes).
For each (transformers, trl) pair it makes a throwaway venv that borrows every other package of
this one (:mod:`course_instructor.simenv`), ``pip install``s that pair (pip also fetches what the
pair needs, e.g. another tokenizers), then runs the contract tests (tests/exercises/test_contract.py) and
each unit's notebook once with the solutions in grader mode (``NBGRADER_EXECUTION``: training
shrinks to a few steps). It prints a table and writes ``OUT/drift.json`` and ``OUT/drift.md``.
Exit code 0 when the pinned pair passes (older pairs are reported, not required).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("transformers", "trl")


def pinned(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """{"transformers": "5.23.0", "trl": "1.16.0"} from pyproject's pinned dependencies."""
    import tomllib

    deps = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", dep.strip())
        if m and m.group(1).lower() in PACKAGES:
            pins[m.group(1).lower()] = m.group(2)
    missing = set(PACKAGES) - set(pins)
    if missing:
        raise ValueError(f"pyproject.toml pins no exact version of {sorted(missing)}")
    return pins


def _key(version: str) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.+-]", version))


def available(package: str) -> list[str]:
    """Versions pip can get (``pip index versions``); RuntimeError when the registry cannot be reached."""
    r = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", package],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"Available versions: (.*)", r.stdout)
    if r.returncode or not m:
        raise RuntimeError(
            f"pip cannot list the versions of {package}: {(r.stderr or r.stdout).strip()[-300:]}"
        )
    return [v.strip() for v in m.group(1).split(",") if re.fullmatch(r"[0-9.]+", v.strip())]


def previous_minor(version: str, versions: list[str]) -> str | None:
    """The newest release of the minor version before `version`'s (5.23.0 -> newest 5.22.x)."""
    major, minor = _key(version)[:2]
    older = [v for v in versions if _key(v)[:2] < (major, minor)]
    if not older:
        return None
    prev = max(_key(v)[:2] for v in older)
    return max((v for v in older if _key(v)[:2] == prev), key=_key)


def default_pairs(pins: dict[str, str]) -> list[tuple[str, str]]:
    t_prev = previous_minor(pins["transformers"], available("transformers"))
    r_prev = previous_minor(pins["trl"], available("trl"))
    ts = [pins["transformers"]] + ([t_prev] if t_prev else [])
    rs = [pins["trl"]] + ([r_prev] if r_prev else [])
    return [(t, r) for t in ts for r in rs]


KERNEL_PROBE = """
import sys, nbformat
from course_instructor.execute import execute_notebook
nb = nbformat.v4.new_notebook()
code = "import transformers, trl; print(transformers.__version__, trl.__version__)"
nb.cells = [nbformat.v4.new_code_cell(code)]
nbformat.write(nb, sys.argv[1])
done, _ = execute_notebook(sys.argv[1], solutions=False, timeout=300)
print(done.cells[0].outputs[0]["text"])
"""


def _tail(text: str, n: int = 400) -> str:
    return text.strip()[-n:]


def check_pair(transformers: str, trl: str, work: Path, units: list[str] | None, pins: dict) -> dict:
    """Install one pair into a fresh borrowed venv and run the contract tests + the notebooks."""
    from course_instructor.simenv import clean_env, make_env

    row: dict = {
        "transformers": transformers,
        "trl": trl,
        "pinned": (transformers, trl) == (pins["transformers"], pins["trl"]),
    }
    venv = work / f"venv-{transformers}-{trl}"
    shutil.rmtree(venv, ignore_errors=True)
    py = make_env(venv, first=[REPO])  # the repository importable, as its editable install is
    env = clean_env(
        MPLBACKEND="Agg",
        COURSE_PROFILE="tiny",
        JUPYTER_DATA_DIR=str(venv / "jupyter"),
        JUPYTER_PATH=str(venv / "jupyter"),
    )
    t0 = time.time()
    if not row["pinned"]:
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", f"transformers=={transformers}", f"trl=={trl}"],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
        if r.returncode:
            row.update(install="failed", detail=_tail(r.stderr or r.stdout))
            return row
    probe = subprocess.run(
        [str(py), "-c", "import transformers, trl; print(transformers.__version__, trl.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=venv,
    )
    row["install"] = (
        "ok"
        if probe.stdout.split() == [transformers, trl]
        else f"got {probe.stdout.strip() or probe.stderr[-200:]}"
    )
    if row["install"] != "ok":
        return row
    # the notebooks' kernel must run this venv's versions too (not a kernelspec from elsewhere)
    kernel = subprocess.run(
        [str(py), "-c", KERNEL_PROBE, str(venv / "probe.ipynb")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    if kernel.stdout.split()[-2:] != [transformers, trl]:
        row["install"] = f"kernel runs other versions: {_tail(kernel.stdout + kernel.stderr, 200)}"
        return row
    r = subprocess.run(
        [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/exercises/test_contract.py"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        cwd=REPO,
    )
    summary = (
        re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", r.stdout, re.M) or [_tail(r.stdout, 120)]
    )[-1]
    row["contract"] = {"ok": r.returncode == 0, "summary": summary}
    if units == []:  # --units none: the contract tests only
        row["seconds"] = round(time.time() - t0)
        return row
    out = work / f"run-{transformers}-{trl}"
    args = [str(py), "-m", "course_instructor.runner", "--out", str(out), "--timeout", "900"]
    if units:
        args += ["--units", ",".join(units)]
    subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=7200,
        cwd=REPO,
        env={**env, "NBGRADER_EXECUTION": "autograde"},
    )
    results = (
        json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {"units": {}}
    )
    row["units"] = {
        u: ("ok" if "error" not in e else e["error"].splitlines()[0][:160])
        for u, e in results["units"].items()
    }
    row["seconds"] = round(time.time() - t0)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| transformers | trl | install | contract tests | notebooks (grader mode) | s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        units = r.get("units") or {}
        ok = [u for u, v in units.items() if v == "ok"]
        failed = [f"{u}: {v}" for u, v in units.items() if v != "ok"]
        nb = (
            (f"{len(ok)}/{len(units)} pass" + (f" (failed {'; '.join(failed)})" if failed else ""))
            if units
            else "—"
        )
        contract = r["contract"]["summary"] if "contract" in r else "—"
        install = r.get("install", "—") + (f": {r['detail'][-160:]}" if r.get("detail") else "")
        lines.append(
            f"| {r['transformers']}{' (pin)' if r['pinned'] else ''} | {r['trl']} | {install} | "
            f"{contract} | {nb} | {r.get('seconds', '—')} |"
        )
    return "\n".join(lines)


def passed(row: dict) -> bool:
    return (
        row.get("install") == "ok"
        and row.get("contract", {}).get("ok", False)
        and ("units" not in row or (bool(row["units"]) and all(v == "ok" for v in row["units"].values())))
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m course_instructor.drift", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--pairs",
        default=None,
        help="comma-separated TRANSFORMERS/TRL pairs (default: pins and previous minors, all combinations)",
    )
    ap.add_argument(
        "--units", default=None, help="comma-separated units (default: all; none: the contract tests only)"
    )
    ap.add_argument("--out", default=str(REPO / "runs" / "drift"), help="output folder (default runs/drift)")
    args = ap.parse_args(argv)
    pins = pinned()
    try:
        pairs = [tuple(p.split("/")) for p in args.pairs.split(",")] if args.pairs else default_pairs(pins)
    except (RuntimeError, ValueError) as e:
        print(
            f"drift: {e}\nThe drift tier needs the package registry (pip cannot get older versions here).",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    units = None if not args.units else [] if args.units == "none" else args.units.split(",")
    rows = []
    for t, r in pairs:
        print(f"== transformers {t} · trl {r}", flush=True)
        rows.append(check_pair(t, r, out, units, pins))
        (out / "drift.json").write_text(json.dumps(rows, indent=1))
        print(f"   {'pass' if passed(rows[-1]) else 'FAIL'}", flush=True)
    text = table(rows)
    (out / "drift.md").write_text(text + "\n")
    print(text)
    pinned_rows = [row for row in rows if row["pinned"]]
    return 0 if all(passed(row) for row in pinned_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
