"""Datasets (`client.datasets`): a group's interactions, items and users, each with its schema."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from sdk.types import Dataset, DatasetCreate, DatasetKind, Status
from store import Keys
from store.snapshots import read_current

from .common import (
    Context,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    existing,
    group_parent,
    live_dataset,
    live_group,
    mark_deleting,
    refuse_if_batch_running,
    refuse_if_importing,
    resource_router,
)

router = resource_router("datasets")


def _view(ctx: Context, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    manifest = read_current(ctx.store.backend, keys, group, doc["kind"])
    view = {**doc, "current_snapshot": manifest.snapshot_id if manifest else None,
            "row_count": manifest.rows if manifest else 0}
    return Dataset.model_validate(view).model_dump(mode="json", by_alias=True)


@router.post("/v1/dataset-groups/{group}/datasets", response_model=Dataset, status_code=201,
             response_model_by_alias=True)
def create_dataset(group: Name, body: Strict[DatasetCreate], t: Tenant, response: Response, ctx: Ctx,
                   idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    doc = {"name": body.kind.value, "kind": body.kind.value, "dataset_group": group,
           "status": Status.ACTIVE.value,
           "schema": body.schema_.model_dump(mode="json", by_alias=True)}
    doc = create(ctx, keys.dataset_record(group, body.kind.value), doc, idem,
                 f"{body.kind.value} dataset in group {group!r}", response,
                 parents=(group_parent(keys, group),), request=body)
    return _view(ctx, keys, group, doc)


@router.get("/v1/dataset-groups/{group}/datasets")
def list_datasets(group: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    docs = [ctx.store.registry.read(keys.dataset_record(group, k.value)) for k in DatasetKind
            if ctx.store.backend.exists(keys.dataset_record(group, k.value))]
    return {"items": [_view(ctx, keys, group, d) for d in docs], "next_token": None}


@router.get("/v1/dataset-groups/{group}/datasets/{kind}", response_model=Dataset,
            response_model_by_alias=True)
def get_dataset(group: Name, kind: DatasetKind, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    keys = Keys(t)
    return _view(ctx, keys, group, live_dataset(ctx, keys, group, kind))


@router.delete("/v1/dataset-groups/{group}/datasets/{kind}", status_code=204)
def delete_dataset(group: Name, kind: DatasetKind, t: Tenant, ctx: Ctx) -> Response:
    keys = Keys(t)
    backend = ctx.store.backend
    live_group(ctx, keys, group)
    existing(ctx, keys.dataset_record(group, kind.value), f"{kind.value} dataset in group {group!r}")
    refuse_if_importing(ctx, keys, group, kind.value)
    if kind == DatasetKind.INTERACTIONS:  # a running batch job reads the users' histories from it
        refuse_if_batch_running(ctx, keys, group, None)
    mark_deleting(ctx, keys.dataset_record(group, kind.value))
    if kind == DatasetKind.INTERACTIONS:  # its event log goes with it
        ctx.event_logs.close(t, group)
        backend.delete_prefix(keys.events(group))
    backend.delete(keys.dataset_record(group, kind.value))
    backend.delete_prefix(keys.dataset(group, kind.value))
    return Response(status_code=204)
