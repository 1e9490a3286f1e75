"""The control plane's boundaries over real HTTP: tenants, names, request validation, duplicates.

1. Tenant isolation: every endpoint x every kind of credential (own key, another tenant's key,
   no key, a forged key, a malformed header). Another tenant's 404 is byte-for-byte the 404 of a
   name that exists nowhere; denied requests write nothing. Recipes are global (every tenant sees
   the same ones) but still need a valid key. A test pins the matrix to the app's routes, so a new
   endpoint without a matrix entry fails.
2. Names: hostile group/kind/job/solution/version/recipe/campaign path segments and body names
   are refused with a 4xx and never reach the store (the store folder holds only
   `tenants/tenant-{a,b}/...` and `system/...`); hostile event values are data, never paths.
3. Request validation: malformed bodies are a 4xx with the `{"error": {...}}` body, naming the
   offending field (for a solution's hyperparameters: `hyperparameters.<key>`; inside an event:
   `events.<i>.<field>`).
4. Duplicates: 409 on a second create, exactly one winner under a race, idempotent retries (a
   version's Idempotency-Key names the version: retries find it instead of training again); an
   event id seen before (per user) is a duplicate, never stored twice.

Solution versions: the `platform` fixture runs jobs on threads, where training cannot start (it
runs on Ray), so a version created here ends CREATE_FAILED at once with a reason saying so; that
is a real version record, enough to address it. The one version that must still be training (to
be stopped) is such a version set back to CREATE_IN_PROGRESS in the store, as a Ray job holds it.

Campaigns: creating one needs an ACTIVE version, which only Ray training makes, so a version is
set ACTIVE in the store as a finished training job leaves it. The campaign is then created and
ends CREATE_FAILED at once (it runs on Ray Serve, which this platform has not): a real campaign
record, enough to address it; updating it is a 409 (only an ACTIVE campaign can be updated).

Batch inference jobs: like versions, they run on Ray, so one created here ends CREATE_FAILED at
once (a real record); A's world job is then made ACTIVE in the store with an answers file, as a
finished Ray job leaves it, so its output can be downloaded.

Events: the event log runs in this process; accepted events are written to the group's
write-ahead log in the store and flushed into the interactions dataset within seconds. Tests
that put events wait for that flush, so no write lands during a later test's "nothing was
written" check.

Requests are raw httpx, or raw httpcore where a path must reach the server un-normalised
(httpx removes `..` segments), so each test sends exactly what it says.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpcore
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.app import create_app
from store import Keys, Store, StoreConfig, now_iso
from tests.conftest import INTERACTIONS_SCHEMA, Platform, unique

pytestmark = pytest.mark.integration

G = "/v1/dataset-groups"
ITEMS_SCHEMA = {"fields": [{"name": "item_id", "type": "string", "role": "ITEM_ID"}]}
SOL = G + "/{group}/solutions"
VER = SOL + "/{solution}/versions"
CAMP = G + "/{group}/campaigns"
CAMP_ONE = CAMP + "/{campaign}"
EVENTS = G + "/{group}/events"
BIJ = G + "/{group}/batch-inference-jobs"
BIJ_ONE = BIJ + "/{job}"  # the batch job (Names.batch; Names.job is an import job)
BIJ_OUT = BIJ_ONE + "/outputs/{output}"
PARQUET = "application/vnd.apache.parquet"
RECIPE = "hrnn-meta"
CSV = ("user_id,item_id,timestamp,event_type,event_value\n"
       + "".join(f"u{i % 5},i{i % 9},{1_700_000_000 + i},click,1\n" for i in range(30))).encode()
TRAINABLE_ROWS = 1200  # a version needs at least 1000 interactions
TRAINABLE_CSV = ("user_id,item_id,timestamp,event_type,event_value\n"
                 + "".join(f"u{i % 60},i{(i * 7) % 101},{1_700_000_000 + i},click,1\n"
                           for i in range(TRAINABLE_ROWS))).encode()
JSON = {"Content-Type": "application/json"}
MIB = 1 << 20
NOT_API = {"/healthz", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}


# ---- helpers ----------------------------------------------------------------------------------

def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(r: httpx.Response) -> dict[str, Any]:
    """The `error` object of an error answer, after checking the body has exactly that shape."""
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "field"}, body
    err = body["error"]
    assert isinstance(err["type"], str) and isinstance(err["message"], str) and err["message"]
    assert err["field"] is None or isinstance(err["field"], str)
    return err


def assert_unauthenticated(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.status_code, r.text)
    assert error_of(r)["type"] == "unauthenticated"


def make_group(http: httpx.Client, key: str, *, kind: str | None = None) -> str:
    """A new dataset group of the key's tenant, with one dataset of `kind` if given."""
    group = unique()
    r = http.post(G, json={"name": group}, headers=bearer(key))
    assert r.status_code == 201, r.text
    if kind:
        schema = INTERACTIONS_SCHEMA if kind == "interactions" else ITEMS_SCHEMA
        r = http.post(f"{G}/{group}/datasets", json={"kind": kind, "schema": schema},
                      headers=bearer(key))
        assert r.status_code == 201, r.text
    return group


def upload(http: httpx.Client, key: str, data: bytes = CSV) -> str:
    r = http.post("/v1/uploads", content=data, headers={**bearer(key), "X-Filename": "events.csv"})
    assert r.status_code == 201, r.text
    return r.json()["upload_id"]


def wait_job(http: httpx.Client, key: str, group: str, job: str, timeout: float = 60) -> dict:
    """Poll an import job until it is ACTIVE or CREATE_FAILED; its final record."""
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"{G}/{group}/import-jobs/{job}", headers=bearer(key))
        assert r.status_code == 200, r.text
        doc = r.json()
        if doc["status"] in ("ACTIVE", "CREATE_FAILED"):
            return doc
        assert time.monotonic() < deadline, f"import job {job} still {doc['status']}"
        time.sleep(0.02)


def import_now(http: httpx.Client, key: str, group: str, upload_id: str) -> str:
    """Run an import job on `group`'s interactions dataset to the end; its name."""
    job = unique("job")
    r = http.post(f"{G}/{group}/import-jobs", headers=bearer(key),
                  json={"name": job, "dataset": "interactions", "source": {"upload_id": upload_id}})
    assert r.status_code == 201, r.text
    assert wait_job(http, key, group, job)["status"] == "ACTIVE"
    return job


def make_solution(http: httpx.Client, key: str, group: str, name: str | None = None) -> str:
    """A new solution (hrnn-meta, 1 epoch) in `group`; its name."""
    name = name or unique("sol")
    r = http.post(f"{G}/{group}/solutions", headers=bearer(key),
                  json={"name": name, "recipe": RECIPE, "hyperparameters": {"epochs": 1}})
    assert r.status_code == 201, r.text
    return name


def make_version(http: httpx.Client, key: str, group: str, solution: str) -> str:
    """A new version of `solution` (it ends CREATE_FAILED at once: training runs on Ray); its name."""
    r = http.post(f"{G}/{group}/solutions/{solution}/versions", json={"training_mode": "full"},
                  headers=bearer(key))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "CREATE_FAILED" and "Ray" in r.json()["failure_reason"], r.text
    return r.json()["name"]


def registry_of(platform: Platform) -> Any:
    return Store(StoreConfig.from_env(platform.store_uri)).registry


def set_version_active(platform: Platform, group: str, solution: str, version: str) -> None:
    """A's version made ACTIVE in the store, as a finished Ray training job leaves its record."""
    registry_of(platform).update(Keys("tenant-a").version_record(group, solution, version), lambda d: {
        **d, "status": "ACTIVE", "failure_reason": None, "updated_at": now_iso(),
        "progress": {"phase": "done", "epoch": 1, "epochs": 1}})


def put_version(platform: Platform, group: str, solution: str, status: str = "ACTIVE") -> str:
    """A new version of A's `solution` with `status`, its record written into the store as the
    training job writes it (on the thread platform training cannot run); its name."""
    name, now = f"v-{uuid.uuid4().hex[:16]}", now_iso()
    registry_of(platform).create(Keys("tenant-a").version_record(group, solution, name), {
        "name": name, "dataset_group": group, "solution": solution, "recipe": RECIPE,
        "training_mode": "full", "hyperparameters": {"epochs": 1}, "scaling": {},
        "evaluation_config": {}, "status": status, "failure_reason": None,
        "progress": {"phase": "done", "epoch": 1, "epochs": 1}, "created_at": now,
        "updated_at": now, "idempotency_key": None})
    return name


def make_campaign(http: httpx.Client, key: str, group: str, solution: str, version: str,
                  name: str | None = None) -> str:
    """A new campaign of an ACTIVE version (it ends CREATE_FAILED at once: no Ray Serve); its name."""
    name = name or unique("camp")
    r = http.post(f"{G}/{group}/campaigns", headers=bearer(key),
                  json={"name": name, "solution": solution, "solution_version": version})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "CREATE_FAILED", r.text
    assert r.json()["failure_reason"].startswith("could not deploy"), r.text
    return name


def make_batch(http: httpx.Client, key: str, group: str, solution: str, version: str,
               name: str | None = None) -> str:
    """A new batch inference job of an ACTIVE version (it ends CREATE_FAILED at once: it runs on
    Ray); its name."""
    name = name or unique("bij")
    r = http.post(f"{G}/{group}/batch-inference-jobs", headers=bearer(key),
                  json={"name": name, "solution": solution, "solution_version": version})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "CREATE_FAILED" and "Ray" in r.json()["failure_reason"], r.text
    return name


def finish_batch(platform: Platform, group: str, job: str) -> bytes:
    """A's job made ACTIVE with an answers file in the store, as a finished Ray job leaves it; the
    file's bytes."""
    store, keys = Store(StoreConfig.from_env(platform.store_uri)), Keys("tenant-a")
    run = "run-0123456789abcdef"
    key = keys.batch_inference_output(group, job, run, "answers")
    with store.backend.open_output(key) as out:
        pq.write_table(pa.table({"user_id": ["u1"], "rank": pa.array([1], pa.int32()), "item_id": ["i1"],
                                 "score": [1.0], "fallback": [False]}), out)
    data = Path(store.backend.path(key)).read_bytes()
    store.registry.update(keys.batch_inference_job(group, job), lambda d: {
        **d, "status": "ACTIVE", "failure_reason": None, "run": run, "updated_at": now_iso(),
        "outputs": {"answers": {"rows": 1, "size_bytes": len(data), "uri": f"{platform.store_uri}/{key}"}}})
    return data


def events_body(user: str = "u-iso", event_id: str | None = "e-iso", n: int = 1) -> dict[str, Any]:
    """A put-events body of `n` events (event ids `event_id`, `event_id`-1, ... when given)."""
    events = [{"item_id": f"i{i}", "timestamp": 1_700_000_500 + i, "event_type": "click",
               "event_value": 1.0} for i in range(n)]
    if event_id is not None:
        for i, e in enumerate(events):
            e["event_id"] = event_id if i == 0 else f"{event_id}-{i}"
    return {"user_id": user, "session_id": "s-iso", "events": events}


def events_dir(tenant: str, group: str) -> str:
    return f"tenants/{tenant}/dataset-groups/{group}/events"


def wait_flushed(http: httpx.Client, root: Path, key: str, tenant: str, group: str, rows: int,
                 timeout: float = 60) -> None:
    """Wait until the group's accepted events are in its interactions dataset (`rows` rows in
    all) and its write-ahead log is empty: the event log writes nothing more after that."""
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"{G}/{group}/datasets/interactions", headers=bearer(key))
        assert r.status_code == 200, r.text
        wal = store_files(root, f"{events_dir(tenant, group)}/wal")
        if r.json()["row_count"] == rows and not wal:
            return
        assert r.json()["row_count"] <= rows, r.text
        assert time.monotonic() < deadline, (r.json()["row_count"], rows, wal)
        time.sleep(0.1)


def list_names(http: httpx.Client, key: str, path: str) -> set[str]:
    r = http.get(path, params={"max_results": 1000} if path == G else None, headers=bearer(key))
    assert r.status_code == 200, r.text
    assert r.json()["next_token"] is None
    return {item["name"] for item in r.json()["items"]}


def store_root(platform: Platform) -> Path:
    uri = urlparse(platform.store_uri)
    assert uri.scheme == "file"
    return Path(uri.path)


def store_files(root: Path, under: str = "") -> dict[str, tuple[int, int]]:
    """Every file below `root/under`: relative path -> (size, mtime), to see any write."""
    out = {}
    for dirpath, _, filenames in os.walk(root / under):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while we walked (the event log flushing)
                continue
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


# ---- the world: what tenant A owns, and tenant B's own group ------------------------------------

