"""The import job on bad and good input, on a local-folder store (no network, no Ray).

Bad input ends the job CREATE_FAILED with a failure_reason naming the column, the problem and
the first offending rows, and publishes nothing: the dataset still reads as the snapshot imported
before, and the failed snapshot's parts are gone.
"""

from __future__ import annotations

import gzip
import io
import random
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import training_jobs.dataset_import as dataset_import
from sdk.types import Schema
from store import Keys, Store, StoreConfig
from store.snapshots import SnapshotWriter, read_current
from store.tables import DataError, arrow_schema, conform
from tests.conftest import unique
from tests.helpers_import import (
    TENANT,
    create_dataset,
    read_dataset,
    run_job,
    snapshot_ids,
    snapshot_keys,
)

SCHEMA = {
    "fields": [
        {"name": "user_id", "type": "string", "role": "USER_ID"},
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "ts", "type": "timestamp", "role": "TIMESTAMP"},
        {"name": "rating", "type": "float", "role": "EVENT_VALUE"},
        {"name": "qty", "type": "int"},
        {"name": "liked", "type": "bool"},
        {"name": "tags", "type": "categorical"},
        {"name": "comment", "type": "string"},
    ]
}
COLUMNS = [f["name"] for f in SCHEMA["fields"]]
GOOD_ROW = {"user_id": b"u1", "item_id": b"i1", "ts": b"1700000000", "rating": b"1.5",
            "qty": b"3", "liked": b"true", "tags": b"a|b", "comment": b"hi"}


