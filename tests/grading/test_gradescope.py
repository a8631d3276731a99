"""`course gradescope` (issue 18): the autograder zip, run as Gradescope runs it, on a fake
/autograder tree -- three made-up submissions (untouched stubs as loose files, a partial one as a
folder, a full one as the `course submit` zip) -- and the same points through `course autograde`
(grades.csv, lms.csv, junit.xml) as through results.json.

Graded against the small fixture notebook (tests/fixtures/fixture_notebook.py: kl_estimate 3,
group_advantages 3, combine_rewards 2 points, one written answer 2) so each run takes seconds."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import fixture_notebook
import submissions as S

from course_instructor.grading import autograde, export, feedback, gradescope

POINTS = {"kl_estimate": 3.0, "group_advantages": 3.0, "combine_rewards": 2.0}
SEED = 7
# https://gradescope-autograders.readthedocs.io/en/latest/specs/ (fields of results.json)
TOP_KEYS = {
    "score",
    "execution_time",
    "output",
    "output_format",
    "test_output_format",
    "test_name_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
    "leaderboard",
}
TEST_KEYS = {
    "score",
    "max_score",
    "status",
    "name",
    "name_format",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
    "extra_data",
}
FORMATS = {"text", "simple_format", "html", "md", "ansi"}
# a wrong group_advantages: population std instead of Bessel's (fails the cases where it matters)
WRONG_GROUP = """
def group_advantages(rewards, group_size, scale="group", eps=1e-4):
    import torch
    r = rewards.float().view(-1, group_size)
    a = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        a = a / (r.std(dim=1, keepdim=True, unbiased=False) + eps)
    elif scale == "batch":
        a = a / (rewards.float().std(unbiased=False) + eps)
    return a.reshape(-1)
