"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recipes.base import TrainingHooks

from .modeling import TagCooccurrenceModel

__all__ = ["TagCooccurrenceHooks"]


class TagCooccurrenceHooks(TrainingHooks):
    def build_model(self) -> TagCooccurrenceModel:
        return TagCooccurrenceModel.from_featurizer(self.config, self.featurizer)

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("tag-cooccurrence has nothing to optimize")
