"""JupyterLab as a student uses it, in a real browser (headless Chromium from Debian's packages,
driven by Selenium): open a released notebook with the course kernel, Run All, and look at the page
the student sees: no error output, each figure rendered once, the ipywidgets sliders of units 01
and 02 drawn and answering a new value, and nbgrader's Validate button reporting a stub's
NotImplementedError.

The released notebooks are run with the instructor's solutions switched on by one extra first cell
(`course_lib.use_solutions()`), so that every cell has something to show; the Validate test opens
the released notebook itself, stubs and all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lab-browser-test"
UNITS = ("01_reward_functions", "02_kl_penalties")
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import live_jupyter  # noqa: E402

from course_instructor import release  # noqa: E402

SOLUTIONS_CELL = "import course_lib\n\ncourse_lib.use_solutions()  # the test runs the instructor's solutions"


def _kernel_name(nb_path: Path) -> str:
    return nbformat.read(str(nb_path), as_version=4).metadata["kernelspec"]["name"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, server root, log): JupyterLab started in a folder laid out as a student's copy:
    solved/NN.ipynb (released notebook + the solutions cell), released/01_reward_functions.ipynb
    (as shipped) and the copy's nbgrader_config.py."""
    home = tmp_path_factory.mktemp("lab_browser_home")
    root = tmp_path_factory.mktemp("lab_browser_root")
    (root / "solved").mkdir()
    (root / "released").mkdir()
    for unit in UNITS:
        nb = nbformat.read(str(ROOT / "exercises" / f"{unit}.ipynb"), as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(SOLUTIONS_CELL))
        nbformat.write(nb, str(root / "solved" / f"{unit}.ipynb"))
    shutil.copy(ROOT / "exercises" / f"{UNITS[0]}.ipynb", root / "released" / f"{UNITS[0]}.ipynb")
    # the Validate settings a student's copy of the course ships with
    shutil.copy(release.STUDENT_NBGRADER_CONFIG, root / "nbgrader_config.py")
    env = dict(
        os.environ,
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    # The kernel a student's notebook asks for, registered as the set-up registers it; the inline
    # figures of a student's kernel, not the tests' Agg backend; the student's own code, not the solutions.
    for var in ("MPLBACKEND", "COURSE_LIB_SOLUTIONS", "COURSE_PROFILE_OVERRIDES"):
        env.pop(var, None)
    kernel = _kernel_name(ROOT / "exercises" / f"{UNITS[0]}.ipynb")
    reg = subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--user", "--name", kernel],
        env=env,
        capture_output=True,
        text=True,
    )
    assert reg.returncode == 0, reg.stderr
    # Every cell in the page (JupyterLab 4 otherwise renders only the cells in view).
    tracker = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    with live_jupyter.running(
        "jupyterlab", root=root, env=env, token=TOKEN, log_path=home / "lab.log"
    ) as base:
        yield base, root, home / "lab.log"


@pytest.fixture(scope="module")
def browser():
    with live_jupyter.chromium("1400,1000", script_timeout=30) as driver:
        yield driver


def _wait(what: str, predicate, timeout: float, log: Path | None = None, every: float = 0.5):
    t_end = time.time() + timeout
    while time.time() < t_end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _open(driver, base: str, path: str, log: Path) -> None:
    # ?reset: a fresh workspace, so that only this notebook is open (JupyterLab reopens the last ones)
    driver.get(f"{base}/lab/tree/{path}?reset&token={TOKEN}")
    _wait(
        f"{path} to open",
        lambda: driver.execute_script("return document.querySelectorAll('.jp-Notebook .jp-Cell').length > 3"),
        90,
        log,
    )
    # the kernel is started and idle (the status bar says "Idle" once it is ready)
    _wait(
        "the kernel to be idle",
        lambda: driver.execute_script(
            "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            "return s !== null && s.getAttribute('data-status') === 'idle';"
        ),
        120,
        log,
    )


def _menu(driver, menu: str, command: str) -> None:
    """Click menu bar entry `menu`, then its item that runs JupyterLab command `command`."""
    labels = driver.find_elements("css selector", ".lm-MenuBar-item")
    match = [item for item in labels if item.text.strip() == menu]
    assert match, f"no menu {menu!r} in JupyterLab's menu bar: {[i.text for i in labels]}"
    match[0].click()
    selector = f'.lm-Menu-item[data-command="{command}"]'
    try:
        items = _wait(
            f"{command} in the {menu} menu", lambda: driver.find_elements("css selector", selector), 10
        )
    except AssertionError:
        shown = driver.execute_script(
            "return Array.from(document.querySelectorAll('.lm-Menu-item')).map(e => e.getAttribute('data-command'))"
        )
        raise AssertionError(f"{command} is not in the {menu} menu; it shows {shown}") from None
    items[0].click()


