"""What every recipe provides, so one generic training loop and one serving wrapper can run it.

A recipe is a folder `recipes/<id>/` with `configuration.py`, `featurizer.py`, `modeling.py`,
`training.py`, `predictor.py` and an `__init__.py` that defines `RECIPE = RecipeSpec(...)`.
A recipe never imports ray, boto3 or the store: it receives Arrow tables and returns tensors.

The generic loop (training_jobs/) does, per solution version:

    featurizer = spec.featurizer_cls.fit(train_tables, config, schemas=schemas)
    hooks = spec.hooks_cls(config, featurizer)
    model = hooks.build_model()
    for epoch ...:  for batch in hooks.batches(examples, epoch=..., rank=..., world_size=...):
        loss = hooks.loss(model, batch); loss.backward(); ...
    save_artifact(dir, spec, config, featurizer, model)   # config + featurizer state + weights
    predictor = spec.predictor_cls.load(dir)              # no Ray, no store: portable
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from sdk.types import DatasetKind, Role, Schema

__all__ = [
    "RecipeSpec",
    "Featurizer",
    "TrainingHooks",
    "Predictor",
    "Recommendation",
    "save_artifact",
    "ARTIFACT_FILES",
]

# Files of a model artifact folder (what a user takes out to run the model elsewhere).
ARTIFACT_FILES = {"recipe": "recipe.json", "config": "config.json", "featurizer": "featurizer",
                  "weights": "weights.pt"}


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe's identity, its data needs, and its parts."""

    id: str
    task: str  # e.g. "next-item", "user-tags", "item-tags", "tag-set", "session-tags"
    paper: str  # title (venue, year) of the paper the recipe follows
    description: str
    config_cls: type[BaseModel]
    featurizer_cls: type[Featurizer]
    hooks_cls: type[TrainingHooks]
    predictor_cls: type[Predictor]
    required: Mapping[DatasetKind, tuple[Role, ...]] = field(default_factory=dict)
    optional: Mapping[DatasetKind, tuple[Role, ...]] = field(default_factory=dict)


class Featurizer(ABC):
    """Arrow tables → model inputs. Fitted on training data only; its state is saved."""

    @classmethod
    @abstractmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: BaseModel, *,
            schemas: Mapping[DatasetKind, Schema]) -> Featurizer:
        """Learn vocabularies and statistics from the training tables.

        `schemas` give each table's fields and roles (column names are the tenant's own).
        """

    @abstractmethod
    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> Any:
        """Encode tables into the recipe's examples (deterministic for the same input)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted state into `directory` (created by the caller)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Featurizer:
        """Read a state written by `save`."""


class TrainingHooks(ABC):
    """The recipe-specific steps the generic loop calls."""

    def __init__(self, config: BaseModel, featurizer: Featurizer) -> None:
        self.config = config
        self.featurizer = featurizer

    @abstractmethod
    def build_model(self) -> Any:
        """A fresh `torch.nn.Module` (initialized from the config's seed)."""

    @abstractmethod
    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        """This worker's shard of one epoch, as dicts of tensors (shuffled by epoch seed)."""

    @abstractmethod
    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """A scalar tensor to minimize."""

    def num_events(self, batch: dict[str, Any]) -> int:
        """How many training events a batch holds (for throughput figures)."""
        return 0

    def configure_optimizer(self, model: Any) -> Any:
        """The optimizer (default: Adam at the config's learning_rate, if any, else 1e-3)."""
        import torch

        return torch.optim.Adam(model.parameters(), lr=getattr(self.config, "learning_rate", 1e-3))

    def clip_gradients(self, model: Any) -> float | None:
        """Called after gradients are complete (averaged over workers), before the step."""
        return None


@dataclass
class Recommendation:
    item_id: str
    score: float


class Predictor(ABC):
    """A loaded artifact answering requests. Pure torch: no Ray, no store."""

    artifact_version: ClassVar[int] = 1

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Predictor:
        """Load an artifact folder written by `save_artifact`."""


def save_artifact(directory: Path, spec: RecipeSpec, config: BaseModel, featurizer: Featurizer,
                  model: Any, extra: Mapping[str, Any] | None = None) -> None:
    """Write a portable model artifact: recipe id, config, featurizer state, weights."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    meta = {"recipe": spec.id, "artifact_version": Predictor.artifact_version, **(extra or {})}
    (directory / ARTIFACT_FILES["recipe"]).write_text(json.dumps(meta, indent=2))
    (directory / ARTIFACT_FILES["config"]).write_text(config.model_dump_json(indent=2))
    featurizer_dir = directory / ARTIFACT_FILES["featurizer"]
    featurizer_dir.mkdir(exist_ok=True)
    featurizer.save(featurizer_dir)
    torch.save(model.state_dict(), directory / ARTIFACT_FILES["weights"])
