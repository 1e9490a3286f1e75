"""Metrics of ranked lists against relevant sets, perplexity, and the model/baseline report.

Metrics (:func:`ranking_metrics`), binary relevance, one value per user averaged over the users
with at least one relevant item. For a user with relevant set ``R`` and ranked list ``L``
(0-based positions ``r`` of the distinct relevant items found in ``L``):

* ``precision@k = |{r < k}| / k`` (k, not ``min(k, |L|)``: a short list is not rewarded)
* ``recall@k = |{r < k}| / |R|``
* ``hit@k = 1`` if any ``r < k`` else 0
* ``ndcg@k = sum_{r < k} 1 / log2(r + 2)  /  sum_{i < min(k, |R|)} 1 / log2(i + 2)``
* ``mrr = 1 / (min r + 1)`` over the whole list given, 0 if no relevant item is in it
* ``coverage@k`` = distinct items in the evaluated users' top-k / ``catalog_size``
* ``precision_minrel@k = |{r < k}| / min(k, |R|)`` (:func:`precision_minrel`; UTPM's Prec@K,
  Eq. 5: a user with fewer than k relevant ids can still reach 1)

These match ranx (``precision@k``, ``recall@k``, ``ndcg@k``, ``hit_rate@k``, ``mrr``), checked in
the tests. A relevant item repeated in a list counts once, at its first position.

Set metrics (:func:`set_metrics`, the tag-set task): each case's answer is a tag set whose first
``k`` tags are compared with the true set ``R`` (``h`` tags in common): ``precision@k = h / k``
and ``recall@k = h / |R|`` (the SOG paper's P@K and R@K, §4.1.2: the same values as
:func:`ranking_metrics`), and ``f1@k = 2h / (k + |R|)``, their harmonic mean; each is averaged over
the cases (macro, as the paper averages over posts).

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
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_KS", "UNSEEN_MASS", "compare", "perplexity", "precision_minrel", "ranking_metrics",
           "set_metrics", "smooth_log_probs"]

DEFAULT_KS: tuple[int, ...] = (5, 10, 25)

# Probability mass a model's perplexity reserves for items outside its catalog (see the docstring).
UNSEEN_MASS = 1e-3

# Metrics where a lower value is better: their lift is baseline / model (see `compare`).
_LOWER_IS_BETTER = frozenset({"perplexity"})


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


def precision_minrel(
    ranked: Mapping[Any, Sequence[Any]],
    relevant: Mapping[Any, Collection[Any]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """UTPM's precision (Eq. 5): relevant ids in the top k / ``min(k, |R|)``, averaged over the
    users with at least one relevant id (as :func:`ranking_metrics`).

    Returns:
        ``{"precision_minrel@1": ..., ...}`` (plain floats).

    Raises:
        ValueError: If no user has a relevant id, or on a bad k.
    """
    ks = _check_ks(ks)
    users = [u for u, rel in relevant.items() if len(rel) > 0]
    if not users:
        raise ValueError("no user has a relevant item: nothing to evaluate")
    hits = np.zeros((len(users), len(ks)))
    n_rel = np.empty(len(users))
    for i, u in enumerate(users):
        rel = relevant[u]
        rel_set = rel if isinstance(rel, (set, frozenset)) else set(rel)
        n_rel[i] = len(rel_set)
        ranks = _hit_ranks(ranked.get(u, ()), rel_set)
        hits[i] = [(ranks < k).sum() for k in ks]
    return {f"precision_minrel@{k}": float(np.mean(hits[:, j] / np.minimum(k, n_rel)))
            for j, k in enumerate(ks)}


def set_metrics(answers: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]],
                ks: Sequence[int]) -> dict[str, float]:
    """Precision, recall and F1 of each answer's first k ids against its true set, at each k,
    averaged over the cases with a true set (module docstring).

    Args:
        answers: Each case's answer, best first (a repeated id counts once, at its first position).
        relevant: Each case's true ids, in the same order. Cases with none are ignored.
        ks: Cut-offs.

    Returns:
        ``{"precision@1": ..., "recall@1": ..., "f1@1": ..., ...}`` (plain floats).

    Raises:
        ValueError: If no case has a true id, the lengths differ, or on a bad k.
    """
    ks = _check_ks(ks)
    if len(answers) != len(relevant):
        raise ValueError(f"{len(answers)} answers for {len(relevant)} cases")
    cases = [(list(a), set(r)) for a, r in zip(answers, relevant) if len(r) > 0]
    if not cases:
        raise ValueError("no case has a true tag: nothing to evaluate")
    out: dict[str, float] = {}
    for k in ks:
        hits = np.array([len(rel.intersection(a[:k])) for a, rel in cases], dtype=np.float64)
        n_rel = np.array([len(rel) for _, rel in cases], dtype=np.float64)
        out[f"precision@{k}"] = float(np.mean(hits / k))
        out[f"recall@{k}"] = float(np.mean(hits / n_rel))
        out[f"f1@{k}"] = float(np.mean(2.0 * hits / (k + n_rel)))
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
