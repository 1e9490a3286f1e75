"""The five tasks: what a recipe answers, independent of the model that answers it.

A task is the seam every recipe plugs into (DESIGN.md, "Tasks"). It owns what does not depend
on the model: the runtime verbs a campaign of the task serves (each with its request model in
:mod:`sdk.types`), what the answer ranks (items or tags), whose history is read at request time
(a user's, a session's, none), the datasets every recipe of the task needs, the minimum data to
train on, the evaluation protocols with their baselines, the baseline recipe the task ships,
and what an unknown user/session/item gets. A recipe names its task and brings the model.

Pure Python (no torch, no ray): the SDK, the control plane, the jobs and the replicas read it.

| task | question | verbs | answer |
|---|---|---|---|
| ``next-item`` | which items next, for a user | ``recommend``, ``rank`` | ranked items |
| ``user-tags`` | a user's tag profile (UTPM) | ``recommend-tags`` | ranked tags |
| ``item-tags`` | an item's tags to show this user (GraphTR) | ``recommend-tags`` | the item's tags ranked |
| ``tag-set`` | the tag set of a text or post (SOG) | ``generate-tags`` | a set of tags, with scores |
| ``session-tags`` | next tags in a support session (IntelliTag) | ``next-tags`` | tags (+ questions) |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from sdk.types import DatasetKind, Role

__all__ = ["TASKS", "HistoryKey", "MinimumData", "Target", "Task", "TaskId", "get_task", "task_serving"]


class TaskId(str, Enum):
    NEXT_ITEM = "next-item"
    USER_TAGS = "user-tags"
    ITEM_TAGS = "item-tags"
    TAG_SET = "tag-set"
    SESSION_TAGS = "session-tags"


class Target(str, Enum):
    """What an answer ranks."""

    ITEMS = "items"
    TAGS = "tags"


class HistoryKey(str, Enum):
    """Whose past events a request is answered from (snapshot + real-time events)."""

    USER = "user"
    SESSION = "session"
    NONE = "none"


@dataclass(frozen=True)
class MinimumData:
    """Data too thin to learn from is refused before training, with this rule in the reason.

    Attributes:
        dataset: The dataset the rule counts in.
        min_rows: Rows it must have (rows carrying ``with_role`` when that is set).
        with_role: Count only rows with a non-empty value of this role (e.g. TAGS).
        key_role: Count keys (users, sessions, items) with at least ``per_key`` such rows...
        min_keys: ...and need at least this many of them.
        per_key: See ``key_role``.
    """

    dataset: DatasetKind
    min_rows: int
    with_role: Role | None = None
    key_role: Role | None = None
    min_keys: int = 0
    per_key: int = 2


@dataclass(frozen=True)
class Task:
    """One task of the registry (see the module docstring)."""

    id: TaskId
    question: str
    target: Target
    history: HistoryKey
    verbs: tuple[str, ...]
    needs: Mapping[DatasetKind, tuple[Role, ...]]
    minimum: tuple[MinimumData, ...]
    protocols: tuple[str, ...]  # evaluation protocols; the first is the default
    baseline_recipe: str
    fallback: str  # what a request the model cannot answer from its history gets
    request_key: str | None = None  # the request field naming the history's key
    extra: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """The task as the API shows it (`GET /v1/tasks`)."""
        return {"id": self.id.value, "question": self.question, "target": self.target.value,
                "history": self.history.value, "verbs": list(self.verbs),
                "needs": {k.value: [r.value for r in v] for k, v in self.needs.items()},
                "protocols": list(self.protocols), "baseline_recipe": self.baseline_recipe,
                "fallback": self.fallback}


_USERS = (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP)

TASKS: Mapping[TaskId, Task] = {
    t.id: t
    for t in (
        Task(
            id=TaskId.NEXT_ITEM, question="which items next, for a user", target=Target.ITEMS,
            history=HistoryKey.USER, verbs=("recommend", "rank"), request_key="user_id",
            needs={DatasetKind.INTERACTIONS: _USERS},
            minimum=(MinimumData(DatasetKind.INTERACTIONS, 1000, key_role=Role.USER_ID, min_keys=25),),
            protocols=("temporal-holdout", "item-cold-start"), baseline_recipe="item-popularity",
            fallback="the most popular items, flagged fallback"),
        Task(
            id=TaskId.USER_TAGS, question="a user's tag profile", target=Target.TAGS,
            history=HistoryKey.USER, verbs=("recommend-tags",), request_key="user_id",
            needs={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.TIMESTAMP, Role.TAGS)},
            minimum=(MinimumData(DatasetKind.INTERACTIONS, 500, with_role=Role.TAGS,
                                 key_role=Role.USER_ID, min_keys=25),),
            protocols=("user-tag-holdout", "user-split"), baseline_recipe="tag-popularity",
            fallback="the most used tags overall, flagged fallback"),
        Task(
            id=TaskId.ITEM_TAGS, question="which of an item's tags to show this user", target=Target.TAGS,
            history=HistoryKey.USER, verbs=("recommend-tags",), request_key="user_id",
            needs={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP, Role.TAGS)},
            minimum=(MinimumData(DatasetKind.INTERACTIONS, 500, with_role=Role.TAGS,
                                 key_role=Role.ITEM_ID, min_keys=25),),
            protocols=("item-tag-holdout",), baseline_recipe="item-tag-frequency",
            fallback="the item's most applied tags (the catalog's for an unknown item), flagged fallback"),
        Task(
            id=TaskId.TAG_SET, question="the tag set of a text or post", target=Target.TAGS,
            history=HistoryKey.NONE, verbs=("generate-tags",), request_key=None,
            needs={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS)},
            minimum=(MinimumData(DatasetKind.ITEMS, 200, with_role=Role.TAGS),),
            protocols=("post-holdout",), baseline_recipe="tag-cooccurrence",
            fallback="the most used tags, flagged fallback, when the text has no known word"),
        Task(
            id=TaskId.SESSION_TAGS, question="the next tags in a support session", target=Target.TAGS,
            history=HistoryKey.SESSION, verbs=("next-tags",), request_key="session_id",
            needs={DatasetKind.INTERACTIONS: (Role.SESSION_ID, Role.TIMESTAMP, Role.TAGS)},
            minimum=(MinimumData(DatasetKind.INTERACTIONS, 500, with_role=Role.TAGS,
                                 key_role=Role.SESSION_ID, min_keys=50),),
            protocols=("session-holdout",), baseline_recipe="session-tag-popularity",
            fallback="the organisation's most clicked tags, flagged fallback"),
    )
}


def get_task(task_id: str | TaskId) -> Task:
    """The task `task_id`; ValueError naming the valid ids otherwise."""
    try:
        return TASKS[TaskId(task_id)]
    except ValueError:
        valid = ", ".join(t.value for t in TaskId)
        raise ValueError(f"unknown task {task_id!r}; valid tasks: {valid}") from None


def task_serving(verb: str) -> list[Task]:
    """The tasks whose campaigns serve `verb` (for the 400 that names the right one)."""
    return [t for t in TASKS.values() if verb in t.verbs]
