"""Answer generate-tags queries with the tags co-occurring most with the post's words and its
chosen tags (pure torch/numpy; no Ray, no store).

A query's words are those of its `text`, its `fields` values and, when `item_id` names an item
whose text was stored by `update_catalog` (a campaign calls it at load with the items table), that
item's text fields; each word counts once. The answer is the `num_results` best tags by
`modeling`'s score, ties by popularity (then by tag), chosen and excluded tags left out. It is flagged
`fallback` when nothing in the query is known (no known word, no known chosen tag): the tags are
then the most popular ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from recipes.base import ARTIFACT_FILES, Answer, Predictor, Query
from recipes.common import column_for, text_fields
from sdk.types import DatasetKind, Role, Schema

from .configuration import TagCooccurrenceConfig
from .featurizer import TagCooccurrenceFeaturizer
from .modeling import TagCooccurrenceModel

__all__ = ["TagCooccurrencePredictor"]


class TagCooccurrencePredictor(Predictor):
    """A loaded tag-cooccurrence model answering tag-set queries (module docstring)."""

    def __init__(self, config: TagCooccurrenceConfig, featurizer: TagCooccurrenceFeaturizer,
                 model: TagCooccurrenceModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model.eval()
        self._tag_ids = np.array([""] + featurizer.tags.ids, dtype=object)
        self._items: dict[str, int] = {}  # stored item id -> its row in _item_words
        self._item_words: tuple[np.ndarray, np.ndarray] = (np.zeros(1, np.int64), np.zeros(0, np.int64))

    @classmethod
    def load(cls, directory: Path) -> TagCooccurrencePredictor:
        directory = Path(directory)
        meta = json.loads((directory / ARTIFACT_FILES["recipe"]).read_text())
        if meta.get("recipe") != "tag-cooccurrence":
            raise ValueError(f"{directory} holds a {meta.get('recipe')!r} model, not tag-cooccurrence")
        config = TagCooccurrenceConfig.model_validate_json((directory / ARTIFACT_FILES["config"]).read_text())
        featurizer = TagCooccurrenceFeaturizer.load(directory / ARTIFACT_FILES["featurizer"])
        model = TagCooccurrenceModel.from_featurizer(config, featurizer)
        model.load_state_dict(torch.load(directory / ARTIFACT_FILES["weights"], weights_only=True))
        return cls(config, featurizer, model)

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        texts = [[t for t in (q.text, *q.fields.values()) if isinstance(t, str) and t] for q in queries]
        return [self._answer(q, found) for q, found in zip(queries, self.featurizer.word_indices(texts))]

    def _answer(self, q: Query, found: np.ndarray) -> Answer:
        tags = self.featurizer.tags
        row = self._items.get(q.item_id) if q.item_id is not None else None
        if row is not None:
            indptr, stored = self._item_words
            found = np.union1d(found, stored[indptr[row]:indptr[row + 1]])
        chosen = np.unique(tags.indices(q.chosen))
        chosen = chosen[chosen > 0]
        scores = self.model(found, chosen)
        if q.candidates is not None:
            allowed = scores
            scores = np.full_like(allowed, -np.inf)
            keep = tags.indices(q.candidates)
            scores[keep] = allowed[keep]
        scores[tags.indices([*q.exclude, *q.chosen])] = -np.inf
        scores[0] = -np.inf
        best = _top(scores, int(q.num_results))
        return Answer([(str(self._tag_ids[j]), float(scores[j])) for j in best],
                      fallback=not len(found) and not len(chosen))

    def update_catalog(self, tables: Mapping[DatasetKind, pa.Table],
                       schemas: Mapping[DatasetKind, Schema]) -> int:
        """Keep the items' text (their known words), so a query naming an `item_id` is answered
        from it; returns how many items are stored."""
        items, schema = tables.get(DatasetKind.ITEMS), schemas.get(DatasetKind.ITEMS)
        id_col = column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID)
        if items is None or schema is None or id_col is None:
            return 0
        self._item_words = self.featurizer.post_words(items, text_fields(schema))
        ids = items.column(id_col).cast(pa.string()).to_pylist()
        self._items = {i: r for r, i in enumerate(ids) if i is not None}
        return len(self._items)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores, best first; ties by index (the more popular tag)."""
    valid = np.flatnonzero(np.isfinite(scores))
    if k < 1:
        return valid[:0]
    if len(valid) > k:
        kth = np.partition(scores[valid], len(valid) - k)[len(valid) - k]
        valid = valid[scores[valid] >= kth]
    return valid[np.argsort(-scores[valid], kind="stable")][:k]
