"""HetRec 2011 converters: tiny folders in the three published layouts, and the real movielens-2k."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sdk.hetrec import HetrecData, convert, detect_format
from sdk.types import DatasetKind, Role
from tests.conftest import SHARED_DATA
from tests.unit.test_movielens import assert_matches_schema

HETREC_ML = SHARED_DATA / "hetrec2011-movielens-2k-tags"


def write(folder: Path, name: str, lines: list[str], encoding: str = "utf-8", gz: bool = False) -> None:
    """A tab-separated .dat file (the first line is the header), plain or gzipped."""
    raw = "".join(line + "\n" for line in lines).encode(encoding)
    if gz:
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
    else:
        (folder / name).write_bytes(raw)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def movielens_2k(root: Path) -> Path:
    folder = root / "hetrec2011-movielens-2k-v2"
    folder.mkdir()
    write(folder, "user_taggedmovies-timestamps.dat", [
        "userID\tmovieID\ttagID\tunixTimeStamp",
        f"75\t353\t5290\t{ms(2006, 10, 29, 22, 20, 15)}",
        f"78\t1\t7\t{ms(2007, 4, 16, 2, 43, 45)}",
        f"78\t2\t99\t{ms(2007, 4, 16, 2, 44, 0)}",  # tag 99 is not in tags.dat
        f"75\t1\t13\t{ms(2008, 1, 1)}",
    ], gz=True)  # fmt: skip
    # Measured on the real files: tags.dat is latin-1 although its readme says UTF-8.
    write(folder, "tags.dat", ["id\tvalue", "7\tpixar", "13\tcafé  ", "5290\ttissit"],
          encoding="latin-1")
    header = ("id\ttitle\timdbID\tspanishTitle\timdbPictureURL\tyear\trtID\trtAllCriticsRating\t"
              "rtAllCriticsNumReviews\trtAllCriticsNumFresh\trtAllCriticsNumRotten\trtAllCriticsScore\t"
              "rtTopCriticsRating\trtTopCriticsNumReviews\trtTopCriticsNumFresh\trtTopCriticsNumRotten\t"
              "rtTopCriticsScore\trtAudienceRating\trtAudienceNumRatings\trtAudienceScore\trtPictureURL")
    rest = "\t".join(["x"] * 14)
    write(folder, "movies.dat", [
        header,
        f"1\tToy story\t0114709\tToy story (juguetes)\thttp://pic\t1995\ttoy_story\t{rest}",
        f'2\tLes Misérables "2"\t0113497\tLos miserables\thttp://pic\t\\N\tx\t{rest}',
        f"353\tThe Crow\t0109506\tEl cuervo\thttp://pic\t1994\tcrow\t{rest}",
        "9\ttoo few fields",
    ], encoding="latin-1", gz=True)  # fmt: skip
    write(folder, "movie_genres.dat", ["movieID\tgenre", "1\tAdventure", "1\tAnimation", "353\tAction"])
    write(folder, "movie_directors.dat", ["movieID\tdirectorID\tdirectorName",
                                          "1\tjohn_lasseter\tJohn Lasseter",
                                          "2\tbille_august\tBille August Jørgensen"], encoding="latin-1")
    write(folder, "movie_countries.dat", ["movieID\tcountry", "1\tUSA", "2\tUK", "353\t"])
    write(folder, "movie_locations.dat", ["movieID\tlocation1", "1\tCanada"])  # ignored
    (folder / "README.txt").write_text("not data")
    return folder


def lastfm_2k(root: Path, timestamps: bool = True) -> Path:
    folder = root / "hetrec2011-lastfm-2k"
    folder.mkdir()
    write(folder, "artists.dat", [
        "id\tname\turl\tpictureURL",
        "51\tDuran Duran\thttp://www.last.fm/music/Duran+Duran\thttp://pic/51.jpg",
        "52\tMorcheeba\thttp://www.last.fm/music/Morcheeba\thttp://pic/52.jpg",
        "707\tMötley Crüe\thttp://www.last.fm/music/M%C3%B6tley+Cr%C3%BCe\thttp://pic/707.jpg",
    ])  # fmt: skip
    write(folder, "tags.dat", ["tagID\ttagValue", "1\tmetal", "13\tchillout", "25\tnu-métal"],
          encoding="latin-1")
    if timestamps:
        write(folder, "user_taggedartists-timestamps.dat", [
            "userID\tartistID\ttagID\ttimestamp",
            "2\t52\t13\t1238536800000",
            "2\t707\t1\t1241128800000",
            "3\t707\t25\t1241128800000\textra field",  # malformed: skipped
            "4\t51\t13\t1243807200000",
        ])  # fmt: skip
    else:
        write(folder, "user_taggedartists.dat", [
            "userID\tartistID\ttagID\tday\tmonth\tyear",
            "2\t52\t13\t1\t4\t2009",
            "2\t707\t1\t1\t5\t2009",
        ], gz=True)  # fmt: skip
    write(folder, "user_artists.dat", ["userID\tartistID\tweight", "2\t51\t13883"])
    write(folder, "user_friends.dat", ["userID\tfriendID", "2\t275"])
    return folder


def delicious_2k(root: Path) -> Path:
    folder = root / "hetrec2011-delicious-2k"
    folder.mkdir()
    write(folder, "bookmarks.dat", [
        "id\tmd5\ttitle\turl\tmd5Principal\turlPrincipal",
        "1\tab49\tIFLA - The official website\thttp://www.ifla.org/\t7f43\twww.ifla.org",
        "2\tcd12\tThe Library of Congress\thttp://www.loc.gov/index.html\t9a1b\twww.loc.gov",
        "3\tef34\t\thttp://example.com/a\t0c0c\texample.com",
        "1\tab49\tIFLA again (repeated id)\thttp://www.ifla.org/\t7f43\twww.ifla.org",
    ], encoding="latin-1", gz=True)  # fmt: skip
    write(folder, "tags.dat", ["id\tvalue", "1\tcollection_development", "2\tlibrary", "3\tbibliothèque"],
          encoding="latin-1")
    write(folder, "user_taggedbookmarks-timestamps.dat", [
        "userID\tbookmarkID\ttagID\ttimestamp",
        "8\t1\t1\t1289255362000",
        "8\t1\t2\t1289255362000",
        "8\t2\t3\t1289255400000",
    ], gz=True)  # fmt: skip
    write(folder, "user_taggedbookmarks.dat", ["userID\tbookmarkID\ttagID\tday\tmonth\tyear\thour\t"
                                               "minute\tsecond", "8\t1\t1\t8\t11\t2010\t23\t29\t22"])
    write(folder, "bookmark_tags.dat", ["bookmarkID\ttagID\ttagWeight", "1\t2\t276"])
    write(folder, "user_contacts-timestamps.dat", ["userID\tcontactID\ttimestamp", "8\t28371\t1286151259000"])
    return folder


def check(data: HetrecData) -> dict[DatasetKind, pa.Table]:
    """Every written file matches its schema; returns the tables."""
    assert set(data.schemas) == set(data.paths) == {DatasetKind.INTERACTIONS, DatasetKind.ITEMS}
    tables = {}
    for kind, path in data.paths.items():
        data.schemas[kind].check_kind(kind)
        table = pq.read_table(path)
        assert_matches_schema(table, data.schemas[kind])
        assert table.num_rows == data.num_rows[kind]
        tables[kind] = table
    inter = data.schemas[DatasetKind.INTERACTIONS]
    assert inter.field_for(Role.TAGS).name == "tags" and inter.field_for(Role.EVENT_TYPE) is not None
    assert tables[DatasetKind.INTERACTIONS].schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    return tables


def rows(table: pa.Table, *columns: str) -> list[dict]:
    return table.select(list(columns)).to_pylist()


def test_movielens_2k(tmp_path: Path) -> None:
    folder = movielens_2k(tmp_path)
    assert detect_format(folder) == "movielens-2k"
    data = convert(folder, tmp_path / "out")
    assert data.format == "movielens-2k"
    assert data.skipped_rows == {"user_taggedmovies-timestamps.dat.gz": 1, "movies.dat.gz": 1}
    tables = check(data)
    inter, items = tables[DatasetKind.INTERACTIONS], tables[DatasetKind.ITEMS]
    assert inter.to_pylist() == [
        {"user_id": "75", "item_id": "353", "timestamp": datetime(2006, 10, 29, 22, 20, 15, tzinfo=UTC),
         "event_type": "tag", "tags": ["tissit"]},
        {"user_id": "78", "item_id": "1", "timestamp": datetime(2007, 4, 16, 2, 43, 45, tzinfo=UTC),
         "event_type": "tag", "tags": ["pixar"]},
        {"user_id": "75", "item_id": "1", "timestamp": datetime(2008, 1, 1, tzinfo=UTC),
         "event_type": "tag", "tags": ["café"]},  # latin-1 decoded, whitespace trimmed
    ]  # fmt: skip
    assert items.to_pylist() == [
        {"item_id": "1", "title": "Toy story", "year": 1995, "genres": ["Adventure", "Animation"],
         "directors": ["John Lasseter"], "countries": ["USA"], "creators": ["John Lasseter"]},
        {"item_id": "2", "title": 'Les Misérables "2"', "year": None, "genres": [],
         "directors": ["Bille August Jørgensen"], "countries": ["UK"],
         "creators": ["Bille August Jørgensen"]},
        {"item_id": "353", "title": "The Crow", "year": 1994, "genres": ["Action"], "directors": [],
         "countries": [], "creators": []},  # an empty country is no country
    ]  # fmt: skip
    assert data.schemas[DatasetKind.ITEMS].field_for(Role.ITEM_ID).name == "item_id"
    assert {f.name: f.type.value for f in data.schemas[DatasetKind.ITEMS].fields}["title"] == "text"


def test_movielens_2k_without_optional_metadata(tmp_path: Path) -> None:
    folder = movielens_2k(tmp_path)
    for name in ("movie_genres.dat", "movie_directors.dat", "movie_countries.dat"):
        (folder / name).unlink()
    items = check(convert(folder, tmp_path / "out"))[DatasetKind.ITEMS]
    assert items.column("genres").to_pylist() == [[], [], []]
    assert items.column("creators").to_pylist() == [[], [], []]


def test_lastfm_2k(tmp_path: Path) -> None:
    folder = lastfm_2k(tmp_path)
    assert detect_format(folder) == "lastfm-2k"
    data = convert(folder, tmp_path / "out")
    assert data.skipped_rows == {"user_taggedartists-timestamps.dat": 1}
    tables = check(data)
    inter = tables[DatasetKind.INTERACTIONS]
    assert rows(inter, "user_id", "item_id", "tags") == [
        {"user_id": "2", "item_id": "52", "tags": ["chillout"]},
        {"user_id": "2", "item_id": "707", "tags": ["metal"]},
        {"user_id": "4", "item_id": "51", "tags": ["chillout"]},
    ]
    assert inter.column("timestamp").cast(pa.int64()).to_pylist() == [1238536800000, 1241128800000,
                                                                      1243807200000]
    assert tables[DatasetKind.ITEMS].to_pylist()[2] == {
        "item_id": "707", "name": "Mötley Crüe", "url": "http://www.last.fm/music/M%C3%B6tley+Cr%C3%BCe"}
    assert [f.name for f in data.schemas[DatasetKind.ITEMS].fields] == ["item_id", "name", "url"]


def test_lastfm_2k_dates_when_no_timestamps_file(tmp_path: Path) -> None:
    """Without ``-timestamps``, the day/month/year columns give the time (midnight, read as UTC)."""
    data = convert(lastfm_2k(tmp_path, timestamps=False), tmp_path / "out")
    inter = check(data)[DatasetKind.INTERACTIONS]
    assert inter.column("timestamp").to_pylist() == [datetime(2009, 4, 1, tzinfo=UTC),
                                                     datetime(2009, 5, 1, tzinfo=UTC)]


def test_delicious_2k(tmp_path: Path) -> None:
    folder = delicious_2k(tmp_path)
    assert detect_format(folder) == "delicious-2k"
    data = convert(folder, tmp_path / "out")
    tables = check(data)
    inter, items = tables[DatasetKind.INTERACTIONS], tables[DatasetKind.ITEMS]
    # The -timestamps file wins over the date file.
    assert rows(inter, "item_id", "tags") == [{"item_id": "1", "tags": ["collection_development"]},
                                              {"item_id": "1", "tags": ["library"]},
                                              {"item_id": "2", "tags": ["bibliothèque"]}]
    assert items.to_pylist() == [  # the repeated id keeps its first row
        {"item_id": "1", "title": "IFLA - The official website", "url": "http://www.ifla.org/",
         "url_principal": ["www.ifla.org"]},
        {"item_id": "2", "title": "The Library of Congress", "url": "http://www.loc.gov/index.html",
         "url_principal": ["www.loc.gov"]},
        {"item_id": "3", "title": "", "url": "http://example.com/a", "url_principal": ["example.com"]},
    ]  # fmt: skip


def test_dates_with_time_of_day(tmp_path: Path) -> None:
    folder = delicious_2k(tmp_path)
    (folder / "user_taggedbookmarks-timestamps.dat.gz").unlink()
    inter = check(convert(folder, tmp_path / "out"))[DatasetKind.INTERACTIONS]
    assert inter.column("timestamp").to_pylist() == [datetime(2010, 11, 8, 23, 29, 22, tzinfo=UTC)]


def test_missing_or_wrong_files(tmp_path: Path) -> None:
    folder = lastfm_2k(tmp_path)
    (folder / "tags.dat").unlink()
    with pytest.raises(ValueError, match="hetrec2011-lastfm-2k .*lacks tags.dat") as info:
        convert(folder, tmp_path / "out")
    assert "user_taggedartists-timestamps.dat" in str(info.value)
    assert not (tmp_path / "out").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "ratings.dat").write_text("1\t2\n")
    with pytest.raises(ValueError, match="not a HetRec 2011 folder") as info:
        detect_format(empty)
    assert "user_taggedbookmarks-timestamps.dat" in str(info.value)
    with pytest.raises(ValueError, match="not a directory"):
        detect_format(tmp_path / "missing")


def test_bad_timestamp_names_the_file(tmp_path: Path) -> None:
    folder = lastfm_2k(tmp_path)
    write(folder, "user_taggedartists-timestamps.dat", ["userID\tartistID\ttagID\ttimestamp",
                                                        "2\t52\t13\tyesterday"])
    with pytest.raises(ValueError, match="user_taggedartists-timestamps.dat.*yesterday"):
        convert(folder, tmp_path / "out")


def test_any_byte_decodes(tmp_path: Path) -> None:
    """A file mixing UTF-8 and latin-1 bytes (the real tags.dat does) is read whole as latin-1."""
    folder = lastfm_2k(tmp_path)
    (folder / "tags.dat").write_bytes(b"tagID\ttagValue\n1\tm\xc3\xa9tal\n13\tchill\xe9\n25\t\xff\xfe\n")
    inter = check(convert(folder, tmp_path / "out"))[DatasetKind.INTERACTIONS]
    assert pc.list_flatten(inter.column("tags")).to_pylist() == ["chillé", "mÃ©tal", "chillé"]


@pytest.mark.skipif(not HETREC_ML.is_dir(),
                    reason=f"real HetRec data not present at {HETREC_ML} (licence forbids bundling)")
def test_real_movielens_2k(tmp_path: Path) -> None:
    data = convert(HETREC_ML, tmp_path / "out")
    assert data.format == "movielens-2k" and data.skipped_rows == {}
    tables = check(data)
    inter, items = tables[DatasetKind.INTERACTIONS], tables[DatasetKind.ITEMS]
    assert inter.num_rows == 47_957 and items.num_rows == 10_197  # the readme's counts
    tags = pc.list_flatten(inter.column("tags"))
    assert 0 < len(pc.unique(tags)) <= 13_222
    assert any("é" in t for t in pc.unique(tags).to_pylist())  # latin-1, not mojibake or U+FFFD
    assert set(pc.unique(inter.column("item_id")).to_pylist()) <= set(items.column("item_id").to_pylist())
    first = items.slice(0, 1).to_pylist()[0]
    assert first["title"] == "Toy story" and first["year"] == 1995 and first["countries"] == ["USA"]
    assert first["directors"] == first["creators"] == ["John Lasseter"]
    assert "Animation" in first["genres"]
    assert sum(len(d) > 0 for d in items.column("directors").to_pylist()) > 10_000
    latin = [t for t in items.column("directors").to_pylist() if t and "ö" in t[0]]
    assert latin, "latin-1 director names decode"
    ts = inter.column("timestamp").cast(pa.int64()).to_numpy() // 1000
    assert ts.min() >= 946_684_800 and ts.max() < 1_262_304_000  # 2000 .. 2009

    # The date file (local time, read as UTC) agrees with the timestamps within a day.
    dated = tmp_path / "dated"
    dated.mkdir()
    for p in HETREC_ML.iterdir():
        if p.name != "user_taggedmovies-timestamps.dat.gz":
            (dated / p.name).symlink_to(p)
    by_date = check(convert(dated, tmp_path / "out2"))[DatasetKind.INTERACTIONS]
    delta = by_date.column("timestamp").cast(pa.int64()).to_numpy() // 1000 - ts
    assert abs(delta).max() <= 86_400
