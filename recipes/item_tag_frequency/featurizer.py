"""Per item, how many times each tag was applied to it in training; the tag vocabulary and each
tag's count overall (`recipes.tag_popularity.featurizer.fit_tag_counts`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for, flatten_tags
from recipes.tag_popularity.featurizer import fit_tag_counts, tags_column
from sdk.types import DatasetKind, Role, Schema

from .configuration import ItemTagFrequencyConfig

__all__ = ["ItemTagFrequencyFeaturizer"]

_ARRAYS = ("counts", "indptr", "pair_tags", "pair_counts")


class ItemTagFrequencyFeaturizer(Featurizer):
    """Tags (most used first) with their counts, and items with their tag counts as CSR rows.

    Attributes:
        tags: The tag vocabulary; ``counts`` (V + 1,) each tag's training count (0: unknown).
        items: The items with at least one tag in training.
        indptr: (I + 2,) item index i's tags are ``pair_tags[indptr[i]:indptr[i + 1]]`` (tag
            indices, most applied to the item first, ties by overall count), applied
            ``pair_counts[...]`` times; index 0 (unknown item) has none.
    """

    def __init__(self, tags: Vocabulary, items: Vocabulary, arrays: Mapping[str, np.ndarray]) -> None:
        self.tags, self.items = tags, items
        self.counts = arrays["counts"]
        self.indptr = arrays["indptr"]
        self.pair_tags = arrays["pair_tags"]
        self.pair_counts = arrays["pair_counts"]

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: ItemTagFrequencyConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> ItemTagFrequencyFeaturizer:
        column = tags_column(tables, schemas, "item-tag-frequency")
        item_col = column_for(schemas, DatasetKind.INTERACTIONS, Role.ITEM_ID)
        inter = tables[DatasetKind.INTERACTIONS]
        if item_col is None or item_col not in inter.column_names:
            raise ValueError("recipe 'item-tag-frequency' needs an interactions dataset with a field of "
                             "role ITEM_ID")
        tags, counts = fit_tag_counts(column)
        rows, flat = flatten_tags(column)
        owners = inter.column(item_col).cast(pa.string()).take(pa.array(rows, pa.int64()))
        items = Vocabulary.fit(owners)
        item_idx, tag_idx = items.encode(owners), tags.encode(flat)
        keep = (item_idx > 0) & (tag_idx > 0)
        width = tags.size
        pairs, n = np.unique(item_idx[keep] * width + tag_idx[keep], return_counts=True)
        p_item, p_tag = pairs // width, pairs % width
        order = np.lexsort((p_tag, -n, p_item))  # by item, then count (desc), then overall count
        indptr = np.concatenate(([0], np.cumsum(np.bincount(p_item, minlength=items.size)))).astype(np.int64)
        return cls(tags, items, {"counts": counts, "indptr": indptr,
                                 "pair_tags": p_tag[order].astype(np.int64),
                                 "pair_counts": n[order].astype(np.float64)})

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> None:
        return None  # nothing to train on: the counts are the model

    def save(self, directory: Path) -> None:
        (directory / "tags.json").write_text(self.tags.to_json())
        (directory / "items.json").write_text(self.items.to_json())
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> ItemTagFrequencyFeaturizer:
        return cls(Vocabulary(json.loads((directory / "tags.json").read_text())),
                   Vocabulary(json.loads((directory / "items.json").read_text())),
                   {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS})

