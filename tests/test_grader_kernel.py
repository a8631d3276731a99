"""The locked-down grading kernel and its fork server (course_instructor/grading/grader_kernel.py).

Kernels are started the way nbgrader starts them (jupyter_client + the course's kernelspec), with
and without the fork server ("zygote"). Each test asserts what a grader relies on: the forked
kernel is a real, locked-down kernel; interrupts reach it; it dies with its launcher; a kernel
cannot reach the fork server; without a server kernels still start (cold)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _root(tmp_path: Path, warm: bool) -> Path:
    from course_instructor.grading import autograde
    root = tmp_path / "course"
    (root / "autograded" / "s1" / "exercises").mkdir(parents=True)
    autograde.write_course_config(root, 10, autograde.grading_kernel_spec(root, 60, warm), threads=1)
    return root


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """start(warm=..., cwd=...) -> (KernelManager, client); everything is stopped afterwards."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from course_instructor.grading import autograde
    started, zygotes = [], []

    def start(warm: bool = True, cwd: Path | None = None):
        """A second call in one test starts another kernel from the same server."""
        if zygotes:
            z = zygotes[0]
            root = z.root
        else:
            root, z = _root(tmp_path, warm), None
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(root / "home" / "runtime"))
        if warm and z is None:
            z = autograde.KernelZygote(root, autograde.kernel_env(root))
            z.start()
            zygotes.append(z)
            assert z.wait_ready(60), (root / "zygote.log").read_text()
        km = KernelManager(kernel_name="course-grader",
                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "jupyter" / "kernels")]))
        km.start_kernel(cwd=str(cwd or root / "autograded" / "s1" / "exercises"))
        started.append(km)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        return km, kc, z, root

    yield start
    for km in started:
        try:
            km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass
    for z in zygotes:
        z.stop()


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


PROBE = "import os, sys, json; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), " \
        "'cwd': os.getcwd(), 'torch': 'torch' in sys.modules, 'course_lib': 'course_lib' in sys.modules}))"


def _gone(pid: int, within: float) -> bool:
    t_end = time.time() + within
    while time.time() < t_end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:   # a zombie of ours counts as gone
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def test_forked_kernel_is_a_locked_down_kernel_in_the_notebook_folder(kernels):
    km, kc, z, root = kernels(warm=True)
    v = run(kc, PROBE)["value"]
    launcher = km.provisioner.process.pid
    assert v["pid"] != launcher and v["ppid"] == z.proc.pid          # forked by the server
    assert v["cwd"] == str((root / "autograded" / "s1" / "exercises").resolve())
    assert v["torch"] and not v["course_lib"]                        # warm, and no instructor code
    # the lock-down of a cold kernel: no solutions / repository reads, no processes
    r = run(kc, "import course_instructor.grading.autograde")
    assert r["error"] in ("ModuleNotFoundError", "PermissionError"), r
    assert run(kc, "import subprocess; subprocess.run(['true'])")["error"] == "PermissionError"
    assert run(kc, f"open({str(root / 'nbgrader_config.py')!r}).read()")["error"] == "PermissionError"
    # ... and it cannot reach the fork server or signal it
    sock = json.loads((root / "kernel_spec.json").read_text())["zygote_socket"]
    r = run(kc, f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect({sock!r})")
    assert r["error"] == "PermissionError", r
    assert run(kc, f"import os, signal; os.kill({z.proc.pid}, signal.SIGKILL)")["error"] == "PermissionError"
    assert z.alive()
    # torch works in the forked child (no thread pool inherited in a bad state)
    r = run(kc, "import torch, json; x = torch.randn(256, 256); print(json.dumps(float((x @ x).abs().sum() > 0)))")
    assert r == {"value": 1.0, "error": None}


def test_interrupt_reaches_the_forked_kernel(kernels):
    km, kc, _, _ = kernels(warm=True)
    msg_id = kc.execute("while True:\n    pass")
    time.sleep(1.0)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert run(kc, "print(41 + 1)")["value"] == 42                  # and it keeps working


def test_kernel_dies_with_its_launcher_and_exit_reaches_jupyter(kernels):
    km, kc, z, _ = kernels(warm=True)
    pid = run(kc, PROBE)["value"]["pid"]
    os.kill(km.provisioner.process.pid, signal.SIGKILL)             # what a timed-out nbgrader does
    assert _gone(pid, 10), "the forked kernel outlived its launcher"
    assert z.alive()
    km2, kc2, _, _ = kernels(warm=True)                              # the server keeps serving
    pid2 = run(kc2, PROBE)["value"]["pid"]
    km2.shutdown_kernel()                                            # a clean shutdown ...
    assert _gone(pid2, 10)
    assert km2.provisioner is None or not km2.is_alive()             # ... ends the launcher too


def test_server_kills_leftover_kernels_between_submissions(kernels):
    km, kc, z, _ = kernels(warm=True)
    pid = run(kc, PROBE)["value"]["pid"]
    z.kill_kernels()
    assert _gone(pid, 10)
    t_end = time.time() + 10
    while km.is_alive() and time.time() < t_end:                     # the launcher follows
        time.sleep(0.1)
    assert not km.is_alive()


def test_without_a_server_kernels_start_cold(kernels):
    km, kc, _, _ = kernels(warm=False)
    v = run(kc, PROBE)["value"]
    assert v["pid"] == km.provisioner.process.pid and v["torch"] and not v["course_lib"]
    assert run(kc, "import subprocess; subprocess.run(['true'])")["error"] == "PermissionError"


def test_server_refuses_a_kernel_outside_the_graded_folders(kernels, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    km, kc, _, _ = kernels(warm=True, cwd=elsewhere)                 # refused: the launcher starts it cold
    assert run(kc, PROBE)["value"]["pid"] == km.provisioner.process.pid


@pytest.mark.parametrize("case", ["grading_folder_inside_repository", "repository_inside_tmp"])
def test_most_specific_folder_decides(tmp_path, case):
    """The audit hook's rule when folders nest: the grading folder may sit inside the instructor
    repository (``--out grades``), and the instructor's files may sit inside a writable /tmp."""
    import subprocess
    import sys
    from course_instructor.grading import sandbox_child
    if case == "grading_folder_inside_repository":
        repo = tmp_path / "repo"
        work, writable, secret = repo / "grades" / "autograded", [repo / "grades" / "autograded"], repo / "solutions" / "x.py"
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
for name, fn in [("read_own", lambda: open({str(work / 'mine.txt')!r}).read()),
                 ("write_own", lambda: open({str(work / 'new.txt')!r}, "w").write("x")),
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
        "read_own": "ok", "write_own": "ok", "read_secret": "refused", "write_secret": "refused",
        "list_repo": "refused"}, out.stderr
    assert secret.read_text() == "SECRET = 1\n"
