"""Campaigns: a solution version deployed as a live endpoint.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .common import ResourceName, _Model, _Resource

__all__ = [
    "CampaignCreate",
    "CampaignUpdate",
    "Campaign",
]



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
    task: str | None = Field(default=None, description="What it answers (sdk.tasks), e.g. next-item; "
                                                       "its verbs are the task's.")
    min_replicas: int = 1
    max_replicas: int = 1
    max_ongoing_requests: int = 128
    max_queued_requests: int = 64
    endpoint: str | None = Field(default=None, description="URL of the recommendation API.")
    pending_update: dict[str, Any] | None = Field(
        default=None, description="An update being rolled out (the previous version serves meanwhile)."
    )
    last_update_failure: str | None = None