@dataclass(frozen=True)
class Names:
    """The names a request addresses."""

    group: str
    job: str
    upload_id: str
    kind: str = "interactions"
    solution: str = ""
    version: str = ""
    recipe: str = RECIPE
    campaign: str = ""
    batch: str = ""
    output: str = "answers"

    @staticmethod
    def nowhere() -> Names:
        """Names that exist in no tenant, as long as real ones (so answers compare as bytes)."""
        return Names(unique(), unique("job"), uuid.uuid4().hex, solution=unique("sol"),
                     version=f"v-{uuid.uuid4().hex[:16]}", campaign=unique("camp"), batch=unique("bij"))


@dataclass
class World:
    http: httpx.Client
    platform: Platform
    # tenant A: a group with an interactions dataset (a finished import and one flushed event),
    # an upload, a solution, an ACTIVE version of it, a (failed) campaign of that version and an
    # ACTIVE batch inference job of it
    a: Names
    b_group: str  # tenant B's own group
    baseline: dict[str, Any] = field(default_factory=dict)
    answers: bytes = b""  # the batch job's answers file

    @property
    def root(self) -> Path:
        return store_root(self.platform)

    def a_view(self) -> dict[str, Any]:
        """Everything A sees of its resources; any change by another caller shows here."""
        key, a = self.platform.key_a, self.a
        view = {}
        group = f"{G}/{a.group}"
        solution = f"{group}/solutions/{a.solution}"
        for path in (group, f"{group}/datasets", f"{group}/datasets/{a.kind}",
                     f"{group}/import-jobs", f"{group}/import-jobs/{a.job}",
                     f"{group}/solutions", solution, f"{solution}/versions",
                     f"{solution}/versions/{a.version}", f"{group}/campaigns",
                     f"{group}/campaigns/{a.campaign}", f"{group}/batch-inference-jobs",
                     f"{group}/batch-inference-jobs/{a.batch}"):
            r = self.http.get(path, headers=bearer(key))
            view[path] = (r.status_code, r.json())
        return view


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=30,
                      limits=httpx.Limits(max_connections=64)) as client:
        yield client


@pytest.fixture(scope="module")
def world(http: httpx.Client, platform: Platform) -> World:
    key = platform.key_a
    group = make_group(http, key, kind="interactions")
    upload_id = upload(http, key, TRAINABLE_CSV)
    job = import_now(http, key, group, upload_id)
    solution = make_solution(http, key, group)
    version = make_version(http, key, group, solution)
    set_version_active(platform, group, solution, version)
    campaign = make_campaign(http, key, group, solution, version)
    batch = make_batch(http, key, group, solution, version)
    answers = finish_batch(platform, group, batch)
    r = http.post(f"{G}/{group}/events", json=events_body("u-world", "e-world"), headers=bearer(key))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
    w = World(http, platform, Names(group, job, upload_id, solution=solution, version=version,
                                    campaign=campaign, batch=batch),
              make_group(http, platform.key_b, kind="interactions"), answers=answers)
    wait_flushed(http, w.root, key, "tenant-a", group, TRAINABLE_ROWS + 1)
    assert store_files(w.root, f"{events_dir('tenant-a', group)}/done"), "no trace of the event"
    w.baseline = w.a_view()
    assert w.baseline[f"{G}/{group}/solutions/{solution}/versions/{version}"][1]["status"] == "ACTIVE"
    assert w.baseline[f"{G}/{group}/campaigns/{campaign}"][1]["status"] == "CREATE_FAILED"
    assert w.baseline[f"{G}/{group}/batch-inference-jobs/{batch}"][1]["status"] == "ACTIVE"
    return w


# ---- 1. tenant isolation ------------------------------------------------------------------------

NAMED, LIST, CREATE, WHOAMI, GLOBAL = "named", "list", "create", "whoami", "global"


@dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    content: bytes | None = None


@dataclass(frozen=True)
class Endpoint:
    """One route. `scope` says what another tenant may get from it:
    NAMED addresses a tenant's resource by name (others get a 404), LIST lists the tenant's
    resources, CREATE creates in the caller's own namespace, WHOAMI names the caller, GLOBAL is
    the same for every tenant (recipes; a valid key is still needed).
    `fresh` gives the names for the owner's call when it must not touch the shared world
    (deletes, creates)."""

    method: str
    route: str
    scope: str
    call: Callable[[Names], Call]
    fresh: Callable[[World], Names] | None = None

    def send(self, http: httpx.Client, names: Names, headers: dict[str, str]) -> httpx.Response:
        c = self.call(names)
        return http.request(self.method, c.path, json=c.json, content=c.content, headers=headers)


def _new_names(w: World) -> Names:
    return replace(w.a, group=unique(), job=unique("job"), solution=unique("sol"))


def _new_group(w: World) -> Names:
    return replace(w.a, group=make_group(w.http, w.platform.key_a), job=unique("job"),
                   solution=unique("sol"))


def _new_dataset(w: World) -> Names:
    return replace(w.a, group=make_group(w.http, w.platform.key_a, kind="interactions"),
                   job=unique("job"), solution=unique("sol"))


def _new_solution(w: World) -> Names:
    """A's new group with a solution and no data."""
    n = _new_group(w)
    return replace(n, solution=make_solution(w.http, w.platform.key_a, n.group))


def _new_trainable_solution(w: World) -> Names:
    """A's new group with enough interactions to train, and a solution."""
    key = w.platform.key_a
    n = _new_dataset(w)
    import_now(w.http, key, n.group, w.a.upload_id)
    return replace(n, solution=make_solution(w.http, key, n.group))


def _new_training_version(w: World) -> Names:
    """A version still training: a real version record, back to CREATE_IN_PROGRESS as a running
    Ray job holds it (on the thread platform training cannot start)."""
    key = w.platform.key_a
    n = _new_trainable_solution(w)
    version = make_version(w.http, key, n.group, n.solution)
    registry = Store(StoreConfig.from_env(w.platform.store_uri)).registry
    registry.update(Keys("tenant-a").version_record(n.group, n.solution, version), lambda d: {
        **d, "status": "CREATE_IN_PROGRESS", "failure_reason": None, "updated_at": now_iso(),
        "progress": {"phase": "training", "epoch": 0, "epochs": 1}})
    r = w.http.get(f"{G}/{n.group}/solutions/{n.solution}/versions/{version}", headers=bearer(key))
    assert r.json()["status"] == "CREATE_IN_PROGRESS", r.text
    return replace(n, version=version)


def _new_active_version(w: World) -> Names:
    """A's new group with a solution and an ACTIVE version of it (no campaign yet)."""
    n = _new_solution(w)
    return replace(n, version=put_version(w.platform, n.group, n.solution), campaign=unique("camp"))


def _new_campaign(w: World) -> Names:
    """A's new group with a solution, an ACTIVE version and a (failed) campaign of it."""
    n = _new_active_version(w)
    make_campaign(w.http, w.platform.key_a, n.group, n.solution, n.version, n.campaign)
    return n


def _new_batch(w: World) -> Names:
    """A's new group with a solution, an ACTIVE version and a (failed) batch inference job of it."""
    n = _new_active_version(w)
    return replace(n, batch=make_batch(w.http, w.platform.key_a, n.group, n.solution, n.version))


def _job_body(n: Names) -> dict[str, Any]:
    return {"name": n.job, "dataset": n.kind, "source": {"upload_id": n.upload_id}}


def _solution_body(n: Names) -> dict[str, Any]:
    return {"name": n.solution, "recipe": n.recipe, "hyperparameters": {"epochs": 1}}


def _sol_path(n: Names) -> str:
    return f"{G}/{n.group}/solutions/{n.solution}"


def _campaign_body(n: Names) -> dict[str, Any]:
    return {"name": n.campaign, "solution": n.solution, "solution_version": n.version}


def _campaign_path(n: Names) -> str:
    return f"{G}/{n.group}/campaigns/{n.campaign}"


def _batch_body(n: Names) -> dict[str, Any]:
    return {"name": n.batch, "solution": n.solution, "solution_version": n.version}


def _batch_path(n: Names) -> str:
    return f"{G}/{n.group}/batch-inference-jobs/{n.batch}"


ENDPOINTS = [
    Endpoint("GET", "/v1/whoami", WHOAMI, lambda n: Call("/v1/whoami")),
    Endpoint("POST", G, CREATE, lambda n: Call(G, json={"name": n.group}), fresh=_new_names),
    Endpoint("GET", G, LIST, lambda n: Call(f"{G}?max_results=1000")),
    Endpoint("GET", G + "/{group}", NAMED, lambda n: Call(f"{G}/{n.group}")),
    Endpoint("DELETE", G + "/{group}", NAMED, lambda n: Call(f"{G}/{n.group}"), fresh=_new_group),
    Endpoint("POST", G + "/{group}/datasets", NAMED,
             lambda n: Call(f"{G}/{n.group}/datasets",
                            json={"kind": "items", "schema": ITEMS_SCHEMA}),
             fresh=_new_group),
    Endpoint("GET", G + "/{group}/datasets", NAMED, lambda n: Call(f"{G}/{n.group}/datasets")),
    Endpoint("GET", G + "/{group}/datasets/{kind}", NAMED,
             lambda n: Call(f"{G}/{n.group}/datasets/{n.kind}")),
    Endpoint("DELETE", G + "/{group}/datasets/{kind}", NAMED,
             lambda n: Call(f"{G}/{n.group}/datasets/{n.kind}"), fresh=_new_dataset),
    Endpoint("POST", "/v1/uploads", CREATE, lambda n: Call("/v1/uploads", content=CSV)),
    Endpoint("POST", G + "/{group}/import-jobs", NAMED,
             lambda n: Call(f"{G}/{n.group}/import-jobs", json=_job_body(n)), fresh=_new_dataset),
    Endpoint("GET", G + "/{group}/import-jobs", NAMED,
             lambda n: Call(f"{G}/{n.group}/import-jobs")),
    Endpoint("GET", G + "/{group}/import-jobs/{job}", NAMED,
             lambda n: Call(f"{G}/{n.group}/import-jobs/{n.job}")),
    Endpoint("GET", "/v1/recipes", GLOBAL, lambda n: Call("/v1/recipes")),
    Endpoint("GET", "/v1/recipes/{recipe}", GLOBAL, lambda n: Call(f"/v1/recipes/{n.recipe}")),
    Endpoint("POST", SOL, NAMED,
             lambda n: Call(f"{G}/{n.group}/solutions", json=_solution_body(n)), fresh=_new_group),
    Endpoint("GET", SOL, NAMED, lambda n: Call(f"{G}/{n.group}/solutions")),
    Endpoint("GET", SOL + "/{solution}", NAMED, lambda n: Call(_sol_path(n))),
    Endpoint("DELETE", SOL + "/{solution}", NAMED, lambda n: Call(_sol_path(n)),
             fresh=_new_solution),
    Endpoint("POST", VER, NAMED,
             lambda n: Call(f"{_sol_path(n)}/versions", json={"training_mode": "full"}),
             fresh=_new_trainable_solution),
    Endpoint("GET", VER, NAMED, lambda n: Call(f"{_sol_path(n)}/versions")),
    Endpoint("GET", VER + "/{version}", NAMED,
             lambda n: Call(f"{_sol_path(n)}/versions/{n.version}")),
    Endpoint("POST", VER + "/{version}/stop", NAMED,
             lambda n: Call(f"{_sol_path(n)}/versions/{n.version}/stop"),
             fresh=_new_training_version),
    Endpoint("POST", CAMP, NAMED,
             lambda n: Call(f"{G}/{n.group}/campaigns", json=_campaign_body(n)),
             fresh=_new_active_version),
    Endpoint("GET", CAMP, NAMED, lambda n: Call(f"{G}/{n.group}/campaigns")),
    Endpoint("GET", CAMP_ONE, NAMED, lambda n: Call(_campaign_path(n))),
    Endpoint("PATCH", CAMP_ONE, NAMED, lambda n: Call(_campaign_path(n), json={"max_replicas": 2})),
    Endpoint("DELETE", CAMP_ONE, NAMED, lambda n: Call(_campaign_path(n)), fresh=_new_campaign),
    Endpoint("POST", EVENTS, NAMED, lambda n: Call(f"{G}/{n.group}/events", json=events_body()),
             fresh=_new_dataset),
    Endpoint("POST", BIJ, NAMED,
             lambda n: Call(f"{G}/{n.group}/batch-inference-jobs", json=_batch_body(n)),
             fresh=_new_active_version),
    Endpoint("GET", BIJ, NAMED, lambda n: Call(f"{G}/{n.group}/batch-inference-jobs")),
    Endpoint("GET", BIJ_ONE, NAMED, lambda n: Call(_batch_path(n))),
    Endpoint("DELETE", BIJ_ONE, NAMED, lambda n: Call(_batch_path(n)), fresh=_new_batch),
    Endpoint("GET", BIJ_OUT, NAMED, lambda n: Call(f"{_batch_path(n)}/outputs/{n.output}")),
]

