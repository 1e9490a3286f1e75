"""GraphTR recipe (item-tags): the conformance suite, the §4.1 predictor's behaviours (a user's topic
ranks an item's candidates, a real-time event counts at the next request, the flagged fallbacks,
candidates and exclusions), a HetRec folder without directors, every ablation, and bad input.

Data: a seeded HetRec MovieLens-2k folder written in its real layout and read by `sdk.hetrec.convert`
(one tag per assignment; movies with genres and directors): 4 topics of 6 tags, each movie carries 3
of its topic's; the first 4 movies ("bridges") belong to two topics and carry 2 tags of the second
too. A user tags only their topic's movies (bridges included) with that topic's tags.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from recipes import get_recipe
from recipes.base import Query
from recipes.graphtr import GraphTrConfig, GraphTrFeaturizer, GraphTrPredictor
from sdk.hetrec import convert
from sdk.types import DatasetKind, Role, Schema
from tests.unit.conformance import (
    RecipeConformance,
    one_torch_thread,  # noqa: F401  (autouse: one torch thread)
)
from tests.unit.test_hetrec import delicious_2k, lastfm_2k, movielens_2k, write
from training_jobs.loop import fit_in_process

TOPICS = ("action", "comedy", "drama", "horror")
TAGS_PER_TOPIC = 6
BRIDGES = ("1", "2", "3", "4")  # movie m (topic m - 1) is also of topic m % 4
SMALL = {"hidden_dim": 16, "heads": 2, "field_dims": 8, "first_samples": 5, "second_samples": 3,
         "negatives": 5, "batch_size": 64, "epochs": 3, "seed": 0}



def topic_of(movie: int) -> int:
    return (movie - 1) % len(TOPICS)


def movie_tags(movie: int) -> dict[int, list[str]]:
    """A movie's tags per topic: 3 of its topic's, and 2 of the next topic's for a bridge."""
    t = topic_of(movie)
    tags = {t: [f"{TOPICS[t]}-{(movie // len(TOPICS) + j) % TAGS_PER_TOPIC}" for j in range(3)]}
    if str(movie) in BRIDGES:
        b = (t + 1) % len(TOPICS)
        tags[b] = [f"{TOPICS[b]}-{(movie + j) % TAGS_PER_TOPIC}" for j in range(2)]
    return tags


def user_topic(user: str) -> int:
    return int(user) % len(TOPICS)


def planted_hetrec(root: Path, *, seed: int = 0, n_users: int = 24, n_movies: int = 32, per_user: int = 16,
                   directors: bool = True) -> Path:
    """A hetrec2011-movielens-2k-v2 folder with the planted tastes (module docstring): user u's topic
    is u % 4; `directors=False` leaves movie_directors.dat out (no creators)."""
    rng = np.random.default_rng(seed)
    folder = root / "hetrec2011-movielens-2k-v2"
    folder.mkdir(parents=True)
    names = [f"{t}-{k}" for t in TOPICS for k in range(TAGS_PER_TOPIC)]
    tag_ids = {t: n + 1 for n, t in enumerate(names)}
    movies = range(1, n_movies + 1)
    rows = ["userID\tmovieID\ttagID\ttimestamp"]
    for u in range(1, n_users + 1):
        mine = user_topic(str(u))
        pool = [m for m in movies if mine in movie_tags(m)]
        for e in range(per_user):
            m = int(rng.choice(pool))
            tag = str(rng.choice(movie_tags(m)[mine]))
            rows.append(f"{u}\t{m}\t{tag_ids[tag]}\t{1_200_000_000_000 + (u * 1000 + e) * 60_000}")
    write(folder, "user_taggedmovies-timestamps.dat", rows, gz=True)
    write(folder, "tags.dat", ["id\tvalue", *(f"{i}\t{t}" for t, i in tag_ids.items())], encoding="latin-1")
    header = "\t".join(["id", "title", "imdbID", "spanishTitle", "imdbPictureURL", "year", "rtID",
                        *(f"rt{k}" for k in range(14))])
    rest = "\t".join(["0"] * 14)
    write(folder, "movies.dat", [header, *(f"{m}\tMovie {m}\t{m:07d}\tPelícula {m}\thttp://pic\t{1990 + m}\t"
                                           f"movie_{m}\t{rest}" for m in movies)], encoding="latin-1")
    write(folder, "movie_genres.dat", ["movieID\tgenre", *(f"{m}\t{TOPICS[t].title()}" for m in movies
                                                            for t in movie_tags(m))])
    if directors:  # two directors per topic
        write(folder, "movie_directors.dat", ["movieID\tdirectorID\tdirectorName", *(
            f"{m}\td{topic_of(m)}{m // 4 % 2}\tDirector {topic_of(m)}{m // 4 % 2}" for m in movies)])
    return folder


