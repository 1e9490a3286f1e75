"""Arrow tables → UTPM samples: vocabularies, each item's tags and categories, the users' fields.

Follows Yan et al. (CIKM'20) §3 "Feature-input layer" (M multi-valued categorical fields of up to H
features: tags and categories of the items a user liked, and of those they disliked, plus the user's
demographic fields) and §4.1 (labels from ratings: >= 3.5 positive, <= 1.5 negative, the rest
dropped; for each user the oldest 80 % of the ratings build the fields, the next labelled items are
the labels).

* An event's label (:meth:`UtpmFeaturizer.label`): a positive/negative event type, else its value
  against the thresholds, else (no value: a click, a tag application) positive.
* An event's tags: its own TAGS when it carries some (a tag the user applied), else its item's first
  N tags: the items dataset's TAGS field, then the tags the interactions applied to the item most.
* A field's features: its values in the user's history by count, ties to the most recent, first H
  (:meth:`UtpmFeaturizer.fields`). The same code builds a training sample's fields from the events
  before its cut and a request's fields from the query's history, so serving reads what training
  learned from, and a new rating changes the profile at the next request.

Fields, in order: ``liked:tags``, ``liked:<category field>``... and, with `disliked_fields`,
``disliked:tags``, ``disliked:<category field>``..., then ``user:<field>``... Category fields are the
items' categorical fields other than TAGS (e.g. genres); user fields are the users' categorical,
string, bool and numeric fields (numbers in quantile buckets). Index 0 of every field is padding /
unknown. The state is ``featurizer.json`` plus ``.npy`` arrays (never pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer, HistoryEvent
from recipes.common import Vocabulary, column_for, flatten_tags, tag_lists
from sdk.types import DatasetKind, FieldType, Role, Schema

from .configuration import UtpmConfig

__all__ = ["UtpmExamples", "UtpmFeaturizer"]

_STATE = "featurizer.json"
_ARRAYS = ("item_tags", "item_cats", "user_feats", "tag_counts")
_NUMERIC_BUCKETS = 8
_USER_KINDS = {FieldType.CATEGORICAL, FieldType.STRING, FieldType.BOOL, FieldType.INT, FieldType.FLOAT}


@dataclass
class UtpmExamples:
    """Training samples: one per (user, cut), with up to K labelled items after the cut."""

    fields: np.ndarray  # (S, M, H) int64 feature index per field (0 = padding)
    label_tags: np.ndarray  # (S, K, N) int64 tag index of each label's tags (0 = padding)
    labels: np.ndarray  # (S, K) float32 1 clicked / 0 shown-not-clicked
    label_mask: np.ndarray  # (S, K) bool: a label is there
    num_events: int  # events read

    @property
    def num_samples(self) -> int:
        return int(self.fields.shape[0])


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


class UtpmFeaturizer(Featurizer):
    """Fitted vocabularies and item/user tables; builds fields and samples (module docstring)."""

    def __init__(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.state, self.arrays = state, arrays
        self.config = UtpmConfig.model_validate(state["config"])
        self.tags = Vocabulary(state["tags"])
        self.items = Vocabulary(state["items"])
        self.users = Vocabulary(state["users"])
        self.categories = {name: Vocabulary(ids) for name, ids in state["categories"].items()}
        self.user_fields = {name: Vocabulary(ids) for name, ids in state["user_fields"].items()}
        self.item_tags = arrays["item_tags"]  # (I + 1, N)
        self.item_cats = arrays["item_cats"]  # (I + 1, Cf, Hc): per category field, its values
        self.user_feats = arrays["user_feats"]  # (Us + 1, Mu)
        self.tag_counts = arrays["tag_counts"]  # (V + 1,) positive label uses per tag

    # --- sizes ------------------------------------------------------------------------------
    @property
    def field_names(self) -> list[str]:
        sides = ["liked", "disliked"] if self.config.disliked_fields else ["liked"]
        names = [f"{s}:{f}" for s in sides for f in ["tags", *self.categories]]
        return names + [f"user:{f}" for f in self.user_fields]

    @property
    def field_sizes(self) -> list[int]:
        """Embedding rows each field needs (its vocabulary plus index 0)."""
        per_side = [self.tags.size, *(v.size for v in self.categories.values())]
        sides = 2 if self.config.disliked_fields else 1
        return per_side * sides + [v.size for v in self.user_fields.values()]

    @property
    def num_tags(self) -> int:
        return self.tags.size

    # --- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: UtpmConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> UtpmFeaturizer:
        inter = tables.get(DatasetKind.INTERACTIONS)
        cols = {r: column_for(schemas, DatasetKind.INTERACTIONS, r) for r in
                (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP, Role.EVENT_TYPE, Role.EVENT_VALUE, Role.TAGS)}
        for role in (Role.USER_ID, Role.TIMESTAMP):
            if inter is None or cols[role] is None or cols[role] not in inter.column_names:
                raise ValueError(f"recipe 'utpm' needs an interactions dataset with a field of role "
                                 f"{role.value}")
        if not any(cols[r] for r in (Role.ITEM_ID, Role.TAGS)):
            raise ValueError("recipe 'utpm' needs an interactions field of role ITEM_ID or TAGS (the "
                             "items whose tags and categories build a user's fields)")
        items_table = tables.get(DatasetKind.ITEMS)
        item_id_col = column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID)
        item_tag_col = column_for(schemas, DatasetKind.ITEMS, Role.TAGS)
        if items_table is None or item_id_col not in (items_table.column_names if items_table else ()):
            items_table, item_id_col, item_tag_col = None, None, None
        cat_fields = []
        if items_table is not None:
            cat_fields = [f.name for f in schemas[DatasetKind.ITEMS].fields
                          if f.type == FieldType.CATEGORICAL and f.role is None
                          and f.name in items_table.column_names]

        # Tags: the items' and the interactions' (rare ones dropped); item ids: both tables'.
        tag_sources = []
        inter_tags = inter.column(cols[Role.TAGS]) if cols[Role.TAGS] in inter.column_names else None
        if inter_tags is not None:
            tag_sources.append(flatten_tags(inter_tags)[1])
        if item_tag_col is not None and item_tag_col in items_table.column_names:
            tag_sources.append(flatten_tags(items_table.column(item_tag_col))[1])
        all_tags = pa.chunked_array(tag_sources, pa.string()) if tag_sources else pa.array([], pa.string())
        tags = Vocabulary.fit(all_tags, by_count=True, min_count=config.min_tag_count)
        item_sources = []
        if cols[Role.ITEM_ID] in inter.column_names:
            item_sources.append(inter.column(cols[Role.ITEM_ID]).cast(pa.string()))
        if items_table is not None:
            item_sources.append(items_table.column(item_id_col).cast(pa.string()))
        items = Vocabulary.fit(pa.chunked_array([c for s in item_sources for c in s.chunks], pa.string())
                               if item_sources else [])
        N, Hc = config.tags_per_item, config.max_features
        item_tags = np.zeros((items.size, N), np.int64)
        item_cats = np.zeros((items.size, len(cat_fields), Hc), np.int64)
        categories = {name: Vocabulary.fit(pc.list_flatten(tag_lists(items_table.column(name))))
                      for name in cat_fields}
        if items_table is not None:
            ids, tag_rows, cat_rows = _item_rows(items_table, item_id_col, item_tag_col, tags, categories,
                                                 N, Hc)
            idx = items.indices(ids)
            ok = idx > 0
            item_tags[idx[ok]], item_cats[idx[ok]] = tag_rows[ok], cat_rows[ok]
        if inter_tags is not None and cols[Role.ITEM_ID] in inter.column_names:
            # Fill each item's remaining tag slots with the tags applied to it most.
            rows, flat = flatten_tags(inter_tags)
            it = items.encode(inter.column(cols[Role.ITEM_ID]).take(pa.array(rows)))
            tg = tags.encode(flat)
            ok = (it > 0) & (tg > 0)
            pairs, n = np.unique(np.stack([it[ok], tg[ok]], 1), axis=0, return_counts=True)
            order = np.lexsort((pairs[:, 1], -n, pairs[:, 0]))
            for i, t in pairs[order].tolist():
                row = item_tags[i]
                free = np.flatnonzero(row == 0)
                if len(free) and t not in row:
                    row[free[0]] = t

        users, user_fields, edges, user_feats = _fit_users(tables.get(DatasetKind.USERS), schemas)
        state = {
            "config": config.model_dump(mode="json"),
            "columns": {r.value: c for r, c in cols.items()},
            "item_columns": {"id": item_id_col, "tags": item_tag_col},
            "user_id_column": column_for(schemas, DatasetKind.USERS, Role.USER_ID),
            "tags": tags.ids, "items": items.ids, "users": users.ids,
            "categories": {k: v.ids for k, v in categories.items()},
            "user_fields": {k: v.ids for k, v in user_fields.items()},
            "numeric_edges": edges,
        }
        arrays = {"item_tags": item_tags, "item_cats": item_cats, "user_feats": user_feats,
                  "tag_counts": np.zeros(tags.size, np.float64)}
        featurizer = cls(state, arrays)
        counts = np.zeros(tags.size, np.float64)
        for history in featurizer.histories(inter).values():
            for label, event_tags in zip(*featurizer.encode_history(history)[1:]):
                if label == 1:
                    np.add.at(counts, [t for t in event_tags if t], 1.0)
        featurizer.arrays["tag_counts"] = featurizer.tag_counts = counts
        return featurizer

    # --- events -----------------------------------------------------------------------------
    def label(self, event_type: Any, event_value: Any) -> int:
        """1 positive, 0 negative, -1 dropped (between the thresholds) (§4.1)."""
        cfg = self.config
        if event_type is not None and str(event_type) in cfg.positive_event_types:
            return 1
        if event_type is not None and str(event_type) in cfg.negative_event_types:
            return 0
        if _is_number(event_value):
            v = float(event_value)
            return 1 if v >= cfg.positive_threshold else 0 if v <= cfg.negative_threshold else -1
        return 1

    def encode_history(self, history: Sequence[HistoryEvent]
                       ) -> tuple[list[int], list[int], list[tuple[int, ...]]]:
        """Events (oldest first) as (item indices, labels, tag indices): an event's tags are its own
        known TAGS, else its item's first N."""
        items, labels, tags = [], [], []
        N = self.config.tags_per_item
        for e in history:
            item = self.items.index(None if e[0] is None else str(e[0]))
            own = e[4] if len(e) > 4 and e[4] else ()
            known = tuple(t for t in dict.fromkeys(self.tags.indices(own)) if t)[:N] if own else ()
            items.append(item)
            labels.append(self.label(e[2] if len(e) > 2 else None, e[3] if len(e) > 3 else None))
            tags.append(known or tuple(int(t) for t in self.item_tags[item] if t))
        return items, labels, tags

    def fields(self, items: Sequence[int], labels: Sequence[int], tags: Sequence[tuple[int, ...]],
               user: int) -> np.ndarray:
        """(M, H) features of a user with these past events (module docstring)."""
        H = self.config.max_features
        cats = len(self.categories)
        sides = (1, 0) if self.config.disliked_fields else (1,)
        out = np.zeros((len(self.field_names), H), np.int64)
        for s, side in enumerate(sides):
            counters: list[dict[int, list[int]]] = [{} for _ in range(1 + cats)]
            for pos, (item, label, event_tags) in enumerate(zip(items, labels, tags)):
                if label != side:
                    continue
                values = [event_tags, *(self.item_cats[item, c] for c in range(cats))]
                for counter, vals in zip(counters, values):
                    for v in vals:
                        if v:
                            got = counter.setdefault(int(v), [0, 0])
                            got[0], got[1] = got[0] + 1, pos
            for f, counter in enumerate(counters):
                best = sorted(counter, key=lambda v: (-counter[v][0], -counter[v][1]))[:H]
                out[s * (1 + cats) + f, :len(best)] = best
        if self.user_fields:
            out[len(sides) * (1 + cats):, 0] = self.user_feats[user]
        return out

    def histories(self, interactions: pa.Table) -> dict[str, list[HistoryEvent]]:
        """Each user's events as history tuples (item, seconds, type, value, tags), oldest first
        (ties by row order)."""
        c = self.state["columns"]
        n = interactions.num_rows

        def column(role: Role) -> list[Any]:
            name = c.get(role.value)
            return interactions.column(name).to_pylist() if name and name in interactions.column_names \
                else [None] * n

        users = interactions.column(c["USER_ID"]).cast(pa.string()).to_pylist()
        secs = (interactions.column(c["TIMESTAMP"]).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
                .to_numpy(zero_copy_only=False) / 1000.0) if n else np.zeros(0)
        tag_col = c.get("TAGS")
        tags = tag_lists(interactions.column(tag_col)).to_pylist() \
            if tag_col and tag_col in interactions.column_names else [None] * n
        items, types, values = column(Role.ITEM_ID), column(Role.EVENT_TYPE), column(Role.EVENT_VALUE)
        out: dict[str, list[HistoryEvent]] = {}
        for r in np.argsort(secs, kind="stable").tolist():
            if users[r] is not None:
                out.setdefault(users[r], []).append(
                    (items[r], float(secs[r]), types[r], values[r], tuple(tags[r]) if tags[r] else None))
        return out

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> UtpmExamples:
        """Training samples: for each user (sorted ids) and cut point (`cuts_per_user`, evenly spaced
        up to `field_fraction` of their events), the fields of the (at most `max_history`) events
        before the cut and the first K labelled items with tags after it."""
        cfg = self.config
        K, N = cfg.max_labels, cfg.tags_per_item
        fields, label_tags, labels, masks = [], [], [], []
        histories = self.histories(tables[DatasetKind.INTERACTIONS])
        events = 0
        for user in sorted(histories):
            items, labs, tags = self.encode_history(histories[user])
            events += len(items)
            n = len(items)
            uidx = self.users.index(user)
            ends = [int(round(n * cfg.field_fraction * (j + 1) / cfg.cuts_per_user))
                    for j in range(cfg.cuts_per_user)]
            cuts = sorted({min(max(c, 1), n - 1) for c in ends}) if n > 1 else []
            for cut in cuts:
                after = [(labs[i], tags[i]) for i in range(cut, n) if labs[i] >= 0 and tags[i]][:K]
                if not after:
                    continue
                lt = np.zeros((K, N), np.int64)
                y = np.zeros(K, np.float32)
                mask = np.zeros(K, bool)
                for k, (lab, t) in enumerate(after):
                    lt[k, :len(t)], y[k], mask[k] = t, lab, True
                lo = max(cut - cfg.max_history, 0)  # what a request reads
                fields.append(self.fields(items[lo:cut], labs[lo:cut], tags[lo:cut], uidx))
                label_tags.append(lt)
                labels.append(y)
                masks.append(mask)
        if not fields:
            raise ValueError("recipe 'utpm' found no training sample: no user has a labelled item with tags "
                             "after the oldest events of their history (check the TAGS fields and the "
                             "positive/negative thresholds against the event values)")
        if not any(y[m].any() for y, m in zip(labels, masks)):
            seen = sorted({str(e[2]) for h in histories.values() for e in h if e[2] is not None})[:5]
            raise ValueError(
                f"recipe 'utpm' found no positive label: an event is positive when its value is at least "
                f"positive_threshold ({cfg.positive_threshold:g}) or its type is in positive_event_types "
                f"({cfg.positive_event_types}); the data's event types: {seen} (clicks with value 1 are "
                f"negative by the rating thresholds: set positive_event_types, e.g. ['click'])")
        return UtpmExamples(fields=np.stack(fields), label_tags=np.stack(label_tags),
                            labels=np.stack(labels), label_mask=np.stack(masks), num_events=events)

    def query_fields(self, history: Sequence[HistoryEvent], user_id: str | None
                     ) -> tuple[np.ndarray, set[int]]:
        """(M, H) fields of a request (the user's latest `max_history` events and their user fields),
        and the tags of every liked item among those events (the user's clicked tags)."""
        events = sorted(history, key=lambda e: float(e[1]))[-self.config.max_history:]
        items, labels, tags = self.encode_history(events)
        clicked = {t for label, ts in zip(labels, tags) if label == 1 for t in ts}
        return self.fields(items, labels, tags, self.users.index(user_id)), clicked

    def add_catalog(self, tables: Mapping[DatasetKind, pa.Table]) -> int:
        """Learn items and users added since training (their tags, categories and demographics in
        the fitted vocabularies), so a rating of a new item or a new user's fields count; returns
        how many were added."""
        added = 0
        items, cols = tables.get(DatasetKind.ITEMS), self.state["item_columns"]
        if items is not None and cols["id"] and cols["id"] in items.column_names:
            ids, tag_rows, cat_rows = _item_rows(items, cols["id"], cols["tags"], self.tags, self.categories,
                                                 self.config.tags_per_item, self.config.max_features)
            new = [r for r, i in enumerate(ids) if i is not None and not self.items.index(i)]
            new = list({ids[r]: r for r in new}.values())  # the last row of each id
            if new:
                self.items = Vocabulary(self.items.ids + [ids[r] for r in new])
                self.item_tags = np.concatenate([self.item_tags, tag_rows[new]])
                self.item_cats = np.concatenate([self.item_cats, cat_rows[new]])
                self.state["items"] = self.items.ids
                self.arrays.update(item_tags=self.item_tags, item_cats=self.item_cats)
                added += len(new)
        users, id_col = tables.get(DatasetKind.USERS), self.state["user_id_column"]
        if users is not None and self.user_fields and id_col and id_col in users.column_names:
            ids = users.column(id_col).cast(pa.string()).to_pylist()
            new = list({i: r for r, i in enumerate(ids)
                        if i is not None and not self.users.index(i)}.values())  # last row of each id
            if new:
                taken = users.take(pa.array(new))
                feats = np.zeros((len(new), len(self.user_fields)), np.int64)
                for c, (name, vocab) in enumerate(self.user_fields.items()):
                    if name in taken.column_names:
                        feats[:, c] = vocab.indices(_user_tokens(taken.column(name),
                                                                 self.state["numeric_edges"].get(name)))
                self.users = Vocabulary(self.users.ids + [ids[r] for r in new])
                self.user_feats = np.concatenate([self.user_feats, feats])
                self.state["users"] = self.users.ids
                self.arrays["user_feats"] = self.user_feats
                added += len(new)
        return added

    # --- state ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        (directory / _STATE).write_text(json.dumps(self.state, indent=1))
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name], allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> UtpmFeaturizer:
        state = json.loads((directory / _STATE).read_text())
        return cls(state, {n: np.load(directory / f"{n}.npy", allow_pickle=False) for n in _ARRAYS})


