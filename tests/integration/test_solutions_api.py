"""Recipes, solutions and solution versions through the SDK, against the real control plane.

The `platform` fixture runs jobs on threads: training runs on Ray, so a version created here ends
CREATE_FAILED at once with a reason saying so. What these tests pin is everything around the
training job: the recipe catalogue, solutions and their hyperparameters (defaults filled in,
checked against the recipe's schema), the refusals of a version the data cannot train, the
version lifecycle the API owns (idempotent create, newest-first listing, stop), and deletes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from recipes import RECIPE_IDS
from sdk import BadRequestError, Client, ConflictError, NotFoundError, SolutionVersion, Status
from store import Keys, Store, StoreConfig, now_iso
from tests.conftest import INTERACTIONS_SCHEMA, Platform, unique

pytestmark = pytest.mark.integration

RECIPE = "hrnn-meta"
MIN_INTERACTIONS = 1000


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[Client]:
    with platform.client() as c:
        yield c


def write_interactions(path: Path, rows: int) -> Path:
    """A CSV of `rows` interactions (60 users, 101 items) in the INTERACTIONS_SCHEMA layout."""
    path.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                    + "".join(f"u{i % 60},i{(i * 7) % 101},{1_700_000_000 + 60 * i},click,1\n"
                              for i in range(rows)))
    return path


def group_with_interactions(client: Client, tmp_path: Path, rows: int | None) -> str:
    """A new group with an interactions dataset holding `rows` rows (None: no import at all)."""
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    if rows is not None:
        job = client.dataset_import_jobs.create_and_wait(
            group, dataset="interactions", source=write_interactions(tmp_path / f"{group}.csv", rows),
            poll_interval=0.05, timeout=60)
        assert job.status == Status.ACTIVE and job.progress.rows == rows
    return group


@pytest.fixture(scope="module")
def trainable_group(client: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A group with enough interactions to train (1200)."""
    return group_with_interactions(client, tmp_path_factory.mktemp("trainable"), 1200)


def assert_training_cannot_start(v: SolutionVersion) -> None:
    """What a version becomes on the thread platform: failed at once, saying training needs Ray."""
    assert v.status == Status.CREATE_FAILED, v
    assert v.failure_reason and "Ray" in v.failure_reason, v.failure_reason


# ---- recipes ------------------------------------------------------------------------------------

def test_recipes_list_and_retrieve(client: Client) -> None:
    recipes = client.recipes.list()
    assert [r.id for r in recipes] == list(RECIPE_IDS) and RECIPE in RECIPE_IDS
    info = client.recipes.retrieve(RECIPE)
    assert info == recipes[list(RECIPE_IDS).index(RECIPE)]
    assert info.task == "next-item" and info.paper and info.description
    assert info.required_datasets == {"interactions": ["USER_ID", "ITEM_ID", "TIMESTAMP"]}
    assert info.optional_datasets == {"items": ["ITEM_ID", "TAGS"], "users": ["USER_ID"]}

    schema = info.hyperparameters
    props = schema["properties"]
    assert props["hidden_size"]["default"] == 43 and props["bptt"]["default"] == 32
    assert (props["epochs"]["minimum"], props["epochs"]["maximum"]) == (1, 10_000)
    assert props["lambda_sampling"]["enum"] == ["uniform", "fixed"]
    assert schema.get("additionalProperties") is False  # unknown keys are refused
    for name, prop in props.items():
        assert "default" in prop, name
        assert prop.get("description"), f"hyperparameter {name} has no description"
    assert info.defaults == {name: prop["default"] for name, prop in props.items()}
    assert info.defaults["hidden_size"] == 43 and info.defaults["bptt"] == 32


def test_unknown_recipe_is_404_listing_the_recipes(client: Client) -> None:
    with pytest.raises(NotFoundError) as e:
        client.recipes.retrieve("gru4rec")
    assert e.value.status_code == 404 and e.value.error_type == "not_found"
    assert "gru4rec" in e.value.message and RECIPE in e.value.message


# ---- solutions ----------------------------------------------------------------------------------

