"""Convert HetRec 2011 folders (movielens-2k, lastfm-2k, delicious-2k) into tagrec Parquet datasets.

Each folder holds tab-separated ``.dat`` files with one header line (plain or gzip-compressed,
``name.dat.gz``). Columns are taken by their position in the published layout, so header spellings
(``tagID``/``id``) do not matter. Encodings differ per file and disagree with the readmes, so each
file is decoded as UTF-8 when it is valid UTF-8 and as latin-1 otherwise: no byte fails a
conversion. Rows with another number of fields than the header are skipped and counted.

Example:
    >>> data = convert("hetrec2011-lastfm-2k", "out")  # doctest: +SKIP
    >>> data.format  # doctest: +SKIP
    'lastfm-2k'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField

__all__ = ["HetrecData", "HetrecFormat", "convert", "detect_format"]

HetrecFormat = Literal["movielens-2k", "lastfm-2k", "delicious-2k"]

# Per format: the tag-assignment file's stem, the item file, and the item file's columns in order.
_LAYOUTS: dict[HetrecFormat, tuple[str, str, tuple[str, ...]]] = {
    "movielens-2k": ("user_taggedmovies", "movies.dat", (
        "id", "title", "imdbID", "spanishTitle", "imdbPictureURL", "year", "rtID",
        "rtAllCriticsRating", "rtAllCriticsNumReviews", "rtAllCriticsNumFresh",
        "rtAllCriticsNumRotten", "rtAllCriticsScore", "rtTopCriticsRating", "rtTopCriticsNumReviews",
        "rtTopCriticsNumFresh", "rtTopCriticsNumRotten", "rtTopCriticsScore", "rtAudienceRating",
        "rtAudienceNumRatings", "rtAudienceScore", "rtPictureURL")),
    "lastfm-2k": ("user_taggedartists", "artists.dat", ("id", "name", "url", "pictureURL")),
    "delicious-2k": ("user_taggedbookmarks", "bookmarks.dat",
                     ("id", "md5", "title", "url", "md5Principal", "urlPrincipal")),
}  # fmt: skip
# Date columns of the assignment files without "-timestamps" (lastfm has no time of day).
_DATE_PARTS = ("day", "month", "year", "hour", "minute", "second")
# movielens-2k metadata: output field -> (file, column holding the value).
_MOVIE_LISTS = {
    "genres": ("movie_genres.dat", 1),
    "directors": ("movie_directors.dat", 2),  # movieID, directorID, directorName
    "countries": ("movie_countries.dat", 1),
}
_TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclass
class HetrecData:
    """What :func:`convert` wrote.

    Attributes:
        format: The detected HetRec folder.
        interactions: Path of ``interactions.parquet``: one row per tag assignment.
        items: Path of ``items.parquet``: the tagged movies, artists or bookmarks.
        schemas: The schema of each written dataset, describing exactly its columns.
        num_rows: Rows written per dataset.
        skipped_rows: Rows left out per source file: malformed lines (another number of fields
            than the header), and assignments whose tag is missing from ``tags.dat`` or empty.
    """

    format: HetrecFormat
    interactions: Path
    items: Path
    schemas: dict[DatasetKind, Schema]
    num_rows: dict[DatasetKind, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> dict[DatasetKind, Path]:
        """The written Parquet files keyed by dataset kind."""
        return {DatasetKind.INTERACTIONS: self.interactions, DatasetKind.ITEMS: self.items}


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _files(path: Path) -> tuple[HetrecFormat, Path, Path, Path]:
    """The format, and its assignment, tags and item files."""
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a directory; expected a HetRec 2011 folder")
    for fmt, (stem, items_name, _) in _LAYOUTS.items():
        assignments = _find(path, f"{stem}-timestamps.dat") or _find(path, f"{stem}.dat")
        if assignments is None:
            continue
        missing = [n for n in ("tags.dat", items_name) if _find(path, n) is None]
        if missing:
            raise ValueError(
                f"{str(path)!r} looks like hetrec2011-{fmt} ({assignments.name}) but lacks "
                f"{' and '.join(missing)} (optionally .gz)"
            )
        return fmt, assignments, _find(path, "tags.dat"), _find(path, items_name)  # type: ignore[return-value]
    expected = "; ".join(f"{stem}-timestamps.dat (or {stem}.dat) + tags.dat + {items}"
                         for stem, items, _ in _LAYOUTS.values())
    raise ValueError(
        f"{str(path)!r} is not a HetRec 2011 folder: expected one of these sets of files "
        f"(optionally .gz): {expected}"
    )


def detect_format(path: str | Path) -> HetrecFormat:
    """Tell which HetRec 2011 dataset a folder holds.

    Args:
        path: A folder with ``user_taggedmovies-timestamps.dat`` (movielens-2k),
            ``user_taggedartists-timestamps.dat`` (lastfm-2k) or
            ``user_taggedbookmarks-timestamps.dat`` (delicious-2k), or the same files without
            ``-timestamps``; each may end in ``.gz``.

    Returns:
        ``"movielens-2k"``, ``"lastfm-2k"`` or ``"delicious-2k"``.

    Raises:
        ValueError: If the folder is missing, holds none of these, or lacks a required file.
    """
    return _files(Path(path))[0]


def _read_dat(path: Path, types: dict[int, pa.DataType], skipped: dict[str, int]) -> list[pa.Array]:
    """The columns at the positions in `types` of a tab-separated file with a header line.

    Text columns are whitespace-trimmed strings; the file is UTF-8 if it decodes as such, else
    latin-1. Rows with another field count than the header are skipped and counted in `skipped`.
    """
    with pa.input_stream(path, compression="detect") as stream:
        raw = stream.read()
    try:
        raw.decode("utf-8")
        encoding = "utf8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    header = raw.split(b"\n", 1)[0].rstrip(b"\r").split(b"\t")
    if max(types) >= len(header):
        raise ValueError(f"{path.name}: expected at least {max(types) + 1} tab-separated columns, "
                         f"the header has {len(header)}: {header[0][:60]!r}...")
    names = [f"c{i}" for i in range(len(header))]
    bad = 0

    def invalid(_: pacsv.InvalidRow) -> str:
        nonlocal bad
        bad += 1
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, encoding=encoding,
                                           use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False,
                                             invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={names[i]: t for i, t in types.items()},
                include_columns=[names[i] for i in types], strings_can_be_null=False),
        )
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path.name}: {e}") from None
    if bad:
        skipped[path.name] = skipped.get(path.name, 0) + bad
    columns = []
    for i, t in types.items():
        col = table.column(names[i]).combine_chunks()
        columns.append(pc.utf8_trim_whitespace(col) if pa.types.is_string(t) else col)
    return columns


def _dates(parts: list[pa.Array]) -> pa.Array:
    """Day, month, year[, hour, minute, second] columns to UTC timestamps in ms."""
    day, month, year, *clock = (p.to_numpy() for p in parts)
    months = (year - 1970) * 12 + (month - 1)
    ms = (months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1)).astype("datetime64[ms]")
    seconds = sum((c * s for c, s in zip(clock, (3600, 60, 1), strict=False)), np.zeros(len(day), np.int64))
    return pa.array(ms.astype(np.int64) + seconds * 1000).cast(_TIMESTAMP)


def _one_value_lists(values: pa.Array) -> pa.Array:
    """Each value as a one-element list."""
    return pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1), pa.int32()), values)


def _lists_by_key(keys: pa.Array, pair_keys: pa.Array, pair_values: pa.Array) -> pa.Array:
    """For each key, the non-empty values paired with it, in file order (empty when none)."""
    index = pc.index_in(pair_keys, value_set=keys)
    keep = pc.and_(pc.is_valid(index), pc.not_equal(pair_values, "")).to_numpy(zero_copy_only=False)
    index = index.filter(pa.array(keep)).to_numpy()
    order = np.argsort(index, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(index, minlength=len(keys)))])
    values = pair_values.filter(pa.array(keep)).take(pa.array(order))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _first_rows(ids: pa.Array) -> pa.Array:
    """A mask keeping the first row of each id."""
    first = pc.index_in(ids, value_set=ids).to_numpy()
    return pa.array(first == np.arange(len(ids)))


def _interactions(assignments: Path, tags_file: Path, skipped: dict[str, int]) -> pa.Table:
    timed = assignments.name.split(".")[0].endswith("-timestamps")
    if timed:  # userID, itemID, tagID, timestamp in ms
        user, item, tag_id, ms = _read_dat(
            assignments, {0: pa.string(), 1: pa.string(), 2: pa.string(), 3: pa.int64()}, skipped)
        timestamp = ms.cast(_TIMESTAMP)
    else:  # userID, itemID, tagID, day, month, year[, hour, minute, second]
        with pa.input_stream(assignments, compression="detect") as stream:
            width = stream.read(1 << 16).split(b"\n", 1)[0].count(b"\t") + 1
        parts = {3 + i: pa.int64() for i in range(min(width - 3, len(_DATE_PARTS)))}
        if len(parts) < 3:
            raise ValueError(f"{assignments.name}: expected day, month and year after userID, "
                             f"itemID and tagID; the header has {width} columns")
        user, item, tag_id, *dates = _read_dat(
            assignments, {0: pa.string(), 1: pa.string(), 2: pa.string(), **parts}, skipped)
        timestamp = _dates(dates)
    ids, values = _read_dat(tags_file, {0: pa.string(), 1: pa.string()}, skipped)
    tag = pc.take(values, pc.index_in(tag_id, value_set=ids))
    known = pc.and_(pc.is_valid(tag), pc.not_equal(pc.fill_null(tag, ""), ""))
    unknown = len(tag) - pc.sum(known).as_py() if len(tag) else 0
    if unknown:
        skipped[assignments.name] = skipped.get(assignments.name, 0) + unknown
    table = pa.table({"user_id": user, "item_id": item, "timestamp": timestamp, "tag": tag})
    table = table.filter(known)
    n = table.num_rows
    return pa.table({
        "user_id": table.column("user_id"),
        "item_id": table.column("item_id"),
        "timestamp": table.column("timestamp"),
        "event_type": pa.repeat(pa.scalar("tag", pa.string()), n),
        "tags": _one_value_lists(table.column("tag").combine_chunks()),
    })  # fmt: skip


def _items(fmt: HetrecFormat, folder: Path, path: Path, skipped: dict[str, int]) -> pa.Table:
    columns = _LAYOUTS[fmt][2]
    wanted = {"movielens-2k": ("id", "title", "year"), "lastfm-2k": ("id", "name", "url"),
              "delicious-2k": ("id", "title", "url", "urlPrincipal")}[fmt]
    read = _read_dat(path, {columns.index(c): pa.string() for c in wanted}, skipped)
    raw = pa.table(dict(zip(wanted, read, strict=True)))
    raw = raw.filter(_first_rows(raw.column("id").combine_chunks()))
    ids = raw.column("id").combine_chunks()
    out: dict[str, pa.Array] = {"item_id": ids}
    if fmt == "movielens-2k":
        year = raw.column("year").combine_chunks()
        numeric = pc.match_substring_regex(year, r"^\d{1,4}$")
        out["title"] = raw.column("title")
        out["year"] = pc.if_else(numeric, year, pa.scalar(None, pa.string())).cast(pa.int32())
        for name, (file_name, value_at) in _MOVIE_LISTS.items():
            source = _find(folder, file_name)
            if source is None:  # optional metadata: the field stays, with empty lists
                out[name] = _lists_by_key(ids, pa.array([], pa.string()), pa.array([], pa.string()))
                continue
            keys, values = _read_dat(source, {0: pa.string(), value_at: pa.string()}, skipped)
            out[name] = _lists_by_key(ids, keys, values)
        out["creators"] = out["directors"]
    elif fmt == "lastfm-2k":
        out["name"], out["url"] = raw.column("name"), raw.column("url")
    else:
        out["title"], out["url"] = raw.column("title"), raw.column("url")
        principal = raw.column("urlPrincipal").combine_chunks()
        out["url_principal"] = _lists_by_key(ids, ids, principal)
    return pa.table(out)


def _schemas(fmt: HetrecFormat) -> dict[DatasetKind, Schema]:
    def f(name: str, type_: FieldType, role: Role | None = None, nullable: bool = False) -> SchemaField:
        return SchemaField(name=name, type=type_, role=role, nullable=nullable)

    categorical = {"movielens-2k": ("genres", "directors", "countries", "creators"),
                   "lastfm-2k": (), "delicious-2k": ("url_principal",)}[fmt]
    text = "name" if fmt == "lastfm-2k" else "title"
    items = [f("item_id", FieldType.STRING, Role.ITEM_ID), f(text, FieldType.TEXT)]
    if fmt == "movielens-2k":
        items.append(f("year", FieldType.INT, nullable=True))
    else:
        items.append(f("url", FieldType.STRING))
    items += [f(c, FieldType.CATEGORICAL) for c in categorical]
    return {
        DatasetKind.INTERACTIONS: Schema(fields=[
            f("user_id", FieldType.STRING, Role.USER_ID),
            f("item_id", FieldType.STRING, Role.ITEM_ID),
            f("timestamp", FieldType.TIMESTAMP, Role.TIMESTAMP),
            f("event_type", FieldType.STRING, Role.EVENT_TYPE),
            f("tags", FieldType.CATEGORICAL, Role.TAGS),
        ]),
        DatasetKind.ITEMS: Schema(fields=items),
    }  # fmt: skip


def convert(path: str | Path, out_dir: str | Path) -> HetrecData:
    """Convert a HetRec 2011 folder into tagrec Parquet datasets.

    Writes ``interactions.parquet``: one row per tag assignment (user_id, item_id, timestamp from
    the ``-timestamps`` file's milliseconds, else from the date columns, read as UTC; event_type
    ``"tag"``; tags = the one tag's value from ``tags.dat``). And ``items.parquet``: item_id and its
    title (movies, bookmarks) or name (artists) as text; movies add year and the lists genres,
    directors (names), creators (the directors again: the creator nodes of GraphTR) and countries
    from the ``movie_*.dat`` files present; artists and bookmarks add their url, bookmarks their
    principal url (site) as a categorical ``url_principal``. Other files (ratings, listening
    counts, friends, contacts, locations, ...) are ignored. IDs are kept as strings.

    Args:
        path: The HetRec folder (see :func:`detect_format`).
        out_dir: Output folder, created if missing; existing files are overwritten.

    Returns:
        The written paths, their schemas, row counts and skipped rows.

    Raises:
        ValueError: If `path` is not a HetRec folder, lacks ``tags.dat`` or the item file, or a
            number column holds something else (the file and row are named).
    """
    folder = Path(path)
    fmt, assignments, tags_file, items_file = _files(folder)
    skipped: dict[str, int] = {}
    interactions = _interactions(assignments, tags_file, skipped)
    items = _items(fmt, folder, items_file, skipped)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(interactions, out / "interactions.parquet")
    pq.write_table(items, out / "items.parquet")
    return HetrecData(
        format=fmt,
        interactions=out / "interactions.parquet",
        items=out / "items.parquet",
        schemas=_schemas(fmt),
        num_rows={DatasetKind.INTERACTIONS: interactions.num_rows, DatasetKind.ITEMS: items.num_rows},
        skipped_rows=skipped,
    )
