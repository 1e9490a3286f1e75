"""Batch inference jobs through the real platform on a local Ray cluster, the store on the loopback
S3 server: a HetRec-shaped tag-assignment dataset imported through the SDK, a user-tags version
(tag-popularity) and a next-item version (item-popularity), both fitted without a Ray Train run;
jobs over every user and over a list with an unknown user, their Parquet outputs downloaded through
the control plane and compared with the versions' own predictors loaded in this process (asked
what a campaign asks for each user: the user's history, the items seen excluded for next-item);
the segments the inverse of the answers; bad input a 4xx naming the field; another tenant's key a
404 on every verb; deletes refused while a job runs; the CLI (a gzipped users file with a BOM)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Predictor, Query
from sdk import BatchInferenceJob, Client, ConflictError, NotFoundError, SolutionVersion, Status
from store import Keys, Store, StoreConfig
from tests.conftest import Platform, unique
from tests.integration.test_cli import platform_env, run
from tests.unit.test_user_item_tags import SCHEMA, hetrec_like

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVALUATION = {"min_test_users": 20, "holdout_last": 3}
RECIPES = {"profiles": "tag-popularity", "items": "item-popularity"}
UNKNOWN = "nobody-knows-me"


@dataclass
class World:
    platform: Platform
    client: Client
    group: str
    table: pa.Table
    versions: dict[str, SolutionVersion]
    predictors: dict[str, Predictor]
    jobs: dict[str, BatchInferenceJob]
    users: list[str]  # the list the "some" job was given
    tmp: Path


def _predictor(platform: Platform, v: SolutionVersion, to: Path) -> Predictor:
    """The version's portable artifact, copied out of the store and loaded in this process."""
    uri = urlparse(v.artifact_uri)
    fs = Store(StoreConfig.from_env(platform.store_uri)).backend.filesystem
    pafs.copy_files(f"{uri.netloc}{uri.path}", str(to), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    return get_recipe(v.recipe).predictor_cls.load(to)


@pytest.fixture(scope="module")
def world(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> World:
    client = ray_platform.client()
    tmp = tmp_path_factory.mktemp("batch")
    table = hetrec_like(seed=7, n_users=100, n_items=60, n_events=2500)
    pq.write_table(table, tmp / "interactions.parquet")
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=SCHEMA)
    client.dataset_import_jobs.create_and_wait(group, dataset="interactions",
                                               source=str(tmp / "interactions.parquet"), poll_interval=0.2)
    versions = {}
    for solution, recipe in RECIPES.items():
        client.solutions.create(group, name=solution, recipe=recipe, evaluation=EVALUATION)
        versions[solution] = client.solution_versions.create(group, solution=solution)
    for solution, v in versions.items():
        versions[solution] = v = client.solution_versions.wait(group, solution, v.name, poll_interval=0.5,
                                                               timeout=300)
        assert v.status == Status.ACTIVE, v.failure_reason
    predictors = {s: _predictor(ray_platform, v, tmp / s) for s, v in versions.items()}
    known = sorted(set(table.column("user_id").to_pylist()))
    users = [known[3], UNKNOWN, known[0]]
    jobs = {"tags": client.batch_inference_jobs.create(group, name="tags", solution="profiles", num_results=5,
                                                       segment_size=4),
            "items": client.batch_inference_jobs.create(group, name="items", solution="items", num_results=10,
                                                        solution_version=versions["items"].name),
            "some": client.batch_inference_jobs.create(group, name="some", solution="items", num_results=3,
                                                       users=users)}
    for name, job in jobs.items():
        assert job.status == Status.CREATE_PENDING and job.outputs == {}, job
        jobs[name] = client.batch_inference_jobs.wait(group, name, poll_interval=0.3, timeout=300)
    return World(ray_platform, client, group, table, versions, predictors, jobs, users, tmp)


def _download(w: World, job: str, output: str) -> list[dict[str, Any]]:
    path = w.client.batch_inference_jobs.download(w.group, job, output=output, dest=w.tmp)
    assert path == w.tmp / f"{job}-{output}.parquet"
    table = pq.read_table(path)
    assert table.num_rows == w.jobs[job].outputs[output].rows
    return table.to_pylist()


def _histories(table: pa.Table, keep: int) -> dict[str, list[tuple[Any, ...]]]:
    """Each user's latest `keep` events, by hand, as a campaign's history holds them."""
    by_user: dict[str, list[tuple[Any, ...]]] = {}
    for r in sorted(table.to_pylist(), key=lambda r: r["timestamp"]):
        by_user.setdefault(r["user_id"], []).append(
            (r["item_id"], r["timestamp"].timestamp(), r["event_type"], None, tuple(r["tags"])))
    return {u: events[-keep:] for u, events in by_user.items()}


def _by_user(rows: list[dict[str, Any]], target: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        assert r["rank"] == len(out.setdefault(r["user_id"], [])) + 1, r
        out[r["user_id"]].append((r[target], r["score"], r["fallback"]))
    return out


def _asked(w: World, solution: str, users: list[str], job: BatchInferenceJob) -> dict[str, list[tuple]]:
    """What the version's predictor answers each user, asked as a campaign asks (a recommend request
    excludes the items in the user's history; recommend-tags excludes nothing)."""
    predictor = w.predictors[solution]
    histories = _histories(w.table, getattr(predictor, "max_history", 64))
    queries = []
    for u in users:
        h = histories.get(u, [])
        seen = {e[0] for e in h} if job.task == "next-item" else set()
        queries.append(Query(history=h, user_id=u, time=job.as_of, exclude=seen, num_results=job.num_results))
    answers = predictor.predict_batch(queries)
    return {u: [(i, s, a.fallback) for i, s in a.ranked] for u, a in zip(users, answers)}


def test_a_user_tags_job_answers_every_user_and_inverts_them_into_segments(world: World) -> None:
    job, v = world.jobs["tags"], world.versions["profiles"]
    users = sorted(set(world.table.column("user_id").to_pylist()))
    assert job.status == Status.ACTIVE and job.task == "user-tags" and job.recipe == "tag-popularity"
    assert job.solution_version == v.name  # the newest ACTIVE version, by default
    assert job.snapshot_id == v.snapshots["interactions"] and job.users_given is None
    assert (job.progress.users_done, job.progress.users_total) == (len(users), len(users))
    assert set(job.outputs) == {"answers", "segments"} and job.segment_size == 4
    shown = httpx.get(f"{world.platform.url}/v1/dataset-groups/{world.group}/batch-inference-jobs/tags",
                      headers={"Authorization": f"Bearer {world.platform.key_a}"}, timeout=30)
    assert urlparse(world.platform.store_uri).netloc not in shown.text  # the bucket stays private
    answers = _download(world, "tags", "answers")
    got = _by_user(answers, "tag")
    assert list(got) == users
    assert got == _asked(world, "profiles", users, job)
    assert not any(r["fallback"] for r in answers)
    inverse: dict[str, list[tuple[float, str]]] = {}
    for r in answers:
        inverse.setdefault(r["tag"], []).append((-r["score"], r["user_id"]))
    segments = _download(world, "tags", "segments")
    assert [(r["tag"], r["rank"], r["user_id"], r["score"]) for r in segments] == [
        (tag, rank, user, -neg) for tag in sorted(inverse)
        for rank, (neg, user) in enumerate(sorted(inverse[tag])[:4], 1)]


def test_a_next_item_job_answers_as_the_campaign_would(world: World) -> None:
    job = world.jobs["items"]
    users = sorted(set(world.table.column("user_id").to_pylist()))
    assert job.status == Status.ACTIVE and job.task == "next-item" and job.segment_size is None
    assert set(job.outputs) == {"answers"}
    got = _by_user(_download(world, "items", "answers"), "item_id")
    assert got == _asked(world, "items", users, job)
    assert all(len(a) == 10 for a in got.values())
    with pytest.raises(NotFoundError, match="no segments output"):
        world.client.batch_inference_jobs.download(world.group, "items", output="segments", dest=world.tmp)
    assert not (world.tmp / "items-segments.parquet").exists()


def test_a_job_over_a_list_of_users_flags_the_unknown_one(world: World) -> None:
    job = world.jobs["some"]
    assert job.users_given == 3 and job.progress.users_total == 3
    got = _by_user(_download(world, "some", "answers"), "item_id")
    assert list(got) == world.users  # the list's order
    assert got == _asked(world, "items", world.users, job)
    assert [u for u, a in got.items() if a[0][2]] == [UNKNOWN]


def _post(w: World, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return httpx.post(f"{w.platform.url}/v1/dataset-groups/{w.group}/batch-inference-jobs", json=body,
                      headers={"Authorization": f"Bearer {key or w.platform.key_a}"}, timeout=30)


BAD = [  # (what is changed in a valid body, status, the field named)
    ({"solution": "no-such-solution"}, 404, "solution"),
    ({"solution_version": "v-0000000000000000"}, 404, "solution_version"),
    ({"num_results": 0}, 400, "num_results"),
    ({"num_results": 501}, 400, "num_results"),
    ({"num_results": "5"}, 400, "num_results"),
    ({"users": "u1"}, 400, "users"),
    ({"users": []}, 400, "users"),
    ({"users": ["u1", 7]}, 400, "users.1"),
    ({"users": [""]}, 400, "users.0"),
    ({"users": ["x" * 257]}, 400, "users.0"),
    ({"segment_size": 0}, 400, "segment_size"),
    ({"solution": "items", "segment_size": 10}, 400, "segment_size"),
    ({"name": "../x"}, 400, "name"),
    ({"colour": "red"}, 400, "colour"),
]


@pytest.mark.parametrize(("change", "status", "field"), BAD, ids=[next(iter(c)) + f"={c[next(iter(c))]!r:.20}"
                                                                 for c, _, _ in BAD])
def test_bad_input_is_a_4xx_naming_the_field(world: World, change: dict[str, Any], status: int,
                                             field: str) -> None:
    r = _post(world, {"name": unique("bij"), "solution": "profiles", **change})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field and field.split(".")[0] in err["message"], err


def test_what_a_job_cannot_answer_is_refused_with_the_reason(world: World) -> None:
    c, group = world.client, world.group
    c.solutions.create(group, name="item-tags", recipe="item-tag-frequency")
    r = _post(world, {"name": unique("bij"), "solution": "item-tags"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "solution", r.text
    message = r.json()["error"]["message"]
    assert "is of task item-tags" in message and "(user, item) pairs" in message, message
    c.solutions.create(group, name="untrained", recipe="tag-popularity")
    r = _post(world, {"name": unique("bij"), "solution": "untrained"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "solution_version", r.text
    assert "no ACTIVE version" in r.json()["error"]["message"]
    with pytest.raises(ConflictError, match="already exists"):
        c.batch_inference_jobs.create(group, name="tags", solution="profiles")


def test_another_tenants_key_gets_the_404_of_a_job_that_does_not_exist(world: World) -> None:
    base = f"{world.platform.url}/v1/dataset-groups"
    other = {"Authorization": f"Bearer {world.platform.key_b}"}
    nowhere = unique("bij")

    def answers(group: str, job: str) -> list[tuple[int, bytes]]:
        jobs = f"{base}/{group}/batch-inference-jobs"
        got = [httpx.get(f"{jobs}/{job}", headers=other), httpx.get(jobs, headers=other),
               httpx.get(f"{jobs}/{job}/outputs/answers", headers=other),
               httpx.delete(f"{jobs}/{job}", headers=other),
               httpx.post(jobs, json={"name": job, "solution": "profiles"}, headers=other)]
        return [(r.status_code, r.content.replace(group.encode(), b"<g>")) for r in got]

    theirs = answers(world.group, "tags")
    assert theirs == answers(unique(), nowhere) and {s for s, _ in theirs} == {404}
    assert world.client.batch_inference_jobs.retrieve(world.group, "tags").status == Status.ACTIVE


def test_deletes_wait_for_a_running_job(world: World) -> None:
    """A job running (its record as the job keeps it) holds off deleting it, its solution, the
    interactions dataset and its group; once it ended, the job and its files go."""
    c, group = world.client, world.group
    store = Store(StoreConfig.from_env(world.platform.store_uri))
    keys = Keys("tenant-a")
    now = datetime.now(UTC).isoformat()
    store.registry.create(keys.batch_inference_job(group, "busy"), {
        **world.jobs["items"].model_dump(mode="json"), "name": "busy", "status": "CREATE_IN_PROGRESS",
        "outputs": {}, "progress": {"users_done": 7, "users_total": 100}, "created_at": now,
        "updated_at": now})
    with pytest.raises(ConflictError, match=r"'busy' is CREATE_IN_PROGRESS \(7/100 users\)"):
        c.batch_inference_jobs.delete(group, "busy")
    with pytest.raises(ConflictError, match="busy"):
        c.solutions.delete(group, "items")
    with pytest.raises(ConflictError, match="busy"):  # it reads the users' histories from it
        c.datasets.delete(group, "interactions")
    with pytest.raises(ConflictError, match="busy"):
        c.dataset_groups.delete(group, force=True)
    store.registry.update(keys.batch_inference_job(group, "busy"), lambda d: {**d, "status": "CREATE_FAILED"})
    c.batch_inference_jobs.delete(group, "busy")
    with pytest.raises(NotFoundError):
        c.batch_inference_jobs.retrieve(group, "busy")
    # a finished job: its outputs go with it
    c.batch_inference_jobs.create_and_wait(group, name="short-lived", solution="items", users=["u1"],
                                           poll_interval=0.3, timeout=300)
    assert list(store.backend.list(keys.batch_inference_files(group, "short-lived")))
    c.batch_inference_jobs.delete(group, "short-lived")
    assert not list(store.backend.list(keys.batch_inference_files(group, "short-lived")))
    assert "short-lived" not in {j.name for j in c.batch_inference_jobs.list(group)}


def test_the_cli_describes_lists_and_downloads(world: World, tmp_path: Path) -> None:
    env = platform_env(world.platform, tmp_path / "home")
    described = json.loads(run(env, "-o", "json", "batch-inference-jobs", "describe", "-g", world.group,
                               "tags").stdout)
    assert described == world.client.batch_inference_jobs.retrieve(world.group, "tags").model_dump(
        mode="json")
    listed = run(env, "batch-inference-jobs", "list", "-g", world.group).stdout
    assert all(f" {name} " in listed for name in ("tags", "items", "some")), listed
    saved = json.loads(run(env, "-o", "json", "batch-inference-jobs", "download", "-g", world.group, "tags",
                           "segments", "--dest", str(tmp_path / "s.parquet")).stdout)
    assert saved["path"] == str(tmp_path / "s.parquet")
    assert pq.read_table(tmp_path / "s.parquet").num_rows == world.jobs["tags"].outputs["segments"].rows
    failed = run(env, "batch-inference-jobs", "download", "-g", world.group, "items", "segments", check=False)
    assert failed.returncode != 0 and "no segments output" in failed.stderr, failed.stderr


def test_the_cli_reads_a_gzipped_users_file_with_a_bom(world: World, tmp_path: Path) -> None:
    """--users-file: compressed by its name, a UTF-8 BOM is no part of the first id, blank lines are
    skipped; a file that is not UTF-8 text is refused naming the file and the line."""
    env = platform_env(world.platform, tmp_path / "home")
    users = tmp_path / "users.txt.gz"
    users.write_bytes(gzip.compress("\ufeff".encode() + "\n".join(world.users[:2] + ["", "u-é"]).encode()))
    made = json.loads(run(env, "-o", "json", "batch-inference-jobs", "create", "-g", world.group, "-n",
                          "from-file", "-s", "items", "-k", "2", "--users-file", str(users)).stdout)
    assert made["status"] == "ACTIVE" and made["users_given"] == 3, made
    path = world.client.batch_inference_jobs.download(world.group, "from-file", dest=tmp_path)
    answered = list(dict.fromkeys(pq.read_table(path).column("user_id").to_pylist()))
    assert answered == [*world.users[:2], "u-é"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("u1\nu-é\n".encode("latin-1"))
    failed = run(env, "batch-inference-jobs", "create", "-g", world.group, "-n", "latin", "-s", "items",
                 "--users-file", str(latin), check=False)
    assert failed.returncode != 0 and f"{latin}, line 2: not UTF-8" in failed.stderr, failed.stderr
