"""Parquet dataset snapshots, published with one atomic pointer write.

A snapshot is written as Parquet parts under `snapshots/{id}/`, which nothing reads until its
manifest is written and `CURRENT` is swapped to it by compare-and-swap. Readers only open what
the manifest of the current snapshot lists, so a failed or killed import is never visible:
the dataset is always the previous snapshot or the complete new one. An incremental snapshot
lists the previous snapshot's parts plus its own (appending copies nothing).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .fs import Backend, PreconditionFailed
from .registry import Keys, backoff

__all__ = ["Manifest", "SnapshotWriter", "new_snapshot_id", "publish", "read_current", "read_manifest",
           "open_current", "read_table"]


def new_snapshot_id() -> str:
    """A unique id that sorts by creation time."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


@dataclass
class Manifest:
    snapshot_id: str
    parts: list[str]  # store keys of Parquet files
    rows: int
    schema: dict[str, Any]  # the dataset schema (sdk.types.Schema as JSON)
    mode: str
    parent: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()


class SnapshotWriter:
    """Writes record batches as Parquet parts of one unpublished snapshot."""

    def __init__(self, backend: Backend, keys: Keys, group: str, kind: str, snapshot_id: str,
                 arrow_schema: pa.Schema, rows_per_part: int = 8_000_000) -> None:
        self.backend = backend
        self.prefix = keys.snapshot(group, kind, snapshot_id)
        self.arrow_schema = arrow_schema
        self.rows_per_part = rows_per_part
        self.parts: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._stream: Any = None
        self._part_rows = 0

    def _open_part(self) -> None:
        key = f"{self.prefix}/part-{len(self.parts):05d}.parquet"
        self._stream = self.backend.open_output(key)
        self._writer = pq.ParquetWriter(self._stream, self.arrow_schema, compression="zstd")
        self.parts.append(key)
        self._part_rows = 0

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._stream.close()
            self._writer = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self._part_rows >= self.rows_per_part:
            self._close_part()
            self._open_part()
        assert self._writer is not None
        self._writer.write_batch(batch)
        self._part_rows += batch.num_rows
        self.rows += batch.num_rows

    def close(self) -> list[str]:
        """Finish the last part; an empty snapshot gets one empty part so it has a schema."""
        if not self.parts:
            self._open_part()
        self._close_part()
        return self.parts

    def abort(self) -> None:
        """Best-effort removal of what was written (it was never visible anyway)."""
        try:
            self._close_part()
        except Exception:
            pass
        self.backend.delete_prefix(self.prefix)


def read_current(backend: Backend, keys: Keys, group: str, kind: str) -> Manifest | None:
    """The manifest of the published snapshot, or None if nothing was imported yet."""
    try:
        pointer, _ = backend.get(keys.current(group, kind))
    except FileNotFoundError:
        return None
    return read_manifest(backend, keys, group, kind, json.loads(pointer)["snapshot_id"])


def read_manifest(backend: Backend, keys: Keys, group: str, kind: str, snapshot_id: str) -> Manifest:
    """The manifest of snapshot `snapshot_id` (current or not); FileNotFoundError if it is gone."""
    data, _ = backend.get(f"{keys.snapshot(group, kind, snapshot_id)}/manifest.json")
    return Manifest(**json.loads(data))


def publish(backend: Backend, keys: Keys, group: str, kind: str, snapshot_id: str, parts: list[str],
            rows: int, schema: dict[str, Any], mode: str, *, attempts: int = 20) -> Manifest:
    """Make `snapshot_id` the current snapshot: write its manifest, then swap `CURRENT`.

    For mode "incremental" the manifest extends the snapshot current at publish time; if
    another import publishes in between, the manifest is rebuilt on top of it and retried.
    """
    pointer_key = keys.current(group, kind)
    manifest_key = f"{keys.snapshot(group, kind, snapshot_id)}/manifest.json"
    pointer = json.dumps({"snapshot_id": snapshot_id}).encode()
    for attempt in range(attempts):
        if attempt:
            backoff(attempt - 1)
        try:
            data, etag = backend.get(pointer_key)
            parent = json.loads(data)["snapshot_id"]
        except FileNotFoundError:
            etag, parent = None, None
        if parent == snapshot_id:  # our swap landed but its answer was lost: done
            return read_manifest(backend, keys, group, kind, snapshot_id)
        base_parts: list[str] = []
        base_rows = 0
        if mode == "incremental" and parent is not None:
            prev = read_manifest(backend, keys, group, kind, parent)
            base_parts, base_rows = prev.parts, prev.rows
        manifest = Manifest(snapshot_id=snapshot_id, parts=base_parts + parts,
                            rows=base_rows + rows, schema=schema, mode=mode, parent=parent)
        backend.put(manifest_key, manifest.to_json())
        try:
            if etag is None:
                backend.create(pointer_key, pointer)
            else:
                backend.replace(pointer_key, pointer, etag)
            return manifest
        except PreconditionFailed:
            continue
    raise RuntimeError(f"could not publish snapshot {snapshot_id}: too many concurrent imports")


def open_snapshot(backend: Backend, manifest: Manifest) -> pads.Dataset:
    """A pyarrow Dataset over one snapshot (streams; nothing loaded yet)."""
    paths = [backend.path(k) for k in manifest.parts]
    return pads.dataset(paths, format="parquet", filesystem=backend.filesystem)


def open_current(backend: Backend, keys: Keys, group: str, kind: str) -> pads.Dataset | None:
    """A pyarrow Dataset over the current snapshot (streams; nothing loaded yet)."""
    manifest = read_current(backend, keys, group, kind)
    return None if manifest is None else open_snapshot(backend, manifest)


def read_table(backend: Backend, keys: Keys, group: str, kind: str) -> pa.Table | None:
    ds = open_current(backend, keys, group, kind)
    return None if ds is None else ds.to_table()


def iter_batches(backend: Backend, keys: Keys, group: str, kind: str,
                 batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    ds = open_current(backend, keys, group, kind)
    if ds is not None:
        yield from ds.to_batches(batch_size=batch_size)
