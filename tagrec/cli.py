"""The `tagrec` command line: mirrors the SDK, plus the local platform and admin commands."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn, get_args

import click
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sdk import (
    BatchInferenceJob,
    Campaign,
    Client,
    DatasetImportJob,
    DatasetKind,
    EvaluationConfig,
    Schema,
    SolutionVersion,
    Status,
    TagrecError,
    TagsResponse,
)
from sdk.errors import APIStatusError, ConflictError, NotFoundError
from sdk.pagination import Listing
from sdk.types.common import describe_problem

__all__ = ["main", "cli"]

# soft_wrap: a line is never broken at the terminal's width (80 columns when piped).
console = Console(stderr=True, soft_wrap=True)  # progress and messages
out = Console(soft_wrap=True)  # results
# Table columns of free text, which may wrap; every other cell (ids, names, URLs, paths, statuses)
# is kept whole.
_PROSE_COLUMNS = frozenset({"description", "failure_reason", "last_update_failure", "hyperparameters",
                            "progress", "schema", "pending_update", "snapshots", "scaling", "evaluation",
                            "paper"})
VERSION_HELP = "A version name, or 'latest': the solution's newest ACTIVE version."


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (list, Listing)):
        return [_jsonable(v) for v in value]
    return value


def _json_output(ctx: click.Context) -> bool:
    return bool(ctx.obj.get("output") == "json")


def _print_json(data: Any) -> None:
    """Plain JSON on stdout: never wrapped nor coloured, so it parses."""
    click.echo(json.dumps(data, indent=2, default=str))


def _print_table(table: Table) -> None:
    """Print a table whose cells are never cut: a column not in `_PROSE_COLUMNS` is as wide as its
    widest cell, prose columns wrap (down to their longest word), and the table is printed wider
    than the terminal (80 columns when stdout is a pipe) when that does not fit."""
    wide = out.options.update_width(1 << 16)
    for column in table.columns:
        prose = str(column.header) in _PROSE_COLUMNS
        column.no_wrap, column.overflow = not prose, "fold"
        if not prose:
            column.min_width = max(Measurement.get(out, wide, cell).maximum
                                   for cell in [column.header, *column.cells])
    need = Measurement.get(out, wide, table).minimum
    (Console(width=need, soft_wrap=True) if need > out.width else out).print(table)


def _say(message: str) -> None:
    """A message for the person at the terminal, on stderr (stdout holds only results)."""
    click.echo(f"tagrec: {message}", err=True)


def _emit(ctx: click.Context, value: Any, columns: list[str]) -> None:
    """Print a resource or a list of them as JSON or a table."""
    data = _jsonable(value)
    if _json_output(ctx):
        _print_json(data)
        return
    rows = data if isinstance(data, list) else [data]
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    _print_table(table)


def _cell(value: Any) -> str:
    """A table cell: a mapping reads ``key=value, ...`` (unset keys left out; values as --set takes
    them), a list as JSON."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}"
                         for k, v in value.items() if v is not None) or "-"
    if isinstance(value, list):
        return json.dumps(value, default=str)
    return str(value)


def _client(ctx: click.Context) -> Client:
    if "client" not in ctx.obj:
        ctx.obj["client"] = Client(profile=ctx.obj["profile"])
    return ctx.obj["client"]


OUTPUT_HELP = ("table (default) or json, before or after the command; under json an error is a "
               "JSON object on stderr.")


def _set_output(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["output"] = value


class _TakesOutput:
    """Adds -o/--output to a command or group, so it is accepted anywhere (as in the AWS CLI)."""

    params: list[click.Parameter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--output", "-o"], type=click.Choice(["table", "json"]),
                                        default=None, expose_value=False, is_eager=True,
                                        callback=_set_output, help=OUTPUT_HELP))


class _Command(_TakesOutput, click.Command):
    pass


class _Group(_TakesOutput, click.Group):
    command_class = _Command
    group_class = type


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", default=None, help="Profile of the credentials file.")
@click.pass_context
def cli(ctx: click.Context, profile: str | None) -> None:
    """tagrec: a managed recommender platform. Datasets in, live recommendations out.

    \b
    Output: results go to stdout, as tables or, with -o json (before or after
    the command), as JSON. Errors go to stderr and exit non-zero: one line
    "error: ..." for tables, one JSON object {"error": {"type", "message"}}
    (plus "status_code", "error_type", "field" and "request_id" for a
    request the platform refused) under -o json.
    Commands that need the platform start the local one when none is
    configured, and say so on stderr.
    """
    ctx.ensure_object(dict)
    ctx.obj.setdefault("output", "table")
    ctx.obj["profile"] = profile


# ---- local platform ----
@cli.command()
@click.option("--store", default=None,
              help="Where the data live: a folder (a plain path means file://), file:///path or "
                   "s3://bucket/prefix (default: TAGREC_STORE, else ~/.tagrec/store).")
@click.option("--port", type=int, default=None,
              help="Port of the control plane on 127.0.0.1 (default: TAGREC_PORT, else 8765). A port "
                   "you name that is taken is an error; the default, if taken, is replaced by a free "
                   "port (said on stderr).")
@click.option("--executor", type=click.Choice(["ray", "thread"]), default="ray",
              help="Where jobs run: a local Ray cluster started on demand, or threads (imports only).")
@click.option("--ray-address", default=None, help="Run jobs and campaigns on an existing Ray cluster.")
@click.option("--serve-url", default=None,
              help="The campaigns' endpoint base users see, e.g. the HTTPS address in front of the "
                   "cluster's Serve proxy (default: http://127.0.0.1:TAGREC_SERVE_PORT, 8000).")
@click.pass_context
def up(ctx: click.Context, store: str | None, port: int | None, executor: str,
       ray_address: str | None, serve_url: str | None) -> None:
    """Start the local platform (control plane on 127.0.0.1) and write the local key."""
    from tagrec import local

    info = local.up(store_uri=store, port=port, executor=executor, ray_address=ray_address,
                    serve_url=serve_url, profile=ctx.obj["profile"] or "default", say=_say)
    _emit(ctx, info.__dict__, ["url", "pid", "store", "executor", "log"])


@cli.command()
def down() -> None:
    """Stop the local platform."""
    from tagrec import local

    console.print("stopped" if local.down() else "not running")


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show whether the local platform runs, and where."""
    from tagrec import local

    info = local.status()
    if info is None:
        console.print("not running")
        sys.exit(3)
    _emit(ctx, {**info.__dict__, "status": "running"}, ["status", "url", "pid", "store"])


# ---- tenants (admin: works on the store directly) ----
@cli.group()
def tenants() -> None:
    """Create tenants and API keys (administrators, on the store)."""


STORE_HELP = ("The platform's store: a folder, file:///path or s3://bucket/prefix (default: the "
              "running local platform's, else TAGREC_STORE, else ~/.tagrec/store).")


def _admin_store(store: str | None) -> Any:
    """The store the admin commands work on: `store`, else the running local platform's, else
    the default one (the choice is said on stderr)."""
    from store import Store, StoreConfig
    from tagrec import local

    if store:
        uri = local.normalize_store_uri(store)
    elif (running := local.status()) is not None:
        uri = running.store
        _say(f"using the store of the local platform at {running.url}: {uri}")
    else:
        uri = local.default_store_uri()
        _say(f"no local platform runs; using the default store {uri}")
    return Store(StoreConfig.from_env(uri))


@tenants.command("create")
@click.argument("name")
@click.option("--store", default=None, help=STORE_HELP)
@click.pass_context
def tenants_create(ctx: click.Context, name: str, store: str | None) -> None:
    """Create tenant NAME and print its first API key (shown once)."""
    from store import AlreadyExists
    from store.tenants import create_tenant

    st = _admin_store(store)
    try:
        key = create_tenant(st.registry, name)
    except AlreadyExists:
        raise click.ClickException(f"tenant {name!r} already exists in the store {st.config.uri}") from None
    _emit(ctx, {"tenant": name, "api_key": key, "store": st.config.uri}, ["tenant", "api_key", "store"])


@tenants.command("list")
@click.option("--store", default=None, help=STORE_HELP)
@click.pass_context
def tenants_list(ctx: click.Context, store: str | None) -> None:
    """List tenants."""
    from store.tenants import list_tenants

    names = list_tenants(_admin_store(store).registry)
    _emit(ctx, [{"tenant": n} for n in names], ["tenant"])


# ---- dataset groups ----
GROUP_COLUMNS = ["name", "status", "description", "created_at"]


@cli.group("dataset-groups")
def dataset_groups() -> None:
    """Dataset groups: the container of a tenant's datasets, solutions and campaigns."""


