"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from recipes.base import TrainingHooks

from .modeling import ItemTagFrequencyModel

__all__ = ["ItemTagFrequencyHooks"]


class ItemTagFrequencyHooks(TrainingHooks):
    def build_model(self) -> ItemTagFrequencyModel:
        f = self.featurizer
        model = ItemTagFrequencyModel(len(f.tags), len(f.items), len(f.pair_tags))
        for name in ("counts", "indptr", "pair_tags", "pair_counts"):
            getattr(model, name).copy_(torch.from_numpy(getattr(f, name)))
        return model

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("item-tag-frequency has nothing to optimize")
