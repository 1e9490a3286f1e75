"""Session tags through the real platform (loopback S3 store, local Ray, Serve over HTTP):
`tagrec import intents` of a small simulated corpus, a session-tag-popularity version evaluated
with session-holdout (no Ray Train worker group), a campaign answering next-tags, and real-time
tag clicks (no item) changing the next answer of their session."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sdk import Status
from tests.conftest import Platform, unique
from tests.integration.test_cli import run
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


def test_session_tags_import_train_deploy_and_real_time_tag_clicks(ray_platform: Platform,
                                                                   tmp_path: Path) -> None:
    corpus = write_csv(tmp_path / "corpus.csv", [["organisation", "intent", "text"]] + [
        [org, intent, text] for org, intents in CORPUS.items() for intent, texts in intents.items()
        for text in texts])
    group = unique("sessions")
    env = {**os.environ, "TAGREC_HOME": str(tmp_path / "home"), "TAGREC_BASE_URL": ray_platform.url,
           "TAGREC_API_KEY": ray_platform.key_a}
    proc = run(env, "-o", "json", "import", "intents", str(corpus), "-g", group, "--sessions", "400")
    jobs = json.loads(proc.stdout)
    assert [(j["dataset"], j["status"]) for j in jobs] == [("items", "ACTIVE"), ("interactions", "ACTIVE")]
    assert jobs[0]["progress"]["rows"] == 7 and jobs[1]["progress"]["rows"] > 1000
    assert "csv: 7 questions in 2 organisation(s)" in proc.stderr

    client = ray_platform.client()
    client.solutions.create(group, name="s", recipe="session-tag-popularity")
    v = client.solution_versions.create(group, solution="s")
    v = client.solution_versions.wait(group, "s", v.name, poll_interval=0.5, timeout=300)
    assert v.status == Status.ACTIVE, v.failure_reason
    assert v.training["epochs"] == 0  # count-based: fitted without a Ray Train worker group
    assert v.evaluation["protocol"] == "session-holdout" and v.evaluation["test_sessions"] == 40
    for key in ("hit@1", "hit@10", "ndcg@5", "mrr", "sampled_hit@10", "sampled_mrr"):
        assert 0 < v.metrics[key] <= 1, key
    assert v.baselines == {"session-tag-popularity": v.metrics}

    c = client.campaigns.create(group, name="c", solution="s", solution_version=v.name)
    c = client.campaigns.wait(group, "c", timeout=180)
    assert c.status == Status.ACTIVE, c.failure_reason
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
    client.campaigns.delete(group, "c")
