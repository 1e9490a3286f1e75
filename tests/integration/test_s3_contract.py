"""Contract test: the S3 conditional writes the store relies on, checked against the S3 server.

The registry's atomic create and compare-and-swap (and the snapshot pointer swap) are built on
exactly two S3 features (DESIGN.md §4):

- `PutObject` with `If-None-Match: *`: write only if the key is absent, else 412
  PreconditionFailed, and the existing content is left as it was;
- `PutObject` with `If-Match: <etag>`: write only if the current ETag is `<etag>`, else 412
  PreconditionFailed (404 NoSuchKey if there is no object at all, as AWS documents), and the
  content is left as it was;

plus the ETag that `PutObject` returns being the one `GetObject` later reports, and each
conditional write being atomic under concurrent writers (exactly one winner).

These run against the loopback S3 server (moto's) through boto3 directly, then through
`store.fs.S3Backend.create/replace`. moto had regressions in conditional writes in the past: if
an emulator (or a new moto release) lacked one of these features, the failing test here names
the missing feature, and the store's S3 path must not be trusted on it until a fallback exists.

Known gap (moto 5.2.5), see MOTO_GAP: the conditions are honoured but not atomically. moto's
`put_object` checks If-Match / If-None-Match and then writes, with no lock, while `moto.server`
serves requests on threads; two concurrent conditional PUTs can both pass the check. Under 8x25
compare-and-swap increments this lost an update in about one run in ten. Real S3 makes check and
write one step, so the store needs no fallback. Tests that depend on atomicity under concurrency
use `serialized_s3_server()` (the same moto app, one request at a time).
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3
import pytest
from botocore.exceptions import ClientError

from store.fs import PreconditionFailed, S3Backend
from tests.conftest import free_port, new_bucket, wait_http

pytestmark = pytest.mark.integration

MOTO_GAP = ("moto gap: put_object checks If-Match/If-None-Match and then writes without a lock, "
            "on a threaded server, so two concurrent conditional PUTs can both win (rare; real S3 "
            "is atomic)")

# moto's own server app, with every request handled under one lock.
_SERIALIZED_MOTO = """
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                           create_backend_app)
app, lock = DomainDispatcherApplication(create_backend_app), threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True,
           request_handler=MotoRequestHandler)
