"""The GraphTR graph (recipes/graphtr/graph.py): every edge type by hand on tiny tables, dedup and
undirectedness, creators and user groups, the indicator features, the degree cap, the sampler (real
neighbours, seeded, uniform, vectorised), eq. 14's pairs and negatives, the state round-trip, and a
build of the real HetRec MovieLens-2k when it is there."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recipes.graphtr.graph import EDGE_TYPES, NODE_TYPES, GraphColumns, GraphConfig, HeteroGraph
from tests.conftest import SHARED_DATA

HETREC = SHARED_DATA / "hetrec2011-movielens-2k-tags"
DAY = 86_400.0


def interactions(rows, **extra) -> pa.Table:
    """(user, item, epoch seconds, tags) rows as a hetrec-shaped interactions table (+ columns)."""
    users, items, secs, tags = zip(*rows)
    return pa.table({
        "user_id": pa.array(users, pa.string()),
        "item_id": pa.array(items, pa.string()),
        "timestamp": pa.array([int(s * 1000) for s in secs], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "tags": pa.array(tags, pa.list_(pa.string())),
        **extra,
    })


ROWS = [
    ("a", "i1", 1, ["x"]), ("a", "i2", 2, ["y"]), ("a", "i2", 3, ["x"]), ("a", "i3", 4, None),
    ("b", "i3", 1, ["z"]), ("b", "i1", 2, None),
    ("b", None, 3, ["w"]),  # a tag click: w is a node, with no edge
    ("c", "i4", 5, ["y"]),
]
ITEMS = pa.table({
    "item_id": ["i1", "i2", "i5"],
    "creators": pa.array([["d1"], ["d1", "d2"], ["d2"]], pa.list_(pa.string())),
    "tags": pa.array([["v"], None, ["x"]], pa.list_(pa.string())),
})
COLUMNS = GraphColumns(items_tags="tags")
# The tiny graph by hand: per node, its neighbours per field.
EXPECTED = {
    ("item", "i1"): {"item": {"i2", "i3"}, "tag": {"v", "x"}, "creator": {"d1"}, "user": {"a", "b"}},
    ("item", "i2"): {"item": {"i1", "i3"}, "tag": {"x", "y"}, "creator": {"d1", "d2"}, "user": {"a"}},
    ("item", "i3"): {"item": {"i1", "i2"}, "tag": {"z"}, "user": {"a", "b"}},
    ("item", "i4"): {"tag": {"y"}, "user": {"c"}},
    ("item", "i5"): {"tag": {"x"}, "creator": {"d2"}},
    ("tag", "x"): {"item": {"i1", "i2", "i5"}, "tag": {"v", "y"}},
    ("tag", "y"): {"item": {"i2", "i4"}, "tag": {"x"}},
    ("tag", "v"): {"item": {"i1"}, "tag": {"x"}},
    ("tag", "z"): {"item": {"i3"}},
    ("tag", "w"): {},
    ("creator", "d1"): {"item": {"i1", "i2"}},
    ("creator", "d2"): {"item": {"i2", "i5"}},
    ("user", "a"): {"item": {"i1", "i2", "i3"}},
    ("user", "b"): {"item": {"i1", "i3"}},
    ("user", "c"): {"item": {"i4"}},
}


def tiny(**config) -> HeteroGraph:
    return HeteroGraph.build(interactions(ROWS), ITEMS, columns=COLUMNS, config=GraphConfig(**config))


def by_field(graph: HeteroGraph, node: int) -> dict[str, set[str]]:
    """A node's stored neighbours as id strings per field (empty fields left out)."""
    out = {t: {graph.id_of(int(v))[1] for v in graph.neighbours(node, t)} for t in NODE_TYPES}
    return {t: s for t, s in out.items() if s}


def entries(graph: HeteroGraph) -> set[tuple[int, int]]:
    rows = np.repeat(np.arange(graph.num_nodes), np.diff(graph.indptr))
    return set(zip(rows.tolist(), graph.indices.tolist()))


