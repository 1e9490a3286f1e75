"""HRNN-meta quality on MovieLens latest-small: model vs popularity, and item cold start vs random.

What runs (one process, plain PyTorch, no Ray: the generic training loop `training_jobs.loop`;
every number printed is measured in this run):

* `sdk.movielens.convert` turns ../shared/data/movielens-latest-small into Parquet tables
  (ratings as interactions with event_value = stars, genres + year as item metadata).
* **Temporal hold-out.** A seeded 10% of the users (`--test-fraction`) have their last
  `--holdout` interactions held out; everything else trains the model (those users' earlier
  interactions included, as Personalize's split does). For each test user the model re-runs the
  GRU over the history before the hold-out, with the request time set to the first held-out
  event, ranks the whole catalog minus the items already in the history, and the held-out items
  are the relevant ones. Popularity (training interaction counts, history items removed) is
  ranked the same way. Metrics: NDCG@10, precision@10, MRR (exact rank over the whole catalog;
  ties broken by item index, the same for both). Goal from the issue: NDCG@10 ≥ 1.5x popularity.
* **Item cold start** (the paper's Table 7). A seeded half of the rated items is held out: all
  their interactions are removed from training (they stay in the items table, so only their
  genres/year are known). Every user who rated a held-out item is evaluated: the input is the
  user's remaining history, the request time its last event, the candidates are the held-out
  items only (λ = 1: metadata only), the relevant ones those the user rated. Uniform random is
  given by its exact expectation. Metrics: MRR, precision@5/25, NDCG@5/25. Goal: MRR ≥ 2x random.

Usage:
    .venv/bin/python benchmarks/hrnn_meta_quality.py [--data DIR] [--seed 0] [--holdout 1]
        [--set epochs=8 --set learning_rate=0.01 ...] [--skip-cold-start] [--ranx] [--json]

`--ranx` recomputes the hold-out metrics with ranx as an independent check (its first import
compiles with numba: about 40 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from recipes.base import Query  # noqa: E402
from recipes.hrnn_meta import (  # noqa: E402
    HrnnMetaConfig,
    HrnnMetaFeaturizer,
    HrnnMetaHooks,
    HrnnMetaPredictor,
)
from sdk.movielens import convert  # noqa: E402
from sdk.types import DatasetKind, Schema  # noqa: E402
from training_jobs.loop import epochs  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "movielens-latest-small"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- metrics (binary relevance) -----------------------------------------------------------------
def rank_metrics(rankings: Sequence[np.ndarray], relevant: Sequence[set[int]],
                 ks: Sequence[int]) -> dict[str, float]:
    """Mean NDCG@k, precision@k (for each k) and MRR over queries.

    Args:
        rankings: Per query, item indices best first (the full ranking, for an exact MRR).
        relevant: Per query, the relevant item indices (non-empty).
        ks: Cut-offs.
    """
    out: dict[str, list[float]] = {"mrr": []}
    for k in ks:
        out[f"ndcg@{k}"], out[f"precision@{k}"] = [], []
    for ranking, rel in zip(rankings, relevant):
        hits = np.isin(ranking, list(rel))
        first = np.flatnonzero(hits)
        out["mrr"].append(1.0 / (first[0] + 1) if first.size else 0.0)
        for k in ks:
            gains = hits[:k] / np.log2(np.arange(2, min(k, hits.size) + 2))
            ideal = (1.0 / np.log2(np.arange(2, min(k, len(rel)) + 2))).sum()
            out[f"ndcg@{k}"].append(float(gains.sum() / ideal))
            out[f"precision@{k}"].append(float(hits[:k].sum() / k))
    return {name: float(np.mean(values)) for name, values in out.items()}


def random_expectation(num_candidates: int, relevant: Sequence[int],
                       ks: Sequence[int]) -> dict[str, float]:
    """Exact expected metrics of a uniformly random ranking of `num_candidates` items, for
    queries with the given numbers of relevant items."""
    n = num_candidates
    out: dict[str, list[float]] = {"mrr": []}
    for k in ks:
        out[f"ndcg@{k}"], out[f"precision@{k}"] = [], []
    for r in relevant:
        # P(first relevant at rank i) = C(n - i, r - 1) / C(n, r)
        i = np.arange(1, n - r + 2)
        log_p = (_log_comb(n - i, r - 1) - _log_comb(n, r))
        out["mrr"].append(float((np.exp(log_p) / i).sum()))
        for k in ks:
            dcg = (r / n) * (1.0 / np.log2(np.arange(2, k + 2))).sum()
            ideal = (1.0 / np.log2(np.arange(2, min(k, r) + 2))).sum()
            out[f"ndcg@{k}"].append(dcg / ideal)
            out[f"precision@{k}"].append(r / n)
    return {name: float(np.mean(values)) for name, values in out.items()}


def _log_comb(n: np.ndarray | int, k: int) -> np.ndarray:
    n = np.asarray(n, np.float64)
    return (np.vectorize(math.lgamma)(n + 1) - math.lgamma(k + 1)
            - np.vectorize(math.lgamma)(n - k + 1))


def full_ranking(scores: np.ndarray) -> np.ndarray:
    """Item indices by descending score; ties by ascending index; -inf items dropped."""
    order = np.lexsort((np.arange(scores.size), -scores))
    return order[np.isfinite(scores[order])]


# --- data ---------------------------------------------------------------------------------------
def load_movielens(path: Path, workdir: Path) -> tuple[dict[DatasetKind, pa.Table],
                                                       dict[DatasetKind, Schema]]:
    written = convert(path, workdir)
    tables = {kind: pq.read_table(p) for kind, p in written.paths.items()}
    return tables, written.schemas


def sequences(inter: pa.Table) -> dict[str, list[tuple[str, float, str | None, float | None]]]:
    """Each user's events (item, seconds, type, value) in time order (ties: row order)."""
    users = inter.column("user_id").to_pylist()
    items = inter.column("item_id").to_pylist()
    stamps = (inter.column("timestamp").cast(pa.int64()).to_numpy() //
              {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[inter.schema.field("timestamp").type.unit])
    types = inter.column("event_type").to_pylist()
    values = inter.column("event_value").to_pylist()
    order = np.lexsort((np.arange(len(users)), stamps, np.unique(users, return_inverse=True)[1]))
    out: dict[str, list] = {}
    for i in order.tolist():
        out.setdefault(users[i], []).append((items[i], float(stamps[i]), types[i], values[i]))
    return out


def to_table(events: Mapping[str, list], like: pa.Table) -> pa.Table:
    rows = [(u, *e) for u, evs in events.items() for e in evs]
    unit = like.schema.field("timestamp").type
    return pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.string()),
        "item_id": pa.array([r[1] for r in rows], pa.string()),
        "timestamp": pa.array([int(r[2]) for r in rows], pa.int64()).cast(
            pa.timestamp("s", tz=unit.tz)),
        "event_type": pa.array([r[3] for r in rows], pa.string()),
        "event_value": pa.array([r[4] for r in rows], pa.float64()),
    })


