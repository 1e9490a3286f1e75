"""UTPM recipe (user-tags): the conformance suite, the model's pieces checked by hand (attention with
shared queries, the cross layer against its double loop, joint vs separate loss), the featurizer's
fields and labels, the predictor's profile from the request's history, and bad input.

Data: a seeded MovieLens-shaped generator (ratings; items with tags and genres; users with
demographics): each user likes one topic's items (4-5 stars) and dislikes another's (0.5-1.5).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from recipes import get_recipe
from recipes.base import Query
from recipes.utpm import UtpmConfig, UtpmFeaturizer, UtpmHooks, UtpmModel
from recipes.utpm.modeling import cross_features, masked_softmax
from recipes.utpm.training import negative_distribution
from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField
from tests.unit.conformance import (
    RecipeConformance,
    one_torch_thread,  # noqa: F401  (autouse: one torch thread)
    overfit,
)
from training_jobs.loop import fit_in_process

SCHEMAS = {
    DatasetKind.INTERACTIONS: Schema(fields=[
        SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID),
        SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
        SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
        SchemaField(name="event_type", type=FieldType.STRING, role=Role.EVENT_TYPE),
        SchemaField(name="event_value", type=FieldType.FLOAT, role=Role.EVENT_VALUE),
        SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True),
    ]),
    DatasetKind.ITEMS: Schema(fields=[
        SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
        SchemaField(name="genres", type=FieldType.CATEGORICAL),
        SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True),
    ]),
    DatasetKind.USERS: Schema(fields=[
        SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID),
        SchemaField(name="gender", type=FieldType.STRING),
        SchemaField(name="age", type=FieldType.INT),
    ]),
}  # the shape of sdk.movielens_tags (plus ml-100k's users)
SMALL = {"epochs": 2, "batch_size": 32, "seed": 0}



def ratings_like(seed: int = 0, n_users: int = 40, n_items: int = 60, n_topics: int = 4,
                 per_user: int = 30) -> dict[DatasetKind, pa.Table]:
    """Seeded MovieLens-shaped tables (module docstring); rows carry tags only when liked (>= 3.5)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(n_topics, size=n_items)
    item_tags = [[f"t{topic[i]}-{j}" for j in rng.choice(6, size=3, replace=False)] for i in range(n_items)]
    genres = [[f"g{topic[i]}"] + ([f"g{(topic[i] + 1) % n_topics}"] if rng.random() < 0.3 else [])
              for i in range(n_items)]
    rows = []
    for u in range(n_users):
        like, hate = rng.choice(n_topics, size=2, replace=False)
        for e in range(per_user):
            kind = rng.random()
            want = like if kind < 0.6 else hate if kind < 0.8 else topic[rng.integers(n_items)]
            pool = np.flatnonzero(topic == want)
            i = int(rng.choice(pool))
            stars = float(rng.choice([4.0, 4.5, 5.0])) if topic[i] == like else \
                float(rng.choice([0.5, 1.0, 1.5])) if topic[i] == hate else float(rng.choice([2.5, 3.0]))
            rows.append((f"u{u}", f"m{i}", 1.5e9 + 86_400.0 * e + u, stars,
                         item_tags[i] if stars >= 3.5 else []))
    users, items, secs, stars, tags = zip(*rows)
    return {
        DatasetKind.INTERACTIONS: pa.table({
            "user_id": pa.array(users), "item_id": pa.array(items),
            "timestamp": pa.array([int(s * 1000) for s in secs], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")),
            "event_type": pa.array(["rating"] * len(rows)), "event_value": pa.array(stars, pa.float64()),
            "tags": pa.array(tags, pa.list_(pa.string()))}),
        DatasetKind.ITEMS: pa.table({
            "item_id": [f"m{i}" for i in range(n_items)],
            "genres": pa.array(genres, pa.list_(pa.string())),
            "tags": pa.array(item_tags, pa.list_(pa.string()))}),
        DatasetKind.USERS: pa.table({
            "user_id": [f"u{u}" for u in range(n_users)],
            "gender": [("F", "M")[u % 2] for u in range(n_users)],
            "age": pa.array([18 + (u * 7) % 50 for u in range(n_users)], pa.int32())}),
    }


def history(tables: dict[DatasetKind, pa.Table], user: str) -> list[tuple]:
    rows = [r for r in tables[DatasetKind.INTERACTIONS].to_pylist() if r["user_id"] == user]
    return [(r["item_id"], r["timestamp"].timestamp(), r["event_type"], r["event_value"],
             tuple(r["tags"]) or None) for r in rows]


class TestConformance(RecipeConformance):
    recipe_id = "utpm"
    hyperparameters = SMALL

    def data(self):
        return ratings_like(seed=1), SCHEMAS

    def queries(self, tables):
        h = history(tables, "u3")
        return [Query(history=h, user_id="u3", num_results=5),
                Query(user_id="nobody", num_results=3),
                Query(history=h, user_id="u3", candidates=["t0-1", "t2-3", "no-such-tag"], num_results=10),
                Query(history=h, user_id="u3", exclude={t for e in h for t in (e[4] or ())}, num_results=50)]


class TestYoutubeDnnConformance(TestConformance):
    """The paper's baseline is the same recipe with average pooling (fusion="average")."""

    hyperparameters = {**SMALL, "fusion": "average"}


# --- the model's pieces, by hand ------------------------------------------------------------------
def test_cross_layer_is_the_double_loop_of_eq_3() -> None:
    torch.manual_seed(0)
    x, v = torch.randn(3, 5), torch.randn(5, 4)
    loop = torch.stack([torch.stack([(v[i] @ v[j]) * x[b, i] * x[b, j]
                                     for i in range(5) for j in range(i + 1, 5)]) for b in range(3)])
    assert cross_features(x, v).shape == (3, 10)
    assert torch.allclose(cross_features(x, v), loop, atol=1e-6)


def test_masked_softmax_gives_empty_slices_no_weight() -> None:
    mask = torch.tensor([[True, False], [False, False]])
    out = masked_softmax(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), mask, -1)
    assert out.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def tiny_model(**kw) -> UtpmModel:
    config = UtpmConfig(**{"embedding_dim": 3, "query_dim": 2, "heads": 2, "user_dim": 3, "fc_hidden": 4,
                           **kw})
    torch.manual_seed(0)
    return UtpmModel(config, field_sizes=[5, 4], num_tags=5)


