"""SOG recipe (tag-set): the conformance suite, the §3.3 decoder's behaviours (no repeats, chosen
tags read and never answered, exclusions, candidates, the stop threshold, answers longer than the
generated steps, best first), the fallback flag, stored items, hostile text, §3.4's context fields
and bad hyperparameters. Model-level checks (order-freedom, the 1-to-M instances, the loss by hand,
the encoder sources) are in test_sog_model.py.

Data: 4 topics of 3 tags, each with 4 words of its own; a post carries 2 or 3 of its topic's tags.
A third of the posts say only "question <k>" (no topic word), so the model must read the tags in its
input to complete their sets; "question" alone is the ambiguous text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from recipes import get_recipe
from recipes.base import Query
from recipes.sog import SogConfig, SogFeaturizer, SogPredictor
from recipes.sog.featurizer import time_words
from sdk.types import DatasetKind, Schema
from tests.unit.conformance import (
    RecipeConformance,
    one_torch_thread,  # noqa: F401  (autouse: one torch thread)
)
from tests.unit.test_tag_set import POSTS, SCHEMAS, posts
from training_jobs.loop import fit_in_process

TOPICS = {
    "servo": ("pwm pulse width signal", ("servo", "pwm", "actuator")),
    "arm": ("joint kinematics inverse reach", ("arm", "kinematics", "manipulator")),
    "motor": ("driver current brushless torque", ("motor", "driver", "brushless")),
    "camera": ("image lens vision pixel", ("camera", "vision", "calibration")),
}
ALL_TAGS = [t for _, tags in TOPICS.values() for t in tags]
TINY = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 32, "vocab_size": 200,
        "max_length": 32, "epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "seed": 0}
UNKNOWN_TEXT = "жжж ффф"  # no character of it is in the posts: every piece is [UNK]


def topic_posts(n: int = 96) -> list[tuple]:
    """(item_id, title, content, tags) rows of the module docstring's topics, round-robin."""
    rows, names = [], list(TOPICS)
    for i in range(n):
        words, tags = TOPICS[names[i % len(names)]]
        k, w = i // len(names), words.split()
        if k % 3 == 2:
            title, content = f"question {k}", None
        else:
            title, content = f"{w[k % 4]} {w[(k + 1) % 4]} question", words
        chosen = list(tags) if k % 2 == 0 else [tags[j % 3] for j in range(k % 3, k % 3 + 2)]
        rows.append((f"s{i:03d}", title, content, chosen))
    return rows


def fit(tables=None, schemas=SCHEMAS, **hyperparameters) -> SogPredictor:
    spec = get_recipe("sog")
    config, featurizer, model = fit_in_process(spec, {**TINY, **hyperparameters},
                                               tables or posts(topic_posts()), schemas=schemas, threads=1)
    return SogPredictor(config, featurizer, model)


def ask(p: SogPredictor, **query) -> list[tuple[str, float]]:
    return p.predict_batch([Query(**query)])[0].ranked


def with_config(p: SogPredictor, **update) -> SogPredictor:
    """The same featurizer and model answering under other decoding settings."""
    return SogPredictor(p.config.model_copy(update=update), p.featurizer, p.model)


@pytest.fixture(scope="module")
def predictor() -> SogPredictor:
    return fit()


class TestConformance(RecipeConformance):
    recipe_id = "sog"
    hyperparameters = TINY

    def data(self):
        return posts(topic_posts()), SCHEMAS

    def queries(self, tables):
        return [Query(text="pwm pulse", num_results=3),
                Query(fields={"title": "image lens"}, exclude={"camera"}),
                Query(text="question", chosen=["arm"], exclude={"kinematics"}, num_results=4),
                Query(text="joint", candidates=["arm", "vision", "unknown"], num_results=5),
                Query(text="torque driver", num_results=20), Query(text=UNKNOWN_TEXT)]