def test_solution_stores_every_hyperparameter_with_defaults(client: Client) -> None:
    group = unique()
    client.dataset_groups.create(group)
    defaults = client.recipes.retrieve(RECIPE).defaults
    name = unique("sol")
    sol = client.solutions.create(group, name=name, recipe=RECIPE,
                                  hyperparameters={"epochs": 2, "hidden_size": 16,
                                                   "trend_bias": True},
                                  scaling={"workers": 2, "cpus_per_worker": 0.5},
                                  evaluation={"mode": "item-cold-start", "seed": 7},
                                  description="small")
    assert (sol.name, sol.dataset_group, sol.recipe, sol.status) == (name, group, RECIPE, Status.ACTIVE)
    assert sol.hyperparameters == {**defaults, "epochs": 2, "hidden_size": 16, "trend_bias": True}
    assert (sol.scaling.workers, sol.scaling.cpus_per_worker, sol.scaling.gpus_per_worker,
            sol.scaling.max_failures) == (2, 0.5, 0.0, 1)
    assert (sol.evaluation.mode, sol.evaluation.seed, sol.evaluation.test_fraction) == \
        ("item-cold-start", 7, 0.1)
    assert sol.description == "small"
    assert client.solutions.retrieve(group, name) == sol
    assert client.solutions.list(group) == [sol]

    plain = client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    assert plain.hyperparameters == defaults
    assert plain.scaling.workers == 1 and plain.evaluation.mode == "temporal-holdout"
    assert [s.name for s in client.solutions.list(group)] == sorted([name, plain.name])


@pytest.mark.parametrize(("hyperparameters", "field"), [
    ({"epochs": 0}, "hyperparameters.epochs"),
    ({"epochs": 2, "hidden_sz": 16}, "hyperparameters.hidden_sz"),
    ({"dropout": 1.5}, "hyperparameters.dropout"),
    ({"lambda_sampling": "sometimes"}, "hyperparameters.lambda_sampling"),
], ids=["epochs-0", "unknown-key", "dropout-1.5", "lambda-sampling"])
def test_solution_with_bad_hyperparameters_is_refused(client: Client, hyperparameters: dict[str, Any],
                                                      field: str) -> None:
    group = unique()
    client.dataset_groups.create(group)
    with pytest.raises(BadRequestError) as e:
        client.solutions.create(group, name=unique("sol"), recipe=RECIPE, hyperparameters=hyperparameters)
    assert (e.value.status_code, e.value.error_type, e.value.field) == (400, "invalid_input", field)
    assert field in e.value.message
    assert client.solutions.list(group) == []


@pytest.mark.parametrize(("hyperparameters", "field"), [
    ({"heads": 0}, "hyperparameters.heads"),
    ({"fusion": "max"}, "hyperparameters.fusion"),
    ({"negative_sampling": "random"}, "hyperparameters.negative_sampling"),
    ({"positive_threshold": "NaN"}, "hyperparameters.positive_threshold"),
    ({"sampled_negatives": 101}, "hyperparameters.sampled_negatives"),
    ({"embedding_dim": 8, "tie_tag_embeddings": True}, "hyperparameters"),
    ({"negative_threshold": 4.0}, "hyperparameters"),
    ({"num_heads": 2}, "hyperparameters.num_heads"),
], ids=["heads-0", "fusion", "negative-sampling", "nan-threshold", "negatives-101", "tied-dims",
        "thresholds-crossed", "unknown-key"])
def test_utpm_solution_with_bad_hyperparameters_is_refused(client: Client, hyperparameters: dict[str, Any],
                                                           field: str) -> None:
    group = unique()
    client.dataset_groups.create(group)
    with pytest.raises(BadRequestError) as e:
        client.solutions.create(group, name=unique("sol"), recipe="utpm", hyperparameters=hyperparameters)
    assert (e.value.status_code, e.value.error_type, e.value.field) == (400, "invalid_input", field)
    assert client.solutions.list(group) == []


@pytest.mark.parametrize(("hyperparameters", "field", "named"), [
    ({"hidden_dim": 10, "heads": 4}, "hyperparameters", "hidden_dim (10) must be divisible by heads (4)"),
    ({"first_transformer": False, "graphsage": False, "fm": False}, "hyperparameters",
     "first_transformer, graphsage and fm are all off"),
    ({"epochs": -1}, "hyperparameters.epochs", "epochs"),
    ({"aggregator": "gat"}, "hyperparameters.aggregator", "aggregator"),
    ({"user_nodes": "everyone"}, "hyperparameters.user_nodes", "user_nodes"),
    ({"time_decay": "NaN"}, "hyperparameters.time_decay", "time_decay"),
    ({"creator_field": "x" * 257}, "hyperparameters.creator_field", "creator_field"),
    ({"num_heads": 2}, "hyperparameters.num_heads", "num_heads"),
], ids=["heads-divide", "no-aggregator", "negative-epochs", "aggregator", "user-nodes", "nan-decay",
        "long-creator-field", "unknown-key"])
