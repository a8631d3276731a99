"""The Jupyter kernel nbgrader uses while autograding (started through a kernelspec that
course_lib/pipeline/autograde.py writes; never imported by the course).

    python -I -S grader_kernel.py SPEC.json -f CONNECTION_FILE

The notebook runs the student's code, so this kernel gets the same lock-down as the grading
sandbox (sandbox_child.install_hook): explicit sys.path (the submission folder + site-packages,
no editable-install finder, so no instructor repository and no solutions/), an audit hook that
refuses reads under the instructor repository, writes outside the submission's folders,
subprocesses and ctypes, plus CPU and memory limits. Its outputs only feed the feedback HTML:
the points of code exercises are decided by the grader, never by this kernel.
"""
import json
import os
import sys


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    del sys.argv[1]
    sys.path[:] = [os.getcwd()] + [p for p in sys.path if p] + spec["site_dirs"]
    import resource
    for res, val in ((resource.RLIMIT_AS, spec["mem_mb"] * 2 ** 20), (resource.RLIMIT_CPU, spec["cpu_seconds"]),
                     (resource.RLIMIT_FSIZE, spec["fsize_mb"] * 2 ** 20), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass
    import importlib.util
    s = importlib.util.spec_from_file_location("_course_sandbox_hook", spec["hook_module"])
    hook = importlib.util.module_from_spec(s)
    s.loader.exec_module(hook)
    # trusted imports first (they load native code), then lock down
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib  # noqa: F401
    import matplotlib_inline.backend_inline  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401
    try:
        import transformers  # noqa: F401
        from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    hook.install_hook({"root": spec["writable"], "forbidden": spec["forbidden"],
                       "allowed_read": spec["allowed_read"]}, kernel=True)
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()
    # the shutdown reply has been sent: skip the interpreter's teardown of torch & co (~1 s per
    # notebook) - nothing of the kernel's is kept
    os._exit(0)


if __name__ == "__main__":
    main()
