"""Idempotency-Key over real HTTP: a key is bound to the request body it first came with.

The same key with the same body (in canonical form: defaults filled in, keys in any order) is a
retry and returns what the first request created (200); the same key with a different body is
a client bug and answers 409 `idempotency_key_reused` naming the key, as payment APIs do; the
resource is left as the first request made it.

The SDK sends a fresh key on every create and the same key on each of its retries, so a create
whose answer was lost on the way back (the server did create it) still succeeds: a loopback
proxy in front of the control plane drops the first answer to every POST.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sdk import Client, ConflictError
from tests.conftest import INTERACTIONS_SCHEMA, Platform, unique
from tests.integration.test_isolation import (
    ITEMS_SCHEMA,
    RECIPE,
    TRAINABLE_CSV,
    G,
    bearer,
    error_of,
    import_now,
    make_group,
    make_solution,
    put_version,
    upload,
    wait_job,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        yield client


@dataclass
class Create:
    """A create to replay: its path, its body, a body differing in one field, and a body that
    differs only in form (what the server reads is the same request)."""

    path: str
    body: dict[str, Any]
    changed: dict[str, Any]
    same: dict[str, Any]
    group: str


def _group(http: httpx.Client, p: Platform) -> Create:
    name = unique()
    return Create(G, {"name": name}, {"name": name, "description": "another"},
                  {"description": "", "name": name}, "")


def _dataset(http: httpx.Client, p: Platform) -> Create:
    group = make_group(http, p.key_a)
    wider = {"fields": [*ITEMS_SCHEMA["fields"], {"name": "genre", "type": "string"}]}
    return Create(f"{G}/{group}/datasets", {"kind": "items", "schema": ITEMS_SCHEMA},
                  {"kind": "items", "schema": wider},
                  {"schema": {**ITEMS_SCHEMA, "categorical_delimiter": "|"}, "kind": "items"}, group)


def _import_job(http: httpx.Client, p: Platform) -> Create:
    group = make_group(http, p.key_a, kind="interactions")
    body = {"name": unique("job"), "dataset": "interactions",
            "source": {"upload_id": upload(http, p.key_a)}}
    return Create(f"{G}/{group}/import-jobs", body, {**body, "mode": "incremental"},
                  {**body, "mode": "full"}, group)


def _solution(http: httpx.Client, p: Platform) -> Create:
    group = make_group(http, p.key_a)
    body = {"name": unique("sol"), "recipe": RECIPE, "hyperparameters": {"epochs": 1, "batch_size": 64}}
    return Create(f"{G}/{group}/solutions", body, {**body, "hyperparameters": {"epochs": 2}},
                  {**body, "hyperparameters": {"batch_size": 64, "epochs": 1}, "description": ""}, group)


def _campaign(http: httpx.Client, p: Platform) -> Create:
    group = make_group(http, p.key_a, kind="interactions")
    solution = make_solution(http, p.key_a, group)
    body = {"name": unique("camp"), "solution": solution,
            "solution_version": put_version(p, group, solution)}
    return Create(f"{G}/{group}/campaigns", body, {**body, "max_replicas": 2},
                  {**body, "min_replicas": 1, "max_queued_requests": 64}, group)


CREATES: dict[str, Callable[[httpx.Client, Platform], Create]] = {
    "dataset-group": _group, "dataset": _dataset, "import-job": _import_job,
    "solution": _solution, "campaign": _campaign,
}


@pytest.mark.parametrize("what", CREATES)
def test_a_reused_key_with_another_body_is_409_naming_the_key(http: httpx.Client, platform: Platform,
                                                             what: str) -> None:
    c = CREATES[what](http, platform)
    key = f"idem-{uuid.uuid4().hex}"
    headers = {**bearer(platform.key_a), "Idempotency-Key": key}
    first = http.post(c.path, json=c.body, headers=headers)
    assert first.status_code == 201, first.text
    if what == "import-job":
        wait_job(http, platform.key_a, c.group, c.body["name"])

    r = http.post(c.path, json=c.changed, headers=headers)
    assert r.status_code == 409, r.text
    err = error_of(r)
    assert err["type"] == "idempotency_key_reused", err
    assert key in err["message"] and "different request body" in err["message"], err
    assert err["field"] == "Idempotency-Key"

    name = c.body.get("name") or c.body["kind"]
    stored = http.get(f"{c.path}/{name}", headers=bearer(platform.key_a)).json()
    for retry in (c.body, c.same):  # a retry, and the same request written differently
        again = http.post(c.path, json=retry, headers=headers)
        assert again.status_code == 200, again.text
        assert (again.json()["name"], again.json()["created_at"]) == (stored["name"], stored["created_at"])
    after = http.get(f"{c.path}/{name}", headers=bearer(platform.key_a)).json()
    assert {k: after[k] for k in c.changed} == {k: stored[k] for k in c.changed}  # the first body's


def test_version_key_reused_on_another_solution_names_another_version(http: httpx.Client,
                                                                      platform: Platform) -> None:
    """A version's key names the version within its solution: the same key on another solution is
    another request, never a replay of the first."""
    group = make_group(http, platform.key_a, kind="interactions")
    import_now(http, platform.key_a, group, upload(http, platform.key_a, TRAINABLE_CSV))
    first, second = make_solution(http, platform.key_a, group), make_solution(http, platform.key_a, group)
    headers = {**bearer(platform.key_a), "Idempotency-Key": uuid.uuid4().hex}
    a = http.post(f"{G}/{group}/solutions/{first}/versions", json={}, headers=headers)
    again = http.post(f"{G}/{group}/solutions/{first}/versions", json={"training_mode": "full"},
                      headers=headers)
    b = http.post(f"{G}/{group}/solutions/{second}/versions", headers=headers)
    assert (a.status_code, again.status_code, b.status_code) == (201, 200, 201), (a.text, b.text)
    assert again.json() == a.json()
    assert b.json()["solution"] == second


# ---- the SDK: a create whose answer is lost is retried with its key, and succeeds ----

class _LossyProxy(ThreadingHTTPServer):
    """Forwards requests to `upstream` over loopback; the first answer to each POST path is lost
    (the upstream handled the request, the client sees the connection close)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.lost: set[str] = set()
        self.forwarded: list[tuple[str, str, int]] = []
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LossyProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        r = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        self.server.forwarded.append((self.command, self.path, r.status_code))
        if self.command == "POST" and self.path not in self.server.lost:
            self.server.lost.add(self.path)
            self.close_connection = True  # the answer never arrives
            return
        self.send_response(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def lossy(platform: Platform) -> Iterator[_LossyProxy]:
    proxy = _LossyProxy(platform.url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    proxy.upstream.close()
    thread.join(10)


def test_sdk_create_whose_answer_was_lost_is_retried_and_succeeds(platform: Platform,
                                                                  lossy: _LossyProxy) -> None:
    client = Client(base_url=lossy.url, api_key=platform.key_a, start_local=False)
    client.initial_retry_delay = 0.01
    group = client.dataset_groups.create(unique(), description="via a lossy network")
    client.datasets.create(group.name, kind="interactions", schema=INTERACTIONS_SCHEMA)
    solution = client.solutions.create(group.name, name=unique("sol"), recipe=RECIPE,
                                       hyperparameters={"epochs": 1})
    version = put_version(platform, group.name, solution.name)
    campaign = client.campaigns.create(group.name, name=unique("camp"), solution=solution.name,
                                       solution_version=version)
    creates = [(path, code) for method, path, code in lossy.forwarded if method == "POST"]
    assert [code for _, code in creates] == [201, 200] * 4, creates  # each created once, replayed once
    assert client.dataset_groups.retrieve(group.name) == group
    assert client.solutions.retrieve(group.name, solution.name) == solution
    assert [c.name for c in client.campaigns.list(group.name)] == [campaign.name]
    # The SDK's own key, reused by the caller with another body, is refused by name.
    key = uuid.uuid4().hex
    client.dataset_groups.create(name := unique(), idempotency_key=key)
    with pytest.raises(ConflictError) as e:
        client.dataset_groups.create(name, description="changed", idempotency_key=key)
    assert e.value.error_type == "idempotency_key_reused" and key in e.value.message