def test_graphtr_solution_with_bad_hyperparameters_is_refused(client: Client, hyperparameters: dict[str, Any],
                                                              field: str, named: str) -> None:
    group = unique()
    client.dataset_groups.create(group)
    with pytest.raises(BadRequestError) as e:
        client.solutions.create(group, name=unique("sol"), recipe="graphtr", hyperparameters=hyperparameters)
    assert (e.value.status_code, e.value.error_type, e.value.field) == (400, "invalid_input", field)
    assert named in e.value.message, e.value.message
    assert client.solutions.list(group) == []


@pytest.mark.parametrize(("hyperparameters", "field", "named"), [
    ({"hidden_size": 30, "heads": 4}, "hyperparameters", "hidden_size (30) must be divisible by heads (4)"),
    ({"training": "x"}, "hyperparameters.training", "training"),
    ({"hidden_sz": 32}, "hyperparameters.hidden_sz", "hidden_sz"),
], ids=["heads-divide", "training", "unknown-key"])
def test_sog_solution_with_bad_hyperparameters_is_refused(client: Client, hyperparameters: dict[str, Any],
                                                          field: str, named: str) -> None:
    group = unique()
    client.dataset_groups.create(group)
    with pytest.raises(BadRequestError) as e:
        client.solutions.create(group, name=unique("sol"), recipe="sog", hyperparameters=hyperparameters)
    assert (e.value.status_code, e.value.error_type, e.value.field) == (400, "invalid_input", field)
    assert named in e.value.message, e.value.message
    assert client.solutions.list(group) == []


def test_solution_with_unknown_recipe_is_refused(client: Client) -> None:
    group = unique()
    client.dataset_groups.create(group)
    with pytest.raises(BadRequestError) as e:
        client.solutions.create(group, name=unique("sol"), recipe="gru4rec")
    assert (e.value.field, e.value.error_type) == ("recipe", "invalid_input")
    assert "gru4rec" in e.value.message and RECIPE in e.value.message
    assert client.solutions.list(group) == []


def test_solution_in_a_missing_group_is_404(client: Client) -> None:
    group = unique()
    with pytest.raises(NotFoundError) as e:
        client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    assert group in e.value.message
    with pytest.raises(NotFoundError):
        client.solutions.list(group)
    with pytest.raises(NotFoundError):
        client.dataset_groups.retrieve(group)  # nothing was created on the way


# ---- versions refused for the data ---------------------------------------------------------------

def _refused(client: Client, group: str) -> BadRequestError:
    """Create a solution in `group`, ask for a version; the refusal (and no version was made)."""
    sol = client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    with pytest.raises(BadRequestError) as e:
        client.solution_versions.create(group, solution=sol.name)
    assert (e.value.status_code, e.value.error_type) == (400, "insufficient_data")
    assert client.solution_versions.list(group, sol.name) == []
    return e.value


def test_version_refused_without_an_interactions_dataset(client: Client) -> None:
    group = unique()
    client.dataset_groups.create(group)
    err = _refused(client, group)
    assert "interactions dataset" in err.message and group in err.message, err.message


def test_version_refused_when_the_dataset_has_no_data(client: Client, tmp_path: Path) -> None:
    group = group_with_interactions(client, tmp_path, rows=None)
    err = _refused(client, group)
    assert "interactions" in err.message and "no data" in err.message, err.message


def test_version_refused_with_too_few_interactions(client: Client, tmp_path: Path) -> None:
    group = group_with_interactions(client, tmp_path, rows=500)
    assert client.datasets.retrieve(group, "interactions").row_count == 500
    err = _refused(client, group)
    assert "500 interactions" in err.message and str(MIN_INTERACTIONS) in err.message, err.message


# ---- versions -----------------------------------------------------------------------------------

