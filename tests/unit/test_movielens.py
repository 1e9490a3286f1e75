"""MovieLens converters: tiny folders in the real formats, and the real ml-latest-small."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sdk.movielens import MovieLensData, convert, detect_format
from sdk.types import DatasetKind, FieldType, Schema

ML_LATEST_SMALL = Path(__file__).parents[3] / "shared" / "data" / "movielens-latest-small"

_ARROW_CHECKS = {
    FieldType.STRING: pa.types.is_string,
    FieldType.TEXT: pa.types.is_string,
    FieldType.INT: pa.types.is_integer,
    FieldType.FLOAT: pa.types.is_floating,
    FieldType.TIMESTAMP: pa.types.is_timestamp,
    FieldType.CATEGORICAL: lambda t: pa.types.is_list(t) and pa.types.is_string(t.value_type),
}


def assert_matches_schema(table: pa.Table, schema: Schema) -> None:
    assert table.column_names == [f.name for f in schema.fields]
    for spec in schema.fields:
        column = table.column(spec.name)
        assert _ARROW_CHECKS[spec.type](column.type), (spec.name, column.type)
        if not spec.nullable:
            assert column.null_count == 0, spec.name


def assert_consistent(data: MovieLensData) -> dict[DatasetKind, pa.Table]:
    """Every written file matches its schema; returns the tables."""
    tables = {}
    assert set(data.schemas) == set(data.paths)
    for kind, path in data.paths.items():
        data.schemas[kind].check_kind(kind)
        table = pq.read_table(path)
        assert_matches_schema(table, data.schemas[kind])
        assert table.num_rows == data.num_rows[kind]
        tables[kind] = table
    ts = tables[DatasetKind.INTERACTIONS].schema.field("timestamp").type
    assert ts.tz == "UTC"  # Parquet has no seconds unit: 's' is written, read back as 'ms'
    return tables


def _write(path: Path, text: str, encoding: str = "latin-1", gz: bool = False) -> None:
    raw = text.encode(encoding)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw, mtime=0))
    else:
        path.write_bytes(raw)


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    _write(
        folder / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t1\t5\t881251000\n"
    )
    url = "http://us.imdb.com/M/title-exact?x"
    _write(
        folder / "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||{url}|{_flags(3, 4, 5)}\n"
        f"242|Kolya (1996)|24-Jan-1997||{url}|{_flags(5)}\n"
        f'302|Misérables, Les "1995"|01-Jan-1995||{url}|{_flags(8)}\n'
        f"267|unknown||||{_flags(0)}\n",
    )
    _write(folder / "u.user", "196|49|M|writer|55105\n186|39|F|executive|T8H1N\n")
    return folder


@pytest.fixture
def ml1m(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    _write(folder / "ratings.dat", "1::1193::5::978300760\n2::1::4::978300761\n", gz=True)
    _write(
        folder / "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        '260::Star Wars: Episode IV - A New Hope, "Special" (1977)::Action|Sci-Fi\n'
        "3::Amélie::Comedy\n",
    )
    _write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::99::0\n")
    return folder


def test_detect_format(ml100k: Path, ml1m: Path) -> None:
    assert detect_format(ml100k) == "ml-100k"
    assert detect_format(str(ml1m)) == "ml-1m"  # ratings.dat.gz counts as ratings.dat


def test_ml100k(ml100k: Path, tmp_path: Path) -> None:
    data = convert(ml100k, tmp_path / "out")
    assert data.format == "ml-100k"
    assert data.num_rows == {
        DatasetKind.INTERACTIONS: 3,
        DatasetKind.ITEMS: 4,
        DatasetKind.USERS: 2,
    }
    tables = assert_consistent(data)
    inter = tables[DatasetKind.INTERACTIONS]
    assert inter.column("user_id").to_pylist() == ["196", "186", "196"]
    assert inter.column("item_id").to_pylist() == ["242", "302", "1"]
    assert inter.column("event_type").to_pylist() == ["rating"] * 3
    assert inter.column("event_value").to_pylist() == [3.0, 3.0, 5.0]
    assert inter.column("timestamp").cast(pa.int64()).to_pylist() == [
        881250949000,
        891717742000,
        881251000000,
    ]
    items = tables[DatasetKind.ITEMS].to_pylist()
    assert items[0] == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "genres": ["Animation", "Children's", "Comedy"],
        "year": 1995,
    }
    assert items[2]["title"] == 'Misérables, Les "1995"'  # latin-1, quotes kept
    assert items[2]["year"] == 1995  # from the release date
    assert items[3] == {"item_id": "267", "title": "unknown", "genres": [], "year": None}
    assert tables[DatasetKind.USERS].to_pylist() == [
        {"user_id": "196", "age": 49, "gender": "M", "occupation": "writer", "zip_code": "55105"},
        {
            "user_id": "186",
            "age": 39,
            "gender": "F",
            "occupation": "executive",
            "zip_code": "T8H1N",
        },
    ]


def test_ml1m(ml1m: Path, tmp_path: Path) -> None:
    data = convert(ml1m, tmp_path / "out")
    assert data.format == "ml-1m"
    tables = assert_consistent(data)
    inter = tables[DatasetKind.INTERACTIONS]
    assert inter.select(["user_id", "item_id", "event_value"]).to_pylist() == [
        {"user_id": "1", "item_id": "1193", "event_value": 5.0},
        {"user_id": "2", "item_id": "1", "event_value": 4.0},
    ]
    items = {r["item_id"]: r for r in tables[DatasetKind.ITEMS].to_pylist()}
    assert items["260"] == {
        "item_id": "260",
        "title": 'Star Wars: Episode IV - A New Hope, "Special" (1977)',
        "genres": ["Action", "Sci-Fi"],
        "year": 1977,
    }
    assert items["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    assert items["3"]["title"] == "Amélie" and items["3"]["year"] is None
    users = tables[DatasetKind.USERS].to_pylist()
    assert users[0] == {
        "user_id": "1",
        "age": 1,
        "gender": "F",
        "occupation": "K-12 student",
        "zip_code": "48067",
    }
    assert users[1]["occupation"] == "self-employed"
    assert users[2]["occupation"] == "99"  # unknown codes are kept as they are


def test_ml1m_ratings_stream_across_chunks(tmp_path: Path) -> None:
    """Enough rows that the '::' rewriting and the CSV blocks cut lines at arbitrary bytes."""
    folder = tmp_path / "big"
    folder.mkdir()
    rng = np.random.default_rng(0)
    n = 150_000
    users = rng.integers(1, 6041, n)
    movies = rng.integers(1, 3953, n)
    stars = rng.integers(1, 6, n)
    times = rng.integers(956_703_932, 1_046_454_590, n)
    lines = "\n".join(
        f"{u}::{m}::{s}::{t}" for u, m, s, t in zip(users, movies, stars, times, strict=True)
    )
    _write(folder / "ratings.dat", lines + "\n", gz=True)
    _write(folder / "movies.dat", "1::Toy Story (1995)::Animation\n")
    data = convert(folder, tmp_path / "out")
    assert data.users is None and data.num_rows[DatasetKind.INTERACTIONS] == n
    inter = assert_consistent(data)[DatasetKind.INTERACTIONS]
    assert inter.column("user_id").to_pylist() == [str(u) for u in users]
    assert inter.column("item_id").to_pylist() == [str(m) for m in movies]
    assert np.array_equal(inter.column("event_value").to_numpy(), stars.astype(float))
    assert np.array_equal(inter.column("timestamp").cast(pa.int64()).to_numpy(), times * 1000)


def test_double_colon_reader_handles_any_chunk_boundary() -> None:
    from sdk.movielens import _DoubleColonReader

    text = b"1::Star Wars: Episode IV (1977)::Action|Sci-Fi\n2::Up::Comedy::\n"

    class Trickle:
        """Returns at most `size` bytes per read, so '::' is split at every offset."""

        def __init__(self, size: int) -> None:
            self.data, self.size = text, size

        def read(self, _: int) -> bytes:
            out, self.data = self.data[: self.size], self.data[self.size :]
            return out

        def close(self) -> None:
            pass

    expected = text.replace(b"::", b"\x1f")
    for size in range(1, 8):
        assert _DoubleColonReader(Trickle(size)).read() == expected, size  # type: ignore[arg-type]


@pytest.mark.skipif(
    not ML_LATEST_SMALL.is_dir(),
    reason=f"real MovieLens data not present at {ML_LATEST_SMALL} (licence forbids bundling)",
)
def test_ml_latest_small(tmp_path: Path) -> None:
    assert detect_format(ML_LATEST_SMALL) == "ml-latest"
    data = convert(ML_LATEST_SMALL, tmp_path / "out")
    assert data.format == "ml-latest" and data.users is None
    assert set(data.schemas) == {DatasetKind.INTERACTIONS, DatasetKind.ITEMS}
    tables = assert_consistent(data)
    inter, items = tables[DatasetKind.INTERACTIONS], tables[DatasetKind.ITEMS]
    assert inter.num_rows == 100_836
    assert len(pc.unique(inter.column("user_id"))) == 610
    assert items.num_rows == 9_742
    assert set(pc.unique(inter.column("item_id")).to_pylist()) <= set(
        items.column("item_id").to_pylist()
    )
    values = set(pc.unique(inter.column("event_value")).to_pylist())
    assert values == {x / 2 for x in range(1, 11)}
    first = items.slice(0, 1).to_pylist()[0]
    assert first == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        "year": 1995,
    }
    genres = set(pc.list_flatten(items.column("genres")).to_pylist())
    assert "(no genres listed)" not in genres and "Drama" in genres
    assert items.column("year").null_count < 50
    ts = inter.column("timestamp").cast(pa.int64()).to_numpy() // 1000
    assert ts.min() >= 820_454_400 and ts.max() < 1_546_300_800  # 1996 .. 2018


def test_not_movielens(tmp_path: Path) -> None:
    (tmp_path / "ratings.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="not a MovieLens folder") as info:
        detect_format(tmp_path)
    assert str(tmp_path) in str(info.value) and "u.data" in str(info.value)
    with pytest.raises(ValueError, match="not a MovieLens folder"):
        convert(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="not a directory"):
        detect_format(tmp_path / "missing")
