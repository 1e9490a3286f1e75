"""UTPM through the real platform: `tagrec -o json quickstart --recipe utpm --data movielens:DIR
--tags-from HETREC_DIR` on a local Ray cluster (loopback S3 store, Serve over HTTP). MovieLens
ratings and HetRec movie tags are written here in their real layouts with a planted profile (each
user loves one topic's movies and dislikes the others); the version is trained by a Ray Train
worker group with validation, evaluated by §4.1's user split next to tag-popularity, deployed, and
asked: a user's profile is their topic's tags, new 5-star ratings move it at the next request, an
unknown user gets the flagged fallback, another tenant gets a 404, bad input a 400 naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Platform, unique
from tests.integration.test_campaign_endpoint import assert_exact_routes, assert_no_oracle, bad_inputs
from tests.integration.test_cli import platform_env, run
from tests.integration.test_tag_tasks_ray import RECOMMEND_TAGS_BAD
from tests.unit.test_hetrec import write
from tests.unit.test_movielens import _write

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = ("Action", "Comedy", "Drama", "Horror")
N_USERS = 100


def topic_of(movie: int) -> int:
    return (movie - 1) % len(TOPICS)


def planted_movielens(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """An ml-latest folder (gzipped ratings, UTF-8) and a HetRec movielens-2k tags folder: 40 movies
    in 4 topics, each topic 5 tags and each movie 3 of its topic's; user u loves topic u % 4 (85 % of
    their 24 ratings, 4.5-5 stars) and rates the others 1 star."""
    rng = np.random.default_rng(seed)
    movies = range(1, 41)
    ml = root / "ml-latest-small"
    ml.mkdir(parents=True)
    rows = ["userId,movieId,rating,timestamp"]
    for u in range(N_USERS):
        loved = u % len(TOPICS)
        for k in range(24):
            like = rng.random() < 0.85
            pool = [m for m in movies if (topic_of(m) == loved) == like]
            rows.append(f"{u + 1},{int(rng.choice(pool))},{rng.choice([4.5, 5.0]) if like else 1.0},"
                        f"{1_100_000_000 + u * 1000 + k}")
    _write(ml / "ratings.csv", "\n".join(rows) + "\n", encoding="utf-8", gz=True)
    _write(ml / "movies.csv", "movieId,title,genres\n" + "".join(
        f"{m},Movie {m} ({1990 + m}),{TOPICS[topic_of(m)]}\n" for m in movies), encoding="utf-8")
    hetrec = root / "hetrec2011-movielens-2k-v2"
    hetrec.mkdir()
    tags = [f"{t.lower()}-{k}" for t in TOPICS for k in range(5)]  # tag id = position + 1
    write(hetrec, "tags.dat", ["id\tvalue", *(f"{i + 1}\t{t}" for i, t in enumerate(tags))],
          encoding="latin-1")
    write(hetrec, "movie_tags.dat", ["movieID\ttagID\ttagWeight", *(
        f"{m}\t{topic_of(m) * 5 + (m // 4 + j) % 5 + 1}\t{3 - j}" for m in movies for j in range(3))],
          gz=True)
    return ml, hetrec


@pytest.fixture(scope="module")
def quickstarted(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("utpm")
    ml, hetrec = planted_movielens(root)
    group = unique("utpm")
    proc = run(platform_env(ray_platform, root / "home"), "-o", "json", "quickstart", "--recipe", "utpm",
               "--data", f"movielens:{ml}", "--tags-from", str(hetrec), "--group", group, "--keep",
               "--set", "epochs=8")
    client = ray_platform.client()
    yield client, group, json.loads(proc.stdout)
    client.dataset_groups.delete(group, force=True)


def test_quickstart_trains_utpm_on_ray_train_and_evaluates_it_by_the_user_split(quickstarted) -> None:
    _, _, result = quickstarted
    assert (result["task"], result["recipe"]) == ("user-tags", "utpm")
    assert set(result["datasets"]) == {"interactions", "items"}
    ev = result["evaluation"]
    assert ev["protocol"] == "user-split" and ev["test_users"] == 10, ev  # 0.1 of 100, whole
    training = result["training"]
    assert training["epochs"] >= 1 and training["validation"]["scores"], training  # a worker group ran
    assert set(result["baselines"]) == {"tag-popularity"}
    for key in ("precision_minrel@1", "precision_minrel@3", "ndcg@10", "mrr"):
        assert 0.0 <= result["metrics"][key] <= 1.0 and key in result["baselines"]["tag-popularity"]
    assert result["metrics"]["precision_minrel@1"] > 0.5  # the planted topics are learned


def test_a_profile_is_the_users_topic_and_new_ratings_move_it(quickstarted) -> None:
    _, _, result = quickstarted
    serving = result["serving"]
    for user, tags in serving["profiles"].items():
        topic = TOPICS[(int(user) - 1) % len(TOPICS)].lower()
        assert len(tags) == 10 and tags[0][0].startswith(f"{topic}-"), (user, tags)
    user, events = serving["user"], serving["events"]
    assert len(events) == 3 and all(e["tags"] for e in events), events
    assert serving["after"] != serving["before"]  # the events changed the next answer
    assert serving["unknown_user_fallback"] is True


def test_the_campaign_answers_every_user_with_their_topic(quickstarted) -> None:
    client, group, _ = quickstarted
    wins = 0
    for u in range(N_USERS):
        r = client.campaigns.recommend_tags(group, "quickstart", user_id=str(u + 1), num_results=3)
        wins += not r.fallback and r.tags[0].tag.startswith(f"{TOPICS[u % len(TOPICS)].lower()}-")
    assert wins >= 0.9 * N_USERS, wins


def test_a_rating_changes_the_profile_at_the_next_request(quickstarted) -> None:
    client, group, _ = quickstarted
    user = "3"  # loves Drama (topic 2); rates every Horror movie 5 stars now
    before = client.campaigns.recommend_tags(group, "quickstart", user_id=user, num_results=20)
    client.events.put(group, user_id=user, session_id="s", events=[
        {"item_id": str(m), "event_type": "rating", "event_value": 5.0, "timestamp": 2_000_000_000 + m,
         "event_id": f"horror-{m}"} for m in range(4, 41, 4)][:10])
    after = client.campaigns.recommend_tags(group, "quickstart", user_id=user, num_results=20)

    def horror_rank(answer) -> float:
        ranks = [k for k, t in enumerate(answer.tags) if t.tag.startswith("horror-")]
        return float(np.mean(ranks)) if ranks else 99.0

    assert horror_rank(after) < horror_rank(before), ([t.tag for t in before.tags],
                                                      [t.tag for t in after.tags])


def test_the_utpm_campaign_keeps_tenants_apart_and_names_bad_fields(quickstarted,
                                                                    ray_platform: Platform) -> None:
    client, group, result = quickstarted
    endpoint = client.campaigns.retrieve(group, "quickstart").endpoint
    assert_no_oracle(ray_platform, endpoint, {"user_id": "1"})
    assert_exact_routes(ray_platform, endpoint, result["solution_version"], "user-tags",
                        {"recommend-tags": {"user_id": "1", "num_results": 3}})
    assert bad_inputs(ray_platform, endpoint, "recommend-tags", RECOMMEND_TAGS_BAD) == {}
    other = ray_platform.client(ray_platform.key_b)
    from sdk import NotFoundError

    with pytest.raises(NotFoundError):
        other.campaigns.recommend_tags(group, "quickstart", user_id="1")
    with pytest.raises(NotFoundError):
        other.solution_versions.retrieve(group, "quickstart", result["solution_version"])


def test_a_batch_job_exports_every_profile_and_the_tag_segments(quickstarted, tmp_path: Path) -> None:
    """The profiles of all users as Parquet (what the campaign answers from the same snapshot, for
    users no test sent events), and each tag's top users: the inverse of the profiles."""
    import pyarrow.parquet as pq

    client, group, _ = quickstarted
    job = client.batch_inference_jobs.create_and_wait(group, name="profiles", solution="quickstart",
                                                      num_results=5, segment_size=10, poll_interval=0.5,
                                                      timeout=300)
    answers = pq.read_table(client.batch_inference_jobs.download(group, "profiles", output="answers",
                                                                 dest=tmp_path)).to_pylist()
    segments = pq.read_table(client.batch_inference_jobs.download(group, "profiles", output="segments",
                                                                  dest=tmp_path)).to_pylist()
    assert {r["user_id"] for r in answers} == {str(u + 1) for u in range(N_USERS)}, job
    for user in ("5", "6", "7"):
        live = client.campaigns.recommend_tags(group, "quickstart", user_id=user, num_results=5)
        mine = sorted((r for r in answers if r["user_id"] == user), key=lambda r: r["rank"])
        assert [r["tag"] for r in mine] == [t.tag for t in live.tags]
        assert [r["score"] for r in mine] == pytest.approx([t.score for t in live.tags], rel=1e-5)
    held = {(r["tag"], r["user_id"]) for r in answers if not r["fallback"]}
    assert segments and all((r["tag"], r["user_id"]) in held for r in segments)
    drama = [r["user_id"] for r in segments if r["tag"].startswith("drama-")]
    assert drama and sum((int(u) - 1) % len(TOPICS) == 2 for u in drama) >= 0.9 * len(drama)