# --- training -----------------------------------------------------------------------------------
def train(tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
          config: HrnnMetaConfig, label: str) -> tuple[HrnnMetaPredictor, dict[str, float]]:
    """Fit, transform, then the generic loop (`training_jobs.loop.epochs`) in one process."""
    start = time.perf_counter()
    featurizer = HrnnMetaFeaturizer.fit(tables, config, schemas=schemas)
    examples = featurizer.transform(tables)
    hooks = HrnnMetaHooks(config, featurizer)
    model = hooks.build_model()
    events, train_seconds = 0, 0.0
    for m in epochs(hooks, model, hooks.configure_optimizer(model), examples, num_epochs=config.epochs):
        events, train_seconds = events + m["events"], train_seconds + m["seconds"]
        log(f"  [{label}] epoch {m['epoch'] + 1}/{config.epochs}: loss {m['loss']:.4f} "
            f"({m['batches']} batches, {m['seconds']:.1f}s)")
    stats = {"train_seconds": time.perf_counter() - start,
             "events_per_second": events / max(train_seconds, 1e-9),
             "items": featurizer.num_items - 2, "trainable_items": hooks.num_trainable_items,
             "sampled_softmax": hooks.sampled, "training_events": examples.num_events}
    return HrnnMetaPredictor(config, featurizer, model), stats