CREDENTIALS: dict[str, Callable[[Platform], dict[str, str]]] = {
    "own": lambda p: bearer(p.key_a),
    "own-x-api-key": lambda p: {"X-Api-Key": p.key_a},
    "other": lambda p: bearer(p.key_b),
    "other-x-api-key": lambda p: {"X-Api-Key": p.key_b},
    "none": lambda p: {},
    "forged": lambda p: bearer("tgr_" + secrets.token_urlsafe(32)),
    "forged-x-api-key": lambda p: {"X-Api-Key": "tgr_" + secrets.token_urlsafe(32)},
    "malformed": lambda p: {"Authorization": "Basic xxx"},
}


def test_matrix_covers_every_endpoint(platform: Platform, tmp_path: Path) -> None:
    app = create_app(Store(StoreConfig(uri=f"file://{tmp_path / 'store'}")), lambda *_: None)
    routes = {(m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or {"*"})
              if m != "HEAD"}
    spec = httpx.get(f"{platform.url}/openapi.json").json()
    routes |= {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops
               if m in {"get", "put", "post", "patch", "delete", "options", "head", "trace"}}
    # The campaign endpoints are documented but served by Ray Serve, not this app (their
    # isolation is tested in test_campaign_endpoint.py).
    api = {(m, p) for m, p in routes if p not in NOT_API and not p.startswith("/campaigns/")}
    assert api == {(e.method, e.route) for e in ENDPOINTS}


def _comparable(r: httpx.Response, names: Names) -> tuple[int, str, bytes]:
    """An answer with the names it addressed blanked out."""
    body = r.content
    for name in (names.group, names.job, names.upload_id, names.solution, names.version,
                 names.campaign, names.batch):
        if name:
            body = body.replace(name.encode(), b"<name>")
    return r.status_code, r.headers.get("content-type", ""), body


def _assert_reveals_nothing(w: World, ep: Endpoint, r: httpx.Response,
                            headers: dict[str, str]) -> None:
    """The answer to A's names is the answer to names that exist nowhere, for A and for B."""
    nowhere = Names.nowhere()
    got = _comparable(r, w.a)
    assert got == _comparable(ep.send(w.http, nowhere, headers), nowhere)
    if r.status_code == 404:
        assert got == _comparable(ep.send(w.http, nowhere, bearer(w.platform.key_a)), nowhere)


@pytest.mark.parametrize("cred", CREDENTIALS)
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: f"{e.method} {e.route}")
def test_tenant_isolation(world: World, ep: Endpoint, cred: str) -> None:
    p, http = world.platform, world.http
    headers = CREDENTIALS[cred](p)
    own = cred.startswith("own")
    names = ep.fresh(world) if ep.fresh and (own or ep.scope == CREATE) else world.a
    before = store_files(world.root)
    a_events = events_dir("tenant-a", world.a.group)

    r = ep.send(http, names, headers)

    if own:
        _check_own(world, ep, names, r)
    elif cred.startswith("other"):
        _check_other(world, ep, names, r, headers)
        a_files = "tenants/tenant-a/"
        assert {k: v for k, v in store_files(world.root).items() if k.startswith(a_files)} == \
            {k: v for k, v in before.items() if k.startswith(a_files)}
        assert store_files(world.root, a_events) == \
            {k: v for k, v in before.items() if k.startswith(a_events + "/")}, "events reached A"
        # ... nor B's own namespace under A's group name (no event log, no campaign there)
        assert store_files(world.root, f"tenants/tenant-b/dataset-groups/{world.a.group}") == {}
    else:
        assert_unauthenticated(r)
        if ep.scope == NAMED:
            _assert_reveals_nothing(world, ep, r, headers)
        assert store_files(world.root) == before, "a request without a valid key wrote"
    assert world.a_view() == world.baseline


def _check_own(w: World, ep: Endpoint, names: Names, r: httpx.Response) -> None:
    key = w.platform.key_a
    if (ep.method, ep.route) == ("PATCH", CAMP_ONE):
        # The owner reaches the campaign: it exists, but only an ACTIVE one can be updated (A's
        # is CREATE_FAILED: no Serve here). Not the 404 others get; nothing changed (a_view).
        assert r.status_code == 409, r.text
        err = error_of(r)
        assert err["type"] == "conflict", err
        assert names.campaign in err["message"] and "CREATE_FAILED" in err["message"], err
        return
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    if ep.scope == WHOAMI:
        assert r.json() == {"tenant": "tenant-a"}
    elif ep.scope == LIST:
        seen = {g["name"] for g in r.json()["items"]}
        assert w.a.group in seen and w.b_group not in seen
    elif ep.route == G:
        assert w.http.get(f"{G}/{names.group}", headers=bearer(key)).status_code == 200
        assert w.http.get(f"{G}/{names.group}", headers=bearer(w.platform.key_b)).status_code == 404
    elif ep.route == "/v1/uploads":
        assert (w.root / "tenants/tenant-a/uploads" / r.json()["upload_id"] / "data").exists()
    elif ep.method == "POST" and ep.route.endswith("/import-jobs"):
        assert wait_job(w.http, key, names.group, names.job)["status"] == "ACTIVE"
    elif ep.route == "/v1/recipes":
        assert RECIPE in {item["id"] for item in r.json()["items"]}
    elif ep.route == "/v1/recipes/{recipe}":
        assert r.json()["id"] == RECIPE
    elif ep.route.startswith(SOL):
        _check_own_solutions(w, ep, names, r)
    elif ep.route.startswith(CAMP) or ep.route == EVENTS:
        _check_own_campaigns_and_events(w, ep, names, r)
    elif ep.route.startswith(BIJ):
        _check_own_batch(w, ep, names, r)


def _check_own_solutions(w: World, ep: Endpoint, names: Names, r: httpx.Response) -> None:
    """The owner's answers on solutions and versions did what they say (and B still sees none)."""
    http, key, key_b = w.http, w.platform.key_a, w.platform.key_b
    route, sol = ep.route, _sol_path(names)
    if (ep.method, route) == ("POST", SOL):
        assert r.status_code == 201 and r.json()["name"] == names.solution, r.text
        assert http.get(sol, headers=bearer(key)).json() == r.json()
        assert http.get(sol, headers=bearer(key_b)).status_code == 404
    elif (ep.method, route) == ("GET", SOL):
        assert {s["name"] for s in r.json()["items"]} == {w.a.solution}
    elif route == SOL + "/{solution}" and ep.method == "GET":
        assert (r.json()["name"], r.json()["recipe"]) == (w.a.solution, RECIPE)
    elif route == SOL + "/{solution}":  # DELETE
        assert r.status_code == 204
        assert http.get(sol, headers=bearer(key)).status_code == 404
        assert list_names(http, key, f"{G}/{names.group}/solutions") == set()
    elif (ep.method, route) == ("POST", VER):
        assert r.status_code == 201, r.text
        version = r.json()
        assert (version["solution"], version["status"]) == (names.solution, "CREATE_FAILED")
        assert "Ray" in version["failure_reason"]
        assert list_names(http, key, f"{sol}/versions") == {version["name"]}
    elif (ep.method, route) == ("GET", VER):
        assert {v["name"] for v in r.json()["items"]} == {w.a.version}
    elif route == VER + "/{version}":
        assert (r.json()["name"], r.json()["status"]) == (w.a.version, "ACTIVE")
    elif route == VER + "/{version}/stop":
        assert r.status_code == 200 and r.json()["status"] == "CREATE_STOPPING", r.text
        again = http.get(f"{sol}/versions/{names.version}", headers=bearer(key))
        assert again.json()["status"] == "CREATE_STOPPING"
    else:
        raise AssertionError(f"no check for {ep.method} {ep.route}")


def _check_own_campaigns_and_events(w: World, ep: Endpoint, names: Names,
                                    r: httpx.Response) -> None:
    """The owner's answers on campaigns and events did what they say (and B still sees none)."""
    http, key, key_b = w.http, w.platform.key_a, w.platform.key_b
    route, one = ep.route, _campaign_path(names)
    if (ep.method, route) == ("POST", CAMP):
        assert r.status_code == 201, r.text
        c = r.json()
        assert (c["name"], c["dataset_group"], c["solution"], c["solution_version"], c["recipe"]) == \
            (names.campaign, names.group, names.solution, names.version, RECIPE), c
        assert c["status"] == "CREATE_FAILED" and c["failure_reason"].startswith("could not deploy"), c
        assert http.get(one, headers=bearer(key)).json() == c
        assert http.get(one, headers=bearer(key_b)).status_code == 404
        assert list_names(http, key, f"{G}/{names.group}/campaigns") == {names.campaign}
    elif (ep.method, route) == ("GET", CAMP):
        assert {c["name"] for c in r.json()["items"]} == {w.a.campaign}
        assert r.json()["next_token"] is None
    elif (ep.method, route) == ("GET", CAMP_ONE):
        c = r.json()
        assert (c["name"], c["solution"], c["solution_version"], c["status"]) == \
            (w.a.campaign, w.a.solution, w.a.version, "CREATE_FAILED"), c
    elif (ep.method, route) == ("DELETE", CAMP_ONE):
        assert r.status_code == 204, r.text
        assert http.get(one, headers=bearer(key)).status_code == 404
        assert list_names(http, key, f"{G}/{names.group}/campaigns") == set()
        assert not store_files(w.root, f"tenants/tenant-a/dataset-groups/{names.group}/campaigns")
        # the version it served is free again: its solution can go
        assert http.delete(_sol_path(names), headers=bearer(key)).status_code == 204
    elif route == EVENTS:
        assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
        assert store_files(w.root, events_dir("tenant-a", names.group)), "no event in A's log"
        assert store_files(w.root, f"tenants/tenant-b/dataset-groups/{names.group}") == {}
        wait_flushed(http, w.root, key, "tenant-a", names.group, 1)
        again = ep.send(http, names, bearer(key))  # a retry: the same event id, not stored again
        assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1}
        wait_flushed(http, w.root, key, "tenant-a", names.group, 1)
        # B's put of the same body on its own same-named group is refused (no such group of B's)
        assert ep.send(http, names, bearer(key_b)).status_code == 404
    else:
        raise AssertionError(f"no check for {ep.method} {ep.route}")


def _check_own_batch(w: World, ep: Endpoint, names: Names, r: httpx.Response) -> None:
    """The owner's answers on batch inference jobs did what they say (and B still sees none)."""
    http, key, key_b = w.http, w.platform.key_a, w.platform.key_b
    route, one = ep.route, _batch_path(names)
    if (ep.method, route) == ("POST", BIJ):
        assert r.status_code == 201, r.text
        job = r.json()
        assert (job["name"], job["dataset_group"], job["solution"], job["solution_version"], job["task"]) == \
            (names.batch, names.group, names.solution, names.version, "next-item"), job
        assert job["status"] == "CREATE_FAILED" and job["failure_reason"].startswith("could not start"), job
        assert http.get(one, headers=bearer(key)).json() == job
        assert http.get(one, headers=bearer(key_b)).status_code == 404
        assert list_names(http, key, f"{G}/{names.group}/batch-inference-jobs") == {names.batch}
    elif (ep.method, route) == ("GET", BIJ):
        assert {j["name"] for j in r.json()["items"]} == {w.a.batch} and r.json()["next_token"] is None
    elif (ep.method, route) == ("GET", BIJ_ONE):
        job = r.json()
        assert (job["name"], job["status"], job["outputs"]["answers"]["rows"]) == \
            (w.a.batch, "ACTIVE", 1), job
    elif (ep.method, route) == ("DELETE", BIJ_ONE):
        assert r.status_code == 204, r.text
        assert http.get(one, headers=bearer(key)).status_code == 404
        assert list_names(http, key, f"{G}/{names.group}/batch-inference-jobs") == set()
        assert not store_files(w.root, f"tenants/tenant-a/dataset-groups/{names.group}/batch-inference-jobs")
    elif route == BIJ_OUT:
        assert r.status_code == 200 and r.headers["content-type"] == PARQUET, (r.status_code, r.text)
        assert r.content == w.answers and r.headers["content-length"] == str(len(w.answers))
        assert f'filename="{w.a.batch}-answers.parquet"' in r.headers["content-disposition"]
    else:
        raise AssertionError(f"no check for {ep.method} {ep.route}")


