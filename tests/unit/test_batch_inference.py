"""Batch inference without Ray: the segment builder by hand, and the job run in this process over a
local-folder store holding what a finished version leaves (a tag-popularity artifact fitted here,
the interactions snapshot it trained on, the ACTIVE record): the answers are the predictor's for
each user's history, the segments their inverse, an unknown user is flagged, a job that fails
(mid-way too) publishes nothing, a run whose record is no longer its own (reaped and recreated,
or claimed by another run) writes nothing into it; and the control plane over a real socket: a
job's outputs are named without the store's location, an output deleted mid-download is a 404."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recipes import get_recipe
from recipes.base import Query, save_artifact
from sdk.types import MAX_NUM_RESULTS, RecommendRequest, TagsRequest
from store import Keys, Store, StoreConfig, now_iso
from store.snapshots import Manifest, SnapshotWriter, new_snapshot_id, publish
from store.tables import arrow_schema
from tests.conftest import free_port, wait_http
from tests.unit.test_user_item_tags import SCHEMA, SCHEMAS, hetrec_like
from training_jobs import batch_inference
from training_jobs.batch_inference import build_segments, run_batch_inference
from training_jobs.loop import fit_in_process

T, G, S, V = "t", "g", "profiles", "v-0000000000000001"


def _rows(*rows: tuple[str, str, float | None]) -> pa.Table:
    tags, users, scores = zip(*rows)
    return pa.table({"tag": pa.array(tags, pa.string()), "user_id": pa.array(users, pa.string()),
                     "score": pa.array(scores, pa.float64())})


def test_segments_by_hand() -> None:
    rows = _rows(("b", "u1", 2.0), ("a", "u1", 0.5), ("a", "u3", 0.9), ("a", "u4", None), ("a", "u2", 0.9))
    got = build_segments(rows, 3)
    assert got.schema == batch_inference.SEGMENTS_SCHEMA
    # best score first, a tie by user id, no score last (here cut off at 3), ranks per tag from 1
    assert got.to_pylist() == [
        {"tag": "a", "rank": 1, "user_id": "u2", "score": 0.9},
        {"tag": "a", "rank": 2, "user_id": "u3", "score": 0.9},
        {"tag": "a", "rank": 3, "user_id": "u1", "score": 0.5},
        {"tag": "b", "rank": 1, "user_id": "u1", "score": 2.0}]
    assert build_segments(rows, 10).column("user_id").to_pylist() == ["u2", "u3", "u1", "u4", "u1"]
    assert build_segments(rows.slice(0, 0), 3).num_rows == 0


def test_segments_of_parts_are_the_segments_of_the_whole() -> None:
    """The job cuts its segments down as answers stream in: the top users of (the top users of a
    first part) + a second part are the top users of both parts."""
    rng = np.random.default_rng(3)
    n = 5000
    rows = _rows(*zip([f"t{i}" for i in rng.integers(40, size=n)], [f"u{i}" for i in range(n)],
                      rng.integers(0, 20, size=n) / 4.0))
    whole = build_segments(rows, 7)
    parts = build_segments(pa.concat_tables([build_segments(rows.slice(0, 1234), 7).drop(["rank"]),
                                             rows.slice(1234)]), 7)
    assert parts.equals(whole)
    assert max(whole.column("rank").to_pylist()) == 7


def test_streamed_segments_leave_fallback_answers_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_inference, "_COMPACT_ROWS", 3)  # cut down after every few rows
    segments = batch_inference._Segments(2)
    answers = [_rows(("a", "u1", 1.5), ("b", "u1", 1.2)), _rows(("a", "u2", 0.3), ("b", "u2", 0.2)),
               _rows(("a", "u3", 1.9), ("c", "u3", 1.1))]
    for i, part in enumerate(answers):
        segments.add(part.append_column("fallback", pa.array([i == 1] * part.num_rows)))
    assert [(r["tag"], r["user_id"]) for r in segments.table().to_pylist()] == [
        ("a", "u3"), ("a", "u1"), ("b", "u1"), ("c", "u3")]


def test_a_batch_asks_for_at_most_what_a_campaign_request_may() -> None:
    for model in (RecommendRequest, TagsRequest):
        assert model.model_json_schema()["properties"]["num_results"]["maximum"] == MAX_NUM_RESULTS


# ---- the job, in process ----------------------------------------------------------------------

@dataclass
class World:
    store: Store
    keys: Keys
    table: pa.Table
    artifact: Path
    snapshot_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("batch")
    store = Store(StoreConfig(uri=f"file://{root / 'store'}"))
    keys = Keys(T)
    table = hetrec_like(seed=5, n_users=60, n_items=40, n_events=1500).cast(arrow_schema(SCHEMA))
    snapshot_id = new_snapshot_id()
    writer = SnapshotWriter(store.backend, keys, G, "interactions", snapshot_id, arrow_schema(SCHEMA))
    writer.write(table.combine_chunks().to_batches()[0])
    publish(store.backend, keys, G, "interactions", snapshot_id, writer.close(), writer.rows,
            SCHEMA.model_dump(mode="json", by_alias=True), "full")
    spec = get_recipe("tag-popularity")
    config, featurizer, model = fit_in_process(spec, {}, {k: table for k in SCHEMAS}, schemas=SCHEMAS)
    artifact = root / "model"
    save_artifact(artifact, spec, config, featurizer, model)
    shutil.copytree(artifact, store.backend.path(f"{keys.version(G, S, V)}/model"))
    store.registry.create(keys.version_record(G, S, V), {
        "name": V, "dataset_group": G, "solution": S, "recipe": "tag-popularity", "status": "ACTIVE",
        "snapshots": {"interactions": snapshot_id}, "created_at": now_iso(), "updated_at": now_iso()})
    yield World(store, keys, table, artifact, snapshot_id)


def _job(w: World, name: str, users: list[str] | None = None, **fields: Any) -> None:
    if users is not None:
        w.store.backend.put(w.keys.batch_inference_users(G, name), json.dumps(users).encode())
    w.store.registry.create(w.keys.batch_inference_job(G, name), {
        "name": name, "dataset_group": G, "solution": S, "solution_version": V, "recipe": "tag-popularity",
        "task": "user-tags", "num_results": 5, "segment_size": 4,
        "users_given": None if users is None else len(users), "status": "CREATE_PENDING",
        "progress": {"users_done": 0, "users_total": None}, "outputs": {}, "created_at": now_iso(),
        "updated_at": now_iso(), **fields})


def _output(w: World, doc: dict[str, Any], output: str) -> list[dict[str, Any]]:
    key = w.keys.batch_inference_output(G, doc["name"], doc["run"], output)
    table = pq.read_table(w.store.backend.path(key))
    assert table.num_rows == doc["outputs"][output]["rows"]
    return table.to_pylist()


def _histories(table: pa.Table, keep: int) -> dict[str, list[tuple[Any, ...]]]:
    """Each user's latest events, built by hand from the table (as the campaign's history holds them)."""
    by_user: dict[str, list[tuple[Any, ...]]] = {}
    for r in sorted(table.to_pylist(), key=lambda r: r["timestamp"]):
        by_user.setdefault(r["user_id"], []).append(
            (r["item_id"], r["timestamp"].timestamp(), r["event_type"], None, tuple(r["tags"])))
    return {u: events[-keep:] for u, events in by_user.items()}


def test_every_users_answer_and_the_segments(world: World) -> None:
    _job(world, "all")
    doc = run_batch_inference(world.store, T, G, "all")
    assert doc["status"] == "ACTIVE", doc.get("failure_reason")
    assert doc["snapshot_id"] == world.snapshot_id and set(doc["outputs"]) == {"answers", "segments"}
    predictor = get_recipe("tag-popularity").predictor_cls.load(world.artifact)
    histories = _histories(world.table, predictor.max_history)  # what the predictor reads
    assert doc["progress"] == {"users_done": len(histories), "users_total": len(histories)}
    answers = _output(world, doc, "answers")
    users = sorted(histories)
    assert list(dict.fromkeys(r["user_id"] for r in answers)) == users  # every user, sorted
    expected = predictor.predict_batch([Query(history=histories[u], user_id=u, time=doc["as_of"],
                                              num_results=5) for u in users])
    by_user: dict[str, list[tuple[str, float, bool]]] = {}
    for r in answers:
        assert r["rank"] == len(by_user.setdefault(r["user_id"], [])) + 1
        by_user[r["user_id"]].append((r["tag"], r["score"], r["fallback"]))
    assert by_user == {u: [(t, s, a.fallback) for t, s in a.ranked] for u, a in zip(users, expected)}
    # segments: per tag, the users whose answer holds it, best first, at most segment_size
    inverse: dict[str, list[tuple[float, str]]] = {}
    for r in answers:
        if not r["fallback"]:
            inverse.setdefault(r["tag"], []).append((-r["score"], r["user_id"]))
    segments = _output(world, doc, "segments")
    assert [(r["tag"], r["rank"], r["user_id"], r["score"]) for r in segments] == [
        (tag, rank, user, -neg) for tag in sorted(inverse)
        for rank, (neg, user) in enumerate(sorted(inverse[tag])[:4], 1)]


def test_a_list_of_users_with_an_unknown_one(world: World) -> None:
    known = sorted(_histories(world.table, 1))[:3]
    _job(world, "some", users=[known[2], "nobody-knows-me", known[0], known[2]])
    doc = run_batch_inference(world.store, T, G, "some")
    assert doc["status"] == "ACTIVE", doc.get("failure_reason")
    answers = _output(world, doc, "answers")
    assert list(dict.fromkeys(r["user_id"] for r in answers)) == [known[2], "nobody-knows-me", known[0]]
    assert {r["user_id"] for r in answers if r["fallback"]} == {"nobody-knows-me"}
    assert "nobody-knows-me" not in {r["user_id"] for r in _output(world, doc, "segments")}


def _files(w: World, job: str) -> list[str]:
    return list(w.store.backend.list(w.keys.batch_inference_files(G, job)))


def test_a_job_whose_snapshot_is_gone_fails_and_publishes_nothing(world: World) -> None:
    trained = world.store.registry.read(world.keys.version_record(G, S, V))
    world.store.registry.create(world.keys.version_record(G, S, "v-gone"), {
        **trained, "name": "v-gone", "snapshots": {"interactions": "20200101T000000-x"}})
    _job(world, "gone", solution_version="v-gone")
    doc = run_batch_inference(world.store, T, G, "gone")
    assert doc["status"] == "CREATE_FAILED" and "snapshot 20200101T000000-x" in doc["failure_reason"]
    assert doc["outputs"] == {} and _files(world, "gone") == []


def test_a_job_that_crashes_mid_way_publishes_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = get_recipe("tag-popularity").predictor_cls
    calls = []
    real = cls.predict_batch

    def flaky(self: Any, queries: Any) -> Any:
        calls.append(len(queries))
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(self, queries)

    monkeypatch.setattr(batch_inference, "CHUNK_USERS", 10)
    monkeypatch.setattr(cls, "predict_batch", flaky)
    _job(world, "crash")
    doc = run_batch_inference(world.store, T, G, "crash")
    assert len(calls) == 3
    assert doc["status"] == "CREATE_FAILED" and doc["failure_reason"] == \
        "batch inference failed: RuntimeError: boom"
    assert doc["outputs"] == {} and _files(world, "crash") == []


CONTROL_PLANE = """
import asyncio, json, sys
import httpx
from serving.app import create_app
from store import Keys, Store, StoreConfig, now_iso
from store.tenants import create_tenant

