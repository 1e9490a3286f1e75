"""Intent corpora and the support-session simulator: the published shapes, the simulator's
invariants and statistics, and the real corpora under ../shared/data."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sdk.intents import SimulatedSessions, convert, detect_format, read_intents, simulate_sessions
from sdk.types import DatasetKind, Role
from tests.conftest import SHARED_DATA
from tests.unit.test_movielens import assert_matches_schema


def dump(path: Path, value: object) -> Path:
    raw = json.dumps(value).encode()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.name.endswith(".gz") else raw)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    raw = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.name.endswith(".gz") else raw)
    return path


def clinc150(root: Path) -> Path:
    folder = root / "clinc150"
    folder.mkdir()
    dump(folder / "data_full.json.gz", {
        "train": [["what is my balance", "balance"], ["freeze my  account\nnow", "freeze_account"]],
        "val": [["how much money do i have", "balance"]],
        "test": [["book a flight to paris", "book_flight"], ["tell me a joke", "oos"]],
        "oos_train": [["who won the game", "oos"]], "oos_val": [], "oos_test": [],
    })  # fmt: skip
    dump(folder / "domains.json", {"banking": ["balance", "freeze_account"], "travel": ["book_flight"]})
    return folder


def banking77(root: Path) -> Path:
    folder = root / "banking77"
    folder.mkdir()
    write_csv(folder / "train.csv.gz", [["text", "category"],
                                        ["I am still waiting on my card?", "card_arrival"],
                                        ["My card\nhas not arrived, \"why\"?", "card_arrival"]])
    write_csv(folder / "test.csv", [["text", "category"], ["What is the exchange rate?", "exchange_rate"]])
    (folder / "categories.json").write_text('["card_arrival", "exchange_rate"]')
    return folder


def nlupp(root: Path) -> Path:
    folder = root / "nlupp"
    (folder / "banking").mkdir(parents=True)
    (folder / "hotels").mkdir()
    dump(folder / "banking" / "fold0.json.gz", [
        {"text": "How long does it take to get a new pin?", "intents": ["new", "pin", "how_long", "pin"]},
        {"text": "ok, thanks", "slots": {}},  # no intent: dropped
    ])  # fmt: skip
    dump(folder / "banking" / "fold1.json", [{"text": "I lost my card", "intents": ["lost_stolen", "card"]}])
    dump(folder / "hotels" / "fold0.json", [{"text": "Can I bring my dog?", "intents": ["pets"]}])
    dump(folder / "ontology.json.gz", {"intents": {}})
    return folder


def test_read_clinc150(tmp_path: Path) -> None:
    folder = clinc150(tmp_path)
    assert detect_format(folder) == detect_format(folder / "data_full.json.gz") == "clinc150"
    rows = read_intents(folder).to_pylist()
    assert rows == [
        {"organisation": "banking", "intent": "balance", "text": "what is my balance"},
        {"organisation": "banking", "intent": "freeze_account", "text": "freeze my account now"},
        {"organisation": "banking", "intent": "balance", "text": "how much money do i have"},
        {"organisation": "travel", "intent": "book_flight", "text": "book a flight to paris"},
    ]  # out-of-scope dropped, whitespace collapsed
    assert read_intents(folder / "data_full.json.gz").to_pylist() == rows


def test_clinc150_errors(tmp_path: Path) -> None:
    folder = clinc150(tmp_path)
    dump(folder / "domains.json", {"banking": ["balance"]})
    with pytest.raises(ValueError, match=r"intents missing from domains.json: \['book_flight', 'freeze"):
        read_intents(folder)
    (folder / "domains.json").unlink()
    with pytest.raises(ValueError, match="clinc150 needs domains.json"):
        read_intents(folder)
    dump(folder / "domains.json", {"banking": ["balance"]})
    dump(folder / "data_full.json.gz", {"train": [["only the utterance"]]})
    with pytest.raises(ValueError, match=r"data_full.json.gz: train\[0\] .*expected \[utterance, intent\]"):
        read_intents(folder)


def test_read_banking77(tmp_path: Path) -> None:
    folder = banking77(tmp_path)
    assert detect_format(folder) == "banking77"
    assert read_intents(folder).to_pylist() == [
        {"organisation": "banking", "intent": "card_arrival", "text": "I am still waiting on my card?"},
        {"organisation": "banking", "intent": "card_arrival", "text": 'My card has not arrived, "why"?'},
        {"organisation": "banking", "intent": "exchange_rate", "text": "What is the exchange rate?"},
    ]
    write_csv(folder / "test.csv", [["utterance", "category"], ["x", "y"]])
    with pytest.raises(ValueError, match="test.csv: no 'text' column .*header: utterance, category"):
        read_intents(folder)


def test_read_nlu_plus_plus(tmp_path: Path) -> None:
    folder = nlupp(tmp_path)
    assert detect_format(folder) == detect_format(folder / "hotels") == "nlu-plus-plus"
    assert read_intents(folder).to_pylist() == [
        {"organisation": "banking", "intent": "how_long+new+pin",
         "text": "How long does it take to get a new pin?"},
        {"organisation": "banking", "intent": "card+lost_stolen", "text": "I lost my card"},
        {"organisation": "hotels", "intent": "pets", "text": "Can I bring my dog?"},
    ]  # fmt: skip
    assert read_intents(folder / "hotels").column("organisation").to_pylist() == ["hotels"]


def test_read_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "support.csv.gz", [
        ["Text", "Organization", "Intent", "extra"],
        ["How do I\nreset my password?", "acme", "password_reset", "1"],
        ["", "acme", "password_reset", "2"],  # empty text: dropped
        ["Where is my parcel?", "shipfast", "track_parcel", "3"],
    ])  # fmt: skip
    assert detect_format(path) == "csv"
    assert read_intents(path).to_pylist() == [
        {"organisation": "acme", "intent": "password_reset", "text": "How do I reset my password?"},
        {"organisation": "shipfast", "intent": "track_parcel", "text": "Where is my parcel?"},
    ]
    bad = write_csv(tmp_path / "bad.csv", [["org", "intent", "text"], ["a", "b", "c"]])
    with pytest.raises(ValueError, match="bad.csv: no 'organisation' column"):
        read_intents(bad)


def test_not_a_corpus(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is not an intent corpus: expected data_full.json"):
        detect_format(tmp_path)
    with pytest.raises(ValueError, match="expected a CSV file"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="does not exist"):
        read_intents(tmp_path / "missing")


def synthetic_corpus(seed: int = 0, orgs: int = 3, intents: int = 12, utterances: int = 40) -> pa.Table:
    """Templated utterances: each intent has its own words, each organisation shared ones."""
    rng = random.Random(seed)
    templates = ["how do i {v} my {a} {b}", "can you {v} the {a} please", "i need to {v} {a} for my {b}",
                 "{a} {b} problem", "why can't i {v} my {b}", "help with {a}"]
    rows = []
    for o in range(orgs):
        for i in range(intents):
            verbs = [f"verb{o}x{i}", "change", f"act{o}x{i}"]
            nouns_a = [f"thing{o}x{i}", f"item{o}x{i}", "account"]
            nouns_b = [f"part{o}x{i}", f"piece{o}x{i}", f"shared{o}"]
            for _ in range(utterances):
                text = rng.choice(templates).format(v=rng.choice(verbs), a=rng.choice(nouns_a),
                                                    b=rng.choice(nouns_b))
                rows.append({"organisation": f"org{o}", "intent": f"intent_{i}", "text": text})
    return pa.Table.from_pylist(rows)


def check_sessions(sim: SimulatedSessions, max_questions: int = 3) -> dict[str, float]:
    """The simulator's invariants; returns the share of tag clicks on the next question's tags."""
    items = {r["item_id"]: r for r in sim.items.to_pylist()}
    vocab: dict[str, set[str]] = defaultdict(set)
    for item in items.values():
        vocab[item["organisation"]].update(item["tags"])
    sessions: dict[str, list[dict]] = defaultdict(list)
    for row in sim.interactions.to_pylist():
        sessions[row["session_id"]].append(row)
    assert len(sessions) == sim.stats.sessions
    on_target = tag_total = 0
    for events in sessions.values():
        org, user = events[0]["organisation"], events[0]["user_id"]
        assert all(e["organisation"] == org and e["user_id"] == user for e in events)
        times = [e["timestamp"] for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert events[-1]["event_type"] == "question_click"
        pending: list[str] = []
        asked = 0
        for e in events:
            if e["event_type"] == "tag_click":
                assert e["item_id"] is None and len(e["tags"]) == 1
                assert e["tags"][0] in vocab[org], (e, org)  # every clicked tag is the organisation's
                pending.append(e["tags"][0])
            else:
                assert e["event_type"] == "question_click" and e["tags"] == []
                assert items[e["item_id"]]["organisation"] == org
                own = set(items[e["item_id"]]["tags"])
                on_target += sum(t in own for t in pending)
                tag_total += len(pending)
                pending = []
                asked += 1
        assert 1 <= asked <= max_questions
    return {"on_target": on_target / tag_total}


def test_simulation_invariants_and_statistics() -> None:
    sim = simulate_sessions(synthetic_corpus(), seed=3, n_sessions=3_000)
    stats = sim.stats
    assert (stats.organisations, stats.questions, stats.sessions) == (3, 36, 3_000)
    shares = check_sessions(sim)
    assert 0.9 < shares["on_target"] < 0.99  # the rest is the noise
    assert abs(stats.tag_clicks_per_session - 2.9) < 0.25
    assert abs(stats.questions_per_session - 1.5) < 0.1
    assert 0.03 < stats.noise_share < 0.07
    counts = [len(t) for t in sim.items.column("tags").to_pylist()]
    assert min(counts) >= 3 and max(counts) <= 8 and stats.tags_per_question == sum(counts) / len(counts)
    assert sim.interactions.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    # Popularity is Zipf per organisation: the top question is asked far more than the median one.
    asked = defaultdict(int)
    for item in sim.interactions.column("item_id").to_pylist():
        if item is not None:
            asked[item] += 1
    ranked = sorted(asked.values(), reverse=True)
    assert ranked[0] > 3 * ranked[len(ranked) // 2]


def test_simulation_is_seeded() -> None:
    corpus = synthetic_corpus(orgs=2, intents=6, utterances=15)
    a = simulate_sessions(corpus, seed=7, n_sessions=300)
    b = simulate_sessions(corpus, seed=7, n_sessions=300)
    assert a.items.equals(b.items) and a.interactions.equals(b.interactions) and a.stats == b.stats
    c = simulate_sessions(corpus, seed=8, n_sessions=300)
    assert not c.interactions.equals(a.interactions)
    assert c.items.column("tags").equals(a.items.column("tags"))  # mining has no randomness


def test_simulation_options() -> None:
    corpus = synthetic_corpus(orgs=1, intents=8, utterances=20)
    quiet = simulate_sessions(corpus, seed=0, n_sessions=500, noise=0.0, questions_per_session=(1.0,),
                              tag_clicks_per_session=2.0)
    assert check_sessions(quiet, max_questions=1)["on_target"] == 1.0
    assert quiet.stats.noise_share == 0.0 and quiet.stats.questions_per_session == 1.0
    assert abs(quiet.stats.tag_clicks_per_session - 2.0) < 0.2
    with pytest.raises(ValueError, match="noise in"):
        simulate_sessions(corpus, noise=1.5)
    with pytest.raises(ValueError, match="expected"):
        simulate_sessions(corpus.rename_columns(["org", "intent", "text"]))
    with pytest.raises(ValueError, match="no utterances"):
        simulate_sessions(corpus.slice(0, 0))


def test_tag_mining_rule() -> None:
    corpus = pa.Table.from_pylist([{"organisation": "bank", "intent": i, "text": t} for i, t in [
        ("pin", "How do I change my PIN?"), ("pin", "change pin code please"),
        ("pin", "I want to change the pin code"), ("pin", "reset my pin"),
        ("card", "I lost my credit card"), ("card", "credit card stolen"),
        ("card", "my credit card was stolen yesterday"), ("card", "lost card"),
        ("hello", "hi"), ("hello", "hello there"),
    ]])  # fmt: skip
    items = {r["item_id"]: r for r in simulate_sessions(corpus, seed=0, n_sessions=10).items.to_pylist()}
    pin, card, hello = items["bank/pin"], items["bank/card"], items["bank/hello"]
    # By support x idf; "reset" (1 of 4 utterances) does not qualify, and 3 tags are enough.
    assert pin["tags"] == ["pin", "change", "code"]
    assert pin["text"] == "change pin code please"  # not longer than the median, most tags
    # "credit card" (3 utterances) ties with "credit": the pair wins, and its word is left out.
    assert card["tags"] == ["card", "credit card", "lost", "stolen"]
    assert hello == {"item_id": "bank/hello", "organisation": "bank", "text": "hi",
                     "tags": ["hello"]}  # no content word: the intent's name


def test_convert_writes_both_tables(tmp_path: Path) -> None:
    data = convert(nlupp(tmp_path), tmp_path / "out", n_sessions=50, seed=1)
    assert data.format == "nlu-plus-plus" and data.stats.sessions == 50
    assert list(data.paths) == [DatasetKind.ITEMS, DatasetKind.INTERACTIONS]
    items = pq.read_table(data.items)
    assert_matches_schema(items, data.schemas[DatasetKind.ITEMS])
    assert items.column("item_id").to_pylist() == ["banking/how_long+new+pin", "banking/card+lost_stolen",
                                                   "hotels/pets"]
    inter = pq.read_table(data.interactions)
    schema = data.schemas[DatasetKind.INTERACTIONS]
    assert inter.column_names == [f.name for f in schema.fields]
    assert schema.field_for(Role.SESSION_ID).name == "session_id"
    assert schema.field_for(Role.TAGS).name == "tags"
    assert inter.num_rows == data.num_rows[DatasetKind.INTERACTIONS]
    assert inter.column("item_id").null_count > 0  # the tag clicks
    assert {f.name: f.type.value for f in data.schemas[DatasetKind.ITEMS].fields}["text"] == "text"


_REAL = {"clinc150": (22_500, 10, 150), "banking77": (13_083, 1, 77), "nlu-plus-plus": (2_718, 2, 1_051)}


@pytest.mark.parametrize("name", sorted(_REAL))
def test_real_corpora(name: str) -> None:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real intent corpus not present at {folder} (licensed data, not in the repo)")
    utterances, organisations, questions = _REAL[name]
    corpus = read_intents(folder)
    assert detect_format(folder) == name and corpus.num_rows == utterances
    sim = simulate_sessions(corpus, seed=0, n_sessions=2_000)
    stats = sim.stats
    assert (stats.organisations, stats.questions) == (organisations, questions)
    check_sessions(sim)
    assert abs(stats.tag_clicks_per_session - 2.9) < 0.3  # IntelliTag's Table II
    assert abs(stats.questions_per_session - 1.5) < 0.1
    assert 3 <= stats.tags_per_question <= 8
