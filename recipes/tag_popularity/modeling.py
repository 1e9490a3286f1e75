"""The model is the training counts: a module with one buffer and no parameters.

Shapes: counts (V + 1,) — V tags, most used first; index 0 the unknown tag (count 0).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TagPopularityModel"]


class TagPopularityModel(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_tags + 1, dtype=torch.float64))  # (V + 1,)
