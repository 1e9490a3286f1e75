"""The import job on hostile files: bombs, NUL bytes, duplicate names, nested columns, UTF-16, long rows,
compressed files whatever their names say, Parquet dictionary bombs.

Each file is made here, small: the limits it runs into (decompressed bytes, rows, block size) are
lowered for the test. Every failure must name what the tenant can act on (the limit, the column,
the row, the encoding found) and publish nothing, as in test_import_validation.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import training_jobs.dataset_import as dataset_import
from store import Keys, Store, StoreConfig
from tests.conftest import unique
from tests.helpers_import import TENANT, create_dataset, create_import_job, read_dataset, run_job
from tests.unit.test_import_validation import (
    COLUMNS,
    SCHEMA,
    Baseline,
    good_parquet_columns,
    make_csv,
    parquet_bytes,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(StoreConfig(uri=f"file://{tmp_path / 'store'}"))


@pytest.fixture
def group(store: Store) -> str:
    name = unique()
    create_dataset(store, name, SCHEMA)
    return name


@pytest.fixture
def baseline(store: Store, group: str) -> Baseline:
    return Baseline(store, group)


def csv_of_size(nbytes: int) -> bytes:
    """A valid, very compressible CSV of about `nbytes` (the body of a gzip bomb)."""
    one = make_csv(1)
    header, row = one.split(b"\n", 1)
    return header + b"\n" + row * (nbytes // len(row) + 1)


# ---- item 15: limits count decompressed bytes and rows ----

def test_gzip_bomb_stops_at_the_decompressed_byte_limit(baseline: Baseline,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 64 << 10)
    monkeypatch.setattr(dataset_import, "MAX_BYTES", 1 << 20)
    bomb = gzip.compress(csv_of_size(8 << 20), 9)
    assert len(bomb) < 100 << 10  # under a tenth of the limit compressed: the compressed size passes
    job = run_job(baseline.store, baseline.group, bomb, source_name="events.csv.gz")
    baseline.assert_failed(job, "more than 1 MiB", "after decompression", "TAGREC_IMPORT_MAX_BYTES")


def test_plain_csv_over_the_byte_limit_fails_before_reading(baseline: Baseline,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "MAX_BYTES", 4096)
    job = run_job(baseline.store, baseline.group, csv_of_size(5000))
    baseline.assert_failed(job, "more than 4 KiB", "TAGREC_IMPORT_MAX_BYTES")
    assert job["progress"]["bytes_read"] == 0


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_row_limit(baseline: Baseline, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(dataset_import, "MAX_ROWS", 500)

    def encode(rows: int) -> bytes:
        if fmt == "parquet":
            return parquet_bytes(pa.table(good_parquet_columns(rows)))
        data = make_csv(rows)
        return gzip.compress(data) if fmt == "csv.gz" else data

    job = run_job(baseline.store, baseline.group, encode(2000), source_name=f"data.{fmt}")
    baseline.assert_failed(job, "more than 500 data rows", "TAGREC_IMPORT_MAX_ROWS")
    job = run_job(baseline.store, baseline.group, encode(500), source_name=f"data.{fmt}")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == 500


def test_parquet_over_the_byte_limit(baseline: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "MAX_BYTES", 64 << 10)
    cols = good_parquet_columns(5000)
    cols["comment"] = pa.array(["x" * 100] * 5000)  # 500 kB of text, dictionary-encoded to little
    data = parquet_bytes(pa.table(cols))
    assert len(data) < 64 << 10
    job = run_job(baseline.store, baseline.group, data, source_name="data.parquet")
    baseline.assert_failed(job, "more than 64 KiB", "TAGREC_IMPORT_MAX_BYTES")


def test_limits_are_read_from_the_environment(tmp_path: Path) -> None:
    """The operator's settings reach the job as run in its own process (`python -m ...`)."""
    uri = f"file://{tmp_path / 'store'}"
    store = Store(StoreConfig(uri=uri))
    create_dataset(store, "g", SCHEMA)
    name = create_import_job(store, "g", make_csv(4))
    cmd = [sys.executable, "-m", "training_jobs.dataset_import", "--store", uri, "--tenant", TENANT,
           "--group", "g", "--job", name]

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=120)

    bad = run(TAGREC_IMPORT_MAX_ROWS="lots")
    assert bad.returncode != 0 and "TAGREC_IMPORT_MAX_ROWS" in bad.stderr and "'lots'" in bad.stderr
    done = run(TAGREC_IMPORT_MAX_ROWS="3", TAGREC_IMPORT_MAX_BYTES="1000000")
    assert done.stdout.strip() == "CREATE_FAILED", done.stderr
    job = store.registry.read(Keys(TENANT).import_job("g", name))
    assert "more than 3 data rows" in job["failure_reason"]


