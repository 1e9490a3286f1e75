"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recipes.base import TrainingHooks

from .modeling import SessionTagPopularityModel

__all__ = ["SessionTagPopularityHooks"]


class SessionTagPopularityHooks(TrainingHooks):
    def build_model(self) -> SessionTagPopularityModel:
        if self.featurizer.statistics is None:
            raise ValueError("session-tag-popularity: build the model from a fitted featurizer (a loaded "
                             "one holds only vocabularies; the counts are in the artifact's weights)")
        return SessionTagPopularityModel(**self.featurizer.statistics)

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("session-tag-popularity has nothing to optimize")
