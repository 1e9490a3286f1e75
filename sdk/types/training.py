"""Solutions (a recipe with hyperparameters), their versions (training runs) and recipes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from .common import ResourceName, _Model, _Resource

__all__ = [
    "ScalingConfig",
    "EvaluationConfig",
    "SolutionCreate",
    "Solution",
    "SolutionVersionCreate",
    "TrainingProgress",
    "SolutionVersion",
    "RecipeInfo",
]



class ScalingConfig(_Model):
    """How a solution's versions train: Ray Train workers and what each one gets."""

    workers: int = Field(default=1, ge=1, le=256, description="Ray Train workers (data parallel).")
    cpus_per_worker: float = Field(default=1.0, gt=0, le=256, description="CPUs per worker.")
    gpus_per_worker: float = Field(default=0.0, ge=0, le=16, description="GPUs per worker (0: CPU).")
    max_failures: int = Field(
        default=1, ge=0, le=100,
        description="Worker-group restarts allowed (each resumes from the last epoch checkpoint).",
    )


class EvaluationConfig(_Model):
    """How a version is evaluated offline (the split is described on the version)."""

    mode: Literal["temporal-holdout", "item-cold-start", "user-tag-holdout", "user-split",
                  "item-tag-holdout", "post-holdout", "session-holdout"] | None = Field(
        default=None,
        description="The evaluation protocol (default: the recipe's task's first). next-item: "
                    "temporal-holdout (the latest interactions of a random sample of users are held "
                    "out) or item-cold-start (HRNN-meta paper, Table 7: a random half of the items is "
                    "held out of training and ranked from their metadata only); user-tags: "
                    "user-tag-holdout (each test user's latest tag events held out) or user-split "
                    "(UTPM §4.1: test users held out of training whole, asked from their oldest 80 % "
                    "of events, scored on the tags of their newest 20 %'s positive ones); item-tags: "
                    "item-tag-holdout; tag-set: post-holdout; "
                    "session-tags: session-holdout. Must be one the recipe supports.",
    )
    ks: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        default=None, min_length=1, max_length=8,
        description="Cut-offs of the @k metrics (default: the protocol's, e.g. 5, 10, 25).")
    test_fraction: float = Field(
        default=0.1, gt=0, le=1,
        description="Share held out for testing: of the users (next-item, user-tags, item-tags), the "
                    "posts (tag-set) or the sessions (session-tags).")
    min_test_users: int = Field(
        default=300, ge=1, le=1_000_000,
        description="At least this many test users when the data allow (the validation split too); "
                    "not user-split, whose test users leave training whole (its share is exact).")
    holdout_last: int = Field(
        default=10, ge=1, le=1000, description="Most recent interactions held out per test user."
    )
    depth: int = Field(
        default=100, ge=25, le=10_000,
        description="Length of the ranked lists scored (MRR is over this depth, for the model "
                    "and the baselines alike).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split.")
    validation_fraction: float = Field(
        default=0.1, ge=0, lt=1,
        description="Share of the training part held out (by the same protocol, another seed) to pick "
                    "the best epoch and stop early, for recipes trained by epochs; 0 trains every epoch "
                    "on the whole training part.")
    patience: int = Field(
        default=2, ge=1, le=100,
        description="Epochs without a better validation score before training stops early.")
    refit: bool = Field(
        default=True,
        description="After evaluating, fit the model that is served on all the data (the held-out "
                    "part is the newest), as a managed service does; the metrics are the evaluated "
                    "model's. False serves the evaluated model itself.")


class SolutionCreate(_Model):
    """A recipe with its hyperparameters, bound to a dataset group; versions train it."""

    name: ResourceName
    recipe: Annotated[str, StringConstraints(max_length=63)] = Field(
        description="Recipe id (see client.recipes.list())."
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Checked against the recipe's hyperparameter schema."
    )
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    description: str = Field(default="", max_length=1000)


class Solution(_Resource):
    dataset_group: str
    recipe: str
    task: str | None = Field(default=None, description="The recipe's task (sdk.tasks), e.g. next-item.")
    hyperparameters: dict[str, Any] = Field(description="All hyperparameters, defaults included.")
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    description: str = ""


class SolutionVersionCreate(_Model):
    training_mode: Literal["full"] = Field(
        default="full", description="full: train from scratch on the datasets' current snapshots."
    )


class TrainingProgress(_Model):
    model_config = ConfigDict(extra="ignore")
    phase: str = Field(default="queued",
                       description="queued, loading, training, evaluating, saving or done.")
    epoch: int = Field(default=0, description="Epochs finished.")
    epochs: int | None = None
    loss: float | None = Field(default=None, description="Mean training loss of the last epoch.")
    events_per_second: float | None = None
    resumed_from_epoch: int | None = Field(
        default=None, description="Set when a restarted worker group resumed from a checkpoint."
    )
    validation_score: float | None = Field(
        default=None, description="The last epoch's validation score (training.validation.metric).")


class SolutionVersion(_Resource):
    """One training run of a solution, with its offline metrics once ACTIVE."""

    dataset_group: str
    solution: str
    recipe: str
    training_mode: str = "full"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    progress: TrainingProgress = Field(default_factory=TrainingProgress)
    snapshots: dict[str, str] = Field(
        default_factory=dict, description="The dataset snapshot id each dataset kind trained on."
    )
    evaluation: dict[str, Any] | None = Field(default=None, description="The split, described.")
    metrics: dict[str, float | None] | None = Field(
        default=None, description="The model's, on the split (null: could not be computed, see "
                                  "metrics_unavailable).")
    baselines: dict[str, dict[str, float | None]] | None = Field(
        default=None, description="The same metrics for baselines (popularity; random in cold start)."
    )
    lift: dict[str, float | None] | None = Field(default=None, description="model / popularity per metric.")
    metrics_unavailable: dict[str, str] | None = Field(
        default=None, description="Metrics left out and why, keyed like 'model.perplexity'.")
    evaluation_config: EvaluationConfig | None = None
    training: dict[str, Any] | None = Field(
        default=None, description="Epochs run, training events, events/s, resumed_from_epoch, validation "
                                  "(per-epoch scores, best_epoch, stopped_early) and the refit."
    )
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    artifact_uri: str | None = Field(default=None, description="Where the portable model lives.")
    served_model: str | None = Field(
        default=None, description="all-data: the artifact was refitted on all the data after the "
                                  "evaluation; evaluated: it is the evaluated model.")


class RecipeInfo(_Model):
    model_config = ConfigDict(extra="ignore")
    id: str
    task: str
    paper: str
    description: str
    required_datasets: dict[str, list[str]] = Field(description="Dataset kind -> roles it must have.")
    optional_datasets: dict[str, list[str]] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(description="JSON schema (defaults, bounds, descriptions).")
    defaults: dict[str, Any] = Field(default_factory=dict)
