"""Answer generate-tags queries by sequence-oblivious greedy decoding (pure torch; no Ray, no store).

Follows Kang et al. (EMNLP'21) §3.3: the tags are generated one at a time, greedily, each step
reading the context and every tag before it (eq. 3-8); a tag already generated, already chosen,
excluded or outside the request's candidates has probability 0 (never generated twice). The
request's `chosen` tags (the user's seed tags) start the prefix, so the set is completed around
them. Generation stops at `num_results` tags, at `max_generated` steps (a longer answer continues
in the last step's order) or, with `min_probability`, when the best remaining tag is less likely
than that (a shorter set). A tag's score is the product of the step probabilities up to it (the
probability of the set so far along the greedy path: best first, as every answer is); tags after
`max_generated` continue that product with the last step's probabilities. BR-EF
(``training="br-ef"``) answers its one ranking from [CLS], scored by its probabilities.

A query's context is its `fields` (the context fields and text fields by name, then the text of
any field the items schema does not have: the client's own names) and its `text`, then the stored
text of its `item_id` when `update_catalog` stored it (a campaign calls it at load). The answer
is flagged `fallback` when the context has no known word piece and no chosen tag is known: the
tags are then what the model generates from nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from recipes.base import Answer, Predictor, Query
from recipes.common import column_for
from sdk.types import DatasetKind, Role, Schema

from .configuration import SogConfig
from .featurizer import SogFeaturizer
from .modeling import SogModel, autocast
from .training import context_batch, padded

__all__ = ["SogPredictor"]

_CHUNK = 32  # queries encoded together (sorted by length: little padding)


class SogPredictor(Predictor):
    """A loaded SOG model answering tag-set queries (module docstring)."""

    def __init__(self, config: SogConfig, featurizer: SogFeaturizer, model: SogModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model.eval()
        self._tag_ids = np.array([""] + featurizer.tags.ids, dtype=object)
        self._items: dict[str, int] = {}  # stored item id -> its row in _item_pieces
        self._item_pieces: tuple[np.ndarray, np.ndarray] = (np.zeros(1, np.int64), np.zeros(0, np.int32))

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        f = self.featurizer
        pieces = f.encode([self._context(q) for q in queries])
        for n, q in enumerate(queries):
            row = self._items.get(q.item_id) if q.item_id is not None else None
            if row is not None:
                indptr, stored = self._item_pieces
                both = np.concatenate([pieces[n], stored[indptr[row]:indptr[row + 1]]])
                pieces[n] = both[:f.max_length - 2]
        answers: list[Answer | None] = [None] * len(queries)
        order = np.argsort([len(p) for p in pieces], kind="stable")
        with torch.inference_mode():
            for lo in range(0, len(order), _CHUNK):
                chunk = order[lo:lo + _CHUNK]
                done = self._decode([queries[i] for i in chunk], [pieces[i] for i in chunk])
                for n, answer in zip(chunk, done):
                    answers[n] = answer
        return [a for a in answers if a is not None]

    def _decode(self, queries: list[Query], pieces: list[np.ndarray]) -> list[Answer]:
        f, cfg, tags = self.featurizer, self.config, self.featurizer.tags
        b = len(queries)
        lengths = np.array([len(p) for p in pieces], np.int64)
        flat = np.concatenate(pieces) if b else np.zeros(0, np.int32)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ctx, ctx_len = context_batch((indptr, flat), np.arange(b), f.specials)
        banned = np.zeros((b, tags.size), bool)  # (B, T + 1)
        banned[:, 0] = True
        prefix: list[list[int]] = []
        for r, q in enumerate(queries):
            chosen = [int(i) for i in dict.fromkeys(tags.indices(q.chosen)) if i > 0]
            prefix.append(chosen)
            banned[r, tags.indices([*q.exclude, *q.chosen])] = True
            if q.candidates is not None:
                allowed = np.zeros(tags.size, bool)
                allowed[tags.indices(q.candidates)] = True
                banned[r] |= ~allowed
        wanted = np.array([max(int(q.num_results), 0) for q in queries])
        ranked: list[list[tuple[str, float | None]]] = [[] for _ in range(b)]
        unk = f.specials["unk"]
        fallback = [not np.any(p != unk) and not prefix[r] for r, p in enumerate(pieces)]
        if cfg.training == "br-ef":
            probs = self._probs(ctx, ctx_len)
            for r in range(b):
                ranked[r] = self._rest(probs[r], banned[r], int(wanted[r]))
            return [Answer(ranked[r], fallback=fallback[r]) for r in range(b)]
        steps = np.minimum(wanted, cfg.max_generated)
        last = np.zeros((b, tags.size), np.float64)
        joint = np.ones(b)  # the product of the step probabilities so far
        active = np.flatnonzero(steps > 0)
        stopped = np.zeros(b, bool)
        while len(active):
            prefixes = [prefix[r] for r in active]
            lens = np.array([len(p) for p in prefixes], np.int64)
            flat_tags = np.array([t for p in prefixes for t in p], np.int64)
            starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
            tag_mat = torch.from_numpy(padded(flat_tags, starts, lens, 0))
            probs = self._probs(ctx[active], ctx_len[active], tag_mat, torch.from_numpy(lens))
            probs[banned[active]] = 0.0
            best = probs.argmax(axis=1)
            still = []
            for j, r in enumerate(active):
                p = float(probs[j, best[j]])
                if p <= 0.0 or p < cfg.min_probability:
                    stopped[r] = True  # nothing left to generate, or nothing likely enough
                    continue
                joint[r] *= p
                ranked[r].append((str(self._tag_ids[best[j]]), float(joint[r])))
                banned[r, best[j]] = True
                prefix[r].append(int(best[j]))
                probs[j, best[j]] = 0.0
                last[r] = probs[j]
                if len(ranked[r]) < steps[r]:
                    still.append(r)
            active = np.array(still, np.int64)
        for r in range(b):
            if not stopped[r] and len(ranked[r]) < wanted[r]:  # min_probability holds here too
                unlikely = banned[r] | (last[r] < cfg.min_probability)
                ranked[r] += self._rest(last[r] * joint[r], unlikely, int(wanted[r]) - len(ranked[r]))
        return [Answer(ranked[r], fallback=fallback[r]) for r in range(b)]

    def _probs(self, ctx: torch.Tensor, ctx_len: torch.Tensor, tag_mat: torch.Tensor | None = None,
               tag_len: torch.Tensor | None = None) -> np.ndarray:
        """p of eq. 6 (B, T + 1), index 0 (unknown) given 0."""
        with autocast(self.config.precision, ctx.device):
            logits = self.model(ctx, ctx_len, tag_mat, tag_len)
        probs = torch.softmax(logits[:, 1:].double(), dim=-1).numpy()
        return np.concatenate([np.zeros((len(probs), 1)), probs], axis=1)

    def _rest(self, probs: np.ndarray, banned: np.ndarray, k: int) -> list[tuple[str, float | None]]:
        """The k most likely tags not banned, best first (ties: the more frequent tag)."""
        if k < 1:
            return []
        scores = np.where(banned, -1.0, probs)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(str(self._tag_ids[j]), float(scores[j])) for j in top if scores[j] > 0.0]

    def _context(self, q: Query) -> str:
        """A query's context: its context and text fields by name, then any other field's text and
        its `text`."""
        f = self.featurizer
        named = {*f.context_fields, *f.text_fields}
        row = {k: v for k, v in q.fields.items() if k in named}
        known = {*named, *f.item_fields}  # a field of the items the model does not read stays unread
        extra = [str(v) for k, v in q.fields.items() if k not in known and isinstance(v, str) and v]
        return f.context_text(row, extra=[*extra, *([q.text] if q.text else [])])

    def update_catalog(self, tables: Mapping[DatasetKind, pa.Table],
                       schemas: Mapping[DatasetKind, Schema]) -> int:
        """Keep the items' contexts (their word pieces), so a query naming an `item_id` is answered
        from its stored text; returns how many items are stored."""
        items = tables.get(DatasetKind.ITEMS)
        id_col = column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID)
        if items is None or id_col is None:
            return 0
        f = self.featurizer
        names = [n for n in (*f.context_fields, *f.text_fields) if n in items.column_names]
        pieces = f.encode([f.context_text(r) for r in items.select(names).to_pylist()])
        self._item_pieces = (np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64),
                             np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32))
        ids = items.column(id_col).cast(pa.string()).to_pylist()
        self._items = {i: r for r, i in enumerate(ids) if i is not None}
        return len(self._items)