# --- building (§3.2) -----------------------------------------------------------------------------
def test_every_edge_type_by_hand() -> None:
    g = tiny()
    assert g.vocab == {"item": ["i1", "i2", "i3", "i4", "i5"], "tag": ["v", "w", "x", "y", "z"],
                       "creator": ["d1", "d2"], "user": ["a", "b", "c"]}
    assert g.offsets.tolist() == [0, 5, 10, 12, 15] and g.num_nodes == 15
    assert {g.id_of(v): by_field(g, v) for v in range(g.num_nodes)} == EXPECTED
    assert g.edge_counts == {"item-item": 3, "item-user": 6, "item-tag": 7, "item-creator": 4, "tag-tag": 2}
    assert g.num_entries == 2 * sum(g.edge_counts.values())
    assert g.meta["user_nodes"] == "users" and g.meta["item_sequence"] == "user"
    assert g.node("tag", "x") == 7 and g.node("tag", "nope") == -1 and g.node("item", "x") == -1
    assert g.nodes("user", ["c", None, "a"]).tolist() == [14, -1, 12]
    assert g.type_of(np.array([0, 4, 5, 10, 12, 14])).tolist() == [0, 0, 1, 2, 3, 3]
    assert g.degree.tolist() == [sum(len(s) for s in EXPECTED[g.id_of(v)].values()) for v in range(15)]


def test_edges_are_deduplicated_undirected_and_sorted() -> None:
    # The same consecutive pair in both orders, over and over; a tag applied many times; a repeated item.
    rows = [("a", "i1", t, ["x"]) if t % 2 else ("a", "i2", t, ["x", "x"]) for t in range(10)]
    rows += [("a", "i2", 10, ["y"]), ("b", "i2", 1, ["x"]), ("b", "i1", 2, ["y"])]
    g = HeteroGraph.build(interactions(rows))
    pairs = entries(g)
    assert len(pairs) == g.num_entries  # no entry twice
    assert all((v, u) in pairs for u, v in pairs) and all(u != v for u, v in pairs)
    assert g.edge_counts == {"item-item": 1, "item-user": 4, "item-tag": 4, "item-creator": 0, "tag-tag": 1}
    for v in range(g.num_nodes):
        row = g.neighbours(v)
        assert np.all(np.diff(row) > 0)  # ascending ids, hence grouped by field
        got = np.concatenate([g.neighbours(v, t) for t in NODE_TYPES])
        assert np.array_equal(got, row)
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int32
    # The build does not depend on row order.
    table = interactions(rows)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    again = HeteroGraph.build(shuffled)
    assert again.vocab == g.vocab and np.array_equal(again.indices, g.indices)


def test_sessions_and_valid_behaviour() -> None:
    rows = [("a", "i1", 1, None), ("a", "i2", 2, None), ("a", "i3", 3, None), ("a", "i4", 4, None),
            ("b", "i5", 1, None), ("b", "i6", 2, None)]
    extra = {"session_id": pa.array(["s1", "s2", "s1", "s2", None, None]),
             "event_type": pa.array(["watch", "watch", "watch", "watch", "watch", "impression"]),
             "event_value": pa.array([0.9, 0.5, None, 0.8, 0.9, 0.9])}
    table = interactions(rows, **extra)
    cols = GraphColumns(session_id="session_id", event_type="event_type", event_value="event_value")

    def item_edges(g: HeteroGraph) -> set[frozenset[str]]:
        return {frozenset((g.id_of(u)[1], g.id_of(v)[1])) for u, v in entries(g) if u < v < g.offsets[1]}

    g = HeteroGraph.build(table, columns=cols)
    assert g.meta["item_sequence"] == "session"  # a's sessions s1: i1, i3; s2: i2, i4; b's rows: its user
    assert item_edges(g) == {frozenset(p) for p in [("i1", "i3"), ("i2", "i4"), ("i5", "i6")]}
    by_user = HeteroGraph.build(table, columns=cols, config=GraphConfig(item_sequence="user"))
    assert item_edges(by_user) == {frozenset(p) for p in [("i1", "i2"), ("i2", "i3"), ("i3", "i4"),
                                                          ("i5", "i6")]}
    valid = HeteroGraph.build(table, columns=cols, config=GraphConfig(
        item_sequence="user", behaviour_event_types=["watch"], min_event_value=0.6))
    # i2 (0.5) and b's impression are not valid watches; a null value is: a's i1, i3, i4.
    assert item_edges(valid) == {frozenset(p) for p in [("i1", "i3"), ("i3", "i4")]}
    assert by_field(valid, valid.node("user", "a")) == {"item": {"i1", "i3", "i4"}}
    assert by_field(valid, valid.node("user", "b")) == {"item": {"i5"}}
    with pytest.raises(ValueError, match="SESSION_ID"):
        HeteroGraph.build(interactions(rows), config=GraphConfig(item_sequence="session"))


