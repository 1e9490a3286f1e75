"""The generic training loop: any recipe, trained with Ray Train's TorchTrainer.

The driver (`train_recipe`) fits the recipe's featurizer on the training tables, puts the encoded
examples in Ray's object store and starts a TorchTrainer whose workers call the recipe's hooks
(`recipes.base.TrainingHooks`). Every epoch, rank 0 reports a checkpoint (model, optimizer,
epoch, featurizer state) to `checkpoint_uri`'s filesystem (the store: a local folder or S3); a
worker group restarted by `FailureConfig` resumes from the last epoch, never from zero.

With a `Validation` (`training_jobs.validation`), rank 0 scores the model on the validation cases
after every epoch, keeps the best epoch's weights in the checkpoint and stops after `patience`
epochs without a better score; the artifact is the best epoch's model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from recipes import get_recipe
from recipes.base import ARTIFACT_FILES, save_artifact
from sdk.types import DatasetKind

from .loop import epochs, has_parameters
from .validation import BestEpoch, Validation

__all__ = ["EpochCallback", "TrainResult", "ScalingSpec", "train_recipe"]

log = logging.getLogger("tagrec.train")


@dataclass(frozen=True)
class ScalingSpec:
    """How a version trains: Ray Train workers, resources per worker, restarts allowed."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 1


# Called on rank 0 after each epoch's checkpoint with {"epoch", "epochs", "loss", "events",
# "seconds", "resumed_from_epoch"} (+ "validation_score" when validated); returning True stops
# training there (the checkpoint is kept).
# Sent to the workers, so it must pickle.
EpochCallback = Callable[[dict[str, Any]], bool | None]


@dataclass
class TrainResult:
    artifact_dir: Path
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)  # metrics of kept checkpoints
    resumed_from_epoch: int | None = None
    train_seconds: float = 0.0
    events: int = 0  # training events over all epochs (all workers)
    stopped: bool = False  # ended early on request (`on_epoch` returned True)
    best_epochs: int = 0  # epochs of the model in the artifact (the best one when validated)
    validation: dict[str, Any] | None = None  # per-epoch scores, best epoch, stopped_early


def _worker_loop(cfg: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import ray
    import ray.train
    import torch

    torch.set_num_threads(max(1, int(cfg.get("torch_threads", 1))))
    spec = get_recipe(cfg["recipe"])
    config = spec.config_cls.model_validate(cfg["hyperparameters"])
    featurizer = cfg["featurizer"]
    examples = ray.get(cfg["examples_ref"])
    on_epoch: EpochCallback | None = cfg.get("on_epoch")
    hooks = spec.hooks_cls(config, featurizer)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    validation: Validation | None = ray.get(cfg["validation_ref"]) \
        if rank == 0 and cfg.get("validation_ref") is not None else None
    best = BestEpoch(validation.patience) if validation is not None else None
    torch.manual_seed(getattr(config, "seed", 0))
    model = hooks.build_model()
    optimizer = hooks.configure_optimizer(model)
    start_epoch, resumed_from = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        resumed_from = state["epoch"]
        if best is not None and state.get("best") is not None:
            best = BestEpoch.from_state(state["best"])
        print(f"[tagrec] rank {rank}: resumed from the checkpoint of epoch {state['epoch']}",
              flush=True)
    average = (lambda m: _average_gradients(m, world)) if world > 1 else None
    for metrics in epochs(hooks, model, optimizer, examples, num_epochs=cfg["epochs"],
                          start_epoch=start_epoch, rank=rank, world_size=world,
                          average_gradients=average):
        epoch, events, total, n = metrics["epoch"], metrics["events"], metrics["loss"], metrics["batches"]
        total *= max(n, 1)
        if world > 1:  # every rank's share: the epoch's events and mean loss over the group
            import torch.distributed as dist

            sums = torch.tensor([float(events), total, float(n)], dtype=torch.float64)
            dist.all_reduce(sums)
            events, total, n = int(sums[0]), float(sums[1]), int(sums[2])
        metrics = {"epoch": epoch, "loss": total / max(n, 1), "events": events,
                   "seconds": metrics["seconds"], "resumed_from_epoch": resumed_from}
        early = False
        if best is not None and validation is not None:  # rank 0; the others wait at the broadcast
            score = validation.score(spec, config, featurizer, model)
            early = best.update(epoch, score, model) and epoch + 1 < cfg["epochs"]
            metrics["validation_score"] = score
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch, "best": best.state_dict() if best is not None else None,
                            "early_stop": early}, Path(tmp) / "state.pt")
                fdir = Path(tmp) / ARTIFACT_FILES["featurizer"]
                fdir.mkdir()
                featurizer.save(fdir)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)
        # Progress and stop requests: rank 0 asks, every rank follows its answer.
        stop = bool(on_epoch(dict(metrics, epochs=cfg["epochs"]))) if rank == 0 and on_epoch else False
        stop = stop or early
        if world > 1:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0])
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop and epoch + 1 < cfg["epochs"]:
            why = "no better validation score" if early else "stop requested"
            print(f"[tagrec] rank {rank}: {why} after epoch {epoch}", flush=True)
            return


