"""The HRNN-meta network: the whole forward pass, both output layers and their losses.

Follows Ma et al., "Temporal-Contextual Recommendation in Real-Time" (KDD'20):

* §2.1 — a GRU reads a user's history; its state h_k scores every item, softmax(φ(h_k)) (eq. 1).
* §2.2 — each GRU input concatenates the item embedding, the time-delta "control" embedding
  (bucketized log gap between the event and the next one, i.e. the time of the request), the user
  features, and the event's feedback (event-type embedding + standardized value), which is the
  previous event's feedback for the item being predicted.
* §2.3 — decoder φ̃_j(h) = (1-λ)(w_j·h + b_j) + λ(w(f_j)·h + b(f_j)) (eq. 2); w(f), b(f) come from
  the mean of item j's feature-token embeddings through a small MLP; λ ~ U[0, 1] per batch in
  training, λ = 1 at inference for items never seen in training (cold start). The input item
  embedding is the id embedding plus a projection of the item's features (Table 1 row 2 uses the
  last item's features as input); items never seen in training are read from features alone.
* §3.1 — sampled softmax: a shared set of negatives drawn from q ∝ freq^0.75, log q subtracted
  from every logit, accidental hits removed. Only the rows of the per-item tables that a batch
  touches get a gradient; `sparse_item_gradients` makes those gradients sparse, so a step costs
  O(rows touched), not O(catalog) (training.py pairs it with a lazy Adam).
* §3.2 — optional trend bias: log item popularity added to every score (p ∝ p(a|h)·q(a|t)).

Shape legend:
    B  rows (BPTT windows in training, request histories at inference)
    T  time steps (burn_in + bptt in training; the history length at inference)
    H  hidden_size                      E  item_embedding_dim
    N  positions with a target          M  items scored (catalog or a subset)
    S  sampled negatives                F  feature tokens per row (padded)
    Df item_feature_dim
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .configuration import HrnnMetaConfig
from .featurizer import HrnnMetaFeaturizer

__all__ = ["HrnnMetaModel"]


def _csr_gather(offsets: torch.Tensor, values: torch.Tensor, rows: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The CSR slices of `rows`, as (flat values, bag offsets) for nn.EmbeddingBag."""
    starts = offsets[rows]  # (M,)
    lengths = offsets[rows + 1] - starts  # (M,)
    bag_offsets = torch.cumsum(lengths, 0) - lengths  # (M,)
    total = int(lengths.sum())
    within = torch.arange(total, device=rows.device) - torch.repeat_interleave(bag_offsets, lengths)
    return values[torch.repeat_interleave(starts, lengths) + within], bag_offsets


