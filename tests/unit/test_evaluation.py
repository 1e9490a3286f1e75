"""Evaluation: splits, metrics (by hand and against ranx), the popularity and random baselines."""

from __future__ import annotations

import ast
import itertools
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training_jobs import evaluation as ev
from training_jobs.evaluation import (
    Split,
    cold_start_split,
    compare,
    evaluate_popularity,
    perplexity,
    popularity_baseline,
    ranking_metrics,
    temporal_holdout,
    uniform_random_metrics,
)

L2 = math.log2


def test_public_surface_and_no_heavy_imports():
    assert ev.__all__ == [
        "DEFAULT_KS", "PopularityBaseline", "Split", "UNSEEN_MASS", "cold_start_split", "compare",
        "evaluate_popularity", "perplexity", "popularity_baseline", "ranking_metrics",
        "smooth_log_probs", "temporal_holdout", "uniform_random_metrics",
    ]
    for path in Path(ev.__file__).parent.glob("*.py"):  # every module of the package
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"torch", "ray"}, path


# --------------------------------------------------------------------------------------------
# Metrics, by hand


def test_metrics_one_relevant_item():
    # ranked [a, b, c], relevant {b}: b is at rank 2 (0-based position 1).
    m = ranking_metrics({"u": ["a", "b", "c"]}, {"u": {"b"}}, ks=(1, 2, 3))
    assert m["precision@1"] == 0.0  # a is not relevant
    assert m["precision@2"] == 0.5  # 1 hit / 2
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0
    assert m["hit@1"] == 0.0 and m["hit@2"] == 1.0
    assert m["ndcg@1"] == 0.0
    assert m["ndcg@2"] == pytest.approx(1 / L2(3))  # DCG 1/log2(3), ideal 1/log2(2) = 1
    assert m["ndcg@3"] == pytest.approx(1 / L2(3))
    assert m["mrr"] == 0.5  # first relevant at rank 2
    assert list(m) == ["precision@1", "recall@1", "ndcg@1", "hit@1", "precision@2", "recall@2",
                       "ndcg@2", "hit@2", "precision@3", "recall@3", "ndcg@3", "hit@3", "mrr"]


def test_metrics_several_relevant_items_one_not_ranked():
    # ranked [a, b, c, d, e], relevant {a, d, z}: hits at positions 0 and 3; z never ranked.
    m = ranking_metrics({"u": list("abcde")}, {"u": {"a", "d", "z"}}, ks=(1, 3, 5))
    assert m["precision@1"] == 1.0 and m["recall@1"] == pytest.approx(1 / 3)
    assert m["precision@3"] == pytest.approx(1 / 3)  # only a in the top 3
    assert m["precision@5"] == pytest.approx(2 / 5)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["ndcg@1"] == 1.0  # DCG 1, ideal min(1, 3) = 1 item -> 1
    # ndcg@3: DCG = 1/log2(2) = 1; ideal over min(3, 3) = 3 items = 1 + 1/log2(3) + 1/log2(4)
    assert m["ndcg@3"] == pytest.approx(1 / (1 + 1 / L2(3) + 0.5))  # 0.469279...
    # ndcg@5: DCG = 1 + 1/log2(5) = 1.430677; ideal still 3 items = 2.130930 -> 0.671386
    assert m["ndcg@5"] == pytest.approx((1 + 1 / L2(5)) / (1 + 1 / L2(3) + 0.5))
    assert m["ndcg@5"] == pytest.approx(0.671386, abs=1e-6)
    assert m["hit@1"] == 1.0 and m["mrr"] == 1.0


def test_k_larger_than_the_list():
    # ranked [x, y] only, relevant {y}, k = 10: precision divides by k, not by the list length.
    m = ranking_metrics({"u": ["x", "y"]}, {"u": ["y"]}, ks=(10,))
    assert m["precision@10"] == pytest.approx(0.1)
    assert m["recall@10"] == 1.0 and m["hit@10"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / L2(3))  # ideal min(10, 1) = 1 item
    assert m["mrr"] == 0.5


