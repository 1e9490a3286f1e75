"""The ``user-split`` protocol (UTPM §4.1): users split, a test user's oldest 80 % of ratings ask,
the tags of the newest 20 %'s positive ratings are relevant; hand-computed on a tiny table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from recipes import get_recipe
from sdk.tasks import TaskId, get_task
from sdk.types import DatasetKind, EvaluationConfig, FieldType, Role, Schema, SchemaField
from training_jobs.evaluation.protocols import InsufficientData, get_protocol
from training_jobs.loop import fit_in_process

SCHEMA = Schema(fields=[
    SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID, nullable=True),
    SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID, nullable=True),
    SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
    SchemaField(name="event_type", type=FieldType.STRING, role=Role.EVENT_TYPE),
    SchemaField(name="event_value", type=FieldType.FLOAT, role=Role.EVENT_VALUE, nullable=True),
    SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS, nullable=True),
])  # the shape of sdk.movielens_tags' interactions
SCHEMAS = {DatasetKind.INTERACTIONS: SCHEMA}


def ratings(rows: Sequence[tuple[str | None, str, float, float | None, list[str] | None]]) -> pa.Table:
    """(user, item, epoch seconds, rating, tags) rows as a movielens_tags-shaped interactions table."""
    users, items, secs, values, tags = zip(*rows)
    return pa.table({
        "user_id": pa.array(users, pa.string()),
        "item_id": pa.array(items, pa.string()),
        "timestamp": pa.array([int(s * 1000) for s in secs], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "event_type": pa.array(["rating"] * len(rows), pa.string()),
        "event_value": pa.array(values, pa.float64()),
        "tags": pa.array(tags, pa.list_(pa.string())),
    })


ROWS = [
    # a: 5 ratings -> the oldest 4 (liked and disliked) ask; the newest (4.5, tags z) is relevant.
    ("a", "i5", 5, 4.5, ["z"]), ("a", "i1", 1, 5.0, ["x"]), ("a", "i2", 2, 1.0, None),
    ("a", "i3", 3, 4.0, ["y"]), ("a", "i4", 4, 2.0, None),
    # b: 10 ratings, tags on every row -> the oldest 8 ask; of the newest 2, the 2-star one is not
    # positive (its tag w is not relevant), the 4-star one is (y, x).
    *[("b", f"i{k}", 10 + k, 3.0, ["x"]) for k in range(8)],
    ("b", "i8", 30, 2.0, ["w"]), ("b", "i9", 31, 4.0, ["y", "x"]),
    # c: its newest rating is disliked -> not eligible; d: one rating -> not eligible.
    ("c", "i1", 1, 4.0, ["x"]), ("c", "i2", 2, 1.0, None),
    ("d", "i1", 1, 5.0, ["x"]),
    (None, "i1", 3, 4.0, ["x"]),  # no user: trains
]


def config(**kw) -> EvaluationConfig:
    return EvaluationConfig(**{"test_fraction": 1.0, "min_test_users": 1, **kw})


def test_user_split_by_hand() -> None:
    protocol = get_protocol("user-split")
    split = protocol.split({DatasetKind.INTERACTIONS: ratings(ROWS)}, SCHEMAS, config())
    assert [q.user_id for q in split.queries] == ["a", "b"]
    a, b = split.queries
    assert a.history == [("i1", 1.0, "rating", 5.0, ("x",)), ("i2", 2.0, "rating", 1.0, None),
                         ("i3", 3.0, "rating", 4.0, ("y",)), ("i4", 4.0, "rating", 2.0, None)]
    assert [e[0] for e in b.history] == [f"i{k}" for k in range(8)]
    assert (a.time, b.time) == (5.0, 30.0)
    assert a.candidates is None and not a.exclude and a.num_results == 100
    assert split.relevant == [["z"], ["y", "x"]]
    # The test users are not in training at all, their early ratings included.
    train = split.train[DatasetKind.INTERACTIONS]
    assert train.column("user_id").to_pylist() == ["c", "c", "d", None]  # row order kept
    d = split.description
    assert (d["eligible_users"], d["test_users"], d["held_out_events"], d["train_events"]) == (2, 2, 15, 4)
    assert split.catalog_size == 1  # only x is in training


def test_user_split_is_seeded_by_user_and_leaves_the_rest_training() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{int(rng.integers(30))}", float(e), float(rng.integers(1, 6)), [f"t{e % 7}"])
            for u in range(40) for e in range(12)]
    table = ratings(rows)
    protocol = get_protocol("user-split")
    cfg = config(test_fraction=0.25, min_test_users=1, seed=3)
    first = protocol.split({DatasetKind.INTERACTIONS: table}, SCHEMAS, cfg)
    again = protocol.split({DatasetKind.INTERACTIONS: table.take(np.arange(table.num_rows)[::-1])},
                           SCHEMAS, cfg)
    assert [q.user_id for q in first.queries] == [q.user_id for q in again.queries]  # not row order
    test_users = {q.user_id for q in first.queries}
    assert len(test_users) == round(0.25 * first.description["eligible_users"])
    train_users = set(first.train[DatasetKind.INTERACTIONS].column("user_id").to_pylist())
    assert not test_users & train_users and len(train_users) == 40 - len(test_users)
    assert all(len(q.history) == round(0.8 * 12) for q in first.queries)
    other = protocol.split({DatasetKind.INTERACTIONS: table}, SCHEMAS, cfg.model_copy(update={"seed": 4}))
    assert {q.user_id for q in other.queries} != test_users


def test_user_split_refuses_thin_data() -> None:
    protocol = get_protocol("user-split")
    thin = ratings([("a", "i1", 1, 5.0, ["x"]), ("a", "i2", 2, 1.0, None), ("b", "i1", 1, 4.0, ["x"])])
    with pytest.raises(InsufficientData, match="no user has a positive tagged event"):
        protocol.split({DatasetKind.INTERACTIONS: thin}, SCHEMAS, config())
    no_tags = Schema(fields=[f for f in SCHEMA.fields if f.role != Role.TAGS])
    with pytest.raises(InsufficientData, match="role TAGS"):
        protocol.split({DatasetKind.INTERACTIONS: thin}, {DatasetKind.INTERACTIONS: no_tags}, config())


def test_user_split_is_registered_and_evaluates_the_baseline() -> None:
    assert "user-split" in get_task(TaskId.USER_TAGS).protocols
    assert get_recipe("utpm").protocols[0] == "user-split"
    assert "user-split" in get_recipe("tag-popularity").protocols
    assert EvaluationConfig(mode="user-split").mode == "user-split"
    protocol = get_protocol("user-split")
    split = protocol.split({DatasetKind.INTERACTIONS: ratings(ROWS)}, SCHEMAS, config())
    spec = get_recipe("tag-popularity")
    cfg, featurizer, model = fit_in_process(spec, {}, split.train, schemas=SCHEMAS)
    report = protocol.evaluate(spec.predictor_cls(cfg, featurizer, model), split, SCHEMAS, config())
    # a's own tags x, y come first: z is not among them; b's own x is relevant at rank 1.
    assert report["model"]["hit@1"] == pytest.approx(0.5)
    assert set(report["baselines"]) == {"tag-popularity"}


def test_user_split_holds_out_its_share_only_whatever_min_test_users() -> None:
    """Test users leave training whole: the platform's default floor of 300 test users once held
    out all 100 users here (and, on movielens-latest-small, 300 of 610, then 288 of the rest for
    validation: the evaluated model trained on 22 users)."""
    rows = [(f"u{u}", f"i{e}", float(e), 5.0, [f"t{(u + e) % 5}"]) for u in range(100) for e in range(10)]
    protocol = get_protocol("user-split")
    cfg = EvaluationConfig(mode="user-split")  # test_fraction 0.1, min_test_users 300
    split = protocol.split({DatasetKind.INTERACTIONS: ratings(rows)}, SCHEMAS, cfg)
    assert split.description["test_users"] == 10 and split.description["train_events"] == 900
    validation = protocol.validation_split(split.train, SCHEMAS, cfg)
    assert validation.description["test_users"] == 9 and validation.description["train_events"] == 810
    one = protocol.split({DatasetKind.INTERACTIONS: ratings(rows[:20])}, SCHEMAS,
                         cfg.model_copy(update={"test_fraction": 1.0}))
    assert one.description["test_users"] == 1 and one.description["train_events"] == 10  # one trains