def test_version_copies_its_solution_and_fails_without_ray(client: Client, trainable_group: str) -> None:
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE,
                                  hyperparameters={"epochs": 1}, scaling={"workers": 2})
    v = client.solution_versions.create(trainable_group, solution=sol.name)
    assert_training_cannot_start(v)
    assert (v.dataset_group, v.solution, v.recipe, v.training_mode) == \
        (trainable_group, sol.name, RECIPE, "full")
    assert v.hyperparameters == sol.hyperparameters
    assert v.scaling == sol.scaling and v.evaluation_config == sol.evaluation
    assert v.metrics is None and v.artifact_uri is None
    assert client.solution_versions.retrieve(trainable_group, sol.name, v.name) == v


def test_version_create_is_idempotent_per_key(client: Client, trainable_group: str) -> None:
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    key = str(uuid.uuid4())
    first = client.solution_versions.create(trainable_group, solution=sol.name, idempotency_key=key)
    again = client.solution_versions.create(trainable_group, solution=sol.name, idempotency_key=key)
    assert again.name == first.name and again.created_at == first.created_at
    assert [v.name for v in client.solution_versions.list(trainable_group, sol.name)] == [first.name]


def test_versions_are_listed_newest_first(client: Client, trainable_group: str) -> None:
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    made = [client.solution_versions.create(trainable_group, solution=sol.name) for _ in range(4)]
    listed = client.solution_versions.list(trainable_group, sol.name)
    assert [v.name for v in listed] == [v.name for v in reversed(made)]
    assert [v.created_at for v in listed] == sorted((v.created_at for v in made), reverse=True)
    # Pages keep that order.
    path = f"/v1/dataset-groups/{trainable_group}/solutions/{sol.name}/versions"
    first = client.request("GET", path, params={"max_results": 3}).json()
    rest = client.request("GET", path, params={"max_results": 3,
                                               "next_token": first["next_token"]}).json()
    assert [v["name"] for v in first["items"] + rest["items"]] == [v.name for v in listed]
    assert rest["next_token"] is None


def test_stopping_a_version_that_ended_is_409(client: Client, trainable_group: str) -> None:
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    v = client.solution_versions.create(trainable_group, solution=sol.name)
    assert_training_cannot_start(v)
    with pytest.raises(ConflictError) as e:
        client.solution_versions.stop(trainable_group, sol.name, v.name)
    assert (e.value.status_code, e.value.error_type) == (409, "conflict")
    assert v.name in e.value.message and "CREATE_FAILED" in e.value.message
    assert client.solution_versions.retrieve(trainable_group, sol.name, v.name) == v
    with pytest.raises(NotFoundError):
        client.solution_versions.stop(trainable_group, sol.name, f"v-{uuid.uuid4().hex[:16]}")


def _set_status(platform: Platform, group: str, solution: str, version: str, status: str) -> None:
    """Write a version's status as its Ray job does (training cannot start on this platform)."""
    registry = Store(StoreConfig.from_env(platform.store_uri)).registry
    registry.update(Keys("tenant-a").version_record(group, solution, version), lambda d: {
        **d, "status": status, "failure_reason": None, "updated_at": now_iso()})


def test_a_training_version_blocks_deletes_until_it_ends(platform: Platform, client: Client,
                                                         tmp_path: Path) -> None:
    group = group_with_interactions(client, tmp_path, rows=1200)
    sol = client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    v = client.solution_versions.create(group, solution=sol.name)
    _set_status(platform, group, sol.name, v.name, "CREATE_IN_PROGRESS")  # as if Ray ran it

    for delete in (lambda: client.solutions.delete(group, sol.name),
                   lambda: client.dataset_groups.delete(group, force=True)):
        with pytest.raises(ConflictError) as e:
            delete()
        assert v.name in e.value.message and "training" in e.value.message, e.value.message
    stopping = client.solution_versions.stop(group, sol.name, v.name)
    assert stopping.status == Status.CREATE_STOPPING
    assert client.solution_versions.stop(group, sol.name, v.name).status == Status.CREATE_STOPPING
    with pytest.raises(ConflictError):  # still stopping: the job has not let go yet
        client.solutions.delete(group, sol.name)

    _set_status(platform, group, sol.name, v.name, "CREATE_STOPPED")  # the job stopped
    stopped = client.solution_versions.retrieve(group, sol.name, v.name)
    assert stopped.status == Status.CREATE_STOPPED
    assert client.solution_versions.stop(group, sol.name, v.name).status == Status.CREATE_STOPPED
    client.solutions.delete(group, sol.name)
    client.dataset_groups.delete(group, force=True)
    with pytest.raises(NotFoundError):
        client.dataset_groups.retrieve(group)


