"""The dataset import job: stream a CSV/Parquet source, validate, write a snapshot, publish it.

Memory stays bounded by decompressed bytes: CSV text (after gzip decompression and transcoding) is
read in blocks of `BLOCK_SIZE`, at most `READAHEAD_BLOCKS` ahead of the batch being written, and
Parquet in batches of about one block of uncompressed data; each batch is validated and appended
to Parquet, and nothing is held whole. The new snapshot becomes visible only through one
compare-and-swap of the dataset's `CURRENT` pointer (store.snapshots), so a bad file or a killed
job leaves the previous snapshot untouched.

Limits of one import, set by the platform operator in the job's environment (whole numbers):

- `TAGREC_IMPORT_MAX_BYTES` (default 50 GiB): CSV text after decompression, or the uncompressed
  data of the Parquet columns read. A gzip bomb stops here, not at its compressed size.
- `TAGREC_IMPORT_MAX_ROWS` (default 1,000,000,000): data rows.
- `TAGREC_IMPORT_BLOCK_SIZE` (default 16 MiB): bytes of CSV per block, which bounds the longest
  row (a row up to one block always fits).

A source over a limit fails with a reason naming the limit. CSV text is UTF-8 (a UTF-8 byte-order
mark is skipped); UTF-16 and UTF-32 files with a byte-order mark are transcoded to UTF-8 as they
stream. NUL bytes are refused in any text value, and a schema field named twice in the source is
refused rather than one of the two picked.

Run as a Ray task by the control plane (`import_task`), or directly in a process:
`python -m training_jobs.dataset_import --store URI --tenant T --group G --job J`.
"""

from __future__ import annotations

import argparse
import codecs
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

__all__ = ["BLOCK_SIZE", "MAX_BYTES", "MAX_ROWS", "ImportFailed", "import_task", "run_import"]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: expected a positive whole number (default {default})")
    return value