"""


def check_spec(res: dict) -> None:
    """results.json has only the spec's fields, with the spec's types, and adds up."""
    assert set(res) <= TOP_KEYS, set(res) - TOP_KEYS
    assert isinstance(res["score"], (int, float)) and isinstance(res["execution_time"], int)
    assert isinstance(res["output"], str) and res["output"]
    assert res.get("stdout_visibility", "visible") in gradescope.VISIBILITY
    assert res.get("output_format", "text") in FORMATS and res.get("test_output_format", "text") in FORMATS
    json.dumps(res["extra_data"])
    for t in res["tests"]:
        assert set(t) <= TEST_KEYS, set(t) - TEST_KEYS
        assert isinstance(t["name"], str) and isinstance(t["number"], str) and isinstance(t["output"], str)
        assert 0 <= t["score"] <= t["max_score"]
        assert t["visibility"] in gradescope.VISIBILITY
        assert all(isinstance(x, str) for x in t["tags"])
        for leak in ("hidden_check", "BEGIN HIDDEN", "solutions", "COURSE-SOLUTION-CANARY"):
            assert leak not in t["output"], f"{t['name']}: the output shows {leak!r}"
    assert res["score"] == pytest.approx(sum(t["score"] for t in res["tests"]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("gradescope")
    fixture_notebook.build(d / "src" / "02_fixture.ipynb")
    rc = gradescope.main(
        [
            "--out",
            str(d / "ag.zip"),
            "--source",
            str(d / "src"),
            "--seed",
            str(SEED),
            "--visibility",
            "visible",
        ]
    )
    assert rc == 0
    # the three submissions, each in the shape a student may hand it in
    full = S.make_course_lib(d / "full_src", solved=("kl", "grpo", "rewards")).parent
    S.zip_folder(full, d / "full.zip")
    S.make_course_lib(d / "partial", solved=("kl", "rewards"), overrides={"grpo": WRONG_GROUP})
    S.make_course_lib(d / "stubs")
    return d


def fake_tree(d: Path, name: str, put_submission) -> Path:
    """d/name = /autograder: source/ (the zip unpacked), submission/ (filled by put_submission)."""
    root = d / name
    with zipfile.ZipFile(d / "ag.zip") as z:
        z.extractall(root / "source")
    (root / "submission").mkdir(parents=True)
    put_submission(root / "submission")
    return root


def run_autograder(root: Path, log: list | None = None) -> dict:
    """Run root/source/run_autograder as Gradescope does; its stdout is appended to `log`."""
    script = root / "source" / "run_autograder"
    env = {**os.environ, "COURSE_AUTOGRADER_ROOT": str(root), "COURSE_AUTOGRADER_PYTHON": sys.executable}
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    if log is not None:
        log.append(r.stdout)
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def graded(built):
    d = built
    loose = lambda sub: [shutil.copy(p, sub / p.name) for p in (d / "stubs" / "course_lib").glob("*.py")]  # noqa: E731
    trees = {
        "full": fake_tree(d, "ag_full", lambda sub: shutil.copy(d / "full.zip", sub / "submission.zip")),
        "partial": fake_tree(
            d, "ag_partial", lambda sub: shutil.copytree(d / "partial", sub, dirs_exist_ok=True)
        ),
        "stubs": fake_tree(d, "ag_stubs", loose),
    }
    return {k: run_autograder(root) for k, root in trees.items()}


def test_zip_layout(built):
    with zipfile.ZipFile(built / "ag.zip") as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) for i in z.infolist()}
        cfg = json.loads(z.read(gradescope.CONFIG))
        setup = z.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "requirements.txt", "notebooks/02_fixture.ipynb"} <= names
    assert {
        "solutions/kl.py",
        "course_instructor/grading/hidden/kl.py",
        "course_instructor/grading/sandbox.py",
        "course_instructor/grading/sandboxed/sandbox_child.py",
        "course_instructor/grading/wire.py",
        "course_lib/kl.py",
    } <= names
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert not [n for n in names if "__pycache__" in n or n.startswith((".git", "tests/", "exercises/"))]
    assert cfg["seed"] == SEED and cfg["visibility"] == "visible" and cfg["isolation"] == "auto"
    assert "chmod -R go-rwx /autograder/source" in setup and "whl/cpu" in setup


def test_bad_options_exit_2(built, capsys):
    assert gradescope.main(["--out", str(built / "x.zip"), "--source", str(built / "nothing")]) == 2
    assert "no source notebooks" in capsys.readouterr().err
    with pytest.raises(ValueError, match="visibility must be one of"):
        gradescope.build_zip(built / "y.zip", visibility="sometimes")


@pytest.mark.slow
def test_three_submissions_graded_per_spec(graded):
    for res in graded.values():
        check_spec(res)
        assert [t["number"] for t in res["tests"]] == ["2.2", "6.1", "1.7"]
        assert all(t["visibility"] == "visible" for t in res["tests"])
        assert "graded by hand" in res["output"] and "q_fixture_why" in res["output"]
    full, partial, stubs = graded["full"], graded["partial"], graded["stubs"]
    assert full["score"] == sum(POINTS.values()) and all(t["score"] == t["max_score"] for t in full["tests"])
    assert stubs["score"] == 0 and all("NotImplementedError" in t["output"] for t in stubs["tests"])
    by = {t["name"].split()[2]: t for t in partial["tests"]}
    assert by["kl_estimate"]["score"] == 3 and by["combine_rewards"]["score"] == 2
    assert 0 < by["group_advantages"]["score"] < 3, by["group_advantages"]["output"]
    assert by["group_advantages"]["output"].startswith("Grader: ")


@pytest.mark.slow
def test_same_points_in_autograde_csv_lms_junit_and_gradescope(built, graded, tmp_path):
    """One submission, one score: grades.csv, lms.csv and junit.xml of `course autograde` (same
    seed) == results.json of the Gradescope autograder, exercise by exercise, with the same
    feedback text."""
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(built / "full.zip", subs / "full.zip")
    shutil.copytree(built / "partial", subs / "partial")
    shutil.copytree(built / "stubs", subs / "stubs")
    out = tmp_path / "out"
    rc = autograde.main(
        [str(subs), "--out", str(out), "--source", str(built / "src"), "--no-notebooks", "--seed", str(SEED)]
    )
    assert rc == 0
    with open(out / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    with open(out / "lms.csv") as f:
        lms = {r["student_id"]: r for r in csv.DictReader(f)}
    details = {r["student_id"]: r["details"] for r in json.loads((out / "grades.json").read_text())}
    junit = ET.parse(out / "junit.xml").getroot()
    assert {r["unit"] for r in rows} == {"unit_02"}
    for sid, res in graded.items():
        gs = {t["name"].split()[2].rstrip(":"): t for t in res["tests"]}
        csv_scores = {r["exercise"]: r for r in rows if r["student_id"] == sid}
        for name, t in gs.items():
            assert float(csv_scores[name]["score"]) == pytest.approx(t["score"]), (sid, name)
            assert t["output"] == "\n".join(feedback.verdict_lines(details[sid][name]))
        assert csv_scores["q_fixture_why"]["score"] == ""  # written answer: pending
        assert [float(r["student_total"]) for r in csv_scores.values()] == [
            pytest.approx(res["score"])
        ] * len(csv_scores)
        assert float(lms[sid]["unit_02"]) == pytest.approx(res["score"])
        assert float(lms[sid]["total"]) == pytest.approx(res["score"])
        assert float(lms[sid]["max_total"]) == sum(POINTS.values())
        suite = junit.find(f"testsuite[@name='{sid}']")
        failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
        assert failed == {n for n, t in gs.items() if t["score"] < t["max_score"]}
        assert {c.get("name") for c in suite.iter("testcase") if c.find("skipped") is not None} == {
            "q_fixture_why"
        }
    assert list(lms) == ["full", "partial", "stubs"]
    assert export.unit_label("2") == "unit_02"


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="the uid wall needs root + setpriv"
)
def test_uid_wall_runs_student_code_as_nobody(built):
    """--isolation uid (what zips built before `uid-weak` was named so carry; the same wall): the
    student's function runs as uid 65534 and cannot read the grader's source (made root-only as setup.sh does)."""
    target = built / "ag_uid" / "source" / "solutions" / "kl.py"
    probe = (  # os.access: the file permissions themselves, not the audit hook (an extra alarm)
        "def kl_estimate(logp, ref_logp, kind='k3'):\n"
        "    import os\n"
        f'    raise ValueError(f"probe uid={{os.getuid()}} readable={{os.access({str(target)!r}, os.R_OK)}}")\n'
    )
    root = fake_tree(built, "ag_uid", lambda sub: S.make_course_lib(sub, overrides={"kl": probe}))
    cfg = root / "source" / gradescope.CONFIG
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "isolation": "uid"}))
    for p in [root / "source", *(root / "source").rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o077)  # what setup.sh does: root only
    res = run_autograder(root)
    check_spec(res)
    kl = res["tests"][0]["output"]
    assert "probe uid=65534 readable=False" in kl, kl
    assert "uid-weak" in res["extra_data"]["isolation"] and res["score"] == 0


def test_gather_shapes(tmp_path):
    """What a student may upload, read as `course autograde` reads a submission."""
    (tmp_path / "a" / "course_lib").mkdir(parents=True)
    assert gradescope.gather(tmp_path / "a", tmp_path / "w1") == tmp_path / "a"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "submission-jdoe.zip").write_bytes(b"PK")
    assert gradescope.gather(tmp_path / "b", tmp_path / "w2") == tmp_path / "b" / "submission-jdoe.zip"
    (tmp_path / "c" / "rl-course" / "exercises").mkdir(parents=True)
    assert gradescope.gather(tmp_path / "c", tmp_path / "w3") == tmp_path / "c" / "rl-course"
    (tmp_path / "d").mkdir()
    for name in ("kl.py", "01_reward_functions.ipynb", "SUBMISSION.json", "notes.txt"):
        (tmp_path / "d" / name).write_text("x")
    got = gradescope.gather(tmp_path / "d", tmp_path / "w4")
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()) == [
        "SUBMISSION.json",
        "course_lib/kl.py",
        "exercises/01_reward_functions.ipynb",
    ]
    with pytest.raises(ValueError, match="no submission folder"):
        gradescope.gather(tmp_path / "missing", tmp_path / "w5")


# --- hostile submissions: what each isolation mode keeps out of reach ---------------------------------
# The exercise function first empties the audit hook's set of blocked events (the hook is an alarm
# inside the student's own process, not a wall), then tries what the hook would have stopped: a TCP
# connection to a server of the host's loopback, and a look at the host's processes in /proc.
ATTACK = """
def kl_estimate(logp, ref_logp, kind="k3"):
    import gc, os, socket
    for o in gc.get_objects():
        if isinstance(o, set) and "socket.connect" in o:
            o.clear()
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", {port}))
        net = "connected"
    except OSError as e:
        net = "failed-" + type(e).__name__
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    raise ValueError(
        f"probe uid={{os.getuid()}} net={{net}} hostpid={{str({hostpid}) in pids}} npids={{len(pids)}} "
        f"answers={{os.access({solutions!r}, os.R_OK)}} results={{os.access({results!r}, os.W_OK)}}"
    )
