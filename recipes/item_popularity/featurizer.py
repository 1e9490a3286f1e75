"""Interaction counts per item, fitted on the training interactions (the catalog also holds the
items table's items, with a count of zero)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for
from sdk.types import DatasetKind, Role, Schema

from .configuration import ItemPopularityConfig

__all__ = ["ItemPopularityFeaturizer"]


class ItemPopularityFeaturizer(Featurizer):
    """The item vocabulary and each item's training count (index 0: unknown, count 0)."""

    def __init__(self, items: Vocabulary, counts: np.ndarray) -> None:
        self.items = items
        self.counts = counts  # (len(items) + 1,)

    @property
    def item_ids(self) -> list[str]:
        return self.items.ids

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: ItemPopularityConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> ItemPopularityFeaturizer:
        inter = tables[DatasetKind.INTERACTIONS]
        item_col = column_for(schemas, DatasetKind.INTERACTIONS, Role.ITEM_ID)
        time_col = column_for(schemas, DatasetKind.INTERACTIONS, Role.TIMESTAMP)
        if config.recent_days is not None and time_col and inter.num_rows:
            stamps = inter.column(time_col).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            newest = pc.max(stamps).as_py()
            inter = inter.filter(pc.greater_equal(stamps, newest - int(config.recent_days * 86_400_000)))
        seen = inter.column(item_col)
        catalog = [seen]
        items_table = tables.get(DatasetKind.ITEMS)
        items_col = column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID)
        if items_table is not None and items_col:
            catalog.append(items_table.column(items_col))
        vocab = Vocabulary.fit(pa.chunked_array([c.cast(pa.string()) for c in catalog]), by_count=True)
        counts = np.bincount(vocab.encode(seen), minlength=vocab.size).astype(np.float64)
        counts[0] = 0.0
        return cls(vocab, counts)

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> None:
        return None  # nothing to train on: the counts are the model

    def save(self, directory: Path) -> None:
        (directory / "items.json").write_text(self.items.to_json())
        np.save(directory / "counts.npy", self.counts)

    @classmethod
    def load(cls, directory: Path) -> ItemPopularityFeaturizer:
        return cls(Vocabulary(json.loads((directory / "items.json").read_text())),
                   np.load(directory / "counts.npy"))
