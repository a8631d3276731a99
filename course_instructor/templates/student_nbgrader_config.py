"""nbgrader settings for your copy of the course: JupyterLab started in this folder reads this file
when you press a notebook's "Validate" button (which runs the whole notebook, as the grader will).

A laptop busy with training can take longer than nbgrader's defaults to send a cell's last output;
without these, Validate may drop an error message or stop a slow cell that would have finished."""

c = get_config()  # noqa: F821 - provided by the traitlets config loader
c.Execute.iopub_timeout = 30  # seconds to wait for a cell's last outputs (nbgrader: 4)
c.Execute.timeout = 300  # seconds one cell may run (nbgrader: 30)
c.Execute.interrupt_on_timeout = True
