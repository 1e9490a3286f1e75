"""User-tags protocol (UTPM, §4.1 "Metrics"): a user's tag profile, scored on the tags they use next.

``user-tag-holdout`` — for a seeded sample of users, every event from the time of their
`holdout_last`-th latest tag event on is held out (events sharing that time stay together); the
user asks for their tag profile at the time of the first held-out event, from their earlier
history (the campaign's ``recommend-tags`` query, no candidate list: the whole tag vocabulary is
ranked, as UTPM ranks all its tag labels). The relevant tags are the distinct tags of the held-out
events, tags the user had used before included (UTPM predicts the next day's clicked tags).

``user-split`` — UTPM §4.1's own split (:func:`user_split`): a seeded share of the users is held
out of training whole; each test user asks from the oldest 80 % of their events (every rating,
liked or disliked, so a recipe can build its liked and disliked fields), and the relevant tags are
those of the positive events (rated at least 3.5) among their newest 20 %.

Metrics per case, averaged over the cases: precision@k (k as denominator), ``precision_minrel@k``
(UTPM's Prec@K, Eq. 5: ``min(k, |relevant|)`` as denominator), recall@k, ndcg@k, hit@k, MRR over
the ranked depth, coverage@k of the training tag vocabulary. The baseline is the task's
``tag-popularity`` recipe fitted on the same training part.

:func:`tag_holdout` is the split; the item-tags protocol (`.item_tags`) makes its cases from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Answer, Query
from recipes.common import flatten_tags, tag_lists
from sdk.tasks import TaskId
from sdk.types import DatasetKind, EvaluationConfig, Role, Schema

from .metrics import precision_minrel, ranking_metrics
from .protocols import EvalSplit, InsufficientData, Protocol
from .splits import _partition, _time_key

__all__ = ["MAX_RESULTS", "TAG_KS", "TagHoldout", "UserSplit", "UserTagHoldout", "tag_columns", "tag_holdout",
           "tag_metrics", "user_split"]

# The most tags a campaign's recommend-tags request may ask for or rank (sdk.types.TagsRequest).
MAX_RESULTS = 500
# Both papers report small cut-offs: UTPM Prec@{1,2,3} on MovieLens, GraphTR HIT@2.
TAG_KS: tuple[int, ...] = (1, 2, 3, 5, 10)


def tag_columns(schema: Schema) -> dict[str, str | None]:
    """The interactions columns the tag protocols read, by role (None: the schema has none)."""
    return {name: (f.name if (f := schema.field_for(role)) else None) for name, role in (
        ("user", Role.USER_ID), ("item", Role.ITEM_ID), ("time", Role.TIMESTAMP),
        ("event_type", Role.EVENT_TYPE), ("event_value", Role.EVENT_VALUE), ("tags", Role.TAGS))}


@dataclass(frozen=True, eq=False)
class TagHoldout:
    """A per-user temporal hold-out of tag events.

    Attributes:
        train: Every row not held out, in the original row order.
        users: The test users (ids as strings, sorted).
        histories: Per test user, their training events as a campaign's history holds them:
            ``(item_id, epoch seconds, event_type, event_value, tags tuple or None)``, oldest first.
        times: Per test user, the request time: epoch seconds of their first held-out event.
        held: Per test user, their held-out events as ``(item_id, tags list)``, in time order.
        description: The split, as the version records it.
    """

    train: pa.Table
    users: list[str]
    histories: list[list[tuple[Any, ...]]]
    times: list[float]
    held: list[list[tuple[Any, list[str]]]]
    description: dict[str, Any]


def _coded(interactions: pa.Table, cols: Mapping[str, str | None], protocol: str
           ) -> tuple[pa.Array, np.ndarray, np.ndarray, pa.Array]:
    """The sorted user ids, each row's user code (-1: no user), time key and tag count.

    Raises:
        InsufficientData: If the user, time or tags column is missing.
    """
    for name in ("user", "time", "tags"):
        if not cols.get(name) or cols[name] not in interactions.column_names:
            role = {"user": "USER_ID", "time": "TIMESTAMP", "tags": "TAGS"}[name]
            raise InsufficientData(f"{protocol} needs an interactions field with role {role}")
    users_col = interactions.column(cols["user"]).cast(pa.string())
    ids = pc.unique(pc.drop_null(users_col))
    ids = ids.take(pc.sort_indices(ids))
    ucode = pc.fill_null(pc.index_in(users_col, value_set=ids), -1).to_numpy().astype(np.int64)
    times = _time_key(interactions.column(cols["time"]), cols["time"])
    lengths = pc.list_value_length(tag_lists(interactions.column(cols["tags"])))
    return ids, ucode, times, lengths


def tag_holdout(interactions: pa.Table, cols: Mapping[str, str | None], config: EvaluationConfig,
                protocol: str) -> TagHoldout:
    """Hold out the latest tag events of a seeded sample of users.

    A user's cut is the time of their `holdout_last`-th latest event carrying tags; all of their
    events at or after it are held out. Users with at least one tag event before their cut are
    eligible; ``round(test_fraction * eligible)`` of them are drawn, but at least
    ``min(min_test_users, eligible)``. The draw depends only on the eligible ids and the seed.
    Rows without a user stay in training.

    Raises:
        InsufficientData: If a needed column is missing or no user is eligible.
    """
    ids, ucode, times, lengths = _coded(interactions, cols, protocol)
    holdout_last = config.holdout_last
    tagged = pc.fill_null(pc.greater(lengths, 0), False).to_numpy(zero_copy_only=False) & (ucode >= 0)
    n_users = len(ids)
    order = np.lexsort((times, ucode))  # by user, then time; stable: ties keep row order

    # Each user's cut: the time of their holdout_last-th latest tag event.
    t_rows = order[tagged[order]]
    tu = ucode[t_rows]
    counts = np.bincount(tu, minlength=n_users)
    from_end = np.cumsum(counts)[tu] - 1 - np.arange(len(t_rows))
    cut = np.zeros(n_users, dtype=times.dtype)
    at_cut = from_end == holdout_last - 1
    cut[tu[at_cut]] = times[t_rows[at_cut]]
    has_cut = counts >= holdout_last
    before = np.bincount(tu[has_cut[tu] & (times[t_rows] < cut[tu])], minlength=n_users)
    eligible = np.flatnonzero(has_cut & (before > 0))
    if not len(eligible):
        most = int(counts.max()) if n_users else 0
        raise InsufficientData(
            f"no user has a tag event before their {holdout_last} latest ones, so none can be held "
            f"out for evaluation (the most tag events one user has is {most}; each test user needs "
            f"more than holdout_last={holdout_last}, earlier than the held-out ones)")
    n_test = int(round(config.test_fraction * len(eligible)))
    n_test = min(len(eligible), max(n_test, min(config.min_test_users, len(eligible)), 1))
    chosen = np.sort(np.random.default_rng(config.seed).choice(eligible, size=n_test, replace=False))
    is_test = np.zeros(n_users + 1, dtype=bool)  # the last slot: rows without a user
    is_test[chosen] = True
    cut = np.append(cut, 0)
    held_mask = is_test[ucode] & (times >= cut[ucode])
    train, held_out, _ = _partition(interactions, held_mask)

    # Histories (training rows) and held-out events of the test users, in (user, time) order.
    sorted_test = order[is_test[ucode[order]]]
    hist_rows = sorted_test[~held_mask[sorted_test]]
    held_rows = sorted_test[held_mask[sorted_test]]
    hist = _events(interactions, hist_rows, cols)
    held_events = _events(interactions, held_rows, cols)
    users = [str(ids[int(c)]) for c in chosen]
    histories = _group(ucode[hist_rows], hist, chosen)
    held_groups = _group(ucode[held_rows], held_events, chosen)
    held = [[(e[0], list(e[4] or ())) for e in g] for g in held_groups]
    description = {
        "protocol": protocol,
        "rule": (f"a seeded random {config.test_fraction:g} of the users with a tag event before their "
                 f"{holdout_last} latest ones (at least {config.min_test_users} when available) have "
                 f"every event from the time of their {holdout_last}-th latest tag event on held out; "
                 "each asks at the time of its first held-out event, from its earlier history; all "
                 "other events, their earlier history included, train"),
        "fraction": config.test_fraction,
        "min_users": config.min_test_users,
        "holdout_last": holdout_last,
        "seed": config.seed,
        "users": n_users,
        "eligible_users": int(len(eligible)),
        "test_users": n_test,
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": cols["user"],
        "time_col": cols["time"],
        "tags_col": cols["tags"],
    }
    return TagHoldout(train=train, users=users, histories=histories,
                      times=[g[0][1] for g in held_groups], held=held, description=description)


def _events(table: pa.Table, rows: np.ndarray, cols: Mapping[str, str | None]) -> list[tuple[Any, ...]]:
    """Rows as campaign history events (seconds cast as `serving.campaign` does)."""
    taken = table.take(pa.array(rows, pa.int64()))
    k = len(rows)

    def column(name: str) -> list[Any]:
        c = cols.get(name)
        return taken.column(c).to_pylist() if c and c in table.column_names else [None] * k

    secs = (taken.column(cols["time"]).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            .to_numpy(zero_copy_only=False) / 1000.0).tolist() if k else []
    tags = [tuple(t) if t else None for t in tag_lists(taken.column(cols["tags"])).to_pylist()] if k else []
    items = [None if i is None else str(i) for i in column("item")]
    return list(zip(items, secs, column("event_type"), column("event_value"), tags))


def _group(codes: np.ndarray, values: list[Any], users: np.ndarray) -> list[list[Any]]:
    """`values` (contiguous per user code, in `users` order) as one list per user."""
    cuts = np.searchsorted(codes, users, side="left").tolist() + [len(values)]
    ends = np.searchsorted(codes, users, side="right").tolist()
    return [values[cuts[i]:ends[i]] for i in range(len(users))]


def tag_metrics(answers: Sequence[Answer], relevant: Sequence[Sequence[str]], ks: Sequence[int],
                catalog_size: int | None = None) -> dict[str, float]:
    """Ranking metrics of tag answers (`ranking_metrics`) and UTPM's ``precision_minrel@k``."""
    ranked = {i: a.ids for i, a in enumerate(answers)}
    rel = dict(enumerate(relevant))
    return {**ranking_metrics(ranked, rel, ks, catalog_size=catalog_size),
            **precision_minrel(ranked, rel, ks)}


