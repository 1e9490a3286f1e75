"""Resource records: JSON documents with atomic create and compare-and-swap updates."""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sdk.types import BATCH_OUTPUTS, NAME_PATTERN

from .fs import Backend, PreconditionFailed

__all__ = [
    "AlreadyExists",
    "NotFound",
    "Registry",
    "Keys",
    "now_iso",
    "validate_name",
    "backoff",
    "dump_json",
]

_NAME = re.compile(NAME_PATTERN)


class NotFound(KeyError):
    """No record at this key."""


class AlreadyExists(Exception):
    """A record already exists at this key."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def backoff(attempt: int, base: float = 0.005, cap: float = 0.25) -> None:
    """Sleep before retry `attempt` (0-based) of a lost compare-and-swap: full jitter, capped.

    Without it, retrying writers collide again at once and one can lose every attempt.
    """
    time.sleep(random.uniform(0, min(cap, base * 2**attempt)))


def validate_name(value: str, what: str = "name") -> str:
    """Return `value` if it is a valid resource name, else raise ValueError naming it."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: must match {NAME_PATTERN}")
    return value


class Keys:
    """Every key of one tenant, built only from validated names (DESIGN.md §2)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = validate_name(tenant, "tenant")
        self.root = f"tenants/{tenant}"

    def groups(self) -> str:
        return f"{self.root}/dataset-groups"

    def group(self, group: str) -> str:
        return f"{self.groups()}/{validate_name(group, 'dataset group')}"

    def group_record(self, group: str) -> str:
        return f"{self.group(group)}/group.json"

    def dataset(self, group: str, kind: str) -> str:
        if kind not in ("interactions", "items", "users"):
            raise ValueError(f"invalid dataset kind {kind!r}")
        return f"{self.group(group)}/datasets/{kind}"

    def dataset_record(self, group: str, kind: str) -> str:
        return f"{self.dataset(group, kind)}/dataset.json"

    def current(self, group: str, kind: str) -> str:
        return f"{self.dataset(group, kind)}/CURRENT"

    def snapshot(self, group: str, kind: str, snapshot_id: str) -> str:
        return f"{self.dataset(group, kind)}/snapshots/{validate_name(snapshot_id, 'snapshot id')}"

    def import_jobs(self, group: str) -> str:
        return f"{self.group(group)}/import-jobs"

    def import_job(self, group: str, job: str) -> str:
        return f"{self.import_jobs(group)}/{validate_name(job, 'import job')}.json"

    def solutions(self, group: str) -> str:
        return f"{self.group(group)}/solutions"

    def solution(self, group: str, solution: str) -> str:
        return f"{self.solutions(group)}/{validate_name(solution, 'solution')}"

    def solution_record(self, group: str, solution: str) -> str:
        return f"{self.solution(group, solution)}/solution.json"

    def versions(self, group: str, solution: str) -> str:
        return f"{self.solution(group, solution)}/versions"

    def version(self, group: str, solution: str, version: str) -> str:
        return f"{self.versions(group, solution)}/{validate_name(version, 'solution version')}"

    def version_record(self, group: str, solution: str, version: str) -> str:
        return f"{self.version(group, solution, version)}/version.json"

    def campaigns(self, group: str) -> str:
        return f"{self.group(group)}/campaigns"

    def campaign_record(self, group: str, campaign: str) -> str:
        return f"{self.campaigns(group)}/{validate_name(campaign, 'campaign')}.json"

    def batch_inference_jobs(self, group: str) -> str:
        return f"{self.group(group)}/batch-inference-jobs"

    def batch_inference_job(self, group: str, job: str) -> str:
        return f"{self.batch_inference_files(group, job)}.json"

    def batch_inference_files(self, group: str, job: str) -> str:
        """A batch inference job's files: `users.json` (its users, if given) and `{run}/` (outputs)."""
        return f"{self.batch_inference_jobs(group)}/{validate_name(job, 'batch inference job')}"

    def batch_inference_users(self, group: str, job: str) -> str:
        return f"{self.batch_inference_files(group, job)}/users.json"

    def batch_inference_output(self, group: str, job: str, run: str, output: str) -> str:
        """One output (`answers`, `segments`) of one run: visible once the job's record names it."""
        if output not in BATCH_OUTPUTS:
            raise ValueError(f"invalid batch inference output {output!r}")
        return f"{self.batch_inference_files(group, job)}/{validate_name(run, 'run id')}/{output}.parquet"

    def events(self, group: str) -> str:
        """Real-time events: `wal/{h}.json` until flushed, `done/{h}` after (h: 32 hex)."""
        return f"{self.group(group)}/events"

    def event_wal(self, group: str, event_hash: str) -> str:
        return f"{self.events(group)}/wal/{_hex32(event_hash)}.json"

    def event_done(self, group: str, event_hash: str) -> str:
        return f"{self.events(group)}/done/{_hex32(event_hash)}"

    def upload(self, upload_id: str) -> str:
        if not re.fullmatch(r"[a-f0-9]{32}", upload_id):
            raise ValueError(f"invalid upload id {upload_id!r}")
        return f"{self.root}/uploads/{upload_id}"


