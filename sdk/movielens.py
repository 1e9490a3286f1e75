"""Convert MovieLens folders (ml-100k, ml-1m, ml-latest) into tagrec Parquet datasets.

Ratings are streamed through ``pyarrow.csv`` in large blocks and written batch by batch, so the
33M-rating ml-latest converts in bounded memory. Files may also be gzip-compressed (``.gz``).
Timestamps are written as ``timestamp('s', tz='UTC')``; Parquet has no seconds unit, so they read
back as ``timestamp('ms', tz='UTC')`` holding whole seconds.

Example:
    >>> data = convert("ml-latest-small", "out")  # doctest: +SKIP
    >>> data.paths[DatasetKind.INTERACTIONS]  # doctest: +SKIP
    PosixPath('out/interactions.parquet')
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField, interactions_schema

__all__ = ["MovieLensData", "MovieLensFormat", "convert", "detect_format"]

MovieLensFormat = Literal["ml-100k", "ml-1m", "ml-latest"]

# Files that identify each format (users files are optional), checked in this order.
_LAYOUTS: dict[MovieLensFormat, tuple[str, str, str | None]] = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "ml-latest": ("ratings.csv", "movies.csv", None),
}
# ml-100k u.item: the 19 genre flag columns, in file order (as listed in u.genre).
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# ml-1m users.dat occupation codes (from the ml-1m README).
_ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
# Genre values meaning "no genre"; they become an empty list.
_NO_GENRE = ("(no genres listed)", "unknown", "")
_BLOCK_SIZE = 1 << 24  # bytes of CSV per streamed batch
_UNIT_SEP = b"\x1f"  # stands in for ml-1m's two-character "::" separator

_INTERACTIONS_ARROW = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("timestamp", pa.timestamp("s", tz="UTC")),
        ("event_type", pa.string()),
        ("event_value", pa.float64()),
    ]
)


@dataclass
class MovieLensData:
    """What :func:`convert` wrote.

    Attributes:
        format: The detected MovieLens format.
        interactions: Path of ``interactions.parquet``.
        items: Path of ``items.parquet``.
        users: Path of ``users.parquet``, or None when the format has no user file.
        schemas: The schema of each written dataset, describing exactly its columns.
        num_rows: Rows written per dataset.
    """

    format: MovieLensFormat
    interactions: Path
    items: Path
    users: Path | None
    schemas: dict[DatasetKind, Schema]
    num_rows: dict[DatasetKind, int] = field(default_factory=dict)

    @property
    def paths(self) -> dict[DatasetKind, Path]:
        """The written Parquet files keyed by dataset kind."""
        out = {DatasetKind.INTERACTIONS: self.interactions, DatasetKind.ITEMS: self.items}
        if self.users is not None:
            out[DatasetKind.USERS] = self.users
        return out


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _files(path: Path) -> tuple[MovieLensFormat, Path, Path, Path | None]:
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a directory; expected a MovieLens folder")
    for fmt, (ratings, movies, users) in _LAYOUTS.items():
        r, m = _find(path, ratings), _find(path, movies)
        if r is not None and m is not None:
            u = _find(path, users) if users is not None else None
            return fmt, r, m, u
    expected = "; ".join("/".join(n for n in names if n is not None) for names in _LAYOUTS.values())
    raise ValueError(
        f"{str(path)!r} is not a MovieLens folder: expected one of these sets of files "
        f"(optionally .gz): {expected}"
    )


def detect_format(path: str | Path) -> MovieLensFormat:
    """Tell which MovieLens release a folder holds.

    Args:
        path: A folder with ``u.data``/``u.item``/``u.user`` (ml-100k),
            ``ratings.dat``/``movies.dat``/``users.dat`` (ml-1m) or ``ratings.csv``/``movies.csv``
            (ml-latest, ml-latest-small, ml-25m, ...); each file may end in ``.gz``.

    Returns:
        ``"ml-100k"``, ``"ml-1m"`` or ``"ml-latest"``.

    Raises:
        ValueError: If the folder is missing or holds none of these layouts.
    """
    return _files(Path(path))[0]


class _DoubleColonReader(io.RawIOBase):
    """Stream a file, replacing the ``::`` separator by one byte that pyarrow.csv accepts."""

    def __init__(self, source: pa.NativeFile) -> None:
        self._source = source
        self._pending = b""  # trailing colons held back until the next chunk
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = self._source.read(1 << 20)
            if not chunk:
                data, self._pending = self._pending, b""
                if not data:
                    return 0
            else:
                data = self._pending + chunk
                stripped = data.rstrip(b":")
                data, self._pending = stripped, data[len(stripped) :]
            self._buffer = data.replace(b"::", _UNIT_SEP)
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._source.close()
        super().close()


def _open(
    path: Path,
    *,
    delimiter: str,
    names: list[str] | None,
    types: dict[str, pa.DataType],
    encoding: str = "utf8",
    include: list[str] | None = None,
) -> pacsv.CSVStreamingReader:
    """A streaming CSV reader over a (possibly gzipped) MovieLens file."""
    source: pa.NativeFile | io.BufferedReader = pa.input_stream(path, compression="detect")
    quoted = delimiter == ","  # only the ml-latest CSVs quote; titles elsewhere contain '"'
    if delimiter == "::":
        source = io.BufferedReader(_DoubleColonReader(source), buffer_size=1 << 20)
        delimiter = _UNIT_SEP.decode()
    return pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=names, encoding=encoding, block_size=_BLOCK_SIZE
        ),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=include, strings_can_be_null=False
        ),
    )


def _list_from_flags(flags: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Rows of 0/1 flags (rows, names) to a list<string> array of the names whose flag is set."""
    rows, cols = np.nonzero(flags)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=flags.shape[0]))])
    values = pa.array(names, pa.string()).take(pa.array(cols))
    return _drop_no_genre(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values))


