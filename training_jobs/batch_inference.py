"""The batch inference job: a solution version's answers for many users, as Parquet in the store.

One job, start to end (run as a Ray task by the control plane, `batch_inference_task`):

1. Load the version's artifact into its recipe's predictor (`Predictor.load`, as a campaign replica
   does) and read the interactions snapshot the version trained on (recorded as `snapshot_id`).
2. The users: the job's list (`users.json`), else every user of that snapshot, sorted. Each one's
   latest events come from the snapshot, kept as a campaign replica keeps them
   (`recipes.queries.Histories`, the predictor's `max_history`).
3. Ask the predictor in chunks through `predict_batch`, each user's query built exactly as a
   campaign builds the query of that user's request (`recipes.queries.request_query`: a
   ``recommend`` request for next-item, excluding the items seen; ``recommend-tags`` for
   user-tags), all at one request time (`as_of`: the job's start). A user the model does not know
   gets the task's fallback, flagged.
4. Write `answers.parquet` (user_id, rank, item_id or tag, score, fallback) and, for user-tags,
   `segments.parquet` (tag, rank, user_id, score: `build_segments`) under a key of this run only.
   The record names the outputs (with their row counts) once both are written, in the same
   update that makes it ACTIVE: a failed or killed job never shows a partial output.

Status: CREATE_PENDING → CREATE_IN_PROGRESS (progress: users done / total) → ACTIVE |
CREATE_FAILED (failure_reason). The move to CREATE_IN_PROGRESS claims the record for one run (its
`run` id, which also names its output key); a run that finds the record no longer its own stops,
publishes nothing and removes its files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recipes import get_recipe
from recipes.base import Answer, Predictor, RecipeSpec
from recipes.queries import Histories, history_length, request_query
from sdk.types import VERB_REQUESTS, Role, Schema, Status
from store import Keys, NotFound, Store, StoreConfig, now_iso
from store.snapshots import open_snapshot, read_manifest

__all__ = ["batch_inference_task", "build_segments", "run_batch_inference"]

log = logging.getLogger("tagrec.batch")

CHUNK_USERS = 256  # users per predict_batch call (a campaign batches 16 requests)
HEARTBEAT_S = 5.0
PROGRESS_EVERY_S = 1.0
_COMPACT_ROWS = 1_000_000  # answer rows held before the segments are cut down to their top users
# The campaign verb whose request each task's user answers, and the answers' id column.
_VERBS = {"next-item": ("recommend", "item_id"), "user-tags": ("recommend-tags", "tag")}
SEGMENTS_SCHEMA = pa.schema([("tag", pa.string()), ("rank", pa.int32()), ("user_id", pa.string()),
                             ("score", pa.float64())])


class _Failed(Exception):
    """The job cannot run; the message is its failure_reason."""


class _Ended(Exception):
    """The record is not this run's (any more): ended by someone else (reaped as dead), deleted,
    recreated under the same name, or claimed by another run. The run stops quietly."""


class _Record:
    """The job record as one run holds it: `claim` takes a PENDING record for the run (its id is
    stored on it), and every `set` after checks the id, so a run whose record was ended, deleted or
    recreated under the same name (or taken by another run) stops instead of writing into it."""

    def __init__(self, store: Store, key: str, run: str) -> None:
        self.registry, self.key, self.run = store.registry, key, run

    def claim(self, **fields: Any) -> dict[str, Any]:
        def mutate(d: dict[str, Any]) -> dict[str, Any]:
            if d["status"] != Status.CREATE_PENDING.value:
                raise _Ended(d["status"])
            return {**d, **fields, "status": Status.CREATE_IN_PROGRESS.value, "run": self.run,
                    "updated_at": now_iso()}

        return self._update(mutate)

    def set(self, **fields: Any) -> dict[str, Any]:
        def mutate(d: dict[str, Any]) -> dict[str, Any]:
            if d["status"] != Status.CREATE_IN_PROGRESS.value or d.get("run") != self.run:
                raise _Ended(d["status"])
            return {**d, **fields, "updated_at": now_iso()}

        return self._update(mutate)

    def _update(self, mutate: Any) -> dict[str, Any]:
        try:
            return self.registry.update(self.key, mutate)
        except NotFound:
            raise _Ended("deleted") from None


def answers_schema(target: str) -> pa.Schema:
    """The answers' columns; `target` is ``item_id`` (next-item) or ``tag`` (user-tags)."""
    return pa.schema([("user_id", pa.string()), ("rank", pa.int32()), (target, pa.string()),
                      ("score", pa.float64()), ("fallback", pa.bool_())])


