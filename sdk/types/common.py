"""Names, lifecycle statuses, and the model bases and bodies every part of the contract shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
    "describe_problem",
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


# Location parts pydantic adds that are no field of the request: a dict key's own check, and (last
# in the location) the member of a union tried (`str`, `list[str]`, `function-after[...]`).
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|constrained-\w+|[\w-]+\[.*\])$")
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


def describe_problem(error: Mapping[str, Any], *, prefix: Sequence[str] = (),
                     where: str | None = None) -> tuple[str | None, str]:
    """One pydantic error (an item of ``ValidationError.errors()``) in plain words.

    Returns ``(field, "field: problem (got value)")``: the field is the dotted location (FastAPI's
    leading ``body`` and pydantic's own markers left out, `prefix` in front), the value is shown
    only when it is a scalar, cut at 80 characters. `where` replaces the field in the message.
    """
    parts = list(error.get("loc", ()))
    if parts and parts[0] == "body":  # FastAPI's
        parts = parts[1:]
    if len(parts) > 1 and isinstance(parts[-1], str) and _UNION_MEMBER.match(parts[-1]):
        parts = parts[:-1]
    loc = [str(p) for p in parts if p != "[key]"]
    field = ".".join([*prefix, *loc]) or None
    msg = str(error.get("msg", "invalid input"))
    for start in _MESSAGE_PREFIXES:
        msg = msg.removeprefix(start)
    given = error.get("input")
    shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r:.80})"
    return field, f"{where or field or 'request'}: {msg}{shown}"
