"""Executes one submission's notebooks INSIDE its sandbox and sends back only their outputs.

    python -I -S nb_runner.py RUNNER.json        # started by nbgrader_run.NotebookSandbox, in bwrap

Never imported by the grader. Everything this process touches is the submission's: its folder
(a size-bounded tmpfs that vanishes with the sandbox), its kernels (forked by the fork server of
grader_kernel.py, also in here), its notebooks. The notebooks it receives were prepared by the
grader (the instructor's test cells restored, hidden tests removed), so nothing secret is in here.

The result channel is this process's original stdout, a pipe the grader reads with a size cap
(this process is the sandbox's pid 1, so no other process in there holds a copy of it):
one JSON line per notebook, ``{"notebook": name, "cells": [{"outputs": [...], "execution_count":
n}, ...], "error": str | None, "seconds": s}``, then ``{"done": true}``. The grader takes the
outputs and nothing else from it, and treats them as hostile data (inert.py). Before any kernel
starts, fd 1 is pointed at stderr (kernels inherit it: what a student prints never reaches the
channel), and the process makes itself non-dumpable so that other processes of the sandbox (the
same uid) cannot open its file descriptors through /proc.
"""

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PR_SET_DUMPABLE = 4


def _private_channel():
    """A private copy of stdout for the results; fd 1 itself then points at stderr."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # os.dup: not inherited by children
    os.dup2(2, 1)
    return out


def _cells(nb) -> list:
    return [
        {"outputs": c.get("outputs", []), "execution_count": c.get("execution_count")}
        if c.cell_type == "code"
        else {}
        for c in nb.cells
    ]


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    sys.path.extend(spec["site_dirs"])  # -I -S: only the interpreter's own library until here
    channel = _private_channel()
    os.environ.update({k: str(v) for k, v in spec["env"].items()})
    for d in (os.environ.get("HOME"), os.environ.get("JUPYTER_RUNTIME_DIR")):
        if d:
            os.makedirs(d, exist_ok=True)
    zygote = None
    if spec.get("zygote"):  # torch & co imported once for every kernel of the submission
        zygote = subprocess.Popen(
            spec["zygote"], stdin=subprocess.DEVNULL, stdout=2, stderr=2, start_new_session=True
        )

    import nbformat
    from nbgrader.preprocessors.execute import Execute

    lock = threading.Lock()

    def send(msg: dict) -> None:
        line = json.dumps(msg) + "\n"
        with lock:
            channel.write(line)
            channel.flush()

    def run(name: str) -> None:
        t0 = time.time()
        nb = nbformat.read(os.path.join(spec["notebooks"], name), as_version=4)
        error = None
        try:
            ep = Execute(
                timeout=spec["cell_timeout"],
                startup_timeout=spec["startup_timeout"],
                interrupt_on_timeout=True,
                kernel_name=spec["kernel_name"],
            )
            ep.preprocess(nb, {"metadata": {"path": spec["cwd"]}})
        except Exception as e:  # noqa: BLE001 - what ran still comes back, with the reason
            error = f"{type(e).__name__}: {str(e)[:500]}"
        send({"notebook": name, "cells": _cells(nb), "error": error, "seconds": time.time() - t0})

    with ThreadPoolExecutor(max_workers=max(1, int(spec["jobs"]))) as pool:
        list(pool.map(run, spec["order"]))
    send({"done": True})
    if zygote is not None:
        zygote.terminate()
    os._exit(0)


if __name__ == "__main__":
    main()
