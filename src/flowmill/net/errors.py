"""Failures of outbound HTTP, as node errors users see.

Each class fixes the ``type`` shown to users and whether another attempt could help, so
every node that uses the HTTP service reports the same failure the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flowmill.domain.errors import NodeError, NodeFailure


class OutboundHttpError(NodeError):
    """Base of failures that happen before a usable response exists."""

    error_type: ClassVar[str] = "HttpFailure"
    default_retriable: ClassVar[bool] = True

    def __init__(self, message: str, *, retriable: bool | None = None, **details: Any) -> None:
        """Create the error.

        Args:
            message: What happened, for people.
            retriable: Overrides the class default.
            **details: JSON-able facts stored with the error.
        """
        super().__init__(
            message,
            type=self.error_type,
            retriable=self.default_retriable if retriable is None else retriable,
            details={k: v for k, v in details.items() if v is not None},
        )


class SsrfBlocked(OutboundHttpError):
    """The URL or an address it resolves to is not allowed (never retried)."""

    error_type = "SsrfBlocked"
    default_retriable = False


class InvalidUrl(OutboundHttpError):
    """The URL cannot be parsed or has no host."""

    error_type = "InvalidUrl"
    default_retriable = False


class InvalidRequest(OutboundHttpError):
    """The request itself is malformed (bad header, method...)."""

    error_type = "InvalidRequest"
    default_retriable = False


class HttpTimeout(OutboundHttpError):
    """The request did not finish in time."""

    error_type = "HttpTimeout"


class HttpConnectionError(OutboundHttpError):
    """No connection, or it broke (DNS failure, refused, reset, protocol error)."""

    error_type = "ConnectionError"


class TlsError(OutboundHttpError):
    """TLS failed: the certificate does not verify for the host (not retried)."""

    error_type = "TlsError"
    default_retriable = False


class TooManyRedirects(OutboundHttpError):
    """More redirects than allowed (a loop, usually)."""

    error_type = "TooManyRedirects"
    default_retriable = False


class ResponseTooLarge(OutboundHttpError):
    """The response body is larger than the limit (counted after decompression)."""

    error_type = "ResponseTooLarge"
    default_retriable = False


class InvalidResponse(OutboundHttpError):
    """The response cannot be used as asked (corrupt compression, not JSON...)."""

    error_type = "InvalidResponse"
    default_retriable = False


class HttpError(NodeFailure):
    """The service answered with an error status; whether another attempt could help
    depends on the status, so the caller says (``retriable``)."""
