"""execute_notebook shuts down every kernel it starts: after each notebook, after a failing or a
timed-out cell, and when the process running it (or `course run`) gets SIGINT or SIGTERM. It
waits for kernel messages in short polls, so a missed wake-up costs a second, not a cell timeout.

The notebooks are made up, one or two tiny cells each; a kernel tells its pid by writing it to a
file, and "no kernel left" means that pid no longer exists (a leftover kernel, even an orphaned
one, would still be there when we look: its parent poller needs a second to notice)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from course_instructor import nbbuild
from course_instructor.execute import execute_notebook

ROOT = Path(__file__).resolve().parents[2]


def pid_cell(pid_file: Path) -> dict:
    """A cell that writes its kernel's pid to `pid_file` (written whole, then renamed)."""
    return nbbuild.code(
        f"import os\nopen({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.replace({str(pid_file)!r} + '.tmp', {str(pid_file)!r})"
    )


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def wait_for_pid(pid_file: Path, proc: subprocess.Popen, limit: float = 120) -> int:
    t0 = time.time()
    while not pid_file.exists():
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        assert time.time() - t0 < limit, "the kernel never reached the sleeping cell"
        time.sleep(0.1)
    return int(pid_file.read_text())


def test_two_notebooks_in_a_row_leave_no_kernel_of_the_first(tmp_path):
    before = descendants()
    first = nbbuild.write([pid_cell(tmp_path / "first.pid")], tmp_path / "first.ipynb")
    # the second kernel lists the live children of the process that started it (this one)
    second = nbbuild.write(
        [
            nbbuild.code(
                "import json, os, psutil\n"
                "print(json.dumps([os.getpid()] + sorted(p.pid for p in "
                "psutil.Process(os.getppid()).children())))"
            )
        ],
        tmp_path / "second.ipynb",
    )
    execute_notebook(first, cwd=tmp_path)
    first_pid = int((tmp_path / "first.pid").read_text())
    assert not psutil.pid_exists(first_pid), "the first notebook's kernel is still alive"
    nb, _ = execute_notebook(second, cwd=tmp_path)
    own, *alive = json.loads(nb.cells[0].outputs[0]["text"])
    assert own in alive, "the check must see a live kernel (its own)"
    assert first_pid not in alive
    assert descendants() - before == set(), "a kernel outlived its notebook"


@pytest.mark.parametrize(
    "cell, timeout, error",
    [("1 / 0", 60, CellExecutionError), ("import time\ntime.sleep(120)", 2, CellTimeoutError)],
    ids=["failing_cell", "timed_out_cell"],
)
def test_failing_or_timed_out_cell_leaves_no_kernel(tmp_path, cell, timeout, error):
    before = descendants()
    path = nbbuild.write([pid_cell(tmp_path / "k.pid"), nbbuild.code(cell)], tmp_path / "nb.ipynb")
    t0 = time.time()
    with pytest.raises(error):
        execute_notebook(path, cwd=tmp_path, timeout=timeout)
    assert time.time() - t0 < 60, "a timed-out cell must not hold the kernel until the cell ends"
    assert not psutil.pid_exists(int((tmp_path / "k.pid").read_text()))
    assert descendants() - before == set()


# the child resets SIGINT to Python's default: a shell that runs the tests in the background hands
# them SIGINT ignored, and the child would inherit that
_CHILD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "if sys.argv[1] == 'execute':\n"
    "    from course_instructor.execute import execute_notebook; execute_notebook(sys.argv[2])\n"
    "else:\n"
    "    from course_instructor.runner import main; sys.exit(main(sys.argv[2:]))\n"
)


