"""Formgrader, as the instructor opens it after `course autograde`, in a real browser (headless
Chromium from Debian's packages, driven by Selenium through chromedriver): the grading page of a
hostile submission runs none of the student's HTML, JavaScript, SVG or markdown, and an honest
student's figure still shows. The batch is conftest's shared `nbgrader_batch`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TOKEN = "formgrader-browser-test"
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import live_jupyter  # noqa: E402


@pytest.fixture(scope="module")
def formgrader(nbgrader_batch, tmp_path_factory):
    """(base URL, the batch) with a Jupyter server started in OUT/nbgrader, as the docs say."""
    home = tmp_path_factory.mktemp("formgrader_home")
    env = dict(
        os.environ,
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    root = nbgrader_batch["out"] / "nbgrader"
    with live_jupyter.running(
        "jupyter_server", root=root, env=env, token=TOKEN, log_path=home / "server.log"
    ) as base:
        yield base, nbgrader_batch


@pytest.fixture(scope="module")
def browser():
    with live_jupyter.chromium("1280,2000") as driver:
        yield driver


def _grading_page(driver, base: str, root: Path, sid: str) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "rl-posttraining") as gb:
        nb_id = gb.find_submission_notebook("02_fixture", "exercises", sid).id
    driver.get(f"{base}/formgrader/submissions/{nb_id}/?token={TOKEN}")
    t_end = time.time() + 30
    while time.time() < t_end and driver.execute_script("return document.readyState") != "complete":
        time.sleep(0.2)
    time.sleep(2)  # onerror / onload handlers and timers would have run by now


def _no_dialog(driver) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_a_hostile_submission_runs_no_script_in_the_instructors_session(formgrader, browser):
    base, batch = formgrader
    from test_attacks import KERNEL_ATTACKER

    _grading_page(browser, base, batch["out"] / "nbgrader", KERNEL_ATTACKER)
    assert _no_dialog(browser)
    assert "PWNED" not in browser.title, browser.title
    body = browser.find_element("tag name", "body").text
    assert "PWNED-answer" in body  # the written answer is shown, as text
    assert "not shown" in body  # and where an HTML / JavaScript output was, a note says so
    live = browser.execute_script(
        "return Array.from(document.querySelectorAll('script, [onerror], [onload], svg, iframe, a[href^=\"javascript\"]'))"
        ".map(e => e.outerHTML).filter(h => h.includes('PWNED'));"
    )
    assert live == [], live  # no element of the student's made it into the page as markup


def test_an_honest_students_figure_still_shows(formgrader, browser):
    base, batch = formgrader
    _grading_page(browser, base, batch["out"] / "nbgrader", "solved")
    sizes = browser.execute_script(
        "return Array.from(document.images).filter(i => i.src.startsWith('data:image/png'))"
        ".map(i => [i.naturalWidth, i.naturalHeight]);"
    )
    assert sizes and all(w > 0 and h > 0 for w, h in sizes), sizes
    assert "visible checks passed" in browser.find_element("tag name", "body").text
