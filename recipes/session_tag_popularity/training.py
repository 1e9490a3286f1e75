"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from recipes.base import CountingHooks

from .modeling import SessionTagPopularityModel

__all__ = ["SessionTagPopularityHooks"]


class SessionTagPopularityHooks(CountingHooks):
    def build_model(self) -> SessionTagPopularityModel:
        if self.featurizer.statistics is None:
            raise ValueError("session-tag-popularity: build the model from a fitted featurizer (a loaded "
                             "one holds only vocabularies; the counts are in the artifact's weights)")
        return SessionTagPopularityModel(**self.featurizer.statistics)
