"""The task registry and what it fixes for recipes and data (pure Python, no Ray)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from recipes import RECIPE_IDS, get_recipe
from recipes.base import RecipeSpec
from sdk import tasks
from sdk.tasks import TASKS, HistoryKey, Target, TaskId, get_task
from sdk.types import DatasetCreate, DatasetKind


def test_five_tasks_each_complete() -> None:
    assert [t.value for t in TASKS] == ["next-item", "user-tags", "item-tags", "tag-set", "session-tags"]
    for task in TASKS.values():
        assert task.verbs and task.protocols and task.minimum and task.needs and task.fallback
        assert task.baseline_recipe and task.question
        doc = task.describe()
        assert doc["id"] == task.id.value and doc["protocols"] == list(task.protocols)
    assert get_task("next-item").target == Target.ITEMS and get_task("next-item").history == HistoryKey.USER
    assert get_task("session-tags").history == HistoryKey.SESSION
    assert get_task("tag-set").history == HistoryKey.NONE
    assert {t.id for t in tasks.task_serving("recommend-tags")} == {TaskId.USER_TAGS, TaskId.ITEM_TAGS}


def test_unknown_task_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid tasks: next-item, user-tags"):
        get_task("next-items")


def test_registry_is_pure_python() -> None:
    tree = ast.parse(Path(tasks.__file__).read_text())
    imported = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"torch", "ray", "pyarrow", "numpy"}


def test_recipe_spec_task_is_typed_and_checked() -> None:
    for recipe_id in RECIPE_IDS:
        spec = get_recipe(recipe_id)
        assert isinstance(spec.task, TaskId)
        assert spec.protocols and set(spec.protocols) <= set(TASKS[spec.task].protocols)
    base = get_recipe("hrnn-meta")
    fields = {k: getattr(base, k) for k in ("id", "paper", "description", "config_cls", "featurizer_cls",
                                            "hooks_cls", "predictor_cls")}
    with pytest.raises(ValueError, match="unknown task 'next-items'"):
        RecipeSpec(task="next-items", **fields)
    with pytest.raises(ValueError, match="not protocols of task 'next-item'"):
        RecipeSpec(task="next-item", protocols=("post-holdout",), **fields)


def _interactions(*, nullable_item: bool, tags: bool) -> dict:
    fields = [{"name": "user_id", "type": "string", "role": "USER_ID"},
              {"name": "item_id", "type": "string", "role": "ITEM_ID", "nullable": nullable_item},
              {"name": "ts", "type": "timestamp", "role": "TIMESTAMP"}]
    if tags:
        fields.append({"name": "tags", "type": "categorical", "role": "TAGS"})
    return {"fields": fields}


def test_a_tag_click_may_have_no_item_only_where_tags_are() -> None:
    ok = DatasetCreate(kind="interactions", schema=_interactions(nullable_item=True, tags=True))
    assert ok.schema_.fields[1].nullable
    # Without saying so, an item id stays required, as before.
    plain = DatasetCreate.model_validate({"kind": "interactions", "schema": {"fields": [
        {"name": "user_id", "type": "string", "role": "USER_ID"},
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "ts", "type": "timestamp", "role": "TIMESTAMP"},
        {"name": "tags", "type": "categorical", "role": "TAGS"}]}})
    assert not plain.schema_.fields[1].nullable
    with pytest.raises(ValidationError, match="nullable only in an interactions schema with a TAGS"):
        DatasetCreate(kind="interactions", schema=_interactions(nullable_item=True, tags=False))
    with pytest.raises(ValidationError, match="nullable only"):
        DatasetCreate(kind=DatasetKind.ITEMS, schema={"fields": [
            {"name": "item_id", "type": "string", "role": "ITEM_ID", "nullable": True},
            {"name": "tags", "type": "categorical", "role": "TAGS"}]})
