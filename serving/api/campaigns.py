"""Campaigns (`client.campaigns`): solution versions deployed as live endpoints on Ray Serve.

The records live here; `serving.deployments` rolls them out in the background and the record
says how it went (`reap_campaign` fails one whose rollout nobody runs any more). The endpoints
themselves (recommend, rank, ...) are answered by Ray Serve (`serving.campaign`), not by this
router.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import ValidationError

from recipes import get_recipe
from sdk.types import Campaign, CampaignCreate, CampaignUpdate, Status
from sdk.types.common import describe_problem
from serving.endpoints import endpoint_path
from store import Keys, NotFound, now_iso

from .common import (
    ApiError,
    Context,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    group_parent,
    live_group,
    not_found,
    page,
    reap_campaign,
    resource_router,
    undeploy,
)

router = resource_router("campaigns")


def _campaign(ctx: Context, keys: Keys, group: str, campaign: str) -> dict[str, Any]:
    live_group(ctx, keys, group)
    try:
        doc = ctx.store.registry.read(keys.campaign_record(group, campaign))
    except NotFound:
        raise not_found(f"campaign {campaign!r}") from None
    return reap_campaign(ctx, keys, group, doc)


def _active_version(ctx: Context, keys: Keys, group: str, solution: str, version: str) -> dict[str, Any]:
    registry = ctx.store.registry
    try:
        registry.read(keys.solution_record(group, solution))
    except NotFound:
        raise ApiError(400, "invalid_input", f"solution: no solution {solution!r} in group "
                                             f"{group!r}", "solution") from None
    try:
        doc = registry.read(keys.version_record(group, solution, version))
    except NotFound:
        raise ApiError(400, "invalid_input", f"solution_version: no version {version!r} of "
                                             f"solution {solution!r}", "solution_version") from None
    if doc["status"] != Status.ACTIVE.value:
        raise ApiError(400, "invalid_input", f"solution_version: version {version!r} is "
                                             f"{doc['status']}, not ACTIVE", "solution_version")
    return doc


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return Campaign.model_validate(doc).model_dump(mode="json")


@router.post("/v1/dataset-groups/{group}/campaigns", response_model=Campaign, status_code=201)
def create_campaign(group: Name, body: Strict[CampaignCreate], t: Tenant, response: Response, ctx: Ctx,
                    idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    version = _active_version(ctx, keys, group, body.solution, body.solution_version)
    serve_url = ctx.deployments.serve_url
    endpoint = f"{(serve_url or '').rstrip('/')}{endpoint_path(t, group, body.name)}"
    doc = {**body.model_dump(mode="json"), "dataset_group": group, "recipe": version["recipe"],
           "task": get_recipe(version["recipe"]).task.value,
           "status": Status.CREATE_PENDING.value, "endpoint": endpoint if serve_url else None,
           "pending_update": None}
    key = keys.campaign_record(group, body.name)
    doc = create(ctx, key, doc, idem, f"campaign {body.name!r}", response,
                 parents=(group_parent(keys, group),), request=body)
    if response.status_code == 201:
        try:
            ctx.deployments.deploy(t, group, body.name)
        except Exception as e:  # cannot deploy here: say so on the campaign
            reason = f"could not deploy: {e}"
            doc = ctx.store.registry.update(key, lambda d: {
                **d, "status": Status.CREATE_FAILED.value, "failure_reason": reason, "updated_at": now_iso()})
    return _view(doc)


@router.get("/v1/dataset-groups/{group}/campaigns")
def list_campaigns(group: Name, t: Tenant, ctx: Ctx,
                   max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                   next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    docs = [reap_campaign(ctx, keys, group, d)
            for d in ctx.store.registry.list(keys.campaigns(group), ".json")]
    found = page(docs, max_results, next_token)
    found["items"] = [_view(d) for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}/campaigns/{campaign}", response_model=Campaign)
def get_campaign(group: Name, campaign: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    return _campaign(ctx, Keys(t), group, campaign)


@router.patch("/v1/dataset-groups/{group}/campaigns/{campaign}", response_model=Campaign)
def update_campaign(group: Name, campaign: Name, body: Strict[CampaignUpdate], t: Tenant,
                    ctx: Ctx) -> dict[str, Any]:
    keys = Keys(t)
    registry = ctx.store.registry
    doc = _campaign(ctx, keys, group, campaign)
    change = body.model_dump(exclude_none=True)
    if not change:
        raise ApiError(400, "invalid_input", "nothing to update: give solution_version or a "
                                             "scaling field")
    target = {**doc, **change}
    if "solution_version" in change or "solution" in change:
        version = _active_version(ctx, keys, group, target["solution"], target["solution_version"])
        target["recipe"] = version["recipe"]
        target["task"] = get_recipe(version["recipe"]).task.value
        if doc.get("task") and target["task"] != doc["task"]:  # its clients call its task's verbs
            raise ApiError(400, "invalid_input", f"solution_version: campaign {campaign!r} answers "
                           f"{doc['task']} requests; version {target['solution_version']!r} is a "
                           f"{target['task']} model (create another campaign for it)",
                           "solution_version")
    try:
        CampaignCreate.model_validate({k: target[k] for k in CampaignCreate.model_fields})
    except ValidationError as e:
        field, message = describe_problem(e.errors()[0])
        raise ApiError(400, "invalid_input", message, field) from None
    update = {k: target[k] for k in (*change, "recipe", "task") if k in target}

    def start(d: dict[str, Any]) -> dict[str, Any]:
        if d["status"] == Status.CREATE_FAILED.value:
            raise ApiError(409, "conflict", f"campaign {campaign!r} is CREATE_FAILED "
                           f"({d.get('failure_reason')}): it cannot be updated; delete it and "
                           "create it again")
        if d["status"] != Status.ACTIVE.value or d.get("pending_update"):
            raise ApiError(409, "conflict", f"campaign {campaign!r} is {d['status']}"
                           + (" with an update rolling out" if d.get("pending_update") else "")
                           + ": wait for it to be ACTIVE")
        return {**d, "pending_update": update, "updated_at": now_iso()}

    key = keys.campaign_record(group, campaign)
    doc = registry.update(key, start)
    try:
        ctx.deployments.deploy(t, group, campaign)
    except Exception as e:  # cannot roll out here: the old version keeps serving
        reason = f"could not deploy: {e}"
        doc = registry.update(key, lambda d: {**d, "pending_update": None,
                                              "last_update_failure": reason, "updated_at": now_iso()})
    return _view(doc)


@router.delete("/v1/dataset-groups/{group}/campaigns/{campaign}", status_code=204)
def delete_campaign(group: Name, campaign: Name, t: Tenant, ctx: Ctx) -> Response:
    keys = Keys(t)
    _campaign(ctx, keys, group, campaign)
    undeploy(ctx, keys, group, campaign)
    return Response(status_code=204)
