"""UTPM: a user's tag profile from multi-field categorical features.

Yan, Chen, Huo, Zhang, Lin. "Learning to Build User-tag Profile in Recommendation System"
(CIKM'20). The fields (tags and categories of the items a user liked and disliked, their
demographics) go through attention fusion with queries shared by all attention units (§3,
eq. 1-2), an FM-style cross layer keeping every pairwise term (eq. 3) and two FC layers to a user
vector u; every tag is scored by u·t, trained with the joint loss over an item's tags (eq. 4).
The fields are rebuilt from the history at request time, so a new rating changes the profile at
the next request. Ablations and the YouTube-DNN baseline (`fusion="average"`) are config flags.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import UtpmConfig
from .featurizer import UtpmExamples, UtpmFeaturizer
from .modeling import UtpmModel
from .predictor import UtpmPredictor
from .training import UtpmHooks

__all__ = ["RECIPE", "UtpmConfig", "UtpmExamples", "UtpmFeaturizer", "UtpmHooks", "UtpmModel",
           "UtpmPredictor"]

RECIPE = RecipeSpec(
    id="utpm",
    task="user-tags",
    paper="Learning to Build User-tag Profile in Recommendation System (CIKM, 2020)",
    description=(
        "User tag profiling as multi-label classification: tags and categories of liked and "
        "disliked items and demographic fields, fused by multi-head attention with shared queries, "
        "an FM-style cross layer and two FC layers into a user vector that scores every tag; joint "
        "loss over each clicked/unclicked item's tags. fusion='average' is the YouTube-DNN baseline."
    ),
    config_cls=UtpmConfig,
    featurizer_cls=UtpmFeaturizer,
    hooks_cls=UtpmHooks,
    predictor_cls=UtpmPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.TIMESTAMP, Role.TAGS)},
    optional={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS), DatasetKind.USERS: (Role.USER_ID,)},
    protocols=("user-split", "user-tag-holdout"),
)
