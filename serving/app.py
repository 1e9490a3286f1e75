"""The control plane: the platform's authenticated HTTP API (FastAPI).

Every request under /v1 is authenticated to exactly one tenant by its API key; the tenant is
never read from the request. Resource keys are built from the tenant and validated names only
(store.Keys), so one tenant's request cannot name another tenant's resource: it gets a 404.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar
from urllib.parse import urlparse

import fastapi_offline
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError, WrapValidator
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from recipes import RECIPE_IDS, get_recipe
from sdk.types import (
    NAME_PATTERN,
    Campaign,
    CampaignCreate,
    CampaignUpdate,
    Dataset,
    DatasetCreate,
    DatasetGroup,
    DatasetGroupCreate,
    DatasetImportJob,
    DatasetImportJobCreate,
    DatasetKind,
    ErrorBody,
    PutEventsRequest,
    PutEventsResponse,
    RankRequest,
    RecipeInfo,
    RecommendRequest,
    RecommendResponse,
    Solution,
    SolutionCreate,
    SolutionVersion,
    SolutionVersionCreate,
    Status,
)
from serving.endpoints import endpoint_path
from serving.events import EventsRefused
from store import AlreadyExists, Keys, NotFound, Store, now_iso
from store.snapshots import read_current
from store.tenants import resolve_api_key
from training_jobs.runner import JobRunner
from training_jobs.solution_version import VersionFailed, check_trainable

__all__ = ["create_app", "ApiError", "JobSubmitter", "JobTracker", "VersionSubmitter"]

log = logging.getLogger("tagrec.control_plane")

JobSubmitter = Callable[[str, str, str], None]  # (tenant, group, job) -> None; runs the import
VersionSubmitter = Callable[[str, str, str, str], None]  # (tenant, group, solution, version)
JobTracker = Callable[[str], bool]  # (record key) -> the runner still holds the job
MAX_JSON_BYTES = 1 << 20
DEFAULT_MAX_UPLOAD_BYTES = 50 << 30
UPLOAD_TTL_S = 24 * 3600.0
_AUTH_CACHE_S = 30.0
STALE_JOB_S = 120.0  # an import job silent this long is dead (it writes progress every second)
_SUBMIT_GRACE_S = 30.0  # a pending job younger than this may be between its record and its submit

Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63)]


class ApiError(Exception):
    """An error answer: `{"error": {"type", "message", "field"}}` with an HTTP status."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field
        self.headers = headers


def _error(status: int, type_: str, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message, "field": field}},
                        status_code=status, headers=headers)


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _page(items: list[dict[str, Any]], max_results: int, next_token: str | None, *,
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
    page = items[:max_results]
    more = len(items) > max_results
    return {"items": page, "next_token": page[-1]["name"] if more else None}


# The API key's two carriers, declared as OpenAPI security schemes; `_tenant` reads the raw
# headers itself so a malformed one gets its own message.
_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="The tenant's API key: `Authorization: Bearer <api key>`.")
_API_KEY = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="apiKey",
                        description="The tenant's API key in `X-Api-Key` (when Authorization is absent).")


