"""Finding, unpacking and naming submissions (zips from `course submit`, or folders).

Only what grading uses is taken from a submission, by name: ``exercises/NN_*.ipynb``,
``course_lib/<name>.py`` and ``SUBMISSION.json`` (optionally under one top folder). Anything else
-- absolute or ``..`` paths (zip-slip), symlinks, odd names, nested folders -- is skipped, and the
bytes actually decompressed are counted (a zip bomb stops at :data:`MAX_UNZIPPED`)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import tempfile
import zipfile
from pathlib import Path

MAX_UNZIPPED = 200 * 2**20
MAX_FILE = 50 * 2**20
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
_WANTED = re.compile(rf"^(?:{_NAME}/)?(?:exercises/{_NAME}\.ipynb|course_lib/{_NAME}\.py|SUBMISSION\.json)$")


class BadSubmission(ValueError):
    """A submission that cannot be read (corrupt or oversized archive, undecodable names)."""


def find_submissions(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file() or (path / "exercises").is_dir() or (path / "course_lib").is_dir():
        return [path]
    return sorted(
        p for p in path.iterdir() if (p.is_dir() or p.suffix == ".zip") and not p.name.startswith(".")
    )


def batch_seed(subs: list[Path]) -> int:
    """The hidden cases' seed for a batch when none is given: drawn from the batch itself (a hash
    of every submission's name and bytes). Each batch gets new cases, so a resubmission cannot
    reuse a table of earlier answers; the same folder gives the same seed (shards of one batch
    agree, a re-run reproduces), and it is recorded in grades.json (``--seed`` repeats it)."""
    h = hashlib.sha256(b"course-autograde-seed-v1")
    for sub in sorted(Path(s) for s in subs):
        h.update(sub.name.encode("utf-8", "replace") + b"\0")
        files = [sub] if sub.is_file() else sorted(p for p in sub.rglob("*") if p.is_file())
        for f in files:
            if f.is_symlink():
                continue
            h.update(f.relative_to(sub).as_posix().encode("utf-8", "replace") if f != sub else b"")
            with open(f, "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
    return int.from_bytes(h.digest()[:4], "big") % (2**31 - 1)


def problems_of(unpacked: Path) -> list[str]:
    """One clear line per way the unpacked submission is incomplete (empty, no course_lib/ folder,
    no notebooks); [] for a complete one."""
    cl = unpacked / "course_lib"
    nbs = list((unpacked / "exercises").glob("*.ipynb")) if (unpacked / "exercises").is_dir() else []
    nbs = nbs or list(unpacked.glob("*.ipynb"))
    has_code = cl.is_dir() and any(cl.glob("*.py"))
    if not has_code and not nbs:
        return [
            "the submission is empty: it holds none of the files grading reads (exercises/NN_*.ipynb, "
            "course_lib/*.py); make it with `course submit`"
        ]
    out = []
    if not has_code:
        out.append(
            "the submission has no course_lib/*.py: no code exercise could be graded (0 code points); "
            "make it with `course submit`, which packs your course_lib/"
        )
    if not nbs:
        out.append("the submission has no notebooks (exercises/NN_*.ipynb): written answers cannot be graded")
    return out


def notebook_problem(path: Path) -> str | None:
    """None for a readable notebook, else one line saying what is wrong with it."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 - JSON, schema, encoding, version: all mean "unreadable"
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        return (
            f"exercises/{path.name} is not a readable notebook ({type(e).__name__}{': ' + why if why else ''}): "
            "it was not executed and its written answers cannot be graded; the other notebooks were"
        )
    return None


def wanted(name: str) -> bool:
    """Is this relative path one that grading reads?"""
    return bool(_WANTED.match(name)) and ".." not in name.split("/")


