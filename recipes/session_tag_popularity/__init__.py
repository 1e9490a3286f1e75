"""Session tag popularity: the session-tags task's baseline recipe.

No paper of its own: the counts IntelliTag's deployment falls back to ("we recommend the most
frequently clicked tags", Yang et al., ICDE 2021, §V-B) and its TT relation (two tags clicked one
after the other in a session) as plain counts. It answers the next tags of a support session with
the organisation's most clicked tags, those that followed the session's last clicked tag first,
leaving out tags already clicked, and the organisation's most clicked questions holding the clicked
tags. Exact rules: `predictor.SessionTagPopularityPredictor`.
"""

from __future__ import annotations

from recipes.base import RecipeSpec
from sdk.types import DatasetKind, Role

from .configuration import SessionTagPopularityConfig
from .featurizer import SessionTagPopularityFeaturizer, organisation_column
from .modeling import SessionTagPopularityModel
from .predictor import SessionTagPopularityPredictor
from .training import SessionTagPopularityHooks

__all__ = ["RECIPE", "SessionTagPopularityConfig", "SessionTagPopularityFeaturizer",
           "SessionTagPopularityHooks", "SessionTagPopularityModel", "SessionTagPopularityPredictor",
           "organisation_column"]

RECIPE = RecipeSpec(
    id="session-tag-popularity",
    task="session-tags",
    paper="none (baseline; the most clicked tags IntelliTag's deployment falls back to, ICDE 2021)",
    description=(
        "The organisation's most clicked tags, those that most often followed the session's last "
        "clicked tag first (tag -> next-tag counts), minus the tags already clicked; questions: the "
        "organisation's most clicked questions holding the clicked tags."
    ),
    config_cls=SessionTagPopularityConfig,
    featurizer_cls=SessionTagPopularityFeaturizer,
    hooks_cls=SessionTagPopularityHooks,
    predictor_cls=SessionTagPopularityPredictor,
    required={DatasetKind.INTERACTIONS: (Role.SESSION_ID, Role.TIMESTAMP, Role.TAGS)},
    optional={DatasetKind.ITEMS: (Role.ITEM_ID, Role.TAGS)},
)
