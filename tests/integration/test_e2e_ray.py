"""End to end through the SDK: the control plane over real HTTP, import jobs as Ray tasks on a
local Ray cluster, the store in a bucket of the loopback S3 server."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from sdk import BadRequestError, ResourceFailedError
from sdk.synthetic import generate
from store import Keys, Store, StoreConfig
from store.snapshots import read_table
from tests.conftest import INTERACTIONS_SCHEMA, new_bucket, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_import_lifecycle_on_ray_and_s3(ray_platform, tmp_path: Path, s3_endpoint: str) -> None:
    client = ray_platform.client()
    group = unique()
    client.dataset_groups.create(group)
    data = generate(seed=3, n_users=200, n_items=100, n_interactions=5_000)
    paths = data.write_csv(tmp_path)
    for kind, schema in data.schemas.items():
        client.datasets.create(group, kind=kind, schema=schema)
        job = client.dataset_import_jobs.create_and_wait(group, dataset=kind, source=paths[kind],
                                                         poll_interval=0.2, timeout=300)
        assert job.status.value == "ACTIVE"
        assert job.progress.rows == data.tables()[kind].num_rows
        assert client.datasets.retrieve(group, kind).row_count == data.tables()[kind].num_rows

    # What the store holds is exactly what was generated (read back with the store's reader).
    store = Store(StoreConfig.from_env(ray_platform.store_uri))
    stored = read_table(store.backend, Keys("tenant-a"), group, "interactions")
    assert stored.num_rows == 5_000
    assert sorted(stored.column("item_id").to_pylist()) == \
        sorted(data.interactions.column("item_id").to_pylist())

    before = client.datasets.retrieve(group, "interactions")
    # Incremental import appends.
    extra = tmp_path / "extra.csv"
    extra.write_text("user_id,item_id,timestamp,event_type,event_value\nu1,i1,1700000000,click,1\n")
    client.dataset_import_jobs.create_and_wait(group, dataset="interactions", source=extra,
                                               mode="incremental", poll_interval=0.2)
    after = client.datasets.retrieve(group, "interactions")
    assert after.row_count == before.row_count + 1
    assert after.current_snapshot != before.current_snapshot

    # A bad file fails the job with a reason naming column and rows; nothing is published.
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                   "u1,i1,1700000000,click,1\nu2,i2,1700000001,click,lots\n")
    with pytest.raises(ResourceFailedError) as err:
        client.dataset_import_jobs.create_and_wait(group, dataset="interactions", source=bad,
                                                   poll_interval=0.2)
    reason = err.value.failure_reason
    assert "event_value" in reason and "row 2" in reason and "'lots'" in reason
    assert client.datasets.retrieve(group, "interactions").current_snapshot == after.current_snapshot


def test_import_from_tenant_bucket_uri(ray_platform, tmp_path: Path, s3_endpoint: str) -> None:
    client = ray_platform.client()
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    bucket = new_bucket(s3_endpoint)
    body = "user_id,item_id,timestamp,event_type,event_value\n" + "".join(
        f"u{i % 7},i{i % 11},{1700000000 + i},click,1\n" for i in range(50))
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket=bucket, Key="in/x.csv",
                                                           Body=body.encode())
    job = client.dataset_import_jobs.create_and_wait(group, dataset="interactions",
                                                     source=f"s3://{bucket}/in/x.csv",
                                                     poll_interval=0.2)
    assert job.progress.rows == 50
    # The platform's own bucket holds every tenant's data: it is never a valid source.
    store_bucket = ray_platform.store_uri.split("/")[2]
    with pytest.raises(BadRequestError, match="source.uri"):
        client.dataset_import_jobs.create(group, dataset="interactions",
                                          source=f"s3://{store_bucket}/store/tenants/tenant-b/x")
    missing = client.dataset_import_jobs.create(group, dataset="interactions",
                                                source=f"s3://{bucket}/nope.csv")
    with pytest.raises(ResourceFailedError, match="not found"):
        client.dataset_import_jobs.wait(group, missing.name, poll_interval=0.2)
