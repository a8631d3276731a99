"""Attack suite: made-up hostile submissions graded by `course autograde` from the instructor
repository (editable install), the way instructors grade. Each attack is the student code of one
submission; the submission implements NOTHING else (or, for the bombs, exactly the exercises
listed), so every point above that is unearned. Asserted for each: exactly the points it earned,
graded in bounded time, instructor files byte-identical, no file planted, other students' grades
untouched.

Two batches (CI time): most attacks go through the sandboxed function runs (``run_notebooks=False``,
seconds per submission); a few go through the full nbgrader path (notebook kernels), in the
nbgrader batch shared with tests/grading/test_autograde.py (conftest's `nbgrader_batch`). Add every
new idea as one more entry of ATTACKS / KERNEL_ATTACK.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import fixture_notebook
import submissions as S

ROOT = Path(__file__).resolve().parents[2]
POINTS = {"kl_estimate": 3.0, "group_advantages": 3.0, "combine_rewards": 2.0}
SOL = ROOT / "solutions"
HIDDEN = ROOT / "course_instructor" / "grading" / "hidden" / "_grader.py"  # compares and scores
GRADER_PID = os.getpid()
PLANTED = Path("/tmp/course_attack_planted")  # where attacks try to leave files for later

# A kl_estimate that takes the solution from wherever `load()` finds it, else raises: points
# for kl_estimate = the attack worked.
STEAL = """
def kl_estimate(logp, ref_logp, kind="k3"):
    ns = {{}}
    src = load()
    exec(compile(src, "stolen", "exec"), ns)
    return ns["kl_estimate"](logp, ref_logp, kind)
def load():
{body}
"""


def steal(body: str) -> dict:
    return {"kl": STEAL.format(body="\n".join("    " + ln for ln in body.strip().splitlines()))}


NEUTER_HOOK = """
import gc
for o in gc.get_objects():        # empty every list / set the audit hook closes over
    try:
        if isinstance(o, (list, set)) and any(isinstance(x, str) and ('solutions' in x or x == 'subprocess.Popen')
                                              for x in o):
            o.clear()
    except Exception:
        pass
"""

ATTACKS: dict[str, tuple[tuple, dict, dict]] = {
    # name: (solved modules, {module: code appended}, expected code points)
    # --- reading the solutions ---------------------------------------------------------------
    "other_copies_on_disk": (
        (),
        steal(f"""
import os
for top in ["/", {str(ROOT)!r}, "/tmp", "/work", "/root", "/home"]:
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x not in ("proc", "sys", "dev", "usr", "lib", ".git", "site0", "site1")]
        if "kl.py" in files and ("def kl_estimate" in open(os.path.join(d, "kl.py")).read()
                                 and "NotImplementedError" not in open(os.path.join(d, "kl.py")).read()):
            return open(os.path.join(d, "kl.py")).read()
raise RuntimeError("no copy found")"""),
        {},
    ),
    "editable_install_finder": (
        (),
        steal("""
import glob, sys, importlib.util
for f in [f for p in sys.path for f in glob.glob(p + "/__editable__*finder.py")]:
    spec = importlib.util.spec_from_file_location("finder", f)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    for name, path in m.MAPPING.items():
        if name == "solutions":
            return open(path + "/kl.py").read()
raise RuntimeError("no finder")"""),
        {},
    ),
    "dir_fd": (
        (),
        steal(f"""
import os
fd = os.open({str(ROOT)!r}, os.O_RDONLY | os.O_DIRECTORY)
return os.read(os.open("solutions/kl.py", os.O_RDONLY, dir_fd=fd), 10 ** 6).decode()"""),
        {},
    ),
    "hard_link": (
        (),
        steal(f"""
import os
os.link({str(SOL / "kl.py")!r}, "/tmp/stolen.py")
return open("/tmp/stolen.py").read()"""),
        {},
    ),
    "torch_load_planted": (
        (),
        steal(f"""
import torch, pickle, os
class P:
    def __reduce__(self):
        return (os.system, ("touch {ROOT}/PWNED_pickle",))
