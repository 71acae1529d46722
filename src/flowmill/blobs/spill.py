"""Moving the large parts of a node's output into the blob store.

The output middleware encodes every output anyway (to check it is JSON and within the
cap); only an output whose encoding passes the threshold comes here, so smaller ones
cost nothing more. The largest parts go, deepest first: an object's members above the
threshold are spilled one by one, and what is left is spilled whole if it is still too
big; a list or a string above the threshold is spilled whole (its items are usually
read together). So ``{"status": 200, "data": <40 MB>}`` keeps ``status`` inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmill import jsonutil
from flowmill.blobs.ref import is_blob
from flowmill.blobs.store import BlobStore, Owner


async def spill(value: Any, store: BlobStore, tenant_id: str, execution_id: str, step: str) -> Any:
    """``value`` with its parts above ``store.threshold`` replaced by references.

    Args:
        value: A node's output (JSON), larger than the threshold once encoded.
        store: Where the parts go.
        tenant_id: The execution's tenant.
        execution_id: The owner: the parts are deleted with the execution.
        step: ``execution:node:attempt`` of the step (the parts' step keys).
    """
    return await _spill(value, store, tenant_id, execution_id, step, "$")


async def _spill(
    value: Any, store: BlobStore, tenant: str, execution_id: str, step: str, path: str
) -> Any:
    if is_blob(value):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if len(jsonutil.dumpb(v)) > store.threshold:
                out[k] = await _spill(v, store, tenant, execution_id, step, f"{path}.{k}")
            else:
                out[k] = v
        if len(jsonutil.dumpb(out)) <= store.threshold:
            return out
        value = out
    owner = Owner(execution_id=execution_id, step_key=f"{step}:{path}")
    ref = await store.write_value(tenant, owner, value)
    return ref.to_value()
