"""The user-tags and item-tags baselines through the real platform on a local Ray cluster: a
HetRec-shaped tag-assignment dataset imported through the SDK, a solution per recipe, versions
trained without a Ray Train worker group and evaluated by their task's protocol, one campaign per
recipe answering `recommend_tags` over HTTP (known and unknown users and items). On the same two
campaigns: the endpoint's boundaries (test_campaign_endpoint's helpers: no oracle, only
recommend-tags, another task's verb a 400 wrong_task), bad input per field a 400 naming it, and
`tagrec campaigns recommend-tags --item` from the CLI."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Query
from sdk import Status
from sdk.types import DatasetKind, EvaluationConfig
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


# --- the endpoint's boundaries and bad input, over raw HTTP; the CLI --------------------------

LONG = "x" * 257  # one character over the 256 of every id
U = {"user_id": "u"}
RECOMMEND_TAGS_BAD = [  # (body, the field its 400 names)
    ({}, "user_id"), *cases({}, "user_id", None, 5, "", LONG, ["u1"]),
    *cases(U, "item_id", "", 3, LONG),
    *cases(U, "tags", [], "pixar", ["t"] * 501), *cases(U, "tags", [""], [LONG], named="tags.0"),
    *cases(U, "tags", ["a", 7], named="tags.1"),
    *cases(U, "num_results", 0, -1, 501, "ten", "5", True, 2.5, 1e308, [1], None),
    *cases(U, "exclude_seen", "maybe", 2),
    *cases(U, "context", [], {"timestamp": "now"}, {"timestamp": -1}, {"timestamp": 1e400},
           {f"k{i}": 1 for i in range(33)}),
    *cases(U, "user", "u"), *cases(U, "num_result", 3),
    *cases(U, "text", "a post"),  # generate-tags' field: the requests are strict
]


def _endpoints(deployed) -> dict[str, str]:
    client, group, _, _ = deployed
    return {name: client.campaigns.retrieve(group, name).endpoint for name in ("profiles", "item-tags")}


def test_tag_campaigns_are_no_oracle_and_serve_only_recommend_tags(deployed, ray_platform: Platform) -> None:
    _, _, versions, table = deployed
    user, item = table.column("user_id")[0].as_py(), table.column("item_id")[0].as_py()
    for (name, endpoint), task in zip(_endpoints(deployed).items(), ("user-tags", "item-tags")):
        assert_no_oracle(ray_platform, endpoint, {"user_id": user, "item_id": item})
        assert_exact_routes(ray_platform, endpoint, versions[name].name, task,
                            {"recommend-tags": {"user_id": user, "item_id": item, "num_results": 3}})


def test_recommend_tags_bad_input_is_a_400_naming_the_field(deployed, ray_platform: Platform) -> None:
    for name, endpoint in _endpoints(deployed).items():
        assert bad_inputs(ray_platform, endpoint, "recommend-tags", RECOMMEND_TAGS_BAD) == {}, name


def test_a_huge_context_timestamp_is_a_400(deployed, ray_platform: Platform) -> None:
    endpoint = _endpoints(deployed)["profiles"]
    assert bad_inputs(ray_platform, endpoint, "recommend-tags",
                      [({"user_id": "u", "context": {"timestamp": 10**400}}, "context")]) == {}


def test_validation_messages_are_plain_words(deployed, ray_platform: Platform) -> None:
    _, answer = post(ray_platform, _endpoints(deployed)["profiles"], "recommend-tags",
                     {"user_id": "u", "context": {"timestamp": "now"}})
    assert error_of(answer)["message"].startswith("context: context.timestamp must be epoch seconds"), answer


def test_a_context_value_of_another_type_names_its_key(deployed, ray_platform: Platform) -> None:
    _, answer = post(ray_platform, _endpoints(deployed)["profiles"], "recommend-tags",
                     {"user_id": "u", "context": {"a": [1]}})
    assert error_of(answer)["field"] == "context.a", answer


def test_the_cli_ranks_an_items_tags(deployed, ray_platform: Platform, tmp_path) -> None:
    """`tagrec campaigns recommend-tags --item` (item-tags) answers as the SDK does, as JSON and as
    a table of the tags in order, the version on stderr; `--tag` ranks only those."""
    from tagrec.cli import _number

    client, group, versions, table = deployed
    env = platform_env(ray_platform, tmp_path / "home")
    user = table.column("user_id")[0].as_py()
    item = max(pc.value_counts(table.column("item_id")).to_pylist(), key=lambda c: c["counts"])["values"]
    sdk = client.campaigns.recommend_tags(group, "item-tags", user_id=user, item_id=item, num_results=4)
    assert len(sdk.tags) == 4 and not sdk.fallback
    args = ["campaigns", "recommend-tags", "-g", group, "item-tags", "-u", user, "--item", item]
    assert json.loads(run(env, "-o", "json", *args, "-k", "4").stdout) == sdk.model_dump(mode="json")
    shown = run(env, *args, "-k", "4")
    rows = table_rows(shown.stdout, *(t.tag for t in sdk.tags))
    assert -1 not in rows and rows == sorted(rows), shown.stdout
    lines = shown.stdout.splitlines()
    assert all(f" {_number(t.score)} " in lines[n] for t, n in zip(sdk.tags, rows)), shown.stdout
    assert f"version {versions['item-tags'].name}" in shown.stderr and "fallback" not in shown.stderr
    asked = [sdk.tags[-1].tag, "never-used", sdk.tags[0].tag]
    ranked = client.campaigns.recommend_tags(group, "item-tags", user_id=user, item_id=item, tags=asked)
    cli = json.loads(run(env, "-o", "json", *args, *(a for t in asked for a in ("--tag", t))).stdout)
    assert cli == ranked.model_dump(mode="json") and cli["tags"][-1]["tag"] == "never-used"
    unknown = run(env, *args[:-1], "no-such-item")
    assert "fallback" in unknown.stderr, unknown.stderr