def test_without_a_creator_field_there_are_no_creator_nodes() -> None:
    items = ITEMS.drop_columns(["creators"])
    for g in (HeteroGraph.build(interactions(ROWS), items, columns=COLUMNS),
              tiny(creator_field=None), tiny(creator_field="directors"),
              HeteroGraph.build(interactions(ROWS))):
        assert g.num_nodes_of("creator") == 0 and g.edge_counts["item-creator"] == 0
        assert g.features["creator"].shape == (g.num_nodes, 1) and not g.features["creator"].any()
        assert g.field_sizes[2] == 1
        rng = np.random.default_rng(0)
        sample = g.sample_two_hop(np.arange(g.num_nodes), rng, 3, 2)
        assert sample.hop2.shape == (g.num_nodes, 4, 2)
        src, dst = g.epoch_pairs(0)
        assert len(src) == g.num_entries
        assert g.loss_batch(src[:4], dst[:4], rng, num_negatives=2).anchor.shape == (4,)
    no_items = HeteroGraph.build(interactions(ROWS))
    assert no_items.vocab["item"] == ["i1", "i2", "i3", "i4"]  # i5 only in the items table


USERS = pa.table({
    "user_id": ["u1", "u2", "u3", "u4", "u5"],
    "gender": pa.array([["F"], ["F"], ["M"], ["M"], []], pa.list_(pa.string())),
    "age": pa.array([["25-34"], ["25-34"], ["25-34"], None, None], pa.list_(pa.string())),
})
GROUP_ROWS = [
    ("u1", "i1", 0 * DAY, None), ("u2", "i1", 1 * DAY, None), ("u1", "i1", 2 * DAY, None),  # F: 3 in a week
    ("u3", "i2", 0 * DAY, None), ("u3", "i2", 8 * DAY, None), ("u3", "i2", 16 * DAY, None),  # one a week
    ("u4", "i2", 0, None), ("u4", "i2", 1, None), ("u4", "i2", 2, None),  # ["M", null]
    ("u5", "i3", 0, None), ("u5", "i3", 1, None), ("u5", "i3", 2, None),  # no field: no group
    ("u9", "i3", 0, None), ("u9", "i3", 1, None), ("u9", "i3", 2, None),  # not in the users table
    ("u1", "i4", 3 * DAY, None), ("u1", "i4", 3 * DAY, None),  # two: below 3
]
GROUP_COLUMNS = GraphColumns(user_fields=("gender", "age"))


def test_user_groups_from_the_users_fields() -> None:
    table = interactions(GROUP_ROWS)
    g = HeteroGraph.build(table, users=USERS, columns=GROUP_COLUMNS)
    assert g.meta["user_nodes"] == "groups" and g.meta["user_fields"] == ["gender", "age"]
    key = HeteroGraph.group_key
    assert g.vocab["user"] == sorted([key(["F", "25-34"]), key(["M", "25-34"]), key(["M", None])])
    assert by_field(g, g.node("user", key(["F", "25-34"]))) == {"item": {"i1"}}
    assert by_field(g, g.node("user", key(["M", "25-34"]))) == {}  # 3 events, never 3 in one week
    assert by_field(g, g.node("user", key(["M", None]))) == {"item": {"i2"}}
    assert g.edge_counts["item-user"] == 2
    assert g.edge_counts["item-item"] == 1  # u1's i1 -> i4: sequences stay the users'
    whole = HeteroGraph.build(table, users=USERS, columns=GROUP_COLUMNS,
                              config=GraphConfig(group_window_days=None))
    assert by_field(whole, whole.node("user", key(["M", "25-34"]))) == {"item": {"i2"}}
    loose = HeteroGraph.build(table, users=USERS, columns=GROUP_COLUMNS, config=GraphConfig(min_group_item=2))
    assert by_field(loose, loose.node("user", key(["F", "25-34"]))) == {"item": {"i1", "i4"}}
    # Users themselves, or none; groups need a users table with the fields.
    users = HeteroGraph.build(table, users=USERS, columns=GROUP_COLUMNS,
                              config=GraphConfig(user_nodes="users"))
    assert users.vocab["user"] == ["u1", "u2", "u3", "u4", "u5", "u9"] and users.edge_counts["item-user"] == 7
    assert HeteroGraph.build(table, users=USERS).meta["user_nodes"] == "users"  # no group fields named
    none = HeteroGraph.build(table, users=USERS, columns=GROUP_COLUMNS, config=GraphConfig(user_nodes="none"))
    assert none.num_nodes_of("user") == 0 and none.edge_counts["item-user"] == 0
    with pytest.raises(ValueError, match="user_nodes='groups' needs a users table"):
        HeteroGraph.build(table, columns=GROUP_COLUMNS, config=GraphConfig(user_nodes="groups"))


