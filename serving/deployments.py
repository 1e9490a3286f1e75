"""Campaign deployments: the control plane's side of Ray Serve (`serving.campaign` is the replicas').

`Deployments` rolls a campaign record out as its Serve application in the background (one
rollout per campaign at a time) and writes the outcome on the record; it removes applications,
and after a restart deploys the live campaigns again. Serve runs on the Ray cluster of the job
runner: `start_ray` (`RayJobRunner.ensure_ray`) starts it from the runner's owner thread first.
Without `start_ray` there is no Serve: deploying is refused with a RuntimeError.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sdk.types import Status
from store import Keys, NotFound, Store, now_iso
from store.tenants import list_tenants
from training_jobs.runner import crash_reason

__all__ = ["Deployments"]

log = logging.getLogger("tagrec.campaigns")

_NO_SERVE = "campaigns run on Ray Serve: start the platform with the Ray executor"


class Deployments:
    """Campaigns on Ray Serve; a campaign is known by the key of its record in the store.

    Args:
        store: Where the campaign records live.
        start_ray: Starts (once) the Ray cluster Serve runs on; None: no Serve.
        serve_host: Where Serve's HTTP proxy listens.
        serve_port: Its port.
        serve_url: The proxy's public URL, the base of every campaign's endpoint
            (default http://serve_host:serve_port).
    """

    def __init__(self, store: Store, start_ray: Callable[[], None] | None = None, *,
                 serve_host: str = "127.0.0.1", serve_port: int = 8000, serve_url: str | None = None) -> None:
        self.store = store
        self._start_ray = start_ray
        self.serve_host, self.serve_port = serve_host, serve_port
        self.serve_url = (serve_url or f"http://{serve_host}:{serve_port}") if start_ray else None
        self._lock = threading.Lock()  # the held keys and the per-campaign locks
        self._serve_lock = threading.Lock()  # Serve is started once
        self._serve_started = False
        self._campaign_locks: dict[str, threading.Lock] = {}
        self._held: set[str] = set()

    def deploy(self, tenant: str, group: str, campaign: str) -> None:
        """Deploy (or update) in the background; the record says how it went."""
        if self._start_ray is None:
            raise RuntimeError(_NO_SERVE)
        key = Keys(tenant).campaign_record(group, campaign)
        with self._lock:
            self._held.add(key)
        threading.Thread(target=self._deploy, args=(tenant, group, campaign, key), daemon=True,
                         name=f"deploy-{campaign}").start()

    def delete(self, tenant: str, group: str, campaign: str) -> None:
        """Remove the campaign's application (blocks until it is gone)."""
        from serving.campaign import undeploy

        self._ensure_serve()
        with self._campaign_lock(Keys(tenant).campaign_record(group, campaign)):
            undeploy(tenant, group, campaign)

    def is_tracked(self, key: str) -> bool:
        """Whether a rollout of campaign record `key` is in flight."""
        with self._lock:
            return key in self._held

    def recover(self) -> None:
        """After a restart: deploy every live campaign again (an update rolling out included)."""
        if self._start_ray is None:
            return
        registry = self.store.registry
        for tenant in list_tenants(registry):
            keys = Keys(tenant)
            for group in registry.list(keys.groups(), "/group.json"):
                for c in registry.list(keys.campaigns(group["name"]), ".json"):
                    if c["status"] == Status.ACTIVE.value or c.get("pending_update"):
                        self.deploy(tenant, group["name"], c["name"])

    def _campaign_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._campaign_locks.setdefault(key, threading.Lock())

    def _ensure_serve(self) -> None:
        if self._start_ray is None:
            raise RuntimeError(_NO_SERVE)
        self._start_ray()
        with self._serve_lock:
            if not self._serve_started:
                from serving.campaign import ensure_serve

                ensure_serve(self.serve_host, self.serve_port, store_config=self.store.config.as_dict())
                self._serve_started = True

    def _deploy(self, tenant: str, group: str, campaign: str, key: str) -> None:
        from serving.campaign import deploy

        registry = self.store.registry
        try:
            with self._campaign_lock(key):  # one rollout per campaign at a time
                doc = registry.read(key)
                target = {**doc, **(doc.get("pending_update") or {})}
                if doc["status"] == Status.CREATE_PENDING.value:
                    registry.update(key, lambda d: {**d, "status": Status.CREATE_IN_PROGRESS.value,
                                                    "updated_at": now_iso()})
                try:
                    self._ensure_serve()
                    deploy(self.store.config.as_dict(), tenant, group, target)
                except Exception as e:  # noqa: BLE001 - reported on the campaign
                    log.warning("deploying campaign %s failed: %r", key, e)
                    reason = f"deployment failed: {crash_reason(e, what='the deployment')}"

                    def failed(d: dict[str, Any]) -> dict[str, Any]:
                        if d.get("pending_update") and d["status"] == Status.ACTIVE.value:
                            return {**d, "pending_update": None, "last_update_failure": reason,
                                    "updated_at": now_iso()}
                        return {**d, "status": Status.CREATE_FAILED.value, "failure_reason": reason,
                                "updated_at": now_iso()}

                    registry.update(key, failed)
                    return
                fields = {k: target[k] for k in ("solution", "solution_version", "recipe", "task",
                                                 "min_replicas", "max_replicas", "max_ongoing_requests",
                                                 "max_queued_requests") if k in target}
                registry.update(key, lambda d: {**d, **fields, "status": Status.ACTIVE.value,
                                                "pending_update": None, "last_update_failure": None,
                                                "updated_at": now_iso()})
        except NotFound:
            pass  # deleted meanwhile
        finally:
            with self._lock:
                self._held.discard(key)