# ---- deletes ------------------------------------------------------------------------------------

def test_deleting_a_group_with_a_solution_needs_force(client: Client) -> None:
    group = unique()
    client.dataset_groups.create(group)
    sol = client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    with pytest.raises(ConflictError) as e:
        client.dataset_groups.delete(group)
    assert sol.name in e.value.message and "force" in e.value.message
    assert client.solutions.retrieve(group, sol.name) == sol

    client.dataset_groups.delete(group, force=True)
    with pytest.raises(NotFoundError):
        client.dataset_groups.retrieve(group)
    with pytest.raises(NotFoundError):
        client.solutions.retrieve(group, sol.name)
    # A new group of the same name starts empty.
    client.dataset_groups.create(group)
    assert client.solutions.list(group) == []


def test_force_deleting_a_trained_group_removes_its_versions(client: Client, tmp_path: Path) -> None:
    group = group_with_interactions(client, tmp_path, rows=1000)  # exactly the minimum trains
    sol = client.solutions.create(group, name=unique("sol"), recipe=RECIPE)
    v = client.solution_versions.create(group, solution=sol.name)
    assert_training_cannot_start(v)
    with pytest.raises(ConflictError):
        client.dataset_groups.delete(group)
    client.dataset_groups.delete(group, force=True)
    client.dataset_groups.create(group)
    client.solutions.create(group, name=sol.name, recipe=RECIPE)
    assert client.solution_versions.list(group, sol.name) == []
    with pytest.raises(NotFoundError):
        client.solution_versions.retrieve(group, sol.name, v.name)


def test_deleting_a_solution_removes_it_and_its_versions(client: Client, trainable_group: str) -> None:
    keep = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    v = client.solution_versions.create(trainable_group, solution=sol.name)
    client.solutions.delete(trainable_group, sol.name)
    with pytest.raises(NotFoundError) as e:
        client.solutions.retrieve(trainable_group, sol.name)
    assert e.value.error_type == "not_found" and sol.name in e.value.message
    with pytest.raises(NotFoundError):
        client.solution_versions.retrieve(trainable_group, sol.name, v.name)
    with pytest.raises(NotFoundError):
        client.solution_versions.list(trainable_group, sol.name)
    with pytest.raises(NotFoundError):
        client.solutions.delete(trainable_group, sol.name)
    names = {s.name for s in client.solutions.list(trainable_group)}
    assert keep.name in names and sol.name not in names
    # The name can be used again, without the old versions.
    again = client.solutions.create(trainable_group, name=sol.name, recipe=RECIPE,
                                    hyperparameters={"epochs": 7})
    assert again.hyperparameters["epochs"] == 7
    assert client.solution_versions.list(trainable_group, sol.name) == []


def test_another_tenant_sees_none_of_it(platform: Platform, client: Client, trainable_group: str) -> None:
    """Through the SDK too: B gets the 404 of a group that does not exist, and lists nothing."""
    sol = client.solutions.create(trainable_group, name=unique("sol"), recipe=RECIPE)
    v = client.solution_versions.create(trainable_group, solution=sol.name)
    with platform.client(platform.key_b) as b:
        for call in (lambda: b.solutions.retrieve(trainable_group, sol.name),
                     lambda: b.solutions.list(trainable_group),
                     lambda: b.solution_versions.retrieve(trainable_group, sol.name, v.name),
                     lambda: b.solution_versions.stop(trainable_group, sol.name, v.name),
                     lambda: b.solutions.delete(trainable_group, sol.name)):
            with pytest.raises(NotFoundError) as e:
                call()
            assert e.value.message == f"dataset group {trainable_group!r} not found"
        assert [r.id for r in b.recipes.list()] == list(RECIPE_IDS)
    assert client.solutions.retrieve(trainable_group, sol.name) == sol


