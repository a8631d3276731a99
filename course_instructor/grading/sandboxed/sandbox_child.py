"""The sandboxed grading process (started by course_instructor/grading/sandbox.py; grader_kernel.py
loads it by path for its audit hook).

    python -I -S sandbox_child.py SPEC.json

Runs inside bubblewrap (isolation.py: no instructor repository, no network, uid nobody, own pid
namespace) with an explicit sys.path (the sandbox's own copy of course_lib + site-packages
without the editable-install finder). Before any student code is imported it loads the fork ban
(limits.py: no new processes) and an audit hook -- an extra alarm, not the wall -- that refuses to
open files under the forbidden roots, to write outside the scratch folders, to start processes,
to load native code through ctypes and to open sockets. It then imports the student's modules,
runs every exercise on its cases (caserun.py) and writes one JSON line per exercise to the result
descriptor (the original stdout), in the wire format (course_instructor/grading/wire.py):
``{"ready": true}``, then ``{"i": i, "name": ..., "results": [...], "output": "..."}`` per
exercise, then ``{"done": true}``.
The grader parses those lines strictly; it never sees expected outputs here and decides nothing.
"""

import json
import os
import sys
import types


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    sys.path[:] = [spec["root"]] + [p for p in sys.path if p] + spec["site_dirs"]
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy  # noqa: F401
    import torch

    torch.set_num_threads(1)
    pkg = types.ModuleType("course_lib")  # a bare package: its __init__ imports every
    pkg.__path__ = [os.path.join(spec["root"], "course_lib")]  # module; we import them one by one
    pkg.__file__ = os.path.join(pkg.__path__[0], "__init__.py")
    sys.modules["course_lib"] = pkg
    from course_instructor.grading import wire
    from course_instructor.grading.sandboxed import caserun, limits

    jobs = torch.load(spec["jobs"], weights_only=True)  # written by the grader, not by students
    if spec.get("preload_transformers"):
        import transformers  # noqa: F401
        from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: F401

        if any(caserun.needs_tokenizer(c) for cs in jobs.values() for c in cs):
            caserun.tiny_tokenizer()
    results = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    if spec.get("fork_ban", True) and not limits.install_fork_ban():
        sys.stderr.write("sandbox: the fork ban could not be loaded\n")
    _send(results, wire.READY)
    install_hook(spec)
    sink = _Sink(spec.get("output_cap", 65536))
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = sink

    import importlib

    import_errors = {}
    for i, name in enumerate(spec["order"]):
        module = spec["modules"][name]
        cases = jobs[name]
        if f"course_lib.{module}" not in sys.modules and module not in import_errors:
            try:  # imported lazily: a module that hangs or fails at import costs only its exercises
                importlib.import_module(f"course_lib.{module}")
            except BaseException as e:  # noqa: BLE001 - SystemExit at import too
                import_errors[module] = (
                    f"importing course_lib/{module}.py failed: {type(e).__name__}: {str(e)[:300]}"
                )
        if module in import_errors:
            res = [_error(import_errors[module]) for _ in cases]
        else:
            func = getattr(sys.modules.get(f"course_lib.{module}"), name, None)
            if not callable(func):
                res = [_error(f"course_lib/{module}.py has no function {name}") for _ in cases]
            else:
                res = [caserun.run_case(func, case) for case in cases]
        try:
            line = json.dumps(
                {"i": i, "name": name, "results": [_encoded(wire, r) for r in res], "output": sink.text()}
            )
        except BaseException as e:  # noqa: BLE001 - a result that cannot be encoded
            line = json.dumps(
                {
                    "i": i,
                    "name": name,
                    "output": "",
                    "results": [
                        _error(f"the result cannot be sent to the grader: {type(e).__name__}: {str(e)[:200]}")
                        for _ in cases
                    ],
                }
            )
        results.write(line + "\n")
        results.flush()
    _send(results, wire.DONE)
    os._exit(0)  # do not wait for threads the student code may have started


def _encoded(wire, r: dict) -> dict:
    """One case result as JSON data; a value that cannot be encoded becomes that case's error."""
    try:
        return wire.encode(r)
    except Exception as e:  # noqa: BLE001
        return _error(f"{type(e).__name__}: {str(e)[:300]}")


def _send(f, msg: dict) -> None:
    f.write(json.dumps(msg) + "\n")
    f.flush()


def _error(msg: str) -> dict:
    return {"id": "", "value": None, "grads": {}, "error": msg, "error_types": ["Exception"]}


