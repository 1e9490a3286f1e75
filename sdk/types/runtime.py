"""What a campaign endpoint is asked and answers, per task, and real-time events.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from .common import _Model

__all__ = [
    "ContextValue",
    "ItemId",
    "RecommendRequest",
    "RankRequest",
    "RecommendedItem",
    "RecommendResponse",
    "Event",
    "PutEventsRequest",
    "PutEventsResponse",
]



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
