"""The store on both backends (a local folder and a bucket on the loopback S3 server).

Records (atomic create, compare-and-swap under contention, listing), backend listing and
deletion, Parquet snapshots (publish, concurrent incremental publishes, invisibility of
unpublished data), the key layout's name validation, and tenants' API keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from store import AlreadyExists, Keys, NotFound, PreconditionFailed, Registry, Store, StoreConfig
from store.fs import Backend, LocalBackend, S3Backend
from store.snapshots import (
    SnapshotWriter,
    new_snapshot_id,
    publish,
    read_current,
    read_table,
)
from store.tenants import KEY_PREFIX, create_api_key, create_tenant, resolve_api_key
from tests.conftest import new_bucket
from tests.integration.test_s3_contract import serialized_s3_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def atomic_s3_endpoint(s3_endpoint: str) -> Iterator[str]:
    with serialized_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_store_uri(atomic_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Overrides conftest's: a bucket on moto's app serving one request at a time.

    The contention tests below need conditional writes to be atomic, as on real S3; plain
    `moto.server` is not (see test_s3_contract.MOTO_GAP) and would make them flaky.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", atomic_s3_endpoint)
    return f"s3://{new_bucket(atomic_s3_endpoint)}/store"


@pytest.fixture
def store(store_uri: str) -> Store:
    return Store(StoreConfig.from_env(store_uri))


@pytest.fixture
def registry(store: Store) -> Registry:
    return store.registry


@pytest.fixture
def backend(store: Store) -> Backend:
    return store.backend


def run_threads(n: int, target: Callable[[int], object]) -> list[object]:
    """Run `target(i)` on n threads released together; each result or the exception raised."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return results


# --- Registry ----------------------------------------------------------------------------------


def test_create_then_second_create_raises_already_exists(registry: Registry) -> None:
    key = "tenants/t/dataset-groups/g/group.json"
    assert registry.create(key, {"name": "g", "n": 1}) == {"name": "g", "n": 1}
    with pytest.raises(AlreadyExists):
        registry.create(key, {"name": "g", "n": 2})
    assert registry.read(key) == {"name": "g", "n": 1}


def test_get_read_and_missing(registry: Registry) -> None:
    registry.create("r/a.json", {"x": [1, 2], "s": "é"})
    rec = registry.get("r/a.json")
    assert rec.doc == {"x": [1, 2], "s": "é"}
    assert rec.etag
    assert registry.read("r/a.json") == rec.doc
    with pytest.raises(NotFound):
        registry.get("r/missing.json")
    with pytest.raises(NotFound):
        registry.read("r/missing.json")
    with pytest.raises(NotFound):
        registry.update("r/missing.json", lambda d: d)


def test_update_is_compare_and_swap(registry: Registry, backend: Backend) -> None:
    registry.create("r/a.json", {"n": 0})
    before = registry.get("r/a.json")
    assert registry.update("r/a.json", lambda d: {**d, "n": d["n"] + 1}) == {"n": 1}
    after = registry.get("r/a.json")
    assert after.doc == {"n": 1} and after.etag != before.etag
    # A writer holding the old etag loses and changes nothing.
    with pytest.raises(PreconditionFailed):
        backend.replace("r/a.json", b'{"n": 99}', before.etag)
    assert registry.get("r/a.json") == after
    # mutate returning None leaves the record (and its etag) as it was.
    assert registry.update("r/a.json", lambda d: None) == {"n": 1}
    assert registry.get("r/a.json").etag == after.etag


def test_update_retries_when_another_writer_wins(registry: Registry) -> None:
    registry.create("r/a.json", {"n": 0, "other": False})
    calls = 0

    def mutate(doc: dict) -> dict:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else writes between our read and our swap
            registry.update("r/a.json", lambda d: {**d, "other": True})
        return {**doc, "n": doc["n"] + 1}

    assert registry.update("r/a.json", mutate) == {"n": 1, "other": True}
    assert calls == 2
    assert registry.read("r/a.json") == {"n": 1, "other": True}


def test_update_under_contention_loses_no_update(registry: Registry) -> None:
    key = "r/counter.json"
    registry.create(key, {"n": 0, "by": {}})
    threads, increments = 8, 25

    def work(i: int) -> None:
        for _ in range(increments):
            registry.update(key, lambda d: {"n": d["n"] + 1,
                                            "by": {**d["by"], str(i): d["by"].get(str(i), 0) + 1}})

    results = run_threads(threads, work)
    assert [r for r in results if r is not None] == []
    doc = registry.read(key)
    assert doc["n"] == threads * increments == 200
    assert doc["by"] == {str(i): increments for i in range(threads)}