class _Pulled:
    """A file-like wrapper counting the bytes the CSV reader has pulled from its input."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.total, self.closed = raw, 0, False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.total += len(data)
        return data

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_readahead_is_bounded_in_decompressed_bytes(store: Store, group: str, compressed: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """While the job holds its first batch, Arrow's reader (which would read 32 blocks ahead) may
    pull only READAHEAD_BLOCKS blocks of CSV text past it, counted after decompression: a
    compressed source whose blocks are tiny must not pull more text than a plain one."""
    block = 4096
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", block)
    monkeypatch.setattr(dataset_import, "_READAHEAD_WAIT_S", 600.0)  # the bound never lapses here
    plain = csv_of_size(100 * block)
    data = gzip.compress(plain, 9) if compressed else plain
    assert not compressed or len(data) < block  # the whole bomb is less than one block compressed
    pulled: list[_Pulled] = []
    real_open_csv = dataset_import.pacsv.open_csv

    def open_csv(stream: Any, **kw: Any) -> Any:
        pulled.append(_Pulled(stream))
        return real_open_csv(pulled[-1], **kw)

    monkeypatch.setattr(dataset_import.pacsv, "open_csv", open_csv)
    real_conform = dataset_import.conform
    held: list[int] = []

    def conform(batch: Any, *args: Any, **kw: Any) -> Any:
        if not held:  # hold the first batch until the reader stops pulling, then look
            before, still = -1, 0
            while still < 20 and before < len(plain):
                time.sleep(0.05)
                now = pulled[0].total
                still, before = (still + 1 if now == before else 0), now
            held.append(before)
        return real_conform(batch, *args, **kw)

    monkeypatch.setattr(dataset_import, "conform", conform)
    job = run_job(store, group, data, source_name="events.csv.gz" if compressed else "events.csv")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == read_dataset(store, group).num_rows == plain.count(b"\n") - 1
    # One block taken, READAHEAD_BLOCKS ahead of it, and the one read that was let through last.
    assert held[0] <= (dataset_import.READAHEAD_BLOCKS + 2) * block, (held, len(plain))


# ---- item 16: NUL bytes anywhere, duplicate header names ----

def with_extra_columns(data: bytes, names: list[str], cells: bytes) -> bytes:
    """`data` (a CSV under COLUMNS) with `names` appended to its header and `cells` to each row."""
    lines = data.splitlines()
    header = ",".join(COLUMNS + names).encode()
    return b"\n".join([header] + [line + cells for line in lines[1:]]) + b"\n"


def test_nul_byte_after_the_first_mib_names_column_and_row(baseline: Baseline) -> None:
    rows = 40_000
    data = make_csv(rows, {35_000: {"user_id": b"u\x00x"}, 39_000: {"comment": b"\x00"}})
    assert data.index(b"\x00") > 1 << 20
    job = run_job(baseline.store, baseline.group, data)
    baseline.assert_failed(job, "column 'user_id' (string)", "at row 35000", "NUL byte")


@pytest.mark.parametrize("column,values,phrases", [
    ("item_id", pa.array(["i1", "i2", "i\x003", "i4", "i5", "i6"]),
     ["column 'item_id' (string)", "at row 3", "NUL byte"]),
    ("tags", pa.array([["a"], ["b", "c\x00"], None, ["d"], ["e\x00"], []]),  # rows count lists
     ["column 'tags' (categorical)", "at row 2", "NUL byte", "first offending rows: 2, 5"]),
], ids=["string", "list"])
def test_nul_byte_in_parquet_text(baseline: Baseline, column: str, values: pa.Array,
                                  phrases: list[str]) -> None:
    cols = good_parquet_columns()
    cols[column] = values
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)),
                  source_name="data.parquet")
    baseline.assert_failed(job, *phrases)


def test_duplicate_csv_header_column(baseline: Baseline) -> None:
    data = with_extra_columns(make_csv(3), ["extra", "qty"], b",x,9")
    job = run_job(baseline.store, baseline.group, data)
    baseline.assert_failed(job, "column 'qty' appears 2 times in the CSV header",
                           "columns 5 and 10")


def test_duplicates_outside_the_schema_are_ignored(store: Store, group: str) -> None:
    """Trailing commas (Excel) give several empty names: not a schema field, so no ambiguity."""
    data = with_extra_columns(make_csv(3), ["", ""], b",,")
    job = run_job(store, group, data)
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == 3


# ---- item 17: nested Parquet columns, duplicate Parquet names, UTF-16, rows over the block ----

NESTED = {  # (column, its values in the file, phrases of the failure reason)
    "list-in-int": ("qty", pa.array([[1, 2]] * 6), ["column 'qty' (int)", "list<element: int64>"]),
    "list-in-string": ("user_id", pa.array([["u1"]] * 6), ["column 'user_id' (string)", "list<"]),
    "list-in-timestamp": ("ts", pa.array([[1_700_000_000]] * 6), ["column 'ts' (timestamp)", "list<"]),
    "list-in-bool": ("liked", pa.array([[True]] * 6), ["column 'liked' (bool)", "list<"]),
    "struct-in-categorical": ("tags", pa.array([{"a": "b"}] * 6),
                              ["column 'tags' (categorical)", "struct<a: string>"]),
    "nested-list-in-categorical": ("tags", pa.array([[["a"]]] * 6),
                                   ["column 'tags' (categorical)", "list<element: list<"]),
}


@pytest.mark.parametrize("column,values,phrases", NESTED.values(), ids=NESTED.keys())
def test_parquet_nested_column(baseline: Baseline, column: str, values: pa.Array,
                               phrases: list[str]) -> None:
    cols = good_parquet_columns()
    cols[column] = values
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)),
                  source_name="data.parquet")
    reason = baseline.assert_failed(job, *phrases)
    assert "Arrow" not in reason, reason


def test_parquet_duplicate_column_names(baseline: Baseline) -> None:
    cols = good_parquet_columns()
    names = list(cols) + ["rating"]
    arrays = list(cols.values()) + [pa.array(["x"] * 6)]
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.Table.from_arrays(arrays, names)),
                  source_name="data.parquet")
    baseline.assert_failed(job, "column 'rating' appears 2 times in the Parquet file",
                           "columns 4 and 9")


UNICODE = make_csv(3, {1: {"comment": "café ☕".encode()}, 2: {"user_id": "用户".encode()},
                       3: {"tags": "ü|𝄞".encode()}})


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(store: Store, group: str, encoding: str,
                                                            compressed: bool) -> None:
    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")  # Python writes the BOM for "utf-16"/"utf-32"
    data = bom + UNICODE.decode().encode(encoding)
    job = run_job(store, group, gzip.compress(data) if compressed else data,
                  source_name="data.csv.gz" if compressed else "data.csv")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    rows = read_dataset(store, group).to_pylist()
    assert [r["user_id"] for r in rows] == ["u1", "用户", "u3"]
    assert rows[0]["comment"] == "café ☕" and rows[2]["tags"] == ["ü", "𝄞"]


def test_utf16_without_a_byte_order_mark(baseline: Baseline) -> None:
    job = run_job(baseline.store, baseline.group, make_csv(3).decode().encode("utf-16-le"))
    baseline.assert_failed(job, "UTF-16", "byte-order mark", "save it as UTF-8")


def test_invalid_utf16_after_the_header(baseline: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 4096)
    text = make_csv(2000).decode()
    data = text.encode("utf-16")
    cut = data.index("u1500,".encode("utf-16-le"))
    data = data[:cut] + b"\x00\xd8" + data[cut:]  # a lone surrogate
    job = run_job(baseline.store, baseline.group, data)
    baseline.assert_failed(job, "not valid UTF-16", "byte-order mark", "after data row")


@pytest.mark.parametrize("row", [1, 51])
def test_row_longer_than_the_block(baseline: Baseline, monkeypatch: pytest.MonkeyPatch,
                                   row: int) -> None:
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 4096)
    data = make_csv(100, {row: {"comment": b"y" * 10_000}})
    job = run_job(baseline.store, baseline.group, data)
    reason = baseline.assert_failed(job, f"data row {row} is longer than 4 KiB",
                                    "TAGREC_IMPORT_BLOCK_SIZE")
    assert "straddl" not in reason, reason


def test_row_as_long_as_the_block_is_read(store: Store, group: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 4096)
    data = make_csv(100, {51: {"comment": b"y" * 4000}})
    job = run_job(store, group, data)
    assert job["status"] == "ACTIVE", job.get("failure_reason")


# ---- compression found from the content, not the name ----

def zipped(data: bytes, names: tuple[str, ...] = ("events.csv",)) -> bytes:
    """A zip archive as macOS's Finder makes one: a folder, the files, and __MACOSX/ metadata."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("export/", b"")
        for name in names:
            z.writestr(f"export/{name}", data)
            z.writestr(f"__MACOSX/export/._{name}", b"\x00\x05\x16\x07 resource fork")
    return out.getvalue()


