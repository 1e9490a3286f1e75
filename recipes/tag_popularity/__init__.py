"""Tag popularity: the user-tags task's baseline recipe.

No paper: a user's tag profile is the tags they used (by frequency, optionally time-decayed;
ties to the most recent), read from their history at request time, then the most used tags
overall; an unknown user gets the most used tags, flagged fallback. It trains (from its counts
alone, no epochs), deploys and answers through the platform like any recipe, and is the bar the
UTPM recipe is shown next to.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import TagPopularityConfig
from .featurizer import TagPopularityFeaturizer
from .modeling import TagPopularityModel
from .predictor import TagPopularityPredictor
from .training import TagPopularityHooks

__all__ = ["RECIPE", "TagPopularityConfig", "TagPopularityFeaturizer", "TagPopularityHooks",
           "TagPopularityModel", "TagPopularityPredictor"]

RECIPE = RecipeSpec(
    id="tag-popularity",
    task="user-tags",
    paper="none (baseline: a user's own tags, then the most used ones)",
    description="A user's own past tags by frequency (ties: most recent), then the most used tags overall.",
    config_cls=TagPopularityConfig,
    featurizer_cls=TagPopularityFeaturizer,
    hooks_cls=TagPopularityHooks,
    predictor_cls=TagPopularityPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.TIMESTAMP, Role.TAGS)},
    protocols=("user-tag-holdout", "user-split"),
)