"""


def attack(built: Path, mode: str, runner=run_autograder) -> tuple[dict, str, int]:
    """Grade the hostile submission with --isolation `mode` on a root-only /autograder/source (as
    setup.sh leaves it) with `runner` (the root -> results.json): (results.json, the probe's line,
    connections the server on the host's 127.0.0.1 accepted)."""
    import re
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    root = built / f"ag_attack_{mode}_{runner.__name__}"
    code = ATTACK.format(
        port=server.getsockname()[1],
        hostpid=os.getpid(),
        solutions=str(root / "source" / "solutions" / "kl.py"),
        results=str(root / "results"),
    )
    try:
        root = fake_tree(built, root.name, lambda sub: S.make_course_lib(sub, overrides={"kl": code}))
        (root / "results").mkdir()
        cfg = root / "source" / gradescope.CONFIG
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "isolation": mode}))
        for p in [root / "source", *(root / "source").rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o077)  # what setup.sh does: root only
        res = runner(root)
    finally:
        stop.set()
        thread.join()
        server.close()
        for c in accepted:
            c.close()
    check_spec(res)
    out = res["tests"][0]["output"]
    probe = re.search(r"probe [^\n]*", out)
    assert probe, out
    return res, probe.group(0), len(accepted)


def assert_reached_nothing(res: dict, probe: str, connections: int) -> None:
    assert connections == 0, probe
    # stopped by the network namespace (its own empty loopback), not by the audit hook (emptied by
    # the attack; it would have raised PermissionError)
    assert "net=failed-" in probe and "PermissionError" not in probe and "hostpid=False" in probe, probe
    assert int(probe.split("npids=")[1].split()[0]) < 10, probe  # the sandbox's own few
    assert "uid=65534" in probe and "answers=False" in probe and "results=False" in probe, probe
    assert res["score"] == 0