# --- experiments --------------------------------------------------------------------------------
def temporal_holdout(tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
                     config: HrnnMetaConfig, *, seed: int, test_fraction: float, holdout: int,
                     use_ranx: bool) -> dict[str, Any]:
    seqs = sequences(tables[DatasetKind.INTERACTIONS])
    users = sorted(u for u, evs in seqs.items() if len(evs) > holdout + 1)
    rng = np.random.default_rng(seed)
    n_test = max(1, round(test_fraction * len(seqs)))
    test_users = sorted(rng.choice(users, size=min(n_test, len(users)), replace=False).tolist())
    train_seqs = dict(seqs)
    held: dict[str, list] = {}
    for u in test_users:
        train_seqs[u], held[u] = seqs[u][:-holdout], seqs[u][-holdout:]
    train_tables = {**tables, DatasetKind.INTERACTIONS: to_table(train_seqs,
                                                                 tables[DatasetKind.INTERACTIONS])}
    log(f"temporal hold-out: {len(test_users)} test users, last {holdout} interaction(s) held out")
    predictor, stats = train(train_tables, schemas, config, "hold-out")

    f = predictor.featurizer
    histories = [train_seqs[u] for u in test_users]
    t0 = time.perf_counter()
    scores = predictor.score_histories(histories, user_ids=test_users,
                                       request_times=[held[u][0][1] for u in test_users]).numpy()
    predict_seconds = time.perf_counter() - t0
    pop = f.item_freq.astype(np.float64).copy()
    pop[:2] = -np.inf
    model_rank, pop_rank, relevant = [], [], []
    for b, u in enumerate(test_users):
        seen = predictor.item_index([e[0] for e in histories[b]])
        s = scores[b].copy()
        s[seen] = -np.inf
        p = pop.copy()
        p[seen] = -np.inf
        model_rank.append(full_ranking(s))
        pop_rank.append(full_ranking(p))
        relevant.append({f.item_index(e[0]) for e in held[u]})
    ks = (10,)
    result = {
        "test_users": len(test_users), "holdout": holdout, "train": stats,
        "predict_ms_per_user": 1000 * predict_seconds / len(test_users),
        "model": rank_metrics(model_rank, relevant, ks),
        "popularity": rank_metrics(pop_rank, relevant, ks),
    }
    # Sanity: predict_batch (the predictor's one entry point) agrees with the scores used above.
    answers = predictor.predict_batch([Query(history=h, user_id=u, time=held[u][0][1], num_results=10,
                                             exclude={e[0] for e in h})
                                       for h, u in zip(histories[:8], test_users[:8])])
    assert all([f.item_index(i) for i in a.ids] == r[:10].tolist() for a, r in zip(answers, model_rank))
    if use_ranx:
        result["ranx"] = ranx_check(test_users, model_rank, pop_rank, relevant)
    return result


def ranx_check(users: list[str], model_rank: list[np.ndarray], pop_rank: list[np.ndarray],
               relevant: list[set[int]]) -> dict[str, dict[str, float]]:
    from ranx import Qrels, Run, evaluate

    qrels = Qrels({u: {str(i): 1 for i in rel} for u, rel in zip(users, relevant)})
    out = {}
    for name, ranks in (("model", model_rank), ("popularity", pop_rank)):
        run = Run({u: {str(i): float(len(r) - j) for j, i in enumerate(r[:1000].tolist())}
                   for u, r in zip(users, ranks)})
        out[name] = {k: float(v) for k, v in
                     evaluate(qrels, run, ["ndcg@10", "precision@10", "mrr@1000"]).items()}
    return out


