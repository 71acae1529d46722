"""The errors a sandboxed evaluation fails with (``NodeError`` with a sandbox ``type``)."""

from __future__ import annotations

from typing import Any

from flowmill import jsonutil
from flowmill.domain.errors import NodeError

TIMEOUT = "SandboxTimeout"
MEMORY = "SandboxMemoryExceeded"
ERROR = "SandboxError"
OUTPUT_TOO_LARGE = "SandboxOutputTooLarge"
UNAVAILABLE = "SandboxUnavailable"


def timeout(language: str, seconds: float) -> NodeError:
    """The code ran past its time limit (retriable: the node's retry policy decides)."""
    return NodeError(
        f"{language} code did not finish within {seconds:g} s",
        type=TIMEOUT,
        retriable=True,
        details={"language": language.lower(), "timeout_s": seconds},
    )


def memory(language: str, megabytes: int) -> NodeError:
    """The code used more memory than allowed."""
    return NodeError(
        f"{language} code used more than {megabytes} MB of memory",
        type=MEMORY,
        retriable=True,
        details={"language": language.lower(), "memory_mb": megabytes},
    )


def output_too_large(language: str, size: int, limit: int) -> NodeError:
    """The code's result is bigger than allowed (retrying cannot help)."""
    return NodeError(
        f"{language} code returned {size} bytes, over the {limit}-byte limit",
        type=OUTPUT_TOO_LARGE,
        retriable=False,
        details={"language": language.lower(), "size": size, "limit": limit},
    )


def unavailable(message: str) -> NodeError:
    """The sandbox cannot run this code here (configuration, not the code)."""
    return NodeError(message, type=UNAVAILABLE, retriable=False)


def user_error(
    language: str,
    message: str,
    *,
    line: int | None = None,
    source_line: str | None = None,
    stack: str | None = None,
    retriable: bool = True,
) -> NodeError:
    """The user's code raised (or did not compile): their message and their line.

    Args:
        language: ``javascript`` or ``python``.
        message: The error as the language prints it, e.g. ``TypeError: x is null``.
        line: Line of the user's code where it happened (1-based), if known.
        source_line: That line's text.
        stack: The user's part of the stack trace.
        retriable: False for errors no retry can fix (syntax).
    """
    text = message
    details: dict[str, Any] = {"language": language}
    if line is not None:
        text = f"{message} (line {line}"
        text += f": {source_line.strip()[:200]})" if source_line and source_line.strip() else ")"
        details["line"] = line
    if stack:
        details["stack"] = stack[:4000]
    return NodeError(text, type=ERROR, retriable=retriable, details=details)


def crashed(language: str, reason: str) -> NodeError:
    """The sandbox process died under the code (the engine lives on; retriable)."""
    return NodeError(
        f"the {language} sandbox process died while running the code ({reason})",
        type=ERROR,
        retriable=True,
        details={"language": language.lower(), "reason": reason},
    )


def source_line(code: str, line: int | None) -> str | None:
    """Text of 1-based ``line`` of ``code``, if it exists."""
    if line is None or line < 1:
        return None
    lines = code.splitlines()
    return lines[line - 1] if line <= len(lines) else None


def encode_scope(scope: Any) -> bytes:
    """The scope as JSON for a sandbox; a value JSON cannot carry is the node's error."""
    try:
        return jsonutil.dumpb(scope)
    except TypeError as e:
        raise NodeError(f"the code's input is not JSON: {e}", type=ERROR, retriable=False) from None