def _tenant(request: Request,
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
    cache: dict[str, tuple[str, float]] = request.app.state.auth_cache
    hit = cache.get(key)
    if hit and hit[1] > time.monotonic():
        return hit[0]
    found = resolve_api_key(request.app.state.store.registry, key)
    if found is None:
        raise ApiError(401, "unauthenticated", "invalid API key")
    cache[key] = (found, time.monotonic() + _AUTH_CACHE_S)
    return found


Tenant = Annotated[str, Depends(_tenant)]


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


def _no_training(tenant: str, group: str, solution: str, version: str) -> None:
    raise RuntimeError("this control plane has no training runner")


def create_app(store: Store, submit_import: JobSubmitter, *,
               submit_version: VersionSubmitter = _no_training,
               is_tracked: JobTracker = lambda key: True,
               runner: JobRunner | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               upload_ttl_s: float = UPLOAD_TTL_S,
               stale_after_s: float = STALE_JOB_S) -> FastAPI:
    """The control plane app over `store`.

    Args:
        store: Where records and data live.
        submit_import: Starts an import job (e.g. as a Ray task).
        submit_version: Starts a solution version's training job.
        runner: Deploys campaigns and holds event logs (default: events in this process, no
            campaigns).
        is_tracked: Whether the runner still holds the submitted job of a record key; a
            pending job it does not hold will never run and is reported as failed.
        max_upload_bytes: Largest upload accepted.
        upload_ttl_s: How long an upload stays importable (swept on the tenant's next upload).
        stale_after_s: An in-progress job silent this long is reported as failed.
    """
    app = FastAPI(title="tagrec control plane", version="0.1.0", redirect_slashes=False,
                  description="Datasets, recipes, training and campaigns, per tenant.",
                  docs_url=None, redoc_url=None, generate_unique_id_function=lambda route: route.name)
    registry = store.registry
    app.state.store = store
    app.state.auth_cache = {}
    ops = runner or JobRunner(store)
    _add_docs(app, ops.serve_url)

    # ---- errors: every failure is a typed JSON body, never an HTML page or a bare 500 ----
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.type, e.message, e.field, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
        field = ".".join(loc) or None
        msg = str(first.get("msg", "invalid input")).removeprefix("Value error, ")
        if first.get("type") == "json_invalid":
            return _error(400, "invalid_json", f"request body is not valid JSON: {msg}")
        given = first.get("input")
        shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r:.80})"
        return _error(400, "invalid_input", f"{field or 'request'}: {msg}{shown}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        type_ = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        headers = e.headers
        if e.status_code == 405:  # Starlette's Allow names one route's methods; a path has several
            allowed = {m for r in app.routes if isinstance(r, Route)
                       and r.matches(request.scope)[0] is not Match.NONE for m in r.methods or ()}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return _error(e.status_code, type_, str(e.detail), headers=headers)

    @app.exception_handler(NotFound)
    async def _store_not_found(_: Request, e: NotFound) -> JSONResponse:
        return _error(404, "not_found", "resource not found")

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error(500, "internal_error", f"internal error ({type(e).__name__})")

    app.add_middleware(_JsonBodyLimit, limit=MAX_JSON_BYTES, exempt=("/v1/uploads",))

    def _existing(key: str, what: str) -> dict[str, Any]:
        """A record, whatever its status (404 if absent)."""
        try:
            return registry.read(key)
        except NotFound:
            raise _not_found(what) from None

    def _live(key: str, what: str) -> dict[str, Any]:
        """A record that exists and is not being deleted (404 otherwise)."""
        try:
            doc = registry.read(key)
        except NotFound:
            raise _not_found(what) from None
        if doc.get("status") == Status.DELETE_IN_PROGRESS.value:
            raise _not_found(what)
        return doc

    def _replay(existing: dict[str, Any], idem: str | None, request: BaseModel, what: str,
                response: Response) -> dict[str, Any] | None:
        """The record a retry of the same create made (200), None if another create made it;
        409 if its Idempotency-Key came with another request body."""
        if not idem or existing.get("idempotency_key") != idem:
            return None
        if existing.get("request_sha256") not in (None, _fingerprint(request)):  # None: older record
            raise ApiError(409, "idempotency_key_reused",
                           f"Idempotency-Key {idem!r} was used with a different request body for {what}; "
                           f"a retry must repeat the request exactly, and a new request needs a new key",
                           "Idempotency-Key")
        response.status_code = 200
        return existing

    def _create(key: str, doc: dict[str, Any], idem: str | None, what: str,
                response: Response, parents: tuple[tuple[str, str], ...] = (), *,
                request: BaseModel) -> dict[str, Any]:
        """Create a record; replay the stored one if this is a retry of the same create (the
        same Idempotency-Key and the same `request` body).

        `parents` ((record key, what), ...) must be live before and after the write: a create
        racing a delete of its parent undoes itself and answers 404, so no child outlives it.
        """
        now = now_iso()
        doc = {**doc, "created_at": now, "updated_at": now, "idempotency_key": idem,
               "request_sha256": _fingerprint(request) if idem else None}
        try:
            registry.create(key, doc)
            try:
                for parent, parent_what in parents:
                    _live(parent, parent_what)
            except ApiError:
                store.backend.delete(key)
                raise
            response.status_code = 201
            return doc
        except AlreadyExists:
            replayed = _replay(registry.read(key), idem, request, what, response)
            if replayed is not None:
                return replayed
            raise ApiError(409, "conflict", f"{what} already exists") from None

    def _group(keys: Keys, group: str) -> dict[str, Any]:
        return _live(keys.group_record(group), f"dataset group {group!r}")

    def _group_parent(keys: Keys, group: str) -> tuple[str, str]:
        return keys.group_record(group), f"dataset group {group!r}"

    def _mark_deleting(key: str) -> None:
        """First step of a delete: creates under this record now answer 404."""
        try:
            registry.update(key, lambda d: {**d, "status": Status.DELETE_IN_PROGRESS.value,
                                            "updated_at": now_iso()})
        except NotFound:
            pass

    # ---- health ----
    @app.get("/healthz", tags=["platform"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": app.version}

    @app.get("/v1/whoami", tags=["platform"])
    def whoami(t: Tenant) -> dict[str, str]:
        return {"tenant": t}

    # ---- dataset groups ----
    @app.post("/v1/dataset-groups", response_model=DatasetGroup, status_code=201,
              tags=["dataset groups"])
    def create_group(body: Strict[DatasetGroupCreate], t: Tenant, response: Response,
                     idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        doc = {"name": body.name, "description": body.description, "status": Status.ACTIVE.value}
        return _create(keys.group_record(body.name), doc, idem,
                       f"dataset group {body.name!r}", response, request=body)

    @app.get("/v1/dataset-groups", tags=["dataset groups"])
    def list_groups(t: Tenant, max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                    next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
        docs = registry.list(Keys(t).groups(), "/group.json")
        page = _page(docs, max_results, next_token)
        page["items"] = [DatasetGroup.model_validate(d).model_dump(mode="json") for d in page["items"]]
        return page

    @app.get("/v1/dataset-groups/{group}", response_model=DatasetGroup, tags=["dataset groups"])
    def get_group(group: Name, t: Tenant) -> dict[str, Any]:
        return _group(Keys(t), group)

    @app.delete("/v1/dataset-groups/{group}", status_code=204, tags=["dataset groups"])
    def delete_group(group: Name, t: Tenant, force: bool = False) -> Response:
        keys = Keys(t)
        _existing(keys.group_record(group), f"dataset group {group!r}")  # a half-done delete retries
        kinds = [k.value for k in DatasetKind if store.backend.exists(keys.dataset_record(group, k.value))]
        solutions = [d["name"] for d in registry.list(keys.solutions(group), "/solution.json")]
        campaigns = [d["name"] for d in registry.list(keys.campaigns(group), ".json")]
        children = [*kinds, *(f"solution {s}" for s in solutions), *(f"campaign {c}" for c in campaigns)]
        if children and not force:
            raise ApiError(409, "conflict",
                           f"dataset group {group!r} has datasets or solutions ({', '.join(children)}): "
                           f"delete them first or pass force=true")
        _refuse_if_importing(keys, group, None)
        _refuse_if_training(keys, group, None)
        _mark_deleting(keys.group_record(group))
        # Children first, the group record last: a crash mid-way leaves a visible group to retry.
        for campaign in campaigns:
            _undeploy(keys, group, campaign)
        ops.close_event_log(t, group)
        store.backend.delete_prefix(keys.events(group))
        store.backend.delete_prefix(keys.solutions(group))
        store.backend.delete_prefix(f"{keys.group(group)}/datasets")
        store.backend.delete_prefix(keys.import_jobs(group))
        store.backend.delete(keys.group_record(group))
        return Response(status_code=204)

    def _refuse_if_importing(keys: Keys, group: str, kind: str | None) -> None:
        """409 while an import job runs on the group (or on one dataset of it)."""
        for doc in registry.list(keys.import_jobs(group), ".json"):
            doc = _reap(keys, group, doc)
            if doc["status"] in _RUNNING and kind in (None, doc["dataset"]):
                raise ApiError(409, "conflict", f"import job {doc['name']!r} is still running on the "
                                                f"{doc['dataset']} dataset; wait for it to finish")

    # ---- datasets ----
    def _dataset_view(keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
        manifest = read_current(store.backend, keys, group, doc["kind"])
        view = {**doc, "current_snapshot": manifest.snapshot_id if manifest else None,
                "row_count": manifest.rows if manifest else 0}
        return Dataset.model_validate(view).model_dump(mode="json", by_alias=True)

    @app.post("/v1/dataset-groups/{group}/datasets", response_model=Dataset, status_code=201,
              tags=["datasets"], response_model_by_alias=True)
    def create_dataset(group: Name, body: Strict[DatasetCreate], t: Tenant, response: Response,
                       idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        doc = {"name": body.kind.value, "kind": body.kind.value, "dataset_group": group,
               "status": Status.ACTIVE.value,
               "schema": body.schema_.model_dump(mode="json", by_alias=True)}
        doc = _create(keys.dataset_record(group, body.kind.value), doc, idem,
                      f"{body.kind.value} dataset in group {group!r}", response,
                      parents=(_group_parent(keys, group),), request=body)
        return _dataset_view(keys, group, doc)

    @app.get("/v1/dataset-groups/{group}/datasets", tags=["datasets"])
    def list_datasets(group: Name, t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        docs = [registry.read(keys.dataset_record(group, k.value)) for k in DatasetKind
                if store.backend.exists(keys.dataset_record(group, k.value))]
        return {"items": [_dataset_view(keys, group, d) for d in docs], "next_token": None}

    def _dataset(keys: Keys, group: str, kind: DatasetKind) -> dict[str, Any]:
        _group(keys, group)
        return _live(keys.dataset_record(group, kind.value), f"{kind.value} dataset in group {group!r}")

    @app.get("/v1/dataset-groups/{group}/datasets/{kind}", response_model=Dataset,
             tags=["datasets"], response_model_by_alias=True)
    def get_dataset(group: Name, kind: DatasetKind, t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        return _dataset_view(keys, group, _dataset(keys, group, kind))

    @app.delete("/v1/dataset-groups/{group}/datasets/{kind}", status_code=204, tags=["datasets"])
    def delete_dataset(group: Name, kind: DatasetKind, t: Tenant) -> Response:
        keys = Keys(t)
        _group(keys, group)
        _existing(keys.dataset_record(group, kind.value), f"{kind.value} dataset in group {group!r}")
        _refuse_if_importing(keys, group, kind.value)
        _mark_deleting(keys.dataset_record(group, kind.value))
        if kind == DatasetKind.INTERACTIONS:  # its event log goes with it
            ops.close_event_log(t, group)
            store.backend.delete_prefix(keys.events(group))
        store.backend.delete(keys.dataset_record(group, kind.value))
        store.backend.delete_prefix(keys.dataset(group, kind.value))
        return Response(status_code=204)

    # ---- uploads (streamed straight to the store, never held in memory) ----
    @app.post("/v1/uploads", status_code=201, tags=["datasets"], openapi_extra=_UPLOAD_OPENAPI)
    async def upload(request: Request, t: Tenant,
                     x_filename: Annotated[str | None, Header(max_length=255)] = None) -> dict[str, Any]:
        keys = Keys(t)
        await run_in_threadpool(_sweep_uploads, keys)
        upload_id = uuid.uuid4().hex
        prefix = keys.upload(upload_id)
        size = 0
        out = await run_in_threadpool(store.backend.open_output, f"{prefix}/data")
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_upload_bytes:
                    raise ApiError(413, "payload_too_large",
                                   f"upload exceeds the limit of {max_upload_bytes} bytes")
                await run_in_threadpool(out.write, chunk)  # store I/O must not block the loop
            if size == 0:
                raise ApiError(400, "invalid_input", "the upload is empty: send the file's bytes as the "
                                                     "request body")
            await run_in_threadpool(out.close)
        except BaseException:
            try:
                await run_in_threadpool(out.close)
            finally:
                await run_in_threadpool(store.backend.delete_prefix, prefix)
            raise
        filename = (x_filename or "upload").replace("/", "_")[:255]
        await run_in_threadpool(registry.create, f"{prefix}/upload.json",
                                {"upload_id": upload_id, "size": size, "filename": filename,
                                 "created_at": now_iso()})
        return {"upload_id": upload_id, "size": size}

    def _sweep_uploads(keys: Keys) -> None:
        """Uploads are staging for imports: each lives `upload_ttl_s`, then goes."""
        _, folders = store.backend.children(f"{keys.root}/uploads")
        cutoff = datetime.now(UTC).timestamp() - upload_ttl_s
        for folder in folders:
            try:
                created = datetime.fromisoformat(registry.read(f"{folder}/upload.json")["created_at"])
            except NotFound:
                continue  # being written right now
            if created.timestamp() < cutoff:
                store.backend.delete_prefix(folder)

    # ---- dataset import jobs ----
    @app.post("/v1/dataset-groups/{group}/import-jobs", response_model=DatasetImportJob,
              status_code=201, tags=["datasets"])
    def create_import_job(group: Name, body: Strict[DatasetImportJobCreate], t: Tenant,
                          response: Response,
                          idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        _dataset(keys, group, body.dataset)
        source = body.source.model_dump(mode="json", exclude_none=True)
        source_name = body.source.uri
        if body.source.upload_id:
            try:
                meta = registry.read(f"{keys.upload(body.source.upload_id)}/upload.json")
            except NotFound:
                raise ApiError(404, "not_found", f"upload {body.source.upload_id!r} not found",
                               "source.upload_id") from None
            source_name = meta["filename"]
        elif _inside_store(store, body.source.uri or ""):
            raise ApiError(400, "invalid_input", "source.uri points inside the platform's own "
                                                 "store; give a bucket of yours", "source.uri")
        doc = {"name": body.name, "dataset_group": group, "dataset": body.dataset.value,
               "mode": body.mode.value, "source": source, "source_name": source_name,
               "status": Status.CREATE_PENDING.value,
               "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None}}
        doc = _create(keys.import_job(group, body.name), doc, idem,
                      f"import job {body.name!r}", response,
                      parents=(_group_parent(keys, group),
                               (keys.dataset_record(group, body.dataset.value),
                                f"{body.dataset.value} dataset in group {group!r}")), request=body)
        if response.status_code == 201:
            try:
                submit_import(t, group, body.name)
            except Exception as e:  # the job cannot start: say so on the job
                log.exception("could not submit import job")
                reason = f"could not start the job: {type(e).__name__}: {e}"
                doc = registry.update(keys.import_job(group, body.name), lambda d: {
                    **d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                    "failure_reason": reason})
        return doc

    @app.get("/v1/dataset-groups/{group}/import-jobs", tags=["datasets"])
    def list_import_jobs(group: Name, t: Tenant,
                         max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                         next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        page = _page(registry.list(keys.import_jobs(group), ".json"), max_results, next_token)
        page["items"] = [DatasetImportJob.model_validate(_reap(keys, group, d)).model_dump(
            mode="json") for d in page["items"]]
        return page

    @app.get("/v1/dataset-groups/{group}/import-jobs/{job}", response_model=DatasetImportJob,
             tags=["datasets"])
    def get_import_job(group: Name, job: Name, t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        try:
            return _reap(keys, group, registry.read(keys.import_job(group, job)))
        except NotFound:
            raise _not_found(f"import job {job!r}") from None

    def _reap(keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Report a dead job as failed: a running job writes progress every second, and a
        pending one is known to the runner until it starts (tasks die with their submitter)."""
        age = (datetime.now(UTC) - datetime.fromisoformat(doc["updated_at"])).total_seconds()
        if doc["status"] == Status.CREATE_IN_PROGRESS.value and age >= stale_after_s:
            reason = (f"the job stopped reporting progress for {int(age)} s (its process died); "
                      f"the dataset's previous snapshot is unchanged")
        elif doc["status"] == Status.CREATE_PENDING.value and age >= _SUBMIT_GRACE_S \
                and not is_tracked(keys.import_job(group, doc["name"])):
            reason = "the job never started (the platform restarted or its worker was lost); run it again"
        else:
            return doc

        def fail(d: dict[str, Any]) -> dict[str, Any] | None:
            if d["status"] != doc["status"] or d["updated_at"] != doc["updated_at"]:
                return None
            return {**d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                    "failure_reason": reason}

        return registry.update(keys.import_job(group, doc["name"]), fail)

    # ---- recipes ----
    def _recipe_info(recipe_id: str) -> dict[str, Any]:
        spec = get_recipe(recipe_id)
        return RecipeInfo(
            id=spec.id, task=spec.task, paper=spec.paper, description=spec.description,
            required_datasets={k.value: [r.value for r in roles] for k, roles in spec.required.items()},
            optional_datasets={k.value: [r.value for r in roles] for k, roles in spec.optional.items()},
            hyperparameters=spec.config_cls.model_json_schema(),
            defaults=spec.config_cls().model_dump(mode="json"),
        ).model_dump(mode="json")

    @app.get("/v1/recipes", tags=["recipes"])
    def list_recipes(t: Tenant) -> dict[str, Any]:
        return {"items": [_recipe_info(r) for r in RECIPE_IDS], "next_token": None}

    @app.get("/v1/recipes/{recipe}", response_model=RecipeInfo, tags=["recipes"])
    def get_recipe_info(recipe: Annotated[str, Path(max_length=63)], t: Tenant) -> dict[str, Any]:
        if recipe not in RECIPE_IDS:
            raise ApiError(404, "not_found", f"recipe {recipe!r} not found; recipes: "
                                             f"{', '.join(RECIPE_IDS)}")
        return _recipe_info(recipe)

    # ---- solutions ----
    def _solution(keys: Keys, group: str, solution: str) -> dict[str, Any]:
        _group(keys, group)
        return _live(keys.solution_record(group, solution), f"solution {solution!r}")

    @app.post("/v1/dataset-groups/{group}/solutions", response_model=Solution, status_code=201,
              tags=["solutions"])
    def create_solution(group: Name, body: Strict[SolutionCreate], t: Tenant, response: Response,
                        idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        if body.recipe not in RECIPE_IDS:
            raise ApiError(400, "invalid_input", f"recipe: unknown recipe {body.recipe!r}; recipes: "
                                                 f"{', '.join(RECIPE_IDS)}", "recipe")
        try:
            config = get_recipe(body.recipe).config_cls.model_validate(body.hyperparameters)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(["hyperparameters", *(str(p) for p in first.get("loc", ()))])
            given = first.get("input")
            shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r:.80})"
            raise ApiError(400, "invalid_input", f"{field}: {first.get('msg')}{shown}", field) from None
        spec = get_recipe(body.recipe)
        evaluation = body.evaluation.model_copy(update={"mode": body.evaluation.mode or spec.protocols[0]})
        if evaluation.mode not in spec.protocols:
            raise ApiError(400, "invalid_input", f"evaluation.mode: recipe {body.recipe!r} "
                           f"({spec.task.value}) is evaluated with {' or '.join(spec.protocols)}, "
                           f"not {evaluation.mode!r}",
                           "evaluation.mode")
        doc = {"name": body.name, "dataset_group": group, "recipe": body.recipe, "task": spec.task.value,
               "hyperparameters": config.model_dump(mode="json"),
               "scaling": body.scaling.model_dump(mode="json"),
               "evaluation": evaluation.model_dump(mode="json"),
               "description": body.description, "status": Status.ACTIVE.value}
        return _create(keys.solution_record(group, body.name), doc, idem,
                       f"solution {body.name!r}", response, parents=(_group_parent(keys, group),),
                       request=body)

    @app.get("/v1/dataset-groups/{group}/solutions", tags=["solutions"])
    def list_solutions(group: Name, t: Tenant,
                       max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                       next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        page = _page(registry.list(keys.solutions(group), "/solution.json"), max_results, next_token)
        page["items"] = [Solution.model_validate(d).model_dump(mode="json") for d in page["items"]]
        return page

    @app.get("/v1/dataset-groups/{group}/solutions/{solution}", response_model=Solution,
             tags=["solutions"])
    def get_solution(group: Name, solution: Name, t: Tenant) -> dict[str, Any]:
        return _solution(Keys(t), group, solution)

    @app.delete("/v1/dataset-groups/{group}/solutions/{solution}", status_code=204,
                tags=["solutions"])
    def delete_solution(group: Name, solution: Name, t: Tenant) -> Response:
        keys = Keys(t)
        _group(keys, group)
        _existing(keys.solution_record(group, solution), f"solution {solution!r}")
        _refuse_if_training(keys, group, solution)
        users = [d["name"] for d in registry.list(keys.campaigns(group), ".json")
                 if d["solution"] == solution or (d.get("pending_update") or {}).get("solution") == solution]
        if users:
            raise ApiError(409, "conflict", f"solution {solution!r} is deployed by campaign(s) "
                                            f"{', '.join(users)}: delete or update them first")
        _mark_deleting(keys.solution_record(group, solution))
        store.backend.delete_prefix(keys.versions(group, solution))
        store.backend.delete(keys.solution_record(group, solution))
        store.backend.delete_prefix(keys.solution(group, solution))
        return Response(status_code=204)

    def _refuse_if_training(keys: Keys, group: str, solution: str | None) -> None:
        """409 while a version of the solution (or of any solution of the group) trains."""
        names = [solution] if solution else [d["name"] for d in
                                             registry.list(keys.solutions(group), "/solution.json")]
        for name in names:
            for doc in registry.list(keys.versions(group, name), "/version.json"):
                doc = _reap_version(keys, group, doc)
                if doc["status"] in _VERSION_OPEN:
                    raise ApiError(409, "conflict", f"solution version {doc['name']!r} of {name!r} is "
                                                    f"still training; stop it or wait for it to end")

    # ---- solution versions ----
    def _version(keys: Keys, group: str, solution: str, version: str) -> dict[str, Any]:
        _solution(keys, group, solution)
        try:
            doc = registry.read(keys.version_record(group, solution, version))
        except NotFound:
            raise _not_found(f"solution version {version!r}") from None
        return _reap_version(keys, group, doc)

    def _version_view(doc: dict[str, Any]) -> dict[str, Any]:
        return SolutionVersion.model_validate(doc).model_dump(mode="json")

    @app.post("/v1/dataset-groups/{group}/solutions/{solution}/versions",
              response_model=SolutionVersion, status_code=201, tags=["solutions"])
    def create_version(group: Name, solution: Name, t: Tenant, response: Response,
                       body: Strict[SolutionVersionCreate | None] = None,
                       idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        sol = _solution(keys, group, solution)
        body = body or SolutionVersionCreate()
        # The same Idempotency-Key names the same version: a retried create finds it.
        name = (f"v-{hashlib.sha256(idem.encode()).hexdigest()[:16]}" if idem
                else f"v-{uuid.uuid4().hex[:16]}")
        key = keys.version_record(group, solution, name)
        if idem and store.backend.exists(key):
            replayed = _replay(registry.read(key), idem, body, f"solution version {name!r}", response)
            if replayed is not None:
                return _version_view(replayed)
        try:
            check_trainable(get_recipe(sol["recipe"]), store, keys, group)
        except VersionFailed as e:
            raise ApiError(400, "insufficient_data", str(e)) from None
        doc = {"name": name, "dataset_group": group, "solution": solution, "recipe": sol["recipe"],
               "training_mode": body.training_mode, "hyperparameters": sol["hyperparameters"],
               "scaling": sol.get("scaling") or {}, "evaluation_config": sol.get("evaluation") or {},
               "status": Status.CREATE_PENDING.value, "progress": {"phase": "queued"}}
        doc = _create(key, doc, idem, f"solution version {name!r}", response,
                      parents=(_group_parent(keys, group),
                               (keys.solution_record(group, solution), f"solution {solution!r}")),
                      request=body)
        if response.status_code == 201:
            try:
                submit_version(t, group, solution, name)
            except Exception as e:  # the job cannot start: say so on the version
                log.warning("could not submit version %s: %s", key, e)
                reason = f"could not start training: {type(e).__name__}: {e}"
                doc = registry.update(key, lambda d: {
                    **d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                    "failure_reason": reason})
        return _version_view(doc)

    @app.get("/v1/dataset-groups/{group}/solutions/{solution}/versions", tags=["solutions"])
    def list_versions(group: Name, solution: Name, t: Tenant,
                      max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                      next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
        keys = Keys(t)
        _solution(keys, group, solution)
        docs = [_reap_version(keys, group, d)
                for d in registry.list(keys.versions(group, solution), "/version.json")]
        page = _page(docs, max_results, next_token, newest_first=True)
        page["items"] = [_version_view(d) for d in page["items"]]
        return page

    @app.get("/v1/dataset-groups/{group}/solutions/{solution}/versions/{version}",
             response_model=SolutionVersion, tags=["solutions"])
    def get_version(group: Name, solution: Name, version: Name, t: Tenant) -> dict[str, Any]:
        return _version(Keys(t), group, solution, version)

    @app.post("/v1/dataset-groups/{group}/solutions/{solution}/versions/{version}/stop",
              response_model=SolutionVersion, tags=["solutions"])
    def stop_version(group: Name, solution: Name, version: Name, t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        doc = _version(keys, group, solution, version)

        def stop(d: dict[str, Any]) -> dict[str, Any] | None:
            if d["status"] not in (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value):
                return None
            return {**d, "status": Status.CREATE_STOPPING.value, "updated_at": now_iso()}

        doc = registry.update(keys.version_record(group, solution, version), stop)
        if doc["status"] not in (Status.CREATE_STOPPING.value, Status.CREATE_STOPPED.value):
            raise ApiError(409, "conflict", f"solution version {version!r} is {doc['status']}: "
                                            f"only a version in training can be stopped")
        return _version_view(doc)

    # ---- campaigns ----
    def _campaign(keys: Keys, group: str, campaign: str) -> dict[str, Any]:
        _group(keys, group)
        try:
            doc = registry.read(keys.campaign_record(group, campaign))
        except NotFound:
            raise _not_found(f"campaign {campaign!r}") from None
        return _reap_campaign(keys, group, doc)

    def _active_version(keys: Keys, group: str, solution: str, version: str) -> dict[str, Any]:
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

    def _campaign_view(doc: dict[str, Any]) -> dict[str, Any]:
        return Campaign.model_validate(doc).model_dump(mode="json")

    @app.post("/v1/dataset-groups/{group}/campaigns", response_model=Campaign, status_code=201,
              tags=["campaigns"])
    def create_campaign(group: Name, body: Strict[CampaignCreate], t: Tenant, response: Response,
                        idem: IdemKey = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        version = _active_version(keys, group, body.solution, body.solution_version)
        endpoint = f"{(ops.serve_url or '').rstrip('/')}{endpoint_path(t, group, body.name)}"
        doc = {**body.model_dump(mode="json"), "dataset_group": group, "recipe": version["recipe"],
               "task": get_recipe(version["recipe"]).task.value,
               "status": Status.CREATE_PENDING.value, "endpoint": endpoint if ops.serve_url else None,
               "pending_update": None}
        key = keys.campaign_record(group, body.name)
        doc = _create(key, doc, idem, f"campaign {body.name!r}", response,
                      parents=(_group_parent(keys, group),), request=body)
        if response.status_code == 201:
            try:
                ops.deploy_campaign(t, group, body.name)
            except Exception as e:  # cannot deploy here: say so on the campaign
                reason = f"could not deploy: {e}"
                doc = registry.update(key, lambda d: {**d, "status": Status.CREATE_FAILED.value,
                                                      "failure_reason": reason, "updated_at": now_iso()})
        return _campaign_view(doc)

    @app.get("/v1/dataset-groups/{group}/campaigns", tags=["campaigns"])
    def list_campaigns(group: Name, t: Tenant,
                       max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                       next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        docs = [_reap_campaign(keys, group, d) for d in registry.list(keys.campaigns(group), ".json")]
        page = _page(docs, max_results, next_token)
        page["items"] = [_campaign_view(d) for d in page["items"]]
        return page

    @app.get("/v1/dataset-groups/{group}/campaigns/{campaign}", response_model=Campaign,
             tags=["campaigns"])
    def get_campaign(group: Name, campaign: Name, t: Tenant) -> dict[str, Any]:
        return _campaign(Keys(t), group, campaign)

    @app.patch("/v1/dataset-groups/{group}/campaigns/{campaign}", response_model=Campaign,
               tags=["campaigns"])
    def update_campaign(group: Name, campaign: Name, body: Strict[CampaignUpdate],
                        t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        doc = _campaign(keys, group, campaign)
        change = body.model_dump(exclude_none=True)
        if not change:
            raise ApiError(400, "invalid_input", "nothing to update: give solution_version or a "
                                                 "scaling field")
        target = {**doc, **change}
        if "solution_version" in change or "solution" in change:
            version = _active_version(keys, group, target["solution"], target["solution_version"])
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
            raise ApiError(400, "invalid_input", e.errors()[0]["msg"].removeprefix("Value error, ")) from None
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
            ops.deploy_campaign(t, group, campaign)
        except Exception as e:  # cannot roll out here: the old version keeps serving
            reason = f"could not deploy: {e}"
            doc = registry.update(key, lambda d: {**d, "pending_update": None,
                                                  "last_update_failure": reason, "updated_at": now_iso()})
        return _campaign_view(doc)

    @app.delete("/v1/dataset-groups/{group}/campaigns/{campaign}", status_code=204, tags=["campaigns"])
    def delete_campaign(group: Name, campaign: Name, t: Tenant) -> Response:
        keys = Keys(t)
        _campaign(keys, group, campaign)
        _undeploy(keys, group, campaign)
        return Response(status_code=204)

    def _undeploy(keys: Keys, group: str, campaign: str) -> None:
        key = keys.campaign_record(group, campaign)
        registry.update(key, lambda d: {**d, "status": Status.DELETE_IN_PROGRESS.value,
                                        "updated_at": now_iso()})
        try:
            ops.delete_campaign(keys.tenant, group, campaign)
        except RuntimeError:
            pass  # never deployed: this control plane has no Serve
        store.backend.delete(key)

    def _reap_campaign(keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A campaign deploying with no deployment in flight (the platform restarted) failed."""
        key = keys.campaign_record(group, doc["name"])
        age = (datetime.now(UTC) - datetime.fromisoformat(doc["updated_at"])).total_seconds()
        if doc["status"] not in _RUNNING or age < _SUBMIT_GRACE_S or is_tracked(key):
            return doc

        def fail(d: dict[str, Any]) -> dict[str, Any] | None:
            if d["updated_at"] != doc["updated_at"]:
                return None
            return {**d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(),
                    "failure_reason": "the deployment stopped (the platform restarted); create it again"}

        return registry.update(key, fail)

    # ---- real-time events ----
    @app.post("/v1/dataset-groups/{group}/events", response_model=PutEventsResponse, tags=["events"])
    def put_events(group: Name, body: Strict[PutEventsRequest], t: Tenant) -> dict[str, Any]:
        keys = Keys(t)
        _group(keys, group)
        events = [e.model_dump(mode="json") for e in body.events]
        try:
            return ops.event_log(t, group).put(body.user_id, body.session_id, events)
        except EventsRefused as e:
            field = str(e).split(":", 1)[0] if str(e).startswith("events.") else None
            raise ApiError(400, "invalid_input", str(e), field) from None

    def _reap_version(keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
        """End a dead version: a training job beats every few seconds; a pending or stopping
        one nobody runs never will."""
        age = (datetime.now(UTC) - datetime.fromisoformat(doc["updated_at"])).total_seconds()
        status = doc["status"]
        if status not in _VERSION_OPEN:
            return doc
        key = keys.version_record(group, doc["solution"], doc["name"])
        held = is_tracked(key)
        if status == Status.CREATE_STOPPING.value and (age >= stale_after_s or
                                                       (age >= _SUBMIT_GRACE_S and not held)):
            new_status, reason = Status.CREATE_STOPPED.value, None
        elif status == Status.CREATE_IN_PROGRESS.value and age >= stale_after_s:
            new_status = Status.CREATE_FAILED.value
            reason = f"the training job stopped reporting for {int(age)} s (its process died)"
        elif status == Status.CREATE_PENDING.value and age >= _SUBMIT_GRACE_S and not held:
            new_status = Status.CREATE_FAILED.value
            reason = "the job never started (the platform restarted or its worker was lost); run it again"
        else:
            return doc

        def end(d: dict[str, Any]) -> dict[str, Any] | None:
            if d["status"] != doc["status"] or d["updated_at"] != doc["updated_at"]:
                return None
            return {**d, "status": new_status, "updated_at": now_iso(), "failure_reason": reason}

        return registry.update(key, end)

    return app


class _JsonBodyLimit:
    """Refuse bodies over `limit` bytes with 413, counting what arrives (chunked bodies too).

    Bodies of the routes this guards are small JSON documents, so the (bounded) body is read
    here and replayed to the app; `exempt` paths (streamed uploads) pass through untouched.
    """

    def __init__(self, app: Any, limit: int, exempt: tuple[str, ...]) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; let the app see it
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                response = _error(413, "payload_too_large",
                                  f"request body exceeds {self.limit} bytes")
                await response(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_RUNNING = {Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value}
_VERSION_OPEN = {*_RUNNING, Status.CREATE_STOPPING.value}


# ---- the API's description: /docs and /redoc from local files, /openapi.json as the API is ----
_DOCS_ASSETS = FilePath(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 and ReDoc files
_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "description": "The file's bytes (CSV or Parquet), streamed.",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                                        "minLength": 1}}}},
    "responses": {"201": {"description": "Stored; import it with `source.upload_id` within 24 h.",
                          "content": {"application/json": {"schema": {
                              "type": "object", "required": ["upload_id", "size"],
                              "properties": {"upload_id": {"type": "string", "pattern": "^[a-f0-9]{32}$"},
                                             "size": {"type": "integer", "minimum": 0}}}}}}},
}
_ERRORS = {
    "400": "Invalid input: `invalid_input` (`field` names the parameter or body field), `invalid_json` "
           "or `insufficient_data`.",
    "401": "`unauthenticated`: no API key, a malformed Authorization header or an unknown key.",
    "404": "`not_found`: no such resource (another tenant's resources answer the same).",
    "409": "`conflict`: the name exists, or the resource's state or children forbid the change; "
           "`idempotency_key_reused`: the Idempotency-Key was sent before with another body.",
    "413": "`payload_too_large`: the body is over the limit.",
}
# Operations without an Idempotency-Key that can still answer 409 (creates all can).
_CONFLICTS = {"delete_group", "delete_dataset", "delete_solution", "stop_version", "update_campaign"}
_SECURITY = [{"bearer": []}, {"apiKey": []}]


def _add_docs(app: FastAPI, serve_url: str | None) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from the package's files (no CDN), and an
    OpenAPI document that describes the real API (errors, uploads, campaign endpoints)."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js", swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}/docs/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/docs/favicon.png", with_google_fonts=False)

    app.mount("/docs", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(FastAPI.openapi(app), serve_url)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class ErrorResponse(BaseModel):
    """Every error answer: `{"error": {"type", "message", "field"}}`."""

    error: ErrorBody


def _describe(spec: dict[str, Any], serve_url: str | None) -> dict[str, Any]:
    """FastAPI's document, made true: the `{"error": ...}` answers each operation can give
    instead of an unused 422, and the campaign endpoints, which Ray Serve answers."""
    schemas = spec["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _, defs = models_json_schema([(ErrorResponse, "serialization"), (RecommendRequest, "validation"),
                                  (RankRequest, "validation"), (RecommendResponse, "serialization")],
                                 ref_template="#/components/schemas/{model}")
    schemas.update(defs["$defs"])
    schemas["SolutionCreate"]["properties"]["recipe"]["enum"] = list(RECIPE_IDS)
    for item in spec["paths"].values():
        for op in item.values():
            responses = op["responses"]
            responses.pop("422", None)
            params = op.get("parameters", [])
            create = any(p["name"] == "Idempotency-Key" for p in params)
            if create:
                responses["200"] = {**responses["201"], "description": "A retry (the same Idempotency-Key "
                                                                       "and body): what the first created."}
            codes = {"400": bool(params) or "requestBody" in op, "401": "security" in op,
                     "404": any(p["in"] == "path" for p in params),
                     "409": create or op["operationId"] in _CONFLICTS, "413": "requestBody" in op}
            responses.update({c: _error_response(_ERRORS[c]) for c, on in codes.items() if on})
    spec["paths"].update(_campaign_paths(serve_url))
    return spec


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _campaign_paths(serve_url: str | None) -> dict[str, Any]:
    """POST <campaign endpoint>/recommend and /rank: served by each campaign's Ray Serve app."""
    server: dict[str, Any] = {"url": "{serve_url}", "description": "Ray Serve, where campaigns answer",
                              "variables": {"serve_url": {"default": "http://127.0.0.1:8000"}}}
    if serve_url:
        server = {"url": serve_url.rstrip("/"), "description": "Ray Serve, where campaigns answer"}
    where = ("Served by the campaign's endpoint (Ray Serve), not by the control plane: send it to the "
             "campaign's `endpoint` URL followed by `/{op}`, with the same API key.")
    paths = {}
    for op, request, summary in (("recommend", RecommendRequest, "Recommend items for a user"),
                                 ("rank", RankRequest, "Rank the given items for a user")):
        paths[f"/campaigns/{{endpoint_id}}/{op}"] = {"servers": [server], "post": {
            "tags": ["campaign endpoints"], "operationId": op, "summary": summary,
            "description": where.format(op=op), "security": _SECURITY,
            "parameters": [{"name": "endpoint_id", "in": "path", "required": True,
                            "description": "The last segment of the campaign's `endpoint` URL.",
                            "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{request.__name__}"}}}},
            "responses": {
                "200": {"description": "The items, best first.", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RecommendResponse"}}}},
                **{c: _error_response(_ERRORS[c]) for c in ("400", "401", "404", "413")},
                "429": {"description": "Over capacity (more than the campaign's max_queued_requests "
                                       "waiting): retry after Retry-After seconds. Ray Serve's "
                                       "plain-text body.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "503": {"description": "The campaign has no running replica (Ray Serve's plain-text body).",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
            }}}
    return paths


def _fingerprint(request: BaseModel) -> str:
    """The hash of a request body in canonical form (validated, defaults filled in, keys sorted):
    what an Idempotency-Key is bound to."""
    canonical = json.dumps(request.model_dump(mode="json", by_alias=True), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _inside_store(store: Store, uri: str) -> bool:
    """Whether an s3:// URI names the platform's own bucket (other tenants' data live there)."""
    own = urlparse(store.config.uri)
    return own.scheme == "s3" and urlparse(uri).netloc == own.netloc

