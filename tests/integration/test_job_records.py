"""Import-job records as the control plane serves them: a job whose process died is reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store import Keys, Store, StoreConfig
from tests.conftest import INTERACTIONS_SCHEMA, unique

pytestmark = pytest.mark.integration


def test_silent_in_progress_job_is_marked_failed(platform) -> None:
    client = platform.client()
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    registry = Store(StoreConfig.from_env(platform.store_uri)).registry
    keys = Keys("tenant-a")
    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    recent = datetime.now(UTC).isoformat()
    for name, updated in (("dead", long_ago), ("alive", recent)):
        registry.create(keys.import_job(group, name), {
            "name": name, "dataset_group": group, "dataset": "interactions", "mode": "full",
            "source": {"upload_id": "0" * 32}, "status": "CREATE_IN_PROGRESS",
            "progress": {"rows": 10, "bytes_read": 100, "bytes_total": 1000},
            "created_at": long_ago, "updated_at": updated})
    dead = client.dataset_import_jobs.retrieve(group, "dead")
    assert dead.status.value == "CREATE_FAILED"
    assert "stopped reporting progress" in dead.failure_reason
    assert client.dataset_import_jobs.retrieve(group, "alive").status.value == "CREATE_IN_PROGRESS"
    listed = {j.name: j.status.value for j in client.dataset_import_jobs.list(group)}
    assert listed == {"dead": "CREATE_FAILED", "alive": "CREATE_IN_PROGRESS"}


def test_pending_job_no_runner_holds_is_marked_failed(platform) -> None:
    """A job whose submitter died (platform restart) never runs: it is reported, and it no
    longer blocks deleting its dataset."""
    client = platform.client()
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    registry = Store(StoreConfig.from_env(platform.store_uri)).registry
    long_ago = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    registry.create(Keys("tenant-a").import_job(group, "orphan"), {
        "name": "orphan", "dataset_group": group, "dataset": "interactions", "mode": "full",
        "source": {"upload_id": "0" * 32}, "status": "CREATE_PENDING",
        "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None},
        "created_at": long_ago, "updated_at": long_ago})
    client.datasets.delete(group, "interactions")  # not blocked by the dead job
    orphan = client.dataset_import_jobs.retrieve(group, "orphan")
    assert orphan.status.value == "CREATE_FAILED" and "never started" in orphan.failure_reason


def test_delete_refused_while_an_import_runs(platform) -> None:
    from sdk import ConflictError

    client = platform.client()
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    registry = Store(StoreConfig.from_env(platform.store_uri)).registry
    now = datetime.now(UTC).isoformat()
    registry.create(Keys("tenant-a").import_job(group, "busy"), {
        "name": "busy", "dataset_group": group, "dataset": "interactions", "mode": "full",
        "source": {"upload_id": "0" * 32}, "status": "CREATE_IN_PROGRESS",
        "progress": {"rows": 5, "bytes_read": 10, "bytes_total": 100},
        "created_at": now, "updated_at": now})
    with pytest.raises(ConflictError, match="busy"):
        client.datasets.delete(group, "interactions")
    with pytest.raises(ConflictError, match="busy"):
        client.dataset_groups.delete(group, force=True)


def test_uploads_expire(tmp_path) -> None:
    """Uploads are staging: past their time to live they are swept on the tenant's next upload."""
    import httpx

    from serving.app import create_app
    from store.tenants import create_tenant

    store = Store(StoreConfig.from_env(f"file://{tmp_path / 'store'}"))
    key = create_tenant(store.registry, "t")
    app = create_app(store, lambda *a: None, upload_ttl_s=0.0)
    transport = httpx.ASGITransport(app=app)

    async def two_uploads() -> list[str]:
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as c:
            headers = {"Authorization": f"Bearer {key}"}
            ids = []
            for body in (b"a,b\n1,2\n", b"c,d\n3,4\n"):
                r = await c.post("/v1/uploads", content=body, headers=headers)
                assert r.status_code == 201
                ids.append(r.json()["upload_id"])
            return ids

    import asyncio

    first, second = asyncio.run(two_uploads())
    keys = Keys("t")
    assert not store.backend.exists(f"{keys.upload(first)}/data")
    assert store.backend.exists(f"{keys.upload(second)}/data")