def test_attention_follows_eq_1_and_2_with_one_query_per_head_shared_by_all_units() -> None:
    model = tiny_model()
    assert model.queries.shape == (1, 2, 2)  # one query per head for every attention unit
    fields = torch.tensor([[[1, 2, 0], [3, 0, 0]]])  # (B=1, M=2, H=3); 0 = padding
    with torch.no_grad():
        x, alpha, beta = model.fuse(fields, return_weights=True)
    t = model.embedding(fields + model.field_offsets[None, :, None])[0]  # (M, H, E)
    for h in range(2):
        q = model.queries[0, h]
        pooled = []
        for k, n in ((0, 2), (1, 1)):
            e = torch.stack([q @ F.relu(model.w_field[k, h].T @ t[k, i] + model.b_field[k, 0])
                             for i in range(n)])
            a = torch.softmax(e, 0)
            assert torch.allclose(alpha[0, k, h, :n], a, atol=1e-6) and float(alpha[0, k, h, n:].sum()) == 0.0
            pooled.append((a[:, None] * t[k, :n]).sum(0))
        e2 = torch.stack([q @ F.relu(model.w_across[h].T @ f + model.b_across[0]) for f in pooled])
        b = torch.softmax(e2, 0)  # across fields: the same query q_h
        assert torch.allclose(beta[0, :, h], b, atol=1e-6)
        assert torch.allclose(x[0, h], b[0] * pooled[0] + b[1] * pooled[1], atol=1e-6)
    # The same query moves both the within- and the across-field weights.
    with torch.no_grad():
        model.queries[0, 0] += 1.0
    _, alpha2, beta2 = model.fuse(fields, return_weights=True)
    assert not torch.allclose(alpha2[0, 0, 0], alpha[0, 0, 0])
    assert not torch.allclose(beta2[0, :, 0], beta[0, :, 0])


