"""The CLI in a new user's first hour (issue 9): what broke, run as a user runs it.

Real processes only: `tagrec` in a subprocess with stdout/stderr as pipes (so rich sees no
terminal, and no COLUMNS), the control plane it starts on 127.0.0.1, a local Ray cluster for the
one end-to-end quickstart. MovieLens folders are built in-test in the real ml-100k and ml-1m
formats (latin-1 titles, `::`-separated `.dat` files), small enough to train in seconds.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import INTERACTIONS_SCHEMA, free_port, unique
from tests.integration.test_cli import run

pytestmark = pytest.mark.integration

N_USERS, N_ITEMS, PER_USER = 60, 80, 25  # 1,500 ratings
GENRES = ("Action", "Comedy", "Drama", "Romance")
ML100K_GENRE_COLUMN = {"Action": 1, "Comedy": 5, "Drama": 8, "Romance": 14}  # of u.item's 19 flags
LONG_NAME = "g" + "x" * 62  # the longest valid name: 63 characters


def _env(home: Path) -> dict[str, str]:
    """A fresh tagrec home on free ports; no COLUMNS, so output is sized as in a real pipe."""
    e = {**os.environ, "TAGREC_HOME": str(home), "TAGREC_PORT": str(free_port()),
         "TAGREC_SERVE_PORT": str(free_port())}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE",
              "TAGREC_PLATFORM_ID", "COLUMNS", "LINES"):
        e.pop(k, None)
    return e


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: the last line of stderr, which must be one line."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines, "no error printed"
    return lines[-1]


def movielens_folder(root: Path, fmt: str, seed: int = 0) -> Path:
    """A MovieLens folder in the real `fmt` layout ("ml-100k" or "ml-1m"): 60 users rating 25 of
    80 movies each (users prefer one genre), latin-1 titles with bytes 0xba, 0xe9 and 0xf1."""
    rng = np.random.default_rng(seed)
    folder = root / fmt
    folder.mkdir(parents=True)
    genre_of = [i % len(GENRES) for i in range(N_ITEMS)]
    titles = [f"Película Nº {i + 1}, Señor (19{50 + i % 50})" for i in range(N_ITEMS)]
    ratings = []
    for u in range(N_USERS):
        liked = u % len(GENRES)
        weights = np.array([4.0 if g == liked else 1.0 for g in genre_of])
        items = rng.choice(N_ITEMS, size=PER_USER, replace=False, p=weights / weights.sum())
        start = 880_000_000 + u * 1_000
        ratings += [(u + 1, int(i) + 1, int(rng.integers(1, 6)), start + k * 60)
                    for k, i in enumerate(items)]
    if fmt == "ml-100k":
        rows = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings)
        flags = ["|".join("1" if c == ML100K_GENRE_COLUMN[GENRES[genre_of[i]]] else "0" for c in range(19))
                 for i in range(N_ITEMS)]
        movies = "".join(f"{i + 1}|{titles[i]}|01-Jan-1995||http://us.imdb.com/M/x?{i}|{flags[i]}\n"
                         for i in range(N_ITEMS))
        users = "".join(f"{u + 1}|{20 + u % 40}|{'MF'[u % 2]}|writer|0{u:04d}\n" for u in range(N_USERS))
        files = {"u.data": rows, "u.item": movies, "u.user": users}
    else:
        rows = "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ratings)
        movies = "".join(f"{i + 1}::{titles[i]}::{GENRES[genre_of[i]]}|Drama\n" for i in range(N_ITEMS))
        users = "".join(f"{u + 1}::{'MF'[u % 2]}::25::{u % 21}::0{u:04d}\n" for u in range(N_USERS))
        files = {"ratings.dat": rows, "movies.dat": movies, "users.dat": users}
    for name, text in files.items():
        (folder / name).write_bytes(text.encode("latin-1"))
    assert b"\xba" in (folder / ("u.item" if fmt == "ml-100k" else "movies.dat")).read_bytes()
    return folder


@pytest.fixture(scope="module")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A thread-executor platform whose store is given as a plain folder path (not the default)."""
    e = _env(tmp_path_factory.mktemp("tagrec-home"))
    store = tmp_path_factory.mktemp("elsewhere") / "store"
    run(e, "up", "--executor", "thread", "--store", str(store))
    yield e, store
    run(e, "down", check=False)