# What the page shows per code cell: its prompt, error outputs and the images it rendered.
CELLS_JS = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')).map((c, i) => ({
  index: i,
  prompt: (c.querySelector('.jp-InputPrompt') || {}).textContent || '',
  errors: Array.from(c.querySelectorAll(
      '[data-mime-type="application/vnd.jupyter.error"], [data-mime-type="application/vnd.jupyter.stderr"]'
    )).map(e => e.textContent).filter(t => /Error|Traceback/.test(t)),
  images: Array.from(c.querySelectorAll('.jp-OutputArea img')).map(im => im.src.slice(-200)),
  widgets: c.querySelectorAll('.jupyter-widgets.widget-slider, .widget-hslider').length,
}));
"""


def _run_all(driver, base: str, path: str, log: Path) -> list[dict]:
    _open(driver, base, path, log)
    _menu(driver, "Run", "runmenu:run-all")
    seen: list[list[dict]] = [[]]

    def finished():
        cells = seen[0] = driver.execute_script(CELLS_JS)
        if any(c["errors"] for c in cells):
            return cells  # Run All stops at an error
        prompts = [c["prompt"].strip() for c in cells]
        numbered = all(p[:1] == "[" and p[1:2].isdigit() for p in prompts)
        idle = driver.execute_script(
            "return document.querySelector('.jp-Notebook-ExecutionIndicator').getAttribute('data-status') === 'idle'"
        )
        return cells if numbered and idle else None

    try:
        _wait(f"Run All of {path}", finished, 300, every=2)
    except AssertionError:
        prompts = [c["prompt"] for c in seen[0]]
        raise AssertionError(f"Run All of {path} did not finish in 300 s; the prompts: {prompts}") from None
    time.sleep(1)  # the last outputs are drawn
    return driver.execute_script(CELLS_JS)


@pytest.mark.parametrize("unit", UNITS)
def test_run_all_shows_no_error_each_figure_once_and_live_sliders(lab, browser, unit):
    base, root, log = lab
    cells = _run_all(browser, base, f"solved/{unit}.ipynb", log)
    errors = [(c["index"], c["errors"][0][-800:]) for c in cells if c["errors"]]
    assert not errors, errors
    images = [c for c in cells if c["images"]]
    assert len(images) >= 3, f"{unit}: only {len(images)} cells show a figure"
    twice = [c["index"] for c in cells if len(set(c["images"])) < len(c["images"])]
    assert not twice, f"{unit}: cells {twice} show the same figure twice"
    sliders = [c for c in cells if c["widgets"]]
    assert sliders, f"{unit}: no ipywidgets slider was drawn"
    _slider_redraws_its_figure(browser, sliders[0], log)


def _slider_redraws_its_figure(browser, cell: dict, log: Path) -> None:
    """A new value typed into the slider's readout redraws the cell's figure (the kernel answered)."""
    from selenium.webdriver.common.keys import Keys

    before = cell["images"]
    assert before, f"cell {cell['index']}: the slider's figure is not drawn"
    code_cells = browser.find_elements("css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
    readout = code_cells[cell["index"]].find_element("css selector", ".widget-readout")
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("1.0", Keys.ENTER)

    def redrawn():
        now = browser.execute_script(CELLS_JS)[cell["index"]]["images"]
        return now if now and now != before else None

    _wait(f"cell {cell['index']}'s figure to be redrawn for a new slider value", redrawn, 60, log)


def test_validate_reports_the_stubs_not_implemented_error(lab, browser):
    base, root, log = lab
    _open(browser, base, f"released/{UNITS[0]}.ipynb", log)
    buttons = [
        b for b in browser.find_elements("css selector", "button, jp-button") if b.text.strip() == "Validate"
    ]
    assert buttons, "nbgrader's Validate button is not in the notebook's toolbar"
    buttons[0].click()

    def dialog_text():
        texts = browser.execute_script(
            "return Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.textContent)"
        )
        return next(
            (t for t in texts if "NotImplementedError" in t or "Traceback" in t or "failed" in t.lower()),
            None,
        )

    text = _wait("Validate's result dialog", dialog_text, 300, log, every=1)
    assert "NotImplementedError" in text, text[:3000]
    assert "Exercise 1." in text, text[:3000]
