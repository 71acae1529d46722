"""``/api/blobs/{id}``: download a stored large value (docs/payloads.md).

API answers show a blob as a reference with its size and this link instead of inlining
megabytes. The body streams from the blob store; the lookup is tenant-scoped, so another
tenant's blob id answers 404 like one that never existed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.blobs.store import BlobNotFound

router = APIRouter(prefix="/api/blobs", tags=["blobs"], responses=ERROR_RESPONSES)

BlobIdPath = Annotated[str, Path(max_length=64, description="Blob id (from a reference).")]
_BODY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The blob's bytes, with the media type it arrived with.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/{blob_id}",
    response_class=StreamingResponse,
    responses={**_BODY, **NOT_FOUND},
    summary="Download a blob",
)
async def get_blob(ctx: Ctx, caller: Caller, blob_id: BlobIdPath) -> StreamingResponse:
    """A stored value's bytes, streamed (``Content-Length`` is its size)."""
    store = ctx.runtime.blobs
    if store is None:
        raise not_found("blob", blob_id)
    try:
        ref, chunks = await store.open(caller.tenant_id, blob_id)
    except BlobNotFound:
        raise not_found("blob", blob_id) from None
    return StreamingResponse(
        chunks,
        media_type=ref.media_type or "application/octet-stream",
        # the sender chose the media type: a browser must save it, never render it here
        headers={
            "Content-Length": str(ref.size),
            "Content-Disposition": f'attachment; filename="{ref.id}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
