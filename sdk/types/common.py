"""Names, lifecycle statuses, and the model bases and bodies every part of the contract shares.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = [
    "NAME_PATTERN",
    "FIELD_NAME_PATTERN",
    "ResourceName",
    "FieldName",
    "Status",
    "TERMINAL_STATUSES",
    "ErrorBody",
    "Page",
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


class _Resource(_Model):
    model_config = ConfigDict(extra="ignore")
    name: str
    status: Status
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class ErrorBody(_Model):
    """The body of every error answer: `{"error": {"type", "message", "field"?}}`."""

    type: str
    message: str
    field: str | None = None


class Page(_Model):
    model_config = ConfigDict(extra="ignore")
    items: list[dict[str, Any]]  # JSON objects, parsed by the listing's own model
    next_token: str | None = None
