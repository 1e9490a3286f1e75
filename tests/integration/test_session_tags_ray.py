"""Session tags through the real platform (loopback S3 store, local Ray, Serve over HTTP):
`tagrec import intents` of a small simulated corpus, a session-tag-popularity version evaluated
with session-holdout (no Ray Train worker group), a campaign answering next-tags, and real-time
tag clicks (no item) changing the next answer of their session. On the same campaign: the
endpoint's boundaries, bad input per field a 400 naming it, and `tagrec campaigns next-tags` from
the CLI."""

from __future__ import annotations

import json
import time

import pytest

from sdk import Status
from tests.conftest import Platform, unique
from tests.integration.test_campaign_endpoint import (
    assert_exact_routes,
    assert_no_oracle,
    bad_inputs,
    cases,
    error_of,
    post,
)
from tests.integration.test_cli import platform_env, run, table_rows
from tests.unit.test_intents import write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# organisation -> intent -> utterances (the simulator mines each question's tags from them)
CORPUS = {
    "bank": {
        "pin": ["change my pin code", "reset the pin code", "forgot my pin code", "new pin code for my card",
                "pin code blocked"],
        "lost_card": ["lost my credit card", "credit card stolen", "block my lost credit card",
                      "report a stolen credit card", "my credit card is missing"],
        "balance": ["account balance please", "check my account balance", "balance of my savings account",
                    "what is my account balance", "show account balance"],
        "transfer": ["transfer money to savings", "send money transfer abroad", "money transfer limit",
                     "transfer money to a friend", "cancel a money transfer"],
    },
    "travel": {
        "book_flight": ["book a flight to paris", "book a cheap flight", "flight booking to rome",
                        "book flight tickets", "find a flight and book it"],
        "baggage": ["baggage allowance on my flight", "lost baggage at the airport", "extra baggage fee",
                    "carry on baggage size", "baggage claim delayed"],
        "hotel": ["book a hotel room", "hotel room near the airport", "cancel my hotel booking",
                  "hotel room with breakfast", "cheap hotel room downtown"],
    },
}


def _next_tags(client, group: str, **kw):
    return client.campaigns.next_tags(group, "c", num_results=5, **kw)


