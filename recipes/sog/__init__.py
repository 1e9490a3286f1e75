"""SOG: a post's tag set generated order-free from its text and context (tag-set task).

Kang, Kim, Shin, Myaeng. "Leveraging Order-Free Tag Relations for Context-Aware Recommendation"
(EMNLP'21). A BERT-style encoder reads ``[CLS] context [SEP] ŷ_1 … ŷ_{i-1} [MASK]`` with no order
among the tag slots (§3.1, `modeling`), trained 1-to-M: every prefix of a freshly shuffled tag
order, KL against the remaining tags (§3.2, `training`); greedy decoding masks what was generated
(§3.3, `predictor`); the context is fused early, as words (§3.4, `featurizer`). The encoder is
trained from scratch on the tenant's text (default) or fine-tuned from a BERT-family checkpoint
(`pretrained_encoder`). BR-EF and SOG 1-to-1, the paper's baselines, are config flags.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import SogConfig
from .featurizer import SogFeaturizer
from .modeling import SogModel
from .predictor import SogPredictor
from .training import SogHooks

__all__ = ["RECIPE", "SogConfig", "SogFeaturizer", "SogHooks", "SogModel", "SogPredictor"]

RECIPE = RecipeSpec(
    id="sog",
    task="tag-set",
    paper="Leveraging Order-Free Tag Relations for Context-Aware Recommendation (EMNLP, 2021)",
    description=(
        "Sequence-oblivious tag-set generation: a BERT-style encoder over the post's text and the tags "
        "so far (no order among them) predicts the next tag at [MASK], trained on every prefix against "
        "all remaining tags (1-to-M) and decoded greedily; from scratch or a fine-tuned checkpoint."
    ),
    config_cls=SogConfig,
    featurizer_cls=SogFeaturizer,
    hooks_cls=SogHooks,
    predictor_cls=SogPredictor,
    required={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS)},
)
