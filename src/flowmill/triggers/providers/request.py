"""What a provider sees of an HTTP request: method, path, query, headers, raw body.

Built by the ingress from the HTTP framework's request before anything parses the
body, because every signature scheme signs the bytes exactly as they were sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

Pairs = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(items: Pairs) -> tuple[tuple[str, str], ...]:
    source = items.items() if isinstance(items, Mapping) else items
    return tuple((str(k), str(v)) for k, v in source)


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive HTTP headers that keep repeated names.

    As a mapping, a name gives its first value; :meth:`get_all` gives every value.
    Providers read security headers through :func:`~flowmill.triggers.providers.base.
    single_header`, which refuses a repeated header instead of picking one.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Pairs = ()) -> None:
        self._items = _pairs(items)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(name.lower(), []).append(value)
        self._index = {k: tuple(v) for k, v in index.items()}

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in the order received (empty when absent)."""
        return self._index.get(name.lower(), ())

    def items_raw(self) -> tuple[tuple[str, str], ...]:
        """The headers as received: original names and order, repeats kept."""
        return self._items

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._index.items())))


class QueryParams(Mapping[str, str]):
    """Immutable query parameters (case-sensitive) that keep repeated names."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Pairs | str = ()) -> None:
        if isinstance(items, str):
            items = parse_qsl(items.lstrip("?"), keep_blank_values=True)
        self._items = _pairs(items)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(name, []).append(value)
        self._index = {k: tuple(v) for k, v in index.items()}

    def __getitem__(self, name: str) -> str:
        return self._index[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name`` (empty when absent)."""
        return self._index.get(name, ())

    def __repr__(self) -> str:
        return f"QueryParams({list(self._items)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QueryParams):
            return self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._index.items())))


@dataclass(frozen=True)
class IncomingWebhook:
    """One HTTP request to a webhook endpoint, as received.

    Attributes:
        method: HTTP method, upper case (``POST``; ``GET`` for Meta's handshake).
        path: The request path, for the record; no provider signs it.
        headers: Case-insensitive headers.
        body: The raw body bytes. Signatures are checked on these, never on JSON
            parsed and serialised again (which changes spacing, key order, escapes).
        query: Query parameters.
        body_sha256: Hex SHA-256 of the raw body when ``body`` does not hold it (a
            body verified while it streamed into the blob store; ``body`` is then
            empty); ``None`` otherwise.
    """

    method: str
    path: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    query: QueryParams = field(default_factory=QueryParams)
    body_sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())

    @classmethod
    def build(
        cls,
        method: str = "POST",
        path: str = "/",
        *,
        headers: Headers | Pairs = (),
        body: bytes | str = b"",
        query: QueryParams | Pairs | str = (),
    ) -> IncomingWebhook:
        """A request from plain values; a ``str`` body is encoded as UTF-8."""
        return cls(
            method=method,
            path=path,
            headers=headers if isinstance(headers, Headers) else Headers(headers),
            body=body.encode() if isinstance(body, str) else bytes(body),
            query=query if isinstance(query, QueryParams) else QueryParams(query),
        )

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case (``""`` when absent)."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()