def _check_other(w: World, ep: Endpoint, names: Names, r: httpx.Response,
                 headers: dict[str, str]) -> None:
    key_a, key_b = w.platform.key_a, w.platform.key_b
    if ep.scope == NAMED:
        assert r.status_code == 404, (r.status_code, r.text)
        assert error_of(r)["type"] == "not_found"
        _assert_reveals_nothing(w, ep, r, headers)
    elif ep.scope == WHOAMI:
        assert r.json() == {"tenant": "tenant-b"}
    elif ep.scope == GLOBAL:  # the same answer as the owner's, byte for byte
        assert r.status_code == 200, r.text
        assert r.content == ep.send(w.http, names, bearer(key_a)).content
    elif ep.scope == LIST:
        assert r.status_code == 200, r.text
        seen = {g["name"] for g in r.json()["items"]}
        assert w.b_group in seen
        assert not seen & list_names(w.http, key_a, G), "B's list shows A's groups"
        assert w.a.group not in r.text
    elif ep.route == G:  # B creates in its own namespace only
        assert r.status_code == 201, r.text
        assert w.http.get(f"{G}/{names.group}", headers=bearer(key_b)).status_code == 200
        assert w.http.get(f"{G}/{names.group}", headers=bearer(key_a)).status_code == 404
    elif ep.route == "/v1/uploads":
        assert r.status_code == 201, r.text
        upload_id = r.json()["upload_id"]
        assert (w.root / "tenants/tenant-b/uploads" / upload_id / "data").exists()
        assert not (w.root / "tenants/tenant-a/uploads" / upload_id).exists()
    else:
        raise AssertionError(f"no check for {ep.method} {ep.route}")


def test_same_group_name_in_two_tenants_stays_separate(world: World) -> None:
    """B may reuse A's group name: it gets its own empty group; A's, with children, is untouched."""
    http, key_b, a = world.http, world.platform.key_b, world.a
    r = http.post(G, json={"name": a.group, "description": "B's"}, headers=bearer(key_b))
    assert r.status_code == 201, r.text
    try:
        assert http.get(f"{G}/{a.group}/datasets", headers=bearer(key_b)).json()["items"] == []
        assert http.get(f"{G}/{a.group}/import-jobs", headers=bearer(key_b)).json()["items"] == []
        # A's job under B's same-named group: the answer of a job that exists nowhere.
        nowhere = replace(a, job=unique("job"))
        ep = next(e for e in ENDPOINTS if e.route.endswith("/import-jobs/{job}"))
        assert _comparable(ep.send(http, a, bearer(key_b)), a) == \
            _comparable(ep.send(http, nowhere, bearer(key_b)), nowhere)
        # A's solution under B's same-named group, then A's version under B's same-named
        # solution: the answers of names that exist nowhere.
        assert http.get(f"{G}/{a.group}/solutions", headers=bearer(key_b)).json()["items"] == []
        new_version = f"v-{uuid.uuid4().hex[:16]}"
        for method, route, changed in (("GET", SOL + "/{solution}", {"solution": unique("sol")}),
                                       ("GET", VER, {"solution": unique("sol")}),
                                       ("GET", VER + "/{version}", {"version": new_version}),
                                       ("POST", VER + "/{version}/stop", {"version": new_version})):
            if "{version}" in route and not list_names(http, key_b, f"{G}/{a.group}/solutions"):
                make_solution(http, key_b, a.group, a.solution)
                assert list_names(http, key_b, f"{_sol_path(a)}/versions") == set()
            nowhere = replace(a, **changed)
            ep = next(e for e in ENDPOINTS if (e.method, e.route) == (method, route))
            answer = ep.send(http, a, bearer(key_b))
            assert answer.status_code == 404, (route, answer.text)
            assert _comparable(answer, a) == _comparable(ep.send(http, nowhere, bearer(key_b)),
                                                         nowhere), route
        # A's campaign under B's same-named group: the answers of a campaign that exists nowhere.
        assert http.get(f"{G}/{a.group}/campaigns", headers=bearer(key_b)).json()["items"] == []
        for method in ("GET", "PATCH", "DELETE"):
            nowhere = replace(a, campaign=unique("camp"))
            ep = next(e for e in ENDPOINTS if (e.method, e.route) == (method, CAMP_ONE))
            answer = ep.send(http, a, bearer(key_b))
            assert answer.status_code == 404, (method, answer.text)
            assert _comparable(answer, a) == _comparable(ep.send(http, nowhere, bearer(key_b)),
                                                         nowhere), method
        # B's events go to B's group: refused while it has no interactions dataset; then A's very
        # event (same user, same event id) is a new event of B's, not a duplicate of A's.
        a_events = store_files(world.root, events_dir("tenant-a", a.group))
        path = f"{G}/{a.group}/events"
        r = http.post(path, json=events_body("u-world", "e-world"), headers=bearer(key_b))
        assert r.status_code == 400 and "no interactions dataset" in error_of(r)["message"], r.text
        r = http.post(f"{G}/{a.group}/datasets", json={"kind": "interactions",
                                                       "schema": INTERACTIONS_SCHEMA},
                      headers=bearer(key_b))
        assert r.status_code == 201, r.text
        r = http.post(path, json=events_body("u-world", "e-world"), headers=bearer(key_b))
        assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
        wait_flushed(http, world.root, key_b, "tenant-b", a.group, 1)
        assert store_files(world.root, events_dir("tenant-a", a.group)) == a_events
        assert world.a_view() == world.baseline
    finally:
        assert http.delete(f"{G}/{a.group}", params={"force": "true"},
                           headers=bearer(key_b)).status_code == 204
    assert world.a_view() == world.baseline


def test_upload_ids_do_not_cross_tenants(world: World) -> None:
    """A tenant naming another's upload gets the 404 of an upload that never existed."""
    http, p = world.http, world.platform

    def import_from(key: str, group: str, upload_id: str) -> httpx.Response:
        body = _job_body(Names(group, unique("job"), upload_id))
        return http.post(f"{G}/{group}/import-jobs", json=body, headers=bearer(key))

    for key, group, theirs in ((p.key_b, world.b_group, world.a.upload_id),
                               (p.key_a, world.a.group, upload(http, p.key_b))):
        r = import_from(key, group, theirs)
        assert r.status_code == 404, r.text
        assert error_of(r)["field"] == "source.upload_id"
        never = uuid.uuid4().hex
        assert r.content.replace(theirs.encode(), b"<id>") == \
            import_from(key, group, never).content.replace(never.encode(), b"<id>")
    assert world.a_view() == world.baseline


@pytest.mark.parametrize("method,route", [("POST", G), ("POST", G + "/{group}/datasets"),
                                          ("POST", G + "/{group}/import-jobs"), ("POST", SOL),
                                          ("POST", VER), ("POST", CAMP), ("PATCH", CAMP_ONE),
                                          ("POST", EVENTS), ("POST", BIJ)])
def test_tenant_field_in_body_is_rejected(world: World, method: str, route: str) -> None:
    """A body naming a tenant is refused (unknown field), not honoured, and creates nothing."""
    http, p = world.http, world.platform
    n = _new_campaign(world) if route.startswith((CAMP, BIJ)) else None
    group = n.group if n else make_group(
        http, p.key_a, kind="interactions" if "import" in route or route == EVENTS else None)
    solution = n.solution if n else make_solution(http, p.key_a, group) if route == VER else ""
    body = {G: {"name": unique()},
            G + "/{group}/datasets": {"kind": "interactions", "schema": INTERACTIONS_SCHEMA},
            G + "/{group}/import-jobs": _job_body(replace(world.a, job=unique("job"))),
            SOL: {"name": unique("sol"), "recipe": RECIPE},
            VER: {"training_mode": "full"},
            CAMP: _campaign_body(replace(n, campaign=unique("camp"))) if n else None,
            CAMP_ONE: {"max_replicas": 2},
            EVENTS: events_body(),
            BIJ: _batch_body(replace(n, batch=unique("bij"))) if n else None}[route]
    path = route.format(group=group, solution=solution, campaign=n.campaign if n else "")
    before = store_files(world.root)
    r = http.request(method, path, json={**body, "tenant": "tenant-b"}, headers=bearer(p.key_a))
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["type"] == "invalid_input" and err["field"] == "tenant"
    assert store_files(world.root) == before


def test_tenant_hints_outside_the_key_are_ignored(world: World) -> None:
    """Only the key decides the tenant: a tenant in the query or a header changes nothing."""
    r = world.http.get(G, params={"tenant": "tenant-b", "max_results": 1000},
                       headers={**bearer(world.platform.key_a), "X-Tenant": "tenant-b",
                                "X-Tagrec-Tenant": "tenant-b"})
    assert r.status_code == 200, r.text
    seen = {g["name"] for g in r.json()["items"]}
    assert world.a.group in seen and world.b_group not in seen


def test_authorization_header_decides_over_x_api_key(world: World) -> None:
    """With both headers, a bad Authorization is not rescued by a good X-Api-Key."""
    p = world.platform
    r = world.http.get("/v1/whoami", headers={"Authorization": "Basic xxx", "X-Api-Key": p.key_a})
    assert_unauthenticated(r)
    r = world.http.get("/v1/whoami", headers={**bearer(p.key_b), "X-Api-Key": p.key_a})
    assert r.json() == {"tenant": "tenant-b"}


# ---- 2. names -----------------------------------------------------------------------------------

BAD_NAMES = [  # (id, as a URL path segment, as a JSON string)
    ("dotdot", "..", ".."),
    ("dotdot-slash-x", "../x", "../x"),
    ("pct-dotdot", "%2e%2e", "%2e%2e"),
    ("pct-dotdot-slash-etc", "%2E%2E%2Fetc", "%2E%2E%2Fetc"),
    ("slash", "a%2Fb", "a/b"),
    ("nul", "%00", "\x00"),
    ("64-chars", "x" * 64, "x" * 64),
    ("leading-dash", "-leading", "-leading"),
    ("space", "with%20space", "with space"),
    ("unicode", quote("ünïcode"), "ünïcode"),
    ("empty", "", ""),
    ("dot", ".", "."),
    ("trailing-newline", "a%0A", "a\n"),
]
_SUSPICIOUS = re.compile(r"[%\s\x00/\\]|[^\x00-\x7f]|^-|^\.\.?$|^x{64}$")

def _path_cases() -> list[Any]:
    return list(_path_case_iter())


def _path_case_iter() -> Iterator[Any]:
    for ep in ENDPOINTS:
        for slot in re.findall(r"\{(\w+)\}", ep.route):
            for vid, segment, _ in BAD_NAMES:
                yield pytest.param(ep, slot, segment, id=f"{ep.method} {ep.route} {slot}={vid}")


@pytest.fixture(scope="module")
def name_target(http: httpx.Client, platform: Platform, world: World) -> Names:
    """A's group for hostile-name requests: valid names around the hostile one (own key)."""
    key = platform.key_a
    group = make_group(http, key, kind="interactions")
    job = import_now(http, key, group, world.a.upload_id)
    solution = make_solution(http, key, group)
    version = make_version(http, key, group, solution)
    set_version_active(platform, group, solution, version)
    campaign = make_campaign(http, key, group, solution, version)
    batch = make_batch(http, key, group, solution, version)
    return Names(group, job, world.a.upload_id, solution=solution, version=version,
                 campaign=campaign, batch=batch)


def send_raw(url: str, method: str, target: str, headers: dict[str, str],
             body: bytes = b"") -> httpx.Response:
    """Send `target` byte for byte (httpx would resolve `..` segments before sending)."""
    u = httpx.URL(url)
    hdrs = [(k.encode(), v.encode()) for k, v in headers.items()]
    if body:
        hdrs.append((b"Content-Type", b"application/json"))
    r = httpcore.request(method, httpcore.URL(scheme=b"http", host=u.host.encode(), port=u.port,
                                              target=target.encode("ascii")),
                         headers=hdrs, content=body,
                         extensions={"timeout": {"connect": 10, "read": 30, "write": 30,
                                                 "pool": 10}})
    return httpx.Response(r.status, headers=r.headers, content=r.content)


def assert_store_layout(root: Path) -> None:
    """Only tenants' and system folders, and no hostile name anywhere, in or beside the store."""
    assert sorted(os.listdir(root.parent)) == [root.name], "something was written beside the store"
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            parts = (Path(dirpath) / name).relative_to(root).parts
            assert parts[0] in ("tenants", "system"), parts
            assert parts[:2] == ("tenants",) or parts[0] == "system" or \
                parts[1] in ("tenant-a", "tenant-b"), parts
            assert not any(_SUSPICIOUS.search(part) for part in parts), parts


