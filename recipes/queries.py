"""How a request becomes a predictor's `Query`: the histories a task reads from an interactions
table, and the query of each runtime verb. A campaign replica builds every request's query here, and
a batch inference job builds each user's (as the replica would for that user's request), so both ask
the predictor the same question. Pure numpy/pyarrow (no torch, no store).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sdk.types import Role, Schema

from .base import Query

__all__ = ["Histories", "history_length", "request_query"]

DEFAULT_HISTORY = 64  # events kept per history key for a predictor that names no `max_history`


def history_length(predictor: Any) -> int:
    """How many of a key's latest events the predictor reads (its `max_history`, if it has one)."""
    return int(getattr(predictor, "max_history", DEFAULT_HISTORY))


class Histories:
    """Each key's (user's or session's) latest events from an interactions snapshot, in flat
    arrays (no per-key Python objects): (item, seconds, event_type, event_value, tags), oldest
    first."""

    def __init__(self, table: pa.Table, schema: Schema, keep: int, key_role: Role) -> None:
        col = {r: (f.name if (f := schema.field_for(r)) else None)
               for r in (key_role, Role.ITEM_ID, Role.TIMESTAMP, Role.EVENT_TYPE, Role.EVENT_VALUE,
                         Role.TAGS)}
        if col[key_role] is None:  # the dataset cannot key histories this way
            table = table.slice(0, 0)
        n = table.num_rows
        keys = table.column(col[key_role]).combine_chunks() if n else pa.array([], pa.string())
        if n and keys.null_count:  # rows without the key (e.g. no session) belong to no history
            table = table.filter(pc.is_valid(keys))
            keys = table.column(col[key_role]).combine_chunks()
            n = table.num_rows
        secs = (table.column(col[Role.TIMESTAMP]).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
                .to_numpy() / 1000.0) if n else np.zeros(0)
        codes = pc.dictionary_encode(keys) if n else None
        ucode = codes.indices.to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
        order = np.lexsort((secs, ucode))
        su = ucode[order]
        counts = np.bincount(su, minlength=len(codes.dictionary) if n else 0)
        ends = np.cumsum(counts)
        starts = np.maximum(ends - keep, ends - counts)  # the last `keep` of each key
        pos = np.arange(n) - np.repeat(ends - counts, counts)
        keep_mask = pos >= np.repeat(starts - (ends - counts), counts)
        rows = order[keep_mask]
        kept = np.bincount(su[keep_mask], minlength=len(counts))
        offsets = np.concatenate(([0], np.cumsum(kept)))
        self.index = {u: i for i, u in enumerate(codes.dictionary.to_pylist())} if n else {}
        self.offsets = offsets
        take = pa.array(rows, pa.int64())

        def column(role: Role) -> np.ndarray:
            if not col[role] or not n:
                return np.full(len(rows), None, object)
            return np.asarray(table.column(col[role]).take(take).to_pylist(), dtype=object)

        self.items = column(Role.ITEM_ID)
        self.secs = secs[rows]
        self.types = column(Role.EVENT_TYPE)
        self.values = column(Role.EVENT_VALUE)
        self.tags = column(Role.TAGS)

    def get(self, key: str) -> list[tuple[Any, ...]]:
        i = self.index.get(key)
        if i is None:
            return []
        lo, hi = self.offsets[i], self.offsets[i + 1]
        tags = [None if t is None else tuple(t) for t in self.tags[lo:hi].tolist()]
        return list(zip(self.items[lo:hi].tolist(), self.secs[lo:hi].tolist(),
                        self.types[lo:hi].tolist(), self.values[lo:hi].tolist(), tags))


def history_key(req: Any) -> str | None:
    """The user or session whose history answers this request (the task's request key)."""
    return getattr(req, "session_id", None) or getattr(req, "user_id", None)


def request_query(verb: str, req: Any, history: list[tuple[Any, ...]], now: float) -> Query:
    """A runtime request as the predictor's query (the same object offline evaluation builds)."""
    when = float(getattr(req, "context", {}).get("timestamp", now))
    if verb in ("recommend", "rank"):
        exclude = {str(e[0]) for e in history if e[0] is not None} \
            if verb == "recommend" and req.exclude_seen else set()
        return Query(history=history, user_id=req.user_id, time=when, exclude=exclude,
                     num_results=len(set(req.items)) if verb == "rank" else req.num_results,
                     candidates=list(dict.fromkeys(req.items)) if verb == "rank" else None)
    if verb == "recommend-tags":
        exclude = {t for e in history for t in (e[4] if len(e) > 4 and e[4] else ())} \
            if req.exclude_seen else set()
        return Query(history=history, user_id=req.user_id, item_id=req.item_id, time=when,
                     candidates=list(dict.fromkeys(req.tags)) if req.tags else None,
                     exclude=exclude, num_results=req.num_results)
    if verb == "generate-tags":
        return Query(item_id=req.item_id, text=req.text, fields=dict(req.fields), chosen=list(req.chosen),
                     exclude=set(req.chosen), num_results=req.num_results, time=now)
    # next-tags: the stored session plus the clicks sent with the request
    extra = [(e.item_id, now if e.timestamp is None else e.timestamp, "question_click" if e.item_id
              else "tag_click", None, (e.tag,) if e.tag else None) for e in req.events]
    merged = sorted(history + extra, key=lambda e: e[1])
    fields = {"num_questions": req.num_questions}
    if req.organisation:
        fields["organisation"] = req.organisation
    return Query(history=merged, session_id=req.session_id, text=req.text, fields=fields, time=now,
                 num_results=req.num_results)
