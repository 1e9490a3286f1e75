"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from recipes.base import TrainingHooks

from .modeling import ItemPopularityModel

__all__ = ["ItemPopularityHooks"]


class ItemPopularityHooks(TrainingHooks):
    def build_model(self) -> ItemPopularityModel:
        model = ItemPopularityModel(len(self.featurizer.items))
        model.counts.copy_(torch.from_numpy(self.featurizer.counts))
        return model

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("item-popularity has nothing to optimize")
