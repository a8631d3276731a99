"""The Jupyter kernel nbgrader uses while autograding (started through a kernelspec that
course_instructor/grading/autograde.py writes; never imported by the course).

    python -I -S grader_kernel.py SPEC.json -f CONNECTION_FILE     # the kernelspec's command
    python -I -S grader_kernel.py --zygote SPEC.json               # the fork server (autograde)

The notebook runs the student's code, so this kernel gets the same lock-down as the grading
sandbox (sandbox_child.install_hook): explicit sys.path (the notebook's folder + site-packages,
no editable-install finder, so no instructor repository and no solutions/), an audit hook that
refuses reads under the instructor repository, writes outside the submission's folders,
subprocesses, ctypes and Unix-socket connections, plus CPU and memory limits. Its outputs only
feed the feedback HTML: the points of code exercises are decided by the grader, never by this
kernel.

Start-up cost. Importing torch + transformers + ipykernel takes ~4 s of CPU, paid by each of the
eight notebooks of every submission. So autograde starts one **fork server** per batch (the
"zygote": those trusted libraries imported once, no student code, no course_lib). The kernelspec's
command is then only a small launcher: it hands the zygote its argv, working folder, environment
and stdin/stdout/stderr; the zygote forks a child that locks itself down exactly as a cold kernel
does and runs ipykernel. The launcher stays the process Jupyter knows: it relays signals
(interrupt = SIGINT) to the child and exits with the child's exit code; if the launcher or the
process that started it dies, the zygote kills the child. Without a zygote (none configured, or it
cannot be reached) the launcher starts the kernel itself, as before.
"""
import json
import os
import signal
import socket
import sys

RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


# what the notebooks import besides (~1.4 s of CPU per kernel): the zygote pays it once
ZYGOTE_EXTRAS = ("matplotlib.pyplot", "datasets", "trl", "trl.trainer.sft_trainer", "trl.trainer.sft_config",
                 "trl.trainer.reward_trainer", "trl.trainer.reward_config", "trl.trainer.grpo_trainer",
                 "trl.trainer.grpo_config", "trl.trainer.dpo_trainer", "trl.trainer.dpo_config", "pandas",
                 "vaderSentiment.vaderSentiment", "ipywidgets", "tqdm.auto", "safetensors.torch", "fastapi")


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


def lock_down_and_run(spec: dict, base: list) -> None:
    """Limits, sys.path, audit hook, then ipykernel with sys.argv[1:] (``-f CONNECTION_FILE``)."""
    sys.path[:] = [os.getcwd()] + base
    import resource
    for res, val in ((resource.RLIMIT_AS, spec["mem_mb"] * 2 ** 20), (resource.RLIMIT_CPU, spec["cpu_seconds"]),
                     (resource.RLIMIT_FSIZE, spec["fsize_mb"] * 2 ** 20), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass
    import importlib
    import importlib.util
    importlib.invalidate_caches()
    s = importlib.util.spec_from_file_location("_course_sandbox_hook", spec["hook_module"])
    hook = importlib.util.module_from_spec(s)
    s.loader.exec_module(hook)
    preload()
    try:
        import torch
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1)))
    except Exception:  # noqa: BLE001
        pass
    hook.install_hook({"root": spec["writable"], "forbidden": spec["forbidden"],
                       "allowed_read": spec["allowed_read"]}, kernel=True)
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
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(10)
        s.connect(path)
        msg = json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(s, [msg], [0, 1, 2])
        reply = json.loads(s.recv(65536) or b"{}")
        pid = int(reply["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        s.close()
        return
    for sig in RELAYED:
        signal.signal(sig, lambda n, _f: _kill(pid, n))
    parent = os.getppid()
    s.settimeout(0.5)
    while True:
        try:
            data = s.recv(65536)
        except socket.timeout:
            if os.getppid() != parent:          # Jupyter (nbgrader) is gone: so is the kernel
                _kill(pid, signal.SIGKILL)
                os._exit(1)
            continue
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:                            # the zygote is gone: do not leave an orphan
            _kill(pid, signal.SIGKILL)
            os._exit(1)
        try:
            os._exit(int(json.loads(data)["exit"]))
        except (ValueError, KeyError, TypeError):
            os._exit(1)


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
    os.rename(tmp, path)                        # the socket appears only once it accepts
    children = {}                               # pid -> the launcher's connection
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
    signal.signal(signal.SIGUSR1, kill_all)    # autograde, between submissions: no kernel outlives one
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
                data = r.recv(16)
            except OSError:
                data = b""
            if not data:                        # the launcher died (SIGKILL): its kernel goes too
                for pid, conn in children.items():
                    if conn is r:
                        _kill(pid, signal.SIGKILL)


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
        argv, cwd, env = list(map(str, req["argv"])), os.path.realpath(req["cwd"]), dict(req["env"])
        if len(fds) != 3 or not cwd.startswith(allowed_cwd + os.sep):
            raise ValueError("refused")
    except (OSError, ValueError, KeyError, TypeError):
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:                                # the kernel
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
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
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
    spec = json.loads(open(sys.argv[1]).read())
    del sys.argv[1]
    launch_via_zygote(spec)
    preload_base = base_path(spec)
    lock_down_and_run(spec, preload_base)


if __name__ == "__main__":
    main()