store = Store(StoreConfig(uri=sys.argv[1]))
api_key, keys, now = create_tenant(store.registry, "t"), Keys("t"), now_iso()
submitted = []
app = create_app(store, lambda *a: None, submit_batch_inference=lambda *a: submitted.append(list(a)))
store.registry.create(keys.group_record("g"), {"name": "g", "status": "ACTIVE", "created_at": now,
                                               "updated_at": now})
# the records a solution create and a finished training leave (creating them here would load the recipe)
store.registry.create(keys.solution_record("g", "s"), {"name": "s", "recipe": "tag-popularity",
                      "task": "user-tags", "status": "ACTIVE", "created_at": now, "updated_at": now})
store.registry.create(keys.version_record("g", "s", "v-1"), {"name": "v-1", "solution": "s",
                      "recipe": "tag-popularity", "status": "ACTIVE", "created_at": now, "updated_at": now})

async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp") as c:
        r = await c.post("/v1/dataset-groups/g/batch-inference-jobs",
                         headers={"Authorization": f"Bearer {api_key}"},
                         json={"name": "j", "solution": "s", "users": ["u2", "u1", "u2"]})
        return r.status_code, r.json()

status, job = asyncio.run(main())
users = json.loads(store.backend.get(keys.batch_inference_users("g", "j"))[0])
print(json.dumps({"status": status, "job": job, "users": users, "submitted": submitted,
                  "torch": "torch" in sys.modules, "ray": "ray" in sys.modules}))
