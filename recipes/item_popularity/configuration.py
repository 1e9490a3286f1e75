"""Item-popularity hyperparameters (next-item baseline; no paper: Amazon Personalize's
Popularity-Count recipe does the same)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ItemPopularityConfig"]


class ItemPopularityConfig(BaseModel):
    """Every hyperparameter of the item-popularity recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_days: float | None = Field(
        default=None, gt=0, le=36_500,
        description="Count only the interactions of the last this many days before the newest "
                    "training event (None: all of them).")
    smoothing: float = Field(
        default=1.0, ge=0, le=1e6,
        description="Laplace smoothing of the popularity distribution (perplexity of items never "
                    "interacted with stays finite).")
