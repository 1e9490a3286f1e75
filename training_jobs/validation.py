"""Validation for recipes trained by epochs: score every epoch, keep the best, stop early.

The version job holds a validation part out of the training tables with the solution's own
protocol (`Protocol.validation_split`: the same protocol, `evaluation.validation_fraction` held
out, another seed), trains on the rest, and after every epoch scores the model on the validation
cases through `predict_batch` (the serving entry point) with the protocol's validation metric
(`Protocol.validation_metric`: MRR, or F1@k for tag sets). `BestEpoch` keeps the best epoch's
weights and says stop after `patience` epochs without a better score; the artifact is the best
epoch's model, and the all-data refit trains for as many epochs as the best one had.

Pure torch, no Ray: the Ray Train workers (`training_jobs.train`) and `training_jobs.loop.fit_in_process`
both use it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sdk.types import DatasetKind, EvaluationConfig, Schema

from .evaluation.protocols import EvalSplit, Protocol, get_protocol

__all__ = ["BestEpoch", "Validation", "trains_by_epochs"]


def trains_by_epochs(spec: Any) -> bool:
    """Whether a recipe is trained by gradient steps over epochs (it has an `epochs`
    hyperparameter); count-based baselines are fitted by their featurizer alone."""
    return "epochs" in spec.config_cls.model_fields


@dataclass
class Validation:
    """The validation cases of one version and how they are scored (pickles: sent to workers)."""

    protocol: str
    split: EvalSplit
    schemas: Mapping[DatasetKind, Schema]
    evaluation: EvaluationConfig
    metric: str
    patience: int

    @classmethod
    def of(cls, protocol: Protocol, tables: Mapping[DatasetKind, Any],
           schemas: Mapping[DatasetKind, Schema], evaluation: EvaluationConfig) -> Validation:
        """Hold the validation part out of `tables` (the protocol's training part); raises the
        protocol's InsufficientData when the data cannot make it."""
        return cls(protocol=protocol.name, split=protocol.validation_split(tables, schemas, evaluation),
                   schemas=dict(schemas), evaluation=evaluation,
                   metric=protocol.validation_metric(evaluation), patience=evaluation.patience)

    @property
    def train(self) -> dict[DatasetKind, Any]:
        """The tables the model trains on (the training part without the validation part)."""
        return self.split.train

    def score(self, spec: Any, config: Any, featurizer: Any, model: Any) -> float:
        """The validation metric of `model` (left in the mode it was in)."""
        import torch

        protocol = get_protocol(self.protocol)
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                metrics = protocol.model_metrics(spec.predictor_cls(config, featurizer, model),
                                                 self.split, self.evaluation)
        finally:
            model.train(training)
        if self.metric not in metrics:
            raise ValueError(f"validation metric {self.metric!r} is not among the protocol's metrics "
                             f"({', '.join(sorted(metrics))})")
        value = float(metrics[self.metric])
        return value if math.isfinite(value) else -math.inf

    def for_workers(self) -> Validation:
        """This validation without the training tables (the workers have the encoded examples;
        what scoring needs — queries, targets, a next-item split's histories — stays)."""
        return replace(self, split=replace(self.split, train={}))

    def describe(self) -> dict[str, Any]:
        cases = len(self.split.relevant)
        return {"metric": self.metric, "patience": self.patience, "cases": cases,
                "fraction": self.evaluation.validation_fraction}


@dataclass
class BestEpoch:
    """The best epoch so far by a higher-is-better score, its weights, and when to stop."""

    patience: int
    scores: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float = -math.inf
    best_state: dict[str, Any] | None = None

    def update(self, epoch: int, score: float, model: Any) -> bool:
        """Record `epoch`'s score (keeping the weights if best); True: stop training now."""
        self.scores.append(score)
        if self.best_epoch is None or score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.best_state = copy.deepcopy(model.state_dict())
        return epoch - self.best_epoch >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """For a checkpoint: a resumed worker group keeps the best epoch found before."""
        return {"patience": self.patience, "scores": list(self.scores), "best_epoch": self.best_epoch,
                "best_score": self.best_score, "best_state": self.best_state}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> BestEpoch:
        return cls(**dict(state))

    def describe(self) -> dict[str, Any]:
        """What the version records: per-epoch scores and the best epoch (1-based, as progress)."""
        return {"scores": [s if math.isfinite(s) else None for s in self.scores],
                "best_epoch": None if self.best_epoch is None else self.best_epoch + 1,
                "best_score": self.best_score if math.isfinite(self.best_score) else None}