def planted(**kw) -> tuple[dict[DatasetKind, pa.Table], dict[DatasetKind, Schema]]:
    """`planted_hetrec` converted by `sdk.hetrec.convert`: its tables and schemas."""
    with tempfile.TemporaryDirectory() as tmp:
        data = convert(planted_hetrec(Path(tmp), **kw), Path(tmp) / "out")
        return {k: pq.read_table(p) for k, p in data.paths.items()}, data.schemas


def history(tables, user: str) -> list[tuple]:
    """The user's training events as a query history (item, seconds, type, value, tags), oldest first."""
    rows = sorted((r for r in tables[DatasetKind.INTERACTIONS].to_pylist() if r["user_id"] == user),
                  key=lambda r: r["timestamp"])
    return [(r["item_id"], r["timestamp"].timestamp(), r["event_type"], None, tuple(r["tags"])) for r in rows]


def candidates(movie: str, topic: int) -> set[str]:
    return set(movie_tags(int(movie)).get(topic, ()))


class TestConformance(RecipeConformance):
    recipe_id = "graphtr"
    hyperparameters = SMALL

    def data(self):
        return planted()

    def queries(self, tables):
        h = history(tables, "1")  # comedy
        seen = h[0][4][0]
        return [Query(history=h, user_id="1", item_id="2", num_results=5),
                Query(user_id="nobody", item_id="no-such-item", num_results=3),
                # no unknown candidate: see test_an_unknown_candidate_is_last_and_the_answer_stays_best_first
                Query(history=h, item_id="2", candidates=[seen, "drama-2", "horror-5"], num_results=10),
                Query(history=h, item_id="2", exclude={seen}, num_results=50),
                Query(history=h, user_id="1", item_id="no-such-item", num_results=4)]


# --- the predictor (§4.1) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor():
    tables, schemas = planted(seed=1)
    spec = get_recipe("graphtr")
    config, featurizer, model = fit_in_process(spec, {**SMALL, "candidate_prior": 0.0}, tables,
                                               schemas=schemas, threads=1)
    return tables, spec.predictor_cls(config, featurizer, model)  # §4.1: the cosine alone


def test_the_candidate_prior_leads_with_the_items_most_applied_tags(predictor) -> None:
    """cos + λ·log(1 + n_it): a large λ orders by the item's training counts, the cosine among ties;
    the default λ = 1 moves the ranking towards the counts."""
    tables, p = predictor
    h = history(tables, "4")
    q = Query(history=h, user_id="4", item_id="1", num_results=50)
    applied = p.featurizer.applied("1")
    assert applied and len(set(applied.values())) > 1  # the planted counts differ
    by_counts = GraphTrPredictor(p.config.model_copy(update={"candidate_prior": 100.0}), p.featurizer,
                                 p.model).predict_batch([q])[0]
    counts = [applied[t] for t in by_counts.ids]
    assert counts == sorted(counts, reverse=True) and set(by_counts.ids) == set(applied)
    cosine = p.predict_batch([q])[0]
    default = GraphTrPredictor(p.config.model_copy(update={"candidate_prior": 1.0}), p.featurizer,
                               p.model).predict_batch([q])[0]
    for t, score in default.ranked:
        assert score == pytest.approx(dict(cosine.ranked)[t] + np.log1p(applied[t]))


def item_tags(tables) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in tables[DatasetKind.INTERACTIONS].to_pylist():
        out.setdefault(r["item_id"], set()).update(r["tags"])
    return out