os.makedirs({str(PLANTED)!r}, exist_ok=True)
torch.save(P(), {str(PLANTED / "evil.pt")!r})
return torch.load({str(SOL / "kl.py")!r}, weights_only=False)"""),
        {},
    ),
    "remove_audit_hook_gc": (
        (),
        {"kl": NEUTER_HOOK + STEAL.format(body=f"    return open({str(SOL / 'kl.py')!r}).read()")},
        {},
    ),
    "reexec_without_hook": (
        (),
        {
            "kl": NEUTER_HOOK
            + STEAL.format(
                body=f"""
    import subprocess, sys
    return subprocess.run([sys.executable, "-c", "print(open({str(SOL / "kl.py")!r}).read())"],
                          capture_output=True, text=True, check=True).stdout"""
            )
        },
        {},
    ),
    "proc_filesystem": (
        (),
        steal(f"""
import os
for pid in os.listdir("/proc"):
    for p in (f"/proc/{{pid}}/root{SOL}/kl.py", f"/proc/{{pid}}/cwd/solutions/kl.py"):
        try:
            return open(p).read()
        except OSError:
            pass
raise RuntimeError("nothing in /proc")"""),
        {},
    ),
    "environment": (
        (),
        steal("""
import os
for v in os.environ.values():
    for part in v.split(":"):
        for cand in (part + "/solutions/kl.py", part + "/../solutions/kl.py", part + "/../../solutions/kl.py"):
            if os.path.exists(cand):
                return open(cand).read()
raise RuntimeError("nothing in the environment")"""),
        {},
    ),
    "earlier_feedback": (
        (),
        steal("""
import glob
for f in glob.glob("/tmp/**/feedback/**/*.html", recursive=True):
    return "raise RuntimeError('found ' + %r)" % f
raise RuntimeError("no feedback")"""),
        {},
    ),
    # --- writing outside the sandbox -------------------------------------------------------------
    "write_everywhere": (
        (),
        {
            "kl": NEUTER_HOOK
            + f"""
import os, sqlite3, torch
def kl_estimate(logp, ref_logp, kind="k3"):
    tries = [
        lambda: open(os.open("PWNED_dirfd", os.O_WRONLY | os.O_CREAT,
                             dir_fd=os.open({str(ROOT)!r}, os.O_RDONLY)), "w").write("x"),
        lambda: os.link({str(HIDDEN)!r}, "/tmp/g.py") or open("/tmp/g.py", "a").write("\\n# PWNED"),
        lambda: sqlite3.connect({str(ROOT / "PWNED.db")!r}).execute("create table t(x)"),
        lambda: torch.save({{}}, {str(ROOT / "PWNED.pt")!r}),
        lambda: os.symlink({str(HIDDEN)!r}, "/tmp/l.py") or open("/tmp/l.py", "a").write("\\n# PWNED"),
        lambda: open({str(HIDDEN)!r}, "a").write("\\ndef compare(*a, **k):\\n    return True, ''\\n"),
        lambda: os.makedirs({str(PLANTED)!r}) or open({str(PLANTED / "x")!r}, "w").write("x"),
    ]
    for t in tries:
        try:
            t()
        except Exception:
            pass
    raise RuntimeError("nothing to steal")"""
        },
        {},
    ),
    # --- lying return objects ------------------------------------------------------------------
    "bool_tensors": (
        (),
        {
            "kl": "import torch\ndef kl_estimate(logp, ref_logp, kind='k3'):\n"
            "    return (logp != ref_logp) | (logp == ref_logp)",
            "grpo": "import torch\ndef group_advantages(r, g, scale='group', eps=1e-4):\n"
            "    return torch.ones_like(r, dtype=torch.bool)",
        },
        {},
    ),
    "tensor_subclass": (
        (),
        {
            "kl": """
