"""The instructor's `course` commands. course_lib.cli adds them to the student commands where this
package is importable (the instructor repository); the student copy does not have them."""

from __future__ import annotations

# name -> (module:function, one-line help); the modules are imported only when the command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("course_instructor.runner:main", "execute the notebooks with the solutions, write results.json"),
    "seeds": (
        "course_instructor.seeds:main",
        "units 05-07 and 09: the main runs for several seeds (--seeds 0,1,2) against the bars, worst seed",
    ),
    "release": ("course_instructor.release:main", "build exercises/ and the student bundle"),
    "autograde": ("course_instructor.grading.autograde:main", "grade a folder of submissions"),
    "gradescope": ("course_instructor.grading.gradescope:main", "build a Gradescope autograder zip"),
    "bench": ("course_instructor.bench:main", "seconds per step, ours vs TRL, side by side"),
    "doc-numbers": (
        "course_instructor.doc_numbers:main",
        "write the docs' measured numbers from docs/results/ (--check: exit 1 if stale)",
    ),
    "quality": ("course_instructor.tiny_quality:main", "measure the shipped tiny model (README numbers)"),
    "build-notebooks": (
        "course_instructor.nbbuild:main",
        "write notebooks/NN_name.ipynb from the percent sources",
    ),
    "build-tiny": ("course_instructor.tiny_model:main", "rebuild the tiny tokenizer + model from scratch"),
}
