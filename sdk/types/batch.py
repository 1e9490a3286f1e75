"""Batch inference jobs: a solution version's answers for many users at once, as Parquet files.

A job answers every user of the interactions snapshot the version trained on (or a given list)
as a campaign would answer each one's request (``recommend`` for next-item, ``recommend-tags``
for user-tags), and writes ``answers`` (user_id, rank, item_id or tag, score, fallback); a
user-tags job also writes ``segments`` (tag, rank, user_id, score: per tag, the users whose
profile holds it, best first). Amazon Personalize calls these batch inference and batch segment
jobs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from .common import ResourceName, _Model, _Resource

__all__ = [
    "BATCH_OUTPUTS",
    "BATCH_TASKS",
    "DEFAULT_SEGMENT_SIZE",
    "MAX_BATCH_USERS",
    "MAX_NUM_RESULTS",
    "BatchInferenceJobCreate",
    "BatchInferenceProgress",
    "BatchInferenceOutput",
    "BatchInferenceJob",
]

BATCH_OUTPUTS = ("answers", "segments")
BATCH_TASKS = ("next-item", "user-tags")  # the tasks whose answers are per user
MAX_NUM_RESULTS = 500  # as a campaign request's num_results (RecommendRequest, TagsRequest)
MAX_BATCH_USERS = 100_000
DEFAULT_SEGMENT_SIZE = 100
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Output = Literal["answers", "segments"]


class BatchInferenceJobCreate(_Model):
    """A solution version asked for many users' answers at once (next-item or user-tags)."""

    name: ResourceName
    solution: ResourceName
    solution_version: ResourceName | None = Field(
        default=None, description="An ACTIVE version of the solution (default: its newest ACTIVE one).")
    num_results: int = Field(default=25, ge=1, le=MAX_NUM_RESULTS,
                             description="Items or tags per user, as a campaign request's num_results.")
    users: list[UserId] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH_USERS,
        description="The users to answer (default: every user of the interactions snapshot the version "
                    "trained on); a user the model does not know gets the task's fallback, flagged.")
    segment_size: int | None = Field(
        default=None, ge=1, le=MAX_BATCH_USERS,
        description=f"user-tags only: users kept per tag in the segments (default {DEFAULT_SEGMENT_SIZE}).")


class BatchInferenceProgress(_Model):
    model_config = ConfigDict(extra="ignore")
    users_done: int = Field(default=0, description="Users answered so far.")
    users_total: int | None = Field(default=None, description="Users to answer (once known).")


class BatchInferenceOutput(_Model):
    """One output file (download it with ``client.batch_inference_jobs.download``)."""

    model_config = ConfigDict(extra="ignore")
    rows: int
    size_bytes: int


class BatchInferenceJob(_Resource):
    """A batch inference job; its outputs are listed once it is ACTIVE (never before)."""

    dataset_group: str
    solution: str
    solution_version: str
    recipe: str
    task: str = Field(description="next-item or user-tags.")
    num_results: int
    segment_size: int | None = Field(default=None, description="user-tags: users kept per tag.")
    users_given: int | None = Field(
        default=None, description="How many users the request listed (null: every user of the snapshot).")
    snapshot_id: str | None = Field(default=None,
                                    description="The interactions snapshot the users' histories come from.")
    as_of: float | None = Field(default=None,
                                description="The request time every answer was computed at (epoch seconds).")
    progress: BatchInferenceProgress = Field(default_factory=BatchInferenceProgress)
    outputs: dict[Output, BatchInferenceOutput] = Field(
        default_factory=dict, description="answers (and segments for user-tags), once ACTIVE.")
