"""What a campaign endpoint is asked and answers, per task (`sdk.tasks`), and real-time events.

| verb (route) | task(s) | request | answer |
|---|---|---|---|
| ``recommend`` | next-item | :class:`RecommendRequest` | :class:`RecommendResponse` |
| ``rank`` | next-item | :class:`RankRequest` | :class:`RecommendResponse` |
| ``recommend-tags`` | user-tags, item-tags | :class:`TagsRequest` | :class:`TagsResponse` |
| ``generate-tags`` | tag-set | :class:`GenerateTagsRequest` | :class:`TagsResponse` |
| ``next-tags`` | session-tags | :class:`NextTagsRequest` | :class:`TagsResponse` |

Requests forbid unknown fields (a typo is a 400 naming it); answers ignore fields they do not
know, so a server that adds one never breaks a deployed client.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from .common import _Model

__all__ = [
    "ContextValue",
    "ItemId",
    "TagId",
    "RecommendRequest",
    "RankRequest",
    "RecommendedItem",
    "RecommendResponse",
    "TagsRequest",
    "GenerateTagsRequest",
    "SessionEvent",
    "NextTagsRequest",
    "ScoredTag",
    "TagsResponse",
    "VERB_REQUESTS",
    "VERB_RESPONSES",
    "Event",
    "PutEventsRequest",
    "PutEventsResponse",
]



ContextValue = str | int | float | bool
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
TagId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=32_000)]
Context = dict[Annotated[str, StringConstraints(max_length=64)], ContextValue]


def _check_context(context: dict[str, Any]) -> dict[str, Any]:
    stamp = context.get("timestamp")
    # Compared as given: float() of a JSON integer past 1e308 overflows.
    if stamp is not None and (isinstance(stamp, (bool, str)) or not 0 <= stamp <= 32503680000):
        raise ValueError(f"context.timestamp must be epoch seconds between 0 and 32503680000, "
                         f"got {stamp!r:.40}")
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
    context: Context = Field(default_factory=dict, max_length=32)

    _context = field_validator("context")(classmethod(lambda cls, v: _check_context(v)))


class RecommendedItem(_Model):
    item_id: str
    score: float | None = Field(description="The model's score (None: an item it does not know).")


class RecommendResponse(_Model):
    model_config = ConfigDict(extra="ignore")
    items: list[RecommendedItem]
    solution_version: str
    fallback: bool = Field(description="True when the user is unknown and popularity answered.")


class TagsRequest(_Model):
    """``recommend-tags``: a user's tag profile (user-tags), or which of an item's tags to show
    this user (item-tags: give `item_id`)."""

    user_id: ItemId
    item_id: ItemId | None = Field(default=None, description="item-tags: the item whose tags to rank.")
    tags: list[TagId] | None = Field(
        default=None, min_length=1, max_length=500,
        description="Rank only these tags (item-tags: default the item's own known tags).")
    num_results: int = Field(default=10, ge=1, le=500)
    exclude_seen: bool = Field(default=False, description="Leave out tags the user already used.")
    context: Context = Field(default_factory=dict, max_length=32)

    _context = field_validator("context")(classmethod(lambda cls, v: _check_context(v)))


class GenerateTagsRequest(_Model):
    """``generate-tags``: the tag set of a text or post (give `text`, named `fields`, or the
    `item_id` of an item whose text fields are stored)."""

    text: Text | None = Field(default=None, description="The post's text (title and body, say).")
    fields: dict[Annotated[str, StringConstraints(max_length=64)], Text] = Field(
        default_factory=dict, max_length=16,
        description="Named text fields, as in the items dataset (e.g. title, content).")
    item_id: ItemId | None = Field(default=None, description="A stored item whose text fields to use.")
    chosen: list[TagId] = Field(default_factory=list, max_length=50,
                                description="Tags already chosen: the set is completed around them.")
    num_results: int = Field(default=5, ge=1, le=100, description="At most this many tags in the set.")

    @model_validator(mode="after")
    def _something(self) -> GenerateTagsRequest:
        if not (self.text or self.fields or self.item_id):
            raise ValueError("give text, fields or item_id: the text to tag")
        return self


class SessionEvent(_Model):
    """A click in a support session: on a tag, or on a question (an item)."""

    tag: TagId | None = None
    item_id: ItemId | None = None
    timestamp: float | None = Field(default=None, ge=0, le=32503680000)

    @model_validator(mode="after")
    def _one(self) -> SessionEvent:
        if (self.tag is None) == (self.item_id is None):
            raise ValueError("give exactly one of tag and item_id")
        return self


class NextTagsRequest(_Model):
    """``next-tags``: the next tags to offer in a support session (+ the questions they lead to)."""

    session_id: ItemId
    organisation: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    text: Text | None = Field(default=None, description="What the customer typed so far.")
    events: list[SessionEvent] = Field(
        default_factory=list, max_length=50,
        description="Clicks of this session not sent with events.put (added to its stored history).")
    num_results: int = Field(default=5, ge=1, le=100)
    num_questions: int = Field(default=3, ge=0, le=50, description="Matching questions to return.")


class ScoredTag(_Model):
    model_config = ConfigDict(extra="ignore")
    tag: str
    score: float | None = None


class TagsResponse(_Model):
    """The answer of every tag verb."""

    model_config = ConfigDict(extra="ignore")
    tags: list[ScoredTag]
    questions: list[RecommendedItem] = Field(default_factory=list,
                                             description="session-tags: matching questions.")
    solution_version: str
    fallback: bool = Field(description="True when the model had nothing to go on and the task's "
                                       "fallback answered.")


class Event(_Model):
    tags: list[TagId] | None = Field(default=None, min_length=1, max_length=50,
                                     description="Tags clicked or applied (the dataset's TAGS field).")
    item_id: ItemId | None = Field(default=None, validate_default=True,
                                   description="The item; empty for a tag click (give tags then).")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="Deduplication key: an event id seen before is not stored again."
    )
    timestamp: float | None = Field(default=None, ge=0, le=32503680000,
                                    description="Epoch seconds; the time of receipt when omitted.")
    event_type: Annotated[str, StringConstraints(max_length=256)] | None = None
    event_value: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("item_id")
    @classmethod
    def _item_or_tags(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not info.data.get("tags"):
            raise ValueError("required: the item interacted with (or tags, for a tag click)")
        return value


class PutEventsRequest(_Model):
    user_id: ItemId
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    events: list[Event] = Field(min_length=1, max_length=10)


class PutEventsResponse(_Model):
    model_config = ConfigDict(extra="ignore")
    accepted: int
    duplicates: int


# Each runtime verb's request and answer models (the route is the verb: POST <endpoint>/<verb>).
VERB_REQUESTS: dict[str, type[_Model]] = {
    "recommend": RecommendRequest, "rank": RankRequest, "recommend-tags": TagsRequest,
    "generate-tags": GenerateTagsRequest, "next-tags": NextTagsRequest,
}
VERB_RESPONSES: dict[str, type[_Model]] = {
    "recommend": RecommendResponse, "rank": RecommendResponse, "recommend-tags": TagsResponse,
    "generate-tags": TagsResponse, "next-tags": TagsResponse,
}
