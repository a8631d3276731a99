"""The isolated grading kernel and its fork server (course_instructor/grading/grader_kernel.py).

Kernels are started the way nbgrader starts them (jupyter_client + the course's kernelspec, Unix
socket transport in the submission's private folder), with and without the fork server
("zygote"). Each test asserts what a grader relies on: the kernel runs inside bubblewrap (no
instructor repository, no network, uid nobody, no other process visible); interrupts reach it;
it dies with its launcher; closing a submission kills every process of it; without a server
kernels still start (cold), in the submission's folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """start(warm=..., cwd=...) -> (KernelManager, client, SubmissionKernels); all stopped afterwards."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    from course_instructor.grading import nbgrader_run
    from course_instructor.grading.isolation import Isolation

    started, subs = [], []
    root = tmp_path / "course"
    (root / "autograded" / "s1" / "exercises").mkdir(parents=True)
    iso = Isolation(True)
    nbgrader_run.write_course_config(root, 10, iso, threads=1)

    def start(warm: bool = True, cwd: Path | None = None):
        """A second call in one test starts another kernel of the same submission."""
        if not subs:
            subs.append(nbgrader_run.SubmissionKernels(root, iso, "s1", 60, warm=warm))
            if warm:
                assert subs[0].zygote.wait_ready(60), (root / "zygote.log").read_text()
        k = subs[0]
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(k.run_dir / "runtime"))
        km = KernelManager(
            kernel_name="course-grader",
            transport="ipc",
            ip=str(k.run_dir / f"t{len(started)}"),
            connection_file=str(k.run_dir / "runtime" / f"k{len(started)}.json"),
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "jupyter" / "kernels")]),
        )
        km.start_kernel(cwd=str(cwd or k.cwd))
        started.append(km)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        return km, kc, k

    yield start
    for km in started:
        try:
            km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass
    for k in subs:
        k.close()


