"""HRNN-meta hyperparameters.

Follows "Temporal-Contextual Recommendation in Real-Time" (Ma et al., KDD'20): §2.1 (GRU over
user histories, BPTT), §2.2 (time-delta "control" input, user features, feedback of the previous
event), §2.3 (decoder mixing ID and item-feature scores with λ ~ U[0, 1]), §3.1 (sampled softmax
with log-q correction, proposal ∝ frequency^0.75), §3.2 (item trend bias). Where the paper gives
no value, the default is the one Amazon Personalize's HRNN-Metadata uses (hidden size 43, BPTT 32)
or one tuned on MovieLens (see benchmarks/hrnn_meta_quality.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HrnnMetaConfig"]


class HrnnMetaConfig(BaseModel):
    """Every hyperparameter of the HRNN-meta recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- sequence model (§2.1) --------------------------------------------------------------
    hidden_size: int = Field(
        default=43, ge=1, le=4096,
        description="GRU hidden-state size r (43 as Amazon Personalize's HRNN-Metadata).",
    )
    bptt: int = Field(
        default=32, ge=2, le=1024,
        description="Length of a back-propagation-through-time window, in events (§2.1).",
    )
    burn_in: int = Field(
        default=32, ge=0, le=4096,
        description="Events before each BPTT window fed to the GRU (no loss on them) to warm its "
                    "state up; the predictor reads the last burn_in + bptt events of a history.",
    )
    item_embedding_dim: int = Field(
        default=43, ge=1, le=4096, description="Size of the item-id input embedding.",
    )
    # --- contextual inputs (§2.2) -----------------------------------------------------------
    time_buckets: int = Field(
        default=32, ge=2, le=64,
        description="Buckets of the time-delta control input: bucket 1 + floor(log2(1 + Δt "
                    "seconds)) of the gap between an event and the next one (the request), "
                    "capped at time_buckets - 1; bucket 0 is padding (§2.2, Fig. 2).",
    )
    time_embedding_dim: int = Field(
        default=8, ge=1, le=512, description="Size of the time-delta control embedding.",
    )
    feedback_embedding_dim: int = Field(
        default=4, ge=1, le=512,
        description="Size of the event-type embedding; the standardized event value is "
                    "appended to it as the previous event's feedback (§2.2).",
    )
    user_feature_dim: int = Field(
        default=8, ge=1, le=512,
        description="Size of the user-feature embedding (mean of the user's categorical field "
                    "embeddings), concatenated to every GRU input (§2.2).",
    )
    # --- item features and cold start (§2.3) -------------------------------------------------
    item_feature_dim: int = Field(
        default=32, ge=1, le=1024,
        description="Size of the item-feature embedding (mean of the item's tag/field value "
                    "embeddings) that feeds the metadata decoder w(f), b(f).",
    )
    item_feature_mlp_size: int = Field(
        default=64, ge=1, le=4096,
        description="Hidden width of the small MLP mapping item features to w(f) and b(f).",
    )
    numeric_buckets: int = Field(
        default=8, ge=2, le=256,
        description="Quantile buckets for numeric item/user fields (each bucket is a token).",
    )
    lambda_sampling: Literal["uniform", "fixed"] = Field(
        default="uniform",
        description="How the mixing weight λ of eq. (2) is set in training: 'uniform' draws "
                    "λ ~ U[0, 1] once per batch (§2.3, prevents co-training); 'fixed' uses "
                    "warm_lambda.",
    )
    warm_lambda: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="λ at inference for items seen in training (the mean of U[0, 1]); items "
                    "never seen in training always get λ = 1 (metadata only, §2.3).",
    )
    # --- output layer (§3.1, §3.2) -----------------------------------------------------------
    sampled_softmax_threshold: int = Field(
        default=100_000, ge=0,
        description="Number of trainable items above which training uses sampled softmax with "
                    "log-q correction instead of the full softmax (§3.1).",
    )
    num_negatives: int = Field(
        default=1024, ge=1, le=1_000_000,
        description="Negatives drawn per batch for sampled softmax, from a proposal ∝ item "
                    "frequency^sampling_power (§3.1).",
    )
    sampling_power: float = Field(
        default=0.75, ge=0.0, le=1.0,
        description="Exponent of item frequency in the negative-sampling proposal (§4.6).",
    )
    trend_bias: bool = Field(
        default=False,
        description="Add log item popularity to every score in training and inference, so the "
                    "model learns the residual user affinity (item trend decomposition, §3.2).",
    )
    # --- optimization ------------------------------------------------------------------------
    epochs: int = Field(
        default=5, ge=1, le=10_000,
        description="Passes over the training data (the paper trains 4-5 epochs, §4.5, §4.6).",
    )
    batch_size: int = Field(
        default=32, ge=1, le=65_536,
        description="BPTT windows (user-history chunks) per mini-batch (32 as in §1).",
    )
    learning_rate: float = Field(
        default=0.01, gt=0.0, le=10.0, description="Adam learning rate.",
    )
    weight_decay: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Adam (L2) weight decay.",
    )
    max_grad_norm: float = Field(
        default=5.0, gt=0.0, le=1e6,
        description="Gradients are clipped to this global norm before each optimizer step.",
    )
    dropout: float = Field(
        default=0.2, ge=0.0, lt=1.0,
        description="Dropout on the GRU inputs and on its hidden states before the decoder.",
    )
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1,
        description="Seed of weight initialization, batch shuffling, λ and negative sampling.",
    )
