"""Dataset groups (`client.dataset_groups`): the containers of datasets, solutions and campaigns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response

from sdk.types import DatasetGroup, DatasetGroupCreate, DatasetKind, Status
from store import Keys

from .common import (
    ApiError,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    existing,
    live_group,
    mark_deleting,
    page,
    refuse_if_batch_running,
    refuse_if_importing,
    refuse_if_training,
    resource_router,
    undeploy,
)

router = resource_router("dataset groups")


@router.post("/v1/dataset-groups", response_model=DatasetGroup, status_code=201)
def create_group(body: Strict[DatasetGroupCreate], t: Tenant, response: Response, ctx: Ctx,
                 idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    doc = {"name": body.name, "description": body.description, "status": Status.ACTIVE.value}
    return create(ctx, keys.group_record(body.name), doc, idem,
                  f"dataset group {body.name!r}", response, request=body)


@router.get("/v1/dataset-groups")
def list_groups(t: Tenant, ctx: Ctx, max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    docs = ctx.store.registry.list(Keys(t).groups(), "/group.json")
    found = page(docs, max_results, next_token)
    found["items"] = [DatasetGroup.model_validate(d).model_dump(mode="json") for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}", response_model=DatasetGroup)
def get_group(group: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    return live_group(ctx, Keys(t), group)


@router.delete("/v1/dataset-groups/{group}", status_code=204)
def delete_group(group: Name, t: Tenant, ctx: Ctx, force: bool = False) -> Response:
    keys = Keys(t)
    registry, backend = ctx.store.registry, ctx.store.backend
    existing(ctx, keys.group_record(group), f"dataset group {group!r}")  # a half-done delete retries
    kinds = [k.value for k in DatasetKind if backend.exists(keys.dataset_record(group, k.value))]
    solutions = [d["name"] for d in registry.list(keys.solutions(group), "/solution.json")]
    campaigns = [d["name"] for d in registry.list(keys.campaigns(group), ".json")]
    children = [*kinds, *(f"solution {s}" for s in solutions), *(f"campaign {c}" for c in campaigns)]
    if children and not force:
        raise ApiError(409, "conflict",
                       f"dataset group {group!r} has datasets or solutions ({', '.join(children)}): "
                       f"delete them first or pass force=true")
    refuse_if_importing(ctx, keys, group, None)
    refuse_if_training(ctx, keys, group, None)
    refuse_if_batch_running(ctx, keys, group, None)
    mark_deleting(ctx, keys.group_record(group))
    # Children first, the group record last: a crash mid-way leaves a visible group to retry.
    for campaign in campaigns:
        undeploy(ctx, keys, group, campaign)
    ctx.event_logs.close(t, group)
    backend.delete_prefix(keys.events(group))
    backend.delete_prefix(keys.solutions(group))
    backend.delete_prefix(f"{keys.group(group)}/datasets")
    backend.delete_prefix(keys.import_jobs(group))
    backend.delete_prefix(keys.batch_inference_jobs(group))
    backend.delete(keys.group_record(group))
    return Response(status_code=204)
