"""JupyterLab 4 with the nbgrader extension, on this repository's layout, as an instructor or a
student starts it (`.venv/bin/jupyter lab` in the repository): the nbgrader lab extension is
served and the formgrader sees the course (nbgrader_config.py). The student's side, Validate
included, is driven in a real browser: tests/platform/test_jupyterlab_browser.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import live_jupyter  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    token = "course-test-token"
    home = tmp_path_factory.mktemp("lab_home")
    env = dict(
        os.environ,
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        COURSE_NBGRADER_ROOT=str(ROOT / "build" / f"nbgrader_labtest_{os.getpid()}"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    env.pop("COURSE_LIB_SOLUTIONS", None)
    # what the README's instructor section does first: plain nbgrader on this layout
    gen = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "exercises", "--force"],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr[-3000:]
    try:
        with live_jupyter.running(
            "jupyterlab", root=ROOT, env=env, token=token, log_path=home / "lab.log"
        ) as base:

            def get(path: str, data: dict | None = None, timeout: float = 30) -> tuple[int, str]:
                req = urllib.request.Request(
                    base + path,
                    headers={"Authorization": f"token {token}"},
                    data=json.dumps(data).encode() if data is not None else None,
                    method="POST" if data is not None else "GET",
                )
                try:
                    with urllib.request.urlopen(req, timeout=timeout) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode(errors="replace")

            yield get
    finally:
        shutil.rmtree(env["COURSE_NBGRADER_ROOT"], ignore_errors=True)


def test_lab_serves_the_nbgrader_extension(lab):
    status, html = lab("/lab")
    assert status == 200 and "@jupyter/nbgrader" in html
    status, body = lab("/nbgrader_version?version=0.9.6")
    assert status == 200, body


def test_formgrader_sees_the_course(lab):
    status, body = lab("/formgrader/api/assignments")
    assert status == 200, body
    names = {a["name"] for a in json.loads(body)}
    assert "exercises" in names, names
    status, body = lab("/formgrader/api/notebooks/exercises")
    assert status == 200, body
    units = {n["name"] for n in json.loads(body)}
    assert {"01_reward_functions", "07_dpo"} <= units, units