def make_csv(n: int = 6, bad: dict[int, dict[str, bytes]] | None = None,
             columns: list[str] = COLUMNS) -> bytes:
    """`n` good data rows under a header of `columns`; `bad` overrides cells by 1-based row."""
    lines = [",".join(columns).encode()]
    for row in range(1, n + 1):
        cells = {**GOOD_ROW, "user_id": f"u{row}".encode(), **(bad or {}).get(row, {})}
        lines.append(b",".join(cells[c] for c in columns))
    return b"\n".join(lines) + b"\n"


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def good_parquet_columns(n: int = 6) -> dict[str, pa.Array]:
    return {
        "user_id": pa.array([f"u{i}" for i in range(1, n + 1)]),
        "item_id": pa.array(["i1"] * n),
        "ts": pa.array([1_700_000_000] * n, pa.int64()),
        "rating": pa.array([1.5] * n),
        "qty": pa.array([3] * n, pa.int64()),
        "liked": pa.array([True] * n),
        "tags": pa.array([["a", "b"]] * n, pa.list_(pa.string())),
        "comment": pa.array(["hi"] * n),
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(StoreConfig(uri=f"file://{tmp_path / 'store'}"))


@pytest.fixture
def group(store: Store) -> str:
    name = unique()
    create_dataset(store, name, SCHEMA)
    return name


class Baseline:
    """The dataset after a good import: what every failed import must leave untouched."""

    def __init__(self, store: Store, group: str) -> None:
        job = run_job(store, group, make_csv(4), name="good")
        assert job["status"] == "ACTIVE", job.get("failure_reason")
        self.store, self.group = store, group
        self.table = read_dataset(store, group)
        self.snapshots = snapshot_ids(store, group)
        self.current = read_current(store.backend, Keys(TENANT), group, "interactions")
        assert self.table is not None and self.table.num_rows == 4
        assert self.current is not None and self.snapshots == {self.current.snapshot_id}

    def assert_failed(self, job: dict, *phrases: str) -> str:
        """`job` failed with a reason holding every phrase, and nothing was published."""
        assert job["status"] == "CREATE_FAILED", job
        reason = job["failure_reason"]
        for phrase in phrases:
            assert phrase in reason, f"{phrase!r} not in failure_reason {reason!r}"
        assert not reason.startswith("internal error"), reason
        after = read_dataset(self.store, self.group)
        assert after is not None and after.equals(self.table)
        current = read_current(self.store.backend, Keys(TENANT), self.group, "interactions")
        assert current == self.current
        assert snapshot_ids(self.store, self.group) == self.snapshots
        if job.get("snapshot_id"):
            assert job["snapshot_id"] not in snapshot_ids(self.store, self.group)
        return reason


@pytest.fixture
def baseline(store: Store, group: str) -> Baseline:
    return Baseline(store, group)


# ---- bad CSV: the job fails, names what is wrong, and publishes nothing ----

BAD_CSV = {
    "missing-column": (
        make_csv(3, columns=[c for c in COLUMNS if c != "qty"]),
        ["column 'qty' is missing", "header has: 'user_id'"],
    ),
    "float-garbage-rows-2-5": (
        make_csv(6, {2: {"rating": b"x"}, 5: {"rating": b"1.2.3"}}),
        ["column 'rating' (float)", "value 'x' at row 2", "not a number",
         "first offending rows: 2, 5"],
    ),
    "int-garbage-rows-2-5": (
        make_csv(6, {2: {"qty": b"1.5"}, 5: {"qty": b"abc"}}),
        ["column 'qty' (int)", "value '1.5' at row 2", "not an integer",
         "first offending rows: 2, 5"],
    ),
    "empty-user-id": (
        make_csv(5, {3: {"user_id": b""}}),
        ["column 'user_id', role USER_ID may not be empty", "1 empty value(s)", "first at rows 3"],
    ),
    "quoted-empty-item-id": (
        make_csv(5, {2: {"item_id": b'""'}, 4: {"item_id": b""}}),
        ["column 'item_id', role ITEM_ID may not be empty", "2 empty value(s)",
         "first at rows 2, 4"],
    ),
    "empty-timestamp": (
        make_csv(5, {5: {"ts": b""}}),
        ["column 'ts', role TIMESTAMP may not be empty", "first at rows 5"],
    ),
    "unparseable-timestamp": (
        make_csv(5, {2: {"ts": b"yesterday"}, 3: {"ts": b"2024-13-45T00:00:00Z"}}),
        ["column 'ts' (timestamp)", "value 'yesterday' at row 2", "not a timestamp",
         "first offending rows: 2, 3"],
    ),
    "epoch-milliseconds": (
        make_csv(5, {r: {"ts": b"1700000000123"} for r in (1, 4)}),
        ["column 'ts' (timestamp)", "at row 1", "milliseconds", "first offending rows: 1, 4"],
    ),
    "iso-mixed-offsets": (
        make_csv(5, {1: {"ts": b"2024-01-01T00:00:00Z"}, 2: {"ts": b"2024-01-01T00:00:00+02:00"},
                     3: {"ts": b"2024-01-01T00:00:00"}, 5: {"ts": b"2024-01-02 10:00:00"}}),
        ["column 'ts' (timestamp)", "value '2024-01-01T00:00:00' at row 3",
         "mixes ISO 8601 times with and without a zone offset", "first offending rows: 3, 5"],
    ),
    "bool-garbage": (
        make_csv(5, {4: {"liked": b"maybe"}}),
        ["column 'liked' (bool)", "value 'maybe' at row 4", "not a boolean",
         "first offending rows: 4"],
    ),
    "invalid-utf8-string": (
        make_csv(5, {2: {"comment": b"caf\xe9"}, 3: {"comment": b"\xff\xfe"}}),
        ["column 'comment' (string)", "at row 2", "not valid UTF-8", "first offending rows: 2, 3"],
    ),
    "invalid-utf8-user-id": (
        make_csv(5, {5: {"user_id": b"u\xc3("}}),
        ["column 'user_id' (string)", "at row 5", "not valid UTF-8"],
    ),
    "empty-file": (b"", ["source 'data.csv' is empty", "expected a CSV header line"]),
    "header-only": (make_csv(0), ["source 'data.csv' has a header but no data rows"]),
    "header-only-no-newline": (make_csv(0).rstrip(b"\n"), ["has a header but no data rows"]),
    "binary-with-nuls": (
        random.Random(1).randbytes(4096) + b"\x00" + random.Random(2).randbytes(4096),
        ["source 'data.csv' is a binary file", "NUL bytes"],
    ),
    "binary-without-nuls": (
        bytes(b for b in random.Random(3).randbytes(8192) if b),
        ["source 'data.csv' is not a UTF-8 CSV file", "first line is not text"],
    ),
    "too-many-columns": (
        make_csv(5).replace(b"u3,i1", b"u3,i1,extra", 1),
        ["not valid CSV", "data row 3 has 9 column(s), expected 8", "'u3,i1,extra,"],
    ),
    "too-few-columns": (
        make_csv(5).replace(b",hi\nu4", b"\nu4", 1),
        ["not valid CSV", "data row 3 has 7 column(s), expected 8"],
    ),
}


@pytest.mark.parametrize("data,phrases", BAD_CSV.values(), ids=BAD_CSV.keys())
def test_bad_csv_fails_and_publishes_nothing(baseline: Baseline, data: bytes,
                                             phrases: list[str]) -> None:
    job = run_job(baseline.store, baseline.group, data)
    baseline.assert_failed(job, *phrases)


def test_good_header_then_garbage_fails(baseline: Baseline) -> None:
    garbage = bytes(b for b in random.Random(4).randbytes(20_000) if b)
    job = run_job(baseline.store, baseline.group, make_csv(3) + garbage)
    reason = baseline.assert_failed(job)
    assert "row" in reason and ("UTF-8" in reason or "column" in reason), reason


def test_failure_in_a_later_block_numbers_rows_and_aborts_written_parts(
        baseline: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small blocks: parts are written before the bad rows are reached, then must be removed.
    monkeypatch.setattr(dataset_import, "BLOCK_SIZE", 4096)
    aborted: list[list[str]] = []
    real_abort = SnapshotWriter.abort

    def spy_abort(self: SnapshotWriter) -> None:
        aborted.append(list(self.backend.list(self.prefix)))
        real_abort(self)

    monkeypatch.setattr(SnapshotWriter, "abort", spy_abort)
    data = make_csv(3000, {2345: {"qty": b"many"}, 2999: {"qty": b"x"}})
    job = run_job(baseline.store, baseline.group, data)
    baseline.assert_failed(job, "column 'qty' (int)", "value 'many' at row 2345",
                           "first offending rows: 2345")
    assert aborted and aborted[0], "the failure came before any part was written"
    assert not any(k.startswith(aborted[0][0].rsplit("/", 1)[0])
                   for k in snapshot_keys(baseline.store, baseline.group))

    bad_shape = make_csv(3000).replace(b"\nu2800,i1", b"\nu2800,i1,,", 1)
    job = run_job(baseline.store, baseline.group, bad_shape)
    baseline.assert_failed(job, "data row 2800 has 10 column(s), expected 8")


# ---- bad Parquet ----

def test_parquet_missing_column(baseline: Baseline) -> None:
    cols = good_parquet_columns()
    del cols["liked"]
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)),
                  source_name="data.parquet")
    baseline.assert_failed(job, "column 'liked' is missing", "Parquet")