def _average_gradients(model: Any, world: int) -> None:
    """Data parallelism without wrapping the model (recipes call their own methods, which
    DistributedDataParallel would hide): all-reduce every gradient, then average."""
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(model.parameters(), grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).clone()
        offset += n


def train_recipe(recipe_id: str, hyperparameters: Mapping[str, Any],
                 tables: Mapping[DatasetKind, pa.Table], *, schemas: Mapping[DatasetKind, Any],
                 artifact_dir: Path, checkpoint_path: str, checkpoint_fs: pafs.FileSystem,
                 run_name: str, scaling: ScalingSpec = ScalingSpec(),
                 on_epoch: EpochCallback | None = None, torch_threads: int | None = None,
                 validation: Validation | None = None) -> TrainResult:
    """Train `recipe_id` on `tables` with Ray Train; write the artifact to `artifact_dir`.

    Must run where Ray is initialized (a Ray task or a driver). `checkpoint_path` is a path in
    `checkpoint_fs` (the store's filesystem) unique to this version: the same name resumes.
    `on_epoch` sees every epoch's metrics on rank 0 and may stop training (see EpochCallback).
    `torch_threads` per worker defaults to its CPUs (more threads than cores only contend).
    `validation` (cases held out of `tables`) picks the best epoch and stops early.
    """
    import ray
    import ray.train
    import torch
    from ray.train.torch import TorchTrainer

    spec = get_recipe(recipe_id)
    config = spec.config_cls.model_validate(dict(hyperparameters))
    featurizer = spec.featurizer_cls.fit(tables, config, schemas=schemas)
    model = spec.hooks_cls(config, featurizer).build_model()
    if not has_parameters(model):  # a count-based model: fitting the featurizer fitted it
        save_artifact(artifact_dir, spec, config, featurizer, model, extra={"epochs": 0})
        return TrainResult(artifact_dir=artifact_dir, epochs=0)
    examples = featurizer.transform(tables)
    num_epochs = int(getattr(config, "epochs", 1))
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"recipe": recipe_id, "hyperparameters": config.model_dump(mode="json"),
                           "featurizer": featurizer, "examples_ref": ray.put(examples),
                           "epochs": num_epochs, "on_epoch": on_epoch,
                           "validation_ref": ray.put(validation.for_workers()) if validation else None,
                           "torch_threads": torch_threads or max(1, int(scaling.cpus_per_worker))},
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.workers, use_gpu=scaling.gpus_per_worker > 0,
            resources_per_worker={"CPU": scaling.cpus_per_worker,
                                  **({"GPU": scaling.gpus_per_worker} if scaling.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=checkpoint_path, storage_filesystem=checkpoint_fs,
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - t0
    if result.error is not None:
        raise result.error
    history = [dict(m) for m in (result.metrics_dataframe.to_dict("records")
                                 if result.metrics_dataframe is not None else [result.metrics])]
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "state.pt", weights_only=True)
    done = state["epoch"] + 1
    best = BestEpoch.from_state(state["best"]) if state.get("best") else None
    model = spec.hooks_cls(config, featurizer).build_model()
    model.load_state_dict(best.best_state if best is not None and best.best_state else state["model"])
    kept = best.best_epoch + 1 if best is not None and best.best_epoch is not None else done
    save_artifact(artifact_dir, spec, config, featurizer, model, extra={"epochs": kept})
    resumed = [m.get("resumed_from_epoch") for m in history if m.get("resumed_from_epoch") is not None]
    early = bool(state.get("early_stop"))
    report = None if best is None else {**best.describe(), **validation.describe(), "stopped_early": early}
    # Every epoch sees the same events; `history` holds only the epochs whose checkpoints are kept.
    return TrainResult(artifact_dir=artifact_dir, epochs=done, history=history,
                       resumed_from_epoch=resumed[0] if resumed else None, train_seconds=seconds,
                       events=int(history[-1].get("events", 0)) * done,
                       stopped=done < num_epochs and not early, best_epochs=kept, validation=report)
