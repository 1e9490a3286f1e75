"""Resource collections: ``client.<collection>.create/retrieve/list/delete`` (+ ``wait``)."""

from __future__ import annotations

import builtins
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter

from sdk.errors import NotFoundError, ResourceFailedError, WaitTimeoutError
from sdk.pagination import Listing
from sdk.types import (
    TERMINAL_STATUSES,
    BatchInferenceJob,
    BatchInferenceJobCreate,
    Campaign,
    CampaignCreate,
    CampaignUpdate,
    Dataset,
    DatasetCreate,
    DatasetGroup,
    DatasetGroupCreate,
    DatasetImportJob,
    DatasetImportJobCreate,
    DatasetKind,
    EvaluationConfig,
    Event,
    GenerateTagsRequest,
    ImportMode,
    ImportSource,
    NextTagsRequest,
    PutEventsRequest,
    PutEventsResponse,
    RankRequest,
    RecipeInfo,
    RecommendRequest,
    RecommendResponse,
    ResourceName,
    ScalingConfig,
    Schema,
    SessionEvent,
    Solution,
    SolutionCreate,
    SolutionVersion,
    SolutionVersionCreate,
    Status,
    TagsRequest,
    TagsResponse,
)

if TYPE_CHECKING:
    from sdk.client import Client

__all__ = ["BatchInferenceJobs", "Campaigns", "DatasetGroups", "DatasetImportJobs", "Datasets", "Events",
           "Recipes", "SolutionVersions", "Solutions", "Uploads"]

UPLOAD_CHUNK_SIZE = 1 << 20
LATEST = "latest"  # as a version name: the solution's newest ACTIVE version
Format = Literal["csv", "parquet"]
Output = Literal["answers", "segments"]


class _Waitable(Protocol):
    @property
    def status(self) -> Status: ...


R = TypeVar("R", bound=_Waitable)


def _seg(name: str) -> str:
    """One URL path segment (names are validated by the server; this keeps them one segment)."""
    return quote(str(name), safe="")


def _kind(kind: DatasetKind | str) -> str:
    return DatasetKind(kind).value


def _wait(
    retrieve: Callable[[], R],
    *,
    timeout: float,
    poll_interval: float,
    on_progress: Callable[[R], None] | None,
    sleep: Callable[[float], None],
) -> R:
    """Poll `retrieve` until the resource is ACTIVE or CREATE_FAILED."""
    deadline = time.monotonic() + timeout
    while True:
        resource = retrieve()
        if on_progress is not None:
            on_progress(resource)
        if resource.status == Status.CREATE_FAILED:
            raise ResourceFailedError(resource)
        if resource.status in TERMINAL_STATUSES:
            return resource
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(resource, timeout)
        sleep(min(poll_interval, remaining))


class _Collection:
    def __init__(self, client: Client) -> None:
        self._client = client


