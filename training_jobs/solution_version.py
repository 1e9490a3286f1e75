"""The solution version job: data from the store → split → Ray Train → evaluation → artifact.

One version, start to end (run as a Ray task by the control plane, `version_task`):

1. Read the current snapshot of every dataset the recipe uses, and record the snapshot ids on the
   version (a version is reproducible from them). Refuse data too thin to learn from.
2. Split for offline evaluation (`EvaluationConfig`): a temporal hold-out (the latest
   interactions of a seeded sample of users) or the item cold-start split of the HRNN-meta
   paper's Table 7. The split is described on the version.
3. Train on the training part with `training_jobs.train.train_recipe` (Ray Train TorchTrainer,
   checkpoints every epoch under the version's `checkpoints/`; a restarted worker group resumes).
   Rank 0 writes the progress (epoch, loss, events/s) to the version and reads stop requests.
4. Evaluate the trained predictor on the held-out part next to the baselines (popularity; uniform
   random in cold start), write `metrics.json` and the portable artifact to `model/`.

Status: CREATE_PENDING → CREATE_IN_PROGRESS → ACTIVE | CREATE_FAILED; a stop request makes it
CREATE_STOPPING → CREATE_STOPPED at the next epoch end (or phase boundary).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from recipes import get_recipe
from recipes.base import Query, RecipeSpec
from sdk.types import DatasetKind, EvaluationConfig, Role, ScalingConfig, Schema, Status
from store import Keys, NotFound, Store, StoreConfig, dump_json, now_iso
from store.snapshots import open_snapshot, read_current

from .evaluation import (
    DEFAULT_KS,
    Split,
    cold_start_split,
    compare,
    evaluate_popularity,
    perplexity,
    ranking_metrics,
    smooth_log_probs,
    temporal_holdout,
    uniform_random_metrics,
)
from .train import ScalingSpec, train_recipe

__all__ = ["MIN_INTERACTIONS", "MIN_ACTIVE_USERS", "VersionFailed", "run_version", "version_task",
           "check_trainable"]

log = logging.getLogger("tagrec.versions")

# Personalize's floor: below this a model learns nothing a popularity list would not.
MIN_INTERACTIONS = 1000
MIN_ACTIVE_USERS = 25  # users with at least 2 interactions
HEARTBEAT_S = 5.0
OPEN = (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value, Status.CREATE_STOPPING.value)


class VersionFailed(Exception):
    """The version cannot be trained; the message is its failure_reason."""


class _Stopped(Exception):
    """A stop was requested."""


class _Ended(Exception):
    """Someone else ended or deleted the version record (reaped as dead, group deleted)."""


class _Record:
    """The version record, updated only while it is open."""

    def __init__(self, store: Store, key: str) -> None:
        self.registry, self.key = store.registry, key

    def set(self, progress: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Update open fields; `progress` is merged into the stored progress (same swap)."""
        def mutate(d: dict[str, Any]) -> dict[str, Any]:
            if d["status"] not in OPEN:
                raise _Ended(d["status"])
            out = {**d, **fields, "updated_at": now_iso()}
            if progress:
                out["progress"] = {**d.get("progress", {}), **progress}
            if d["status"] == Status.CREATE_STOPPING.value and "status" in fields:
                # A stop request is never overwritten; a version finishing under one stopped.
                done = fields["status"] in (Status.ACTIVE.value, Status.CREATE_STOPPED.value)
                out["status"] = Status.CREATE_STOPPED.value if done else d["status"]
            return out

        try:
            return self.registry.update(self.key, mutate)
        except NotFound:
            raise _Ended("deleted") from None

    def stopping(self) -> bool:
        try:
            return self.registry.read(self.key)["status"] == Status.CREATE_STOPPING.value
        except NotFound:
            return True


class EpochProgress:
    """The on_epoch callback sent to the Ray Train workers: writes the epoch's figures to the
    version record and answers whether a stop was requested (pickles: plain fields only)."""

    def __init__(self, store_config: dict[str, Any], key: str) -> None:
        self.store_config, self.key = store_config, key

    def __call__(self, metrics: dict[str, Any]) -> bool:
        seconds = float(metrics.get("seconds") or 0.0)
        try:
            record = _Record(Store(StoreConfig(**self.store_config)), self.key)
            record.set(progress={
                "phase": "training", "epoch": int(metrics["epoch"]) + 1,
                "epochs": int(metrics["epochs"]), "loss": float(metrics["loss"]),
                "events_per_second": (metrics["events"] / seconds) if seconds > 0 else None,
                "resumed_from_epoch": metrics.get("resumed_from_epoch")})
            return record.stopping()
        except _Ended:
            return True
        except Exception:  # a store blip must not count as a worker failure: train on
            log.warning("could not record the progress of %s", self.key, exc_info=True)
            return False


