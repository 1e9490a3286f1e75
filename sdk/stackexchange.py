"""Convert Stack Exchange question CSVs (title, body, tags) into a tagrec items dataset.

The reference shape is Kaggle's "Transfer Learning on Stack Exchange Tags" (2016): one CSV per
site, ``id,title,content,tags``, the content HTML and the tags space-separated. Exports of the
Stack Exchange data dump or the Data Explorer are read too: the body may be named ``body`` or
``body_html``, the id may be missing (rows are then numbered from 1), and tags may be written
``a b``, ``a, b``, ``<a><b>`` or ``|a|b|``. Files may be gzip-compressed, values may hold quoted
newlines, and a file that is not valid UTF-8 is read as latin-1.

Example:
    >>> data = convert("stackexchange-robotics-kaggle", "out")  # doctest: +SKIP
    >>> data.sites  # doctest: +SKIP
    ['robotics']
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField

__all__ = ["StackExchangeData", "convert", "strip_html"]

# Accepted header names (case-insensitive), in order of preference.
_COLUMNS = {
    "id": ("id", "question_id", "questionid", "post_id", "postid"),
    "title": ("title",),
    "content": ("content", "body", "body_html", "bodyhtml"),
    "tags": ("tags",),
}
# Elements whose text runs into its neighbours' (no word break at their edges).
_INLINE = frozenset({"a", "abbr", "b", "bdi", "cite", "code", "del", "em", "i", "ins", "kbd", "mark",
                     "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "tt", "u",
                     "var"})
_SKIPPED = frozenset({"script", "style"})
# A body is HTML when it holds one of these tags; a file is HTML when half its bodies are.
_HTML_PATTERN = r"(?i)<(p|br|div|pre|code|ul|ol|li|h[1-6]|blockquote|hr|img|a)[\s/>]"
_TAG_SEPARATORS = r"[<>|,;\s]+"  # Stack Exchange tags are [a-z0-9+#.-]: never any of these


@dataclass
class StackExchangeData:
    """What :func:`convert` wrote.

    Attributes:
        items: Path of ``items.parquet``: one row per question.
        schemas: The schema of the written dataset (items only).
        num_rows: Rows written per dataset.
        sites: The sites read, one per file, named after the file.
        ignored_files: Files of the folder that are not question CSVs (no title/body/tags header).
        skipped_rows: Questions left out per file: a repeated id (the first row is kept).
    """

    items: Path
    schemas: dict[DatasetKind, Schema]
    num_rows: dict[DatasetKind, int] = field(default_factory=dict)
    sites: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    skipped_rows: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> dict[DatasetKind, Path]:
        """The written Parquet files keyed by dataset kind."""
        return {DatasetKind.ITEMS: self.items}


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements break words, code is kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag not in _INLINE:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag not in _INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self, fragment: str) -> str:
        self.reset()
        self.parts, self._skip = [], 0
        self.feed(fragment)
        self.close()
        return "".join(self.parts)


def _collapse(text: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"[\s\pZ]+", " "))  # \pZ: nbsp...


def strip_html(fragments: pa.Array) -> pa.Array:
    """HTML fragments to plain text (stdlib ``html.parser``).

    Tags are removed (a block element's edges become spaces, inline ones such as ``<code>`` or
    ``<a>`` do not), entities are unescaped, ``<script>``/``<style>`` contents dropped, code
    blocks kept as text and whitespace collapsed to single spaces.

    Args:
        fragments: A string array; nulls stay null.

    Returns:
        The plain text of each fragment.
    """
    fragments = fragments.combine_chunks() if isinstance(fragments, pa.ChunkedArray) else fragments
    marked = pc.fill_null(pc.match_substring_regex(fragments, r"[<&]"), False).to_numpy(zero_copy_only=False)
    if marked.any():
        rows = np.flatnonzero(marked)
        parser = _TextExtractor()
        stripped = pa.array([parser.text(s) for s in fragments.take(pa.array(rows)).to_pylist()],
                            pa.string())
        values = np.asarray(fragments.to_pylist(), dtype=object)
        values[rows] = stripped.to_numpy(zero_copy_only=False)
        fragments = pa.array(values, pa.string(), mask=np.asarray(fragments.is_null()))
    return _collapse(fragments)


def _tag_lists(cells: pa.Array) -> pa.Array:
    """Tag cells in any of the notations to lists of tags (no empty tag)."""
    parts = pc.split_pattern(pc.utf8_trim_whitespace(
        pc.replace_substring_regex(pc.fill_null(cells, ""), _TAG_SEPARATORS, " ")), " ")
    values = pc.list_flatten(parts)
    keep = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(parts).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents[keep], minlength=len(parts)))])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values.filter(pa.array(keep)))


def _site(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _sources(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} does not exist; expected a Stack Exchange CSV file or a "
                         "folder of them")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise ValueError(f"{str(path)!r} holds no .csv or .csv.gz file; expected one CSV per "
                         "Stack Exchange site with header id,title,content,tags")
    return files


def _read(path: Path) -> tuple[pa.Table, dict[str, str]] | list[str]:
    """The file's table and the header name of each wanted column, or its header when it lacks
    one of them."""
    with pa.input_stream(path, compression="detect") as stream:
        raw = stream.read()
    try:
        raw.decode("utf-8")
        encoding = "utf8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    first_line = raw[: raw.find(b"\n") if b"\n" in raw else len(raw)].decode(
        "utf-8-sig" if encoding == "utf8" else encoding)
    header = next(csv.reader([first_line]), [])
    lower = {n.strip().lower(): n for n in header}
    found = {}
    for want, spellings in _COLUMNS.items():
        name = next((lower[s] for s in spellings if s in lower), None)
        if name is not None:
            found[want] = name
    if not {"title", "content", "tags"} <= set(found):
        return header
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in found.values()},
                include_columns=list(found.values()), strings_can_be_null=False),
        )
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path.name}: {e}") from None
    return table, found


def _questions(table: pa.Table, found: dict[str, str]) -> pa.Table:
    content = table.column(found["content"]).combine_chunks()
    html_file = found["content"].lower() in ("body_html", "bodyhtml")
    if not html_file and len(content):
        filled = pc.not_equal(content, "")
        marked = pc.and_(filled, pc.match_substring_regex(content, _HTML_PATTERN))
        html_file = 2 * pc.sum(marked).as_py() >= max(1, pc.sum(filled).as_py())
    title = table.column(found["title"]).combine_chunks()
    if html_file:
        content = strip_html(content)
        escaped = pc.match_substring_regex(title, r"&(#\d+|#x[0-9a-fA-F]+|\w+);")
        if pc.any(escaped).as_py():
            title = pa.array([html.unescape(t) for t in title.to_pylist()], pa.string())
    else:
        content = _collapse(content)
    if "id" in found:
        ids = pc.utf8_trim_whitespace(table.column(found["id"]).combine_chunks())
    else:
        ids = pa.array(np.arange(1, table.num_rows + 1).astype(str), pa.string())
    return pa.table({"id": ids, "title": _collapse(title), "content": content,
                     "tags": _tag_lists(table.column(found["tags"]).combine_chunks())})


def convert(path: str | Path, out_dir: str | Path) -> StackExchangeData:
    """Convert one Stack Exchange CSV, or a folder with one CSV per site, into ``items.parquet``.

    Each question becomes an item: item_id (the question id; ``{site}-{id}`` when several sites
    are read), title and content as text (HTML stripped, see :func:`strip_html`, when the body
    is HTML: a ``body_html`` column, or half the bodies holding HTML tags; whitespace collapsed
    either way), tags (role TAGS) and site (the file name without ``.csv``/``.gz``). A folder's
    files without a title, body and tags column (e.g. Kaggle's ``sample_submission.csv``, or an
    unlabelled ``test.csv``) are ignored and listed.

    Args:
        path: A ``.csv``/``.csv.gz`` file or a folder of them.
        out_dir: Output folder, created if missing; existing files are overwritten.

    Returns:
        The written path, its schema, row count, sites, ignored files and skipped rows.

    Raises:
        ValueError: If `path` is missing, or no file has title, body and tags columns (the
            columns found and the ones expected are named), or a file is not CSV.
    """
    read: list[tuple[Path, str, pa.Table]] = []
    ignored: dict[str, list[str]] = {}
    for source in _sources(Path(path)):
        got = _read(source)
        if isinstance(got, list):
            ignored[source.name] = got
        else:
            read.append((source, _site(source), _questions(*got)))
    if not read:
        headers = "; ".join(f"{name}: {', '.join(h) or 'no header'}" for name, h in ignored.items())
        raise ValueError(f"{str(path)!r}: no CSV with a title, a body (content, body or body_html) "
                         f"and a tags column; found {headers}")
    sites = [site for _, site, _ in read]
    if len(set(sites)) != len(sites):
        raise ValueError(f"{str(path)!r}: two files name the same site: {sorted(sites)}")
    several = len(read) > 1
    skipped: dict[str, int] = {}
    parts = []
    for source, source_site, table in read:
        ids = table.column("id").combine_chunks()
        first = pc.index_in(ids, value_set=ids).to_numpy() == np.arange(len(ids))
        if not first.all():
            skipped[source.name] = int((~first).sum())
            table = table.filter(pa.array(first))
        n = table.num_rows
        item_id = table.column("id")
        if several:
            item_id = pc.binary_join_element_wise(pa.repeat(pa.scalar(source_site), n), item_id, "-")
        site = pa.ListArray.from_arrays(pa.array(np.arange(n + 1), pa.int32()),
                                        pa.repeat(pa.scalar(source_site), n))
        parts.append(pa.table({"item_id": item_id, "title": table.column("title"),
                               "content": table.column("content"), "tags": table.column("tags"),
                               "site": site}))
    items = pa.concat_tables(parts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(items, out / "items.parquet")
    return StackExchangeData(
        items=out / "items.parquet",
        schemas={DatasetKind.ITEMS: Schema(fields=[
            SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
            SchemaField(name="title", type=FieldType.TEXT, nullable=False),
            SchemaField(name="content", type=FieldType.TEXT, nullable=False),
            SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=False),
            SchemaField(name="site", type=FieldType.CATEGORICAL, nullable=False),
        ])},  # fmt: skip
        num_rows={DatasetKind.ITEMS: items.num_rows},
        sites=sites,
        ignored_files=list(ignored),
        skipped_rows=skipped,
    )
