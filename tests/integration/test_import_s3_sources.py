"""The import job reading a tenant's S3 object (`source.uri`) on the loopback S3 server.

Compression is found from the object's first bytes, whatever its key says; a zip archive is read
through ranged reads (its directory is at the end); Parquet row groups are sized from their
dictionaries read first, also ranged. The same cases run on uploads in tests/unit/test_import_hostile.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import boto3
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from store import Keys, Store, now_iso
from tests.conftest import INTERACTIONS_SCHEMA, new_bucket, unique
from tests.helpers_import import TENANT, create_dataset, open_store, read_dataset

ROWS = 2000


@pytest.fixture
def store(s3_endpoint: str) -> Store:
    return open_store(f"s3://{new_bucket(s3_endpoint)}/store")


def interactions(rows: int = ROWS) -> pa.Table:
    return pa.table({"user_id": [f"u{i % 97}" for i in range(rows)],
                     "item_id": [f"i{i % 31}" for i in range(rows)],
                     "timestamp": [1_700_000_000 + i for i in range(rows)],
                     "event_type": ["click"] * rows, "event_value": [1.0] * rows})


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("events.csv", data)
    return out.getvalue()


def import_object(store: Store, s3_endpoint: str, key: str, data: bytes) -> dict:
    """Put `data` at `key` in a fresh bucket of the tenant's and run an import job reading it."""
    from training_jobs.dataset_import import run_import

    bucket = new_bucket(s3_endpoint)
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket=bucket, Key=key, Body=data)
    group, name = unique(), f"import-{unique()}"
    create_dataset(store, group, INTERACTIONS_SCHEMA)
    store.registry.create(Keys(TENANT).import_job(group, name), {
        "name": name, "dataset_group": group, "dataset": "interactions", "mode": "full",
        "source": {"uri": f"s3://{bucket}/{key}"}, "status": "CREATE_PENDING",
        "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None},
        "created_at": now_iso(), "updated_at": now_iso()})
    job = run_import(store, TENANT, group, name)
    job["table"] = read_dataset(store, group)
    return job


@pytest.mark.parametrize("key,pack", [
    ("exports/events", gzip.compress), ("exports/events.csv", gzip.compress),
    ("exports/events.zip", zipped), ("exports/events.csv.gz", zipped),
], ids=["gzip-no-suffix", "gzip-as-csv", "zip", "zip-as-gz"])
def test_compressed_object_is_read_whatever_its_key(store: Store, s3_endpoint: str, key: str, pack) -> None:
    job = import_object(store, s3_endpoint, key, pack(csv_bytes(interactions())))
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == job["table"].num_rows == ROWS


def test_gz_key_on_a_plain_object_is_refused(store: Store, s3_endpoint: str) -> None:
    job = import_object(store, s3_endpoint, "exports/events.csv.gz", csv_bytes(interactions()))
    assert job["status"] == "CREATE_FAILED"
    assert "named .gz but not gzip-compressed" in job["failure_reason"], job["failure_reason"]


def test_parquet_dictionary_bomb_from_s3(store: Store, s3_endpoint: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Several row groups, each with one long item id in every row: all rows read, small batches."""
    import training_jobs.dataset_import as dataset_import

    block = 16 << 10
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", block)
    table = interactions().set_column(1, "item_id", pa.array(["i" * 5000] * ROWS))
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROWS // 4)
    sizes: list[int] = []
    real_conform = dataset_import.conform
    monkeypatch.setattr(dataset_import, "conform",
                        lambda batch, *a, **kw: sizes.append(batch.nbytes) or real_conform(batch, *a, **kw))
    job = import_object(store, s3_endpoint, "exports/events.parquet", sink.getvalue())
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["table"].column("item_id").to_pylist() == ["i" * 5000] * ROWS
    assert max(sizes) <= dataset_import.READAHEAD_BLOCKS * block < sum(sizes) / 100