def test_unshared_queries_give_every_attention_unit_its_own() -> None:
    assert tiny_model(shared_queries=False, heads=1).queries.shape == (3, 1, 2)  # M within + 1 across


def test_joint_and_separate_loss_by_hand() -> None:
    model = tiny_model(cross=False)
    fields = torch.tensor([[[1, 2, 0], [3, 0, 0]]])
    label_tags = torch.tensor([[[1, 2], [3, 0], [0, 0]]])  # (B, K=3, N=2); the third label: no tag
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, True]])
    with torch.no_grad():
        u = model.user_vector(fields)[0]
        tags = model.tag_table().detach()
    s = {i: float(u @ tags[i]) for i in (1, 2, 3)}

    def bce(z: float, y: float) -> float:
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    joint = (bce(s[1] + s[2], 1) + bce(s[3], 0)) / 2  # eq. 4: σ of the sum over the item's tags
    separate = (bce(s[1], 1) + bce(s[2], 1) + bce(s[3], 0)) / 3  # each tag its own sample
    assert float(model(fields, label_tags, labels, mask).detach()) == pytest.approx(joint, rel=1e-5)
    model.config = model.config.model_copy(update={"loss": "separate"})
    assert float(model(fields, label_tags, labels, mask).detach()) == pytest.approx(separate, rel=1e-5)


@pytest.mark.parametrize("flags", [
    {"heads": 1}, {"heads": 4}, {"shared_queries": False, "heads": 1}, {"cross": False},
    {"cross_over": "head"}, {"loss": "separate"}, {"tie_tag_embeddings": True}, {"disliked_fields": False},
    {"bias_per_head": True}, {"activation": "tanh"}, {"sampled_negatives": 0}, {"fusion": "average"},
    {"negative_sampling": "items"}, {"negative_sampling": "tags"},
])
def test_every_ablation_trains(flags: dict) -> None:
    tables = ratings_like(seed=2, n_users=12, per_user=15)
    config, featurizer, model = fit_in_process("utpm", {**SMALL, **flags, "epochs": 1}, tables,
                                               schemas=SCHEMAS)
    hooks = UtpmHooks(config, featurizer)
    batch = next(iter(hooks.batches(featurizer.transform(tables), epoch=0)))
    fresh = hooks.build_model()
    first, last = overfit(hooks, fresh, torch.optim.Adam(fresh.parameters(), lr=0.02), batch, 30)
    assert last < first, (first, last)
    scores = model.scores(batch["fields"])
    assert scores.shape == (batch["fields"].shape[0], featurizer.num_tags) and torch.isfinite(scores).all()


# --- featurizer -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def featurized() -> tuple[dict, UtpmFeaturizer]:
    tables = ratings_like(seed=3)
    return tables, UtpmFeaturizer.fit(tables, UtpmConfig(**SMALL), schemas=SCHEMAS)


def test_labels_follow_the_thresholds_and_event_types() -> None:
    tables = ratings_like(seed=3, n_users=5, per_user=5)
    config = UtpmConfig(positive_event_types=["purchase"], negative_event_types=["skip"])
    f = UtpmFeaturizer.fit(tables, config, schemas=SCHEMAS)
    assert [f.label("rating", v) for v in (5.0, 3.5, 3.0, 1.5, 0.5)] == [1, 1, -1, 0, 0]
    assert [f.label("purchase", 0.1), f.label("skip", 5.0), f.label("tag", None),
            f.label("click", float("nan"))] == [1, 0, 1, 1]


