"""Shared recipe parts: vocabularies, tag lists, text fields."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recipes.common import UNKNOWN, Vocabulary, flatten_tags, tag_lists, text_fields, text_of
from sdk.types import Schema


def test_vocabulary_orders_encodes_and_round_trips() -> None:
    values = pa.array(["b", "a", "b", None, "c", "b", "a"])
    first = Vocabulary.fit(values)
    assert first.ids == ["b", "a", "c"] and first.size == 4
    by_count = Vocabulary.fit(["c", "a", "a", "b", "b"], by_count=True)
    assert by_count.ids == ["a", "b", "c"]  # ties keep first appearance
    assert Vocabulary.fit(values, min_count=2).ids == ["b", "a"]
    codes = first.encode(pa.array(["a", "zz", None, "c"]))
    assert codes.tolist() == [2, UNKNOWN, UNKNOWN, 3]
    assert codes.tolist() == first.indices(["a", "zz", None, "c"]).tolist()
    assert first.id(3) == "c" and first.id(0) is None and first.id(99) is None
    assert Vocabulary.from_json(first.to_json()) == first
    assert Vocabulary.fit(pa.array([], pa.string())).encode(pa.array(["x"])).tolist() == [0]


def test_tag_lists_and_flatten() -> None:
    lists = pa.array([["a", "b"], [], None, ["c"]], pa.list_(pa.string()))
    rows, tags = flatten_tags(lists)
    assert rows.tolist() == [0, 0, 3] and tags.to_pylist() == ["a", "b", "c"]
    assert tag_lists(pa.array(["x", None, "y"])).to_pylist() == [["x"], [], ["y"]]
    assert isinstance(rows, np.ndarray)


def test_text_fields() -> None:
    schema = Schema.model_validate({"fields": [
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "title", "type": "text"}, {"name": "tags", "type": "categorical", "role": "TAGS"},
        {"name": "content", "type": "text"}]})
    assert text_fields(schema) == ["title", "content"]
    assert text_of({"title": "PID tuning", "content": None}, ["title", "content"]) == "PID tuning"
