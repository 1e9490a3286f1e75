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
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from sdk.tasks import TaskId, get_task
from sdk.types import DatasetKind, Role, Schema

__all__ = [
    "RecipeSpec",
    "Featurizer",
    "TrainingHooks",
    "CountingHooks",
    "Predictor",
    "Query",
    "Answer",
    "HistoryEvent",
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
    task: TaskId  # one of sdk.tasks.TASKS (a plain id string is accepted and checked)
    paper: str  # title (venue, year) of the paper the recipe follows
    description: str
    config_cls: type[BaseModel]
    featurizer_cls: type[Featurizer]
    hooks_cls: type[TrainingHooks]
    predictor_cls: type[Predictor]
    required: Mapping[DatasetKind, tuple[Role, ...]] = field(default_factory=dict)
    optional: Mapping[DatasetKind, tuple[Role, ...]] = field(default_factory=dict)
    protocols: tuple[str, ...] = ()  # evaluation protocols supported; () = all of the task's

    def __post_init__(self) -> None:
        task = get_task(self.task)  # ValueError naming the valid tasks
        object.__setattr__(self, "task", task.id)
        unknown = [p for p in self.protocols if p not in task.protocols]
        if unknown:
            raise ValueError(f"recipe {self.id!r}: protocol(s) {unknown} are not protocols of task "
                             f"{task.id.value!r} ({', '.join(task.protocols)})")
        if not self.protocols:
            object.__setattr__(self, "protocols", task.protocols)


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


# One past event: (item_id or None, epoch seconds, event_type, event_value, tags), oldest first;
# the trailing fields may be left out (a next-item history is often (item_id, seconds)).
HistoryEvent = tuple[Any, ...]


class CountingHooks(TrainingHooks):
    """Hooks of a count-based recipe: its featurizer's statistics are the model, held in buffers
    (no parameters), so the generic loop runs no epoch. Subclasses implement `build_model`."""

    def batches(self, examples: Any, *, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        return iter(())

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise RuntimeError("a count-based recipe has nothing to optimize")


@dataclass
class Query:
    """One question to a predictor: a campaign request with the history the task names, or one
    case of an offline evaluation (the same object, so metrics measure the code that serves).

    Which fields are set depends on the task (`sdk.tasks`): next-item and user-tags read
    `user_id` + `history`; item-tags also `item_id`; tag-set `text` / `fields` / `item_id` and
    `chosen`; session-tags `session_id` + `history` (+ `text`, `fields["organisation"]`).
    """

    history: Sequence[HistoryEvent] = ()
    user_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None
    text: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    candidates: Sequence[str] | None = None  # rank only these ids (items or tags)
    exclude: Collection[str] = ()  # never answer these ids
    chosen: Sequence[str] = ()  # tags already chosen (tag-set)
    num_results: int = 25
    time: float | None = None  # epoch seconds of the request (None: now)


@dataclass
class Answer:
    """A predictor's answer to one query: ids (items or tags) best first, with scores.

    `fallback` is True when the model could not use the query's history or item (an unknown
    user, session or item) and answered with the task's fallback instead; `extra` carries
    task-specific parts (e.g. session-tags' matching `questions`, as (item_id, score) pairs).
    """

    ranked: list[tuple[str, float | None]]
    fallback: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.ranked]


class Predictor(ABC):
    """A loaded artifact answering queries. Pure torch: no Ray, no store.

    `predict_batch` is the one entry point: a campaign replica calls it for each batch of
    requests and the offline evaluation calls it for the test cases.
    """

    artifact_version: ClassVar[int] = 1

    @classmethod
    def load(cls, directory: Path) -> Predictor:
        """Load an artifact folder written by `save_artifact`: its recipe's config, featurizer
        state and weights, into ``cls(config, featurizer, model)`` (the model built by the
        recipe's hooks, as in training). ValueError if the folder holds another recipe's model."""
        import torch

        from recipes import get_recipe

        directory = Path(directory)
        meta = json.loads((directory / ARTIFACT_FILES["recipe"]).read_text())
        spec = get_recipe(str(meta.get("recipe")))
        if spec.predictor_cls is not cls:
            raise ValueError(f"{directory} holds a {spec.id!r} model, not one {cls.__name__} answers with")
        config = spec.config_cls.model_validate_json((directory / ARTIFACT_FILES["config"]).read_text())
        featurizer = spec.featurizer_cls.load(directory / ARTIFACT_FILES["featurizer"])
        model = spec.hooks_cls(config, featurizer).build_model()
        model.load_state_dict(torch.load(directory / ARTIFACT_FILES["weights"], map_location="cpu",
                                         weights_only=True))
        return cls(config, featurizer, model)

    @abstractmethod
    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        """One answer per query, in order (at most `num_results` ids each, none excluded)."""

    def update_catalog(self, tables: Mapping[DatasetKind, pa.Table],
                       schemas: Mapping[DatasetKind, Schema]) -> int:
        """Learn ids added to the catalog since training (e.g. new items from their metadata),
        from the datasets' current tables; returns how many became answerable. Default: none."""
        return 0


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
