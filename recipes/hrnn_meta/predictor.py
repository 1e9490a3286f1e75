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

import json
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipes.base import ARTIFACT_FILES, Predictor, Recommendation

from .configuration import HrnnMetaConfig
from .featurizer import OOV, PAD, HrnnMetaFeaturizer, time_bucket
from .modeling import HrnnMetaModel

__all__ = ["HrnnMetaPredictor", "HistoryEvent"]

HistoryEvent = tuple[Any, ...]  # (item_id, timestamp_seconds[, event_type[, event_value]])


class HrnnMetaPredictor(Predictor):
    """A loaded HRNN-meta model answering next-item requests."""

    def __init__(self, config: HrnnMetaConfig, featurizer: HrnnMetaFeaturizer,
                 model: HrnnMetaModel) -> None:
        self.config = config
        self.featurizer = featurizer
        self.model = model.eval()
        self.max_history = config.burn_in + config.bptt
        self._item_ids = np.array(["", ""] + featurizer.item_ids, dtype=object)
        self._refresh()

    @classmethod
    def load(cls, directory: Path) -> HrnnMetaPredictor:
        directory = Path(directory)
        meta = json.loads((directory / ARTIFACT_FILES["recipe"]).read_text())
        if meta.get("recipe") != "hrnn-meta":
            raise ValueError(f"{directory} holds a {meta.get('recipe')!r} model, not hrnn-meta")
        config = HrnnMetaConfig.model_validate_json(
            (directory / ARTIFACT_FILES["config"]).read_text())
        featurizer = HrnnMetaFeaturizer.load(directory / ARTIFACT_FILES["featurizer"])
        model = HrnnMetaModel.from_featurizer(config, featurizer)
        state = torch.load(directory / ARTIFACT_FILES["weights"], map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
        return cls(config, featurizer, model)

    @torch.no_grad()
    def _refresh(self) -> None:
        """Cache the decoder of the whole catalog (inference λ: warm_lambda, or 1 if unseen)."""
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
        """(B, num_items) scores φ̃ of every catalog item (column i is item index i; padding and
        OOV columns are -inf). request_times default to now."""
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

    def top_k_batch(self, histories: Sequence[Sequence[HistoryEvent]], k: int, *,
                    exclude_seen: bool = True, user_ids: Sequence[str | None] | None = None,
                    request_times: Sequence[float] | None = None,
                    candidates: Collection[str] | None = None,
                    batch_size: int = 256) -> list[list[str]]:
        """The k best item ids for each history (offline evaluation; batched, no per-item loop).

        Args:
            histories: One event sequence per request.
            k: Number of items per answer (fewer if fewer candidates remain).
            exclude_seen: Drop items of the history itself.
            user_ids: Optional user id per history (for user features).
            request_times: Epoch seconds of each request (default: now); for a temporal
                hold-out pass the time of the first held-out event.
            candidates: Rank only these item ids (e.g. cold-start items).
            batch_size: Histories per GRU pass (lowered so a score block stays under ~256 MB).
        """
        batch_size = max(1, min(batch_size, (1 << 26) // self.featurizer.num_items))
        allowed = None
        if candidates is not None:
            allowed = torch.zeros(self.featurizer.num_items, dtype=torch.bool)
            allowed[torch.from_numpy(self.item_index(list(candidates)))] = True
            allowed[[PAD, OOV]] = False
        out: list[list[str]] = []
        for lo in range(0, len(histories), batch_size):
            chunk = histories[lo:lo + batch_size]
            scores = self.score_histories(
                chunk, user_ids=None if user_ids is None else user_ids[lo:lo + batch_size],
                request_times=None if request_times is None else request_times[lo:lo + batch_size])
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            if exclude_seen:
                for b, history in enumerate(chunk):
                    seen = torch.from_numpy(self.item_index([str(e[0]) for e in history]))
                    scores[b, seen] = float("-inf")
            top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            for values, index in zip(top.values, top.indices):
                keep = torch.isfinite(values)
                out.append(self._item_ids[index[keep].numpy()].tolist())
        return out

    @torch.no_grad()
    def recommend_batch(self, histories: Sequence[Sequence[HistoryEvent]], *,
                        user_ids: Sequence[str | None], request_times: Sequence[float],
                        num_results: Sequence[int], exclude: Sequence[Collection[str]],
                        candidates: Sequence[Collection[str] | None]) -> list[list[Recommendation]]:
        """`recommend` for several requests with one GRU pass (what a serving replica batches).

        Per request: its history, user id, time, list length, items to leave out, and the items
        to rank (None: the whole catalog). Unknown candidate ids are left out of the answer.
        """
        scores = self.score_histories(histories, user_ids=user_ids, request_times=request_times)
        out: list[list[Recommendation]] = []
        for b in range(len(histories)):
            row = scores[b]
            if candidates[b] is not None:
                allowed = torch.from_numpy(self.item_index(list(candidates[b])))
                allowed = allowed[allowed > OOV]
                keep = torch.full_like(row, float("-inf"))
                keep[allowed] = row[allowed]
                row = keep
            if exclude[b]:
                row = row.clone() if candidates[b] is None else row
                row[torch.from_numpy(self.item_index(list(exclude[b])))] = float("-inf")
            top = torch.topk(row, min(int(num_results[b]), row.numel()))
            out.append([Recommendation(item_id=str(self._item_ids[j]), score=float(s))
                        for s, j in zip(top.values.tolist(), top.indices.tolist()) if np.isfinite(s)])
        return out

    @torch.no_grad()
    def recommend(self, history: Sequence[HistoryEvent], *, user_id: str | None = None,
                  num_results: int = 25, exclude: Collection[str] = frozenset(),
                  cold_start_items: Mapping[str, Mapping[str, Any]] | None = None,
                  timestamp: float | None = None,
                  candidates: Collection[str] | None = None) -> list[Recommendation]:
        """Rank items for one request by re-running the GRU over its history.

        Args:
            history: The user's events so far (any order; sorted by timestamp here).
            user_id: For user features; unknown ids get none.
            num_results: Length of the answer.
            exclude: Item ids never to return.
            cold_start_items: New items not in the catalog, {item_id: {items-table column: value}},
                scored from their metadata only (λ = 1) and ranked with the catalog.
            timestamp: Request time in epoch seconds (default: now).
            candidates: Rank only these item ids (catalog or cold-start ones).
        """
        state = self.user_states([history], user_ids=[user_id],
                                 request_times=[time.time() if timestamp is None else timestamp])
        scores = (state @ self._weight.T + self._bias)[0]  # (M,)
        ids = self._item_ids
        if cold_start_items:
            new = {i: m for i, m in cold_start_items.items()
                   if self.featurizer.item_index(i) == OOV}
            new_ids, offsets, values = self.featurizer.encode_item_metadata(new)
            if new_ids:
                weight, bias = self.model.metadata_decoder(torch.from_numpy(offsets),
                                                           torch.from_numpy(values))
                scores = torch.cat([scores, state[0] @ weight.T + bias])  # (M + new,)
                ids = np.concatenate([ids, np.array(new_ids, dtype=object)])
        new_position = {item: len(self._item_ids) + j for j, item in enumerate(ids[len(self._item_ids):])}

        def positions(items: Collection[str]) -> torch.Tensor:
            found = [new_position.get(i, self.featurizer.item_index(i)) for i in items]
            return torch.tensor([p for p in found if p != OOV], dtype=torch.long)

        mask = torch.zeros_like(scores, dtype=torch.bool)
        if candidates is not None:
            mask[:] = True
            mask[positions(candidates)] = False
        if exclude:
            mask[positions(exclude)] = True
        scores = scores.masked_fill(mask, float("-inf"))
        top = torch.topk(scores, min(num_results, scores.numel()))
        return [Recommendation(item_id=str(ids[j]), score=float(s))
                for s, j in zip(top.values.tolist(), top.indices.tolist()) if np.isfinite(s)]
