"""The blob store (large payloads) on every backend: files, the database (SQLite and
PostgreSQL) and S3 (moto's server, a local S3 emulator): streamed round trips, tenant
scoping, purges after a crash, and the counting of a step that ran twice."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from flowmill.blobs.database import DatabaseBlobContent
from flowmill.blobs.files import FileBlobContent
from flowmill.blobs.ports import BlobContent
from flowmill.blobs.s3 import PART_BYTES, S3BlobContent, S3Settings
from flowmill.blobs.store import STALE_WRITE_S, BlobNotFound, BlobStore, Owner
from flowmill.store.database import Database, connect
from flowmill.store.tables import blobs
from flowmill.testing import FakeBlobContent, FakeClock, eventually, free_port
from tests.conftest import unavailable


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with a bucket ``flowmill``."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        # the dev extra installs them (moto[s3], flask, flask-cors): in CI a failure
        unavailable("moto's S3 server is not installed (pip install 'moto[s3]' flask flask-cors)")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url + "/moto-api/").status_code == 200
            return False

        # in a thread: this fixture may be set up while an event loop runs here
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, eventually(up, 60, "moto's S3 server answering")).result()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _bucket(endpoint: str) -> S3BlobContent:
    content = S3BlobContent(S3Settings(endpoint, "flowmill", "test", "test"))
    # Creating the bucket is an S3 PUT of the bucket itself (an empty key).
    r = await content.http.put(
        f"{endpoint}/flowmill",
        headers=content._headers("PUT", "/flowmill", {}, _EMPTY_SHA),
    )
    assert r.status_code in (200, 409), r.text
    return content


_EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@contextlib.asynccontextmanager
async def _store(kind: str, url: str, tmp: Path, s3: str | None) -> AsyncIterator[BlobStore]:
    db = connect(url)
    content: BlobContent
    if kind == "files":
        content = FileBlobContent(tmp / "blobs")
    elif kind == "memory":
        content = FakeBlobContent()
    elif kind == "database":
        content = DatabaseBlobContent(db)
    else:
        assert s3 is not None
        content = await _bucket(s3)
    store = BlobStore(db, content, threshold=1024, clock=FakeClock())
    try:
        yield store
    finally:
        await store.close()
        await db.close()


BACKENDS = [
    ("memory", "sqlite"),  # the fake, held to the same tests
    ("files", "sqlite"),
    ("database", "sqlite"),
    ("database", "postgres"),
    ("s3", "sqlite"),
]


@pytest.fixture(params=BACKENDS, ids=[f"{k}-{d}" for k, d in BACKENDS])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, str | None]:
    """(backend, database URL, S3 endpoint) of one parameter."""
    kind, dbname = request.param
    url = str(request.getfixturevalue("sqlite_url" if dbname == "sqlite" else "postgres_url"))
    s3 = str(request.getfixturevalue("s3_endpoint")) if kind == "s3" else None
    return kind, url, s3


@pytest.fixture
async def store(backend: tuple[str, str, str | None], tmp_path: Path) -> AsyncIterator[BlobStore]:
    kind, url, s3 = backend
    async with _store(kind, url, tmp_path, s3) as opened:
        yield opened


_PATTERN = bytes(range(251)) * 300  # 75 KB; sizes not a multiple of it or of a part


async def _chunks(total: int, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    data = _expected(total)
    for at in range(0, total, piece):
        yield data[at : at + piece]


def _expected(total: int) -> bytes:
    return (_PATTERN * (total // len(_PATTERN) + 1))[:total]


async def test_blobs_stream_round_trip_on_every_backend(store: BlobStore) -> None:
    # more than two S3 parts, and not a multiple of anything
    size = 2 * PART_BYTES + 12_345
    ref = await store.write(
        "tenant-a", Owner(execution_id=None), _chunks(size), media_type="application/octet-stream"
    )
    assert (ref.size, ref.kind) == (size, "base64")
    assert await store.read("tenant-a", ref.id) == _expected(size)
    got, chunks = await store.open("tenant-a", ref.id)
    assert got == ref
    assert max([len(c) async for c in chunks]) <= PART_BYTES  # streamed, never whole


async def test_blobs_other_tenant_cannot_read_a_blob(store: BlobStore) -> None:
    ref = await store.write_bytes("tenant-a", Owner(), b"secret" * 500, media_type="text/plain")
    with pytest.raises(BlobNotFound):
        await store.read("tenant-b", ref.id)
    with pytest.raises(BlobNotFound):
        await store.stat("tenant-b", ref.id)
    assert await store.read("tenant-a", ref.id) == b"secret" * 500


async def test_blobs_purge_removes_doomed_bytes_and_rows(store: BlobStore) -> None:
    ref = await store.write_bytes(
        "tenant-a", Owner(execution_id="0190f0f0-0000-7000-8000-000000000001"), b"x" * 5000,
        media_type="text/plain",
    )  # fmt: skip
    kept = await store.write_bytes("tenant-b", Owner(), b"y" * 5000, media_type="text/plain")
    ids = ["0190f0f0-0000-7000-8000-000000000001"]
    assert await store.db.write(lambda c: BlobStore.doom(c, "tenant-a", execution_ids=ids)) == 1
    assert await store.purge("tenant-a") == 1
    with pytest.raises(BlobNotFound):
        await store.read("tenant-a", ref.id)
    with pytest.raises(KeyError):
        async for _ in store.content.get(store.key("tenant-a", ref.id)):
            pass
    assert await store.read("tenant-b", kept.id) == b"y" * 5000


async def test_blobs_write_cut_short_by_a_crash_is_purged_when_stale(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with _store("files", sqlite_url, tmp_path, None) as store:

        async def dies() -> AsyncIterator[bytes]:
            yield b"a" * 4096
            raise ConnectionError("the sender hung up")

        with pytest.raises(ConnectionError):
            await store.write("tenant-a", Owner(), dies(), media_type="text/plain")
        assert not list((tmp_path / "blobs").rglob("*.part"))  # the partial file is gone
        assert await _rows(store.db) == 1  # its row is not: it says what to clean up
        assert await store.purge("tenant-a") == 0  # may still be writing elsewhere
        assert isinstance(store.clock, FakeClock)
        store.clock.advance(STALE_WRITE_S + 1)
        assert await store.purge("tenant-a") == 1
        assert await _rows(store.db) == 0


async def test_blobs_step_written_twice_is_counted_once_and_both_go_with_it(
    database_url: str, tmp_path: Path
) -> None:
    """A step retried after a crash (or run by two workers) writes its blob twice under
    one step key: usage counts it once, and deleting the execution removes both."""
    execution = "0190f0f0-0000-7000-8000-000000000002"
    owner = Owner(execution_id=execution, step_key=f"{execution}:fetch:1:$.data")
    async with _store("files", database_url, tmp_path, None) as store:
        first = await store.write_bytes("tenant-a", owner, b"1" * 3000, media_type="text/plain")
        second = await store.write_bytes("tenant-a", owner, b"2" * 3000, media_type="text/plain")
        other = Owner(execution_id=execution, step_key=f"{execution}:other:1:$.data")
        await store.write_bytes("tenant-a", other, b"3" * 1000, media_type="text/plain")
        assert await store.usage("tenant-a", execution) == (2, 4000)
        await store.db.write(lambda c: BlobStore.doom(c, "tenant-a", execution_ids=[execution]))
        assert await store.purge("tenant-a") == 3
        for ref in (first, second):
            assert not (tmp_path / "blobs" / "tenant-a" / ref.id).exists()


async def _rows(db: Database) -> int:
    q = sa.select(sa.func.count()).select_from(blobs)
    return int(await db.read(lambda c: c.execute(q).scalar_one()))


async def test_blobs_s3_failed_multipart_upload_is_aborted(s3_endpoint: str) -> None:
    """A source that dies after the first part leaves no multipart upload behind (nor an
    object): the adapter aborts it."""
    content = await _bucket(s3_endpoint)
    key = "tenant-a/0190f0f0-0000-7000-8000-00000000000a"

    async def uploads() -> bytes:
        headers = content._headers("GET", "/flowmill", {"uploads": ""}, _EMPTY_SHA)
        r = await content.http.get(f"{s3_endpoint}/flowmill?uploads=", headers=headers)
        assert r.status_code == 200, r.text
        return r.content

    async def dies() -> AsyncIterator[bytes]:
        for _ in range(PART_BYTES // (64 * 1024) + 2):  # past the first part
            yield b"z" * (64 * 1024)
        raise ConnectionError("the sender hung up")

    try:
        # the listing sees an upload in progress (so an empty one below means aborted)
        started = await content._call("POST", "tenant-a/probe", {"uploads": ""})
        listed = await uploads()
        assert b"tenant-a/probe" in listed, listed[:500]
        upload = started.text.split("<UploadId>")[1].split("</UploadId>")[0]
        await content._call("DELETE", "tenant-a/probe", {"uploadId": upload}, ok=(200, 204))

        with pytest.raises(ConnectionError):
            await content.put(key, dies())
        assert b"<UploadId>" not in await uploads()
        with pytest.raises(KeyError):
            async for _ in content.get(key):
                pass
    finally:
        await content.close()
