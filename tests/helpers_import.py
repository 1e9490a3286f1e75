"""Import jobs without the HTTP API: write the records the control plane writes, then run the job.

Mirrors `create_group`, `create_dataset`, `upload` and `create_import_job` in serving/app.py, so
tests of the import job (validation, crash consistency) need neither a server nor Ray.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa

from sdk.types import Schema
from store import Keys, Store, StoreConfig, now_iso
from store.snapshots import read_table

TENANT = "tenant-a"
KIND = "interactions"


def open_store(uri: str) -> Store:
    """The store at `uri`, S3 endpoint and region from the environment (as the job does)."""
    return Store(StoreConfig.from_env(uri))


def create_dataset(store: Store, group: str, schema: dict[str, Any], *, kind: str = KIND,
                   tenant: str = TENANT) -> None:
    """A dataset group holding one ACTIVE dataset of `kind` with `schema` (validated first)."""
    keys = Keys(tenant)
    checked = Schema.model_validate(schema).model_dump(mode="json", by_alias=True)
    store.registry.create(keys.group_record(group),
                          {"name": group, "description": "", "status": "ACTIVE",
                           "created_at": now_iso(), "updated_at": now_iso()})
    store.registry.create(keys.dataset_record(group, kind),
                          {"name": kind, "kind": kind, "dataset_group": group, "status": "ACTIVE",
                           "schema": checked, "created_at": now_iso(), "updated_at": now_iso()})


def upload(store: Store, data: bytes, *, filename: str = "data.csv", tenant: str = TENANT) -> str:
    """Store `data` as an upload (its bytes and its upload.json); returns the upload id."""
    keys = Keys(tenant)
    upload_id = uuid.uuid4().hex
    out = store.backend.open_output(f"{keys.upload(upload_id)}/data")
    out.write(data)
    out.close()
    store.registry.create(f"{keys.upload(upload_id)}/upload.json",
                          {"upload_id": upload_id, "size": len(data), "filename": filename,
                           "created_at": now_iso()})
    return upload_id


def create_import_job(store: Store, group: str, data: bytes, *, name: str | None = None,
                      mode: str = "full", source_name: str = "data.csv", kind: str = KIND,
                      tenant: str = TENANT) -> str:
    """Upload `data` and record a CREATE_PENDING import job for it; returns the job's name."""
    keys = Keys(tenant)
    name = name or f"import-{uuid.uuid4().hex[:10]}"
    upload_id = upload(store, data, filename=source_name, tenant=tenant)
    store.registry.create(keys.import_job(group, name), {
        "name": name, "dataset_group": group, "dataset": kind, "mode": mode,
        "source": {"upload_id": upload_id}, "source_name": source_name,
        "status": "CREATE_PENDING",
        "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None},
        "created_at": now_iso(), "updated_at": now_iso()})
    return name


def run_job(store: Store, group: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
    """Create an import job for `data` and run it in this process; returns the final record."""
    from training_jobs.dataset_import import run_import

    tenant = kwargs.get("tenant", TENANT)
    name = create_import_job(store, group, data, **kwargs)
    return run_import(store, tenant, group, name)


def read_dataset(store: Store, group: str, *, kind: str = KIND,
                 tenant: str = TENANT) -> pa.Table | None:
    return read_table(store.backend, Keys(tenant), group, kind)


def snapshot_keys(store: Store, group: str, *, kind: str = KIND,
                  tenant: str = TENANT) -> list[str]:
    """Every stored key below the dataset's snapshots/ folder."""
    return list(store.backend.list(f"{Keys(tenant).dataset(group, kind)}/snapshots"))


def snapshot_ids(store: Store, group: str, *, kind: str = KIND, tenant: str = TENANT) -> set[str]:
    """The snapshot folders that hold at least one object."""
    prefix = f"{Keys(tenant).dataset(group, kind)}/snapshots/"
    return {k[len(prefix):].split("/", 1)[0] for k in snapshot_keys(store, group, kind=kind,
                                                                     tenant=tenant)}


def canonical(table: pa.Table) -> pa.Table:
    """`table` sorted by every column, in one chunk: equal row multisets give equal tables.

    For schemas without list (categorical) columns, which Arrow cannot sort by.
    """
    keys = [(name, "ascending") for name in table.column_names]
    return table.sort_by(keys).combine_chunks()