@pytest.fixture(scope="module")
def deployed(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    """`tagrec import intents` of the corpus, a session-tag-popularity version, its campaign "c"."""
    tmp = tmp_path_factory.mktemp("sessions")
    corpus = write_csv(tmp / "corpus.csv", [["organisation", "intent", "text"]] + [
        [org, intent, text] for org, intents in CORPUS.items() for intent, texts in intents.items()
        for text in texts])
    group = unique("sessions")
    env = platform_env(ray_platform, tmp / "home")
    imported = run(env, "-o", "json", "import", "intents", str(corpus), "-g", group, "--sessions", "400")
    client = ray_platform.client()
    client.solutions.create(group, name="s", recipe="session-tag-popularity")
    v = client.solution_versions.create(group, solution="s")
    v = client.solution_versions.wait(group, "s", v.name, poll_interval=0.5, timeout=300)
    assert v.status == Status.ACTIVE, v.failure_reason
    client.campaigns.create(group, name="c", solution="s", solution_version=v.name)
    c = client.campaigns.wait(group, "c", timeout=180)
    assert c.status == Status.ACTIVE, c.failure_reason
    yield client, group, v, c.endpoint, env, imported
    client.campaigns.delete(group, "c")


def test_session_tags_import_train_deploy_and_real_time_tag_clicks(deployed) -> None:
    client, group, v, _, _, proc = deployed
    jobs = json.loads(proc.stdout)
    assert [(j["dataset"], j["status"]) for j in jobs] == [("items", "ACTIVE"), ("interactions", "ACTIVE")]
    assert jobs[0]["progress"]["rows"] == 7 and jobs[1]["progress"]["rows"] > 1000
    assert "csv: 7 questions in 2 organisation(s)" in proc.stderr

    assert v.training["epochs"] == 0  # count-based: fitted without a Ray Train worker group
    assert v.evaluation["protocol"] == "session-holdout" and v.evaluation["test_sessions"] == 40
    for key in ("hit@1", "hit@10", "ndcg@5", "mrr", "sampled_hit@10", "sampled_mrr"):
        assert 0 < v.metrics[key] <= 1, key
    assert v.baselines == {"session-tag-popularity": v.metrics}

    # A new session: the organisation's most clicked tags, flagged fallback.
    fresh = _next_tags(client, group, session_id="fresh", organisation="bank")
    assert fresh.fallback and len(fresh.tags) == 5 and fresh.solution_version == v.name
    tag = fresh.tags[0].tag
    # A click sent with the request: not fallback, the clicked tag left out, questions holding it.
    clicked = _next_tags(client, group, session_id="with-events", organisation="bank", events=[{"tag": tag}])
    assert not clicked.fallback and tag not in {t.tag for t in clicked.tags}
    assert clicked.questions and all(q.item_id.startswith("bank/") for q in clicked.questions)
    # The same click as a real-time event (a tag click: no item) changes that session's next answer.
    before = _next_tags(client, group, session_id="live", organisation="bank")
    assert before.fallback
    ack = client.events.put(group, user_id="customer-1", session_id="live", events=[{"tags": [tag]}])
    assert ack.accepted == 1
    deadline = time.monotonic() + 60
    after = _next_tags(client, group, session_id="live", organisation="bank")
    while after.fallback and time.monotonic() < deadline:
        time.sleep(0.5)
        after = _next_tags(client, group, session_id="live", organisation="bank")
    assert not after.fallback
    assert [t.tag for t in after.tags] == [t.tag for t in clicked.tags]
    assert [t.tag for t in after.tags] != [t.tag for t in before.tags]
    # Without the organisation, the session's click names it.
    inferred = _next_tags(client, group, session_id="live")
    assert [t.tag for t in inferred.tags] == [t.tag for t in after.tags]


# --- the endpoint's boundaries and bad input, over raw HTTP; the CLI --------------------------

LONG = "x" * 257  # one character over the 256 of an id
S = {"session_id": "s1"}
NEXT_TAGS_BAD = [  # (body, the field its 400 names)
    ({}, "session_id"), *cases({}, "session_id", None, 7, "", LONG, ["s1"]),
    *cases(S, "organisation", "", LONG, 3, ["bank"]),
    *cases(S, "text", ["pin"], 5, "w" * 32_001),
    *cases(S, "events", "pin", {"tag": "pin"}, [{"tag": "pin"}] * 51),
    *cases(S, "events", [{}], [{"tag": "pin", "item_id": "bank/pin"}], ["pin"], [None], named="events.0"),
    *cases(S, "events", [{"tag": ""}], [{"tag": LONG}], [{"tag": 3}], named="events.0.tag"),
    *cases(S, "events", [{"tag": "pin"}, {"item_id": ""}], named="events.1.item_id"),
    *cases(S, "events", [{"tag": "pin", "timestamp": -1}], [{"tag": "pin", "timestamp": 1e400}],
           [{"tag": "pin", "timestamp": "yesterday"}], named="events.0.timestamp"),
    *cases(S, "events", [{"tag": "pin", "tags": ["pin"]}], named="events.0.tags"),  # events.put's spelling
    *cases(S, "num_results", 0, -1, 101, "five", 2.5, None),
    *cases(S, "num_questions", -1, 51, "three", 0.5),
    *cases(S, "user_id", "u1"), *cases(S, "organization", "bank"), *cases(S, "tags", ["pin"]),
]


def test_the_campaign_is_no_oracle_and_serves_only_next_tags(deployed, ray_platform: Platform) -> None:
    _, _, v, endpoint, _, _ = deployed
    assert_no_oracle(ray_platform, endpoint, {"session_id": "s1", "user_id": "u1"})
    assert_exact_routes(ray_platform, endpoint, v.name, "session-tags",
                        {"next-tags": {"session_id": "routes", "organisation": "bank"}})


def test_next_tags_bad_input_is_a_400_naming_the_field(deployed, ray_platform: Platform) -> None:
    assert bad_inputs(ray_platform, deployed[3], "next-tags", NEXT_TAGS_BAD) == {}
    _, answer = post(ray_platform, deployed[3], "next-tags", {**S, "events": [{}]})
    assert "tag and item_id" in error_of(answer)["message"], answer


def test_validation_messages_are_plain_words(deployed, ray_platform: Platform) -> None:
    _, answer = post(ray_platform, deployed[3], "next-tags", {**S, "events": [{}]})
    assert error_of(answer)["message"] == "events.0: give exactly one of tag and item_id", answer


def test_the_cli_offers_next_tags(deployed, ray_platform: Platform) -> None:
    """`tagrec campaigns next-tags` answers as the SDK does, as JSON and as tables of the tags and
    the questions in order (the version on stderr, and the fallback of a new session)."""
    from tagrec.cli import _number

    client, group, v, _, env, _ = deployed
    tag = _next_tags(client, group, session_id="cli-fresh", organisation="bank").tags[0].tag
    sdk = _next_tags(client, group, session_id="cli", organisation="bank", events=[{"tag": tag}])
    assert sdk.questions and not sdk.fallback
    args = ["campaigns", "next-tags", "-g", group, "c", "--session", "cli", "--organisation", "bank",
            "--tag", tag, "-k", "5"]
    assert json.loads(run(env, "-o", "json", *args).stdout) == sdk.model_dump(mode="json")
    shown = run(env, *args)
    rows = table_rows(shown.stdout, "tag", *(t.tag for t in sdk.tags), "question",
                      *(q.item_id for q in sdk.questions))
    assert -1 not in rows and rows == sorted(rows), shown.stdout
    lines = shown.stdout.splitlines()
    scored = [*zip(sdk.tags, rows[1:]), *zip(sdk.questions, rows[len(sdk.tags) + 2:])]
    assert all(f" {_number(x.score)} " in lines[n] for x, n in scored), shown.stdout
    assert f"version {v.name}" in shown.stderr and "fallback" not in shown.stderr, shown.stderr
    fresh = run(env, "campaigns", "next-tags", "-g", group, "c", "--session", "cli-new", "--questions", "0")
    assert "question" not in fresh.stdout and "fallback" in fresh.stderr, (fresh.stdout, fresh.stderr)
    wrong = run(env, "campaigns", "recommend-tags", "-g", group, "c", "-u", "u1", check=False)
    assert wrong.returncode != 0 and "wrong_task" in wrong.stderr.strip().splitlines()[-1], wrong.stderr
