"""Shared fixtures: a real S3 server on loopback (moto's), stores, tenants, a running control plane.

Nothing here is a stand-in: the S3 server speaks HTTP and is reached through boto3/pyarrow as in
production; the control plane is the real app served by uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# The event log flushes every 5 s by default; tests wait for flushes, so make them quick.
os.environ.setdefault("TAGREC_EVENTS_FLUSH_S", "0.5")
# Local Ray clusters of this test session stay on loopback, as the platform's do (it sets this
# before `ray` is imported; in this process a test may import ray first).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session; AWS env set for it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    try:
        wait_http(endpoint)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"tagrec-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store_uri(s3_endpoint: str) -> str:
    """A fresh bucket on the loopback S3 server, as a store URI."""
    return f"s3://{new_bucket(s3_endpoint)}/store"


@pytest.fixture
def file_store_uri(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.fixture(params=["file", "s3"])
def store_uri(request: pytest.FixtureRequest) -> str:
    """Both backends: every store test runs on a local folder and on S3."""
    if request.param == "file":
        return request.getfixturevalue("file_store_uri")
    return request.getfixturevalue("s3_store_uri")


@dataclass
class Platform:
    """A running control plane and two tenants' API keys."""

    url: str
    store_uri: str
    key_a: str
    key_b: str

    def client(self, key: str | None = None, **kw: object):  # -> sdk.Client
        from sdk import Client

        return Client(base_url=self.url, api_key=key or self.key_a, start_local=False, **kw)


def start_platform(store_uri: str, executor: str) -> tuple[Platform, object, threading.Thread]:
    import uvicorn

    from serving.local import build_app
    from store import Store, StoreConfig
    from store.tenants import create_tenant

    app = build_app(store_uri, executor, serve_port=free_port())
    registry = Store(StoreConfig.from_env(store_uri)).registry
    key_a = create_tenant(registry, "tenant-a")
    key_b = create_tenant(registry, "tenant-b")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    return Platform(url, store_uri, key_a, key_b), server, thread


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The control plane over a local-folder store, jobs on threads (fast; no Ray)."""
    store_uri = f"file://{tmp_path_factory.mktemp('platform') / 'store'}"
    p, server, thread = start_platform(store_uri, "thread")
    yield p
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)


@pytest.fixture(scope="session")
def ray_platform(s3_endpoint: str) -> Iterator[Platform]:
    """The control plane over the loopback S3 store, jobs on a real local Ray cluster."""
    store_uri = f"s3://{new_bucket(s3_endpoint)}/store"
    p, server, thread = start_platform(store_uri, "ray")
    yield p
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(30)


def unique(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


INTERACTIONS_SCHEMA = {
    "fields": [
        {"name": "user_id", "type": "string", "role": "USER_ID"},
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "timestamp", "type": "timestamp", "role": "TIMESTAMP"},
        {"name": "event_type", "type": "string", "role": "EVENT_TYPE"},
        {"name": "event_value", "type": "float", "role": "EVENT_VALUE"},
    ]
}


def import_synthetic(client, directory: Path, **sizes: int):  # -> (group, SyntheticData)
    """A new dataset group holding seeded synthetic interactions, items and users, imported
    through the SDK (`sizes`: seed, n_users, n_items, n_interactions of sdk.synthetic.generate)."""
    from sdk.synthetic import generate

    data = generate(**sizes)
    group = unique()
    client.dataset_groups.create(group)
    paths = data.write_csv(directory)
    for kind, schema in data.schemas.items():
        client.datasets.create(group, kind=kind, schema=schema)
        client.dataset_import_jobs.create_and_wait(group, dataset=kind, source=paths[kind],
                                                   poll_interval=0.2)
    return group, data


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started (e.g. the Ray cluster of a platform)."""
    import psutil

    try:
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(30)