@pytest.mark.parametrize(("ep", "slot", "segment"), _path_cases())
def test_bad_name_in_path(world: World, name_target: Names, ep: Endpoint, slot: str,
                          segment: str) -> None:
    good = {"group": name_target.group, "kind": name_target.kind, "job": name_target.job,
            "solution": name_target.solution, "version": name_target.version,
            "recipe": name_target.recipe, "campaign": name_target.campaign,
            "batch": name_target.batch, "output": name_target.output}
    target = re.sub(r"\{(\w+)\}", lambda m: segment if m[1] == slot else good[m[1]], ep.route)
    c = ep.call(replace(name_target, job=unique("job"), solution=unique("sol"),
                        campaign=unique("camp"), batch=unique("bij")))
    body = httpx.Request("POST", "http://x", json=c.json).content if c.json is not None else b""
    key = world.platform.key_a
    versions = f"{_sol_path(name_target)}/versions"
    campaign = world.http.get(_campaign_path(name_target), headers=bearer(key)).json()
    before = list_names(world.http, key, versions)
    target_files = store_files(world.root, f"tenants/tenant-a/dataset-groups/{name_target.group}")
    r = send_raw(world.platform.url, ep.method, target, bearer(key), body)
    assert r.status_code in (400, 404, 405, 422), (target, r.status_code, r.text)
    error_of(r)
    assert_store_layout(world.root)
    assert world.a_view() == world.baseline
    assert list_names(world.http, key, versions) == before
    assert list_names(world.http, key, f"{G}/{name_target.group}/solutions") == {name_target.solution}
    assert list_names(world.http, key, f"{G}/{name_target.group}/campaigns") == {name_target.campaign}
    assert world.http.get(_campaign_path(name_target), headers=bearer(key)).json() == campaign
    assert list_names(world.http, key, f"{G}/{name_target.group}/batch-inference-jobs") == {name_target.batch}
    # nothing under the target group changed either (no event logged, no campaign touched)
    assert store_files(world.root, f"tenants/tenant-a/dataset-groups/{name_target.group}") == \
        target_files


BODY_NAME_SLOTS = [  # (route, field, valid body)
    (G, "name", lambda n: {"name": n.group}),
    (G + "/{group}/import-jobs", "name", _job_body),
    (G + "/{group}/import-jobs", "dataset", _job_body),
    (G + "/{group}/datasets", "kind", lambda n: {"kind": "items", "schema": ITEMS_SCHEMA}),
    (SOL, "name", lambda n: {"name": unique("sol"), "recipe": RECIPE}),
    (SOL, "recipe", lambda n: {"name": unique("sol"), "recipe": RECIPE}),
    (CAMP, "name", lambda n: _campaign_body(replace(n, campaign=unique("camp")))),
    (CAMP, "solution", lambda n: _campaign_body(replace(n, campaign=unique("camp")))),
    (CAMP, "solution_version", lambda n: _campaign_body(replace(n, campaign=unique("camp")))),
    (BIJ, "name", lambda n: _batch_body(replace(n, batch=unique("bij")))),
    (BIJ, "solution", lambda n: _batch_body(replace(n, batch=unique("bij")))),
    (BIJ, "solution_version", lambda n: _batch_body(replace(n, batch=unique("bij")))),
]


@pytest.mark.parametrize(("route", "name_field", "body"), BODY_NAME_SLOTS,
                         ids=[f"{r} {f}" for r, f, _ in BODY_NAME_SLOTS])
@pytest.mark.parametrize("value", [v for _, _, v in BAD_NAMES], ids=[i for i, _, _ in BAD_NAMES])
def test_bad_name_in_body(world: World, name_target: Names, route: str, name_field: str,
                          body: Callable[[Names], dict[str, Any]], value: str) -> None:
    path = route.format(group=name_target.group)
    r = world.http.post(path, json={**body(name_target), name_field: value},
                        headers=bearer(world.platform.key_a))
    assert r.status_code == 400, r.text
    assert error_of(r)["field"] == name_field
    assert_store_layout(world.root)
    key = world.platform.key_a
    assert list_names(world.http, key, f"{G}/{name_target.group}/campaigns") == {name_target.campaign}


def test_hostile_event_values_are_data_not_paths(world: World) -> None:
    """User, session, item and event ids are free text: path-like or control-character values
    are stored as data (the log names its objects by a hash) and never become paths."""
    http, key = world.http, world.platform.key_a
    group = make_group(http, key, kind="interactions")
    hostile = ["../../tenant-b", "..", "a/b", "%2e%2e%2f", "\x00nul", "ünïcode", " ", "x" * 256]
    for i, value in enumerate(hostile):
        body = {"user_id": value, "session_id": value,
                "events": [{"item_id": value, "event_id": value, "timestamp": 1_700_000_000 + i}]}
        r = http.post(f"{G}/{group}/events", json=body, headers=bearer(key))
        assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, (value, r.text)
    assert_store_layout(world.root)
    wal = store_files(world.root, f"{events_dir('tenant-a', group)}/wal")
    assert len(wal) == len(hostile)
    assert all(re.fullmatch(r"[0-9a-f]{32}\.json", Path(k).name) for k in wal), wal
    wait_flushed(http, world.root, key, "tenant-a", group, len(hostile))
    assert_store_layout(world.root)
    assert store_files(world.root, "tenants/tenant-b/dataset-groups/" + group) == {}
    assert world.a_view() == world.baseline


# ---- 3. request validation ----------------------------------------------------------------------

DS = G + "/{group}/datasets"
JOBS = G + "/{group}/import-jobs"
_FIELDS = INTERACTIONS_SCHEMA["fields"]


def _job(**source: Any) -> dict[str, Any]:
    return {"name": "{new}", "dataset": "interactions", "source": source}


def _sol(**fields: Any) -> dict[str, Any]:
    """A solution body: a valid one with `fields` changed."""
    return {"name": "{new}", "recipe": RECIPE, **fields}


def _hp(**hyperparameters: Any) -> dict[str, Any]:
    return _sol(hyperparameters={"epochs": 2, **hyperparameters})


def _camp(**fields: Any) -> dict[str, Any]:
    """A campaign body (of the validation solution's ACTIVE version) with `fields` changed."""
    return {"name": "{new}", "solution": "{solution}", "solution_version": "{version}", **fields}


def _bij(**fields: Any) -> dict[str, Any]:
    """A batch inference job body (of the validation solution, a next-item one) with `fields` changed."""
    return {"name": "{new}", "solution": "{solution}", **fields}


