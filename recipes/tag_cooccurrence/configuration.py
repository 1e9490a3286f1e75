"""Tag-cooccurrence hyperparameters (the tag-set task's baseline; no paper, so the defaults are
plain choices: see each field). Nothing is optimized: the counts are the model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TagCooccurrenceConfig"]


class TagCooccurrenceConfig(BaseModel):
    """Every hyperparameter of the tag-cooccurrence recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_words: int = Field(
        default=100_000, ge=1, le=10_000_000,
        description="Vocabulary size: the words in the most training posts are kept (ties in string "
                    "order); other words of a text are ignored.")
    min_word_count: int = Field(
        default=2, ge=1, le=1_000_000,
        description="A word must appear in at least this many tagged training posts to be in the "
                    "vocabulary (a word seen once says nothing beyond its one post).")
    min_tag_count: int = Field(
        default=1, ge=1, le=1_000_000,
        description="A tag must be on at least this many training posts to be answered.")
    smoothing: float = Field(
        default=5.0, ge=0.0, le=1e6,
        description="Pseudo-posts m of the tag-popularity prior in P(t|x) = (n(x, t) + m P(t)) / "
                    "(n(x) + m): a word (or chosen tag) seen in few posts votes mostly like the "
                    "catalog; one seen in many votes by its own co-occurrences.")
    popularity_damping: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Exponent a of the division of every score by P(t)^a: 0 votes by P(t|x) "
                    "(popular tags win), 1 by the lift P(t|x) / P(t) (rare tags win).")