def cold_start(tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
               config: HrnnMetaConfig, *, seed: int) -> dict[str, Any]:
    seqs = sequences(tables[DatasetKind.INTERACTIONS])
    rated = sorted({e[0] for evs in seqs.values() for e in evs})
    rng = np.random.default_rng([seed, 7])
    cold = set(rng.choice(rated, size=len(rated) // 2, replace=False).tolist())
    warm_seqs = {u: [e for e in evs if e[0] not in cold] for u, evs in seqs.items()}
    warm_seqs = {u: evs for u, evs in warm_seqs.items() if evs}
    train_tables = {**tables, DatasetKind.INTERACTIONS: to_table(warm_seqs,
                                                                 tables[DatasetKind.INTERACTIONS])}
    log(f"cold start: {len(cold)} of {len(rated)} rated items held out")
    predictor, stats = train(train_tables, schemas, config, "cold-start")

    f = predictor.featurizer
    users = sorted(u for u in warm_seqs if any(e[0] in cold for e in seqs[u]))
    cold_idx = predictor.item_index(sorted(cold))
    assert not f.item_freq[cold_idx].any(), "a cold item was seen in training"
    scores = predictor.score_histories([warm_seqs[u] for u in users], user_ids=users,
                                       request_times=[warm_seqs[u][-1][1] for u in users]).numpy()
    rankings, relevant = [], []
    for b, u in enumerate(users):
        s = np.full(scores.shape[1], -np.inf)
        s[cold_idx] = scores[b, cold_idx]
        rankings.append(full_ranking(s))
        relevant.append({f.item_index(e[0]) for e in seqs[u] if e[0] in cold})
    ks = (5, 25)
    return {
        "users": len(users), "cold_items": len(cold), "train": stats,
        "model": rank_metrics(rankings, relevant, ks),
        "random": random_expectation(len(cold), [len(r) for r in relevant], ks),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0, help="split seed (the model's is --set seed=)")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--holdout", type=int, default=10,
                        help="last interactions held out per test user")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="hyperparameter override (repeatable)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared 2-core machine more "
                             "threads contend and run several times slower)")
    parser.add_argument("--skip-holdout", action="store_true")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--ranx", action="store_true", help="also compute metrics with ranx")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no MovieLens folder at {args.data}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    config = HrnnMetaConfig(**overrides)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tables, schemas = load_movielens(args.data, Path(tmp))
    report: dict[str, Any] = {
        "data": str(args.data), "interactions": tables[DatasetKind.INTERACTIONS].num_rows,
        "config": config.model_dump(), "seed": args.seed,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }
    if not args.skip_holdout:
        report["holdout"] = temporal_holdout(tables, schemas, config, seed=args.seed,
                                             test_fraction=args.test_fraction,
                                             holdout=args.holdout, use_ranx=args.ranx)
    if not args.skip_cold_start:
        report["cold_start"] = cold_start(tables, schemas, config, seed=args.seed)
    report["seconds"] = time.perf_counter() - started
    report["load_average"] = os.getloadavg()[0]

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"MovieLens latest-small, {report['interactions']:,} ratings; split seed {args.seed}")
    for key in ("holdout", "cold_start"):
        if key in report:
            t = report[key]["train"]
            print(f"{key} training: {t['train_seconds']:.0f}s, {t['events_per_second']:,.0f} "
                  f"events/s, {t['trainable_items']:,} trainable items "
                  f"({'sampled' if t['sampled_softmax'] else 'full'} softmax)")
    if "holdout" in report:
        h = report["holdout"]
        print(f"\ntemporal hold-out ({h['test_users']} test users, last {h['holdout']} held out)")
        print(f"{'':<20}{'NDCG@10':>10}{'P@10':>10}{'MRR':>10}")
        for name in ("model", "popularity"):
            m = h[name]
            print(f"{('HRNN-meta' if name == 'model' else name):<20}{m['ndcg@10']:>10.4f}"
                  f"{m['precision@10']:>10.4f}{m['mrr']:>10.4f}")
        ratio = h["model"]["ndcg@10"] / max(h["popularity"]["ndcg@10"], 1e-12)
        print(f"NDCG@10 ratio model/popularity: {ratio:.2f}x (goal ≥ 1.5x)")
        if "ranx" in h:
            for name, m in h["ranx"].items():
                print(f"  ranx {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
    if "cold_start" in report:
        c = report["cold_start"]
        cols = ("mrr", "precision@5", "precision@25", "ndcg@5", "ndcg@25")
        print(f"\ncold start ({c['cold_items']:,} held-out items, {c['users']} users)"
              f"\n{'':<20}" + "".join(f"{n.replace('precision', 'P'):>10}" for n in cols))
        for name in ("model", "random"):
            label = "HRNN-meta (λ=1)" if name == "model" else "uniform random"
            print(f"{label:<20}" + "".join(f"{c[name][n]:>10.4f}" for n in cols))
        print(f"MRR ratio model/random: {c['model']['mrr'] / c['random']['mrr']:.2f}x (goal ≥ 2x)")
    print(f"\ntotal {report['seconds']:.0f}s; load average {report['load_average']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