def _events(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A put-events body with `events` (one valid event when none given) and `fields` changed."""
    return {"user_id": "u-val", "session_id": "s-val",
            "events": list(events) or [{"item_id": "i1"}], **fields}


def _event(**fields: Any) -> dict[str, Any]:
    """A put-events body of one event: a valid one with `fields` changed."""
    return _events({"item_id": "i1", "event_id": "e-val", **fields})


def _events_bytes(event_value: bytes) -> bytes:
    return (b'{"user_id": "u-val", "session_id": "s-val", "events": [{"item_id": "i1", '
            b'"event_value": ' + event_value + b"}]}")


@dataclass(frozen=True)
class Bad:
    """A malformed request and the answer it must get; `hint` must appear in message or field,
    and the answer's `field` must be `at` when given."""

    id: str
    method: str
    path: str
    status: int | tuple[int, ...]
    hint: str | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    at: str | None = None
    mentions: tuple[str, ...] = ()  # each must appear in the message


VALIDATION = [
    Bad("malformed-json", "POST", G, 400, content=b'{"name": ', headers=JSON),
    Bad("not-utf8-json", "POST", G, 400, content=b'{"name": "\xff\xfe"}', headers=JSON),
    Bad("json-array", "POST", G, 400, json=[{"name": "{new}"}]),
    Bad("json-string", "POST", G, 400, json="{new}"),
    Bad("json-null", "POST", G, 400, content=b"null", headers=JSON),
    Bad("deeply-nested-json", "POST", G, 400, content=b"[" * 100_000 + b"]" * 100_000,
        headers=JSON),
    Bad("unknown-field", "POST", G, 400, "colour", json={"name": "{new}", "colour": "red"}),
    Bad("name-not-a-string", "POST", G, 400, "name", json={"name": 5}),
    Bad("description-not-a-string", "POST", G, 400, "description",
        json={"name": "{new}", "description": ["x"]}),
    Bad("description-too-long", "POST", G, 400, "description",
        json={"name": "{new}", "description": "d" * 1001}),
    Bad("missing-name", "POST", G, 400, "name", json={}),
    Bad("missing-kind", "POST", DS, 400, "kind", json={"schema": INTERACTIONS_SCHEMA}),
    Bad("missing-schema", "POST", DS, 400, "schema", json={"kind": "interactions"}),
    Bad("schema-not-an-object", "POST", DS, 400, "schema", json={"kind": "items", "schema": []}),
    Bad("schema-no-fields", "POST", DS, 400, "fields",
        json={"kind": "items", "schema": {"fields": []}}),
    Bad("schema-duplicate-field", "POST", DS, 400, "user_id", json={
        "kind": "interactions",
        "schema": {"fields": [*_FIELDS, {"name": "user_id", "type": "string"}]}}),
    Bad("schema-timestamp-role-on-string", "POST", DS, 400, "happened_at", json={
        "kind": "interactions",
        "schema": {"fields": [*_FIELDS[:2], {"name": "happened_at", "type": "string",
                                             "role": "TIMESTAMP"}]}}),
    Bad("schema-interactions-without-user-id", "POST", DS, 400, "USER_ID", json={
        "kind": "interactions", "schema": {"fields": _FIELDS[1:]}}),
    Bad("schema-role-twice", "POST", DS, 400, "ITEM_ID", json={
        "kind": "interactions",
        "schema": {"fields": [*_FIELDS, {"name": "other_item", "type": "string",
                                         "role": "ITEM_ID"}]}}),
    Bad("schema-unknown-type", "POST", DS, 400, "type", json={
        "kind": "items", "schema": {"fields": [{"name": "item_id", "type": "blob"}]}}),
    Bad("schema-bad-field-name", "POST", DS, 400, "name", json={
        "kind": "items", "schema": {"fields": [{"name": "1 bad", "type": "string",
                                                "role": "ITEM_ID"}]}}),
    Bad("schema-257-fields", "POST", DS, 400, "fields", json={
        "kind": "items", "schema": {"fields": [{"name": f"f{i}", "type": "string"}
                                               for i in range(257)]}}),
    Bad("schema-long-delimiter", "POST", DS, 400, "categorical_delimiter", json={
        "kind": "items", "schema": {**ITEMS_SCHEMA, "categorical_delimiter": "||"}}),
    Bad("job-no-source", "POST", JOBS, 400, "source",
        json={"name": "{new}", "dataset": "interactions"}),
    Bad("job-two-sources", "POST", JOBS, 400, "upload_id",
        json=_job(upload_id=uuid.uuid4().hex, uri="s3://bucket/key.csv")),
    Bad("job-malformed-upload-id", "POST", JOBS, 400, "upload_id", json=_job(upload_id="../x")),
    Bad("job-unknown-upload-id", "POST", JOBS, 404, "upload_id",
        json=_job(upload_id=uuid.uuid4().hex)),
    Bad("job-file-uri", "POST", JOBS, 400, "uri", json=_job(uri="file:///etc/passwd")),
    Bad("job-unknown-format", "POST", JOBS, 400, "format",
        json=_job(uri="s3://bucket/key.csv", format="xls")),
    Bad("job-unknown-mode", "POST", JOBS, 400, "mode",
        json={**_job(uri="s3://bucket/key.csv"), "mode": "sideways"}),
    Bad("max-results-0", "GET", G + "?max_results=0", 400, "max_results"),
    Bad("max-results-5000", "GET", G + "?max_results=5000", 400, "max_results"),
    Bad("max-results-not-an-int", "GET", G + "?max_results=ten", 400, "max_results"),
    Bad("jobs-max-results-0", "GET", JOBS + "?max_results=0", 400, "max_results"),
    Bad("jobs-max-results-5000", "GET", JOBS + "?max_results=5000", 400, "max_results"),
    Bad("next-token-too-long", "GET", G + "?next_token=" + "t" * 64, 400, "next_token"),
    Bad("force-not-a-bool", "DELETE", G + "/{group}?force=maybe", 400, "force"),
    Bad("idempotency-key-too-long", "POST", G, 400, "idempotency",
        json={"name": "{new}"}, headers={"Idempotency-Key": "k" * 201}),
    Bad("filename-too-long", "POST", "/v1/uploads", 400, "filename",
        content=CSV, headers={"X-Filename": "f" * 256}),
    Bad("body-over-1mib", "POST", G, 413, content=b" " * (MIB + 1), headers=JSON),
    Bad("empty-body", "POST", G, 400, content=b"", headers=JSON),
    Bad("no-body", "POST", G, 400),
    Bad("text-plain", "POST", G, (400, 415), content=b'{"name": "ct-1"}',
        headers={"Content-Type": "text/plain"}),
    Bad("form-encoded", "POST", G, (400, 415), content=b"name=form-1",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    # solutions: the body, then the hyperparameters against the recipe's schema
    Bad("sol-unknown-field", "POST", SOL, 400, at="colour", json=_sol(colour="red")),
    Bad("sol-missing-recipe", "POST", SOL, 400, at="recipe", json={"name": "{new}"}),
    Bad("sol-missing-name", "POST", SOL, 400, at="name", json={"recipe": RECIPE}),
    Bad("sol-name-not-a-string", "POST", SOL, 400, at="name", json=_sol(name=7)),
    Bad("sol-recipe-not-a-string", "POST", SOL, 400, at="recipe", json=_sol(recipe=["hrnn-meta"])),
    Bad("sol-unknown-recipe", "POST", SOL, 400, "gru4rec", at="recipe", json=_sol(recipe="gru4rec")),
    Bad("sol-recipe-wrong-case", "POST", SOL, 400, at="recipe", json=_sol(recipe="HRNN-Meta")),
    Bad("sol-empty-recipe", "POST", SOL, 400, at="recipe", json=_sol(recipe="")),
    Bad("sol-recipe-64-chars", "POST", SOL, 400, at="recipe", json=_sol(recipe="r" * 64)),
    Bad("sol-hyperparameters-a-list", "POST", SOL, 400, at="hyperparameters",
        json=_sol(hyperparameters=[["epochs", 2]])),
    Bad("sol-hyperparameters-null", "POST", SOL, 400, at="hyperparameters",
        json=_sol(hyperparameters=None)),
    Bad("sol-unknown-hyperparameter", "POST", SOL, 400, "hidden_sz", at="hyperparameters.hidden_sz",
        json=_hp(hidden_sz=16)),
    Bad("sol-unknown-nested-hyperparameter", "POST", SOL, 400, at="hyperparameters.optimizer",
        json=_hp(optimizer={"name": "sgd"})),
    Bad("sol-epochs-0", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs=0)),
    Bad("sol-epochs-negative", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs=-3)),
    Bad("sol-epochs-10001", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs=10_001)),
    Bad("sol-epochs-fractional", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs=2.5)),
    Bad("sol-epochs-a-word", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs="five")),
    Bad("sol-epochs-huge", "POST", SOL, 400, at="hyperparameters.epochs", json=_hp(epochs=10**40)),
    Bad("sol-hidden-size-0", "POST", SOL, 400, at="hyperparameters.hidden_size",
        json=_hp(hidden_size=0)),
    Bad("sol-bptt-1", "POST", SOL, 400, at="hyperparameters.bptt", json=_hp(bptt=1)),
    Bad("sol-dropout-1", "POST", SOL, 400, at="hyperparameters.dropout", json=_hp(dropout=1.0)),
    Bad("sol-learning-rate-0", "POST", SOL, 400, at="hyperparameters.learning_rate",
        json=_hp(learning_rate=0)),
    Bad("sol-learning-rate-nan", "POST", SOL, 400, at="hyperparameters.learning_rate",
        content=b'{"name": "sol-nan", "recipe": "hrnn-meta", "hyperparameters": {"learning_rate": NaN}}',
        headers=JSON),
    Bad("sol-threshold-infinity", "POST", SOL, 400, at="hyperparameters.sampled_softmax_threshold",
        content=b'{"name": "sol-inf", "recipe": "hrnn-meta", '
                b'"hyperparameters": {"sampled_softmax_threshold": Infinity}}',
        headers=JSON),
    Bad("sol-lambda-sampling-unknown", "POST", SOL, 400, at="hyperparameters.lambda_sampling",
        json=_hp(lambda_sampling="sometimes")),
    Bad("sol-trend-bias-not-a-bool", "POST", SOL, 400, at="hyperparameters.trend_bias",
        json=_hp(trend_bias="perhaps")),
    Bad("sol-scaling-workers-0", "POST", SOL, 400, at="scaling.workers",
        json=_sol(scaling={"workers": 0})),
    Bad("sol-scaling-workers-257", "POST", SOL, 400, at="scaling.workers",
        json=_sol(scaling={"workers": 257})),
    Bad("sol-scaling-cpus-0", "POST", SOL, 400, at="scaling.cpus_per_worker",
        json=_sol(scaling={"cpus_per_worker": 0})),
    Bad("sol-scaling-negative-gpus", "POST", SOL, 400, at="scaling.gpus_per_worker",
        json=_sol(scaling={"gpus_per_worker": -1})),
    Bad("sol-scaling-unknown-field", "POST", SOL, 400, at="scaling.nodes",
        json=_sol(scaling={"nodes": 4})),
    Bad("sol-scaling-not-an-object", "POST", SOL, 400, at="scaling", json=_sol(scaling=4)),
    Bad("sol-evaluation-unknown-mode", "POST", SOL, 400, at="evaluation.mode",
        json=_sol(evaluation={"mode": "leave-one-out"})),
    Bad("sol-evaluation-test-fraction-0", "POST", SOL, 400, at="evaluation.test_fraction",
        json=_sol(evaluation={"test_fraction": 0})),
    Bad("sol-evaluation-depth-10", "POST", SOL, 400, at="evaluation.depth",
        json=_sol(evaluation={"depth": 10})),
    Bad("sol-evaluation-unknown-field", "POST", SOL, 400, at="evaluation.folds",
        json=_sol(evaluation={"folds": 5})),
    Bad("sol-description-too-long", "POST", SOL, 400, at="description",
        json=_sol(description="d" * 1001)),
    Bad("sol-json-array", "POST", SOL, 400, json=[_sol()]),
    Bad("sol-malformed-json", "POST", SOL, 400, content=b'{"name": "x", "recipe": ', headers=JSON),
    Bad("sol-deeply-nested-hyperparameters", "POST", SOL, 400,
        content=b'{"name": "deep", "recipe": "hrnn-meta", "hyperparameters": {"x": '
                + b"[" * 100_000 + b"]" * 100_000 + b"}}", headers=JSON),
    Bad("sol-no-body", "POST", SOL, 400),
    Bad("sol-idempotency-key-too-long", "POST", SOL, 400, "idempotency",
        json=_sol(), headers={"Idempotency-Key": "k" * 201}),
    Bad("solutions-max-results-0", "GET", SOL + "?max_results=0", 400, "max_results"),
    Bad("solutions-next-token-too-long", "GET", SOL + "?next_token=" + "t" * 64, 400, "next_token"),
    # versions
    Bad("version-unknown-field", "POST", VER, 400, at="colour",
        json={"training_mode": "full", "colour": "red"}),
    Bad("version-unknown-training-mode", "POST", VER, 400, at="training_mode",
        json={"training_mode": "incremental"}),
    Bad("version-training-mode-not-a-string", "POST", VER, 400, at="training_mode",
        json={"training_mode": 1}),
    Bad("version-json-array", "POST", VER, 400, json=[{"training_mode": "full"}]),
    Bad("version-json-string", "POST", VER, 400, json="full"),
    Bad("version-malformed-json", "POST", VER, 400, content=b'{"training_mode": ', headers=JSON),
    Bad("version-idempotency-key-too-long", "POST", VER, 400, "idempotency",
        json={}, headers={"Idempotency-Key": "k" * 201}),
    Bad("versions-max-results-0", "GET", VER + "?max_results=0", 400, "max_results"),
    Bad("versions-max-results-5000", "GET", VER + "?max_results=5000", 400, "max_results"),
    Bad("versions-next-token-too-long", "GET", VER + "?next_token=" + "t" * 64, 400, "next_token"),
    Bad("recipe-64-chars", "GET", "/v1/recipes/" + "r" * 64, 400, "recipe"),
    # campaigns: the body, then the version it deploys (which must exist and be ACTIVE)
    Bad("camp-unknown-field", "POST", CAMP, 400, at="colour", json=_camp(colour="red")),
    Bad("camp-missing-name", "POST", CAMP, 400, at="name",
        json={"solution": "{solution}", "solution_version": "{version}"}),
    Bad("camp-missing-solution-version", "POST", CAMP, 400, at="solution_version",
        json={"name": "{new}", "solution": "{solution}"}),
    Bad("camp-name-leading-dash", "POST", CAMP, 400, at="name", json=_camp(name="-camp")),
    Bad("camp-name-with-slash", "POST", CAMP, 400, at="name", json=_camp(name="a/b")),
    Bad("camp-name-64-chars", "POST", CAMP, 400, at="name", json=_camp(name="c" * 64)),
    Bad("camp-name-not-a-string", "POST", CAMP, 400, at="name", json=_camp(name=7)),
    Bad("camp-min-replicas-0", "POST", CAMP, 400, at="min_replicas", json=_camp(min_replicas=0)),
    Bad("camp-min-replicas-fractional", "POST", CAMP, 400, at="min_replicas",
        json=_camp(min_replicas=1.5)),
    Bad("camp-max-replicas-101", "POST", CAMP, 400, at="max_replicas", json=_camp(max_replicas=101)),
    Bad("camp-max-replicas-below-min", "POST", CAMP, 400, mentions=("max_replicas", "min_replicas"),
        json=_camp(min_replicas=3, max_replicas=2)),
    Bad("camp-max-ongoing-requests-0", "POST", CAMP, 400, at="max_ongoing_requests",
        json=_camp(max_ongoing_requests=0)),
    Bad("camp-max-queued-requests-negative", "POST", CAMP, 400, at="max_queued_requests",
        json=_camp(max_queued_requests=-1)),
    Bad("camp-unknown-solution", "POST", CAMP, 400, at="solution", json=_camp(solution="{new}")),
    Bad("camp-unknown-version", "POST", CAMP, 400, at="solution_version",
        json=_camp(solution_version="v-0000000000000000")),
    Bad("camp-version-not-active", "POST", CAMP, 400, at="solution_version",
        mentions=("CREATE_FAILED", "ACTIVE"), json=_camp(solution_version="{failed_version}")),
    Bad("camp-json-array", "POST", CAMP, 400, json=[_camp()]),
    Bad("camp-malformed-json", "POST", CAMP, 400, content=b'{"name": "c", "solution": ', headers=JSON),
    Bad("camp-no-body", "POST", CAMP, 400),
    Bad("camp-idempotency-key-too-long", "POST", CAMP, 400, "idempotency",
        json=_camp(), headers={"Idempotency-Key": "k" * 201}),
    Bad("campaigns-max-results-0", "GET", CAMP + "?max_results=0", 400, "max_results"),
    Bad("campaigns-next-token-too-long", "GET", CAMP + "?next_token=" + "t" * 64, 400, "next_token"),
    # a campaign update: checked before the campaign's status (the target is CREATE_FAILED)
    Bad("camp-update-empty-body", "PATCH", CAMP_ONE, 400, "nothing to update", json={}),
    Bad("camp-update-all-null", "PATCH", CAMP_ONE, 400, "nothing to update",
        json={"max_replicas": None}),
    Bad("camp-update-no-body", "PATCH", CAMP_ONE, 400),
    Bad("camp-update-unknown-field", "PATCH", CAMP_ONE, 400, at="colour", json={"colour": "red"}),
    Bad("camp-update-rename", "PATCH", CAMP_ONE, 400, at="name", json={"name": "{new}"}),
    Bad("camp-update-min-replicas-0", "PATCH", CAMP_ONE, 400, at="min_replicas",
        json={"min_replicas": 0}),
    Bad("camp-update-max-queued-requests-negative", "PATCH", CAMP_ONE, 400, at="max_queued_requests",
        json={"max_queued_requests": -1}),
    Bad("camp-update-min-above-current-max", "PATCH", CAMP_ONE, 400,
        mentions=("max_replicas", "min_replicas"), json={"min_replicas": 3}),
    Bad("camp-update-max-below-min", "PATCH", CAMP_ONE, 400, mentions=("max_replicas", "min_replicas"),
        json={"min_replicas": 4, "max_replicas": 2}),
    Bad("camp-update-unknown-version", "PATCH", CAMP_ONE, 400, at="solution_version",
        json={"solution_version": "v-0000000000000000"}),
    Bad("camp-update-version-not-active", "PATCH", CAMP_ONE, 400, at="solution_version",
        json={"solution_version": "{failed_version}"}),
    Bad("camp-update-json-array", "PATCH", CAMP_ONE, 400, json=[{"max_replicas": 2}]),
    # events: the request, then each event (`events.<i>.<field>`)
    Bad("events-none", "POST", EVENTS, 400, at="events", json=_events(events=[])),
    Bad("events-11", "POST", EVENTS, 400, at="events",
        json=_events(*({"item_id": f"i{i}"} for i in range(11)))),
    Bad("events-missing", "POST", EVENTS, 400, at="events",
        json={"user_id": "u-val", "session_id": "s-val"}),
    Bad("events-not-a-list", "POST", EVENTS, 400, at="events", json=_events(events={"item_id": "i1"})),
    Bad("events-missing-user-id", "POST", EVENTS, 400, at="user_id",
        json={"session_id": "s-val", "events": [{"item_id": "i1"}]}),
    Bad("events-empty-user-id", "POST", EVENTS, 400, at="user_id", json=_events(user_id="")),
    Bad("events-user-id-257-chars", "POST", EVENTS, 400, at="user_id", json=_events(user_id="u" * 257)),
    Bad("events-missing-session-id", "POST", EVENTS, 400, at="session_id",
        json={"user_id": "u-val", "events": [{"item_id": "i1"}]}),
    Bad("events-empty-session-id", "POST", EVENTS, 400, at="session_id", json=_events(session_id="")),
    Bad("events-unknown-field", "POST", EVENTS, 400, at="colour", json=_events(colour="red")),
    Bad("event-missing-item-id", "POST", EVENTS, 400, at="events.0.item_id",
        json=_events({"event_id": "e-val"})),
    Bad("event-empty-item-id", "POST", EVENTS, 400, at="events.0.item_id", json=_event(item_id="")),
    Bad("event-item-id-257-chars", "POST", EVENTS, 400, at="events.0.item_id",
        json=_event(item_id="i" * 257)),
    Bad("event-empty-event-id", "POST", EVENTS, 400, at="events.0.event_id", json=_event(event_id="")),
    Bad("event-negative-timestamp", "POST", EVENTS, 400, at="events.0.timestamp",
        json=_event(timestamp=-1)),
    Bad("event-timestamp-after-year-3000", "POST", EVENTS, 400, at="events.0.timestamp",
        json=_event(timestamp=32503680001)),
    Bad("event-timestamp-a-word", "POST", EVENTS, 400, at="events.0.timestamp",
        json=_event(timestamp="yesterday")),
    Bad("event-value-nan", "POST", EVENTS, 400, at="events.0.event_value",
        content=_events_bytes(b"NaN"), headers=JSON),
    Bad("event-value-infinity", "POST", EVENTS, 400, at="events.0.event_value",
        content=_events_bytes(b"-Infinity"), headers=JSON),
    Bad("event-value-a-word", "POST", EVENTS, 400, at="events.0.event_value", json=_event(event_value="x")),
    Bad("event-type-257-chars", "POST", EVENTS, 400, at="events.0.event_type",
        json=_event(event_type="t" * 257)),
    Bad("event-unknown-field", "POST", EVENTS, 400, at="events.0.colour", json=_event(colour="red")),
    Bad("event-unknown-field-in-third-event", "POST", EVENTS, 400, at="events.2.colour",
        json=_events({"item_id": "i1"}, {"item_id": "i2"}, {"item_id": "i3", "colour": "red"})),
    Bad("event-not-an-object", "POST", EVENTS, 400, at="events.0", json=_events("i1")),
    Bad("events-json-array", "POST", EVENTS, 400, json=[_event()]),
    Bad("events-malformed-json", "POST", EVENTS, 400, content=b'{"user_id": "u", "events": [',
        headers=JSON),
    Bad("events-no-body", "POST", EVENTS, 400),
    # batch inference jobs: the body, then the solution (a next-item one) and version it runs
    Bad("bij-unknown-field", "POST", BIJ, 400, at="colour", json=_bij(colour="red")),
    Bad("bij-missing-name", "POST", BIJ, 400, at="name", json={"solution": "{solution}"}),
    Bad("bij-missing-solution", "POST", BIJ, 400, at="solution", json={"name": "{new}"}),
    Bad("bij-num-results-0", "POST", BIJ, 400, at="num_results", json=_bij(num_results=0)),
    Bad("bij-num-results-501", "POST", BIJ, 400, at="num_results", json=_bij(num_results=501)),
    Bad("bij-num-results-huge", "POST", BIJ, 400, at="num_results", json=_bij(num_results=10**40)),
    Bad("bij-num-results-a-string", "POST", BIJ, 400, at="num_results", json=_bij(num_results="5")),
    Bad("bij-users-not-a-list", "POST", BIJ, 400, at="users", json=_bij(users="u1")),
    Bad("bij-users-empty", "POST", BIJ, 400, at="users", json=_bij(users=[])),
    Bad("bij-user-not-a-string", "POST", BIJ, 400, at="users.1", json=_bij(users=["u1", 7])),
    Bad("bij-user-empty", "POST", BIJ, 400, at="users.0", json=_bij(users=[""])),
    Bad("bij-user-257-chars", "POST", BIJ, 400, at="users.0", json=_bij(users=["u" * 257])),
    Bad("bij-segment-size-0", "POST", BIJ, 400, at="segment_size", json=_bij(segment_size=0)),
    Bad("bij-segment-size-on-next-item", "POST", BIJ, 400, at="segment_size", mentions=("user-tags",),
        json=_bij(segment_size=10)),
    Bad("bij-unknown-solution", "POST", BIJ, 404, at="solution", json=_bij(solution="{new}")),
    Bad("bij-unknown-version", "POST", BIJ, 404, at="solution_version",
        json=_bij(solution_version="v-0000000000000000")),
    Bad("bij-version-not-active", "POST", BIJ, 409, at="solution_version",
        mentions=("CREATE_FAILED", "ACTIVE"), json=_bij(solution_version="{failed_version}")),
    Bad("bij-json-array", "POST", BIJ, 400, json=[_bij()]),
    Bad("bij-no-body", "POST", BIJ, 400),
    Bad("bij-idempotency-key-too-long", "POST", BIJ, 400, "idempotency",
        json=_bij(), headers={"Idempotency-Key": "k" * 201}),
    Bad("bijs-max-results-0", "GET", BIJ + "?max_results=0", 400, "max_results"),
    Bad("bijs-next-token-too-long", "GET", BIJ + "?next_token=" + "t" * 64, 400, "next_token"),
    Bad("bij-unknown-output", "GET", BIJ + "/some-job/outputs/everything", 400, "output"),
]