def test_up_takes_a_plain_store_path_and_tenants_default_to_the_running_store(
        platform_env: tuple[dict[str, str], Path]) -> None:
    env, store = platform_env
    status = json.loads(run(env, "status", "-o", "json").stdout)
    assert status["store"] == f"file://{store.resolve()}"

    created = run(env, "tenants", "create", "acme", "-o", "json")
    out = json.loads(created.stdout)
    assert out["store"] == status["store"] and status["store"] in created.stderr
    from sdk import Client

    with Client(base_url=status["url"], api_key=out["api_key"], start_local=False) as c:
        assert c.whoami() == "acme"  # the key works on the platform that runs
    assert "acme" in [t["tenant"] for t in json.loads(run(env, "tenants", "list", "-o", "json").stdout)]
    again = _error_line(run(env, "tenants", "create", "acme", check=False))
    assert "already exists" in again and status["store"] in again

    # Asking the running platform for another port or store says so instead of ignoring it.
    other = _error_line(run(env, "up", "--port", str(free_port()), check=False))
    assert status["url"] in other and "tagrec down" in other


def test_an_explicit_port_that_is_taken_is_an_error_a_default_one_is_replaced(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path / "home")
        error = _error_line(run(env, "up", "--executor", "thread", "--port", str(port), check=False))
        assert error.startswith("error: ") and f"port {port}" in error and "taken" in error
        error = _error_line(run({**env, "TAGREC_PORT": str(port)}, "up", "--executor", "thread",
                                check=False))
        assert f"TAGREC_PORT={port}" in error and "taken" in error
        assert run(env, "status", check=False).returncode == 3  # nothing was started

    env.pop("TAGREC_PORT")
    with socket.socket() as default:
        try:  # the default port, held here unless something else already holds it
            default.bind(("127.0.0.1", 8765))
            default.listen()
        except OSError:
            pass
        try:
            started = run(env, "up", "--executor", "thread", "-o", "json")
        finally:
            default.close()
        url = json.loads(started.stdout)["url"]
        new_port = int(url.rsplit(":", 1)[1])
        assert new_port != 8765
        assert f"port 8765 (the default for the control plane) is taken; the control plane uses port " \
               f"{new_port}" in started.stderr
        assert f"tagrec: started the local platform at {url}" in started.stderr
        run(env, "down")


def test_output_is_accepted_anywhere_and_errors_follow_it(
        platform_env: tuple[dict[str, str], Path]) -> None:
    env, _ = platform_env
    group = unique("out")
    assert json.loads(run(env, "dataset-groups", "create", group, "-o", "json").stdout)["name"] == group
    for args in (["dataset-groups", "list", "-o", "json"], ["dataset-groups", "-o", "json", "list"],
                 ["dataset-groups", "list", "--output=json"], ["-o", "json", "dataset-groups", "list"],
                 ["-o", "table", "dataset-groups", "list", "-o", "json"]):
        assert group in [g["name"] for g in json.loads(run(env, *args).stdout)], args

    missing = run(env, "dataset-groups", "describe", "nope", "-o", "json", check=False)
    assert missing.stdout == ""
    error = json.loads(_error_line(missing))["error"]
    assert (error["type"], error["status_code"], error["error_type"]) == ("NotFoundError", 404, "not_found")
    assert "nope" in error["message"]
    usage = json.loads(_error_line(run(env, "dataset-groups", "list", "-o", "json", "--bogus",
                                       check=False)))["error"]
    assert usage["type"] == "NoSuchOption" and "--bogus" in usage["message"]
    table = _error_line(run(env, "dataset-groups", "describe", "nope", check=False))
    assert table.startswith("error: ") and "not found" in table
    assert '{"error"' in run(env, "--help").stdout  # the JSON error format is documented
    run(env, "dataset-groups", "delete", group)


