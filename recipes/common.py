"""Parts every recipe needs: vocabularies of ids and tags, the columns a schema's roles name,
tag lists and text fields read from Arrow tables. Pure numpy/pyarrow (no torch).

A recipe's featurizer fits its vocabularies on the training tables only and saves them with
`Vocabulary.to_json` (they are part of the artifact); ids never seen get index 0 (`UNKNOWN`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sdk.types import DatasetKind, FieldType, Role, Schema

__all__ = ["UNKNOWN", "Vocabulary", "column_for", "flatten_tags", "tag_lists", "text_fields", "text_of"]

UNKNOWN = 0  # the index of any id a vocabulary has not seen


class Vocabulary:
    """Ids (items, tags, users, ...) ↔ dense indices 1..n; 0 is `UNKNOWN`.

    Ordered by first appearance in the values it was fitted on (deterministic), or by
    descending count with `by_count` (ties by first appearance).
    """

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids: list[str] = list(ids)
        self._index = {t: i + 1 for i, t in enumerate(self.ids)}

    @classmethod
    def fit(cls, values: Iterable[str | None] | pa.Array | pa.ChunkedArray, *, by_count: bool = False,
            min_count: int = 1) -> Vocabulary:
        """From values (nulls skipped); `min_count` drops rarer ones."""
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array(list(values), pa.string())
        arr = pc.drop_null(values.cast(pa.string()))
        if len(arr) == 0:
            return cls([])
        counts = pc.value_counts(arr)  # in order of first appearance
        ids = counts.field("values").to_pylist()
        n = counts.field("counts").to_numpy()
        keep = n >= min_count
        order = np.argsort(-n, kind="stable") if by_count else np.arange(len(ids))
        return cls([ids[i] for i in order if keep[i]])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size(self) -> int:
        """Rows an embedding over it needs (the ids plus `UNKNOWN`)."""
        return len(self.ids) + 1

    def index(self, value: str | None) -> int:
        return self._index.get(value, UNKNOWN) if value is not None else UNKNOWN

    def indices(self, values: Iterable[str | None]) -> np.ndarray:
        return np.fromiter((self.index(v) for v in values), dtype=np.int64)

    def encode(self, arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Indices of an Arrow string array, vectorized (nulls and unseen → `UNKNOWN`)."""
        if not self.ids:
            return np.zeros(len(arr), np.int64)
        found = pc.index_in(arr.cast(pa.string()), value_set=pa.array(self.ids, pa.string()))
        return pc.fill_null(pc.add(found, 1), UNKNOWN).to_numpy(zero_copy_only=False).astype(np.int64)

    def id(self, index: int) -> str | None:
        return self.ids[index - 1] if 1 <= index <= len(self.ids) else None

    def to_json(self) -> str:
        return json.dumps(self.ids)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.ids == other.ids


def column_for(schemas: Mapping[DatasetKind, Schema], kind: DatasetKind, role: Role) -> str | None:
    """The column name of `role` in the `kind` dataset's schema (None if it has none)."""
    schema = schemas.get(kind)
    field = schema.field_for(role) if schema is not None else None
    return field.name if field is not None else None


def tag_lists(column: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """A TAGS column as a list<string> array (a plain string column becomes one-tag lists)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return arr.cast(pa.list_(pa.string()))
    strings = arr.cast(pa.string())
    offsets = np.concatenate(([0], np.cumsum(strings.is_valid().to_numpy(zero_copy_only=False))))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pc.drop_null(strings))


def flatten_tags(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(row of each tag, the tags) of a TAGS column: rows repeat once per tag they carry."""
    lists = tag_lists(column)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return rows.astype(np.int64), pc.list_flatten(lists)


def text_fields(schema: Schema, exclude: Iterable[str] = ()) -> list[str]:
    """The schema's `text`-typed columns, in schema order (e.g. title, content)."""
    skip = set(exclude)
    return [f.name for f in schema.fields if f.type == FieldType.TEXT and f.name not in skip]


def text_of(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The row's text fields joined by newlines (missing ones skipped)."""
    return "\n".join(str(row[f]) for f in fields if row.get(f))
