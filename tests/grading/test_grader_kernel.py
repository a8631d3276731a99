"""The notebooks' sandbox (course_instructor/grading/nbgrader_run.py, sandboxed/nb_runner.py, sandboxed/grader_kernel.py).

A probe notebook is graded the way `course autograde` grades a submission's notebooks (prepared,
executed in bubblewrap by the runner with kernels forked by the fork server or started cold,
imported back), and each cell reports what a grader relies on: the kernel runs isolated (no
instructor repository, no network, uid nobody, no other process visible, no new processes), a
cell past its timeout is interrupted and the kernel keeps working, the runner's result channel
cannot be reached from a kernel, and closing the submission ends every process of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import os, sys, json; print('PROBE ' + json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
    "'uid': os.getuid(), 'cwd': os.getcwd(), 'torch': 'torch' in sys.modules, "
    "'course_lib': 'course_lib' in sys.modules, "
    f"'repo': os.path.exists({str(ROOT / 'solutions')!r}) or os.path.exists({str(ROOT / 'README.md')!r}), "
    "'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), "
    "'env': sorted(os.environ), 'fast': os.environ.get('NBGRADER_EXECUTION')}))"
)
# the runner's private result channel: try to forge this notebook's result through /proc
CHANNEL = """
import json, os
got = {}
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        if b"nb_runner.py" not in open(f"/proc/{pid}/cmdline", "rb").read():
            continue
    except OSError:
        continue
    for fd in range(0, 20):
        try:
            with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                f.write(json.dumps({"notebook": "02_probe.ipynb", "cells": []}) + "\\n")
            got[f"{pid}/{fd}"] = "written"
        except OSError as e:
            got[f"{pid}/{fd}"] = type(e).__name__
