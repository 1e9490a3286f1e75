"""The API contract: request and resource models shared by the SDK and the control plane.

The server validates every request with these same classes, so an error raised here on the
client is the error the server would give. Nouns follow Amazon Personalize.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

__all__ = [
    "NAME_PATTERN",
    "FIELD_NAME_PATTERN",
    "ResourceName",
    "FieldName",
    "Status",
    "FieldType",
    "Role",
    "DatasetKind",
    "ImportMode",
    "SchemaField",
    "Schema",
    "DatasetGroup",
    "DatasetGroupCreate",
    "Dataset",
    "DatasetCreate",
    "ImportSource",
    "ImportProgress",
    "DatasetImportJob",
    "DatasetImportJobCreate",
    "ErrorBody",
    "Page",
    "TERMINAL_STATUSES",
    "interactions_schema",
    "ScalingConfig",
    "EvaluationConfig",
    "SolutionCreate",
    "Solution",
    "SolutionVersionCreate",
    "TrainingProgress",
    "SolutionVersion",
    "RecipeInfo",
    "CampaignCreate",
    "CampaignUpdate",
    "Campaign",
    "RecommendRequest",
    "RankRequest",
    "RecommendedItem",
    "RecommendResponse",
    "Event",
    "PutEventsRequest",
    "PutEventsResponse",
]

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$"
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ResourceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
FieldName = Annotated[str, StringConstraints(pattern=FIELD_NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


class Status(str, Enum):
    """Lifecycle of every long-running resource (Personalize's vocabulary)."""

    CREATE_PENDING = "CREATE_PENDING"
    CREATE_IN_PROGRESS = "CREATE_IN_PROGRESS"
    ACTIVE = "ACTIVE"
    CREATE_FAILED = "CREATE_FAILED"
    DELETE_PENDING = "DELETE_PENDING"
    DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"
    CREATE_STOPPING = "CREATE_STOPPING"
    CREATE_STOPPED = "CREATE_STOPPED"


TERMINAL_STATUSES = frozenset({Status.ACTIVE, Status.CREATE_FAILED, Status.CREATE_STOPPED})


class FieldType(str, Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    CATEGORICAL = "categorical"
    TEXT = "text"


class Role(str, Enum):
    USER_ID = "USER_ID"
    ITEM_ID = "ITEM_ID"
    TIMESTAMP = "TIMESTAMP"
    EVENT_TYPE = "EVENT_TYPE"
    EVENT_VALUE = "EVENT_VALUE"
    SESSION_ID = "SESSION_ID"
    TAGS = "TAGS"


class DatasetKind(str, Enum):
    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"


class ImportMode(str, Enum):
    FULL = "full"
    INCREMENTAL = "incremental"


# Which field types a role may take, and which roles each dataset kind needs.
_ROLE_TYPES: dict[Role, set[FieldType]] = {
    Role.USER_ID: {FieldType.STRING},
    Role.ITEM_ID: {FieldType.STRING},
    Role.SESSION_ID: {FieldType.STRING},
    Role.EVENT_TYPE: {FieldType.STRING},
    Role.TIMESTAMP: {FieldType.TIMESTAMP},
    Role.EVENT_VALUE: {FieldType.FLOAT, FieldType.INT},
    Role.TAGS: {FieldType.CATEGORICAL},
}
_REQUIRED_ROLES: dict[DatasetKind, set[Role]] = {
    DatasetKind.INTERACTIONS: {Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP},
    DatasetKind.ITEMS: {Role.ITEM_ID},
    DatasetKind.USERS: {Role.USER_ID},
}
_ALLOWED_ROLES: dict[DatasetKind, set[Role]] = {
    DatasetKind.INTERACTIONS: set(Role),
    DatasetKind.ITEMS: {Role.ITEM_ID, Role.TIMESTAMP, Role.TAGS},
    DatasetKind.USERS: {Role.USER_ID, Role.TAGS},
}
# ID roles can never be null: a row without its user or item is unusable. Exception: an
# interactions ITEM_ID declared nullable next to a TAGS field (a tag click names no item).
NON_NULL_ROLES = frozenset({Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP})


class SchemaField(_Model):
    """One column of a dataset."""

    name: FieldName = Field(description="Column name as it appears in the source file.")
    type: FieldType = Field(description="Value type; categorical is multi-valued (list of strings).")
    role: Role | None = Field(default=None, description="What the column means to recipes.")
    nullable: bool = Field(default=True, description="Whether empty values are allowed.")

    @model_validator(mode="after")
    def _role_type(self) -> SchemaField:
        if self.role is not None:
            allowed = _ROLE_TYPES[self.role]
            if self.type not in allowed:
                names = ", ".join(sorted(t.value for t in allowed))
                raise ValueError(
                    f"field {self.name!r}: role {self.role.value} needs type {names}, "
                    f"not {self.type.value}"
                )
            # An ITEM_ID may be declared nullable (a tag click has no item; see check_kind).
            explicit = self.role == Role.ITEM_ID and self.nullable and "nullable" in self.model_fields_set
            if self.role in NON_NULL_ROLES and not explicit:
                self.nullable = False
        return self


class Schema(_Model):
    """The columns of one dataset, with the roles recipes rely on."""

    fields: list[SchemaField] = Field(min_length=1, max_length=256)
    categorical_delimiter: str = Field(
        default="|",
        min_length=1,
        max_length=1,
        description="Separator of multi-valued categorical cells in CSV (e.g. 'a|b').",
    )

    @model_validator(mode="after")
    def _unique(self) -> Schema:
        seen: set[str] = set()
        roles: set[Role] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"field {f.name!r} appears twice")
            seen.add(f.name)
            if f.role is not None:
                if f.role in roles:
                    raise ValueError(f"role {f.role.value} is given to more than one field")
                roles.add(f.role)
        return self

    def field_for(self, role: Role) -> SchemaField | None:
        """The field carrying `role`, if any."""
        return next((f for f in self.fields if f.role == role), None)

    def check_kind(self, kind: DatasetKind) -> None:
        """Raise ValueError if this schema cannot describe a dataset of `kind`."""
        roles = {f.role for f in self.fields if f.role is not None}
        missing = _REQUIRED_ROLES[kind] - roles
        if missing:
            names = ", ".join(sorted(r.value for r in missing))
            raise ValueError(f"a {kind.value} schema needs a field with role {names}")
        extra = roles - _ALLOWED_ROLES[kind]
        if extra:
            names = ", ".join(sorted(r.value for r in extra))
            raise ValueError(f"role {names} is not allowed in a {kind.value} schema")
        item = self.field_for(Role.ITEM_ID)
        if item is not None and item.nullable and not (kind == DatasetKind.INTERACTIONS
                                                       and Role.TAGS in roles):
            raise ValueError(f"field {item.name!r} (role ITEM_ID) may be nullable only in an interactions "
                             "schema with a TAGS field, where a row without an item is a tag click")


def interactions_schema() -> Schema:
    """The interactions schema tagrec's own converters and generator write (event value: float)."""
    return Schema(fields=[
        SchemaField(name="user_id", type=FieldType.STRING, role=Role.USER_ID),
        SchemaField(name="item_id", type=FieldType.STRING, role=Role.ITEM_ID),
        SchemaField(name="timestamp", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP),
        SchemaField(name="event_type", type=FieldType.STRING, role=Role.EVENT_TYPE, nullable=False),
        SchemaField(name="event_value", type=FieldType.FLOAT, role=Role.EVENT_VALUE, nullable=False),
    ])


class _Resource(_Model):
    model_config = ConfigDict(extra="ignore")
    name: str
    status: Status
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class DatasetGroupCreate(_Model):
    name: ResourceName = Field(description="Unique within the tenant.")
    description: str = Field(default="", max_length=1000)


class DatasetGroup(_Resource):
    description: str = ""


class DatasetCreate(_Model):
    kind: DatasetKind
    schema_: Schema = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _kind_fits(self) -> DatasetCreate:
        self.schema_.check_kind(self.kind)
        return self


class Dataset(_Resource):
    dataset_group: str
    kind: DatasetKind
    schema_: Schema = Field(alias="schema")
    current_snapshot: str | None = None
    row_count: int = 0
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ImportSource(_Model):
    """Where the data come from: an upload made through the API, or a URI the platform reads."""

    upload_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{32}$")] | None = None
    uri: Annotated[str, StringConstraints(max_length=2048)] | None = None
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="Detected from the content when omitted."
    )

    @model_validator(mode="after")
    def _one(self) -> ImportSource:
        if (self.upload_id is None) == (self.uri is None):
            raise ValueError("give exactly one of upload_id or uri")
        if self.uri is not None:
            m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)", self.uri)
            if not m:
                raise ValueError(f"uri must look like s3://bucket/key, got {self.uri!r}")
            # S3 clients normalize '.'/'..' segments and decode '%': a key must mean what it says.
            segments = m.group(2).split("/")
            if any(s in ("", ".", "..") for s in segments) or re.search(r"[%\\\x00-\x1f]", m.group(2)):
                raise ValueError(f"uri key may not contain '.', '..' or empty segments, '%', '\\' "
                                 f"or control characters, got {self.uri!r}")
        return self


