"""SOG through the real platform on a local Ray cluster (loopback S3 store, Serve over HTTP): the
planted Stack-Exchange-shaped CSV of test_tag_set_ray converted by `sdk.stackexchange` and imported
through the SDK, a `sog` solution with a tiny encoder whose version is trained by a Ray Train worker
group and evaluated by post-holdout next to tag-cooccurrence, and its campaign answering
`generate-tags` over HTTP from a text, named fields and a stored item's id (as the version's own
artifact answers in this process), completing a set around chosen tags; another tenant gets a 404,
bad input a 400 naming the field (a body over the request limit a 413), and `tagrec campaigns
generate-tags --text` prints the tags."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recipes.base import Query
from sdk import NotFoundError, Status
from sdk.stackexchange import convert
from sdk.types import DatasetKind
from tests.conftest import Platform, unique
from tests.integration.test_batch_inference_ray import _predictor
from tests.integration.test_campaign_endpoint import bad_inputs, cases, error_of, post
from tests.integration.test_cli import platform_env, run, table_rows
from tests.integration.test_tag_set_ray import GENERATE_TAGS_BAD, TOPICS, stackexchange_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64, "vocab_size": 300,
        "max_length": 48, "epochs": 2, "batch_size": 16}
TEXT = "my ros node does not see the topic after launch"


@pytest.fixture(scope="module")
def deployed(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sog")
    data = convert(stackexchange_csv(tmp / "csv"), tmp / "out")
    client = ray_platform.client()
    group = unique("sog")
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="items", schema=data.schemas[DatasetKind.ITEMS])
    client.dataset_import_jobs.create_and_wait(group, dataset="items", source=str(data.items),
                                               poll_interval=0.2)
    client.solutions.create(group, name="posts", recipe="sog", hyperparameters=TINY,
                            evaluation={"min_test_users": 30})
    v = client.solution_versions.create(group, solution="posts")
    v = client.solution_versions.wait(group, "posts", v.name, poll_interval=0.5, timeout=900)
    assert v.status == Status.ACTIVE, v.failure_reason
    client.campaigns.create(group, name="tags", solution="posts", solution_version=v.name)
    c = client.campaigns.wait(group, "tags", timeout=300)
    assert c.status == Status.ACTIVE, c.failure_reason
    offline = _predictor(ray_platform, v, tmp / "model")  # the artifact the campaign serves
    yield client, group, v, data, offline
    client.campaigns.delete(group, "tags")
    client.dataset_groups.delete(group, force=True)


def test_sog_trains_on_ray_train_and_is_evaluated_next_to_tag_cooccurrence(deployed) -> None:
    _, _, v, _, _ = deployed
    assert v.recipe == "sog" and {k: v.hyperparameters[k] for k in TINY} == TINY
    assert v.training["epochs"] >= 1 and v.training["validation"]["scores"], v.training  # a worker group ran
    assert v.training["refit"]["epochs"] >= 1, v.training
    assert v.evaluation["protocol"] == "post-holdout" and v.evaluation["test_posts"] == 30, v.evaluation
    assert set(v.baselines) == {"tag-cooccurrence"}
    baseline = v.baselines["tag-cooccurrence"]
    for key in ("precision@1", "recall@3", "f1@5", "ndcg@5", "hit@1", "mrr"):
        assert 0.0 <= v.metrics[key] <= 1.0 and 0.0 <= baseline[key] <= 1.0, key
    assert set(v.lift) <= set(v.metrics) and v.lift, v.lift


def _tags(answer) -> list[str]:
    return [t.tag for t in answer.tags]


def test_the_campaign_generates_tags_from_text_fields_and_a_stored_item(deployed) -> None:
    client, group, v, data, offline = deployed
    r = client.campaigns.generate_tags(group, "tags", text=TEXT, num_results=3)
    assert not r.fallback and r.solution_version == v.name
    assert len(r.tags) == 3 and len(set(_tags(r))) == 3 and set(_tags(r)) <= set(TOPICS), r
    scores = [t.score for t in r.tags]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s <= 1.0 for s in scores), scores
    assert _tags(r) == offline.predict_batch([Query(text=TEXT, num_results=3)])[0].ids

    row = pq.read_table(data.items).slice(7, 1).to_pylist()[0]
    fields = {"title": row["title"], "content": row["content"]}
    by_fields = client.campaigns.generate_tags(group, "tags", fields=fields)
    assert not by_fields.fallback and len(by_fields.tags) == 5
    assert _tags(by_fields) == offline.predict_batch([Query(fields=fields, num_results=5)])[0].ids
    by_id = client.campaigns.generate_tags(group, "tags", item_id=row["item_id"])  # its stored text
    assert not by_id.fallback and _tags(by_id) == _tags(by_fields)
    assert client.campaigns.generate_tags(group, "tags", item_id="no-such-post").fallback


def test_the_set_is_completed_around_chosen_tags(deployed) -> None:
    client, group, _, _, offline = deployed
    for chosen in (["ros"], ["ros", "lidar"]):
        r = client.campaigns.generate_tags(group, "tags", text=TEXT, chosen=chosen, num_results=3)
        assert not r.fallback and len(r.tags) == 3 and not set(_tags(r)) & set(chosen), (chosen, r)
        assert _tags(r) == offline.predict_batch([Query(text=TEXT, chosen=chosen, num_results=3)])[0].ids
    every = client.campaigns.generate_tags(group, "tags", text=TEXT, chosen=list(TOPICS)[:4], num_results=3)
    assert _tags(every) == [list(TOPICS)[4]], every  # one tag is left to add


def test_another_tenants_campaign_is_a_404(deployed, ray_platform: Platform) -> None:
    _, group, v, _, _ = deployed
    other = ray_platform.client(ray_platform.key_b)
    with pytest.raises(NotFoundError):
        other.campaigns.generate_tags(group, "tags", text=TEXT)
    with pytest.raises(NotFoundError):
        other.solution_versions.retrieve(group, "posts", v.name)


def _endpoint(deployed) -> str:
    client, group, _, _, _ = deployed
    return client.campaigns.retrieve(group, "tags").endpoint


def test_bad_input_is_a_4xx_naming_what_was_wrong(deployed, ray_platform: Platform) -> None:
    endpoint = _endpoint(deployed)
    mine = [({"text": ""}, None), *cases({"text": TEXT}, "num_results", 0, 101),
            *cases({"text": TEXT}, "chosen", [f"t{i}" for i in range(51)])]
    assert bad_inputs(ray_platform, endpoint, "generate-tags", mine + GENERATE_TAGS_BAD) == {}
    status, answer = post(ray_platform, endpoint, "generate-tags", {"text": ""})
    assert status == 400 and all(n in error_of(answer)["message"] for n in ("text", "fields", "item_id"))
    status, answer = post(ray_platform, endpoint, "generate-tags", {"text": "w" * (1 << 20)})  # 1 MB
    error = error_of(answer)
    assert (status, error.get("type")) == (413, "payload_too_large"), answer[:300]
    assert error["message"] == "request body exceeds 65536 bytes", error
    for raw, at in ((b'\xff\xfe{"text": "a ros node"}', 0), (b'{"text": "a ros \xff\xfe node"}', 16)):
        status, answer = post(ray_platform, endpoint, "generate-tags", raw)  # not UTF-8
        error = error_of(answer)
        assert (status, error.get("type")) == (400, "invalid_json"), (raw, answer[:300])
        assert error["message"].startswith(f"request body is not UTF-8: byte 0xff at position {at} "), error
    status, answer = post(ray_platform, endpoint, "generate-tags", {"text": TEXT, "num_results": 101})
    assert "num_results" in error_of(answer)["message"] and "100" in error_of(answer)["message"], answer


def test_the_cli_generates_tags_from_text(deployed, ray_platform: Platform, tmp_path: Path) -> None:
    client, group, v, _, _ = deployed
    env = platform_env(ray_platform, tmp_path / "home")
    args = ["campaigns", "generate-tags", "-g", group, "tags", "--text", TEXT, "-k", "3"]
    sdk = client.campaigns.generate_tags(group, "tags", text=TEXT, num_results=3)
    assert json.loads(run(env, "-o", "json", *args).stdout) == sdk.model_dump(mode="json")
    shown = run(env, *args)
    rows = table_rows(shown.stdout, "tag", *_tags(sdk))
    assert -1 not in rows and rows == sorted(rows), shown.stdout
    assert f"version {v.name}" in shown.stderr and "fallback" not in shown.stderr, shown.stderr
