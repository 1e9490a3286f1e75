"""Solution versions (`client.solution_versions`): training runs of a solution, with their
offline metrics; reads report a dead run as ended (`reap_version`)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated, Any

from fastapi import Query, Response

from recipes import get_recipe
from sdk.types import SolutionVersion, SolutionVersionCreate, Status
from store import Keys, NotFound, now_iso
from training_jobs.solution_version import VersionFailed, check_trainable

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
    live_solution,
    not_found,
    page,
    reap_version,
    replay,
    resource_router,
)

router = resource_router("solutions")
log = logging.getLogger("tagrec.control_plane")


def _version(ctx: Context, keys: Keys, group: str, solution: str, version: str) -> dict[str, Any]:
    live_solution(ctx, keys, group, solution)
    try:
        doc = ctx.store.registry.read(keys.version_record(group, solution, version))
    except NotFound:
        raise not_found(f"solution version {version!r}") from None
    return reap_version(ctx, keys, group, doc)


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return SolutionVersion.model_validate(doc).model_dump(mode="json")


@router.post("/v1/dataset-groups/{group}/solutions/{solution}/versions",
             response_model=SolutionVersion, status_code=201)
def create_version(group: Name, solution: Name, t: Tenant, response: Response, ctx: Ctx,
                   body: Strict[SolutionVersionCreate | None] = None,
                   idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    registry = ctx.store.registry
    sol = live_solution(ctx, keys, group, solution)
    body = body or SolutionVersionCreate()
    # The same Idempotency-Key names the same version: a retried create finds it.
    name = (f"v-{hashlib.sha256(idem.encode()).hexdigest()[:16]}" if idem
            else f"v-{uuid.uuid4().hex[:16]}")
    key = keys.version_record(group, solution, name)
    if idem and ctx.store.backend.exists(key):
        replayed = replay(registry.read(key), idem, body, f"solution version {name!r}", response)
        if replayed is not None:
            return _view(replayed)
    try:
        check_trainable(get_recipe(sol["recipe"]), ctx.store, keys, group)
    except VersionFailed as e:
        raise ApiError(400, "insufficient_data", str(e)) from None
    doc = {"name": name, "dataset_group": group, "solution": solution, "recipe": sol["recipe"],
           "training_mode": body.training_mode, "hyperparameters": sol["hyperparameters"],
           "scaling": sol.get("scaling") or {}, "evaluation_config": sol.get("evaluation") or {},
           "status": Status.CREATE_PENDING.value, "progress": {"phase": "queued"}}
    doc = create(ctx, key, doc, idem, f"solution version {name!r}", response,
                 parents=(group_parent(keys, group),
                          (keys.solution_record(group, solution), f"solution {solution!r}")),
                 request=body)
    if response.status_code == 201:
        try:
            ctx.submit_version(t, group, solution, name)
        except Exception as e:  # the job cannot start: say so on the version
            log.warning("could not submit version %s: %s", key, e)
            reason = f"could not start training: {type(e).__name__}: {e}"
            doc = registry.update(key, lambda d: {
                **d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                "failure_reason": reason})
    return _view(doc)


@router.get("/v1/dataset-groups/{group}/solutions/{solution}/versions")
def list_versions(group: Name, solution: Name, t: Tenant, ctx: Ctx,
                  max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                  next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    keys = Keys(t)
    live_solution(ctx, keys, group, solution)
    docs = [reap_version(ctx, keys, group, d)
            for d in ctx.store.registry.list(keys.versions(group, solution), "/version.json")]
    found = page(docs, max_results, next_token, newest_first=True)
    found["items"] = [_view(d) for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}/solutions/{solution}/versions/{version}",
            response_model=SolutionVersion)
def get_version(group: Name, solution: Name, version: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    return _version(ctx, Keys(t), group, solution, version)


@router.post("/v1/dataset-groups/{group}/solutions/{solution}/versions/{version}/stop",
             response_model=SolutionVersion)
def stop_version(group: Name, solution: Name, version: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    keys = Keys(t)
    _version(ctx, keys, group, solution, version)

    def stop(d: dict[str, Any]) -> dict[str, Any] | None:
        if d["status"] not in (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value):
            return None
        return {**d, "status": Status.CREATE_STOPPING.value, "updated_at": now_iso()}

    doc = ctx.store.registry.update(keys.version_record(group, solution, version), stop)
    if doc["status"] not in (Status.CREATE_STOPPING.value, Status.CREATE_STOPPED.value):
        raise ApiError(409, "conflict", f"solution version {version!r} is {doc['status']}: "
                                        f"only a version in training can be stopped")
    return _view(doc)
