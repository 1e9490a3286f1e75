"""The tag-set baseline through the real platform on a local Ray cluster: a Stack-Exchange-shaped
CSV converted by `sdk.stackexchange` and imported through the SDK as an items dataset (no
interactions dataset at all), a tag-cooccurrence solution whose version trains without a Ray Train
worker group and is evaluated by post-holdout, and a campaign answering `generate_tags` over HTTP
from a text, from a stored item's id, with chosen tags, and with its fallback. On the same
campaign: the endpoint's boundaries, bad input per field a 400 naming it, and `tagrec campaigns
generate-tags` from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Query
from sdk import BadRequestError, Status
from sdk.stackexchange import convert
from sdk.types import DatasetKind
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
from tests.unit.test_stackexchange import write_csv
from training_jobs.loop import fit_in_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVALUATION = {"min_test_users": 30}
TOPICS = {"arduino": "sketch uno pin serial", "ros": "node topic launch catkin",
          "pid": "gain tuning overshoot integral", "lidar": "scan point cloud laser",
          "quadcopter": "propeller drone flight frame"}


def stackexchange_csv(folder: Path, n: int = 300, seed: int = 3) -> Path:
    """Kaggle's shape (id,title,content,tags; HTML bodies, space-separated tags) with planted topics:
    each post's words come mostly from its topic, its tags are the topic (+ a second one at times)."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    filler = "the a robot how do i my with this problem".split()
    rows = []
    for i in range(n):
        topic = names[i % len(names)]
        words = TOPICS[topic].split()
        body = " ".join(rng.choice(words + filler, size=12))
        tags = [topic] + ([names[(i + 1) % len(names)]] if i % 4 == 0 else [])
        rows.append([str(i + 1), f"{topic} {rng.choice(words)} question", f"<p>{body}</p><p>thanks</p>",
                     " ".join(tags)])
    folder.mkdir(exist_ok=True)
    return write_csv(folder / "robotics.csv", ["id", "title", "content", "tags"], rows)


@pytest.fixture(scope="module")
def deployed(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("posts")
    data = convert(stackexchange_csv(tmp / "csv"), tmp / "out")
    client = ray_platform.client()
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="items", schema=data.schemas[DatasetKind.ITEMS])
    client.dataset_import_jobs.create_and_wait(group, dataset="items", source=str(data.items),
                                               poll_interval=0.2)
    client.solutions.create(group, name="posts", recipe="tag-cooccurrence", evaluation=EVALUATION)
    v = client.solution_versions.create(group, solution="posts")
    v = client.solution_versions.wait(group, "posts", v.name, poll_interval=0.5, timeout=300)
    assert v.status == Status.ACTIVE, v.failure_reason
    client.campaigns.create(group, name="tags", solution="posts", solution_version=v.name)
    c = client.campaigns.wait(group, "tags", timeout=180)
    assert c.status == Status.ACTIVE, c.failure_reason
    yield client, group, v, data
    client.campaigns.delete(group, "tags")


def test_the_version_trains_without_a_worker_group_and_is_evaluated_by_post_holdout(deployed) -> None:
    _, _, v, _ = deployed
    assert v.training["epochs"] == 0 and v.training["refit"]["epochs"] == 0, v.training
    assert v.evaluation["protocol"] == "post-holdout" and v.evaluation["test_posts"] == 30
    assert v.evaluation["set_size"] == 5 and v.evaluation["text_fields"] == ["title", "content"]
    assert set(v.baselines) == {"tag-cooccurrence"}
    for key in ("precision@1", "recall@3", "f1@5", "ndcg@5", "hit@1", "mrr", "coverage@5"):
        assert 0.0 <= v.metrics[key] <= 1.0, key
    assert v.metrics["precision@1"] > 0.9  # the planted topics name their tags
    assert v.lift["f1@3"] == pytest.approx(1.0)  # the baseline is the recipe itself


def test_the_campaign_generates_tags_from_text_items_and_chosen_tags(deployed) -> None:
    client, group, v, data = deployed
    tables = {DatasetKind.ITEMS: pq.read_table(data.items)}
    spec = get_recipe("tag-cooccurrence")  # the served model is refit on all the posts
    offline = spec.predictor_cls(*fit_in_process(spec, {}, tables, schemas=data.schemas))

    text = "my ros node does not see the topic after launch"
    r = client.campaigns.generate_tags(group, "tags", text=text, num_results=3)
    assert not r.fallback and r.solution_version == v.name
    assert [t.tag for t in r.tags] == offline.predict_batch([Query(text=text, num_results=3)])[0].ids
    assert r.tags[0].tag == "ros"
    # A stored post, by id: its text fields answer (the campaign kept them at load).
    post = tables[DatasetKind.ITEMS].slice(7, 1).to_pylist()[0]
    by_id = client.campaigns.generate_tags(group, "tags", item_id=post["item_id"])
    fields = {"title": post["title"], "content": post["content"]}
    assert not by_id.fallback
    assert [t.tag for t in by_id.tags] == offline.predict_batch([Query(fields=fields, num_results=5)])[0].ids
    assert [t.tag for t in client.campaigns.generate_tags(group, "tags", fields=fields).tags] == \
        [t.tag for t in by_id.tags]
    # Chosen tags are built on and never answered.
    chosen = client.campaigns.generate_tags(group, "tags", text=text, chosen=["ros"], num_results=3)
    assert "ros" not in {t.tag for t in chosen.tags} and len(chosen.tags) == 3
    # Nothing known: the most used tags, flagged.
    unknown = client.campaigns.generate_tags(group, "tags", text="zzzz qqqq", num_results=2)
    assert unknown.fallback and [t.tag for t in unknown.tags] == \
        offline.predict_batch([Query(num_results=2)])[0].ids
    assert client.campaigns.generate_tags(group, "tags", item_id="no-such-post").fallback
    with pytest.raises(BadRequestError) as e:
        client.campaigns.recommend(group, "tags", user_id="u1")
    assert e.value.error_type == "wrong_task" and "tag-set" in str(e.value)


