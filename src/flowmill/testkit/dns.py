"""A DNS resolver answering from a table, for the SSRF guard and the HTTP client."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence

from flowmill.net.addresses import IPAddress

__all__ = ["Answer", "FakeResolver"]

Answer = str | Sequence[str] | Sequence[Sequence[str]] | Exception
"""One address, several, a list of lists served in turn (the last one repeats: DNS
rebinding), or an exception to raise."""


class FakeResolver:
    """The :class:`~flowmill.net.ssrf.Resolver` port answering from ``table``.

    Names are looked up without a trailing dot; a name not in the table does not
    exist (``socket.gaierror``, as the system resolver says). Every lookup is recorded
    in ``calls``; ``delay`` seconds pass before each answer (a slow DNS server).
    """

    def __init__(self, table: Mapping[str, Answer], *, delay: float = 0.0) -> None:
        self.table = dict(table)
        self.calls: list[str] = []
        self.delay = delay

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls.append(host)
        if self.delay:
            await asyncio.sleep(self.delay)
        name = host.rstrip(".")
        answer = self.table.get(name)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            answer = [answer]
        if answer and not isinstance(answer[0], str):
            turn = sum(1 for c in self.calls if c.rstrip(".") == name)
            answer = answer[min(turn, len(answer)) - 1]
        addresses: Sequence[str] = answer  # type: ignore[assignment]  # strings by now
        return [ipaddress.ip_address(a) for a in addresses]
