"""Campaigns on Ray Serve: one application per campaign, one generic deployment per application.

The deployment (`CampaignServer`) is its own ingress: a plain ASGI request handler, no FastAPI
and no second deployment in the path (client → Serve proxy → replica). A replica:

- copies the solution version's artifact out of the store and loads the recipe's predictor;
- loads each user's latest interactions from the dataset's current snapshot (the history the
  model reads at request time); the predictor answers an unknown user with its fallback;
- authenticates every request by its API key (cached) and answers 404 to any other tenant;
- validates the body with the contract's models (`sdk.types.RecommendRequest`, `RankRequest`):
  a bad request is a 4xx naming the field, never a 5xx;
- merges the user's real-time events (the group's `serving.events.EventLog` actor) into the
  history, so the next answer reflects them (HRNN-meta re-runs its GRU over them);
- scores concurrent requests together (`serve.batch`): one GRU pass per batch.

Endpoint answers (no oracle: nothing tells a caller without a valid key whether a campaign exists):

- without a valid API key (none, malformed, unknown) every path answers the same 401, byte for
  byte: an existing campaign's routes, its `healthz`, any other path under its prefix, a missing
  campaign, and any path the catch-all app (`NotFoundApp`, at "/") receives. `healthz` too: it
  is a 401 without the key, and shows the version only to the campaign's tenant;
- with another tenant's key: the 404 of a campaign that does not exist (`NOT_FOUND`);
- with the campaign's tenant's key: exactly `POST <prefix>/<verb>` for the verbs of the
  campaign's task (`sdk.tasks`: recommend and rank for next-item, recommend-tags, generate-tags,
  next-tags) and `GET <prefix>/healthz` are served, matched on the raw request path (a query
  string is fine); another task's verb is a 400 `wrong_task` naming the tasks that answer it;
  anything else (`%2e%2e`, `//`, a trailing slash or segment) is a 404.

The replica has no per-recipe branch: it gathers the history the task names (the user's or the
session's events from the snapshot, merged with real-time events), turns the request into the
predictor's `Query`, calls `predict_batch` (the entry point offline evaluation calls too), and
returns the verb's response model.

Key lookups are cached per replica (`_AUTH_CACHE_S`, unknown keys too) and a miss reads the store
on a worker thread, never on the replica's event loop; concurrent misses of one key share one read.

Overload: `max_ongoing_requests` per replica and `max_queued_requests` beyond which Serve answers
429 at once instead of queueing without bound. Updates start the new replicas before stopping
the old ones (`max_surge_percent=100`), so a version switch drops no request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import ValidationError
from ray import serve

from recipes import get_recipe
from recipes.base import ARTIFACT_FILES, Answer
from recipes.queries import Histories, history_length
from recipes.queries import history_key as _history_key
from recipes.queries import request_query as _query
from sdk.tasks import HistoryKey, get_task, task_serving
from sdk.types import VERB_REQUESTS, DatasetKind, Role, Schema
from sdk.types.common import describe_problem
from store import Keys, NotFound, Store, StoreConfig
from store.snapshots import open_snapshot, read_current
from store.tenants import resolve_api_key

from .endpoints import app_name, endpoint_path

__all__ = ["CampaignServer", "NotFoundApp", "deploy", "undeploy", "ensure_serve", "MAX_BODY_BYTES"]

log = logging.getLogger("tagrec.campaigns")

MAX_BODY_BYTES = 64 << 10
_AUTH_CACHE_S = 30.0
NOT_FOUND = json.dumps({"error": {"type": "not_found", "message": "campaign not found",
                                  "field": None}}).encode()
UNAUTHENTICATED = json.dumps({"error": {"type": "unauthenticated", "field": None, "message":
                                        "missing or invalid API key: send 'Authorization: Bearer <api key>'"}}
                             ).encode()
# Every runtime verb of every task is a POST route; a campaign answers its task's verbs and
# refuses the others with a 400 naming the tasks that serve them.
_ROUTES = {**{verb: "POST" for verb in VERB_REQUESTS}, "healthz": "GET"}
# One Serve API call at a time in this process: Serve's configs pickle their router classes with
# process-wide cloudpickle registrations (register, dumps, unregister) whenever they are built,
# and two threads doing so at once broke a deployment ("... is not registered for pickle by
# value"). Replica start-ups are awaited outside it, by polling. Lock order: _catch_all_lock first.
_SUBMIT = threading.RLock()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, type_: str, message: str, field: str | None = None) -> Any:
    return _json(status, {"error": {"type": type_, "message": message, "field": field}})


def _unauthenticated() -> Any:
    """The one 401 of every campaign path and of the catch-all app."""
    return _json(401, UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})


class _KeyCache:
    """API key → tenant (None: unknown or malformed), cached `_AUTH_CACHE_S`. A miss reads the
    store on a worker thread; concurrent misses of one key share that read."""

    def __init__(self, store: Store | None) -> None:
        self.registry = store.registry if store else None  # None: no key is valid
        self._hits: dict[str, tuple[str | None, float]] = {}
        self._pending: dict[str, asyncio.Task[str | None]] = {}

    async def tenant(self, headers: Any) -> str | None:
        key = headers.get("x-api-key")
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, value = authorization.partition(" ")
            key = value.strip() if scheme.lower() == "bearer" else None
        if not key or self.registry is None:
            return None
        hit = self._hits.get(key)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.create_task(self._lookup(key))
        return await asyncio.shield(task)  # a cancelled request does not cancel the others' read

    async def _lookup(self, key: str) -> str | None:
        try:
            tenant = await asyncio.to_thread(resolve_api_key, self.registry, key)
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[key] = (tenant, time.monotonic() + _AUTH_CACHE_S)
            return tenant
        finally:
            self._pending.pop(key, None)


def _route(scope: dict[str, Any], prefix: str) -> str | None:
    """The route the raw request path names exactly (`<prefix>/<route>`), else None."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "")
    head, sep, route = path.rpartition("/")
    return route if sep and head == prefix and route in _ROUTES else None


