"""Training hooks for HRNN-meta: BPTT windows over user histories and the next-item loss.

Follows Ma et al. (KDD'20) §2.1 (BPTT over mini-batches of user histories, next-item softmax
cross entropy), §2.3 (λ ~ U[0, 1] drawn once per batch), §3.1 (sampled softmax with log-q
correction and a proposal ∝ freq^0.75 once the catalog exceeds a threshold).

A window covers `bptt` consecutive events of one user; the `burn_in` events before it are fed to
the GRU as context (no loss on them), as a stateful language model carries its state from the
previous window. Windows are shuffled with a generator seeded by (seed, epoch) and dealt to
workers so that every worker gets the same number of windows (DDP needs equal step counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from recipes.base import TrainingHooks

from .configuration import HrnnMetaConfig
from .featurizer import HrnnMetaExamples, HrnnMetaFeaturizer, time_bucket
from .modeling import HrnnMetaModel

__all__ = ["HrnnMetaHooks", "collate_windows", "make_windows"]


def make_windows(examples: HrnnMetaExamples, bptt: int, burn_in: int) -> np.ndarray:
    """(W, 4) int64 rows (sequence, context start, loss start, end) as flat event indices.

    The GRU reads events [context start, end); events [loss start, end) predict their successor.
    """
    starts, ends = examples.offsets[:-1], examples.offsets[1:]
    inputs = np.maximum(ends - starts - 1, 0)  # events that have a successor
    per_user = (inputs + bptt - 1) // bptt  # (U,)
    seq = np.repeat(np.arange(examples.num_users, dtype=np.int64), per_user)  # (W,)
    first = np.cumsum(per_user) - per_user
    k = np.arange(seq.size, dtype=np.int64) - np.repeat(first, per_user)  # window number
    loss_start = starts[seq] + k * bptt
    end = np.minimum(loss_start + bptt, ends[seq] - 1)
    context = np.maximum(starts[seq], loss_start - burn_in)
    return np.stack([seq, context, loss_start, end], axis=1)


def collate_windows(examples: HrnnMetaExamples, windows: np.ndarray,
                    featurizer: HrnnMetaFeaturizer, num_time_buckets: int) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) tensors of a set of windows; `targets` is 0 where there is no loss."""
    seq, context, loss_start, end = windows.T
    T = int((end - context).max())
    idx = context[:, None] + np.arange(T)[None, :]  # (B, T)
    valid = idx < end[:, None]
    safe = np.where(valid, idx, 0)
    nxt = np.minimum(safe + 1, examples.num_events - 1)
    gaps = examples.timestamps[nxt] - examples.timestamps[safe]
    target = examples.items[nxt]
    trainable = featurizer.item_freq[target] > 0
    has_loss = valid & (idx >= loss_start[:, None]) & trainable
    return {
        "items": torch.from_numpy(np.where(valid, examples.items[safe], 0)),
        "time_buckets": torch.from_numpy(np.where(valid, time_bucket(gaps, num_time_buckets), 0)),
        "event_types": torch.from_numpy(np.where(valid, examples.event_types[safe], 0)),
        "event_values": torch.from_numpy(np.where(valid, examples.event_values[safe], 0.0)
                                         .astype(np.float32)),
        "user_features": torch.from_numpy(
            featurizer.user_feature_rows(examples.user_index[seq])),
        "targets": torch.from_numpy(np.where(has_loss, target, 0)),
    }


class HrnnMetaHooks(TrainingHooks):
    """What the generic training loop calls for HRNN-meta."""

    config: HrnnMetaConfig
    featurizer: HrnnMetaFeaturizer

    def __init__(self, config: HrnnMetaConfig, featurizer: HrnnMetaFeaturizer) -> None:
        super().__init__(config, featurizer)
        freq = featurizer.item_freq.astype(np.float64)
        self.num_trainable_items = int((freq > 0).sum())
        self.sampled = self.num_trainable_items > config.sampled_softmax_threshold
        proposal = np.where(freq > 0, freq ** config.sampling_power, 0.0)
        self._proposal_cdf = np.cumsum(proposal) / max(proposal.sum(), 1e-300)

    @property
    def epochs(self) -> int:
        return self.config.epochs

    def build_model(self) -> HrnnMetaModel:
        torch.manual_seed(self.config.seed)
        return HrnnMetaModel.from_featurizer(self.config, self.featurizer)

    def configure_optimizer(self, model: HrnnMetaModel) -> torch.optim.Optimizer:
        """Adam with the configured learning rate and weight decay."""
        return torch.optim.Adam(model.parameters(), lr=self.config.learning_rate,
                                weight_decay=self.config.weight_decay)

    def clip_gradients(self, model: HrnnMetaModel) -> float:
        """Clip the global gradient norm to max_grad_norm (call between backward and step)."""
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.max_grad_norm))

    def batches(self, examples: HrnnMetaExamples, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        """This worker's shuffled windows of one epoch, `batch_size` windows per batch.

        Each batch holds (B, T) `items`, `time_buckets`, `event_types`, `event_values`,
        `targets`, (B, F) `user_features`, the scalar mixing weight `lam` and, with sampled
        softmax, (S,) `negatives`.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        cfg = self.config
        windows = make_windows(examples, cfg.bptt, cfg.burn_in)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(windows))
        per_worker = len(windows) // world_size
        mine = windows[order[rank * per_worker:(rank + 1) * per_worker]]
        rng = np.random.default_rng([cfg.seed, epoch, rank, 1])
        for lo in range(0, len(mine), cfg.batch_size):
            batch: dict[str, Any] = collate_windows(examples, mine[lo:lo + cfg.batch_size],
                                                    self.featurizer, cfg.time_buckets)
            lam = rng.random() if cfg.lambda_sampling == "uniform" else cfg.warm_lambda
            batch["lam"] = torch.tensor(lam, dtype=torch.float32)
            if self.sampled:
                draws = np.searchsorted(self._proposal_cdf, rng.random(cfg.num_negatives),
                                        side="right")
                batch["negatives"] = torch.from_numpy(
                    np.minimum(draws, len(self._proposal_cdf) - 1).astype(np.int64))
            yield batch

    def loss(self, model: HrnnMetaModel, batch: dict[str, Any]) -> torch.Tensor:
        """Mean next-item cross entropy over the batch's target positions (full or sampled).

        Calls the model itself (`forward`), so `model` may be wrapped in DistributedDataParallel.
        """
        return model(**batch)

    def num_events(self, batch: dict[str, Any]) -> int:
        return int((batch["targets"] > 0).sum())
