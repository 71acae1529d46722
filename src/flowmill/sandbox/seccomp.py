"""A small seccomp deny-list for sandbox processes, as classic BPF bytes.

The jail must not create processes or threads (a fork bomb inside the jail would
otherwise only be bounded by ``RLIMIT_NPROC``, which the kernel does not enforce for a
user namespace mapped to root), nor reach for kernel interfaces a JSON-in/JSON-out
snippet never needs. Bubblewrap loads the program (``--seccomp FD``); no libseccomp,
no ctypes in the engine process.
"""

from __future__ import annotations

import errno
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_X32_BIT = 0x40000000

# (audit arch, {syscall name: number}) per machine; names missing on an arch are absent.
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "fork": 57,
            "vfork": 58,
            "clone": 56,
            "clone3": 435,
            "ptrace": 101,
            "mount": 165,
            "umount2": 166,
            "unshare": 272,
            "setns": 308,
            "keyctl": 250,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "pidfd_open": 434,
            "kexec_load": 246,
            "init_module": 175,
            "finit_module": 313,
            "chroot": 161,
            "pivot_root": 155,
            "personality": 135,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "ptrace": 117,
            "mount": 40,
            "umount2": 39,
            "unshare": 97,
            "setns": 268,
            "keyctl": 219,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "pidfd_open": 434,
            "kexec_load": 104,
            "init_module": 105,
            "finit_module": 273,
            "chroot": 51,
            "pivot_root": 41,
            "personality": 92,
        },
    ),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_filter(machine: str | None = None) -> bytes | None:
    """The BPF program, or ``None`` on a machine it has no syscall table for.

    ``clone3`` fails with ``ENOSYS`` so the C library falls back to ``clone``, which
    fails with ``EPERM``; any other architecture than the native one kills the process
    (no 32-bit or x32 side door).
    """
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, table = arch
    prog = [
        _insn(_LD_W_ABS, 4),  # seccomp_data.arch
        _insn(_JEQ_K, audit_arch, jt=1, jf=0),
        _insn(_RET_K, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0),  # seccomp_data.nr
    ]
    if audit_arch == 0xC000003E:
        prog += [_insn(_JGE_K, _X32_BIT, jt=0, jf=1), _insn(_RET_K, _RET_KILL_PROCESS)]
    for name, nr in table.items():
        err = errno.ENOSYS if name == "clone3" else errno.EPERM
        prog += [_insn(_JEQ_K, nr, jt=0, jf=1), _insn(_RET_K, _RET_ERRNO | err)]
    prog.append(_insn(_RET_K, _RET_ALLOW))
    return b"".join(prog)