def test_concurrent_create_of_one_key_has_exactly_one_winner(registry: Registry) -> None:
    key = "r/one.json"
    results = run_threads(16, lambda i: registry.create(key, {"writer": i}))
    winners = [i for i, r in enumerate(results) if isinstance(r, dict)]
    losers = [r for r in results if not isinstance(r, dict)]
    assert len(winners) == 1
    assert len(losers) == 15 and all(isinstance(r, AlreadyExists) for r in losers), losers
    assert registry.read(key) == {"writer": winners[0]}


def test_list_prefix_and_suffix_depth(registry: Registry) -> None:
    for key in ("p/a.json", "p/b.json", "p/sub/c.json", "p/g1/group.json", "p/g2/group.json",
                "p/g1/deeper/g3/group.json", "p/g1/other.json", "pp/d.json", "pp/g4/group.json",
                "p/x.txt"):
        registry.create(key, {"key": key})
    assert [d["key"] for d in registry.list("p", ".json")] == ["p/a.json", "p/b.json"]
    assert [d["key"] for d in registry.list("p", "/group.json")] == ["p/g1/group.json",
                                                                     "p/g2/group.json"]
    assert [d["key"] for d in registry.list("p/g1", ".json")] == ["p/g1/group.json",
                                                                  "p/g1/other.json"]
    assert registry.list("nothing-here", ".json") == []


def test_delete(registry: Registry, backend: Backend) -> None:
    registry.create("r/a.json", {"n": 0})
    registry.update("r/a.json", lambda d: {"n": 1})  # leaves a .lock beside it locally
    registry.delete("r/a.json")
    with pytest.raises(NotFound):
        registry.read("r/a.json")
    assert not backend.exists("r/a.json")
    assert list(backend.list("r")) == []
    registry.delete("r/a.json")  # deleting an absent key is fine
    registry.create("r/a.json", {"n": 5})  # and the key can be created again
    assert registry.read("r/a.json") == {"n": 5}


def test_backend_list_skips_lock_and_tmp_files(backend: Backend) -> None:
    backend.put("d/a.json", b"a")
    backend.put("d/sub/b.json", b"b")
    backend.put("d/a.json.lock", b"")
    backend.put("d/.tmp-abc123.part", b"partial")
    backend.put("d/sub/.tmp-x", b"partial")
    backend.put("dd/c.json", b"c")
    backend.create("d/cas.json", b"1")
    backend.replace("d/cas.json", b"2", backend.get("d/cas.json")[1])
    assert list(backend.list("d")) == ["d/a.json", "d/cas.json", "d/sub/b.json"]
    assert list(backend.list("d/sub")) == ["d/sub/b.json"]
    assert list(backend.list("missing")) == []


def test_delete_prefix(backend: Backend) -> None:
    for key in ("x/a.json", "x/y/b.parquet", "x/y/z/c", "x/.tmp-1.part", "x/a.json.lock",
                "xx/keep.json", "keep.json"):
        backend.put(key, b"data")
    backend.delete_prefix("x")
    assert list(backend.list("x")) == []
    assert _raw_keys(backend) == ["keep.json", "xx/keep.json"]
    assert backend.get("xx/keep.json")[0] == b"data"
    backend.delete_prefix("x")  # absent prefix is fine
    backend.delete_prefix("never-existed")


def _raw_keys(backend: Backend) -> list[str]:
    """Every object/file below the store root, hidden ones included."""
    return sorted(key for key, _ in _raw_objects(backend))


def _raw_objects(backend: Backend) -> Iterator[tuple[str, bytes]]:
    if isinstance(backend, LocalBackend):
        for p in backend.root.rglob("*"):
            if p.is_file():
                yield p.relative_to(backend.root).as_posix(), p.read_bytes()
        return
    assert isinstance(backend, S3Backend)
    s3 = boto3.client("s3", endpoint_url=backend.client.meta.endpoint_url)
    root = f"{backend.prefix}/" if backend.prefix else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=backend.bucket, Prefix=root):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=backend.bucket, Key=obj["Key"])["Body"].read()
            yield obj["Key"][len(root):], body