class CampaignServer:
    """One replica of a campaign (wrapped by `serve.deployment` in `deploy`)."""

    def __init__(self, store_config: dict[str, Any], tenant: str, group: str, campaign: str,
                 solution: str, version: str) -> None:
        import torch

        torch.set_num_threads(1)
        self.store = Store(StoreConfig(**store_config))
        self.tenant, self.group, self.campaign, self.version = tenant, group, campaign, version
        keys = Keys(tenant)
        prefix = f"{keys.version(group, solution, version)}/model"
        self._dir = Path(tempfile.mkdtemp(prefix="tagrec-campaign-"))
        pafs.copy_files(self.store.backend.path(prefix), str(self._dir / "model"),
                        source_filesystem=self.store.backend.filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        meta = json.loads((self._dir / "model" / ARTIFACT_FILES["recipe"]).read_text())
        spec = get_recipe(meta["recipe"])
        self.task = get_task(spec.task)
        self.predictor = spec.predictor_cls.load(self._dir / "model")
        keep = history_length(self.predictor)
        self.histories, self.snapshot = self._load_histories(keys, group, keep)
        added = self._update_catalog(keys, group)
        self._keys = _KeyCache(self.store)
        self._prefix = endpoint_path(tenant, group, campaign)
        self._events: Any = None
        self._events_checked = 0.0
        log.info("campaign %s/%s/%s (%s) serving %s (%d histories, %d catalog entries added since "
                 "training)", tenant, group, campaign, self.task.id.value, version,
                 len(self.histories.index) if self.histories else 0, added)

    def _load_histories(self, keys: Keys, group: str, keep: int) -> tuple[Histories | None, str | None]:
        """The latest events per history key the task reads (user or session), if any."""
        role = {HistoryKey.USER: Role.USER_ID, HistoryKey.SESSION: Role.SESSION_ID}.get(self.task.history)
        if role is None:
            return None, None
        try:
            doc = self.store.registry.read(keys.dataset_record(group, "interactions"))
        except NotFound:
            return None, None
        schema = Schema.model_validate(doc["schema"])
        manifest = read_current(self.store.backend, keys, group, "interactions")
        table = open_snapshot(self.store.backend, manifest).to_table() if manifest else \
            pa.table({f.name: pa.array([], pa.string()) for f in schema.fields})
        return Histories(table, schema, keep, role), manifest.snapshot_id if manifest else None

    def _update_catalog(self, keys: Keys, group: str) -> int:
        """Let the predictor learn the catalog's new entries (e.g. items added since training)."""
        tables, schemas = {}, {}
        for kind in (DatasetKind.ITEMS, DatasetKind.USERS):
            manifest = read_current(self.store.backend, keys, group, kind.value)
            if manifest is None:
                continue
            schemas[kind] = Schema.model_validate(
                self.store.registry.read(keys.dataset_record(group, kind.value))["schema"])
            tables[kind] = open_snapshot(self.store.backend, manifest).to_table()
        return self.predictor.update_catalog(tables, schemas) if tables else 0

    # --- request handling --------------------------------------------------------------------
    async def __call__(self, request: Any) -> Any:
        tenant = await self._keys.tenant(request.headers)
        if tenant is None:
            return _unauthenticated()
        if tenant != self.tenant:
            return _json(404, NOT_FOUND)  # the same answer as a campaign that does not exist
        path = _route(request.scope, self._prefix)
        if path is None or request.method != _ROUTES[path]:
            verbs = ", ".join(f"POST .../{v}" for v in self.task.verbs)
            return _error(404, "not_found", f"no such route: {verbs} or GET .../healthz")
        if path == "healthz":
            return _json(200, {"status": "ok", "solution_version": self.version,
                               "task": self.task.id.value})
        if path not in self.task.verbs:
            serving = " or ".join(t.id.value for t in task_serving(path))
            verbs = ", ".join(self.task.verbs)
            return _error(400, "wrong_task", f"this campaign answers {self.task.id.value} requests "
                          f"({verbs}); {path} is answered by {serving} campaigns", field="path")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _error(413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        model = VERB_REQUESTS[path]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:  # JSON is UTF-8 (RFC 8259 §8.1): say where it is not
            return _error(400, "invalid_json", f"request body is not UTF-8: byte 0x{body[e.start]:02x} at "
                          f"position {e.start} ({e.reason})")
        try:
            req = model.model_validate_json(body, strict=True)  # `true` or "5" is no integer
        except ValidationError as e:
            return _validation_error(e)
        result = await self._answer(path, req)
        return _json(200, result)

    async def _answer(self, kind: str, req: Any) -> dict[str, Any]:
        return await self._batched((kind, req))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, inputs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        by = self.task.history.value
        keys = [k for _, req in inputs if (k := _history_key(req)) is not None]
        recent = await self._recent(keys, by) if keys and self.histories is not None else {}
        return self._score_batch(inputs, recent)

    async def _recent(self, keys: list[str], by: str) -> dict[str, list[tuple[Any, ...]]]:
        """Real-time events of these users or sessions from the group's event log (if any)."""
        import asyncio

        import ray

        if self._events is None and time.monotonic() - self._events_checked > 0.5:
            self._events_checked = time.monotonic()
            try:
                self._events = ray.get_actor(f"events:{self.tenant}:{self.group}", namespace="tagrec")
            except ValueError:
                return {}
        if self._events is None:
            return {}
        try:
            return await asyncio.wait_for(self._events.recent.remote(keys, by), timeout=2.0)
        except Exception:  # the log restarting: answer from the snapshot history
            log.warning("could not read recent events", exc_info=True)
            self._events = None
            return {}

    def _history(self, key: str | None, recent: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        if key is None or self.histories is None:
            return []
        history = self.histories.get(key)
        extra = recent.get(key)
        if extra:
            # An event already flushed into the snapshot is the same (item, time, tags): two tag
            # clicks in one second differ by their tags.
            seen = {_event_key(e) for e in history}
            history = sorted(history + [e for e in extra if _event_key(e) not in seen],
                             key=lambda e: e[1])
        return history

    def _score_batch(self, inputs: list[tuple[str, Any]],
                     recent: dict[str, list[tuple[Any, ...]]]) -> list[dict[str, Any]]:
        now = time.time()
        queries = [_query(kind, req, self._history(_history_key(req), recent), now) for kind, req in inputs]
        return [_response(kind, req, answer, self.version)
                for (kind, req), answer in zip(inputs, self.predictor.predict_batch(queries))]

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


def _event_key(e: tuple[Any, ...]) -> tuple[Any, ...]:
    tags = e[4] if len(e) > 4 else None
    return (e[0], round(float(e[1]), 3), tuple(tags) if tags else None)


def _response(verb: str, req: Any, answer: Answer, version: str) -> dict[str, Any]:
    """The predictor's answer as the verb's response model (`sdk.types.VERB_RESPONSES`)."""
    if verb in ("recommend", "rank"):
        items = [{"item_id": i, "score": s} for i, s in answer.ranked]
        if verb == "rank":  # items the model does not know go last, in the given order
            ranked = set(answer.ids)
            items += [{"item_id": it, "score": None} for it in dict.fromkeys(req.items) if it not in ranked]
        return {"items": items, "solution_version": version, "fallback": answer.fallback}
    questions = [{"item_id": i, "score": s} for i, s in answer.extra.get("questions", ())]
    return {"tags": [{"tag": t, "score": s} for t, s in answer.ranked], "questions": questions,
            "solution_version": version, "fallback": answer.fallback}


def _validation_error(e: ValidationError) -> Any:
    first = e.errors()[0]
    if first.get("type") == "json_invalid":
        return _error(400, "invalid_json", f"request body is not valid JSON: {first.get('msg')}")
    field, message = describe_problem(first)
    return _error(400, "invalid_input", message, field)


class NotFoundApp:
    """Answers every path no campaign owns (a missing or deleted campaign, any other path): the
    campaign 401 without a valid API key, else the campaign 404."""

    def __init__(self, store_config: dict[str, Any] | None = None) -> None:
        self._keys = _KeyCache(Store(StoreConfig(**store_config)) if store_config else None)

    async def __call__(self, request: Any) -> Any:
        if await self._keys.tenant(request.headers) is None:
            return _unauthenticated()
        return _json(404, NOT_FOUND)


_CATCH_ALL = "tagrec-not-found"
_catch_all_lock = threading.Lock()
_catch_all_store: dict[str, Any] | None = None  # the store config this process deployed it with


def _run_catch_all(store_config: dict[str, Any] | None) -> None:
    with _SUBMIT:
        serve.run(serve.deployment(NotFoundApp, name="not-found", num_replicas=1, max_surge_percent=100,
                                   ray_actor_options={"num_cpus": 0}).bind(store_config),
                  name=_CATCH_ALL, route_prefix="/")


def ensure_serve(host: str = "127.0.0.1", port: int = 8000,
                 store_config: dict[str, Any] | None = None) -> None:
    """Start Serve's HTTP proxy (idempotent) and the catch-all app at "/" (it checks keys against
    `store_config`; without one it answers 401 to everything until the first `deploy`)."""
    global _catch_all_store
    with _SUBMIT:
        serve.start(http_options={"host": host, "port": port})
    with _catch_all_lock:
        with _SUBMIT:
            running = _CATCH_ALL in serve.status().applications
        if not running:
            _run_catch_all(store_config)
            _catch_all_store = store_config


def _ensure_catch_all(store_config: dict[str, Any]) -> None:
    """(Re)deploy the catch-all with the store's keys, once per process and store."""
    global _catch_all_store
    with _catch_all_lock:
        if _catch_all_store != store_config:
            _run_catch_all(store_config)
            _catch_all_store = store_config


def deploy(store_config: dict[str, Any], tenant: str, group: str, campaign: dict[str, Any], *,
           replica_cpus: float = 0.25, timeout_s: float = 600.0) -> None:
    """Deploy or update a campaign's application; returns once the new replicas are healthy
    (raises if they cannot start). Safe to call from several threads at once: submissions are
    serialized (Serve registers modules for pickling process-wide while it serializes an app,
    and two threads doing so at once broke a deployment: "... is not registered for pickle by
    value"); the waits for replicas run in parallel."""
    _ensure_catch_all(store_config)
    with _SUBMIT:  # every Serve call of this process: see _SUBMIT
        _submit(store_config, tenant, group, campaign, replica_cpus)
    _wait_running(app_name(tenant, group, campaign["name"]), timeout_s)


def _submit(store_config: dict[str, Any], tenant: str, group: str, campaign: dict[str, Any],
            replica_cpus: float) -> None:
    from ray.serve.config import BackpressureConfig

    options: dict[str, Any] = {
        "name": "CampaignServer",
        "max_ongoing_requests": campaign["max_ongoing_requests"],
        "max_queued_requests": campaign["max_queued_requests"],
        "backpressure_config": BackpressureConfig(status_code=429, retry_after_s=1),
        "ray_actor_options": {"num_cpus": replica_cpus},
        "max_surge_percent": 100,
        "health_check_period_s": 2,
        "max_constructor_retry_count": 3,
    }
    if campaign["max_replicas"] > campaign["min_replicas"]:
        target = max(2, campaign["max_ongoing_requests"] // 2)
        options["autoscaling_config"] = {"min_replicas": campaign["min_replicas"],
                                         "max_replicas": campaign["max_replicas"],
                                         "target_ongoing_requests": target}
    else:
        options["num_replicas"] = campaign["min_replicas"]
    app = serve.deployment(CampaignServer, **options).bind(
        store_config, tenant, group, campaign["name"], campaign["solution"], campaign["solution_version"])
    serve.run_many([serve.RunTarget(app, name=app_name(tenant, group, campaign["name"]),
                                    route_prefix=endpoint_path(tenant, group, campaign["name"]))],
                   wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)


def _wait_running(name: str, timeout_s: float) -> None:
    """Until the application `name` is RUNNING (its new replicas healthy); raises if it fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _SUBMIT:
            status = serve.status().applications.get(name)
        state = str(getattr(status, "status", "NOT_STARTED")).rsplit(".", 1)[-1]
        if state == "RUNNING":
            return
        if state in ("DEPLOY_FAILED", "UNHEALTHY"):
            message = (getattr(status, "message", "") or "").strip().splitlines()
            raise RuntimeError(f"the campaign's replicas did not start ({state}): "
                               f"{message[0][:300] if message else 'no reason given'}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the campaign's replicas were not healthy within {timeout_s:.0f} s")
        time.sleep(0.5)


def undeploy(tenant: str, group: str, campaign: str) -> None:
    with _SUBMIT:
        serve.delete(app_name(tenant, group, campaign))

