"""The synthetic generator: determinism, contract, and the planted structure."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from sdk.synthetic import GENRES, SyntheticData, generate
from sdk.types import DatasetKind, FieldType, Schema

_ARROW_CHECKS = {
    FieldType.STRING: pa.types.is_string,
    FieldType.TEXT: pa.types.is_string,
    FieldType.INT: pa.types.is_integer,
    FieldType.FLOAT: pa.types.is_floating,
    FieldType.BOOL: pa.types.is_boolean,
    FieldType.TIMESTAMP: pa.types.is_timestamp,
    FieldType.CATEGORICAL: lambda t: pa.types.is_list(t) and pa.types.is_string(t.value_type),
}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(seed=7)


def assert_matches_schema(table: pa.Table, schema: Schema) -> None:
    assert table.column_names == [f.name for f in schema.fields]
    for spec in schema.fields:
        column = table.column(spec.name)
        assert _ARROW_CHECKS[spec.type](column.type), (spec.name, column.type)
        if not spec.nullable:
            assert column.null_count == 0, spec.name


def test_same_seed_same_tables_and_bytes(tmp_path: Path) -> None:
    a, b = generate(seed=3), generate(seed=3)
    for kind, table in a.tables().items():
        assert table.equals(b.tables()[kind]), kind
    pa_paths, pb_paths = a.write_csv(tmp_path / "a"), b.write_csv(tmp_path / "b")
    for kind in DatasetKind:
        assert pa_paths[kind].read_bytes() == pb_paths[kind].read_bytes(), kind
    assert not generate(seed=4).interactions.equals(a.interactions)


def test_sizes_and_ids(data: SyntheticData) -> None:
    assert (data.interactions.num_rows, data.items.num_rows, data.users.num_rows) == (
        20_000,
        300,
        500,
    )
    counts = Counter(data.interactions.column("user_id").to_pylist())
    assert set(counts) == set(data.users.column("user_id").to_pylist())
    assert min(counts.values()) >= 2
    items = set(data.items.column("item_id").to_pylist())
    assert set(data.interactions.column("item_id").to_pylist()) <= items
    assert len(items) == data.items.num_rows
    assert set(pc.unique(data.interactions.column("event_type")).to_pylist()) == {
        "click",
        "purchase",
    }
    value = data.interactions.column("event_value").to_numpy()
    assert ((value > 0) & (value <= 1)).all()
    genres = pc.list_flatten(data.items.column("genres")).to_pylist()
    assert set(genres) <= set(GENRES)
    lengths = pc.list_value_length(data.items.column("genres")).to_numpy()
    assert lengths.min() >= 1 and lengths.max() <= 3


def test_schemas_describe_tables(data: SyntheticData) -> None:
    assert set(data.schemas) == set(DatasetKind)
    for kind, table in data.tables().items():
        schema = data.schemas[kind]
        schema.check_kind(kind)
        assert_matches_schema(table, schema)
    assert data.interactions.schema.field("timestamp").type == pa.timestamp("s", tz="UTC")


def test_timestamps_strictly_increase_per_user(data: SyntheticData) -> None:
    users = data.interactions.column("user_id").to_numpy(zero_copy_only=False)
    ts = data.interactions.column("timestamp").cast(pa.int64()).to_numpy()
    same_user = users[1:] == users[:-1]
    assert (np.diff(ts)[same_user] > 0).all()
    assert (users[1:] >= users[:-1]).all()  # sorted by user
    gaps = np.diff(ts)[same_user]
    assert np.median(gaps) < 600 and gaps.max() > 86_400  # sessions: short and long gaps


def test_interactions_favour_preferred_genres(data: SyntheticData) -> None:
    item_genres = dict(
        zip(
            data.items.column("item_id").to_pylist(),
            (set(g) for g in data.items.column("genres").to_pylist()),
            strict=True,
        )
    )
    users = data.interactions.column("user_id").to_pylist()
    items = data.interactions.column("item_id").to_pylist()
    hits = [bool(item_genres[i] & set(data.preferred_genres[u])) for u, i in zip(users, items)]
    share = float(np.mean(hits))
    # Chance: the share of catalogue items in each user's preferred genres, per interaction.
    catalogue = list(item_genres.values())
    chance_by_user = {
        u: np.mean([bool(g & set(p)) for g in catalogue]) for u, p in data.preferred_genres.items()
    }
    chance = float(np.mean([chance_by_user[u] for u in users]))
    assert share > 0.55  # about 0.7 over seeds, against a chance level near 0.17
    assert share > 3 * chance, (share, chance)


def test_successor_transitions_are_frequent_and_learnable(data: SyntheticData) -> None:
    users = data.interactions.column("user_id").to_pylist()
    items = data.interactions.column("item_id").to_pylist()
    pairs = [(a, b) for ua, ub, a, b in zip(users, users[1:], items, items[1:]) if ua == ub]
    share = np.mean([data.successor[a] == b for a, b in pairs])
    assert share > 0.25  # chance is about 1/300
    # Learnable from the data alone: an item's most frequent next item is its successor.
    nxt: dict[str, Counter[str]] = defaultdict(Counter)
    for a, b in pairs:
        nxt[a][b] += 1
    frequent = [a for a, c in nxt.items() if c.total() >= 10]
    assert len(frequent) > 100
    agree = np.mean([nxt[a].most_common(1)[0][0] == data.successor[a] for a in frequent])
    assert agree > 0.8


def test_popularity_is_skewed(data: SyntheticData) -> None:
    counts = np.sort(
        np.array(list(Counter(data.interactions.column("item_id").to_pylist()).values()))
    )
    top = counts[::-1][: len(counts) // 10].sum() / counts.sum()
    assert top > 0.3  # uniform would give 0.1


def test_write_csv_round_trips(data: SyntheticData, tmp_path: Path) -> None:
    paths = data.write_csv(tmp_path / "csv")
    assert {k: p.name for k, p in paths.items()} == {
        DatasetKind.INTERACTIONS: "interactions.csv",
        DatasetKind.ITEMS: "items.csv",
        DatasetKind.USERS: "users.csv",
    }
    interactions = pacsv.read_csv(
        paths[DatasetKind.INTERACTIONS],
        convert_options=pacsv.ConvertOptions(column_types={"timestamp": pa.int64()}),
    )
    expected = data.interactions.set_column(
        2, "timestamp", data.interactions.column("timestamp").cast(pa.int64())
    )
    assert interactions.equals(expected)
    items = pacsv.read_csv(paths[DatasetKind.ITEMS])
    delimiter = data.schemas[DatasetKind.ITEMS].categorical_delimiter
    split = pc.split_pattern(items.column("genres"), delimiter)
    assert split.to_pylist() == data.items.column("genres").to_pylist()
    assert items.drop_columns(["genres"]).equals(data.items.drop_columns(["genres"]))
    assert pacsv.read_csv(paths[DatasetKind.USERS]).equals(data.users)


def test_small_and_invalid_sizes() -> None:
    tiny = generate(seed=1, n_users=3, n_items=2, n_interactions=6)
    assert Counter(tiny.interactions.column("user_id").to_pylist()) == {
        "u0000": 2,
        "u0001": 2,
        "u0002": 2,
    }
    with pytest.raises(ValueError, match="2 per user"):
        generate(n_users=10, n_interactions=19)
    with pytest.raises(ValueError, match="n_items"):
        generate(n_items=1)
