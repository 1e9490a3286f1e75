"""MovieLens ratings with item tags (sdk.movielens_tags): HetRec tags joined by movie id (top N by
weight, rare tags dropped, gzipped and latin-1 files), the TAGS only on liked ratings, genres as
tags for an ml-100k folder, and the real shared data when it is there."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sdk.movielens_tags import convert
from sdk.types import DatasetKind, Role
from tests.conftest import SHARED_DATA
from tests.unit.test_hetrec import write
from tests.unit.test_movielens import _write, assert_consistent, ml100k  # noqa: F401 (a fixture)


def ml_latest(root: Path) -> Path:
    folder = root / "ml-latest-small"
    folder.mkdir(parents=True)
    _write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.0,964982703\n1,2,1.0,964982704\n"
           "1,3,3.0,964982705\n2,1,3.5,964982706\n2,9,4.0,964982707\n", encoding="utf-8", gz=True)
    _write(folder / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n'
           '2,"Heat, The (1995)",Action\n3,Amélie (2001),Comedy|Romance\n'
           '9,Nothing (2000),(no genres listed)\n',
           encoding="utf-8")
    return folder


def hetrec_tags(root: Path) -> Path:
    folder = root / "hetrec"
    folder.mkdir(parents=True)
    write(folder, "tags.dat", ["id\tvalue", "1\tpixar", "2\tcafé", "3\trare", "4\tfunny"], encoding="latin-1")
    write(folder, "movie_tags.dat", ["movieID\ttagID\ttagWeight", "1\t1\t5", "1\t4\t9", "1\t2\t1", "1\t3\t20",
                                     "2\t2\t3", "3\t4\t1", "3\t1\t1", "7\t2\t1", "7\t1\t1"], gz=True)
    return folder


def test_hetrec_tags_join_movielens_ratings(tmp_path: Path) -> None:
    data = convert(ml_latest(tmp_path), tmp_path / "out", tags_from=hetrec_tags(tmp_path), top_tags=2,
                   min_tag_movies=2)
    tables = assert_consistent(data)
    items = {r["item_id"]: r for r in tables[DatasetKind.ITEMS].to_pylist()}
    # Heaviest first, ties by file order; "rare" is on one movie only (dropped); movie 9 has none.
    assert [items[i]["tags"] for i in ("1", "2", "3", "9")] == [["funny", "pixar"], ["café"],
                                                                ["funny", "pixar"], []]
    assert items["1"]["genres"] == ["Animation", "Comedy"]
    rows = tables[DatasetKind.INTERACTIONS].to_pylist()
    assert [r["tags"] for r in rows] == [["funny", "pixar"], [], [], ["funny", "pixar"], []]  # liked: >= 3.5
    schemas = data.schemas
    assert schemas[DatasetKind.INTERACTIONS].field_for(Role.TAGS).name == "tags"
    assert schemas[DatasetKind.ITEMS].field_for(Role.TAGS).name == "tags"  # genres: a plain category field
    every = convert(ml_latest(tmp_path / "b"), tmp_path / "out2", tags_from=hetrec_tags(tmp_path / "b"),
                    min_tag_movies=1, positive_rating=None)
    tags = pq.read_table(every.interactions).column("tags").to_pylist()
    assert tags[1] == ["café"] and tags[4] == []


def test_without_tags_the_genres_are_the_tags(ml100k: Path, tmp_path: Path) -> None:  # noqa: F811
    data = convert(ml100k, tmp_path / "out")
    tables = assert_consistent(data)
    items = tables[DatasetKind.ITEMS]
    assert items.column("tags").to_pylist() == items.column("genres").to_pylist()
    assert DatasetKind.USERS in tables  # ml-100k's demographics: UTPM's user fields
    liked = [r for r in tables[DatasetKind.INTERACTIONS].to_pylist() if r["tags"]]
    assert [r["event_value"] for r in liked] == [5.0]


def test_ml100k_ids_are_not_joined_to_hetrec_tags(ml100k: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="ml-100k folder, whose movie ids are not MovieLens' own"):
        convert(ml100k, tmp_path / "out", tags_from=hetrec_tags(tmp_path))


def test_malformed_hetrec_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    folder = hetrec_tags(tmp_path)
    write(folder, "tags.dat", ["id\tvalue", "1\tpixar", "2\tcafé", "3\trare\textra", "4\tfunny"],
          encoding="latin-1")
    data = convert(ml_latest(tmp_path), tmp_path / "out", tags_from=folder, min_tag_movies=1)
    assert sum(data.skipped_rows.values()) == 1, data.skipped_rows


def test_a_folder_without_tag_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="lacks movie_tags.dat and tags.dat"):
        convert(ml_latest(tmp_path), tmp_path / "out", tags_from=tmp_path / "empty")
    with pytest.raises(ValueError, match="top_tags"):
        convert(ml_latest(tmp_path / "b"), tmp_path / "out", tags_from=hetrec_tags(tmp_path), top_tags=0)


def test_real_movielens_with_hetrec_tags(tmp_path: Path) -> None:
    ml, tags = SHARED_DATA / "movielens-latest-small", SHARED_DATA / "hetrec2011-movielens-2k-tags"
    if not (ml.exists() and tags.exists()):
        pytest.skip(f"{ml} or {tags} is not there (licensed data, not in the repo)")
    data = convert(ml, tmp_path / "out", tags_from=tags)
    tables = assert_consistent(data)
    inter = tables[DatasetKind.INTERACTIONS]
    assert inter.num_rows == 100_836
    tagged = pc.sum(pc.greater(pc.list_value_length(inter.column("tags")), 0)).as_py()
    assert 0.4 * inter.num_rows < tagged < 0.62 * inter.num_rows  # liked ratings of tagged movies
    item_tags = tables[DatasetKind.ITEMS].column("tags").to_pylist()
    assert max(len(t) for t in item_tags) == 3 and sum(bool(t) for t in item_tags) > 5000
