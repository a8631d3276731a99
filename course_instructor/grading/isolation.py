"""OS-level isolation of student code with bubblewrap (``bwrap``, Debian package ``bubblewrap``).

Every process that runs student code (the sandboxed function runs, the notebook kernels) starts
through :meth:`Isolation.command`, which wraps it in bwrap:

* a fresh **mount namespace** holding only: ``/usr`` & co and the interpreter read-only, the
  grader's site-packages read-only at ``/opt/course/site<N>`` with the editable install's
  ``.pth`` / finder files blanked and any ``solutions`` / ``course_instructor`` package in them
  hidden, the folders the caller binds (the student's own files), a private ``/tmp`` and
  ``/dev/shm`` (tmpfs of bounded size; everything else is read-only), a private ``/proc`` and
  ``/dev``. The instructor repository, ``solutions/``,
  the gradebook, the grades and other students' submissions do not exist in it;
* its own **network namespace** (no network at all), **pid namespace** (the grader and every
  other process are invisible, so cannot be signalled or traced; killing bwrap kills everything
  inside), IPC / UTS / cgroup namespaces;
* an unprivileged uid/gid (65534, "nobody") in a **user namespace**, no capabilities,
  ``--die-with-parent``, an empty environment except what the caller sets;
* optional seccomp program (:data:`limits.FORK_BAN`: no new processes).

If bwrap is missing or cannot create the namespaces, :func:`check` says why and how to fix it;
the grader then refuses to run student code unless ``--unsafe-no-isolation`` is given
(:class:`Isolation` with ``enabled=False`` runs commands as they are and says so loudly).
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import site
import subprocess
import sys
import sysconfig

NOBODY = 65534
HIDDEN_PACKAGES = ("solutions", "course_instructor")
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `sudo apt-get install -y bubblewrap`; Fedora: "
    "`sudo dnf install bubblewrap`) and allow unprivileged user namespaces "
    "(`sudo sysctl -w kernel.unprivileged_userns_clone=1` where that setting exists; on "
    "Ubuntu 24.04+ also `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`)"
)


class IsolationUnavailable(RuntimeError):
    """bwrap is missing or cannot create the namespaces."""


def site_dirs() -> list[str]:
    """The interpreter's site-packages folders (what sandboxed code may import from)."""
    dirs = []
    for d in [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if d and os.path.isdir(d) and d not in dirs:
            dirs.append(d)
    return dirs


def interpreter() -> str:
    """The real interpreter binary (a venv's python is a symlink to it)."""
    return os.path.realpath(sys.executable)


@functools.lru_cache(maxsize=1)
def check() -> str | None:
    """None when bwrap can isolate here; else a sentence saying what is missing and how to fix it."""
    exe = shutil.which("bwrap")
    if not exe:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    try:
        r = subprocess.run(
            [
                exe,
                "--unshare-all",
                "--uid",
                str(NOBODY),
                "--gid",
                str(NOBODY),
                "--ro-bind",
                "/",
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap could not start ({e}): {INSTALL_HINT}"
    if r.returncode != 0:
        return f"bwrap cannot create namespaces here ({r.stderr.strip()[-300:]}): {INSTALL_HINT}"
    return None


class Isolation:
    """Builds the command line that runs a program inside the sandbox (or, disabled, as is)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            problem = check()
            if problem:
                raise IsolationUnavailable(problem)
            self.bwrap = shutil.which("bwrap")
        # site-packages appear at their own paths (only those folders: the rest of the repository
        # stays absent). Remapped to another path, modules no longer matched their install
        # location and datasets' fingerprinting failed to pickle pyarrow's classes (PicklingError
        # "MonthDayNano ... not found") in every notebook cell that builds a Dataset.
        self.site = {d: d for d in site_dirs()}

    def site_paths(self) -> list[str]:
        """sys.path entries for site-packages as seen by the sandboxed process."""
        return list(self.site.values()) if self.enabled else list(self.site)

    def inside(self, host_site_path: str) -> str:
        """Where a path under a site-packages folder is seen inside the sandbox."""
        for d, inner in self.site.items():
            if self.enabled and (host_site_path == d or host_site_path.startswith(d + os.sep)):
                return inner + host_site_path[len(d) :]
        return host_site_path

    def _system(self) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        for f in (
            "/etc/ld.so.cache",
            "/etc/ld.so.conf",
            "/etc/ld.so.conf.d",
            "/etc/localtime",
            "/etc/nsswitch.conf",
            "/etc/alternatives",
            "/etc/fonts",
        ):
            if os.path.exists(f):
                args += ["--ro-bind", f, f]
        seen = {"/usr"}
        for d in (sys.base_prefix, os.path.dirname(os.path.dirname(interpreter()))):
            d = os.path.realpath(d)
            if not any(d == s or d.startswith(s + os.sep) for s in seen):
                args += ["--ro-bind", d, d]
                seen.add(d)
        for host, inner in self.site.items():
            args += ["--ro-bind", host, inner]
            for pattern in ("*.pth", "__editable__*", "_*editable*finder*"):
                for f in glob.glob(os.path.join(host, pattern)):
                    if os.path.isfile(f):
                        args += ["--ro-bind", "/dev/null", inner + f[len(host) :]]
            for name in HIDDEN_PACKAGES:
                if os.path.isdir(os.path.join(host, name)):
                    args += ["--tmpfs", f"{inner}/{name}"]
        # a package copied into the base interpreter's own site-packages would be visible too
        base_site = os.path.join(
            sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages"
        )
        for name in HIDDEN_PACKAGES:
            if os.path.isdir(os.path.join(base_site, name)):
                args += ["--tmpfs", os.path.realpath(os.path.join(base_site, name))]
        return args

    def command(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: str,
        ro: dict[str, str] | None = None,
        rw: dict[str, str] | None = None,
        tmp_mb: int = 512,
        seccomp_fd: int | None = None,
        new_session: bool = True,
        scratch: dict[str, int] | None = None,
        as_pid_1: bool = False,
    ) -> list[str]:
        """The command line running `argv` isolated. `ro` / `rw` = {host path: path inside};
        `scratch` = {path inside: MB}: private tmpfs folders of bounded size (binds may sit on
        them); `as_pid_1`: `argv` is the namespace's pid 1 (no bwrap reaper in there holding
        copies of its stdin / stdout / stderr; it cannot be signalled from inside); `env` is the whole environment inside; `cwd` a path inside. Paths in argv / env
        must be paths inside. With isolation disabled: argv itself (the caller passes env and cwd)."""
        if not self.enabled:
            return list(argv)
        cmd = [
            self.bwrap,
            "--unshare-all",
            "--uid",
            str(NOBODY),
            "--gid",
            str(NOBODY),
            "--hostname",
            "grader",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
        ]
        if new_session:
            cmd.append("--new-session")
        if as_pid_1:
            cmd.append("--as-pid-1")
        # the private /tmp first, the system and site-packages binds on top: an interpreter or a
        # .venv that lives under /tmp (a clone in /tmp) stays visible instead of being covered
        cmd += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(64 * 2**20),
            "--tmpfs",
            "/dev/shm",
            "--size",
            str(int(tmp_mb) * 2**20),
            "--tmpfs",
            "/tmp",
        ]
        cmd += self._system()
        for inner, mb in (scratch or {}).items():
            cmd += ["--size", str(int(mb) * 2**20), "--tmpfs", inner]
        for host, inner in (ro or {}).items():
            cmd += ["--ro-bind", host, inner]
        for host, inner in (rw or {}).items():
            cmd += ["--bind", host, inner]
        # only the rw binds and the tmpfs folders (/tmp, /dev/shm, scratch: bounded) are writable
        cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", cwd, "--clearenv"]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        if seccomp_fd is not None:
            cmd += ["--seccomp", str(seccomp_fd)]
        return cmd + ["--"] + list(argv)


def warn_unsafe(log) -> None:
    """What `--unsafe-no-isolation` prints: loudly, every batch."""
    bar = "!" * 78
    log(
        f"{bar}\n!! UNSAFE: --unsafe-no-isolation: student code runs WITHOUT OS-level isolation.\n"
        "!! It can read solutions/ and the gradebook, write the instructor repository and change\n"
        "!! other students' grades. Only the audit hook (an alarm, not a wall) stands in its way.\n"
        f"!! Use this only for trusted submissions. To isolate: {INSTALL_HINT}\n{bar}"
    )
