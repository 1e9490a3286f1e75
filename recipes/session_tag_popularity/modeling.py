"""The model is the click counts: a module of buffers and no parameters (sparse, as COO triples).

Shapes (T tags, O organisations, Q questions of the vocabularies; index 0 is "unknown" / "no
organisation"; N1, N2, N3 the non-zero entries):

    tag_index           (2, N1)  organisation, tag          of each (organisation, tag) pair
    tag_clicks          (N1,)    its tag clicks (0 for a tag of the organisation's questions never clicked)
    transition_index    (3, N2)  organisation, tag a, tag b  of each transition a -> b
    transition_counts   (N2,)    how often b was the next tag clicked after a
    question_org        (Q + 1,) each question's organisation
    question_clicks     (Q + 1,) each question's clicks
    question_tag_index  (2, N3)  question, tag              of each tag a question holds
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SessionTagPopularityModel"]

BUFFERS = ("tag_index", "tag_clicks", "transition_index", "transition_counts", "question_org",
           "question_clicks", "question_tag_index")


class SessionTagPopularityModel(nn.Module):
    """Built from the featurizer's statistics, or from a saved state dict (`Model(**state)`)."""

    def __init__(self, **buffers: Any) -> None:
        super().__init__()
        missing = [b for b in BUFFERS if b not in buffers]
        if missing:
            raise ValueError(f"session-tag-popularity model: missing {', '.join(missing)}")
        for name in BUFFERS:
            self.register_buffer(name, torch.as_tensor(buffers[name]))
