"""The dataset import job: stream a CSV/Parquet source, validate, write a snapshot, publish it.

Memory stays bounded: the source is read in blocks (`block_size`), each block is validated and
appended to Parquet, and nothing is held whole. The new snapshot becomes visible only through
one compare-and-swap of the dataset's `CURRENT` pointer (store.snapshots), so a bad file or a
killed job leaves the previous snapshot untouched.

Run as a Ray task by the control plane (`import_task`), or directly in a process:
`python -m training_jobs.dataset_import --store URI --tenant T --group G --job J`.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ValidationError

from sdk.types import ImportSource, Schema, Status
from store import Keys, NotFound, Store, StoreConfig, now_iso
from store.fs import s3_filesystem
from store.snapshots import SnapshotWriter, new_snapshot_id, publish
from store.tables import DataError, arrow_schema, conform

__all__ = ["BLOCK_SIZE", "ImportFailed", "import_task", "run_import"]

# Bytes of CSV per block: bounds memory, keeps Arrow vectorized. The env override is for tests.
BLOCK_SIZE = int(os.environ.get("TAGREC_IMPORT_BLOCK_SIZE") or 16 << 20)
PROGRESS_EVERY_S = 1.0
# Arrow's streaming CSV reader reads up to 32 blocks ahead of its consumer (512 MiB at 16 MiB
# blocks) whenever reading outpaces conversion and upload, and holds them all in memory. The
# source stream makes its reads wait once they are this many blocks ahead of the batches taken.
READAHEAD_BLOCKS = 4
_READAHEAD_WAIT_S = 10.0  # a read held back this long goes ahead anyway: never hang on it


class ImportFailed(Exception):
    """The source cannot be imported; the message is the job's failure_reason."""


class _Source:
    """An opened input: a filesystem, a path in it, its size, and its format."""

    def __init__(self, store: Store, keys: Keys, source: dict[str, Any], name: str | None) -> None:
        try:  # records come from the API; check again all the same
            ImportSource.model_validate(source)
        except ValidationError as e:
            raise ImportFailed(f"invalid source: {e.errors()[0]['msg']}") from None
        if source.get("upload_id"):
            self.fs = store.backend.filesystem
            self.path = store.backend.path(keys.upload(source["upload_id"]) + "/data")
            self.name = name or "upload"
        else:
            uri = urlparse(source["uri"])
            self.fs = s3_filesystem(store.config.endpoint_url, store.config.region)
            self.path = f"{uri.netloc}{uri.path}"
            self.name = source["uri"]
        info = self.fs.get_file_info(self.path)
        if info.type != pafs.FileType.File:
            raise ImportFailed(f"source {self.name!r} not found or not readable")
        self.size = info.size
        self.format = source.get("format") or self._sniff()

    def _sniff(self) -> str:
        with self.fs.open_input_file(self.path) as f:
            head = f.read(4)
        if head == b"PAR1":
            return "parquet"
        return "csv"


def _csv_batches(src: _Source, schema: Schema, progress: dict[str, int]) -> Iterator[pa.RecordBatch]:
    compression = "gzip" if src.name.endswith(".gz") else None
    if src.size == 0:
        raise ImportFailed(f"source {src.name!r} is empty: expected a CSV header line")
    wanted = [f.name for f in schema.fields]
    # include_missing_columns below hides absent columns; check the header ourselves first.
    header = _csv_header(src, compression)
    missing = [n for n in wanted if n not in header]
    if missing:
        shown = ", ".join(repr(h) for h in header[:20])
        raise ImportFailed(
            f"column {missing[0]!r} is missing (schema fields missing from the CSV header: "
            f"{', '.join(missing)}; header has: {shown})"
        )
    raw = src.fs.open_input_stream(src.path)
    counted = _CountingStream(raw, progress, ahead=READAHEAD_BLOCKS * BLOCK_SIZE)
    stream = pa.CompressedInputStream(counted, compression) if compression else counted
    try:
        reader = pacsv.open_csv(
            stream,
            # Serial reading (as fast for this streaming reader) makes parse errors name the row.
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            # Everything as raw bytes: conform() converts and reports offending rows by number.
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in wanted},
                include_columns=wanted,
                include_missing_columns=True,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as e:
        raise ImportFailed(_csv_message(src, e)) from None
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                raise ImportFailed(_csv_message(src, e, progress.get("rows", 0))) from None
            counted.consumed(BLOCK_SIZE)
            yield batch
    finally:
        counted.release()  # a reader abandoned mid-file must not wait for us


