"""Uploads (`client.uploads`): a file streamed straight to the store, for an import to read.

An upload is staging: it lives `upload_ttl_s` and is swept on the tenant's next upload.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.concurrency import run_in_threadpool

from store import Keys, NotFound, now_iso

from .common import ApiError, Context, Ctx, Tenant, resource_router

router = resource_router("datasets")

# The body is read as a stream, so FastAPI cannot describe it: this is what it is.
_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "description": "The file's bytes (CSV or Parquet), streamed.",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                                        "minLength": 1}}}},
    "responses": {"201": {"description": "Stored; import it with `source.upload_id` within 24 h.",
                          "content": {"application/json": {"schema": {
                              "type": "object", "required": ["upload_id", "size"],
                              "properties": {"upload_id": {"type": "string", "pattern": "^[a-f0-9]{32}$"},
                                             "size": {"type": "integer", "minimum": 0}}}}}}},
}


@router.post("/v1/uploads", status_code=201, openapi_extra=_OPENAPI)
async def upload(request: Request, t: Tenant, ctx: Ctx,
                 x_filename: Annotated[str | None, Header(max_length=255)] = None) -> dict[str, Any]:
    keys = Keys(t)
    backend = ctx.store.backend
    await run_in_threadpool(_sweep, ctx, keys)
    upload_id = uuid.uuid4().hex
    prefix = keys.upload(upload_id)
    size = 0
    out = await run_in_threadpool(backend.open_output, f"{prefix}/data")
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > ctx.max_upload_bytes:
                raise ApiError(413, "payload_too_large",
                               f"upload exceeds the limit of {ctx.max_upload_bytes} bytes")
            await run_in_threadpool(out.write, chunk)  # store I/O must not block the loop
        if size == 0:
            raise ApiError(400, "invalid_input", "the upload is empty: send the file's bytes as the "
                                                 "request body")
        await run_in_threadpool(out.close)
    except BaseException:
        try:
            await run_in_threadpool(out.close)
        finally:
            await run_in_threadpool(backend.delete_prefix, prefix)
        raise
    filename = (x_filename or "upload").replace("/", "_")[:255]
    await run_in_threadpool(ctx.store.registry.create, f"{prefix}/upload.json",
                            {"upload_id": upload_id, "size": size, "filename": filename,
                             "created_at": now_iso()})
    return {"upload_id": upload_id, "size": size}


def _sweep(ctx: Context, keys: Keys) -> None:
    """Delete the tenant's uploads older than `upload_ttl_s`."""
    _, folders = ctx.store.backend.children(f"{keys.root}/uploads")
    cutoff = datetime.now(UTC).timestamp() - ctx.upload_ttl_s
    for folder in folders:
        try:
            created = datetime.fromisoformat(ctx.store.registry.read(f"{folder}/upload.json")["created_at"])
        except NotFound:
            continue  # being written right now
        if created.timestamp() < cutoff:
            ctx.store.backend.delete_prefix(folder)
