"""Stack Exchange converter: the Kaggle shape, dump/Data Explorer variants, and the real samples."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sdk.stackexchange import StackExchangeData, convert, strip_html
from sdk.types import DatasetKind, Role
from tests.conftest import SHARED_DATA
from tests.unit.test_movielens import assert_matches_schema


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    """A CSV as Python's csv module quotes it (quoted newlines and quotes); gzipped for .gz."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    raw = buffer.getvalue().encode(encoding)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.name.endswith(".gz") else raw)
    return path


ROBOTICS = [
    ["1", "What is the right approach for a soccer robot?",
     "<p>Imagine a 3 wheel robot.\nWhat controller?</p>\n\n"
     "<pre><code>if(degree&lt;correction &amp;&amp; x) {\n    speed = 0;\n}\n</code></pre>\n"
     "<p><code>correction</code> is a range, see "
     '<a href="http://x.org">the docs</a>.</p>', "soccer control"],
    ["2", "How can I modify a servo to run &quot;freely&quot;?",
     "<p>I've got some servos</p><ul><li>one</li><li>two</li></ul><script>alert(1)</script>",
     "control  rcservo"],
    ["3", "Untagged", "<p>no tags here</p>", ""],
]  # fmt: skip


def kaggle_site(folder: Path, name: str = "robotics.csv.gz") -> Path:
    folder.mkdir(exist_ok=True)
    return write_csv(folder / name, ["id", "title", "content", "tags"], ROBOTICS)


def check(data: StackExchangeData) -> pa.Table:
    assert set(data.paths) == set(data.schemas) == {DatasetKind.ITEMS}
    schema = data.schemas[DatasetKind.ITEMS]
    schema.check_kind(DatasetKind.ITEMS)
    assert schema.field_for(Role.TAGS).name == "tags"
    assert {f.name: f.type.value for f in schema.fields}["content"] == "text"
    table = pq.read_table(data.items)
    assert_matches_schema(table, schema)
    assert table.num_rows == data.num_rows[DatasetKind.ITEMS]
    return table


def test_kaggle_file(tmp_path: Path) -> None:
    data = convert(kaggle_site(tmp_path / "kaggle"), tmp_path / "out")
    assert data.sites == ["robotics"] and data.ignored_files == [] and data.skipped_rows == {}
    items = check(data).to_pylist()
    assert items[0] == {
        "item_id": "1",  # one site: the question id as it is
        "title": "What is the right approach for a soccer robot?",
        "content": "Imagine a 3 wheel robot. What controller? if(degree<correction && x) { speed = 0; } "
                   "correction is a range, see the docs.",
        "tags": ["soccer", "control"],
        "site": ["robotics"],
    }
    assert items[1]["title"] == 'How can I modify a servo to run "freely"?'  # entities unescaped
    assert items[1]["content"] == "I've got some servos one two"  # no script, list items apart
    assert items[1]["tags"] == ["control", "rcservo"]
    assert items[2]["tags"] == []


def test_folder_of_sites(tmp_path: Path) -> None:
    folder = tmp_path / "kaggle"
    kaggle_site(folder)
    write_csv(folder / "cooking.csv", ["id", "title", "content", "tags"],
              [["1", "Pretzel buns", "<p>How to get a soft crust?</p>", "baking crust"]])
    write_csv(folder / "sample_submission.csv", ["id", "tags"], [["1", "physics"]])
    write_csv(folder / "test.csv", ["id", "title", "content"], [["1", "Why?", "<p>?</p>"]])
    (folder / "README.md").write_text("not a CSV")
    data = convert(folder, tmp_path / "out")
    assert data.sites == ["cooking", "robotics"]
    assert data.ignored_files == ["sample_submission.csv", "test.csv"]
    items = check(data)
    assert items.column("item_id").to_pylist() == ["cooking-1", "robotics-1", "robotics-2", "robotics-3"]
    assert items.column("site").to_pylist() == [["cooking"]] + [["robotics"]] * 3


def test_dump_variants(tmp_path: Path) -> None:
    """Data-dump and Data Explorer exports: other header names, <a><b> and |a|b| tags."""
    folder = tmp_path / "dumps"
    folder.mkdir()
    write_csv(folder / "stackoverflow.csv", ["Id", "Title", "Body", "Tags", "Score"], [
        ["11", "Relative time in C#", "<p>Given a <code>DateTime</code> value</p>", "<c#><datetime>", "9"],
        ["12", "Regex", "<p>Match &lt;p&gt; tags</p>", "|regex|html|", "3"],
        ["11", "Relative time again", "<p>repeated id</p>", "<c#>", "1"],
    ])  # fmt: skip
    write_csv(folder / "sede.csv.gz", ["id", "title", "body_html", "tags", "source"], [
        ["549", "Form-based authentication", "<blockquote><h4>Note:</h4><p>wiki</p></blockquote>",
         "forms http security", "x:QueryResults.csv"],
    ])  # fmt: skip
    data = convert(folder, tmp_path / "out")
    assert data.sites == ["sede", "stackoverflow"] and data.skipped_rows == {"stackoverflow.csv": 1}
    items = {r["item_id"]: r for r in check(data).to_pylist()}
    assert set(items) == {"sede-549", "stackoverflow-11", "stackoverflow-12"}
    assert items["stackoverflow-11"]["tags"] == ["c#", "datetime"]
    assert items["stackoverflow-11"]["content"] == "Given a DateTime value"
    assert items["stackoverflow-12"]["tags"] == ["regex", "html"]
    assert items["stackoverflow-12"]["content"] == "Match <p> tags"
    assert items["sede-549"]["content"] == "Note: wiki"
    assert items["sede-549"]["tags"] == ["forms", "http", "security"]


