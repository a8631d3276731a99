"""The first (set-up) cell of every exercise notebook, and what `course release --repo-url` fills in.

Locally the cell moves to the course folder and imports course_lib. On Google Colab it first
installs the course, in plain Python (subprocess, no ``!`` magics), checking every step and
stopping with one message (what failed, what to do):

1. ``KEEP_WORK_ON_DRIVE = True``: mount Google Drive and keep the course folder there.
2. Get the course: ``git clone COURSE_REPO_URL`` (written into the cell by
   ``course release --repo-url URL``), or, without a URL, unpack the ``rl-course.zip`` that the
   student uploaded to the session (or to My Drive). The unpacked folder records the zip's sha256
   and each file's (``rl-course/.unpacked.json``): a different zip uploaded later (the instructor's
   update) is noticed and unpacked over the folder, except the files the student changed since
   the last unpack (their ``course_lib`` work), whose new version goes next to them as NAME.new.
3. ``pip install`` only the ``colab`` extra of pyproject.toml (what Colab lacks); Colab's torch,
   numpy, matplotlib and Jupyter stack stay. What pip writes to stderr is shown even when it
   succeeds (its dependency-conflict warnings). The runtime restarts only if pip replaced a
   package that was already imported, and the cell says so (flushed before the process ends).
4. ``chdir`` into the course folder and put it on the path (no install of the course itself).
"""

from __future__ import annotations

import re

REPO_URL_LINE = 'COURSE_REPO_URL = ""'
_URL_RE = re.compile(r"(https?|ssh|git|file)://[^\s\"'\\]+|git@[\w.-]+:[^\s\"'\\]+")
_GITHUB_RE = re.compile(r"(?:https://github\.com/|git@github\.com:)([\w.-]+)/([\w.-]+?)(?:\.git)?/?")

