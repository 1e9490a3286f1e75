"""HRNN-meta: a GRU over timestamped user histories with user/item/context metadata.

Ma, Narayanaswamy, Lin, Ding. "Temporal-Contextual Recommendation in Real-Time" (KDD'20). The
recipe returns the next items for a user from their history (re-run at request time), uses item
metadata for cold-start items, and trains with a full or (large catalogs) sampled softmax.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import HrnnMetaConfig
from .featurizer import HrnnMetaExamples, HrnnMetaFeaturizer
from .modeling import HrnnMetaModel
from .predictor import HrnnMetaPredictor
from .training import HrnnMetaHooks

__all__ = ["RECIPE", "HrnnMetaConfig", "HrnnMetaExamples", "HrnnMetaFeaturizer", "HrnnMetaHooks",
           "HrnnMetaModel", "HrnnMetaPredictor"]

RECIPE = RecipeSpec(
    id="hrnn-meta",
    task="next-item",
    paper="Temporal-Contextual Recommendation in Real-Time (KDD, 2020)",
    description=(
        "Hierarchical recurrent network with metadata: a GRU reads each user's timestamped "
        "history (item, time gap to the next event, event type/value, user fields) and scores "
        "every item by mixing its id embedding with an embedding of its metadata, so items "
        "without interactions can be recommended. Sampled softmax for catalogs above "
        "sampled_softmax_threshold items; optional item-popularity trend bias."
    ),
    config_cls=HrnnMetaConfig,
    featurizer_cls=HrnnMetaFeaturizer,
    hooks_cls=HrnnMetaHooks,
    predictor_cls=HrnnMetaPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP)},
    optional={
        DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS),
        DatasetKind.USERS: (Role.USER_ID,),
    },
)