def _fill(obj: Any, names: dict[str, str]) -> Any:
    """`obj` with "{group}", "{solution}", "{campaign}"... and "{new}" (a fresh name) filled in,
    recursively."""
    if isinstance(obj, str):
        for slot, value in names.items():
            obj = obj.replace("{" + slot + "}", value)
        return obj
    if isinstance(obj, list):
        return [_fill(v, names) for v in obj]
    if isinstance(obj, dict):
        return {k: _fill(v, names) for k, v in obj.items()}
    return obj


@pytest.fixture(scope="module")
def validation_group(http: httpx.Client, platform: Platform) -> str:
    """A's group with an interactions dataset and an import job, the target of bad requests."""
    group = make_group(http, platform.key_a, kind="interactions")
    import_now(http, platform.key_a, group, upload(http, platform.key_a))
    return group


@pytest.fixture(scope="module")
def validation_solution(http: httpx.Client, platform: Platform, validation_group: str) -> str:
    """A solution in the validation group, the target of bad version requests."""
    return make_solution(http, platform.key_a, validation_group)


@pytest.fixture(scope="module")
def validation_campaign(http: httpx.Client, platform: Platform, validation_group: str,
                        validation_solution: str) -> dict[str, str]:
    """An ACTIVE and a CREATE_FAILED version of the validation solution, and a (failed) campaign
    of the ACTIVE one: the targets of bad campaign requests."""
    version = put_version(platform, validation_group, validation_solution)
    failed = put_version(platform, validation_group, validation_solution, "CREATE_FAILED")
    campaign = make_campaign(http, platform.key_a, validation_group, validation_solution, version)
    return {"version": version, "failed_version": failed, "campaign": campaign}


@pytest.mark.parametrize("bad", VALIDATION, ids=lambda b: b.id)
def test_request_validation(world: World, validation_group: str, validation_solution: str,
                            validation_campaign: dict[str, str], bad: Bad) -> None:
    key = world.platform.key_a
    names = {"group": validation_group, "solution": validation_solution, **validation_campaign}
    before = store_files(world.root, "tenants")
    kwargs: dict[str, Any] = {"headers": {**bearer(key), **bad.headers}}
    if bad.json is not None:
        kwargs["json"] = _fill(bad.json, {**names, "new": unique()})
    if bad.content is not None:
        kwargs["content"] = bad.content
    r = world.http.request(bad.method, _fill(bad.path, names), **kwargs)
    expected = bad.status if isinstance(bad.status, tuple) else (bad.status,)
    assert r.status_code in expected, (r.status_code, r.text)
    err = error_of(r)
    if bad.hint:
        assert bad.hint.lower() in f"{err['message']} {err['field']}".lower(), err
    if bad.at:
        assert err["field"] == bad.at, err
        assert bad.at in err["message"], err
    for word in bad.mentions:
        assert word in err["message"], err
    assert store_files(world.root, "tenants") == before, "a refused request wrote"
    r = world.http.get(f"{G}/{validation_group}/import-jobs", headers=bearer(key))
    assert r.status_code == 200 and len(r.json()["items"]) == 1


