"""Redis plumbing of the BullMQ adapter: clients and the two Lua scripts it adds.

The scripts read and write BullMQ's own key layout (``<prefix>:<queue>:<job id>`` for
a job's hash, ``...:completed`` and ``...:failed`` sorted sets of finished ids). That
layout is BullMQ's wire format, shared with Node.js, so it is stable across versions.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, NoScriptError, TimeoutError

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


ScriptCall = tuple[Any, list[Any], list[Any]]  # (registered script, keys, args)


async def run_scripts(
    client: aioredis.Redis,
    calls: Sequence[ScriptCall],
    after: Sequence[tuple[Any, ...]] = (),
) -> list[Any]:
    """Run Lua scripts in one round trip (a pipeline, not a transaction); each reply,
    or the exception it raised, in order; then the replies of the plain commands
    ``after`` (run behind the scripts, in the same round trip).

    redis-py asks ``SCRIPT EXISTS`` before every pipeline holding scripts, a second
    round trip; the scripts are loaded already (by this process or another) except
    after a Redis restart, when the calls that got ``NOSCRIPT`` are run once more with
    their scripts loaded.
    """
    replies = await _pipeline(client, calls, after, load=False)
    tail = replies[len(calls) :]
    replies = replies[: len(calls)]
    missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:
        again = await _pipeline(client, [calls[i] for i in missing], (), load=True)
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies + tail


async def _pipeline(
    client: aioredis.Redis,
    calls: Sequence[ScriptCall],
    after: Sequence[tuple[Any, ...]],
    *,
    load: bool,
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        for command in after:
            pipe.execute_command(*command)
        if not load:
            pipe.scripts.clear()
        return list(await pipe.execute(raise_on_error=False))
