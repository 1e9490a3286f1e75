"""Item-tag-frequency hyperparameters (item-tags baseline; no paper: an item's most applied tags)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ItemTagFrequencyConfig"]


class ItemTagFrequencyConfig(BaseModel):
    """Every hyperparameter of the item-tag-frequency recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_count: int = Field(
        default=1, ge=1, le=1_000_000,
        description="Times a tag must have been applied to an item in training to be one of the "
                    "item's own tags, answered when a request gives no candidate tags (an item "
                    "without any is answered like an unknown one).")
    max_history: int = Field(
        default=500, ge=1, le=100_000,
        description="The latest events of a user's history a campaign keeps (read for exclude_seen "
                    "and to tell an unknown user).")