def test_unauthenticated_recipes_are_401(platform: Platform) -> None:
    """Recipes are global, yet not public: no key, no recipe (nor a hint of which exist)."""
    for path in ("/v1/recipes", f"/v1/recipes/{RECIPE}", "/v1/recipes/gru4rec"):
        r = httpx.get(platform.url + path)
        assert r.status_code == 401, r.text
        assert json.loads(r.text)["error"]["type"] == "unauthenticated"
        assert r.content == httpx.get(platform.url + "/v1/recipes").content


# ---- deletes racing creates ---------------------------------------------------------------------

def _race(http: httpx.Client, delete: tuple[str, dict[str, Any]], creates: list[tuple[str, Any]],
          delay: float) -> tuple[int, list[int]]:
    """Fire `creates` (POST path, json) and one DELETE (path, params) released together, the
    delete `delay` s late; the statuses (0: the connection broke)."""
    barrier = threading.Barrier(len(creates) + 1)

    def send(method: str, path: str, **kw: Any) -> int:
        barrier.wait()
        try:
            return http.request(method, path, **kw).status_code
        except httpx.TransportError:
            return 0

    def delete_late() -> int:
        barrier.wait()
        time.sleep(delay)
        try:
            return http.delete(delete[0], params=delete[1]).status_code
        except httpx.TransportError:
            return 0

    with ThreadPoolExecutor(len(creates) + 1) as pool:
        made = [pool.submit(send, "POST", path, json=body) for path, body in creates]
        deleted = pool.submit(delete_late)
        return deleted.result(), [f.result() for f in made]


@pytest.fixture
def raw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.key_a}"},
                      timeout=30, limits=httpx.Limits(max_connections=32)) as http:
        yield http


def test_deleting_a_solution_while_versions_are_created(raw: httpx.Client, trainable_group: str) -> None:
    """No 5xx on either side, and a deleted solution keeps no version: the same name created
    again starts with none."""
    base = f"/v1/dataset-groups/{trainable_group}/solutions"
    problems = []
    for trial in range(10):
        name = unique("race")
        assert raw.post(base, json={"name": name, "recipe": RECIPE}).status_code == 201
        deleted, created = _race(raw, (f"{base}/{name}", {}),
                                 [(f"{base}/{name}/versions", {}) for _ in range(12)],
                                 delay=0.003 * (trial % 4))
        if deleted not in (204, 409) or set(created) - {201, 404}:
            problems.append(f"trial {trial}: delete {deleted}, version creates {sorted(created)}")
        for _ in range(50):  # the versions ended (training cannot start here): delete for good
            if raw.delete(f"{base}/{name}").status_code in (204, 404):
                break
            time.sleep(0.05)
        assert raw.post(base, json={"name": name, "recipe": RECIPE}).status_code == 201
        left = raw.get(f"{base}/{name}/versions").json()["items"]
        if left:
            problems.append(f"trial {trial}: solution {name} created again shows the deleted "
                            f"solution's versions {[v['name'] for v in left]}")
    assert not problems, "\n".join(problems)


def test_force_deleting_a_group_while_solutions_are_created(raw: httpx.Client) -> None:
    """No 5xx on either side, and a deleted group keeps no solution: the same name created again
    starts with none."""
    problems = []
    for trial in range(10):
        group = unique()
        assert raw.post("/v1/dataset-groups", json={"name": group}).status_code == 201
        base = f"/v1/dataset-groups/{group}"
        deleted, created = _race(raw, (base, {"force": "true"}),
                                 [(f"{base}/solutions", {"name": f"s{i}", "recipe": RECIPE})
                                  for i in range(12)],
                                 delay=0.003 * (trial % 4))
        if deleted != 204 or set(created) - {201, 404}:
            problems.append(f"trial {trial}: delete {deleted}, solution creates {sorted(created)}")
        for _ in range(5):  # finish a delete the race broke
            if raw.get(base).status_code == 404:
                break
            raw.delete(base, params={"force": "true"})
        assert raw.post("/v1/dataset-groups", json={"name": group}).status_code == 201
        left = raw.get(f"{base}/solutions").json()["items"]
        if left:
            problems.append(f"trial {trial}: group {group} created again shows the deleted group's "
                            f"solutions {[s['name'] for s in left]}")
    assert not problems, "\n".join(problems)
