"""HFIN, the heterogeneous field interaction network of GraphTR, and its neighbour-similarity loss.

Follows Liu, Xie et al., "Graph Neural Network for Tag Ranking in Tag-enhanced Video
Recommendation" (CIKM'20):

* §3.3.1 Heterogeneous feature layer — a node's feature is, per field (the neighbour's type: item,
  tag, creator, user), the indicator of which of the field's top-frequent nodes are its neighbours
  (fixed, not learned). Any linear map of such a multi-hot vector is a sum of learned columns, so
  every projection of a field feature (W^Q, W^K, W^V, W_v, W^G) is an `nn.EmbeddingBag` in sum
  mode over the indices of the hot positions (index 0: padding).
* §3.3.2 Multi-field interaction layer (the first aggregation), for a centre node s and its n
  sampled neighbours: per field, multi-head self-attention over the n+1 nodes with Q, K, V the
  field's projections (eq. 2-5), average-pooled (eq. 6); a neural FM over the fields' pooled
  outputs (eq. 7); h_Trans = [h_FM1, ĥ_1..ĥ_F] (eq. 8). GraphSAGE: ReLU(W^G (Σ f_i + f_s)) over the
  whole features (eq. 9). FM aggregator: each field's features average-pooled over the n+1 nodes and
  projected (eq. 10), their pairwise products summed (eq. 11). h = [h_Trans, h_Graph, h_FM2] (eq. 12).
* §3.3.3 Second aggregation — the target's h and its m one-hop neighbours' h (each from layer 1
  over that neighbour's own sampled neighbours), an FC layer with ReLU, a classical transformer
  encoder layer, average pooling: o (eq. 13).
* §3.4 Neighbour-similarity objective (eq. 14) — −log σ(o_i·o_k) for a neighbour pair and
  −log(1 − σ(o_i·o_j)) for each sampled negative, on cosines × 5 instead of raw dot products (not
  in the paper: the transformer's LayerNorm gives every o a norm of about √d_h and a shared
  direction, and the raw dot products saturated σ from the first step, losses in the hundreds on
  HetRec MovieLens-2k; §4.1 ranks by cosine, so the loss now learns what the ranking reads).

Ablations (§5.6, Table 4) as config: without GraphSAGE, without the FM layers (both FM terms),
without the first transformer (h = [h_Graph, h_FM2]), without the second (FC + average pooling);
`aggregator="graphsage"` is GraphTR (GraphSAGE) of Table 2 (eq. 9 in both layers).
The last layer is linear where nothing follows the ReLU (without the second transformer, and
GraphSAGE's second layer): ReLU outputs make every o non-negative, so σ(o_i·o_j) ≥ ½ for every
negative of eq. 14 and the loss is minimised by o = 0 (seen in tests).

Shape legend:
    B  target nodes      K1 first-hop samples     K2 samples around each centre     F  fields
    D  padded hot positions per field            H  hidden size d_h         J  negatives per pair
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HfinModel", "field_interactions"]

_SCALE = 5.0  # eq. 14's logits: 5 × cos(o_i, o_j)


def field_interactions(parts: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 7 / 11: Σ_{i<j} h_i ⊙ h_j over the fields' (..., H) vectors (zeros for one field)."""
    out = torch.zeros_like(parts[0])
    for a, b in combinations(parts, 2):
        out = out + a * b
    return out


