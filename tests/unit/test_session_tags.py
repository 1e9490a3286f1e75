"""Session tags: tag clicks (rows without an item) through the import's conform step, the
session-holdout protocol on hand-computed sessions, the session-tag-popularity baseline recipe,
and both on sessions simulated over the real clinc150 corpus."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Answer, Query
from sdk.intents import convert
from sdk.types import DatasetKind, EvaluationConfig, FieldType, Role, Schema, SchemaField
from store.tables import DataError, arrow_schema, conform
from tests.conftest import SHARED_DATA
from tests.unit.conformance import RecipeConformance
from tests.unit.test_intents import write_csv
from training_jobs.evaluation.protocols import InsufficientData, get_protocol
from training_jobs.loop import fit_in_process, has_parameters

SCHEMA = Schema(fields=[
    SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID),
    SchemaField(name="session_id", type=FieldType.STRING, role=Role.SESSION_ID),
    SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID, nullable=True),
    SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
    SchemaField(name="event_type", type=FieldType.STRING, role=Role.EVENT_TYPE),
    SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS),
    SchemaField(name="organisation", type=FieldType.STRING),
])
ITEMS = Schema(fields=[
    SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
    SchemaField(name="organisation", type=FieldType.STRING),
    SchemaField(name="tags", type=FieldType.CATEGORICAL, role=Role.TAGS),
])
SCHEMAS = {DatasetKind.INTERACTIONS: SCHEMA, DatasetKind.ITEMS: ITEMS}
ONLY_CLICKS = {DatasetKind.INTERACTIONS: SCHEMA}
BANK = {"organisation": "bank"}


def clicks(rows: list[tuple[str, float, str | None, str | None, str | None]]) -> pa.Table:
    """Interactions from (session, seconds, tag, question, organisation) rows, in the dataset's
    stored types (a tag click has no item, a question click no tag)."""
    return pa.table({
        "user_id": [f"u-{s}" for s, *_ in rows],
        "session_id": [s for s, *_ in rows],
        "item_id": [q for _, _, _, q, _ in rows],
        "timestamp": pa.array([int(t * 1000) for _, t, *_ in rows]).cast(pa.timestamp("ms", "UTC")),
        "event_type": ["tag_click" if tag else "question_click" for _, _, tag, _, _ in rows],
        "tags": [[tag] if tag else [] for _, _, tag, _, _ in rows],
        "organisation": [o for *_, o in rows],
    }, schema=arrow_schema(SCHEMA))


def event(t: float, tag: str | None = None, item: str | None = None) -> tuple:
    """A history event as a campaign (and the protocol) passes it."""
    return (item, t, "tag_click" if tag else "question_click", None, (tag,) if tag else ())


# ---- data path: a row without an item is a tag click, and needs a tag ----


def test_a_row_with_neither_item_nor_tag_is_an_error_naming_the_row_and_both_columns() -> None:
    raw = pa.table({"user_id": ["u"] * 4, "session_id": ["s"] * 4, "item_id": [None, "q1", None, None],
                    "timestamp": ["1", "2", "3", "4"], "event_type": ["t"] * 4,
                    "tags": ["a", None, None, " "], "organisation": ["o"] * 4})
    with pytest.raises(DataError) as err:
        conform(raw, SCHEMA, first_row=11)
    message = str(err.value)
    assert message.startswith("row 13 has neither an item nor a tag")
    assert "'item_id' (role ITEM_ID)" in message and "'tags' (role TAGS)" in message
    assert err.value.rows == [13, 14] and err.value.column == "item_id"
    ok = conform(raw.slice(0, 2), SCHEMA, first_row=1)  # a tag click, a question click
    assert ok.column("item_id").to_pylist() == [None, "q1"] and ok.column("tags").to_pylist() == [["a"], None]
    # An ITEM_ID that may not be empty keeps its own error; no TAGS field: no such rule.
    item = SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID)
    strict = Schema(fields=[item if f.role == Role.ITEM_ID else f for f in SCHEMA.fields])
    with pytest.raises(DataError, match="'item_id', role ITEM_ID may not be empty"):
        conform(raw, strict, first_row=1)


def test_the_intents_converter_output_conforms_and_its_schema_survives_json(tmp_path: Path) -> None:
    corpus = write_csv(tmp_path / "corpus.csv", [
        ["organisation", "intent", "text"], *[["bank", "pin", f"change my pin code {i}"] for i in range(4)],
        *[["bank", "card", f"my card is lost {i}"] for i in range(4)]])
    data = convert(corpus, tmp_path / "out", n_sessions=40, seed=0)
    for kind, path in data.paths.items():
        schema = Schema.model_validate_json(data.schemas[kind].model_dump_json())
        assert schema == data.schemas[kind]
        schema.check_kind(kind)
        table = pq.read_table(path)
        assert conform(table, schema, first_row=1).num_rows == table.num_rows
    inter = data.schemas[DatasetKind.INTERACTIONS]
    # Real-time events carry no organisation and maybe no event type: those fields take nulls.
    assert {f.name for f in inter.fields if f.nullable} >= {"item_id", "event_type", "organisation", "tags"}


# ---- the protocol, by hand ----


def bank_sessions(test_clicks: list[tuple[float, str | None, str | None]] | None = None) -> pa.Table:
    rows = [("s1", 0, "a", None, "bank"), ("s1", 10, "b", None, "bank"), ("s1", 20, None, "q1", "bank"),
            ("s2", 100, "a", None, "bank"), ("s2", 110, "b", None, "bank"),
            ("s3", 200, "a", None, "bank"), ("s3", 210, "c", None, "bank")]
    test = test_clicks if test_clicks is not None else [(300, "a", None), (310, "b", None), (315, None, "q2"),
                                                        (320, "c", None)]
    return clicks(rows + [("s4", t, tag, q, "bank") for t, tag, q in test])


def test_session_holdout_holds_out_the_latest_sessions_and_asks_each_click_after_the_first() -> None:
    protocol = get_protocol("session-holdout")
    assert protocol.default_ks == (1, 3, 5, 10)
    config = EvaluationConfig(test_fraction=0.25)
    split = protocol.split({DatasetKind.INTERACTIONS: bank_sessions()}, ONLY_CLICKS, config)
    train = split.train[DatasetKind.INTERACTIONS]
    assert sorted(set(train.column("session_id").to_pylist())) == ["s1", "s2", "s3"] and train.num_rows == 7
    full, sampled = split.queries[:2], split.queries[2:]
    assert [q.history for q in full] == [[event(300, "a")],
                                         [event(300, "a"), event(310, "b"), event(315, item="q2")]]
    assert [q.time for q in full] == [310, 320] and {q.session_id for q in full} == {"s4"}
    assert all(q.fields == {"organisation": "bank", "num_questions": 3} and q.num_results == 100
               and q.candidates is None for q in full)
    assert split.relevant == [["b"], ["c"], ["b"], ["c"]]
    # The paper's sampled ranking: the clicked tag among the organisation's other tags (here all 2).
    assert [sorted(q.candidates) for q in sampled] == [["a", "b", "c"]] * 2
    assert [q.history for q in sampled] == [q.history for q in full]
    d = split.description
    assert (d["sessions"], d["test_sessions"], d["train_sessions"], d["cases"]) == (4, 1, 3, 2)
    assert d["cutoff"].startswith("1970-01-01T00:05:00") and d["organisation_col"] == "organisation"


def test_session_holdout_metrics_by_hand() -> None:
    protocol = get_protocol("session-holdout")
    config = EvaluationConfig(test_fraction=0.25, ks=[1, 3])
    split = protocol.split({DatasetKind.INTERACTIONS: bank_sessions()}, ONLY_CLICKS, config)

    def answer(*tags: str) -> Answer:
        return Answer([(t, None) for t in tags])

    # Relevant b at rank 2, c at rank 3; sampled: both first.
    answers = [answer("c", "b"), answer("a", "b", "c"), answer("b"), answer("c", "a")]
    m = protocol.score(answers, split, config)
    assert m["hit@1"] == 0 and m["hit@3"] == 1
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m["coverage@1"] == pytest.approx(2 / 3)  # {c, a} of the training tags a, b, c
    assert m["sampled_hit@1"] == m["sampled_mrr"] == m["sampled_ndcg@3"] == 1
    assert not [k for k in m if k.startswith(("precision", "recall"))]


def test_session_holdout_baseline_by_hand() -> None:
    """Training: a clicked 3 times, b 2, c 1; a -> b twice, a -> c once. After a: b scores
    (2 + 2/6) / (3 + 1), c (1 + 1/6) / 4. After a, b, q2: nothing followed b, so popularity: c."""
    protocol = get_protocol("session-holdout")
    config = EvaluationConfig(test_fraction=0.25)
    schemas = {DatasetKind.INTERACTIONS: SCHEMA}
    split = protocol.split({DatasetKind.INTERACTIONS: bank_sessions()}, schemas, config)
    spec = get_recipe("session-tag-popularity")
    cfg, featurizer, model = fit_in_process(spec, {}, split.train, schemas=schemas)
    assert not has_parameters(model)
    answers = spec.predictor_cls(cfg, featurizer, model).predict_batch(split.queries[:2])
    assert answers[0].ranked == [("b", pytest.approx(7 / 12)), ("c", pytest.approx(7 / 24))]
    assert answers[1].ranked == [("c", pytest.approx(1 / 6))]
    assert not answers[0].fallback and not answers[1].fallback
    report = protocol.evaluate(spec.predictor_cls(cfg, featurizer, model), split, schemas, config)
    assert report["model"]["hit@1"] == report["model"]["sampled_mrr"] == 1.0
    assert report["baselines"] == {"session-tag-popularity": report["model"]}


def test_session_holdout_refuses_too_little_data_clearly() -> None:
    protocol = get_protocol("session-holdout")
    config = EvaluationConfig(test_fraction=0.25)
    schemas = {DatasetKind.INTERACTIONS: SCHEMA}
    one = clicks([("s1", 0, "a", None, "o"), ("s1", 1, "b", None, "o")])
    with pytest.raises(InsufficientData, match="at least 2 sessions .* hold 1"):
        protocol.split({DatasetKind.INTERACTIONS: one}, schemas, config)
    single = bank_sessions([(300, "a", None), (310, None, "q1")])
    with pytest.raises(InsufficientData, match=r"none of the 1 test session\(s\) .* 2 or more tag clicks"):
        protocol.split({DatasetKind.INTERACTIONS: single}, schemas, config)
    no_sessions = Schema(fields=[f for f in SCHEMA.fields if f.role != Role.SESSION_ID])
    with pytest.raises(InsufficientData, match="role SESSION_ID"):
        protocol.split({DatasetKind.INTERACTIONS: one.drop_columns(["session_id"])},
                       {DatasetKind.INTERACTIONS: no_sessions}, config)


# ---- the baseline recipe ----


def two_organisations() -> dict[DatasetKind, pa.Table]:
    rows = [("b1", 0, "a", None, "bank"), ("b1", 1, "b", None, "bank"), ("b1", 2, None, "q1", "bank"),
            ("b2", 10, "a", None, "bank"), ("b2", 11, "c", None, "bank"), ("b2", 12, None, "q1", "bank"),
            ("b3", 20, "a", None, "bank"), ("b3", 21, None, "q3", "bank"),
            ("t1", 30, "x", None, "travel"), ("t1", 31, "y", None, "travel"),
            ("t2", 40, "x", None, "travel"), ("t2", 41, "y", None, "travel"),
            ("t3", 50, "y", None, "travel"), ("t4", 60, "y", None, "travel")]
    items = pa.table({"item_id": ["q1", "q2", "q3", "q4"], "organisation": ["bank", "bank", "bank", "travel"],
                      "tags": [["a", "b"], ["c", "d"], ["a"], ["x", "y"]]}, schema=arrow_schema(ITEMS))
    return {DatasetKind.INTERACTIONS: clicks(rows), DatasetKind.ITEMS: items}


@pytest.fixture(scope="module")
def predictor():
    spec = get_recipe("session-tag-popularity")
    cfg, featurizer, model = fit_in_process(spec, {}, two_organisations(), schemas=SCHEMAS)
    return spec.predictor_cls(cfg, featurizer, model)


def test_unknown_sessions_get_the_organisations_most_clicked_tags_flagged_fallback(predictor) -> None:
    empty, bank, unknown_org, unknown_tag = predictor.predict_batch([
        Query(), Query(fields={"organisation": "bank"}), Query(fields={"organisation": "nope"}),
        Query(history=[event(1, "never-seen")], fields={"organisation": "bank"})])
    # Global: y 4, a 3, x 2, b 1, c 1; then d, a question's tag never clicked.
    assert empty.ids == ["y", "a", "x", "b", "c", "d"] and empty.fallback
    assert bank.ids == ["a", "b", "c", "d"] and bank.fallback  # d: q2's tag, never clicked
    assert bank.ranked[0] == ("a", pytest.approx(3 / 5))
    assert unknown_org.ids == empty.ids and unknown_org.fallback
    assert unknown_tag.ids == bank.ids and unknown_tag.fallback


def test_clicked_tags_are_left_out_and_the_last_one_conditions_the_rest(predictor) -> None:
    after_a, after_ab, excluded, candidates = predictor.predict_batch([
        Query(history=[event(1, "a")], fields={"organisation": "bank"}),
        Query(history=[event(1, "a"), event(2, "b"), event(3, item="q1")], fields={"organisation": "bank"}),
        Query(history=[event(1, "a")], fields={"organisation": "bank"}, exclude={"b"}, num_results=1),
        Query(history=[event(1, "a")], fields=BANK, candidates=["d", "a", "zz", "c", "b"]),
    ])
    # After a: b and c followed it once each (b first: more clicks); d never did.
    assert after_a.ids == ["b", "c", "d"] and not after_a.fallback
    assert after_a.ranked[0][1] == pytest.approx((1 + 1 / 5) / 3)
    assert after_ab.ids == ["c", "d"]  # a, b clicked; nothing followed b
    assert excluded.ids == ["c"]
    assert candidates.ids == ["b", "c", "d", "zz"]  # a clicked; an unknown tag last, score 0
    assert candidates.ranked[-1] == ("zz", 0.0)


def test_the_organisation_is_read_from_the_clicks_when_the_request_has_none(predictor) -> None:
    travel, bank = predictor.predict_batch([Query(history=[event(1, "x")]),
                                            Query(history=[event(1, item="q3")])])
    assert travel.ids == ["y"] and not travel.fallback  # travel's tags only
    assert bank.ids == ["a", "b", "c", "d"] and not bank.fallback


def test_questions_are_the_most_clicked_holding_the_clicked_tags(predictor) -> None:
    after_a, after_q1, none, cold = predictor.predict_batch([
        Query(history=[event(1, "a")], fields={"organisation": "bank", "num_questions": 3}),
        Query(history=[event(1, "a"), event(2, item="q1")], fields={"organisation": "bank"}),
        Query(history=[event(1, "a")], fields={"organisation": "bank", "num_questions": 0}),
        Query(fields={"organisation": "bank"}),
    ])
    # q1 (a, b; 2 clicks of the bank's 3) and q3 (a; 1 click) hold a; q2 does not.
    assert after_a.extra["questions"] == [("q1", pytest.approx(1 + 2 / 4)), ("q3", pytest.approx(1 + 1 / 4))]
    assert after_q1.extra["questions"] == [("q3", pytest.approx(1.25))]  # q1 already clicked
    assert none.extra["questions"] == []
    assert [q for q, _ in cold.extra["questions"]] == ["q1", "q3", "q2"]  # no tag yet: most clicked


def test_without_transitions_it_is_the_organisations_popularity() -> None:
    spec = get_recipe("session-tag-popularity")
    cfg, featurizer, model = fit_in_process(spec, {"transitions": False}, two_organisations(),
                                            schemas=SCHEMAS)
    (answer,) = spec.predictor_cls(cfg, featurizer, model).predict_batch(
        [Query(history=[event(1, "a")], fields={"organisation": "bank"})])
    assert answer.ranked == [("b", pytest.approx(1 / 5)), ("c", pytest.approx(1 / 5)), ("d", 0.0)]


class TestConformance(RecipeConformance):
    recipe_id = "session-tag-popularity"
    validation_config = {**RecipeConformance.validation_config, "validation_fraction": 0.6}

    def data(self):
        return two_organisations(), SCHEMAS

    def queries(self, tables):
        return [Query(history=[event(1, "a"), event(2, "c")], fields={"organisation": "bank"}, num_results=2),
                Query(history=[event(1, "x")], exclude={"y"}), Query(),
                Query(history=[event(1, "a")], candidates=["c", "b", "x"], num_results=2)]


# ---- real data: sessions simulated over clinc150 ----


@pytest.mark.skipif(not (SHARED_DATA / "clinc150").is_dir(), reason="../shared/data/clinc150 is not present")
def test_protocol_and_baseline_on_sessions_simulated_over_clinc150(tmp_path: Path) -> None:
    data = convert(SHARED_DATA / "clinc150", tmp_path, n_sessions=3000, seed=0)
    tables = {kind: pq.read_table(path) for kind, path in data.paths.items()}
    schemas = data.schemas
    protocol = get_protocol("session-holdout")
    config = EvaluationConfig()
    split = protocol.split(tables, schemas, config)
    assert split.description["test_sessions"] == 300 and split.description["cases"] > 300
    spec = get_recipe("session-tag-popularity")
    scores = {}
    for name, hyperparameters in (("transitions", {}), ("popularity", {"transitions": False})):
        cfg, featurizer, model = fit_in_process(spec, hyperparameters, split.train, schemas=schemas)
        scores[name] = protocol.score(spec.predictor_cls(cfg, featurizer, model).predict_batch(split.queries),
                                      split, config)
    m = scores["transitions"]
    assert 0.05 < m["hit@1"] <= m["hit@3"] <= m["hit@5"] <= m["hit@10"] < 1
    assert m["hit@1"] <= m["mrr"] <= m["hit@10"] and 0 < m["ndcg@10"] <= m["hit@10"]
    for k in (1, 5, 10):  # among 50 sampled tags the clicked one can only rank higher
        assert m[f"sampled_hit@{k}"] >= m[f"hit@{k}"]
    # The tag that followed the last click is the strongest signal the simulator plants.
    assert m["mrr"] > scores["popularity"]["mrr"] and m["hit@5"] > scores["popularity"]["hit@5"]
