"""The `course` command. Each sub-command lives in its own module (imported lazily, so
`course --help` is instant and a missing optional dependency only affects its own command).

Student commands are listed here. Instructor commands (course run, release, autograde, ...) are
registered by the instructor package itself (``course_instructor.commands.COMMANDS``), which never
ships: in the student copy `course --help` lists only what works there."""

from __future__ import annotations

import importlib
import importlib.util
import sys

# name -> (module:function, one-line help): the commands of the student copy.
COMMANDS: dict[str, tuple[str, str]] = {
    "selfcheck": (
        "course_lib.core.selfcheck:main",
        "load the model, sample, train a few steps (setup check)",
    ),
    "submit": ("course_lib.submit:main", "pack your notebooks and course_lib into a zip"),
    "serve": ("course_lib.core.serving:main", "serve a checkpoint over HTTP (POST /generate)"),
}
INSTRUCTOR_PACKAGE = "course_instructor"


def instructor_commands() -> dict[str, tuple[str, str]]:
    """The instructor package's commands, or {} where it is not installed (the student copy)."""
    if importlib.util.find_spec(INSTRUCTOR_PACKAGE) is None:
        return {}
    return dict(importlib.import_module(f"{INSTRUCTOR_PACKAGE}.commands").COMMANDS)


def all_commands() -> dict[str, tuple[str, str]]:
    """Every command that works here: the student commands, then the instructor's (if present)."""
    return {**COMMANDS, **instructor_commands()}


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    lines = ["usage: course <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {help_}" for name, (_, help_) in commands.items()]
    lines += ["", "`course <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = all_commands()
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage(commands))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        hint = (
            ""
            if len(commands) > len(COMMANDS)
            else "\n(instructor commands such as `course run` exist only in the instructor's repository)"
        )
        print(f"course: unknown command {name!r}{hint}\n\n{_usage(commands)}", file=sys.stderr)
        return 2
    mod_name, func = commands[name][0].split(":")
    rc = getattr(importlib.import_module(mod_name), func)(rest)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
