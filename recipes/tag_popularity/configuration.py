"""Tag-popularity hyperparameters (user-tags baseline; no paper: a user's own tags, then everyone's)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TagPopularityConfig"]


class TagPopularityConfig(BaseModel):
    """Every hyperparameter of the tag-popularity recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_history: int = Field(
        default=500, ge=1, le=100_000,
        description="The latest events of a user's history read at request time (a campaign keeps "
                    "this many per user).")
    half_life_days: float | None = Field(
        default=None, gt=0, le=36_500,
        description="Weigh each past use of a tag by 0.5 ** (its age in days at the request time / "
                    "half_life_days) (None: every use counts 1). Ties go to the tag used last.")
