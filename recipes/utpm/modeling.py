"""The UTPM network: the whole forward pass, from the fields to the user vector u and its loss.

Follows Yan et al., "Learning to Build User-tag Profile in Recommendation System" (CIKM'20), §3:

* Feature-input layer — every field has its own embedding table (size E); index 0 is padding.
* Attention-fusion layer (eq. 1-2) — per head h, inside field k: α_i = softmax_i(q_hᵀ act(W_{k,h}ᵀ t_i
  + b_k)), f_{k,h} = Σ α_i t_i; then across the M fields with the same q_h (shared by all attention
  units, within and across fields) and a transform of its own. The heads' outputs are
  concatenated. `shared_queries=False` gives each unit its own query (AF-1head-unshared, §4.2).
  Empty fields get no weight.
* Cross-feature layer (eq. 3) — the L2-normalised linear part x/‖x‖ next to every pairwise
  c_ij = (v_i·v_j) x_i x_j, i < j (vectorised with the upper-triangle indices, no Python loop),
  over the heads' concatenation or per head (`cross_over`).
* Two fully-connected layers → u ∈ R^U.
* Predicting layer (eq. 4) — a labelled item's N tags t_i (an output table of size U, or the
  liked-tag input table when tied): joint loss y = σ(Σ_i u·t_i) against clicked (1) / not (0), or
  the separate ablation, σ(u·t_i) per tag. At inference every tag is scored by u·t.
* `fusion="average"` is the YouTube-DNN baseline (Covington et al. [4], as §4.2 describes it):
  average pooling in each field, the fields concatenated, the same two FC layers and loss.

Shape legend:
    B  samples        M  fields          H  features per field     E  embedding_dim
    A  heads          T  query_dim       D  width of x (A·E; E per head with cross_over="head")
    C  cross_dim      U  user_dim        K  labels per sample      N  tags per item
    V  tags (+1, index 0 unknown)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration import UtpmConfig

__all__ = ["UtpmModel", "cross_features", "masked_softmax"]

_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "selu": F.selu, "sigmoid": torch.sigmoid}


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over `dim` where `mask` is True; all-masked slices give zeros (not NaN)."""
    logits = logits.masked_fill(~mask, float("-inf"))
    out = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(out, nan=0.0) * mask


