"""Make what a submission produced inert before anything renders it.

Formgrader shows the autograded notebooks in the instructor's logged-in Jupyter session, and the
feedback pages go to students: an HTML, JavaScript or SVG output, or raw HTML in a markdown
answer, would run there as the instructor (or the student's classmate). So every notebook the
grader stores for them goes through :func:`notebook`:

* outputs (which come from the sandbox as untrusted JSON): stream and error outputs are kept as
  text (renderers escape text); of a rich output only ``text/plain`` and PNG / JPEG images with
  plain base64 data are kept; any other type (``text/html``, ``application/javascript``,
  ``image/svg+xml``, ``text/markdown``, ``text/latex``, widgets, ...) is dropped, with a visible
  note in the plain text saying which types were. Output metadata keeps only image sizes;
* markdown and raw cells that are not the instructor's own (not byte-identical to a cell of the
  source notebook): every ``<`` that could open a tag, comment or declaration is escaped (so no
  tag of any kind survives: ``<script>``, ``<img onerror>``, ``<svg>``, ``<iframe>``), and a link
  whose destination is not http(s), mailto or relative -- as the renderer decodes it: entities,
  backslash escapes and spaces included -- points nowhere; attachments other than PNG / JPEG
  are dropped;
* notebook metadata: widget state is dropped (it is rendered by the widget manager's JavaScript).

Escaping rather than stripping keeps a student's text readable: ``<b>`` reads ``<b>``, and
``a < b`` is left as it is.
"""

from __future__ import annotations

import html
import re

import nbformat

REMOVED_NOTE = "[grader: {types} not shown -- a submission's HTML, JavaScript and SVG are never rendered]"
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
# a link destination: after "](" or a reference definition's "]:" (spaces, newlines allowed)
_LINK = re.compile(r"(\]\(|\]:)(\s*)([^\s)]*)")
SAFE_SCHEMES = ("http", "https", "mailto")
# what can open a tag, a comment or a declaration in HTML ("a < b" and "x<3" cannot)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
MAX_IMAGE_CHARS = 8 * 2**20
MAX_TEXT_CHARS = 2 * 2**20


def _text(x) -> str:
    if isinstance(x, list):
        x = "".join(s for s in x if isinstance(s, str))
    return x[:MAX_TEXT_CHARS] if isinstance(x, str) else ""


def _image(x) -> str | None:
    x = _text(x) if isinstance(x, list) else x
    if isinstance(x, str) and len(x) < MAX_IMAGE_CHARS and _BASE64.match(x):
        return "".join(x.split())
    return None


def output(o) -> dict | None:
    """One output as an inert nbformat output, or None when nothing of it can be kept."""
    if not isinstance(o, dict):
        return None
    kind = o.get("output_type")
    if kind == "stream":
        name = o.get("name") if o.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_text(o.get("text", "")))
    if kind == "error":
        tb = o.get("traceback")
        return nbformat.v4.new_output(
            "error",
            ename=_text(o.get("ename", ""))[:1000],
            evalue=_text(o.get("evalue", ""))[:10000],
            traceback=[_text(t) for t in tb[:1000]] if isinstance(tb, list) else [],
        )
    if kind not in ("display_data", "execute_result"):
        return None
    data = o.get("data") if isinstance(o.get("data"), dict) else {}
    kept: dict = {}
    if "text/plain" in data:
        kept["text/plain"] = _text(data["text/plain"])
    for mime in ("image/png", "image/jpeg"):
        img = _image(data.get(mime))
        if img is not None:
            kept[mime] = img
    dropped = sorted(str(k)[:100] for k in data if k not in kept)
    if dropped:  # said where the instructor looks, next to the plain-text form if there is one
        note = REMOVED_NOTE.format(types=", ".join(dropped))
        kept["text/plain"] = f"{kept['text/plain']}\n{note}" if kept.get("text/plain") else note
    if not kept:
        return None
    meta = {}
    src_meta = o.get("metadata") if isinstance(o.get("metadata"), dict) else {}
    for mime in ("image/png", "image/jpeg"):
        m = src_meta.get(mime)
        if mime in kept and isinstance(m, dict):
            size = {k: m[k] for k in ("width", "height") if type(m.get(k)) in (int, float)}
            if size:
                meta[mime] = size
    if kind == "execute_result":
        count = o.get("execution_count")
        return nbformat.v4.new_output(
            "execute_result", data=kept, metadata=meta, execution_count=count if type(count) is int else None
        )
    return nbformat.v4.new_output("display_data", data=kept, metadata=meta)


def outputs(raw) -> list:
    """A code cell's outputs from the sandbox, inert (see the module docstring)."""
    if not isinstance(raw, list):
        return []
    return [x for x in (output(o) for o in raw[:10000]) if x is not None]


def _safe_link(m: re.Match) -> str:
    """A link destination as a renderer will read it (entities decoded, backslash escapes, spaces
    and controls gone); any scheme but http(s) / mailto becomes a dead anchor."""
    norm = re.sub(r"[\x00-\x20\\<]", "", html.unescape(html.unescape(m.group(3)))).lower()
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", norm)
    if scheme and scheme.group(1) not in SAFE_SCHEMES:
        return m.group(1) + m.group(2) + "#link-removed-by-grader"
    return m.group(0)


def text(source: str) -> str:
    """Markdown (or raw) text with no HTML tag left and no link but http(s), mailto or relative."""
    return _LINK.sub(_safe_link, _TAG_START.sub("&lt;", source))


def notebook(nb, instructor_sources: set[str] = frozenset()):
    """`nb` made inert in place (and returned): its outputs, the markdown / raw cells that are not
    one of `instructor_sources` (the source notebook's cells), attachments and widget state."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = outputs(cell.get("outputs", []))
            continue
        if cell.get("source", "") not in instructor_sources:
            cell.source = text(cell.get("source", ""))
        att = cell.get("attachments")
        if isinstance(att, dict):
            cell.attachments = {
                str(k): {m: v for m, v in d.items() if m in ("image/png", "image/jpeg") and _image(v)}
                for k, d in att.items()
                if isinstance(d, dict)
            }
            if not any(cell.attachments.values()):
                del cell["attachments"]
    return nb