def test_a_users_topic_ranks_a_bridges_candidates_above_the_other_topics(predictor) -> None:
    """Each user of a bridge's two topics gets their topic's candidates first, from their tag clicks
    minus the bridge's tags (no item: only the learned embeddings relate the two)."""
    tables, p = predictor
    known = item_tags(tables)
    users = sorted({r["user_id"] for r in tables[DatasetKind.INTERACTIONS].to_pylist()}, key=int)
    checked = 0
    for bridge in BRIDGES:
        asked = candidates(bridge, topic_of(int(bridge))) | candidates(bridge, int(bridge) % len(TOPICS))
        assert known[bridge] == asked  # both topics' users tagged it with all of them
        for user in users:
            mine = candidates(bridge, user_topic(user))
            if not mine:
                continue
            h = [(None, e[1], "tag", None, e[4]) for e in history(tables, user) if not set(e[4]) & asked]
            assert h, (bridge, user)
            a = p.predict_batch([Query(history=h, user_id=user, item_id=bridge, num_results=10)])[0]
            assert not a.fallback and set(a.ids) == asked
            assert set(a.ids[:len(mine)]) == mine, (bridge, user, TOPICS[user_topic(user)], a.ranked)
            checked += 1
    assert checked == 2 * len(users) // len(TOPICS) * len(BRIDGES)


def test_a_real_time_event_counts_at_the_next_request(predictor) -> None:
    """Tag clicks of the bridge's other topic, appended to the history, move those tags up."""
    tables, p = predictor
    user, bridge = "4", "1"  # action; movie 1 is action and comedy
    h = history(tables, user)
    before = p.predict_batch([Query(history=h, user_id=user, item_id=bridge, num_results=10)])[0]
    other = sorted(candidates(bridge, 1))
    clicks = [(bridge, h[-1][1] + 60 * (k + 1), "tag", None, (other[k % len(other)],)) for k in range(6)]
    after = p.predict_batch([Query(history=[*h, *clicks], user_id=user, item_id=bridge, num_results=10)])[0]
    assert not before.fallback and not after.fallback and set(before.ids) == set(after.ids)
    assert before.ranked != after.ranked

    def first_of_other(answer) -> int:
        return min(answer.ids.index(t) for t in other)

    assert first_of_other(after) < first_of_other(before), (before.ranked, after.ranked)


def test_unknown_users_and_items_get_the_flagged_fallback(predictor) -> None:
    tables, p = predictor
    counts = p.featurizer.tag_counts
    by_count = [p.featurizer.graph.vocab["tag"][i] for i in np.argsort(-counts, kind="stable")]
    h = history(tables, "1")
    nobody, no_item, unread, known = p.predict_batch([
        Query(user_id="nobody", item_id="2", num_results=10),  # no history: the item's tags by use
        Query(history=h, user_id="1", item_id="no-such-item", num_results=5),  # the catalog's most used
        Query(history=[("no-such-item", 1.0, "tag", None, ("never-seen",))], item_id="2", num_results=10),
        Query(history=h, user_id="1", item_id="2", num_results=10)])
    assert nobody.fallback and unread.fallback and nobody.ranked == unread.ranked
    applied = p.featurizer.applied("2")  # item-tag-frequency's order: times on the item, then overall
    assert nobody.ids == sorted(known.ids, key=lambda t: (-applied[t], by_count.index(t)))
    assert set(nobody.ids) == set(known.ids)
    assert no_item.fallback and no_item.ids == by_count[:5]
    assert not known.fallback