def test_columns_from_schemas() -> None:
    from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField

    f = SchemaField
    schemas = {
        DatasetKind.INTERACTIONS: Schema(fields=[
            f(name="uid", type=FieldType.STRING, role=Role.USER_ID),
            f(name="iid", type=FieldType.STRING, role=Role.ITEM_ID, nullable=True),
            f(name="ts", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
            f(name="sid", type=FieldType.STRING, role=Role.SESSION_ID),
            f(name="labels", type=FieldType.CATEGORICAL, role=Role.TAGS)]),
        DatasetKind.ITEMS: Schema(fields=[f(name="id", type=FieldType.STRING, role=Role.ITEM_ID),
                                          f(name="kw", type=FieldType.CATEGORICAL, role=Role.TAGS)]),
        DatasetKind.USERS: Schema(fields=[f(name="id", type=FieldType.STRING, role=Role.USER_ID),
                                          f(name="gender", type=FieldType.CATEGORICAL),
                                          f(name="age", type=FieldType.INT),
                                          f(name="city", type=FieldType.CATEGORICAL)]),
    }  # fmt: skip
    cols = GraphColumns.from_schemas(schemas)
    assert (cols.user_id, cols.item_id, cols.timestamp, cols.session_id, cols.tags) == \
        ("uid", "iid", "ts", "sid", "labels")
    assert (cols.items_id, cols.items_tags, cols.users_id, cols.user_fields) == ("id", "kw", "id",
                                                                                ("gender", "city"))
    assert cols.event_type is None and GraphColumns.from_schemas({}).user_fields == ()


def test_config_is_validated_and_read_from_a_recipe_config() -> None:
    with pytest.raises(ValueError, match="max_degree"):
        GraphConfig(max_degree=0)
    with pytest.raises(ValueError, match="user_nodes"):
        GraphConfig(user_nodes="everyone")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group_window_days"):
        GraphConfig(group_window_days=0)

    class RecipeConfig:  # e.g. the recipe's pydantic config, with fields of its own too
        max_degree, fanout1, hidden_dim = 7, 5, 150

    cfg = GraphConfig.from_object(RecipeConfig())
    assert (cfg.max_degree, cfg.fanout1, cfg.fanout2) == (7, 5, 20)
    assert GraphConfig().feature_sizes == (100, 50, 50, 50)

    class Aliased:  # the recipe's names: field_dims (item 2x), first/second_samples
        field_dims, first_samples, second_samples, tag_features = 8, 4, 3, 5

    aliased = GraphConfig.from_object(Aliased())
    assert aliased.feature_sizes == (16, 5, 8, 8) and (aliased.fanout1, aliased.fanout2) == (4, 3)


# --- the degree cap and the features (§3.3.1) ----------------------------------------------------
def test_the_degree_cap_keeps_the_most_seen_neighbours_per_field() -> None:
    rows = [("a", "i1", 1, ["x"]), ("b", "i2", 1, ["x"]), ("c", "i2", 1, ["x"]), ("d", "i2", 1, ["x"]),
            ("e", "i3", 1, ["x"]), ("f", "i3", 1, ["x"]), ("a", "i1", 2, ["y"])]
    g = HeteroGraph.build(interactions(rows), config=GraphConfig(max_degree=2))
    x, i1 = g.node("tag", "x"), g.node("item", "i1")
    assert by_field(g, x) == {"item": {"i2", "i3"}, "tag": {"y"}}  # x on i2 3 times, i3 twice, i1 once
    assert g.degree[x] == 4 and g.edge_counts["item-tag"] == 4  # the uncapped numbers
    assert by_field(g, i1)["tag"] == {"x", "y"}  # i1's own list keeps x: past the cap, lists are a node's own
    assert g.has_edge(i1, x) and not g.has_edge(x, i1)
    full = HeteroGraph.build(interactions(rows))
    assert by_field(full, x)["item"] == {"i1", "i2", "i3"}


def test_features_are_the_top_frequent_neighbours() -> None:
    g = tiny(item_features=2, tag_features=2, creator_features=1, user_features=2)
    # Degrees: i1 7, i2 7, i3 5, i4 2, i5 2; x 5, y 3, v 2, z 1, w 0; d1 2, d2 2; a 3, b 2, c 1.
    ids = {t: [g.id_of(int(v))[1] for v in g.top[t]] for t in NODE_TYPES}
    assert ids == {"item": ["i1", "i2"], "tag": ["x", "y"], "creator": ["d1"], "user": ["a", "b"]}
    assert g.field_sizes == [3, 3, 2, 3]

    def feats(node_type: str, node_id: str) -> dict[str, list[int]]:
        out = g.node_features(np.array([g.node(node_type, node_id)]))
        return {t: [p for p in out[t][0].tolist() if p] for t in NODE_TYPES}

    assert feats("tag", "x") == {"item": [1, 2], "tag": [2], "creator": [], "user": []}
    assert feats("item", "i3") == {"item": [1, 2], "tag": [], "creator": [], "user": [1, 2]}
    assert feats("item", "i2") == {"item": [1], "tag": [1, 2], "creator": [1], "user": [1]}
    assert feats("item", "i4") == {"item": [], "tag": [2], "creator": [], "user": []}
    assert feats("tag", "w") == {t: [] for t in NODE_TYPES}
    for t, width in zip(NODE_TYPES, (2, 2, 1, 2)):
        assert g.features[t].shape == (15, width) and g.features[t].dtype == np.int32
    stacked = g.stacked_features()
    assert stacked.shape == (15, 4, 2) and np.array_equal(stacked[:, 2, :1], g.features["creator"])
    assert not stacked[:, 2, 1:].any()
    # A node's positions are exactly its neighbours among the field's top list, most frequent first.
    big = tiny()
    for v in range(big.num_nodes):
        for t in NODE_TYPES:
            pos = big.features[t][v]
            expected = sorted(int(np.flatnonzero(big.top[t] == u)[0]) + 1 for u in big.neighbours(v, t)
                              if u in big.top[t])
            assert pos[pos > 0].tolist() == expected


# --- sampling (§5.3) -----------------------------------------------------------------------------
def test_the_sampler_returns_neighbours_or_self_and_is_seeded() -> None:
    g = tiny()
    nodes = np.repeat(np.arange(g.num_nodes), 3)
    out = g.sample(nodes, 50, np.random.default_rng(1))
    assert out.shape == (45, 50) and out.dtype == np.int64
    for v, drawn in zip(nodes.tolist(), out):
        allowed = set(g.neighbours(v).tolist()) or {v}  # w has no neighbour: itself
        assert set(drawn.tolist()) <= allowed
    assert set(out[nodes == g.node("tag", "w")].ravel().tolist()) == {g.node("tag", "w")}
    assert np.array_equal(out, g.sample(nodes, 50, np.random.default_rng(1)))
    assert not np.array_equal(out, g.sample(nodes, 50, np.random.default_rng(2)))
    assert g.sample(np.zeros((2, 3), np.int64), 4, np.random.default_rng(0)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="node ids"):
        g.sample(np.array([15]), 2, np.random.default_rng(0))

    two = g.sample_two_hop(np.array([0, 9]), np.random.default_rng(3), k1=4, k2=3)
    assert two.hop1.shape == (2, 4) and two.hop2.shape == (2, 5, 3)
    centres = np.concatenate([two.nodes[:, None], two.hop1], axis=1)
    for c, around in zip(centres.ravel().tolist(), two.hop2.reshape(-1, 3)):
        assert set(around.tolist()) <= (set(g.neighbours(c).tolist()) or {c})
    assert GraphConfig().fanout1 == 30 and GraphConfig().fanout2 == 20  # §5.3
    assert g.sample_two_hop(np.array([0]), np.random.default_rng(0)).hop2.shape == (1, 31, 20)


def test_the_sampler_covers_neighbours_uniformly() -> None:
    g = tiny()
    x = g.node("tag", "x")  # 5 neighbours
    counts = Counter(g.sample(np.full(10, x), 5000, np.random.default_rng(0)).ravel().tolist())
    assert set(counts) == set(g.neighbours(x).tolist())
    assert all(abs(n / 50_000 - 0.2) < 0.01 for n in counts.values()), counts  # 0.2 ± ~4.5 sd


@pytest.fixture(scope="module")
def large() -> HeteroGraph:
    """~10^5 nodes: 20k users, 70k items, 10k tags, 400k events."""
    rng = np.random.default_rng(0)
    n = 400_000
    users = rng.integers(20_000, size=n)
    items = rng.integers(70_000, size=n)
    tags = rng.integers(10_000, size=n)
    return HeteroGraph.build(pa.table({
        "user_id": pa.array([f"u{u}" for u in users.tolist()]),
        "item_id": pa.array([f"i{i}" for i in items.tolist()]),
        "timestamp": pa.array(np.arange(n) * 1000).cast(pa.timestamp("ms")),
        "tags": pa.ListArray.from_arrays(pa.array(np.arange(n + 1), pa.int32()),
                                         pa.array([f"t{t}" for t in tags.tolist()])),
    }), config=GraphConfig(max_degree=200))


def test_the_sampler_is_vectorised(large: HeteroGraph) -> None:
    nodes = np.arange(100_000) % large.num_nodes
    assert large.num_nodes >= 90_000
    out = large.sample(nodes, 30, np.random.default_rng(0))  # one numpy pass: well under a second
    assert out.shape == (100_000, 30)
    rows = np.repeat(nodes, 30)
    isolated = large.indptr[rows + 1] == large.indptr[rows]
    assert np.array_equal(out.ravel()[isolated], rows[isolated])
    assert large.has_edge(rows[~isolated], out.ravel()[~isolated]).all()
    assert (large.features["item"] > 0).any()


# --- eq. 14: pairs and negatives (§3.4) ----------------------------------------------------------
def test_epoch_pairs_cover_every_edge_and_split_across_ranks() -> None:
    g = tiny()
    src, dst = g.epoch_pairs(0)
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(entries(g))  # every entry once
    assert {frozenset(p) for p in zip(src.tolist(), dst.tolist())} == {frozenset(p) for p in entries(g)}
    again, other = g.epoch_pairs(0), g.epoch_pairs(1)
    assert np.array_equal(again[0], src) and not np.array_equal(other[0], src)  # seeded per epoch
    assert not np.array_equal(tiny(seed=1).epoch_pairs(0)[0], src)
    e = g.num_entries  # 44
    shares = [set(zip(*(a.tolist() for a in g.epoch_pairs(0, rank=r, world_size=3)))) for r in range(3)]
    assert [len(s) for s in shares] == [e // 3] * 3
    assert not (shares[0] & shares[1] or shares[0] & shares[2] or shares[1] & shares[2])
    assert len(set().union(*shares)) == e - e % 3
    even = [g.epoch_pairs(2, rank=r, world_size=4) for r in range(4)]  # 44 = 4 x 11: all, no overlap
    assert sorted(p for s, d in even for p in zip(s.tolist(), d.tolist())) == sorted(entries(g))
    wrapped = [g.epoch_pairs(0, rank=r, world_size=3, drop_last=False)[0] for r in range(3)]
    assert [len(w) for w in wrapped] == [(e + 2) // 3] * 3
    with pytest.raises(ValueError, match="rank"):
        g.epoch_pairs(0, rank=3, world_size=3)


def test_negatives_avoid_the_node_and_its_neighbours() -> None:
    g = tiny()
    nodes = np.arange(g.num_nodes)
    neg = g.negatives(nodes, np.random.default_rng(0))
    assert neg.shape == (15, 20) and neg.dtype == np.int64  # 20 a pair (§5.3)
    for v, row in zip(nodes.tolist(), neg):
        assert v not in row and not set(row.tolist()) & set(g.neighbours(v).tolist())
    assert g.node("tag", "w") not in neg  # degree 0: never drawn by degree**0.75
    assert np.array_equal(neg, g.negatives(nodes, np.random.default_rng(0)))
    uniform = tiny(negative_sampling="uniform", reject_neighbours=False)
    drawn = uniform.negatives(np.zeros(2000, np.int64), np.random.default_rng(0), num=10)
    assert set(drawn.ravel().tolist()) == set(range(15))  # neighbours and w included
    # By degree**0.75: x (degree 5) drawn about (5/2)**0.75 times as often as v (degree 2).
    free = tiny(reject_neighbours=False).negatives(np.zeros(10_000, np.int64), np.random.default_rng(1),
                                                   num=20)
    c = Counter(free.ravel().tolist())
    assert c[g.node("tag", "x")] / c[g.node("tag", "v")] == pytest.approx(2.5 ** 0.75, rel=0.05)


def test_a_loss_batch_indexes_the_distinct_nodes() -> None:
    g = tiny()
    src, dst = g.epoch_pairs(0)
    batch = g.loss_batch(src[:8], dst[:8], np.random.default_rng(0), num_negatives=3, k1=4, k2=2)
    u = batch.nodes
    assert np.array_equal(u, np.unique(u)) and batch.hop1.shape == (len(u), 4)
    assert batch.hop2.shape == (len(u), 5, 2)
    assert np.array_equal(u[batch.anchor], src[:8]) and np.array_equal(u[batch.positive], dst[:8])
    assert batch.negatives.shape == (8, 3)
    assert not g.has_edge(src[:8, None], u[batch.negatives]).any()


# --- state (§4.1) --------------------------------------------------------------------------------
def test_the_state_round_trips(tmp_path: Path) -> None:
    g = HeteroGraph.build(interactions(GROUP_ROWS), users=USERS, columns=GROUP_COLUMNS,
                          config=GraphConfig(behaviour_event_types=("tag",), max_degree=3, tag_features=1))
    state, arrays = g.state()
    (tmp_path / "graph.json").write_text(json.dumps(state))
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr, allow_pickle=False)
    back = HeteroGraph.from_state(json.loads((tmp_path / "graph.json").read_text()),
                                  {n: np.load(tmp_path / f"{n}.npy", allow_pickle=False) for n in arrays})
    assert back.config == g.config and back.columns == g.columns and back.vocab == g.vocab
    assert back.meta == g.meta and back.state()[0] == state
    for name in ("offsets", "indptr", "indices", "degree", "field_ptr"):
        a, b = getattr(g, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert all(np.array_equal(g.features[t], back.features[t]) and np.array_equal(g.top[t], back.top[t])
               for t in NODE_TYPES)
    nodes = np.arange(g.num_nodes)
    assert np.array_equal(g.sample(nodes, 5, np.random.default_rng(0)),
                          back.sample(nodes, 5, np.random.default_rng(0)))
    assert np.array_equal(g.negatives(nodes, np.random.default_rng(0), 4),
                          back.negatives(nodes, np.random.default_rng(0), 4))
    with pytest.raises(ValueError, match="version"):
        HeteroGraph.from_state({**state, "version": 99}, arrays)


# --- the real HetRec MovieLens-2k ----------------------------------------------------------------
def test_builds_the_hetrec_movielens_2k_graph(tmp_path: Path) -> None:
    if not HETREC.exists():
        pytest.skip(f"{HETREC} is not there (licensed data, not in the repo)")
    from sdk.hetrec import convert

    data = convert(HETREC, tmp_path)
    inter, items = pq.read_table(data.interactions), pq.read_table(data.items)
    start = time.perf_counter()
    g = HeteroGraph.build(inter, items, columns=GraphColumns.from_schemas(data.schemas))
    seconds = time.perf_counter() - start
    stats = g.stats()
    print(f"\nHetRec MovieLens-2k graph in {seconds:.2f} s: {stats}")
    n = stats["nodes"]
    assert n["item"] == items.num_rows  # every tagged movie is in movies.dat
    assert n["tag"] == len(set(t for ts in inter.column("tags").to_pylist() for t in ts))
    assert n["user"] == len(set(inter.column("user_id").to_pylist())) and stats["user_nodes"] == "users"
    assert 1000 < n["creator"] < n["item"]
    assert all(stats["edges"][e] > 0 for e in EDGE_TYPES)
    assert stats["edges"]["item-tag"] == len(set(zip(inter.column("item_id").to_pylist(),
                                                     (ts[0] for ts in inter.column("tags").to_pylist()))))
    rng = np.random.default_rng(0)
    src, dst = g.epoch_pairs(0)
    batch = g.loss_batch(src[:512], dst[:512], rng, k1=30, k2=20)
    assert batch.hop2.shape == (len(batch.nodes), 31, 20) and batch.negatives.shape == (512, 20)