NAMESPACE_MODES = {"bwrap": gradescope.bwrap_problem, "bwrap-root": gradescope.root_ns_problem}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(NAMESPACE_MODES))
def test_hostile_submission_reaches_nothing(built, mode):
    """Each mode `auto` may choose: no connection to the host's loopback, no host process in
    /proc, no answers, no results.json -- with the audit hook emptied by the student's code."""
    problem = NAMESPACE_MODES[mode]()
    if problem:
        pytest.skip(f"--isolation {mode} cannot run here: {problem}")
    assert_reached_nothing(*attack(built, mode))


@pytest.mark.slow
def test_auto_without_user_namespaces_runs_bwrap_as_root(built, monkeypatch):
    """No user namespaces (simulated), root with CAP_SYS_ADMIN (this machine, as root): `auto`
    builds the sandbox with bwrap run as root and setpriv, and it holds as well."""
    problem = gradescope.root_ns_problem()
    if problem:
        pytest.skip(f"bwrap as root cannot create namespaces here: {problem}")
    monkeypatch.setattr(gradescope, "bwrap_problem", lambda: "user namespaces are forbidden (simulated)")

    def in_process(root):
        return gradescope.run(root)

    res, probe, connections = attack(built, "auto", in_process)
    assert_reached_nothing(res, probe, connections)
    assert "bubblewrap run as root, no user namespace" in res["extra_data"]["isolation"]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root + setpriv")
def test_uid_weak_is_the_wall_the_readme_says(built):
    """uid-weak keeps the answers and results.json out of reach, and -- as its name, the README
    and its warning say -- nothing else: the host's loopback and processes are in reach."""
    log: list[str] = []
    res, probe, connections = attack(built, "uid-weak", lambda root: run_autograder(root, log))
    assert "uid=65534" in probe and "answers=False" in probe and "results=False" in probe, probe
    assert res["score"] == 0
    assert connections > 0 and "net=connected" in probe and "hostpid=True" in probe, probe
    assert "WEAK ISOLATION" in log[0] and "CAN reach the network" in log[0]