# --- the endpoint's boundaries and bad input, over raw HTTP; the CLI --------------------------

LONG = "x" * 257  # one character over the 256 of an id
T = {"text": "a ros node"}
GENERATE_TAGS_BAD = [  # (body, the field its 400 names; None: the request as a whole)
    ({}, None), ({"text": ""}, None), ({"text": None}, None), ({"fields": {}}, None),
    ({"text": "", "fields": {}, "chosen": ["ros"]}, None),  # chosen tags alone are no text to tag
    *cases({}, "text", 5, ["a post"], "w" * 32_001),
    *cases({}, "fields", "title", ["title"], {f"f{i}": "a" for i in range(17)}),
    *cases({}, "fields", {"title": 5}, {"title": None}, named="fields.title"),
    *cases({}, "fields", {"content": "w" * 32_001}, named="fields.content"),
    *cases({}, "item_id", "", 7, LONG),
    *cases(T, "chosen", "ros", ["t"] * 51), *cases(T, "chosen", [""], [LONG], [None], named="chosen.0"),
    *cases(T, "num_results", 0, -3, 101, "five", 1.5, None),
    *cases(T, "tags", ["ros"]), *cases(T, "user_id", "u1"), *cases(T, "title", "a ros node"),
]


def _endpoint(deployed) -> str:
    client, group, _, _ = deployed
    return client.campaigns.retrieve(group, "tags").endpoint


def test_the_campaign_is_no_oracle_and_serves_only_generate_tags(deployed, ray_platform: Platform) -> None:
    _, _, v, _ = deployed
    assert_no_oracle(ray_platform, _endpoint(deployed), {"text": "a ros node", "user_id": "u1"})
    assert_exact_routes(ray_platform, _endpoint(deployed), v.name, "tag-set",
                        {"generate-tags": {"text": "a ros node", "num_results": 2}})


def test_generate_tags_bad_input_is_a_400_naming_the_field(deployed, ray_platform: Platform) -> None:
    assert bad_inputs(ray_platform, _endpoint(deployed), "generate-tags", GENERATE_TAGS_BAD) == {}
    _, answer = post(ray_platform, _endpoint(deployed), "generate-tags", {})
    assert all(name in error_of(answer)["message"] for name in ("text", "fields", "item_id")), answer


def test_validation_messages_are_plain_words(deployed, ray_platform: Platform) -> None:
    _, answer = post(ray_platform, _endpoint(deployed), "generate-tags", {})
    assert error_of(answer)["message"] == "request: give text, fields or item_id: the text to tag", answer


def test_a_too_long_field_name_is_named_without_pydantic_markers(deployed, ray_platform: Platform) -> None:
    name = "n" * 65
    _, answer = post(ray_platform, _endpoint(deployed), "generate-tags", {"fields": {name: "a ros node"}})
    assert error_of(answer)["field"] in ("fields", f"fields.{name}"), answer


def test_the_cli_generates_tags(deployed, ray_platform: Platform, tmp_path: Path) -> None:
    """`tagrec campaigns generate-tags` answers as the SDK does, as JSON and as a table of the tags
    in order (the version on stderr), from --text, from a stored --item and with --chosen tags."""
    from tagrec.cli import _number

    client, group, v, data = deployed
    env = platform_env(ray_platform, tmp_path / "home")
    text = "my ros node does not see the topic after launch"
    args = ["campaigns", "generate-tags", "-g", group, "tags"]
    sdk = client.campaigns.generate_tags(group, "tags", text=text, num_results=3)
    cli = json.loads(run(env, "-o", "json", *args, "--text", text, "-k", "3").stdout)
    assert cli == sdk.model_dump(mode="json")
    shown = run(env, *args, "--text", text, "-k", "3")
    rows = table_rows(shown.stdout, "tag", *(t.tag for t in sdk.tags))
    assert -1 not in rows and rows == sorted(rows), shown.stdout
    lines = shown.stdout.splitlines()
    assert all(f" {_number(t.score)} " in lines[n] for t, n in zip(sdk.tags, rows[1:])), shown.stdout
    assert f"version {v.name}" in shown.stderr and "fallback" not in shown.stderr, shown.stderr

    post = pq.read_table(data.items).slice(7, 1).to_pylist()[0]["item_id"]
    by_id = client.campaigns.generate_tags(group, "tags", item_id=post, chosen=["ros"])
    cli = json.loads(run(env, "-o", "json", *args, "--item", post, "--chosen", "ros").stdout)
    assert cli == by_id.model_dump(mode="json") and "ros" not in {t["tag"] for t in cli["tags"]}
    unknown = run(env, *args, "--text", "zzzz qqqq")
    assert "fallback" in unknown.stderr, unknown.stderr
    wrong = run(env, "campaigns", "next-tags", "-g", group, "tags", "--session", "s1", check=False)
    assert wrong.returncode != 0 and "wrong_task" in wrong.stderr.strip().splitlines()[-1], wrong.stderr
