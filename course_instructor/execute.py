"""Execute a notebook headless (nbclient), with the solutions or the student's code."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat


def execute_notebook(path: str | Path, out_path: str | Path | None = None, *, solutions: bool = True,
                     env: dict | None = None, timeout: int = 600, cwd: str | Path | None = None,
                     kernel_name: str = "python3", allow_errors: bool = False):
    """Run every cell of `path`; return (executed notebook, seconds).

    `solutions=True` sets COURSE_LIB_SOLUTIONS=1 for the kernel. `env` entries are added to the
    kernel's environment (e.g. COURSE_RESULTS_DIR, COURSE_PROFILE, COURSE_PRESET). The kernel's
    working directory is the repository root unless `cwd` is given.
    """
    import tempfile

    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    kernel_env = dict(os.environ)
    kernel_env.update({"COURSE_LIB_SOLUTIONS": "1" if solutions else "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "PYDEVD_DISABLE_FILE_VALIDATION": "1", "TQDM_MININTERVAL": "5"})
    kernel_env.update(env or {})
    root = Path(cwd) if cwd else Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="course_kernel_") as sockets:
        # the kernel talks over Unix sockets in a private folder (not TCP on localhost)
        km = KernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "k"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                                resources={"metadata": {"path": str(root)}})
        t0 = time.time()
        client.execute(env=kernel_env)
        seconds = time.time() - t0
    if out_path:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    return nb, seconds
