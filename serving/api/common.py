"""What the routers share: the context, the tenant dependency, errors, pages, creates, reapers.

Every route reads the control plane's state through `Ctx` (the `Context` on `app.state`) and its
tenant through `Tenant` (the API key decides alone). Creates go through `create` (idempotency,
parents that must stay live); reads of jobs (import, batch inference), versions and campaigns go
through their reaper, which reports a dead one as failed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, WrapValidator

from sdk.types import NAME_PATTERN, DatasetKind, Status
from store import AlreadyExists, Keys, NotFound, Store, now_iso
from store.tenants import resolve_api_key

from ..deployments import Deployments
from ..event_logs import EventLogs

JobSubmitter = Callable[[str, str, str], None]  # (tenant, group, job) -> None; runs the import
VersionSubmitter = Callable[[str, str, str, str], None]  # (tenant, group, solution, version)
BatchSubmitter = Callable[[str, str, str], None]  # (tenant, group, job) -> None; runs the batch job
JobTracker = Callable[[str], bool]  # (record key) -> its job or rollout is still held

_AUTH_CACHE_S = 30.0
SUBMIT_GRACE_S = 30.0  # a pending job younger than this may be between its record and its submit
RUNNING = {Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value}
VERSION_OPEN = {*RUNNING, Status.CREATE_STOPPING.value}


def resource_router(tag: str) -> APIRouter:
    """The router of one resource: its routes carry `tag`, and their operation ids are the route
    functions' names (`create_group`, ...), as the OpenAPI document has always named them."""
    return APIRouter(tags=[tag], generate_unique_id_function=_operation_id)


def _operation_id(route: APIRoute) -> str:
    return route.name


@dataclass
class Context:
    """The control plane's state, as every route sees it (`app.state.context`)."""

    store: Store
    submit_import: JobSubmitter
    submit_version: VersionSubmitter
    is_tracked: JobTracker
    deployments: Deployments
    event_logs: EventLogs
    max_upload_bytes: int
    upload_ttl_s: float
    stale_after_s: float
    submit_batch_inference: BatchSubmitter
    auth_cache: dict[str, tuple[str, float]] = field(default_factory=dict)


async def _context(request: Request) -> Context:
    return request.app.state.context


Ctx = Annotated[Context, Depends(_context)]


class ApiError(Exception):
    """An error answer: `{"error": {"type", "message", "field"}}` with an HTTP status."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


# The API key's two carriers, declared as OpenAPI security schemes; `_tenant` reads the raw
# headers itself so a malformed one gets its own message.
_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="The tenant's API key: `Authorization: Bearer <api key>`.")
_API_KEY = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="apiKey",
                        description="The tenant's API key in `X-Api-Key` (when Authorization is absent).")


def _tenant(request: Request, ctx: Ctx,
            _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
            x_api_key: Annotated[str | None, Security(_API_KEY)] = None) -> str:
    """The tenant of the request's API key (401 without a valid one); the key decides alone."""
    key = x_api_key
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <api key>'")
        key = value.strip()
    if not key:
        raise ApiError(401, "unauthenticated",
                       "missing API key: send 'Authorization: Bearer <api key>'")
    hit = ctx.auth_cache.get(key)
    if hit and hit[1] > time.monotonic():
        return hit[0]
    found = resolve_api_key(ctx.store.registry, key)
    if found is None:
        raise ApiError(401, "unauthenticated", "invalid API key")
    ctx.auth_cache[key] = (found, time.monotonic() + _AUTH_CACHE_S)
    return found


Tenant = Annotated[str, Depends(_tenant)]
Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63)]


def _strict_json(value: Any, handler: Callable[[Any], Any]) -> Any:
    """A body's JSON types must be its schema's: `true` or `"3"` is no integer (pydantic's lax
    mode takes them); enums still come as their JSON values, and integers fill float fields."""
    model = handler(value)
    if isinstance(value, dict) and isinstance(model, BaseModel):
        type(model).model_validate_json(json.dumps(value), strict=True)
    return model


M = TypeVar("M")
Strict = Annotated[M, WrapValidator(_strict_json)]  # a JSON request body, validated as such
IdemKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="Makes a create safe to retry: the same key with the same body returns the first "
                "answer (200), the same key with another body is a 409 `idempotency_key_reused`.")]


def page(items: list[dict[str, Any]], max_results: int, next_token: str | None, *,
         newest_first: bool = False) -> dict[str, Any]:
    """One page by name (or newest first); `next_token` is the last name of the previous page."""
    if newest_first:
        items = sorted(items, key=lambda d: (d["created_at"], d["name"]), reverse=True)
        names = [d["name"] for d in items]
        if next_token:
            items = items[names.index(next_token) + 1:] if next_token in names else []
    else:
        items = sorted(items, key=lambda d: d["name"])
    if next_token and not newest_first:
        items = [d for d in items if d["name"] > next_token]
    first = items[:max_results]
    more = len(items) > max_results
    return {"items": first, "next_token": first[-1]["name"] if more else None}


