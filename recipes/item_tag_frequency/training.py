"""Nothing to optimize: the model is built from the featurizer's counts (no epochs are run)."""

from __future__ import annotations

import torch

from recipes.base import CountingHooks

from .modeling import ItemTagFrequencyModel

__all__ = ["ItemTagFrequencyHooks"]


class ItemTagFrequencyHooks(CountingHooks):
    def build_model(self) -> ItemTagFrequencyModel:
        f = self.featurizer
        model = ItemTagFrequencyModel(len(f.tags), len(f.items), len(f.pair_tags))
        for name in ("counts", "indptr", "pair_tags", "pair_counts"):
            getattr(model, name).copy_(torch.from_numpy(getattr(f, name)))
        return model