def _drop_no_genre(lists: pa.Array) -> pa.Array:
    """Remove placeholder genres; null and placeholder-only cells become empty lists."""
    values = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    keep = pc.invert(pc.is_in(values, pa.array(_NO_GENRE))).to_numpy(zero_copy_only=False)
    counts = np.bincount(parents[keep], minlength=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values.filter(pa.array(keep)))


def _year(title: pa.Array, fallback: pa.Array | None = None) -> pa.Array:
    """The year in a trailing ``(1995)`` of the title, else the last 4 digits of `fallback`."""
    year = pc.struct_field(pc.extract_regex(title, r"\((?P<y>\d{4})\)\s*$"), [0])
    if fallback is not None:
        alt = pc.struct_field(pc.extract_regex(fallback, r"(?P<y>\d{4})\s*$"), [0])
        year = pc.coalesce(year, alt)
    return year.cast(pa.int32())


def _convert_ratings(fmt: MovieLensFormat, path: Path, out: Path) -> int:
    names = ["user_id", "item_id", "rating", "timestamp"]
    types = {
        "user_id": pa.string(),
        "item_id": pa.string(),
        "rating": pa.float64(),
        "timestamp": pa.int64(),
    }
    if fmt == "ml-latest":  # header userId,movieId,rating,timestamp
        reader = _open(
            path,
            delimiter=",",
            names=None,
            types={"userId": pa.string(), "movieId": pa.string(), "rating": pa.float64(),
                   "timestamp": pa.int64()},
            include=["userId", "movieId", "rating", "timestamp"],
        )  # fmt: skip
    else:
        sep = "\t" if fmt == "ml-100k" else "::"
        reader = _open(path, delimiter=sep, names=names, types=types)
    rows = 0
    with pq.ParquetWriter(out, _INTERACTIONS_ARROW) as writer:
        for batch in reader:
            n = batch.num_rows
            if n == 0:
                continue
            writer.write_table(
                pa.Table.from_arrays(
                    [
                        batch.column(0),
                        batch.column(1),
                        batch.column(3).cast(pa.timestamp("s", tz="UTC")),
                        pa.repeat(pa.scalar("rating", pa.string()), n),
                        batch.column(2),
                    ],
                    schema=_INTERACTIONS_ARROW,
                )
            )
            rows += n
    return rows


def _items(fmt: MovieLensFormat, path: Path) -> pa.Table:
    if fmt == "ml-100k":
        flags = [f"g{i}" for i in range(len(_ML100K_GENRES))]
        names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
        raw = _open(
            path,
            delimiter="|",
            names=names,
            types={"item_id": pa.string(), "title": pa.string(), "release_date": pa.string(),
                   **{f: pa.int8() for f in flags}},
            encoding="latin-1",
            include=["item_id", "title", "release_date", *flags],
        ).read_all()  # fmt: skip
        matrix = np.column_stack([raw.column(f).to_numpy() for f in flags])
        genres = _list_from_flags(matrix, _ML100K_GENRES)
        year = _year(raw.column("title"), raw.column("release_date"))
    else:
        if fmt == "ml-1m":
            raw = _open(
                path,
                delimiter="::",
                names=["item_id", "title", "genres"],
                types={"item_id": pa.string(), "title": pa.string(), "genres": pa.string()},
                encoding="latin-1",
            ).read_all()
        else:
            raw = (
                _open(
                    path,
                    delimiter=",",
                    names=None,
                    types={"movieId": pa.string(), "title": pa.string(), "genres": pa.string()},
                    include=["movieId", "title", "genres"],
                )
                .read_all()
                .rename_columns(["item_id", "title", "genres"])
            )
        genres = _drop_no_genre(pc.split_pattern(raw.column("genres").combine_chunks(), "|"))
        year = _year(raw.column("title"))
    return pa.table(
        {
            "item_id": raw.column("item_id"),
            "title": raw.column("title"),
            "genres": genres,
            "year": year,
        }
    )


