"""The dataset import job: stream a CSV/Parquet source, validate, write a snapshot, publish it.

Memory stays bounded by decompressed bytes: CSV text (after decompression and transcoding) is
read in blocks of `BLOCK_SIZE`, at most `READAHEAD_BLOCKS` ahead of the batch being written, and
Parquet in batches of about one block of uncompressed data that decode to at most the read-ahead
bound even if every row repeats the longest value of a column's dictionary (a dictionary bomb:
a long value in many rows costs the file a few bits a row); each batch is validated and appended
to Parquet, and nothing is held whole. The new snapshot becomes visible only through one
compare-and-swap of the dataset's `CURRENT` pointer (store.snapshots), so a bad file or a killed
job leaves the previous snapshot untouched.

Limits of one import, set by the platform operator in the job's environment (whole numbers):

- `TAGREC_IMPORT_MAX_BYTES` (default 50 GiB): CSV text after decompression, or the uncompressed
  data of the Parquet columns read. A gzip bomb stops here, not at its compressed size.
- `TAGREC_IMPORT_MAX_ROWS` (default 1,000,000,000): data rows.
- `TAGREC_IMPORT_BLOCK_SIZE` (default 16 MiB): bytes of CSV per block, which bounds the longest
  row (a row up to one block always fits).

A source over a limit fails with a reason naming the limit. A CSV may come compressed with gzip,
bzip2, xz or zstd, or as the one file of a zip archive, found from its first bytes whatever its name
(a name ending in .gz, .bz2, .xz, .zst or .zip on an uncompressed file is refused); other archives
(tar, 7z, rar, zips of several files) and compressed Parquet files are refused by name, and damaged
compressed data fail with the compression named. CSV text is UTF-8 (a UTF-8 byte-order
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
import lzma
import os
import re
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
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
# What a source is compressed or packed with, by its first bytes (the name is not trusted), and
# the name suffix that says so. Arrow decodes gzip, bzip2 and zstd; Python xz and zip.
_MAGIC = [(re.compile(rb"\x1f\x8b"), "gzip"), (re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)"), "bzip2"),
          (re.compile(rb"\xfd7zXZ\x00"), "xz"), (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
          (re.compile(rb"PK(\x03\x04|\x05\x06)"), "zip"), (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7z"),
          (re.compile(rb"Rar!\x1a\x07"), "rar")]
_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_CODECS = {"gzip": "gzip", "bzip2": "bz2", "zstd": "zstd"}
# Errors of a decompressor on bad data (Arrow's codecs raise OSError, Python's modules the rest).
_CORRUPT = (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)


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
        with self.fs.open_input_file(self.path) as f:
            head = f.read(16)
        self.compression = next((name for magic, name in _MAGIC if magic.match(head)), None)
        if self.compression in ("7z", "rar"):
            raise ImportFailed(f"source {self.name!r} is a {self.compression} archive, which the import "
                               "cannot read: extract it and upload the CSV inside")
        suffix = next((s for s in _SUFFIXES if self.name.lower().endswith(s)), None)
        if suffix and head and not self.compression:
            packed = "a zip archive" if suffix == ".zip" else f"{_SUFFIXES[suffix]}-compressed"
            raise ImportFailed(f"source {self.name!r} is named {suffix} but not {packed} (it starts "
                               f"with {head!r}); if it is not compressed, name it without {suffix}")
        self.format = source.get("format") or ("parquet" if head[:4] == b"PAR1" else "csv")
        if self.format == "parquet" and self.compression:
            raise ImportFailed(_packed_parquet(self))


def _packed_parquet(src: _Source) -> str:
    return (f"source {src.name!r} is a Parquet file packed with {src.compression}: upload the Parquet "
            "file itself (Parquet compresses its own data)")


def _open(src: _Source, progress: dict[str, int] | None = None) -> tuple[Any, _CountingStream]:
    """The source's bytes after decompression, and the stream counting the source's own bytes."""
    if src.compression == "zip":
        raw = _CountingStream(src.fs.open_input_file(src.path))
        try:
            member = _zip_member(src, zipfile.ZipFile(raw))
        except Exception as e:
            raw.close()
            raise _corrupt(src, e, raw) from None
        raw.progress = progress  # the member's bytes, not the directory read before them
        return member, raw
    raw = _CountingStream(src.fs.open_input_stream(src.path), progress)
    if src.compression == "xz":
        return lzma.LZMAFile(raw), raw
    if src.compression:
        return pa.CompressedInputStream(raw, _CODECS[src.compression]), raw
    return raw, raw


def _zip_member(src: _Source, archive: zipfile.ZipFile) -> Any:
    """The one file a zip archive holds, opened (folders and macOS's __MACOSX/ files not counted)."""
    files = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(files) != 1:
        shown = "".join(f", {m.filename!r}" for m in files[:5]) + (", ..." if len(files) > 5 else "")
        raise ImportFailed(f"source {src.name!r} is a zip archive holding {len(files)} files{shown}: "
                           "one import reads one file; unzip it first (or upload the CSV inside)")
    if files[0].flag_bits & 1:
        raise ImportFailed(f"source {src.name!r} is an encrypted zip archive: unzip it first (or upload "
                           "the CSV inside)")
    try:
        return archive.open(files[0])
    except NotImplementedError:  # deflate64 (Windows, large files), ppmd, ...
        raise ImportFailed(f"source {src.name!r} is a zip archive whose compression method "
                           f"({files[0].compress_type}) the import cannot read: unzip it first (or upload "
                           "the CSV inside)") from None


def _corrupt(src: _Source, e: Exception, raw: _CountingStream, rows_done: int = 0) -> Exception:
    """The ImportFailed for a decompressor's error; `e` itself if reading the source failed."""
    if not src.compression or raw.failed or not isinstance(e, _CORRUPT):
        return e
    where = f" after data row {rows_done}" if rows_done else ""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ImportFailed(f"source {src.name!r} is not valid {src.compression} data{where} (damaged or "
                        f"cut short?): {msg[:200]}")


def _csv_batches(src: _Source, schema: Schema, progress: dict[str, int]) -> Iterator[pa.RecordBatch]:
    compression = src.compression
    if src.size == 0:
        raise ImportFailed(f"source {src.name!r} is empty: expected a CSV header line")
    if not compression and src.size > MAX_BYTES:
        raise ImportFailed(_too_large(src, "CSV text"))
    wanted = [f.name for f in schema.fields]
    # include_missing_columns below hides absent columns; check the header ourselves first.
    header, encoding = _csv_header(src)
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
    text, raw = _open(src, progress)
    if encoding:
        native = text if isinstance(text, pa.NativeFile) else pa.PythonFile(text, "r")
        text = pa.transcoding_input_stream(native, encoding, "utf-8")
    counted = _CountingStream(text, ahead=READAHEAD_BLOCKS * BLOCK_SIZE, limit=MAX_BYTES)
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
        raise _read_error(src, e, counted, raw, encoding) from None
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as e:
                raise _read_error(src, e, counted, raw, encoding, progress.get("rows", 0)) from None
            counted.consumed(BLOCK_SIZE)
            yield batch
    finally:
        counted.release()  # a reader abandoned mid-file must not wait for us


def _csv_header(src: _Source) -> tuple[list[str], str | None]:
    """The header's column names, and the encoding to transcode from (None: UTF-8)."""
    text, raw = _open(src)
    try:
        head = text.read(1 << 20)
    except Exception as e:
        raise _corrupt(src, e, raw) from None
    finally:
        text.close()
        raw.close()
    if src.compression:
        if not head:
            raise ImportFailed(f"source {src.name!r} is empty once decompressed ({src.compression}): "
                               "expected a CSV header line")
        if head.startswith(b"PAR1"):
            raise ImportFailed(_packed_parquet(src))
        if head[257:262] == b"ustar":
            raise ImportFailed(f"source {src.name!r} is a tar archive ({src.compression}): extract it and "
                               "upload the CSV inside")
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


def _read_error(src: _Source, e: Exception, stream: _CountingStream, raw: _CountingStream,
                encoding: str | None, rows_done: int = 0) -> Exception:
    """The ImportFailed a CSV reader's error stands for; `e` itself when the data are not at fault."""
    if stream.over_limit:
        return ImportFailed(_too_large(src, "CSV text after decompression" if src.compression
                                       else "CSV text"))
    corrupt = _corrupt(src, e, raw, rows_done)
    if corrupt is not e:
        return corrupt
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
        self.failed = False  # reading `raw` itself raised (not the data's fault)
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
        try:
            data = self.raw.read(None if n is None or n < 0 else n)  # Arrow's files: None reads all
        except Exception:
            self.failed = True
            raise
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

    def seek(self, offset: int, whence: int = 0) -> int:  # for zipfile, which reads a random-access file
        try:
            return self.raw.seek(offset, whence)
        except pa.ArrowInvalid as e:  # a position before the start: OSError, as zipfile expects
            raise OSError(str(e)) from None

    def tell(self) -> int:
        return self.raw.tell()


def _parquet_batches(src: _Source, schema: Schema, progress: dict[str, int]) -> Iterator[pa.RecordBatch]:
    try:
        file = src.fs.open_input_file(src.path)
        pf = pq.ParquetFile(file)
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
    conform(pf.schema_arrow.empty_table(), schema, first_row=1)  # nested columns: refused unread
    meta = pf.metadata
    if meta.num_rows > MAX_ROWS:
        raise ImportFailed(_too_many_rows(src))
    # Each column read is a scalar or a list of scalars now: one leaf (["tags", "list", "element"]).
    leaves = {path[0]: c for c, path in enumerate(pf.reader.column_paths) if path[0] in wanted}
    data_bytes = sum(meta.row_group(g).column(c).total_uncompressed_size
                     for g in range(meta.num_row_groups) for c in leaves.values())
    if data_bytes > MAX_BYTES:
        raise ImportFailed(_too_large(src, "Parquet data uncompressed"))
    # Batches of about one block of the columns' uncompressed data (as pages hold it), and at most
    # the read-ahead bound decoded even if every row held the longest value of each dictionary.
    batch_rows = max(1, min(262_144, BLOCK_SIZE * meta.num_rows // max(data_bytes, 1)))
    text = [n for n in wanted if _is_text(pf.schema_arrow.field(n).type)]
    if text:
        probe = pq.ParquetFile(file, metadata=meta, read_dictionary=[leaves[n] for n in text],
                               pre_buffer=False, buffer_size=1 << 20)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.num_rows:
                longest = _longest_values(probe, g, text)
                most = READAHEAD_BLOCKS * BLOCK_SIZE / _row_bytes(group, leaves, longest)
                batch_rows = max(1, min(batch_rows, int(most)))
    per_row = src.size / max(meta.num_rows, 1)
    decoded = 0  # as decoded in memory: dictionary-encoded values count at their full size here
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        decoded += batch.nbytes
        if decoded > MAX_BYTES:
            raise ImportFailed(_too_large(src, "Parquet data uncompressed"))
        progress["bytes_read"] = progress.get("bytes_read", 0) + int(batch.num_rows * per_row)
        yield batch


def _is_text(t: pa.DataType) -> bool:
    """Parquet text (BYTE_ARRAY) values, alone or in a list, maybe dictionary-typed by Arrow."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
        pa.types.is_large_binary(t)


def _longest_values(probe: pq.ParquetFile, group: int, columns: list[str]) -> dict[str, int]:
    """Bytes of the longest value in each text column's dictionary in row group `group`.

    `probe` reads the columns as dictionaries: one row read decodes the whole dictionary page.
    """
    first = next(probe.iter_batches(batch_size=1, row_groups=[group], columns=columns))
    longest = {}
    for name in columns:
        col = first.column(name)
        values = col.values if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) else col
        if pa.types.is_dictionary(values.type) and len(values.dictionary):
            longest[name] = pc.max(pc.binary_length(values.dictionary)).as_py() or 0
    return longest


def _row_bytes(group: Any, leaves: dict[str, int], longest: dict[str, int]) -> float:
    """Bytes a row of the row group decodes to if each holds the longest dictionary values.

    A dictionary-encoded value costs a few bits in the file however long it is: a text column
    counts at its dictionary's longest value, other columns at their average uncompressed size
    (8 bytes at least, a number's); list columns at their average number of values per row.
    """
    total = 0.0
    for name, c in leaves.items():
        chunk = group.column(c)
        values = max(chunk.num_values, 1)
        each = max(8.0, chunk.total_uncompressed_size / values, longest.get(name, 0) + 4.0)
        total += values / group.num_rows * each + 4  # + list offsets, validity
    return total


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