# --- learning and decoding (§3.3) ---------------------------------------------------------------
def test_topic_words_and_chosen_tags_lead_to_their_topic(predictor) -> None:
    """Sanity of the whole path: a topic's words give its tags first, and on the ambiguous text a
    chosen tag steers the set to its topic (most of the time, for a model this small)."""
    by_words = [ask(predictor, text=" ".join(words.split()[:2]), num_results=1)[0][0] in tags
                for words, tags in TOPICS.values()]
    assert sum(by_words) >= 3, by_words
    by_chosen = [ask(predictor, text="question", chosen=[t], num_results=1)[0][0] in tags
                 for _, tags in TOPICS.values() for t in tags]
    assert sum(by_chosen) >= 8, by_chosen


def test_chosen_tags_are_read_and_never_answered(predictor) -> None:
    plain = predictor.predict_batch([Query(text="question", num_results=5)])[0]
    for _, tags in TOPICS.values():
        chosen = predictor.predict_batch([Query(text="question", chosen=[tags[0]], num_results=5)])[0]
        assert tags[0] not in chosen.ids and len(chosen.ids) == 5
        assert chosen.ids != plain.ids
        # Not merely excluded: the chosen tag is in the model's input.
        excluded = predictor.predict_batch([Query(text="question", exclude={tags[0]}, num_results=5)])[0]
        assert chosen.ranked != excluded.ranked
    # Unknown and repeated chosen tags change nothing.
    assert ask(predictor, text="pwm", chosen=["servo", "servo", "no-such-tag"]) == \
        ask(predictor, text="pwm", chosen=["servo"])


def test_no_tag_twice_exclusions_candidates_and_strictly_best_first(predictor) -> None:
    everything = ask(predictor, text="pwm joint", num_results=50)
    assert sorted(t for t, _ in everything) == sorted(ALL_TAGS)  # all 12, each once
    excluded = ask(predictor, text="pwm joint", exclude={"servo", "arm", "pwm"}, num_results=50)
    assert sorted(t for t, _ in excluded) == sorted(set(ALL_TAGS) - {"servo", "arm", "pwm"})
    some = ["vision", "driver", "not-a-tag"]
    assert sorted(t for t, _ in ask(predictor, text="pwm", candidates=some, num_results=10)) == \
        ["driver", "vision"]
    assert ask(predictor, text="pwm", candidates=[]) == []
    assert ask(predictor, text="pwm", candidates=["servo"], exclude={"servo"}) == []
    assert ask(predictor, text="pwm", num_results=0) == []
    for ranked in (everything, excluded, ask(predictor, text="question", chosen=["motor"], num_results=11)):
        scores = [s for _, s in ranked]
        assert all(a > b for a, b in zip(scores, scores[1:])), scores
        assert all(0.0 < s <= 1.0 for s in scores)


def test_min_probability_shortens_the_set(predictor) -> None:
    full = ask(predictor, text="pwm pulse", num_results=5)
    assert len(full) == 5
    short = ask(with_config(predictor, min_probability=0.999), text="pwm pulse", num_results=5)
    assert len(short) < 5 and [t for t, _ in short] == [t for t, _ in full][:len(short)]
    steps = [full[0][1], full[1][1] / full[0][1]]  # the first two steps' probabilities (scores: products)
    middle = ask(with_config(predictor, min_probability=min(steps) * 0.999), text="pwm pulse", num_results=5)
    assert middle[:2] == full[:2]  # a threshold below them keeps them


def test_min_probability_also_ends_an_answer_continued_past_the_generated_steps(predictor) -> None:
    one_step = with_config(predictor, max_generated=1)
    full = ask(one_step, text="question", num_results=12)
    rest = [s / full[0][1] for _, s in full[1:]]  # the other tags' probabilities at that one step
    cut = (rest[1] + rest[2]) / 2  # between the third tag's and the fourth's
    short = ask(with_config(predictor, max_generated=1, min_probability=cut), text="question", num_results=12)
    assert [t for t, _ in short] == [t for t, _ in full[:3]]


