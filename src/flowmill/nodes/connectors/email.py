"""``email_send``: send an e-mail over SMTP (STARTTLS, implicit TLS, or plain).

The server and account come from an ``smtp`` credential (host, port, security, user
name, password). The host is vetted by the SSRF policy like any outbound URL, and the
connection goes to the vetted address (pinned; TLS still checks the host's name). The
``Message-ID`` derives from the execution and node, so a message sent again after a
crash carries the same id, which mail clients and Gmail collapse into one. SMTP itself
has no idempotency key: what the server accepted before a crash may be sent again.

Failures: a refused login, sender or recipient (5xx) is not retried; a temporary
refusal (4xx), a dropped connection or a timeout is.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, ClassVar

from pydantic import Field

from flowmill.domain.errors import CredentialFailure, NodeError, NodeFailure, Timeout
from flowmill.engine.templates import stringify
from flowmill.net.errors import TlsError
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._mail import addresses, build_message
from flowmill.nodes.connectors._service import (
    ServiceError,
    open_credential,
    required,
)
from flowmill.nodes.fields import credential_field


class SmtpConnectionError(NodeFailure):
    """No connection to the SMTP server, or it broke."""

    error_type = "ConnectionError"
    retriable_by_default = True


class EmailSendConfig(NodeConfig):
    """Config of ``email_send``; strings are templates."""

    credential: str = credential_field("smtp", min_length=1)
    sender: str = Field(alias="from", min_length=1)
    to: Any
    subject: str = ""
    text: str | None = None
    html: str | None = None
    cc: Any = None
    bcc: Any = None
    reply_to: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=300)


class _Pinned:
    """Connects to the vetted address while TLS and EHLO keep the host's name."""

    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        self.address = address
        super().__init__(*args, **kwargs)  # connects (smtplib's constructor does)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's own hook (SMTP_SSL overrides it the same way): only the address the
        # connection opens to changes, the name stays for SNI and the certificate.
        return super()._get_socket(self.address, port, timeout)  # type: ignore[misc,no-any-return]


class _PinnedSMTP(_Pinned, smtplib.SMTP):
    pass


class _PinnedSMTPS(_Pinned, smtplib.SMTP_SSL):
    pass


def _send(
    account: Mapping[str, Any], address: str, msg: EmailMessage, timeout: float, tls: ssl.SSLContext
) -> dict[str, Any]:
    security = account.get("security", "starttls")
    host, port = str(account["host"]), int(account.get("port", 587))
    smtp: smtplib.SMTP = (
        _PinnedSMTPS(address, host, port, timeout=timeout, context=tls)
        if security == "tls"
        else _PinnedSMTP(address, host, port, timeout=timeout)
    )
    try:
        smtp.ehlo()
        if security == "starttls":
            smtp.starttls(context=tls)
            smtp.ehlo()
        if account.get("username"):
            smtp.login(str(account["username"]), str(account.get("password") or ""))
        refused = smtp.send_message(msg)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return dict(refused)


def _translate(e: Exception) -> NodeError:
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return ServiceError("the SMTP server refused the login", retriable=False, code=e.smtp_code)
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in e.recipients.values()]
        return ServiceError(
            f"the SMTP server refused every recipient ({', '.join(e.recipients)})",
            retriable=all(400 <= c < 500 for c in codes),
            code=codes[0] if codes else None,
        )
    if isinstance(e, smtplib.SMTPResponseException):
        text = (
            e.smtp_error.decode("utf-8", "replace")
            if isinstance(e.smtp_error, bytes)
            else str(e.smtp_error)
        )
        return ServiceError(
            f"the SMTP server answered {e.smtp_code}: {text[:200]}",
            retriable=400 <= e.smtp_code < 500,
            code=e.smtp_code,
        )
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return ServiceError(f"the SMTP server cannot do this: {e}", retriable=False)
    if isinstance(e, ssl.SSLError):
        return TlsError(f"TLS with the SMTP server failed: {e}")
    return SmtpConnectionError(f"SMTP connection failed: {e or type(e).__name__}")


class EmailSendNode(NodeType[EmailSendConfig]):
    """Sends an e-mail through the credential's SMTP server."""

    type_name = "email_send"
    Config = EmailSendConfig
    description: ClassVar[str] = "Send an e-mail over SMTP (STARTTLS or TLS)."

    async def execute(self, ctx: NodeContext, config: EmailSendConfig) -> Any:
        r = await ctx.render(
            {
                "credential": config.credential,
                "from": config.sender,
                "to": config.to,
                "cc": config.cc,
                "bcc": config.bcc,
                "subject": config.subject,
                "text": config.text,
                "html": config.html,
                "reply_to": config.reply_to,
            }
        )
        required(r, "credential", "from")
        msg = build_message(ctx, r)
        cred = await open_credential(ctx, stringify(r["credential"]))
        if cred.kind != "smtp":
            raise CredentialFailure(
                f"credential {cred.ref!r} is {cred.kind!r}, not an smtp account"
            )
        host, port = str(cred.data["host"]), int(cred.data.get("port", 587))
        guard = ctx.services.network
        if guard is None:
            raise NodeError("outbound connections are not available here", retriable=False)
        target = await guard.vet_host(host, port)
        tls = ctx.services.connectors.ssl_context or ssl.create_default_context()
        try:
            refused = await asyncio.wait_for(
                asyncio.to_thread(
                    _send, cred.data, str(target.addresses[0]), msg, config.timeout_s, tls
                ),
                config.timeout_s * 2,
            )
        except TimeoutError:
            raise Timeout("the SMTP server did not answer in time") from None
        except (smtplib.SMTPException, OSError) as e:
            raise _translate(e) from None
        accepted = [
            a
            for a in addresses(r["to"]) + addresses(r["cc"]) + addresses(r["bcc"])
            if a not in refused
        ]
        ctx.log.info("e-mail sent over SMTP", recipients=len(accepted))
        return {"message_id": msg["Message-ID"], "accepted": accepted, "refused": sorted(refused)}