def _all_bucket_objects(backend: Backend) -> Iterator[tuple[str, bytes]]:
    """Like _raw_objects but for S3 the whole bucket, whatever the prefix."""
    if isinstance(backend, LocalBackend):
        yield from _raw_objects(backend)
        return
    assert isinstance(backend, S3Backend)
    s3 = boto3.client("s3", endpoint_url=backend.client.meta.endpoint_url)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=backend.bucket):
        for obj in page.get("Contents", []):
            yield obj["Key"], s3.get_object(Bucket=backend.bucket, Key=obj["Key"])["Body"].read()


# --- Snapshots ---------------------------------------------------------------------------------

ARROW_SCHEMA = pa.schema([("id", pa.int64()), ("user_id", pa.string()), ("value", pa.float64())])
SCHEMA_DOC = {"fields": [{"name": "user_id", "type": "string", "role": "USER_ID"}]}
KEYS = Keys("acme")
GROUP, KIND = "g1", "interactions"


def _batch(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"u{i % 7}" for i in ids]),
                            pa.array([i / 3 for i in ids], pa.float64())], schema=ARROW_SCHEMA)


def _write(backend: Backend, batches: list[pa.RecordBatch], rows_per_part: int = 8_000_000,
           ) -> tuple[str, list[str], int]:
    sid = new_snapshot_id()
    writer = SnapshotWriter(backend, KEYS, GROUP, KIND, sid, ARROW_SCHEMA, rows_per_part)
    for b in batches:
        writer.write(b)
    parts = writer.close()
    return sid, parts, writer.rows


def _publish(backend: Backend, batches: list[pa.RecordBatch], mode: str, **kw):
    sid, parts, rows = _write(backend, batches, **kw)
    return publish(backend, KEYS, GROUP, KIND, sid, parts, rows, SCHEMA_DOC, mode)


def _ids(backend: Backend) -> list[int]:
    table = read_table(backend, KEYS, GROUP, KIND)
    assert table is not None
    return sorted(table.column("id").to_pylist())


def test_publish_full_then_incremental_manifests(backend: Backend) -> None:
    assert read_current(backend, KEYS, GROUP, KIND) is None
    assert read_table(backend, KEYS, GROUP, KIND) is None

    full = _publish(backend, [_batch(0, 30), _batch(30, 30), _batch(60, 10)], "full",
                    rows_per_part=25)
    assert full.mode == "full" and full.parent is None
    assert full.rows == 70 and len(full.parts) == 3  # a new part once 25 rows are reached
    assert all(p.startswith(KEYS.snapshot(GROUP, KIND, full.snapshot_id) + "/") for p in full.parts)
    assert read_current(backend, KEYS, GROUP, KIND) == full

    inc = _publish(backend, [_batch(70, 5)], "incremental")
    assert inc.mode == "incremental" and inc.parent == full.snapshot_id
    assert inc.parts == full.parts + [KEYS.snapshot(GROUP, KIND, inc.snapshot_id)
                                      + "/part-00000.parquet"]
    assert inc.rows == 75
    assert read_current(backend, KEYS, GROUP, KIND) == inc
    assert _ids(backend) == list(range(75))

    # A later full import replaces everything.
    again = _publish(backend, [_batch(1000, 4)], "full")
    assert again.parent == inc.snapshot_id and again.rows == 4 and len(again.parts) == 1
    assert _ids(backend) == [1000, 1001, 1002, 1003]


def test_read_table_returns_exactly_what_was_written(backend: Backend) -> None:
    batches = [_batch(0, 100), _batch(100, 1), _batch(101, 50)]
    _publish(backend, batches, "full", rows_per_part=60)
    table = read_table(backend, KEYS, GROUP, KIND)
    assert table is not None
    assert table.schema == ARROW_SCHEMA
    expected = pa.Table.from_batches(batches)
    assert table.sort_by("id").equals(expected)


