"""Next-item protocols (HRNN-meta's, §4): temporal hold-out and item cold start (Table 7).

* ``temporal-holdout`` — for a seeded sample of users (at least `min_test_users` when the data
  allow), their `holdout_last` latest interactions are held out; each is asked for its next items
  at the time of its first held-out event, from its earlier history, seen items left out.
* ``item-cold-start`` — half of the items are held out of training; each user who interacted with
  them ranks only them, from metadata, after their last training event; next to it (``full.*``),
  the same users rank the whole catalog (seen items left out), the held-out items still relevant.

Baselines, exactly as before the protocol layer: popularity (fitted on the training part; full
ranking MRR computed exactly; Laplace-smoothed perplexity) for the temporal hold-out, uniform random
(expected metrics in closed form) for cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from recipes.base import Query
from sdk.tasks import TaskId
from sdk.types import DatasetKind, EvaluationConfig, Role, Schema

from .baselines import evaluate_popularity, uniform_random_metrics
from .metrics import DEFAULT_KS, compare, perplexity, ranking_metrics, smooth_log_probs
from .protocols import EvalSplit, InsufficientData, Protocol
from .splits import Split, cold_start_split, temporal_holdout

__all__ = ["ItemColdStart", "TemporalHoldout", "evaluate_version", "interaction_columns"]


def interaction_columns(schema: Schema) -> dict[str, str | None]:
    """The interactions columns next-item evaluation reads, by role."""
    return {name: (f.name if (f := schema.field_for(role)) else None) for name, role in (
        ("user", Role.USER_ID), ("item", Role.ITEM_ID), ("time", Role.TIMESTAMP),
        ("event_type", Role.EVENT_TYPE), ("event_value", Role.EVENT_VALUE))}


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


def _model_metrics(predictor: Any, split: Split, evaluation: EvaluationConfig,
                   cols: Mapping[str, str | None], *, full: bool = True
                   ) -> tuple[dict[str, float], list[Any], list[list[tuple]], list[float]]:
    """The predictor's ranking metrics on the split, with the test users, histories and times.

    Cold start ranks the held-out items only (the paper's candidate list) and, when `full`, also
    the whole catalog with the user's seen items left out, under ``full.`` keys.
    """
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
    ks = tuple(evaluation.ks) if evaluation.ks else DEFAULT_KS
    metrics = ranking_metrics(ranked, split.test_targets, ks, catalog_size=catalog)
    if cold and full:
        everything = [replace(q, candidates=None, exclude={str(e[0]) for e in q.history}) for q in queries]
        ranked = {u: a.ids for u, a in zip(users, predictor.predict_batch(everything))}
        metrics.update({f"full.{k}": v for k, v in
                        ranking_metrics(ranked, split.test_targets, ks, catalog_size=catalog).items()})
    return metrics, users, histories, times


def evaluate_version(predictor: Any, split: Split, evaluation: EvaluationConfig,
                     cols: Mapping[str, str | None]) -> dict[str, Any]:
    """Model metrics on the split next to the baselines: `compare()`'s document."""
    model, users, histories, times = _model_metrics(predictor, split, evaluation, cols)
    ks = tuple(evaluation.ks) if evaluation.ks else DEFAULT_KS
    catalog = len(predictor.featurizer.item_ids)
    if split.candidates is not None:
        random = uniform_random_metrics(split, ks)
        full = uniform_random_metrics(replace(split, candidates=None), ks, catalog_size=catalog)
        return compare(model, {**random, **{f"full.{k}": v for k, v in full.items()}}, baseline="random")
    log_p = predictor.target_log_probs(histories, [split.test_targets[u] for u in users],
                                       user_ids=users, request_times=times)
    model["perplexity"] = perplexity(smooth_log_probs(log_p, catalog))
    popularity = evaluate_popularity(split, ks, catalog_size=catalog, depth=evaluation.depth)
    return compare(model, popularity, baseline="popularity")


class _NextItem(Protocol):
    task = TaskId.NEXT_ITEM

    def _split(self, interactions: pa.Table, items: pa.Table | None, cols: Mapping[str, str | None],
               config: EvaluationConfig, validation: bool = False) -> Split:
        raise NotImplementedError

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig, validation: bool = False) -> EvalSplit:
        cols = interaction_columns(schemas[DatasetKind.INTERACTIONS])
        split = self._split(tables[DatasetKind.INTERACTIONS], tables.get(DatasetKind.ITEMS), cols, config,
                            validation)
        if not split.test_targets:
            raise InsufficientData("no user has enough interactions to hold any out for evaluation "
                                   f"(each test user needs more than {config.holdout_last})")
        users = list(split.test_targets)
        return EvalSplit(protocol=self.name, train={**tables, DatasetKind.INTERACTIONS: split.train},
                         queries=[], relevant=[list(split.test_targets[u]) for u in users],
                         description=split.describe(), state={"split": split, "cols": cols})

    def validation_split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
                         config: EvaluationConfig) -> EvalSplit:
        return self.split(tables, schemas, config.model_copy(
            update={"test_fraction": config.validation_fraction, "seed": config.seed + 1}), validation=True)

    def model_metrics(self, predictor: Any, split: EvalSplit, config: EvaluationConfig) -> dict[str, float]:
        return _model_metrics(predictor, split.state["split"], config, split.state["cols"], full=False)[0]

    def evaluate(self, predictor: Any, split: EvalSplit, schemas: Mapping[DatasetKind, Schema],
                 config: EvaluationConfig) -> dict[str, Any]:
        return evaluate_version(predictor, split.state["split"], config, split.state["cols"])


class TemporalHoldout(_NextItem):
    name = "temporal-holdout"

    def _split(self, interactions: pa.Table, items: pa.Table | None, cols: Mapping[str, str | None],
               config: EvaluationConfig, validation: bool = False) -> Split:
        return temporal_holdout(interactions, user_col=cols["user"], item_col=cols["item"],
                                time_col=cols["time"], fraction=config.test_fraction,
                                min_users=config.min_test_users, holdout_last=config.holdout_last,
                                seed=config.seed)


class ItemColdStart(_NextItem):
    name = "item-cold-start"

    def _split(self, interactions: pa.Table, items: pa.Table | None, cols: Mapping[str, str | None],
               config: EvaluationConfig, validation: bool = False) -> Split:
        # The paper holds out half of the items; validation holds out `validation_fraction` of the
        # items left in training (the catalog of the interactions: never the test's held-out items).
        return cold_start_split(interactions, None if validation else items, item_col=cols["item"],
                                user_col=cols["user"],
                                time_col=cols["time"], fraction=config.test_fraction if validation else 0.5,
                                seed=config.seed)