# ---- records ----
def existing(ctx: Context, key: str, what: str) -> dict[str, Any]:
    """A record, whatever its status (404 if absent)."""
    try:
        return ctx.store.registry.read(key)
    except NotFound:
        raise not_found(what) from None


def live(ctx: Context, key: str, what: str) -> dict[str, Any]:
    """A record that exists and is not being deleted (404 otherwise)."""
    doc = existing(ctx, key, what)
    if doc.get("status") == Status.DELETE_IN_PROGRESS.value:
        raise not_found(what)
    return doc


def live_group(ctx: Context, keys: Keys, group: str) -> dict[str, Any]:
    return live(ctx, keys.group_record(group), f"dataset group {group!r}")


def group_parent(keys: Keys, group: str) -> tuple[str, str]:
    """The group as a parent of a create (see `create`)."""
    return keys.group_record(group), f"dataset group {group!r}"


def live_dataset(ctx: Context, keys: Keys, group: str, kind: DatasetKind) -> dict[str, Any]:
    live_group(ctx, keys, group)
    return live(ctx, keys.dataset_record(group, kind.value), f"{kind.value} dataset in group {group!r}")


def live_solution(ctx: Context, keys: Keys, group: str, solution: str) -> dict[str, Any]:
    live_group(ctx, keys, group)
    return live(ctx, keys.solution_record(group, solution), f"solution {solution!r}")


def mark_deleting(ctx: Context, key: str) -> None:
    """First step of a delete: creates under this record now answer 404."""
    try:
        ctx.store.registry.update(key, lambda d: {**d, "status": Status.DELETE_IN_PROGRESS.value,
                                                  "updated_at": now_iso()})
    except NotFound:
        pass


# ---- creates, safe to retry ----
def fingerprint(request: BaseModel) -> str:
    """The hash of a request body in canonical form (validated, defaults filled in, keys sorted):
    what an Idempotency-Key is bound to."""
    canonical = json.dumps(request.model_dump(mode="json", by_alias=True), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(found: dict[str, Any], idem: str | None, request: BaseModel, what: str,
           response: Response) -> dict[str, Any] | None:
    """The record a retry of the same create made (200), None if another create made it;
    409 if its Idempotency-Key came with another request body."""
    if not idem or found.get("idempotency_key") != idem:
        return None
    if found.get("request_sha256") not in (None, fingerprint(request)):  # None: older record
        raise ApiError(409, "idempotency_key_reused",
                       f"Idempotency-Key {idem!r} was used with a different request body for {what}; "
                       f"a retry must repeat the request exactly, and a new request needs a new key",
                       "Idempotency-Key")
    response.status_code = 200
    return found


def create(ctx: Context, key: str, doc: dict[str, Any], idem: str | None, what: str,
           response: Response, parents: tuple[tuple[str, str], ...] = (), *,
           request: BaseModel) -> dict[str, Any]:
    """Create a record; replay the stored one if this is a retry of the same create (the
    same Idempotency-Key and the same `request` body).

    `parents` ((record key, what), ...) must be live before and after the write: a create
    racing a delete of its parent undoes itself and answers 404, so no child outlives it.
    """
    registry = ctx.store.registry
    now = now_iso()
    doc = {**doc, "created_at": now, "updated_at": now, "idempotency_key": idem,
           "request_sha256": fingerprint(request) if idem else None}
    try:
        registry.create(key, doc)
        try:
            for parent, parent_what in parents:
                live(ctx, parent, parent_what)
        except ApiError:
            ctx.store.backend.delete(key)
            raise
        response.status_code = 201
        return doc
    except AlreadyExists:
        replayed = replay(registry.read(key), idem, request, what, response)
        if replayed is not None:
            return replayed
        raise ApiError(409, "conflict", f"{what} already exists") from None


# ---- reapers: a job, version or deployment nobody runs any more is reported as ended ----
def _age_s(doc: dict[str, Any]) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(doc["updated_at"])).total_seconds()


def _end_if_unchanged(ctx: Context, key: str, doc: dict[str, Any], status: str,
                      reason: str | None) -> dict[str, Any]:
    """Set `status` (and `failure_reason`) unless the record changed since `doc` was read."""
    def end(d: dict[str, Any]) -> dict[str, Any] | None:
        if d["status"] != doc["status"] or d["updated_at"] != doc["updated_at"]:
            return None
        return {**d, "status": status, "updated_at": now_iso(), "failure_reason": reason}

    return ctx.store.registry.update(key, end)