def test_more_results_than_generated_steps_continue_in_the_last_steps_order(predictor) -> None:
    greedy = ask(predictor, text="brushless", num_results=8)
    few = with_config(predictor, max_generated=2)
    longer = ask(few, text="brushless", num_results=8)
    assert len(longer) == 8 and len({t for t, _ in longer}) == 8
    assert [t for t, _ in longer[:2]] == [t for t, _ in greedy[:2]]  # the same two greedy steps
    scores = [s for _, s in longer]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert len(ask(few, text="brushless", num_results=50)) == len(ALL_TAGS)


def test_an_answer_does_not_depend_on_its_batch(predictor) -> None:
    queries = [Query(text="pwm", num_results=4), Query(text="question " * 40, chosen=["arm", "vision"]),
               Query(fields={"title": "image", "content": "lens pixel"}, exclude={"camera"}),
               Query(text=UNKNOWN_TEXT, num_results=2)]
    together = predictor.predict_batch(queries)
    for q, a in zip(queries, together):
        alone = predictor.predict_batch([q])[0]
        assert alone.ids == a.ids and alone.fallback == a.fallback
        assert [s for _, s in alone.ranked] == pytest.approx([s for _, s in a.ranked], rel=1e-2)


@pytest.mark.parametrize("training", ["1-to-1", "br-ef"])
def test_the_papers_baselines_train_and_answer(training) -> None:
    p = fit(training=training)
    queries = [Query(text="pwm pulse", num_results=3),
               Query(text="question", chosen=["arm"], exclude={"motor"}),
               Query(text="lens", candidates=["camera", "vision", "servo"]), Query(text=UNKNOWN_TEXT)]
    answers = p.predict_batch(queries)
    assert [len(a.ids) for a in answers] == [3, 10, 3, 12]
    assert "arm" not in answers[1].ids and "motor" not in answers[1].ids
    assert set(answers[2].ids) == {"camera", "vision", "servo"}
    assert [a.fallback for a in answers] == [False, False, False, True]
    for a in answers:
        scores = [s for _, s in a.ranked]
        assert all(x > y for x, y in zip(scores, scores[1:])), scores


# --- fallback, stored items ---------------------------------------------------------------------
def test_fallback_when_nothing_in_the_query_is_known(predictor) -> None:
    nothing = [Query(text=UNKNOWN_TEXT, chosen=["no-such-tag"]), Query(text=""),
               Query(fields={"title": "ффф"}), Query(item_id="not-stored")]
    for answer in predictor.predict_batch(nothing):
        assert answer.fallback and answer.ids  # flagged, still a set
    known = [Query(text="pwm pulse"), Query(text=UNKNOWN_TEXT, chosen=["servo"]),
             Query(fields={"content": "lens"})]
    assert not any(a.fallback for a in predictor.predict_batch(known))


def test_stored_items_answer_as_their_text_inline(predictor) -> None:
    p = SogPredictor(predictor.config, predictor.featurizer, predictor.model)  # its own catalog
    tables = posts(topic_posts() + POSTS)
    assert p.update_catalog(tables, SCHEMAS) == 96 + len(POSTS)
    for item_id, title, content, _ in [topic_posts()[5], topic_posts()[10], POSTS[3]]:
        fields = {"title": title, **({"content": content} if content else {})}
        by_id = p.predict_batch([Query(item_id=item_id, num_results=4)])[0]
        inline = p.predict_batch([Query(fields=fields, num_results=4)])[0]
        assert by_id.ids == inline.ids and not by_id.fallback
        assert [s for _, s in by_id.ranked] == pytest.approx([s for _, s in inline.ranked], rel=1e-6)
    assert p.predict_batch([Query(item_id="not-stored")])[0].fallback
    assert p.update_catalog({}, SCHEMAS) == 0