# Bytes of CSV per block: bounds memory and the longest row, keeps Arrow vectorized.
BLOCK_SIZE = _env_int("TAGREC_IMPORT_BLOCK_SIZE", 16 << 20)
MAX_BYTES = _env_int("TAGREC_IMPORT_MAX_BYTES", 50 << 30)  # decompressed, per import
MAX_ROWS = _env_int("TAGREC_IMPORT_MAX_ROWS", 1_000_000_000)  # per import
PROGRESS_EVERY_S = 1.0
# Arrow's streaming CSV reader reads up to 32 blocks ahead of its consumer (512 MiB at 16 MiB
# blocks) whenever reading outpaces conversion and upload, and holds them all in memory. The
# text stream makes its reads wait once they are this many blocks ahead of the batches taken.
READAHEAD_BLOCKS = 4
_READAHEAD_WAIT_S = 10.0  # a read held back this long goes ahead anyway: never hang on it
# Byte-order marks of the encodings transcoded to UTF-8 (UTF-32's little-endian mark first: it
# starts with UTF-16's). The codec reads the mark and the byte order from it.
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


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
    if not compression and src.size > MAX_BYTES:
        raise ImportFailed(_too_large(src, "CSV text"))
    wanted = [f.name for f in schema.fields]
    # include_missing_columns below hides absent columns; check the header ourselves first.
    header, encoding = _csv_header(src, compression)
    missing = [n for n in wanted if n not in header]
    if missing:
        shown = ", ".join(repr(h) for h in header[:20])
        raise ImportFailed(
            f"column {missing[0]!r} is missing (schema fields missing from the CSV header: "
            f"{', '.join(missing)}; header has: {shown})"
        )
    _refuse_duplicates(header, wanted, "the CSV header")
    # The read-ahead bound and the size limit count the text the reader gets, after
    # decompression and transcoding; progress counts the source's bytes.
    bounds = {"ahead": READAHEAD_BLOCKS * BLOCK_SIZE, "limit": MAX_BYTES}
    source = src.fs.open_input_stream(src.path)
    if compression or encoding:
        text: Any = _CountingStream(source, progress)
        text = pa.CompressedInputStream(text, compression) if compression else pa.PythonFile(text, "r")
        if encoding:
            text = pa.transcoding_input_stream(text, encoding, "utf-8")
        counted = _CountingStream(text, **bounds)
    else:
        counted = _CountingStream(source, progress, **bounds)
    try:
        reader = pacsv.open_csv(
            counted,
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
    except Exception as e:
        raise _read_error(src, e, counted, compression, encoding) from None
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as e:
                raise _read_error(src, e, counted, compression, encoding,
                                  progress.get("rows", 0)) from None
            counted.consumed(BLOCK_SIZE)
            yield batch
    finally:
        counted.release()  # a reader abandoned mid-file must not wait for us


def _csv_header(src: _Source, compression: str | None) -> tuple[list[str], str | None]:
    """The header's column names, and the encoding to transcode from (None: UTF-8)."""
    with src.fs.open_input_stream(src.path, compression=compression) as f:
        head = f.read(1 << 20)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if encoding:
        # Errors past the header line are the transcoding stream's, reported with their row.
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head)
        line = text.split("\n", 1)[0].rstrip("\r")
        if "\ufffd" in line or "\x00" in line:
            raise ImportFailed(f"source {src.name!r} is not valid {encoding.upper()} text in its "
                               f"header line (it starts with a {encoding.upper()} byte-order mark): "
                               "save it as UTF-8")
        return next(csv.reader([line]), []), encoding
    if b"\x00" in head:
        if _bomless_utf16(head):
            raise ImportFailed(f"source {src.name!r} looks like UTF-16 text without a byte-order mark "
                               "(a NUL byte beside each letter): save it as UTF-8, or as UTF-16 "
                               "with a byte-order mark")
        raise ImportFailed(f"source {src.name!r} is a binary file, not CSV text (it has NUL bytes)")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")  # Excel writes a byte-order mark; Arrow skips it too
    except UnicodeDecodeError:
        raise ImportFailed(
            f"source {src.name!r} is not a UTF-8 CSV file: its first line is not text "
            f"(starts with {first[:16]!r})"
        ) from None
    return next(csv.reader([text]), []), None


def _bomless_utf16(head: bytes) -> bool:
    """Mostly-ASCII UTF-16 text: the bytes on one side of each pair are (almost) all zero."""
    sample = head[: 4096 & ~1]
    half = len(sample) // 2
    zeros = sorted((sample[0::2].count(0), sample[1::2].count(0)))
    return half > 0 and zeros[0] == 0 and zeros[1] >= 0.9 * half


def _refuse_duplicates(names: list[str], wanted: list[str], where: str) -> None:
    """A schema field named twice in the source is ambiguous: refuse it (others are ignored)."""
    for name in wanted:
        at = [i + 1 for i, n in enumerate(names) if n == name]
        if len(at) > 1:
            raise ImportFailed(
                f"column {name!r} appears {len(at)} times in {where} (columns "
                f"{', '.join(map(str, at[:-1]))} and {at[-1]}): the import cannot tell which one "
                "to read; rename or remove the others")