def _users(fmt: MovieLensFormat, path: Path) -> pa.Table:
    types = {
        "user_id": pa.string(),
        "age": pa.int32(),
        "gender": pa.string(),
        "occupation": pa.string(),
        "zip_code": pa.string(),
    }
    if fmt == "ml-100k":  # user id | age | gender | occupation | zip code
        return _open(
            path, delimiter="|", names=list(types), types=types, encoding="latin-1"
        ).read_all()
    # ml-1m: UserID::Gender::Age::Occupation::Zip-code, occupation as a numeric code.
    raw = _open(
        path,
        delimiter="::",
        names=["user_id", "gender", "age", "occupation", "zip_code"],
        types={**types, "occupation": pa.int32()},
        encoding="latin-1",
    ).read_all()
    code = raw.column("occupation").combine_chunks()
    known = pc.and_(pc.greater_equal(code, 0), pc.less(code, len(_ML1M_OCCUPATIONS)))
    labels = pa.array(_ML1M_OCCUPATIONS, pa.string()).take(pc.if_else(known, code, 0))
    occupation = pc.if_else(known, labels, code.cast(pa.string()))
    return pa.table(
        {
            "user_id": raw.column("user_id"),
            "age": raw.column("age"),
            "gender": raw.column("gender"),
            "occupation": occupation,
            "zip_code": raw.column("zip_code"),
        }
    )


def _schemas(has_users: bool) -> dict[DatasetKind, Schema]:
    def f(
        name: str, type_: FieldType, role: Role | None = None, nullable: bool = False
    ) -> SchemaField:
        return SchemaField(name=name, type=type_, role=role, nullable=nullable)

    schemas = {
        DatasetKind.INTERACTIONS: interactions_schema(),
        DatasetKind.ITEMS: Schema(
            fields=[
                f("item_id", FieldType.STRING, Role.ITEM_ID),
                f("title", FieldType.TEXT),
                f("genres", FieldType.CATEGORICAL, Role.TAGS),
                f("year", FieldType.INT, nullable=True),
            ]
        ),
    }
    if has_users:
        schemas[DatasetKind.USERS] = Schema(
            fields=[
                f("user_id", FieldType.STRING, Role.USER_ID),
                f("age", FieldType.INT),
                f("gender", FieldType.STRING),
                f("occupation", FieldType.STRING),
                f("zip_code", FieldType.STRING),
            ]
        )
    return schemas


def convert(path: str | Path, out_dir: str | Path) -> MovieLensData:
    """Convert a MovieLens folder into tagrec Parquet datasets.

    Writes ``interactions.parquet`` (every rating, event_type ``"rating"``, event_value the
    stars), ``items.parquet`` (title, genres as a list, year when the title or release date has
    one) and, for ml-100k and ml-1m, ``users.parquet``. IDs are kept as they appear, as strings.

    Args:
        path: The MovieLens folder (see :func:`detect_format`).
        out_dir: Output folder, created if missing; existing files are overwritten.

    Returns:
        The written paths, their schemas and row counts.

    Raises:
        ValueError: If `path` is not a MovieLens folder.
    """
    fmt, ratings, movies, users = _files(Path(path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    num_rows = {
        DatasetKind.INTERACTIONS: _convert_ratings(fmt, ratings, out / "interactions.parquet")
    }
    items = _items(fmt, movies)
    pq.write_table(items, out / "items.parquet")
    num_rows[DatasetKind.ITEMS] = items.num_rows
    users_path = None
    if users is not None:
        table = _users(fmt, users)
        users_path = out / "users.parquet"
        pq.write_table(table, users_path)
        num_rows[DatasetKind.USERS] = table.num_rows
    return MovieLensData(
        format=fmt,
        interactions=out / "interactions.parquet",
        items=out / "items.parquet",
        users=users_path,
        schemas=_schemas(users is not None),
        num_rows=num_rows,
    )
