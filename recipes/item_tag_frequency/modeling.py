"""The model is the training counts: a module with buffers and no parameters.

Shapes: counts (V + 1,) each tag's count (index 0: unknown); indptr (I + 2,), pair_tags (P,) and
pair_counts (P,) each item's tag counts as CSR rows (see the featurizer).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ItemTagFrequencyModel"]


class ItemTagFrequencyModel(nn.Module):
    def __init__(self, num_tags: int, num_items: int, num_pairs: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_tags + 1, dtype=torch.float64))  # (V + 1,)
        self.register_buffer("indptr", torch.zeros(num_items + 2, dtype=torch.int64))  # (I + 2,)
        self.register_buffer("pair_tags", torch.zeros(num_pairs, dtype=torch.int64))  # (P,)
        self.register_buffer("pair_counts", torch.zeros(num_pairs, dtype=torch.float64))  # (P,)
