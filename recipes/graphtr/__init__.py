"""GraphTR: an item's tags ranked for a user from a heterogeneous graph (item-tags task).

Liu, Xie, Lin et al. "Graph Neural Network for Tag Ranking in Tag-enhanced Video Recommendation"
(CIKM'20). A graph of items, tags, creators and users (or user groups) from the training snapshot
(§3.2, `graph`), node embeddings learned by HFIN (§3.3: multi-field transformer, GraphSAGE and FM
aggregators, a second transformer layer) under the neighbour-similarity loss (§3.4, eq. 14), and
the online ranking of §4.1: a user vector from the tags of the latest items, the item's candidate
tags ranked by cosine. Ablations and the GraphSAGE competitor are config flags.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import GraphTrConfig
from .featurizer import GraphTrFeaturizer
from .modeling import HfinModel
from .predictor import GraphTrPredictor
from .training import GraphTrHooks

__all__ = ["RECIPE", "GraphTrConfig", "GraphTrFeaturizer", "GraphTrHooks", "GraphTrPredictor", "HfinModel"]

RECIPE = RecipeSpec(
    id="graphtr",
    task="item-tags",
    paper="Graph Neural Network for Tag Ranking in Tag-enhanced Video Recommendation (CIKM, 2020)",
    description=(
        "Tag ranking on a heterogeneous item-tag-creator-user graph: HFIN node embeddings (multi-field "
        "transformer, GraphSAGE and FM aggregators) trained by neighbour similarity; a user vector from "
        "the tags of the latest items (time decay) ranks an item's candidate tags by cosine."
    ),
    config_cls=GraphTrConfig,
    featurizer_cls=GraphTrFeaturizer,
    hooks_cls=GraphTrHooks,
    predictor_cls=GraphTrPredictor,
    required={DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP, Role.TAGS)},
    optional={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS), DatasetKind.USERS: (Role.USER_ID,)},
    protocols=("item-tag-holdout",),
)
