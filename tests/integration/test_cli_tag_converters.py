"""`tagrec import hetrec` and `tagrec import stackexchange` through the CLI, on a thread-executor
platform on 127.0.0.1 (real processes, real imports into the store)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.test_cli import run
from tests.unit.test_hetrec import lastfm_2k
from tests.unit.test_stackexchange import kaggle_site, write_csv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("tagrec-home")
    e = {**os.environ, "TAGREC_HOME": str(home), "TAGREC_PORT": str(free_port()), "COLUMNS": "200"}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE"):
        e.pop(k, None)
    run(e, "up", "--executor", "thread")
    yield e
    run(e, "down", check=False)


def test_import_hetrec_and_stackexchange(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(env, "-o", "json", "import", "hetrec", str(lastfm_2k(tmp_path)), "--group", "tags")
    jobs = json.loads(proc.stdout)
    assert [(j["dataset"], j["status"], j["progress"]["rows"]) for j in jobs] == [
        ("interactions", "ACTIVE", 3), ("items", "ACTIVE", 3)]
    assert "user_taggedartists-timestamps.dat: 1 rows skipped" in proc.stderr
    inter = json.loads(run(env, "-o", "json", "datasets", "describe", "-g", "tags", "-k",
                           "interactions").stdout)
    fields = {f["name"]: (f["type"], f["role"]) for f in inter["schema"]["fields"]}
    assert fields["tags"] == ("categorical", "TAGS") and fields["event_type"] == ("string", "EVENT_TYPE")

    folder = tmp_path / "kaggle"
    kaggle_site(folder)
    write_csv(folder / "cooking.csv", ["id", "title", "content", "tags"],
              [["7", "Soft crust", "<p>How?</p>", "baking crust"]])
    write_csv(folder / "sample_submission.csv", ["id", "tags"], [["1", "physics"]])
    proc = run(env, "-o", "json", "import", "stackexchange", str(folder), "--group", "posts")
    assert [(j["dataset"], j["status"], j["progress"]["rows"]) for j in json.loads(proc.stdout)] == [
        ("items", "ACTIVE", 4)]
    assert "ignored (no title, body and tags columns): sample_submission.csv" in proc.stderr
    items = json.loads(run(env, "-o", "json", "datasets", "describe", "-g", "posts", "-k", "items").stdout)
    fields = {f["name"]: (f["type"], f["role"]) for f in items["schema"]["fields"]}
    assert fields == {"item_id": ("string", "ITEM_ID"), "title": ("text", None), "content": ("text", None),
                      "tags": ("categorical", "TAGS"), "site": ("categorical", None)}

    bad = run(env, "import", "hetrec", str(tmp_path / "kaggle"), "--group", "tags", check=False)
    assert bad.returncode != 0 and "not a HetRec 2011 folder" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0  # one line
    for group in ("tags", "posts"):
        run(env, "dataset-groups", "delete", group, "--force")
