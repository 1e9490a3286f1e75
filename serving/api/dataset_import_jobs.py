"""Dataset import jobs (`client.dataset_import_jobs`): a file loaded into a dataset as a new
snapshot, by a job the runner runs; reads report a dead job as failed (`reap_import`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import Query, Response

from sdk.types import DatasetImportJob, DatasetImportJobCreate, Status
from store import Keys, NotFound, Store, now_iso

from .common import (
    ApiError,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    group_parent,
    live_dataset,
    live_group,
    not_found,
    page,
    reap_import,
    resource_router,
)

router = resource_router("datasets")
log = logging.getLogger("tagrec.control_plane")


@router.post("/v1/dataset-groups/{group}/import-jobs", response_model=DatasetImportJob, status_code=201)
def create_import_job(group: Name, body: Strict[DatasetImportJobCreate], t: Tenant, response: Response,
                      ctx: Ctx, idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    registry = ctx.store.registry
    live_dataset(ctx, keys, group, body.dataset)
    source = body.source.model_dump(mode="json", exclude_none=True)
    source_name = body.source.uri
    if body.source.upload_id:
        try:
            meta = registry.read(f"{keys.upload(body.source.upload_id)}/upload.json")
        except NotFound:
            raise ApiError(404, "not_found", f"upload {body.source.upload_id!r} not found",
                           "source.upload_id") from None
        source_name = meta["filename"]
    elif _inside_store(ctx.store, body.source.uri or ""):
        raise ApiError(400, "invalid_input", "source.uri points inside the platform's own "
                                             "store; give a bucket of yours", "source.uri")
    doc = {"name": body.name, "dataset_group": group, "dataset": body.dataset.value,
           "mode": body.mode.value, "source": source, "source_name": source_name,
           "status": Status.CREATE_PENDING.value,
           "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None}}
    doc = create(ctx, keys.import_job(group, body.name), doc, idem,
                 f"import job {body.name!r}", response,
                 parents=(group_parent(keys, group),
                          (keys.dataset_record(group, body.dataset.value),
                           f"{body.dataset.value} dataset in group {group!r}")), request=body)
    if response.status_code == 201:
        try:
            ctx.submit_import(t, group, body.name)
        except Exception as e:  # the job cannot start: say so on the job
            log.exception("could not submit import job")
            reason = f"could not start the job: {type(e).__name__}: {e}"
            doc = registry.update(keys.import_job(group, body.name), lambda d: {
                **d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                "failure_reason": reason})
    return doc


@router.get("/v1/dataset-groups/{group}/import-jobs")
def list_import_jobs(group: Name, t: Tenant, ctx: Ctx,
                     max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                     next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    found = page(ctx.store.registry.list(keys.import_jobs(group), ".json"), max_results, next_token)
    found["items"] = [DatasetImportJob.model_validate(reap_import(ctx, keys, group, d)).model_dump(
        mode="json") for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}/import-jobs/{job}", response_model=DatasetImportJob)
def get_import_job(group: Name, job: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    try:
        return reap_import(ctx, keys, group, ctx.store.registry.read(keys.import_job(group, job)))
    except NotFound:
        raise not_found(f"import job {job!r}") from None


def _inside_store(store: Store, uri: str) -> bool:
    """Whether an s3:// URI names the platform's own bucket (other tenants' data live there)."""
    own = urlparse(store.config.uri)
    return own.scheme == "s3" and urlparse(uri).netloc == own.netloc