def _item_rows(table: pa.Table, id_col: str, tag_col: str | None, tags: Vocabulary,
               categories: Mapping[str, Vocabulary], n: int, h: int
               ) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """Per row of an items table: its id, its first `n` known tags, its first `h` known values of
    each category field."""
    ids = table.column(id_col).cast(pa.string()).to_pylist()
    tag_rows = np.zeros((len(ids), n), np.int64)
    cat_rows = np.zeros((len(ids), len(categories), h), np.int64)
    if tag_col is not None and tag_col in table.column_names:
        for r, lst in enumerate(tag_lists(table.column(tag_col)).to_pylist()):
            known = [t for t in dict.fromkeys(tags.indices(lst or [])) if t][:n]
            tag_rows[r, :len(known)] = known
    for c, (name, vocab) in enumerate(categories.items()):
        if name not in table.column_names:
            continue
        for r, lst in enumerate(tag_lists(table.column(name)).to_pylist()):
            known = [v for v in dict.fromkeys(vocab.indices(lst or [])) if v][:h]
            cat_rows[r, c, :len(known)] = known
    return ids, tag_rows, cat_rows


def _user_tokens(col: pa.ChunkedArray | pa.Array, edges: Sequence[float] | None) -> list[str | None]:
    """A demographic column as tokens: numbers as their quantile bucket ``q<k>`` (with `edges`),
    anything else as its string (a list: its first value)."""
    if edges is not None:
        x = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return [f"q{int(np.searchsorted(edges, v, 'right'))}" if np.isfinite(v) else None for v in x.tolist()]
    values = tag_lists(col).to_pylist() if pa.types.is_list(col.type) else col.to_pylist()
    return [(v[0] if v else None) if isinstance(v, list) else (None if v is None else str(v)) for v in values]


