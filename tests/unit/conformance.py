"""The conformance suite every recipe passes (DESIGN.md §3): subclass `RecipeConformance` in the
recipe's test file as ``class TestConformance(RecipeConformance)`` and give it data and queries.

Checks: the config round-trips (and rejects unknown keys); the featurizer is deterministic and its
saved state loads back equal; a saved artifact loads into a predictor giving identical answers;
answers honour each query (at most `num_results`, nothing excluded, only candidates when given,
best first); the predictor's answers are what the evaluation ranks (the protocol scores
`predict_batch`); and, for recipes with parameters, a finite loss with finite gradients and one
batch overfitted; every protocol of the recipe can validate its epochs, and a recipe trained by
epochs keeps its best one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
import torch

from recipes import get_recipe
from recipes.base import Query, RecipeSpec, save_artifact
from sdk.tasks import get_task
from sdk.types import DatasetKind, EvaluationConfig, Schema
from training_jobs.evaluation.protocols import get_protocol
from training_jobs.loop import epochs, fit_in_process, has_parameters
from training_jobs.validation import Validation, trains_by_epochs


class OneBatch:
    """A recipe's hooks whose every epoch is one given batch, so the generic loop overfits it."""

    def __init__(self, hooks: Any, batch: dict[str, Any]) -> None:
        self.hooks, self.batch = hooks, batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hooks, name)

    def batches(self, examples: Any, **_: Any) -> Iterator[dict[str, Any]]:
        yield self.batch