PACK = {  # compression: (pack bytes, the usual suffix)
    "gzip": (gzip.compress, ".gz"),
    "bzip2": (bz2.compress, ".bz2"),
    "xz": (lzma.compress, ".xz"),
    "zstd": (lambda data: pa.compress(data, "zstd", asbytes=True), ".zst"),
    "zip": (zipped, ".zip"),
}


@pytest.mark.parametrize("name", ["events.csv", "data", "events.csv{suffix}"])
@pytest.mark.parametrize("compression", PACK)
def test_compressed_csv_is_read_whatever_its_name(store: Store, group: str, compression: str,
                                                  name: str) -> None:
    pack, suffix = PACK[compression]
    plain = make_csv(3000)
    job = run_job(store, group, pack(plain), source_name=name.format(suffix=suffix))
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == read_dataset(store, group).num_rows == 3000
    assert 0 < job["progress"]["bytes_read"] <= job["progress"]["bytes_total"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
@pytest.mark.parametrize("compression", ["xz", "zip"])  # decoded by Python, not by Arrow's codecs
def test_utf16_inside_xz_and_zip(store: Store, group: str, compression: str, encoding: str) -> None:
    job = run_job(store, group, PACK[compression][0](UNICODE.decode().encode(encoding)), source_name="data")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert [r["user_id"] for r in read_dataset(store, group).to_pylist()] == ["u1", "用户", "u3"]


@pytest.mark.parametrize("name,phrase", [
    ("events.csv.gz", "named .gz but not gzip-compressed"),
    ("events.csv.bz2", "named .bz2 but not bzip2-compressed"),
    ("events.zip", "named .zip but not a zip archive"),
])
def test_compression_suffix_on_a_plain_file(baseline: Baseline, name: str, phrase: str) -> None:
    job = run_job(baseline.store, baseline.group, make_csv(3), source_name=name)
    baseline.assert_failed(job, phrase, "b'user_id,item_id,'", "name it without")


@pytest.mark.parametrize("compression", PACK)
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_damaged_compressed_csv(baseline: Baseline, monkeypatch: pytest.MonkeyPatch, compression: str,
                                keep: float) -> None:
    """Cut short within the header's first MiB (0.3) or later, while rows are read (0.9)."""
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 64 << 10)
    data = PACK[compression][0](make_csv(40_000))
    job = run_job(baseline.store, baseline.group, data[:int(len(data) * keep)], source_name="events")
    baseline.assert_failed(job, f"source 'events' is not valid {compression} data", "cut short")