def _fit_users(users: pa.Table | None, schemas: Mapping[DatasetKind, Schema]
               ) -> tuple[Vocabulary, dict[str, Vocabulary], dict[str, list[float]], np.ndarray]:
    """The users' ids, a vocabulary per demographic field (values seen on 2+ users; numbers as
    quantile buckets ``q0``.. with their edges), and each user's (Mu,) feature indices."""
    schema = schemas.get(DatasetKind.USERS)
    id_col = column_for(schemas, DatasetKind.USERS, Role.USER_ID)
    if users is None or schema is None or id_col not in users.column_names:
        return Vocabulary([]), {}, {}, np.zeros((1, 0), np.int64)
    users = users.filter(pc.is_valid(users.column(id_col)))
    ids = Vocabulary.fit(users.column(id_col).cast(pa.string()))
    rows = ids.encode(users.column(id_col))
    vocabs: dict[str, Vocabulary] = {}
    edges: dict[str, list[float]] = {}
    tokens: dict[str, list[str | None]] = {}
    for f in schema.fields:
        if f.role is not None or f.type not in _USER_KINDS or f.name not in users.column_names:
            continue
        col = users.column(f.name)
        if f.type in (FieldType.INT, FieldType.FLOAT):
            x = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            finite = x[np.isfinite(x)]
            if not len(finite):
                continue
            cuts = np.linspace(0, 1, _NUMERIC_BUCKETS + 1)[1:-1]
            edges[f.name] = np.unique(np.quantile(finite, cuts)).tolist()
        tokens[f.name] = _user_tokens(col, edges.get(f.name))
        vocabs[f.name] = Vocabulary.fit(tokens[f.name], min_count=2)
    feats = np.zeros((ids.size, len(vocabs)), np.int64)
    for c, (name, vocab) in enumerate(vocabs.items()):
        feats[rows, c] = vocab.indices(tokens[name])
    return ids, vocabs, edges, feats
