"""Answer user-tags queries: the user's own tags by use (frequency, or time-decayed with a half-life;
ties to the tag used last), then every other tag by training count.

The user's tags are read from the query's history (the latest `max_history` events), so a tag
the user applies after training counts at once. Scores: ``1 + the tag's share of the user's
(weighted) tag uses`` for the user's own tags, ``the tag's share of all training uses`` for the
others (so the user's own always come first); a candidate nobody used scores 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from recipes.base import Answer, HistoryEvent, Predictor, Query

from .configuration import TagPopularityConfig
from .featurizer import TagPopularityFeaturizer
from .modeling import TagPopularityModel

__all__ = ["TagPopularityPredictor", "own_tags"]


def own_tags(history: Sequence[HistoryEvent], max_history: int, now: float,
             half_life_days: float | None) -> dict[str, tuple[float, float]]:
    """The tags of the latest `max_history` events: tag → (weighted uses, time of the last use)."""
    events = sorted(history, key=lambda e: float(e[1]))[-max_history:]
    own: dict[str, tuple[float, float]] = {}
    for e in events:
        tags = e[4] if len(e) > 4 else None
        if not tags:
            continue
        at = float(e[1])
        w = 1.0 if half_life_days is None else 0.5 ** (max(now - at, 0.0) / 86_400.0 / half_life_days)
        for t in tags:
            own[t] = (own.get(t, (0.0, at))[0] + w, at)
    return own


class TagPopularityPredictor(Predictor):
    """The user's own tags, then the most used ones; `fallback` marks a history without tags (an
    unknown user), answered with the most used tags alone."""

    def __init__(self, config: TagPopularityConfig, featurizer: TagPopularityFeaturizer,
                 model: TagPopularityModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model
        self.max_history = config.max_history  # what a campaign keeps per user
        self._counts = model.counts.numpy()
        self._total = float(self._counts.sum()) or 1.0
        self._ids = featurizer.tags.ids  # most used first

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [self._answer(q) for q in queries]

    def _answer(self, q: Query) -> Answer:
        now = time.time() if q.time is None else float(q.time)
        own = own_tags(q.history, self.max_history, now, self.config.half_life_days)
        own_total = sum(w for w, _ in own.values()) or 1.0
        tags = self.featurizer.tags
        exclude = set(q.exclude)
        n = int(q.num_results)

        def key(t: str) -> tuple[float, ...]:
            i = tags.index(t)
            w, last = own.get(t, (0.0, 0.0))
            return (0 if t in own else 1, -w, -last, -self._counts[i], i or len(self._ids) + 1)

        def score(t: str) -> float:
            if t in own:
                return 1.0 + own[t][0] / own_total
            return float(self._counts[tags.index(t)]) / self._total

        if q.candidates is not None:
            ranked = sorted((t for t in dict.fromkeys(q.candidates) if t not in exclude), key=key)[:n]
        else:
            ranked = sorted((t for t in own if t not in exclude), key=key)[:n]
            for t in self._ids:
                if len(ranked) >= n:
                    break
                if t not in own and t not in exclude:
                    ranked.append(t)
        return Answer([(t, score(t)) for t in ranked], fallback=not own)