def reap_import(ctx: Context, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Report a dead import job as failed: a running job writes progress every second, and a
    pending one is known to the runner until it starts (tasks die with their submitter)."""
    age = _age_s(doc)
    key = keys.import_job(group, doc["name"])
    if doc["status"] == Status.CREATE_IN_PROGRESS.value and age >= ctx.stale_after_s:
        reason = (f"the job stopped reporting progress for {int(age)} s (its process died); "
                  f"the dataset's previous snapshot is unchanged")
    elif doc["status"] == Status.CREATE_PENDING.value and age >= SUBMIT_GRACE_S and not ctx.is_tracked(key):
        reason = "the job never started (the platform restarted or its worker was lost); run it again"
    else:
        return doc
    return _end_if_unchanged(ctx, key, doc, Status.CREATE_FAILED.value, reason)


def reap_version(ctx: Context, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    """End a dead version: a training job beats every few seconds; a pending or stopping
    one nobody runs never will."""
    status = doc["status"]
    if status not in VERSION_OPEN:
        return doc
    age = _age_s(doc)
    key = keys.version_record(group, doc["solution"], doc["name"])
    held = ctx.is_tracked(key)
    if status == Status.CREATE_STOPPING.value and (age >= ctx.stale_after_s or
                                                   (age >= SUBMIT_GRACE_S and not held)):
        new_status, reason = Status.CREATE_STOPPED.value, None
    elif status == Status.CREATE_IN_PROGRESS.value and age >= ctx.stale_after_s:
        new_status = Status.CREATE_FAILED.value
        reason = f"the training job stopped reporting for {int(age)} s (its process died)"
    elif status == Status.CREATE_PENDING.value and age >= SUBMIT_GRACE_S and not held:
        new_status = Status.CREATE_FAILED.value
        reason = "the job never started (the platform restarted or its worker was lost); run it again"
    else:
        return doc
    return _end_if_unchanged(ctx, key, doc, new_status, reason)


def reap_batch_inference(ctx: Context, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Report a dead batch inference job as failed: a running job beats every few seconds, and a
    pending one is known to the runner until it starts."""
    age = _age_s(doc)
    key = keys.batch_inference_job(group, doc["name"])
    if doc["status"] == Status.CREATE_IN_PROGRESS.value and age >= ctx.stale_after_s:
        reason = f"the job stopped reporting for {int(age)} s (its process died); nothing was published"
    elif doc["status"] == Status.CREATE_PENDING.value and age >= SUBMIT_GRACE_S and not ctx.is_tracked(key):
        reason = "the job never started (the platform restarted or its worker was lost); run it again"
    else:
        return doc
    return _end_if_unchanged(ctx, key, doc, Status.CREATE_FAILED.value, reason)


def reap_campaign(ctx: Context, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A campaign deploying with no deployment in flight (the platform restarted) failed."""
    key = keys.campaign_record(group, doc["name"])
    if doc["status"] not in RUNNING or _age_s(doc) < SUBMIT_GRACE_S or ctx.is_tracked(key):
        return doc

    def fail(d: dict[str, Any]) -> dict[str, Any] | None:
        if d["updated_at"] != doc["updated_at"]:
            return None
        return {**d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                "failure_reason": "the deployment stopped (the platform restarted); create it again"}

    return ctx.store.registry.update(key, fail)


# ---- deletes, refused while work runs on what they delete ----
def refuse_if_importing(ctx: Context, keys: Keys, group: str, kind: str | None) -> None:
    """409 while an import job runs on the group (or on one dataset of it)."""
    for doc in ctx.store.registry.list(keys.import_jobs(group), ".json"):
        doc = reap_import(ctx, keys, group, doc)
        if doc["status"] in RUNNING and kind in (None, doc["dataset"]):
            raise ApiError(409, "conflict", f"import job {doc['name']!r} is still running on the "
                                            f"{doc['dataset']} dataset; wait for it to finish")


def refuse_if_training(ctx: Context, keys: Keys, group: str, solution: str | None) -> None:
    """409 while a version of the solution (or of any solution of the group) trains."""
    registry = ctx.store.registry
    names = [solution] if solution else [d["name"] for d in
                                         registry.list(keys.solutions(group), "/solution.json")]
    for name in names:
        for doc in registry.list(keys.versions(group, name), "/version.json"):
            doc = reap_version(ctx, keys, group, doc)
            if doc["status"] in VERSION_OPEN:
                raise ApiError(409, "conflict", f"solution version {doc['name']!r} of {name!r} is "
                                                f"still training; stop it or wait for it to end")


def refuse_if_batch_running(ctx: Context, keys: Keys, group: str, solution: str | None) -> None:
    """409 while a batch inference job runs on the group (or on a version of one solution)."""
    for doc in ctx.store.registry.list(keys.batch_inference_jobs(group), ".json"):
        doc = reap_batch_inference(ctx, keys, group, doc)
        if doc["status"] in RUNNING and solution in (None, doc["solution"]):
            raise ApiError(409, "conflict", f"batch inference job {doc['name']!r} is still running on "
                                            f"solution {doc['solution']!r}; wait for it to finish")


def undeploy(ctx: Context, keys: Keys, group: str, campaign: str) -> None:
    """Delete a campaign: its record says so first, then its Serve application goes, then it."""
    key = keys.campaign_record(group, campaign)
    ctx.store.registry.update(key, lambda d: {**d, "status": Status.DELETE_IN_PROGRESS.value,
                                              "updated_at": now_iso()})
    try:
        ctx.deployments.delete(keys.tenant, group, campaign)
    except RuntimeError:
        pass  # never deployed: this control plane has no Serve
    ctx.store.backend.delete(key)
