"""Solutions (`client.solutions`): a recipe and its hyperparameters, bound to a dataset group."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import ValidationError

from recipes import RECIPE_IDS, get_recipe
from sdk.types import Solution, SolutionCreate, Status
from sdk.types.common import describe_problem
from store import Keys

from .common import (
    ApiError,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    existing,
    group_parent,
    live_group,
    live_solution,
    mark_deleting,
    page,
    refuse_if_batch_running,
    refuse_if_training,
    resource_router,
)

router = resource_router("solutions")


@router.post("/v1/dataset-groups/{group}/solutions", response_model=Solution, status_code=201)
def create_solution(group: Name, body: Strict[SolutionCreate], t: Tenant, response: Response, ctx: Ctx,
                    idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    if body.recipe not in RECIPE_IDS:
        raise ApiError(400, "invalid_input", f"recipe: unknown recipe {body.recipe!r}; recipes: "
                                             f"{', '.join(RECIPE_IDS)}", "recipe")
    spec = get_recipe(body.recipe)
    try:
        config = spec.config_cls.model_validate(body.hyperparameters)
    except ValidationError as e:
        field, message = describe_problem(e.errors()[0], prefix=("hyperparameters",))
        raise ApiError(400, "invalid_input", message, field) from None
    evaluation = body.evaluation.model_copy(update={"mode": body.evaluation.mode or spec.protocols[0]})
    if evaluation.mode not in spec.protocols:
        raise ApiError(400, "invalid_input", f"evaluation.mode: recipe {body.recipe!r} "
                       f"({spec.task.value}) is evaluated with {' or '.join(spec.protocols)}, "
                       f"not {evaluation.mode!r}",
                       "evaluation.mode")
    doc = {"name": body.name, "dataset_group": group, "recipe": body.recipe, "task": spec.task.value,
           "hyperparameters": config.model_dump(mode="json"),
           "scaling": body.scaling.model_dump(mode="json"),
           "evaluation": evaluation.model_dump(mode="json"),
           "description": body.description, "status": Status.ACTIVE.value}
    return create(ctx, keys.solution_record(group, body.name), doc, idem,
                  f"solution {body.name!r}", response, parents=(group_parent(keys, group),),
                  request=body)


@router.get("/v1/dataset-groups/{group}/solutions")
def list_solutions(group: Name, t: Tenant, ctx: Ctx,
                   max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
                   next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    found = page(ctx.store.registry.list(keys.solutions(group), "/solution.json"), max_results, next_token)
    found["items"] = [Solution.model_validate(d).model_dump(mode="json") for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}/solutions/{solution}", response_model=Solution)
def get_solution(group: Name, solution: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    return live_solution(ctx, Keys(t), group, solution)


@router.delete("/v1/dataset-groups/{group}/solutions/{solution}", status_code=204)
def delete_solution(group: Name, solution: Name, t: Tenant, ctx: Ctx) -> Response:
    keys = Keys(t)
    backend = ctx.store.backend
    live_group(ctx, keys, group)
    existing(ctx, keys.solution_record(group, solution), f"solution {solution!r}")
    refuse_if_training(ctx, keys, group, solution)
    refuse_if_batch_running(ctx, keys, group, solution)
    users = [d["name"] for d in ctx.store.registry.list(keys.campaigns(group), ".json")
             if d["solution"] == solution or (d.get("pending_update") or {}).get("solution") == solution]
    if users:
        raise ApiError(409, "conflict", f"solution {solution!r} is deployed by campaign(s) "
                                        f"{', '.join(users)}: delete or update them first")
    mark_deleting(ctx, keys.solution_record(group, solution))
    backend.delete_prefix(keys.versions(group, solution))
    backend.delete(keys.solution_record(group, solution))
    backend.delete_prefix(keys.solution(group, solution))
    return Response(status_code=204)
