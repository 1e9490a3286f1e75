"""The import job when things around it go wrong: lost answers, reaped jobs, odd encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.types import ImportSource
from store import Keys, Registry
from store.snapshots import publish, read_current
from tests.conftest import INTERACTIONS_SCHEMA
from tests.helpers_import import (
    TENANT,
    create_dataset,
    create_import_job,
    open_store,
    read_dataset,
    run_job,
)
from training_jobs import dataset_import
from training_jobs.dataset_import import run_import

HEADER = b"user_id,item_id,timestamp,event_type,event_value\n"
OLD = HEADER + b"u1,i1,1700000000,click,1\nu2,i2,1700000001,click,2\n"
NEW = HEADER + b"u3,i3,1700000002,click,3\n"


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(f"file://{tmp_path / 'store'}")
    create_dataset(s, "g", INTERACTIONS_SCHEMA)
    return s


def test_failure_after_publish_never_deletes_the_current_snapshot(store, monkeypatch) -> None:
    run_job(store, "g", OLD)
    real_update = Registry.update

    def update(self, key, mutate, **kw):
        def check(doc):
            new = mutate(doc)
            if new is not None and new.get("status") == "ACTIVE":
                raise OSError("store unreachable")  # the last status write fails
            return new
        return real_update(self, key, check, **kw)

    monkeypatch.setattr(Registry, "update", update)
    name = create_import_job(store, "g", NEW)
    with pytest.raises(OSError):
        run_import(store, TENANT, "g", name)
    monkeypatch.setattr(Registry, "update", real_update)
    # Published before the failure: the new snapshot is current and complete, still readable.
    assert read_dataset(store, "g").column("user_id").to_pylist() == ["u3"]


def test_a_reaped_job_stops_and_publishes_nothing(store, monkeypatch) -> None:
    run_job(store, "g", OLD)
    before = read_current(store.backend, Keys(TENANT), "g", "interactions")
    name = create_import_job(store, "g", NEW)
    real_conform = dataset_import.conform

    def conform_then_reaped(*args, **kw):
        # While the job works, the control plane reports it dead (e.g. it was too slow).
        store.registry.update(Keys(TENANT).import_job("g", name),
                              lambda d: {**d, "status": "CREATE_FAILED", "failure_reason": "reaped"})
        return real_conform(*args, **kw)

    monkeypatch.setattr(dataset_import, "conform", conform_then_reaped)
    final = run_import(store, TENANT, "g", name)
    assert final["status"] == "CREATE_FAILED" and final["failure_reason"] == "reaped"
    assert read_current(store.backend, Keys(TENANT), "g", "interactions") == before


def test_publish_retried_after_a_lost_answer_does_not_duplicate(store) -> None:
    run_job(store, "g", OLD)
    keys = Keys(TENANT)
    prev = read_current(store.backend, keys, "g", "interactions")
    args = (store.backend, keys, "g", "interactions", "20990101T000000-aaaaaaaaaaaa",
            ["some/part.parquet"], 7, prev.schema, "incremental")
    first = publish(*args)
    again = publish(*args)  # as a retry does when the swap landed but its answer was lost
    assert again == first and again.rows == prev.rows + 7
    assert again.parts == prev.parts + ["some/part.parquet"]


def test_csv_with_a_byte_order_mark(store) -> None:
    job = run_job(store, "g", b"\xef\xbb\xbf" + OLD)
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert read_dataset(store, "g").column("user_id").to_pylist() == ["u1", "u2"]


@pytest.mark.parametrize("uri", [
    "s3://bucket/../store-bucket/tenants/b/x.csv", "s3://bucket/a/../../b", "s3://bucket/./a",
    "s3://bucket/a//b", "s3://bucket/a%2F..%2Fb", "s3://bucket/a\\b", "s3://bucket/a\x00"])
def test_source_uris_cannot_traverse(uri: str) -> None:
    with pytest.raises(ValueError, match="uri"):
        ImportSource(uri=uri)


def test_traversing_uri_in_a_record_is_refused_by_the_job(store) -> None:
    """Defence in depth: even a record written around the API cannot name another key."""
    keys = Keys(TENANT)
    store.registry.create(keys.import_job("g", "evil"), {
        "name": "evil", "dataset_group": "g", "dataset": "interactions", "mode": "full",
        "source": {"uri": "s3://bucket/../other/tenants/b/x.csv"}, "status": "CREATE_PENDING",
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00"})
    final = run_import(store, TENANT, "g", "evil")
    assert final["status"] == "CREATE_FAILED" and "uri" in final["failure_reason"]
