"""Redis plumbing of the BullMQ adapter: clients and the two Lua scripts it adds.

The scripts read and write BullMQ's own key layout (``<prefix>:<queue>:<job id>`` for
a job's hash, ``...:completed`` and ``...:failed`` sorted sets of finished ids). That
layout is BullMQ's wire format, shared with Node.js, so it is stable across versions.
"""

from __future__ import annotations

import socket

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

# A peer silent for 10 s is probed every 5 s; three lost probes close the connection.
_KEEPALIVE = {
    opt: value
    for opt, value in (
        (getattr(socket, "TCP_KEEPIDLE", None), 10),
        (getattr(socket, "TCP_KEEPINTVL", None), 5),
        (getattr(socket, "TCP_KEEPCNT", None), 3),
    )
    if opt is not None
}

# 1 for each job id that exists and is not finished: waiting, prioritized, delayed or
# active, i.e. a worker will still run it. A hash lookup and two ZSCOREs per id, so
# asking about hundreds of ids costs the same whatever the length of the wait list
# (LPOS on it would be linear).
#   KEYS[1] completed zset, KEYS[2] failed zset
#   ARGV[1] job key prefix ("<prefix>:<queue>:"), ARGV[2..] job ids
PRESENT_LUA = """
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local live = 0
  if redis.call("EXISTS", ARGV[1] .. id) == 1
      and not redis.call("ZSCORE", KEYS[1], id)
      and not redis.call("ZSCORE", KEYS[2], id) then
    live = 1
  end
  out[#out + 1] = live
end
return out
"""

# Deletes the finished (completed or failed) jobs among these ids, as BullMQ's own
# removeJob does, so that the adds queued after it in the same MULTI create them
# afresh: BullMQ ignores an add whose id exists in any state. Jobs that are waiting,
# delayed or active are left alone: they will run anyway. Returns how many it removed.
#   KEYS[1] completed zset, KEYS[2] failed zset, KEYS[3] events stream, KEYS[4] meta
#   ARGV[1] job key prefix, ARGV[2..] job ids
REVIVE_LUA = """
local removed = 0
local maxEvents = redis.call("HGET", KEYS[4], "opts.maxLenEvents") or 10000
for i = 2, #ARGV do
  local id = ARGV[i]
  local prev = nil
  if redis.call("ZREM", KEYS[1], id) == 1 then
    prev = "completed"
  elseif redis.call("ZREM", KEYS[2], id) == 1 then
    prev = "failed"
  end
  if prev then
    local jobKey = ARGV[1] .. id
    redis.call("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies",
      jobKey .. ":processed", jobKey .. ":failed", jobKey .. ":unsuccessful")
    redis.call("XADD", KEYS[3], "MAXLEN", "~", maxEvents, "*", "event", "removed",
      "jobId", id, "prev", prev)
    removed = removed + 1
  end
end
return removed
"""


def make_client(url: str, *, retries: int = 3) -> aioredis.Redis:
    """A pooled asyncio Redis client for BullMQ use.

    Why not let the bullmq package build its own: it retries a failed command 20
    times with backoff up to 20 s (a process stays silent for minutes while Redis is
    down), and redis-py 8's default 5 s socket timeout is shorter than the worker's
    blocking wait, so a job delayed by more than 5 s is picked up minutes late.

    No socket timeout at all, in fact: with one, redis-py sends through
    ``asyncio.wait_for``, which on Python 3.11 swallows a cancellation that lands as
    the send completes (fixed in 3.12); a worker's cancelled blocking wait then ran
    to its end and shutdown took a second longer. TCP keepalive finds dead peers.

    Args:
        url: ``redis://`` or ``rediss://`` URL.
        retries: Attempts of a command on connection errors before it raises.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,  # the bullmq package compares replies with str
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[BusyLoadingError, ConnectionError, TimeoutError],
        socket_connect_timeout=5.0,
        socket_timeout=None,
        socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE,
    )


def describe(err: BaseException | None) -> str:
    """An error as ``Type: message``: redis-py 8's exceptions print as
    "network:ConnectionError", which does not say what happened."""
    return f"{type(err).__name__}: {err}" if err is not None else "none"
