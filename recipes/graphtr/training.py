"""Training hooks for GraphTR: batches of neighbour pairs with sampled negatives (eq. 14).

Follows Liu, Xie et al. (CIKM'20) §3.4 (the neighbour-similarity objective: each stored neighbour
pair is a positive, `negatives` nodes drawn by degree^0.75 are negatives; Adam) and §5.3 (two-hop
samples of 30 / 20 neighbours, batches of 512 pairs: smaller defaults here). An epoch is the first
`pairs_per_epoch` pairs of this rank's shuffled share (`HeteroGraph.epoch_pairs`, equal shares for
DDP); sampling is seeded by (seed, epoch, rank, batch). With `shared_negatives` (default) a batch's
pairs share one draw of negatives, so a batch encodes about 2·batch + negatives nodes, not
batch·(2 + negatives): eq. 14's sum is the same, its negatives correlated within a batch.
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
            a, p = src[lo:lo + cfg.batch_size], dst[lo:lo + cfg.batch_size]
            if cfg.shared_negatives:
                yield _shared(examples, a, p, rng, cfg)
                continue
            lb = examples.loss_batch(a, p, rng, num_negatives=cfg.negatives, k1=cfg.first_samples,
                                     k2=cfg.second_samples)
            yield _tensors(lb.nodes, lb.hop1, lb.hop2, lb.anchor, lb.positive, lb.negatives)

    def loss(self, model: HfinModel, batch: dict[str, Any]) -> torch.Tensor:
        """Calls the model itself (`forward`), so `model` may be wrapped in DistributedDataParallel."""
        return model(batch["nodes"], batch["hop1"], batch["hop2"], anchor=batch["anchor"],
                     positive=batch["positive"], negatives=batch["negatives"])

    def num_events(self, batch: dict[str, Any]) -> int:
        return int(batch["anchor"].shape[0])


def _shared(graph: HeteroGraph, a: np.ndarray, p: np.ndarray, rng: np.random.Generator,
            cfg: GraphTrConfig) -> dict[str, torch.Tensor]:
    """A batch whose pairs share one draw of `negatives` nodes (rejected against the first pair)."""
    negs = graph.negatives(a[:1], rng, cfg.negatives)[0]  # (J,)
    distinct, inverse = np.unique(np.concatenate((a, p, negs)), return_inverse=True)
    s = graph.sample_two_hop(distinct, rng, cfg.first_samples, cfg.second_samples)
    n = len(a)
    return _tensors(s.nodes, s.hop1, s.hop2, inverse[:n], inverse[n:2 * n],
                    np.broadcast_to(inverse[2 * n:], (n, len(negs))))


def _tensors(nodes: np.ndarray, hop1: np.ndarray, hop2: np.ndarray, anchor: np.ndarray,
             positive: np.ndarray, negatives: np.ndarray) -> dict[str, torch.Tensor]:
    arrays = {"nodes": nodes, "hop1": hop1, "hop2": hop2, "anchor": anchor, "positive": positive,
              "negatives": negatives}
    return {k: torch.from_numpy(np.ascontiguousarray(v).astype(np.int64)) for k, v in arrays.items()}
