"""Where jobs run: a Ray cluster (local, started on demand, or remote by address) or threads.

The control plane hands every job to a runner. Jobs record their own progress and outcome in
the store; the runner only adds a watcher that marks a job failed if its task dies without
saying so (a worker killed, the cluster gone).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sdk.types import Status
from store import Keys, NotFound, Store, now_iso

from .dataset_import import import_task

__all__ = ["JobRunner", "RayJobRunner", "ThreadJobRunner", "make_runner"]

log = logging.getLogger("tagrec.jobs")


class JobRunner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._held: set[tuple[str, str, str]] = set()
        self._held_lock = threading.Lock()

    def submit_import(self, tenant: str, group: str, job: str) -> None:
        raise NotImplementedError

    def is_tracked(self, tenant: str, group: str, job: str) -> bool:
        """Whether this runner holds the job (submitted, not finished)."""
        with self._held_lock:
            return (tenant, group, job) in self._held

    def _hold(self, ident: tuple[str, str, str]) -> None:
        with self._held_lock:
            self._held.add(ident)

    def _release(self, ident: tuple[str, str, str]) -> None:
        with self._held_lock:
            self._held.discard(ident)

    def shutdown(self) -> None:
        pass

    def _mark_failed_if_open(self, tenant: str, group: str, job: str, reason: str) -> None:
        key = Keys(tenant).import_job(group, job)

        def fail(doc: dict[str, Any]) -> dict[str, Any] | None:
            if doc["status"] not in (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value):
                return None
            return {**doc, "status": Status.CREATE_FAILED.value, "failure_reason": reason,
                    "updated_at": now_iso()}

        try:
            self.store.registry.update(key, fail)
        except NotFound:
            pass


class ThreadJobRunner(JobRunner):
    """Runs jobs on threads of the control plane process: for tiny setups without Ray."""

    def __init__(self, store: Store, max_workers: int = 2) -> None:
        super().__init__(store)
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tagrec-job")

    def submit_import(self, tenant: str, group: str, job: str) -> None:
        self._hold((tenant, group, job))
        future = self.pool.submit(import_task, self.store.config.as_dict(), tenant, group, job)

        def done(f: Any) -> None:
            self._release((tenant, group, job))
            if not f.cancelled() and f.exception() is not None:
                self._mark_failed_if_open(tenant, group, job, f"job crashed: {f.exception()!r}")

        future.add_done_callback(done)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class RayJobRunner(JobRunner):
    """Runs each job as a Ray task. `address=None` starts a local cluster on first use."""

    def __init__(self, store: Store, address: str | None = None, num_cpus: int | None = None,
                 object_store_mb: int = 256) -> None:
        super().__init__(store)
        self.address = address
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self._lock = threading.Lock()
        self._remote: Any = None

    def _ensure_ray(self) -> Any:
        with self._lock:
            if self._remote is None:
                import ray

                if not ray.is_initialized():
                    env = {k: v for k, v in os.environ.items()
                           if k.startswith(("AWS_", "TAGREC_"))}
                    if self.address:
                        ray.init(address=self.address, runtime_env={"env_vars": env},
                                 log_to_driver=False)
                    else:
                        # Small machines: no dashboard, a modest object store, loopback only.
                        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
                        ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(),
                                 include_dashboard=False, log_to_driver=False,
                                 object_store_memory=self.object_store_mb << 20,
                                 runtime_env={"env_vars": env})
                self._remote = ray.remote(num_cpus=1, max_retries=0)(import_task)
            return self._remote

    def submit_import(self, tenant: str, group: str, job: str) -> None:
        remote = self._ensure_ray()
        self._hold((tenant, group, job))
        ref = remote.remote(self.store.config.as_dict(), tenant, group, job)
        threading.Thread(target=self._watch, args=(ref, tenant, group, job), daemon=True,
                         name=f"watch-{job}").start()

    def _watch(self, ref: Any, tenant: str, group: str, job: str) -> None:
        import ray

        try:
            ray.get(ref)
        except Exception as e:  # the task died (worker killed, OOM, cluster lost)
            log.warning("import job %s/%s/%s died: %r", tenant, group, job, e)
            self._mark_failed_if_open(tenant, group, job, f"job crashed: {type(e).__name__}: "
                                                          f"{str(e).splitlines()[0][:300]}")
        finally:
            self._release((tenant, group, job))

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def make_runner(store: Store, executor: str = "ray", address: str | None = None) -> JobRunner:
    if executor == "ray":
        return RayJobRunner(store, address=address)
    if executor == "thread":
        return ThreadJobRunner(store)
    raise ValueError(f"unknown executor {executor!r}: use 'ray' or 'thread'")
