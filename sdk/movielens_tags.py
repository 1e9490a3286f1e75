"""MovieLens ratings with item tags: the user-tags (UTPM) shape of a MovieLens folder.

UTPM's MovieLens experiment (Yan et al., CIKM'20, §4.1) reads each user's ratings together with
"the tag and category of the movie". :func:`convert` writes the :mod:`sdk.movielens` datasets
and adds the tags:

* the item tags come from a HetRec 2011 MovieLens-2k folder (``movie_tags.dat`` + ``tags.dat``,
  plain or gzipped, in the files' own encodings), joined by MovieLens movie id; each movie keeps
  its `top_tags` heaviest tags (``tagWeight``; ties by tag id), among the tags that at least
  `min_tag_movies` movies carry (rare tags filtered). Without a tags folder (e.g. an ml-100k
  folder) the genres are the tags;
* ``items.parquet`` gains ``tags`` (role TAGS); ``genres`` stays as a categorical field (UTPM's
  category field);
* ``interactions.parquet`` gains ``tags`` (role TAGS): the movie's tags on the ratings of at least
  `positive_rating` stars, the paper's positives (§4.1: "equals or above 3.5"), empty on the
  others. A row's TAGS are the tags the user "clicked" (§1), so the user-tags protocol's relevant
  tags are the tags of the newest positively rated movies, and the tag-popularity baseline counts
  a user's liked tags. ``positive_rating=None`` puts the tags on every rating.

Example:
    >>> data = convert("ml-latest-small", "out", tags_from="hetrec2011-movielens-2k")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sdk import hetrec, movielens
from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField

__all__ = ["MovieLensTagsData", "convert", "item_tags"]


@dataclass
class MovieLensTagsData(movielens.MovieLensData):
    """What :func:`convert` wrote (:class:`sdk.movielens.MovieLensData`), and the malformed HetRec
    rows skipped, per file."""

    skipped_rows: dict[str, int] = field(default_factory=dict)


def item_tags(folder: str | Path, item_ids: pa.Array, *, top_tags: int = 3,
              min_tag_movies: int = 5, skipped: dict[str, int] | None = None) -> pa.Array:
    """Each item's top tags from a HetRec MovieLens-2k folder, as a list<string> array.

    Args:
        folder: A folder with ``movie_tags.dat`` and ``tags.dat`` (optionally ``.gz``).
        item_ids: MovieLens movie ids (strings), in the order of the result.
        top_tags: Tags kept per movie, heaviest first.
        min_tag_movies: A tag carried by fewer movies is dropped.
        skipped: Filled with the malformed rows skipped, per file.

    Raises:
        ValueError: If a file is missing or malformed, or on a bad argument.
    """
    if top_tags < 1 or min_tag_movies < 1:
        raise ValueError(f"top_tags and min_tag_movies must be >= 1, got {top_tags}, {min_tag_movies}")
    base = Path(folder)
    found = {n: hetrec._find(base, n) for n in ("movie_tags.dat", "tags.dat")}
    files = {n: p for n, p in found.items() if p is not None}
    missing = [n for n in found if n not in files]
    if missing:
        raise ValueError(f"{str(base)!r} lacks {' and '.join(missing)} (optionally .gz): "
                         "expected a HetRec 2011 MovieLens-2k folder")
    skipped = {} if skipped is None else skipped
    movie, tag_id, weight = hetrec._read_dat(files["movie_tags.dat"],
                                             {0: pa.string(), 1: pa.string(), 2: pa.float64()}, skipped)
    ids, values = hetrec._read_dat(files["tags.dat"], {0: pa.string(), 1: pa.string()}, skipped)
    tag = pc.take(values, pc.index_in(tag_id, value_set=ids))
    pairs = pa.table({"movie": movie, "tag": tag, "weight": weight, "order": np.arange(len(movie))})
    pairs = pairs.filter(pc.and_(pc.is_valid(pairs.column("tag")), pc.not_equal(pairs.column("tag"), "")))
    # Rare tags out: a tag must be on at least min_tag_movies distinct movies.
    distinct = pairs.group_by(["tag", "movie"]).aggregate([]).group_by("tag").aggregate([("movie", "count")])
    common = distinct.filter(pc.greater_equal(distinct.column("movie_count"), min_tag_movies)).column("tag")
    pairs = pairs.filter(pc.is_in(pairs.column("tag"), value_set=common))
    pairs = pairs.sort_by([("movie", "ascending"), ("weight", "descending"), ("order", "ascending")])
    mv = pairs.column("movie").to_pylist()
    tg = pairs.column("tag").to_pylist()
    kept: dict[str, list[str]] = {}
    for m, t in zip(mv, tg):
        own = kept.setdefault(m, [])
        if len(own) < top_tags and t not in own:
            own.append(t)
    return pa.array([kept.get(i, []) for i in item_ids.to_pylist()], pa.list_(pa.string()))


def convert(path: str | Path, out_dir: str | Path, *, tags_from: str | Path | None = None, top_tags: int = 3,
            min_tag_movies: int = 5, positive_rating: float | None = 3.5) -> MovieLensTagsData:
    """Convert a MovieLens folder with item tags into tagrec Parquet datasets (module docstring).

    Args:
        path: The MovieLens folder (ml-100k, ml-1m, ml-latest; see :func:`sdk.movielens.convert`).
        out_dir: Output folder, created if missing; existing files are overwritten.
        tags_from: A HetRec 2011 MovieLens-2k folder with the movies' tags (None: genres are tags).
        top_tags: Tags kept per movie (UTPM's N = 3).
        min_tag_movies: Tags on fewer movies are dropped.
        positive_rating: Ratings of at least this carry the movie's tags (None: every rating).

    Returns:
        The written paths, their schemas (with the TAGS fields), row counts and skipped HetRec rows.

    Raises:
        ValueError: If a folder is not what it should be (an ml-100k folder with `tags_from`: its
            movie ids are its own), or on a bad argument.
    """
    if tags_from is not None and movielens.detect_format(path) == "ml-100k":
        raise ValueError(f"{str(path)!r} is an ml-100k folder, whose movie ids are not MovieLens' own: "
                         "HetRec tags join by MovieLens movie id (ml-1m, ml-latest, ml-10m/20m ids); "
                         "leave tags_from out to use the genres as tags")
    converted = movielens.convert(path, out_dir)
    data = MovieLensTagsData(**{f: getattr(converted, f) for f in converted.__dataclass_fields__})
    items = pq.read_table(data.items)
    ids = items.column("item_id").combine_chunks()
    if tags_from is not None:
        tags = item_tags(tags_from, ids, top_tags=top_tags, min_tag_movies=min_tag_movies,
                         skipped=data.skipped_rows)
    else:
        tags = items.column("genres").combine_chunks().cast(pa.list_(pa.string()))
    pq.write_table(items.append_column("tags", tags), data.items)

    inter = pq.read_table(data.interactions)
    index = pc.index_in(inter.column("item_id"), value_set=ids)
    row_tags = pc.take(tags, index)
    if positive_rating is not None:
        liked = pc.fill_null(pc.greater_equal(inter.column("event_value"), positive_rating), False)
        row_tags = pc.if_else(liked, row_tags, pa.scalar([], pa.list_(pa.string())))
    row_tags = pc.fill_null(row_tags, pa.scalar([], pa.list_(pa.string())))
    pq.write_table(inter.append_column("tags", row_tags), data.interactions)

    schemas = dict(data.schemas)
    schemas[DatasetKind.INTERACTIONS] = Schema(fields=[
        *schemas[DatasetKind.INTERACTIONS].fields,
        SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True)])
    schemas[DatasetKind.ITEMS] = Schema(fields=[
        *(f.model_copy(update={"role": None}) if f.role == Role.TAGS else f
          for f in schemas[DatasetKind.ITEMS].fields),
        SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True)])
    data.schemas = schemas
    return data
