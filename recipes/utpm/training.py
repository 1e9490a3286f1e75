"""Training hooks for UTPM: shuffled batches of (user, cut) samples and the eq. 4 loss.

Follows Yan et al. (CIKM'20) §3 "Predicting layer" (one sample per user with K labelled items;
the joint loss over each item's N tags, or the separate ablation) and §4.1 (clicked = positive,
shown-not-clicked = negative). With `sampled_negatives`, each batch also gets that many sampled
negatives per positive label, drawn with a generator seeded by (seed, epoch, rank): data with few
or no negatives (ratings, clicks, tag assignments) would otherwise only ever push scores up. Not
in the paper, whose negatives are real impressions. A negative is N tags drawn by their training
clicks (`negative_sampling="popularity"`, the default; the predictor adds log q(t), the sampled-
softmax logQ correction): uniform tags (`"tags"`) are told from clicked ones by popularity alone,
so u collapsed to one direction and every MovieLens test user got the same top tags. Random catalog items
(`"items"`) make every tag carried by many items negative evidence: on MovieLens that ranked rare
tags first (p@1 0.06 against tag-popularity's 0.37 on one seed), so it is not the default.
Samples are shuffled per epoch and dealt to workers in equal shares (DDP needs equal step counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from recipes.base import TrainingHooks

from .configuration import UtpmConfig
from .featurizer import UtpmExamples, UtpmFeaturizer
from .modeling import UtpmModel

__all__ = ["UtpmHooks", "negative_distribution"]


def negative_distribution(tag_counts: np.ndarray) -> np.ndarray:
    """q(t) of tags 1..V-1 for `negative_sampling="popularity"`: training clicks + 1, normalised."""
    q = np.asarray(tag_counts[1:], np.float64) + 1.0
    return q / q.sum()


class UtpmHooks(TrainingHooks):
    """What the generic training loop calls for UTPM."""

    config: UtpmConfig
    featurizer: UtpmFeaturizer

    def __init__(self, config: UtpmConfig, featurizer: UtpmFeaturizer) -> None:
        super().__init__(config, featurizer)
        self._tagged_items = np.flatnonzero((featurizer.item_tags > 0).any(1))
        self._tag_q = negative_distribution(featurizer.tag_counts)

    def build_model(self) -> UtpmModel:
        torch.manual_seed(self.config.seed)
        return UtpmModel(self.config, self.featurizer.field_sizes, self.featurizer.num_tags)

    def configure_optimizer(self, model: UtpmModel) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.learning_rate,
                                weight_decay=self.config.weight_decay)

    def batches(self, examples: UtpmExamples, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        """This worker's shuffled samples of one epoch: (B, M, H) `fields`, (B, K', N) `label_tags`,
        (B, K') `labels` and `label_mask`, K' = K plus the sampled negatives."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        cfg = self.config
        order = np.random.default_rng([cfg.seed, epoch]).permutation(examples.num_samples)
        per_worker = examples.num_samples // world_size
        mine = order[rank * per_worker:(rank + 1) * per_worker]
        rng = np.random.default_rng([cfg.seed, epoch, rank, 1])
        for lo in range(0, len(mine), cfg.batch_size):
            rows = mine[lo:lo + cfg.batch_size]
            label_tags, labels = examples.label_tags[rows], examples.labels[rows]
            mask = examples.label_mask[rows]
            S = cfg.sampled_negatives
            if S and len(self._tagged_items):
                K, N = label_tags.shape[1:]
                # S negatives per positive label slot (unused slots masked out).
                if cfg.negative_sampling == "items":
                    picks = self._tagged_items[rng.integers(len(self._tagged_items), size=(len(rows), K * S))]
                    sampled = self.featurizer.item_tags[picks]  # (B, K·S, N)
                elif cfg.negative_sampling == "popularity":  # N tags drawn by clicks (logQ at inference)
                    sampled = rng.choice(len(self._tag_q), size=(len(rows), K * S, N), p=self._tag_q) + 1
                else:  # a pseudo-item of N tags drawn uniformly (index 0: no tag)
                    sampled = rng.integers(1, self.featurizer.num_tags, size=(len(rows), K * S, N))
                pos = np.repeat(mask & (labels > 0), S, axis=1)  # (B, K·S)
                label_tags = np.concatenate([label_tags, sampled], axis=1)
                labels = np.concatenate([labels, np.zeros(pos.shape, np.float32)], axis=1)
                mask = np.concatenate([mask, pos], axis=1)
            yield {"fields": torch.from_numpy(examples.fields[rows]),
                   "label_tags": torch.from_numpy(np.ascontiguousarray(label_tags)),
                   "labels": torch.from_numpy(np.ascontiguousarray(labels)),
                   "label_mask": torch.from_numpy(np.ascontiguousarray(mask))}

    def loss(self, model: UtpmModel, batch: dict[str, Any]) -> torch.Tensor:
        """Calls the model itself (`forward`), so `model` may be wrapped in DistributedDataParallel."""
        return model(**batch)

    def num_events(self, batch: dict[str, Any]) -> int:
        return int(batch["label_mask"].sum())
