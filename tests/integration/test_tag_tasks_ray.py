"""The user-tags and item-tags baselines through the real platform on a local Ray cluster: a
HetRec-shaped tag-assignment dataset imported through the SDK, a solution per recipe, versions
trained without a Ray Train worker group and evaluated by their task's protocol, one campaign per
recipe answering `recommend_tags` over HTTP (known and unknown users and items)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Query
from sdk import Status
from sdk.types import DatasetKind, EvaluationConfig
from tests.conftest import Platform, unique
from tests.unit.test_user_item_tags import SCHEMA, SCHEMAS, hetrec_like
from training_jobs.evaluation.protocols import get_protocol
from training_jobs.loop import fit_in_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVALUATION = {"min_test_users": 20, "holdout_last": 3}


@pytest.fixture(scope="module")
def deployed(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    client = ray_platform.client()
    table = hetrec_like(seed=7, n_users=100, n_items=60, n_events=2500)
    path = tmp_path_factory.mktemp("tags") / "interactions.parquet"
    pq.write_table(table, path)
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=SCHEMA)
    client.dataset_import_jobs.create_and_wait(group, dataset="interactions", source=str(path),
                                               poll_interval=0.2)
    versions = {}
    for solution, recipe in (("profiles", "tag-popularity"), ("item-tags", "item-tag-frequency")):
        client.solutions.create(group, name=solution, recipe=recipe, evaluation=EVALUATION)
        versions[solution] = client.solution_versions.create(group, solution=solution)
    for solution, v in versions.items():
        versions[solution] = v = client.solution_versions.wait(group, solution, v.name, poll_interval=0.5,
                                                               timeout=300)
        assert v.status == Status.ACTIVE, v.failure_reason
    for solution, v in versions.items():  # one at a time: concurrent deploys race in Serve's pickling
        client.campaigns.create(group, name=solution, solution=solution, solution_version=v.name)
        c = client.campaigns.wait(group, solution, timeout=180)
        assert c.status == Status.ACTIVE, c.failure_reason
    yield client, group, versions, table
    for solution in versions:
        client.campaigns.delete(group, solution)


def test_versions_train_without_a_worker_group_and_are_evaluated_by_their_task(deployed) -> None:
    _, _, versions, _ = deployed
    for solution, protocol, baseline in (("profiles", "user-tag-holdout", "tag-popularity"),
                                         ("item-tags", "item-tag-holdout", "item-tag-frequency")):
        v = versions[solution]
        assert v.training["epochs"] == 0, v.training  # fitted by the featurizer: no Ray Train run
        assert v.evaluation["protocol"] == protocol and v.evaluation["test_users"] >= 20
        assert set(v.baselines) == {baseline}
        for key in ("precision@1", "precision_minrel@3", "recall@5", "ndcg@10", "hit@2", "mrr"):
            assert 0.0 <= v.metrics[key] <= 1.0, (solution, key)
        assert v.lift["mrr"] == pytest.approx(1.0)  # the baseline is the recipe itself
    item = versions["item-tags"]
    assert item.evaluation["cases"] > 20 and 0.0 <= item.metrics["full.mrr"] <= 1.0
    assert item.metrics["mrr"] > 0.2  # the planted item tags are found among ~8 candidates


def _served_offline(recipe: str, protocol: str, table: pa.Table):
    """The recipe fitted in process on the training part of the version's split (same data, same
    evaluation config): what the campaign must answer."""
    split = get_protocol(protocol).split({DatasetKind.INTERACTIONS: table}, SCHEMAS,
                                         EvaluationConfig(**EVALUATION))
    spec = get_recipe(recipe)
    return spec.predictor_cls(*fit_in_process(spec, {}, split.train, schemas=SCHEMAS))


def test_campaigns_recommend_tags(deployed) -> None:
    client, group, versions, table = deployed
    rows = table.to_pylist()
    by_user: dict[str, list[tuple]] = {}
    by_item: dict[str, set[str]] = {}
    for r in sorted(rows, key=lambda r: r["timestamp"]):
        by_user.setdefault(r["user_id"], []).append(
            (r["item_id"], r["timestamp"].timestamp(), r["event_type"], None, tuple(r["tags"])))
        by_item.setdefault(r["item_id"], set()).update(r["tags"])
    user = max(by_user, key=lambda u: len(by_user[u]))
    item = max(by_item, key=lambda i: len(by_item[i]))

    # user-tags: the user's own tags first; an unknown user gets the most used ones, flagged.
    offline = _served_offline("tag-popularity", "user-tag-holdout", table)
    r = client.campaigns.recommend_tags(group, "profiles", user_id=user, num_results=5)
    assert not r.fallback and r.solution_version == versions["profiles"].name
    own = offline.predict_batch([Query(history=by_user[user], num_results=5)])[0]
    assert [t.tag for t in r.tags] == own.ids
    assert r.tags[0].score > 1.0 and r.tags[0].tag in {t for e in by_user[user] for t in e[4]}
    r = client.campaigns.recommend_tags(group, "profiles", user_id="nobody-knows-me", num_results=3)
    top = offline.predict_batch([Query(num_results=3)])[0].ids
    assert r.fallback and [t.tag for t in r.tags] == top

    # item-tags: the item's own tags; candidates ranked; unknown users and items flagged.
    offline = _served_offline("item-tag-frequency", "item-tag-holdout", table)
    r = client.campaigns.recommend_tags(group, "item-tags", user_id=user, item_id=item, num_results=50)
    expected = offline.predict_batch([Query(history=by_user[user], item_id=item, num_results=50)])[0]
    assert not r.fallback and [t.tag for t in r.tags] == expected.ids and set(expected.ids) <= by_item[item]
    asked = [top[-1], r.tags[0].tag, "never-used"]
    ranked = client.campaigns.recommend_tags(group, "item-tags", user_id=user, item_id=item, tags=asked)
    assert [t.tag for t in ranked.tags][0] == r.tags[0].tag and {t.tag for t in ranked.tags} == set(asked)
    assert ranked.tags[-1].tag == "never-used" and ranked.tags[-1].score == 0.0
    r = client.campaigns.recommend_tags(group, "item-tags", user_id="nobody-knows-me", item_id=item,
                                        num_results=50)
    assert r.fallback and [t.tag for t in r.tags] == expected.ids
    r = client.campaigns.recommend_tags(group, "item-tags", user_id=user, item_id="no-such-item",
                                        num_results=3)
    assert r.fallback and [t.tag for t in r.tags] == top  # the same training split: the same counts
