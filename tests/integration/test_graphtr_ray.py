"""GraphTR through the real platform: `tagrec -o json quickstart --data hetrec:DIR --recipe graphtr
--evaluation item-tag-holdout` on a local Ray cluster (loopback S3 store, Serve over HTTP). A HetRec
MovieLens-2k folder is written here in its real layout with planted tastes (test_graphtr's: each user
tags one topic's movies with its tags; four "bridge" movies belong to two topics); one version is
trained by a Ray Train worker group, evaluated by the item-tag holdout next to item-tag-frequency,
deployed, and asked: one bridge movie's tags for two users of its two topics (each gets their own
topic's first), tag events posted in real time move the answer at the next request, an unknown user
gets the flagged fallback, another tenant a 404, bad input a 400 naming the field.
"""

from __future__ import annotations

import json

import pytest

from sdk import NotFoundError
from tests.conftest import Platform, unique
from tests.integration.test_campaign_endpoint import bad_inputs
from tests.integration.test_cli import platform_env, run
from tests.integration.test_tag_tasks_ray import RECOMMEND_TAGS_BAD
from tests.unit.test_graphtr import TOPICS, candidates, planted_hetrec, topic_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_USERS = 60
SETS = {"hidden_dim": 16, "heads": 2, "field_dims": 8, "first_samples": 5, "second_samples": 3,
        "negatives": 5, "batch_size": 128, "epochs": 3,
        "candidate_prior": 0.0}  # §4.1's cosine alone: the planted tastes, not the planted counts, rank


@pytest.fixture(scope="module")
def quickstarted(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("graphtr")
    folder = planted_hetrec(root, n_users=N_USERS, n_movies=40, per_user=30)
    group = unique("graphtr")
    proc = run(platform_env(ray_platform, root / "home"), "-o", "json", "quickstart",
               "--data", f"hetrec:{folder}", "--recipe", "graphtr", "--evaluation", "item-tag-holdout",
               "--group", group, "--keep",
               *(a for k, v in SETS.items() for a in ("--set", f"{k}={v}")))
    client = ray_platform.client()
    yield client, group, json.loads(proc.stdout)
    client.campaigns.delete(group, "quickstart")
    client.dataset_groups.delete(group, force=True)


def ask(client, group: str, user: str, item: str, **kw):
    """The quickstart campaign's recommend-tags answer for a user and an item."""
    return client.campaigns.recommend_tags(group, "quickstart", user_id=user, item_id=item, **kw)


def test_graphtr_trains_on_ray_train_and_is_evaluated_next_to_item_tag_frequency(quickstarted) -> None:
    _, _, result = quickstarted
    assert (result["task"], result["recipe"]) == ("item-tags", "graphtr")
    assert set(result["datasets"]) == {"interactions", "items"}
    hyperparameters = result["hyperparameters"]
    assert hyperparameters["hidden_dim"] == 16 and hyperparameters["creator_field"] == "directors"
    ev = result["evaluation"]
    assert ev["protocol"] == "item-tag-holdout" and ev["test_users"] == N_USERS and ev["cases"] > N_USERS, ev
    training = result["training"]
    assert training["epochs"] >= 1 and training["validation"]["scores"], training  # a worker group ran
    assert set(result["baselines"]) == {"item-tag-frequency"}
    model, baseline = result["metrics"], result["baselines"]["item-tag-frequency"]
    for key in ("hit@1", "hit@2", "mrr"):  # ~3.4 candidates a case: the bridges are where taste matters
        assert 0.0 < model[key] <= 1.0 and 0.0 < baseline[key] <= 1.0, (model, baseline)
        assert result["lift"][key] == pytest.approx(model[key] / baseline[key])
    demo = result["serving"]
    assert demo["item"] and len(demo["tags_for_users"]) == 2 and all(demo["tags_for_users"].values()), demo


def test_each_user_gets_their_topics_tags_of_a_bridge_first(quickstarted) -> None:
    client, group, _ = quickstarted
    bridge = "3"  # drama and horror
    for user in ("2", "3"):  # drama, horror
        mine = candidates(bridge, int(user) % len(TOPICS))
        r = ask(client, group, user, bridge, num_results=10)
        assert not r.fallback and {t.tag for t in r.tags[:len(mine)]} == mine, (user, [t.tag for t in r.tags])


def test_tag_events_count_at_the_next_request(quickstarted) -> None:
    client, group, _ = quickstarted
    user, bridge = "2", "2"  # drama; movie 2 is comedy and drama
    comedy = sorted(candidates(bridge, topic_of(int(bridge))))
    before = ask(client, group, user, bridge, num_results=10)
    client.events.put(group, user_id=user, session_id="s", events=[
        {"item_id": bridge, "event_type": "tag", "tags": [comedy[k % len(comedy)]],
         "timestamp": 2_000_000_000 + k, "event_id": f"comedy-{k}"} for k in range(10)])
    after = ask(client, group, user, bridge, num_results=10)

    def first_comedy(answer) -> int:
        return min(k for k, t in enumerate(answer.tags) if t.tag in comedy)

    assert not after.fallback and first_comedy(after) < first_comedy(before), (
        [t.tag for t in before.tags], [t.tag for t in after.tags])


def test_unknown_users_other_tenants_and_bad_input(quickstarted, ray_platform: Platform) -> None:
    client, group, result = quickstarted
    r = ask(client, group, "nobody-knows-me", "5")
    assert r.fallback and {t.tag for t in r.tags} == candidates("5", topic_of(5))
    r = ask(client, group, "1", "no-such-movie", num_results=3)
    assert r.fallback and len(r.tags) == 3
    other = ray_platform.client(ray_platform.key_b)
    with pytest.raises(NotFoundError):
        other.campaigns.recommend_tags(group, "quickstart", user_id="1", item_id="5")
    with pytest.raises(NotFoundError):
        other.solution_versions.retrieve(group, "quickstart", result["solution_version"])
    endpoint = client.campaigns.retrieve(group, "quickstart").endpoint
    assert bad_inputs(ray_platform, endpoint, "recommend-tags", RECOMMEND_TAGS_BAD) == {}
