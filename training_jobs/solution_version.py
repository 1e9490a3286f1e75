"""The solution version job: data from the store → split → Ray Train → evaluation → artifact.

One version, start to end (run as a Ray task by the control plane, `version_task`):

1. Read the current snapshot of every dataset the recipe (and its task) uses, and record the
   snapshot ids on the version (a version is reproducible from them). Refuse data too thin to
   learn from, by the task's minimum-data rules (`sdk.tasks.Task.minimum`).
2. Split with the evaluation protocol (`training_jobs.evaluation.protocols`): the solution's
   `evaluation.mode`, one of the recipe's protocols (next-item: temporal hold-out or the HRNN-meta
   paper's item cold start; each tag task has its own). The split is described on the version.
3. Train on the training part with `training_jobs.train.train_recipe` (Ray Train TorchTrainer,
   checkpoints every epoch under the version's `checkpoints/`; a restarted worker group resumes;
   a count-based recipe is fitted without one). A recipe trained by epochs holds a validation part
   out of it (`training_jobs.validation`: the same protocol, `evaluation.validation_fraction`),
   is scored on it after every epoch, stops after `evaluation.patience` epochs without a better
   score and keeps its best epoch. Rank 0 writes the progress (epoch, loss, events/s) to the
   version and reads stop requests.
4. Evaluate the trained predictor with the protocol, through `predict_batch` (what a campaign
   calls), next to the task's baseline on the same cases.
5. Refit on all the data (`evaluation.refit`, the default) for the best epoch's number of epochs:
   the held-out part is the newest data, and the served model should know it, as a managed
   service's does; the recorded metrics are the evaluated model's (`served_model` says which model
   the artifact is). Then write `metrics.json` and the portable artifact to `model/`.

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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from recipes import get_recipe
from recipes.base import RecipeSpec
from sdk.tasks import Task, get_task
from sdk.types import DatasetKind, EvaluationConfig, ScalingConfig, Schema, Status
from store import Keys, NotFound, Store, StoreConfig, dump_json, now_iso
from store.snapshots import open_snapshot, read_current

from .evaluation.next_item import evaluate_version
from .evaluation.protocols import InsufficientData, get_protocol
from .train import ScalingSpec, train_recipe
from .validation import Validation, trains_by_epochs

__all__ = ["VersionFailed", "check_minimum", "check_trainable", "evaluate_version", "run_version",
           "version_task"]

log = logging.getLogger("tagrec.versions")

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

    def __init__(self, store_config: dict[str, Any], key: str, phase: str = "training") -> None:
        self.store_config, self.key, self.phase = store_config, key, phase

    def __call__(self, metrics: dict[str, Any]) -> bool:
        seconds = float(metrics.get("seconds") or 0.0)
        try:
            record = _Record(Store(StoreConfig(**self.store_config)), self.key)
            record.set(progress={
                "phase": self.phase, "epoch": int(metrics["epoch"]) + 1,
                "epochs": int(metrics["epochs"]), "loss": float(metrics["loss"]),
                "events_per_second": (metrics["events"] / seconds) if seconds > 0 else None,
                "resumed_from_epoch": metrics.get("resumed_from_epoch"),
                "validation_score": metrics.get("validation_score")})
            return record.stopping()
        except _Ended:
            return True
        except Exception:  # a store blip must not count as a worker failure: train on
            log.warning("could not record the progress of %s", self.key, exc_info=True)
            return False


def check_trainable(spec: RecipeSpec, store: Store, keys: Keys, group: str
                    ) -> dict[DatasetKind, Any]:
    """The current snapshot manifest of each dataset the recipe can use; VersionFailed naming
    what is missing (a required dataset, a role in its schema, any data at all, the task's
    minimum number of rows)."""
    task = get_task(spec.task)
    required = {**task.needs, **spec.required}
    manifests: dict[DatasetKind, Any] = {}
    for kind, roles in {**spec.optional, **required}.items():
        needed = kind in required
        try:
            doc = store.registry.read(keys.dataset_record(group, kind.value))
        except NotFound:
            if needed:
                raise VersionFailed(
                    f"recipe {spec.id!r} needs an {kind.value} dataset in dataset group {group!r}; "
                    f"create it and import data first") from None
            continue
        schema = Schema.model_validate(doc["schema"])
        missing = [r.value for r in roles if schema.field_for(r) is None]
        if missing and needed:
            raise VersionFailed(f"recipe {spec.id!r} needs the {kind.value} dataset to have a field "
                                f"with role {', '.join(missing)}")
        manifest = read_current(store.backend, keys, group, kind.value)
        if manifest is None or manifest.rows == 0:
            if needed:
                raise VersionFailed(f"the {kind.value} dataset of {group!r} has no data yet: "
                                    f"run an import job first")
            continue
        manifests[kind] = manifest
    for rule in task.minimum:  # rows alone, from the manifests (the job checks the rest)
        m = manifests.get(rule.dataset)
        if m is not None and m.rows < rule.min_rows:
            raise VersionFailed(f"too little data to train: the {rule.dataset.value} dataset has "
                                f"{m.rows} {_noun(rule.dataset)}, at least {rule.min_rows} are needed")
    return manifests


def _noun(kind: DatasetKind) -> str:
    return "interactions" if kind == DatasetKind.INTERACTIONS else "rows"


def check_minimum(task: Task, tables: Mapping[DatasetKind, pa.Table],
                  schemas: Mapping[DatasetKind, Schema]) -> None:
    """The task's minimum-data rules on the tables read; VersionFailed saying which fails."""
    for rule in task.minimum:
        table, schema = tables.get(rule.dataset), schemas.get(rule.dataset)
        if table is None or schema is None:
            continue
        what = _noun(rule.dataset)
        if rule.with_role is not None:
            f = schema.field_for(rule.with_role)
            col = table.column(f.name)
            keep = pc.fill_null(pc.greater(pc.list_value_length(col), 0), False) \
                if pa.types.is_list(col.type) else pc.is_valid(col)
            table = table.filter(keep)
            what = f"{what} with {rule.with_role.value.lower()}"
            if table.num_rows < rule.min_rows:
                raise VersionFailed(f"too little data to train: the {rule.dataset.value} dataset has "
                                    f"{table.num_rows} {what}, at least {rule.min_rows} are needed")
        if rule.key_role is not None and rule.min_keys:
            key = schema.field_for(rule.key_role).name
            counts = table.group_by(key).aggregate([(key, "count")]).column(f"{key}_count")
            have = int(pc.sum(pc.greater_equal(counts, rule.per_key)).as_py() or 0)
            noun = rule.key_role.value.removesuffix("_ID").lower() + "s"
            if have < rule.min_keys:
                raise VersionFailed(f"too little data to train: {have} {noun} have {rule.per_key} or more "
                                    f"{what}, at least {rule.min_keys} are needed")


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
        task = get_task(spec.task)
        evaluation = EvaluationConfig.model_validate(doc.get("evaluation_config") or {})
        protocol = get_protocol(evaluation.mode or spec.protocols[0])
        if protocol.name not in spec.protocols:
            raise VersionFailed(f"recipe {spec.id!r} is not evaluated with {protocol.name!r} "
                                f"(it supports {', '.join(spec.protocols)})")
        scaling = ScalingConfig.model_validate(doc.get("scaling") or {})
        # 1. data
        phase("loading")
        t0 = time.perf_counter()
        manifests = check_trainable(spec, store, keys, group)
        tables = {k: open_snapshot(store.backend, m).to_table() for k, m in manifests.items()}
        schemas = {k: Schema.model_validate(store.registry.read(keys.dataset_record(group, k.value))
                                            ["schema"]) for k in manifests}
        record.set(snapshots={k.value: m.snapshot_id for k, m in manifests.items()})
        check_minimum(task, tables, schemas)
        timings["load_seconds"] = time.perf_counter() - t0
        # 2. split
        t0 = time.perf_counter()
        try:
            split = protocol.split(tables, schemas, evaluation)
        except InsufficientData as e:
            raise VersionFailed(str(e)) from None
        validation, skipped = None, None
        epochs = int(doc["hyperparameters"].get("epochs") or 1)
        if evaluation.validation_fraction > 0 and trains_by_epochs(spec) and epochs > 1:
            try:
                validation = Validation.of(protocol, split.train, schemas, evaluation)
            except InsufficientData as e:  # thin data: train every epoch, say why
                skipped = f"no validation split ({e}); trained every epoch"
        record.set(evaluation=split.description)
        timings["split_seconds"] = time.perf_counter() - t0
        # 3. train
        phase("training", epochs=doc["hyperparameters"].get("epochs"))
        t0 = time.perf_counter()
        version_prefix = keys.version(group, solution, version)
        result = train_recipe(
            spec.id, doc["hyperparameters"], validation.train if validation else split.train,
            schemas=schemas, artifact_dir=tmp / "model", validation=validation,
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
        if result.validation is not None or skipped:
            training["validation"] = result.validation or {"skipped": skipped}
        record.set(training=training)
        if result.stopped:
            raise _Stopped()
        # 4. evaluate
        phase("evaluating")
        t0 = time.perf_counter()
        predictor = spec.predictor_cls.load(tmp / "model")
        report = protocol.evaluate(predictor, split, schemas, evaluation)
        timings["evaluate_seconds"] = time.perf_counter() - t0
        served = tmp / "model"
        if evaluation.refit:  # serve a model of all the data, held-out (newest) part included
            hyperparameters = dict(doc["hyperparameters"])
            if result.validation is not None:  # as many epochs as the best model had
                hyperparameters["epochs"] = result.best_epochs
            phase("refitting", epochs=hyperparameters.get("epochs"))
            t0 = time.perf_counter()
            refit = train_recipe(
                spec.id, hyperparameters, tables, schemas=schemas, artifact_dir=tmp / "served",
                checkpoint_path=store.backend.path(f"{version_prefix}/checkpoints"),
                checkpoint_fs=store.backend.filesystem, run_name="refit",
                scaling=ScalingSpec(workers=scaling.workers, cpus_per_worker=scaling.cpus_per_worker,
                                    gpus_per_worker=scaling.gpus_per_worker,
                                    max_failures=scaling.max_failures),
                on_epoch=EpochProgress(store.config.as_dict(), key, phase="refitting"))
            timings["refit_seconds"] = time.perf_counter() - t0
            if refit.stopped:
                raise _Stopped()
            training = {**training, "refit": {"epochs": refit.epochs, "events": refit.events,
                                              "wall_seconds": refit.train_seconds}}
            record.set(training=training)
            served = tmp / "served"
        # 5. save: the artifact, then the metrics, then the record says ACTIVE
        phase("saving")
        t0 = time.perf_counter()
        model_key = f"{version_prefix}/model"
        store.backend.delete_prefix(model_key)
        pafs.copy_files(str(served), store.backend.path(model_key),
                        source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=store.backend.filesystem)
        metrics_doc = {**report, "evaluation": split.description, "snapshots":
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
                          served_model="all-data" if evaluation.refit else "evaluated",
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