def check_trainable(spec: RecipeSpec, store: Store, keys: Keys, group: str
                    ) -> dict[DatasetKind, Any]:
    """The current snapshot manifest of each dataset the recipe can use; VersionFailed naming
    what is missing (a required dataset, a role in its schema, any data at all)."""
    manifests: dict[DatasetKind, Any] = {}
    for kind, roles in {**spec.optional, **spec.required}.items():
        required = kind in spec.required
        try:
            doc = store.registry.read(keys.dataset_record(group, kind.value))
        except NotFound:
            if required:
                raise VersionFailed(
                    f"recipe {spec.id!r} needs an {kind.value} dataset in dataset group {group!r}; "
                    f"create it and import data first") from None
            continue
        schema = Schema.model_validate(doc["schema"])
        missing = [r.value for r in roles if schema.field_for(r) is None]
        if missing and required:
            raise VersionFailed(f"recipe {spec.id!r} needs the {kind.value} dataset to have a field "
                                f"with role {', '.join(missing)}")
        manifest = read_current(store.backend, keys, group, kind.value)
        if manifest is None or manifest.rows == 0:
            if required:
                raise VersionFailed(f"the {kind.value} dataset of {group!r} has no data yet: "
                                    f"run an import job first")
            continue
        manifests[kind] = manifest
    interactions = manifests.get(DatasetKind.INTERACTIONS)
    if interactions is not None and interactions.rows < MIN_INTERACTIONS:
        raise VersionFailed(f"too little data to train: the interactions dataset has "
                            f"{interactions.rows} interactions, at least {MIN_INTERACTIONS} are needed")
    return manifests


def _active_users(interactions: pa.Table, user_col: str) -> int:
    counts = interactions.group_by(user_col).aggregate([(user_col, "count")])
    return int(pc.sum(pc.greater_equal(counts.column(f"{user_col}_count"), 2)).as_py() or 0)


def _histories(split: Split, cols: Mapping[str, str | None]) -> tuple[list[Any], list[list[tuple]]]:
    """Each test user's history as (item, seconds, event_type, event_value) tuples, oldest first."""
    users = split.test_users
    groups = [split.test_histories[u] for u in users]
    rows = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)
    taken = split.train.take(pa.array(rows))
    items = taken.column(cols["item"]).to_pylist()
    secs = (taken.column(cols["time"]).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            .to_numpy(zero_copy_only=False) / 1000.0).tolist()
    types = taken.column(cols["event_type"]).to_pylist() if cols["event_type"] else [None] * len(rows)
    values = taken.column(cols["event_value"]).to_pylist() if cols["event_value"] else [None] * len(rows)
    out, start = [], 0
    for g in groups:
        end = start + len(g)
        out.append(list(zip(items[start:end], secs[start:end], types[start:end], values[start:end])))
        start = end
    return users, out


def _first_held_time(split: Split, users: list[Any]) -> list[float]:
    """Each test user's first held-out event time (the request time of the hold-out)."""
    first = split.held_out.group_by(split.user_col).aggregate([(split.time_col, "min")])
    stamps = first.column(f"{split.time_col}_min").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    at = dict(zip(first.column(split.user_col).to_pylist(), (stamps.to_numpy() / 1000.0).tolist()))
    return [at[u] for u in users]