def test_fields_are_the_most_frequent_values_ties_to_the_most_recent(featurized) -> None:
    tables, f = featurized
    assert f.field_names == ["liked:tags", "liked:genres", "disliked:tags", "disliked:genres", "user:gender",
                             "user:age"]
    tag = f.tags.index
    item = f.items.index
    events = [("m0", 1.0, "rating", 5.0, ("a", "b")), ("m0", 2.0, "rating", 4.0, ("b",)),
              ("m0", 3.0, "rating", 1.0, None), ("m0", 4.0, "rating", 3.0, ("c",))]
    f.tags._index.update({"a": tag("t0-0"), "b": tag("t0-1"), "c": tag("t0-2")})  # known names
    try:
        items, labels, tags = f.encode_history(events)
        assert labels == [1, 1, 0, -1] and tags[0] == (tag("t0-0"), tag("t0-1"))
        assert tags[2] == tuple(int(t) for t in f.item_tags[item("m0")] if t)  # no own tags: the item's
        out = f.fields(items, labels, tags, f.users.index("u1"))
    finally:
        for k in ("a", "b", "c"):
            del f.tags._index[k]
    assert out.shape == (6, 10)
    assert out[0, :2].tolist() == [tag("t0-1"), tag("t0-0")] and not out[0, 2:].any()  # b twice, then a
    assert out[2, :3].tolist() == [int(t) for t in f.item_tags[item("m0")] if t][:3]  # disliked: the item's
    g = f.categories["genres"]
    assert out[1, 0] == f.item_cats[item("m0"), 0, 0] == g.index(f"g{_topic(tables, 'm0')}")
    assert out[4, 0] == f.user_fields["gender"].index("M") and out[5, 0] > 0  # u1: M, an age bucket


def _topic(tables: dict, item: str) -> int:
    items = tables[DatasetKind.ITEMS].to_pylist()
    return int(next(r for r in items if r["item_id"] == item)["genres"][0][1:])


def test_samples_cut_each_history_and_label_the_next_items(featurized) -> None:
    tables, f = featurized
    ex = f.transform(tables)
    assert ex.num_samples == 40 * 4  # every user, every cut
    assert ex.fields.shape[1:] == (6, 10) and ex.label_tags.shape[1:] == (10, 3)
    assert set(np.unique(ex.labels[ex.label_mask])) == {0.0, 1.0}
    assert (ex.label_tags[ex.label_mask] > 0).any(-1).all()  # every label has a tag


def test_items_without_a_tags_field_get_the_tags_applied_to_them_most() -> None:
    tables = ratings_like(seed=4, n_users=10, per_user=10)
    inter = tables[DatasetKind.INTERACTIONS]
    f = UtpmFeaturizer.fit({DatasetKind.INTERACTIONS: inter}, UtpmConfig(),
                           schemas={DatasetKind.INTERACTIONS: SCHEMAS[DatasetKind.INTERACTIONS]})
    assert f.field_names == ["liked:tags", "disliked:tags"]
    applied = [r for r in inter.to_pylist() if r["tags"]]
    first = applied[0]
    got = {f.tags.id(int(t)) for t in f.item_tags[f.items.index(first["item_id"])] if t}
    assert got and got <= set(first["tags"])


# --- predictor --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor():
    tables = ratings_like(seed=5)
    spec = get_recipe("utpm")
    # 40 epochs: popularity-sampled negatives (the default) are harder than uniform ones, slower to learn.
    config, featurizer, model = fit_in_process(spec, {**SMALL, "epochs": 40}, tables, schemas=SCHEMAS)
    return tables, spec.predictor_cls(config, featurizer, model)


def test_a_new_rating_changes_the_profile_at_the_next_request(predictor) -> None:
    tables, p = predictor
    h = history(tables, "u2")
    before = p.predict_batch([Query(history=h, user_id="u2", num_results=10)])[0]
    liked = [e for e in tables[DatasetKind.INTERACTIONS].to_pylist() if e["event_value"] >= 4
             and not {t for x in h for t in (x[4] or ())} & set(e["tags"])]
    new = (liked[0]["item_id"], h[-1][1] + 60, "rating", 5.0, None)  # a real-time event: no tags sent
    after = p.predict_batch([Query(history=[*h, new] * 1, user_id="u2", num_results=10)])[0]
    assert not before.fallback and not after.fallback
    assert [s for _, s in before.ranked] != [s for _, s in after.ranked]


