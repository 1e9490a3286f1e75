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