@dataset_groups.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.pass_context
def dg_create(ctx: click.Context, name: str, description: str) -> None:
    """Create a dataset group."""
    _emit(ctx, _client(ctx).dataset_groups.create(name, description=description), GROUP_COLUMNS)


@dataset_groups.command("list")
@click.pass_context
def dg_list(ctx: click.Context) -> None:
    """List dataset groups."""
    _emit(ctx, _client(ctx).dataset_groups.list(), GROUP_COLUMNS)


@dataset_groups.command("describe")
@click.argument("name")
@click.pass_context
def dg_describe(ctx: click.Context, name: str) -> None:
    """Show one dataset group."""
    _emit(ctx, _client(ctx).dataset_groups.retrieve(name), GROUP_COLUMNS)


@dataset_groups.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete its datasets.")
@click.pass_context
def dg_delete(ctx: click.Context, name: str, force: bool) -> None:
    """Delete a dataset group (refused while it has datasets, unless --force)."""
    try:
        _client(ctx).dataset_groups.delete(name, force=force)
    except ConflictError as e:  # the API's query parameter, said as this command's flag
        e.message = e.message.replace("pass force=true", "pass --force")
        raise
    console.print(f"deleted dataset group {name}")


# ---- datasets ----
DATASET_COLUMNS = ["dataset_group", "kind", "status", "row_count", "current_snapshot"]
KINDS = click.Choice([k.value for k in DatasetKind])


