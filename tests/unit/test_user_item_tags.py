"""The user-tags and item-tags tasks: their protocols (UTPM's and GraphTR's evaluation, hand-computed
on tiny tables), their baseline recipes (tag-popularity, item-tag-frequency) through the
conformance suite, and both on the real HetRec MovieLens-2k when it is there."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Query
from sdk.types import DatasetKind, EvaluationConfig, FieldType, Role, Schema, SchemaField
from tests.conftest import SHARED_DATA
from tests.unit.conformance import RecipeConformance
from training_jobs.evaluation.metrics import precision_minrel
from training_jobs.evaluation.protocols import InsufficientData, get_protocol
from training_jobs.loop import fit_in_process, has_parameters

SCHEMA = Schema(fields=[
    SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID, nullable=True),
    SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID, nullable=True),
    SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
    SchemaField(name="event_type", type=FieldType.STRING, role=Role.EVENT_TYPE),
    SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True),
])  # the shape of sdk.hetrec's interactions
SCHEMAS = {DatasetKind.INTERACTIONS: SCHEMA}
HETREC = SHARED_DATA / "hetrec2011-movielens-2k-tags"


def interactions(rows: Sequence[tuple[str | None, str | None, float, list[str] | None]]) -> pa.Table:
    """(user, item, epoch seconds, tags) rows as a hetrec-shaped interactions table."""
    users, items, secs, tags = zip(*rows)
    return pa.table({
        "user_id": pa.array(users, pa.string()),
        "item_id": pa.array(items, pa.string()),
        "timestamp": pa.array([int(s * 1000) for s in secs], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "event_type": pa.array(["tag"] * len(rows), pa.string()),
        "tags": pa.array(tags, pa.list_(pa.string())),
    })


def hetrec_like(seed: int = 0, n_users: int = 120, n_items: int = 80, n_topics: int = 6,
                tags_per_topic: int = 8, n_events: int = 3000) -> pa.Table:
    """Seeded tag assignments shaped like HetRec's (one tag per row): each user mostly applies the
    tags of a favourite topic to the items carrying them."""
    rng = np.random.default_rng(seed)
    tags = [f"t{k}-{j}" for k in range(n_topics) for j in range(tags_per_topic)]
    item_topic = rng.integers(n_topics, size=n_items)
    item_tags = [rng.choice(tags_per_topic, size=rng.integers(3, 7), replace=False) + t * tags_per_topic
                 for t in item_topic]
    user_topic = rng.integers(n_topics, size=n_users)
    users = rng.zipf(1.6, size=n_events) % n_users
    rows = []
    for e, u in enumerate(users.tolist()):
        same = np.flatnonzero(item_topic == user_topic[u])
        i = int(rng.choice(same)) if len(same) and rng.random() < 0.8 else int(rng.integers(n_items))
        own = rng.random() < 0.9
        tag = tags[int(rng.choice(item_tags[i]))] if own else tags[int(rng.integers(len(tags)))]
        rows.append((f"u{u}", f"m{i}", 1.2e9 + 3600.0 * e, [tag]))
    return interactions(rows)


def evaluation(**kw) -> EvaluationConfig:
    return EvaluationConfig(**{"test_fraction": 1.0, "min_test_users": 1, "holdout_last": 2, **kw})


def fitted(recipe: str, train: pa.Table, **hyperparameters):
    spec = get_recipe(recipe)
    config, featurizer, model = fit_in_process(spec, hyperparameters, {DatasetKind.INTERACTIONS: train},
                                               schemas=SCHEMAS)
    return spec.predictor_cls(config, featurizer, model)


# --- metrics -------------------------------------------------------------------------------------
def test_precision_minrel_divides_by_the_smaller_of_k_and_the_relevant_count() -> None:
    ranked = {"u": ["a", "b", "c", "d"], "v": ["x", "y"], "w": ["p"]}
    relevant = {"u": {"a", "d"}, "v": {"y", "z", "q", "r"}, "w": set()}  # w has nothing: ignored
    out = precision_minrel(ranked, relevant, ks=(1, 2, 4))
    # u: hits at ranks 0 and 3 -> @1 1/1, @2 1/2, @4 2/2; v: hit at rank 1 -> @1 0, @2 1/2, @4 1/4
    assert out == pytest.approx({"precision_minrel@1": 0.5, "precision_minrel@2": 0.5,
                                 "precision_minrel@4": (1.0 + 0.25) / 2})
    with pytest.raises(ValueError, match="no user has a relevant"):
        precision_minrel(ranked, {"w": set()})


# --- user-tags: UTPM's protocol ------------------------------------------------------------------
USER_ROWS = [
    ("a", "i1", 0, None),  # an event without tags: history, never a target
    ("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("a", "i1", 3, ["x"]), ("a", "i3", 4, ["z"]),
    ("b", "i1", 1, ["x"]), ("b", "i2", 5, ["y"]), ("b", "i2", 5, ["w"]),  # same time: held together
    ("c", "i1", 2, ["x"]), ("c", "i2", 2, ["y"]),  # nothing before its cut: not eligible
    (None, "i1", 3, ["x"]),  # no user: trains
]


def test_user_tag_holdout_by_hand() -> None:
    protocol = get_protocol("user-tag-holdout")
    config = evaluation()
    split = protocol.split({DatasetKind.INTERACTIONS: interactions(USER_ROWS)}, SCHEMAS, config)
    assert [q.user_id for q in split.queries] == ["a", "b"]
    a, b = split.queries
    assert a.history == [("i1", 0.0, "tag", None, None), ("i1", 1.0, "tag", None, ("x",)),
                         ("i2", 2.0, "tag", None, ("y",))]
    assert (a.time, b.time) == (3.0, 5.0) and b.history == [("i1", 1.0, "tag", None, ("x",))]
    assert a.candidates is None and a.item_id is None and not a.exclude and a.num_results == 100
    assert split.relevant == [["x", "z"], ["y", "w"]]
    train = split.train[DatasetKind.INTERACTIONS]
    assert train.num_rows == 7 and split.catalog_size == 2  # x and y
    d = split.description
    assert (d["eligible_users"], d["test_users"], d["held_out_events"], d["cases"]) == (2, 2, 4, 2)

    # tag-popularity: a used x then y (tie: y is the latest) -> [y, x]; b used x -> [x, y].
    predictor = fitted("tag-popularity", train)
    answers = predictor.predict_batch(split.queries)
    assert [x.ids for x in answers] == [["y", "x"], ["x", "y"]] and not any(x.fallback for x in answers)
    report = protocol.evaluate(predictor, split, SCHEMAS, config)
    m = report["model"]
    ndcg2 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    expected = {"precision@1": 0.0, "precision@2": 0.5, "precision@3": 1 / 3, "precision_minrel@1": 0.0,
                "precision_minrel@2": 0.5, "precision_minrel@3": 0.5, "recall@2": 0.5, "hit@1": 0.0,
                "hit@2": 1.0, "ndcg@2": ndcg2, "mrr": 0.5, "coverage@1": 1.0}
    assert {k: m[k] for k in expected} == pytest.approx(expected)
    assert set(report["baselines"]) == {"tag-popularity"} and report["lift"]["mrr"] == pytest.approx(1.0)


def test_user_tag_holdout_is_seeded_and_refuses_thin_data() -> None:
    table = hetrec_like(seed=3)
    protocol = get_protocol("user-tag-holdout")
    config = EvaluationConfig(test_fraction=0.3, min_test_users=5, holdout_last=3, seed=1)
    first = protocol.split({DatasetKind.INTERACTIONS: table}, SCHEMAS, config)
    again = protocol.split({DatasetKind.INTERACTIONS: table.take(np.arange(table.num_rows)[::-1])},
                           SCHEMAS, config)
    assert [q.user_id for q in first.queries] == [q.user_id for q in again.queries]  # not row order
    other = protocol.split({DatasetKind.INTERACTIONS: table}, SCHEMAS, config.model_copy(update={"seed": 2}))
    assert [q.user_id for q in other.queries] != [q.user_id for q in first.queries]
    assert all(len(r) >= 1 for r in first.relevant)
    thin = interactions([("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("b", "i1", 1, ["x"])])
    with pytest.raises(InsufficientData, match="holdout_last=2"):
        protocol.split({DatasetKind.INTERACTIONS: thin}, SCHEMAS, evaluation())
    no_tags = Schema(fields=[f for f in SCHEMA.fields if f.role != Role.TAGS])
    with pytest.raises(InsufficientData, match="role TAGS"):
        protocol.split({DatasetKind.INTERACTIONS: thin}, {DatasetKind.INTERACTIONS: no_tags}, evaluation())


# --- item-tags: GraphTR's protocol ---------------------------------------------------------------
ITEM_ROWS = [
    ("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("a", "i1", 3, ["z"]), ("a", "i2", 4, ["x"]),
    ("b", "i1", 1, ["z"]), ("b", "i1", 2, ["y"]), ("b", "i3", 6, ["x"]), ("b", "i1", 7, ["w"]),
    ("c", "i3", 1, ["q"]), ("c", "i1", 2, ["x"]),  # nothing before its cut: not eligible
    ("e", "i3", 5, ["x"]),  # one tag event: not eligible
]


def test_item_tag_holdout_by_hand() -> None:
    protocol = get_protocol("item-tag-holdout")
    config = evaluation(depth=30)
    split = protocol.split({DatasetKind.INTERACTIONS: interactions(ITEM_ROWS)}, SCHEMAS, config)
    # Held out: a (i1: z, i2: x), b (i3: x, i1: w). Known in training: i1 {x, z, y}, i2 {y}, i3 {q, x};
    # a's x on i2 and b's w on i1 are new to the item: nothing a campaign could have shown.
    n = split.state["cases"]
    assert n == 2 and len(split.queries) == 4 and split.relevant == [["z"], ["x"]] * 2
    d = split.description
    assert (d["held_out_pairs"], d["new_tags_only_left_out"], d["trivial_cases_left_out"]) == (4, 2, 0)
    ranked, full = split.queries[:2], split.queries[2:]
    assert [(q.user_id, q.item_id) for q in ranked] == [("a", "i1"), ("b", "i3")]
    assert [set(q.candidates) for q in ranked] == [{"x", "y", "z"}, {"x", "q"}]
    assert [q.num_results for q in ranked] == [3, 2]
    assert all(q.candidates is None and q.num_results == 30 for q in full)
    assert ranked[0].history == [("i1", 1.0, "tag", None, ("x",)), ("i2", 2.0, "tag", None, ("y",))]
    assert (ranked[0].time, ranked[1].time) == (3.0, 6.0) and full[1].history == ranked[1].history

    # Training counts: x 3 (i1: 2, i3: 1), y 2 (i1: 1, i2: 1), z 1 (i1), q 1 (i3).
    predictor = fitted("item-tag-frequency", split.train[DatasetKind.INTERACTIONS])
    answers = predictor.predict_batch(split.queries)
    assert [x.ids for x in answers] == [["x", "y", "z"], ["x", "q"]] * 2  # ties on the item: overall count
    assert not any(x.fallback for x in answers)
    m = protocol.evaluate(predictor, split, SCHEMAS, config)["model"]
    expected = {"mrr": (1 / 3 + 1) / 2, "hit@1": 0.5, "hit@2": 0.5, "hit@3": 1.0, "precision@2": 0.25,
                "precision_minrel@2": 0.5, "full.mrr": (1 / 3 + 1) / 2, "full.hit@1": 0.5}
    assert {k: m[k] for k in expected} == pytest.approx(expected)
    assert "coverage@1" not in m and "full.coverage@1" in m


def test_item_tag_holdout_leaves_out_pairs_with_nothing_to_rank() -> None:
    rows = [("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("a", "i3", 3, ["z"]), ("a", "i4", 4, ["x"]),
            ("b", "i3", 0.5, ["z"]), ("b", "i4", 0.5, ["x"]), ("b", "i4", 0.5, ["q"]),
            ("b", "i2", 0.5, ["w"])]
    # a's held out: y on i2 (new to it), z on i3 (its only tag: nothing to rank), x on i4 (of x, q).
    split = get_protocol("item-tag-holdout").split({DatasetKind.INTERACTIONS: interactions(rows)}, SCHEMAS,
                                                   evaluation(holdout_last=3))
    assert [(q.user_id, q.item_id) for q in split.queries] == [("a", "i4")] * 2
    d = split.description
    assert (d["new_tags_only_left_out"], d["trivial_cases_left_out"]) == (1, 1)
    only_new = [("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("a", "i3", 3, ["z"])]
    with pytest.raises(InsufficientData, match="in 2 the user applied only tags the item did not have"):
        get_protocol("item-tag-holdout").split({DatasetKind.INTERACTIONS: interactions(only_new)}, SCHEMAS,
                                               evaluation())


# --- the baseline recipes ------------------------------------------------------------------------
def test_tag_popularity_answers() -> None:
    table = interactions([("a", "i1", 0, ["old"]), ("a", "i1", 1, ["old"]), ("a", "i2", 2, ["old"]),
                          ("b", "i1", 3, ["new"]), ("c", "i1", 4, ["pop"]), ("d", "i1", 5, ["pop"]),
                          ("e", "i1", 6, ["pop"]), ("f", "i1", 7, ["pop"])])
    predictor = fitted("tag-popularity", table)
    assert not has_parameters(predictor.model)
    day = 86_400.0
    history = [(None, 0.0, "tag_click", None, ("old",)), ("i1", 1.0, "tag", None, ("old",)),
               ("i2", 100 * day, "tag", None, ("new",))]
    q = [Query(num_results=2), Query(history=history, time=101 * day),
         Query(history=history, candidates=["pop", "nobody", "new"], exclude={"new"}),
         Query(history=[("i1", 1.0)], num_results=3)]  # events without tags: nothing to go on
    a = predictor.predict_batch(q)
    assert a[0].ids == ["pop", "old"] and a[0].fallback
    assert a[1].ids == ["old", "new", "pop"] and not a[1].fallback  # own: old twice, new once
    assert [s for _, s in a[1].ranked] == pytest.approx([1 + 2 / 3, 1 + 1 / 3, 4 / 8])
    assert a[2].ids == ["pop", "nobody"] and a[2].ranked[-1][1] == 0.0
    assert a[3].fallback and a[3].ids == ["pop", "old", "new"]
    # Time-decayed: with a 10-day half-life the tag used yesterday outweighs two uses 100 days ago.
    decayed = fitted("tag-popularity", table, half_life_days=10.0)
    assert decayed.predict_batch([q[1]])[0].ids == ["new", "old", "pop"]
    # Only the latest max_history events are read (a campaign keeps that many).
    short = fitted("tag-popularity", table, max_history=1)
    assert short.max_history == 1 and short.predict_batch([q[1]])[0].ids == ["new", "pop", "old"]


def test_item_tag_frequency_answers() -> None:
    table = interactions([("a", "i1", 0, ["x"]), ("b", "i1", 1, ["x"]), ("c", "i1", 2, ["y"]),
                          ("a", "i2", 3, ["z"]), ("b", "i2", 4, ["z"]), ("c", "i2", 5, ["z"]),
                          (None, None, 6, ["z"])])  # a tag click without an item counts overall
    predictor = fitted("item-tag-frequency", table)
    history = [("i9", 1.0, "tag", None, ("y",))]
    q = [Query(history=history, item_id="i1"),
         Query(history=history, item_id="i1", candidates=["z", "y", "w"]),
         Query(history=history, item_id="unknown", candidates=["y", "w", "z"]),
         Query(history=history, item_id=None, num_results=2), Query(item_id="i1"),
         Query(history=history, item_id="i1", exclude={"x"})]
    a = predictor.predict_batch(q)
    assert a[0].ids == ["x", "y"] and not a[0].fallback  # the item's own tags only
    assert a[0].ranked[0][1] == pytest.approx(2 + 2 / 7)
    assert a[1].ids == ["y", "z", "w"] and not a[1].fallback  # y on the item, z the most used overall
    assert a[2].ids == ["z", "y", "w"] and a[2].fallback  # unknown item: overall counts
    assert a[3].ids == ["z", "x"] and a[3].fallback
    assert a[4].ids == ["x", "y"] and a[4].fallback  # no history: the task's fallback, flagged
    assert a[5].ids == ["y"]
    strict = fitted("item-tag-frequency", table, min_count=2)
    assert strict.predict_batch([q[0]])[0].ids == ["x"]
    assert strict.predict_batch([Query(history=history, item_id="i1", candidates=["y", "x"])])[0].ids == \
        ["x", "y"]


class _TagConformance(RecipeConformance):
    def data(self):
        return {DatasetKind.INTERACTIONS: hetrec_like(seed=1, n_events=800)}, SCHEMAS

    def queries(self, tables):
        rows = tables[DatasetKind.INTERACTIONS].slice(0, 40).to_pylist()
        history = [(r["item_id"], r["timestamp"].timestamp(), r["event_type"], None, tuple(r["tags"]))
                   for r in rows if r["user_id"] == rows[0]["user_id"]]
        item = rows[0]["item_id"]
        seen = history[0][4][0]
        return [Query(history=history, user_id=rows[0]["user_id"], item_id=item, num_results=5),
                Query(user_id="nobody", item_id="no-such-item", num_results=3),
                Query(history=history, item_id=item, candidates=[seen, "t0-1", "t5-7", "unknown"],
                      num_results=10),
                Query(history=history, item_id=item, exclude={seen}, num_results=50)]


class TestTagPopularityConformance(_TagConformance):
    recipe_id = "tag-popularity"
    hyperparameters = {"half_life_days": 30.0}


class TestItemTagFrequencyConformance(_TagConformance):
    recipe_id = "item-tag-frequency"


# --- the real HetRec MovieLens-2k ----------------------------------------------------------------
@pytest.fixture(scope="module")
def movielens_2k(tmp_path_factory: pytest.TempPathFactory):
    if not HETREC.exists():
        pytest.skip(f"{HETREC} is not there (licensed data, not in the repo)")
    from sdk.hetrec import convert

    data = convert(HETREC, tmp_path_factory.mktemp("hetrec"))
    return {k: pq.read_table(p) for k, p in data.paths.items()}, data.schemas


@pytest.mark.parametrize("protocol_name,recipe", [("user-tag-holdout", "tag-popularity"),
                                                  ("item-tag-holdout", "item-tag-frequency")])
def test_baselines_on_hetrec_movielens_2k(movielens_2k, protocol_name: str, recipe: str,
                                          tmp_path: Path) -> None:
    from recipes.base import save_artifact

    tables, schemas = movielens_2k
    protocol = get_protocol(protocol_name)
    config = EvaluationConfig(seed=0)
    split = protocol.split(tables, schemas, config)
    assert split.description["test_users"] == 300 and split.description["cases"] >= 300
    spec = get_recipe(recipe)
    cfg, featurizer, model = fit_in_process(spec, {}, split.train, schemas=schemas)
    save_artifact(tmp_path, spec, cfg, featurizer, model)
    predictor = spec.predictor_cls.load(tmp_path)
    report = protocol.evaluate(predictor, split, schemas, config)
    m = report["model"]
    assert report["lift"]["mrr"] == pytest.approx(1.0)  # the baseline is this recipe
    for prefix in ([""] if protocol_name == "user-tag-holdout" else ["", "full."]):
        assert 0.05 < m[f"{prefix}mrr"] < 0.8, m
        for k in (1, 2, 3, 5, 10):
            assert 0.0 <= m[f"{prefix}precision@{k}"] <= m[f"{prefix}precision_minrel@{k}"] <= 1.0
            assert m[f"{prefix}hit@{k}"] >= m[f"{prefix}precision@{k}"]
        assert m[f"{prefix}hit@1"] < m[f"{prefix}hit@10"] < 0.95
    if protocol_name == "item-tag-holdout":  # ~20 candidates per pair; a random order: hit@2 0.23
        assert m["hit@2"] > 0.35 and m["recall@10"] > 0.5