def _hex32(value: str) -> str:
    if not re.fullmatch(r"[a-f0-9]{32}", value):
        raise ValueError(f"invalid event hash {value!r}")
    return value


@dataclass
class Record:
    doc: dict[str, Any]
    etag: str


class Registry:
    """JSON records over a backend. Writers never overwrite each other's changes."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def create(self, key: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Create `key` holding `doc`; AlreadyExists if it exists (also under a race)."""
        try:
            self.backend.create(key, _dump(doc))
        except PreconditionFailed:
            raise AlreadyExists(key) from None
        return doc

    def get(self, key: str) -> Record:
        try:
            data, etag = self.backend.get(key)
        except FileNotFoundError:
            raise NotFound(key) from None
        return Record(json.loads(data), etag)

    def read(self, key: str) -> dict[str, Any]:
        return self.get(key).doc

    def update(self, key: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
               *, attempts: int = 50) -> dict[str, Any]:
        """Apply `mutate` (returns the new doc, or None to leave it) with compare-and-swap.

        `mutate` may be called several times if others write concurrently; it must be pure.
        """
        for attempt in range(attempts):
            if attempt:
                backoff(attempt - 1)
            rec = self.get(key)
            new = mutate(dict(rec.doc))
            if new is None:
                return rec.doc
            try:
                self.backend.replace(key, _dump(new), rec.etag)
                return new
            except PreconditionFailed:
                continue
        raise RuntimeError(f"too much contention updating {key}")

    def delete(self, key: str) -> None:
        self.backend.delete(key)

    def list(self, prefix: str, suffix: str) -> list[dict[str, Any]]:
        """Records named `{prefix}/*{suffix}`, or `{prefix}/*/{name}` when suffix is `/{name}`.

        Lists one level only, so the Parquet parts below a record's folder are never walked.
        """
        files, folders = self.backend.children(prefix)
        if suffix.startswith("/"):
            keys = [folder + suffix for folder in folders]
        else:
            keys = [f for f in files if f.endswith(suffix)]
        out = []
        for key in keys:
            try:
                out.append(self.read(key))
            except NotFound:
                continue  # deleted while listing, or a folder without a record
        return out


def dump_json(doc: Any, *, indent: int | None = None) -> bytes:
    """Strict JSON (RFC 8259) bytes: a NaN or infinite float becomes null, never `NaN`/`Infinity`.

    Every record and document the platform writes goes through here, so any JSON parser (the
    SDK's, a browser's, `jq`) reads it.
    """
    return json.dumps(_finite(doc), sort_keys=True, default=str, allow_nan=False, indent=indent).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dump(doc: dict[str, Any]) -> bytes:
    return dump_json(doc)