def test_parquet_wrong_type(baseline: Baseline) -> None:
    cols = good_parquet_columns()
    cols["qty"] = pa.array(["1", "abc", "3", "4", "x5", "6"])
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)),
                  source_name="data.parquet")
    baseline.assert_failed(job, "column 'qty' (int)", "value 'abc' at row 2", "not an integer",
                           "first offending rows: 2, 5")


def test_parquet_float_in_int_column_is_not_truncated(baseline: Baseline) -> None:
    cols = good_parquet_columns()
    cols["qty"] = pa.array([1.0, 2.0, 3.5, 4.0, 5.0, 6.0])
    job = run_job(baseline.store, baseline.group, parquet_bytes(pa.table(cols)))
    baseline.assert_failed(job, "column 'qty' (int)", "row 3", "not an integer")


def test_truncated_parquet(baseline: Baseline) -> None:
    data = parquet_bytes(pa.table(good_parquet_columns()))
    job = run_job(baseline.store, baseline.group, data[: len(data) // 2])
    baseline.assert_failed(job)


# ---- good input ----

def test_csv_conversions(store: Store, group: str) -> None:
    data = make_csv(4, {
        1: {"ts": b"2024-01-01T00:00:00Z", "rating": b"2", "qty": b" 7 ", "liked": b"TRUE",
            "tags": b"a|b| c", "comment": b'"x, y"'},
        2: {"ts": b"2024-01-01T01:30:00+01:30", "rating": b"-0.25", "qty": b"-3",
            "liked": b"0", "tags": b"solo", "comment": b"caf\xc3\xa9"},
        3: {"ts": b" 1700000000 ", "rating": b"1e3", "qty": b"0", "liked": b"False",
            "tags": b"", "comment": b""},
        4: {"ts": b"1700000000", "rating": b"", "qty": b"", "liked": b"1", "tags": b"|x|",
            "comment": b"plain"},
    })
    job = run_job(store, group, data)
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == 4 and job["progress"]["rows"] == 4
    table = read_dataset(store, group)
    assert table is not None
    assert table.schema == arrow_schema(Schema.model_validate(SCHEMA))
    epoch = datetime.fromtimestamp(1_700_000_000, UTC)
    midnight = datetime(2024, 1, 1, tzinfo=UTC)
    rows = table.to_pylist()
    assert [r["user_id"] for r in rows] == ["u1", "u2", "u3", "u4"]
    assert [r["ts"] for r in rows] == [midnight, midnight, epoch, epoch]
    assert [r["rating"] for r in rows] == [2.0, -0.25, 1000.0, None]
    assert [r["qty"] for r in rows] == [7, -3, 0, None]
    assert [r["liked"] for r in rows] == [True, False, False, True]
    assert [r["tags"] for r in rows] == [["a", "b", "c"], ["solo"], None, ["", "x", ""]]
    assert [r["comment"] for r in rows] == ["x, y", "café", None, "plain"]


@pytest.mark.parametrize("stamps,expected", [
    ([b"2024-03-01T12:00:00Z", b"2024-03-01T12:00:00.250Z"],
     [datetime(2024, 3, 1, 12, tzinfo=UTC), datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)]),
    ([b"2024-03-01T12:00:00", b"2024-03-01 12:00:00.250", b"2024-03-01"],
     [datetime(2024, 3, 1, 12, tzinfo=UTC), datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC),
      datetime(2024, 3, 1, tzinfo=UTC)]),
    # Python's isoformat() writes microseconds; they are truncated to the stored milliseconds.
    ([b"2024-03-01T12:00:00.123456", b"2024-03-01T12:00:00.999999"],
     [datetime(2024, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC),
      datetime(2024, 3, 1, 12, 0, 0, 999_000, tzinfo=UTC)]),
    ([b"2024-03-01T14:00:00.123456+02:00"], [datetime(2024, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)]),
    ([b"0", b"1709294400", b"-86400"],
     [datetime(1970, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, 12, tzinfo=UTC),
      datetime(1969, 12, 31, tzinfo=UTC)]),
    ([b"1709294400", b"2024-03-01T12:00:00Z"], [datetime(2024, 3, 1, 12, tzinfo=UTC)] * 2),
], ids=["iso-zulu", "iso-naive-as-utc", "iso-naive-micros", "iso-offset-micros", "epoch-seconds",
        "epoch-and-iso"])
