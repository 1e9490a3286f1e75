"""The `tagrec` CLI as a user runs it: real processes, a local platform on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, SHARED_DATA, free_port

pytestmark = pytest.mark.integration


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tagrec.cli", *args], env=env, text=True,
                          capture_output=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tagrec {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


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


def test_quickstart_json(env: dict[str, str]) -> None:
    result = json.loads(run(env, "-o", "json", "quickstart", "--group", "qs").stdout)
    assert result["datasets"]["interactions"]["rows"] == 20_000
    assert set(result["datasets"]) == {"interactions", "items", "users"}
    assert result["timings"]["import_s"] > 0
    groups = json.loads(run(env, "-o", "json", "dataset-groups", "list").stdout)
    assert "qs" not in [g["name"] for g in groups]  # cleaned up


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
    code = "import sdk; c = sdk.Client(); print(c.whoami()); print(c.dataset_groups.list())"
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, text=True, capture_output=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["local", "[]"]
    finally:
        run(env, "down", check=False)