def test_users_without_relevant_items_are_ignored_and_missing_rankings_score_zero():
    alone = ranking_metrics({"u1": ["a", "b", "c"]}, {"u1": {"b"}}, ks=(2,))
    with_empty = ranking_metrics({"u1": ["a", "b", "c"], "u2": ["b"], "u3": ["q"]},
                                 {"u1": {"b"}, "u2": set(), "u3": []}, ks=(2,))
    assert with_empty == alone
    # u2 has a relevant item but no ranking: it counts, with zeros. Mean over 2 users halves.
    halved = ranking_metrics({"u1": ["a", "b", "c"]}, {"u1": {"b"}, "u2": {"z"}}, ks=(2,))
    assert halved == {k: v / 2 for k, v in alone.items()}
    with pytest.raises(ValueError, match="no user has a relevant item"):
        ranking_metrics({"u": ["a"]}, {"u": set()})


def test_averaging_over_users():
    # u1: [a, b], rel {a} -> mrr 1, hit@1 1, ndcg@1 1;  u2: [c, d, e], rel {e} -> mrr 1/3, hit@1 0.
    m = ranking_metrics({"u1": ["a", "b"], "u2": ["c", "d", "e"]}, {"u1": {"a"}, "u2": {"e"}},
                        ks=(1, 3))
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["hit@1"] == 0.5 and m["hit@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx((1 + 1 / L2(4)) / 2)  # u2: e at rank 3 -> 1/log2(4) = 0.5
    assert m["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_repeated_item_counts_once():
    # ranked [b, b, c], relevant {b, c}: b counts at position 0 only, c at position 2.
    m = ranking_metrics({"u": ["b", "b", "c"]}, {"u": {"b", "c"}}, ks=(2, 3))
    assert m["precision@2"] == 0.5 and m["recall@2"] == 0.5
    assert m["precision@3"] == pytest.approx(2 / 3) and m["recall@3"] == 1.0


def test_coverage():
    # top-1: {a} -> 1/10; top-2: {a, b, d} -> 3/10; top-3: {a, b, c, d, e} -> 5/10.
    ranked = {"u1": ["a", "b", "c"], "u2": ["a", "d", "e"], "u3": ["x", "y", "z"]}
    relevant = {"u1": {"c"}, "u2": {"q"}, "u3": set()}  # u3 is not evaluated: its list is ignored
    m = ranking_metrics(ranked, relevant, ks=(1, 2, 3), catalog_size=10)
    assert (m["coverage@1"], m["coverage@2"], m["coverage@3"]) == (0.1, 0.3, 0.5)
    assert "coverage@1" not in ranking_metrics(ranked, relevant, ks=(1,))


def test_numpy_rankings_match_lists():
    rng = np.random.default_rng(3)
    ranked = {u: rng.permutation(1000) for u in range(20)}
    relevant = {u: set(rng.choice(1000, size=5, replace=False).tolist()) for u in range(20)}
    as_lists = {u: r.tolist() for u, r in ranked.items()}
    assert ranking_metrics(ranked, relevant, catalog_size=1000) == \
        ranking_metrics(as_lists, relevant, catalog_size=1000)


def test_perplexity():
    # log p = [ln 1/2, ln 1/8]: mean = ln(1/4) -> perplexity 4. Uniform over 10 items -> 10.
    assert perplexity(np.log([0.5, 0.125])) == pytest.approx(4.0)
    assert perplexity(np.full(7, math.log(0.1))) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        perplexity(np.array([]))


@pytest.mark.filterwarnings("ignore:unsafe cast")  # inside ranx's numba code, harmless here
def test_agreement_with_ranx():
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(7)
    catalog = [f"i{j}" for j in range(300)]
    ranked, relevant = {}, {}
    for u in range(200):
        lst = rng.choice(300, size=50, replace=False)
        ranked[f"u{u}"] = [catalog[j] for j in lst]
        n_rel = int(rng.integers(1, 11))
        # Half the users draw relevant items partly from their own list, so there are hits.
        pool = lst[:20] if u % 2 else np.arange(300)
        rel = set(rng.choice(pool, size=min(n_rel, len(pool)), replace=False).tolist())
        rel |= set(rng.choice(300, size=int(rng.integers(0, 3)), replace=False).tolist())
        relevant[f"u{u}"] = {catalog[j] for j in rel}
    qrels = ranx.Qrels({u: {i: 1 for i in rel} for u, rel in relevant.items()})
    run = ranx.Run({u: {i: float(50 - p) for p, i in enumerate(lst)} for u, lst in ranked.items()})
    ks = (1, 5, 10, 25, 50, 60)  # 60 > list length
    ours = ranking_metrics(ranked, relevant, ks=ks)
    names = [f"{m}@{k}" for k in ks for m in ("precision", "recall", "ndcg", "hit_rate")] + ["mrr"]
    theirs = ranx.evaluate(qrels, run, names, make_comparable=False)
    for name in names:
        key = name.replace("hit_rate", "hit")
        assert ours[key] == pytest.approx(theirs[name], abs=1e-9), name
    assert 0.0 < ours["mrr"] < 1.0 and 0.0 < ours["ndcg@10"] < 1.0  # a non-degenerate case


# --------------------------------------------------------------------------------------------
# Temporal hold-out


def _interactions(n_users: int = 1000, seed: int = 0, ts_type: pa.DataType = pa.int64()) -> pa.Table:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 15, size=n_users)
    counts[:50] = 1  # users with one interaction are never eligible
    users = np.repeat(np.arange(n_users), counts)
    perm = rng.permutation(len(users))  # rows in no particular order
    users = users[perm]
    times = rng.integers(0, 20, size=len(users))  # coarse: many ties in time
    return pa.table({
        "USER_ID": pa.array([f"user{u:04d}" for u in users]),
        "ITEM_ID": pa.array(rng.integers(0, 200, size=len(users))),
        "TIMESTAMP": pa.array(times).cast(ts_type),
        "row": pa.array(np.arange(len(users))),
    })


def _holdout(table: pa.Table, **kw) -> Split:
    return temporal_holdout(table, user_col="USER_ID", item_col="ITEM_ID", time_col="TIMESTAMP", **kw)


def _latest_rows(table: pa.Table, users: set[str], h: int) -> set[int]:
    """Brute force: each user's h latest rows, ties in time broken by row order."""
    by_user: dict[str, list[tuple[int, int]]] = {}
    for u, t, r in zip(*(table.column(c).to_pylist() for c in ("USER_ID", "TIMESTAMP", "row"))):
        if u in users:
            by_user.setdefault(u, []).append((t, r))
    return {r for rows in by_user.values() for _, r in sorted(rows)[-h:]}


def test_temporal_holdout_holds_out_the_latest_and_loses_nothing():
    table = _interactions()
    split = _holdout(table, fraction=0.1, min_users=0, seed=1)
    test_users = set(split.test_targets)
    held_rows = set(split.held_out.column("row").to_pylist())
    assert held_rows == _latest_rows(table, test_users, 1)
    rows = split.train.column("row").to_pylist() + split.held_out.column("row").to_pylist()
    assert sorted(rows) == list(range(table.num_rows))  # nothing lost or duplicated
    assert split.train.column("row").to_pylist() == sorted(split.train.column("row").to_pylist())
    # Targets are the held-out items; histories are the users' training rows, oldest first.
    held = dict(zip(split.held_out.column("USER_ID").to_pylist(),
                    split.held_out.column("ITEM_ID").to_pylist()))
    assert {u: t[0] for u, t in split.test_targets.items()} == held
    for u in list(test_users)[:30]:
        hist = split.history(u)
        assert set(hist.column("USER_ID").to_pylist()) == {u}
        times = hist.column("TIMESTAMP").to_pylist()
        assert times == sorted(times)
        train_u = split.train.filter(pc.equal(split.train.column("USER_ID"), u))
        assert hist.num_rows == train_u.num_rows
    assert split.history_items()[u] == split.history(u).column("ITEM_ID").to_pylist()


def test_temporal_holdout_user_counts():
    table = _interactions()
    counts: dict[str, int] = {}
    for u in table.column("USER_ID").to_pylist():
        counts[u] = counts.get(u, 0) + 1
    eligible = sum(c >= 2 for c in counts.values())
    assert eligible < 1000
    # fraction rules when above min_users
    s = _holdout(table, fraction=0.1, min_users=10)
    assert len(s.test_targets) == round(0.1 * eligible)
    # min_users rules when fraction gives fewer; capped by the eligible count
    assert len(_holdout(table, fraction=0.1, min_users=300).test_targets) == 300
    everyone = _holdout(table, fraction=0.1, min_users=10_000)
    assert len(everyone.test_targets) == eligible
    assert all(counts[u] >= 2 for u in everyone.test_targets)  # one-interaction users never chosen
    d = s.describe()
    assert d["protocol"] == "temporal-holdout" and d["seed"] == 0 and d["fraction"] == 0.1
    assert d["test_users"] == len(s.test_targets) and d["held_out_events"] == s.held_out.num_rows
    assert d["eligible_users"] == eligible


def test_temporal_holdout_is_deterministic_by_seed():
    table = _interactions()
    a, b = _holdout(table, seed=5), _holdout(table, seed=5)
    assert a.test_targets == b.test_targets and a.describe() == b.describe()
    assert a.train.equals(b.train)
    assert set(_holdout(table, seed=6).test_targets) != set(a.test_targets)
    # The draw does not depend on row order.
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    assert set(_holdout(shuffled, seed=5).test_targets) == set(a.test_targets)


def test_temporal_holdout_several_events_and_timestamp_type():
    table = _interactions(ts_type=pa.timestamp("s"))
    split = _holdout(table, fraction=0.2, min_users=0, holdout_last=3)
    assert all(len(t) == 3 for t in split.test_targets.values())
    assert set(split.held_out.column("row").to_pylist()) == \
        _latest_rows(table, set(split.test_targets), 3)
    assert all(len(h) >= 1 for h in split.test_histories.values())  # history always remains


def test_temporal_holdout_rejects_bad_input():
    table = _interactions(n_users=20)
    with pytest.raises(ValueError, match="fraction"):
        _holdout(table, fraction=0.0)
    with pytest.raises(ValueError, match="missing column"):
        temporal_holdout(table, user_col="USER", item_col="ITEM_ID", time_col="TIMESTAMP")
    nulls = table.set_column(0, "USER_ID", pa.array([None] + table.column(0).to_pylist()[1:]))
    with pytest.raises(ValueError, match="null"):
        _holdout(nulls)


# --------------------------------------------------------------------------------------------
# Cold start


def test_cold_start_split():
    table = _interactions(n_users=300)
    items = pa.table({"ITEM_ID": pa.array(np.arange(250))})  # 50 items nobody interacted with
    split = cold_start_split(table, items, item_col="ITEM_ID", user_col="USER_ID",
                             time_col="TIMESTAMP", fraction=0.5, seed=3)
    held = set(split.candidates)
    assert len(held) == 125 and held <= set(range(250))
    assert not held & set(split.train.column("ITEM_ID").to_pylist())  # train has no held-out item
    assert set(split.held_out.column("ITEM_ID").to_pylist()) <= held
    rows = split.train.column("row").to_pylist() + split.held_out.column("row").to_pylist()
    assert sorted(rows) == list(range(table.num_rows))
    # Each user's targets are exactly the distinct held-out items they interacted with.
    expected: dict[str, set[int]] = {}
    for u, i in zip(table.column("USER_ID").to_pylist(), table.column("ITEM_ID").to_pylist()):
        if i in held:
            expected.setdefault(u, set()).add(i)
    assert {u: set(t) for u, t in split.test_targets.items()} == expected
    assert all(len(t) == len(set(t)) and set(t) <= held for t in split.test_targets.values())
    for u in list(split.test_targets)[:20]:
        assert not set(split.history(u).column("ITEM_ID").to_pylist()) & held
    again = cold_start_split(table, items, item_col="ITEM_ID", user_col="USER_ID",
                             time_col="TIMESTAMP", fraction=0.5, seed=3)
    assert again.candidates == split.candidates and again.test_targets == split.test_targets
    other = cold_start_split(table, items, item_col="ITEM_ID", user_col="USER_ID",
                             time_col="TIMESTAMP", fraction=0.5, seed=4)
    assert other.candidates != split.candidates
    d = split.describe()
    assert d["protocol"] == "item-cold-start" and d["held_out_items"] == 125
    assert d["catalog_items"] == 250


# --------------------------------------------------------------------------------------------
# Popularity baseline


def _pop_train() -> pa.Table:
    # counts: a 3, b 2, c 2, d 1 -> order a, b, c (tie with b broken by id), d; catalog adds e.
    return pa.table({"user": ["u1", "u1", "u2", "u1", "u2", "u3", "u3", "u3"],
                     "item": ["a", "b", "a", "c", "c", "b", "a", "d"]})


def test_popularity_baseline_by_hand():
    pop = popularity_baseline(_pop_train(), item_col="item", user_col="user", catalog=["e", "a"])
    assert pop.items == ["a", "b", "c", "d", "e"]
    assert pop.recommend([], 3) == ["a", "b", "c"]
    assert pop.recommend(["a"], 2) == ["b", "c"]
    assert pop.recommend([], 10) == ["a", "b", "c", "d", "e"]  # k beyond the catalog
    assert pop.recommend([], 2, candidates={"e", "c", "d"}) == ["c", "d"]
    no_excl = popularity_baseline(_pop_train(), item_col="item", exclude_seen=False)
    assert no_excl.recommend(["a"], 2) == ["a", "b"]
    # From the training table: u1 saw a, b, c -> d, e; u3 saw b, a, d -> c, e.
    assert pop.rank_all(["u1", "u3", "new"], k=2) == {"u1": ["d", "e"], "u3": ["c", "e"],
                                                      "new": ["a", "b"]}
    assert pop.rank_all(["u1"], histories={"u1": ["b"]}, k=2) == {"u1": ["a", "c"]}
    # log p = ln((count + 1) / (8 rows + 1 * 5 items)): a -> 4/13, e -> 1/13, unknown -> 1/13.
    assert pop.log_prob("a") == pytest.approx(math.log(4 / 13))
    assert pop.log_prob("e") == pytest.approx(math.log(1 / 13))
    assert pop.log_prob("zz") == pytest.approx(math.log(1 / 13))
    assert sum(math.exp(pop.log_prob(i)) for i in pop.items) == pytest.approx(1.0)


def _hand_split() -> Split:
    # u1: a, b, c -> holds out c;  u2: a, d -> holds out d;  u3: b only (not eligible);
    # u4: c, a -> holds out a.  Train items: a 2, b 2, c 1; d only in the held-out rows.
    t = pa.table({"user": ["u1", "u1", "u1", "u2", "u2", "u3", "u4", "u4"],
                  "item": ["a", "b", "c", "a", "d", "b", "c", "a"],
                  "ts": [1, 2, 3, 1, 2, 1, 1, 2]})
    return temporal_holdout(t, user_col="user", item_col="item", time_col="ts",
                            fraction=1.0, min_users=0)


def test_evaluate_popularity_by_hand():
    split = _hand_split()
    assert split.test_targets == {"u1": ["c"], "u2": ["d"], "u4": ["a"]}
    # Popularity order a, b, c, d. Minus history: u1 {a, b} -> [c, d], target c at rank 1;
    # u2 {a} -> [b, c, d], target d at rank 3; u4 {c} -> [a, b, d], target a at rank 1.
    m = evaluate_popularity(split, ks=(1, 2), catalog_size=4)
    assert m["precision@1"] == pytest.approx(2 / 3) and m["hit@1"] == pytest.approx(2 / 3)
    assert m["precision@2"] == pytest.approx(1 / 3) and m["recall@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)  # 7/9
    # top-1 {c, b, a} -> 3/4; top-2 {c, d, b, a} -> 4/4.
    assert m["coverage@1"] == 0.75 and m["coverage@2"] == 1.0
    # 5 training rows, 4 items: p(c) = 2/9, p(d) = 1/9, p(a) = 3/9 -> (729 / 6) ** (1/3)
    assert m["perplexity"] == pytest.approx((729 / 6) ** (1 / 3))
    # With lists cut at depth 2, u2's target (rank 3) is not found: mrr (1 + 0 + 1) / 3.
    assert evaluate_popularity(split, ks=(1, 2), depth=2)["mrr"] == pytest.approx(2 / 3)


def test_evaluate_popularity_exact_ranks_match_full_lists():
    split = _holdout(_interactions(n_users=400), fraction=0.5, min_users=0, holdout_last=2)
    extra = split.held_out.column("ITEM_ID").to_pylist()
    pop = popularity_baseline(split.train, item_col="ITEM_ID", catalog=extra)
    full = pop.rank_all(split.test_targets, histories=split.history_items(), k=len(pop.items))
    expected = ranking_metrics(full, split.test_targets, catalog_size=200)
    got = evaluate_popularity(split, catalog_size=200)
    assert got.pop("perplexity") > 1.0
    assert got == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Uniform random baseline and comparison


def test_uniform_random_metrics_match_enumeration():
    # 5 candidates, users with 1 and 2 targets: average the metrics over all 120 orderings.
    cands = ["p", "q", "r", "s", "t"]
    targets = {"u1": ["q"], "u2": ["p", "t"]}
    split = Split(train=pa.table({}), held_out=pa.table({}), test_histories={}, test_targets=targets,
                  user_col="u", item_col="i", time_col="t", candidates=cands)
    ks = (1, 2, 5, 10)
    total: dict[str, float] = {}
    perms = list(itertools.permutations(cands))
    for perm in perms:
        m = ranking_metrics({"u1": list(perm), "u2": list(perm)}, targets, ks=ks)
        for k, v in m.items():
            total[k] = total.get(k, 0.0) + v / len(perms)
    assert uniform_random_metrics(split, ks=ks) == pytest.approx(total, abs=1e-12)
    # By hand for u1 (1 of 5): mrr = (1 + 1/2 + 1/3 + 1/4 + 1/5) / 5 = 137/300.
    one = Split(train=pa.table({}), held_out=pa.table({}), test_histories={},
                test_targets={"u1": ["q"]}, user_col="u", item_col="i", time_col="t",
                candidates=cands)
    assert uniform_random_metrics(one, ks=(1,))["mrr"] == pytest.approx(137 / 300)


def test_compare():
    model = {"ndcg@10": 0.3, "mrr": 0.2, "perplexity": 50.0, "coverage@10": 0.1}
    base = {"ndcg@10": 0.15, "mrr": 0.0, "perplexity": 100.0}
    out = compare(model, base)
    assert out["model"] == model and out["baselines"] == {"popularity": base}
    assert out["unavailable"] == {}
    # ndcg 0.3 / 0.15 = 2; mrr skipped (baseline 0); coverage skipped (absent from the baseline);
    # perplexity is lower-is-better: 100 / 50 = 2.
    assert out["lift"] == {"ndcg@10": pytest.approx(2.0), "perplexity": pytest.approx(2.0)}


def test_smoothed_perplexity_stays_finite_for_items_the_model_never_saw():
    # A held-out item outside the catalog: log p = -inf, raw perplexity infinite.
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([0.5, 0.25, 0.0]))
    assert not math.isfinite(perplexity(lp))
    smoothed = ev.smooth_log_probs(lp, vocabulary_size=9)
    got = perplexity(smoothed)
    assert math.isfinite(got) and got > perplexity(lp[:2])
    # The unseen target gets exactly UNSEEN_MASS / (V + 1); a known one is barely changed.
    assert smoothed[2] == pytest.approx(math.log(ev.UNSEEN_MASS / 10))
    assert smoothed[0] == pytest.approx(math.log((1 - ev.UNSEEN_MASS) * 0.5 + ev.UNSEEN_MASS / 10))
    with pytest.raises(ValueError):
        ev.smooth_log_probs(lp, vocabulary_size=0)


def test_compare_leaves_out_non_finite_values_with_a_reason():
    out = compare({"ndcg@10": 0.3, "perplexity": math.inf}, {"ndcg@10": 0.1, "perplexity": math.nan})
    assert out["model"] == {"ndcg@10": 0.3} and out["baselines"] == {"popularity": {"ndcg@10": 0.1}}
    assert set(out["unavailable"]) == {"model.perplexity", "popularity.perplexity"}
    assert "finite" in out["unavailable"]["model.perplexity"]