def test_tables_and_errors_are_whole_through_pipes(platform_env: tuple[dict[str, str], Path],
                                                   tmp_path: Path) -> None:
    env, _ = platform_env
    lines = run(env, "status").stdout.splitlines()
    status = json.loads(run(env, "status", "-o", "json").stdout)
    url = status["url"]
    assert any(url in line and status["store"] in line for line in lines), lines
    assert any(url in line for line in run(env, "up", "--executor", "thread").stdout.splitlines())

    created = run(env, "dataset-groups", "create", LONG_NAME, "--description", "words " * 30)
    assert any(LONG_NAME in line for line in created.stdout.splitlines()), created.stdout
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(INTERACTIONS_SCHEMA))
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                   + "".join(f"u{i % 5},i{i % 9},{1700000000 + i},click,1\n" for i in range(20)))
    job_name = "import-" + "y" * 56
    imported = run(env, "import", "file", str(csv), "-g", LONG_NAME, "-d", "interactions",
                   "--schema", str(schema), "--name", job_name)
    assert any(job_name in line for line in imported.stdout.splitlines()), imported.stdout
    listed = run(env, "import-jobs", "list", "-g", LONG_NAME).stdout
    assert any(job_name in line and "ACTIVE" in line for line in listed.splitlines()), listed

    missing = run(env, "import-jobs", "describe", "-g", LONG_NAME, "import-" + "z" * 56, check=False)
    assert missing.stderr.strip().count("\n") == 0, missing.stderr  # one line, however long
    assert LONG_NAME in missing.stderr or "z" * 56 in missing.stderr
    run(env, "dataset-groups", "delete", LONG_NAME, "--force")


def test_latest_without_an_active_version_is_a_clear_not_found(
        platform_env: tuple[dict[str, str], Path]) -> None:
    env, _ = platform_env
    group = unique("latest")
    run(env, "dataset-groups", "create", group)
    run(env, "solutions", "create", "-g", group, "-n", "s1", "-r", "hrnn-meta")
    for args in (["versions", "describe", "-g", group, "-s", "s1", "latest"],
                 ["campaigns", "create", "-g", group, "-n", "c1", "-s", "s1", "-v", "latest"]):
        error = _error_line(run(env, *args, check=False))
        assert "404 not_found" in error and "no ACTIVE version" in error and "s1" in error, error
    assert "latest" in run(env, "versions", "describe", "--help").stdout
    assert "latest" in run(env, "campaigns", "update", "--help").stdout
    run(env, "dataset-groups", "delete", group, "--force")


@pytest.mark.parametrize("fmt", ["ml-100k", "ml-1m"])
def test_quickstart_prepares_and_imports_movielens_folders(
        platform_env: tuple[dict[str, str], Path], tmp_path: Path, fmt: str) -> None:
    """The quickstart's data preparation on the two older layouts (it crashed there reading the
    converter's Parquet as CSV); training needs Ray, which this platform has not."""
    env, _ = platform_env
    folder = movielens_folder(tmp_path, fmt)
    group = unique("qs")
    proc = run(env, "-o", "json", "quickstart", "--data", f"movielens:{folder}", "--group", group,
               check=False)
    error = _error_line(proc)
    assert "codec" not in proc.stderr and "training runs on Ray" in error, proc.stderr
    rows = {d["kind"]: d["row_count"]
            for d in json.loads(run(env, "-o", "json", "datasets", "list", "-g", group).stdout)}
    assert rows == {"interactions": N_USERS * PER_USER, "items": N_ITEMS, "users": N_USERS}
    version = json.loads(run(env, "-o", "json", "versions", "list", "-g", group, "-s", "quickstart").stdout)
    assert f"tagrec: training version {version[0]['name']} of solution quickstart" in proc.stderr
    run(env, "dataset-groups", "delete", group, "--force")


def test_a_command_and_client_say_they_started_the_local_platform(tmp_path: Path) -> None:
    env = _env(tmp_path / "cli-home")
    try:
        proc = run(env, "dataset-groups", "list", "-o", "json")
        assert json.loads(proc.stdout) == []  # stdout stays parseable
        assert f"tagrec: started the local platform at http://127.0.0.1:{env['TAGREC_PORT']}" in proc.stderr
        assert "started" not in run(env, "dataset-groups", "list").stderr  # it runs now: said once
    finally:
        run(env, "down", check=False)

    env = _env(tmp_path / "sdk-home")
    code = "import sdk; c = sdk.Client(); print(c.whoami())"
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, text=True, capture_output=True,
                              timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "local\n"
        assert f"tagrec: started the local platform at http://127.0.0.1:{env['TAGREC_PORT']} (store " \
               f"file://" in proc.stderr
    finally:
        run(env, "down", check=False)


def _lines_with(text: str, *parts: str) -> list[str]:
    return [line for line in text.splitlines() if all(p in line for p in parts)]