print("CHANNEL " + json.dumps(got))
"""


def errors(code: str) -> str:
    return f"try:\n    {code}\nexcept BaseException as e:\n    print('ERR ' + type(e).__name__)\nelse:\n    print('ERR none')"


CELLS = [
    PROBE,
    errors("import solutions"),
    errors("import course_instructor.grading.autograde"),
    errors("__import__('subprocess').run(['true'])"),
    errors("__import__('socket').create_connection(('1.1.1.1', 80), timeout=2)"),
    errors(f"__import__('os').kill({os.getpid()}, 0)"),
    "import torch; x = torch.randn(256, 256); print('TORCH', float((x @ x).abs().sum() > 0))",
    CHANNEL,
    "import threading, time; threading.Thread(target=time.sleep, args=(600,), daemon=False).start()",
    "print('looping', flush=True)\nwhile True:\n    pass",
    "print('AFTER', 41 + 1)",
]


def _lines(nb, prefix: str) -> list[str]:
    return [
        ln[len(prefix) :]
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
        for ln in o["text"].splitlines()
        if ln.startswith(prefix)
    ]


def _sandbox_processes(marker: str) -> list[int]:
    """Host pids whose command line names `marker` (the submission's inbox folder)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module", params=["warm", "cold"])
def probed(request, tmp_path_factory):
    """(graded probe notebook, NotebookRun, the runner's processes seen while it ran) per mode."""
    from course_instructor.grading import autograde

    d = tmp_path_factory.mktemp(f"probe_{request.param}")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (d / "src").mkdir()
    nbformat.write(nb, str(d / "src" / "02_probe.ipynb"))
    (d / "sub" / "exercises").mkdir(parents=True)
    nbformat.write(nb, str(d / "sub" / "exercises" / "02_probe.ipynb"))
    g = autograde.Grader(
        d / "out", d / "src", cell_timeout=5, notebook_timeout=120, warm_kernels=request.param == "warm"
    )
    g.prepare()
    run = g._start_notebooks("s1", d / "sub" / "exercises", None)
    during = _sandbox_processes(str(run.inbox))
    try:
        ok, msg = run.finish(g.source_dir, g.import_api)
    finally:
        after = _sandbox_processes(str(run.inbox))
        run.close()
    graded = nbformat.read(
        str(d / "out" / "nbgrader" / "autograded" / "s1" / "exercises" / "02_probe.ipynb"), 4
    )
    return {"nb": graded, "ok": ok, "msg": msg, "during": during, "after": after, "mode": request.param}


def test_the_kernel_runs_isolated_in_the_submissions_scratch_folder(probed):
    from course_instructor.grading import nbgrader_run

    assert probed["ok"], probed["msg"]
    v = json.loads(_lines(probed["nb"], "PROBE ")[0])
    assert v["cwd"] == nbgrader_run.WORK
    assert v["torch"] and not v["course_lib"]  # torch preloaded; no instructor code
    assert v["uid"] == 65534 and not v["repo"]  # nobody; the repository does not exist
    assert len(v["procs"]) <= 6, v["procs"]  # runner, fork server, launcher, kernel: nothing else
    assert v["fast"] == "autograde"  # training cells shrink
    assert "JPY_PARENT_PID" not in v["env"] and "PYTHONPATH" not in v["env"]
    errs = _lines(probed["nb"], "ERR ")
    assert errs[0] == "ModuleNotFoundError" and errs[1] == "ModuleNotFoundError"  # solutions, grader
    assert errs[2] == "PermissionError"  # no new processes
    assert errs[3] in ("OSError", "PermissionError", "TimeoutError", "gaierror")  # no network
    assert errs[4] in ("ProcessLookupError", "PermissionError")  # the grader does not exist in there
    assert _lines(probed["nb"], "TORCH ") == ["1.0"]  # torch works in a forked kernel


def test_a_kernel_cannot_write_into_the_result_channel(probed):
    got = json.loads(_lines(probed["nb"], "CHANNEL ")[0])
    assert got and "written" not in got.values(), got  # the runner is not dumpable
    assert _lines(probed["nb"], "AFTER ")  # what came back is the real result


def test_a_cell_past_its_timeout_is_interrupted_and_the_kernel_goes_on(probed):
    nb = probed["nb"]
    loop = next(c for c in nb.cells if "while True" in c.source)
    assert any(o.get("output_type") == "error" for o in loop.outputs)
    assert _lines(nb, "AFTER ") == ["42"]


def test_closing_the_submission_ends_every_process_of_it(probed):
    assert probed["during"], "the runner was not seen running"
    assert probed["after"] == [] or all(not Path(f"/proc/{p}").exists() for p in probed["after"])


@pytest.mark.parametrize("case", ["grading_folder_inside_repository", "repository_inside_tmp"])
def test_most_specific_folder_decides(tmp_path, case):
    """The audit hook's rule when folders nest: the grading folder may sit inside the instructor
    repository (``--out grades``), and the instructor's files may sit inside a writable /tmp."""
    import subprocess
    import sys

    from course_instructor.grading.sandboxed import sandbox_child

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


def test_the_result_channel_is_private_even_without_the_audit_hook(tmp_path):
    """The mechanism alone (no audit hook, no fork ban): the runner, pid 1 of its sandbox, keeps
    its stdout for results and makes itself non-dumpable; a child (a kernel's stand-in) that
    opens the runner's descriptors through /proc, or writes to its own stdout, reaches nothing."""
    import subprocess

    from course_instructor.grading import sandbox
    from course_instructor.grading.isolation import Isolation, interpreter

    iso = Isolation(True)
    kdir = sandbox.SANDBOXED  # nb_runner.py, as the notebook sandbox mounts it
    code = """
import os, sys
sys.path.insert(0, "/k")
import nb_runner
channel = nb_runner._private_channel()
pid = os.fork()
if pid == 0:
    hits = 0
    for fd in range(0, 30):
        try:
            fdw = os.open(f"/proc/1/fd/{fd}", os.O_WRONLY)
            os.write(fdw, b'{"notebook": "forged"}\\n')
            hits += 1
        except OSError:
            pass
    print('{"forged": "stdout"}', flush=True)
    os.write(2, f"child hits {hits}\\n".encode())
    os._exit(0)
os.waitpid(pid, 0)
channel.write('{"real": true}\\n')
channel.flush()
"""
    cmd = iso.command(
        [interpreter(), "-I", "-S", "-c", code],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/tmp",
        ro={str(kdir): "/k"},
        as_pid_1=True,
    )
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ['{"real": true}'], (r.stdout, r.stderr)
    assert "child hits 0" in r.stderr, r.stderr
