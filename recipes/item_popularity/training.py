"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

import torch

from recipes.base import CountingHooks

from .modeling import ItemPopularityModel

__all__ = ["ItemPopularityHooks"]


class ItemPopularityHooks(CountingHooks):
    def build_model(self) -> ItemPopularityModel:
        model = ItemPopularityModel(len(self.featurizer.items))
        model.counts.copy_(torch.from_numpy(self.featurizer.counts))
        return model