def test_empty_snapshot_has_schema_and_no_rows(backend: Backend) -> None:
    manifest = _publish(backend, [], "full")
    assert manifest.rows == 0 and len(manifest.parts) == 1
    table = read_table(backend, KEYS, GROUP, KIND)
    assert table is not None and table.num_rows == 0 and table.schema == ARROW_SCHEMA


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_incremental_publishes_all_land(backend: Backend, n: int) -> None:
    base = _publish(backend, [_batch(0, 10)], "full")
    # Each import's parts are written first, then all publish at once.
    written = [_write(backend, [_batch(100 * (i + 1), i + 1)]) for i in range(n)]

    def pub(i: int):
        sid, parts, rows = written[i]
        return publish(backend, KEYS, GROUP, KIND, sid, parts, rows, SCHEMA_DOC, "incremental")

    results = run_threads(n, pub)
    assert not [r for r in results if isinstance(r, BaseException)], results
    final = read_current(backend, KEYS, GROUP, KIND)
    assert final is not None
    assert final.rows == 10 + sum(i + 1 for i in range(n))
    assert sorted(final.parts) == sorted(base.parts + [p for _, parts, _ in written for p in parts])
    assert _ids(backend) == list(range(10)) + [100 * (i + 1) + j for i in range(n)
                                               for j in range(i + 1)]
    # The publishes form one chain: each manifest's parent is the one published before it.
    chain, m = [], final
    while m.parent is not None:
        chain.append(m.snapshot_id)
        m = _manifest(backend, m.parent)
    assert m.snapshot_id == base.snapshot_id
    assert sorted(chain) == sorted(sid for sid, _, _ in written)


class _Interleaving:
    """A backend proxy that runs `between` once, right before the first swap of CURRENT."""

    def __init__(self, inner: Backend, between: Callable[[], object]) -> None:
        self._inner, self._between, self.swaps = inner, between, 0

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def replace(self, key: str, data: bytes, etag: str) -> str:
        self.swaps += 1
        if self.swaps == 1 and key.endswith("/CURRENT"):
            self._between()
        return self._inner.replace(key, data, etag)


def test_incremental_publish_rebases_when_another_lands_first(backend: Backend) -> None:
    base = _publish(backend, [_batch(0, 10)], "full")
    other: dict = {}
    racing = _Interleaving(backend, lambda: other.update(m=_publish(backend, [_batch(500, 3)],
                                                                     "incremental")))
    sid, parts, rows = _write(backend, [_batch(900, 2)])
    mine = publish(racing, KEYS, GROUP, KIND, sid, parts, rows, SCHEMA_DOC, "incremental")  # type: ignore[arg-type]
    assert racing.swaps == 2  # the first swap lost, the rebuilt manifest won
    assert other["m"].parent == base.snapshot_id
    assert mine.parent == other["m"].snapshot_id
    assert mine.rows == 15 and mine.parts == base.parts + other["m"].parts[1:] + parts
    assert _manifest(backend, sid) == mine  # the manifest on disk is the rebuilt one
    assert _ids(backend) == list(range(10)) + [500, 501, 502, 900, 901]


def _manifest(backend: Backend, snapshot_id: str):
    import json

    from store.snapshots import Manifest

    data, _ = backend.get(f"{KEYS.snapshot(GROUP, KIND, snapshot_id)}/manifest.json")
    return Manifest(**json.loads(data))


def test_unpublished_snapshot_is_invisible(backend: Backend) -> None:
    # Nothing published yet: written parts alone make no dataset.
    _write(backend, [_batch(0, 10)])
    assert read_current(backend, KEYS, GROUP, KIND) is None
    assert read_table(backend, KEYS, GROUP, KIND) is None

    published = _publish(backend, [_batch(100, 5)], "full")
    # Written and closed but never published.
    _write(backend, [_batch(200, 50)])
    # Aborted mid-way: an open part, then abort.
    sid = new_snapshot_id()
    writer = SnapshotWriter(backend, KEYS, GROUP, KIND, sid, ARROW_SCHEMA, rows_per_part=10)
    writer.write(_batch(300, 15))
    writer.write(_batch(315, 5))
    writer.abort()
    assert list(backend.list(KEYS.snapshot(GROUP, KIND, sid))) == []

    assert read_current(backend, KEYS, GROUP, KIND) == published
    assert _ids(backend) == [100, 101, 102, 103, 104]


# --- Keys --------------------------------------------------------------------------------------

INVALID_NAMES = ["..", ".", "a/b", "/a", "%2e", "%2e%2e", "a\x00b", "\x00", "a" * 64, "",
                 "-a", "_a", "a b", "a.b", "a\n", "é", "a\\b"]


def _key_builders(name: str) -> dict[str, Callable[[], str]]:
    k = KEYS
    return {
        "tenant": lambda: Keys(name).root,
        "group": lambda: k.group(name),
        "group_record": lambda: k.group_record(name),
        "dataset": lambda: k.dataset(name, "items"),
        "dataset_record": lambda: k.dataset_record(name, "users"),
        "current": lambda: k.current(name, "interactions"),
        "snapshot.group": lambda: k.snapshot(name, "interactions", "s1"),
        "snapshot.id": lambda: k.snapshot("g", "interactions", name),
        "import_jobs": lambda: k.import_jobs(name),
        "import_job.group": lambda: k.import_job(name, "j"),
        "import_job.job": lambda: k.import_job("g", name),
        "dataset.kind": lambda: k.dataset("g", name),
        "upload": lambda: k.upload(name),
    }


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_every_invalid_name_raises_value_error(name: str) -> None:
    for what, build in _key_builders(name).items():
        with pytest.raises(ValueError):
            build()
            pytest.fail(f"{what} accepted {name!r}")