def _copy_capped(src, dst: Path, budget: int) -> int:
    """Copy at most `budget` bytes (and MAX_FILE per file); returns the bytes copied."""
    n = 0
    with open(dst, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            n += len(block)
            if n > min(budget, MAX_FILE):
                raise BadSubmission(
                    f"the submission is larger than {MAX_UNZIPPED // 2**20} MB unpacked "
                    f"(or one file larger than {MAX_FILE // 2**20} MB)"
                )
            out.write(block)
    return n


def _without_utf8_flags(data: bytes) -> bytes:
    """The zip's bytes with the "names are UTF-8" flag cleared in its central directory, so that a
    name that is not valid UTF-8 reads as cp437 (and is then skipped: not a name grading reads)
    instead of making the whole archive unreadable. Raises ValueError if the layout is odd."""
    end = data.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(data):
        raise ValueError("no end of central directory")
    n, size, offset = struct.unpack("<HII", data[end + 10 : end + 20])
    out = bytearray(data)
    pos = offset
    for _ in range(n):
        if out[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > offset + size:
            raise ValueError("malformed central directory")
        out[pos + 9] &= 0xFF ^ 0x08  # flag bit 11: bit 3 of the flags' high byte (offset 8, little-endian)
        name_len, extra_len, comment_len = struct.unpack("<HHH", out[pos + 28 : pos + 34])
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def _extract(z: zipfile.ZipFile, dest: Path, budget: int) -> int:
    for info in z.infolist():
        is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
        if info.is_dir() or is_link or not wanted(info.filename):
            continue
        target = dest / info.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src:
            budget -= _copy_capped(src, target, budget)
    return budget


def unpack(sub: Path, dest: Path, notes: list[str] | None = None) -> Path:
    """Copy/extract the files grading uses into dest; returns the folder holding them. `notes`
    collects one line per thing skipped that the student should hear about (names that are not
    UTF-8). Raises BadSubmission for an archive that cannot be read at all."""
    dest.mkdir(parents=True, exist_ok=True)
    budget = MAX_UNZIPPED
    if sub.is_file():
        try:
            try:
                with zipfile.ZipFile(sub) as z:
                    budget = _extract(z, dest, budget)
            except UnicodeDecodeError as e:
                try:
                    fixed = _without_utf8_flags(sub.read_bytes())
                except ValueError:
                    raise BadSubmission(
                        f"the zip has a file name that is not valid UTF-8 ({e.reason})"
                    ) from e
                with zipfile.ZipFile(io.BytesIO(fixed)) as z:
                    odd = [i.filename for i in z.infolist() if not i.filename.isascii()]
                    budget = _extract(z, dest, budget)
                if notes is not None:
                    notes.append(
                        f"the zip has {len(odd)} file name(s) that are not valid UTF-8 (e.g. {odd[0][:60]!r}): "
                        "skipped; the other files were graded"
                        if odd
                        else "the zip has a file name that is not valid UTF-8: skipped"
                    )
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
            raise BadSubmission(f"the zip cannot be read ({type(e).__name__}: {e})") from e
    else:
        for p in sorted(sub.rglob("*")):
            rel = p.relative_to(sub).as_posix()
            if p.is_symlink() or not p.is_file() or not wanted(rel):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(p, "rb") as src:
                budget -= _copy_capped(src, dest / rel, budget)
    # a zip may hold one top folder
    if not (dest / "exercises").exists() and not (dest / "course_lib").exists():
        subdirs = [p for p in dest.iterdir() if p.is_dir()]
        if len(subdirs) == 1:
            return subdirs[0]
    return dest


def student_id_of(sub: Path, unpacked: Path) -> str:
    """SUBMISSION.json's student_id, else the file / folder name without 'submission-'."""
    from course_lib.submit import clean_id

    meta = unpacked / "SUBMISSION.json"
    sid = None
    if meta.is_file() and meta.stat().st_size < 10000:
        try:
            sid = json.loads(meta.read_text()).get("student_id")
        except (ValueError, AttributeError):
            sid = None
    if not isinstance(sid, str) or not sid.strip():
        sid = re.sub(r"^submission-", "", sub.stem if sub.is_file() else sub.name)
    try:
        return clean_id(sid)
    except ValueError:
        return fallback_id(sub)


def fallback_id(sub: Path) -> str:
    """An id from the file name alone (for submissions that cannot be read), cleaned like any id."""
    from course_lib.submit import clean_id

    try:
        return clean_id(sub.stem)
    except ValueError:
        return "unknown"


def identify(sub: Path) -> str:
    """The id a submission claims: :func:`student_id_of` after unpacking it the way grading does
    (into a scratch folder, deleted at once), :func:`fallback_id` if it cannot be read."""
    with tempfile.TemporaryDirectory(prefix="course_id_") as tmp:
        try:
            return student_id_of(sub, unpack(sub, Path(tmp) / "sub"))
        except Exception:  # noqa: BLE001 - whatever breaks the unpacking, grading names it by its file
            return fallback_id(sub)


CONFLICT = "-conflict-"


def _tags(names: list[str]) -> list[str]:
    """A short hash of each (distinct) file name, lengthened until no two of them share one."""
    full = [hashlib.sha256(n.encode("utf-8", "surrogateescape")).hexdigest() for n in names]
    k = 8
    while len({h[:k] for h in full}) < len(full):
        k += 4
    return [h[:k] for h in full]


def assign_ids(claims: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The id each submission of a batch is graded under, decided for the whole batch before any
    grading, so that it depends on the set of submissions and not on the order of the files.

    `claims`: {file name: the id it claims (:func:`identify`)}. Returns ({file name: id},
    {contested id: the sorted file names claiming it}). An id claimed by one submission is its id.
    An id claimed by two or more goes to NONE of them (an impostor must not get the student's row,
    nor push the student aside): each is graded under ``<id>-conflict-<hash of its file name>``,
    and the contested id is reported for the instructor to settle by hand. A claimed id never
    keeps the ``-conflict-`` marker (it becomes ``-conflict_``), so no claim can equal an id a
    conflict produces, and those differ from each other (distinct names, distinct hashes)."""
    holders: dict[str, list[str]] = {}
    for name, sid in sorted(claims.items()):
        holders.setdefault(sid.replace(CONFLICT, "-conflict_"), []).append(name)
    ids: dict[str, str] = {}
    conflicts: dict[str, list[str]] = {}
    for sid, names in sorted(holders.items()):
        if len(names) == 1:
            ids[names[0]] = sid
            continue
        conflicts[sid] = names
        for name, tag in zip(names, _tags(names)):
            ids[name] = f"{sid}{CONFLICT}{tag}"
    return ids, conflicts
