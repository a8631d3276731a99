"""The autograder, in three parts that show where the trust boundary runs:

* ``sandboxed/``: what runs inside the bubblewrap sandboxes, next to student code (the case
  runner, the notebook runner and its kernel, rlimits). It decides nothing.
* ``wire.py``: the messages the sandboxes send back and how the grader reads them (capped JSON
  lines, tensors rebuilt by the grader). Used by both sides.
* everything else here is the trusted grader, which never imports student code: autograde.py
  (the ``course autograde`` batch), sandbox.py and nbgrader_run.py (start the sandboxes),
  isolation.py (bubblewrap), hidden/ (hidden cases, comparison, scores), inert.py, feedback.py,
  export.py, gradescope.py, submissions.py, shards.py, integrity.py, bench_grading.py.
"""