def test_the_profile_ranks_the_liked_topic_above_the_disliked_one(predictor) -> None:
    tables, p = predictor
    inter = tables[DatasetKind.INTERACTIONS].to_pylist()
    wins = 0
    users = [f"u{u}" for u in range(40)]
    answers = p.predict_batch([Query(history=history(tables, u), user_id=u, num_results=3) for u in users])
    for u, a in zip(users, answers):
        liked = {t.split("-")[0] for r in inter if r["user_id"] == u and r["event_value"] >= 4
                 for t in r["tags"]}
        wins += a.ids[0].split("-")[0] in liked
    assert wins >= 30, wins


def test_an_unknown_user_gets_the_most_clicked_tags_flagged_fallback(predictor) -> None:
    _, p = predictor
    a, b = p.predict_batch([Query(user_id="nobody", num_results=4),
                            Query(history=[("no-such-item", 1.0, "rating", 5.0, None)], num_results=4)])
    assert a.fallback and b.fallback and a.ids == b.ids and len(a.ids) == 4
    counts = p.featurizer.tag_counts
    assert [counts[p.featurizer.tags.index(t)] for t in a.ids] == sorted(counts[1:], reverse=True)[:4]
    known = p.predict_batch([Query(user_id="u1", num_results=4)])[0]  # demographics only: the model answers
    assert not known.fallback and len(known.ids) == 4


# --- bad input --------------------------------------------------------------------------------------
def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="tie_tag_embeddings needs embedding_dim == user_dim"):
        UtpmConfig(tie_tag_embeddings=True, embedding_dim=8)
    with pytest.raises(ValidationError, match="negative_threshold"):
        UtpmConfig(negative_threshold=4.0)
    with pytest.raises(ValidationError, match="heads"):
        UtpmConfig(heads=0)
    for field in ("positive_threshold", "negative_threshold"):
        with pytest.raises(ValidationError, match=field):
            UtpmConfig(**{field: float("nan")})


def test_missing_roles_and_unlearnable_data_are_clear_errors() -> None:
    tables = ratings_like(seed=6, n_users=5, per_user=5)
    inter = tables[DatasetKind.INTERACTIONS]
    no_user = Schema(fields=[f for f in SCHEMAS[DatasetKind.INTERACTIONS].fields if f.role != Role.USER_ID])
    with pytest.raises(ValueError, match="role USER_ID"):
        UtpmFeaturizer.fit(tables, UtpmConfig(), schemas={**SCHEMAS, DatasetKind.INTERACTIONS: no_user})
    f = UtpmFeaturizer.fit(tables, UtpmConfig(positive_threshold=6.0, negative_threshold=-1.0),
                           schemas=SCHEMAS)
    with pytest.raises(ValueError, match="no training sample.*thresholds"):
        f.transform({DatasetKind.INTERACTIONS: inter})
    # Clicks of value 1 are negative by the rating thresholds: the error says what to set.
    clicks = {**tables, DatasetKind.INTERACTIONS: inter.set_column(
        inter.schema.get_field_index("event_value"), "event_value", pa.array([1.0] * inter.num_rows))}
    f = UtpmFeaturizer.fit(clicks, UtpmConfig(), schemas=SCHEMAS)
    with pytest.raises(ValueError, match=r"no positive label.*positive_event_types.*\['click'\]"):
        f.transform(clicks)


def test_items_and_users_added_since_training_are_learned_by_update_catalog() -> None:
    tables = ratings_like(seed=7, n_users=10, per_user=12)
    spec = get_recipe("utpm")
    config, featurizer, model = fit_in_process(spec, {**SMALL, "epochs": 1}, tables, schemas=SCHEMAS)
    p = spec.predictor_cls(config, featurizer, model)
    known_tags = featurizer.tags.ids[:2]
    new_item = ("m-new", 10.0, "rating", 5.0, None)
    assert p.predict_batch([Query(history=[new_item], num_results=3)])[0].fallback  # nothing known yet
    added = p.update_catalog({
        DatasetKind.ITEMS: pa.table({"item_id": ["m-new", "m0"], "genres": [["g1"], ["g0"]],
                                     "tags": [known_tags + ["never-seen"], ["t0-0"]]}),
        DatasetKind.USERS: pa.table({"user_id": ["u-new"], "gender": ["F"],
                                     "age": pa.array([30], pa.int32())}),
    }, SCHEMAS)
    assert added == 2  # m0 and the users of training are not new
    liked, clicked = featurizer.query_fields([new_item], None)
    assert clicked == {featurizer.tags.index(t) for t in known_tags}
    assert liked[0, :2].tolist() == [featurizer.tags.index(t) for t in known_tags]
    a, b = p.predict_batch([Query(history=[new_item], num_results=3), Query(user_id="u-new", num_results=3)])
    assert not a.fallback and not b.fallback


