"""Each bullmq (and redis-py) internal the BullMQ adapter uses, checked against the
installed packages (no Redis needed: nothing here connects).

An upgrade that renames, moves or re-orders one fails here, naming it, instead of
in a distributed run. ``INTERNALS`` is the list; a use of an internal outside
``bullmq_internals.py`` fails ``test_bullmq_internals_are_used_in_one_module_only``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bullmq
import pytest
from bullmq import Queue, Worker

from flowmill.queue import bullmq_internals
from flowmill.queue.bullmq_internals import (
    INTERNALS,
    MOVE_TO_ACTIVE_KEYS,
    BatchingWorker,
    Internal,
    UnsupportedBullMQ,
)
from flowmill.queue.bullmq_redis import make_client

QUEUE_SRC = Path(bullmq_internals.__file__).parent
# Nothing listens here: the objects below are made, never connected.
NOWHERE = "redis://127.0.0.1:1/0"


async def _process(job: Any, token: str) -> None:
    return None


@pytest.fixture
async def instances() -> AsyncIterator[dict[str, Any]]:
    """One instance per owner class of an instance attribute."""
    client = make_client(NOWHERE)
    worker = Worker("q", _process, {"connection": client, "autorun": False})
    queue = Queue("q", {"connection": client})
    try:
        yield {
            "bullmq.worker:Worker": worker,
            "bullmq.queue:Queue": queue,
            "bullmq.backends.redis_backend:RedisBackend": worker.backend,
            "bullmq.scripts:Scripts": worker.backend.scripts,
            "redis.asyncio.client:Pipeline": client.pipeline(),
            "bullmq.redis_connection:RedisConnection": worker.blockingRedisConnection,
        }
    finally:
        await client.aclose()


def _owner(internal: Internal) -> Any:
    module, _, cls = internal.owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


def test_bullmq_internals_are_written_for_the_installed_bullmq() -> None:
    # The pin in pyproject.toml keeps it so; the import check refuses any other.
    assert importlib.metadata.version("bullmq") == bullmq_internals.BULLMQ_VERSION
    assert bullmq.__version__ == bullmq_internals.BULLMQ_VERSION
    bullmq_internals.check_version(bullmq.__version__)
    with pytest.raises(UnsupportedBullMQ, match=r"pip install bullmq==3\.4\.4"):
        bullmq_internals.check_version("3.5.0")


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda i: f"{i.owner}.{i.name}")
async def test_bullmq_internals_each_exists_with_the_parameters_we_pass(
    internal: Internal, instances: dict[str, Any]
) -> None:
    owner = _owner(internal)
    if internal.params is None:
        # read or written: on the class (a property) or set by __init__
        holder = instances.get(internal.owner, owner)
        assert hasattr(holder, internal.name) or internal.name in vars(owner), internal
        return
    member = inspect.getattr_static(owner, internal.name)
    if isinstance(member, staticmethod):
        member = member.__func__
    assert callable(member), internal
    names = list(inspect.signature(member).parameters)
    if inspect.isclass(owner) and names[:1] == ["self"]:
        names = names[1:]
    # same names, same order: the adapter passes some by position, some by name
    assert names[: len(internal.params)] == list(internal.params), (internal, names)


def test_bullmq_internals_fetch_passes_the_keys_of_bullmqs_move_to_active_script() -> None:
    # The script's file name carries its key count (moveToActive-11.lua); our key list
    # must match it, and be the list the Python port's own call passes, in its order.
    commands = Path(bullmq.__file__).parent / "commands"
    (script,) = commands.glob("moveToActive-*.lua")
    assert int(script.stem.rsplit("-", 1)[1]) == len(MOVE_TO_ACTIVE_KEYS)
    source = inspect.getsource(importlib.import_module("bullmq.scripts").Scripts.moveToActive)
    tree = ast.parse(textwrap.dedent(source))
    (call,) = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "getKeys"
    ]
    assert ast.literal_eval(call.args[0]) == MOVE_TO_ACTIVE_KEYS


def test_bullmq_internals_the_replaced_completion_takes_the_backends_parameters() -> None:
    # bullmq calls backend.moveToCompleted by position and fetch_next by name; the
    # batching worker puts its own method in its place.
    (internal,) = [i for i in INTERNALS if i.name == "moveToCompleted"]
    ours = list(inspect.signature(BatchingWorker._move_to_completed).parameters)[1:]
    assert ours == list(internal.params or ()), ours


def test_bullmq_internals_are_used_in_one_module_only() -> None:
    # The rest of the adapter goes through bullmq's public API and bullmq_internals.
    # (names too common to tell apart from other objects' are left out; Queue.scripts
    # and Pipeline.scripts are not)
    private = {i.name for i in INTERNALS} - {"keys", "conn", "opts"}
    public_bullmq = {"Queue", "Job", "DelayedError", "UnrecoverableError"}
    for path in QUEUE_SRC.glob("*.py"):
        if path.name == "bullmq_internals.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bullmq"):
                assert node.module == "bullmq", (path.name, node.module)
                names = {a.name for a in node.names}
                assert names <= public_bullmq, (path.name, names - public_bullmq)
            if isinstance(node, ast.Attribute):
                assert node.attr not in private, (path.name, node.lineno, node.attr)