def build_segments(rows: pa.Table, segment_size: int) -> pa.Table:
    """For each tag, the users holding it, best score first (ties by user id, no score last), at
    most `segment_size`, ranked from 1 (`SEGMENTS_SCHEMA`, by tag then rank).

    `rows` has columns tag, user_id, score: a user-tags job's answers without their fallback rows
    (a fallback answer is no profile of the user), or earlier segments plus more answers (a
    union's top users are the top users of its parts' top users).
    """
    if rows.num_rows == 0:
        return SEGMENTS_SCHEMA.empty_table()
    t = rows.select(["tag", "user_id", "score"]).sort_by(
        [("tag", "ascending"), ("score", "descending"), ("user_id", "ascending")])
    n = t.num_rows
    tags = t.column("tag").combine_chunks()
    changed = pc.fill_null(pc.not_equal(tags.slice(1), tags.slice(0, n - 1)), True)
    starts = np.flatnonzero(np.concatenate(([True], changed.to_numpy(zero_copy_only=False))))
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n))) + 1
    keep = rank <= segment_size
    kept = t.filter(pa.array(keep))
    return pa.table([kept.column("tag"), pa.array(rank[keep], pa.int32()), kept.column("user_id"),
                     kept.column("score").cast(pa.float64())], schema=SEGMENTS_SCHEMA)


