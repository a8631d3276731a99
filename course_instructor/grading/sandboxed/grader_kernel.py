"""The Jupyter kernel of a graded notebook, its launcher and its fork server. Everything here runs
INSIDE the submission's sandbox (started by nb_runner.py through the kernelspec that
nbgrader_run.py writes; never imported by the course or the grader).

    python -I -S grader_kernel.py SPEC.json -f CONNECTION_FILE   # the kernelspec's launcher
    python -I -S grader_kernel.py --zygote SPEC.json             # the fork server

The notebook runs the student's code, so the kernel locks itself down before ipykernel starts:
rlimits and the fork ban (limits.py), an explicit sys.path (the notebook's folder + site-packages,
no editable-install finder), the environment of SPEC's ``kernel_env`` only, and the audit hook of
the grading sandbox as an extra alarm -- on top of the sandbox (isolation.py: no network, uid
nobody, its own pid namespace, only tmpfs folders writable). Its outputs only feed the feedback
page and the written answers: code points are decided by the grader, never by this kernel.

Start-up cost. Importing torch + transformers + ipykernel takes ~4 s of CPU, which each of the
notebooks of a submission would pay. So each submission gets one **fork server** (the "zygote":
those trusted libraries imported once, no student code, no course_lib), started by nb_runner.py.
The kernelspec's command is a small launcher: it hands the zygote its argv and stdin/stdout/
stderr over the zygote's Unix socket; the zygote forks a kernel; the launcher stays the process
Jupyter knows, relays signals (interrupt = SIGINT) and exits with the kernel's exit code; if the
launcher dies, the zygote kills the kernel. Without a zygote (``--cold-kernels``, or none
reachable in time) the launcher locks itself down and becomes the kernel.
"""

import json
import os
import signal
import socket
import sys
import time

PASSED_ENV = ("NBGRADER_EXECUTION",)  # what nbgrader tells the kernel (training cells shrink)
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


# what the notebooks import besides (~1.4 s of CPU per kernel): the zygote pays it once
ZYGOTE_EXTRAS = (
    "matplotlib.pyplot",
    "datasets",
    "trl",
    "trl.trainer.sft_trainer",
    "trl.trainer.sft_config",
    "trl.trainer.reward_trainer",
    "trl.trainer.reward_config",
    "trl.trainer.grpo_trainer",
    "trl.trainer.grpo_config",
    "trl.trainer.dpo_trainer",
    "trl.trainer.dpo_config",
    "pandas",
    "vaderSentiment.vaderSentiment",
    "ipywidgets",
    "tqdm.auto",
    "safetensors.torch",
    "fastapi",
)


def preload(extras: bool = False) -> None:
    """Trusted imports (they load native code) - before any lock-down, before any student code."""
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib  # noqa: F401
    import matplotlib_inline.backend_inline  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401

    try:
        import transformers  # noqa: F401
        from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    if extras:
        import importlib

        for name in ZYGOTE_EXTRAS:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - an optional library missing costs only speed
                pass


def base_path(spec: dict) -> list:
    return [p for p in sys.path if p and p != os.path.dirname(os.path.abspath(__file__))] + spec["site_dirs"]


def _load(spec: dict, name: str):
    """A helper module of the kernel folder (limits.py, sandbox_hook.py), loaded by path."""
    import importlib.util

    s = importlib.util.spec_from_file_location(
        f"_course_{name}", os.path.join(spec["kernel_dir"], f"{name}.py")
    )
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    return mod


def lock_down_and_run(spec: dict, base: list) -> None:
    """Environment, limits, fork ban, sys.path, audit hook, then ipykernel with sys.argv[1:]
    (``-f CONNECTION_FILE``)."""
    passed = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in spec["kernel_env"].items()})
    os.environ.update(passed)
    for var in ("HOME", "MPLCONFIGDIR", "COURSE_CHECKPOINTS"):
        try:
            os.makedirs(os.environ[var], exist_ok=True)
        except (KeyError, OSError):
            pass
    sys.path[:] = [os.getcwd()] + base
    import importlib

    importlib.invalidate_caches()
    limits = _load(spec, "limits")
    hook = _load(spec, "sandbox_hook")
    limits.apply(spec["cpu_seconds"], spec["mem_mb"], spec["fsize_mb"])
    preload()
    limits.install_fork_ban()
    try:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1)))
    except Exception:  # noqa: BLE001
        pass
    hook.install_hook(
        {
            "writable": spec["writable"],
            "root": spec["writable"],
            "forbidden": spec["forbidden"],
            "allowed_read": spec["allowed_read"],
        },
        kernel=True,
    )
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
    # the shutdown reply has been sent: skip the interpreter's teardown of torch & co (~1 s per
    # notebook) - nothing of the kernel's is kept
    os._exit(0)