def test_user_tag_holdout_relevant_tags_are_the_held_out_liked_items_tags() -> None:
    """With the converter's rows (tags only on liked ratings), the task's protocol scores §4.1's labels:
    the tags of the test users' newest positively rated items."""
    from sdk.types import EvaluationConfig
    from training_jobs.evaluation.protocols import get_protocol

    tables = ratings_like(seed=8)
    split = get_protocol("user-tag-holdout").split(tables, SCHEMAS, EvaluationConfig(
        test_fraction=0.2, min_test_users=1, holdout_last=5))
    rows = tables[DatasetKind.INTERACTIONS].to_pylist()
    assert len(split.queries) == 8
    for q, relevant in zip(split.queries, split.relevant):
        held = [r for r in rows if r["user_id"] == q.user_id and r["timestamp"].timestamp() >= q.time]
        assert set(relevant) == {t for r in held if r["event_value"] >= 3.5 for t in r["tags"]}
        assert sum(r["event_value"] >= 3.5 for r in held) == 5


def test_clicked_tags_first_ranks_the_users_clicked_tags_before_the_others(predictor) -> None:
    tables, p = predictor
    h = history(tables, "u4")
    clicked = {t for e in h if e[3] >= 3.5 for t in (e[4] or ())}
    assert p.config.clicked_tags_first  # the default (§1's candidate selection)
    every = type(p)(p.config.model_copy(update={"clicked_tags_first": False}), p.featurizer, p.model)
    plain, ranked = (x.predict_batch([Query(history=h, user_id="u4", num_results=len(clicked) + 5)])[0]
                     for x in (every, p))
    assert set(ranked.ids[:len(clicked)]) == clicked and not set(ranked.ids[len(clicked):]) & clicked
    by_model = [t for t in plain.ids if t in clicked]  # the clicked tags keep the model's order
    assert ranked.ids[:len(by_model)] == by_model


def test_popularity_negatives_follow_the_clicks_and_the_predictor_adds_log_q(predictor) -> None:
    tables, p = predictor
    config = p.config.model_copy(update={"negative_sampling": "popularity", "sampled_negatives": 20,
                                         "clicked_tags_first": False})
    f = p.featurizer
    q = negative_distribution(f.tag_counts)
    assert q == pytest.approx((f.tag_counts[1:] + 1) / (f.tag_counts[1:] + 1).sum())
    hooks = UtpmHooks(config, f)
    examples = f.transform(tables)
    K = examples.label_tags.shape[1]
    drawn = np.concatenate([b["label_tags"][:, K:].numpy().ravel() for b in hooks.batches(examples, epoch=0)])
    freq = np.bincount(drawn, minlength=f.num_tags)[1:] / len(drawn)
    assert np.abs(freq - q).max() < 0.01 and not (drawn == 0).any()
    # With every u·t equal, the corrected scores rank the tags by q: the most clicked first.
    flat = UtpmModel(config, f.field_sizes, f.num_tags)
    torch.nn.init.zeros_(flat.tag_embedding.weight)
    answer = type(p)(config, f, flat).predict_batch([Query(history=history(tables, "u1"), user_id="u1",
                                                           num_results=5)])[0]
    assert answer.ids == [f.tags.ids[i] for i in np.argsort(-q, kind="stable")[:5]]
    uniform = config.model_copy(update={"negative_sampling": "tags"})
    plain = type(p)(uniform, f, flat).predict_batch([Query(history=history(tables, "u1"), user_id="u1",
                                                            num_results=5)])[0]
    assert {s for _, s in plain.ranked} == {0.5}  # uncorrected: σ(0) for every tag
