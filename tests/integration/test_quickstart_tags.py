"""`tagrec -o json quickstart --data hetrec:DIR | stackexchange:FILE | intents:FILE` end to end on
a real platform (loopback S3 store, local Ray, Serve over HTTP): the data converted and imported,
the task's baseline recipe trained and evaluated next to its baseline, a campaign deployed and
asked the task's demo, then everything deleted; and `--recipe graphtr` on a HetRec folder (the
item-tags demo: one item's tags ranked differently for two users) and `--recipe sog` on a Stack
Exchange CSV (the tag-set demo and the command that tags one's own text). The inputs are small files
written here in each format's real layout, with planted structure the answers must show."""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from sdk import NotFoundError
from tagrec.quickstart import HELD_OUT_POSTS, QUICK_HYPERPARAMETERS
from tests.conftest import SHARED_DATA, Platform, unique
from tests.integration.test_cli import platform_env, run, table_rows
from tests.integration.test_session_tags_ray import CORPUS
from tests.integration.test_sog_ray import TINY
from tests.integration.test_tag_set_ray import TOPICS, stackexchange_csv
from tests.unit.test_graphtr import BRIDGES, SMALL, movie_tags, planted_hetrec
from tests.unit.test_hetrec import ms, write
from tests.unit.test_intents import write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GENRES = ("Action", "Comedy", "Drama", "Horror")
KEYS = {"data", "task", "dataset_group", "datasets", "import_jobs", "recipe", "solution_version",
        "hyperparameters", "evaluation", "metrics", "baselines", "lift", "training", "serving", "timings"}