def test_timestamps(store: Store, group: str, stamps: list[bytes],
                    expected: list[datetime]) -> None:
    data = make_csv(len(stamps), {i + 1: {"ts": s} for i, s in enumerate(stamps)})
    job = run_job(store, group, data)
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    table = read_dataset(store, group)
    assert table is not None and table.column("ts").to_pylist() == expected


def test_gzipped_csv(store: Store, group: str) -> None:
    plain = make_csv(50, {7: {"tags": b"g|z"}})
    job = run_job(store, group, gzip.compress(plain), source_name="events.csv.gz")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    table = read_dataset(store, group)
    assert table is not None and table.num_rows == 50
    assert table.column("tags")[6].as_py() == ["g", "z"]
    assert job["progress"]["bytes_total"] < len(plain)  # the compressed size


def test_gzipped_csv_with_bad_value_names_the_row(baseline: Baseline) -> None:
    data = gzip.compress(make_csv(20, {17: {"liked": b"nope"}}))
    job = run_job(baseline.store, baseline.group, data, source_name="events.csv.gz")
    baseline.assert_failed(job, "column 'liked'", "at row 17")


def test_parquet_native_types(store: Store, group: str) -> None:
    cols = good_parquet_columns(3)
    cols["ts"] = pa.array([datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)],
                          pa.timestamp("us"))
    cols["qty"] = pa.array([1, 2, 3], pa.int32())
    job = run_job(store, group, parquet_bytes(pa.table(cols)), source_name="x.parquet")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    table = read_dataset(store, group)
    assert table is not None
    assert table.column("qty").to_pylist() == [1, 2, 3]
    assert table.column("ts").to_pylist() == [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    assert table.column("tags").to_pylist() == [["a", "b"]] * 3


def test_incremental_appends_and_reuses_old_parts(store: Store, group: str) -> None:
    keys = Keys(TENANT)
    assert run_job(store, group, make_csv(4))["status"] == "ACTIVE"
    old = read_current(store.backend, keys, group, "interactions")
    old_table = read_dataset(store, group)
    new_data = make_csv(3, {r: {"user_id": f"new{r}".encode()} for r in (1, 2, 3)})
    job = run_job(store, group, new_data, mode="incremental")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == 7
    new = read_current(store.backend, keys, group, "interactions")
    assert old is not None and new is not None
    assert new.rows == 7 and new.parent == old.snapshot_id and new.mode == "incremental"
    assert new.parts[: len(old.parts)] == old.parts
    assert all(p.startswith(keys.snapshot(group, "interactions", new.snapshot_id))
               for p in new.parts[len(old.parts):])
    table = read_dataset(store, group)
    assert table is not None and old_table is not None
    assert table.column("user_id").to_pylist() == \
        ["u1", "u2", "u3", "u4", "new1", "new2", "new3"]
    assert table.slice(0, 4).equals(old_table)


def test_incremental_on_empty_dataset(store: Store, group: str) -> None:
    job = run_job(store, group, make_csv(2), mode="incremental")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    table = read_dataset(store, group)
    assert table is not None and table.num_rows == 2


def test_full_replaces(store: Store, group: str) -> None:
    assert run_job(store, group, make_csv(4))["status"] == "ACTIVE"
    new_data = make_csv(2, {1: {"user_id": b"z1"}, 2: {"user_id": b"z2"}})
    job = run_job(store, group, new_data, mode="full")
    assert job["status"] == "ACTIVE"
    manifest = read_current(store.backend, Keys(TENANT), group, "interactions")
    assert manifest is not None and manifest.rows == 2 and manifest.mode == "full"
    assert len(manifest.parts) == 1 and manifest.snapshot_id in manifest.parts[0]
    table = read_dataset(store, group)
    assert table is not None and table.column("user_id").to_pylist() == ["z1", "z2"]


def test_failed_incremental_keeps_previous(baseline: Baseline) -> None:
    job = run_job(baseline.store, baseline.group, make_csv(3, {2: {"qty": b"?"}}),
                  mode="incremental")
    baseline.assert_failed(job, "column 'qty'", "row 2")


def test_finished_job_is_not_rerun(store: Store, group: str) -> None:
    job = run_job(store, group, make_csv(2))
    again = dataset_import.run_import(store, TENANT, group, job["name"])
    assert again == job
    assert len(snapshot_ids(store, group)) == 1


# ---- conform() directly ----

SCHEMA_MODEL = Schema.model_validate(SCHEMA)


def raw_table(**overrides: list[object]) -> pa.Table:
    n = len(next(iter(overrides.values()))) if overrides else 2
    cols: dict[str, list[object]] = {c: [GOOD_ROW[c]] * n for c in COLUMNS}
    cols.update(overrides)
    return pa.table({c: pa.array(v, pa.binary()) for c, v in cols.items()})


def test_conform_numbers_rows_from_first_row() -> None:
    table = raw_table(rating=[b"1", b"oops", b"2", b"nan?"])
    with pytest.raises(DataError) as err:
        conform(table, SCHEMA_MODEL, first_row=101)
    assert err.value.column == "rating"
    assert err.value.rows == [102, 104]
    assert "value 'oops' at row 102" in str(err.value)


def test_conform_missing_column() -> None:
    table = raw_table().drop_columns(["comment"])
    with pytest.raises(DataError, match="column 'comment' is missing") as err:
        conform(table, SCHEMA_MODEL, first_row=1)
    assert err.value.column == "comment"


def test_conform_reports_at_most_five_rows() -> None:
    table = raw_table(user_id=[None] * 9)
    with pytest.raises(DataError) as err:
        conform(table, SCHEMA_MODEL, first_row=1)
    assert err.value.rows == [1, 2, 3, 4, 5]
    assert "9 empty value(s)" in str(err.value)


def test_conform_converts_to_the_dataset_schema() -> None:
    batch = conform(raw_table(tags=[b"x| y", None], ts=[b"1", b"1970-01-01T00:00:02Z"]),
                    SCHEMA_MODEL, first_row=1)
    assert batch.schema == arrow_schema(SCHEMA_MODEL)
    assert batch.column("tags").to_pylist() == [["x", "y"], None]
    assert batch.column("ts").to_pylist() == [datetime.fromtimestamp(s, UTC) for s in (1, 2)]
    assert batch.column("liked").to_pylist() == [True, True]
