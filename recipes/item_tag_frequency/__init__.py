"""Item tag frequency: the item-tags task's baseline recipe.

No paper: which of an item's tags to show a user is answered with the tags most applied to the
item in training (only the request's candidate tags, when it gives some), ties by overall count;
the same for every user. An unknown item gets the most used tags overall (among the candidates),
flagged fallback. It trains (from its counts alone, no epochs), deploys and answers through the
platform like any recipe, and is the bar the GraphTR recipe is shown next to.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import ItemTagFrequencyConfig
from .featurizer import ItemTagFrequencyFeaturizer
from .modeling import ItemTagFrequencyModel
from .predictor import ItemTagFrequencyPredictor
from .training import ItemTagFrequencyHooks

__all__ = ["RECIPE", "ItemTagFrequencyConfig", "ItemTagFrequencyFeaturizer", "ItemTagFrequencyHooks",
           "ItemTagFrequencyModel", "ItemTagFrequencyPredictor"]

RECIPE = RecipeSpec(
    id="item-tag-frequency",
    task="item-tags",
    paper="none (baseline: an item's most applied tags)",
    description="The tags most applied to the item (or the request's candidates ranked so), ties by "
                "overall count; the most used tags for an unknown item.",
    config_cls=ItemTagFrequencyConfig,
    featurizer_cls=ItemTagFrequencyFeaturizer,
    hooks_cls=ItemTagFrequencyHooks,
    predictor_cls=ItemTagFrequencyPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP, Role.TAGS)},
    protocols=("item-tag-holdout",),
)