class _Segments:
    """The segments of a stream of answers, cut down to the top users every `_COMPACT_ROWS` rows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.top = SEGMENTS_SCHEMA.empty_table().select(["tag", "user_id", "score"])
        self.pending: list[pa.Table] = []
        self.rows = 0

    def add(self, answers: pa.Table) -> None:
        rows = answers.filter(pc.invert(answers.column("fallback"))).select(["tag", "user_id", "score"])
        self.pending.append(rows)
        self.rows += rows.num_rows
        if self.rows >= _COMPACT_ROWS:
            self.table()

    def table(self) -> pa.Table:
        segments = build_segments(pa.concat_tables([self.top, *self.pending]), self.size)
        self.top, self.pending, self.rows = segments.select(["tag", "user_id", "score"]), [], 0
        return segments


def _answer_rows(users: Sequence[str], answers: Sequence[Answer], target: str) -> pa.Table:
    user, rank, ids, score, fallback = [], [], [], [], []
    for u, a in zip(users, answers):
        for r, (i, s) in enumerate(a.ranked, 1):
            user.append(u)
            rank.append(r)
            ids.append(str(i))
            score.append(None if s is None else float(s))
            fallback.append(bool(a.fallback))
    return pa.table([pa.array(user, pa.string()), pa.array(rank, pa.int32()), pa.array(ids, pa.string()),
                     pa.array(score, pa.float64()), pa.array(fallback, pa.bool_())],
                    schema=answers_schema(target))


def _load_predictor(store: Store, keys: Keys, group: str, doc: dict[str, Any], spec: RecipeSpec,
                    tmp: Path) -> Predictor:
    """The version's artifact, copied out of the store and loaded (as a campaign replica does)."""
    prefix = f"{keys.version(group, doc['solution'], doc['solution_version'])}/model"
    try:
        pafs.copy_files(store.backend.path(prefix), str(tmp / "model"),
                        source_filesystem=store.backend.filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        return spec.predictor_cls.load(tmp / "model")
    except FileNotFoundError:
        raise _Failed(f"the model of solution version {doc['solution_version']!r} is gone (its "
                      f"solution was deleted)") from None


def _version(store: Store, keys: Keys, group: str, doc: dict[str, Any]) -> dict[str, Any]:
    what = f"solution version {doc['solution_version']!r} of solution {doc['solution']!r}"
    try:
        version = store.registry.read(keys.version_record(group, doc["solution"], doc["solution_version"]))
    except NotFound:
        raise _Failed(f"{what} is gone (deleted)") from None
    if version["status"] != Status.ACTIVE.value:
        raise _Failed(f"{what} is {version['status']}, not ACTIVE")
    return version


def _users(store: Store, keys: Keys, group: str, doc: dict[str, Any], histories: Histories) -> list[str]:
    """The job's users, in its list's order; else every user of the snapshot, sorted."""
    if doc.get("users_given") is None:
        return sorted(histories.index)
    try:
        data, _ = store.backend.get(keys.batch_inference_users(group, doc["name"]))
    except FileNotFoundError:
        raise _Failed("the job's list of users is missing from the store; create the job again") from None
    return list(dict.fromkeys(json.loads(data)))


def run_batch_inference(store: Store, tenant: str, group: str, job: str, *,
                        workdir: Path | None = None) -> dict[str, Any]:
    """Run one batch inference job to its end; returns the final record. Never raises for bad data."""
    keys = Keys(tenant)
    key = keys.batch_inference_job(group, job)
    run = f"run-{uuid.uuid4().hex[:16]}"
    record = _Record(store, key, run)
    doc = store.registry.read(key)
    done = threading.Event()

    def heartbeat() -> None:  # a live job keeps its record fresh; the reaper spares it
        while not done.wait(HEARTBEAT_S):
            try:
                record.set()
            except _Ended:
                return
            except Exception:  # noqa: BLE001 - a missed beat is retried
                log.warning("heartbeat of %s failed", key, exc_info=True)

    tmp = Path(tempfile.mkdtemp(prefix="tagrec-batch-", dir=workdir))
    beat = threading.Thread(target=heartbeat, daemon=True, name=f"heartbeat-{job}")
    try:
        as_of = time.time()
        record.claim(as_of=as_of)  # only from PENDING: one run per record, ever
        beat.start()
        version = _version(store, keys, group, doc)
        spec = get_recipe(version["recipe"])
        if spec.task.value not in _VERBS:
            raise _Failed(f"solution {doc['solution']!r} is of task {spec.task.value}: batch "
                          f"inference answers next-item and user-tags solutions")
        snapshot_id = (version.get("snapshots") or {}).get("interactions")
        if not snapshot_id:
            raise _Failed(f"solution version {doc['solution_version']!r} names no interactions "
                          f"snapshot; train a new version")
        try:  # the store's FileNotFoundError names a path: say which data is missing instead
            manifest = read_manifest(store.backend, keys, group, "interactions", snapshot_id)
            events = open_snapshot(store.backend, manifest).to_table()
        except FileNotFoundError:
            raise _Failed(f"snapshot {snapshot_id} of the interactions dataset, which the version trained "
                          f"on, is gone (the dataset was deleted); import the interactions again and "
                          f"train a new version") from None
        predictor = _load_predictor(store, keys, group, doc, spec, tmp)
        histories = Histories(events, Schema.model_validate(manifest.schema), history_length(predictor),
                              Role.USER_ID)
        users = _users(store, keys, group, doc, histories)
        record.set(snapshot_id=snapshot_id, progress={"users_done": 0, "users_total": len(users)})
        outputs = _answer_all(store, keys, group, doc, run, spec.task.value, predictor, histories, users,
                              as_of, record)
        return record.set(status=Status.ACTIVE.value, outputs=outputs, failure_reason=None,
                          progress={"users_done": len(users), "users_total": len(users)})
    except _Ended:
        _discard(store, keys, group, job, run)
        return store.registry.read(key) if store.backend.exists(key) else doc
    except (_Failed, ValueError) as e:
        return _fail(store, keys, group, job, run, record, doc, str(e))
    except Exception as e:  # the store failed, the predictor crashed, our bug
        log.exception("batch inference job %s failed", key)
        first = (str(e).strip().splitlines() or [""])[-1][:500]
        return _fail(store, keys, group, job, run, record, doc,
                     f"batch inference failed: {type(e).__name__}: {first}")
    finally:
        done.set()
        shutil.rmtree(tmp, ignore_errors=True)


def _answer_all(store: Store, keys: Keys, group: str, doc: dict[str, Any], run: str, task: str,
                predictor: Predictor, histories: Histories, users: list[str], as_of: float,
                record: _Record) -> dict[str, Any]:
    """Every user's answer into `answers` (and `segments`) of `run`; the outputs' descriptions."""
    verb, target = _VERBS[task]
    request = VERB_REQUESTS[verb]
    n = int(doc["num_results"])
    segments = _Segments(int(doc["segment_size"])) if task == "user-tags" else None
    written: dict[str, tuple[str, int]] = {}
    answers_key = keys.batch_inference_output(group, doc["name"], run, "answers")
    stream = store.backend.open_output(answers_key)
    rows, last = 0, time.monotonic()
    try:
        with pq.ParquetWriter(stream, answers_schema(target), compression="zstd") as writer:
            for start in range(0, len(users), CHUNK_USERS):
                chunk = users[start:start + CHUNK_USERS]
                # The request a campaign would get for this user, with the contract's defaults.
                queries = [request_query(verb, request.model_construct(user_id=u, num_results=n),
                                         histories.get(u), as_of) for u in chunk]
                part = _answer_rows(chunk, predictor.predict_batch(queries), target)
                writer.write_table(part)
                rows += part.num_rows
                if segments is not None:
                    segments.add(part)
                if time.monotonic() - last >= PROGRESS_EVERY_S:
                    last = time.monotonic()
                    record.set(progress={"users_done": start + len(chunk), "users_total": len(users)})
    finally:
        stream.close()
    written["answers"] = (answers_key, rows)
    if segments is not None:
        table = segments.table()
        segments_key = keys.batch_inference_output(group, doc["name"], run, "segments")
        with store.backend.open_output(segments_key) as out:
            pq.write_table(table, out, compression="zstd")
        written["segments"] = (segments_key, table.num_rows)
    fs = store.backend.filesystem  # where they are stays private: tenants download them by name
    return {name: {"rows": n_rows, "size_bytes": fs.get_file_info(store.backend.path(k)).size}
            for name, (k, n_rows) in written.items()}


def _discard(store: Store, keys: Keys, group: str, job: str, run: str) -> None:
    """Remove a run's files (never named by the record; best effort)."""
    try:
        store.backend.delete_prefix(f"{keys.batch_inference_files(group, job)}/{run}")
    except Exception:  # noqa: BLE001 - unreferenced files only
        log.warning("could not remove the files of %s/%s", job, run, exc_info=True)


def _fail(store: Store, keys: Keys, group: str, job: str, run: str, record: _Record,
          doc: dict[str, Any], reason: str) -> dict[str, Any]:
    _discard(store, keys, group, job, run)
    key = keys.batch_inference_job(group, job)
    try:
        return record.set(status=Status.CREATE_FAILED.value, failure_reason=reason)
    except _Ended:
        return store.registry.read(key) if store.backend.exists(key) else doc


def batch_inference_task(store_config: dict[str, Any], tenant: str, group: str, job: str) -> str:
    """Entry point for the Ray task (plain arguments so it pickles cheaply)."""
    store = Store(StoreConfig(**store_config))
    return run_batch_inference(store, tenant, group, job)["status"]
