"""Execute a notebook headless (nbclient), with the solutions or the student's code.

Every kernel that :func:`execute_notebook` starts is shut down before it returns or raises: when
the notebook finishes, when a cell fails or times out, and when the process gets SIGINT (Ctrl-C)
or SIGTERM while the notebook runs. On a signal the kernel is killed first, then the signal is
delivered again under the caller's own handlers (by default: KeyboardInterrupt for SIGINT, the
process ends for SIGTERM), so callers such as ``course run`` stop instead of going on.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

import nbformat
from nbclient import NotebookClient

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_SLICE = 1.0
"""Seconds of one wait for a kernel message (see :func:`poll_in_slices`)."""


def poll_in_slices(channel) -> None:
    """Make ``channel.get_msg(timeout)`` wait in slices of POLL_SLICE seconds up to `timeout`.

    One long zmq poll can miss the wake-up of a message that arrives while the client handles a
    widget's comm messages (an ipywidgets ``interact`` cell): nbclient then waits out the whole cell
    timeout (15 minutes in the tests) with the execute reply already there
    (https://github.com/jupyter/nbclient/issues/312). A fresh poll sees the waiting message."""
    get = channel.get_msg

    async def get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, min(POLL_SLICE, deadline - time.monotonic()))
            try:
                return await get(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


class _Client(NotebookClient):
    """nbclient's client whose SIGINT/SIGTERM handlers cancel the execution.

    nbclient's own handlers only queue a kernel shutdown and let the cells go on against a dead
    kernel (the run then fails with an unrelated error, and a caller that records failures goes on
    with its next notebook). Ours record the signal (``stopped_by``), switch the shutdown to
    "immediate" and cancel the execution; nbclient's cleanup (``cleanup_kc=True``) then kills the
    kernel. A cell that fails or times out also makes the shutdown immediate. ``keep_ignoring``:
    the signals that the caller ignores (SIG_IGN) stay ignored. Its kernel client waits for
    messages in short polls (:func:`poll_in_slices`).
    """

    def __init__(self, nb, *, keep_ignoring: frozenset = frozenset(), **kw):
        super().__init__(nb, **kw)
        self.stopped_by: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._keep_ignoring = keep_ignoring

    async def async_start_new_kernel(self, **kwargs):
        # nbclient has just put its signal handlers on this loop; ours replace them before the start
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in STOP_SIGNALS:
            try:
                if sig in self._keep_ignoring:
                    self.loop.add_signal_handler(sig, lambda: None)
                else:
                    self.loop.add_signal_handler(sig, self._stop, sig, task)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread / no signals
                pass
        await super().async_start_new_kernel(**kwargs)

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        poll_in_slices(kc.shell_channel)
        poll_in_slices(kc.iopub_channel)
        return kc

    async def async_execute_cell(self, *args, **kwargs):
        try:
            return await super().async_execute_cell(*args, **kwargs)
        except BaseException:
            # failed, timed out or stopped: nothing in that kernel is worth a graceful shutdown (a
            # timed-out cell would keep it busy for seconds)
            self.shutdown_kernel = "immediate"
            raise

    def _stop(self, sig: int, task: asyncio.Task) -> None:
        if self.stopped_by is None:  # a second Ctrl-C must not cancel the cleanup itself
            self.stopped_by = sig
            self.shutdown_kernel = "immediate"
            task.cancel()


def _restore(client: _Client, previous: dict) -> None:
    """Take our handlers off the (persistent) event loop and put the caller's handlers back."""
    atexit.unregister(client._cleanup_kernel)
    if client.loop is None or threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in previous.items():
        client.loop.remove_signal_handler(sig)
        if handler is not None:
            signal.signal(sig, handler)


def _shut_down(km) -> None:
    """Kill the kernel of `km` if it still runs (nbclient's cleanup normally did it already)."""
    from jupyter_core.utils import run_sync

    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def execute_notebook(
    path: str | Path,
    out_path: str | Path | None = None,
    *,
    solutions: bool = True,
    env: dict | None = None,
    timeout: int = 600,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
    allow_errors: bool = False,
):
    """Run every cell of `path` in a fresh kernel; return (executed notebook, seconds).

    `solutions=True` sets COURSE_LIB_SOLUTIONS=1 for the kernel. `env` entries are added to the
    kernel's environment (e.g. COURSE_RESULTS_DIR, COURSE_PROFILE, COURSE_PRESET). The kernel's
    working directory is the repository root unless `cwd` is given. `timeout`: seconds per cell.
    A failing cell raises nbclient's CellExecutionError (CellTimeoutError past `timeout`) unless
    `allow_errors`. The kernel is down when this returns or raises (see the module docstring).
    """
    from jupyter_client import AsyncKernelManager

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    kernel_env = dict(os.environ)
    kernel_env.update(
        {
            "COURSE_LIB_SOLUTIONS": "1" if solutions else "0",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "TQDM_MININTERVAL": "5",
        }
    )
    kernel_env.update(env or {})
    root = Path(cwd) if cwd else Path(__file__).resolve().parents[1]
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with tempfile.TemporaryDirectory(prefix="course_kernel_") as sockets:
        # the kernel talks over Unix sockets in a private folder (not TCP on localhost); the folder
        # goes only after the kernel is down
        km = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "k"))
        client = _Client(
            nb,
            km=km,
            timeout=timeout,
            kernel_name=kernel_name,
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(root)}},
            keep_ignoring=frozenset(s for s, h in previous.items() if h == signal.SIG_IGN),
        )
        t0 = time.time()
        try:
            client.execute(env=kernel_env, cleanup_kc=True)  # cleanup_kc: shut down even though we own km
        except BaseException:
            if client.stopped_by is None:
                raise
        finally:
            _restore(client, previous)
            _shut_down(km)
        seconds = time.time() - t0
    if client.stopped_by is not None:
        signal.raise_signal(client.stopped_by)  # the caller's handler: KeyboardInterrupt, exit, ...
        raise KeyboardInterrupt(f"{path.name}: stopped by {signal.Signals(client.stopped_by).name}")
    if out_path:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    return nb, seconds