def test_candidates_are_ranked_unknown_ones_last_and_exclusions_honoured(predictor) -> None:
    tables, p = predictor
    h = history(tables, "2")  # drama; movie 2 is comedy and drama
    asked = ["comedy-2", "never-seen", "drama-2", "action-0"]  # action-0: known, not on the item
    a = p.predict_batch([Query(history=h, user_id="2", item_id="2", candidates=asked, num_results=10)])[0]
    assert not a.fallback and set(a.ids) == set(asked)
    assert a.ids[0] == "drama-2" and a.ranked[-1] == ("never-seen", None)
    full = p.predict_batch([Query(history=h, user_id="2", item_id="2", num_results=10)])[0]
    top = full.ids[0]
    without = p.predict_batch([Query(history=h, user_id="2", item_id="2", exclude={top}, num_results=10)])[0]
    assert without.ids == full.ids[1:]
    short = p.predict_batch([Query(history=h, user_id="2", item_id="2", num_results=2)])[0]
    assert short.ids == full.ids[:2]
    gone = p.predict_batch([Query(user_id="nobody", item_id="no-such-item", exclude={top},
                                  num_results=50)])[0]
    assert gone.fallback and top not in gone.ids and len(gone.ids) == len(p.featurizer.graph.vocab["tag"]) - 1


def test_an_unknown_candidate_is_last_and_the_answer_stays_best_first(predictor) -> None:
    tables, p = predictor
    vocabulary = list(p.featurizer.graph.vocab["tag"])  # the other topics' tags have negative cosines
    a = p.predict_batch([Query(history=history(tables, "4"), user_id="4", item_id="2",
                               candidates=[*vocabulary, "never-seen"], num_results=50)])[0]
    assert not a.fallback and a.ids[-1] == "never-seen" and len(a.ids) == len(vocabulary) + 1
    scores = [s for _, s in a.ranked if s is not None]
    assert scores == sorted(scores, reverse=True), a.ranked[-3:]


def test_excluding_every_candidate_answers_none_of_the_others(predictor) -> None:
    tables, p = predictor
    h = history(tables, "1")
    a = p.predict_batch([Query(history=h, user_id="1", item_id="2", candidates=["comedy-1"],
                               exclude={"comedy-1"}, num_results=5)])[0]
    assert a.ids == [], a.ranked


# --- the data: no creators; ablations ---------------------------------------------------------------
def test_a_hetrec_folder_without_directors_trains() -> None:
    """Without movie_directors.dat the directors lists are empty; without the column at all the field
    is absent: both train a graph with no creator node, and answer."""
    tables, schemas = planted(seed=2, directors=False)
    items = tables[DatasetKind.ITEMS]
    assert items.column("directors").to_pylist() == [[]] * items.num_rows
    dropped = {**tables, DatasetKind.ITEMS: items.drop_columns(["directors", "creators"])}
    dropped_schemas = {**schemas, DatasetKind.ITEMS: Schema(fields=[
        f for f in schemas[DatasetKind.ITEMS].fields if f.name not in ("directors", "creators")])}
    for t, s in ((tables, schemas), (dropped, dropped_schemas)):
        config, featurizer, model = fit_in_process("graphtr", {**SMALL, "epochs": 1}, t, schemas=s, threads=1)
        assert featurizer.graph.num_nodes_of("creator") == 0 and featurizer.graph.num_nodes_of("item") == 32
        answer = get_recipe("graphtr").predictor_cls(config, featurizer, model).predict_batch(
            [Query(history=history(t, "1"), user_id="1", item_id="2", num_results=5)])[0]
        assert not answer.fallback and answer.ids


ABLATIONS = [{"aggregator": "graphsage"}, {"fm": False}, {"first_transformer": False},
             {"second_transformer": False}, {"user_nodes": "none"}, {"creator_field": ""}]


@pytest.mark.parametrize("flags", ABLATIONS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_every_ablation_fits_and_answers(flags: dict) -> None:
    tables, schemas = planted(seed=3)
    config, featurizer, model = fit_in_process("graphtr", {**SMALL, **flags, "epochs": 1}, tables,
                                               schemas=schemas, threads=1)
    graph = featurizer.graph
    if flags.get("user_nodes") == "none":
        assert graph.num_nodes_of("user") == 0
    assert graph.num_nodes_of("creator") == (0 if "creator_field" in flags else 8)
    p = get_recipe("graphtr").predictor_cls(config, featurizer, model)
    assert np.isfinite(p.tag_vectors).all()
    h = history(tables, "1")
    answer = p.predict_batch([Query(history=h, user_id="1", item_id="2", num_results=10)])[0]
    assert not answer.fallback and set(answer.ids) == candidates("2", 1) | candidates("2", 2)


# --- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "named"), [
    ({"hidden_dim": 10, "heads": 4}, r"hidden_dim \(10\) must be divisible by heads \(4\)"),
    ({"first_transformer": False, "graphsage": False, "fm": False}, "first_transformer, graphsage and fm"),
    ({"epochs": -1}, "epochs"),
    ({"num_heads": 2}, "num_heads"),
], ids=["heads", "no-aggregator", "negative-epochs", "unknown-key"])
def test_bad_hyperparameters_name_the_field(values: dict, named: str) -> None:
    with pytest.raises(ValidationError, match=named) as e:
        GraphTrConfig(**values)
    if len(values) == 1:
        assert e.value.errors()[0]["loc"] == tuple(values)