class _FieldBags(nn.Module):
    """`width` learned columns per hot position of each field: (..., F, D) indices → (..., F, width)
    sums (one EmbeddingBag over the fields' stacked positions)."""

    def __init__(self, field_sizes: list[int], width: int) -> None:
        super().__init__()
        offsets = torch.tensor([0, *field_sizes[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (F,)
        self.bag = nn.EmbeddingBag(max(sum(field_sizes), 1), width, mode="sum", padding_idx=0)
        nn.init.normal_(self.bag.weight, std=0.05)
        with torch.no_grad():
            self.bag.weight[0].zero_()
        self.width = width

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        lead, (n_fields, depth) = feats.shape[:-2], feats.shape[-2:]
        flat = (feats + self.offsets[:, None]).reshape(-1, depth)  # (bags, D)
        hot = feats.reshape(-1, depth) > 0  # index 0 is padding: left out of the bags
        counts = hot.sum(1)
        starts = torch.zeros_like(counts)
        starts[1:] = counts.cumsum(0)[:-1]
        out = self.bag(flat[hot], starts)  # only the hot positions: (bags, width)
        return out.reshape(*lead, n_fields, self.width)


class HfinModel(nn.Module):
    """Node embeddings o from sampled two-hop neighbourhoods (module docstring).

    `node_features` (N, F, D) holds every node's padded hot positions per field (the graph's
    features, a buffer set by the training hooks; not in the state dict: the artifact keeps the
    embeddings computed after training, not the graph).
    """

    def __init__(self, config: Any, field_sizes: list[int],
                 node_features: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        H, heads = config.hidden_dim, config.heads
        self.n_fields = len(field_sizes)
        self.sage_only = config.aggregator == "graphsage"
        self.use_trans1 = not self.sage_only and config.first_transformer
        self.use_trans2 = not self.sage_only and config.second_transformer
        self.use_sage = self.sage_only or config.graphsage
        self.use_fm = not self.sage_only and config.fm
        self.register_buffer("node_features", node_features if node_features is not None
                             else torch.zeros(0, self.n_fields, 1, dtype=torch.long), persistent=False)
        width = 0
        # Every projection of the field features in one bag, its columns split: W^Q, W^K, W^V of
        # every field (eq. 2), W^G over the whole feature (eq. 9), W_v per field (eq. 10).
        parts = (("qkv", 3, self.use_trans1), ("sage", 1, self.use_sage), ("fm", 1, self.use_fm))
        self.splits = {name: H * k for name, k, on in parts if on}
        if self.use_trans1:
            self.attention = nn.ModuleList(nn.MultiheadAttention(H, heads, batch_first=True)
                                           for _ in field_sizes)  # W_j^{Q,K,V}, W^O (eq. 4-5)
            width += (self.n_fields + (1 if self.use_fm else 0)) * H  # eq. 8
        if self.use_sage:
            width += H
        if self.use_fm:
            width += H
        if self.splits:
            self.bags = _FieldBags(field_sizes, sum(self.splits.values()))
        if width == 0:
            raise ValueError("every aggregator of the first layer is ablated: nothing to learn from")
        if self.sage_only:
            self.sage2 = nn.Linear(width, H)
        else:
            self.fc = nn.Linear(width, H)  # W^F (eq. 13)
            if self.use_trans2:
                self.encoder = nn.TransformerEncoderLayer(H, heads, dim_feedforward=2 * H, dropout=0.0,
                                                          batch_first=True)
        self.out_dim = H

    # --- layer 1 (§3.3.2) ------------------------------------------------------------------------
    def first_layer(self, feats: torch.Tensor) -> torch.Tensor:
        """(..., 1+n, F, D) hot positions of a centre node (first) and its n neighbours → (..., W) h."""
        lead, T = feats.shape[:-3], feats.shape[-3]
        x = feats.reshape(-1, T, *feats.shape[-2:])  # (M, T, F, D)
        projected = dict(zip(self.splits, self.bags(x).split(list(self.splits.values()), dim=-1)))
        parts = []
        if self.use_trans1:
            qkv = projected["qkv"]  # (M, T, F, 3H)
            pooled = []
            for f, mha in enumerate(self.attention):
                q, k, v = qkv[:, :, f].chunk(3, dim=-1)  # (M, T, H)
                out, _ = mha(q, k, v, need_weights=False)
                pooled.append(out.mean(1))  # eq. 6: (M, H)
            if self.use_fm:
                parts.append(field_interactions(pooled))  # eq. 7
            parts.extend(pooled)
        if self.use_sage:
            whole = projected["sage"].sum(dim=(1, 2))  # Σ over nodes and fields of W^G f: (M, H)
            parts.append(F.relu(whole))  # eq. 9
        if self.use_fm:
            per_field = projected["fm"].mean(1)  # eq. 10: average over the T nodes, (M, F, H)
            parts.append(field_interactions(list(per_field.unbind(1))))  # eq. 11
        return torch.cat(parts, dim=-1).reshape(*lead, -1)  # eq. 12

    # --- layer 2 (§3.3.3) and the whole encoder --------------------------------------------------
    def encode(self, targets: torch.Tensor, hop1: torch.Tensor, hop2: torch.Tensor) -> torch.Tensor:
        """(B,) targets, (B, K1) their sampled neighbours, (B, 1+K1, K2) K2 sampled neighbours of
        each centre (row 0: of the target itself, for its own h_t; then of each of hop1) → (B, H) o."""
        nf = self.node_features
        centre = torch.cat([targets[:, None], hop1], dim=1)  # (B, 1+K1): h_t first
        tokens = torch.cat([centre[..., None], hop2], dim=-1)  # (B, 1+K1, 1+K2)
        h = self.first_layer(nf[tokens])  # (B, 1+K1, W)
        if self.sage_only:
            return self.sage2(h.sum(1))  # eq. 9 again over the one-hop layer (linear output, below)
        z = self.fc(h)  # (B, 1+K1, H)
        if self.use_trans2:
            z = self.encoder(F.relu(z))  # eq. 13
        return z.mean(1)

    # --- eq. 14 --------------------------------------------------------------------------------------
    def forward(self, targets: torch.Tensor, hop1: torch.Tensor, hop2: torch.Tensor,
                anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """The mean loss of eq. 14. The batch's distinct nodes are encoded once (`targets` with
        their samples); `anchor`, `positive` (P,) and `negatives` (P, J) index into them."""
        o = self.encode(targets, hop1, hop2)  # (B, H)
        o = F.normalize(o, dim=-1) * _SCALE ** 0.5  # cosines × _SCALE (below)
        a, p, n = o[anchor], o[positive], o[negatives]  # (P, H), (P, H), (P, J, H)
        pos = F.logsigmoid((a * p).sum(-1))  # (P,)
        neg = F.logsigmoid(-torch.einsum("ph,pjh->pj", a, n)).sum(-1)  # (P,)
        return -(pos + neg).mean()
