"""The control plane's event logs, one per dataset group (`serving.events.EventLog` is the log).

`EventLogs` keeps them in this process (the thread executor, no Ray). `ActorEventLogs` keeps each
as its group's named, detached Ray actor on the job runner's cluster, shared with the campaign
replicas that read recent events; `start_ray` (`RayJobRunner.ensure_ray`) starts the cluster
from the runner's owner thread first. After a restart, `recover` flushes the events acknowledged
before it (they wait in the store's write-ahead log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from store import Keys, Store
from store.tenants import list_tenants

from .events import EventLog, event_log_actor

__all__ = ["ActorEventLogs", "EventLogs"]

log = logging.getLogger("tagrec.events")


class EventLogs:
    """The groups' event logs, in this process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, str], Any] = {}

    def get(self, tenant: str, group: str) -> Any:
        """The group's log: put(user_id, session_id, events), recent(keys, by), flush()."""
        with self._lock:
            if (tenant, group) not in self._logs:
                self._logs[(tenant, group)] = self._open(tenant, group)
            return self._logs[(tenant, group)]

    def close(self, tenant: str, group: str) -> None:
        """Forget a group's log (its group or interactions dataset is being deleted)."""
        with self._lock:
            found = self._logs.pop((tenant, group), None)
        if found is not None:
            self._close(found)

    def recover(self) -> None:
        """Flush every group's events acknowledged before a restart."""
        registry = self.store.registry
        for tenant in list_tenants(registry):
            keys = Keys(tenant)
            for doc in registry.list(keys.groups(), "/group.json"):
                group = doc["name"]
                if any(True for _ in self.store.backend.list(f"{keys.events(group)}/wal")):
                    try:
                        self.get(tenant, group).flush()
                    except Exception:
                        log.exception("could not recover the events of %s/%s", tenant, group)

    def _open(self, tenant: str, group: str) -> Any:
        return EventLog(self.store.config.as_dict(), tenant, group)

    def _close(self, found: Any) -> None:
        found.close()


class ActorEventLogs(EventLogs):
    """The groups' event logs as Ray actors (one handle per group, kept: looked up once)."""

    def __init__(self, store: Store, start_ray: Callable[[], None]) -> None:
        super().__init__(store)
        self._start_ray = start_ray

    def get(self, tenant: str, group: str) -> Any:
        self._start_ray()
        return super().get(tenant, group)

    def _open(self, tenant: str, group: str) -> Any:
        return _ActorLog(event_log_actor(self.store.config.as_dict(), tenant, group))

    def _close(self, found: Any) -> None:
        import ray

        ray.kill(found.handle)  # detached: it would otherwise outlive its group


class _ActorLog:
    """An EventLog actor behind the EventLog interface (calls block until answered)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def put(self, user_id: str, session_id: str, events: list[dict[str, Any]]) -> dict[str, int]:
        import ray

        try:
            return ray.get(self.handle.put.remote(user_id, session_id, events))
        except ray.exceptions.RayTaskError as e:  # the log's own error, not Ray's wrapper of it
            raise e.cause if isinstance(getattr(e, "cause", None), Exception) else e from None

    def recent(self, keys: list[str], by: str = "user") -> dict[str, list[tuple[Any, ...]]]:
        import ray

        return ray.get(self.handle.recent.remote(keys, by))

    def flush(self) -> int:
        import ray

        return ray.get(self.handle.flush.remote())