"""


def test_the_control_plane_creates_a_job_without_torch(tmp_path: Path) -> None:
    """A create reads the solution's task from its record and hands the job to the runner: the
    control plane process never loads torch (or ray) for it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CONTROL_PLANE, f"file://{tmp_path / 'store'}"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["status"] == 201 and (out["torch"], out["ray"]) == (False, False), out
    job = out["job"]
    assert (job["status"], job["task"], job["solution_version"], job["segment_size"], job["users_given"]) == \
        ("CREATE_PENDING", "user-tags", "v-1", 100, 2)
    assert out["users"] == ["u2", "u1"] and out["submitted"] == [["t", "g", "j"]]


def test_a_killed_job_is_reported_in_the_platforms_words(tmp_path: Path) -> None:
    """The runner's watcher fails a job whose task died without saying so, naming the job."""
    from training_jobs.runner import ThreadJobRunner, _what, crash_reason

    class WorkerCrashedError(Exception):
        pass

    store = Store(StoreConfig(uri=f"file://{tmp_path}"))
    key = Keys(T).batch_inference_job(G, "j")
    store.registry.create(key, {"name": "j", "status": "CREATE_IN_PROGRESS", "updated_at": now_iso()})
    runner = ThreadJobRunner(store)
    runner._mark_failed_if_open(key, crash_reason(WorkerCrashedError("python-core-worker-1.log"), _what(key)))
    doc = store.registry.read(key)
    assert doc["status"] == "CREATE_FAILED"
    assert doc["failure_reason"].startswith("the batch inference job was stopped before it finished")
    with pytest.raises(RuntimeError, match="batch inference runs on Ray"):
        runner.submit_batch_inference(T, G, "j")
    runner.shutdown()


