"""The SDK client against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

import sdk
from sdk import config
from sdk.client import Client

ROOT = Path(__file__).resolve().parents[2]
TS = "2024-01-01T00:00:00Z"


# --- a tiny scripted HTTP server ------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: empty)


class FakeServer:
    """Records every request; answers from `handler` or, else, from the `replies` script."""

    def __init__(self) -> None:
        self.requests: list[Req] = []
        self.replies: list[Reply] = []
        self.handler: Callable[[Req], Reply] | None = None
        self.url = ""

    def answer(self, req: Req) -> Reply:
        if req.path == "/healthz":
            return 200, {}, {"status": "ok"}
        self.requests.append(req)
        if self.handler is not None:
            return self.handler(req)
        return self.replies.pop(0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeServer

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while size := int(self.rfile.readline().strip(), 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return out
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        req = Req(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query)),
            {k.lower(): v for k, v in self.headers.items()},
            self._body(),
        )
        status, headers, body = self.fake.answer(req)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAGREC_HOME", str(tmp_path / "home"))
    for var in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    handler = type("H", (_Handler,), {"fake": fake})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(server: FakeServer, sleeps: list[float]) -> Iterator[Client]:
    with Client(server.url, "tgr_test", max_retries=3) as c:
        c._sleep = sleeps.append  # record back-off delays instead of sleeping
        yield c


def _group(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "status": "ACTIVE", "created_at": TS, "updated_at": TS, **kw}


def _job(status: str, **kw: Any) -> dict[str, Any]:
    return {
        "name": "j1",
        "status": status,
        "created_at": TS,
        "updated_at": TS,
        "dataset_group": "g",
        "dataset": "interactions",
        "mode": "full",
        "source": {"uri": "s3://bucket/key.csv"},
        **kw,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- config -------------------------------------------------------------------------------


def test_config_precedence_args_over_env_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://file:1", "tgr_file")
    assert config.resolve() == config.Config("http://file:1", "tgr_file", "default")

    monkeypatch.setenv("TAGREC_BASE_URL", "http://env:2")
    cfg = config.resolve()
    assert (cfg.base_url, cfg.api_key) == ("http://env:2", "tgr_file")  # each setting alone

    monkeypatch.setenv("TAGREC_API_KEY", "tgr_env")
    assert config.resolve().api_key == "tgr_env"

    cfg = config.resolve("http://arg:3", "tgr_arg")
    assert (cfg.base_url, cfg.api_key) == ("http://arg:3", "tgr_arg")
    assert "tgr_arg" not in repr(cfg)


def test_config_profile_from_arg_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://d", "tgr_d")
    config.write_profile("prod", "https://p", "tgr_p")
    assert config.resolve(profile="prod").api_key == "tgr_p"
    monkeypatch.setenv("TAGREC_PROFILE", "prod")
    assert config.resolve().base_url == "https://p"
    assert config.read_profile() == {"base_url": "https://p", "api_key": "tgr_p"}
    assert config.resolve(profile="default").api_key == "tgr_d"
    assert config.read_profile("missing") == {}


def test_config_home_defaults_to_dot_tagrec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAGREC_HOME")
    assert config.home_dir() == Path.home() / ".tagrec"
    assert config.credentials_path() == Path.home() / ".tagrec" / "credentials"


def test_write_profile_keeps_others_and_is_private(tmp_path: Path) -> None:
    config.write_profile("prod", "https://p", "tgr_p")
    path = config.write_profile("default", "http://127.0.0.1:8765", "tgr_1")
    config.write_profile("default", "http://127.0.0.1:8765", "tgr_2")
    assert path == tmp_path / "home" / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.read_profile("prod") == {"base_url": "https://p", "api_key": "tgr_p"}
    assert config.read_profile("default")["api_key"] == "tgr_2"
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]  # no temp files left


# --- client construction ----------------------------------------------------------------------


def test_no_config_without_start_local_raises() -> None:
    with pytest.raises(sdk.TagrecError, match="TAGREC_BASE_URL"):
        Client(start_local=False)


def test_start_local_runs_tagrec_up_then_rereads(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    config.write_profile("default", dead, "tgr_old")  # configured, but nothing answers
    calls: list[list[str]] = []

    def fake_up(cmd: list[str], **kwargs: object) -> None:
        calls.append(cmd)
        config.write_profile("default", server.url, "tgr_new")

    monkeypatch.setattr(subprocess, "run", fake_up)
    with Client() as c:
        assert (c.base_url, c.api_key) == (server.url, "tgr_new")
    assert calls == [[sys.executable, "-m", "tagrec.cli", "-o", "json", "up"]]


def test_start_local_skipped_when_server_answers(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.write_profile("default", server.url, "tgr_k")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not start"))
    with Client() as c:
        assert c.api_key == "tgr_k"


def test_start_local_that_writes_nothing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)
    with pytest.raises(sdk.TagrecError, match="tagrec up"):
        Client()


# --- requests, retries, idempotency -----------------------------------------------------------


def test_headers_whoami_and_health(client: Client, server: FakeServer) -> None:
    server.replies = [(200, {}, {"tenant": "acme"})]
    assert client.whoami() == "acme"
    req = server.requests[0]
    assert req.headers["authorization"] == "Bearer tgr_test"
    assert req.headers["user-agent"] == f"tagrec-sdk/{sdk.__version__}"
    assert client.health() == {"status": "ok"}


def test_health_sends_no_key(client: Client, server: FakeServer) -> None:
    server.handler = lambda req: (200, {}, {"auth": req.headers.get("authorization")})
    assert client.request("GET", "/other", auth=False).json() == {"auth": None}


def test_429_with_retry_after_then_success(
    client: Client, server: FakeServer, sleeps: list[float]
) -> None:
    server.replies = [
        (429, {"Retry-After": "2"}, {"error": {"type": "rate_limited", "message": "slow"}}),
        (201, {}, _group("g")),
    ]
    assert client.dataset_groups.create("g").name == "g"
    assert sleeps == [2.0]
    assert len(server.requests) == 2


def test_503_exhausts_retries(client: Client, server: FakeServer, sleeps: list[float]) -> None:
    server.handler = lambda req: (503, {}, {"error": {"type": "unavailable", "message": "busy"}})
    with pytest.raises(sdk.ServiceUnavailableError) as info:
        client.dataset_groups.retrieve("g")
    assert info.value.status_code == 503
    assert len(server.requests) == 4  # 1 + max_retries
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2] <= Client.max_retry_delay  # exponential back-off


def test_400_is_not_retried(client: Client, server: FakeServer, sleeps: list[float]) -> None:
    server.handler = lambda req: (
        400,
        {},
        {"error": {"type": "validation_error", "message": "bad", "field": "name"}},
    )
    with pytest.raises(sdk.BadRequestError):
        client.dataset_groups.create("g")
    assert len(server.requests) == 1 and sleeps == []


def test_idempotency_key_reused_across_retries(client: Client, server: FakeServer) -> None:
    server.replies = [(503, {}, None), (502, {}, None), (201, {}, _group("g"))]
    client.dataset_groups.create("g", description="d")
    keys = {r.headers["idempotency-key"] for r in server.requests}
    assert len(keys) == 1 and uuid.UUID(keys.pop()).version == 4
    assert json.loads(server.requests[0].body) == {"name": "g", "description": "d"}

    server.replies = [(200, {}, _group("g")), (201, {}, _group("h"))]  # 200: replayed create
    client.dataset_groups.create("g", idempotency_key="mine")
    client.dataset_groups.create("h")
    assert server.requests[3].headers["idempotency-key"] == "mine"
    assert server.requests[4].headers["idempotency-key"] not in ("mine", *keys)


def test_connection_error_is_retried_then_raised(sleeps: list[float]) -> None:
    c = Client(f"http://127.0.0.1:{_free_port()}", "k", max_retries=2, start_local=False)
    c._sleep = sleeps.append
    with pytest.raises(sdk.APIConnectionError):
        c.whoami()
    assert len(sleeps) == 2
    c.close()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, sdk.BadRequestError),
        (401, sdk.AuthenticationError),
        (403, sdk.PermissionDeniedError),
        (404, sdk.NotFoundError),
        (409, sdk.ConflictError),
        (413, sdk.PayloadTooLargeError),
        (422, sdk.UnprocessableEntityError),
        (429, sdk.RateLimitError),
        (500, sdk.InternalServerError),
        (502, sdk.InternalServerError),
        (503, sdk.ServiceUnavailableError),
        (418, sdk.APIStatusError),
    ],
)
def test_error_mapping(status: int, cls: type[sdk.APIStatusError], server: FakeServer) -> None:
    body = {"error": {"type": "some_type", "message": "went\nwrong", "field": "schema.fields"}}
    server.handler = lambda req: (status, {"X-Request-Id": "req-1"}, body)
    with Client(server.url, "k", max_retries=0) as c, pytest.raises(cls) as info:
        c.dataset_groups.retrieve("g")
    e = info.value
    assert type(e) is cls and isinstance(e, sdk.TagrecError)
    assert (e.status_code, e.error_type, e.message) == (status, "some_type", "went\nwrong")
    assert (e.field, e.request_id) == ("schema.fields", "req-1")
    assert str(e) == f"{status} some_type: field 'schema.fields': went wrong (request id req-1)"
    assert issubclass(sdk.ServiceUnavailableError, sdk.InternalServerError)


def test_error_without_json_body(server: FakeServer) -> None:
    server.handler = lambda req: (404, {}, None)
    with Client(server.url, "k") as c, pytest.raises(sdk.NotFoundError, match="404 http_error"):
        c.dataset_groups.retrieve("g")


# --- resources --------------------------------------------------------------------------------


def test_list_follows_pagination(client: Client, server: FakeServer) -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d"], None)}

    def handler(req: Req) -> Reply:
        names, token = pages[req.query.get("next_token")]
        return 200, {}, {"items": [_group(n) for n in names], "next_token": token}

    server.handler = handler
    groups = client.dataset_groups.list()
    assert [g.name for g in groups] == ["a", "b", "c", "d"]
    assert all(isinstance(g, sdk.DatasetGroup) for g in groups)
    assert [r.query.get("next_token") for r in server.requests] == [None, "t1", "t2"]
    assert all(r.query["max_results"] == "100" for r in server.requests)


def test_list_fetches_pages_only_as_iteration_reaches_them(client: Client, server: FakeServer) -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d"], None)}

    def handler(req: Req) -> Reply:
        names, token = pages[req.query.get("next_token")]
        return 200, {}, {"items": [_group(n) for n in names], "next_token": token}

    server.handler = handler
    groups = client.dataset_groups.list()
    assert len(server.requests) == 1  # the first page at the call: a bad parent raises here
    it = iter(groups)
    assert [next(it).name, next(it).name] == ["a", "b"] and len(server.requests) == 1
    assert next(it).name == "c" and len(server.requests) == 2
    for g in groups:  # stopping early reads no further page
        if g.name == "b":
            break
    assert len(server.requests) == 2
    # list(), len(), indexing and == see every page, each fetched once.
    assert [g.name for g in list(groups)] == ["a", "b", "c", "d"] and len(groups) == 4
    assert groups[-1].name == "d" and groups == list(groups) and len(server.requests) == 3
    assert [r.query.get("next_token") for r in server.requests] == [None, "t1", "t2"]

    server.handler = lambda req: (200, {}, {"items": [], "next_token": None})
    empty = client.solutions.list("g")
    assert empty == [] and not empty and list(empty) == []


def test_dataset_group_delete_and_paths(client: Client, server: FakeServer) -> None:
    server.handler = lambda req: (204, {}, None)
    assert client.dataset_groups.delete("g", force=True) is None
    client.datasets.delete("g", sdk.DatasetKind.ITEMS)
    assert [(r.method, r.path, r.query) for r in server.requests] == [
        ("DELETE", "/v1/dataset-groups/g", {"force": "true"}),
        ("DELETE", "/v1/dataset-groups/g/datasets/items", {}),
    ]


def test_dataset_create_sends_schema(client: Client, server: FakeServer) -> None:
    schema = {
        "fields": [
            {"name": "user_id", "type": "string", "role": "USER_ID"},
            {"name": "item_id", "type": "string", "role": "ITEM_ID"},
            {"name": "ts", "type": "timestamp", "role": "TIMESTAMP"},
        ]
    }

    def handler(req: Req) -> Reply:
        body = json.loads(req.body)
        return 201, {}, _group("interactions", dataset_group="g", **body)

    server.handler = handler
    ds = client.datasets.create("g", kind="interactions", schema=sdk.Schema.model_validate(schema))
    assert ds.kind is sdk.DatasetKind.INTERACTIONS and ds.schema_.fields[0].name == "user_id"
    req = server.requests[0]
    assert req.path == "/v1/dataset-groups/g/datasets" and "idempotency-key" in req.headers
    sent = json.loads(req.body)
    assert sent["kind"] == "interactions" and sent["schema"]["fields"][2]["nullable"] is False
    with pytest.raises(ValueError, match="ITEM_ID"):  # the server's rules, checked locally
        client.datasets.create("g", kind="items", schema={"fields": schema["fields"][:1]})


def test_upload_streams_exact_bytes_and_retries_from_start(
    client: Client, server: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    path = tmp_path / "events.csv"
    path.write_bytes(data)
    server.replies = [(503, {}, None), (201, {}, {"upload_id": "a" * 32, "size": len(data)})]
    assert client.uploads.create(path) == "a" * 32
    assert [r.body == data for r in server.requests] == [True, True]
    req = server.requests[1]
    assert (req.method, req.path) == ("POST", "/v1/uploads")
    assert req.headers["x-filename"] == "events.csv"
    assert req.headers["content-length"] == str(len(data))


def test_upload_body_is_a_stream_of_chunks(tmp_path: Path) -> None:
    from sdk import resources

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (resources.UPLOAD_CHUNK_SIZE * 2 + 1))
    chunks = resources._file_chunks(path)
    assert not isinstance(chunks, bytes | bytearray)
    assert [len(c) for c in chunks] == [resources.UPLOAD_CHUNK_SIZE] * 2 + [1]


def test_import_job_from_local_file_uploads_first(
    client: Client, server: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user_id,item_id,ts\n")

    def handler(req: Req) -> Reply:
        if req.path == "/v1/uploads":
            return 201, {}, {"upload_id": "b" * 32, "size": len(req.body)}
        body = json.loads(req.body)
        return 201, {}, _job("CREATE_PENDING", name=body["name"], source=body["source"])

    server.handler = handler
    job = client.dataset_import_jobs.create("g", dataset="interactions", source=str(path))
    assert [r.path for r in server.requests] == ["/v1/uploads", "/v1/dataset-groups/g/import-jobs"]
    sent = json.loads(server.requests[1].body)
    assert sent["source"] == {"upload_id": "b" * 32} and sent["mode"] == "full"
    assert re.fullmatch(r"import-\d{14}-[0-9a-f]{6}", sent["name"])
    assert job.source.upload_id == "b" * 32 and job.status is sdk.Status.CREATE_PENDING


def test_import_job_from_s3_uri(client: Client, server: FakeServer) -> None:
    server.handler = lambda req: (201, {}, _job("CREATE_PENDING"))
    client.dataset_import_jobs.create(
        "g",
        dataset="items",
        source="s3://bucket/key.csv",
        name="j1",
        format="csv",
        mode="incremental",
    )
    assert [r.path for r in server.requests] == ["/v1/dataset-groups/g/import-jobs"]
    assert json.loads(server.requests[0].body) == {
        "name": "j1",
        "dataset": "items",
        "mode": "incremental",
        "source": {"uri": "s3://bucket/key.csv", "format": "csv"},
    }
    with pytest.raises(ValueError, match="s3://"):
        client.dataset_import_jobs.create("g", dataset="items", source="gs://b/k")


def test_wait_polls_until_active(client: Client, server: FakeServer) -> None:
    server.replies = [
        (200, {}, _job("CREATE_PENDING")),
        (200, {}, _job("CREATE_IN_PROGRESS", progress={"rows": 5})),
        (200, {}, _job("ACTIVE", snapshot_id="s1")),
    ]
    seen: list[sdk.Status] = []
    job = client.dataset_import_jobs.wait("g", "j1", on_progress=lambda j: seen.append(j.status))
    assert job.snapshot_id == "s1"
    assert seen == [sdk.Status.CREATE_PENDING, sdk.Status.CREATE_IN_PROGRESS, sdk.Status.ACTIVE]
    assert server.requests[0].path == "/v1/dataset-groups/g/import-jobs/j1"


def test_wait_raises_resource_failed(client: Client, server: FakeServer) -> None:
    server.replies = [(200, {}, _job("CREATE_FAILED", failure_reason="column ts is missing"))]
    with pytest.raises(sdk.ResourceFailedError, match="column ts is missing") as info:
        client.dataset_import_jobs.wait("g", "j1")
    assert info.value.failure_reason == "column ts is missing"
    assert info.value.resource.name == "j1"


def test_wait_times_out(server: FakeServer) -> None:
    server.handler = lambda req: (200, {}, _job("CREATE_IN_PROGRESS"))
    with Client(server.url, "k") as c, pytest.raises(sdk.WaitTimeoutError, match="CREATE_IN_PRO"):
        c.dataset_import_jobs.wait("g", "j1", timeout=0.1, poll_interval=0.02)


def test_create_and_wait(client: Client, server: FakeServer) -> None:
    server.replies = [(201, {}, _job("CREATE_PENDING")), (200, {}, _job("ACTIVE"))]
    job = client.dataset_import_jobs.create_and_wait(
        "g", dataset="interactions", source="s3://bucket/key.csv", name="j1"
    )
    assert job.status is sdk.Status.ACTIVE
    assert [r.method for r in server.requests] == ["POST", "GET"]


# --- package surface ------------------------------------------------------------------------


def test_all_is_pinned() -> None:
    assert sorted(sdk.__all__) == sorted(
        [
            "__version__", "Client",
            "TagrecError", "APIConnectionError", "APITimeoutError", "APIStatusError",
            "BadRequestError", "AuthenticationError", "PermissionDeniedError", "NotFoundError",
            "ConflictError", "PayloadTooLargeError", "UnprocessableEntityError",
            "RateLimitError", "InternalServerError", "ServiceUnavailableError",
            "ResourceFailedError", "WaitTimeoutError",
            "Status", "TERMINAL_STATUSES", "FieldType", "Role", "DatasetKind", "ImportMode",
            "SchemaField", "Schema", "DatasetGroupCreate", "DatasetGroup", "DatasetCreate",
            "Dataset", "ImportSource", "ImportProgress", "DatasetImportJobCreate",
            "DatasetImportJob", "RecipeInfo", "ScalingConfig", "EvaluationConfig", "Solution",
            "SolutionVersion", "Campaign", "Event", "PutEventsResponse", "RecommendResponse",
            "TagsResponse", "SessionEvent", "BatchInferenceJob",
        ]
    )  # fmt: skip
    assert all(hasattr(sdk, name) for name in sdk.__all__)


def test_import_is_light() -> None:
    code = (
        "import sys, sdk, sdk.config, sdk.errors, sdk.resources; "
        "print([m for m in ('torch', 'ray', 'pyarrow') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_tag_verbs_post_their_task_requests_and_read_answers_leniently(client: Client,
                                                                       server: FakeServer) -> None:
    base = f"{client.base_url}/campaigns/abc"
    client.campaigns._endpoints[("g", "c")] = base
    answer = {"tags": [{"tag": "robots", "score": 0.9, "new_field": 1}], "solution_version": "v1",
              "fallback": False, "something_added_later": {"x": 1}}
    server.handler = lambda req: (200, {}, answer)
    r = client.campaigns.recommend_tags("g", "c", user_id="u1", item_id="i1", num_results=3)
    assert r.tags[0].tag == "robots" and r.questions == [] and not r.fallback
    client.campaigns.generate_tags("g", "c", text="how do I tune a PID loop?", chosen=["pid"])
    client.campaigns.next_tags("g", "c", session_id="s1", organisation="banking",
                               events=[{"tag": "card"}, {"item_id": "q7"}])
    sent = [(r.path, json.loads(r.body)) for r in server.requests]
    assert sent[0] == ("/campaigns/abc/recommend-tags", {"user_id": "u1", "item_id": "i1", "num_results": 3,
                                                         "exclude_seen": False, "context": {}})
    assert sent[1][0] == "/campaigns/abc/generate-tags" and sent[1][1]["chosen"] == ["pid"]
    assert sent[2][0] == "/campaigns/abc/next-tags"
    assert sent[2][1]["events"] == [{"tag": "card"}, {"item_id": "q7"}]
    # Bad requests are refused on the client with the server's own rules.
    with pytest.raises(ValueError, match="give text, fields or item_id"):
        client.campaigns.generate_tags("g", "c")
    with pytest.raises(ValueError, match="exactly one of tag and item_id"):
        client.campaigns.next_tags("g", "c", session_id="s1", events=[{"tag": "a", "item_id": "b"}])


def test_an_unreachable_campaign_endpoint_is_named_not_the_control_plane(client: Client,
                                                                         server: FakeServer) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/campaigns/abc"  # nothing listens there
    client.campaigns._endpoints[("g", "c")] = dead
    client.max_retries = 0
    with pytest.raises(sdk.APIConnectionError) as e:
        client.campaigns.recommend("g", "c", user_id="u1")
    message = str(e.value)
    assert f"cannot reach {dead.rsplit('/campaigns', 1)[0]}" in message and client.base_url not in message
    assert "is the campaign ACTIVE" in message


def test_batch_users_must_be_a_list_not_one_string(client: Client, server: FakeServer) -> None:
    """A string is an iterable of its characters: users="alice" would ask for users a, l, i, c, e."""
    jobs = client.batch_inference_jobs
    for users in ("alice", b"alice"):
        with pytest.raises(TypeError, match=rf"users must be a list of user ids.*users=\[{users!r}\]"):
            jobs.create("g", name="j", solution="s", users=users)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="users"):
            jobs.create_and_wait("g", name="j", solution="s", users=users)  # type: ignore[arg-type]
    assert server.requests == []  # refused before anything was sent
