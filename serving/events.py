"""Real-time events of one dataset group: acknowledged only once durable, stored exactly once.

`EventLog.put` writes each event to the write-ahead log in the store before it answers: one
object per event at `events/wal/{h}.json`, created with create-if-absent, where `h` hashes
(user id, event id). A retried event id finds its object (or its `done/{h}` marker) and is
counted as a duplicate, never stored twice. The events are also kept in memory, per user, so the
campaigns of the group see them at their next request (HRNN-meta re-runs its GRU over them).

`flush` micro-batches the log into the interactions dataset as an incremental Parquet snapshot:

1. claim: write `done/{h}` = the new snapshot id for every event taken;
2. publish the snapshot (one compare-and-swap of the dataset's CURRENT);
3. delete the taken WAL objects.

A crash after 1 leaves claims on a snapshot that was never published: the next flush takes those
events again. A crash after 2 leaves WAL objects whose claim is published: the next flush only
deletes them. So a kill -9 at any point loses nothing acknowledged and duplicates nothing.
On start, an EventLog replays its group's WAL into memory and flushes it.

In local Ray mode the log of a group is a named Ray actor (`event_log_actor`), shared by the
control plane (which puts) and the campaign replicas (which read recent events).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

import pyarrow as pa

from sdk.types import Role, Schema
from store import AlreadyExists, Keys, NotFound, Store, StoreConfig, now_iso
from store.snapshots import SnapshotWriter, new_snapshot_id, publish, read_current, read_manifest
from store.tables import arrow_schema

__all__ = ["EventLog", "EventsRefused", "event_hash", "event_log_actor", "FLUSH_EVERY_S"]

log = logging.getLogger("tagrec.events")

FLUSH_EVERY_S = float(os.environ.get("TAGREC_EVENTS_FLUSH_S") or 5.0)
FLUSH_AT = 5000  # pending events that trigger a flush before the timer
RECENT_PER_USER = 256  # events per user (and per session) kept in memory
RECENT_USERS = 200_000  # users (and sessions) kept in memory (least recently written dropped first)
_ROLES = (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP, Role.EVENT_TYPE, Role.EVENT_VALUE, Role.SESSION_ID,
          Role.TAGS)


class EventsRefused(ValueError):
    """The group cannot take events (no interactions dataset, or fields events cannot fill)."""


def event_hash(user_id: str, event_id: str) -> str:
    return hashlib.sha256(f"{user_id}\0{event_id}".encode()).hexdigest()[:32]


class EventLog:
    """The events of one dataset group (thread-safe)."""

    def __init__(self, store_config: dict[str, Any], tenant: str, group: str, *,
                 flush_every_s: float = FLUSH_EVERY_S, flush_at: int = FLUSH_AT,
                 autostart: bool = True) -> None:
        self.store = Store(StoreConfig(**store_config))
        self.keys = Keys(tenant)
        self.group = group
        self.flush_every_s, self.flush_at = flush_every_s, flush_at
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # Recent events by user and by session (the two history keys of the tasks), as
        # (item_id, seconds, event_type, event_value, tags) tuples.
        self._recent: dict[str, OrderedDict[str, deque[tuple[Any, ...]]]] = {
            "user": OrderedDict(), "session": OrderedDict()}
        self._pending = 0
        self._schema_cache: tuple[Schema, float] | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.flushed_events = 0
        for key in self._wal_keys():  # replay what was acknowledged but not flushed
            try:
                self._remember(self.store.registry.read(key))
                self._pending += 1
            except NotFound:
                pass
        self._thread = threading.Thread(target=self._flush_loop, daemon=True,
                                        name=f"events-{tenant}-{group}")
        if autostart:
            self._thread.start()

    # --- writing ---------------------------------------------------------------------------
    def _schema(self) -> Schema:
        """The interactions schema (read at most every few seconds: `put` is a hot path; the
        log is closed when its dataset is deleted)."""
        if self._schema_cache is not None and self._schema_cache[1] > time.monotonic():
            return self._schema_cache[0]
        schema = self._read_schema()
        self._schema_cache = (schema, time.monotonic() + 5.0)
        return schema

    def _read_schema(self) -> Schema:
        try:
            doc = self.store.registry.read(self.keys.dataset_record(self.group, "interactions"))
        except NotFound:
            raise EventsRefused(f"dataset group {self.group!r} has no interactions dataset: "
                                f"create it before sending events") from None
        schema = Schema.model_validate(doc["schema"])
        unfillable = [f.name for f in schema.fields if f.role not in _ROLES and not f.nullable]
        if unfillable:
            raise EventsRefused(f"the interactions schema has non-nullable field(s) events cannot "
                                f"fill: {', '.join(unfillable)}")
        return schema

    def put(self, user_id: str, session_id: str, events: list[dict[str, Any]]) -> dict[str, int]:
        """Log events durably; returns how many were accepted and how many were duplicates."""
        schema = self._schema()
        for role, key in ((Role.EVENT_TYPE, "event_type"), (Role.EVENT_VALUE, "event_value")):
            f = schema.field_for(role)
            missing = [i for i, e in enumerate(events) if e.get(key) is None]
            if f is not None and not f.nullable and missing:
                raise EventsRefused(f"events.{missing[0]}.{key}: required (the interactions "
                                    f"dataset's {f.name!r} field is not nullable)")
        item_field, tags_field = schema.field_for(Role.ITEM_ID), schema.field_for(Role.TAGS)
        for i, e in enumerate(events):
            if e.get("item_id") is None and (item_field is None or not item_field.nullable):
                raise EventsRefused(f"events.{i}.item_id: required (the interactions dataset's item "
                                    f"field is not nullable: a tag click needs a nullable ITEM_ID)")
            if e.get("tags") and tags_field is None:
                raise EventsRefused(f"events.{i}.tags: the interactions dataset has no TAGS field")
            if not e.get("tags") and tags_field is not None and not tags_field.nullable:
                raise EventsRefused(f"events.{i}.tags: required (the interactions dataset's "
                                    f"{tags_field.name!r} field is not nullable)")
        value_field = schema.field_for(Role.EVENT_VALUE)
        if value_field is not None and value_field.type.value == "int":  # must convert at flush
            for i, e in enumerate(events):
                v = e.get("event_value")
                if v is not None and (float(v) != int(v) or abs(v) >= 2**63):
                    raise EventsRefused(f"events.{i}.event_value: {v!r} is not a whole number (the "
                                        f"interactions dataset's {value_field.name!r} field is int)")
        now = time.time()
        accepted = duplicates = 0
        for event in events:
            event_id = event.get("event_id") or uuid.uuid4().hex
            h = event_hash(user_id, event_id)
            if self.store.backend.exists(self.keys.event_done(self.group, h)):
                duplicates += 1
                continue
            stamp = event.get("timestamp")
            record = {"user_id": user_id, "session_id": session_id, "item_id": event.get("item_id"),
                      # milliseconds, as the dataset stores them (history merges compare them)
                      "timestamp": round(float(now if stamp is None else stamp), 3),
                      "event_type": event.get("event_type"), "event_value": event.get("event_value"),
                      "tags": event.get("tags"),
                      "event_id": event_id, "received_at": now_iso()}
            try:
                self.store.registry.create(self.keys.event_wal(self.group, h), record)
            except AlreadyExists:
                duplicates += 1
                continue
            self._remember(record)
            accepted += 1
        with self._lock:
            self._pending += accepted
            if self._pending >= self.flush_at:
                self._wake.set()
        return {"accepted": accepted, "duplicates": duplicates}

    def _remember(self, record: dict[str, Any]) -> None:
        tags = record.get("tags")
        event = (record["item_id"], record["timestamp"], record.get("event_type"),
                 record.get("event_value"), tuple(tags) if tags else None)
        with self._lock:
            for by, key in (("user", record["user_id"]), ("session", record.get("session_id"))):
                if key is None:
                    continue
                recent = self._recent[by]
                events = recent.pop(key, None) or deque(maxlen=RECENT_PER_USER)
                events.append(event)
                recent[key] = events
                while len(recent) > RECENT_USERS:
                    recent.popitem(last=False)

    def recent(self, keys: list[str], by: str = "user") -> dict[str, list[tuple[Any, ...]]]:
        """The events received for each user (`by="user"`) or session (`by="session"`), those
        still in memory, oldest first, as (item_id, seconds, event_type, event_value, tags)."""
        with self._lock:
            recent = self._recent[by]
            return {k: sorted(recent[k], key=lambda e: e[1]) for k in keys if k in recent}

    # --- flushing ----------------------------------------------------------------------------
    def _wal_keys(self) -> list[str]:
        return sorted(k for k in self.store.backend.list(f"{self.keys.events(self.group)}/wal")
                      if k.endswith(".json"))

    def _published(self, snapshot_id: str, current: Any) -> bool:
        """Whether `snapshot_id` was published: its parts are in the current snapshot, or it is
        the current one or an ancestor (ids sort by time, so the walk stops at older ones)."""
        if current is not None:
            part_prefix = f"{self.keys.snapshot(self.group, 'interactions', snapshot_id)}/"
            if any(p.startswith(part_prefix) for p in current.parts):
                return True
        manifest = current
        while manifest is not None and manifest.snapshot_id >= snapshot_id:
            if manifest.snapshot_id == snapshot_id:
                return True
            if not manifest.parent:
                return False
            manifest = read_manifest(self.store.backend, self.keys, self.group, "interactions",
                                     manifest.parent)
        return False

    def flush(self) -> int:
        """Write the logged events into the interactions dataset; returns how many."""
        with self._flush_lock:
            schema = self._schema()
            backend, registry = self.store.backend, self.store.registry
            current = read_current(backend, self.keys, self.group, "interactions")
            snapshot_id = new_snapshot_id()
            taken: list[tuple[str, dict[str, Any]]] = []
            settled: list[str] = []
            for key in self._wal_keys():
                try:
                    record = registry.read(key)
                except NotFound:
                    continue
                h = key.rsplit("/", 1)[1].removesuffix(".json")
                done = self.keys.event_done(self.group, h)
                try:
                    claim = registry.read(done)
                except NotFound:
                    claim = None
                if claim is not None and self._published(claim["snapshot_id"], current):
                    settled.append(key)  # flushed before a crash; only the WAL object was left
                    continue
                taken.append((key, record))
            for key in settled:
                backend.delete(key)
            if not taken:
                return 0
            for key, _ in taken:  # 1. claim
                h = key.rsplit("/", 1)[1].removesuffix(".json")
                backend.put(self.keys.event_done(self.group, h),
                            f'{{"snapshot_id": "{snapshot_id}"}}'.encode())
            table = _to_table([r for _, r in taken], schema)
            writer = SnapshotWriter(backend, self.keys, self.group, "interactions", snapshot_id,
                                    arrow_schema(schema))
            try:
                for batch in table.to_batches():
                    writer.write(batch)
                parts = writer.close()
            except BaseException:
                writer.abort()
                raise
            publish(backend, self.keys, self.group, "interactions", snapshot_id, parts,  # 2.
                    table.num_rows, schema.model_dump(mode="json", by_alias=True), "incremental")
            for key, _ in taken:  # 3.
                backend.delete(key)
            with self._lock:
                self._pending = max(0, self._pending - len(taken))
            self.flushed_events += len(taken)
            log.info("flushed %d events of %s/%s into snapshot %s", len(taken), self.keys.tenant,
                     self.group, snapshot_id)
            return len(taken)

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_every_s)
            self._wake.clear()
            if self._closed.is_set():
                return
            with self._lock:
                pending = self._pending
            if not pending:
                continue
            try:
                self.flush()
            except EventsRefused as e:
                log.warning("cannot flush events of %s: %s", self.group, e)
            except Exception:  # the store failing: the WAL keeps everything; retried next time
                log.exception("flushing events of %s failed", self.group)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def close(self) -> None:
        self._closed.set()
        self._wake.set()


def _to_table(records: list[dict[str, Any]], schema: Schema) -> pa.Table:
    """Events as rows of the tenant's interactions schema (fields without a role left null)."""
    target = arrow_schema(schema)
    by_role = {
        Role.USER_ID: [r["user_id"] for r in records],
        Role.ITEM_ID: [r["item_id"] for r in records],
        Role.TIMESTAMP: [int(round(r["timestamp"] * 1000)) for r in records],
        Role.EVENT_TYPE: [r.get("event_type") for r in records],
        Role.EVENT_VALUE: [r.get("event_value") for r in records],
        Role.SESSION_ID: [r.get("session_id") for r in records],
        Role.TAGS: [r.get("tags") for r in records],
    }
    columns = []
    for f, field in zip(schema.fields, target):
        values = by_role.get(f.role) if f.role is not None else None
        if values is None:
            columns.append(pa.nulls(len(records), field.type))
        elif f.role == Role.TIMESTAMP:
            columns.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            columns.append(pa.array(values).cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def event_log_actor(store_config: dict[str, Any], tenant: str, group: str) -> Any:
    """The group's EventLog as a named, detached Ray actor (created on first use)."""
    import ray

    name = f"events:{tenant}:{group}"
    return ray.remote(EventLog).options(
        name=name, namespace="tagrec", lifetime="detached", get_if_exists=True, num_cpus=0,
        max_concurrency=16,
    ).remote(store_config, tenant, group)
