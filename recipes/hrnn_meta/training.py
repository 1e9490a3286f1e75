"""Training hooks for HRNN-meta: BPTT windows over user histories and the next-item loss.

Follows Ma et al. (KDD'20) §2.1 (BPTT over mini-batches of user histories, next-item softmax
cross entropy), §2.3 (λ ~ U[0, 1] drawn once per batch), §3.1 (sampled softmax with log-q
correction and a proposal ∝ freq^0.75 once the catalog exceeds a threshold).

A window covers `bptt` consecutive events of one user; the `burn_in` events before it are fed to
the GRU as context (no loss on them), as a stateful language model carries its state from the
previous window. Windows are shuffled with a generator seeded by (seed, epoch) and dealt to
workers so that every worker gets the same number of windows (DDP needs equal step counts).

With sampled softmax, §3.1's point is that "only a small subset of weights are updated with each
example": `configure_optimizer` then switches the per-item tables to sparse gradients and returns
:class:`LazyAdam`, which updates only the rows a batch touched (in a single process; see there).
Plain Adam would read and write every row of those tables and of both moment estimates at every
step; at 1M items that made a sampled step as slow as a full-softmax one (see
benchmarks/large_catalog.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from recipes.base import TrainingHooks

from .configuration import HrnnMetaConfig
from .featurizer import HrnnMetaExamples, HrnnMetaFeaturizer, time_bucket
from .modeling import HrnnMetaModel

__all__ = ["HrnnMetaHooks", "LazyAdam", "collate_windows", "make_windows"]


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


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the rows present in a sparse gradient ("lazy" Adam).

    Dense gradients get torch.optim.Adam's update (L2 weight decay added to the gradient). For a
    sparse gradient (rows R of a table) the moments and the weights of rows R alone are updated,
    as torch.optim.SparseAdam does, with weight decay on those rows; other rows keep their weights
    and moments until a batch touches them. The bias correction counts the parameter's steps.
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()  # one row per index, duplicates summed
                    rows, g = grad.indices()[0], grad.values()  # (R,), (R, ...)
                    w, m, v = p[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]  # copies
                else:
                    rows, g, w, m, v = None, p.grad, p, state["exp_avg"], state["exp_avg_sq"]
                if group["weight_decay"]:
                    g = g.add(w, alpha=group["weight_decay"])
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(group["eps"])
                w.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1 ** t))
                if rows is not None:
                    p.index_copy_(0, rows, w)
                    state["exp_avg"].index_copy_(0, rows, m)
                    state["exp_avg_sq"].index_copy_(0, rows, v)
        return loss


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
        """Adam with the configured learning rate and weight decay.

        With sampled softmax in a single process this also switches the model's per-item tables
        to sparse gradients and returns :class:`LazyAdam` (only the rows a batch touched are
        updated, §3.1). Under data parallelism (a torch.distributed group of more than one) the
        gradients stay dense, as the generic loop all-reduces them as one flat dense tensor; a
        loop that builds its own torch.optim.Adam also gets dense gradients and still works.
        """
        dist = torch.distributed
        parallel = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not self.sampled or parallel:
            return torch.optim.Adam(model.parameters(), lr=self.config.learning_rate,
                                    weight_decay=self.config.weight_decay)
        getattr(model, "module", model).sparse_item_gradients(True)  # unwrap DDP
        return LazyAdam(model.parameters(), lr=self.config.learning_rate,
                        weight_decay=self.config.weight_decay)

    def clip_gradients(self, model: HrnnMetaModel) -> float:
        """Clip the global gradient norm to max_grad_norm (call between backward and step).

        Returns the norm before clipping. Sparse gradients are coalesced (duplicate rows summed)
        first, so their norm is the gradient's own.
        """
        params = [p for p in model.parameters() if p.grad is not None]
        if not any(p.grad.is_sparse for p in params):
            return float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        for p in params:
            if p.grad.is_sparse:
                p.grad = p.grad.coalesce()
        total = torch.linalg.vector_norm(torch.stack([
            torch.linalg.vector_norm(p.grad.values() if p.grad.is_sparse else p.grad) for p in params]))
        coef = min(1.0, self.config.max_grad_norm / (float(total) + 1e-6))
        for p in params:
            if p.grad.is_sparse:
                p.grad = p.grad * coef  # out of place: an in-place product drops the coalesced flag
            else:
                p.grad.mul_(coef)
        return float(total)

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