def vocabulary_size(table: pa.Table, tags_col: str) -> int:
    """Distinct tags in a table's TAGS column."""
    _, flat = flatten_tags(table.column(tags_col))
    return len(pc.unique(flat)) if len(flat) else 0


class UserTagHoldout(Protocol):
    """UTPM's protocol: each test user's tag profile, full-vocabulary ranking (module docstring)."""

    name = "user-tag-holdout"
    task = TaskId.USER_TAGS
    default_ks = TAG_KS

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        return self._cases(tables, schemas, config, tag_holdout)

    def _cases(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
               config: EvaluationConfig, splitter: Any) -> EvalSplit:
        """`splitter`'s split as recommend-tags queries ranking the whole vocabulary."""
        cols = tag_columns(schemas[DatasetKind.INTERACTIONS])
        h = splitter(tables[DatasetKind.INTERACTIONS], cols, config, self.name)
        depth = min(config.depth, MAX_RESULTS)
        queries = [Query(history=hist, user_id=u, time=t, num_results=depth)
                   for u, hist, t in zip(h.users, h.histories, h.times)]
        relevant = [list(dict.fromkeys(t for _, tags in held for t in tags)) for held in h.held]
        vocabulary = vocabulary_size(h.train, cols["tags"])
        description = {
            **h.description,
            "cases": len(queries),
            "relevant_per_case": float(np.mean([len(r) for r in relevant])),
            "ranking": (f"the whole tag vocabulary ({vocabulary} training tags), no candidate list, "
                        f"top {depth} scored; relevant: the distinct tags of the held-out (positive) "
                        "events"),
        }
        return EvalSplit(protocol=self.name, train={**tables, DatasetKind.INTERACTIONS: h.train},
                         queries=queries, relevant=relevant, description=description,
                         catalog_size=vocabulary or None)

    def score(self, answers: Sequence[Answer], split: EvalSplit,
              config: EvaluationConfig) -> dict[str, float]:
        return tag_metrics(answers, split.relevant, self.ks(config), split.catalog_size)


