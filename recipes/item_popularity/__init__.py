"""Item popularity: the next-item task's baseline recipe (Amazon Personalize's Popularity-Count).

No paper: it recommends the items with the most training interactions (optionally of the last
`recent_days`), the same list for everyone minus what a user already has. It trains, deploys and
answers through the platform like any recipe, and is the bar every next-item recipe is shown next
to.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import ItemPopularityConfig
from .featurizer import ItemPopularityFeaturizer
from .modeling import ItemPopularityModel
from .predictor import ItemPopularityPredictor
from .training import ItemPopularityHooks

__all__ = ["RECIPE", "ItemPopularityConfig", "ItemPopularityFeaturizer", "ItemPopularityHooks",
           "ItemPopularityModel", "ItemPopularityPredictor"]

RECIPE = RecipeSpec(
    id="item-popularity",
    task="next-item",
    paper="none (baseline; as Amazon Personalize's Popularity-Count)",
    description="The most interacted-with items, the same for everyone, minus the user's own.",
    config_cls=ItemPopularityConfig,
    featurizer_cls=ItemPopularityFeaturizer,
    hooks_cls=ItemPopularityHooks,
    predictor_cls=ItemPopularityPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP)},
    optional={DatasetKind.ITEMS: (Role.ITEM_ID,)},
    protocols=("temporal-holdout",),
)
