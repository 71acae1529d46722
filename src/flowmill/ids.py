"""Time-ordered UUIDs (version 7, RFC 9562) for executions, node runs and events.

Ids made in one process are strictly increasing (the 12 ``rand_a`` bits count within a
millisecond), so keyset pagination by id follows creation order.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> str:
    """Return a new UUIDv7 as a canonical 36-character string."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        value = (ms & 0xFFFF_FFFF_FFFF) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return str(uuid.UUID(int=value))


def uuid7_floor(ms: int) -> str:
    """The smallest UUIDv7 of a millisecond: a keyset bound for "created after"."""
    return str(uuid.UUID(int=((ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (0b10 << 62)))


def version_id(workflow_id: str, version: int) -> str:
    """The id of one version of a workflow (the seeds address versions by id).

    A UUID (version 8, RFC 9562's custom layout) made from the workflow id and the
    number, whose last 32 bits are the number: so a version id is found again without
    a column of its own (:func:`version_of_id`), and never names another workflow's.
    """
    digest = hashlib.blake2b(f"{workflow_id}/{version}".encode(), digest_size=12).digest()
    raw = bytearray(digest + version.to_bytes(4, "big"))
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC variant
    return str(uuid.UUID(bytes=bytes(raw)))


def version_of_id(workflow_id: str, ident: str) -> int | None:
    """The version number a :func:`version_id` of this workflow stands for, else ``None``."""
    try:
        parsed = uuid.UUID(ident)
    except ValueError:
        return None
    number = int.from_bytes(parsed.bytes[12:], "big")
    if number < 1 or version_id(workflow_id, number) != str(parsed):
        return None
    return number