class DatasetGroups(_Collection):
    """``client.dataset_groups``: the top-level containers of datasets, solutions, campaigns."""

    def create(
        self, name: str, *, description: str = "", idempotency_key: str | None = None
    ) -> DatasetGroup:
        """Create a dataset group (``POST /v1/dataset-groups``)."""
        body = DatasetGroupCreate(name=name, description=description)
        resp = self._client.request(
            "POST",
            "/v1/dataset-groups",
            json=body.model_dump(mode="json"),
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return DatasetGroup.model_validate(resp.json())

    def retrieve(self, name: str) -> DatasetGroup:
        """Get one dataset group."""
        resp = self._client.request("GET", f"/v1/dataset-groups/{_seg(name)}")
        return DatasetGroup.model_validate(resp.json())

    def list(self) -> Listing[DatasetGroup]:
        """The tenant's dataset groups (pages fetched as iterated; see `sdk.pagination`)."""
        return self._client.listing("/v1/dataset-groups", DatasetGroup.model_validate)

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete a dataset group; `force` also deletes its children."""
        self._client.request(
            "DELETE",
            f"/v1/dataset-groups/{_seg(name)}",
            params={"force": "true" if force else "false"},
        )


class Datasets(_Collection):
    """``client.datasets``: the interactions/items/users datasets of a group."""

    def create(
        self,
        dataset_group: str,
        *,
        kind: DatasetKind | str,
        schema: Schema | dict[str, Any],
        idempotency_key: str | None = None,
    ) -> Dataset:
        """Declare a dataset and its schema (validated locally with the server's rules)."""
        body = DatasetCreate.model_validate({"kind": kind, "schema": schema})
        resp = self._client.request(
            "POST",
            f"/v1/dataset-groups/{_seg(dataset_group)}/datasets",
            json=body.model_dump(mode="json", by_alias=True),
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return Dataset.model_validate(resp.json())

    def retrieve(self, dataset_group: str, kind: DatasetKind | str) -> Dataset:
        """Get one dataset."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/datasets/{_kind(kind)}"
        return Dataset.model_validate(self._client.request("GET", path).json())

    def list(self, dataset_group: str) -> Listing[Dataset]:
        """All datasets of a group."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/datasets"
        return self._client.listing(path, Dataset.model_validate)

    def delete(self, dataset_group: str, kind: DatasetKind | str) -> None:
        """Delete a dataset."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/datasets/{_kind(kind)}"
        self._client.request("DELETE", path)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK_SIZE):
            yield chunk


class Uploads(_Collection):
    """``client.uploads``: send a local file to the platform for a later import."""

    def create(self, file: str | os.PathLike[str], *, idempotency_key: str | None = None) -> str:
        """Upload a file, streamed from disk (re-read from the start on a retry).

        Args:
            file: Path of a local CSV or Parquet file.
            idempotency_key: Sent as ``Idempotency-Key``; a uuid4 by default.

        Returns:
            The upload id, to use as ``ImportSource(upload_id=...)``.
        """
        path = Path(file)
        size = path.stat().st_size  # FileNotFoundError before any request
        resp = self._client.request(
            "POST",
            "/v1/uploads",
            content=lambda: _file_chunks(path),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "X-Filename": path.name,
            },
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return str(resp.json()["upload_id"])


def _default_import_name() -> str:
    return f"import-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


class DatasetImportJobs(_Collection):
    """``client.dataset_import_jobs``: load a file into a dataset as a new snapshot."""

    def create(
        self,
        dataset_group: str,
        *,
        dataset: DatasetKind | str,
        source: str | os.PathLike[str],
        name: str | None = None,
        mode: ImportMode | str = "full",
        format: Format | None = None,
        idempotency_key: str | None = None,
    ) -> DatasetImportJob:
        """Start an import job.

        Args:
            dataset_group: The group.
            dataset: The dataset kind to import into.
            source: An ``s3://bucket/key`` URI the platform reads, or a local path that is
                uploaded first.
            name: Job name; ``import-<utc yyyymmddHHMMSS>-<6 hex>`` by default.
            mode: ``full`` replaces the data; ``incremental`` appends.
            format: ``csv`` or ``parquet``; detected by the server when omitted.
            idempotency_key: Sent as ``Idempotency-Key``; a uuid4 by default.

        Returns:
            The job, usually still ``CREATE_PENDING``; see `wait`.
        """
        name = TypeAdapter(ResourceName).validate_python(name or _default_import_name())
        dataset, mode = DatasetKind(dataset), ImportMode(mode)
        text = os.fspath(source)
        if text.startswith("s3://"):
            src = ImportSource(uri=text, format=format)
        elif "://" in text:
            raise ValueError(f"source must be an s3:// URI or a local path, got {text!r}")
        else:
            upload_id = self._client.uploads.create(text)
            src = ImportSource(upload_id=upload_id, format=format)
        body = DatasetImportJobCreate(name=name, dataset=dataset, source=src, mode=mode)
        resp = self._client.request(
            "POST",
            f"/v1/dataset-groups/{_seg(dataset_group)}/import-jobs",
            json=body.model_dump(mode="json", exclude_none=True),
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return DatasetImportJob.model_validate(resp.json())

    def retrieve(self, dataset_group: str, name: str) -> DatasetImportJob:
        """Get one import job."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/import-jobs/{_seg(name)}"
        return DatasetImportJob.model_validate(self._client.request("GET", path).json())

    def list(self, dataset_group: str) -> Listing[DatasetImportJob]:
        """All import jobs of a group."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/import-jobs"
        return self._client.listing(path, DatasetImportJob.model_validate)

    def wait(
        self,
        dataset_group: str,
        name: str,
        *,
        timeout: float = 3600,
        poll_interval: float = 1.0,
        on_progress: Callable[[DatasetImportJob], None] | None = None,
    ) -> DatasetImportJob:
        """Poll a job until it is ACTIVE.

        Args:
            dataset_group: The group.
            name: The job.
            timeout: Seconds to wait in all.
            poll_interval: Seconds between polls.
            on_progress: Called with the job after every poll.

        Returns:
            The ACTIVE job.

        Raises:
            ResourceFailedError: The job ended in CREATE_FAILED.
            WaitTimeoutError: The job was not terminal within `timeout`.
        """
        return _wait(
            lambda: self.retrieve(dataset_group, name),
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
            sleep=self._client._sleep,
        )

    def create_and_wait(
        self,
        dataset_group: str,
        *,
        dataset: DatasetKind | str,
        source: str | os.PathLike[str],
        name: str | None = None,
        mode: ImportMode | str = "full",
        format: Format | None = None,
        idempotency_key: str | None = None,
        timeout: float = 3600,
        poll_interval: float = 1.0,
        on_progress: Callable[[DatasetImportJob], None] | None = None,
    ) -> DatasetImportJob:
        """`create` then `wait`; see both for the arguments."""
        job = self.create(
            dataset_group,
            dataset=dataset,
            source=source,
            name=name,
            mode=mode,
            format=format,
            idempotency_key=idempotency_key,
        )
        return self.wait(
            dataset_group,
            job.name,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )


class Recipes(_Collection):
    """``client.recipes``: the models a solution can train, with their data needs and
    hyperparameters (JSON schema with defaults, bounds and descriptions)."""

    def list(self) -> Listing[RecipeInfo]:
        """Every recipe."""
        return self._client.listing("/v1/recipes", RecipeInfo.model_validate)

    def retrieve(self, recipe: str) -> RecipeInfo:
        """One recipe by id (e.g. ``"hrnn-meta"``)."""
        return RecipeInfo.model_validate(self._client.request("GET", f"/v1/recipes/{_seg(recipe)}").json())


class Solutions(_Collection):
    """``client.solutions``: a recipe and its hyperparameters, bound to a dataset group."""

    def create(
        self,
        dataset_group: str,
        *,
        name: str,
        recipe: str,
        hyperparameters: dict[str, Any] | None = None,
        scaling: ScalingConfig | dict[str, Any] | None = None,
        evaluation: EvaluationConfig | dict[str, Any] | None = None,
        description: str = "",
        idempotency_key: str | None = None,
    ) -> Solution:
        """Create a solution; the server checks `hyperparameters` against the recipe's schema
        (an unknown key or an out-of-range value is a BadRequestError naming the field)."""
        body = SolutionCreate.model_validate({
            "name": name, "recipe": recipe, "hyperparameters": hyperparameters or {},
            "scaling": scaling or {}, "evaluation": evaluation or {}, "description": description})
        resp = self._client.request(
            "POST",
            f"/v1/dataset-groups/{_seg(dataset_group)}/solutions",
            # Only what was given: the server applies its defaults (an older server knows no
            # newer field), and the answer shows them all.
            json=body.model_dump(mode="json", exclude_unset=True),
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return Solution.model_validate(resp.json())

    def retrieve(self, dataset_group: str, name: str) -> Solution:
        """Get one solution."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/solutions/{_seg(name)}"
        return Solution.model_validate(self._client.request("GET", path).json())

    def list(self, dataset_group: str) -> Listing[Solution]:
        """All solutions of a group."""
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/solutions"
        return self._client.listing(path, Solution.model_validate)

    def delete(self, dataset_group: str, name: str) -> None:
        """Delete a solution and its versions (refused while one trains)."""
        self._client.request("DELETE", f"/v1/dataset-groups/{_seg(dataset_group)}/solutions/{_seg(name)}")


class SolutionVersions(_Collection):
    """``client.solution_versions``: training runs of a solution, with their offline metrics."""

    def _path(self, dataset_group: str, solution: str, version: str | None = None) -> str:
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/solutions/{_seg(solution)}/versions"
        return path if version is None else f"{path}/{_seg(version)}"

    def create(
        self,
        dataset_group: str,
        *,
        solution: str,
        training_mode: Literal["full"] = "full",
        idempotency_key: str | None = None,
    ) -> SolutionVersion:
        """Start training a version on the datasets' current snapshots.

        Refused (BadRequestError) when a dataset the recipe needs is missing, lacks a required
        field or holds too few interactions; the job itself fails the version if too few users
        have 2 or more interactions.
        """
        body = SolutionVersionCreate(training_mode=training_mode)
        resp = self._client.request(
            "POST",
            self._path(dataset_group, solution),
            json=body.model_dump(mode="json"),
            idempotency_key=idempotency_key or self._client.new_idempotency_key(),
        )
        return SolutionVersion.model_validate(resp.json())

    def resolve(self, dataset_group: str, solution: str, version: str) -> str:
        """The version's name: `version` itself, or for ``"latest"`` the newest ACTIVE version's.

        Raises:
            NotFoundError: ``"latest"`` was asked for and the solution has no ACTIVE version.
        """
        if version != LATEST:
            return version
        active = [v for v in self.list(dataset_group, solution) if v.status == Status.ACTIVE]
        if not active:
            raise NotFoundError(
                f"solution {solution!r} of dataset group {dataset_group!r} has no ACTIVE version "
                f"('latest' names the newest ACTIVE one)",
                status_code=404, error_type="not_found", field="solution_version")
        return max(active, key=lambda v: v.created_at).name

    def retrieve(self, dataset_group: str, solution: str, version: str) -> SolutionVersion:
        """Get one version (status, progress, and metrics once ACTIVE); `version` may be
        ``"latest"``, the newest ACTIVE version."""
        version = self.resolve(dataset_group, solution, version)
        return SolutionVersion.model_validate(
            self._client.request("GET", self._path(dataset_group, solution, version)).json())

    def list(self, dataset_group: str, solution: str) -> Listing[SolutionVersion]:
        """All versions of a solution, newest first."""
        return self._client.listing(self._path(dataset_group, solution), SolutionVersion.model_validate)

    def stop(self, dataset_group: str, solution: str, version: str) -> SolutionVersion:
        """Ask a training version to stop (CREATE_STOPPING, then CREATE_STOPPED)."""
        version = self.resolve(dataset_group, solution, version)
        path = f"{self._path(dataset_group, solution, version)}/stop"
        return SolutionVersion.model_validate(self._client.request("POST", path).json())

    def wait(
        self,
        dataset_group: str,
        solution: str,
        version: str,
        *,
        timeout: float = 6 * 3600,
        poll_interval: float = 2.0,
        on_progress: Callable[[SolutionVersion], None] | None = None,
    ) -> SolutionVersion:
        """Poll a version until it is ACTIVE or CREATE_STOPPED (returned; check ``status``).

        Raises:
            ResourceFailedError: The version ended in CREATE_FAILED (see ``failure_reason``).
            WaitTimeoutError: Still training after `timeout` seconds.
        """
        version = self.resolve(dataset_group, solution, version)
        return _wait(
            lambda: self.retrieve(dataset_group, solution, version),
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
            sleep=self._client._sleep,
        )


class Campaigns(_Collection):
    """``client.campaigns``: solution versions deployed as live endpoints, and their
    recommendation API (``recommend``, ``rank``)."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._endpoints: dict[tuple[str, str], str] = {}

    def _path(self, dataset_group: str, name: str | None = None) -> str:
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/campaigns"
        return path if name is None else f"{path}/{_seg(name)}"

    def create(
        self,
        dataset_group: str,
        *,
        name: str,
        solution: str,
        solution_version: str,
        min_replicas: int = 1,
        max_replicas: int = 1,
        max_ongoing_requests: int = 128,
        max_queued_requests: int = 64,
        idempotency_key: str | None = None,
    ) -> Campaign:
        """Deploy an ACTIVE solution version as a campaign (its own Ray Serve application);
        `solution_version` may be ``"latest"``, the newest ACTIVE version."""
        solution_version = self._client.solution_versions.resolve(dataset_group, solution, solution_version)
        body = CampaignCreate(name=name, solution=solution, solution_version=solution_version,
                              min_replicas=min_replicas, max_replicas=max_replicas,
                              max_ongoing_requests=max_ongoing_requests,
                              max_queued_requests=max_queued_requests)
        resp = self._client.request(
            "POST", self._path(dataset_group), json=body.model_dump(mode="json"),
            idempotency_key=idempotency_key or self._client.new_idempotency_key())
        return Campaign.model_validate(resp.json())

    def retrieve(self, dataset_group: str, name: str) -> Campaign:
        """Get one campaign (status, endpoint, the version it serves, an update rolling out)."""
        resp = self._client.request("GET", self._path(dataset_group, name))
        campaign = Campaign.model_validate(resp.json())
        if campaign.endpoint:
            self._endpoints[(dataset_group, name)] = campaign.endpoint
        return campaign

    def list(self, dataset_group: str) -> Listing[Campaign]:
        """All campaigns of a group."""
        return self._client.listing(self._path(dataset_group), Campaign.model_validate)

    def update(self, dataset_group: str, name: str, *, solution: str | None = None,
               solution_version: str | None = None, min_replicas: int | None = None,
               max_replicas: int | None = None, max_ongoing_requests: int | None = None,
               max_queued_requests: int | None = None) -> Campaign:
        """Switch the campaign to another version or scaling; the old replicas serve until the
        new ones are healthy (see ``pending_update``, then `wait`). `solution_version` may be
        ``"latest"``: the newest ACTIVE version of `solution` (default: the campaign's)."""
        if solution_version == LATEST:
            of = solution or self.retrieve(dataset_group, name).solution
            solution_version = self._client.solution_versions.resolve(dataset_group, of, LATEST)
        body = CampaignUpdate(solution=solution, solution_version=solution_version,
                              min_replicas=min_replicas, max_replicas=max_replicas,
                              max_ongoing_requests=max_ongoing_requests,
                              max_queued_requests=max_queued_requests)
        resp = self._client.request("PATCH", self._path(dataset_group, name),
                                    json=body.model_dump(mode="json", exclude_none=True))
        return Campaign.model_validate(resp.json())

    def delete(self, dataset_group: str, name: str) -> None:
        """Remove the campaign and its endpoint."""
        self._client.request("DELETE", self._path(dataset_group, name))
        self._endpoints.pop((dataset_group, name), None)

    def wait(self, dataset_group: str, name: str, *, timeout: float = 600, poll_interval: float = 1.0,
             on_progress: Callable[[Campaign], None] | None = None) -> Campaign:
        """Poll until the campaign is ACTIVE with no update rolling out.

        Raises:
            ResourceFailedError: The deployment failed (CREATE_FAILED), or the last update did
                (``last_update_failure``; the previous version keeps serving).
            WaitTimeoutError: Not settled within `timeout` seconds.
        """
        def settled() -> Campaign | _Settled:
            c = self.retrieve(dataset_group, name)
            if c.last_update_failure and not c.pending_update:  # the old version still serves
                raise ResourceFailedError(c.model_copy(update={"failure_reason": c.last_update_failure}))
            return _Settled(c) if c.pending_update else c

        def unwrap(c: Campaign | _Settled) -> Campaign:
            return c.inner if isinstance(c, _Settled) else c

        def progress(c: Campaign | _Settled) -> None:
            if on_progress is not None:
                on_progress(unwrap(c))

        # Never a _Settled (its status is not terminal); unwrap narrows the type.
        return unwrap(_wait(settled, timeout=timeout, poll_interval=poll_interval, on_progress=progress,
                            sleep=self._client._sleep))

    def _endpoint(self, dataset_group: str, name: str) -> str:
        endpoint = self._endpoints.get((dataset_group, name))
        if endpoint is None:
            endpoint = self.retrieve(dataset_group, name).endpoint
            if not endpoint:
                raise ValueError(f"campaign {name!r} has no endpoint yet (is it ACTIVE?)")
        return endpoint

    def recommend(self, dataset_group: str, name: str, *, user_id: str, num_results: int = 25,
                  context: dict[str, Any] | None = None, exclude_seen: bool = True) -> RecommendResponse:
        """Items for a user, best first, with scores (``fallback`` is True when the user is
        unknown and popularity answered)."""
        body = RecommendRequest(user_id=user_id, num_results=num_results, context=context or {},
                                exclude_seen=exclude_seen)
        resp = self._client.request("POST", f"{self._endpoint(dataset_group, name)}/recommend",
                                    json=body.model_dump(mode="json"))
        return RecommendResponse.model_validate(resp.json())

    def rank(self, dataset_group: str, name: str, *, user_id: str, items: builtins.list[str],
             context: dict[str, Any] | None = None) -> RecommendResponse:
        """The given items re-ordered for the user (Personalize's GetPersonalizedRanking)."""
        body = RankRequest(user_id=user_id, items=items, context=context or {})
        resp = self._client.request("POST", f"{self._endpoint(dataset_group, name)}/rank",
                                    json=body.model_dump(mode="json"))
        return RecommendResponse.model_validate(resp.json())


    def recommend_tags(self, dataset_group: str, name: str, *, user_id: str, item_id: str | None = None,
                       tags: builtins.list[str] | None = None, num_results: int = 10,
                       exclude_seen: bool = False, context: dict[str, Any] | None = None) -> TagsResponse:
        """A user's tag profile (a user-tags campaign), or, with `item_id`, the item's tags ranked
        for this user (an item-tags campaign); `tags` ranks only those."""
        body = TagsRequest(user_id=user_id, item_id=item_id, tags=tags, num_results=num_results,
                           exclude_seen=exclude_seen, context=context or {})
        return self._ask(dataset_group, name, "recommend-tags", body)

    def generate_tags(self, dataset_group: str, name: str, *, text: str | None = None,
                      fields: dict[str, str] | None = None, item_id: str | None = None,
                      chosen: builtins.list[str] | None = None, num_results: int = 5) -> TagsResponse:
        """The tag set of a text (a tag-set campaign): from `text`, named `fields` (e.g. title,
        content) or a stored item's text (`item_id`); `chosen` tags are kept out and built on."""
        body = GenerateTagsRequest(text=text, fields=fields or {}, item_id=item_id, chosen=chosen or [],
                                   num_results=num_results)
        return self._ask(dataset_group, name, "generate-tags", body)

    def next_tags(self, dataset_group: str, name: str, *, session_id: str, organisation: str | None = None,
                  text: str | None = None, events: builtins.list[SessionEvent | dict[str, Any]] | None = None,
                  num_results: int = 5, num_questions: int = 3) -> TagsResponse:
        """The next tags to offer in a support session (a session-tags campaign), with the questions
        they lead to; `events` are clicks not yet sent with ``client.events.put``."""
        body = NextTagsRequest(session_id=session_id, organisation=organisation, text=text,
                               events=[SessionEvent.model_validate(e) for e in events or ()],
                               num_results=num_results, num_questions=num_questions)
        return self._ask(dataset_group, name, "next-tags", body)

    def _ask(self, dataset_group: str, name: str, verb: str, body: Any) -> TagsResponse:
        resp = self._client.request("POST", f"{self._endpoint(dataset_group, name)}/{verb}",
                                    json=body.model_dump(mode="json", exclude_none=True))
        return TagsResponse.model_validate(resp.json())


class _Settled:
    """A campaign still rolling out an update: not terminal for `_wait`."""

    def __init__(self, inner: Campaign) -> None:
        self.inner = inner
        self.status = Status.CREATE_IN_PROGRESS


class Events(_Collection):
    """``client.events``: real-time interactions, acknowledged once durable."""

    def put(self, dataset_group: str, *, user_id: str, session_id: str,
            events: builtins.list[Event | dict[str, Any]]) -> PutEventsResponse:
        """Record 1..10 events of a user; an ``event_id`` seen before is not stored again.

        The next recommendation for the user reflects them.
        """
        parsed = [Event.model_validate(e) for e in events]
        # An id on every event: a retried request (lost answer) is then a duplicate, not a copy.
        parsed = [e if e.event_id else e.model_copy(update={"event_id": str(uuid.uuid4())})
                  for e in parsed]
        body = PutEventsRequest(user_id=user_id, session_id=session_id, events=parsed)
        resp = self._client.request("POST", f"/v1/dataset-groups/{_seg(dataset_group)}/events",
                                    json=body.model_dump(mode="json", exclude_none=True))
        return PutEventsResponse.model_validate(resp.json())


class BatchInferenceJobs(_Collection):
    """``client.batch_inference_jobs``: a solution version's answers for many users at once, as
    Parquet files (Personalize's batch inference and batch segment jobs): ``answers`` for
    next-item and user-tags solutions, and the tag → top users ``segments`` for user-tags."""

    def _path(self, dataset_group: str, name: str | None = None) -> str:
        path = f"/v1/dataset-groups/{_seg(dataset_group)}/batch-inference-jobs"
        return path if name is None else f"{path}/{_seg(name)}"

    def create(
        self,
        dataset_group: str,
        *,
        name: str,
        solution: str,
        solution_version: str | None = None,
        num_results: int = 25,
        users: Iterable[str] | None = None,
        segment_size: int | None = None,
        idempotency_key: str | None = None,
    ) -> BatchInferenceJob:
        """Start a batch inference job.

        Args:
            dataset_group: The group.
            name: The job's name.
            solution: A next-item or user-tags solution.
            solution_version: An ACTIVE version; None or ``"latest"``: the newest ACTIVE one.
            num_results: Items or tags per user (as a campaign request's, at most 500).
            users: The users to answer; default every user of the interactions snapshot the
                version trained on. An unknown user gets the task's fallback, flagged.
            segment_size: user-tags only: users kept per tag in ``segments`` (default 100).
            idempotency_key: Sent as ``Idempotency-Key``; a uuid4 by default.

        Returns:
            The job, usually still ``CREATE_PENDING``; see `wait`.

        Raises:
            TypeError: `users` is one string, not a list of them.
        """
        if isinstance(users, (str, bytes)):  # iterating it would ask for each of its characters
            raise TypeError(f"users must be a list of user ids, not a {type(users).__name__} "
                            f"({users!r:.40}): for one user pass users=[{users!r:.40}]")
        body = BatchInferenceJobCreate(
            name=name, solution=solution,
            solution_version=None if solution_version in (None, LATEST) else solution_version,
            num_results=num_results, users=None if users is None else builtins.list(users),
            segment_size=segment_size)
        resp = self._client.request(
            "POST", self._path(dataset_group), json=body.model_dump(mode="json", exclude_none=True),
            idempotency_key=idempotency_key or self._client.new_idempotency_key())
        return BatchInferenceJob.model_validate(resp.json())

    def retrieve(self, dataset_group: str, name: str) -> BatchInferenceJob:
        """Get one job (status, progress, and its outputs once ACTIVE)."""
        return BatchInferenceJob.model_validate(
            self._client.request("GET", self._path(dataset_group, name)).json())

    def list(self, dataset_group: str) -> Listing[BatchInferenceJob]:
        """All batch inference jobs of a group."""
        return self._client.listing(self._path(dataset_group), BatchInferenceJob.model_validate)

    def delete(self, dataset_group: str, name: str) -> None:
        """Delete a job and its outputs (refused while it runs)."""
        self._client.request("DELETE", self._path(dataset_group, name))

    def wait(
        self,
        dataset_group: str,
        name: str,
        *,
        timeout: float = 3600,
        poll_interval: float = 1.0,
        on_progress: Callable[[BatchInferenceJob], None] | None = None,
    ) -> BatchInferenceJob:
        """Poll a job until it is ACTIVE.

        Raises:
            ResourceFailedError: The job ended in CREATE_FAILED (see ``failure_reason``).
            WaitTimeoutError: The job was not terminal within `timeout` seconds.
        """
        return _wait(lambda: self.retrieve(dataset_group, name), timeout=timeout,
                     poll_interval=poll_interval, on_progress=on_progress, sleep=self._client._sleep)

    def create_and_wait(
        self,
        dataset_group: str,
        *,
        name: str,
        solution: str,
        solution_version: str | None = None,
        num_results: int = 25,
        users: Iterable[str] | None = None,
        segment_size: int | None = None,
        idempotency_key: str | None = None,
        timeout: float = 3600,
        poll_interval: float = 1.0,
        on_progress: Callable[[BatchInferenceJob], None] | None = None,
    ) -> BatchInferenceJob:
        """`create` then `wait`; see both for the arguments."""
        job = self.create(dataset_group, name=name, solution=solution, solution_version=solution_version,
                          num_results=num_results, users=users, segment_size=segment_size,
                          idempotency_key=idempotency_key)
        return self.wait(dataset_group, job.name, timeout=timeout, poll_interval=poll_interval,
                         on_progress=on_progress)

    def download(self, dataset_group: str, name: str, *, output: Output = "answers",
                 dest: str | os.PathLike[str] = ".") -> Path:
        """Save an output of an ACTIVE job as a Parquet file, streamed; returns the file's path.

        Args:
            dataset_group: The group.
            name: The job.
            output: ``answers`` (user_id, rank, item_id or tag, score, fallback) or, for
                user-tags, ``segments`` (tag, rank, user_id, score).
            dest: A file path, or a folder to save ``<name>-<output>.parquet`` in. The file
                appears complete or not at all (written beside it first).

        Raises:
            ConflictError: The job is not ACTIVE (yet).
            NotFoundError: No such job, or no such output (segments of a next-item job).
        """
        target = Path(dest)
        if target.is_dir():
            target = target / f"{name}-{output}.parquet"
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        resp = self._client.request("GET", f"{self._path(dataset_group, name)}/outputs/{_seg(output)}",
                                    stream=True)
        try:
            with part.open("wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)
            os.replace(part, target)
        finally:
            resp.close()
            part.unlink(missing_ok=True)
        return target