def run(kc, code: str, timeout: float = 30) -> dict:
    """Execute; return {'value': <the last printed line parsed as JSON>, 'error': ename or None}."""
    out, err = [], None
    msg_id = kc.execute(code)
    t_end = time.time() + timeout
    while time.time() < t_end:
        msg = kc.get_iopub_msg(timeout=max(0.1, t_end - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            err = msg["content"]["ename"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    lines = "".join(out).strip().splitlines()
    return {"value": json.loads(lines[-1]) if lines else None, "error": err}


PROBE = (
    "import os, sys, json; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'uid': os.getuid(), "
    "'cwd': os.getcwd(), 'torch': 'torch' in sys.modules, 'course_lib': 'course_lib' in sys.modules, "
    f"'repo': os.path.exists({str(ROOT / 'solutions')!r}) or os.path.exists({str(ROOT / 'README.md')!r}), "
    "'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), "
    "'env': sorted(os.environ)}))"
)


def test_forked_kernel_runs_isolated_in_the_notebook_folder(kernels):
    km, kc, k = kernels(warm=True)
    v = run(kc, PROBE)["value"]
    assert v["cwd"] == str(k.cwd)
    assert v["torch"] and not v["course_lib"]  # warm, and no instructor code
    assert v["ppid"] != 1  # forked by the server
    assert v["uid"] == 65534 and not v["repo"]  # nobody; the repository does not exist
    assert len(v["procs"]) <= 4, v["procs"]  # only the sandbox's own processes
    assert "JPY_PARENT_PID" not in v["env"] and "PYTHONPATH" not in v["env"]
    assert run(kc, "import course_instructor.grading.autograde")["error"] == "ModuleNotFoundError"
    assert run(kc, "import solutions")["error"] == "ModuleNotFoundError"
    assert run(kc, "import subprocess; subprocess.run(['true'])")["error"] == "PermissionError"
    # no network, and the grader (this process) cannot be signalled: it does not exist in there
    r = run(kc, "import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)")
    assert r["error"] in ("OSError", "PermissionError", "TimeoutError", "gaierror"), r
    assert run(kc, f"import os; os.kill({os.getpid()}, 0)")["error"] in (
        "ProcessLookupError",
        "PermissionError",
    )
    # torch works in the forked child (no thread pool inherited in a bad state)
    r = run(
        kc, "import torch, json; x = torch.randn(256, 256); print(json.dumps(float((x @ x).abs().sum() > 0)))"
    )
    assert r == {"value": 1.0, "error": None}


def test_interrupt_reaches_the_forked_kernel(kernels):
    km, kc, _ = kernels(warm=True)
    msg_id = kc.execute("print('looping', flush=True)\nwhile True:\n    pass")
    t_end = time.time() + 60  # interrupt only once the loop runs (a loaded machine starts it late)
    while time.time() < t_end:
        m = kc.get_iopub_msg(timeout=t_end - time.time())
        if m["msg_type"] == "stream" and "looping" in m["content"]["text"]:
            break
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert run(kc, "print(41 + 1)")["value"] == 42  # and it keeps working


def test_kernel_dies_with_its_launcher(kernels):
    import signal

    km, kc, k = kernels(warm=True)
    pid = run(kc, PROBE)["value"]["pid"]  # its pid inside the sandbox
    os.kill(km.provisioner.process.pid, signal.SIGKILL)  # what a timed-out nbgrader does
    assert k.zygote.alive()
    km2, kc2, _ = kernels(warm=True)  # the server keeps serving
    t_end, alive = time.time() + 10, True
    while alive and time.time() < t_end:
        alive = run(kc2, f"import os, json; print(json.dumps(os.path.exists('/proc/{pid}')))")["value"]
        time.sleep(0.2)
    assert not alive, "the forked kernel outlived its launcher"


def test_closing_the_submission_ends_every_kernel(kernels):
    km, kc, k = kernels(warm=True)
    run(kc, "import threading, time; threading.Thread(target=time.sleep, args=(600,)).start(); print(1)")
    k.close()
    t_end = time.time() + 10
    while km.is_alive() and time.time() < t_end:  # the launcher follows
        time.sleep(0.1)
    assert not km.is_alive()


def test_without_a_server_kernels_start_cold_and_isolated(kernels):
    km, kc, _ = kernels(warm=False)
    v = run(kc, PROBE)["value"]
    assert v["ppid"] == 1 and v["torch"] and not v["course_lib"] and not v["repo"] and v["uid"] == 65534
    assert run(kc, "import subprocess; subprocess.run(['true'])")["error"] == "PermissionError"


def test_a_kernel_asked_to_start_elsewhere_runs_in_the_submission_folder(kernels, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    km, kc, k = kernels(warm=True, cwd=elsewhere)  # refused by the server: starts cold
    v = run(kc, PROBE)["value"]
    assert v["ppid"] == 1 and v["cwd"] == str(k.cwd)


@pytest.mark.parametrize("case", ["grading_folder_inside_repository", "repository_inside_tmp"])
def test_most_specific_folder_decides(tmp_path, case):
    """The audit hook's rule when folders nest: the grading folder may sit inside the instructor
    repository (``--out grades``), and the instructor's files may sit inside a writable /tmp."""
    import subprocess
    import sys

    from course_instructor.grading import sandbox_child

    if case == "grading_folder_inside_repository":
        repo = tmp_path / "repo"
        work, writable, secret = (
            repo / "grades" / "autograded",
            [repo / "grades" / "autograded"],
            repo / "solutions" / "x.py",
        )
    else:
        repo = tmp_path / "out" / "nbgrader" / "source"
        work, writable, secret = tmp_path / "out" / "nbgrader" / "autograded", [tmp_path], repo / "x.py"
    for p in (work, secret.parent):
        p.mkdir(parents=True, exist_ok=True)
    secret.write_text("SECRET = 1\n")
    (work / "mine.txt").write_text("ok")
    spec = {"root": [str(w) for w in writable], "forbidden": [str(repo)], "allowed_read": []}
    code = f"""
import json, os, sys
sys.path.insert(0, {str(Path(sandbox_child.__file__).parent)!r})
import sandbox_child
sandbox_child.install_hook(json.loads({json.dumps(json.dumps(spec))}), kernel=True)
res = {{}}
for name, fn in [("read_own", lambda: open({str(work / "mine.txt")!r}).read()),
                 ("write_own", lambda: open({str(work / "new.txt")!r}, "w").write("x")),
                 ("read_secret", lambda: open({str(secret)!r}).read()),
                 ("write_secret", lambda: open({str(secret)!r}, "a").write("x")),
                 ("list_repo", lambda: os.listdir({str(secret.parent)!r}))]:
    try:
        fn(); res[name] = "ok"
    except PermissionError:
        res[name] = "refused"
print(json.dumps(res))
"""
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "read_own": "ok",
        "write_own": "ok",
        "read_secret": "refused",
        "write_secret": "refused",
        "list_repo": "refused",
    }, out.stderr
    assert secret.read_text() == "SECRET = 1\n"