# UTPM §4.1: the oldest 80 % of a test user's rated items build the fields; a rating of at least
# 3.5 is positive (the value `sdk.movielens_tags` and the utpm recipe use by default).
FIELD_FRACTION = 0.8
POSITIVE_VALUE = 3.5


def user_split(interactions: pa.Table, cols: Mapping[str, str | None], config: EvaluationConfig,
               protocol: str) -> TagHoldout:
    """UTPM §4.1's split: a seeded share of the USERS is held out of training whole.

    A test user's events (by time, ties in row order) are cut by position: the oldest
    ``round(FIELD_FRACTION * n)`` (at least 1, at most n - 1), every event whatever its rating,
    are the query's history; the newest ones are held out, and their positive events (carrying
    tags, with no value or a value of at least `POSITIVE_VALUE`) give the relevant tags. Users
    with 2+ events and a positive tagged event among their newest part are eligible;
    ``round(test_fraction * eligible)`` are drawn (at least 1; never every user). `min_test_users`
    does not apply: a test user leaves training whole, so a floor of 300 would take half of a
    600-user dataset's training users (and the validation split, drawn the same way from the rest,
    most of the others). Every event of the other users (and rows without a user) trains.

    Raises:
        InsufficientData: If a needed column is missing or no user is eligible.
    """
    ids, ucode, times, lengths = _coded(interactions, cols, protocol)
    positive = pc.fill_null(pc.greater(lengths, 0), False).to_numpy(zero_copy_only=False)
    value_col = cols.get("event_value")
    if value_col and value_col in interactions.column_names:
        values = interactions.column(value_col).cast(pa.float64())
        liked = pc.fill_null(pc.greater_equal(values, POSITIVE_VALUE), True)
        positive &= liked.to_numpy(zero_copy_only=False)
    n_users = len(ids)
    order = np.lexsort((np.arange(len(times)), times, ucode))  # by user, then time, then row
    order = order[ucode[order] >= 0]
    ou = ucode[order]
    counts = np.bincount(ou, minlength=n_users)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - starts[ou]  # position in the user's time order
    n_hist = np.clip(np.rint(FIELD_FRACTION * counts).astype(np.int64), 1, np.maximum(counts - 1, 1))
    newest = rank >= n_hist[ou]
    pos_new = np.bincount(ou[newest & positive[order]], minlength=n_users)
    eligible = np.flatnonzero((counts >= 2) & (pos_new > 0))
    if not len(eligible):
        raise InsufficientData(
            f"no user has a positive tagged event among the newest {1 - FIELD_FRACTION:.0%} of 2+ events "
            f"(of {n_users} users), so none can be held out for evaluation")
    n_test = max(int(round(config.test_fraction * len(eligible))), 1)
    n_test = min(n_test, len(eligible), max(n_users - 1, 1))  # a user is left to train on
    chosen = np.sort(np.random.default_rng(config.seed).choice(eligible, size=n_test, replace=False))
    is_test = np.zeros(n_users + 1, dtype=bool)  # the last slot: rows without a user
    is_test[chosen] = True
    test_mask = is_test[ucode]
    train, held_out, _ = _partition(interactions, test_mask)

    in_test = is_test[ou]
    hist_rows = order[in_test & ~newest]
    held_rows = order[in_test & newest & positive[order]]
    first_new = order[in_test & newest & (rank == n_hist[ou])]  # one per test user, in user order
    hist = _events(interactions, hist_rows, cols)
    held_events = _events(interactions, held_rows, cols)
    request = _events(interactions, first_new, cols)
    histories = _group(ucode[hist_rows], hist, chosen)
    held = [[(e[0], list(e[4] or ())) for e in g] for g in _group(ucode[held_rows], held_events, chosen)]
    description = {
        "protocol": protocol,
        "rule": (f"a seeded random {config.test_fraction:g} of the users with a positive tagged event "
                 f"among the newest {1 - FIELD_FRACTION:.0%} of their events are held out of training "
                 f"whole; each asks, "
                 f"at the time of its first newest event, from the oldest {FIELD_FRACTION:.0%} of its "
                 f"events (all ratings); relevant: the tags of its newest events rated at least "
                 f"{POSITIVE_VALUE:g} (or with no value) (UTPM §4.1)"),
        "fraction": config.test_fraction,
        "field_fraction": FIELD_FRACTION,
        "positive_value": POSITIVE_VALUE,
        "seed": config.seed,
        "users": n_users,
        "eligible_users": int(len(eligible)),
        "test_users": n_test,
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": cols["user"],
        "time_col": cols["time"],
        "tags_col": cols["tags"],
    }
    return TagHoldout(train=train, users=[str(ids[int(c)]) for c in chosen], histories=histories,
                      times=[e[1] for e in request], held=held, description=description)


class UserSplit(UserTagHoldout):
    """UTPM §4.1's protocol: users split, fields from a test user's oldest 80 % (`user_split`)."""

    name = "user-split"

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        return self._cases(tables, schemas, config, user_split)