"""


@contextmanager
def serialized_s3_server() -> Iterator[str]:
    """moto's S3 server handling one request at a time, so conditional writes are atomic.

    Credentials come from the environment (request the `s3_endpoint` fixture first).
    """
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERIALIZED_MOTO, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)



@pytest.fixture
def s3(s3_endpoint: str):
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return new_bucket(s3_endpoint)


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return _error_of(exc.value)


def _error_of(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def _body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _exists(s3, bucket: str, key: str) -> bool:
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0


# --- If-None-Match: * (create if absent) -------------------------------------------------------


def test_if_none_match_on_new_key_succeeds(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    assert _body(s3, bucket, "k") == b"first"


def test_if_none_match_on_existing_key_fails_412_and_keeps_content(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert _error(exc) == ("PreconditionFailed", 412)
    assert _body(s3, bucket, "k") == b"first"


def test_if_none_match_concurrent_creates_have_one_winner(s3, bucket: str) -> None:
    bodies = [f"writer-{i}".encode() for i in range(16)]
    results = _race(len(bodies), lambda i: s3.put_object(Bucket=bucket, Key="k", Body=bodies[i],
                                                         IfNoneMatch="*"))
    winners = [i for i, r in enumerate(results) if r == "ok"]
    assert len(winners) == 1, results
    assert all(r == ("PreconditionFailed", 412) for r in results if r != "ok"), results
    assert _body(s3, bucket, "k") == bodies[winners[0]]


# --- If-Match: <etag> (compare-and-swap) -------------------------------------------------------


def test_if_match_current_etag_succeeds(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    new_etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)["ETag"]
    assert new_etag != etag
    assert _body(s3, bucket, "k") == b"v2"


def test_if_match_stale_etag_fails_412_and_keeps_content(s3, bucket: str) -> None:
    stale = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=stale)
    assert _error(exc) == ("PreconditionFailed", 412)
    assert _body(s3, bucket, "k") == b"v2"


def test_if_match_on_missing_key_fails_and_creates_nothing(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="other", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="missing", Body=b"v1", IfMatch=etag)
    # AWS documents 404 NoSuchKey here (not 412); S3Backend maps both to PreconditionFailed.
    assert _error(exc) in {("NoSuchKey", 404), ("PreconditionFailed", 412)}
    assert not _exists(s3, bucket, "missing")


def test_if_match_concurrent_swaps_have_one_winner(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"base")["ETag"]
    bodies = [f"writer-{i}".encode() for i in range(16)]
    results = _race(len(bodies), lambda i: s3.put_object(Bucket=bucket, Key="k", Body=bodies[i],
                                                         IfMatch=etag))
    winners = [i for i, r in enumerate(results) if r == "ok"]
    assert len(winners) == 1, results
    # Real S3 may answer a lost race with 409 ConditionalRequestConflict instead of 412.
    assert all(r in {("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)}
               for r in results if r != "ok"), results
    assert _body(s3, bucket, "k") == bodies[winners[0]]


@pytest.mark.xfail(reason=MOTO_GAP, strict=False)
def test_concurrent_compare_and_swap_loses_no_update(s3, bucket: str) -> None:
    """8 writers x 10 read/If-Match-write increments: successes == final value.

    Usually passes on moto.server too; when it fails, that is MOTO_GAP. The store's own
    contention tests (test_store.py) run on `serialized_s3_server()`.
    """
    s3.put_object(Bucket=bucket, Key="counter", Body=b"0")
    writers, each = 8, 10

    def work(_: int) -> None:
        done = 0
        while done < each:
            obj = s3.get_object(Bucket=bucket, Key="counter")
            n = int(obj["Body"].read())
            try:
                s3.put_object(Bucket=bucket, Key="counter", Body=str(n + 1).encode(),
                              IfMatch=obj["ETag"])
                done += 1
            except ClientError as e:
                if e.response["ResponseMetadata"]["HTTPStatusCode"] not in (409, 412):
                    raise
                time.sleep(random.uniform(0, 0.01))

    errors = [r for r in _race(writers, work) if r != "ok"]
    assert errors == []
    assert _body(s3, bucket, "counter") == str(writers * each).encode()


# --- ETags ---------------------------------------------------------------------------------------


def test_put_etag_equals_get_and_head_etag(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="k", Body=b'{"a": 1}', IfNoneMatch="*")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["ETag"] == put
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == put
    swapped = s3.put_object(Bucket=bucket, Key="k", Body=b'{"a": 2}', IfMatch=put)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["ETag"] == swapped


# --- the same semantics through store.fs.S3Backend -------------------------------------------


@pytest.fixture
def backend(s3_endpoint: str, bucket: str) -> S3Backend:
    return S3Backend(bucket, "store", s3_endpoint, "us-east-1")


def test_backend_create_new_key_returns_the_get_etag(backend: S3Backend) -> None:
    etag = backend.create("a/k.json", b"first")
    assert backend.get("a/k.json") == (b"first", etag)


def test_backend_create_existing_key_fails_and_keeps_content(backend: S3Backend) -> None:
    etag = backend.create("a/k.json", b"first")
    with pytest.raises(PreconditionFailed):
        backend.create("a/k.json", b"second")
    assert backend.get("a/k.json") == (b"first", etag)


def test_backend_replace_with_current_etag_succeeds(backend: S3Backend) -> None:
    etag = backend.create("a/k.json", b"v1")
    new_etag = backend.replace("a/k.json", b"v2", etag)
    assert backend.get("a/k.json") == (b"v2", new_etag)


def test_backend_replace_with_stale_etag_fails_and_keeps_content(backend: S3Backend) -> None:
    stale = backend.create("a/k.json", b"v1")
    current = backend.replace("a/k.json", b"v2", stale)
    with pytest.raises(PreconditionFailed):
        backend.replace("a/k.json", b"v3", stale)
    assert backend.get("a/k.json") == (b"v2", current)


def test_backend_replace_missing_key_fails_and_creates_nothing(backend: S3Backend) -> None:
    etag = backend.create("a/other.json", b"v1")
    with pytest.raises(PreconditionFailed):
        backend.replace("a/missing.json", b"v1", etag)
    assert not backend.exists("a/missing.json")
    with pytest.raises(FileNotFoundError):
        backend.get("a/missing.json")


def test_backend_keys_live_under_the_uri_prefix(backend: S3Backend, s3, bucket: str) -> None:
    backend.create("a/k.json", b"x")
    assert _body(s3, bucket, "store/a/k.json") == b"x"


def _race(n: int, call: Callable[[int], object]) -> list[object]:
    """Run `call(i)` for i in range(n) on n threads released together; "ok" or (code, status)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            call(i)
            results[i] = "ok"
        except ClientError as e:
            results[i] = _error_of(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
