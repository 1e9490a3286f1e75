"""Recipes: one folder per recommendation model from a paper (pure PyTorch + Arrow).

`get_recipe(id)` imports a recipe only when it is asked for; an unknown id is an error that
lists the valid ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recipes.base import RecipeSpec

__all__ = ["RECIPE_IDS", "get_recipe"]

# id -> package; each package defines RECIPE (a recipes.base.RecipeSpec).
_PACKAGES = {
    "hrnn-meta": "recipes.hrnn_meta",
    "item-popularity": "recipes.item_popularity",
    "session-tag-popularity": "recipes.session_tag_popularity",
    "tag-popularity": "recipes.tag_popularity",
    "item-tag-frequency": "recipes.item_tag_frequency",
    "tag-cooccurrence": "recipes.tag_cooccurrence",
    "utpm": "recipes.utpm",
    "graphtr": "recipes.graphtr",
    "sog": "recipes.sog",
}
RECIPE_IDS = tuple(sorted(_PACKAGES))


def get_recipe(recipe_id: str) -> RecipeSpec:
    """The recipe `recipe_id`; ValueError naming the valid ids otherwise."""
    try:
        package = _PACKAGES[recipe_id]
    except KeyError:
        raise ValueError(f"unknown recipe {recipe_id!r}; valid recipes: {', '.join(RECIPE_IDS)}") from None
    return importlib.import_module(package).RECIPE