def _size(n: float) -> str:
    """`n` bytes as people write it: 4 KiB, 16 MiB, 50 GiB."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:,.0f} bytes" if i == 0 else f"{n:.4g} {units[i]}"


def _too_large(src: _Source, what: str) -> str:
    return (f"source {src.name!r} is too large: more than {_size(MAX_BYTES)} of {what}, the most one "
            "import reads (the platform's TAGREC_IMPORT_MAX_BYTES); split it into several "
            "incremental imports")


def _too_many_rows(src: _Source) -> str:
    return (f"source {src.name!r} has more than {MAX_ROWS:,} data rows, the most one import reads "
            "(the platform's TAGREC_IMPORT_MAX_ROWS); split it into several incremental imports")


def _read_error(src: _Source, e: Exception, stream: _CountingStream, compression: str | None,
                encoding: str | None, rows_done: int = 0) -> Exception:
    """The ImportFailed a CSV reader's error stands for; `e` itself when the data are not at fault."""
    if stream.over_limit:
        return ImportFailed(_too_large(src, "CSV text after decompression" if compression else "CSV text"))
    if encoding and isinstance(e, UnicodeDecodeError):
        name = encoding.upper()
        return ImportFailed(f"source {src.name!r} is not valid {name} text after data row {rows_done} "
                            f"(it starts with a {name} byte-order mark): {e.reason}; save it as UTF-8")
    if isinstance(e, pa.ArrowInvalid):
        return ImportFailed(_csv_message(src, e, rows_done))
    return e


def _csv_message(src: _Source, e: Exception, rows_done: int = 0) -> str:
    msg = str(e).strip().splitlines()[0]
    if "Empty CSV file" in msg and not rows_done:
        # The header was read before this (and the empty file refused): Arrow says "empty"
        # for a lone header line without a final newline.
        return f"source {src.name!r} has a header but no data rows"
    if msg.startswith("straddling object"):  # a row not ended within the block after its start
        return (f"source {src.name!r}: data row {rows_done + 1} is longer than {_size(BLOCK_SIZE)}, "
                "the longest row one import reads (the platform's TAGREC_IMPORT_BLOCK_SIZE): "
                "shorten its values, or check that its line ends are newlines")
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
    """A file-like wrapper counting bytes read, for progress, bounding read-ahead and size.

    With `ahead`, `read` waits while it is `ahead` bytes past what the consumer has taken
    (`consumed`), so Arrow's background reader cannot pile the file up in memory when
    conversion and upload are slower than reading. Past `limit` bytes, `read` raises and sets
    `over_limit`.
    """

    def __init__(self, raw: Any, progress: dict[str, int] | None = None, ahead: int | None = None,
                 limit: int | None = None) -> None:
        self.raw, self.progress = raw, progress
        self.closed = False
        self.over_limit = False
        self._ahead = ahead
        self._limit = limit
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
            if self._limit is not None and self._read > self._limit:
                self.over_limit = True
                raise ImportFailed("the source is over the size limit")
        if self.progress is not None:
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
    wanted = [f.name for f in schema.fields]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ImportFailed(
            f"column {missing[0]!r} is missing (schema fields missing from the Parquet file: "
            f"{', '.join(missing)}; file has: {', '.join(names[:20])})"
        )
    _refuse_duplicates(names, wanted, "the Parquet file")
    meta = pf.metadata
    if meta.num_rows > MAX_ROWS:
        raise ImportFailed(_too_many_rows(src))
    paths = [meta.schema.column(c).path for c in range(meta.num_columns)]  # leaves: "tags.list.element"
    read_leaves = [c for c, p in enumerate(paths) if any(p == n or p.startswith(f"{n}.") for n in wanted)]
    data_bytes = sum(meta.row_group(g).column(c).total_uncompressed_size
                     for g in range(meta.num_row_groups) for c in read_leaves)
    if data_bytes > MAX_BYTES:
        raise ImportFailed(_too_large(src, "Parquet data uncompressed"))
    # Batches of about one block of the columns' uncompressed data (as pages hold it).
    batch_rows = max(1, min(262_144, BLOCK_SIZE * meta.num_rows // max(data_bytes, 1)))
    per_row = src.size / max(meta.num_rows, 1)
    decoded = 0  # as decoded in memory: dictionary-encoded values count at their full size here
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        decoded += batch.nbytes
        if decoded > MAX_BYTES:
            raise ImportFailed(_too_large(src, "Parquet data uncompressed"))
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
            if progress["rows"] + batch.num_rows > MAX_ROWS:
                raise ImportFailed(_too_many_rows(src))
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