def _csv_header(src: _Source, compression: str | None) -> list[str]:
    with src.fs.open_input_stream(src.path, compression=compression) as f:
        head = f.read(1 << 20)
    if b"\x00" in head:
        raise ImportFailed(f"source {src.name!r} is a binary file, not CSV text (it has NUL bytes)")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")  # Excel writes a byte-order mark; Arrow skips it too
    except UnicodeDecodeError:
        raise ImportFailed(
            f"source {src.name!r} is not a UTF-8 CSV file: its first line is not text "
            f"(starts with {first[:16]!r})"
        ) from None
    return next(csv.reader([text]), [])


def _csv_message(src: _Source, e: Exception, rows_done: int = 0) -> str:
    msg = str(e).strip().splitlines()[0]
    if "Empty CSV file" in msg and not rows_done:
        # The header was read before this (and the empty file refused): Arrow says "empty"
        # for a lone header line without a final newline.
        return f"source {src.name!r} has a header but no data rows"
    # Arrow's "Row #N" counts the header as row 1 and skips blank lines, as conform's rows do.
    m = _BAD_ROW.match(msg)
    if m:
        row, expected, got, text = int(m[1]) - 1, m[2], m[3], m[4]
        text = text if len(text) <= 60 else text[:57] + "..."
        return (f"source {src.name!r} is not valid CSV: data row {row} has {got} column(s), "
                f"expected {expected} as in the header: {text!r}")
    where = f" (after data row {rows_done})" if rows_done else ""
    return f"source {src.name!r} is not valid CSV{where}: {msg[:300]!r}"


_BAD_ROW = re.compile(r"CSV parse error: Row #(\d+): Expected (\d+) columns, got (\d+): (.*)", re.S)


class _CountingStream:
    """A file-like wrapper counting bytes read, for progress, and bounding read-ahead.

    With `ahead`, `read` waits while it is `ahead` bytes past what the consumer has taken
    (`consumed`), so Arrow's background reader cannot pile the file up in memory when
    conversion and upload are slower than reading.
    """

    def __init__(self, raw: Any, progress: dict[str, int], ahead: int | None = None) -> None:
        self.raw, self.progress = raw, progress
        self.closed = False
        self._ahead = ahead
        self._read = 0
        self._taken = 0
        self._cond = threading.Condition()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            if self._ahead is not None:
                # A wait that times out lets this one read through (never hang); the bound stays.
                self._cond.wait_for(
                    lambda: self._ahead is None or self._read < self._taken + self._ahead,
                    timeout=_READAHEAD_WAIT_S)
        data = self.raw.read(n)
        with self._cond:
            self._read += len(data)
        self.progress["bytes_read"] = self.progress.get("bytes_read", 0) + len(data)
        return data

    def consumed(self, nbytes: int) -> None:
        """The consumer took a batch made of about `nbytes` of the source."""
        with self._cond:
            self._taken += nbytes
            self._cond.notify_all()

    def release(self) -> None:
        """Stop holding reads back (the consumer is gone or done)."""
        with self._cond:
            self._ahead = None
            self._cond.notify_all()

    def close(self) -> None:
        self.release()
        self.closed = True
        self.raw.close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def _parquet_batches(src: _Source, schema: Schema, progress: dict[str, int]) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(src.fs.open_input_file(src.path))
    except (pa.ArrowInvalid, OSError) as e:
        raise ImportFailed(f"source {src.name!r} is not a valid Parquet file: {e}") from None
    names = pf.schema_arrow.names
    missing = [f.name for f in schema.fields if f.name not in names]
    if missing:
        raise ImportFailed(
            f"column {missing[0]!r} is missing (schema fields missing from the Parquet file: "
            f"{', '.join(missing)}; file has: {', '.join(names[:20])})"
        )
    per_row = src.size / max(pf.metadata.num_rows, 1)
    for batch in pf.iter_batches(batch_size=262_144, columns=[f.name for f in schema.fields]):
        progress["bytes_read"] = progress.get("bytes_read", 0) + int(batch.num_rows * per_row)
        yield batch


