"""The next-item baseline recipe: trained by its featurizer alone, evaluated like any recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes import get_recipe
from recipes.base import Query, save_artifact
from sdk.synthetic import generate
from sdk.types import DatasetKind, EvaluationConfig
from tests.unit.conformance import RecipeConformance
from training_jobs.evaluation.protocols import get_protocol
from training_jobs.loop import fit_in_process, has_parameters


def test_item_popularity_fits_without_epochs_and_matches_the_popularity_baseline(tmp_path: Path) -> None:
    data = generate(seed=2, n_users=150, n_items=80, n_interactions=4000)
    spec = get_recipe("item-popularity")
    protocol = get_protocol("temporal-holdout")
    config = EvaluationConfig(min_test_users=30, holdout_last=3, depth=50)
    split = protocol.split(data.tables(), data.schemas, config)
    cfg, featurizer, model = fit_in_process(spec, {}, split.train, schemas=data.schemas)
    assert not has_parameters(model)
    save_artifact(tmp_path, spec, cfg, featurizer, model)
    predictor = spec.predictor_cls.load(tmp_path)
    report = protocol.evaluate(predictor, split, data.schemas, config)
    # The recipe is the popularity baseline through the serving entry point: the same figures
    # (up to the order of tied counts).
    for key in ("ndcg@10", "precision@10", "recall@25", "perplexity"):
        assert report["lift"][key] == pytest.approx(1.0, abs=0.08), key
    # Answers: candidates, exclusions, unknown users flagged as the task's fallback.
    top = predictor.predict_batch([Query(num_results=5), Query(history=[("i0001", 1.0)], num_results=5,
                                                               exclude={"i0001"}),
                                   Query(history=[("x", 1.0)], candidates=["i0003", "nope", "i0002"])])
    assert len(top[0].ids) == 5 and top[0].fallback and not top[1].fallback
    assert "i0001" not in top[1].ids and set(top[2].ids) == {"i0002", "i0003"}
    counts = [s for _, s in top[0].ranked]
    assert counts == sorted(counts, reverse=True)
    # Items of the items table never interacted with are in the catalog, last.
    assert len(featurizer.item_ids) == data.items.num_rows or len(featurizer.item_ids) >= 80
    assert DatasetKind.ITEMS in data.tables()


class TestConformance(RecipeConformance):
    recipe_id = "item-popularity"

    def data(self):
        data = generate(seed=1, n_users=60, n_items=40, n_interactions=1500)
        return data.tables(), data.schemas

    def queries(self, tables):
        inter = tables[DatasetKind.INTERACTIONS].slice(0, 30).to_pylist()
        history = [(r["item_id"], r["timestamp"].timestamp()) for r in inter]
        return [Query(history=history, num_results=10, exclude={history[0][0]}), Query(num_results=3),
                Query(history=history[:2], candidates=["i0005", "i0001", "unknown"], num_results=5)]


def test_an_artifact_loads_only_into_its_own_recipe(tmp_path: Path) -> None:
    data = generate(seed=1, n_users=40, n_items=30, n_interactions=800)
    spec = get_recipe("item-popularity")
    save_artifact(tmp_path, spec, *fit_in_process(spec, {}, data.tables(), schemas=data.schemas))
    with pytest.raises(ValueError, match="holds a 'item-popularity' model"):
        get_recipe("hrnn-meta").predictor_cls.load(tmp_path)
