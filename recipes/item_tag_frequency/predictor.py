"""Answer item-tags queries: the item's most applied tags (only the candidates, when a request gives
them), ties by overall count; an unknown item gets the most used tags overall.

Scores: ``times applied to the item + the tag's share of all training uses`` (below 1), so the
order of the scores is the order of the answer; a candidate nobody used scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from recipes.base import Answer, Predictor, Query

from .configuration import ItemTagFrequencyConfig
from .featurizer import ItemTagFrequencyFeaturizer
from .modeling import ItemTagFrequencyModel

__all__ = ["ItemTagFrequencyPredictor"]


class ItemTagFrequencyPredictor(Predictor):
    """The same tags of an item for everyone. `fallback` marks what the task's fallback answers:
    an unknown item (the most used tags overall) or a user without history (the item's most
    applied tags, which this baseline answers to everyone)."""

    def __init__(self, config: ItemTagFrequencyConfig, featurizer: ItemTagFrequencyFeaturizer,
                 model: ItemTagFrequencyModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model
        self.max_history = config.max_history  # what a campaign keeps per user
        self._counts = model.counts.numpy()
        self._total = float(self._counts.sum()) or 1.0
        self._indptr = model.indptr.numpy()
        self._pair_tags = model.pair_tags.numpy()
        self._pair_counts = model.pair_counts.numpy()

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [self._answer(q) for q in queries]

    def item_tags(self, item_id: str | None) -> dict[int, float]:
        """Tag index → times applied to the item in training, most applied first (empty: unknown)."""
        i = self.featurizer.items.index(item_id)
        lo, hi = self._indptr[i], self._indptr[i + 1]
        return dict(zip(self._pair_tags[lo:hi].tolist(), self._pair_counts[lo:hi].tolist()))

    def _answer(self, q: Query) -> Answer:
        tags = self.featurizer.tags
        applied = self.item_tags(q.item_id)
        own = [t for t, c in applied.items() if c >= self.config.min_count]
        exclude = set(q.exclude)
        n = int(q.num_results)

        def score(i: int) -> float:
            return applied.get(i, 0.0) + float(self._counts[i]) / self._total

        if q.candidates is not None:
            def key(t: str) -> tuple[float, ...]:
                i = tags.index(t)
                return (-applied.get(i, 0.0), -self._counts[i], i or len(tags) + 1)

            ranked = sorted((t for t in dict.fromkeys(q.candidates) if t not in exclude), key=key)[:n]
            answer = [(t, score(tags.index(t))) for t in ranked]
        else:
            order = own if own else range(1, len(tags) + 1)  # the item's own tags, or everyone's
            answer = []
            for i in order:
                if len(answer) >= n:
                    break
                t = tags.ids[i - 1]
                if t not in exclude:
                    answer.append((t, score(i)))
        return Answer(answer, fallback=not own or not q.history)
