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

Where user namespaces are forbidden but the grader is root with CAP_SYS_ADMIN (a container given
that capability), :class:`RootNamespaceIsolation` builds the same sandbox without a user namespace:
bwrap run by root creates the other namespaces and ``setpriv`` turns the process into the real
user nobody inside them (:func:`check_root_namespaces` says why it cannot, where it cannot).
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


def _probe(argv: list[str], who: str, hint: str) -> str | None:
    """Run a bwrap probe; None when it exits 0, else a sentence naming why and how to fix it."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{who} could not start ({e}): {hint}"
    if r.returncode != 0:
        return f"{who} cannot create namespaces here ({r.stderr.strip()[-300:]}): {hint}"
    return None


@functools.lru_cache(maxsize=1)
def check() -> str | None:
    """None when bwrap can isolate here; else a sentence saying what is missing and how to fix it."""
    exe = shutil.which("bwrap")
    if not exe:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    uid = ["--uid", str(NOBODY), "--gid", str(NOBODY)]
    return _probe(
        [exe, "--unshare-all", *uid, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        "bwrap",
        INSTALL_HINT,
    )


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
        copies of its stdin / stdout / stderr; it cannot be signalled from inside); `env` is the
        whole environment inside; `cwd` a path inside. Paths in argv / env must be paths inside.
        With isolation disabled: argv itself (the caller passes env and cwd)."""
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