class DatasetImportJobCreate(_Model):
    name: ResourceName
    dataset: DatasetKind
    source: ImportSource
    mode: ImportMode = ImportMode.FULL


class ImportProgress(_Model):
    model_config = ConfigDict(extra="ignore")
    rows: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None


class DatasetImportJob(_Resource):
    dataset_group: str
    dataset: DatasetKind
    mode: ImportMode
    source: ImportSource
    source_name: str | None = Field(default=None, description="The uploaded file's name or the URI.")
    progress: ImportProgress = Field(default_factory=ImportProgress)
    snapshot_id: str | None = None


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

    mode: Literal["temporal-holdout", "item-cold-start"] = Field(
        default="temporal-holdout",
        description="temporal-holdout: the latest interactions of a random sample of users are "
                    "held out; item-cold-start (HRNN-meta paper, Table 7): a random half of the "
                    "items is held out of training and ranked from their metadata only.",
    )
    test_fraction: float = Field(default=0.1, gt=0, le=1, description="Share of users tested.")
    min_test_users: int = Field(
        default=300, ge=1, le=1_000_000, description="At least this many test users when the data allow."
    )
    holdout_last: int = Field(
        default=10, ge=1, le=1000, description="Most recent interactions held out per test user."
    )
    depth: int = Field(
        default=100, ge=25, le=10_000,
        description="Length of the ranked lists scored (MRR is over this depth, for the model "
                    "and the baselines alike).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split.")


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
        default=None, description="Epochs run, training events, events/s, resumed_from_epoch."
    )
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    artifact_uri: str | None = Field(default=None, description="Where the portable model lives.")


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


