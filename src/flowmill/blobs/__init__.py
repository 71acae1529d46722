"""Large payloads: values above a threshold live once in a blob store, passed by reference.

A reference is a small JSON object (:mod:`flowmill.blobs.ref`) that travels through node
outputs, inputs and the trigger like any value; templates load the blob only when a path
goes into it (:mod:`flowmill.blobs.lazy`). The index of blobs is a table of the execution
database (tenant, owner, size, digest); their bytes live in a content backend: the file
system (embedded default), PostgreSQL (distributed) or an S3-compatible service.
"""

from flowmill.blobs.ref import BLOB_KEY, BlobRef, is_blob

# The store (SQLAlchemy) is imported from flowmill.blobs.store where it is used: the
# sandbox's workers import the reference through the templates and must stay light.
__all__ = ["BLOB_KEY", "BlobRef", "is_blob"]