def test_tables_keep_ids_and_names_whole_in_80_columns(platform_env: tuple[dict[str, str], Path],
                                                       tmp_path: Path) -> None:
    """Through a pipe (80 columns) ids, tasks, names and statuses are never cut with "…"; only prose
    columns (a paper, a description, a failure reason) wrap."""
    env, _ = platform_env
    recipes = json.loads(run(env, "-o", "json", "recipes", "list").stdout)
    table = run(env, "recipes", "list").stdout
    assert "…" not in table, table
    for r in recipes:
        assert _lines_with(table, f" {r['id']} ", f" {r['task']} "), (r["id"], table)

    for r in recipes:  # describe: every hyperparameter with its bounds, whole
        described = run(env, "recipes", "describe", r["id"]).stdout
        assert "…" not in described and "{'" not in described, described
        for name in r["hyperparameters"]["properties"]:
            assert _lines_with(described, f" {name} "), (r["id"], name, described)

    group = unique("tbl")
    run(env, "dataset-groups", "create", group)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(INTERACTIONS_SCHEMA))
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp,event_type,event_value\n"  # enough data to train
                   + "".join(f"u{i % 60},i{i % 83},{1700000000 + i},click,1\n" for i in range(1200)))
    run(env, "import", "file", str(csv), "-g", group, "-d", "interactions", "--schema", str(schema))
    solution = "s-" + "w" * 40
    run(env, "solutions", "create", "-g", group, "-n", solution, "-r", "hrnn-meta")
    listed = run(env, "solutions", "list", "-g", group).stdout
    assert _lines_with(listed, solution, "hrnn-meta", "ACTIVE"), listed
    run(env, "versions", "create", "-g", group, "-s", solution, check=False)  # fails: no Ray here
    version = json.loads(run(env, "-o", "json", "versions", "list", "-g", group, "-s", solution).stdout)[0]
    listed = run(env, "versions", "list", "-g", group, "-s", solution).stdout
    assert _lines_with(listed, version["name"], "CREATE_FAILED"), listed
    assert "training runs on Ray" in version["failure_reason"]
    for word in version["failure_reason"].split():  # the prose column wraps at spaces, no word is cut
        assert word in listed, (word, listed)
    run(env, "dataset-groups", "delete", group, "--force")


def test_recipes_describe_shows_bounds_and_allowed_values(platform_env: tuple[dict[str, str], Path]) -> None:
    env, _ = platform_env
    table = run(env, "recipes", "describe", "hrnn-meta").stdout
    assert _lines_with(table, " hidden_size ", " integer ", " 43 ", " 1 ", " 4096 "), table
    assert _lines_with(table, " learning_rate ", " 0.01 ", " > 0.0 ", " 10.0 "), table  # exclusive bound
    assert _lines_with(table, " dropout ", " 0.0 ", " < 1.0 "), table
    assert _lines_with(table, " lambda_sampling ", "one of uniform, fixed", " uniform "), table
    assert _lines_with(table, " trend_bias ", " boolean ", " false "), table
    assert "required datasets: interactions (USER_ID, ITEM_ID, TIMESTAMP)" in table
    tags = run(env, "recipes", "describe", "tag-popularity").stdout
    assert _lines_with(tags, " half_life_days ", "number or null", " null ", " > 0 ", " 36500 "), tags


def test_schema_errors_name_the_problem_in_plain_words(platform_env: tuple[dict[str, str], Path],
                                                       tmp_path: Path) -> None:
    env, _ = platform_env
    group = unique("schema")
    no_time = tmp_path / "no-time.json"
    no_time.write_text(json.dumps({"fields": [f for f in INTERACTIONS_SCHEMA["fields"]
                                              if f["role"] != "TIMESTAMP"]}))
    for args in (["datasets", "create", "-g", group, "-k", "interactions", "--schema", str(no_time)],
                 ["import", "file", str(tmp_path / "x.csv"), "-g", group, "-d", "interactions",
                  "--schema", str(no_time)]):
        assert _error_line(run(env, *args, check=False)) == \
            f"error: schema {no_time}: an interactions schema needs a field with role TIMESTAMP"
    only_user = _write(tmp_path / "user.json", [{"name": "user_id", "type": "string", "role": "USER_ID"}])
    only_item = _write(tmp_path / "item.json", [{"name": "item_id", "type": "string", "role": "ITEM_ID"}])
    for kind, schema, said in (("items", only_user, "an items schema needs a field with role ITEM_ID"),
                               ("users", only_item, "a users schema needs a field with role USER_ID")):
        error = _error_line(run(env, "datasets", "create", "-g", group, "-k", kind, "--schema", str(schema),
                                check=False))
        assert error == f"error: schema {schema}: {said}", error

    broken = tmp_path / "broken.json"
    broken.write_text('{"fields": [{"name": "user_id", }]}')
    error = _error_line(run(env, "datasets", "create", "-g", group, "-k", "interactions", "--schema",
                            str(broken), check=False))
    assert error.startswith(f"error: schema {broken}: not valid JSON: ") and "line 1 column" in error, error
    assert not error.replace("(see:", "").rstrip(") ").endswith(" at"), error

    typo = _write(tmp_path / "typo.json", [{"name": "user_id", "type": "strng", "role": "USER_ID"}])
    error = _error_line(run(env, "datasets", "create", "-g", group, "-k", "users", "--schema", str(typo),
                            check=False))
    assert error.startswith(f"error: schema {typo}: field 'user_id' (type): Input should be 'string'"), error
    assert error.endswith("(got 'strng')"), error
    for e in (error, *(_error_line(run(env, "datasets", "create", "-g", group, "-k", "interactions",
                                       "--schema", str(f), check=False)) for f in (no_time, broken))):
        assert not re.search(r"Schema\(|SchemaField\(|DatasetCreate|Value error|\{'", e), e