def evaluate_version(predictor: Any, split: Split, evaluation: EvaluationConfig,
                     cols: Mapping[str, str | None]) -> dict[str, Any]:
    """Model metrics on the split next to the baselines: `compare()`'s document."""
    users, histories = _histories(split, cols)
    cold = split.candidates is not None
    if cold:  # the request comes after the last training event the user has
        times = [h[-1][1] if h else 0.0 for h in histories]
    else:
        times = _first_held_time(split, users)
    catalog = len(predictor.featurizer.item_ids)
    candidates = None if split.candidates is None else list(split.candidates)
    queries = [Query(history=h, user_id=u, time=t, candidates=candidates, num_results=evaluation.depth,
                     exclude=() if cold else {str(e[0]) for e in h})
               for u, h, t in zip(users, histories, times)]
    answers = predictor.predict_batch(queries)  # what a campaign replica calls
    ranked = {u: a.ids for u, a in zip(users, answers)}
    model = ranking_metrics(ranked, split.test_targets, DEFAULT_KS, catalog_size=catalog)
    if cold:
        return compare(model, uniform_random_metrics(split, DEFAULT_KS), baseline="random")
    log_p = predictor.target_log_probs(histories, [split.test_targets[u] for u in users],
                                       user_ids=users, request_times=times)
    model["perplexity"] = perplexity(smooth_log_probs(log_p, catalog))
    popularity = evaluate_popularity(split, DEFAULT_KS, catalog_size=catalog, depth=evaluation.depth)
    return compare(model, popularity, baseline="popularity")


