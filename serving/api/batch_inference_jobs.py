"""Batch inference jobs (`client.batch_inference_jobs`): a solution version's answers for many users
(next-item: items, user-tags: tags and the tag → top users segments), written as Parquet by a job the
runner runs (`training_jobs.batch_inference`). Reads report a dead job as failed
(`reap_batch_inference`); the outputs are downloaded through here, never from the bucket."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Response
from fastapi.responses import StreamingResponse

from recipes import get_recipe
from sdk.types import (
    BATCH_TASKS,
    DEFAULT_SEGMENT_SIZE,
    BatchInferenceJob,
    BatchInferenceJobCreate,
    Status,
)
from store import Keys, NotFound, now_iso

from .common import (
    RUNNING,
    ApiError,
    Context,
    Ctx,
    IdemKey,
    Name,
    Strict,
    Tenant,
    create,
    group_parent,
    live,
    live_group,
    mark_deleting,
    page,
    reap_batch_inference,
    reap_version,
    resource_router,
)

router = resource_router("batch inference")
log = logging.getLogger("tagrec.control_plane")

PARQUET = "application/vnd.apache.parquet"
_CHUNK = 1 << 20
# What a job of the other tasks would have to be given instead of users.
_NEEDS = {"item-tags": "(user, item) pairs: each of its answers ranks one item's tags for one user",
          "tag-set": "texts or posts to tag, not users",
          "session-tags": "support sessions, not users"}
_DOWNLOAD = {"responses": {"200": {"description": "The output's Parquet file, streamed.",
                                   "content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}}}}}
Output = Annotated[Literal["answers", "segments"], Path(
    description="answers (user_id, rank, item_id or tag, score, fallback) or, for user-tags, segments "
                "(tag, rank, user_id, score).")]


def _job(ctx: Context, keys: Keys, group: str, job: str) -> dict[str, Any]:
    live_group(ctx, keys, group)
    doc = live(ctx, keys.batch_inference_job(group, job), f"batch inference job {job!r}")
    return reap_batch_inference(ctx, keys, group, doc)


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return BatchInferenceJob.model_validate(doc).model_dump(mode="json")


def _target_version(ctx: Context, keys: Keys, group: str, solution: str,
                    version: str | None) -> dict[str, Any]:
    """The version the job runs: the one named (it must be ACTIVE), else the newest ACTIVE one."""
    registry = ctx.store.registry
    if version is None:
        docs = [reap_version(ctx, keys, group, d)
                for d in registry.list(keys.versions(group, solution), "/version.json")]
        active = [d for d in docs if d["status"] == Status.ACTIVE.value]
        if not active:
            raise ApiError(409, "conflict", f"solution_version: solution {solution!r} has no ACTIVE version "
                                            f"yet; train one, or wait for its training to end",
                           "solution_version")
        return max(active, key=lambda d: (d["created_at"], d["name"]))
    try:
        doc = reap_version(ctx, keys, group, registry.read(keys.version_record(group, solution, version)))
    except NotFound:
        raise ApiError(404, "not_found", f"solution_version: no version {version!r} of solution "
                                         f"{solution!r}", "solution_version") from None
    if doc["status"] != Status.ACTIVE.value:
        raise ApiError(409, "conflict", f"solution_version: version {version!r} is {doc['status']}, not "
                                        f"ACTIVE: only a trained version answers", "solution_version")
    return doc


@router.post("/v1/dataset-groups/{group}/batch-inference-jobs", response_model=BatchInferenceJob,
             status_code=201)
def create_batch_inference_job(group: Name, body: Strict[BatchInferenceJobCreate], t: Tenant,
                               response: Response, ctx: Ctx, idem: IdemKey = None) -> dict[str, Any]:
    keys = Keys(t)
    registry = ctx.store.registry
    live_group(ctx, keys, group)
    try:
        solution = live(ctx, keys.solution_record(group, body.solution), f"solution {body.solution!r}")
    except ApiError:
        raise ApiError(404, "not_found", f"solution: no solution {body.solution!r} in dataset group "
                                         f"{group!r}", "solution") from None
    # The solution records its task: the control plane need not import the recipe (and torch).
    task = solution.get("task") or get_recipe(solution["recipe"]).task.value
    if task not in BATCH_TASKS:
        raise ApiError(400, "invalid_input", f"solution: {body.solution!r} is of task {task}; batch "
                       f"inference answers next-item and user-tags solutions (for {task} it would need "
                       f"{_NEEDS.get(task, 'other input than users')})", "solution")
    if body.segment_size is not None and task != "user-tags":
        raise ApiError(400, "invalid_input", f"segment_size: only user-tags jobs build segments (tag → top "
                       f"users); {body.solution!r} is of task {task}", "segment_size")
    version = _target_version(ctx, keys, group, body.solution, body.solution_version)
    users = list(dict.fromkeys(body.users)) if body.users else None
    doc = {"name": body.name, "dataset_group": group, "solution": body.solution,
           "solution_version": version["name"], "recipe": version["recipe"], "task": task,
           "num_results": body.num_results,
           "segment_size": (body.segment_size or DEFAULT_SEGMENT_SIZE) if task == "user-tags" else None,
           "users_given": len(users) if users else None, "status": Status.CREATE_PENDING.value,
           "progress": {"users_done": 0, "users_total": len(users) if users else None}, "outputs": {}}
    key = keys.batch_inference_job(group, body.name)
    doc = create(ctx, key, doc, idem, f"batch inference job {body.name!r}", response,
                 parents=(group_parent(keys, group),
                          (keys.solution_record(group, body.solution), f"solution {body.solution!r}")),
                 request=body)
    if response.status_code == 201:
        try:
            if users:  # beside the record, which every read and list would otherwise carry
                ctx.store.backend.put(keys.batch_inference_users(group, body.name),
                                      json.dumps(users).encode())
            ctx.submit_batch_inference(t, group, body.name)
        except Exception as e:  # the job cannot start: say so on the job
            log.warning("could not submit batch inference job %s: %s", key, e)
            reason = f"could not start the job: {type(e).__name__}: {e}"
            doc = registry.update(key, lambda d: {
                **d, "status": Status.CREATE_FAILED.value, "updated_at": now_iso(), "failure_reason": reason})
    return _view(doc)


@router.get("/v1/dataset-groups/{group}/batch-inference-jobs")
def list_batch_inference_jobs(
        group: Name, t: Tenant, ctx: Ctx, max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
        next_token: Annotated[str | None, Query(max_length=63)] = None) -> dict[str, Any]:
    keys = Keys(t)
    live_group(ctx, keys, group)
    docs = [d for d in ctx.store.registry.list(keys.batch_inference_jobs(group), ".json")
            if d.get("status") != Status.DELETE_IN_PROGRESS.value]
    found = page(docs, max_results, next_token)
    found["items"] = [_view(reap_batch_inference(ctx, keys, group, d)) for d in found["items"]]
    return found


@router.get("/v1/dataset-groups/{group}/batch-inference-jobs/{job}", response_model=BatchInferenceJob)
def get_batch_inference_job(group: Name, job: Name, t: Tenant, ctx: Ctx) -> dict[str, Any]:
    return _view(_job(ctx, Keys(t), group, job))


@router.delete("/v1/dataset-groups/{group}/batch-inference-jobs/{job}", status_code=204)
def delete_batch_inference_job(group: Name, job: Name, t: Tenant, ctx: Ctx) -> Response:
    keys = Keys(t)
    doc = _job(ctx, keys, group, job)
    if doc["status"] in RUNNING:
        p = doc.get("progress") or {}
        raise ApiError(409, "conflict", f"batch inference job {job!r} is {doc['status']} "
                                        f"({p.get('users_done', 0)}/{p.get('users_total') or '?'} users): "
                                        f"wait for it to end")
    key = keys.batch_inference_job(group, job)
    mark_deleting(ctx, key)
    ctx.store.backend.delete_prefix(keys.batch_inference_files(group, job))
    ctx.store.backend.delete(key)
    return Response(status_code=204)


@router.get("/v1/dataset-groups/{group}/batch-inference-jobs/{job}/outputs/{output}",
            response_class=StreamingResponse, openapi_extra=_DOWNLOAD)
def download_batch_inference_output(group: Name, job: Name, output: Output, t: Tenant,
                                    ctx: Ctx) -> StreamingResponse:
    keys = Keys(t)
    doc = _job(ctx, keys, group, job)
    if doc["status"] != Status.ACTIVE.value:
        raise ApiError(409, "conflict", f"batch inference job {job!r} is {doc['status']}: its outputs "
                                        f"can be downloaded once it is ACTIVE")
    outputs = doc.get("outputs") or {}
    if output not in outputs or not doc.get("run"):
        raise ApiError(404, "not_found", f"output: batch inference job {job!r} has no {output} output (its "
                                         f"outputs: {', '.join(outputs) or 'none'})", "output")
    backend = ctx.store.backend
    path = backend.path(keys.batch_inference_output(group, job, doc["run"], output))
    try:  # gone before the look-up, or between it and the open (the job deleted meanwhile)
        info = backend.filesystem.get_file_info(path)
        if info.size is None:
            raise FileNotFoundError(path)
        stream = backend.filesystem.open_input_stream(path)
    except (FileNotFoundError, NotFound):
        raise ApiError(404, "not_found", f"output: the {output} file of batch inference job {job!r} is gone "
                                         f"from the store; run the job again", "output") from None

    def chunks() -> Iterator[bytes]:
        with stream:
            while data := stream.read(_CHUNK):
                yield data

    return StreamingResponse(chunks(), media_type=PARQUET, headers={
        "Content-Length": str(info.size),
        "Content-Disposition": f'attachment; filename="{job}-{output}.parquet"'})
