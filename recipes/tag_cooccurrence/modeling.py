"""The whole scoring of a query: co-occurrence votes of its words and chosen tags, in one module.

Shape legend: V words, T tags (index 0 of each: unknown); n the query's known words, c its known
chosen tags; P the stored (word, tag) pairs, Q the stored (tag, tag) pairs.

From the training counts (`featurizer`): N tagged posts, n(x) the posts holding word or tag x,
n(x, t) those also tagged t, P(t) = n(t) / N. Every word or chosen tag x votes for each tag t with

    P(t|x) = (n(x, t) + m P(t)) / (n(x) + m)             (m = config.smoothing: a popularity prior)

The text votes as one voice: the mean of its words' votes weighted by idf(w) = ln(1 + N / n(w))
(rare words say more); with no known word it is the prior P(t) (the task's fallback). Each chosen
tag votes as one more voice. The score divides their mean by P(t)^a (a = popularity_damping):

    score(t) = (text(t) + sum_s P(t|s)) / (1 + c) / P(t)^a

The buffers are not persistent (not in `weights.pt`): they are the featurizer's saved counts,
weighted when the model is built, so the artifact holds the counts once. `forward` runs numpy on
the buffers' memory: a query touches a few thousand entries, where torch's per-operation cost (and
its thread pool, on a busy machine) would dominate.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .configuration import TagCooccurrenceConfig
from .featurizer import CSR, TagCooccurrenceFeaturizer

__all__ = ["TagCooccurrenceModel"]


def _gather(indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, rows: np.ndarray,
            weights: np.ndarray, size: int) -> np.ndarray:
    """sum_i weights[i] * row rows[i] of a CSR matrix, as a dense (size,) vector."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts  # (n,)
    pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(lens.sum())  # (sum lens,)
    return np.bincount(cols[pos], weights=vals[pos] * np.repeat(weights, lens), minlength=size)


class TagCooccurrenceModel(nn.Module):
    """Co-occurrence votes (module docstring); no parameters."""

    def __init__(self, config: TagCooccurrenceConfig, num_posts: int, word_posts: np.ndarray,
                 tag_posts: np.ndarray, word_tag: CSR, tag_tag: CSR) -> None:
        super().__init__()
        m, n = float(config.smoothing), max(int(num_posts), 1)
        prior = tag_posts / n  # (T + 1,)
        damp = np.zeros_like(prior)
        damp[1:] = prior[1:] ** -config.popularity_damping  # every known tag is on a post
        idf = np.where(word_posts > 0, np.log1p(n / np.maximum(word_posts, 1)), 0.0)  # (V + 1,)

        def share(counts: np.ndarray) -> np.ndarray:  # m / (n(x) + m)
            return np.where(counts + m > 0, m / np.maximum(counts + m, 1e-300), 0.0)

        def rows(csr: CSR, counts: np.ndarray) -> list[torch.Tensor]:  # n(x, t) / (n(x) + m)
            indptr, cols, values = csr
            per_row = np.repeat(np.maximum(counts + m, 1e-300), np.diff(indptr))
            return [torch.from_numpy(indptr), torch.from_numpy(cols), torch.from_numpy(values / per_row)]

        buffers = {"prior": prior, "damp": damp, "idf": idf, "word_share": share(word_posts),
                   "tag_share": share(tag_posts)}
        for name, value in buffers.items():
            self.register_buffer(name, torch.from_numpy(np.asarray(value, np.float64)), persistent=False)
        for prefix, (csr, counts) in {"word": (word_tag, word_posts), "tag": (tag_tag, tag_posts)}.items():
            for part, tensor in zip(("indptr", "tags", "votes"), rows(csr, counts)):
                self.register_buffer(f"{prefix}_{part}", tensor, persistent=False)  # (V|T + 2,), (P|Q,)
        self._arrays = {name: buffer.numpy() for name, buffer in self.named_buffers()}

    @classmethod
    def from_featurizer(cls, config: TagCooccurrenceConfig, featurizer: TagCooccurrenceFeaturizer
                        ) -> TagCooccurrenceModel:
        return cls(config, featurizer.num_posts, featurizer.word_posts, featurizer.tag_posts,
                   featurizer.word_tag, featurizer.tag_tag)

    def forward(self, words: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Scores (T + 1,) of every tag (unknown: -inf) for known word indices (n,) and chosen tag
        indices (c,), each distinct."""
        b = self._arrays
        prior = b["prior"]
        if len(words):
            weights = b["idf"][words]  # (n,)
            text = (_gather(b["word_indptr"], b["word_tags"], b["word_votes"], words, weights, len(prior))
                    + (weights * b["word_share"][words]).sum() * prior) / weights.sum()
        else:
            text = prior.copy()
        if len(chosen):
            text += _gather(b["tag_indptr"], b["tag_tags"], b["tag_votes"], chosen, np.ones(len(chosen)),
                            len(prior)) + b["tag_share"][chosen].sum() * prior
        score = text / (1 + len(chosen)) * b["damp"]  # (T + 1,)
        score[0] = -np.inf
        return score