def run_version(store: Store, tenant: str, group: str, solution: str, version: str, *,
                workdir: Path | None = None) -> dict[str, Any]:
    """Run one version to its end; returns the final record. Never raises for bad data."""
    keys = Keys(tenant)
    key = keys.version_record(group, solution, version)
    record = _Record(store, key)
    doc = store.registry.read(key)
    if doc["status"] == Status.CREATE_STOPPING.value:
        return record.set(status=Status.CREATE_STOPPED.value)
    if doc["status"] not in OPEN:
        return doc
    stop = threading.Event()
    done = threading.Event()

    def heartbeat() -> None:  # a live job keeps its record fresh; the reaper spares it
        while not done.wait(HEARTBEAT_S):
            try:
                record.set()
                if record.stopping():
                    stop.set()
            except _Ended:
                stop.set()
                return
            except Exception:  # noqa: BLE001 - a missed beat is retried
                log.warning("heartbeat of %s failed", key, exc_info=True)

    beat = threading.Thread(target=heartbeat, daemon=True, name=f"heartbeat-{version}")
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tagrec-version-", dir=workdir))

    def phase(name: str, **progress: Any) -> None:
        if stop.is_set() or record.stopping():
            raise _Stopped()
        record.set(status=Status.CREATE_IN_PROGRESS.value,
                   progress={"phase": name, **progress})

    try:
        beat.start()
        spec = get_recipe(doc["recipe"])
        evaluation = EvaluationConfig.model_validate(doc.get("evaluation_config") or {})
        scaling = ScalingConfig.model_validate(doc.get("scaling") or {})
        # 1. data
        phase("loading")
        t0 = time.perf_counter()
        manifests = check_trainable(spec, store, keys, group)
        tables = {k: open_snapshot(store.backend, m).to_table() for k, m in manifests.items()}
        schemas = {k: Schema.model_validate(store.registry.read(keys.dataset_record(group, k.value))
                                            ["schema"]) for k in manifests}
        record.set(snapshots={k.value: m.snapshot_id for k, m in manifests.items()})
        inter_schema = schemas[DatasetKind.INTERACTIONS]
        cols = {name: (f.name if (f := inter_schema.field_for(role)) else None) for name, role in (
            ("user", Role.USER_ID), ("item", Role.ITEM_ID), ("time", Role.TIMESTAMP),
            ("event_type", Role.EVENT_TYPE), ("event_value", Role.EVENT_VALUE))}
        interactions = tables[DatasetKind.INTERACTIONS]
        active = _active_users(interactions, cols["user"])
        if active < MIN_ACTIVE_USERS:
            raise VersionFailed(f"too little data to train: {active} users have 2 or more "
                                f"interactions, at least {MIN_ACTIVE_USERS} are needed")
        timings["load_seconds"] = time.perf_counter() - t0
        # 2. split
        t0 = time.perf_counter()
        if evaluation.mode == "item-cold-start":
            split = cold_start_split(interactions, tables.get(DatasetKind.ITEMS),
                                     item_col=cols["item"], user_col=cols["user"],
                                     time_col=cols["time"], fraction=0.5, seed=evaluation.seed)
        else:
            split = temporal_holdout(interactions, user_col=cols["user"], item_col=cols["item"],
                                     time_col=cols["time"], fraction=evaluation.test_fraction,
                                     min_users=evaluation.min_test_users,
                                     holdout_last=evaluation.holdout_last, seed=evaluation.seed)
        if not split.test_targets:
            raise VersionFailed("no user has enough interactions to hold any out for evaluation "
                                f"(each test user needs more than {evaluation.holdout_last})")
        record.set(evaluation=split.describe())
        timings["split_seconds"] = time.perf_counter() - t0
        # 3. train
        phase("training", epochs=doc["hyperparameters"].get("epochs"))
        t0 = time.perf_counter()
        version_prefix = keys.version(group, solution, version)
        result = train_recipe(
            spec.id, doc["hyperparameters"], {**tables, DatasetKind.INTERACTIONS: split.train},
            schemas=schemas, artifact_dir=tmp / "model",
            checkpoint_path=store.backend.path(f"{version_prefix}/checkpoints"),
            checkpoint_fs=store.backend.filesystem, run_name="train",
            scaling=ScalingSpec(workers=scaling.workers, cpus_per_worker=scaling.cpus_per_worker,
                                gpus_per_worker=scaling.gpus_per_worker,
                                max_failures=scaling.max_failures),
            on_epoch=EpochProgress(store.config.as_dict(), key))
        timings["train_seconds"] = time.perf_counter() - t0
        last = result.history[-1] if result.history else {}
        training = {"epochs": result.epochs, "events": result.events,
                    "events_per_second": last.get("events", 0) / max(last.get("seconds", 0), 1e-9),
                    "wall_seconds": result.train_seconds,
                    "resumed_from_epoch": result.resumed_from_epoch}
        record.set(training=training)
        if result.stopped:
            raise _Stopped()
        # 4. evaluate
        phase("evaluating")
        t0 = time.perf_counter()
        predictor = spec.predictor_cls.load(tmp / "model")
        report = evaluate_version(predictor, split, evaluation, cols)
        timings["evaluate_seconds"] = time.perf_counter() - t0
        # 5. save: the artifact, then the metrics, then the record says ACTIVE
        phase("saving")
        t0 = time.perf_counter()
        model_key = f"{version_prefix}/model"
        store.backend.delete_prefix(model_key)
        pafs.copy_files(str(tmp / "model"), store.backend.path(model_key),
                        source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=store.backend.filesystem)
        metrics_doc = {**report, "evaluation": split.describe(), "snapshots":
                       {k.value: m.snapshot_id for k, m in manifests.items()}, "training": training}
        store.backend.put(f"{version_prefix}/metrics.json", dump_json(metrics_doc, indent=2))
        store.backend.delete_prefix(f"{version_prefix}/checkpoints")
        timings["save_seconds"] = time.perf_counter() - t0
        timings["total_seconds"] = time.perf_counter() - t_start
        if stop.is_set() or record.stopping():
            raise _Stopped()
        return record.set(status=Status.ACTIVE.value, metrics=report["model"],
                          baselines=report["baselines"], lift=report["lift"],
                          metrics_unavailable=report["unavailable"] or None, timings=timings,
                          artifact_uri=f"{store.config.uri.rstrip('/')}/{model_key}",
                          progress={"phase": "done"})
    except _Ended:
        return store.registry.read(key) if store.backend.exists(key) else doc
    except _Stopped:
        return _finish(record, key, store, doc, status=Status.CREATE_STOPPED.value, timings=timings)
    except (VersionFailed, ValueError) as e:
        return _finish(record, key, store, doc, status=Status.CREATE_FAILED.value,
                       failure_reason=str(e), timings=timings)
    except Exception as e:  # training crashed past its retries, the store failed, our bug
        log.exception("version %s failed", key)
        first = (str(e).strip().splitlines() or [""])[-1][:500]
        return _finish(record, key, store, doc, status=Status.CREATE_FAILED.value,
                       failure_reason=f"training failed: {type(e).__name__}: {first}",
                       timings=timings)
    finally:
        done.set()
        shutil.rmtree(tmp, ignore_errors=True)


def _finish(record: _Record, key: str, store: Store, doc: dict[str, Any], **fields: Any
            ) -> dict[str, Any]:
    """End the version; a stop request wins over a failure that follows it."""
    if fields.get("status") == Status.CREATE_FAILED.value and record.stopping():
        fields = {**fields, "status": Status.CREATE_STOPPED.value}
    try:
        return record.set(**fields)
    except _Ended:
        return store.registry.read(key) if store.backend.exists(key) else doc


def version_task(store_config: dict[str, Any], tenant: str, group: str, solution: str,
                 version: str) -> str:
    """Entry point for the Ray task (plain arguments so it pickles cheaply)."""
    store = Store(StoreConfig(**store_config))
    return run_version(store, tenant, group, solution, version)["status"]
