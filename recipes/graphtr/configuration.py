"""GraphTR hyperparameters.

Follows "Graph Neural Network for Tag Ranking in Tag-enhanced Video Recommendation" (Liu, Xie et
al., CIKM'20): §3.2 (the heterogeneous graph: item, tag, creator and user(-group) nodes; item-item,
item-user, item-tag, item-creator and tag-tag edges), §3.3 (HFIN), §3.4 (eq. 14, 20 negatives per
pair), §4.1 (the user vector from the latest 200 items, time decay η = 0.95, top 10 tags; cosine
ranking of the candidates) and §5.3 (sample sizes 30 / 20, hidden size 150, batch 512). The paper's
sizes are for a GPU cluster; the defaults here are smaller so a CPU trains in minutes (the paper's
are one `--set` away).

Ablations (§5.6, Table 4) and the GraphSAGE competitor (Table 2) are flags: `graphsage`, `fm`,
`first_transformer`, `second_transformer`, `aggregator="graphsage"`, `user_nodes="none"`,
`creator_field=""` (no creator nodes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GraphTrConfig"]


class GraphTrConfig(BaseModel):
    """Every hyperparameter of the GraphTR recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the graph (§3.2) ------------------------------------------------------------------------
    creator_field: str = Field(
        default="directors", max_length=256,
        description="The items field whose values are creator nodes (the paper's media: an author, "
                    "director, artist); absent from the data or empty: no creator nodes.")
    user_nodes: Literal["auto", "groups", "users", "none"] = Field(
        default="auto",
        description="User nodes: groups of users sharing their categorical user fields (§3.2: "
                    "gender-age-location), the users themselves, or none; 'auto': groups when the "
                    "users dataset has categorical fields, else users.")
    min_user_item: int = Field(default=1, ge=1, le=1000,
                               description="Interactions of a user (group) with an item that make an edge.")
    max_degree: int = Field(default=200, ge=1, le=100_000,
                            description="Neighbours kept per node and field, the most frequent first.")
    field_dims: int = Field(
        default=16, ge=1, le=10_000,
        description="Top-frequent nodes per field a node's feature indicates (§3.3.1: item 300, others "
                    "150); the item field gets twice this.")
    # --- HFIN (§3.3) ----------------------------------------------------------------------------
    hidden_dim: int = Field(default=64, ge=2, le=4096,
                            description="d_h, the size of every node vector (150).")
    heads: int = Field(default=2, ge=1, le=16, description="Attention heads (hidden_dim must divide by it).")
    first_samples: int = Field(default=10, ge=1, le=1000, description="K1: one-hop neighbours sampled (30).")
    second_samples: int = Field(default=5, ge=1, le=1000, description="K2: two-hop neighbours sampled (20).")
    aggregator: Literal["hfin", "graphsage"] = Field(
        default="hfin",
        description="'hfin' (§3.3) or 'graphsage' (eq. 9 in both layers, Table 2's competitor).")
    graphsage: bool = Field(default=True, description="The GraphSAGE aggregator of the first layer.")
    fm: bool = Field(default=True, description="The neural FM terms (eq. 7 and 11).")
    first_transformer: bool = Field(default=True, description="The multi-field transformer (eq. 2-8).")
    second_transformer: bool = Field(default=True, description="The second layer's transformer (eq. 13).")
    # --- the objective (§3.4) ---------------------------------------------------------------------
    negatives: int = Field(default=20, ge=1, le=1000, description="Negative nodes per neighbour pair (20).")
    shared_negatives: bool = Field(
        default=True,
        description="The batch's pairs share their `negatives` negative nodes (as GraphSAGE's "
                    "unsupervised loss does); False: each pair its own, as eq. 14 reads (20x the nodes "
                    "encoded per batch).")
    negative_sampling: Literal["uniform", "degree"] = Field(
        default="degree", description="Negatives drawn uniformly or by degree^0.75 (word2vec's).")
    # --- online ranking (§4.1) -----------------------------------------------------------------------
    history_items: int = Field(default=200, ge=1, le=100_000,
                               description="The user's latest events read at request time (200).")
    time_decay: float = Field(default=0.95, gt=0.0, le=1.0, allow_inf_nan=False,
                              description="η of eq. 16: each older event weighs η times the next.")
    user_tags: int = Field(default=10, ge=1, le=1000, description="Top weighted tags building u (eq. 17).")
    history_tags: Literal["event", "item"] = Field(
        default="event",
        description="x(ij) of eq. 15: 'event': an event that carries tags (a tag click or application) "
                    "counts its own tags, an event without (a watch) its item's candidate tags; 'item': "
                    "every event counts its item's candidates (and its own tags), as eq. 15 reads for "
                    "the paper's watches.")
    candidate_prior: float = Field(
        default=1.0, ge=0.0, le=100.0, allow_inf_nan=False,
        description="λ: a candidate scores cos(u, t) + λ·log(1 + n), n the times the tag was applied to "
                    "the item in training (not in the paper); 0 ranks by the cosine alone (§4.1).")
    # --- optimization ------------------------------------------------------------------------------
    epochs: int = Field(default=5, ge=1, le=10_000, description="Passes over the neighbour pairs.")
    batch_size: int = Field(default=256, ge=1, le=65_536, description="Neighbour pairs per batch (512).")
    pairs_per_epoch: int = Field(
        default=20_000, ge=1, le=100_000_000,
        description="Neighbour pairs drawn per epoch (all edges when fewer).")
    learning_rate: float = Field(default=0.003, gt=0.0, le=10.0, description="Adam learning rate.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1,
                      description="Seed of initialization, sampling and negatives.")

    @model_validator(mode="after")
    def _check(self) -> GraphTrConfig:
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be divisible by heads ({self.heads})")
        if self.aggregator == "hfin" and not (self.first_transformer or self.graphsage or self.fm):
            raise ValueError("first_transformer, graphsage and fm are all off: the first layer has no "
                             "aggregator")
        return self