# --- hostile text --------------------------------------------------------------------------------
def test_hostile_text_never_raises_and_written_specials_are_dropped(predictor) -> None:
    f = predictor.featurizer
    lone = b"pwm \xff\xfe pulse \xed\xa0\x80".decode("utf-8", errors="surrogateescape")
    hostile = ["", "pwm " * 250_000, "x" * (1 << 20), "héllo naïve 🤖🦾 ＰＷＭ \x00\x01 pulse\u200b",
               lone, "[MASK]" * 1000]
    queries = [Query(text=t, num_results=3) for t in hostile]
    queries.append(Query(fields={"title": lone, "content": "\x00"}, chosen=[lone], num_results=3))
    answers = predictor.predict_batch(queries)
    assert all(len(a.ids) == 3 for a in answers)
    # A special token written in the text is not one in the model's input.
    written = "pwm [MASK] pulse [SEP][CLS] width [PAD]x[UNK]"
    pieces = f.encode([f.context_text({}, extra=[written])])[0]
    assert not set(pieces.tolist()) & {f.specials[r] for r in ("pad", "cls", "sep", "mask")}
    assert ask(predictor, text=written) == ask(predictor, text="pwm   pulse   width  x ")
    assert ask(predictor, fields={"title": "[SEP] pwm", "content": "[MASK]"}) == ask(predictor, text="pwm")


# --- context fields (§3.4) -------------------------------------------------------------------------
def test_time_words_by_hand() -> None:
    wednesday = datetime(2020, 7, 1, 14, 52, tzinfo=UTC).timestamp()
    assert time_words(wednesday) == ["summer", "weekday", "afternoon"]
    saturday_night = datetime(2022, 1, 1, 23, 30, tzinfo=UTC).timestamp()  # 1 January 2022: a Saturday
    assert time_words(saturday_night) == ["winter", "weekend", "night"]
    for when, words in [((2021, 3, 7, 4, 59), ["spring", "weekend", "night"]),
                        ((2021, 10, 4, 9, 0), ["fall", "weekday", "morning"]),
                        ((2021, 12, 6, 20, 0), ["winter", "weekday", "evening"])]:
        assert time_words(datetime(*when, tzinfo=UTC).timestamp()) == words


CONTEXT_SCHEMAS = {DatasetKind.ITEMS: Schema.model_validate({"fields": [
    {"name": "item_id", "type": "string", "role": "ITEM_ID"},
    {"name": "created", "type": "timestamp"},
    {"name": "location", "type": "categorical", "nullable": True},
    {"name": "caption", "type": "text"},
    {"name": "tags", "type": "categorical", "role": "TAGS"},
]})}


def context_posts(n: int = 64) -> dict[DatasetKind, pa.Table]:
    """Photos whose tags follow their place and time, their captions saying nothing: at the beach on
    summer afternoons (sea, sunset), in the mountains on winter mornings (snow, ski)."""
    beach = datetime(2020, 7, 1, 14, 52, tzinfo=UTC)
    mountain = datetime(2021, 1, 16, 8, 30, tzinfo=UTC)
    rows = [(f"c{i}", beach if i % 2 else mountain, "Beach" if i % 2 else "Mountain", f"my photo {i}",
             ["sea", "sunset"] if i % 2 else ["snow", "ski"]) for i in range(n)]
    ids, created, places, captions, tags = zip(*rows)
    return {DatasetKind.ITEMS: pa.table({
        "item_id": list(ids), "created": pa.array(created, pa.timestamp("ms", tz="UTC")),
        "location": list(places), "caption": list(captions),
        "tags": pa.array(tags, pa.list_(pa.string()))})}


@pytest.fixture(scope="module")
def context_predictor() -> SogPredictor:
    return fit(context_posts(), CONTEXT_SCHEMAS, context_fields=["created", "location"])


