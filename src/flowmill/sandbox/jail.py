"""Bubblewrap jails: a minimal read-only runtime, no network, no engine environment.

A jail sees the Python interpreter and its standard library (without ``ctypes`` and
without site-packages), the system's shared libraries, an empty ``/dev`` and a fresh,
size-limited tmpfs at ``/tmp`` — no ``/etc``, no ``/home``, no ``/proc``, no shell.
It runs in new user, PID, network, IPC, UTS and cgroup namespaces as ``nobody``, dies
with the engine, and carries a seccomp filter that forbids creating processes or
threads, ``ptrace``, mounts and other kernel interfaces (see :mod:`.seccomp`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowmill.sandbox.seccomp import deny_filter

NOBODY = 65534


@dataclass(frozen=True)
class Runtime:
    """Where the Python interpreter lives on the host (bound read-only into jails)."""

    executable: str
    stdlib: str
    libraries: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()

    @classmethod
    def current(cls, executable: str = "") -> Runtime:
        """The engine's own interpreter (or ``executable``, a sibling build)."""
        exe = os.path.realpath(executable or getattr(sys, "_base_executable", sys.executable))
        stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        libraries: tuple[str, ...] = ()
        if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir:
            libraries = tuple(sorted(glob.glob(os.path.join(libdir, "libpython*.so*"))))
        # ctypes would let code call any C function of the jail's libraries.
        hidden = tuple(glob.glob(os.path.join(stdlib, "lib-dynload", "_ctypes*.so")))
        return cls(exe, stdlib, libraries, hidden)


def _system_lib_args() -> list[str]:
    args: list[str] = []
    for path in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/lib32", "/usr/lib32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


@dataclass
class Jail:
    """Builds bubblewrap command lines; ``bwrap`` is ``None`` when there is none.

    Attributes:
        bwrap: Path of a bubblewrap that was seen to work, or ``None``.
        runtime: The interpreter jails run.
        problem: Why bubblewrap is not used, when it is not.
    """

    bwrap: str | None
    runtime: Runtime
    problem: str = ""
    _filter: bytes | None = field(default=None, repr=False)

    @classmethod
    def detect(cls, setting: str = "", python_executable: str = "") -> Jail:
        """Find bubblewrap (``setting``: a path, empty for ``PATH``, ``"none"``) and
        check that it can actually build a jail here (user namespaces may be off)."""
        runtime = Runtime.current(python_executable)
        if setting == "none":
            return cls(None, runtime, "bubblewrap is disabled by the settings", deny_filter())
        path = setting or shutil.which("bwrap")
        if not path or not os.access(path, os.X_OK):
            return cls(None, runtime, "bubblewrap (bwrap) is not installed", deny_filter())
        jail = cls(path, runtime, "", deny_filter())
        problem = jail._probe()
        if problem:
            return cls(None, runtime, f"bubblewrap does not work here: {problem}", deny_filter())
        return jail

    def _probe(self) -> str:
        fd = self.seccomp_fd()
        try:
            argv = self.command([self.runtime.executable, "-I", "-S", "-c", "pass"], seccomp_fd=fd)
            proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, timeout=10, env={}, pass_fds=(fd,) if fd >= 0 else ()
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        finally:
            if fd >= 0:
                os.close(fd)
        if proc.returncode != 0:
            return proc.stderr.decode(errors="replace").strip()[:300] or "probe failed"
        return ""

    @property
    def available(self) -> bool:
        """Whether jails are built with bubblewrap."""
        return self.bwrap is not None

    @property
    def has_seccomp(self) -> bool:
        """Whether a seccomp filter exists for this machine's architecture."""
        return self._filter is not None

    @property
    def seccomp_program(self) -> bytes | None:
        """The seccomp BPF program for this machine, if there is one."""
        return self._filter

    def seccomp_fd(self) -> int:
        """A fresh readable fd holding the seccomp program (the caller closes it), or -1."""
        if self._filter is None:
            return -1
        fd = os.memfd_create("flowmill-seccomp", os.MFD_CLOEXEC)
        os.write(fd, self._filter)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def command(
        self,
        argv: Sequence[str],
        *,
        binds: Sequence[tuple[str, str]] = (),
        tmpfs_bytes: int = 16 * 1024 * 1024,
        seccomp_fd: int = -1,
    ) -> list[str]:
        """``argv`` wrapped in bubblewrap.

        Args:
            argv: The command inside the jail (host paths of the runtime work as is).
            binds: Extra ``(host path, jail path)`` read-only binds.
            tmpfs_bytes: Size of the fresh ``/tmp``.
            seccomp_fd: An fd from :meth:`seccomp_fd`, passed to the child, or -1.
        """
        if self.bwrap is None:
            raise RuntimeError("bubblewrap is not available")
        rt = self.runtime
        args = [self.bwrap, *_system_lib_args()]
        for path in (rt.stdlib, *rt.libraries, rt.executable):
            if not _under_system_libs(path):
                args += ["--ro-bind", path, path]
        for hidden in rt.hidden:
            args += ["--ro-bind", "/dev/null", hidden]
        site = os.path.join(rt.stdlib, "site-packages")
        if os.path.isdir(site):
            args += ["--tmpfs", site, "--remount-ro", site]
        for host, inside in binds:
            args += ["--ro-bind", host, inside]
        # /tmp here is the jail's own fresh tmpfs, not the host's.
        tmp = "/tmp"  # noqa: S108
        args += ["--dev", "/dev", "--size", str(tmpfs_bytes), "--tmpfs", tmp, "--chdir", tmp]
        args += ["--unshare-all", "--hostname", "sandbox", "--uid", str(NOBODY)]
        args += ["--gid", str(NOBODY), "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--setenv", "HOME", tmp, "--setenv", "LANG", "C.UTF-8", "--cap-drop", "ALL"]
        args += ["--remount-ro", "/"]  # the jail's root too: only /tmp is writable
        if seccomp_fd >= 0:
            args += ["--seccomp", str(seccomp_fd)]
        return [*args, "--", *argv]


def _under_system_libs(path: str) -> bool:
    # Bound anyway by _system_lib_args; binding again is harmless but noisy.
    p = Path(path)
    return any(p.is_relative_to(root) for root in ("/usr/lib", "/usr/lib64", "/lib", "/lib64"))