def test_auto_refuses_without_namespaces(tmp_path, monkeypatch):
    """Neither user namespaces nor namespaces for root (simulated): `auto` refuses, saying what is
    missing and what the weak wall would leave open; run_autograder writes that as a 0-point
    configuration error. The weak wall is used only when named."""
    monkeypatch.setattr(gradescope, "bwrap_problem", lambda: "user namespaces are forbidden (simulated)")
    monkeypatch.setattr(gradescope, "root_ns_problem", lambda: "no CAP_SYS_ADMIN (simulated)")
    for mode in ("auto", "bwrap", "bwrap-root"):
        with pytest.raises(gradescope.IsolationUnavailable, match="simulated"):
            gradescope.choose_isolation(mode)
    with pytest.raises(gradescope.IsolationUnavailable) as e:
        gradescope.choose_isolation("auto")
    msg = str(e.value)
    for part in ("user namespaces", "CAP_SYS_ADMIN", "--isolation uid-weak", "network", "process list"):
        assert part in msg, msg
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / gradescope.CONFIG).write_text(json.dumps({"isolation": "auto"}))
    assert gradescope.run_main(["--root", str(tmp_path)]) == 2
    res = json.loads((tmp_path / "results" / "results.json").read_text())
    assert res["score"] == 0 and "configuration error" in res["output"] and "CAP_SYS_ADMIN" in res["output"]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        for mode in ("uid-weak", "uid"):
            iso, how = gradescope.choose_isolation(mode)
            assert isinstance(iso, gradescope.UidIsolation) and "uid-weak" in how
    with pytest.raises(ValueError, match="isolation must be one of"):
        gradescope.build_zip(tmp_path / "z.zip", isolation="uid-only")


def test_bwrap_root_command_line(tmp_path):
    """What bwrap-root changes in Isolation.command's line: no user namespace (so no --uid), the
    namespaces named one by one, setpriv to nobody before the program, world-writable private
    tmpfs, and 0755 folders on the way to every mount (bwrap as root makes them 0700)."""
    from course_instructor.grading import isolation

    opts = ["--hostname", "grader", "--cap-drop", "ALL", "--size", "9", "--tmpfs", "/tmp"]
    opts += ["--ro-bind", "/opt/x/venv", "/opt/x/venv", "--tmpfs", "/opt/x/venv/solutions", "--chdir", "/tmp"]
    assert isolation._as_root(opts) == [
        "--hostname",
        "grader",
        "--size",
        "9",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--perms",
        "0755",
        "--dir",
        "/opt",
        "--perms",
        "0755",
        "--dir",
        "/opt/x",
        "--ro-bind",
        "/opt/x/venv",
        "/opt/x/venv",
        "--tmpfs",
        "/opt/x/venv/solutions",
        "--chdir",
        "/tmp",
    ]
    with pytest.raises(RuntimeError, match="--bind-try"):
        isolation._as_root(["--bind-try", "/a", "/a"])
    if isolation.check_root_namespaces():
        pytest.skip(f"bwrap as root cannot create namespaces here: {isolation.check_root_namespaces()}")
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "f.py").write_text("x")
    (tmp_path / "box" / "f.py").chmod(0o600)
    cmd = isolation.RootNamespaceIsolation().command(
        ["python3", "-c", "1"], env={"A": "b"}, cwd="/tmp", ro={str(tmp_path / "box"): "/box"}
    )
    assert (
        "--unshare-all" not in cmd
        and "--uid" not in cmd
        and "--unshare-net" in cmd
        and "--unshare-pid" in cmd
    )
    sep = cmd.index("--")
    assert cmd[sep + 1].endswith("setpriv") and f"--reuid={isolation.NOBODY}" in cmd[sep:]
    assert cmd[-4:] == ["--", "python3", "-c", "1"]
    assert (tmp_path / "box" / "f.py").stat().st_mode & 0o444 == 0o444  # a real nobody reads the box