def test_context_fields_train_and_answer(context_predictor) -> None:
    p = context_predictor
    f = p.featurizer
    row = context_posts().get(DatasetKind.ITEMS).slice(1, 1).to_pylist()[0]
    assert f.context_text(row) == "summer weekday afternoon [SEP] Beach [SEP] my photo 1"
    seconds = str(row["created"].timestamp())
    beach = p.predict_batch([Query(fields={"created": seconds, "location": "Beach"}, text="my photo",
                                   num_results=2)])[0]
    snow = p.predict_batch([Query(fields={"created": "2021-01-16T08:30:00Z", "location": "Mountain"},
                                  text="my photo", num_results=2)])[0]
    assert not beach.fallback and not snow.fallback
    assert beach.ranked != snow.ranked  # the context is read
    assert set(beach.ids) == {"sea", "sunset"} and set(snow.ids) == {"snow", "ski"}
    # A time in a request: epoch seconds or ISO 8601 (UTC when it names no zone), as words.
    for given in (seconds, "2020-07-01T14:52:00Z", "2020-07-01 14:52", row["created"]):
        assert f.context_text({"created": given}) == "summer weekday afternoon [SEP] "
    assert f.context_text({"created": "not a time", "location": "Beach"}) == "Beach [SEP] "


def test_a_time_without_a_zone_is_utc_wherever_the_model_runs(context_predictor, monkeypatch) -> None:
    f = context_predictor.featurizer
    monkeypatch.setenv("TZ", "America/New_York")  # 14:52 UTC is 10:52 there
    time.tzset()
    try:
        for given in (datetime(2020, 7, 1, 14, 52), "2020-07-01 14:52", "2020-07-01T10:52:00-04:00"):
            assert f.context_text({"created": given}) == "summer weekday afternoon [SEP] ", given
    finally:
        monkeypatch.undo()
        time.tzset()


def test_context_fields_must_be_fields_of_the_items() -> None:
    with pytest.raises(ValueError, match=r"context_fields \['taken_at'\] are not fields"):
        fit(context_posts(), CONTEXT_SCHEMAS, context_fields=["location", "taken_at"])


# --- bad hyperparameters and data ------------------------------------------------------------------
@pytest.mark.parametrize(("bad", "named"), [
    ({"hidden_size": 30, "heads": 4}, "hidden_size"),
    ({"max_length": 4}, "max_length"),
    ({"training": "x"}, "training"),
    ({"kl_target": "soft"}, "kl_target"),
    ({"min_probability": 1.0}, "min_probability"),
    ({"no_such_key": 1}, "no_such_key"),
])
def test_bad_hyperparameters_are_refused_by_name(bad, named) -> None:
    with pytest.raises(ValidationError, match=named):
        SogConfig.model_validate({**TINY, **bad})
    # A checkpoint brings its own sizes: the scratch ones are not checked.
    SogConfig.model_validate({**TINY, "pretrained_encoder": "/a/checkpoint", "hidden_size": 30, "heads": 4})


def test_unusable_training_data_is_refused_by_name() -> None:
    # Tags on the posts: servo 2, arm 2, motor 1.
    with pytest.raises(ValueError, match=r"no tag is on 3 or more training posts \(min_tag_count\)"):
        fit(posts(), min_tag_count=3)
    no_text = {DatasetKind.ITEMS: Schema.model_validate({"fields": [
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "location", "type": "categorical"},
        {"name": "tags", "type": "categorical", "role": "TAGS"}]})}
    table = {DatasetKind.ITEMS: pa.table({"item_id": ["a", "b"], "location": ["x", "y"],
                                          "tags": pa.array([["t"], ["t"]], pa.list_(pa.string()))})}
    with pytest.raises(ValueError, match="sog needs text: the items dataset has no text field"):
        fit(table, no_text)
    without_tags = {DatasetKind.ITEMS: Schema.model_validate({"fields": [
        {"name": "item_id", "type": "string", "role": "ITEM_ID"}, {"name": "title", "type": "text"}]})}
    with pytest.raises(ValueError, match="items dataset with a TAGS field"):
        SogFeaturizer.fit({DatasetKind.ITEMS: pa.table({"item_id": ["a"], "title": ["x"]})},
                          SogConfig.model_validate(TINY), schemas=without_tags)