def hetrec_movielens(root: Path, n_users: int = 60, per_user: int = 15, seed: int = 0) -> Path:
    """A HetRec 2011 movielens-2k folder (the real file names and columns, gzipped assignments):
    40 movies in 4 genres, 5 tags per genre; each user tags mostly movies of one genre, mostly with
    one favourite tag of it (the planted profile)."""
    rng = np.random.default_rng(seed)
    folder = root / "hetrec2011-movielens-2k-v2"
    folder.mkdir(parents=True)
    tags = [f"{g.lower()}-{k}" for g in GENRES for k in range(5)]  # tag id = position + 1
    movies = range(1, 41)  # movie m is of genre (m - 1) % 4
    rows = ["userID\tmovieID\ttagID\ttimestamp"]
    for u in range(n_users):
        genre, favourite = u % 4, (u // 4) % 5
        for k in range(per_user):
            g = genre if rng.random() < 0.8 else int(rng.integers(4))
            movie = int(rng.choice([m for m in movies if (m - 1) % 4 == g]))
            tag = g * 5 + (favourite if g == genre and rng.random() < 0.6 else int(rng.integers(5)))
            rows.append(f"{1000 + u}\t{movie}\t{tag + 1}\t{ms(2008, 1 + u % 12, 1 + k, 12)}")
    write(folder, "user_taggedmovies-timestamps.dat", rows, gz=True)
    write(folder, "tags.dat", ["id\tvalue", *(f"{i + 1}\t{t}" for i, t in enumerate(tags))])
    rest = "\t".join(["x"] * 14)
    write(folder, "movies.dat", ["id\ttitle\timdbID\tspanishTitle\timdbPictureURL\tyear\trtID\t" + rest,
                                 *(f"{m}\tMovie {m}\t{m:07d}\tPelícula {m}\thttp://pic\t{1990 + m}\tm{m}\t"
                                   f"{rest}" for m in movies)], encoding="latin-1")
    write(folder, "movie_genres.dat", ["movieID\tgenre", *(f"{m}\t{GENRES[(m - 1) % 4]}" for m in movies)])
    write(folder, "movie_directors.dat", ["movieID\tdirectorID\tdirectorName",
                                          *(f"{m}\td{m % 7}\tDirector {m % 7}" for m in movies)])
    return folder


def intents_csv(root: Path) -> Path:
    """The organisation,intent,text CSV of test_session_tags_ray's corpus (2 organisations)."""
    return write_csv(root / "corpus.csv", [["organisation", "intent", "text"]] + [
        [org, intent, text] for org, intents in CORPUS.items() for intent, texts in intents.items()
        for text in texts])


def quickstart(platform: Platform, home: Path, data: str) -> dict:
    """`tagrec -o json quickstart --data DATA` against the test platform (a new group); its JSON,
    after checking the documented keys, the metrics next to the baseline and the clean-up."""
    group = unique("qs")
    proc = run(platform_env(platform, home), "-o", "json", "quickstart", "--data", data, "--group", group)
    result = json.loads(proc.stdout)
    assert KEYS <= set(result), set(result)
    assert (result["data"], result["dataset_group"]) == (data, group)
    assert result["training"]["epochs"] == 0  # each baseline is count-based
    assert result["metrics"] and set(result["baselines"]) == {result["recipe"]}  # the baseline itself
    assert set(result["lift"]) <= set(result["metrics"]) and result["lift"], result["lift"]
    assert result["lift"] == {k: pytest.approx(1.0) for k in result["lift"]}  # model = baseline here
    serving = result["serving"]
    assert serving["endpoint"].startswith("http://127.0.0.1:")
    assert serving["requests"] == 100 and 0 < serving["p50_ms"] <= serving["p99_ms"]
    assert group not in {g.name for g in platform.client().dataset_groups.list()}  # no --keep: deleted
    return result


def check_user_tags(result: dict) -> None:
    assert (result["task"], result["recipe"]) == ("user-tags", "tag-popularity")
    assert result["evaluation"]["protocol"] == "user-tag-holdout"
    assert result["datasets"]["interactions"]["rows"] > 0 and "items" in result["datasets"]
    profiles = result["serving"]["profiles"]
    assert len(profiles) == 2 and all(len(tags) == 10 for tags in profiles.values()), profiles
    assert all(score > 1.0 for tags in profiles.values() for _, score in tags[:1])  # their own tags first
    assert result["serving"]["unknown_user_fallback"] is True
    serving = result["serving"]  # three new ratings (with their tags) move the profile
    assert len(serving["events"]) == 3 and serving["after"] != serving["before"], serving


def check_tag_set(result: dict) -> list[dict]:
    assert (result["task"], result["recipe"]) == ("tag-set", "tag-cooccurrence")
    assert result["evaluation"]["protocol"] == "post-holdout" and set(result["datasets"]) == {"items"}
    posts = result["serving"]["posts"]
    assert len(posts) == 3 and all(p["title"] and p["true_tags"] and len(p["generated"]) == 5 for p in posts)
    assert all(p["held_out"] for p in posts), "the demo's posts are kept out of the import"
    return posts


def check_session_tags(result: dict, organisations: set[str]) -> None:
    assert (result["task"], result["recipe"]) == ("session-tags", "session-tag-popularity")
    assert result["evaluation"]["protocol"] == "session-holdout"
    assert set(result["datasets"]) == {"items", "interactions"}
    serving = result["serving"]
    organisation = serving["organisation"]
    assert organisation in organisations and len(serving["steps"]) == 3, serving
    clicked: list[str] = []
    for step in serving["steps"]:  # each step clicks the first tag offered: never offered again
        assert step["offered"] and not set(step["offered"]) & set(clicked), serving["steps"]
        assert all(q.startswith(f"{organisation}/") for q in step["questions"]), step
        clicked.append(step["offered"][0])


def test_quickstart_on_a_hetrec_folder(ray_platform: Platform, tmp_path: Path) -> None:
    result = quickstart(ray_platform, tmp_path / "home", f"hetrec:{hetrec_movielens(tmp_path)}")
    check_user_tags(result)
    assert result["datasets"]["interactions"]["rows"] == 900 and result["datasets"]["items"]["rows"] == 40
    for user, tags in result["serving"]["profiles"].items():  # the planted favourite tag leads
        favourite = f"{GENRES[(int(user) - 1000) % 4].lower()}-{((int(user) - 1000) // 4) % 5}"
        assert tags[0][0] == favourite, (user, tags)


def test_quickstart_graphtr_ranks_one_items_tags_differently_for_two_users(ray_platform: Platform,
                                                                           tmp_path: Path) -> None:
    """The item-tags demo picks the item with the most distinct tags (a planted bridge movie: 3 tags
    of its topic, 2 of the next) and shows the first two users whose top 10s differ, as the
    campaign answers them."""
    folder = planted_hetrec(tmp_path, n_users=40, n_movies=32, per_user=20)
    group = unique("qs")
    sets = [a for k, v in {**SMALL, "epochs": 1}.items() for a in ("--set", f"{k}={v}")]
    proc = run(platform_env(ray_platform, tmp_path / "home"), "-o", "json", "quickstart", "--data",
               f"hetrec:{folder}", "--recipe", "graphtr", "--group", group, "--keep", *sets)
    client = ray_platform.client()
    try:
        result = json.loads(proc.stdout)
        assert (result["task"], result["recipe"]) == ("item-tags", "graphtr")
        assert result["evaluation"]["protocol"] == "item-tag-holdout"
        assert set(result["baselines"]) == {"item-tag-frequency"} and result["metrics"]
        demo = result["serving"]
        item = demo["item"]
        assert item in BRIDGES and demo["candidates"] == 5, demo
        assert demo["differ"] is True and 2 <= demo["users_asked"] <= 10 and not demo["fallback_users"], demo
        (a, top_a), (b, top_b) = demo["tags_for_users"].items()
        assert top_a != top_b and set(top_a) == set(top_b) == {t for ts in movie_tags(int(item)).values()
                                                               for t in ts}, demo
        for user, top in demo["tags_for_users"].items():  # what the campaign answers, not made up
            answer = client.campaigns.recommend_tags(group, "quickstart", user_id=user, item_id=item,
                                                     num_results=10)
            assert not answer.fallback and [t.tag for t in answer.tags] == top, (user, answer)
    finally:
        with contextlib.suppress(NotFoundError):
            client.campaigns.delete(group, "quickstart")
        client.dataset_groups.delete(group, force=True)


def test_quickstart_on_a_stackexchange_csv(ray_platform: Platform, tmp_path: Path) -> None:
    csv = stackexchange_csv(tmp_path / "se")
    result = quickstart(ray_platform, tmp_path / "home", f"stackexchange:{csv}")
    posts = check_tag_set(result)
    assert result["datasets"]["items"]["rows"] == 300 - HELD_OUT_POSTS
    assert all(p["generated"][0] in p["true_tags"] for p in posts), posts  # the planted topic first


def test_quickstart_sog_tags_posts_and_prints_the_command_that_tags_a_text(ray_platform: Platform,
                                                                           tmp_path: Path) -> None:
    """`--recipe sog` on a Stack Exchange CSV, as a user reads it (tables): the tiny sizes given by
    --set win over the quickstart's smaller defaults, which fill in the rest (said on stderr); a Ray
    Train worker group trains it, post-holdout evaluates it next to tag-cooccurrence, the posts' tags
    are shown, and the command printed to tag one's own text answers as the campaign does."""
    given = {k: v for k, v in TINY.items() if k != "max_length"}
    quick = {k: v for k, v in QUICK_HYPERPARAMETERS["sog"].items() if k not in given}
    assert quick, "the test leaves one of the quickstart's sizes to it"
    env = platform_env(ray_platform, tmp_path / "home")
    group = unique("qs")
    proc = run(env, "quickstart", "--data", f"stackexchange:{stackexchange_csv(tmp_path / 'se')}",
               "--recipe", "sog", "--group", group, "--keep",
               *(a for k, v in given.items() for a in ("--set", f"{k}={v}")))
    client = ray_platform.client()
    try:
        said = next(line for line in proc.stderr.splitlines() if "quickstart's smaller" in line)
        assert said == (f"tagrec: sog trains with the quickstart's smaller "
                        f"{' '.join(f'{k}={v}' for k, v in quick.items())} (the recipe's defaults take "
                        "longer on a CPU; --set KEY=VALUE overrides any)"), said
        (version,) = client.solution_versions.list(group, "quickstart")
        sizes = {**given, **quick}
        assert version.recipe == "sog" and {k: version.hyperparameters[k] for k in sizes} == sizes
        training = version.training
        assert training["epochs"] >= 1 and training["validation"]["scores"], training  # a worker group ran
        assert version.evaluation["protocol"] == "post-holdout"
        assert set(version.baselines) == {"tag-cooccurrence"} and version.metrics, version.baselines
        lines = proc.stdout.splitlines()
        assert any(line.startswith(f"sog (tag-set) version {version.name}: post-holdout (") for line in lines)
        posts = [line for line in lines if line.startswith("held-out post '")]
        assert len(posts) == 3 and all("generated ['" in p and "(its tags: ['" in p for p in posts), posts
        (command,) = [line.partition("tag your own text: ")[2] for line in lines
                      if line.startswith("tag your own text: ")]
        words = shlex.split(command)
        assert words[:7] == ["tagrec", "campaigns", "generate-tags", "-g", group, "quickstart", "--text"]
        assert len(words) == 8 and words[7] and words[7] in posts[0], (command, posts[0])
        answer = client.campaigns.generate_tags(group, "quickstart", text=words[7])
        assert not answer.fallback and {t.tag for t in answer.tags} <= set(TOPICS), answer
        shown = run(env, *words[1:])
        rows = table_rows(shown.stdout, "tag", *(t.tag for t in answer.tags))
        assert -1 not in rows and rows == sorted(rows), shown.stdout
    finally:
        with contextlib.suppress(NotFoundError):
            client.campaigns.delete(group, "quickstart")
        client.dataset_groups.delete(group, force=True)


def test_quickstart_on_an_intents_csv(ray_platform: Platform, tmp_path: Path) -> None:
    result = quickstart(ray_platform, tmp_path / "home", f"intents:{intents_csv(tmp_path)}")
    check_session_tags(result, set(CORPUS))
    assert result["datasets"]["items"]["rows"] == 7
    assert result["evaluation"]["test_sessions"] > 0


REAL = [("hetrec", "hetrec2011-movielens-2k-tags"), ("stackexchange", "stackexchange-robotics-kaggle"),
        ("intents", "clinc150")]


@pytest.mark.parametrize(("kind", "folder"), REAL, ids=[k for k, _ in REAL])
def test_quickstart_on_the_shared_data(ray_platform: Platform, tmp_path: Path, kind: str,
                                       folder: str) -> None:
    if not (SHARED_DATA / folder).exists():
        pytest.skip(f"../shared/data/{folder} is absent (licensed data, not in the repo)")
    result = quickstart(ray_platform, tmp_path / "home", f"{kind}:{SHARED_DATA / folder}")
    if kind == "hetrec":
        check_user_tags(result)
        assert result["datasets"]["interactions"]["rows"] == 47_957
    elif kind == "stackexchange":
        check_tag_set(result)
        assert result["datasets"]["items"]["rows"] == 2_771 - HELD_OUT_POSTS
    else:
        domains = json.loads((SHARED_DATA / folder / "domains.json").read_text())
        check_session_tags(result, set(domains))
        assert result["datasets"]["items"]["rows"] == 150
