"""Offline evaluation shared by all recipes: hold-out splits, ranking metrics, baselines.

Pure numpy / pyarrow (no torch, no Ray), so the same code scores a model in a training job, a
benchmark script or a notebook.

Splits (both return a :class:`Split`; ``Split.describe()`` is what a version stores):

* :func:`temporal_holdout` — the HRNN-meta protocol: for a seeded random sample of users, their
  most recent interactions are held out; all other rows (their earlier history included) train.
* :func:`cold_start_split` — the paper's Table 7: half of the items are held out; the model
  trains without them and ranks only them, for each user who interacted with them.

Metrics (:func:`ranking_metrics`), binary relevance, one value per user averaged over the users
with at least one relevant item. For a user with relevant set ``R`` and ranked list ``L``
(0-based positions ``r`` of the distinct relevant items found in ``L``):

* ``precision@k = |{r < k}| / k`` (k, not ``min(k, |L|)``: a short list is not rewarded)
* ``recall@k = |{r < k}| / |R|``
* ``hit@k = 1`` if any ``r < k`` else 0
* ``ndcg@k = sum_{r < k} 1 / log2(r + 2)  /  sum_{i < min(k, |R|)} 1 / log2(i + 2)``
* ``mrr = 1 / (min r + 1)`` over the whole list given, 0 if no relevant item is in it
* ``coverage@k`` = distinct items in the evaluated users' top-k / ``catalog_size``

These match ranx (``precision@k``, ``recall@k``, ``ndcg@k``, ``hit_rate@k``, ``mrr``), checked in
the tests. A relevant item repeated in a list counts once, at its first position.

Perplexity (:func:`perplexity`) is ``exp(-mean(log p))`` of the held-out targets. A model gives a
target it never saw in training probability 0, which would make it infinite; so model
probabilities are smoothed first (:func:`smooth_log_probs`): ``p' = (1 - a) p + a / (V + 1)``
with ``a = UNSEEN_MASS`` (1e-3) and ``V`` the model's catalog size, the ``+ 1`` standing for
"an item not in the catalog". The popularity baseline is Laplace-smoothed over a catalog that
includes the held-out items. A metric that still cannot be computed is left out of the
document and its reason given under ``unavailable`` (see :func:`compare`): records are strict
JSON, never NaN or Infinity.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEFAULT_KS",
    "PopularityBaseline",
    "Split",
    "UNSEEN_MASS",
    "cold_start_split",
    "compare",
    "evaluate_popularity",
    "perplexity",
    "popularity_baseline",
    "ranking_metrics",
    "smooth_log_probs",
    "temporal_holdout",
    "uniform_random_metrics",
]

DEFAULT_KS: tuple[int, ...] = (5, 10, 25)

# Probability mass a model's perplexity reserves for items outside its catalog (see the docstring).
UNSEEN_MASS = 1e-3

# Metrics where a lower value is better: their lift is baseline / model (see `compare`).
_LOWER_IS_BETTER = frozenset({"perplexity"})


# ---------------------------------------------------------------------------------------------
# Splits


@dataclass(frozen=True, eq=False)
class Split:
    """Training rows and a held-out test set, with the protocol that made them.

    Attributes:
        train: Every row not held out, in the original row order.
        held_out: The held-out rows, in the original row order.
        test_histories: For each test user, the row indices into ``train`` of the user's
            history (their training rows), oldest first. Empty for a cold-start user with no
            training rows. ``train.take(idx)`` gives the rows.
        test_targets: For each test user, the held-out items, oldest first.
        candidates: The items to rank (cold start: only the held-out items); ``None`` means
            the whole catalog.
        user_col: Name of the user id column.
        item_col: Name of the item id column.
        time_col: Name of the timestamp column.
        protocol: What :meth:`describe` returns.
    """

    train: pa.Table
    held_out: pa.Table
    test_histories: dict[Any, np.ndarray]
    test_targets: dict[Any, list[Any]]
    user_col: str
    item_col: str
    time_col: str
    candidates: list[Any] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def test_users(self) -> list[Any]:
        """The test users, in sorted id order."""
        return list(self.test_targets)

    def history(self, user: Any) -> pa.Table:
        """A test user's training rows, oldest first."""
        return self.train.take(pa.array(self.test_histories[user], type=pa.int64()))

    def history_items(self) -> dict[Any, list[Any]]:
        """Each test user's history as a list of item ids, oldest first."""
        groups = list(self.test_histories.values())
        if not groups:
            return {}
        rows = np.concatenate(groups).astype(np.int64)
        flat = self.train.column(self.item_col).take(pa.array(rows)).to_pylist()
        ends = np.cumsum([len(g) for g in groups]).tolist()
        return {u: flat[e - len(g):e] for (u, g), e in zip(self.test_histories.items(), ends)}

    def describe(self) -> dict[str, Any]:
        """The protocol as a JSON-serializable dict, to store on the version."""
        return dict(self.protocol)