def test_a_job_whose_snapshot_files_are_gone_names_the_dataset(world: World) -> None:
    """The interactions dataset deleted while the job reads it (its manifest read, its parts gone):
    the failure names the dataset and the snapshot, never a path in the store."""
    snapshot_id = new_snapshot_id()
    prefix = world.keys.snapshot(G, "interactions", snapshot_id)
    world.store.backend.put(f"{prefix}/manifest.json", Manifest(
        snapshot_id, [f"{prefix}/part-00000.parquet"], 10, SCHEMA.model_dump(mode="json", by_alias=True),
        "full").to_json())
    trained = world.store.registry.read(world.keys.version_record(G, S, V))
    world.store.registry.create(world.keys.version_record(G, S, "v-parts-gone"), {
        **trained, "name": "v-parts-gone", "snapshots": {"interactions": snapshot_id}})
    model = world.store.backend.path(f"{world.keys.version(G, S, 'v-parts-gone')}/model")
    shutil.copytree(world.artifact, model)
    _job(world, "parts-gone", solution_version="v-parts-gone")
    doc = run_batch_inference(world.store, T, G, "parts-gone")
    assert doc["status"] == "CREATE_FAILED", doc
    reason = doc["failure_reason"]
    assert "interactions dataset" in reason and snapshot_id in reason, reason
    assert "FileNotFoundError" not in reason and "part-00000" not in reason and "/" not in reason, reason
    assert doc["outputs"] == {} and _files(world, "parts-gone") == []


# ---- a run owns its record: claimed from PENDING, checked on every write ------------------------

@dataclass
class Stall:
    """Starts runs that stall at their first predict_batch (as a run whose heartbeat stopped does)."""

    start: Callable[[str], Future[dict[str, Any]]]  # the job's run, once it stalled: its final record
    release: threading.Event  # lets every stalled run go on


@pytest.fixture
def stall(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stall]:
    cls = get_recipe("tag-popularity").predictor_cls
    real = cls.predict_batch
    stalled, release = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(1, thread_name_prefix="stalled-run")

    def predict(self: Any, queries: Any) -> Any:
        if threading.current_thread().name.startswith("stalled-run"):
            stalled.set()
            assert release.wait(60)
        return real(self, queries)

    def start(job: str) -> Future[dict[str, Any]]:
        future = pool.submit(run_batch_inference, world.store, T, G, job)
        assert stalled.wait(60), "the run never reached the predictor"
        return future

    monkeypatch.setattr(cls, "predict_batch", predict)
    try:
        yield Stall(start, release)
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_a_run_whose_job_was_recreated_writes_nothing_into_the_new_one(world: World, stall: Stall) -> None:
    """A run stalls, the reaper fails its job, the tenant deletes it and creates it again under the
    same name: when the old run wakes, it stops (publishing nothing, removing its files), and the
    new job's run does the work."""
    key = world.keys.batch_inference_job(G, "again")
    _job(world, "again")
    old = stall.start("again")
    old_run = world.store.registry.read(key).get("run")
    world.store.registry.update(key, lambda d: {**d, "status": "CREATE_FAILED", "failure_reason": "reaped"})
    world.store.backend.delete_prefix(world.keys.batch_inference_files(G, "again"))  # the delete route
    world.store.backend.delete(key)
    _job(world, "again")
    stall.release.set()
    old.result(60)
    doc = world.store.registry.read(key)
    assert (doc["status"], doc.get("run"), doc["outputs"]) == ("CREATE_PENDING", None, {}), doc
    assert _files(world, "again") == []  # the old run's answers went with it
    doc = run_batch_inference(world.store, T, G, "again")
    assert doc["status"] == "ACTIVE" and doc["run"] != old_run, doc
    assert _output(world, doc, "answers")
    assert {f.split("/")[-2] for f in _files(world, "again")} == {doc["run"]}