class HrnnMetaModel(nn.Module):
    """GRU encoder + ID/metadata mixing decoder (eq. 2) with full or sampled softmax."""

    def __init__(self, config: HrnnMetaConfig, *, num_items: int, num_event_types: int,
                 num_item_tokens: int, num_user_tokens: int, item_feat_offsets: np.ndarray,
                 item_feat_values: np.ndarray, item_freq: np.ndarray) -> None:
        super().__init__()
        self.config = config
        H, E, Df = config.hidden_size, config.item_embedding_dim, config.item_feature_dim
        # Inputs (§2.2).
        self.item_embedding = nn.Embedding(num_items, E, padding_idx=0)
        self.time_embedding = nn.Embedding(config.time_buckets, config.time_embedding_dim,
                                           padding_idx=0)
        self.event_type_embedding = nn.Embedding(num_event_types, config.feedback_embedding_dim,
                                                 padding_idx=0)
        self.user_feature_embedding = nn.EmbeddingBag(num_user_tokens, config.user_feature_dim,
                                                      mode="mean", padding_idx=0)
        # Item features f_j (§2.3): mean token embedding, then w(f), b(f) and an input projection.
        self.item_feature_embedding = nn.EmbeddingBag(num_item_tokens, Df, mode="mean")
        self.item_feature_mlp = nn.Sequential(nn.Linear(Df, config.item_feature_mlp_size),
                                              nn.Tanh(),
                                              nn.Linear(config.item_feature_mlp_size, H + 1))
        self.item_feature_input = nn.Linear(Df, E)
        input_size = E + config.time_embedding_dim + config.feedback_embedding_dim + 1 \
            + config.user_feature_dim
        self.gru = nn.GRU(input_size, H, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        # ID decoder φ_j(h) = w_j·h + b_j.
        self.output_weight = nn.Embedding(num_items, H)
        self.output_bias = nn.Embedding(num_items, 1)

        freq = np.asarray(item_freq, np.float64)
        trainable = freq > 0
        proposal = np.where(trainable, freq ** config.sampling_power, 0.0)
        with np.errstate(divide="ignore"):
            log_proposal = np.log(proposal / max(proposal.sum(), 1e-300))
            log_pop = np.log((freq + 1.0) / (freq.sum() + len(freq)))
        # Data, not parameters: rebuilt from the featurizer when the model is built or loaded.
        self.register_buffer("item_feat_offsets", torch.as_tensor(item_feat_offsets, dtype=torch.long),
                             persistent=False)
        self.register_buffer("item_feat_values", torch.as_tensor(item_feat_values, dtype=torch.long),
                             persistent=False)
        self.register_buffer("seen", torch.as_tensor(trainable), persistent=False)
        self.register_buffer("log_proposal", torch.as_tensor(log_proposal, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("log_trend", torch.as_tensor(log_pop, dtype=torch.float32),
                             persistent=False)
        self._init_weights(log_pop)

    @classmethod
    def from_featurizer(cls, config: HrnnMetaConfig, featurizer: HrnnMetaFeaturizer
                        ) -> HrnnMetaModel:
        return cls(config, num_items=featurizer.num_items,
                   num_event_types=featurizer.num_event_types,
                   num_item_tokens=featurizer.num_item_tokens,
                   num_user_tokens=featurizer.num_user_tokens,
                   item_feat_offsets=featurizer.arrays["item_feat_offsets"],
                   item_feat_values=featurizer.arrays["item_feat_values"],
                   item_freq=featurizer.item_freq)

    def _init_weights(self, log_pop: np.ndarray) -> None:
        for emb in (self.item_embedding, self.time_embedding, self.event_type_embedding,
                    self.user_feature_embedding, self.item_feature_embedding):
            nn.init.normal_(emb.weight, std=0.1)
            if emb.padding_idx is not None:
                with torch.no_grad():
                    emb.weight[emb.padding_idx].zero_()
        nn.init.normal_(self.output_weight.weight, std=1.0 / math.sqrt(self.config.hidden_size))
        # Start from popularity: b_j = centred log frequency (or 0 when the trend bias adds it).
        bias = np.zeros_like(log_pop) if self.config.trend_bias else log_pop - log_pop.mean()
        with torch.no_grad():
            self.output_bias.weight.copy_(torch.as_tensor(bias, dtype=torch.float32)[:, None])

    def sparse_item_gradients(self, enabled: bool = True) -> None:
        """Sparse gradients for the (num_items, ·) tables: input embedding, output w_j and b_j.

        For sampled softmax (§3.1), where a batch touches a few thousand rows of a catalog that may
        have millions; the optimizer must accept sparse gradients (training.LazyAdam does).
        """
        for table in (self.item_embedding, self.output_weight, self.output_bias):
            table.sparse = enabled

    # --- mixing weight λ (§2.3) -------------------------------------------------------------
    def item_lambda(self, items: torch.Tensor, lam: torch.Tensor | float | None) -> torch.Tensor:
        """λ per item: the training draw `lam`, or at inference (lam=None) warm_lambda for items
        seen in training and 1 for the others (cold start)."""
        if lam is not None:
            return torch.as_tensor(lam, dtype=torch.float32).expand(items.shape)
        return torch.where(self.seen[items], self.config.warm_lambda, 1.0)

    def item_features(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(M, Df) mean feature-token embedding of `items` (all items when None)."""
        if items is None:
            return self.item_feature_embedding(self.item_feat_values, self.item_feat_offsets[:-1])
        values, bag_offsets = _csr_gather(self.item_feat_offsets, self.item_feat_values, items)
        return self.item_feature_embedding(values, bag_offsets)

    # --- encoder (§2.1, §2.2) ---------------------------------------------------------------
    def encode(self, items: torch.Tensor, time_buckets: torch.Tensor, event_types: torch.Tensor,
               event_values: torch.Tensor, user_features: torch.Tensor) -> torch.Tensor:
        """GRU states after each event: (B, T) inputs → (B, T, H). Padding (item 0) at the end."""
        B, T = items.shape
        flat = items.reshape(-1)  # (B*T,)
        unique, inverse = torch.unique(flat, return_inverse=True)  # features once per item
        feat_in = self.item_feature_input(self.item_features(unique))[inverse]  # (B*T, E)
        known = self.seen[flat].unsqueeze(-1)  # (B*T, 1): unseen items are read from features
        x_item = self.item_embedding(flat) * known + feat_in  # (B*T, E)
        x_item = x_item.reshape(B, T, -1)  # (B, T, E)
        x_time = self.time_embedding(time_buckets)  # (B, T, Dt)
        x_feedback = torch.cat([self.event_type_embedding(event_types),
                                event_values.unsqueeze(-1)], dim=-1)  # (B, T, Dfb + 1)
        x_user = self.user_feature_embedding(user_features)  # (B, Du)
        x_user = x_user.unsqueeze(1).expand(B, T, -1)  # (B, T, Du)
        x = self.dropout(torch.cat([x_item, x_time, x_feedback, x_user], dim=-1))  # (B, T, Din)
        states, _ = self.gru(x)  # (B, T, H)
        return self.dropout(states)

    def forward(self, items: torch.Tensor, time_buckets: torch.Tensor, event_types: torch.Tensor,
                event_values: torch.Tensor, user_features: torch.Tensor,
                lam: torch.Tensor | float | None = None, targets: torch.Tensor | None = None,
                negatives: torch.Tensor | None = None) -> torch.Tensor:
        """States (B, T, H) without `targets`; with (B, T) `targets` (0 = no loss) the mean
        next-item cross entropy: sampled softmax when (S,) `negatives` are given, else full.

        The loss is computed here (not in a helper) so a DistributedDataParallel wrapper sees it.
        """
        states = self.encode(items, time_buckets, event_types, event_values, user_features)
        if targets is None:
            return states
        mask = targets > 0  # (B, T)
        if not bool(mask.any()):
            return states.sum() * 0.0
        picked = states[mask]  # (N, H)
        wanted = targets[mask]  # (N,)
        lam = self.config.warm_lambda if lam is None else lam
        if negatives is not None:
            return self.sampled_softmax_loss(picked, wanted, negatives, lam)
        return self.full_softmax_loss(picked, wanted, lam)

    # --- decoder (§2.3, §3.2) ---------------------------------------------------------------
    def decoder(self, items: torch.Tensor | None = None,
                lam: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective item weights and biases of eq. (2): (M, H) and (M,), for `items` or all.

        φ̃_j(h) = ((1-λ_j) w_j + λ_j w(f_j))·h + (1-λ_j) b_j + λ_j b(f_j) [+ log q_j if trend].
        """
        idx = items if items is not None else torch.arange(self.output_weight.num_embeddings,
                                                           device=self.seen.device)
        H = self.config.hidden_size
        meta = self.item_feature_mlp(self.item_features(items))  # (M, H + 1)
        mix = self.item_lambda(idx, lam)  # (M,)
        weight = (1 - mix)[:, None] * self.output_weight(idx) + mix[:, None] * meta[:, :H]  # (M, H)
        bias = (1 - mix) * self.output_bias(idx).squeeze(-1) + mix * meta[:, H]  # (M,)
        if self.config.trend_bias:
            bias = bias + self.log_trend[idx]
        return weight, bias

    def metadata_decoder(self, feat_offsets: torch.Tensor, feat_values: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights (M, H) and biases (M,) of items known only by features (λ = 1, §2.3)."""
        H = self.config.hidden_size
        pooled = self.item_feature_embedding(feat_values, feat_offsets[:-1])  # (M, Df)
        meta = self.item_feature_mlp(pooled)  # (M, H + 1)
        bias = meta[:, H]
        if self.config.trend_bias:  # never seen: the smoothed popularity of a zero count
            bias = bias + self.log_trend[:2].min()
        return meta[:, :H], bias

    def scores(self, states: torch.Tensor, lam: torch.Tensor | float | None = None
               ) -> torch.Tensor:
        """Full score matrix: (N, H) states → (N, num_items)."""
        weight, bias = self.decoder(None, lam)
        return torch.addmm(bias, states, weight.T)  # (N, M)

    # --- losses (§2.1, §3.1) ----------------------------------------------------------------
    def full_softmax_loss(self, states: torch.Tensor, targets: torch.Tensor,
                          lam: torch.Tensor | float) -> torch.Tensor:
        """Next-item cross entropy over every item seen in training: (N, H), (N,) → scalar."""
        weight, bias = self.decoder(None, lam)  # (M, H), (M,)
        bias = bias.masked_fill(~self.seen, float("-inf"))  # only items seen in training
        logits = torch.addmm(bias, states, weight.T)  # (N, M)
        return F.cross_entropy(logits, targets)

    def sampled_softmax_loss(self, states: torch.Tensor, targets: torch.Tensor,
                             negatives: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        """Sampled softmax with log-q correction (§3.1): (N, H), (N,), (S,) → scalar.

        Every logit is φ̃_j(h) - log q_j; negatives equal to a row's target are removed.
        """
        w_true, b_true = self.decoder(targets, lam)  # (N, H), (N,)
        true = (states * w_true).sum(-1) + b_true - self.log_proposal[targets]  # (N,)
        w_neg, b_neg = self.decoder(negatives, lam)  # (S, H), (S,)
        sampled = states @ w_neg.T + (b_neg - self.log_proposal[negatives])  # (N, S)
        sampled = sampled.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([true[:, None], sampled], dim=1)  # (N, 1 + S)
        return F.cross_entropy(logits, torch.zeros_like(targets))
