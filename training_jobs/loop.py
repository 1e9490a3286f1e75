"""The one plain-torch training loop: Ray Train's workers, the tests and the benchmarks all run it.

`epochs(...)` runs a recipe's hooks (`recipes.base.TrainingHooks`) epoch by epoch and yields each
epoch's figures, so a caller checkpoints, reports or stops between epochs (Ray Train's workers in
`training_jobs.train` do). `fit_in_process(...)` fits a recipe start to end in this process (no
Ray): featurizer, model, every epoch. A recipe whose model has nothing to optimize (a count-based
baseline: its featurizer's statistics are the model) runs no epoch at all.

Pure torch, no Ray: importable anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from recipes import get_recipe
from recipes.base import Featurizer, RecipeSpec
from sdk.types import DatasetKind, Schema

from .validation import BestEpoch, Validation

__all__ = ["epochs", "fit_in_process", "has_parameters"]


def has_parameters(model: Any) -> bool:
    """Whether gradient steps can change `model` (count-based baselines have none)."""
    return any(p.requires_grad for p in model.parameters())


def epochs(hooks: Any, model: Any, optimizer: Any, examples: Any, *, num_epochs: int, start_epoch: int = 0,
           rank: int = 0, world_size: int = 1,
           average_gradients: Callable[[Any], None] | None = None,
           on_step: Callable[[dict[str, Any]], Any] | None = None) -> Iterator[dict[str, Any]]:
    """Train epoch by epoch; after each, yield ``{"epoch", "loss", "events", "batches", "seconds"}``.

    Per batch: zero_grad, the recipe's loss, backward, `average_gradients` (data-parallel
    workers), the recipe's gradient clipping, the optimizer step. `loss`/`events` are this
    worker's (mean loss over its batches, events it saw). `on_step` sees each step's
    ``{"epoch", "batch", "loss", "events"}`` after the optimizer step (per-step timing, a fixed
    number of steps); a truthy return ends training there (data-parallel workers must all
    stop at the same step): the epoch so far is still yielded.
    """
    for epoch in range(start_epoch, num_epochs):
        model.train()
        t0, total, n, events, stop = time.perf_counter(), 0.0, 0, 0, False
        for batch in hooks.batches(examples, epoch=epoch, rank=rank, world_size=world_size):
            optimizer.zero_grad()
            loss = hooks.loss(model, batch)
            loss.backward()
            if average_gradients is not None:
                average_gradients(model)
            hooks.clip_gradients(model)
            optimizer.step()
            step = {"epoch": epoch, "batch": n, "loss": float(loss.detach()),
                    "events": hooks.num_events(batch)}
            total, n, events = total + step["loss"], n + 1, events + step["events"]
            stop = on_step is not None and bool(on_step(step))
            if stop:
                break
        yield {"epoch": epoch, "loss": total / max(n, 1), "events": events, "batches": n,
               "seconds": time.perf_counter() - t0}
        if stop:
            return


def fit_in_process(recipe: str | RecipeSpec, hyperparameters: Mapping[str, Any] | Any,
                   tables: Mapping[DatasetKind, pa.Table], *, schemas: Mapping[DatasetKind, Schema],
                   on_epoch: Callable[[dict[str, Any]], Any] | None = None,
                   threads: int | None = None,
                   validation: Validation | None = None) -> tuple[Any, Featurizer, Any]:
    """Fit a recipe in this process: ``(config, featurizer, model)``, the model in eval mode.

    `hyperparameters` may be a dict or the recipe's config object. `on_epoch` sees each epoch's
    figures (with ``validation_score`` when validated). `threads` sets torch's intra-op threads for
    the fit (then restores them). `validation` (a `training_jobs.validation.Validation` whose cases
    are held out of `tables`) scores every epoch, stops after its patience and returns the best
    epoch's model, like a version's training does.
    """
    import torch

    spec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    config = hyperparameters if isinstance(hyperparameters, spec.config_cls) else \
        spec.config_cls.model_validate(dict(hyperparameters))
    featurizer = spec.featurizer_cls.fit(tables, config, schemas=schemas)
    examples = featurizer.transform(tables)
    hooks = spec.hooks_cls(config, featurizer)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(getattr(config, "seed", 0))
        model = hooks.build_model()
        if has_parameters(model):
            optimizer = hooks.configure_optimizer(model)
            best = BestEpoch(validation.patience) if validation is not None else None
            for metrics in epochs(hooks, model, optimizer, examples,
                                  num_epochs=int(getattr(config, "epochs", 1))):
                stop = False
                if best is not None:
                    metrics["validation_score"] = validation.score(spec, config, featurizer, model)
                    stop = best.update(metrics["epoch"], metrics["validation_score"], model)
                    stop = stop and metrics["epoch"] + 1 < int(getattr(config, "epochs", 1))
                if on_epoch is not None:
                    on_epoch(metrics)
                if stop:
                    break
            if best is not None and best.best_state is not None:
                model.load_state_dict(best.best_state)
    finally:
        torch.set_num_threads(before)
    return config, featurizer, model.eval()
