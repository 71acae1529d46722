"""Blob bytes in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...), over the
project's own HTTP client and AWS Signature Version 4: no SDK to install.

Path-style URLs (``{endpoint}/{bucket}/{key}``), which every S3-compatible service
accepts. A write of more than one part is a multipart upload of :data:`PART_BYTES`
parts, so at most one part is in memory; an upload that fails is aborted, and S3
keeps nothing of it. Tested against moto's server (``tests/integration/test_blobs.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from flowmill.domain.errors import FlowmillError

#: Size of a multipart upload's parts (S3's minimum is 5 MiB, except the last).
PART_BYTES = 8 * 1024 * 1024
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


class S3Error(FlowmillError, RuntimeError):
    """The service refused a request."""


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to sign.

    Attributes:
        endpoint: Base URL, e.g. ``https://s3.eu-west-1.amazonaws.com``.
        bucket: Bucket name (it must exist).
        access_key: Access key id.
        secret_key: Secret access key.
        region: Signing region.
        prefix: Prepended to every key (several deployments in one bucket).
    """

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    prefix: str = ""


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class S3BlobContent:
    """Blob bytes as objects ``{prefix}{tenant}/{blob id}`` of one bucket.

    Args:
        settings: Endpoint, bucket and keys.
        client: An HTTP client (one is made, and closed, when not given).
    """

    name = "s3"

    def __init__(self, settings: S3Settings, client: httpx.AsyncClient | None = None) -> None:
        self.s = settings
        self._own = client is None
        self.http = client or httpx.AsyncClient(timeout=httpx.Timeout(60.0))
        self._host = httpx.URL(settings.endpoint).netloc.decode()

    def _path(self, key: str) -> str:
        return "/" + quote(self.s.bucket) + "/" + quote(self.s.prefix + key, safe="/")

    def _headers(
        self, method: str, path: str, query: dict[str, str], payload_hash: str
    ) -> dict[str, str]:
        """SigV4 headers of one request."""
        now = datetime.now(UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {
            "host": self._host,
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": stamp,
        }
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
        )
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                payload_hash,
            ]
        )
        scope = f"{day}/{self.s.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        k = _sign(("AWS4" + self.s.secret_key).encode(), day)
        for part in (self.s.region, "s3", "aws4_request"):
            k = _sign(k, part)
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.s.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        del headers["host"]  # httpx sends it
        return headers

    async def _call(
        self,
        method: str,
        key: str,
        query: dict[str, str] | None = None,
        body: bytes = b"",
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        query = query or {}
        path = self._path(key)
        headers = self._headers(method, path, query, hashlib.sha256(body).hexdigest())
        url = httpx.URL(self.s.endpoint.rstrip("/") + path, params=query)
        r = await self.http.request(method, url, headers=headers, content=body or None)
        if r.status_code not in ok:
            raise S3Error(f"S3 {method} {key}: HTTP {r.status_code}: {r.text[:300]}")
        return r

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """One ``PUT`` for a blob of one part, else a multipart upload."""
        buf = bytearray()
        upload: str | None = None
        etags: list[str] = []
        try:
            async for chunk in chunks:
                buf += chunk
                while len(buf) > PART_BYTES:  # keeps a last part of at least one byte
                    if upload is None:
                        r = await self._call("POST", key, {"uploads": ""})
                        m = _UPLOAD_ID.search(r.content)
                        if m is None:
                            raise S3Error("S3 multipart upload: no UploadId in the answer")
                        upload = m.group(1).decode()
                    part = bytes(buf[:PART_BYTES])
                    etags.append(await self._part(key, upload, len(etags) + 1, part))
                    del buf[:PART_BYTES]
            if upload is None:
                await self._call("PUT", key, body=bytes(buf))
                return
            etags.append(await self._part(key, upload, len(etags) + 1, bytes(buf)))
            parts = "".join(
                f"<Part><PartNumber>{i}</PartNumber><ETag>{e}</ETag></Part>"
                for i, e in enumerate(etags, 1)
            )
            xml = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            r = await self._call("POST", key, {"uploadId": upload}, xml)
            if b"<Error>" in r.content:
                raise S3Error(f"S3 complete upload {key}: {r.text[:300]}")
        except BaseException:
            if upload is not None:
                # if this fails too, S3's lifecycle rules remove abandoned uploads
                with contextlib.suppress(S3Error, httpx.HTTPError):
                    await self._call("DELETE", key, {"uploadId": upload}, ok=(200, 204, 404))
            raise

    async def _part(self, key: str, upload: str, number: int, data: bytes) -> str:
        r = await self._call("PUT", key, {"partNumber": str(number), "uploadId": upload}, data)
        return str(r.headers.get("etag", ""))

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The object, streamed."""
        path = self._path(key)
        headers = self._headers("GET", path, {}, hashlib.sha256(b"").hexdigest())
        url = self.s.endpoint.rstrip("/") + path
        async with self.http.stream("GET", url, headers=headers) as r:
            if r.status_code == 404:
                raise KeyError(key)
            if r.status_code != 200:
                raise S3Error(f"S3 GET {key}: HTTP {r.status_code}")
            async for chunk in r.aiter_bytes(1024 * 1024):
                yield chunk

    async def delete(self, keys: Sequence[str]) -> None:
        """One ``DELETE`` per object (S3 answers 204 for a missing one too)."""
        for key in keys:
            await self._call("DELETE", key, ok=(200, 204, 404))

    async def close(self) -> None:
        """Close the HTTP client this adapter made."""
        if self._own:
            await self.http.aclose()