class _CampaignScaling(_Model):
    min_replicas: int = Field(default=1, ge=1, le=100, description="Replicas always running.")
    max_replicas: int = Field(default=1, ge=1, le=100, description="Autoscaling upper bound.")
    max_ongoing_requests: int = Field(
        default=128, ge=1, le=10_000,
        description="Requests a replica holds at once (batched). Below ~128, Ray Serve's router "
                    "backs off once a replica is full and serves far below capacity (measured: "
                    "benchmarks/serving_latency.py).",
    )
    max_queued_requests: int = Field(
        default=64, ge=0, le=100_000,
        description="Requests waiting for a replica; beyond this the endpoint answers 429 at once.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> _CampaignScaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas "
                             f"({self.min_replicas})")
        return self


class CampaignCreate(_CampaignScaling):
    """Deploy a solution version as a live endpoint."""

    name: ResourceName
    solution: ResourceName
    solution_version: ResourceName


class CampaignUpdate(_Model):
    """Switch versions (no downtime) or change scaling; omitted fields keep their value."""

    solution: ResourceName | None = None
    solution_version: ResourceName | None = None
    min_replicas: int | None = Field(default=None, ge=1, le=100)
    max_replicas: int | None = Field(default=None, ge=1, le=100)
    max_ongoing_requests: int | None = Field(default=None, ge=1, le=10_000)
    max_queued_requests: int | None = Field(default=None, ge=0, le=100_000)


class Campaign(_Resource):
    dataset_group: str
    solution: str
    solution_version: str
    recipe: str | None = None
    min_replicas: int = 1
    max_replicas: int = 1
    max_ongoing_requests: int = 128
    max_queued_requests: int = 64
    endpoint: str | None = Field(default=None, description="URL of the recommendation API.")
    pending_update: dict[str, Any] | None = Field(
        default=None, description="An update being rolled out (the previous version serves meanwhile)."
    )
    last_update_failure: str | None = None


ContextValue = str | int | float | bool
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _check_context(context: dict[str, Any]) -> dict[str, Any]:
    stamp = context.get("timestamp")
    if stamp is not None and (isinstance(stamp, (bool, str)) or not 0 <= float(stamp) <= 32503680000):
        raise ValueError(f"context.timestamp must be epoch seconds between 0 and 32503680000, "
                         f"got {stamp!r}")
    return context


class RecommendRequest(_Model):
    user_id: ItemId
    num_results: int = Field(default=25, ge=1, le=500)
    context: dict[Annotated[str, StringConstraints(max_length=64)], ContextValue] = Field(
        default_factory=dict, max_length=32,
        description="Request context; 'timestamp' (epoch seconds) sets the request time.",
    )
    exclude_seen: bool = Field(default=True, description="Leave out items in the user's history.")

    _context = field_validator("context")(classmethod(lambda cls, v: _check_context(v)))


class RankRequest(_Model):
    user_id: ItemId
    items: list[ItemId] = Field(min_length=1, max_length=500)
    context: dict[Annotated[str, StringConstraints(max_length=64)], ContextValue] = Field(
        default_factory=dict, max_length=32)

    _context = field_validator("context")(classmethod(lambda cls, v: _check_context(v)))


class RecommendedItem(_Model):
    item_id: str
    score: float | None = Field(description="The model's score (None: an item it does not know).")


class RecommendResponse(_Model):
    model_config = ConfigDict(extra="ignore")
    items: list[RecommendedItem]
    solution_version: str
    fallback: bool = Field(description="True when the user is unknown and popularity answered.")


class Event(_Model):
    item_id: ItemId
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="Deduplication key: an event id seen before is not stored again."
    )
    timestamp: float | None = Field(default=None, ge=0, le=32503680000,
                                    description="Epoch seconds; the time of receipt when omitted.")
    event_type: Annotated[str, StringConstraints(max_length=256)] | None = None
    event_value: float | None = Field(default=None, allow_inf_nan=False)


class PutEventsRequest(_Model):
    user_id: ItemId
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    events: list[Event] = Field(min_length=1, max_length=10)


class PutEventsResponse(_Model):
    model_config = ConfigDict(extra="ignore")
    accepted: int
    duplicates: int


class ErrorBody(_Model):
    """The body of every error answer: `{"error": {"type", "message", "field"?}}`."""

    type: str
    message: str
    field: str | None = None


class Page(_Model):
    model_config = ConfigDict(extra="ignore")
    items: list[dict]
    next_token: str | None = None