ROOT_NS_HINT = (
    "run the grader as root in a container that may create namespaces: CAP_SYS_ADMIN and mounts "
    "allowed (Docker: `--cap-add SYS_ADMIN --security-opt apparmor=unconfined`, or `--privileged`)"
)
# what the sandboxed process keeps from bwrap until setpriv has switched to nobody and dropped them
SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def setpriv_nobody(setpriv: str) -> list[str]:
    """setpriv's command line that becomes uid/gid nobody with no groups, no capabilities (bounding
    set included) and no new privileges; the program follows."""
    return [
        setpriv,
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def _root_namespaces() -> list[str]:
    """bwrap's namespace options for real root without a user namespace: bwrap only creates the
    namespaces named (``--unshare-all`` would ask for a user namespace), and keeps just the
    capabilities setpriv needs to switch to nobody."""
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--cap-drop", "ALL"]
    for cap in SETPRIV_CAPS:
        args += ["--cap-add", cap]
    return args


@functools.lru_cache(maxsize=1)
def check_root_namespaces() -> str | None:
    """None when bwrap, run by root, can create mount / pid / network / IPC / UTS namespaces without
    a user namespace and setpriv can become nobody inside; else a sentence saying what is missing."""
    exe, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if os.geteuid() != 0:
        return f"not running as root (euid {os.geteuid()}): {ROOT_NS_HINT}"
    if not exe:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    if not setpriv:
        return "setpriv is not installed (Debian/Ubuntu: `apt-get install -y util-linux`)"
    return _probe(
        [exe, *_root_namespaces(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        + ["--perms", "1777", "--tmpfs", "/tmp", "--", *setpriv_nobody(setpriv), "true"],
        "bwrap run as root",
        ROOT_NS_HINT,
    )


class RootNamespaceIsolation(Isolation):
    """The same sandbox as :class:`Isolation` where user namespaces are forbidden but the grader is
    root with CAP_SYS_ADMIN: bwrap run by root creates the mount, pid, network, IPC and UTS
    namespaces without a user namespace (same file system view: no instructor repository, private
    /proc, no network), and inside them ``setpriv`` becomes the real uid/gid nobody with no
    capabilities before the program starts.

    A real nobody (not root mapped to nobody by a user namespace) cannot read root's 0600 files, so
    the read-only binds are opened to everyone (they are the grader's own copies, inside its 0700
    work folder) and the writable ones are handed to nobody; the private /tmp and /dev/shm are
    world-writable (sticky) tmpfs."""

    def __init__(self):
        problem = check_root_namespaces()
        if problem:
            raise IsolationUnavailable(problem)
        # enabled=False skips the user-namespace probe of Isolation; the paths inside are bwrap's
        super().__init__(enabled=False)
        self.enabled = True
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")

    def command(self, argv: list[str], *, env, cwd, ro=None, rw=None, **kw) -> list[str]:
        for host in ro or {}:
            _open_tree(host)
        for host in rw or {}:
            for d, dirs, files in os.walk(host):
                for name in [d, *(os.path.join(d, x) for x in dirs + files)]:
                    os.lchown(name, NOBODY, NOBODY)
        cmd = super().command(argv, env=env, cwd=cwd, ro=ro, rw=rw, **kw)
        sep = len(cmd) - len(argv) - 1
        userns = [self.bwrap, "--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        if cmd[sep] != "--" or cmd[:6] != userns:
            raise RuntimeError("Isolation.command changed shape: RootNamespaceIsolation must follow it")
        head = [self.bwrap, *_root_namespaces(), *_as_root(cmd[6:sep])]
        return [*head, "--", *setpriv_nobody(self.setpriv), *argv]


# The bwrap options Isolation.command writes after its namespace options: how many arguments each
# takes. The mounts' last argument is the path inside.
_ARITY = {
    "--hostname": 1,
    "--die-with-parent": 0,
    "--new-session": 0,
    "--cap-drop": 1,
    "--proc": 1,
    "--dev": 1,
    "--size": 1,
    "--perms": 1,
    "--tmpfs": 1,
    "--ro-bind": 2,
    "--bind": 2,
    "--symlink": 2,
    "--remount-ro": 1,
    "--chdir": 1,
    "--clearenv": 0,
    "--setenv": 2,
    "--seccomp": 1,
}
_MOUNTS = {"--proc", "--dev", "--tmpfs", "--ro-bind", "--bind", "--symlink"}


def _as_root(opts: list[str]) -> list[str]:
    """Isolation.command's options after its namespace options, fit for bwrap run by root with the
    process becoming a real nobody: its --cap-drop goes (_root_namespaces has its own); the
    private /tmp and /dev/shm are world-writable and sticky; and every folder bwrap would create
    on the way to a mount point is made 0755 first -- bwrap run by root creates them 0700, which
    nobody cannot pass (an interpreter under /root, a venv under /work: "Permission denied")."""
    out, pending, made, binds = [], [], {"/"}, []
    i = 0
    while i < len(opts):
        op = opts[i]
        if op not in _ARITY:
            raise RuntimeError(f"RootNamespaceIsolation does not know bwrap's {op}: teach _as_root")
        args = opts[i + 1 : i + 1 + _ARITY[op]]
        i += 1 + _ARITY[op]
        if op == "--cap-drop":
            continue
        if op in ("--size", "--perms"):  # they qualify the next mount: kept for it
            pending += [op, *args]
            continue
        if op in _MOUNTS:
            dest = args[-1]
            parents, p = [], os.path.dirname(dest)
            # folders of a bound host tree are the host's own: only tmpfs folders are bwrap's
            while p not in made and not any(p == b or p.startswith(b + "/") for b in binds):
                parents.append(p)
                p = os.path.dirname(p)
            for p in reversed(parents):
                out += ["--perms", "0755", "--dir", p]
                made.add(p)
            made.add(dest)
            if op in ("--ro-bind", "--bind"):
                binds.append(dest)
            if op == "--tmpfs" and dest in ("/tmp", "/dev/shm"):
                pending += ["--perms", "1777"]
        out += [*pending, op, *args]
        pending = []
    return out


def _open_tree(path: str) -> None:
    """Make a tree readable (and its folders traversable) by every user; nothing else changes."""
    if os.path.isfile(path):
        os.chmod(path, os.stat(path).st_mode | 0o444)
        return
    for d, _dirs, files in os.walk(path):
        os.chmod(d, os.stat(d).st_mode | 0o555)
        for f in files:
            f = os.path.join(d, f)
            if not os.path.islink(f):
                os.chmod(f, os.stat(f).st_mode | 0o444)


def warn_unsafe(log) -> None:
    """What `--unsafe-no-isolation` prints: loudly, every batch."""
    bar = "!" * 78
    log(
        f"{bar}\n!! UNSAFE: --unsafe-no-isolation: student code runs WITHOUT OS-level isolation.\n"
        "!! It can read solutions/ and the gradebook, write the instructor repository and change\n"
        "!! other students' grades. Only the audit hook (an alarm, not a wall) stands in its way.\n"
        f"!! Use this only for trusted submissions. To isolate: {INSTALL_HINT}\n{bar}"
    )
