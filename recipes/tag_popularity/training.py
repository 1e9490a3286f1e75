"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

import torch

from recipes.base import CountingHooks

from .modeling import TagPopularityModel

__all__ = ["TagPopularityHooks"]


class TagPopularityHooks(CountingHooks):
    def build_model(self) -> TagPopularityModel:
        model = TagPopularityModel(len(self.featurizer.tags))
        model.counts.copy_(torch.from_numpy(self.featurizer.counts))
        return model