import torch
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func.__name__ in ("allclose", "equal", "isclose", "eq", "__eq__"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
def kl_estimate(logp, ref_logp, kind="k3"):
    return torch.zeros_like(logp).as_subclass(Liar)"""
        },
        {},
    ),
    "lying_objects": (
        (),
        {
            "kl": """
class Anything:
    def __eq__(self, other): return True
    def __float__(self): return 0.0
    def __len__(self): return 1
    def __getattr__(self, name): return lambda *a, **k: True
def kl_estimate(logp, ref_logp, kind="k3"):
    return Anything()""",
            "grpo": """
def group_advantages(r, g, scale="group", eps=1e-4):
    x = []
    for _ in range(100000):
        x = [x]
    return x""",
            "rewards": """
def combine_rewards(funcs, weights):
    return lambda completions, **kw: [float("nan")] * len(completions)""",
        },
        {},
    ),
    # --- bombs: each next to correct code, which keeps its points ------------------------------
    "fork_bomb": (
        ("grpo", "rewards"),
        {
            "kl": NEUTER_HOOK
            + """
import os
def kl_estimate(*a, **k):
    while True:
        os.fork()"""
        },
        {"group_advantages": 3, "combine_rewards": 2},
    ),
    "thread_bomb": (
        ("grpo", "rewards"),
        {
            "kl": """
import threading, time
def kl_estimate(*a, **k):
    while True:
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()"""
        },
        {"group_advantages": 3, "combine_rewards": 2},
    ),
    "sleep_bomb": (
        ("grpo", "rewards"),
        {"kl": "import time\ndef kl_estimate(*a, **k):\n    time.sleep(10 ** 6)"},
        {"group_advantages": 3, "combine_rewards": 2},
    ),
    "memory_bomb": (
        ("kl", "rewards"),
        {"grpo": "def group_advantages(*a, **k):\n    x = bytearray(10 ** 12)"},
        {"kl_estimate": 3, "combine_rewards": 2},
    ),
    "recursion_bomb": (
        ("kl", "grpo"),
        {
            "rewards": "import sys\nsys.setrecursionlimit(10 ** 8)\n"
            "def combine_rewards(*a, **k):\n    return combine_rewards(*a, **k)"
        },
        {"kl_estimate": 3, "group_advantages": 3},
    ),
    "disk_bomb": (
        ("grpo", "rewards"),
        {
            "kl": """
def kl_estimate(*a, **k):
    i = 0
    while True:
        i += 1
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(b"x" * (60 * 2 ** 20))"""
        },
        {"group_advantages": 3, "combine_rewards": 2},
    ),
    "fill_every_tmpfs": (
        ("grpo", "rewards"),
        {
            "kl": """
import os
def kl_estimate(*a, **k):
    for d in ("/", "/dev", "/dev/shm", "/box", "/opt", os.getcwd(), "/tmp"):
        try:
            for i in range(100):
                with open(os.path.join(d, f"fill{i}"), "wb") as f:
                    f.write(b"x" * (60 * 2 ** 20))
        except OSError:
            pass
    raise RuntimeError("full")"""
        },
        {"group_advantages": 3, "combine_rewards": 2},
    ),
    "signal_the_grader": (
        ("grpo", "rewards"),
        {
            "kl": NEUTER_HOOK
            + f"""
import os, signal
def kl_estimate(*a, **k):
    for pid in ({GRADER_PID}, os.getppid(), 1):
        try:
            os.kill(pid, signal.SIGKILL)
        except Exception:
            pass
    os.kill(-1, signal.SIGKILL)"""
        },
        {"group_advantages": 3, "combine_rewards": 2},
    ),
}


def _odd_zips(subs: Path, released: list[Path]) -> None:
    """zip-slip, a zip bomb, a non-UTF-8 member name: stubs otherwise."""
    base = S.make_submission(subs.parent / "zip_src", released)
    with zipfile.ZipFile(subs / "zip_slip.zip", "w") as z:
        for p in sorted(base.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(base))
        z.writestr("../../../../../../tmp/course_attack_planted_slip.py", "x = 1\n")
        z.writestr("/tmp/course_attack_planted_abs.py", "x = 1\n")
        z.writestr("course_lib/../../course_attack_planted_dots.py", "x = 1\n")
        info = zipfile.ZipInfo("course_lib/link.py")
        info.external_attr = 0o120777 << 16  # a symlink member
        z.writestr(info, str(SOL / "kl.py"))
    with zipfile.ZipFile(subs / "zip_bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("course_lib/kl.py", b"#" * (60 * 2**20))
    odd_name_zip(subs / "odd_name.zip")


def odd_name_zip(path: Path, base: Path | None = None) -> Path:
    """A zip with a member name that is not valid UTF-8 although its flags say it is (plus the
    files of the submission folder `base`, if given)."""
    with zipfile.ZipFile(path, "w") as z:
        for p in sorted(base.rglob("*")) if base else []:
            if p.is_file():
                z.write(p, p.relative_to(base))
        z.writestr("course_lib/kl_X.py", "x = 1\n")
    raw = bytearray(path.read_bytes().replace(b"kl_X", b"kl\xff\xfe"))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # flag bit 11: "the name is UTF-8"
        i = raw.find(sig)
        while i >= 0:  # every member's headers (the other names are ASCII)
            raw[i + off + 1] |= 0x08
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path


def _no_planted_files() -> list[str]:
    return [str(p) for p in Path("/tmp").glob("course_attack_planted*")]


@pytest.fixture(scope="module")
def attack_batch(fixture_course, tmp_path_factory):
    """Every attack + an honest full solution (graded first and last) in ONE code-only batch."""
    from course_instructor.grading import autograde

    src, released = fixture_course
    subs = tmp_path_factory.mktemp("attack_subs")
    S.make_submission(subs / "aaa_honest", released, solved="all")
    S.make_submission(subs / "zzz_honest", released, solved="all")
    for name, (solved, over, _) in ATTACKS.items():
        S.make_submission(subs / name, released, solved=solved, overrides=over)
    _odd_zips(subs, released)
    # stubs claiming the id of an honest student whose folder sorts AFTER it (graded later)
    S.make_submission(subs / "victim", released, solved="all")
    imp = S.make_submission(subs.parent / "impostor_src", released)
    (imp / "SUBMISSION.json").write_text(json.dumps({"student_id": "victim"}))
    S.zip_folder(imp, subs / "impostor.zip")
    out = tmp_path_factory.mktemp("attack_out")
    before = S.instructor_hashes()
    t0 = time.time()
    results = autograde.autograde(
        subs, out, source_dir=src, run_notebooks=False, exercise_timeout=8, sandbox_timeout=60, quiet=True
    )
    return {
        "out": out,
        "results": {r["student_id"]: r for r in results},
        "seconds": time.time() - t0,
        "before": before,
        "after": S.instructor_hashes(),
        "grades": S.code_grades(out, POINTS),
    }


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_earns_exactly_what_it_implemented(attack_batch, name):
    expected = {k: float(ATTACKS[name][2].get(k, 0)) for k in POINTS}
    got = attack_batch["grades"][name]
    assert got == expected, (name, attack_batch["results"][name]["details"])
    assert attack_batch["results"][name]["seconds"] < 60


def test_instructor_files_unchanged_and_nothing_planted(attack_batch):
    assert attack_batch["before"] == attack_batch["after"], "grading changed instructor files"
    assert not _no_planted_files()


def test_other_students_keep_their_grades(attack_batch):
    g = attack_batch["grades"]
    assert g["aaa_honest"] == POINTS and g["zzz_honest"] == POINTS


def test_hostile_archives_are_refused_or_trimmed(attack_batch):
    r = attack_batch["results"]
    assert attack_batch["grades"]["zip_slip"] == {k: 0.0 for k in POINTS}  # stubs; odd members skipped
    assert "larger than" in r["zip_bomb"]["status"]
    assert "not valid UTF-8" in r["odd_name"]["status"]
    assert not _no_planted_files()


def test_an_impostor_id_never_takes_another_students_records(attack_batch):
    """impostor.zip (stubs) claims the id of the folder `victim` (full marks), and is graded first.
    Neither gets the plain id's row: each is graded under its own conflict id (a hash of its own
    file name, so the order of the files changes nothing), and the contested id is flagged in
    grades.csv, lms.csv and junit.xml with no score, and in both claimants' feedback."""
    import hashlib
    import xml.etree.ElementTree as ET

    g, r, out = attack_batch["grades"], attack_batch["results"], attack_batch["out"]
    victim, impostor = (
        f"victim-conflict-{hashlib.sha256(n).hexdigest()[:8]}" for n in (b"victim", b"impostor.zip")
    )
    assert "victim" not in g and "victim" not in r
    assert g[victim] == POINTS and g[impostor] == {k: 0.0 for k in POINTS}
    for sid in (victim, impostor):
        assert "STUDENT ID CONFLICT" in r[sid]["status"] and "'victim'" in r[sid]["status"], r[sid]["status"]
        assert r[sid]["id_conflict"] == {"id": "victim", "claimants": ["impostor.zip", "victim"]}
        assert (out / "feedback" / sid).is_dir()
    assert not (out / "feedback" / "victim").exists()
    with open(out / "grades.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["student_id"] == "victim"]
    assert len(rows) == 1 and rows[0]["score"] == rows[0]["student_total"] == ""
    assert rows[0]["flag"].startswith("CONFLICT: impostor.zip, victim claim the id victim")
    with open(out / "lms.csv") as f:
        lms = {row["student_id"]: row for row in csv.DictReader(f)}
    assert lms["victim"]["total"] == "" and "impostor.zip, victim" in lms["victim"]["flag"]
    assert float(lms[victim]["total"]) == sum(POINTS.values()) and lms[victim]["flag"].startswith("CONFLICT")
    assert lms["aaa_honest"]["flag"] == ""
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite[@name='victim']")
    assert suite.get("errors") == "1" and suite.find("testcase/error").get("type") == "StudentIdConflict"


def test_lying_types_are_named_in_the_feedback(attack_batch):
    d = attack_batch["results"]
    text = " ".join(d["bool_tensors"]["details"]["kl_estimate"]["failures"])
    assert "expected a tensor of real numbers" in text and "bool" in text
    assert "subclass" in " ".join(d["tensor_subclass"]["details"]["kl_estimate"]["failures"])
    assert "Anything" in " ".join(d["lying_objects"]["details"]["kl_estimate"]["failures"])


# --- the full nbgrader path: attacks from a notebook cell -----------------------------------------
KERNEL_ATTACK = f"""
import json, os, signal, sqlite3
tries = {{}}
def attempt(name, fn):
    try:
        fn(); tries[name] = "DONE"
    except BaseException as e:
        tries[name] = type(e).__name__
attempt("read_solutions", lambda: open({str(SOL / "kl.py")!r}).read())
attempt("import_solutions", lambda: __import__("solutions.kl"))
attempt("read_hidden_cases", lambda: open({str(HIDDEN.with_name("ppo.py"))!r}).read())
attempt("import_hidden_cases", lambda: __import__("course_instructor.grading.hidden"))
attempt("write_grading", lambda: open({str(HIDDEN)!r}, "a").write("# PWNED"))
attempt("write_repo", lambda: open({str(ROOT / "PWNED_kernel")!r}, "w").write("x"))
attempt("gradebook", lambda: sqlite3.connect(GRADEBOOK).execute("update grade set manual_score = 99"))
attempt("other_student", lambda: open(OTHER, "a").write("# PWNED"))
attempt("kill_grader", lambda: os.kill({GRADER_PID}, signal.SIGKILL))
attempt("network", lambda: __import__("socket").create_connection(("1.1.1.1", 80), timeout=2))
attempt("fork", lambda: os.fork())
attempt("plant", lambda: open({str(PLANTED)!r} + "_kernel", "w").write("x"))
print("ATTACK " + json.dumps(tries))
print("<script>alert('feedback')</script>")
from IPython.display import HTML, display
display(HTML("<img src=x onerror=alert(1)>"))
"""


# Run by the same kernel after every test cell: through what nbgrader (outside the sandbox) writes
# into or walks, reach host files; show hidden test code; fill the disk; script the pages that
# formgrader (the instructor's logged-in Jupyter) and the feedback render.
KERNEL_ATTACK_LATE = """
import json, os, glob
late = {}
here = os.getcwd()
for name, target in LINKS:  # the trusted side writes the graded notebook / chmods every file here
    try:
        if os.path.lexists(name):
            os.remove(name)
        os.symlink(target, name)
        late["link " + name] = "DONE"
    except OSError as e:
        late["link " + name] = type(e).__name__
seen = "\\n".join(_ih) + "\\n".join(str(v) for v in Out.values())
for root in {here, "/tmp", "/grade"}:
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith((".ipynb", ".py", ".json", ".txt")):
                try:
                    seen += open(os.path.join(dirpath, f), errors="replace").read(2 * 10**6)
                except OSError:
                    pass
late["hidden"] = ("BEGIN HIDDEN" + " TESTS" in seen) or ("hidden" + "_check(" in seen)
written = {}
for where in (here, "/tmp"):
    written[where] = 0
    for i in range(40):
        try:
            with open(os.path.join(where, f"fill{i}.bin"), "wb") as f:
                f.write(bytes(60 * 2**20))
            written[where] += 60
        except OSError:
            break
late["disk_mb"] = sum(written.values())
print("LATE " + json.dumps(late))
print("IH " + "\\n".join(_ih))
"""
XSS = {
    "html": "from IPython.display import HTML, display; display(HTML(\"<script>document.title='PWNED-html'</script>"
    '<img src=x onerror=\\"document.title=\'PWNED-img\'\\">"))',
    "js": "from IPython.display import Javascript, display; display(Javascript(\"document.title='PWNED-js'\"))",
    "svg": 'from IPython.display import SVG, display; display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" '
    'onload="document.title=&quot;PWNED-svg&quot;"><circle r="5"/></svg>\'))',
    "markdown_output": 'from IPython.display import Markdown, display; display(Markdown("<img src=x '
    'onerror=\\"document.title=\'PWNED-md-out\'\\">"))',
}
XSS_ANSWER = (
    "<img src=x onerror=\"document.title='PWNED-answer'\"><script>document.title='PWNED-answer2'</script>\n"
    "[click me](javascript:document.title='PWNED-link') <svg onload=\"document.title='PWNED-svg2'\"></svg>"
)
KERNEL_ATTACKER = "z_kernel_attacker"


def kernel_attacker(subs: Path, released: list[Path], out: Path, victim: str, host: Path) -> None:
    """This file's submission of the shared nbgrader batch (conftest's `nbgrader_batch`, output
    folder `out`): KERNEL_ATTACK as the first code cell, the XSS payloads, a hostile written
    answer and KERNEL_ATTACK_LATE as the last cell, stubs otherwise; it attacks the files of
    `victim`, an honest student graded before it (its id sorts first), and the files in `host`
    (outside the batch: hostile_target.txt, key.pem with mode 0600)."""
    other = out / "nbgrader" / "autograded" / victim / "exercises" / "course_lib" / "kl.py"
    assert victim < KERNEL_ATTACKER, "the victim must be graded first"
    links = [
        ("02_fixture.ipynb", str(host / "hostile_target.txt")),
        ("key_link", str(host / "key.pem")),
        ("victim_feedback", str(out / "feedback" / victim / "02_fixture.html")),
        ("gradebook_link", str(out / "nbgrader" / "gradebook.db")),
    ]

    def add_attack(path: Path):
        nb = nbformat.read(str(path), as_version=4)
        code = KERNEL_ATTACK.replace("GRADEBOOK", repr(str(out / "nbgrader" / "gradebook.db")))
        nb.cells.insert(1, nbformat.v4.new_code_cell(code.replace("OTHER", repr(str(other)))))
        for payload in XSS.values():
            nb.cells.insert(2, nbformat.v4.new_code_cell(payload))
        for cell in nb.cells:
            if cell.cell_type == "markdown" and "YOUR ANSWER HERE" in cell.source:
                cell.source = XSS_ANSWER
        nb.cells.append(nbformat.v4.new_code_cell(KERNEL_ATTACK_LATE.replace("LINKS", repr(links))))
        nbformat.write(nb, str(path))

    S.make_submission(subs / KERNEL_ATTACKER, released, notebook_edit=add_attack)


def host_victims(host: Path) -> dict[str, tuple[str, int]]:
    """Files outside the batch that the kernel attacker aims at: {path: (content, mode)}."""
    host.mkdir(parents=True, exist_ok=True)
    (host / "hostile_target.txt").write_text("ORIGINAL\n")
    key = host / "key.pem"
    key.write_text("SECRET KEY\n")
    key.chmod(0o600)
    return S.file_states([host / "hostile_target.txt", key])


def _outputs_text(nb) -> str:
    return "\n".join(
        o.get("text", "") if o.get("output_type") == "stream" else json.dumps(o)
        for c in nb.cells
        for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_kernel_attacks_through_nbgrader(nbgrader_batch):
    from nbgrader.api import Gradebook

    out, results = nbgrader_batch["out"], nbgrader_batch["results"]
    assert nbgrader_batch["after"] == nbgrader_batch["before"] and not _no_planted_files()
    assert nbgrader_batch["host_after"] == nbgrader_batch["host_before"]
    g = S.code_grades(out, POINTS)
    assert g["solved"] == POINTS and g[KERNEL_ATTACKER] == {k: 0.0 for k in POINTS}
    assert results[KERNEL_ATTACKER]["seconds"] < 90
    executed = nbformat.read(
        str(out / "nbgrader" / "autograded" / KERNEL_ATTACKER / "exercises" / "02_fixture.ipynb"),
        as_version=4,
    )
    lines = [
        ln
        for c in executed.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
        for ln in o["text"].splitlines()
        if ln.startswith("ATTACK ")
    ]
    tries = json.loads(lines[0][len("ATTACK ") :])
    assert set(tries) == {
        "read_solutions",
        "import_solutions",
        "read_hidden_cases",
        "import_hidden_cases",
        "write_grading",
        "write_repo",
        "gradebook",
        "other_student",
        "kill_grader",
        "network",
        "fork",
        "plant",
    }
    planted = tries.pop("plant")  # succeeds, into the kernel's private /tmp: nothing on the host
    assert planted == "DONE" and not _no_planted_files()
    assert "DONE" not in tries.values(), tries
    with Gradebook(f"sqlite:///{out / 'nbgrader' / 'gradebook.db'}", "rl-posttraining") as gb:
        assert gb.find_grade("test_kl_estimate", "02_fixture", "exercises", "solved").score == 3.0
    # feedback escapes what the student printed
    html = (out / "feedback" / KERNEL_ATTACKER / "02_fixture.html").read_text()
    assert "&lt;script&gt;alert(&#x27;feedback&#x27;)" in html
    assert "<script>alert" not in html and "<img src=x" not in html


def _attacker_notebook(out: Path):
    """The kernel attacker's graded notebook, as the grader stored it for formgrader."""
    return nbformat.read(
        str(out / "nbgrader" / "autograded" / KERNEL_ATTACKER / "exercises" / "02_fixture.ipynb"),
        as_version=4,
    )


def _late(nb) -> dict:
    line = next(ln for ln in _outputs_text(nb).splitlines() if ln.startswith("LATE "))
    return json.loads(line[len("LATE ") :])


@pytest.fixture(scope="module")
def symlink_batch(tmp_path_factory):
    """A two-notebook course (02_fixture, 04_second) and two submissions: an honest one, graded
    first, and one whose 02 plants links named like the files the grader writes next
    (04_second.ipynb) or aimed at a key file, the honest student's feedback page and the
    gradebook. Kernels start cold (each in its own start-up), the path the shared batch does not
    take."""
    from course_instructor import release
    from course_instructor.grading import autograde

    d = tmp_path_factory.mktemp("symlink_batch")
    fixture_notebook.build(d / "src" / "02_fixture.ipynb")
    second = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Second"), nbformat.v4.new_code_cell("print('second')")]
    )
    second.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(second, str(d / "src" / "04_second.ipynb"))
    released = release.generate(d / "ex", d / "src")
    subs, out, host = d / "subs", d / "out", d / "host"
    victims = host_victims(host)
    S.make_submission(subs / "a_honest", released, solved="all")
    links = [
        ("04_second.ipynb", str(host / "hostile_target.txt")),
        ("key_link", str(host / "key.pem")),
        ("victim_feedback", str(out / "feedback" / "a_honest" / "02_fixture.html")),
        ("gradebook_link", str(out / "nbgrader" / "gradebook.db")),
    ]
    late = (
        KERNEL_ATTACK_LATE.split("seen = ")[0].replace("LINKS", repr(links))
        + "print('LATE ' + json.dumps(late))"
    )

    def plant(path: Path):
        if path.name.startswith("02"):
            nb = nbformat.read(str(path), as_version=4)
            nb.cells.insert(1, nbformat.v4.new_code_cell(late))
            nbformat.write(nb, str(path))

    S.make_submission(subs / "b_linker", released, notebook_edit=plant)
    before = S.instructor_hashes()
    results = autograde.autograde(
        subs,
        out,
        source_dir=d / "src",
        cell_timeout=10,
        notebook_timeout=90,
        exercise_timeout=8,
        warm_kernels=False,
    )
    return {
        "out": out,
        "results": {r["student_id"]: r for r in results},
        "before": before,
        "after": S.instructor_hashes(),
        "host_before": victims,
        "host_after": S.file_states(victims),
    }


@pytest.mark.slow
def test_kernel_symlinks_never_lead_a_trusted_write_outside_the_sandbox(symlink_batch):
    out = symlink_batch["out"]
    graded = out / "nbgrader" / "autograded"
    linker = nbformat.read(str(graded / "b_linker" / "exercises" / "02_fixture.ipynb"), as_version=4)
    assert '"link 04_second.ipynb": "DONE"' in _outputs_text(linker)  # the links were planted
    assert symlink_batch["host_after"] == symlink_batch["host_before"]  # content and mode
    assert symlink_batch["after"] == symlink_batch["before"]
    for p in [
        *graded.rglob("*"),
        *(out / "nbgrader" / "submitted").rglob("*"),
        *(out / "feedback").rglob("*"),
    ]:
        assert not p.is_symlink(), p
    second = nbformat.read(str(graded / "b_linker" / "exercises" / "04_second.ipynb"), as_version=4)
    assert "second" in _outputs_text(second)
    victim = nbformat.read(str(graded / "a_honest" / "exercises" / "02_fixture.ipynb"), as_version=4)
    assert "visible checks passed" in _outputs_text(victim)
    page = (out / "feedback" / "a_honest" / "02_fixture.html").read_text()
    assert "Feedback" in page and "Grader: " in page
    g = S.code_grades(out, POINTS)
    assert g["a_honest"] == POINTS and g["b_linker"] == {k: 0.0 for k in POINTS}
    assert not symlink_batch["results"]["b_linker"]["grader_failures"]


@pytest.mark.slow
def test_hidden_test_code_never_reaches_the_students_kernel(nbgrader_batch):
    out = nbgrader_batch["out"]
    nb = _attacker_notebook(out)
    late = _late(nb)
    assert late["hidden"] is False, "the kernel could read hidden test code"
    text = _outputs_text(nb)
    assert "IH " in text and "hidden_check(" not in text and "BEGIN HIDDEN TESTS" not in text
    page = (out / "feedback" / KERNEL_ATTACKER / "02_fixture.html").read_text()
    assert "hidden_check" not in page and "HIDDEN TESTS" not in page


@pytest.mark.slow
def test_a_submission_has_a_bounded_disk_that_vanishes_after_grading(nbgrader_batch):
    from course_instructor.grading import nbgrader_run

    out = nbgrader_batch["out"]
    nb = _attacker_notebook(out)
    late = _late(nb)
    assert 0 < late["disk_mb"] <= nbgrader_run.WORK_MB + nbgrader_run.TMP_MB, late
    left = [*out.rglob("fill*.bin"), *Path(tempfile.gettempdir()).glob("course_*/**/fill*.bin")]
    assert not left, left


@pytest.mark.slow
def test_stored_notebooks_carry_no_active_content(nbgrader_batch):
    """What formgrader renders in the instructor's session: only text and PNG / JPEG outputs, a
    note where an HTML / JavaScript / SVG output was, and the written answer's tags escaped."""
    out = nbgrader_batch["out"]
    nb = _attacker_notebook(out)
    mimes = {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}
    assert mimes <= {"text/plain", "image/png", "image/jpeg"}, mimes
    assert "text/html" in _outputs_text(nb) and "application/javascript" in _outputs_text(nb)  # the notes
    answer = next(c for c in nb.cells if "PWNED-answer" in c.source)
    assert "&lt;img" in answer.source and "&lt;script" in answer.source and "&lt;svg" in answer.source
    assert "javascript:" not in answer.source and "#link-removed-by-grader" in answer.source
    import re

    assert not re.search(r"<[A-Za-z/!?]", answer.source)