class _Sink:
    """stdout/stderr replacement: keeps the first `cap` characters, drops the rest."""

    def __init__(self, cap: int):
        self.cap, self.parts, self.n = cap, [], 0

    def write(self, s):
        s = str(s)
        if self.n < self.cap:
            self.parts.append(s[: self.cap - self.n])
        self.n += len(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self) -> str:
        extra = f"\n[... {self.n - self.cap} more characters of output dropped]" if self.n > self.cap else ""
        return "".join(self.parts) + extra


BLOCKED_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.startfile",
    "ctypes.dlopen",
    "ctypes.dlsym",
    "ctypes.dlsym/handle",
    "ctypes.call_function",
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "sys.remote_exec",
    "os.chroot",
    "os.setuid",
}
PATH_EVENTS_WRITE = {
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.rename",
    "os.replace",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
    "shutil.copytree",
    "os.removexattr",
    "os.setxattr",
}


KERNEL_ALLOWED = {"socket.connect", "socket.bind", "socket.sendto", "os.kill", "signal.pthread_kill"}


DEST_ONLY = {"shutil.copyfile", "shutil.copytree", "os.symlink", "os.link"}
BOTH_ENDS = {"os.rename", "os.replace", "shutil.move"}


def install_hook(spec: dict, kernel: bool = False) -> None:
    """`kernel=True`: the notebook kernel under nbgrader (it needs its own sockets)."""
    forbidden = [os.path.realpath(p) for p in spec["forbidden"]]
    allowed = [os.path.realpath(p) for p in spec["allowed_read"]]
    roots = spec["writable"] if "writable" in spec else spec["root"]
    roots = roots if isinstance(roots, list) else [roots]
    writable = [os.path.realpath(p) for p in roots]
    blocked = BLOCKED_EVENTS - KERNEL_ALLOWED if kernel else BLOCKED_EVENTS
    realpath, fspath, isinstance_, str_, bytes_ = os.path.realpath, os.fspath, isinstance, str, bytes

    def depth(path, roots):
        """Length of the longest root that contains path (-1: none)."""
        return max((len(r) for r in roots if path == r or path.startswith(r + os.sep)), default=-1)

    # the most specific folder decides: the grading folder may sit inside the repository (grades/)
    # and the repository's own files may sit inside a writable one (/tmp)
    def readable(path):
        f = depth(path, forbidden)
        return f < 0 or f < depth(path, allowed + writable)

    def writable_(path):
        return path == os.devnull or depth(path, writable) > depth(path, forbidden)

    def norm(p):
        if isinstance_(p, int) or p is None:
            return None
        try:
            p = fspath(p)
        except TypeError:
            return None
        if isinstance_(p, bytes_):
            p = p.decode("utf-8", "replace")
        return realpath(p) if isinstance_(p, str_) else None

    getpid = os.getpid

    def hook(event, args):
        if event in blocked or event.startswith("os.exec") or event.startswith("os.spawn"):
            raise PermissionError(f"sandbox: {event} is not allowed while grading")
        if kernel and event == "socket.connect" and len(args) > 1 and isinstance_(args[1], (str_, bytes_)):
            # the kernel talks TCP (zmq); a Unix socket could only be the grader's own (its fork server)
            raise PermissionError("sandbox: connecting to a Unix socket is not allowed while grading")
        if kernel and event == "os.kill" and args and args[0] != getpid():
            raise PermissionError("sandbox: signalling other processes is not allowed while grading")
        if event == "open":
            path = norm(args[0])
            if path is None:
                return
            mode = args[1] if len(args) > 1 and isinstance_(args[1], str_) else "r"
            flags = args[2] if len(args) > 2 and isinstance_(args[2], int) else 0
            if not readable(path):
                raise PermissionError(f"sandbox: reading {path} is not allowed while grading")
            writing = any(c in mode for c in "wax+") or (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and not writable_(path):
                raise PermissionError(f"sandbox: writing {path} is not allowed while grading")
        elif event in PATH_EVENTS_WRITE:
            # copies and links only write their destination; rename / move change both ends
            targets = args[1:2] if event in DEST_ONLY else args[:2] if event in BOTH_ENDS else args[:1]
            for a in targets:
                path = norm(a) if isinstance_(a, (str_, bytes_)) or hasattr(a, "__fspath__") else None
                if path is not None and not writable_(path):
                    raise PermissionError(f"sandbox: {event} on {path} is not allowed while grading")
        elif event in ("os.listdir", "os.scandir", "glob.glob", "os.walk"):
            path = norm(args[0]) if args else None
            if path is not None and not readable(path):
                raise PermissionError(f"sandbox: listing {path} is not allowed while grading")

    sys.addaudithook(hook)


if __name__ == "__main__":
    main()