def test_a_second_run_of_a_claimed_job_does_nothing(world: World, stall: Stall) -> None:
    """Two tasks of one PENDING job (a submit retried): the first claims it, the second stops at once
    without touching the record, and the first finishes it."""
    key = world.keys.batch_inference_job(G, "twice")
    _job(world, "twice")
    first = stall.start("twice")
    claimed = world.store.registry.read(key)
    second = run_batch_inference(world.store, T, G, "twice")
    assert second == world.store.registry.read(key) == claimed
    assert claimed["status"] == "CREATE_IN_PROGRESS" and claimed["run"].startswith("run-")
    stall.release.set()
    doc = first.result(60)
    assert doc["status"] == "ACTIVE" and doc["run"] == claimed["run"], doc
    assert {f.split("/")[-2] for f in _files(world, "twice")} == {claimed["run"]}


# ---- the control plane over a real socket ------------------------------------------------------

@pytest.fixture(scope="module")
def control_plane(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    """The control plane app over the world's store, served by uvicorn on 127.0.0.1; its URL and
    the world tenant's headers."""
    import uvicorn

    from serving.app import create_app
    from store.tenants import create_tenant

    api_key = create_tenant(world.store.registry, T)
    now = now_iso()
    world.store.registry.create(world.keys.group_record(G), {"name": G, "status": "ACTIVE", "created_at": now,
                                                             "updated_at": now})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(world.store, lambda *a: None), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    yield url, {"Authorization": f"Bearer {api_key}"}
    server.should_exit = True
    thread.join(10)


def test_a_jobs_outputs_are_named_without_the_store(world: World,
                                                    control_plane: tuple[str, dict[str, str]]) -> None:
    """The tenant reads outputs through the download route: the job shows their rows and sizes, not
    the bucket or folder they are kept in."""
    url, headers = control_plane
    _job(world, "shown")
    assert run_batch_inference(world.store, T, G, "shown")["status"] == "ACTIVE"
    r = httpx.get(f"{url}/v1/dataset-groups/{G}/batch-inference-jobs/shown", headers=headers)
    assert r.status_code == 200, r.text
    assert set(r.json()["outputs"]) == {"answers", "segments"}
    assert all(set(o) == {"rows", "size_bytes"} for o in r.json()["outputs"].values()), r.json()
    assert world.store.backend.path("") not in r.text and "file://" not in r.text and "run-" not in r.text


def test_an_output_deleted_mid_download_is_a_404(world: World, control_plane: tuple[str, dict[str, str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The file goes between the download's look-up and its open (the job deleted meanwhile): the
    answer is the 404 of a missing output, not a 500."""
    url, headers = control_plane
    _job(world, "vanishing")
    doc = run_batch_inference(world.store, T, G, "vanishing")
    path = world.store.backend.path(world.keys.batch_inference_output(G, "vanishing", doc["run"], "answers"))
    real = world.store.backend.filesystem

    class DeletedAfterLookUp:  # the real filesystem; the file is removed right after it is looked up
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_file_info(self, p: Any) -> Any:
            info = real.get_file_info(p)
            if p == path:
                real.delete_file(path)
            return info

    monkeypatch.setattr(world.store.backend, "filesystem", DeletedAfterLookUp())
    r = httpx.get(f"{url}/v1/dataset-groups/{G}/batch-inference-jobs/vanishing/outputs/answers",
                  headers=headers)
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["field"] == "output" and "is gone" in err["message"] and "vanishing" in err["message"], err
