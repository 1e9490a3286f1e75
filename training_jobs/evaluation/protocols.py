"""Evaluation protocols: split → cases (predictor queries with their right answers) → metrics, with
the task's baselines scored on the same cases.

Each task (`sdk.tasks`) names its protocols; a recipe says which it supports; a solution's
`evaluation.mode` picks one (default: the task's first). The version job calls, for any recipe:

    protocol = get_protocol(mode)
    split = protocol.split(tables, schemas, config)          # what trains, what is asked
    ... train the recipe on split.train ...
    report = protocol.evaluate(predictor, split, schemas, config)   # compare(): model, baselines, lift

`evaluate` asks the predictor through `predict_batch` — the entry point a campaign replica calls —
so the metrics measure the code that serves. The default baseline is the task's baseline recipe
(`Task.baseline_recipe`), fitted in process on `split.train` and asked the same queries; next-item
keeps its exact popularity / uniform-random baselines (full-ranking MRR, Laplace perplexity).

Protocols live in their own modules, registered lazily in `_PROTOCOLS` (name → "module:Class").
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from recipes.base import Answer, Query
from sdk.tasks import TaskId, get_task
from sdk.types import DatasetKind, EvaluationConfig, Schema

from .metrics import DEFAULT_KS, compare, ranking_metrics

__all__ = ["EvalSplit", "Protocol", "PROTOCOL_NAMES", "get_protocol", "InsufficientData"]


class InsufficientData(ValueError):
    """The data cannot make the protocol's split; the message says what is missing."""


@dataclass
class EvalSplit:
    """A protocol's split.

    Attributes:
        protocol: Its name.
        train: The tables the model (and the baselines) are fitted on.
        queries: One predictor query per test case (what a campaign would be asked).
        relevant: Per query, the held-out right answers (item or tag ids).
        description: What the version records about the split (`evaluation` on the version).
        catalog_size: Ids the model can answer (for coverage), when known.
        state: Whatever else the protocol's own metrics or baselines need.
    """

    protocol: str
    train: dict[DatasetKind, pa.Table]
    queries: list[Query]
    relevant: list[list[str]]
    description: dict[str, Any]
    catalog_size: int | None = None
    state: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """One evaluation protocol of one task (subclass; override `split`, maybe `score`/`baselines`)."""

    name: str = ""
    task: TaskId = TaskId.NEXT_ITEM
    default_ks: tuple[int, ...] = DEFAULT_KS

    def ks(self, config: EvaluationConfig) -> tuple[int, ...]:
        return tuple(config.ks) if config.ks else self.default_ks

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        raise NotImplementedError

    def score(self, answers: Sequence[Answer], split: EvalSplit,
              config: EvaluationConfig) -> dict[str, float]:
        """Metrics of the answers against the right ones (default: ranking metrics at the ks)."""
        ranked = {i: a.ids for i, a in enumerate(answers)}
        relevant = {i: r for i, r in enumerate(split.relevant)}
        return ranking_metrics(ranked, relevant, self.ks(config), catalog_size=split.catalog_size)

    def validation_metric(self, config: EvaluationConfig) -> str:
        """The metric that picks the best epoch (higher is better)."""
        return "mrr"

    def validation_split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
                         config: EvaluationConfig) -> EvalSplit:
        """The protocol's split of the training tables into training and validation parts: the
        same protocol, `validation_fraction` held out, with another seed than the test split's."""
        return self.split(tables, schemas, config.model_copy(
            update={"test_fraction": config.validation_fraction, "seed": config.seed + 1}))

    def model_metrics(self, predictor: Any, split: EvalSplit, config: EvaluationConfig) -> dict[str, float]:
        """The predictor's metrics alone (no baseline): what validation scores each epoch."""
        return self.score(predictor.predict_batch(split.queries), split, config)

    def baselines(self, split: EvalSplit, schemas: Mapping[DatasetKind, Schema],
                  config: EvaluationConfig) -> tuple[str, dict[str, float]]:
        """The task's baseline recipe, fitted on the split's training tables, on the same queries."""
        from recipes import get_recipe
        from training_jobs.loop import fit_in_process

        recipe = get_task(self.task).baseline_recipe
        spec = get_recipe(recipe)
        config_, featurizer, model = fit_in_process(spec, {}, split.train, schemas=schemas)
        predictor = spec.predictor_cls(config_, featurizer, model)
        return recipe, self.score(predictor.predict_batch(split.queries), split, config)

    def evaluate(self, predictor: Any, split: EvalSplit, schemas: Mapping[DatasetKind, Schema],
                 config: EvaluationConfig) -> dict[str, Any]:
        """`compare()`'s document: the model next to the baseline on the same cases."""
        model = self.model_metrics(predictor, split, config)
        name, baseline = self.baselines(split, schemas, config)
        return compare(model, baseline, baseline=name)


# name -> "module:Class" (imported on first use)
_PROTOCOLS = {
    "temporal-holdout": "training_jobs.evaluation.next_item:TemporalHoldout",
    "item-cold-start": "training_jobs.evaluation.next_item:ItemColdStart",
    "user-tag-holdout": "training_jobs.evaluation.user_tags:UserTagHoldout",
    "user-split": "training_jobs.evaluation.user_tags:UserSplit",
    "item-tag-holdout": "training_jobs.evaluation.item_tags:ItemTagHoldout",
    "post-holdout": "training_jobs.evaluation.tag_set:PostHoldout",
    "session-holdout": "training_jobs.evaluation.session_tags:SessionHoldout",
}
PROTOCOL_NAMES = tuple(_PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The protocol `name`; ValueError naming the valid ones otherwise."""
    try:
        module, cls = _PROTOCOLS[name].split(":")
    except KeyError:
        valid = ", ".join(PROTOCOL_NAMES)
        raise ValueError(f"unknown evaluation protocol {name!r}; valid: {valid}") from None
    return getattr(importlib.import_module(module), cls)()
