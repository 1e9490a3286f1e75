"""Posts → words and tags → co-occurrence counts (fitted on the training items; the counts are
the model).

A word is a maximal run of letters, digits, ``_``, ``+`` and ``#`` of a text, lower-cased (so
``c++`` and ``c#`` stay words; a run without a letter or digit is dropped); a post's words are
those of all its text fields (the items schema's ``text`` fields, e.g. title and content), each
counted once per post. Only tagged posts count. Fitted state:

* ``words`` / ``tags``: vocabularies, by number of posts (most first, ties in string order: the
  fit does not depend on row order); index 0 is unknown.
* ``word_posts[w]`` / ``tag_posts[t]``: posts holding word w / tag t; ``num_posts``.
* ``word_tag``: CSR by word of n(w, t), the posts holding word w and tagged t.
* ``tag_tag``: CSR by tag of n(s, t), the posts tagged both s and t.

Pure numpy/pyarrow: texts are tokenized and counts made in chunks, so memory grows with the
distinct (post, word) and (word, tag) pairs, not with the text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for, flatten_tags, text_fields
from sdk.types import DatasetKind, Role, Schema

from .configuration import TagCooccurrenceConfig

__all__ = ["CSR", "TagCooccurrenceFeaturizer", "cooccurrence", "words"]

_SEPARATORS = r"[^\pL\pN_+#]+"
_WORDLIKE = r"[\pL\pN]"
_PAIRS_PER_CHUNK = 1 << 21
_ROWS_PER_CHUNK = 10_000
_ARRAYS = ("word_posts", "tag_posts", "word_tag_indptr", "word_tag_tags", "word_tag_counts",
           "tag_tag_indptr", "tag_tag_tags", "tag_tag_counts")

CSR = tuple[np.ndarray, np.ndarray, np.ndarray]  # indptr (rows + 1,), columns, values


def words(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(row of each word, the words) of a string array (module docstring); nulls have none."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    lists = pc.split_pattern_regex(pc.utf8_lower(arr.cast(pa.string())), _SEPARATORS)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(lists)
    keep = pc.match_substring_regex(flat, _WORDLIKE)
    return rows[keep.to_numpy(zero_copy_only=False)].astype(np.int64), flat.filter(keep)


def _distinct(rows: np.ndarray, values: pa.Array) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Distinct (row, value) pairs sorted by row: (rows, value codes, the values by first appearance)."""
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    size = max(len(encoded.dictionary), 1)
    pairs = np.unique(rows * size + codes)
    return (pairs // size).astype(np.int32), (pairs % size).astype(np.int32), encoded.dictionary.to_pylist()


def _post_word_pairs(table: pa.Table, fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`_distinct` of the rows' words (`_post_words`), tokenized `_ROWS_PER_CHUNK` rows at a time
    (memory follows the distinct pairs, not the text's words)."""
    rows, codes, chunks = [], [], []
    for start in range(0, table.num_rows, _ROWS_PER_CHUNK):
        r, c, values = _distinct(*_post_words(table.slice(start, _ROWS_PER_CHUNK), fields))
        rows.append(r + np.int32(start))
        codes.append(c)
        chunks.append(values)
    if not chunks:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), []
    merged = pc.dictionary_encode(pa.array([v for values in chunks for v in values], pa.string()))
    glob = merged.indices.to_numpy(zero_copy_only=False).astype(np.int32)  # chunk code -> global code
    offsets = np.cumsum([0] + [len(v) for v in chunks])
    codes = [glob[offsets[i] + c] for i, c in enumerate(codes)]
    return np.concatenate(rows), np.concatenate(codes), merged.dictionary.to_pylist()


def _vocabulary(rows: np.ndarray, codes: np.ndarray, values: list[str], *, min_count: int,
                limit: int | None = None) -> tuple[Vocabulary, np.ndarray]:
    """The values in at least `min_count` rows, most rows first (ties: in string order, so the
    fit does not depend on row order), at most `limit`; and each code's index in it (0: dropped)."""
    counts = np.bincount(codes, minlength=len(values))
    rank = np.empty(len(values), np.int64)
    rank[sorted(range(len(values)), key=values.__getitem__)] = np.arange(len(values))
    order = np.lexsort((rank, -counts))
    order = order[counts[order] >= min_count][:limit]
    index = np.zeros(len(values), np.int32)
    index[order] = np.arange(1, len(order) + 1)
    return Vocabulary([values[i] for i in order]), index


def cooccurrence(a_rows: np.ndarray, a_ids: np.ndarray, b_rows: np.ndarray, b_ids: np.ndarray, *,
                 num_rows: int, num_a: int, num_b: int) -> CSR:
    """How many rows hold both a and b, for each pair seen: a CSR by a over ``num_a`` rows.

    `a_rows`/`a_ids` (and b's) list each row's distinct ids, sorted by row. The pairs are made a
    few million at a time, for ranges of a's ids (so each range's counts are final and the memory
    follows the distinct pairs, not all the pairs).
    """
    b_indptr = np.searchsorted(b_rows, np.arange(num_rows + 1))
    b_len = np.diff(b_indptr)
    load = np.cumsum(np.bincount(a_ids, weights=b_len[a_rows], minlength=num_a))  # pairs of ids <= i
    cuts = np.unique(np.searchsorted(load, np.arange(_PAIRS_PER_CHUNK, load[-1] + _PAIRS_PER_CHUNK,
                                                     _PAIRS_PER_CHUNK), side="right"))
    cols, counts, nnz = [], [], np.zeros(num_a, np.int64)
    for lo, hi in zip(np.concatenate([[0], cuts[:-1]]), cuts):
        sel = np.flatnonzero((a_ids >= lo) & (a_ids < hi))
        rows = a_rows[sel]
        reps = b_len[rows]
        starts = np.repeat(b_indptr[rows] - (np.cumsum(reps) - reps), reps)
        b = b_ids[starts + np.arange(int(reps.sum()))]
        found, n = np.unique(np.repeat(a_ids[sel].astype(np.int64), reps) * num_b + b, return_counts=True)
        nnz += np.bincount(found // num_b, minlength=num_a)
        cols.append((found % num_b).astype(np.int32))
        counts.append(n.astype(np.int32))
    indptr = np.concatenate([[0], np.cumsum(nnz)]).astype(np.int64)
    return (indptr, np.concatenate(cols) if cols else np.zeros(0, np.int32),
            np.concatenate(counts) if counts else np.zeros(0, np.int32))


class TagCooccurrenceFeaturizer(Featurizer):
    """Vocabularies and co-occurrence counts of the training posts (module docstring)."""

    def __init__(self, words_: Vocabulary, tags: Vocabulary, num_posts: int, fields: list[str],
                 arrays: Mapping[str, np.ndarray]) -> None:
        self.words, self.tags, self.num_posts, self.text_fields = words_, tags, num_posts, fields
        self.word_posts, self.tag_posts = arrays["word_posts"], arrays["tag_posts"]
        self.word_tag: CSR = (arrays["word_tag_indptr"], arrays["word_tag_tags"], arrays["word_tag_counts"])
        self.tag_tag: CSR = (arrays["tag_tag_indptr"], arrays["tag_tag_tags"], arrays["tag_tag_counts"])

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: TagCooccurrenceConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> TagCooccurrenceFeaturizer:
        items, schema = tables.get(DatasetKind.ITEMS), schemas.get(DatasetKind.ITEMS)
        tag_col = column_for(schemas, DatasetKind.ITEMS, Role.TAGS)
        if items is None or schema is None or tag_col is None:
            raise ValueError("tag-cooccurrence needs an items dataset with a TAGS field")
        fields = text_fields(schema)
        t_rows, t_codes, t_values = _distinct(*flatten_tags(items.column(tag_col)))
        tags, tag_index = _vocabulary(t_rows, t_codes, t_values, min_count=config.min_tag_count)
        t_ids = tag_index[t_codes]
        t_rows, t_ids = t_rows[t_ids > 0], t_ids[t_ids > 0]
        posts = np.unique(t_rows)  # tagged posts, renumbered 0..N-1
        t_rows = np.searchsorted(posts, t_rows).astype(np.int32)
        post_of_row = np.full(items.num_rows, -1, np.int32)
        post_of_row[posts] = np.arange(len(posts))
        w_rows, w_codes, w_values = _post_word_pairs(items, fields)
        w_rows = post_of_row[w_rows]
        w_codes = w_codes[w_rows >= 0]
        w_rows = w_rows[w_rows >= 0]
        pa.default_memory_pool().release_unused()  # the tokenizer's buffers, before counting
        vocab, word_index = _vocabulary(w_rows, w_codes, w_values, min_count=config.min_word_count,
                                        limit=config.max_words)
        w_ids = word_index[w_codes]
        del w_codes
        w_rows, w_ids = w_rows[w_ids > 0], w_ids[w_ids > 0]
        n = len(posts)
        arrays = {"word_posts": np.bincount(w_ids, minlength=vocab.size).astype(np.int64),
                  "tag_posts": np.bincount(t_ids, minlength=tags.size).astype(np.int64)}
        pairs = {"word_tag": (w_rows, w_ids, vocab.size), "tag_tag": (t_rows, t_ids, tags.size)}
        for name, (rows, ids, size) in pairs.items():
            csr = cooccurrence(rows, ids, t_rows, t_ids, num_rows=n, num_a=size, num_b=tags.size)
            arrays.update(zip((f"{name}_indptr", f"{name}_tags", f"{name}_counts"), csr))
        return cls(vocab, tags, n, fields, arrays)

    def word_indices(self, texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Each case's distinct known words (sorted vocabulary indices) from its texts (one
        tokenizer call for all the cases: a query batch)."""
        owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
        rows, found = words(pa.array([t for case in texts for t in case], pa.string()))
        idx = self.words.indices(found.to_pylist())
        keep = idx > 0
        pairs = np.unique(owner[rows[keep]] * self.words.size + idx[keep])
        cuts = np.searchsorted(pairs // self.words.size, np.arange(len(texts) + 1))
        return [pairs[cuts[i]:cuts[i + 1]] % self.words.size for i in range(len(texts))]

    def post_words(self, table: pa.Table, fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's distinct known words from its `fields`: (indptr (rows + 1,), word indices)."""
        size, parts = self.words.size, []
        for start in range(0, table.num_rows, _ROWS_PER_CHUNK):
            rows, found = _post_words(table.slice(start, _ROWS_PER_CHUNK), fields)
            idx = self.words.encode(found) if len(found) else np.zeros(0, np.int64)
            parts.append(np.unique((rows[idx > 0] + start) * size + idx[idx > 0]))
        pairs = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        indptr = np.searchsorted(pairs // size, np.arange(table.num_rows + 1))
        return indptr.astype(np.int64), (pairs % size).astype(np.int32)

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> None:
        return None  # nothing to train on: the counts are the model

    def save(self, directory: Path) -> None:
        (directory / "words.json").write_text(self.words.to_json())
        (directory / "tags.json").write_text(self.tags.to_json())
        (directory / "state.json").write_text(json.dumps({"num_posts": self.num_posts,
                                                          "text_fields": self.text_fields}))
        for name, arr in self._arrays().items():
            np.save(directory / f"{name}.npy", arr)

    @classmethod
    def load(cls, directory: Path) -> TagCooccurrenceFeaturizer:
        directory = Path(directory)
        state = json.loads((directory / "state.json").read_text())
        return cls(Vocabulary.from_json((directory / "words.json").read_text()),
                   Vocabulary.from_json((directory / "tags.json").read_text()), int(state["num_posts"]),
                   list(state["text_fields"]), {n: np.load(directory / f"{n}.npy") for n in _ARRAYS})

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(_ARRAYS, (self.word_posts, self.tag_posts, *self.word_tag, *self.tag_tag)))


def _post_words(table: pa.Table, fields: Sequence[str]) -> tuple[np.ndarray, pa.Array]:
    """(row, word) of every word of the rows' text fields (repeats kept)."""
    parts = [words(table.column(f)) for f in fields if f in table.column_names]
    if not parts:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    return np.concatenate([r for r, _ in parts]), pa.concat_arrays([w for _, w in parts])