def test_a_training_table_without_tags_names_the_tags_role() -> None:
    tables, schemas = planted(seed=4, n_users=8, per_user=4)
    inter = schemas[DatasetKind.INTERACTIONS]
    no_role = Schema(fields=[f for f in inter.fields if f.role != Role.TAGS])
    with pytest.raises(ValueError, match="role TAGS"):
        GraphTrFeaturizer.fit(tables, GraphTrConfig(), schemas={**schemas, DatasetKind.INTERACTIONS: no_role})
    table = tables[DatasetKind.INTERACTIONS]
    empty = table.set_column(table.schema.get_field_index("tags"), "tags",
                             pa.array([[]] * table.num_rows, pa.list_(pa.string())))
    with pytest.raises(ValueError, match="no tag.*TAGS"):
        GraphTrFeaturizer.fit({DatasetKind.INTERACTIONS: empty}, GraphTrConfig(),
                              schemas={DatasetKind.INTERACTIONS: inter})


@pytest.mark.parametrize("layout", [movielens_2k, lastfm_2k, delicious_2k])
def test_every_hetrec_layout_trains_and_answers(layout, tmp_path: Path) -> None:
    """Any HetRec 2011 folder `tagrec import hetrec` reads trains: lastfm's artists and delicious's
    bookmarks have no creator field (no creator nodes), tiny folders included."""
    data = convert(layout(tmp_path), tmp_path / "out")
    tables = {k: pq.read_table(v) for k, v in data.paths.items()}
    config, featurizer, model = fit_in_process("graphtr", {**SMALL, "epochs": 1}, tables,
                                               schemas=data.schemas, threads=1)
    inter = tables[DatasetKind.INTERACTIONS].to_pylist()
    user_col = data.schemas[DatasetKind.INTERACTIONS].field_for(Role.USER_ID).name
    item_col = data.schemas[DatasetKind.INTERACTIONS].field_for(Role.ITEM_ID).name
    tag_col = data.schemas[DatasetKind.INTERACTIONS].field_for(Role.TAGS).name
    row = inter[0]
    history = [(r[item_col], 0, "tag", None, tuple(r[tag_col]))
               for r in inter if r[user_col] == row[user_col]]
    a = GraphTrPredictor(config, featurizer, model).predict_batch(
        [Query(history=history, user_id=str(row[user_col]), item_id=str(row[item_col]), num_results=5)])[0]
    assert a.ids and not a.fallback and set(a.ids) <= set(featurizer.graph.vocab["tag"])
    if layout is not movielens_2k:
        assert featurizer.graph.num_nodes_of("creator") == 0


def test_an_items_candidates_are_every_tag_applied_to_it_beyond_the_graphs_degree_cap() -> None:
    """max_degree caps the graph's neighbour lists, not the candidates: an item tagged with more
    distinct tags than the cap still has every one of them ranked."""
    tables, schemas = planted(seed=3)
    config, featurizer, model = fit_in_process("graphtr", {**SMALL, "epochs": 1, "max_degree": 2}, tables,
                                               schemas=schemas, threads=1)
    applied = featurizer.applied("1")
    assert len(featurizer.item_tags("1")) <= 2 < len(applied)
    a = GraphTrPredictor(config, featurizer, model).predict_batch(
        [Query(history=history(tables, "4"), user_id="4", item_id="1", num_results=100)])[0]
    assert set(a.ids) == set(applied) and not a.fallback
