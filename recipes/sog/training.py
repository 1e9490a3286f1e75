"""Training hooks for SOG: sequence-oblivious 1-to-M instances, KL against the remaining tags.

Follows Kang et al. (EMNLP'21) §3.2: every epoch each training post's tags are shuffled afresh
(seeded by seed and epoch) and a post with N tags gives N instances, the i-th reading the first
i - 1 tags of that order (eq. 12); its target (eq. 10) is every remaining tag, as the uniform
distribution over them (eq. 11's KL; `kl_target="multi-hot"`: the unnormalised vector of the
authors' code, a sum of the remaining tags' cross-entropies), or with ``training="1-to-1"`` the
next tag alone (eq. 9). BR-EF (``training="br-ef"``): one instance per post, its target every tag
of the post, from [CLS]. Adam at the config's rate (Table 5: 5e-5 for BERT, batch 64).

An epoch's instances are shuffled and dealt to the ranks in equal shares (the same number of
batches on every rank, for data-parallel training); batches hold instances of about the same
context length (sorted within windows of 32 batches), padded to their longest, in shuffled order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from recipes.base import TrainingHooks

from .configuration import SogConfig
from .featurizer import SogExamples, SogFeaturizer
from .modeling import SogModel, autocast

__all__ = ["SogHooks", "context_batch", "padded"]

_WINDOW = 32  # batches whose instances are sorted by length together


class SogHooks(TrainingHooks):
    """What the generic training loop calls for SOG."""

    config: SogConfig
    featurizer: SogFeaturizer

    def build_model(self) -> SogModel:
        torch.manual_seed(self.config.seed)
        f, cfg = self.featurizer, self.config
        model = SogModel(f.encoder, f.tags.size, f.specials["mask"], position_offset=f.position_offset,
                         tag_positions=cfg.tag_positions, head="cls" if cfg.training == "br-ef" else "mask")
        if f.initial_state is not None:
            model.load_encoder(f.initial_state)
        if cfg.tag_init == "name":
            names = [t.replace("-", " ").replace("_", " ") for t in f.tags.ids]
            encoded = f.tokenizer.encode_batch(names, add_special_tokens=False)
            model.init_tags_from_pieces([e.ids for e in encoded])
        return model

    def configure_optimizer(self, model: Any) -> Any:
        return torch.optim.Adam(model.parameters(), lr=self.config.lr)

    def batches(self, examples: SogExamples, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        cfg, f = self.config, self.featurizer
        rng = np.random.default_rng([cfg.seed, epoch])
        tag_indptr, tag_values = examples.tags
        counts = np.diff(tag_indptr)
        owner = np.repeat(np.arange(len(counts)), counts)
        shuffled = tag_values[np.lexsort((rng.random(len(tag_values)), owner))]  # a fresh order per post
        if cfg.training == "br-ef":
            post, step = np.arange(len(counts)), np.zeros(len(counts), np.int64)
        else:
            post = owner
            step = np.arange(len(owner)) - np.repeat(tag_indptr[:-1], counts)  # i - 1: tags read
        order = rng.permutation(len(post))
        share = len(order) // world_size
        mine = order[rank * share:(rank + 1) * share]
        batches = _by_length(mine, np.diff(examples.context[0])[post[mine]], cfg.batch_size, rng)
        for sel in batches:
            p, i = post[sel], step[sel]
            start, end = tag_indptr[p], tag_indptr[p + 1]
            ctx, ctx_len = context_batch(examples.context, p, f.specials)
            batch: dict[str, Any] = {"context": ctx, "context_len": ctx_len}
            if cfg.training != "br-ef":
                batch["tags"] = torch.from_numpy(padded(shuffled, start, i, 0))
                batch["tag_len"] = torch.from_numpy(i.astype(np.int64))
            if cfg.training == "1-to-1":
                batch["target"] = torch.from_numpy(shuffled[start + i].astype(np.int64))
            else:
                rest = end - (start + i)
                rows = np.repeat(np.arange(len(sel)), rest)
                target = np.zeros((len(sel), f.tags.size), np.float32)
                cols = _rows_of(shuffled, start + i, rest)
                target[rows, cols] = 1.0 if cfg.kl_target == "multi-hot" else np.repeat(1.0 / rest, rest)
                batch["target"] = torch.from_numpy(target)
            yield batch

    def loss(self, model: SogModel, batch: dict[str, Any]) -> torch.Tensor:
        """Mean over the batch of KL(q ‖ p) (eq. 11; multi-hot q: the sum of the remaining tags'
        -log p) or, 1-to-1, the next tag's -log p. Index 0 (unknown) is outside the softmax."""
        with autocast(self.config.precision, batch["context"].device):
            logits = model(batch["context"], batch["context_len"], batch.get("tags"), batch.get("tag_len"))
        logp = torch.log_softmax(logits[:, 1:].float(), dim=-1)  # (B, T)
        target = batch["target"]
        if target.dim() == 1:
            return -logp.gather(1, (target - 1)[:, None]).mean()
        q = target[:, 1:]
        return (torch.xlogy(q, q) - q * logp).sum(-1).mean()

    def num_events(self, batch: dict[str, Any]) -> int:
        return int(batch["context"].shape[0])


def _by_length(instances: np.ndarray, lengths: np.ndarray, size: int,
               rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of `size` instances of about the same context length (sorted within windows of
    `_WINDOW` batches, so a batch pads little), in a shuffled order."""
    out = []
    for lo in range(0, len(instances), size * _WINDOW):
        window = slice(lo, lo + size * _WINDOW)
        ranked = instances[window][np.argsort(lengths[window], kind="stable")]
        out += [ranked[i:i + size] for i in range(0, len(ranked), size)]
    return [out[i] for i in rng.permutation(len(out))]


def _rows_of(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``flat[starts[r]:starts[r] + lengths[r]]`` for every r, concatenated."""
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return flat[np.repeat(starts, lengths) + within]


def padded(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, fill: int) -> np.ndarray:
    """Rows ``flat[starts[r]:starts[r] + lengths[r]]`` as a (rows, max length) int64 matrix."""
    lengths = np.asarray(lengths, np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    out = np.full((len(lengths), width), fill, np.int64)
    out[np.arange(width)[None, :] < lengths[:, None]] = _rows_of(flat, starts, lengths)
    return out


def context_batch(context: tuple[np.ndarray, np.ndarray], rows: np.ndarray,
                  specials: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] pieces [SEP]`` of the given rows of a ragged context array, padded: (B, Lc), (B,)."""
    indptr, values = context
    lengths = indptr[rows + 1] - indptr[rows]
    body = padded(values, indptr[rows], lengths, specials["pad"])
    out = np.full((len(rows), body.shape[1] + 2), specials["pad"], np.int64)
    out[:, 0] = specials["cls"]
    out[:, 1:-1] = body
    out[np.arange(len(rows)), lengths + 1] = specials["sep"]
    return torch.from_numpy(out), torch.from_numpy(lengths.astype(np.int64) + 2)
