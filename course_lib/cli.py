"""The `course` command. Each sub-command lives in its own module (imported lazily, so
`course --help` is instant and a missing optional dependency only affects its own command)."""
from __future__ import annotations

import importlib
import sys

# name -> (module:function, one-line help). Student, instructor and grader commands alike.
COMMANDS: dict[str, tuple[str, str]] = {
    "selfcheck": ("course_lib.core.selfcheck:main", "load the model, sample, train a few steps (setup check)"),
    "quality": ("course_instructor.tiny_quality:main", "measure the shipped tiny model (README numbers)"),
    "build-tiny": ("course_instructor.tiny_model:main", "rebuild the tiny tokenizer + model from scratch"),
    "run": ("course_instructor.runner:main", "execute the notebooks with the solutions, write results.json"),
    "release": ("course_instructor.release:main", "build exercises/ and the student bundle"),
    "autograde": ("course_instructor.grading.autograde:main", "grade a folder of submissions"),
    "submit": ("course_lib.submit:main", "pack your notebooks and course_lib into a zip"),
    "serve": ("course_lib.core.serving:main", "serve a checkpoint over HTTP (POST /generate)"),
    "bench": ("course_instructor.bench:main", "seconds per step, ours vs TRL, side by side"),
}


def _usage() -> str:
    lines = ["usage: course <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`course <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"course: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    mod_name, func = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and mod_name.startswith(e.name):
            print(f"course {name}: not available in this version of the course ({mod_name} is missing)",
                  file=sys.stderr)
            return 2
        raise
    rc = getattr(mod, func)(rest)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