_SETUP = """\
# Set-up (run first). Locally: use the `rl-course` kernel. On Google Colab this cell installs the course.
COURSE_REPO_URL = ""         # Colab: the course's git address ("" = use the rl-course.zip you upload)
KEEP_WORK_ON_DRIVE = False   # Colab: True keeps the course folder, and your course_lib edits, on Google Drive
import os, sys
if "google.colab" in sys.modules and not os.path.isdir("course_lib"):
    import glob, hashlib, json, shutil, subprocess, tempfile, time, zipfile
    from importlib import metadata

    def _fail(what, todo, detail=""):
        detail = detail.strip()[-1500:]
        raise RuntimeError(f"course set-up failed: {what}\\n{detail}\\nWhat to do: {todo}") from None

    def _run(what, cmd, todo):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            _fail(what, todo, r.stderr + r.stdout)
        return r

    def _sha(path):
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    def _files(folder):                                  # relative path -> sha256 of every file
        return {os.path.relpath(os.path.join(d, n), folder): _sha(os.path.join(d, n))
                for d, _, names in os.walk(folder) for n in names
                if n != ".unpacked.json" and not n.endswith(".new")}

    def _unpack(zip_path, course):
        # Unpack over `course`, keeping every file changed since the last unpack (the student's
        # work): the zip's version of such a file goes next to it as NAME.new. Then record what
        # was unpacked, so that the next different zip is noticed.
        try:
            with open(f"{course}/.unpacked.json") as f:
                was = json.load(f).get("files", {})
        except (OSError, ValueError):
            was = {}
        tmp = tempfile.mkdtemp()
        try:
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(tmp)
        except (OSError, zipfile.BadZipFile) as e:
            _fail(f"cannot unpack {zip_path}", "upload rl-course.zip again (it may be incomplete)", str(e))
        new = f"{tmp}/rl-course"
        if not os.path.isdir(f"{new}/course_lib"):
            _fail(f"{zip_path} holds no rl-course/course_lib", "upload the rl-course.zip of your course")
        kept, incoming = [], _files(new)
        for rel, sha in sorted(incoming.items()):
            dest = os.path.join(course, rel)
            if os.path.exists(dest) and _sha(dest) not in (sha, was.get(rel)):
                kept.append(rel)
                dest += ".new"
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(new, rel), dest)
        shutil.rmtree(tmp, ignore_errors=True)
        with open(f"{course}/.unpacked.json", "w") as f:
            json.dump({"zip": _sha(zip_path), "files": incoming}, f)  # the zip's files only: no checkpoints
        return kept

    base = os.getcwd()                                   # /content on Colab
    if KEEP_WORK_ON_DRIVE:
        from google.colab import drive
        drive.mount(f"{base}/drive")
        base = os.environ["COURSE_DRIVE_DIR"] = f"{base}/drive/MyDrive"
    course = f"{base}/rl-course"
    if not os.path.isdir(f"{course}/course_lib") and COURSE_REPO_URL:
        _run(f"git clone {COURSE_REPO_URL}", ["git", "clone", "-q", "--depth", "1", COURSE_REPO_URL, course],
             f"check COURSE_REPO_URL with your instructor (and delete {course} if it exists), "
             "or set COURSE_REPO_URL = \\"\\" and upload rl-course.zip")
    elif not COURSE_REPO_URL:
        zips = sorted(set(glob.glob(f"{os.getcwd()}/rl-course*.zip") + glob.glob(f"{base}/rl-course*.zip")),
                      key=os.path.getmtime)
        if not zips and not os.path.isdir(f"{course}/course_lib"):
            _fail("no course to install (COURSE_REPO_URL is empty and there is no rl-course.zip)",
                  f"upload rl-course.zip from your instructor into {base} (Files panel, left), "
                  "then run this cell again")
        if not os.path.isdir(f"{course}/course_lib"):
            _unpack(zips[-1], course)
        elif zips:
            try:
                with open(f"{course}/.unpacked.json") as f:
                    unpacked = json.load(f).get("zip")
            except (OSError, ValueError):
                unpacked = None
            if _sha(zips[-1]) != unpacked:
                kept = _unpack(zips[-1], course)
                print(f"{zips[-1]} is not the zip {course} was unpacked from: unpacked it there"
                      + (f"; kept your changed files {', '.join(kept)} -- the zip's version of each is "
                         "next to it as NAME.new: compare them and copy over what you need" if kept else ""))
    try:
        import tomllib
        with open(f"{course}/pyproject.toml", "rb") as f:
            need = tomllib.load(f)["project"]["optional-dependencies"]["colab"]
    except (ImportError, OSError, KeyError, ValueError) as e:
        _fail("cannot read the colab package list in pyproject.toml", "use Python 3.11+", repr(e))
    before = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    pip = _run("pip install " + " ".join(need), [sys.executable, "-m", "pip", "install", "-q", *need],
               "read pip's message above, then run this cell again")
    if pip.stderr.strip():                               # e.g. dependency conflicts, with exit status 0
        print("pip installed the course's packages and said:\\n" + pip.stderr.strip()[-3000:])
    changed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()
               if before.get((d.metadata["Name"] or "").lower(), d.version) != d.version}
    loaded = sorted(m for m, ds in metadata.packages_distributions().items()
                    if m in sys.modules and changed & {x.lower() for x in ds})
    if loaded:
        print(f"pip replaced {', '.join(sorted(changed))}, already imported here ({', '.join(loaded)}): "
              "restarting the runtime. When it reconnects, run this cell again.")
        # SIGKILL ends the process at once: whatever is still buffered would be lost, and with it
        # the one line that tells the student what to do.
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(1)                                    # let the kernel send it to the browser
        os.kill(os.getpid(), 9)
    os.chdir(course)
    sys.path.insert(0, course)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (course, os.environ.get("PYTHONPATH")) if p)
    print(f"course installed in {course}" + ("" if KEEP_WORK_ON_DRIVE else
          " (deleted with the runtime: KEEP_WORK_ON_DRIVE = True keeps your course_lib edits)"))
elif os.path.basename(os.getcwd()) in ("notebooks", "exercises"):
    os.chdir("..")                # run from the course root so course_lib/ is importable
    sys.path.insert(0, os.getcwd())
get_ipython().run_line_magic("load_ext", "autoreload")
get_ipython().run_line_magic("autoreload", "2")
get_ipython().run_line_magic("matplotlib", "inline")
import course_lib
profile = course_lib.setup_notebook(unit="{unit}")   # seeds, picks the profile, prints device and dtype
FAST = course_lib.grading_mode()                    # True while the grader runs this notebook"""


def setup_source(unit: str) -> str:
    """The set-up cell of unit `unit` ("01".."08"), without a repository address."""
    if not re.fullmatch(r"\d\d", unit):
        raise ValueError(f"unit must be two digits such as '01', got {unit!r}")
    return _SETUP.replace("{unit}", unit)


def check_repo_url(url: str) -> str:
    """`url` if it is a git address a Colab runtime can clone (https://, ssh://, git@host:, file://)."""
    url = url.strip()
    if not _URL_RE.fullmatch(url):
        raise ValueError(
            f"--repo-url {url!r} is not a git address: give e.g. https://github.com/OWNER/REPO.git"
        )
    return url


def with_repo_url(source: str, url: str) -> str:
    """The set-up cell `source` with COURSE_REPO_URL set to `url` (ValueError if the cell has no
    empty COURSE_REPO_URL line, i.e. it is not the set-up cell or already has an address)."""
    url = check_repo_url(url)
    if source.count(REPO_URL_LINE) != 1:
        raise ValueError(f"the set-up cell has no line starting {REPO_URL_LINE!r}")
    return source.replace(REPO_URL_LINE, f"COURSE_REPO_URL = {url!r}")


def colab_badge_url(repo_url: str, notebook: str, branch: str = "main") -> str | None:
    """The "Open in Colab" link of exercises/<notebook> in a GitHub repository (None: not GitHub;
    Colab opens notebooks straight from GitHub only)."""
    m = _GITHUB_RE.fullmatch(repo_url.strip())
    if not m:
        return None
    owner, repo = m.group(1), m.group(2)
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/exercises/{notebook}"
