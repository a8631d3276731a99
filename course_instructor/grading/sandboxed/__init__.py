"""Code that runs INSIDE the grading sandboxes (bubblewrap: no instructor repository, no network,
uid nobody), next to student code. Nothing here may decide a grade or trust what it computes:
it runs student functions and notebooks and reports back in the wire format
(course_instructor/grading/wire.py), which the trusted grader parses strictly.

* sandbox_child.py: the code-exercise process (``python -I -S``, started by ../sandbox.py);
  caserun.py runs an exercise function on its cases there;
* nb_runner.py + grader_kernel.py: run a submission's notebooks with nbgrader's executor and a
  locked-down kernel (started by ../nbgrader_run.py, loaded by path from a read-only folder);
* limits.py: rlimits and the fork ban, applied by the grader before exec and by the kernel.

These files are copied into the sandbox, so they import only the standard library, torch, the
box's course_lib, each other and wire.py, never the trusted modules next to this folder
(tests/platform/test_import_graph.py checks it); the trusted side may import them.
"""
