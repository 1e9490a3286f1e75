"""Schemas, datasets, dataset groups and import jobs.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from .common import FieldName, ResourceName, _Model, _Resource

__all__ = [
    "FieldType",
    "Role",
    "DatasetKind",
    "ImportMode",
    "NON_NULL_ROLES",
    "SchemaField",
    "Schema",
    "interactions_schema",
    "DatasetGroupCreate",
    "DatasetGroup",
    "DatasetCreate",
    "Dataset",
    "ImportSource",
    "DatasetImportJobCreate",
    "ImportProgress",
    "DatasetImportJob",
]



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
            article = "a" if kind == DatasetKind.USERS else "an"
            raise ValueError(f"{article} {kind.value} schema needs a field with role {names}")
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
