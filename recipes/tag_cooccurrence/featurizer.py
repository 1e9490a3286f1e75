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

Pure numpy/pyarrow: counts are built in chunks of pairs (memory grows with the distinct pairs,
not with the pairs).
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
_PAIRS_PER_CHUNK = 1 << 22
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
    return pairs // size, pairs % size, encoded.dictionary.to_pylist()


def _vocabulary(rows: np.ndarray, codes: np.ndarray, values: list[str], *, min_count: int,
                limit: int | None = None) -> tuple[Vocabulary, np.ndarray]:
    """The values in at least `min_count` rows, most rows first (ties: in string order, so the
    fit does not depend on row order), at most `limit`; and each code's index in it (0: dropped)."""
    counts = np.bincount(codes, minlength=len(values))
    rank = np.empty(len(values), np.int64)
    rank[sorted(range(len(values)), key=values.__getitem__)] = np.arange(len(values))
    order = np.lexsort((rank, -counts))
    order = order[counts[order] >= min_count][:limit]
    index = np.zeros(len(values), np.int64)
    index[order] = np.arange(1, len(order) + 1)
    return Vocabulary([values[i] for i in order]), index


def _merge(codes: np.ndarray, counts: np.ndarray, more: np.ndarray, more_counts: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    if not len(codes):
        return more, more_counts
    merged, inverse = np.unique(np.concatenate([codes, more]), return_inverse=True)
    return merged, np.bincount(inverse, weights=np.concatenate([counts, more_counts])).astype(np.int64)


def cooccurrence(a_rows: np.ndarray, a_ids: np.ndarray, b_rows: np.ndarray, b_ids: np.ndarray, *,
                 num_rows: int, num_a: int, num_b: int) -> CSR:
    """How many rows hold both a and b, for each pair seen: a CSR by a over ``num_a`` rows.

    `a_rows`/`a_ids` (and b's) list each row's distinct ids, sorted by row.
    """
    b_indptr = np.searchsorted(b_rows, np.arange(num_rows + 1))
    per = b_indptr[a_rows + 1] - b_indptr[a_rows]  # pairs each a entry makes
    ends = np.cumsum(per)
    codes, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = 0
    while lo < len(a_rows):
        hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - per[lo] + _PAIRS_PER_CHUNK, side="right")))
        reps = per[lo:hi]
        starts = np.repeat(b_indptr[a_rows[lo:hi]] - (np.cumsum(reps) - reps), reps)
        pairs = np.repeat(a_ids[lo:hi], reps) * num_b + b_ids[starts + np.arange(int(reps.sum()))]
        codes, counts = _merge(codes, counts, *np.unique(pairs, return_counts=True))
        lo = hi
    indptr = np.searchsorted(codes // num_b, np.arange(num_a + 1))
    return indptr.astype(np.int64), (codes % num_b).astype(np.int32), counts.astype(np.int32)


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
        t_rows = np.searchsorted(posts, t_rows)
        kept = items.select(fields).take(pa.array(posts, pa.int64()))
        w_rows, w_codes, w_values = _distinct(*_post_words(kept, fields))
        vocab, word_index = _vocabulary(w_rows, w_codes, w_values, min_count=config.min_word_count,
                                        limit=config.max_words)
        w_ids = word_index[w_codes]
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
        rows, found = _post_words(table, fields)
        idx = self.words.encode(found) if len(found) else np.zeros(0, np.int64)
        pairs = np.unique(rows[idx > 0] * self.words.size + idx[idx > 0])
        indptr = np.searchsorted(pairs // self.words.size, np.arange(table.num_rows + 1))
        return indptr.astype(np.int64), (pairs % self.words.size).astype(np.int64)

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
