"""SOG hyperparameters.

Follows "Leveraging Order-Free Tag Relations for Context-Aware Recommendation" (Kang, Kim, Shin,
Myaeng, EMNLP'21): §3.1 (a BERT encoder over ``[CLS] context [SEP] ŷ_1 … ŷ_{i-1} [MASK]``, no
positions for the tag slots), §3.2 (1-to-M training: every prefix of a freshly shuffled tag order,
KL against the distribution over all the remaining tags; 1-to-1 the ablation), §3.3 (greedy
decoding, generated tags masked out), §3.4 (early fusion of the context as words), §4.1.4 and
Table 5 (Adam at 5e-5, batch 64, 5 epochs, input length 384, 5 tags generated) and A.2 (tags kept
with a minimum frequency, posts with more than 20 tags dropped).

Two encoder sources, one code path: from scratch (the default: a small BERT whose WordPiece
tokenizer is trained on the tenant's own text; sizes below) or `pretrained_encoder`, a BERT-family
checkpoint in the Hugging Face folder format (config.json, model.safetensors, tokenizer.json or
vocab.txt) at a local path or an ``s3://`` URI, fine-tuned (its sizes are the checkpoint's).

The authors' public code differs from the paper in two places; each is a flag here, the paper's
reading the default: `tag_positions` (their code keeps position embeddings on the tag slots) and
`kl_target="multi-hot"` (their KL target is the unnormalised multi-hot vector). BR-EF, the paper's
strongest non-generative baseline (Table 2: the same encoder ranking every tag from ``[CLS]``), is
`training="br-ef"`; SOG 1-to-1 is `training="1-to-1"`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SogConfig"]


class SogConfig(BaseModel):
    """Every hyperparameter of the SOG recipe (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the encoder (§3.1) ------------------------------------------------------------------------
    pretrained_encoder: str = Field(
        default="", max_length=2048,
        description="A BERT-family checkpoint to fine-tune: a local folder or s3:// URI in the Hugging "
                    "Face format (config.json, model.safetensors, tokenizer.json or vocab.txt); nothing "
                    "is downloaded from a model hub. Empty: an encoder trained from scratch on the "
                    "tenant's text (the sizes below).")
    vocab_size: int = Field(default=8000, ge=100, le=200_000,
                            description="Word pieces of the tokenizer trained on the tenant's text "
                                        "(scratch).")
    hidden_size: int = Field(default=256, ge=8, le=4096, description="Encoder width (scratch; paper: 768).")
    layers: int = Field(default=2, ge=1, le=24, description="Transformer layers (scratch; paper: 12).")
    heads: int = Field(default=4, ge=1, le=64, description="Attention heads (scratch; hidden_size divides).")
    intermediate_size: int = Field(default=512, ge=8, le=16_384,
                                   description="Feed-forward width (scratch; paper: 3072).")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, allow_inf_nan=False,
                           description="Dropout of the encoder (scratch; a checkpoint keeps its own).")
    max_length: int = Field(default=256, ge=8, le=4096,
                            description="Context word pieces read per post, [CLS] and [SEP] included "
                                        "(paper: 384); longer texts are cut.")
    tag_positions: bool = Field(
        default=False,
        description="Give the tag slots consecutive position embeddings, as the authors' code does; "
                    "False (§3.1): every tag slot and [MASK] share one position, so a prefix's order "
                    "changes nothing.")
    tag_init: Literal["name", "random"] = Field(
        default="name",
        description="A tag slot's input embedding starts as the mean of its name's word-piece "
                    "embeddings ('name'; '-' and '_' read as spaces) or at random.")
    # --- the data (A.2) -------------------------------------------------------------------------
    min_tag_count: int = Field(default=2, ge=1, le=1_000_000,
                               description="A tag must be on at least this many training posts to be "
                                           "generated (paper: 10 on Stack Overflow, 400 on Instagram).")
    max_post_tags: int = Field(default=20, ge=1, le=100,
                               description="Posts with more known tags do not train (A.2: likely ads).")
    context_fields: list[str] = Field(
        default_factory=list, max_length=16,
        description="Items fields written as words before the text (§3.4 early fusion: a location "
                    "name, say); a timestamp field becomes season, weekday/weekend and part of day. "
                    "A request gives them in `fields`. Default: the text fields only (as the paper's "
                    "Stack Overflow).")
    # --- training (§3.2) -----------------------------------------------------------------------------
    training: Literal["1-to-M", "1-to-1", "br-ef"] = Field(
        default="1-to-M",
        description="'1-to-M' (§3.2): each prefix's target is every remaining tag; '1-to-1': the next "
                    "tag of the shuffled order (the ablation); 'br-ef': one instance per post, every "
                    "tag ranked from [CLS] (Table 2's BERT-based ranking, early fusion).")
    kl_target: Literal["distribution", "multi-hot"] = Field(
        default="distribution",
        description="1-to-M's target: the uniform distribution over the remaining tags (eq. 11 "
                    "compares distributions) or the unnormalised multi-hot vector (the authors' code).")
    epochs: int = Field(default=5, ge=1, le=1000, description="Passes over the training posts (5).")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Instances per batch (64).")
    learning_rate: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Adam's learning rate; default 5e-5 for a checkpoint (the paper's) and 5e-4 "
                    "from scratch.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1,
                      description="Seed of initialization, tag orders and batches.")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Arithmetic of the encoder's matrix products (training and answering): bfloat16 "
                    "autocast is ~1.6x faster where the hardware computes it natively (a GPU with "
                    "bfloat16, a CPU with AVX512-BF16/AMX); 'auto' takes it there, float32 elsewhere.")
    # --- decoding (§3.3) --------------------------------------------------------------------------------
    max_generated: int = Field(
        default=10, ge=1, le=100,
        description="Tags generated one by one (greedy, each step reading the tags before it); a "
                    "longer answer continues in the last step's order.")
    min_probability: float = Field(
        default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False,
        description="Stop threshold: generation ends when the best remaining tag is less likely than "
                    "this (the set is then shorter than asked); 0 always answers num_results tags.")

    @model_validator(mode="after")
    def _check(self) -> SogConfig:
        if not self.pretrained_encoder and self.hidden_size % self.heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by heads ({self.heads})")
        return self

    @property
    def lr(self) -> float:
        """The learning rate in effect (the field, or the encoder source's default)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-5 if self.pretrained_encoder else 5e-4
