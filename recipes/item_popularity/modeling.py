"""The model is the training counts: a module with one buffer and no parameters.

Shapes: counts (M + 1,) — M catalog items, index 0 the unknown item (count 0).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ItemPopularityModel"]


class ItemPopularityModel(nn.Module):
    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items + 1, dtype=torch.float64))  # (M + 1,)
