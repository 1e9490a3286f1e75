"""UTPM hyperparameters.

Follows "Learning to Build User-tag Profile in Recommendation System" (Yan et al., CIKM'20): §3
(feature-input, attention-fusion, cross-feature, fully-connected and predicting layers, eq. 1-4),
§4.1 (labels from ratings: >= 3.5 positive, <= 1.5 negative; the oldest 80 % of a user's ratings
build the fields) and Table 1's MovieLens column for the defaults (E=16, H=10, T=8, C=4, U=16,
K=10, N=3). Table 1's F ("context dimension of AF layer") has no place in eq. 1-3 (T sizes both W
and q), so it is not a field; the first FC layer's width is `fc_hidden`.

Ambiguities of the paper, as flags (default: our reading of the paper):

* `cross_over`: eq. 3 crosses x ∈ R^E, yet §3 passes "two merged embeddings together to the upper
  layer". Default ``"concat"``: x is the heads' concatenation (heads·E), so the cross layer also
  pairs dimensions of different heads; ``"head"`` crosses each head's E dimensions on its own.
* `tie_tag_embeddings`: §3 maps label tags "into the same vector space of user embedding" with a
  look-up of their own; default False (separate output table of size U); True reuses the liked-tag
  field's input table (needs E == U; §4.7 notes the two sizes are equal).
* `bias_per_head`: eq. 1 writes W_{k,1} per head but b_k per field; default False (b_k shared by
  the heads of a field).

Ablations (§4.2-4.4) and the baseline: `heads=1`, `shared_queries=False` (AF-1head-unshared: one
query per attention unit), `cross=False` (no CF layer), `loss="separate"` (each tag of a labelled
item its own BCE sample) and `fusion="average"` (the YouTube-DNN baseline [4]: average pooling in
each field, fields concatenated, two FC layers; same predicting layer and loss).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["UtpmConfig"]


class UtpmConfig(BaseModel):
    """Every hyperparameter of the UTPM recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- inputs (§3 "Feature-input layer", Table 1) -----------------------------------------
    embedding_dim: int = Field(default=16, ge=1, le=1024,
                               description="E: size of every input feature embedding (Table 1).")
    max_features: int = Field(
        default=10, ge=1, le=1000,
        description="H: features kept per field; a field's features are its most frequent values in "
                    "the user's history (ties: the most recent).")
    tags_per_item: int = Field(default=3, ge=1, le=100,
                               description="N: an item's tags used (its first N), in fields and labels.")
    max_labels: int = Field(default=10, ge=1, le=1000,
                            description="K: labelled items per training sample (the first after its cut).")
    disliked_fields: bool = Field(
        default=True,
        description="Add the tags and categories of disliked items as two more fields (the paper's "
                    "MovieLens run has M=2: liked tags and categories).")
    min_tag_count: int = Field(
        default=1, ge=1, le=1_000_000,
        description="Tags seen on fewer training events/items are not in the vocabulary (rare tags).")
    max_history: int = Field(default=1000, ge=1, le=100_000,
                             description="The latest events of a user's history read at request time.")
    # --- labels (§4.1) ----------------------------------------------------------------------
    positive_threshold: float = Field(default=3.5, allow_inf_nan=False,
                                      description="An event value at or above this is positive.")
    negative_threshold: float = Field(default=1.5, allow_inf_nan=False,
                                      description="An event value at or below this is negative.")
    positive_event_types: list[str] = Field(
        default_factory=list,
        description="Event types that are positive whatever their value (e.g. click, purchase).")
    negative_event_types: list[str] = Field(
        default_factory=list, description="Event types that are negative (e.g. impression, skip).")
    sampled_negatives: int = Field(
        default=8, ge=0, le=100,
        description="Sampled 'shown, not clicked' negatives per positive label (0: only the data's own "
                    "negatives, as the paper); redrawn every epoch. Data without impressions (ratings, "
                    "clicks, tag assignments) has few or no negatives; 8 was best on the validation "
                    "part of MovieLens (benchmarks/utpm_quality.py).")
    negative_sampling: Literal["tags", "items", "popularity"] = Field(
        default="popularity",
        description="What a sampled negative is: 'tags', N tags drawn uniformly from the vocabulary (u·t "
                    "then ranks tags by how likely the user clicks them); 'items', a random catalog item's "
                    "tags (tags on many items become negative evidence, which favours rare tags); "
                    "'popularity', N tags drawn in proportion to their training clicks (+1), with log q(t) "
                    "added to every tag's score at inference (the sampled-softmax logQ correction), so u·t "
                    "learns the user's lift over popularity and the ranking is still by click probability. "
                    "Default 'popularity': with uniform tags every user got the same top tags on MovieLens "
                    "(benchmarks/utpm_quality.py, protocol user-split).")
    field_fraction: float = Field(
        default=0.8, gt=0, lt=1,
        description="A training sample's fields come from the oldest field_fraction of the user's "
                    "events, its labels from the next ones (§4.1).")
    cuts_per_user: int = Field(
        default=4, ge=1, le=100,
        description="Training samples per user: cut points evenly spaced up to field_fraction (1: one "
                    "cut at field_fraction, as the paper; more cuts give small data more samples).")
    # --- attention fusion (§3, eq. 1-2) -----------------------------------------------------
    fusion: Literal["attention", "average"] = Field(
        default="attention",
        description="'attention': UTPM's attention fusion; 'average': the YouTube-DNN baseline (average "
                    "pooling in each field, fields concatenated).")
    heads: int = Field(default=2, ge=1, le=16,
                       description="Attention heads, concatenated (2 in §3; Fig. 4 finds 4 best).")
    query_dim: int = Field(default=8, ge=1, le=1024, description="T: size of the query vectors (Table 1).")
    shared_queries: bool = Field(
        default=True,
        description="One query per head shared by all attention units, within and across fields (§3); "
                    "False: each unit its own query (AF-1head-unshared, §4.2).")
    bias_per_head: bool = Field(
        default=False, description="Eq. 1's bias b_k per head (default: per field, shared by the heads).")
    # --- cross feature (§3, eq. 3) ----------------------------------------------------------
    cross: bool = Field(default=True, description="The cross-feature layer (False: the CF ablation).")
    cross_dim: int = Field(default=4, ge=1, le=256,
                           description="C: size of the hidden vectors v_i (Table 1).")
    cross_over: Literal["concat", "head"] = Field(
        default="concat",
        description="Cross the heads' concatenation ('concat') or each head's E dimensions ('head').")
    # --- FC and predicting layers (§3, eq. 4) ------------------------------------------------
    fc_hidden: int = Field(default=64, ge=1, le=8192, description="Width of the first of the two FC layers.")
    user_dim: int = Field(default=16, ge=1, le=1024, description="U: size of the user embedding u (Table 1).")
    activation: Literal["relu", "tanh", "selu", "sigmoid"] = Field(
        default="relu", description="Activation of the attention transform and the FC layer (§4.7: relu).")
    tie_tag_embeddings: bool = Field(
        default=False, description="Score tags with the liked-tag input table (needs E == U).")
    loss: Literal["joint", "separate"] = Field(
        default="joint",
        description="'joint': eq. 4, sigmoid of the sum of u·t over the item's tags; 'separate': each "
                    "tag its own BCE sample (§4.4's ablation).")
    clicked_tags_first: bool = Field(
        default=True,
        description="Rank the tags the user clicked (in liked items) first, by u·t, then the others: the "
                    "candidate selection step of §1 (Fig. 1: the user's clicked tags are collected, the "
                    "model scores them). False ranks every tag by u·t alone. Default True: without it "
                    "every MovieLens test user got nearly the same top tags (benchmarks/utpm_quality.py).")
    # --- optimization -----------------------------------------------------------------------
    epochs: int = Field(default=10, ge=1, le=10_000, description="Passes over the training samples.")
    batch_size: int = Field(default=128, ge=1, le=65_536, description="Training samples per batch.")
    learning_rate: float = Field(default=0.005, gt=0.0, le=10.0, description="Adam learning rate.")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="Adam (L2) weight decay.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1,
                      description="Seed of initialization, shuffling and sampled negatives.")

    @model_validator(mode="after")
    def _check(self) -> UtpmConfig:
        if self.tie_tag_embeddings and self.embedding_dim != self.user_dim:
            raise ValueError(f"tie_tag_embeddings needs embedding_dim == user_dim, got "
                             f"{self.embedding_dim} and {self.user_dim}")
        if self.negative_threshold >= self.positive_threshold:
            raise ValueError(f"negative_threshold ({self.negative_threshold}) must be below "
                             f"positive_threshold ({self.positive_threshold})")
        return self
