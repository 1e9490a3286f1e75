"""The version job's evaluation step (no Ray): a trained HRNN-meta predictor scored on both splits
next to its baseline, exactly as `training_jobs.solution_version` does after training."""

from __future__ import annotations

import numpy as np
import pytest

from recipes.hrnn_meta import HrnnMetaConfig, HrnnMetaPredictor
from sdk.synthetic import SyntheticData, generate
from sdk.types import DatasetKind, EvaluationConfig
from tests.unit.conformance import one_torch_thread  # noqa: F401 - the autouse fixture
from training_jobs.evaluation import cold_start_split, temporal_holdout
from training_jobs.loop import fit_in_process
from training_jobs.solution_version import evaluate_version

COLS = {"user": "user_id", "item": "item_id", "time": "timestamp", "event_type": "event_type",
        "event_value": "event_value"}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(seed=4, n_users=150, n_items=80, n_interactions=4000)


def _train(tables: dict, data: SyntheticData) -> HrnnMetaPredictor:
    config = HrnnMetaConfig(epochs=2, hidden_size=16, item_embedding_dim=16, batch_size=64, seed=0)
    config, featurizer, model = fit_in_process("hrnn-meta", config, tables, schemas=data.schemas)
    return HrnnMetaPredictor(config, featurizer, model)


def test_temporal_holdout_model_next_to_popularity(data: SyntheticData) -> None:
    split = temporal_holdout(data.interactions, user_col="user_id", item_col="item_id",
                             time_col="timestamp", fraction=0.2, min_users=30, holdout_last=3, seed=0)
    predictor = _train({**data.tables(), DatasetKind.INTERACTIONS: split.train}, data)
    report = evaluate_version(predictor, split, EvaluationConfig(depth=50), COLS)
    model, pop = report["model"], report["baselines"]["popularity"]
    for k in (5, 10, 25):
        for m in ("precision", "recall", "ndcg", "hit", "coverage"):
            assert 0.0 <= model[f"{m}@{k}"] <= 1.0 and f"{m}@{k}" in pop
    assert np.isfinite(model["perplexity"]) and model["perplexity"] > 1.0
    assert 0.0 <= model["mrr"] <= 1.0 and report["lift"]["mrr"] == pytest.approx(model["mrr"] / pop["mrr"])
    # The planted structure is learnable: the model beats popularity on this data.
    assert model["ndcg@10"] > pop["ndcg@10"]


def test_item_cold_start_ranks_only_held_items_next_to_random(data: SyntheticData) -> None:
    split = cold_start_split(data.interactions, data.items, item_col="item_id", user_col="user_id",
                             time_col="timestamp", fraction=0.5, seed=0)
    predictor = _train({**data.tables(), DatasetKind.INTERACTIONS: split.train}, data)
    held = set(split.candidates)
    # Held-out items never reached training: the model knows them from metadata only.
    assert not predictor.featurizer.item_freq[predictor.item_index(sorted(held))].any()
    report = evaluate_version(predictor, split, EvaluationConfig(mode="item-cold-start", depth=25), COLS)
    assert set(report["baselines"]) == {"random"}
    model, random = report["model"], report["baselines"]["random"]
    for key in ("mrr", "precision@5", "precision@25", "ndcg@5", "ndcg@25"):
        assert key in model and key in random and key in report["lift"]
    # Coverage can only count held items: at most the held share of the catalog.
    assert model["coverage@25"] <= len(held) / len(predictor.featurizer.item_ids) + 1e-9
    # Next to the candidate list, the full ranking (the whole catalog, seen items left out) of the
    # same users and held-out items, with its own random baseline: harder, so never higher
    # (a held item's rank among everything is at least its rank among the held items).
    for key in ("mrr", "precision@5", "ndcg@25", "hit@25"):
        assert f"full.{key}" in model and f"full.{key}" in random and f"full.{key}" in report["lift"]
        assert random[f"full.{key}"] <= random[key] + 1e-12
    assert model["full.hit@25"] <= model["hit@25"] + 1e-12


def test_perplexity_is_finite_when_held_out_items_never_reached_training(data: SyntheticData) -> None:
    """README's first hour: an item seen only in the held-out part made perplexity infinite, written
    as `Infinity` into the version record; the SDK then failed to read it."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    from sdk.types import SolutionVersion
    from store import dump_json

    split = temporal_holdout(data.interactions, user_col="user_id", item_col="item_id",
                             time_col="timestamp", fraction=0.2, min_users=30, holdout_last=3, seed=0)
    held = set(split.held_out.column("item_id").to_pylist())
    # Drop some held-out items from training entirely: the model has never seen them.
    unseen = sorted(held)[: max(1, len(held) // 3)]
    def without(t: pa.Table) -> pa.Table:
        return t.filter(pc.invert(pc.is_in(t["item_id"], pa.array(unseen))))

    tables = {**data.tables(), DatasetKind.INTERACTIONS: without(split.train),
              DatasetKind.ITEMS: without(data.items)}
    predictor = _train(tables, data)
    assert any(predictor.item_index([i])[0] == 1 for i in unseen)  # OOV in the model
    report = evaluate_version(predictor, split, EvaluationConfig(depth=50), COLS)
    assert np.isfinite(report["model"]["perplexity"])
    # Whatever the report holds, the record is strict JSON and the SDK's model reads it back.
    doc = json.loads(dump_json({"metrics": {**report["model"], "broken": float("inf")}}),
                     parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc["metrics"]["broken"] is None
    at = "2026-01-01T00:00:00Z"
    v = SolutionVersion.model_validate({"name": "v1", "status": "ACTIVE", "created_at": at, "updated_at": at,
                                        "dataset_group": "g", "solution": "s", "recipe": "hrnn-meta",
                                        "metrics": doc["metrics"]})
    assert v.metrics["broken"] is None
