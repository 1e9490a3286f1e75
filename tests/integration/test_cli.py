"""The `tagrec` CLI as a user runs it: real processes, a local platform on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recipes import RECIPE_IDS
from tests.conftest import INTERACTIONS_SCHEMA, SHARED_DATA, Platform, free_port

pytestmark = pytest.mark.integration


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tagrec.cli", *args], env=env, text=True,
                          capture_output=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tagrec {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def platform_env(platform: Platform, home: Path) -> dict[str, str]:
    """The CLI's environment for a running test platform (tenant A's key) and a fresh home."""
    e = {**os.environ, "TAGREC_HOME": str(home), "TAGREC_BASE_URL": platform.url,
         "TAGREC_API_KEY": platform.key_a, "COLUMNS": "200"}
    for k in ("TAGREC_PROFILE", "TAGREC_STORE", "TAGREC_PLATFORM_ID"):
        e.pop(k, None)
    return e


def table_rows(stdout: str, *cells: str) -> list[int]:
    """The line numbers of a printed table's rows holding each of `cells` as a whole cell, in order
    (-1 for a cell no row holds)."""
    lines = stdout.splitlines()
    return [next((n for n, line in enumerate(lines) if f" {cell} " in line), -1) for cell in cells]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("tagrec-home")
    e = {**os.environ, "TAGREC_HOME": str(home), "TAGREC_PORT": str(free_port()),
         "COLUMNS": "200"}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE"):
        e.pop(k, None)
    run(e, "up", "--executor", "thread")
    yield e
    run(e, "down", check=False)


def test_up_writes_credentials_and_status(env: dict[str, str]) -> None:
    creds = Path(env["TAGREC_HOME"]) / "credentials"
    assert "api_key = tgr_" in creds.read_text()
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    status = json.loads(run(env, "-o", "json", "status").stdout)
    assert status["status"] == "running" and status["url"].startswith("http://127.0.0.1:")
    # A second `up` finds the running platform instead of starting another.
    again = json.loads(run(env, "-o", "json", "up", "--executor", "thread").stdout)
    assert again["pid"] == status["pid"]


def test_dataset_groups_and_errors(env: dict[str, str]) -> None:
    created = json.loads(run(env, "-o", "json", "dataset-groups", "create", "shop",
                             "--description", "my shop").stdout)
    assert created["name"] == "shop" and created["status"] == "ACTIVE"
    names = [g["name"] for g in json.loads(run(env, "-o", "json", "dataset-groups", "list").stdout)]
    assert "shop" in names
    table = run(env, "dataset-groups", "describe", "shop").stdout
    assert "shop" in table and "ACTIVE" in table

    dup = run(env, "dataset-groups", "create", "shop", check=False)
    assert dup.returncode != 0
    assert dup.stderr.strip().count("\n") == 0, dup.stderr  # one line
    assert "already exists" in dup.stderr
    bad = run(env, "dataset-groups", "create", "../etc", check=False)
    assert bad.returncode != 0 and "name" in bad.stderr
    missing = run(env, "dataset-groups", "describe", "nope", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr
    run(env, "dataset-groups", "delete", "shop")


def test_import_file_with_schema_then_failure(env: dict[str, str], tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(INTERACTIONS_SCHEMA))
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                   + "".join(f"u{i % 5},i{i % 9},{1700000000 + i},click,1\n" for i in range(40)))
    job = json.loads(run(env, "-o", "json", "import", "file", str(csv), "--group", "cli-g",
                         "--dataset", "interactions", "--schema", str(schema)).stdout)
    assert job["status"] == "ACTIVE" and job["progress"]["rows"] == 40
    ds = json.loads(run(env, "-o", "json", "datasets", "describe", "-g", "cli-g",
                        "-k", "interactions").stdout)
    assert ds["row_count"] == 40

    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,i1,1700000000\n")
    failed = run(env, "import", "file", str(bad), "--group", "cli-g", "--dataset", "interactions",
                 check=False)
    assert failed.returncode != 0
    assert "event_type" in failed.stderr and "missing" in failed.stderr
    jobs = json.loads(run(env, "-o", "json", "import-jobs", "list", "-g", "cli-g").stdout)
    assert sorted(j["status"] for j in jobs) == ["ACTIVE", "CREATE_FAILED"]
    run(env, "dataset-groups", "delete", "cli-g", "--force")


def test_quickstart_imports_then_needs_ray_to_train(env: dict[str, str]) -> None:
    """The quickstart trains a version, and training runs on Ray: on this thread-executor
    platform it imports the data, then stops with a one-line error saying so (training with
    metrics is tested on Ray in test_versions_ray.py)."""
    proc = run(env, "-o", "json", "quickstart", "--group", "qs", check=False)
    assert proc.returncode != 0
    said, error = proc.stderr.strip().splitlines()  # the version it trains, then one error
    assert said.startswith("tagrec: training version ")
    assert "training runs on Ray" in json.loads(error)["error"]["message"]
    datasets = json.loads(run(env, "-o", "json", "datasets", "list", "-g", "qs").stdout)
    rows = {d["kind"]: d["row_count"] for d in datasets}
    assert set(rows) == {"interactions", "items", "users"} and rows["interactions"] == 20_000
    versions = json.loads(run(env, "-o", "json", "versions", "list", "-g", "qs",
                              "-s", "quickstart").stdout)
    assert [v["status"] for v in versions] == ["CREATE_FAILED"]
    run(env, "dataset-groups", "delete", "qs", "--force")


def test_recipes(env: dict[str, str]) -> None:
    recipes = json.loads(run(env, "-o", "json", "recipes", "list").stdout)
    assert [r["id"] for r in recipes] == list(RECIPE_IDS) and "hrnn-meta" in RECIPE_IDS
    info = json.loads(run(env, "-o", "json", "recipes", "describe", "hrnn-meta").stdout)
    assert info["required_datasets"] == {"interactions": ["USER_ID", "ITEM_ID", "TIMESTAMP"]}
    assert (info["defaults"]["hidden_size"], info["defaults"]["bptt"]) == (43, 32)
    table = run(env, "recipes", "describe", "hrnn-meta").stdout
    assert "hidden_size" in table and "43" in table and "GRU hidden-state size" in table
    missing = run(env, "recipes", "describe", "gru4rec", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr and "hrnn-meta" in missing.stderr


def test_solutions_and_their_errors(env: dict[str, str]) -> None:
    run(env, "dataset-groups", "create", "sol-g")
    create = ("solutions", "create", "-g", "sol-g", "-n")
    sol = json.loads(run(env, "-o", "json", *create, "s1", "-r", "hrnn-meta", "--set", "epochs=2",
                         "--set", "trend_bias=true", "--set", "lambda_sampling=fixed",
                         "--workers", "2").stdout)
    assert (sol["name"], sol["recipe"], sol["status"]) == ("s1", "hrnn-meta", "ACTIVE")
    hp = sol["hyperparameters"]
    assert (hp["epochs"], hp["trend_bias"], hp["lambda_sampling"], hp["hidden_size"]) == \
        (2, True, "fixed", 43)
    assert sol["scaling"]["workers"] == 2

    for args, names in ((["-r", "hrnn-meta", "--set", "epochs=0"], "hyperparameters.epochs"),
                        (["-r", "hrnn-meta", "--set", "hidden_sz=3"], "hyperparameters.hidden_sz"),
                        (["-r", "hrnn-meta", "--workers", "0"], "scaling.workers"),
                        (["-r", "gru4rec"], "recipe"),
                        (["-r", "hrnn-meta", "--set", "epochs"], "KEY=VALUE")):
        bad = run(env, *create, "s2", *args, check=False)
        assert bad.returncode != 0, (args, bad.stdout)
        assert bad.stderr.strip().count("\n") == 0, bad.stderr  # one line
        assert names in bad.stderr, (args, bad.stderr)
    listed = json.loads(run(env, "-o", "json", "solutions", "list", "-g", "sol-g").stdout)
    assert [s["name"] for s in listed] == ["s1"]

    refused = run(env, "versions", "create", "-g", "sol-g", "-s", "s1", check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "insufficient_data" in refused.stderr and "interactions dataset" in refused.stderr
    assert json.loads(run(env, "-o", "json", "versions", "list", "-g", "sol-g", "-s", "s1").stdout) == []

    busy = run(env, "dataset-groups", "delete", "sol-g", check=False)
    assert busy.returncode != 0 and "solution s1" in busy.stderr and "force" in busy.stderr
    run(env, "solutions", "delete", "-g", "sol-g", "s1")
    run(env, "dataset-groups", "delete", "sol-g")


@pytest.mark.skipif(not (SHARED_DATA / "movielens-latest-small").exists(),
                    reason="../shared/data/movielens-latest-small is absent (licensed data, not in the repo)")
def test_import_movielens(env: dict[str, str]) -> None:
    jobs = json.loads(run(env, "-o", "json", "import", "movielens",
                          str(SHARED_DATA / "movielens-latest-small"), "--group", "ml").stdout)
    assert [j["progress"]["rows"] for j in jobs] == [100_836, 9_742]
    run(env, "dataset-groups", "delete", "ml", "--force")


def test_tenants_create(env: dict[str, str]) -> None:
    out = json.loads(run(env, "-o", "json", "tenants", "create", "acme").stdout)
    assert out["api_key"].startswith("tgr_")
    from sdk import Client

    url = json.loads(run(env, "-o", "json", "status").stdout)["url"]
    with Client(base_url=url, api_key=out["api_key"], start_local=False) as c:
        assert c.whoami() == "acme"
        assert c.dataset_groups.list() == []


@pytest.mark.slow
def test_client_without_arguments_starts_the_local_platform(tmp_path: Path) -> None:
    """`Client()` on a fresh machine: nothing configured, it starts the platform (Ray executor)."""
    env = {**os.environ, "TAGREC_HOME": str(tmp_path / "home"), "TAGREC_PORT": str(free_port())}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE"):
        env.pop(k, None)
    code = "import sdk; c = sdk.Client(); print(c.whoami()); print(list(c.dataset_groups.list()))"
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, text=True, capture_output=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["local", "[]"]
    finally:
        run(env, "down", check=False)
