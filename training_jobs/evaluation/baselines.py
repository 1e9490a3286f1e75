"""Baselines scored on the same split as the model: popularity, uniform random.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .metrics import DEFAULT_KS, _check_ks, _coverage, _summarize, perplexity, ranking_metrics
from .splits import Split, _encode, _require_columns, _to_numpy

__all__ = ["PopularityBaseline", "evaluate_popularity", "popularity_baseline", "uniform_random_metrics"]


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