def cross_features(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Eq. 3: (..., D) values and (D, C) hidden vectors → (..., D(D-1)/2) c_ij = (v_i·v_j) x_i x_j, i < j
    in row-major order (c_12, c_13, ..., c_23, ...)."""
    D = x.shape[-1]
    i, j = torch.triu_indices(D, D, offset=1, device=x.device)  # (P,), (P,)
    weight = (v[i] * v[j]).sum(-1)  # (P,)
    return x[..., i] * x[..., j] * weight  # (..., P)


class UtpmModel(nn.Module):
    """Fields → user vector u; tags scored by u·t (module docstring)."""

    def __init__(self, config: UtpmConfig, field_sizes: list[int], num_tags: int) -> None:
        super().__init__()
        self.config = config
        E, A, T, M = config.embedding_dim, config.heads, config.query_dim, len(field_sizes)
        self.act = _ACTIVATIONS[config.activation]
        offsets = torch.tensor([0, *field_sizes[:-1]]).cumsum(0)
        self.register_buffer("field_offsets", offsets, persistent=False)  # (M,)
        self.embedding = nn.Embedding(max(sum(field_sizes), 1), E)  # all fields' tables, stacked
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.attention = config.fusion == "attention"
        if self.attention:
            # Within-field transforms W_{k,h} (M, A, E, T) and biases b_k; across-field W_h, b.
            self.w_field = nn.Parameter(torch.empty(M, A, E, T))
            self.b_field = nn.Parameter(torch.zeros(M, A if config.bias_per_head else 1, T))
            self.w_across = nn.Parameter(torch.empty(A, E, T))
            self.b_across = nn.Parameter(torch.zeros(A if config.bias_per_head else 1, T))
            for w in (self.w_field, self.w_across):
                nn.init.xavier_uniform_(w.view(-1, E, T))
            # Queries: one per head shared by every unit, or one per unit (M within + 1 across).
            units = 1 if config.shared_queries else M + 1
            self.queries = nn.Parameter(torch.randn(units, A, T) * (1.0 / T ** 0.5))
            x_dim = A * E
            if config.cross:
                D = E if config.cross_over == "head" else A * E
                groups = A if config.cross_over == "head" else 1
                self.cross_v = nn.Parameter(torch.randn(groups, D, config.cross_dim) * 0.5)
                x_dim = groups * (D + D * (D - 1) // 2)
        else:
            x_dim = M * E
        self.fc1 = nn.Linear(x_dim, config.fc_hidden)
        self.fc2 = nn.Linear(config.fc_hidden, config.user_dim)
        if config.tie_tag_embeddings:
            self.tag_embedding = None
        else:
            self.tag_embedding = nn.Embedding(num_tags, config.user_dim)
            nn.init.normal_(self.tag_embedding.weight, std=0.1)

    # --- tags ---------------------------------------------------------------------------------
    def tag_table(self) -> torch.Tensor:
        """(V, U) output tag vectors (the liked-tag field's input table when tied: field 0)."""
        if self.tag_embedding is not None:
            return self.tag_embedding.weight
        return self.embedding.weight[:self.tag_count]

    @property
    def tag_count(self) -> int:
        return int(self.field_offsets[1]) if len(self.field_offsets) > 1 else self.embedding.num_embeddings

    # --- user vector ----------------------------------------------------------------------------
    def fuse(self, fields: torch.Tensor, return_weights: bool = False):
        """Attention fusion (eq. 1-2): (B, M, H) → (B, A, E); with `return_weights` also the within-
        field (B, M, A, H) and across-field (B, M, A) weights."""
        t = self.embedding(fields + self.field_offsets[None, :, None])  # (B, M, H, E)
        present = fields > 0  # (B, M, H)
        q = self.queries  # (units, A, T)
        q_in, q_out = (q[0][None], q[0]) if self.config.shared_queries else (q[:-1], q[-1])  # (M|1, A, T)
        s = self.act(torch.einsum("bmhe,maet->bmaht", t, self.w_field) + self.b_field[None, :, :, None])
        logits = torch.einsum("bmaht,mat->bmah", s, q_in.expand(fields.shape[1], -1, -1))  # (B, M, A, H)
        alpha = masked_softmax(logits, present[:, :, None, :], dim=-1)  # (B, M, A, H)
        f = torch.einsum("bmah,bmhe->bmae", alpha, t)  # (B, M, A, E)
        s2 = self.act(torch.einsum("bmae,aet->bmat", f, self.w_across) + self.b_across[None, None])
        logits2 = torch.einsum("bmat,at->bma", s2, q_out)  # (B, M, A)
        filled = present.any(-1)  # (B, M)
        beta = masked_softmax(logits2, filled[:, :, None], dim=1)  # (B, M, A)
        x = torch.einsum("bma,bmae->bae", beta, f)  # (B, A, E)
        return (x, alpha, beta) if return_weights else x

    def user_vector(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, M, H) field features → (B, U) user vectors u."""
        B = fields.shape[0]
        if not self.attention:  # YouTube-DNN: average pooling, concatenation
            t = self.embedding(fields + self.field_offsets[None, :, None])  # (B, M, H, E)
            present = (fields > 0).unsqueeze(-1).float()  # (B, M, H, 1)
            pooled = (t * present).sum(2) / present.sum(2).clamp(min=1.0)  # (B, M, E)
            h = pooled.reshape(B, -1)  # (B, M·E)
        else:
            x = self.fuse(fields)  # (B, A, E)
            if not self.config.cross:
                h = x.reshape(B, -1)  # (B, A·E)
            else:
                if self.config.cross_over == "concat":
                    x = x.reshape(B, 1, -1)  # (B, 1, D)
                linear = F.normalize(x, dim=-1)  # (B, G, D)
                crossed = torch.cat([cross_features(x[:, g], self.cross_v[g]) for g in range(x.shape[1])],
                                    dim=-1)  # (B, G·P)
                h = torch.cat([linear.reshape(B, -1), crossed], dim=-1)  # (B, G·(D + P))
        return self.fc2(self.act(self.fc1(h)))  # (B, U)

    def scores(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, M, H) → (B, V) u·t for every tag."""
        return self.user_vector(fields) @ self.tag_table().T

    def forward(self, fields: torch.Tensor, label_tags: torch.Tensor, labels: torch.Tensor,
                label_mask: torch.Tensor) -> torch.Tensor:
        """The loss (eq. 4, or the separate ablation) of (B, K, N) labelled items' tags.

        Labels without a tag are masked out; the mean is over the labels (joint) or tags (separate).
        """
        u = self.user_vector(fields)  # (B, U)
        t = F.embedding(label_tags, self.tag_table())  # (B, K, N, U)
        has_tag = label_tags > 0  # (B, K, N)
        dots = torch.einsum("bu,bknu->bkn", u, t) * has_tag  # (B, K, N)
        valid = label_mask & has_tag.any(-1)  # (B, K)
        if self.config.loss == "joint":
            logits = dots.sum(-1)  # (B, K)
            losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            return (losses * valid).sum() / valid.sum().clamp(min=1)
        per_tag = has_tag & valid[..., None]  # (B, K, N)
        losses = F.binary_cross_entropy_with_logits(dots, labels[..., None].expand_as(dots), reduction="none")
        return (losses * per_tag).sum() / per_tag.sum().clamp(min=1)
