"""Answer next-item queries with the most popular training items (ties: catalog order)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recipes.base import Answer, Predictor, Query

from .configuration import ItemPopularityConfig
from .featurizer import ItemPopularityFeaturizer
from .modeling import ItemPopularityModel

__all__ = ["ItemPopularityPredictor"]


class ItemPopularityPredictor(Predictor):
    """The same ranking for everyone, minus each query's exclusions; `fallback` marks a query
    without history (an unknown user), as for every next-item recipe."""

    def __init__(self, config: ItemPopularityConfig, featurizer: ItemPopularityFeaturizer,
                 model: ItemPopularityModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model
        counts = model.counts.numpy()
        self._order = np.argsort(-counts[1:], kind="stable") + 1  # best first, unknown left out
        self._counts = counts
        self._ids = np.array([""] + featurizer.items.ids, dtype=object)
        total = float(counts.sum()) + config.smoothing * len(featurizer.items)
        self._log_norm = math.log(total) if total > 0 else 0.0

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [self._answer(q) for q in queries]

    def _answer(self, q: Query) -> Answer:
        items = self.featurizer.items
        if q.candidates is not None:
            idx = np.array([i for i in dict.fromkeys(items.indices(q.candidates).tolist()) if i], np.int64)
            order = idx[np.argsort(-self._counts[idx], kind="stable")] if len(idx) else idx
        else:
            order = self._order
        if q.exclude:
            drop = items.indices(q.exclude)
            order = order[~np.isin(order, drop)]
        best = order[:int(q.num_results)]
        return Answer([(str(self._ids[j]), float(self._counts[j])) for j in best], fallback=not q.history)

    def target_log_probs(self, histories: Sequence[Any], targets: Sequence[Sequence[str]],
                         **_: Any) -> np.ndarray:
        """Natural log of each target's smoothed popularity (for perplexity)."""
        out = [math.log(self._counts[self.featurizer.items.index(t)] + self.config.smoothing) - self._log_norm
               if self.config.smoothing > 0 or self._counts[self.featurizer.items.index(t)] > 0 else -math.inf
               for ts in targets for t in ts]
        return np.array(out, dtype=np.float64)
