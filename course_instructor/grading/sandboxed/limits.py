"""Resource bounds of every process that runs student code (the sandboxed function runs and the
notebook kernels): rlimits, and a seccomp filter that forbids creating processes.

Stdlib only: grader_kernel.py and sandbox_child.py load this file by path inside the sandbox.

* :func:`apply` sets CPU seconds, address space, file size, open files, processes and no core
  dumps (RLIMIT_NPROC is not enforced for a process whose real uid is root, which is why
  :data:`FORK_BAN` exists);
* :data:`FORK_BAN` is a compiled classic-BPF seccomp program: ``fork``, ``vfork``, ``clone3`` and
  any ``clone`` without ``CLONE_THREAD`` fail with EPERM / ENOSYS, threads still start.
  :func:`install_fork_ban` loads it into the calling process (the sandboxed function runs, and
  the forked notebook kernels, which bubblewrap cannot filter because their fork server must fork).
"""

from __future__ import annotations

import platform
import struct

DEFAULTS = {"cpu_seconds": 300, "mem_mb": 6144, "fsize_mb": 64, "nofile": 256, "nproc": 256}


def apply(cpu_seconds: int, mem_mb: int, fsize_mb: int, nofile: int = 256, nproc: int = 256) -> None:
    """Set this process's rlimits (soft = hard, so student code cannot raise them)."""
    import resource

    for res, val in (
        (resource.RLIMIT_CPU, int(cpu_seconds)),
        (resource.RLIMIT_AS, int(mem_mb) * 2**20),
        (resource.RLIMIT_FSIZE, int(fsize_mb) * 2**20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, int(nofile)),
        (resource.RLIMIT_NPROC, int(nproc)),
    ):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass


# --- seccomp: no new processes --------------------------------------------------------------------
_ARCH = {
    "x86_64": (0xC000003E, {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435}),
}
_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS, _CLONE_THREAD = 1, 38, 0x00010000


def _program(machine: str) -> bytes | None:
    """The BPF program for this CPU (None: unknown architecture, no filter)."""
    if machine not in _ARCH:
        return None
    arch, nr = _ARCH[machine]
    code = [("ld", 4), ("jeq", arch, None, "deny"), ("ld", 0)]
    if machine == "x86_64":
        code.append(("jge", 0x40000000, "deny", None))  # the x32 ABI: refuse it entirely
    code += [("jeq", nr[n], "deny", None) for n in ("fork", "vfork") if n in nr]
    code += [
        ("jeq", nr["clone3"], "enosys", None),  # glibc then falls back to clone
        ("jeq", nr["clone"], None, "allow"),
        ("ld", 16),  # clone's flags (low 32 bits)
        ("jset", _CLONE_THREAD, "allow", "deny"),
        ("label", "allow"),
        ("ret", _ALLOW),
        ("label", "deny"),
        ("ret", _ERRNO | _EPERM),
        ("label", "enosys"),
        ("ret", _ERRNO | _ENOSYS),
    ]
    labels, pc = {}, 0
    for ins in code:
        if ins[0] == "label":
            labels[ins[1]] = pc
        else:
            pc += 1
    out, pc = [], 0
    for ins in code:
        op = ins[0]
        if op == "label":
            continue
        if op == "ld":
            out.append(struct.pack("=HBBI", _LD, 0, 0, ins[1]))
        elif op == "ret":
            out.append(struct.pack("=HBBI", _RET, 0, 0, ins[1]))
        else:
            jt = 0 if ins[2] is None else labels[ins[2]] - pc - 1
            jf = 0 if ins[3] is None else labels[ins[3]] - pc - 1
            out.append(struct.pack("=HBBI", {"jeq": _JEQ, "jge": _JGE, "jset": _JSET}[op], jt, jf, ins[1]))
        pc += 1
    return b"".join(out)


FORK_BAN: bytes | None = _program(platform.machine())


def install_fork_ban() -> bool:
    """Load :data:`FORK_BAN` into this process (irrevocable; children inherit it). False when
    this architecture has no program or the kernel refuses it."""
    if FORK_BAN is None:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    n = len(FORK_BAN) // 8
    buf = ctypes.create_string_buffer(FORK_BAN, len(FORK_BAN))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(n, ctypes.cast(buf, ctypes.c_void_p))
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(prog), 0, 0) == 0
