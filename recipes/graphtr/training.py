"""Training hooks for GraphTR: batches of neighbour pairs with sampled negatives (eq. 14).

Follows Liu, Xie et al. (CIKM'20) §3.4 (the neighbour-similarity objective: each stored neighbour
pair is a positive, `negatives` nodes drawn by degree^0.75 are negatives; Adam) and §5.3 (two-hop
samples of 30 / 20 neighbours, batches of 512 pairs: smaller defaults here). An epoch is the first
`pairs_per_epoch` pairs of this rank's shuffled share (`HeteroGraph.epoch_pairs`, equal shares for
DDP); sampling is seeded by (seed, epoch, rank, batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from recipes.base import TrainingHooks

from .configuration import GraphTrConfig
from .featurizer import GraphTrFeaturizer
from .graph import HeteroGraph
from .modeling import HfinModel

__all__ = ["GraphTrHooks"]


class GraphTrHooks(TrainingHooks):
    """What the generic training loop calls for GraphTR."""

    config: GraphTrConfig
    featurizer: GraphTrFeaturizer

    def build_model(self) -> HfinModel:
        torch.manual_seed(self.config.seed)
        graph = self.featurizer.graph
        return HfinModel(self.config, graph.field_sizes,
                         torch.from_numpy(graph.stacked_features().astype(np.int64)))

    def batches(self, examples: HeteroGraph, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        cfg = self.config
        src, dst = examples.epoch_pairs(epoch, rank=rank, world_size=world_size)
        per_rank = max(cfg.pairs_per_epoch // world_size, 1)
        src, dst = src[:per_rank], dst[:per_rank]
        for b, lo in enumerate(range(0, len(src), cfg.batch_size)):
            rng = np.random.default_rng([cfg.seed, epoch, rank, b])
            lb = examples.loss_batch(src[lo:lo + cfg.batch_size], dst[lo:lo + cfg.batch_size], rng,
                                     num_negatives=cfg.negatives, k1=cfg.first_samples, k2=cfg.second_samples)
            yield {name: torch.from_numpy(np.ascontiguousarray(getattr(lb, name)).astype(np.int64))
                   for name in ("nodes", "hop1", "hop2", "anchor", "positive", "negatives")}

    def loss(self, model: HfinModel, batch: dict[str, Any]) -> torch.Tensor:
        """Calls the model itself (`forward`), so `model` may be wrapped in DistributedDataParallel."""
        return model(batch["nodes"], batch["hop1"], batch["hop2"], anchor=batch["anchor"],
                     positive=batch["positive"], negatives=batch["negatives"])

    def num_events(self, batch: dict[str, Any]) -> int:
        return int(batch["anchor"].shape[0])