def overfit(hooks: Any, model: Any, optimizer: Any, batch: dict[str, Any], steps: int) -> tuple[float, float]:
    """`steps` steps of the generic loop on `batch` alone: its loss before the first and the last step."""
    losses = [m["loss"] for m in epochs(OneBatch(hooks, batch), model, optimizer, None, num_epochs=steps)]
    return losses[0], losses[-1]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run faster (and steadier on a shared machine) on one thread: import it into a
    test module to apply it there."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class RecipeConformance:
    """Subclass and set `recipe_id`, `hyperparameters`; implement `data` and `queries`."""

    recipe_id: ClassVar[str] = ""
    hyperparameters: ClassVar[dict[str, Any]] = {}
    overfit_steps: ClassVar[int] = 60

    # --- what a subclass provides ----------------------------------------------------------
    def data(self) -> tuple[Mapping[DatasetKind, pa.Table], Mapping[DatasetKind, Schema]]:
        raise NotImplementedError

    def queries(self, tables: Mapping[DatasetKind, pa.Table]) -> list[Query]:
        raise NotImplementedError

    # --- fixtures ---------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    def spec(self) -> RecipeSpec:
        return get_recipe(self.recipe_id)

    @pytest.fixture(scope="class")
    def fitted(self, spec: RecipeSpec) -> tuple[Any, Any, Any, Mapping, Mapping]:
        tables, schemas = self.data()
        config, featurizer, model = fit_in_process(spec, self.hyperparameters, tables, schemas=schemas,
                                                   threads=1)
        return config, featurizer, model, tables, schemas

    # --- the checks -------------------------------------------------------------------------
    def test_spec_names_a_task_and_its_protocols(self, spec: RecipeSpec) -> None:
        task = get_task(spec.task)
        assert spec.protocols and set(spec.protocols) <= set(task.protocols)
        assert spec.paper and spec.description

    def test_config_round_trip_and_descriptions(self, spec: RecipeSpec) -> None:
        config = spec.config_cls.model_validate(self.hyperparameters)
        again = spec.config_cls.model_validate_json(config.model_dump_json())
        assert again == config
        for name, info in spec.config_cls.model_fields.items():
            assert info.description, f"{name} has no description"
        with pytest.raises(ValueError):
            spec.config_cls.model_validate({**self.hyperparameters, "no_such_field": 1})

    def test_featurizer_is_deterministic_and_saves(self, spec: RecipeSpec, fitted: tuple,
                                                   tmp_path: Path) -> None:
        config, featurizer, _, tables, schemas = fitted
        dirs = {name: tmp_path / name for name in ("first", "again", "loaded")}
        for d in dirs.values():
            d.mkdir()
        featurizer.save(dirs["first"])
        spec.featurizer_cls.fit(tables, config, schemas=schemas).save(dirs["again"])
        spec.featurizer_cls.load(dirs["first"]).save(dirs["loaded"])

        def files(d: Path) -> dict[str, bytes]:
            return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

        assert files(dirs["first"]), "the featurizer saved nothing"
        assert files(dirs["again"]) == files(dirs["first"]), "two fits on the same data differ"
        assert files(dirs["loaded"]) == files(dirs["first"]), "save -> load -> save changed the state"

    def test_save_load_gives_identical_answers(self, spec: RecipeSpec, fitted: tuple,
                                               tmp_path: Path) -> None:
        config, featurizer, model, tables, _ = fitted
        save_artifact(tmp_path / "model", spec, config, featurizer, model)
        before = spec.predictor_cls(config, featurizer, model).predict_batch(self.queries(tables))
        after = spec.predictor_cls.load(tmp_path / "model").predict_batch(self.queries(tables))
        assert [a.ids for a in before] == [a.ids for a in after]
        for a, b in zip(before, after):
            assert [s for _, s in a.ranked] == pytest.approx([s for _, s in b.ranked], abs=1e-5)
            assert a.fallback == b.fallback

    def test_answers_honour_their_queries(self, spec: RecipeSpec, fitted: tuple) -> None:
        config, featurizer, model, tables, _ = fitted
        queries = self.queries(tables)
        answers = spec.predictor_cls(config, featurizer, model).predict_batch(queries)
        assert len(answers) == len(queries)
        assert any(a.ids for a in answers), "no query got an answer"
        for q, a in zip(queries, answers):
            assert len(a.ids) <= q.num_results and len(set(a.ids)) == len(a.ids)
            assert not set(a.ids) & set(q.exclude)
            if q.candidates is not None:
                assert set(a.ids) <= set(q.candidates)
            scores = [s for _, s in a.ranked if s is not None]
            assert scores == sorted(scores, reverse=True), "answers must be best first"

    def test_trainable_models_have_finite_loss_and_gradients(self, spec: RecipeSpec, fitted: tuple) -> None:
        import torch

        config, featurizer, model, tables, _ = fitted
        hooks = spec.hooks_cls(config, featurizer)
        fresh = hooks.build_model()
        if not has_parameters(fresh):
            pytest.skip(f"{spec.id} is count-based: nothing to optimize")
        batch = next(iter(hooks.batches(featurizer.transform(tables), epoch=0)))
        loss = hooks.loss(fresh, batch)
        assert torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in fresh.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)

    def test_trainable_models_overfit_one_batch(self, spec: RecipeSpec, fitted: tuple) -> None:
        import torch

        config, featurizer, _, tables, _ = fitted
        hooks = spec.hooks_cls(config, featurizer)
        torch.manual_seed(0)
        model = hooks.build_model()
        if not has_parameters(model):
            pytest.skip(f"{spec.id} is count-based: nothing to optimize")
        batch = next(iter(hooks.batches(featurizer.transform(tables), epoch=0)))
        first, last = overfit(hooks, model, torch.optim.Adam(model.parameters(), lr=0.02), batch,
                              self.overfit_steps)
        assert last < 0.5 * first, (first, last)

    # Small enough for the suites' data: a few test cases per protocol, short hold-outs.
    validation_config: ClassVar[dict[str, Any]] = {"min_test_users": 3, "holdout_last": 2,
                                                   "validation_fraction": 0.3, "patience": 1}

    def test_every_protocol_can_validate_epochs(self, spec: RecipeSpec, fitted: tuple) -> None:
        """Each protocol the recipe supports holds a validation part out of the training tables and
        scores a model on it with its validation metric (what picks a version's best epoch)."""
        config, featurizer, model, tables, schemas = fitted
        evaluation = EvaluationConfig.model_validate(self.validation_config)
        for name in spec.protocols:
            protocol = get_protocol(name)
            validation = Validation.of(protocol, tables, schemas, evaluation)
            assert validation.split.relevant, f"{name}: no validation case"
            assert math.isfinite(validation.score(spec, config, featurizer, model)), name

    def test_trainable_models_keep_their_best_epoch(self, spec: RecipeSpec) -> None:
        """Trained with validation, the fit returns the best-scoring epoch's weights, and stops
        `patience` epochs after it."""
        if not trains_by_epochs(spec):
            pytest.skip(f"{spec.id} is count-based: no epochs")
        tables, schemas = self.data()
        evaluation = EvaluationConfig.model_validate(self.validation_config)
        validation = Validation.of(get_protocol(spec.protocols[0]), tables, schemas, evaluation)
        seen: list[dict[str, Any]] = []
        epochs_ = 6
        config, featurizer, model = fit_in_process(spec, {**self.hyperparameters, "epochs": epochs_},
                                                   validation.train, schemas=schemas, threads=1,
                                                   validation=validation, on_epoch=seen.append)
        scores = [m["validation_score"] for m in seen]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        assert validation.score(spec, config, featurizer, model) == pytest.approx(scores[best])
        assert len(scores) == epochs_ or len(scores) == best + 1 + evaluation.patience
