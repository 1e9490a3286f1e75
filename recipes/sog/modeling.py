"""The SOG model: a BERT-style encoder over the context and the tags so far, a tag head on [MASK].

Follows Kang et al. (EMNLP'21) §3.1, eq. 2-8: the input is ``[CLS] context [SEP] ŷ_1 … ŷ_{i-1}
[MASK]`` (eq. 3, 18); h = BERT(X_i) (eq. 4); z = h[MASK]·W_HTᵀ + b (eq. 5); p = softmax(z) over
the tags (eq. 6). The encoder is the `transformers` model of the featurizer's encoder config
(from scratch, or a checkpoint's weights loaded by the hooks); the context tokens carry BERT's
positions, every tag slot and [MASK] one shared position (the position after [SEP]) unless
`tag_positions`, so a permutation of the prefix gives the same [MASK] state. Tag slots are their
own embeddings (one per tag), segment 1; the context is segment 0. With ``head="cls"`` the model is
BR-EF (Table 2): the tags are ranked from the [CLS] state of ``[CLS] context [SEP]`` alone.

Shapes: B posts, Lc context length with [CLS] and [SEP] (padded), Lt prefix tags (padded), E the
embedding width, H the hidden width, T tags (index 0 unknown: its logit is never a candidate).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["SogModel", "autocast"]

_POOLED = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})  # take add_pooling_layer


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on `device` for ``precision="bfloat16"``, or ``"auto"`` where the device
    computes bfloat16 natively; otherwise nothing (float32)."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "auto":
        native = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                  else bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()))
        if not native:
            return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class SogModel(nn.Module):
    """The encoder, the tag slots' embeddings and the tag head (module docstring)."""

    def __init__(self, encoder: Mapping[str, Any], num_tags: int, mask_id: int, *, position_offset: int = 0,
                 tag_positions: bool = False, head: Literal["mask", "cls"] = "mask") -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        settings = dict(encoder)
        kind = str(settings.pop("model_type", "bert"))
        config = AutoConfig.for_model(kind, **settings)
        extra = {"add_pooling_layer": False} if kind in _POOLED else {}
        self.encoder = AutoModel.from_config(config, **extra)
        self.word_embeddings: nn.Embedding = self.encoder.get_input_embeddings()
        width = self.word_embeddings.embedding_dim
        self.tag_embeddings = nn.Embedding(num_tags, width, padding_idx=0)  # (T + 1, E)
        nn.init.normal_(self.tag_embeddings.weight, std=getattr(config, "initializer_range", 0.02))
        self.out = nn.Linear(config.hidden_size, num_tags)  # W_HT, b of eq. 5
        self.mask_id, self.head, self.tag_positions = int(mask_id), head, tag_positions
        self.position_offset = int(position_offset)
        self.max_position = int(config.max_position_embeddings) - 1 - self.position_offset
        self.segments = int(getattr(config, "type_vocab_size", 1) or 1)

    def load_encoder(self, state: Mapping[str, torch.Tensor]) -> None:
        """A checkpoint's encoder weights (a pooler or head it has is ignored); ValueError naming
        the encoder weights the checkpoint lacks or whose shapes differ."""
        own = self.encoder.state_dict()
        missing = [k for k in own if k not in state and not k.endswith("position_ids")]
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or wrong:
            raise ValueError(f"the pretrained encoder's weights do not fit its config: missing "
                             f"{missing[:5]}, shapes differ for {wrong[:5]}")
        self.encoder.load_state_dict({k: state[k] for k in own if k in state}, strict=False)

    def init_tags_from_pieces(self, pieces: Sequence[Sequence[int]]) -> None:
        """Tag i + 1's embedding := the mean of the word-piece embeddings `pieces[i]` (none: kept)."""
        with torch.no_grad():
            words = self.word_embeddings.weight
            for i, ids in enumerate(pieces, start=1):
                if len(ids):
                    self.tag_embeddings.weight[i] = words[torch.as_tensor(list(ids))].mean(0)

    def forward(self, context: torch.Tensor, context_len: torch.Tensor, tags: torch.Tensor | None = None,
                tag_len: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T + 1) of the next tag: `context` (B, Lc) word pieces with [CLS] and [SEP]
        (`context_len` (B,) of them real), `tags` (B, Lt) prefix tag indices (`tag_len` real)."""
        b, lc = context.shape
        steps = torch.arange(lc, device=context.device)
        ctx_mask = steps[None, :] < context_len[:, None]  # (B, Lc)
        words = self.word_embeddings(context)  # (B, Lc, E)
        if self.head == "cls":
            hidden = self._encode(words, ctx_mask, steps[None, :].expand(b, lc), torch.zeros_like(context))
            return self._logits(hidden[:, 0])  # (B, T + 1)
        if tags is None or tag_len is None:
            raise ValueError("the SOG head needs the prefix tags (tags, tag_len)")
        lt = tags.shape[1]
        slots = torch.arange(lt + 1, device=context.device)
        tag_mask = slots[None, :lt] < tag_len[:, None]  # (B, Lt)
        mask_slot = self.word_embeddings.weight[self.mask_id].expand(b, 1, -1)  # (B, 1, E)
        embeds = torch.cat([words, self.tag_embeddings(tags), mask_slot], dim=1)  # (B, Lc + Lt + 1, E)
        one = torch.ones(b, 1, dtype=torch.bool, device=context.device)
        attention = torch.cat([ctx_mask, tag_mask, one], dim=1)
        after = context_len[:, None]  # the position after [SEP]
        if self.tag_positions:  # the authors' code: tag j at after + j, [MASK] right after the last tag
            tail = torch.cat([after + slots[None, :lt], after + tag_len[:, None]], dim=1)
            tail = tail.clamp(max=self.max_position)  # a prefix past the table shares its last position
        else:  # §3.1: no order among the tag slots
            tail = after.expand(b, lt + 1)
        positions = torch.cat([steps[None, :].expand(b, lc), tail], dim=1)
        segment = torch.cat([torch.zeros(b, lc, dtype=torch.long, device=context.device),
                             torch.full((b, lt + 1), min(1, self.segments - 1), dtype=torch.long,
                                        device=context.device)], dim=1)
        hidden = self._encode(embeds, attention, positions, segment)
        return self._logits(hidden[:, -1])  # the [MASK] slot: (B, T + 1)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The tag head in float32 even under bfloat16 autocast (bfloat16 logits tie close tags)."""
        with torch.autocast(hidden.device.type, enabled=False):
            return self.out(hidden.float())  # (B, T + 1)

    def _encode(self, embeds: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor,
                segment: torch.Tensor) -> torch.Tensor:
        out = self.encoder(inputs_embeds=embeds, attention_mask=attention.long(),
                           position_ids=positions + self.position_offset, token_type_ids=segment)
        return out.last_hidden_state  # (B, S, H)