def test_max_length_name_is_valid() -> None:
    assert Keys("a" * 63).root == "tenants/" + "a" * 63


def test_valid_keys_start_with_the_tenant_root() -> None:
    for tenant in ("acme", "t", "A-1_b", "9" * 63):
        k = Keys(tenant)
        keys = [k.groups(), k.group("g"), k.group_record("g-1"), k.dataset("g", "items"),
                k.dataset_record("g", "interactions"), k.current("g", "users"),
                k.snapshot("g", "items", new_snapshot_id()), k.import_jobs("g"),
                k.import_job("g", "job_1"), k.upload("0123456789abcdef" * 2)]
        for key in keys:
            assert key.startswith(f"tenants/{tenant}/"), key
            assert ".." not in key.split("/") and "//" not in key and "\x00" not in key


# --- Tenants -----------------------------------------------------------------------------------


def test_create_tenant_returns_a_key_that_resolves(registry: Registry) -> None:
    key_a = create_tenant(registry, "acme")
    key_b = create_tenant(registry, "globex")
    assert key_a.startswith(KEY_PREFIX) and len(key_a) > len(KEY_PREFIX) + 30
    assert key_a != key_b
    assert resolve_api_key(registry, key_a) == "acme"
    assert resolve_api_key(registry, key_b) == "globex"
    second = create_api_key(registry, "acme")
    assert resolve_api_key(registry, second) == "acme"
    assert resolve_api_key(registry, key_a) == "acme"


def test_api_keys_are_never_stored_in_clear(store: Store) -> None:
    keys = [create_tenant(store.registry, t) for t in ("acme", "globex")]
    keys.append(create_api_key(store.registry, "acme"))
    objects = list(_all_bucket_objects(store.backend))
    assert len(objects) >= 5  # 2 tenants + 3 api keys
    for api_key in keys:
        secret = api_key[len(KEY_PREFIX):]
        for name, body in objects:
            assert secret not in name
            assert secret.encode() not in body, name
            assert api_key.encode() not in body, name


GARBAGE_KEYS = ["", "garbage", KEY_PREFIX, KEY_PREFIX + "x" * 200, "Bearer " + KEY_PREFIX + "abc",
                KEY_PREFIX + "../../tenants/acme", KEY_PREFIX + "\x00", "\x00" * 10, "TGR_abc",
                "tgr-abc"]


@pytest.mark.parametrize("garbage", GARBAGE_KEYS, ids=repr)
def test_resolve_garbage_key_is_none(registry: Registry, garbage: str) -> None:
    create_tenant(registry, "acme")
    assert resolve_api_key(registry, garbage) is None


def test_resolve_unknown_or_altered_key_is_none(registry: Registry) -> None:
    good = create_tenant(registry, "acme")
    assert resolve_api_key(registry, KEY_PREFIX + "A" * 43) is None
    altered = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert resolve_api_key(registry, altered) is None
    assert resolve_api_key(registry, good + "x") is None
    assert resolve_api_key(registry, good.upper()) is None


def test_second_create_tenant_of_same_name_raises(registry: Registry, backend: Backend) -> None:
    first = create_tenant(registry, "acme")
    keys_before = list(backend.list("system/api-keys"))
    with pytest.raises(AlreadyExists):
        create_tenant(registry, "acme")
    assert list(backend.list("system/api-keys")) == keys_before  # no key minted for the loser
    assert resolve_api_key(registry, first) == "acme"


def test_create_tenant_rejects_invalid_names(registry: Registry) -> None:
    for name in ("..", "a/b", "", "-x"):
        with pytest.raises(ValueError):
            create_tenant(registry, name)
    with pytest.raises(NotFound):
        create_api_key(registry, "nobody")


def test_store_file_root_is_what_the_uri_says(file_store_uri: str) -> None:
    store = Store(StoreConfig.from_env(file_store_uri))
    store.registry.create("a.json", {})
    assert (Path(file_store_uri.removeprefix("file://")) / "a.json").is_file()
