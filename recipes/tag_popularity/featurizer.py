"""The tag vocabulary and each tag's training count (how many times it was applied or clicked)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for, flatten_tags
from sdk.types import DatasetKind, Role, Schema

from .configuration import TagPopularityConfig

__all__ = ["TagPopularityFeaturizer", "fit_tag_counts", "tags_column"]


def tags_column(tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
                recipe: str) -> pa.ChunkedArray:
    """The interactions' TAGS column; ValueError naming what is missing."""
    name = column_for(schemas, DatasetKind.INTERACTIONS, Role.TAGS)
    inter = tables.get(DatasetKind.INTERACTIONS)
    if inter is None or name is None or name not in inter.column_names:
        raise ValueError(f"recipe {recipe!r} needs an interactions dataset with a field of role TAGS")
    return inter.column(name)


def fit_tag_counts(tags: pa.ChunkedArray | pa.Array) -> tuple[Vocabulary, np.ndarray]:
    """The tags of a TAGS column by descending count (ties: first appearance), and (V + 1,) counts."""
    _, flat = flatten_tags(tags)
    vocab = Vocabulary.fit(flat, by_count=True)
    counts = np.bincount(vocab.encode(flat), minlength=vocab.size).astype(np.float64)
    counts[0] = 0.0
    return vocab, counts


class TagPopularityFeaturizer(Featurizer):
    """The tag vocabulary (most used first) and each tag's count (index 0: unknown, count 0)."""

    def __init__(self, tags: Vocabulary, counts: np.ndarray) -> None:
        self.tags = tags
        self.counts = counts  # (len(tags) + 1,)

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: TagPopularityConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> TagPopularityFeaturizer:
        return cls(*fit_tag_counts(tags_column(tables, schemas, "tag-popularity")))

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> None:
        return None  # nothing to train on: the counts are the model

    def save(self, directory: Path) -> None:
        (directory / "tags.json").write_text(self.tags.to_json())
        np.save(directory / "counts.npy", self.counts, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> TagPopularityFeaturizer:
        return cls(Vocabulary(json.loads((directory / "tags.json").read_text())),
                   np.load(directory / "counts.npy", allow_pickle=False))
