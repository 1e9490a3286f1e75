"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from recipes.base import TrainingHooks

from .modeling import TagPopularityModel

__all__ = ["TagPopularityHooks"]


class TagPopularityHooks(TrainingHooks):
    def build_model(self) -> TagPopularityModel:
        model = TagPopularityModel(len(self.featurizer.tags))
        model.counts.copy_(torch.from_numpy(self.featurizer.counts))
        return model

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("tag-popularity has nothing to optimize")