@pytest.mark.parametrize(
    "how, sig, rc",
    [
        ("execute", signal.SIGINT, -signal.SIGINT),
        ("execute", signal.SIGTERM, -signal.SIGTERM),
        ("course run", signal.SIGINT, 130),
        ("course run", signal.SIGTERM, 143),
    ],
    ids=["execute-SIGINT", "execute-SIGTERM", "course_run-SIGINT", "course_run-SIGTERM"],
)
def test_interrupted_run_leaves_no_kernel(tmp_path, how, sig, rc):
    src, out = tmp_path / "notebooks", tmp_path / "run"
    pid_file = tmp_path / "k.pid"
    sleeping = nbbuild.write(
        [pid_cell(pid_file), nbbuild.code("import time\ntime.sleep(300)")], src / "01_sleeps.ipynb"
    )
    nbbuild.write([nbbuild.code(f"open({str(tmp_path / 'ran')!r}, 'w').write('02')")], src / "02_after.ipynb")
    args = (
        ["execute", str(sleeping)] if how == "execute" else ["run", "--source", str(src), "--out", str(out)]
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        kernel = wait_for_pid(pid_file, proc)
        assert psutil.pid_exists(kernel)
        t0 = time.time()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not psutil.pid_exists(kernel), f"the kernel outlived the run; stderr:\n{err[-2000:]}"
    assert proc.returncode == rc, err[-2000:]
    assert time.time() - t0 < 30, "stopping must not wait for the running cell"
    if how == "course run":  # it stops: no next unit, partial results with the memory peak
        assert not (tmp_path / "ran").exists()
        res = json.loads((out / "results.json").read_text())
        assert res["interrupted"] == "01" and res["peak_rss_mb"] > 0
        assert "stopped by" in err and "peak memory" in err
    elif sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err


def test_a_cell_ending_in_save_figure_shows_its_figure_once(tmp_path):
    """The notebooks end figure cells with ``plt.show(); save_figure(fig, name)``: save_figure must
    not hand the figure back for display a second time (the inline backend already showed it)."""
    import nbformat
    from conftest import repeated_images

    cell = (
        "import matplotlib.pyplot as plt\n"
        "from course_lib.core.report import save_figure\n"
        "fig, ax = plt.subplots()\nax.plot([0, 1], [1, 0])\nplt.show()\n"
        "save_figure(fig, 'line')"
    )
    path = nbbuild.write([nbbuild.code(cell)], tmp_path / "fig.ipynb")
    nb, _ = execute_notebook(path, cwd=tmp_path, env={"COURSE_RESULTS_DIR": str(tmp_path / "res")})
    outputs = nb.cells[0].outputs
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1, outputs
    assert (tmp_path / "res" / "figures" / "line.png").exists()
    twice = nbformat.v4.new_code_cell(outputs=outputs + outputs)
    assert repeated_images(nbformat.v4.new_notebook(cells=[twice])) == ["cell 0: 2 copies"]


class MissedWakeupChannel:
    """A kernel channel whose message arrives `arrives` seconds from now, and whose first poll never
    sees it (the missed zmq wake-up): that poll waits its whole timeout."""

    def __init__(self, arrives: float | None):
        self.arrives = None if arrives is None else time.monotonic() + arrives
        self.polls: list[float | None] = []

    async def get_msg(self, timeout=None):
        import asyncio
        from queue import Empty

        self.polls.append(timeout)
        ready = self.arrives is not None and time.monotonic() >= self.arrives
        if len(self.polls) > 1 and ready:
            return {"msg_type": "execute_reply"}
        await asyncio.sleep(3600 if timeout is None else timeout)
        raise Empty


def test_a_missed_wakeup_costs_one_poll_slice_not_the_timeout(monkeypatch):
    import asyncio
    from queue import Empty

    from course_instructor import execute

    monkeypatch.setattr(execute, "POLL_SLICE", 0.05)
    channel = MissedWakeupChannel(arrives=0.2)
    execute.poll_in_slices(channel)
    t0 = time.monotonic()
    assert asyncio.run(channel.get_msg(timeout=30)) == {"msg_type": "execute_reply"}
    assert time.monotonic() - t0 < 2, channel.polls  # one long poll would have waited 30 s
    assert all(t is not None and t <= 0.05 for t in channel.polls), channel.polls
    # no message: Empty once the caller's timeout is spent, not before; no timeout: it keeps polling
    silent = MissedWakeupChannel(arrives=None)
    execute.poll_in_slices(silent)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(silent.get_msg(timeout=0.3))
    assert 0.3 <= time.monotonic() - t0 < 2 and len(silent.polls) >= 6, silent.polls
    forever = MissedWakeupChannel(arrives=0.2)
    execute.poll_in_slices(forever)
    assert asyncio.run(forever.get_msg(timeout=None)) == {"msg_type": "execute_reply"}