def test_plain_text_bodies_are_kept(tmp_path: Path) -> None:
    """The API-fetched shape: no id (rows numbered from 1), plain bodies whose code has '<...>'
    (left as is: only HTML files are stripped), tags comma-separated, a latin-1 file."""
    path = write_csv(tmp_path / "robotics.csv", ["title", "content", "tags"], [
        ["Launch file", 'My file:\r\n<launch>\r\n  <node pkg="joy"/>\r\n</launch>\r\nWhy?',
         "ros, launch"],
        ["Café robots", "Is a < b & c?", "kinematics,  python"],
    ], encoding="latin-1")  # fmt: skip
    items = check(convert(path, tmp_path / "out")).to_pylist()
    assert items[0] == {"item_id": "1", "title": "Launch file",
                        "content": 'My file: <launch> <node pkg="joy"/> </launch> Why?',
                        "tags": ["ros", "launch"], "site": ["robotics"]}
    assert items[1]["item_id"] == "2" and items[1]["title"] == "Café robots"
    assert items[1]["content"] == "Is a < b & c?" and items[1]["tags"] == ["kinematics", "python"]


def test_strip_html() -> None:
    out = strip_html(pa.array([
        "<p>one</p><p>two</p>", "a<b>b</b>c", "x &amp; y&nbsp;z", None, "plain   text\n",
        "<style>p {}</style>kept <img src='x'> <br/>done",
        "<pre><code>int a = b &lt; c;\n  x++;</code></pre>",
    ]))  # fmt: skip
    assert out.to_pylist() == ["one two", "abc", "x & y z", None, "plain text", "kept done",
                               "int a = b < c; x++;"]  # &nbsp; is whitespace too


def test_errors(tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    write_csv(folder / "posts.csv", ["id", "body"], [["1", "x"]])
    with pytest.raises(ValueError, match="no CSV with a title") as info:
        convert(folder, tmp_path / "out")
    assert "posts.csv: id, body" in str(info.value)
    assert not (tmp_path / "out").exists()
    broken = write_csv(tmp_path / "broken.csv", ["id", "title", "content", "tags", "score"],
                       [["1", "t", "c", "a b", "2"], ["2", "t", "c", "a"]])
    with pytest.raises(ValueError, match="broken.csv: .*Expected 5 columns, got 4"):
        convert(broken, tmp_path / "out")
    with pytest.raises(ValueError, match="does not exist"):
        convert(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .csv"):
        convert(tmp_path / "empty", tmp_path / "out")


_REAL = {
    "stackexchange-robotics-kaggle": (2_771, 231, 2.35),  # counts from the folders' READMEs
    "stackoverflow-sede-sample": (906, 1_342, 3.96),
}


@pytest.mark.parametrize("name", sorted(_REAL))
def test_real_samples(name: str, tmp_path: Path) -> None:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real Stack Exchange data not present at {folder} (licensed data, not in the repo)")
    questions, distinct, mean = _REAL[name]
    items = check(convert(folder, tmp_path / "out"))
    assert items.num_rows == questions
    tags = items.column("tags")
    assert len(pc.unique(pc.list_flatten(tags))) == distinct
    assert round(pc.mean(pc.list_value_length(tags)).as_py(), 2) == mean
    content = items.column("content")
    # No markup left, but code blocks quote HTML (escaped as &lt;p&gt;): a few bodies show some.
    assert pc.sum(pc.match_substring_regex(content, r"</?(p|pre|code|a)[ >]")).as_py() < questions / 100
    assert not pc.any(pc.match_substring(content, "&amp;")).as_py()
    assert pc.all(pc.not_equal(items.column("title"), "")).as_py()


def test_real_two_sites(tmp_path: Path) -> None:
    folder = SHARED_DATA / "stackexchange-2sites-sample"
    if not folder.is_dir():
        pytest.skip(f"real Stack Exchange data not present at {folder} (licensed data, not in the repo)")
    data = convert(folder, tmp_path / "out")
    items = check(data)
    assert data.sites == ["cooking", "robotics"] and items.num_rows == 4_000
    assert items.column("item_id").to_pylist()[:2] == ["cooking-1", "cooking-2"]
    assert items.slice(0, 1).column("tags").to_pylist() == [["baking", "crust", "pretzels"]]
    # Plain-text bodies keep the XML of the robotics posts' launch files.
    assert pc.any(pc.match_substring(items.column("content"), "<launch>")).as_py()