def _load_schema(path: str, kind: str) -> Schema:
    """The schema in the JSON file `path`, checked for a dataset of `kind`; an error names the
    file, the field and the problem."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise click.ClickException(f"schema {path}: not valid JSON: {e}") from None
    try:
        schema = Schema.model_validate(data)
        schema.check_kind(DatasetKind(kind))
    except ValidationError as e:
        loc = e.errors()[0]["loc"]
        where = None
        if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):  # name the field
            field = data["fields"][loc[1]]
            name = field.get("name") if isinstance(field, dict) else None
            where = f"field {name!r}" if isinstance(name, str) else f"fields[{loc[1]}]"
            where += f" ({'.'.join(map(str, loc[2:]))})" if loc[2:] else ""
        raise click.ClickException(f"schema {path}: {_validation_text(e, where)}") from None
    except ValueError as e:
        raise click.ClickException(f"schema {path}: {e}") from None
    return schema


def _validation_text(error: ValidationError, where: str | None = None) -> str:
    """The first problem of a pydantic error in plain words: ``field: problem (got value)``, with
    no Python repr of a model (a value is shown only when it is a short scalar)."""
    field, message = describe_problem(error.errors()[0], where=where)
    return message if where or field else message.removeprefix("request: ")


@cli.group()
def datasets() -> None:
    """Datasets (interactions, items, users) and their schemas."""


@datasets.command("create")
@click.option("--group", "-g", required=True)
@click.option("--kind", "-k", type=KINDS, required=True)
@click.option("--schema", "schema_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A JSON file: {\"fields\": [{\"name\", \"type\", \"role\"}, ...]}.")
@click.pass_context
def ds_create(ctx: click.Context, group: str, kind: str, schema_path: str) -> None:
    """Create a dataset with a schema."""
    ds = _client(ctx).datasets.create(group, kind=kind, schema=_load_schema(schema_path, kind))
    _emit(ctx, ds, DATASET_COLUMNS)


@datasets.command("list")
@click.option("--group", "-g", required=True)
@click.pass_context
def ds_list(ctx: click.Context, group: str) -> None:
    """List the datasets of a group."""
    _emit(ctx, _client(ctx).datasets.list(group), DATASET_COLUMNS)


@datasets.command("describe")
@click.option("--group", "-g", required=True)
@click.option("--kind", "-k", type=KINDS, required=True)
@click.pass_context
def ds_describe(ctx: click.Context, group: str, kind: str) -> None:
    """Show one dataset with its schema."""
    _emit(ctx, _client(ctx).datasets.retrieve(group, kind), DATASET_COLUMNS + ["schema"])


@datasets.command("delete")
@click.option("--group", "-g", required=True)
@click.option("--kind", "-k", type=KINDS, required=True)
@click.pass_context
def ds_delete(ctx: click.Context, group: str, kind: str) -> None:
    """Delete a dataset and its snapshots."""
    _client(ctx).datasets.delete(group, kind)
    console.print(f"deleted {kind} dataset of {group}")


# ---- import ----
JOB_COLUMNS = ["name", "dataset", "mode", "status", "failure_reason"]


class _Lines:
    """Progress on a stderr that is no terminal (a pipe, a log): a whole line each time its key
    (status, phase, epoch) changes, instead of a live bar that would be cut to 80 columns."""

    def __init__(self) -> None:
        self._key: Any = None

    def __call__(self, key: Any, line: str) -> None:
        if key != self._key:
            self._key = key
            _say(line)


def _wait_with_progress(client: Client, group: str, job: DatasetImportJob,
                        show: bool) -> DatasetImportJob:
    """Wait for an import job, drawing a progress bar on stderr (whole lines when not a terminal)."""
    if not show:
        return client.dataset_import_jobs.wait(group, job.name)
    if not console.is_terminal:
        said = _Lines()

        def line(j: DatasetImportJob) -> None:
            p = j.progress
            said(j.status, f"import {j.name} ({j.dataset.value}): {j.status.value}, {p.rows:,} rows, "
                           f"{p.bytes_read:,} bytes read")

        return client.dataset_import_jobs.wait(group, job.name, poll_interval=0.5, on_progress=line)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task(f"{job.dataset.value}", total=None, rows=0)

        def update(j: DatasetImportJob) -> None:
            p = j.progress
            bar.update(task, completed=p.bytes_read, total=p.bytes_total or None, rows=p.rows)

        done = client.dataset_import_jobs.wait(group, job.name, poll_interval=0.5,
                                               on_progress=update)
        bar.update(task, completed=done.progress.bytes_total or done.progress.bytes_read,
                   rows=done.progress.rows)
        return done


def _import_one(ctx: click.Context, group: str, kind: str, source: str, mode: str,
                schema: Schema | None, name: str | None = None) -> DatasetImportJob:
    client = _client(ctx)
    if schema is not None:
        try:
            existing = client.datasets.retrieve(group, kind).schema_
        except NotFoundError:
            client.datasets.create(group, kind=kind, schema=schema)
        else:
            if existing != schema:
                raise click.ClickException(
                    f"the {kind} dataset of {group!r} exists with another schema; delete it first "
                    f"(tagrec datasets delete -g {group} -k {kind}) or import without --schema")
    job = client.dataset_import_jobs.create(group, dataset=kind, source=source, mode=mode, name=name)
    return _wait_with_progress(client, group, job, not _json_output(ctx))


def _ensure_group(client: Client, group: str) -> None:
    try:
        client.dataset_groups.retrieve(group)
    except NotFoundError:
        client.dataset_groups.create(group)


@cli.group("import")
def import_() -> None:
    """Import data into datasets (each import is a job publishing a new snapshot)."""


@import_.command("file")
@click.argument("path")
@click.option("--group", "-g", required=True)
@click.option("--dataset", "-d", "kind", type=KINDS, required=True)
@click.option("--mode", type=click.Choice(["full", "incremental"]), default="full")
@click.option("--schema", "schema_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Create the dataset with this schema if it does not exist yet.")
@click.option("--name", default=None, help="Job name (default: import-<time>-<hex>).")
@click.pass_context
def import_file(ctx: click.Context, path: str, group: str, kind: str, mode: str,
                schema_path: str | None, name: str | None) -> None:
    """Import a CSV/Parquet PATH (local file or s3:// URI) into a dataset."""
    schema = _load_schema(schema_path, kind) if schema_path else None
    if schema is not None:
        _ensure_group(_client(ctx), group)
    _emit(ctx, _import_one(ctx, group, kind, path, mode, schema, name), JOB_COLUMNS)


@import_.command("movielens")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--group", "-g", required=True)
@click.option("--mode", type=click.Choice(["full", "incremental"]), default="full")
@click.pass_context
def import_movielens(ctx: click.Context, path: str, group: str, mode: str) -> None:
    """Convert a MovieLens folder (ml-100k, ml-1m, ml-latest) and import it into GROUP."""
    from sdk.movielens import convert

    with tempfile.TemporaryDirectory(prefix="tagrec-ml-") as tmp:
        data = convert(path, tmp)
        jobs = _import_all(ctx, group, data.paths, data.schemas, mode)
    _emit(ctx, jobs, JOB_COLUMNS)


@import_.command("hetrec")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--group", "-g", required=True)
@click.option("--mode", type=click.Choice(["full", "incremental"]), default="full")
@click.pass_context
def import_hetrec(ctx: click.Context, path: str, group: str, mode: str) -> None:
    """Convert a HetRec 2011 folder (movielens-2k, lastfm-2k, delicious-2k) and import it into GROUP."""
    from sdk.hetrec import convert

    with tempfile.TemporaryDirectory(prefix="tagrec-hetrec-") as tmp:
        data = convert(path, tmp)
        for name, rows in data.skipped_rows.items():
            _say(f"{name}: {rows:,} rows skipped (malformed, or an unknown tag)")
        jobs = _import_all(ctx, group, data.paths, data.schemas, mode)
    _emit(ctx, jobs, JOB_COLUMNS)


@import_.command("stackexchange")
@click.argument("path", type=click.Path(exists=True))
@click.option("--group", "-g", required=True)
@click.option("--mode", type=click.Choice(["full", "incremental"]), default="full")
@click.pass_context
def import_stackexchange(ctx: click.Context, path: str, group: str, mode: str) -> None:
    """Convert Stack Exchange questions (a CSV id,title,content,tags, or a folder of one CSV per
    site) into the items of GROUP."""
    from sdk.stackexchange import convert

    with tempfile.TemporaryDirectory(prefix="tagrec-se-") as tmp:
        data = convert(path, tmp)
        if data.ignored_files:
            _say(f"ignored (no title, body and tags columns): {', '.join(data.ignored_files)}")
        for name, rows in data.skipped_rows.items():
            _say(f"{name}: {rows:,} questions skipped (repeated id)")
        jobs = _import_all(ctx, group, data.paths, data.schemas, mode)
    _emit(ctx, jobs, JOB_COLUMNS)


@import_.command("intents")
@click.argument("path", type=click.Path(exists=True))
@click.option("--group", "-g", required=True)
@click.option("--sessions", "n_sessions", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Support sessions to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation.")
@click.option("--mode", type=click.Choice(["full", "incremental"]), default="full")
@click.pass_context
def import_intents(ctx: click.Context, path: str, group: str, n_sessions: int, seed: int,
                   mode: str) -> None:
    """Simulate support sessions from an intent corpus (clinc150, banking77, nlu-plus-plus, or a
    CSV organisation,intent,text) and import the questions and clicks into GROUP."""
    from sdk.intents import convert

    with tempfile.TemporaryDirectory(prefix="tagrec-intents-") as tmp:
        data = convert(path, tmp, n_sessions=n_sessions, seed=seed)
        s = data.stats
        _say(f"{data.format}: {s.questions:,} questions in {s.organisations} organisation(s), "
             f"{s.tags_per_question:.1f} tags per question; {s.sessions:,} sessions with "
             f"{s.tag_clicks_per_session:.2f} tag clicks and {s.questions_per_session:.2f} questions each")
        jobs = _import_all(ctx, group, data.paths, data.schemas, mode)
    _emit(ctx, jobs, JOB_COLUMNS)


def _import_all(ctx: click.Context, group: str, paths: dict[DatasetKind, Path],
                schemas: dict[DatasetKind, Schema], mode: str) -> list[DatasetImportJob]:
    _ensure_group(_client(ctx), group)
    return [_import_one(ctx, group, kind.value, str(p), mode, schemas[kind])
            for kind, p in paths.items()]


@cli.group("import-jobs")
def import_jobs() -> None:
    """Inspect import jobs."""


@import_jobs.command("list")
@click.option("--group", "-g", required=True)
@click.pass_context
def ij_list(ctx: click.Context, group: str) -> None:
    """List the import jobs of a group."""
    _emit(ctx, _client(ctx).dataset_import_jobs.list(group), JOB_COLUMNS)


@import_jobs.command("describe")
@click.option("--group", "-g", required=True)
@click.argument("name", metavar="NAME|latest")
@click.pass_context
def ij_describe(ctx: click.Context, group: str, name: str) -> None:
    """Show import job NAME, or 'latest': the group's newest job."""
    client = _client(ctx)
    if name == "latest":
        jobs = list(client.dataset_import_jobs.list(group))
        if not jobs:
            raise click.ClickException(f"dataset group {group!r} has no import job yet")
        job = max(jobs, key=lambda j: j.created_at)
    else:
        job = client.dataset_import_jobs.retrieve(group, name)
    _emit(ctx, job, JOB_COLUMNS + ["progress", "snapshot_id"])


# ---- recipes, solutions, versions ----
@cli.group()
def recipes() -> None:
    """The recommendation models a solution can train."""


@recipes.command("list")
@click.pass_context
def recipes_list(ctx: click.Context) -> None:
    """List the recipes."""
    _emit(ctx, _client(ctx).recipes.list(), ["id", "task", "paper"])


@recipes.command("describe")
@click.argument("recipe")
@click.pass_context
def recipes_describe(ctx: click.Context, recipe: str) -> None:
    """Show a recipe: required datasets and fields, hyperparameters with defaults."""
    info = _client(ctx).recipes.retrieve(recipe)
    if _json_output(ctx):
        _emit(ctx, info, [])
        return
    out.print(f"[bold]{info.id}[/bold] ({info.task}) — {info.paper}\n{info.description}")
    required, optional = (", ".join(f"{k} ({', '.join(roles)})" for k, roles in d.items()) or "none"
                          for d in (info.required_datasets, info.optional_datasets))
    out.print(f"required datasets: {required}; optional: {optional}")
    table = Table("hyperparameter", "type", "default", "min", "max", "description")
    for name, prop in info.hyperparameters.get("properties", {}).items():
        table.add_row(name, *_bounds(prop), prop.get("description", ""))
    _print_table(table)


def _bounds(prop: dict[str, Any]) -> tuple[str, str, str, str]:
    """A hyperparameter's JSON schema as (type or allowed values, default, min, max); an exclusive
    bound reads ``> 0``."""
    choices = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"] or [prop]
    kinds = [("one of " + ", ".join(map(str, p["enum"]))) if "enum" in p else p.get("type", "any")
             for p in choices]
    if len(choices) < len(prop.get("anyOf", [])):
        kinds.append("null")
    low = [f"{p['minimum']}" if "minimum" in p else f"> {p['exclusiveMinimum']}"
           for p in choices if "minimum" in p or "exclusiveMinimum" in p]
    high = [f"{p['maximum']}" if "maximum" in p else f"< {p['exclusiveMaximum']}"
            for p in choices if "maximum" in p or "exclusiveMaximum" in p]
    default = prop.get("default", "(required)")
    default = default if isinstance(default, str) else json.dumps(default)  # as --set takes it
    return " or ".join(kinds), default, " or ".join(low) or "-", " or ".join(high) or "-"


def _key_values(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, booleans), else a string."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=what)
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


EVALUATION_MODES = list(get_args(get_args(EvaluationConfig.model_fields["mode"].annotation)[0]))
SOLUTION_COLUMNS = ["name", "recipe", "status", "hyperparameters"]
VERSION_COLUMNS = ["name", "status", "progress", "failure_reason"]


@cli.group()
def solutions() -> None:
    """Solutions: a recipe with its hyperparameters, trained as versions."""


@solutions.command("create")
@click.option("--group", "-g", required=True)
@click.option("--name", "-n", required=True)
@click.option("--recipe", "-r", required=True, help="Recipe id (tagrec recipes list).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A hyperparameter (repeatable).")
@click.option("--workers", type=int, default=1, help="Ray Train workers.")
@click.option("--cpus-per-worker", type=float, default=1.0)
@click.option("--gpus-per-worker", type=float, default=0.0)
@click.option("--evaluation", "evaluation_mode", type=click.Choice(EVALUATION_MODES), default=None,
              help="How versions are evaluated offline (default: the recipe's task's first protocol).")
@click.pass_context
def sol_create(ctx: click.Context, group: str, name: str, recipe: str, sets: tuple[str, ...],
               workers: int, cpus_per_worker: float, gpus_per_worker: float,
               evaluation_mode: str | None) -> None:
    """Create a solution."""
    sol = _client(ctx).solutions.create(
        group, name=name, recipe=recipe, hyperparameters=_key_values(sets, "--set"),
        scaling={"workers": workers, "cpus_per_worker": cpus_per_worker,
                 "gpus_per_worker": gpus_per_worker},
        evaluation={"mode": evaluation_mode} if evaluation_mode else {})
    _emit(ctx, sol, SOLUTION_COLUMNS)


@solutions.command("list")
@click.option("--group", "-g", required=True)
@click.pass_context
def sol_list(ctx: click.Context, group: str) -> None:
    """List the solutions of a group."""
    _emit(ctx, _client(ctx).solutions.list(group), SOLUTION_COLUMNS)


@solutions.command("describe")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def sol_describe(ctx: click.Context, group: str, name: str) -> None:
    """Show one solution."""
    _emit(ctx, _client(ctx).solutions.retrieve(group, name), SOLUTION_COLUMNS + ["scaling", "evaluation"])


@solutions.command("delete")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def sol_delete(ctx: click.Context, group: str, name: str) -> None:
    """Delete a solution and its versions."""
    _client(ctx).solutions.delete(group, name)
    console.print(f"deleted solution {name}")


def _training_started(group: str, v: SolutionVersion) -> None:
    _say(f"training version {v.name} of solution {v.solution} "
         f"(follow it: tagrec versions wait -g {group} -s {v.solution} {v.name})")


def _wait_version(client: Client, group: str, version: SolutionVersion, show: bool) -> SolutionVersion:
    """Wait for a version, showing its phase, epoch and loss on stderr (a line per phase or epoch
    when not a terminal)."""
    if not show:
        return client.solution_versions.wait(group, version.solution, version.name)
    if not console.is_terminal:
        said = _Lines()

        def line(v: SolutionVersion) -> None:
            p = v.progress
            said((v.status, p.phase, p.epoch), f"training {v.name}: {v.status.value}, "
                                               f"{_training_info(p)}")

        return client.solution_versions.wait(group, version.solution, version.name,
                                             poll_interval=1.0, on_progress=line)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("epoch {task.completed:.0f}/{task.fields[epochs]} {task.fields[info]}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"training {version.name}", total=None, epochs="?", info="")

        def update(v: SolutionVersion) -> None:
            p = v.progress
            info = _training_info(p).partition(", ")[2]  # the bar shows the epoch itself
            bar.update(task, completed=p.epoch, total=p.epochs, epochs=p.epochs or "?", info=info)

        return client.solution_versions.wait(group, version.solution, version.name,
                                             poll_interval=1.0, on_progress=update)


def _training_info(p: Any) -> str:
    """``epoch 2/5, training, loss 0.1234, 19,478 events/s``."""
    info = f"epoch {p.epoch}/{p.epochs or '?'}, {p.phase}"
    info += f", loss {p.loss:.4f}" if p.loss is not None else ""
    return info + (f", {p.events_per_second:,.0f} events/s" if p.events_per_second else "")


# Metrics where a lower value is better; their lift is baseline / model, so above 1 is still better.
_LOWER_IS_BETTER = frozenset({"perplexity"})


def _metrics_table(v: SolutionVersion) -> Table:
    """Model vs baseline(s), one row per metric, with the lift over the first baseline."""
    baselines = v.baselines or {}
    table = Table("metric", v.recipe, *baselines, "lift")
    for key in sorted(v.metrics or {}, key=_metric_order):
        row = [_number(v.metrics[key])]
        row += [_number(b.get(key)) for b in baselines.values()]
        lift = (v.lift or {}).get(key)
        name = f"{key} (lower is better)" if key.rpartition(".")[2] in _LOWER_IS_BETTER else key
        table.add_row(name, *row, f"{lift:.2f}x" if lift is not None else "-")
    if baselines:
        first = next(iter(baselines))
        table.caption = (f"lift above 1x: {v.recipe} beats {first} (a lower-is-better metric's lift is "
                         f"{first} ÷ model)")
        table.caption_justify = "left"
    return table


def _number(value: float | None) -> str:
    """A score or metric: 4 decimals, thousands separated above 100, scientific when tiny."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.2e}" if 0 < abs(value) < 0.001 else f"{value:.4f}"


def _metric_order(key: str) -> tuple[int, int]:
    name, _, k = key.partition("@")
    order = ["ndcg", "precision", "recall", "hit", "mrr", "coverage", "perplexity"]
    return (order.index(name) if name in order else len(order), int(k) if k.isdigit() else 0)


@cli.group()
def versions() -> None:
    """Solution versions: training runs, with progress and offline metrics."""


@versions.command("create")
@click.option("--group", "-g", required=True)
@click.option("--solution", "-s", required=True)
@click.option("--wait/--no-wait", default=True, help="Wait for training, showing progress.")
@click.pass_context
def ver_create(ctx: click.Context, group: str, solution: str, wait: bool) -> None:
    """Train a new version of a solution on the current data."""
    client = _client(ctx)
    v = client.solution_versions.create(group, solution=solution)
    _training_started(group, v)
    if wait:
        v = _wait_version(client, group, v, not _json_output(ctx))
    _show_version(ctx, v)


def _show_version(ctx: click.Context, v: SolutionVersion) -> None:
    if _json_output(ctx) or not v.metrics:
        _emit(ctx, v, VERSION_COLUMNS)
        return
    _emit(ctx, v, ["name", "status", "snapshots"])
    _print_table(_metrics_table(v))
    if line := _training_summary(v):
        out.print(line)


def _training_summary(v: SolutionVersion) -> str:
    """``trained 5 epochs; best epoch 4 by validation mrr 0.2011 (300 cases); served: refitted on all
    the data for 4 epochs`` (empty for a version without epochs)."""
    t = v.training or {}
    if not t.get("epochs"):
        return ""
    parts = [f"trained {t['epochs']} epochs"]
    val = t.get("validation") or {}
    if val.get("skipped"):
        parts.append(val["skipped"])
    elif val.get("best_epoch"):
        stopped = ", stopped early" if val.get("stopped_early") else ""
        parts.append(f"best epoch {val['best_epoch']} by validation {val['metric']} "
                     f"{_number(val.get('best_score'))} ({val['cases']:,} cases){stopped}")
    if v.served_model == "all-data" and t.get("refit"):
        parts.append(f"served: refitted on all the data for {t['refit']['epochs']} epochs")
    return "; ".join(parts)


@versions.command("list")
@click.option("--group", "-g", required=True)
@click.option("--solution", "-s", required=True)
@click.pass_context
def ver_list(ctx: click.Context, group: str, solution: str) -> None:
    """List the versions of a solution, newest first."""
    _emit(ctx, _client(ctx).solution_versions.list(group, solution), VERSION_COLUMNS)


@versions.command("describe")
@click.option("--group", "-g", required=True)
@click.option("--solution", "-s", required=True)
@click.argument("version")
@click.pass_context
def ver_describe(ctx: click.Context, group: str, solution: str, version: str) -> None:
    """Show VERSION with its metrics next to the baselines.

    VERSION is a version name, or 'latest': the solution's newest ACTIVE version.
    """
    _show_version(ctx, _client(ctx).solution_versions.retrieve(group, solution, version))


@versions.command("wait")
@click.option("--group", "-g", required=True)
@click.option("--solution", "-s", required=True)
@click.argument("version")
@click.pass_context
def ver_wait(ctx: click.Context, group: str, solution: str, version: str) -> None:
    """Wait for VERSION to finish training, showing progress.

    VERSION is a version name, or 'latest': the solution's newest ACTIVE version.
    """
    client = _client(ctx)
    v = client.solution_versions.retrieve(group, solution, version)
    _show_version(ctx, _wait_version(client, group, v, not _json_output(ctx)))


@versions.command("stop")
@click.option("--group", "-g", required=True)
@click.option("--solution", "-s", required=True)
@click.argument("version")
@click.pass_context
def ver_stop(ctx: click.Context, group: str, solution: str, version: str) -> None:
    """Stop a training VERSION (it ends CREATE_STOPPED after the current epoch).

    VERSION is a version name, or 'latest': the solution's newest ACTIVE version.
    """
    _emit(ctx, _client(ctx).solution_versions.stop(group, solution, version), VERSION_COLUMNS)


# ---- campaigns and events ----
CAMPAIGN_COLUMNS = ["name", "status", "solution_version", "min_replicas", "max_replicas", "endpoint",
                    "failure_reason"]


@cli.group()
def campaigns() -> None:
    """Campaigns: solution versions deployed as live recommendation endpoints (Ray Serve)."""


def _wait_campaign(client: Client, group: str, name: str, show: bool, timeout: float = 600) -> Campaign:
    """Wait for a campaign to be ACTIVE with no update rolling out, showing its state on stderr
    (a line per change when not a terminal)."""
    if not show:
        return client.campaigns.wait(group, name, timeout=timeout)

    def info(c: Campaign) -> str:
        if c.pending_update:
            target = c.pending_update.get("solution_version") or "an update"
            return f"rolling out {target}; {c.solution_version} serves meanwhile"
        return f"{c.status.value}, version {c.solution_version}"

    if not console.is_terminal:
        said = _Lines()
        return client.campaigns.wait(group, name, timeout=timeout, poll_interval=0.5,
                                     on_progress=lambda c: said(info(c), f"deploying campaign {name}: "
                                                                         f"{info(c)}"))
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"deploying campaign {name}", total=None, info="")
        return client.campaigns.wait(group, name, timeout=timeout, poll_interval=0.5,
                                     on_progress=lambda c: bar.update(task, info=info(c)))


@campaigns.command("create")
@click.option("--group", "-g", required=True)
@click.option("--name", "-n", required=True)
@click.option("--solution", "-s", required=True)
@click.option("--version", "-v", "version", required=True, help=f"An ACTIVE version. {VERSION_HELP}")
@click.option("--min-replicas", type=int, default=1)
@click.option("--max-replicas", type=int, default=1)
@click.option("--max-ongoing-requests", type=int, default=128)
@click.option("--max-queued-requests", type=int, default=64)
@click.option("--wait/--no-wait", default=True)
@click.pass_context
def camp_create(ctx: click.Context, group: str, name: str, solution: str, version: str,
                min_replicas: int, max_replicas: int, max_ongoing_requests: int,
                max_queued_requests: int, wait: bool) -> None:
    """Deploy a solution version."""
    client = _client(ctx)
    c = client.campaigns.create(group, name=name, solution=solution, solution_version=version,
                                min_replicas=min_replicas, max_replicas=max_replicas,
                                max_ongoing_requests=max_ongoing_requests,
                                max_queued_requests=max_queued_requests)
    _emit(ctx, _wait_campaign(client, group, name, not _json_output(ctx)) if wait else c,
          CAMPAIGN_COLUMNS)


@campaigns.command("list")
@click.option("--group", "-g", required=True)
@click.pass_context
def camp_list(ctx: click.Context, group: str) -> None:
    """List the campaigns of a group."""
    _emit(ctx, _client(ctx).campaigns.list(group), CAMPAIGN_COLUMNS)


@campaigns.command("describe")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def camp_describe(ctx: click.Context, group: str, name: str) -> None:
    """Show one campaign."""
    _emit(ctx, _client(ctx).campaigns.retrieve(group, name),
          CAMPAIGN_COLUMNS + ["pending_update", "last_update_failure"])


@campaigns.command("update")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.option("--solution", "-s", default=None)
@click.option("--version", "-v", "version", default=None, help=VERSION_HELP)
@click.option("--min-replicas", type=int, default=None)
@click.option("--max-replicas", type=int, default=None)
@click.option("--wait/--no-wait", default=True)
@click.pass_context
def camp_update(ctx: click.Context, group: str, name: str, solution: str | None, version: str | None,
                min_replicas: int | None, max_replicas: int | None, wait: bool) -> None:
    """Switch to another version or scaling (the old replicas serve until the new are healthy)."""
    client = _client(ctx)
    c = client.campaigns.update(group, name, solution=solution, solution_version=version,
                                min_replicas=min_replicas, max_replicas=max_replicas)
    _emit(ctx, _wait_campaign(client, group, name, not _json_output(ctx)) if wait else c,
          CAMPAIGN_COLUMNS + ["last_update_failure"])


@campaigns.command("delete")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def camp_delete(ctx: click.Context, group: str, name: str) -> None:
    """Remove a campaign and its endpoint."""
    _client(ctx).campaigns.delete(group, name)
    console.print(f"deleted campaign {name}")


@campaigns.command("recommend")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.option("--user", "-u", "user_id", required=True)
@click.option("--num-results", "-k", type=int, default=25)
@click.option("--items", default=None, help="Comma-separated items to rank instead (GetPersonalizedRanking).")
@click.pass_context
def camp_recommend(ctx: click.Context, group: str, name: str, user_id: str, num_results: int,
                   items: str | None) -> None:
    """Ask a campaign for a user's recommendations (or rank --items for the user)."""
    client = _client(ctx)
    if items:
        r = client.campaigns.rank(group, name, user_id=user_id, items=items.split(","))
    else:
        r = client.campaigns.recommend(group, name, user_id=user_id, num_results=num_results)
    if _json_output(ctx):
        _emit(ctx, r, [])
        return
    _emit(ctx, [{"item_id": i.item_id, "score": _number(i.score)} for i in r.items], ["item_id", "score"])
    console.print(f"version {r.solution_version}" + (" (popularity fallback: unknown user)"
                                                      if r.fallback else ""))


def _show_tags(ctx: click.Context, r: TagsResponse) -> None:
    """A tag verb's answer: the tags (and questions) with their scores; the version on stderr."""
    if _json_output(ctx):
        _emit(ctx, r, [])
        return
    _emit(ctx, [{"tag": t.tag, "score": _number(t.score)} for t in r.tags], ["tag", "score"])
    if r.questions:
        _emit(ctx, [{"question": q.item_id, "score": _number(q.score)} for q in r.questions],
              ["question", "score"])
    console.print(f"version {r.solution_version}" + (" (the task's fallback answered: the model had "
                                                      "nothing to go on)" if r.fallback else ""))


@campaigns.command("recommend-tags")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.option("--user", "-u", "user_id", required=True)
@click.option("--item", "item_id", default=None, help="item-tags: rank this item's tags for the user.")
@click.option("--tag", "tags", multiple=True, help="Rank only this tag (repeatable).")
@click.option("--num-results", "-k", type=int, default=10, show_default=True)
@click.pass_context
def camp_recommend_tags(ctx: click.Context, group: str, name: str, user_id: str, item_id: str | None,
                        tags: tuple[str, ...], num_results: int) -> None:
    """A user's tag profile (a user-tags campaign), or with --item the item's tags ranked for the
    user (an item-tags campaign)."""
    _show_tags(ctx, _client(ctx).campaigns.recommend_tags(group, name, user_id=user_id, item_id=item_id,
                                                          tags=list(tags) or None, num_results=num_results))


@campaigns.command("generate-tags")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.option("--text", default=None, help="The post's text (title and body).")
@click.option("--item", "item_id", default=None, help="Or a stored item whose text fields to use.")
@click.option("--chosen", multiple=True,
              help="A tag already chosen: the set is built around it (repeatable).")
@click.option("--num-results", "-k", type=int, default=5, show_default=True)
@click.pass_context
def camp_generate_tags(ctx: click.Context, group: str, name: str, text: str | None, item_id: str | None,
                       chosen: tuple[str, ...], num_results: int) -> None:
    """The tag set of a text (a tag-set campaign)."""
    if not (text or item_id):
        raise click.UsageError("give --text TEXT or --item ITEM: the text to tag")
    _show_tags(ctx, _client(ctx).campaigns.generate_tags(group, name, text=text, item_id=item_id,
                                                         chosen=list(chosen), num_results=num_results))


@campaigns.command("next-tags")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.option("--session", "session_id", required=True)
@click.option("--organisation", default=None, help="The tenant's organisation (its own tags and questions).")
@click.option("--tag", "tags", multiple=True, help="A tag clicked in this session, not yet sent with events "
                                                   "put (repeatable, in order).")
@click.option("--text", default=None, help="What the customer typed so far.")
@click.option("--num-results", "-k", type=int, default=5, show_default=True)
@click.option("--questions", "num_questions", type=int, default=3, show_default=True,
              help="Matching questions to return.")
@click.pass_context
def camp_next_tags(ctx: click.Context, group: str, name: str, session_id: str, organisation: str | None,
                   tags: tuple[str, ...], text: str | None, num_results: int, num_questions: int) -> None:
    """The next tags to offer in a support session, and the questions they lead to (a session-tags
    campaign)."""
    _show_tags(ctx, _client(ctx).campaigns.next_tags(
        group, name, session_id=session_id, organisation=organisation, text=text,
        events=[{"tag": t} for t in tags], num_results=num_results, num_questions=num_questions))


@cli.group()
def events() -> None:
    """Real-time events (acknowledged once durable; the next recommendation reflects them)."""


@events.command("put")
@click.option("--group", "-g", required=True)
@click.option("--user", "-u", "user_id", required=True)
@click.option("--session", "session_id", required=True)
@click.option("--item", "items", multiple=True, required=True, help="An item the user interacted with.")
@click.option("--type", "event_type", default="click", show_default=True)
@click.option("--value", "event_value", type=float, default=1.0, show_default=True)
@click.pass_context
def events_put(ctx: click.Context, group: str, user_id: str, session_id: str, items: tuple[str, ...],
               event_type: str, event_value: float) -> None:
    """Record events of a user (one per --item, now)."""
    now = time.time()
    r = _client(ctx).events.put(group, user_id=user_id, session_id=session_id, events=[
        {"item_id": it, "event_type": event_type, "event_value": event_value, "timestamp": now + k / 1000}
        for k, it in enumerate(items)])
    _emit(ctx, r, ["accepted", "duplicates"])


# ---- batch inference ----
BATCH_COLUMNS = ["name", "status", "solution", "solution_version", "task", "num_results", "progress",
                 "failure_reason"]


@cli.group("batch-inference-jobs")
def batch_inference_jobs() -> None:
    """Batch inference: a solution version's answers for many users at once, as Parquet files
    (next-item: items per user; user-tags: tags per user and the tag → top users segments)."""


def _wait_batch(client: Client, group: str, job: BatchInferenceJob, show: bool) -> BatchInferenceJob:
    """Wait for a batch inference job, showing the users answered on stderr (a line per change
    when not a terminal)."""
    jobs = client.batch_inference_jobs
    if not show:
        return jobs.wait(group, job.name)
    if not console.is_terminal:
        said = _Lines()

        def line(j: BatchInferenceJob) -> None:
            p = j.progress
            said((j.status, p.users_done), f"batch inference {j.name}: {j.status.value}, {p.users_done:,}/"
                                           f"{p.users_total if p.users_total is not None else '?'} users")

        return jobs.wait(group, job.name, poll_interval=1.0, on_progress=line)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.fields[of]} users"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(f"batch inference {job.name}", total=None, of="?")

        def update(j: BatchInferenceJob) -> None:
            p = j.progress
            bar.update(task, completed=p.users_done, total=p.users_total,
                       of=f"{p.users_total:,}" if p.users_total is not None else "?")

        return jobs.wait(group, job.name, poll_interval=1.0, on_progress=update)


def _show_batch(ctx: click.Context, job: BatchInferenceJob) -> None:
    _emit(ctx, job, BATCH_COLUMNS)
    if job.outputs and not _json_output(ctx):
        _emit(ctx, [{"output": k, "rows": o.rows, "bytes": o.size_bytes} for k, o in job.outputs.items()],
              ["output", "rows", "bytes"])


def _read_users(path: str) -> list[str]:
    """The user ids of a file, one a line: UTF-8 (a BOM allowed), compressed if its name says so
    (``.gz``, ``.bz2``, ...); blank lines skipped. Errors name the file (and the line)."""
    import pyarrow as pa

    hint = "'--users-file'"
    try:
        with pa.input_stream(path, compression="detect") as stream:
            raw = stream.read()
    except (OSError, pa.ArrowException) as e:
        raise click.BadParameter(f"{path}: cannot read it ({e})", param_hint=hint) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        gzipped = " (it is gzip-compressed: name it .gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise click.BadParameter(f"{path}, line {line}: not UTF-8 text (byte {raw[e.start]:#04x}){gzipped}",
                                 param_hint=hint) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


@batch_inference_jobs.command("create")
@click.option("--group", "-g", required=True)
@click.option("--name", "-n", required=True)
@click.option("--solution", "-s", required=True, help="A next-item or user-tags solution.")
@click.option("--version", "-v", "version", default="latest", show_default=True,
              help=f"An ACTIVE version. {VERSION_HELP}")
@click.option("--num-results", "-k", type=int, default=25, show_default=True, help="Items or tags per user.")
@click.option("--user", "-u", "users", multiple=True,
              help="A user to answer (repeatable; default: every user the version trained on).")
@click.option("--users-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of users to answer, one id per line (UTF-8; .gz or .bz2 compressed too).")
@click.option("--segment-size", type=int, default=None,
              help="user-tags: users kept per tag in the segments (default 100).")
@click.option("--wait/--no-wait", default=True, help="Wait for the job, showing progress.")
@click.pass_context
def bij_create(ctx: click.Context, group: str, name: str, solution: str, version: str, num_results: int,
               users: tuple[str, ...], users_file: str | None, segment_size: int | None, wait: bool) -> None:
    """Answer every user (or the given ones) with a solution version, into Parquet outputs."""
    chosen = list(users) + (_read_users(users_file) if users_file else [])
    client = _client(ctx)
    job = client.batch_inference_jobs.create(group, name=name, solution=solution, solution_version=version,
                                             num_results=num_results, users=chosen or None,
                                             segment_size=segment_size)
    if wait:
        job = _wait_batch(client, group, job, not _json_output(ctx))
        _say(f"download: tagrec batch-inference-jobs download -g {group} {name} answers")
    _show_batch(ctx, job)


@batch_inference_jobs.command("list")
@click.option("--group", "-g", required=True)
@click.pass_context
def bij_list(ctx: click.Context, group: str) -> None:
    """List the batch inference jobs of a group."""
    _emit(ctx, _client(ctx).batch_inference_jobs.list(group), BATCH_COLUMNS)


@batch_inference_jobs.command("describe")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def bij_describe(ctx: click.Context, group: str, name: str) -> None:
    """Show one batch inference job and its outputs."""
    _show_batch(ctx, _client(ctx).batch_inference_jobs.retrieve(group, name))


@batch_inference_jobs.command("delete")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.pass_context
def bij_delete(ctx: click.Context, group: str, name: str) -> None:
    """Delete a batch inference job and its outputs (refused while it runs)."""
    _client(ctx).batch_inference_jobs.delete(group, name)
    console.print(f"deleted batch inference job {name}")


@batch_inference_jobs.command("download")
@click.option("--group", "-g", required=True)
@click.argument("name")
@click.argument("which", metavar="[OUTPUT]", type=click.Choice(["answers", "segments"]), default="answers",
                required=False)
@click.option("--dest", "-d", type=click.Path(), default=".", show_default=True,
              help="A file, or a folder to save NAME-OUTPUT.parquet in.")
@click.pass_context
def bij_download(ctx: click.Context, group: str, name: str, which: str, dest: str) -> None:
    """Save OUTPUT of an ACTIVE job as a Parquet file: answers (the default) or, for user-tags,
    segments (tag → top users)."""
    path = _client(ctx).batch_inference_jobs.download(group, name, output=which, dest=dest)
    _emit(ctx, {"output": which, "path": str(path), "bytes": path.stat().st_size},
          ["output", "path", "bytes"])


# ---- quickstart ----
@cli.command()
@click.option("--data", default="synthetic", show_default=True,
              help="synthetic (seeded generator), movielens:PATH (ml-100k, ml-1m, ml-latest), "
                   "hetrec:PATH (HetRec 2011 folders), stackexchange:PATH (Kaggle Stack Exchange CSVs) "
                   "or intents:PATH (clinc150, banking77, nlu-plus-plus or organisation,intent,text CSV: "
                   "simulated support sessions).")
@click.option("--group", default="quickstart", help="Dataset group to use (recreated).")
@click.option("--seed", type=int, default=0, help="Seed of the synthetic data and of the evaluation split.")
@click.option("--recipe", default=None,
              help="Any recipe id (`tagrec recipes list`); default: the one the data fits "
                   "(hrnn-meta, tag-popularity, tag-cooccurrence, session-tag-popularity). E.g. "
                   "graphtr or item-tag-frequency with hetrec:PATH: one item's tags ranked for two users; "
                   "utpm with movielens:PATH: users' tag profiles; sog with stackexchange:PATH: posts' "
                   "tag sets generated from their text.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A hyperparameter (repeatable).")
@click.option("--evaluation", "evaluation_mode", default=None,
              help="The offline evaluation protocol (default: the recipe's first), e.g. item-cold-start.")
@click.option("--tags-from", "tags_from", default=None, metavar="PATH",
              help="With movielens:PATH and a user-tags recipe (utpm): a HetRec 2011 MovieLens-2k "
                   "folder whose tags join the movies (default: the genres are the tags).")
@click.option("--keep", is_flag=True, help="Keep the dataset group afterwards.")
@click.pass_context
def quickstart(ctx: click.Context, data: str, group: str, seed: int, recipe: str | None,
               sets: tuple[str, ...], evaluation_mode: str | None, tags_from: str | None, keep: bool) -> None:
    """The whole path on the local platform: data → import → train → metrics next to the task's
    baseline → deploy a campaign → the task's demo (for next-item: real-time events change the
    answer) → latency → clean up."""
    from sdk.tasks import TaskId
    from tagrec import quickstart as qs

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    client = _client(ctx)
    timings["connect_s"] = time.perf_counter() - t0
    show = not _json_output(ctx)
    kind = data.partition(":")[0]
    recipe = recipe or qs.DEFAULT_RECIPES.get(kind, "hrnn-meta")
    task = TaskId(client.recipes.retrieve(recipe).task)  # an unknown recipe fails here, clearly
    try:
        client.dataset_groups.delete(group, force=True)
    except NotFoundError:
        pass
    with tempfile.TemporaryDirectory(prefix="tagrec-quickstart-") as tmp:
        t = time.perf_counter()
        try:
            prepared = qs.prepare(data, tmp, seed=seed, task=task, tags_from=tags_from)
        except ValueError as e:
            hint = "--tags-from" if tags_from is not None and "tags_from" in str(e) else "--data"
            raise click.BadParameter(str(e), param_hint=hint) from None
        timings["prepare_s"] = time.perf_counter() - t
        facts = qs.sample(prepared)
        t = time.perf_counter()
        jobs = _import_all(ctx, group, prepared.paths, prepared.schemas, "full")
        timings["import_s"] = time.perf_counter() - t
    datasets_ = client.datasets.list(group)
    t = time.perf_counter()
    evaluation = {"seed": seed, **({"mode": evaluation_mode} if evaluation_mode else {})}
    hyperparameters = _key_values(sets, "--set")
    quick = {k: v for k, v in qs.QUICK_HYPERPARAMETERS.get(recipe, {}).items() if k not in hyperparameters}
    if quick:
        sizes = " ".join(f"{k}={v}" for k, v in quick.items())
        _say(f"{recipe} trains with the quickstart's smaller {sizes} (the recipe's defaults take longer "
             "on a CPU; --set KEY=VALUE overrides any)")
    client.solutions.create(group, name="quickstart", recipe=recipe,
                            hyperparameters={**quick, **hyperparameters}, evaluation=evaluation)
    version = client.solution_versions.create(group, solution="quickstart")
    _training_started(group, version)
    version = _wait_version(client, group, version, show)
    timings["train_s"] = time.perf_counter() - t
    if version.status != Status.ACTIVE:
        raise click.ClickException(f"version {version.name} ended {version.status.value}")
    t = time.perf_counter()
    if show:
        console.print("deploying the version as a campaign (Ray Serve)…")
    client.campaigns.create(group, name="quickstart", solution="quickstart",
                            solution_version=version.name)
    campaign = _wait_campaign(client, group, "quickstart", show)
    timings["deploy_s"] = time.perf_counter() - t
    serving = qs.demo(task, client, group, "quickstart", facts)
    if task == TaskId.TAG_SET and serving["posts"]:  # what a user types to tag their own text
        profile = ["--profile", ctx.obj["profile"]] if ctx.obj["profile"] else []
        serving["command"] = shlex.join(["tagrec", *profile, "campaigns", "generate-tags", "-g", group,
                                         "quickstart", "--text", serving["posts"][0]["title"]])
    if not keep:
        client.campaigns.delete(group, "quickstart")
        client.dataset_groups.delete(group, force=True)
    result = {
        "data": data,
        "task": task.value,
        "dataset_group": group,
        "datasets": {d.kind.value: {"rows": d.row_count, "snapshot": d.current_snapshot}
                     for d in datasets_},
        "import_jobs": [j.name for j in jobs],
        "recipe": version.recipe,
        "solution_version": version.name,
        "hyperparameters": version.hyperparameters,
        "evaluation": version.evaluation,
        "metrics": version.metrics,
        "baselines": version.baselines,
        "lift": version.lift,
        "training": version.training,
        "serving": {"endpoint": campaign.endpoint, **serving},
        "timings": {**{k: round(v, 3) for k, v in timings.items()},
                    "version": {k: round(v, 3) for k, v in version.timings.items()}},
    }
    if _json_output(ctx):
        _print_json(result)
        return
    _emit(ctx, [{"dataset": k, **v} for k, v in result["datasets"].items()],
          ["dataset", "rows", "snapshot"])
    ev = version.evaluation or {}
    shown = ", ".join(f"{k} {v}" for k, v in ev.items()
                      if k != "protocol" and not isinstance(v, (dict, list)))
    out.print(f"{version.recipe} ({task.value}) version {version.name}: {ev.get('protocol')} ({shown})")
    _print_table(_metrics_table(version))
    if line := _training_summary(version):
        out.print(line)
    _print_demo(task, result["serving"])
    if command := result["serving"].get("command"):
        out.print(f"tag your own text: {command}" if keep else "tag your own text: run the quickstart "
                  f"with --keep (the campaign is deleted when it ends), then: {command}",
                  markup=False, highlight=False)
    times = result["timings"]
    out.print("timings: " + " ".join([f"{k}={v}" for k, v in times.items() if k != "version"]
                                     + [f"version.{k}={v}" for k, v in times["version"].items()]))
    console.print(f"the platform keeps running at {client.base_url}; `tagrec down` stops it")


def _print_demo(task: Any, sv: dict[str, Any]) -> None:
    """What the campaign answered, as the quickstart shows it."""
    from sdk.tasks import TaskId

    if task == TaskId.NEXT_ITEM:
        table = Table(f"top 5 for user {sv['user']}: before the events", "after the events")
        for a, b in zip(sv["before"][:5], sv["after"][:5]):
            table.add_row(a, b)
        _print_table(table)
        out.print(f"events put: {', '.join(sv['events'])} (the answer changes at the next request)")
    elif task == TaskId.USER_TAGS:
        for user, tags in sv["profiles"].items():
            out.print(f"tag profile of user {user}: {', '.join(t for t, _ in tags[:10])}")
        if sv["events"]:
            out.print(f"user {sv['user']}'s profile: {', '.join(t for t, _ in sv['before'][:10])}")
            out.print(f"user {sv['user']} rates {', '.join(e['item_id'] for e in sv['events'])} 5 stars; "
                      f"the profile at the next request: {', '.join(t for t, _ in sv['after'][:10])}")
        out.print(f"an unknown user gets the fallback: {sv['unknown_user_fallback']}")
    elif task == TaskId.ITEM_TAGS:
        out.print(f"item {sv['item']}'s tags ranked for two users ({sv['candidates']} candidates, top 10):")
        for user, tags in sv["tags_for_users"].items():
            out.print(f"  user {user}: {', '.join(tags[:10])}")
        a, b = (list(sv["tags_for_users"]) + [None, None])[:2]
        asked = f"asked {sv['users_asked']} users in turn"
        if sv["differ"]:
            out.print(f"({asked}: user {b} is the first whose top 10 differs from user {a}'s)")
        else:
            out.print(f"({asked}: the model gave them all the same top 10)")
        if sv["fallback_users"]:
            out.print(f"({len(sv['fallback_users'])} of them got the fallback: not compared)")
    elif task == TaskId.TAG_SET:
        for post in sv["posts"]:
            seen = "held-out post" if post.get("held_out") else "post"
            out.print(f"{seen} {post['title']!r}: generated {post['generated']} "
                      f"(its tags: {post['true_tags']})")
    else:
        for k, step in enumerate(sv["steps"]):
            out.print(f"session step {k + 1} in {sv['organisation']}: offered {step['offered']}, "
                      f"questions {step['questions']}")
    out.print(f"latency over {sv['requests']} sequential requests: p50 {sv['p50_ms']:.1f} ms, "
              f"p99 {sv['p99_ms']:.1f} ms (client-side, HTTP on 127.0.0.1)")


def _output_of(args: list[str]) -> str:
    """The last -o/--output value of a command line: errors follow it even when parsing stopped
    before click read the option."""
    mode = "table"
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args):
            mode = args[i + 1]
        elif arg.startswith("--output="):
            mode = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            mode = arg[2:]
    return mode


def _fail(args: list[str], error: BaseException, message: str, code: int) -> NoReturn:
    """Report an error on stderr, in one line: ``error: ...``, or a JSON object under -o json."""
    message = message.strip() or type(error).__name__
    if isinstance(error, click.UsageError) and error.ctx is not None:
        message += f" (see: {error.ctx.command_path} --help)"
    if _output_of(args) == "json":
        body: dict[str, Any] = {"type": type(error).__name__, "message": message}
        if isinstance(error, APIStatusError):
            body.update(message=error.message, status_code=error.status_code,
                        error_type=error.error_type, field=error.field, request_id=error.request_id)
        click.echo(json.dumps({"error": body}, default=str), err=True)
    else:
        click.echo(f"error: {' '.join(message.splitlines()[0].split())}", err=True)
    sys.exit(code)


def _api_error_text(error: APIStatusError) -> str:
    """``404 not_found: field 'x': message (request id ...)``, naming the field once: the server's
    message often starts with it already."""
    text = f"{error.status_code} {error.error_type}: "
    message = " ".join(error.message.split())
    if error.field and not message.startswith(f"{error.field}:"):
        text += f"field {error.field!r}: "
    text += message
    return text + (f" (request id {error.request_id})" if error.request_id else "")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors (JSON under -o json) and a non-zero exit code on failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    handled: tuple[type[BaseException], ...] = (TagrecError, ValueError, RuntimeError, OSError)
    try:
        cli.main(args=args, prog_name="tagrec", standalone_mode=False)
    except click.exceptions.Abort as e:
        _fail(args, e, "aborted", 130)
    except click.ClickException as e:
        _fail(args, e, e.format_message(), e.exit_code)
    except ValidationError as e:
        _fail(args, e, _validation_text(e), 2)
    except APIStatusError as e:
        _fail(args, e, _api_error_text(e), 1)
    except handled as e:
        _fail(args, e, str(e), 1)



if __name__ == "__main__":
    main()
