"""Tag co-occurrence: the tag-set task's baseline recipe (count-based, nothing optimized).

No paper: a post's tag set is the tags that co-occur most, in the training posts, with its words
(its text fields, tokenized and lower-cased) and with the tags already chosen for it, each word
weighted by its idf and each vote smoothed toward tag popularity (`modeling` has the formula);
with no known word it answers the most used tags, flagged fallback. It trains (its featurizer
counts), deploys and answers through the platform like any recipe, and is the bar every tag-set
recipe (SOG) is shown next to.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import TagCooccurrenceConfig
from .featurizer import TagCooccurrenceFeaturizer
from .modeling import TagCooccurrenceModel
from .predictor import TagCooccurrencePredictor
from .training import TagCooccurrenceHooks

__all__ = ["RECIPE", "TagCooccurrenceConfig", "TagCooccurrenceFeaturizer", "TagCooccurrenceHooks",
           "TagCooccurrenceModel", "TagCooccurrencePredictor"]

RECIPE = RecipeSpec(
    id="tag-cooccurrence",
    task="tag-set",
    paper="none (baseline: word-tag and tag-tag co-occurrence counts)",
    description="The tags most co-occurring with the post's words (idf-weighted) and chosen tags, "
                "smoothed toward and damped by tag popularity; the most used tags when no word is known.",
    config_cls=TagCooccurrenceConfig,
    featurizer_cls=TagCooccurrenceFeaturizer,
    hooks_cls=TagCooccurrenceHooks,
    predictor_cls=TagCooccurrencePredictor,
    required={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS)},
)
