"""Answer recommendation requests from an HRNN-meta artifact (pure torch, no Ray, no store).

Follows Ma et al. (KDD'20): the GRU is re-run over the request's history at request time (§2.1,
the "real-time" claim: a new event changes the next answer without retraining); the time-delta
control of the last event is the gap to the request time (§2.2, Table 2); items never seen in
training are scored from their metadata alone with λ = 1 (§2.3, Table 7); with the trend bias, the
item popularity term can be replaced at serving time (§3.2, §4.5).

A history is a sequence of `(item_id, timestamp_seconds, event_type, event_value)` tuples (the
last two may be None or left out). Only the last `burn_in + bptt` events are read, the context
length the model was trained with.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from recipes.base import Answer, HistoryEvent, Predictor, Query
from sdk.types import DatasetKind, Schema

from .configuration import HrnnMetaConfig
from .featurizer import OOV, PAD, HrnnMetaFeaturizer, time_bucket
from .modeling import HrnnMetaModel

__all__ = ["HrnnMetaPredictor", "HistoryEvent"]


class HrnnMetaPredictor(Predictor):
    """A loaded HRNN-meta model answering next-item requests."""

    def __init__(self, config: HrnnMetaConfig, featurizer: HrnnMetaFeaturizer,
                 model: HrnnMetaModel) -> None:
        self.config = config
        self.featurizer = featurizer
        self.model = model.eval()
        self.max_history = config.burn_in + config.bptt
        self._item_ids = np.array(["", ""] + featurizer.item_ids, dtype=object)
        self._added: dict[str, int] = {}  # items added by update_catalog -> their score column
        self._refresh()

    @torch.no_grad()
    def _refresh(self) -> None:
        """Cache the decoder of the whole catalog (inference λ: warm_lambda, or 1 if unseen).
        Items added by `update_catalog` are dropped: add them again after a refresh."""
        self._item_ids = self._item_ids[:self.featurizer.num_items]
        self._added = {}
        weight, bias = self.model.decoder(None, None)
        bias = bias.clone()
        bias[[PAD, OOV]] = float("-inf")  # never recommended
        self._weight, self._bias = weight, bias  # (M, H), (M,)

    def set_item_popularity(self, counts: Mapping[str, float]) -> None:
        """Replace the trend term log q_j with recent popularity counts (§3.2; trend_bias only)."""
        if not self.config.trend_bias:
            raise ValueError("set_item_popularity needs a model trained with trend_bias=True")
        freq = np.zeros(self.featurizer.num_items)
        for item, count in counts.items():
            freq[self.featurizer.item_index(item)] += float(count)
        freq[[PAD, OOV]] = 0.0
        log_pop = np.log((freq + 1.0) / (freq.sum() + len(freq)))
        self.model.log_trend.copy_(torch.as_tensor(log_pop, dtype=torch.float32))
        self._refresh()

    # --- encoding requests ------------------------------------------------------------------
    def _inputs(self, histories: Sequence[Sequence[HistoryEvent]],
                user_ids: Sequence[str | None] | None,
                request_times: Sequence[float] | None) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """(B, T) input tensors (last max_history events, right-padded) and (B,) lengths."""
        f = self.featurizer
        B = len(histories)
        now = time.time()
        T = max(1, min(self.max_history, max((len(h) for h in histories), default=1)))
        items = np.zeros((B, T), np.int64)
        stamps = np.zeros((B, T + 1), np.float64)
        etypes = np.zeros((B, T), np.int64)
        values = np.zeros((B, T), np.float32)
        lengths = np.zeros(B, np.int64)
        for b, history in enumerate(histories):
            events = sorted(history, key=lambda e: float(e[1]))[-T:]  # stable: ties keep order
            n = len(events)
            lengths[b] = n
            for k, event in enumerate(events):
                items[b, k] = f.item_index(str(event[0]))
                stamps[b, k] = float(event[1])
                etypes[b, k] = f.event_type_index(event[2] if len(event) > 2 else None)
                values[b, k] = f.standardize_value(event[3] if len(event) > 3 else None)
            if n:
                request = request_times[b] if request_times is not None else now
                stamps[b, n] = max(float(request), stamps[b, n - 1])
        col = np.arange(T)[None, :]
        valid = col < lengths[:, None]
        gaps = stamps[:, 1:] - stamps[:, :-1]  # (B, T): gap to the next event / the request
        users = np.array([f.user_index(u) for u in user_ids] if user_ids is not None
                         else np.zeros(B, np.int64), np.int64)
        inputs = {
            "items": torch.from_numpy(items),
            "time_buckets": torch.from_numpy(np.where(valid, time_bucket(gaps,
                                                                         self.config.time_buckets), 0)),
            "event_types": torch.from_numpy(etypes),
            "event_values": torch.from_numpy(values),
            "user_features": torch.from_numpy(f.user_feature_rows(users)),
        }
        return inputs, lengths

    @torch.no_grad()
    def user_states(self, histories: Sequence[Sequence[HistoryEvent]], *,
                    user_ids: Sequence[str | None] | None = None,
                    request_times: Sequence[float] | None = None) -> torch.Tensor:
        """(B, H) GRU state after each history (one batched GRU pass); zeros for empty ones."""
        inputs, lengths = self._inputs(histories, user_ids, request_times)
        states = self.model.encode(**inputs)  # (B, T, H)
        last = torch.from_numpy(np.maximum(lengths - 1, 0))
        out = states[torch.arange(len(histories)), last]  # (B, H)
        out[torch.from_numpy(lengths == 0)] = 0.0
        return out

    @torch.no_grad()
    def score_histories(self, histories: Sequence[Sequence[HistoryEvent]], *,
                        user_ids: Sequence[str | None] | None = None,
                        request_times: Sequence[float] | None = None) -> torch.Tensor:
        """(B, M) scores φ̃ of every catalog item (column i is item index i; padding and OOV
        columns are -inf), then of the items `update_catalog` added. request_times default to now."""
        states = self.user_states(histories, user_ids=user_ids, request_times=request_times)
        return states @ self._weight.T + self._bias  # (B, M)

    @torch.no_grad()
    def target_log_probs(self, histories: Sequence[Sequence[HistoryEvent]],
                         targets: Sequence[Sequence[str]], *,
                         user_ids: Sequence[str | None] | None = None,
                         request_times: Sequence[float] | None = None,
                         batch_size: int = 256) -> np.ndarray:
        """Natural-log probability of each target item under the model's softmax over the
        catalog, given its history (for perplexity); unknown targets get the OOV score -inf."""
        batch_size = max(1, min(batch_size, (1 << 26) // self.featurizer.num_items))
        out: list[np.ndarray] = []
        for lo in range(0, len(histories), batch_size):
            scores = self.score_histories(
                histories[lo:lo + batch_size],
                user_ids=None if user_ids is None else user_ids[lo:lo + batch_size],
                request_times=None if request_times is None else request_times[lo:lo + batch_size])
            log_p = torch.log_softmax(scores, dim=1)
            for b, items in enumerate(targets[lo:lo + batch_size]):
                out.append(log_p[b, torch.from_numpy(self.item_index(list(items)))].numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        """Catalog column of each item id (OOV = 1 for unknown ids)."""
        return np.array([self.featurizer.item_index(i) for i in item_ids], np.int64)

    # --- the one entry point ---------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, queries: Sequence[Query], *, batch_size: int = 256) -> list[Answer]:
        """Next items for each query, with one GRU pass per `batch_size` queries.

        Per query: its history (re-read at request time, §2.1), `user_id` (user features),
        `time` (the gap to it is the last event's time-delta control, §2.2; default now),
        `candidates` (rank only these: catalog items, or new ones added by `update_catalog`,
        scored from metadata with λ = 1, §2.3), `exclude` and `num_results`. A query without
        history gets the training popularity instead (`fallback`).
        """
        batch_size = max(1, min(batch_size, (1 << 26) // max(1, self._weight.shape[0])))
        out: list[Answer] = [Answer([])] * len(queries)
        known = [i for i, q in enumerate(queries) if q.history]
        for i, q in enumerate(queries):
            if not q.history:
                out[i] = self._popular(q)
        now = time.time()
        for lo in range(0, len(known), batch_size):
            chunk = [queries[i] for i in known[lo:lo + batch_size]]
            scores = self.score_histories([q.history for q in chunk], user_ids=[q.user_id for q in chunk],
                                          request_times=[now if q.time is None else q.time for q in chunk])
            for b, q in enumerate(chunk):
                out[known[lo + b]] = Answer(self._top(scores[b], q))
        return out

    def _top(self, row: torch.Tensor, q: Query) -> list[tuple[str, float | None]]:
        """The query's best ids from one score row over the catalog (+ added items)."""
        if q.candidates is not None:
            allowed = self._positions(q.candidates)
            keep = torch.full_like(row, float("-inf"))
            keep[allowed] = row[allowed]
            row = keep
        if q.exclude:
            row = row.clone() if q.candidates is None else row
            row[self._positions(q.exclude)] = float("-inf")
        top = torch.topk(row, min(int(q.num_results), row.numel()))
        return [(str(self._item_ids[j]), float(v)) for v, j in zip(top.values.tolist(), top.indices.tolist())
                if np.isfinite(v)]

    def _popular(self, q: Query) -> Answer:
        """Training popularity (ties by catalog order), for a query the GRU has nothing to read in."""
        freq = np.zeros(len(self._item_ids))
        freq[:self.featurizer.num_items] = self.featurizer.item_freq
        order = np.argsort(-freq, kind="stable")
        allowed = np.zeros(len(freq), bool)
        if q.candidates is None:
            allowed[OOV + 1:] = True
        else:
            allowed[self._positions(q.candidates).numpy()] = True
        if q.exclude:
            allowed[self._positions(q.exclude).numpy()] = False
        best = order[allowed[order]][:int(q.num_results)]
        return Answer([(str(self._item_ids[j]), float(freq[j])) for j in best], fallback=True)

    def _positions(self, item_ids: Collection[str]) -> torch.Tensor:
        """Score columns of known ids (catalog or added); unknown ids are left out."""
        found = [self._added.get(i, self.featurizer.item_index(i)) for i in item_ids]
        return torch.tensor([p for p in found if p > OOV], dtype=torch.long)

    @torch.no_grad()
    def update_catalog(self, tables: Mapping[DatasetKind, pa.Table],
                       schemas: Mapping[DatasetKind, Schema]) -> int:
        """Add items of the items table that training never saw, scored from their metadata only
        (λ = 1, §2.3, the paper's cold start), so a campaign can recommend and rank them."""
        items = tables.get(DatasetKind.ITEMS)
        spec = self.featurizer.state["items"]
        if items is None or spec is None or spec["id"] not in items.column_names:
            return 0
        ids = items.column(spec["id"]).cast(pa.string()).to_pylist()
        rows = [r for r, i in enumerate(ids) if i is not None and self.featurizer.item_index(i) == OOV
                and i not in self._added]
        if not rows:
            return 0
        cols = [name for name, _ in spec["fields"] if name in items.column_names]
        taken = items.take(pa.array(rows)).select(cols).to_pylist()
        new = {ids[r]: row for r, row in zip(rows, taken)}
        new_ids, offsets, values = self.featurizer.encode_item_metadata(new)
        weight, bias = self.model.metadata_decoder(torch.from_numpy(offsets), torch.from_numpy(values))
        start = self._weight.shape[0]
        self._weight = torch.cat([self._weight, weight])
        self._bias = torch.cat([self._bias, bias])
        self._item_ids = np.concatenate([self._item_ids, np.array(new_ids, dtype=object)])
        self._added.update({item: start + j for j, item in enumerate(new_ids)})
        return len(new_ids)
