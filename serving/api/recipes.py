"""Recipes (`client.recipes`): the models a solution can train, with their data needs and
hyperparameters (JSON schema with defaults, bounds and descriptions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from recipes import RECIPE_IDS, get_recipe
from sdk.types import RecipeInfo

from .common import ApiError, Tenant, resource_router

router = resource_router("recipes")


def _info(recipe_id: str) -> dict[str, Any]:
    spec = get_recipe(recipe_id)
    return RecipeInfo(
        id=spec.id, task=spec.task, paper=spec.paper, description=spec.description,
        required_datasets={k.value: [r.value for r in roles] for k, roles in spec.required.items()},
        optional_datasets={k.value: [r.value for r in roles] for k, roles in spec.optional.items()},
        hyperparameters=spec.config_cls.model_json_schema(),
        defaults=spec.config_cls().model_dump(mode="json"),
    ).model_dump(mode="json")


@router.get("/v1/recipes")
def list_recipes(t: Tenant) -> dict[str, Any]:
    return {"items": [_info(r) for r in RECIPE_IDS], "next_token": None}


@router.get("/v1/recipes/{recipe}", response_model=RecipeInfo)
def get_recipe_info(recipe: Annotated[str, Path(max_length=63)], t: Tenant) -> dict[str, Any]:
    if recipe not in RECIPE_IDS:
        raise ApiError(404, "not_found", f"recipe {recipe!r} not found; recipes: "
                                         f"{', '.join(RECIPE_IDS)}")
    return _info(recipe)