def test_chunked_body_over_1mib_is_413(world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "chunked-big", "description": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = world.http.post(G, content=chunks(), headers={**bearer(world.platform.key_a), **JSON})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    assert error_of(r)["type"] == "payload_too_large"


def test_unauthenticated_is_checked_before_the_body(world: World) -> None:
    """Without a key, a bad body is a 401, not a validation error that echoes the input."""
    r = world.http.post(G, json={"name": 5, "colour": "red"})
    assert_unauthenticated(r)


# ---- 4. duplicates ------------------------------------------------------------------------------

def test_duplicate_group_is_409(world: World) -> None:
    http, key = world.http, world.platform.key_a
    group = make_group(http, key)
    for headers in ({}, {"Idempotency-Key": uuid.uuid4().hex}):
        r = http.post(G, json={"name": group}, headers={**bearer(key), **headers})
        assert r.status_code == 409, r.text
        err = error_of(r)
        assert err["type"] == "conflict"
        assert group in err["message"] and "already exists" in err["message"]


def _race(n: int, send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """`send(i)` for i < n on n threads released together."""
    barrier = threading.Barrier(n)

    def run(i: int) -> httpx.Response:
        barrier.wait()
        return send(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _campaign_create(n: Names) -> tuple[str, dict[str, Any]]:
    return f"{G}/{n.group}/campaigns", _campaign_body(n)


RACES = {  # what is created -> (path, body) for a fresh target in A's namespace
    "group": lambda w: (G, {"name": unique()}),
    "dataset": lambda w: (f"{G}/{make_group(w.http, w.platform.key_a)}/datasets",
                          {"kind": "interactions", "schema": INTERACTIONS_SCHEMA}),
    "import-job": lambda w: (f"{G}/{make_group(w.http, w.platform.key_a, kind='interactions')}"
                             "/import-jobs", _job_body(replace(w.a, job=unique("job")))),
    "solution": lambda w: (f"{G}/{make_group(w.http, w.platform.key_a)}/solutions",
                           {"name": unique("sol"), "recipe": RECIPE, "hyperparameters": {"epochs": 3}}),
    "campaign": lambda w: _campaign_create(_new_active_version(w)),
    "batch-inference-job": lambda w: (lambda n: (f"{G}/{n.group}/batch-inference-jobs", _batch_body(
        replace(n, batch=unique("bij")))))(_new_active_version(w)),
}


@pytest.mark.parametrize("keys", ["distinct-keys", "no-keys"])
@pytest.mark.parametrize("what", RACES)
def test_racing_creates_make_exactly_one(world: World, what: str, keys: str) -> None:
    http, key = world.http, world.platform.key_a
    path, body = RACES[what](world)
    idem = [uuid.uuid4().hex if keys == "distinct-keys" else None for _ in range(16)]

    def send(i: int) -> httpx.Response:
        extra = {"Idempotency-Key": idem[i]} if idem[i] else {}
        return http.post(path, json=body, headers={**bearer(key), **extra})

    answers = _race(16, send)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 15, [(r.status_code, r.text) for r in answers]
    winner = next(i for i, r in enumerate(answers) if r.status_code == 201)
    for r in answers:
        if r.status_code == 409:
            assert error_of(r)["type"] == "conflict"
    if what == "import-job":
        wait_job(http, key, path.split("/")[3], body["name"])
    if keys == "no-keys":
        return
    created = answers[winner].json()
    again = send(winner)  # the winner's retry: the same resource, not a conflict
    assert again.status_code == 200, again.text
    assert (again.json()["name"], again.json()["created_at"]) == (created["name"],
                                                                  created["created_at"])
    if what == "group":
        assert again.json() == created
    loser = next(i for i, r in enumerate(answers) if r.status_code == 409)
    assert send(loser).status_code == 409  # a loser's key never created anything


def test_duplicate_solution_is_409_and_a_retry_returns_it(world: World) -> None:
    http, key = world.http, world.platform.key_a
    group = make_group(http, key)
    path, idem = f"{G}/{group}/solutions", uuid.uuid4().hex
    body = {"name": unique("sol"), "recipe": RECIPE, "hyperparameters": {"epochs": 3}}
    created = http.post(path, json=body, headers={**bearer(key), "Idempotency-Key": idem})
    assert created.status_code == 201, created.text
    for headers, changed in (({}, {}), ({"Idempotency-Key": uuid.uuid4().hex}, {}),
                             ({}, {"hyperparameters": {"epochs": 9}})):
        r = http.post(path, json={**body, **changed}, headers={**bearer(key), **headers})
        assert r.status_code == 409, r.text
        err = error_of(r)
        assert err["type"] == "conflict"
        assert body["name"] in err["message"] and "already exists" in err["message"]
    again = http.post(path, json=body, headers={**bearer(key), "Idempotency-Key": idem})
    assert again.status_code == 200, again.text
    assert again.json() == created.json()
    assert http.get(f"{path}/{body['name']}", headers=bearer(key)).json() == created.json()
    assert created.json()["hyperparameters"]["epochs"] == 3
    # The same name in another group is another solution.
    other = make_group(http, key)
    r = http.post(f"{G}/{other}/solutions", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text


def test_version_idempotency_key_names_one_version(world: World) -> None:
    """Racing creates with one Idempotency-Key: one version, the same name in every answer; a
    later retry returns it; another key trains another version."""
    http, key = world.http, world.platform.key_a
    n = _new_trainable_solution(world)
    path, idem = f"{_sol_path(n)}/versions", uuid.uuid4().hex

    def send(_: int) -> httpx.Response:
        return http.post(path, json={"training_mode": "full"},
                         headers={**bearer(key), "Idempotency-Key": idem})

    answers = _race(8, send)
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201], \
        [(r.status_code, r.text) for r in answers]
    names = {r.json()["name"] for r in answers}
    assert len(names) == 1, names
    (name,) = names
    assert list_names(http, key, path) == {name}
    retry = send(0)
    assert retry.status_code == 200, retry.text
    assert retry.json()["name"] == name and retry.json()["status"] == "CREATE_FAILED"
    other = http.post(path, json={"training_mode": "full"},
                      headers={**bearer(key), "Idempotency-Key": uuid.uuid4().hex})
    assert other.status_code == 201 and other.json()["name"] != name, other.text
    assert list_names(http, key, path) == {name, other.json()["name"]}
    # Without a key every create is a new version.
    first, second = (http.post(path, headers=bearer(key)) for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["name"] != second.json()["name"]
    assert len(list_names(http, key, path)) == 4


def test_version_idempotency_keys_are_per_tenant(world: World) -> None:
    """B replaying A's Idempotency-Key on its own same-named solution trains B's own version."""
    http, p = world.http, world.platform
    a = _new_trainable_solution(world)
    b_group = make_group(http, p.key_b, kind="interactions")
    import_now(http, p.key_b, b_group, upload(http, p.key_b, TRAINABLE_CSV))
    make_solution(http, p.key_b, b_group, a.solution)
    idem = uuid.uuid4().hex
    ra = http.post(f"{_sol_path(a)}/versions", headers={**bearer(p.key_a), "Idempotency-Key": idem})
    rb = http.post(f"{G}/{b_group}/solutions/{a.solution}/versions",
                   headers={**bearer(p.key_b), "Idempotency-Key": idem})
    assert (ra.status_code, rb.status_code) == (201, 201), (ra.text, rb.text)
    assert (ra.json()["dataset_group"], rb.json()["dataset_group"]) == (a.group, b_group)
    assert http.get(f"{_sol_path(a)}/versions/{ra.json()['name']}",
                    headers=bearer(p.key_a)).json() == ra.json()


def test_idempotency_keys_are_per_tenant(world: World) -> None:
    """B replaying A's key and name creates B's own group; it never returns A's."""
    http, p = world.http, world.platform
    name, idem = unique(), uuid.uuid4().hex
    a = http.post(G, json={"name": name}, headers={**bearer(p.key_a), "Idempotency-Key": idem})
    b = http.post(G, json={"name": name}, headers={**bearer(p.key_b), "Idempotency-Key": idem})
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["created_at"] != b.json()["created_at"]
    assert http.delete(f"{G}/{name}", headers=bearer(p.key_b)).status_code == 204
    assert http.get(f"{G}/{name}", headers=bearer(p.key_a)).json() == a.json()


def test_delete_group_with_datasets_needs_force(world: World) -> None:
    http, key = world.http, world.platform.key_a
    group = make_group(http, key, kind="interactions")
    r = http.delete(f"{G}/{group}", headers=bearer(key))
    assert r.status_code == 409, r.text
    err = error_of(r)
    assert err["type"] == "conflict" and "interactions" in err["message"]
    assert http.get(f"{G}/{group}/datasets/interactions", headers=bearer(key)).status_code == 200

    r = http.delete(f"{G}/{group}", params={"force": "true"}, headers=bearer(key))
    assert r.status_code == 204, r.text
    for path in (f"{G}/{group}", f"{G}/{group}/datasets", f"{G}/{group}/datasets/interactions"):
        r = http.get(path, headers=bearer(key))
        assert r.status_code == 404, (path, r.text)
        assert error_of(r)["type"] == "not_found"
    assert group not in list_names(http, key, G)


def test_duplicate_campaign_is_409_and_a_retry_returns_it(world: World) -> None:
    http, key = world.http, world.platform.key_a
    n = _new_active_version(world)
    path, idem = f"{G}/{n.group}/campaigns", uuid.uuid4().hex
    body = _campaign_body(n)
    created = http.post(path, json=body, headers={**bearer(key), "Idempotency-Key": idem})
    assert created.status_code == 201, created.text
    for headers, changed in (({}, {}), ({"Idempotency-Key": uuid.uuid4().hex}, {}),
                             ({}, {"max_replicas": 3})):
        r = http.post(path, json={**body, **changed}, headers={**bearer(key), **headers})
        assert r.status_code == 409, r.text
        err = error_of(r)
        assert err["type"] == "conflict"
        assert n.campaign in err["message"] and "already exists" in err["message"]
    again = http.post(path, json=body, headers={**bearer(key), "Idempotency-Key": idem})
    assert again.status_code == 200, again.text
    assert again.json() == created.json()
    assert list_names(http, key, path) == {n.campaign}
    # The version is deployed: its solution cannot go until the campaign does.
    r = http.delete(_sol_path(n), headers=bearer(key))
    assert r.status_code == 409 and n.campaign in error_of(r)["message"], r.text
    assert http.delete(_campaign_path(n), headers=bearer(key)).status_code == 204
    assert http.delete(_campaign_path(n), headers=bearer(key)).status_code == 404
    assert http.delete(_sol_path(n), headers=bearer(key)).status_code == 204


def test_active_campaign_update_that_cannot_deploy_is_not_a_5xx(world: World) -> None:
    """An ACTIVE campaign (as Ray Serve leaves it) updated where it cannot be deployed (this
    platform has no Serve, e.g. a store first served by the Ray executor): the update is refused
    with a typed error or recorded as failed on the campaign (as a create is), never an internal
    error, and the campaign is not left with an update "rolling out" forever (which would refuse
    every later update with a 409)."""
    p = world.platform
    n = _new_campaign(world)
    registry_of(p).update(Keys("tenant-a").campaign_record(n.group, n.campaign), lambda d: {
        **d, "status": "ACTIVE", "failure_reason": None, "updated_at": now_iso()})
    try:
        # its own client: a 500 makes the server drop the connection
        with httpx.Client(base_url=p.url, timeout=30) as http:
            r = http.patch(_campaign_path(n), json={"max_replicas": 2}, headers=bearer(p.key_a))
            assert r.status_code != 500, (r.status_code, r.text)
            if r.status_code >= 400:
                assert error_of(r)["type"] != "internal_error", r.text
            doc = http.get(_campaign_path(n), headers=bearer(p.key_a)).json()
            assert doc["status"] == "ACTIVE" and doc["pending_update"] is None, doc
    finally:
        with httpx.Client(base_url=p.url, timeout=30) as http:
            assert http.delete(f"{G}/{n.group}", params={"force": "true"},
                               headers=bearer(p.key_a)).status_code == 204


def test_event_ids_deduplicate_per_user(world: World) -> None:
    """An event id seen before for the user is a duplicate, in the same request or a later one,
    before and after the log is flushed; the same id for another user is another event; events
    without an id are all new. Each accepted event lands in the dataset exactly once."""
    http, key, root = world.http, world.platform.key_a, world.root
    group = make_group(http, key, kind="interactions")
    path = f"{G}/{group}/events"

    def put(body: dict[str, Any]) -> dict[str, int]:
        r = http.post(path, json=body, headers=bearer(key))
        assert r.status_code == 200, r.text
        return r.json()

    assert put(events_body("u1", "e1")) == {"accepted": 1, "duplicates": 0}
    assert put(events_body("u1", "e1")) == {"accepted": 0, "duplicates": 1}  # a retry
    assert put(events_body("u2", "e1")) == {"accepted": 1, "duplicates": 0}  # another user
    twice = events_body("u1", "e2")
    twice["events"].append(dict(twice["events"][0]))
    assert put(twice) == {"accepted": 1, "duplicates": 1}  # twice in one request
    three = events_body("u1", "e3", n=3)  # e3, e3-1, e3-2, then a repeat of e1
    three["events"].append(events_body("u1", "e1")["events"][0])
    assert put(three) == {"accepted": 3, "duplicates": 1}
    assert put(events_body("u1", None)) == {"accepted": 1, "duplicates": 0}  # no ids: always new
    assert put(events_body("u1", None)) == {"accepted": 1, "duplicates": 0}
    wait_flushed(http, root, key, "tenant-a", group, 8)
    for user, event_id in (("u1", "e1"), ("u2", "e1"), ("u1", "e2"), ("u1", "e3-2")):
        assert put(events_body(user, event_id)) == {"accepted": 0, "duplicates": 1}  # flushed
    wait_flushed(http, root, key, "tenant-a", group, 8)  # and nothing new to flush


def test_racing_events_with_one_id_store_one(world: World) -> None:
    http, key = world.http, world.platform.key_a
    group = make_group(http, key, kind="interactions")
    answers = _race(16, lambda _: http.post(f"{G}/{group}/events", json=events_body("u1", "e-race"),
                                            headers=bearer(key)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sorted((r.json()["accepted"], r.json()["duplicates"]) for r in answers) == \
        [(0, 1)] * 15 + [(1, 0)]
    wait_flushed(http, world.root, key, "tenant-a", group, 1)


def test_events_need_an_interactions_dataset(world: World) -> None:
    """A group without an interactions dataset takes no events: a 400 saying so; nothing written."""
    http, key = world.http, world.platform.key_a
    for kind in (None, "items"):
        group = make_group(http, key, kind=kind)
        before = store_files(world.root, "tenants")
        r = http.post(f"{G}/{group}/events", json=events_body(), headers=bearer(key))
        assert r.status_code == 400, r.text
        err = error_of(r)
        assert err["type"] == "invalid_input" and "no interactions dataset" in err["message"], err
        assert store_files(world.root, "tenants") == before
    r = http.post(f"{G}/{unique()}/events", json=events_body(), headers=bearer(key))
    assert r.status_code == 404 and error_of(r)["type"] == "not_found", r.text


def test_events_must_fill_non_nullable_fields(world: World) -> None:
    """Event type and value are optional unless the interactions schema makes them non-nullable
    (the shared INTERACTIONS_SCHEMA does not): then an event without one refuses the whole
    request, naming it as `events.<i>.<field>` (as every other validation error)."""
    assert not any(f.get("nullable") is False for f in INTERACTIONS_SCHEMA["fields"])
    http, key = world.http, world.platform.key_a
    strict = {"fields": [{**f, "nullable": False} if f["name"] in ("event_type", "event_value")
                         else f for f in INTERACTIONS_SCHEMA["fields"]]}
    group = make_group(http, key)
    r = http.post(f"{G}/{group}/datasets", json={"kind": "interactions", "schema": strict},
                  headers=bearer(key))
    assert r.status_code == 201, r.text
    path = f"{G}/{group}/events"
    full = {"item_id": "i1", "event_type": "click", "event_value": 1.0}
    before = store_files(world.root, "tenants")
    for events, at in (([full, {"item_id": "i2", "event_value": 1.0}], "events.1.event_type"),
                       ([{"item_id": "i2", "event_type": "click"}], "events.0.event_value"),
                       ([full, {**full, "event_type": None}], "events.1.event_type")):
        body = {"user_id": "u1", "session_id": "s1", "events": events}
        r = http.post(path, json=body, headers=bearer(key))
        assert r.status_code == 400, r.text
        err = error_of(r)
        assert err["field"] == at and at in err["message"], err
        assert store_files(world.root, "tenants") == before, "a refused request wrote"
    r = http.post(path, json={"user_id": "u1", "session_id": "s1", "events": [full]},
                  headers=bearer(key))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
    # the shared schema: both optional
    lax = make_group(http, key, kind="interactions")
    r = http.post(f"{G}/{lax}/events", headers=bearer(key),
                  json={"user_id": "u1", "session_id": "s1", "events": [{"item_id": "i1"}]})
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
    for g in (group, lax):
        wait_flushed(http, world.root, key, "tenant-a", g, 1)
