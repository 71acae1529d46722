"""Settings of the sandbox: per-node defaults, the maxima nodes may ask for, the pool."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flowmill.sandbox.limits import CodeLimits


@dataclass(frozen=True)
class SandboxSettings:
    """How user code runs. Every field has a safe default.

    Attributes:
        timeout_s: Wall-clock limit of one evaluation when the node sets none.
        max_timeout_s: Largest ``timeout_s`` a node may set.
        memory_mb: Memory limit of one evaluation when the node sets none.
        max_memory_mb: Largest ``memory_mb`` a node may set.
        max_output_bytes: Largest result (JSON) an evaluation may return.
        expression_timeout_s: Limit of one batch of ``{{ }}`` expressions or a condition.
        expression_memory_mb: Memory limit of one batch of expressions.
        js_workers: JavaScript worker processes (evaluations run in parallel up to this).
        js_reserve_workers: Extra JavaScript workers kept for tenants with no evaluation
            running, so one tenant filling the pool never makes another wait.
        nice: CPU niceness of sandbox processes (0-19): user code yields the CPU to the
            engine's own work, which every tenant's steps wait on.
        js_max_evaluations_per_worker: A worker is replaced after this many evaluations,
            so whatever one might leak in the engine library cannot pile up.
        max_log_lines: ``console.log``/``print`` lines kept per evaluation.
        max_log_bytes: Bytes of log text kept per evaluation.
        bwrap: Path of the bubblewrap binary; empty to find it on ``PATH``; ``"none"``
            to never use it.
        jail_js_workers: Run the JavaScript workers inside bubblewrap too (when present),
            so a bug in the JS engine still lands in a jail without network or files.
        allow_rlimit_only_python: Let Python code nodes run with rlimits (and seccomp)
            but without bubblewrap. Off by default: without bubblewrap the code can read
            the host's files and open network connections.
        python_executable: Interpreter for Python code nodes; empty for the engine's own.
        python_spare_processes: Python jails started ahead, each waiting for one run
            (hides the interpreter's start-up; 0 starts one per run, on demand).
        python_max_concurrent: Python code nodes running at once (more wait their turn).
        python_max_processes: ``RLIMIT_NPROC`` of Python code nodes.
        python_max_open_files: ``RLIMIT_NOFILE`` of Python code nodes.
        python_max_file_bytes: ``RLIMIT_FSIZE`` of Python code nodes (also the tmpfs size).
    """

    timeout_s: float = 5.0
    max_timeout_s: float = 60.0
    memory_mb: int = 128
    max_memory_mb: int = 1024
    max_output_bytes: int = 1024 * 1024
    expression_timeout_s: float = 2.0
    expression_memory_mb: int = 64
    js_workers: int = 0
    js_reserve_workers: int = 1
    nice: int = 10
    js_max_evaluations_per_worker: int = 5000
    max_log_lines: int = 200
    max_log_bytes: int = 64 * 1024
    bwrap: str = ""
    jail_js_workers: bool = True
    allow_rlimit_only_python: bool = False
    python_executable: str = ""
    python_spare_processes: int = 2
    python_max_concurrent: int = 8
    python_max_processes: int = 1
    python_max_open_files: int = 64
    python_max_file_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.timeout_s <= self.max_timeout_s:
            raise ValueError("timeout_s must be positive and at most max_timeout_s")
        if not 0 < self.memory_mb <= self.max_memory_mb:
            raise ValueError("memory_mb must be positive and at most max_memory_mb")
        if self.max_output_bytes <= 0 or self.js_workers < 0:
            raise ValueError("max_output_bytes must be positive, js_workers non-negative")

    @property
    def worker_count(self) -> int:
        """JavaScript workers to start: ``js_workers``, or one per CPU (2 to 8)."""
        if self.js_workers:
            return self.js_workers
        return max(2, min(8, os.cpu_count() or 2))

    @property
    def default_limits(self) -> CodeLimits:
        """Limits of a code node that sets none (``NodeServices.code_limits``)."""
        return CodeLimits(self.timeout_s, self.memory_mb, self.max_output_bytes)

    @property
    def max_limits(self) -> CodeLimits:
        """Caps of what a node may set (``NodeServices.max_code_limits``)."""
        return CodeLimits(self.max_timeout_s, self.max_memory_mb, self.max_output_bytes)

    @property
    def expression_limits(self) -> CodeLimits:
        """Limits of one batch of ``{{ }}`` expressions or one string condition."""
        return CodeLimits(
            min(self.expression_timeout_s, self.max_timeout_s),
            min(self.expression_memory_mb, self.max_memory_mb),
            self.max_output_bytes,
        )

    def clamp(self, limits: CodeLimits) -> CodeLimits:
        """``limits`` within the maxima (a caller cannot lift them by asking)."""
        return CodeLimits(
            timeout_s=min(max(limits.timeout_s, 0.001), self.max_timeout_s),
            memory_mb=min(max(limits.memory_mb, 1), self.max_memory_mb),
            max_output_bytes=min(max(limits.max_output_bytes, 1), self.max_output_bytes),
        )