def _write(path: Path, fields: list[dict[str, str]]) -> Path:
    path.write_text(json.dumps({"fields": fields}))
    return path


def test_server_errors_say_the_cli_flag_and_name_the_field_once(
        platform_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, _ = platform_env
    group = unique("errs")
    schema = _write(tmp_path / "s.json", INTERACTIONS_SCHEMA["fields"])
    run(env, "dataset-groups", "create", group)
    run(env, "datasets", "create", "-g", group, "-k", "interactions", "--schema", str(schema))
    error = _error_line(run(env, "dataset-groups", "delete", group, check=False))
    assert "409 conflict" in error and "pass --force" in error and "force=true" not in error, error
    as_json = json.loads(_error_line(run(env, "dataset-groups", "delete", group, "-o", "json", check=False)))
    assert "pass --force" in as_json["error"]["message"] and as_json["error"]["status_code"] == 409

    error = _error_line(run(env, "solutions", "create", "-g", group, "-n", "s", "-r", "hrnn-meta",
                            "--set", "epochs=0", check=False))
    assert error.count("hyperparameters.epochs") == 1 and "(got 0)" in error, error
    assert error.startswith("error: 400 invalid_input: hyperparameters.epochs: "), error
    run(env, "dataset-groups", "delete", group, "--force")


def test_import_progress_is_whole_lines_and_latest_is_the_newest_job(
        platform_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    """stderr is a pipe: no live bar cut to 80 columns, but a whole line per status change."""
    env, _ = platform_env
    group = unique("prog")
    schema = _write(tmp_path / "s.json", INTERACTIONS_SCHEMA["fields"])
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                   + "".join(f"u{i % 5},i{i % 9},{1700000000 + i},click,1\n" for i in range(20)))
    names = ["import-first-" + "a" * 40, "import-second-" + "b" * 40]
    for name in names:
        proc = run(env, "import", "file", str(csv), "-g", group, "-d", "interactions", "--schema",
                   str(schema), "--name", name)
        assert f"tagrec: import {name} (interactions): ACTIVE, 20 rows, {csv.stat().st_size:,} bytes read" \
            in proc.stderr.splitlines(), proc.stderr
        assert "…" not in proc.stderr and "━" not in proc.stderr, proc.stderr
    latest = json.loads(run(env, "-o", "json", "import-jobs", "describe", "-g", group, "latest").stdout)
    assert latest["name"] == names[1]
    assert _lines_with(run(env, "import-jobs", "describe", "-g", group, "latest").stdout, names[1], "ACTIVE")
    assert "latest" in run(env, "import-jobs", "describe", "--help").stdout
    run(env, "dataset-groups", "delete", group, "--force")


def test_tag_verbs_exist_and_tag_recipes_get_their_own_protocol(
        platform_env: tuple[dict[str, str], Path]) -> None:
    """The campaign verbs of the tag tasks (answered on Ray in the slow test below), and a tag
    recipe's solution created without --evaluation (it was sent next-item's temporal-holdout)."""
    env, _ = platform_env
    group = unique("tagv")
    run(env, "dataset-groups", "create", group)
    for args in (["recommend-tags", "-u", "u1", "--item", "i1"], ["generate-tags", "--text", "a post"],
                 ["next-tags", "--session", "s1", "--organisation", "bank", "--tag", "card", "--tag", "pin"]):
        error = _error_line(run(env, "campaigns", args[0], "-g", group, "helpdesk", *args[1:], check=False))
        assert "404 not_found" in error and "helpdesk" in error, (args, error)
    usage = _error_line(run(env, "campaigns", "generate-tags", "-g", group, "helpdesk", check=False))
    assert "--text" in usage and "--item" in usage, usage
    sol = json.loads(run(env, "-o", "json", "solutions", "create", "-g", group, "-n", "profiles",
                         "-r", "tag-popularity").stdout)
    assert sol["recipe"] == "tag-popularity"
    run(env, "dataset-groups", "delete", group, "--force")


def test_metrics_table_marks_lower_is_better_and_formats_numbers() -> None:
    from rich.console import Console

    from sdk import SolutionVersion
    from tagrec.cli import _metrics_table, _number

    v = SolutionVersion.model_validate({
        "name": "v1", "status": "ACTIVE", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "dataset_group": "g", "solution": "s", "recipe": "hrnn-meta",
        "metrics": {"ndcg@10": 0.123456, "perplexity": 1234.5678},
        "baselines": {"popularity": {"ndcg@10": 0.1, "perplexity": 1170.0}},
        "lift": {"ndcg@10": 1.23456, "perplexity": 0.9477}})
    console = Console(width=200, record=True)
    console.print(_metrics_table(v))
    text = console.export_text()
    assert _lines_with(text, "perplexity (lower is better)", "1,234.6", "1,170.0", "0.95x"), text
    assert _lines_with(text, "ndcg@10 ", "0.1235", "0.1000", "1.23x"), text
    assert "lift above 1x: hrnn-meta beats popularity (a lower-is-better metric's lift is popularity ÷ " \
        "model)" in " ".join(text.split())
    assert [_number(x) for x in (None, 0.0, 0.00001234, 3, -2.5)] == \
        ["-", "0.0000", "1.23e-05", "3", "-2.5000"]


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A platform with the Ray executor (training and campaigns), started as `make demo` does."""
    env = _env(tmp_path_factory.mktemp("ray-home"))
    try:
        run(env, "up")
        yield env
    finally:
        run(env, "down", check=False)


@pytest.mark.slow
def test_quickstart_on_ml1m_trains_deploys_and_latest_names_the_version(ray_env: dict[str, str],
                                                                        tmp_path: Path) -> None:
    """`make demo`'s path (table output) on an ml-1m folder, on a Ray platform; then `latest`."""
    env = ray_env
    folder = movielens_folder(tmp_path, "ml-1m")
    proc = run(env, "quickstart", "--data", f"movielens:{folder}", "--group", "qs-ml1m", "--keep",
               "--set", "epochs=2", "--set", "hidden_size=8", "--set", "item_embedding_dim=8",
               "--set", "bptt=8", "--set", "burn_in=4")
    started = re.search(r"tagrec: training version (\S+) of solution quickstart", proc.stderr)
    assert started, proc.stderr
    name = started.group(1)
    assert f"hrnn-meta (next-item) version {name}:" in proc.stdout and "ndcg@10" in proc.stdout, proc.stdout
    assert "deploying campaign quickstart" in proc.stderr
    assert "latency over 100 sequential requests" in proc.stdout, proc.stdout
    # stderr is a pipe: whole progress lines (one per phase or epoch), never a bar cut at 80 columns
    assert "━" not in proc.stderr and not [line for line in proc.stderr.splitlines()
                                           if line.startswith("tagrec: ") and "…" in line], proc.stderr
    for epoch in (1, 2):
        assert any(line.startswith(f"tagrec: training {name}: ") and f"epoch {epoch}/2" in line
                   for line in proc.stderr.splitlines()), proc.stderr
    assert "tagrec: deploying campaign quickstart: ACTIVE, version " + name in proc.stderr
    assert "perplexity (lower is better)" in proc.stdout and "lift above 1x" in proc.stdout
    timings = [line for line in proc.stdout.splitlines() if line.startswith("timings: ")]
    assert len(timings) == 1 and "{" not in timings[0], proc.stdout
    pairs = dict(pair.split("=") for pair in timings[0].removeprefix("timings: ").split())
    assert {"connect_s", "import_s", "train_s", "deploy_s"} <= set(pairs), pairs
    assert any(k.startswith("version.") for k in pairs) and all(float(v) >= 0 for v in pairs.values())

    latest = json.loads(run(env, "versions", "describe", "-g", "qs-ml1m", "-s", "quickstart",
                            "latest", "-o", "json").stdout)
    assert (latest["name"], latest["status"]) == (name, "ACTIVE")
    updated = run(env, "campaigns", "update", "-g", "qs-ml1m", "quickstart", "-v", "latest")
    assert "deploying campaign quickstart" in updated.stderr
    assert any(name in line and "ACTIVE" in line for line in updated.stdout.splitlines()), updated.stdout
    from sdk import Client

    status = json.loads(run(env, "status", "-o", "json").stdout)
    with Client(base_url=status["url"], api_key=_api_key(env), start_local=False) as c:
        assert c.solution_versions.resolve("qs-ml1m", "quickstart", "latest") == name
        assert c.campaigns.retrieve("qs-ml1m", "quickstart").solution_version == name
    run(env, "dataset-groups", "delete", "qs-ml1m", "--force")


def _api_key(env: dict[str, str]) -> str:
    return (Path(env["TAGREC_HOME"]) / "credentials").read_text().split("api_key = ")[1].split()[0]


@pytest.mark.slow
def test_recommend_tags_from_the_cli_and_by_http_as_the_readme_says(ray_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    """A user-tags campaign built with the CLI alone (no --evaluation: the recipe's protocol),
    asked with `campaigns recommend-tags`, then POSTed to directly as README's curl does."""
    import httpx
    import pyarrow.parquet as pq

    from tests.unit.test_user_item_tags import SCHEMA, hetrec_like

    env, group = ray_env, unique("tags")
    table = hetrec_like(seed=7, n_users=100, n_items=60, n_events=2500)
    pq.write_table(table, tmp_path / "tags.parquet")
    (tmp_path / "schema.json").write_text(SCHEMA.model_dump_json())
    run(env, "import", "file", str(tmp_path / "tags.parquet"), "-g", group, "-d", "interactions",
        "--schema", str(tmp_path / "schema.json"))
    run(env, "solutions", "create", "-g", group, "-n", "profiles", "-r", "tag-popularity")
    trained = run(env, "versions", "create", "-g", group, "-s", "profiles")
    version = re.search(r"tagrec: training version (\S+) of solution profiles", trained.stderr)
    assert version and f"tagrec: training {version.group(1)}: ACTIVE" in trained.stderr, trained.stderr
    assert "…" not in trained.stderr and "precision@" in trained.stdout, trained.stdout
    run(env, "campaigns", "create", "-g", group, "-n", "profiles", "-s", "profiles", "-v", "latest")
    campaign = json.loads(run(env, "-o", "json", "campaigns", "describe", "-g", group, "profiles").stdout)
    assert _lines_with(run(env, "campaigns", "list", "-g", group).stdout, campaign["endpoint"], "ACTIVE")

    user = table.column("user_id")[0].as_py()
    answer = json.loads(run(env, "-o", "json", "campaigns", "recommend-tags", "-g", group, "profiles",
                            "-u", user, "-k", "5").stdout)
    assert len(answer["tags"]) == 5 and answer["fallback"] is False
    shown = run(env, "campaigns", "recommend-tags", "-g", group, "profiles", "-u", user, "-k", "5")
    for tag in answer["tags"]:
        assert _lines_with(shown.stdout, f" {tag['tag']} "), shown.stdout
    assert f"version {campaign['solution_version']}" in shown.stderr
    unknown = run(env, "campaigns", "recommend-tags", "-g", group, "profiles", "-u", "nobody-at-all")
    assert "fallback" in unknown.stderr, unknown.stderr
    wrong = _error_line(run(env, "campaigns", "generate-tags", "-g", group, "profiles", "--text", "x",
                            check=False))
    assert "wrong_task" in wrong, wrong

    direct = httpx.post(f"{campaign['endpoint']}/recommend-tags", timeout=30,
                        headers={"Authorization": f"Bearer {_api_key(env)}"},
                        json={"user_id": user, "num_results": 5})
    assert direct.status_code == 200, direct.text
    assert direct.json()["tags"] == answer["tags"]
    run(env, "campaigns", "delete", "-g", group, "profiles")
    run(env, "dataset-groups", "delete", group, "--force")
