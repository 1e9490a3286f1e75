"""The control plane: the platform's authenticated HTTP API (FastAPI).

Every request under /v1 is authenticated to exactly one tenant by its API key; the tenant is
never read from the request. Resource keys are built from the tenant and validated names only
(store.Keys), so one tenant's request cannot name another tenant's resource: it gets a 404.

`create_app` wires the routers of `serving.api` (one per resource) to the control plane's state
(a `Context` on `app.state`), and adds what is the app's own: the error handlers (every failure is
a typed JSON body), the JSON body limit and the API's description (`serving.api.docs`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from sdk.types.common import describe_problem
from store import NotFound, Store

from .api import ROUTERS
from .api.common import ApiError, BatchSubmitter, Context, JobSubmitter, JobTracker, VersionSubmitter
from .api.docs import add_docs
from .deployments import Deployments
from .event_logs import EventLogs

__all__ = ["create_app", "ApiError", "JobSubmitter", "JobTracker", "VersionSubmitter"]

log = logging.getLogger("tagrec.control_plane")

MAX_JSON_BYTES = 1 << 20
DEFAULT_MAX_UPLOAD_BYTES = 50 << 30
UPLOAD_TTL_S = 24 * 3600.0
STALE_JOB_S = 120.0  # an import job silent this long is dead (it writes progress every second)


def _error(status: int, type_: str, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message, "field": field}},
                        status_code=status, headers=headers)


def _no_training(tenant: str, group: str, solution: str, version: str) -> None:
    raise RuntimeError("this control plane has no training runner")


def _no_batch(tenant: str, group: str, job: str) -> None:
    raise RuntimeError("this control plane has no batch inference runner")


def create_app(store: Store, submit_import: JobSubmitter, *,
               submit_version: VersionSubmitter = _no_training,
               submit_batch_inference: BatchSubmitter = _no_batch,
               is_tracked: JobTracker = lambda key: True,
               deployments: Deployments | None = None,
               event_logs: EventLogs | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               upload_ttl_s: float = UPLOAD_TTL_S,
               stale_after_s: float = STALE_JOB_S) -> FastAPI:
    """The control plane app over `store`.

    Args:
        store: Where records and data live.
        submit_import: Starts an import job (e.g. as a Ray task).
        submit_version: Starts a solution version's training job.
        submit_batch_inference: Starts a batch inference job.
        is_tracked: Whether the job (or campaign rollout) of a record key is still held; a
            pending one nobody holds will never run and is reported as failed.
        deployments: Where campaigns are deployed (default: nowhere; a campaign fails to deploy).
        event_logs: The groups' event logs (default: in this process).
        max_upload_bytes: Largest upload accepted.
        upload_ttl_s: How long an upload stays importable (swept on the tenant's next upload).
        stale_after_s: An in-progress job silent this long is reported as failed.
    """
    # The routers' routes, in order, as the app's own: `include_router` would put one opaque node
    # per router in `app.routes` (FastAPI >= 0.137), and the 405 handler below reads the routes.
    app = FastAPI(title="tagrec control plane", version="0.1.0", redirect_slashes=False,
                  description="Datasets, recipes, training, campaigns and batch inference, per tenant.",
                  docs_url=None, redoc_url=None, routes=[r for router in ROUTERS for r in router.routes])
    deployments = deployments or Deployments(store)
    app.state.context = Context(store, submit_import, submit_version, is_tracked, deployments,
                                event_logs or EventLogs(store), max_upload_bytes=max_upload_bytes,
                                upload_ttl_s=upload_ttl_s, stale_after_s=stale_after_s,
                                submit_batch_inference=submit_batch_inference)
    add_docs(app, deployments.serve_url)

    # ---- errors: every failure is a typed JSON body, never an HTML page or a bare 500 ----
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.type, e.message, e.field, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(400, "invalid_json", f"request body is not valid JSON: {first.get('msg')}")
        field, message = describe_problem(first)
        return _error(400, "invalid_input", message, field)

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