# --- the launcher (the kernelspec's process) -----------------------------------------------------
def launch_via_zygote(spec: dict) -> None:
    """Have the zygote fork this kernel; returns (to start cold) only when it cannot."""
    path = spec.get("zygote_socket")
    if not path:
        return
    t_end = time.time() + float(spec.get("zygote_wait", 60))
    while not os.path.exists(path) and time.time() < t_end:  # the server may still be importing
        time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(10)
        s.connect(path)
        socket.send_fds(
            s, [json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": _passed()}).encode()], [0, 1, 2]
        )
        reply = json.loads(s.recv(65536) or b"{}")
        int(reply["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        s.close()
        return

    def relay(n, _frame):  # the kernel's pid lives in the sandbox's pid namespace: ask the server
        try:
            s.send(json.dumps({"signal": int(n)}).encode())
        except OSError:
            pass

    for sig in RELAYED:
        signal.signal(sig, relay)
    parent = os.getppid()
    s.settimeout(0.5)
    while True:
        try:
            data = s.recv(65536)
        except TimeoutError:
            if os.getppid() != parent:  # Jupyter (nbgrader) is gone: so is the kernel
                os._exit(1)  # (the server sees the connection close)
            continue
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:  # the zygote is gone: so is the kernel
            os._exit(1)
        try:
            os._exit(int(json.loads(data)["exit"]))
        except (ValueError, KeyError, TypeError):
            os._exit(1)


def _passed() -> dict:
    return {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


def launch_cold(spec: dict) -> None:
    """No server: this process becomes the kernel."""
    lock_down_and_run(spec, base_path(spec))


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


# --- the zygote ---------------------------------------------------------------------------------
def serve(spec: dict) -> None:
    """Fork one locked-down kernel per launcher request until SIGTERM or until our parent exits."""
    import select

    base = base_path(spec)
    sys.path[:] = base
    preload(extras=True)
    path = spec["zygote_socket"]
    tmp = path + ".tmp"
    for p in (path, tmp):
        if os.path.exists(p):
            os.unlink(p)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(tmp)
    os.chmod(tmp, 0o600)
    srv.listen(16)
    os.rename(tmp, path)  # the socket appears only once it accepts
    children = {}  # pid -> the launcher's connection
    allowed_cwd = os.path.realpath(spec["kernel_cwd_root"])

    def kill_all(*_):
        for pid in list(children):
            _kill(pid, signal.SIGKILL)

    def stop(*_):
        kill_all()
        try:
            os.unlink(path)
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, kill_all)  # autograde, between submissions: no kernel outlives one
    parent = os.getppid()
    while True:
        if os.getppid() != parent:
            stop()
        for pid, conn in list(children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                code = os.waitstatus_to_exitcode(status) if status else 0
                try:
                    conn.send(json.dumps({"exit": code if code >= 0 else 128 - code}).encode())
                except OSError:
                    pass
                conn.close()
                del children[pid]
        try:
            ready, _, _ = select.select([srv] + list(children.values()), [], [], 0.2)
        except InterruptedError:
            continue
        for r in ready:
            if r is srv:
                _accept(srv, children, spec, base, allowed_cwd)
                continue
            try:
                data = r.recv(256)
            except OSError:
                data = b""
            pid = next((p for p, c in children.items() if c is r), None)
            if pid is None:
                continue
            if not data:  # the launcher died (SIGKILL): its kernel goes too
                _kill(pid, signal.SIGKILL)
                continue
            try:  # a signal the launcher relays (interrupt)
                sig = int(json.loads(data)["signal"])
            except (ValueError, KeyError, TypeError):
                continue
            if sig in [int(x) for x in RELAYED]:
                _kill(pid, sig)


def _accept(srv, children: dict, spec: dict, base: list, allowed_cwd: str) -> None:
    try:
        conn, _ = srv.accept()
    except OSError:
        return
    fds = []
    try:
        conn.settimeout(2)
        raw, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        req = json.loads(raw)
        argv, cwd = list(map(str, req["argv"])), os.path.realpath(req["cwd"])
        passed = {k: str(v) for k, v in dict(req.get("env") or {}).items() if k in PASSED_ENV}
        if len(fds) != 3 or not (cwd == allowed_cwd or cwd.startswith(allowed_cwd + os.sep)):
            raise ValueError("refused")
    except (OSError, ValueError, KeyError, TypeError):
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:  # the kernel
        try:
            srv.close()
            for c in children.values():
                c.close()
            conn.close()
            for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
                os.close(fd)
            os.chdir(cwd)
            os.environ.update(passed)
            sys.argv = [sys.argv[0]] + argv
            lock_down_and_run(spec, base)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    conn.setblocking(True)
    try:
        conn.send(json.dumps({"pid": pid}).encode())
    except OSError:
        _kill(pid, signal.SIGKILL)
    children[pid] = conn


def main() -> None:
    if sys.argv[1] == "--zygote":
        spec = json.loads(open(sys.argv[2]).read())
        serve(spec)
        return
    spec_path = sys.argv[1]
    spec = json.loads(open(spec_path).read())
    del sys.argv[1]
    launch_via_zygote(spec)
    launch_cold(spec)


if __name__ == "__main__":
    main()
