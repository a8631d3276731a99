"""The first (set-up) cell of every exercise notebook, and what `course release --repo-url` fills in.

Locally the cell moves to the course folder and imports course_lib. On Google Colab it first
installs the course, in plain Python (subprocess, no ``!`` magics), checking every step and
stopping with one message (what failed, what to do):

1. ``KEEP_WORK_ON_DRIVE = True``: mount Google Drive and keep the course folder there.
2. Get the course: ``git clone COURSE_REPO_URL`` (written into the cell by
   ``course release --repo-url URL``), or, without a URL, unpack the ``rl-course.zip`` that the
   student uploaded to the session (or to My Drive).
3. ``pip install`` only the ``colab`` extra of pyproject.toml (what Colab lacks); Colab's torch,
   numpy, matplotlib and Jupyter stack stay. The runtime restarts only if pip replaced a package
   that was already imported, and the cell says so.
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
    import glob, subprocess, zipfile
    from importlib import metadata

    def _fail(what, todo, detail=""):
        detail = detail.strip()[-1500:]
        raise RuntimeError(f"course set-up failed: {what}\\n{detail}\\nWhat to do: {todo}") from None

    def _run(what, cmd, todo):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            _fail(what, todo, r.stderr + r.stdout)

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
    elif not os.path.isdir(f"{course}/course_lib"):
        zips = sorted(set(glob.glob(f"{os.getcwd()}/rl-course*.zip") + glob.glob(f"{base}/rl-course*.zip")),
                      key=os.path.getmtime)
        if not zips:
            _fail("no course to install (COURSE_REPO_URL is empty and there is no rl-course.zip)",
                  f"upload rl-course.zip from your instructor into {base} (Files panel, left), "
                  "then run this cell again")
        try:
            with zipfile.ZipFile(zips[-1]) as z:
                z.extractall(base)
        except (OSError, zipfile.BadZipFile) as e:
            _fail(f"cannot unpack {zips[-1]}", "upload rl-course.zip again (it may be incomplete)", str(e))
        if not os.path.isdir(f"{course}/course_lib"):
            _fail(f"{zips[-1]} holds no rl-course/course_lib", "upload the rl-course.zip of your course")
    try:
        import tomllib
        with open(f"{course}/pyproject.toml", "rb") as f:
            need = tomllib.load(f)["project"]["optional-dependencies"]["colab"]
    except (ImportError, OSError, KeyError, ValueError) as e:
        _fail("cannot read the colab package list in pyproject.toml", "use Python 3.11+", repr(e))
    before = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    _run("pip install " + " ".join(need), [sys.executable, "-m", "pip", "install", "-q", *need],
         "read pip's message above, then run this cell again")
    changed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()
               if before.get((d.metadata["Name"] or "").lower(), d.version) != d.version}
    loaded = sorted(m for m, ds in metadata.packages_distributions().items()
                    if m in sys.modules and changed & {x.lower() for x in ds})
    if loaded:
        print(f"pip replaced {', '.join(sorted(changed))}, already imported here ({', '.join(loaded)}): "
              "restarting the runtime. When it reconnects, run this cell again.")
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
