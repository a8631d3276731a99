"""Feedback pages: a graded notebook as HTML with the hidden tests removed and the grader's verdict
per exercise. Everything that came from the student -- cell sources, printed output, errors,
exception messages in the verdicts -- is HTML-escaped; markdown is rendered with raw HTML
escaped and unsafe links neutralised; only PNG images whose data is plain base64 are kept.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat

HIDDEN_MARK = "### BEGIN HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}pre{background:#f6f6f6;padding:.5em;"
    "white-space:pre-wrap}pre.err{background:#fdd}pre.grader{background:#eef}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}"
)


def _markdown(text: str) -> str:
    import mistune

    return mistune.create_markdown(escape=True)(text)


def _pre(text: str, cls: str = "") -> str:
    return f"<pre{f' class={cls}' if cls else ''}>{html.escape(_ANSI.sub('', text))}</pre>"


def _output(o: dict) -> str:
    kind = o.get("output_type")
    if kind == "stream":
        return _pre(str(o.get("text", "")))
    if kind == "error":
        return _pre(
            "\n".join(map(str, o.get("traceback") or [f"{o.get('ename')}: {o.get('evalue')}"])), "err"
        )
    data = o.get("data", {}) if kind in ("execute_result", "display_data") else {}
    png = data.get("image/png")
    if isinstance(png, str) and _BASE64.match(png) and len(png) < 8 * 2**20:
        return f'<img alt="figure" src="data:image/png;base64,{"".join(png.split())}">'
    if "text/plain" in data:
        text = data["text/plain"]
        return _pre("".join(text) if isinstance(text, list) else str(text))
    return ""


def notebook_html(nb, title: str) -> str:
    """The whole page (sources, outputs, verdicts) with every piece of text escaped."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
    ]
    for cell in nb.cells:
        src = cell.get("source", "")
        if cell.cell_type == "markdown":
            parts.append(_markdown(src))
        elif cell.cell_type == "code":
            if src.strip():
                parts.append(_pre(src, "code"))
            parts += [_output(o) for o in cell.get("outputs", [])]
        else:
            parts.append(_pre(src))
    return "\n".join(parts + ["</body></html>"])


def verdict_lines(s: dict) -> list[str]:
    """The grader's verdict on one code exercise (a score dict of hidden.score): the
    same text in the HTML feedback, the Gradescope results and the JUnit report."""
    lines = [
        f"Grader: {s['passed']}/{s['total']} hidden cases passed -> {s['score']:g}/{s['max_score']:g} points"
    ]
    lines += [f"  {m}" for m in s["failures"][:3]]
    # a grader-side error (the sandbox did not start) is the instructor's to read, not the student's
    if s.get("error") and not s.get("grader_side") and s["error"] not in s["failures"][:3]:
        lines.append(f"  {s['error']}")
    return lines


def sanitize_for_feedback(nb, cells_by_id: dict, code_scores: dict, status: str):
    """Strip hidden tests (code and output) from test cells; add the grader's verdicts."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if cell.cell_type == "code" and (HIDDEN_MARK in cell.source or gid in cells_by_id):
            cell.source = cell.source.split(HIDDEN_MARK)[0].rstrip()
            info = cells_by_id.get(gid)
            lines = []
            if info and info["kind"] == "code":
                s = code_scores.get(info["exercise"])
                if s:
                    lines = verdict_lines(s)
            cell.outputs = (
                [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
                if lines
                else []
            )
        elif HIDDEN_MARK in cell.get("source", ""):
            cell.source = cell.source.split(HIDDEN_MARK)[0]
            if cell.cell_type == "code":
                cell.outputs = []
    return nb


def summary_html(cells_by_id: dict, code_scores: dict, status: str) -> str:
    """The verdict table at the top of each page (escaped)."""
    rows = []
    for gid, info in cells_by_id.items():
        if info["kind"] == "code" and info["exercise"] in code_scores:
            s = code_scores[info["exercise"]]
            rows.append((info["exercise"], f"{s['score']:g}", f"{s['max_score']:g}"))
        elif info["kind"] == "manual":
            rows.append((f"{gid} (written answer)", "pending", f"{info['max_score']:g}"))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in rows)
    return (
        f"<h1>Feedback</h1><p>{html.escape(status)}</p><table><tr><th>exercise</th><th>score</th>"
        f"<th>max</th></tr>{body}</table>"
    )


def write_feedback(nb_path: Path, out_html: Path, cells: list[dict], code_scores: dict, status: str) -> None:
    """out_html = the feedback page of one graded (or submitted) notebook."""
    nb = nbformat.read(str(nb_path), as_version=4)
    mine = {c["grade_id"]: c for c in cells if c["notebook"] == nb_path.stem}
    nb = sanitize_for_feedback(nb, mine, code_scores, status)
    page = notebook_html(nb, f"Feedback: {nb_path.stem}")
    page = page.replace("<body>", "<body>" + summary_html(mine, code_scores, status), 1)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(page)


def message_page(status: str, message: str) -> str:
    """A page for what could not be shown as a notebook (an unreadable notebook or submission):
    the status and one line saying why, escaped."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback</title><style>{STYLE}</style>"
        f"</head><body><h1>Feedback</h1><p>{html.escape(status)}</p>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