def run_import(store: Store, tenant: str, group: str, job_name: str) -> dict[str, Any]:
    """Run one import job to its end; returns the final job record. Never raises for bad data."""
    keys = Keys(tenant)
    registry = store.registry
    job_key = keys.import_job(group, job_name)
    job = registry.read(job_key)
    if job["status"] not in _OPEN:
        return job
    kind = job["dataset"]
    dataset = registry.read(keys.dataset_record(group, kind))
    schema = Schema.model_validate(dataset["schema"])
    snapshot_id = new_snapshot_id()
    writer = SnapshotWriter(store.backend, keys, group, kind, snapshot_id, arrow_schema(schema))

    def set_fields(**fields: Any) -> dict[str, Any]:
        """Update the job while it is open; _JobEnded once someone else ended it (reaped)."""
        def mutate(d: dict[str, Any]) -> dict[str, Any]:
            if d["status"] not in _OPEN:
                raise _JobEnded(d["status"])
            return {**d, **fields, "updated_at": now_iso()}

        try:
            return registry.update(job_key, mutate)
        except NotFound:
            raise _JobEnded("deleted") from None

    def fail(reason: str) -> dict[str, Any]:
        writer.abort()
        try:
            return set_fields(status=Status.CREATE_FAILED.value, failure_reason=reason)
        except _JobEnded:
            return registry.read(job_key)

    progress: dict[str, int] = {"rows": 0, "bytes_read": 0}
    try:
        src = _Source(store, keys, job["source"], job.get("source_name"))
        set_fields(status=Status.CREATE_IN_PROGRESS.value, snapshot_id=snapshot_id,
                   progress={"rows": 0, "bytes_read": 0, "bytes_total": src.size})
        read = _parquet_batches if src.format == "parquet" else _csv_batches
        last = time.monotonic()
        for batch in read(src, schema, progress):
            writer.write(conform(batch, schema, first_row=progress["rows"] + 1))
            progress["rows"] += batch.num_rows
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                set_fields(progress={**progress, "bytes_total": src.size})
        if progress["rows"] == 0:
            raise ImportFailed(f"source {src.name!r} has a header but no data rows")
        parts = writer.close()
        set_fields(progress={**progress, "bytes_total": src.size})  # still ours, just before publish
    except _JobEnded:
        writer.abort()
        return registry.read(job_key) if registry.backend.exists(job_key) else job
    except (ImportFailed, DataError) as e:
        return fail(str(e))
    except Exception as e:  # our bug or the store failing: still a clean, visible failure
        return fail(f"internal error: {type(e).__name__}: {e}")
    # From here on the snapshot may be current: it is never aborted.
    manifest = publish(store.backend, keys, group, kind, snapshot_id, parts, writer.rows,
                       schema.model_dump(mode="json", by_alias=True), job["mode"])
    try:
        return set_fields(status=Status.ACTIVE.value, total_rows=manifest.rows)
    except _JobEnded:
        return registry.read(job_key) if registry.backend.exists(job_key) else job


_OPEN = (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value)


class _JobEnded(Exception):
    """The job record was ended (reaped as dead) or deleted by someone else: stop quietly."""


def import_task(store_config: dict[str, Any], tenant: str, group: str, job_name: str) -> str:
    """Entry point for the Ray task (plain arguments so it pickles cheaply)."""
    store = Store(StoreConfig(**store_config))
    return run_import(store, tenant, group, job_name)["status"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--job", required=True)
    a = p.parse_args(argv)
    store = Store(StoreConfig.from_env(a.store))
    print(run_import(store, a.tenant, a.group, a.job)["status"])


if __name__ == "__main__":
    main()

