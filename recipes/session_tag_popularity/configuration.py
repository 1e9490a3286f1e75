"""Session-tag-popularity hyperparameters (session-tags baseline; no paper: the counts IntelliTag's
deployment falls back to, "the most frequently clicked tags", plus its TT relation as counts)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SessionTagPopularityConfig"]


class SessionTagPopularityConfig(BaseModel):
    """Every hyperparameter of the session-tag-popularity recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transitions: bool = Field(
        default=True,
        description="Rank first the tags that followed the session's last clicked tag in the "
                    "organisation's training sessions (tag -> next-tag counts, the paper's TT "
                    "relation); False: the organisation's most clicked tags only.")
    max_history: int = Field(
        default=64, ge=1, le=10_000,
        description="Latest events of a session a campaign reads to answer it.")