def tarred(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("events.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


REFUSED = {  # a source the import cannot read, and what the failure must say
    "zip-of-two": (zipped(make_csv(3), ("a.csv", "b.csv")),
                   ["is a zip archive holding 2 files", "'export/a.csv'",
                    "unzip it first (or upload the CSV inside)"]),
    "empty-zip": (zipped(b"", ()), ["zip archive holding 0 files", "unzip it first"]),
    "tar-gz": (gzip.compress(tarred(make_csv(3))), ["is a tar archive (gzip)", "extract it"]),
    "parquet-gz": (gzip.compress(parquet_bytes(pa.table(good_parquet_columns()))),
                   ["is a Parquet file packed with gzip", "upload the Parquet file itself"]),
    "empty-gz": (gzip.compress(b""), ["is empty once decompressed (gzip)"]),
    "7z": (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24), ["is a 7z archive", "extract it"]),
}


@pytest.mark.parametrize("data,phrases", REFUSED.values(), ids=REFUSED.keys())
def test_archives_and_packed_files_are_refused_by_name(baseline: Baseline, data: bytes,
                                                       phrases: list[str]) -> None:
    baseline.assert_failed(run_job(baseline.store, baseline.group, data, source_name="upload"), *phrases)


# ---- Parquet: dictionary bombs, rows of list values ----

@pytest.mark.parametrize("column", ["comment", "tags"])
def test_parquet_dictionary_bomb_is_decoded_in_bounded_batches(store: Store, group: str, column: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One long value in every row of a dictionary-encoded column: the file and its metadata stay
    tiny, the rows decode to 16 MB; no batch handed on may decode to more than the read-ahead bound."""
    block = 16 << 10
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", block)
    rows, value = 2000, "x" * 8000
    cols = good_parquet_columns(rows)
    cols[column] = pa.array([[value]] * rows if column == "tags" else [value] * rows)
    data = parquet_bytes(pa.table(cols))
    assert len(data) < 64 << 10
    sizes: list[int] = []
    real_conform = dataset_import.conform

    def conform(batch: Any, *args: Any, **kw: Any) -> Any:
        sizes.append(batch.nbytes)
        return real_conform(batch, *args, **kw)

    monkeypatch.setattr(dataset_import, "conform", conform)
    job = run_job(store, group, data, source_name="data.parquet")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    table = read_dataset(store, group)
    assert table.num_rows == rows and table.column(column)[rows - 1].as_py() in (value, [value])
    bound = dataset_import.READAHEAD_BLOCKS * block
    assert sum(sizes) > 200 * bound  # what the rows decode to
    assert max(sizes) <= bound, (max(sizes), bound)


def test_invalid_utf8_in_a_parquet_list_names_rows_not_values(baseline: Baseline) -> None:
    cols = good_parquet_columns()
    cols["tags"] = pa.array([[b"a"], [b"\xff", b"c\xfe"], None, [b"d"], [b"e\xfe"], []],  # rows 2 and 5
                            pa.list_(pa.binary()))
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)), source_name="data.parquet")
    baseline.assert_failed(job, "column 'tags' (categorical)", "value b'\\xff' at row 2", "not valid UTF-8",
                           "first offending rows: 2, 5")