def temporal_holdout(
    interactions: pa.Table,
    *,
    user_col: str,
    item_col: str,
    time_col: str,
    fraction: float = 0.1,
    min_users: int = 300,
    holdout_last: int = 1,
    seed: int = 0,
) -> Split:
    """Hold out the most recent interactions of a seeded random sample of users.

    Users with more than ``holdout_last`` interactions are eligible (so every test user keeps
    some history). ``round(fraction * eligible)`` of them are drawn, but at least
    ``min(min_users, eligible)``. Each drawn user's ``holdout_last`` latest rows are held out;
    ties in time go by original row order (the later row counts as more recent). The draw
    depends only on the set of user ids, their counts and ``seed``, not on row order.

    Args:
        interactions: One row per interaction.
        user_col: User id column.
        item_col: Item id column.
        time_col: Timestamp column (numeric, timestamp or date).
        fraction: Fraction of eligible users to test, in (0, 1].
        min_users: Lower bound on the number of test users, capped by the eligible count.
        holdout_last: Most recent interactions held out per test user.
        seed: Seed of the user draw.

    Returns:
        The split; ``describe()`` documents it.

    Raises:
        ValueError: On a bad argument, a missing column or null ids/timestamps.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if min_users < 0:
        raise ValueError(f"min_users must be >= 0, got {min_users}")
    if holdout_last < 1:
        raise ValueError(f"holdout_last must be >= 1, got {holdout_last}")
    _require_columns(interactions, (user_col, item_col, time_col))

    n = interactions.num_rows
    ucode, users = _encode(interactions.column(user_col), user_col)
    times = _time_key(interactions.column(time_col), time_col)
    order = np.lexsort((times, ucode))  # by user, then time; stable: ties keep row order
    su = ucode[order]
    counts = np.bincount(ucode, minlength=len(users))
    ends = np.cumsum(counts)
    from_end = ends[su] - 1 - np.arange(n)  # 0 = the user's most recent row

    eligible = np.flatnonzero(counts > holdout_last)
    n_test = int(round(fraction * len(eligible)))
    n_test = min(len(eligible), max(n_test, min(min_users, len(eligible)), 1 if len(eligible) else 0))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=n_test, replace=False)) if n_test else eligible[:0]
    is_test = np.zeros(len(users), dtype=bool)
    is_test[chosen] = True

    held_sorted = is_test[su] & (from_end < holdout_last)
    held_mask = np.zeros(n, dtype=bool)
    held_mask[order[held_sorted]] = True
    train, held_out, train_pos = _partition(interactions, held_mask)

    # Histories: test users' training rows in (user, time) order, as indices into `train`.
    hist_sorted = is_test[su] & ~held_sorted
    hist_rows = train_pos[order[hist_sorted]]
    hist_groups = _split_by(su[hist_sorted], hist_rows)
    test_histories = {users[c]: hist_groups.get(c, hist_rows[:0]) for c in chosen.tolist()}

    # Targets: exactly `holdout_last` per test user, in (user, time) order.
    target_items = interactions.column(item_col).take(pa.array(order[held_sorted])).to_pylist()
    test_targets = {users[c]: target_items[i * holdout_last:(i + 1) * holdout_last]
                    for i, c in enumerate(chosen.tolist())}

    protocol = {
        "protocol": "temporal-holdout",
        "rule": (f"a seeded random {fraction:g} of the users with more than {holdout_last} "
                 f"interaction(s) (at least {min_users} when available) have their "
                 f"{holdout_last} most recent interaction(s) held out (ties in time by row "
                 "order); all other interactions, their earlier history included, train"),
        "fraction": fraction,
        "min_users": min_users,
        "holdout_last": holdout_last,
        "seed": seed,
        "users": len(users),
        "eligible_users": int(len(eligible)),
        "test_users": n_test,
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
    }
    return Split(train=train, held_out=held_out, test_histories=test_histories,
                 test_targets=test_targets, user_col=user_col, item_col=item_col,
                 time_col=time_col, candidates=None, protocol=protocol)


def cold_start_split(
    interactions: pa.Table,
    items: pa.Table | None = None,
    *,
    item_col: str,
    user_col: str,
    time_col: str,
    fraction: float = 0.5,
    seed: int = 0,
) -> Split:
    """Hold out a seeded random ``fraction`` of the items (the paper's Table 7 cold start).

    The catalog is the distinct ids of ``items`` (or of the interactions when ``items`` is
    None). Every interaction with a held-out item leaves training. Each user who interacted
    with a held-out item is a test user: targets are those items (distinct, in order of first
    interaction), history is the user's training rows, and the candidates to rank are only the
    held-out items.

    Args:
        interactions: One row per interaction.
        items: The item catalog (e.g. the items dataset with the metadata), or None.
        item_col: Item id column (in both tables).
        user_col: User id column.
        time_col: Timestamp column.
        fraction: Fraction of the catalog held out, in (0, 1).
        seed: Seed of the item draw.

    Returns:
        The split, with ``candidates`` set to the held-out items.

    Raises:
        ValueError: On a bad argument, a missing column, null ids or a catalog under 2 items.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    _require_columns(interactions, (user_col, item_col, time_col))
    item_type = interactions.schema.field(item_col).type
    if items is not None:
        _require_columns(items, (item_col,))
        catalog_col = items.column(item_col).cast(item_type)
    else:
        catalog_col = interactions.column(item_col)
    _, catalog = _encode(catalog_col, item_col)
    if len(catalog) < 2:
        raise ValueError(f"the catalog has {len(catalog)} item(s): nothing to hold out")
    n_hold = min(len(catalog) - 1, max(1, int(round(fraction * len(catalog)))))
    rng = np.random.default_rng(seed)
    held_idx = np.sort(rng.choice(len(catalog), size=n_hold, replace=False))
    held_items = pa.array([catalog[i] for i in held_idx.tolist()], type=item_type)

    ucode, users = _encode(interactions.column(user_col), user_col)
    icode = _to_numpy(pc.index_in(interactions.column(item_col), value_set=held_items), -1)
    times = _time_key(interactions.column(time_col), time_col)
    held_mask = icode >= 0
    train, held_out, train_pos = _partition(interactions, held_mask)

    order = np.lexsort((times, ucode))
    su, s_held = ucode[order], held_mask[order]
    # Targets: distinct (user, item) pairs among held rows, first interaction first.
    key = su[s_held].astype(np.int64) * n_hold + icode[order][s_held]
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    t_users = su[s_held][first]
    t_items = held_items.take(pa.array(icode[order][s_held][first])).to_pylist()
    target_groups = _split_by(t_users, np.arange(len(t_users)))
    test_users = sorted(target_groups)
    test_targets = {users[c]: [t_items[i] for i in target_groups[c].tolist()] for c in test_users}

    in_test = np.zeros(len(users), dtype=bool)
    in_test[test_users] = True
    hist_sorted = in_test[su] & ~s_held
    hist_rows = train_pos[order[hist_sorted]]
    hist_groups = _split_by(su[hist_sorted], hist_rows)
    test_histories = {users[c]: hist_groups.get(c, hist_rows[:0]) for c in test_users}

    protocol = {
        "protocol": "item-cold-start",
        "rule": (f"a seeded random {fraction:g} of the catalog's items is held out; training "
                 "keeps only interactions with the other items; each user who interacted with "
                 "a held-out item ranks the held-out items only, those items being the targets"),
        "fraction": fraction,
        "seed": seed,
        "catalog_items": len(catalog),
        "held_out_items": n_hold,
        "test_users": len(test_users),
        "targets": len(t_items),
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
    }
    return Split(train=train, held_out=held_out, test_histories=test_histories,
                 test_targets=test_targets, user_col=user_col, item_col=item_col,
                 time_col=time_col, candidates=held_items.to_pylist(), protocol=protocol)


# ---------------------------------------------------------------------------------------------
# Metrics


def ranking_metrics(
    ranked: Mapping[Any, Sequence[Any]],
    relevant: Mapping[Any, Collection[Any]],
    ks: Sequence[int] = DEFAULT_KS,
    catalog_size: int | None = None,
) -> dict[str, float]:
    """Precision, recall, NDCG and hit rate at each k, MRR, and coverage (module docstring).

    Args:
        ranked: Each user's ranked items, best first (a list or a 1-D numpy array). A user
            missing here is scored as an empty list.
        relevant: Each user's relevant items. Users with none are ignored.
        ks: Cut-offs.
        catalog_size: Number of items in the catalog; adds ``coverage@k`` when given.

    Returns:
        ``{"precision@5": ..., "recall@5": ..., "ndcg@5": ..., "hit@5": ..., ...,
        "mrr": ..., "coverage@5": ...}`` (plain floats).

    Raises:
        ValueError: If no user has a relevant item, or on a bad k or catalog size.
    """
    ks = _check_ks(ks)
    users = [u for u, rel in relevant.items() if len(rel) > 0]
    if not users:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    hit_ranks = []
    n_rel = np.empty(len(users), dtype=np.float64)
    for i, u in enumerate(users):
        rel = relevant[u]
        rel_set = rel if isinstance(rel, (set, frozenset)) else set(rel)
        n_rel[i] = len(rel_set)
        hit_ranks.append(_hit_ranks(ranked.get(u, ()), rel_set))
    out = _summarize(hit_ranks, n_rel, ks)
    if catalog_size is not None:
        out.update(_coverage([ranked.get(u, ()) for u in users], ks, catalog_size))
    return out


def perplexity(log_probs_of_targets: np.ndarray) -> float:
    """``exp(-mean(log p))`` of the targets' natural-log probabilities.

    A model with perplexity ``p`` is as uncertain as a uniform choice among ``p`` items.

    Raises:
        ValueError: On an empty input or NaN.
    """
    lp = np.asarray(log_probs_of_targets, dtype=np.float64).ravel()
    if lp.size == 0:
        raise ValueError("perplexity of no targets")
    if np.isnan(lp).any():
        raise ValueError("log probabilities contain NaN")
    return float(np.exp(-lp.mean()))


def smooth_log_probs(log_probs: np.ndarray, vocabulary_size: int, mass: float = UNSEEN_MASS) -> np.ndarray:
    """``log((1 - mass) * p + mass / (vocabulary_size + 1))`` of natural-log probabilities.

    Keeps a target the model never saw (``log p = -inf``) finite: it gets ``mass / (V + 1)``, the
    share of one extra "not in the catalog" item. The smoothed values still sum to at most 1 over
    the catalog plus that item.
    """
    if vocabulary_size < 1 or not 0.0 < mass < 1.0:
        raise ValueError(f"need vocabulary_size >= 1 and 0 < mass < 1, got {vocabulary_size}, {mass}")
    lp = np.asarray(log_probs, dtype=np.float64)
    return np.logaddexp(np.log1p(-mass) + lp, math.log(mass / (vocabulary_size + 1)))


def uniform_random_metrics(
    split: Split, ks: Sequence[int] = DEFAULT_KS, catalog_size: int | None = None,
) -> dict[str, float]:
    """Exact expected metrics of a uniformly random ranking of the candidates (no sampling).

    The cold-start baseline of the paper's Table 7: without interactions even popularity is
    unknown. Ranks ``split.candidates`` (or a catalog of ``catalog_size`` items when the split
    has none); seen items are not excluded. No coverage keys.

    Raises:
        ValueError: If the candidate count is unknown or smaller than a user's target count.
    """
    ks = _check_ks(ks)
    n = len(split.candidates) if split.candidates is not None else catalog_size
    if n is None:
        raise ValueError("catalog_size is needed when the split has no candidate set")
    r_all = np.array([len(set(t)) for t in split.test_targets.values() if len(t)], dtype=np.int64)
    if r_all.size == 0:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    if r_all.max() > n:
        raise ValueError(f"a user has {r_all.max()} targets but only {n} items are ranked")
    disc = 1.0 / np.log2(np.arange(n) + 2.0)
    cum_disc = np.cumsum(disc)
    out: dict[str, float] = {}
    for k in ks:
        m = min(k, n)
        hit = np.empty(r_all.size)
        for r in np.unique(r_all):  # P(no target in the top m) = C(n - r, m) / C(n, m)
            j = np.arange(m)
            miss = float(np.prod(np.clip((n - r - j) / (n - j), 0.0, None)))
            hit[r_all == r] = 1.0 - miss
        ideal = cum_disc[np.minimum(k, r_all) - 1]
        out[f"precision@{k}"] = float(np.mean(m * r_all / n / k))
        out[f"recall@{k}"] = m / n
        out[f"ndcg@{k}"] = float(np.mean(r_all / n * cum_disc[m - 1] / ideal))
        out[f"hit@{k}"] = float(np.mean(hit))
    mrr = np.empty(r_all.size)
    i = np.arange(1, n + 1)
    for r in np.unique(r_all):  # S(i) = P(first hit after rank i) = prod_{t<=i} (n-r-t+1)/(n-t+1)
        survive = np.cumprod(np.clip((n - r - i + 1) / (n - i + 1), 0.0, None))
        p_first = np.concatenate(([1.0], survive[:-1])) - survive
        mrr[r_all == r] = float(np.sum(p_first / i))
    out["mrr"] = float(np.mean(mrr))
    return out


# ---------------------------------------------------------------------------------------------
# Popularity baseline


class PopularityBaseline:
    """Recommends the most frequent training items (ties by item id), the same for everyone.

    Build with :func:`popularity_baseline`. ``items`` holds the catalog in rank order and
    ``counts`` their training counts.
    """

    def __init__(self, items: list[Any], counts: np.ndarray, *, exclude_seen: bool = True,
                 k: int = 25, smoothing: float = 1.0,
                 seen: tuple[dict[Any, int], np.ndarray, np.ndarray] | None = None) -> None:
        self.items = items
        self.counts = counts
        self.exclude_seen = exclude_seen
        self.k = k
        self.smoothing = smoothing
        self._rank = {item: i for i, item in enumerate(items)}
        norm = float(counts.sum()) + smoothing * len(items)
        self._log_norm = math.log(norm) if norm > 0 else math.inf
        self._seen = seen  # (user -> group, offsets, items grouped by user) from the train table

    def recommend(self, history_items: Iterable[Any] = (), k: int | None = None, *,
                  candidates: Collection[Any] | None = None) -> list[Any]:
        """The top ``k`` items, skipping ``history_items`` when ``exclude_seen``.

        Args:
            history_items: The user's past items.
            k: List length (default: the baseline's ``k``); fewer when the catalog runs out.
            candidates: Rank only these items (default: the whole catalog).
        """
        k = self.k if k is None else k
        order = self.items if candidates is None else self._order(candidates)
        seen = set(history_items) if self.exclude_seen else set()
        out: list[Any] = []
        for item in order:
            if len(out) >= k:
                break
            if item not in seen:
                out.append(item)
        return out

    def rank_all(self, users: Iterable[Any], *, histories: Mapping[Any, Iterable[Any]] | None = None,
                 k: int | None = None, candidates: Collection[Any] | None = None
                 ) -> dict[Any, list[Any]]:
        """:meth:`recommend` for each user.

        A user's history comes from ``histories`` when given, else from the training table
        (when the baseline was built with ``user_col``), else is empty.
        """
        order = None if candidates is None else self._order(candidates)
        return {u: self.recommend(self._history(u, histories), k, candidates=order) for u in users}

    def log_prob(self, item: Any) -> float:
        """Natural log of ``(count + smoothing) / (total + smoothing * catalog)``.

        Independent of the history; an item outside the catalog gets the zero-count value.
        """
        i = self._rank.get(item)
        mass = (float(self.counts[i]) if i is not None else 0.0) + self.smoothing
        return math.log(mass) - self._log_norm if mass > 0 else -math.inf

    def log_probs(self, items: Iterable[Any]) -> np.ndarray:
        """:meth:`log_prob` of each item."""
        return np.array([self.log_prob(it) for it in items], dtype=np.float64)

    # Internals -------------------------------------------------------------------------------

    def _order(self, candidates: Collection[Any]) -> list[Any]:
        if isinstance(candidates, _Ordered):
            return candidates
        known = sorted((self._rank[c], c) for c in set(candidates) if c in self._rank)
        unknown = sorted(c for c in set(candidates) if c not in self._rank)
        return _Ordered([c for _, c in known] + unknown)

    def _history(self, user: Any, histories: Mapping[Any, Iterable[Any]] | None) -> Iterable[Any]:
        if not self.exclude_seen:
            return ()
        if histories is not None:
            return histories.get(user, ())
        if self._seen is None:
            return ()
        group, offsets, grouped = self._seen
        g = group.get(user)
        return () if g is None else grouped[offsets[g]:offsets[g + 1]].tolist()

    def _target_ranks(self, history: Iterable[Any], targets: Collection[Any],
                      order: list[Any] | None) -> np.ndarray:
        """0-based positions of ``targets`` in the full ranking for this history (sorted)."""
        pos = self._rank if order is None else {c: i for i, c in enumerate(order)}
        seen = set(history) if self.exclude_seen else set()
        seen_pos = np.sort(np.fromiter((pos[s] for s in seen if s in pos), dtype=np.int64))
        t_pos = np.sort(np.fromiter((pos[t] for t in set(targets) if t in pos and t not in seen),
                                    dtype=np.int64))
        return t_pos - np.searchsorted(seen_pos, t_pos)


class _Ordered(list):
    """A candidate list already in ranking order."""


def popularity_baseline(
    train: pa.Table,
    *,
    item_col: str,
    user_col: str | None = None,
    exclude_seen: bool = True,
    k: int = 25,
    catalog: Iterable[Any] | None = None,
    smoothing: float = 1.0,
) -> PopularityBaseline:
    """Fit the popularity baseline: items ranked by training count, ties by item id.

    Args:
        train: Training interactions.
        item_col: Item id column.
        user_col: User id column; when given, :meth:`PopularityBaseline.rank_all` takes each
            user's seen items from ``train``.
        exclude_seen: Never recommend an item the user already has in their history.
        k: Default list length.
        catalog: Extra catalog items (count 0, ranked last by id) so they can be ranked and
            get probability mass.
        smoothing: Additive (Laplace) smoothing of :meth:`PopularityBaseline.log_prob`.

    Returns:
        The fitted baseline.
    """
    _require_columns(train, (item_col,) + ((user_col,) if user_col else ()))
    item_type = train.schema.field(item_col).type
    vc = pc.value_counts(train.column(item_col).drop_null()) if train.num_rows else None
    values = vc.field("values") if vc is not None else pa.array([], type=item_type)
    counts = vc.field("counts") if vc is not None else pa.array([], type=pa.int64())
    if catalog is not None:
        extra = pa.array(list(catalog), type=item_type)
        extra = pc.filter(extra, pc.invert(pc.is_in(extra, value_set=values)))
        extra = pc.unique(extra.drop_null())
        values = pa.concat_arrays([values, extra])
        counts = pa.concat_arrays([counts, pa.array(np.zeros(len(extra), dtype=np.int64))])
    table = pa.table({"item": values, "count": counts})
    table = table.sort_by([("count", "descending"), ("item", "ascending")])
    seen = None
    if user_col is not None and exclude_seen and train.num_rows:
        ucode, users = _encode(train.column(user_col), user_col)
        order = np.argsort(ucode, kind="stable")
        grouped = _to_numpy(train.column(item_col).take(pa.array(order)), None)
        offsets = np.concatenate(([0], np.cumsum(np.bincount(ucode, minlength=len(users)))))
        seen = ({u: i for i, u in enumerate(users)}, offsets, grouped)
    return PopularityBaseline(table.column("item").to_pylist(),
                              table.column("count").to_numpy().astype(np.int64),
                              exclude_seen=exclude_seen, k=k, smoothing=smoothing, seen=seen)


def evaluate_popularity(
    split: Split,
    ks: Sequence[int] = DEFAULT_KS,
    catalog_size: int | None = None,
    *,
    depth: int | None = None,
    baseline: PopularityBaseline | None = None,
) -> dict[str, float]:
    """The popularity baseline's metrics on a split: the keys of :func:`ranking_metrics` plus
    ``perplexity``.

    Fits on ``split.train`` (catalog: training, held-out and candidate items) unless a
    ``baseline`` is given, excludes each test user's history, ranks ``split.candidates`` when
    set. ``mrr`` is over the full ranking when ``depth`` is None (computed exactly, without
    building full lists), else over the top ``depth``; use the model's list depth for a
    like-for-like MRR.
    """
    ks = _check_ks(ks)
    if baseline is None:
        extra = split.held_out.column(split.item_col).to_pylist()
        baseline = popularity_baseline(split.train, item_col=split.item_col, exclude_seen=True,
                                       catalog=extra + list(split.candidates or ()))
    users = [u for u, t in split.test_targets.items() if len(t)]
    if not users:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    histories = split.history_items()
    order = None if split.candidates is None else baseline._order(split.candidates)
    if depth is not None:
        ranked = baseline.rank_all(users, histories=histories, k=depth, candidates=order)
        out = ranking_metrics(ranked, split.test_targets, ks, catalog_size)
    else:
        hit_ranks = [baseline._target_ranks(histories[u], split.test_targets[u], order)
                     for u in users]
        n_rel = np.array([len(set(split.test_targets[u])) for u in users], dtype=np.float64)
        out = _summarize(hit_ranks, n_rel, ks)
        if catalog_size is not None:
            top = baseline.rank_all(users, histories=histories, k=max(ks), candidates=order)
            out.update(_coverage(list(top.values()), ks, catalog_size))
    targets = [t for u in users for t in split.test_targets[u]]
    out["perplexity"] = perplexity(baseline.log_probs(targets))
    return out


def compare(model_metrics: Mapping[str, float], baseline_metrics: Mapping[str, float], *,
            baseline: str = "popularity") -> dict[str, Any]:
    """Model and baseline metrics side by side, with the model's lift.

    ``lift[key] = model / baseline`` for numeric keys in both with a baseline above 0; for
    lower-is-better keys (``perplexity``) it is ``baseline / model`` (model above 0), so a lift
    above 1 always means the model is better.

    A value that is not a finite number (NaN, infinite) is left out of ``model`` / ``baselines``
    and named under ``unavailable`` (``"model.perplexity": reason``), so the document is strict JSON.

    Returns:
        ``{"model": {...}, "baselines": {baseline: {...}}, "lift": {...}, "unavailable": {...}}``.
    """
    unavailable: dict[str, str] = {}

    def finite(side: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                unavailable[f"{side}.{key}"] = f"not a finite number ({value}) on this split"
            else:
                out[key] = value
        return out

    model_metrics, baseline_metrics = finite("model", model_metrics), finite(baseline, baseline_metrics)
    lift: dict[str, float] = {}
    for key, m in model_metrics.items():
        b = baseline_metrics.get(key)
        if not _is_number(m) or not _is_number(b):
            continue
        if key in _LOWER_IS_BETTER:
            if m > 0:
                lift[key] = float(b) / float(m)
        elif b > 0:
            lift[key] = float(m) / float(b)
    return {"model": model_metrics, "baselines": {baseline: baseline_metrics}, "lift": lift,
            "unavailable": unavailable}


# ---------------------------------------------------------------------------------------------
# Internals


def _require_columns(table: pa.Table, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {table.column_names}")


def _encode(col: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, list[Any]]:
    """Codes of each value into the sorted distinct values, and those values."""
    if col.null_count:
        raise ValueError(f"column {name!r} has {col.null_count} null(s)")
    uniq = pc.unique(col)
    uniq = uniq.take(pc.sort_indices(uniq))
    codes = _to_numpy(pc.index_in(col, value_set=uniq), None).astype(np.int64, copy=False)
    return codes, uniq.to_pylist()


def _to_numpy(arr: pa.ChunkedArray | pa.Array, null_value: Any) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if null_value is not None and arr.null_count:
        arr = arr.fill_null(null_value)
    return arr.to_numpy(zero_copy_only=False)


def _time_key(col: pa.ChunkedArray, name: str) -> np.ndarray:
    if col.null_count:
        raise ValueError(f"column {name!r} has {col.null_count} null(s)")
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        raise ValueError(f"column {name!r} must be numeric or a timestamp, not {t}")
    values = _to_numpy(col, None)
    if values.dtype.kind in "mM":
        values = values.view(np.int64)
    return values


def _partition(table: pa.Table, held_mask: np.ndarray) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """(rows not held, rows held, each original row's index in the first), order kept."""
    train = table.filter(pa.array(~held_mask))
    held = table.filter(pa.array(held_mask))
    train_pos = np.cumsum(~held_mask) - 1
    return train, held, train_pos


def _split_by(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """Group ``values`` by ``keys`` (keys already sorted, groups contiguous)."""
    if keys.size == 0:
        return {}
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], cuts))
    return dict(zip(keys[starts].tolist(), np.split(values, cuts)))


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def _hit_ranks(ranked: Sequence[Any], rel: Collection[Any]) -> np.ndarray:
    """Sorted 0-based positions of the distinct relevant items in ``ranked`` (first occurrence)."""
    if isinstance(ranked, np.ndarray) and ranked.dtype.kind in "iuf" and len(ranked) > 256:
        rel_arr = np.array(list(rel))
        if rel_arr.dtype.kind not in "iuf":
            ranked = ranked.tolist()
        else:
            pos = np.flatnonzero(np.isin(ranked, rel_arr))
            _, first = np.unique(ranked[pos], return_index=True)
            return np.sort(pos[first])
    found: set[Any] = set()
    out: list[int] = []
    for i, item in enumerate(ranked):
        if item in rel and item not in found:
            found.add(item)
            out.append(i)
            if len(found) == len(rel):
                break
    return np.array(out, dtype=np.int64)


def _summarize(hit_ranks: list[np.ndarray], n_rel: np.ndarray, ks: tuple[int, ...]
               ) -> dict[str, float]:
    n_users = len(hit_ranks)
    lens = np.array([len(r) for r in hit_ranks], dtype=np.int64)
    user = np.repeat(np.arange(n_users), lens)
    ranks = np.concatenate(hit_ranks).astype(np.int64) if n_users else np.zeros(0, np.int64)
    disc = 1.0 / np.log2(ranks + 2.0)
    ideal_cum = np.cumsum(1.0 / np.log2(np.arange(max(ks)) + 2.0))
    out: dict[str, float] = {}
    for k in ks:
        top = ranks < k
        hits = np.bincount(user[top], minlength=n_users).astype(np.float64)
        dcg = np.bincount(user[top], weights=disc[top], minlength=n_users)
        idcg = ideal_cum[np.minimum(k, n_rel).astype(np.int64) - 1]
        out[f"precision@{k}"] = float(np.mean(hits / k))
        out[f"recall@{k}"] = float(np.mean(hits / n_rel))
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
        out[f"hit@{k}"] = float(np.mean(hits > 0))
    first = np.array([r[0] if len(r) else -1 for r in hit_ranks], dtype=np.float64)
    rr = np.zeros(n_users)
    rr[first >= 0] = 1.0 / (first[first >= 0] + 1.0)
    out["mrr"] = float(np.mean(rr))
    return out


def _coverage(lists: list[Sequence[Any]], ks: tuple[int, ...], catalog_size: int
              ) -> dict[str, float]:
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be >= 1, got {catalog_size}")
    out = {}
    for k in ks:
        distinct: set[Any] = set()
        for lst in lists:
            top = lst[:k]
            distinct.update(top.tolist() if isinstance(top, np.ndarray) else top)
        out[f"coverage@{k}"] = len(distinct) / catalog_size
    return out


def _is_number(x: Any) -> bool:
    numeric = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    return numeric and math.isfinite(float(x))
