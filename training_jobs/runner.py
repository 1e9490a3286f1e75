"""Where jobs run: a Ray cluster (local, started on demand, or remote by address) or threads.

The control plane hands every import, training and batch inference job to a runner. Jobs record
their own progress and outcome in the store; the runner only adds a watcher that marks a job failed
if its task dies without saying so (a worker killed, the cluster gone), and tells which jobs it holds.

`RayJobRunner` also owns the Ray cluster of the process: it starts Ray from one long-lived
thread (`ensure_ray`) and stops it at `shutdown`. The control plane's other users of the cluster
(campaign deployments and event logs, in `serving`) call `ensure_ray` before they touch Ray.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sdk.types import Status
from store import Keys, NotFound, Store, now_iso

from .dataset_import import import_task

# The version job imports torch and the recipes: loaded when the first version is submitted.
__all__ = ["JobRunner", "RayJobRunner", "ThreadJobRunner", "crash_reason", "make_runner"]

log = logging.getLogger("tagrec.jobs")


_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = [str(_ROOT / p) for p in ("sdk", "store", "recipes", "training_jobs", "serving")]
_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_OPEN = (Status.CREATE_PENDING.value, Status.CREATE_IN_PROGRESS.value, Status.CREATE_STOPPING.value)


class JobRunner:
    """Runs jobs; jobs are known by the key of their record in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._held: set[str] = set()
        self._held_lock = threading.Lock()

    def submit_import(self, tenant: str, group: str, job: str) -> None:
        self._submit(Keys(tenant).import_job(group, job), import_task, tenant, group, job)

    def submit_version(self, tenant: str, group: str, solution: str, version: str) -> None:
        from .solution_version import version_task

        self._submit(Keys(tenant).version_record(group, solution, version), version_task,
                     tenant, group, solution, version)

    def submit_batch_inference(self, tenant: str, group: str, job: str) -> None:
        from .batch_inference import batch_inference_task

        self._submit(Keys(tenant).batch_inference_job(group, job), batch_inference_task, tenant, group, job)

    def _submit(self, key: str, task: Any, *args: str) -> None:
        raise NotImplementedError

    def is_tracked(self, key: str) -> bool:
        """Whether this runner holds the job of record `key` (submitted, not finished)."""
        with self._held_lock:
            return key in self._held

    def _hold(self, key: str) -> None:
        with self._held_lock:
            self._held.add(key)

    def _release(self, key: str) -> None:
        with self._held_lock:
            self._held.discard(key)

    def shutdown(self) -> None:
        pass

    def _mark_failed_if_open(self, key: str, reason: str) -> None:
        def fail(doc: dict[str, Any]) -> dict[str, Any] | None:
            if doc["status"] not in _OPEN:
                return None
            stopped = doc["status"] == Status.CREATE_STOPPING.value
            return {**doc, "status": Status.CREATE_STOPPED.value if stopped else Status.CREATE_FAILED.value,
                    "failure_reason": None if stopped else reason, "updated_at": now_iso()}

        try:
            self.store.registry.update(key, fail)
        except NotFound:
            pass


class ThreadJobRunner(JobRunner):
    """Runs jobs on threads of the control plane process: for tiny setups without Ray."""

    def __init__(self, store: Store, max_workers: int = 2) -> None:
        super().__init__(store)
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tagrec-job")

    def submit_version(self, tenant: str, group: str, solution: str, version: str) -> None:
        raise RuntimeError("training runs on Ray: start the platform with the Ray executor")

    def submit_batch_inference(self, tenant: str, group: str, job: str) -> None:
        raise RuntimeError("batch inference runs on Ray: start the platform with the Ray executor")

    def _submit(self, key: str, task: Any, *args: str) -> None:
        self._hold(key)
        future = self.pool.submit(task, self.store.config.as_dict(), *args)

        def done(f: Any) -> None:
            self._release(key)
            if not f.cancelled() and f.exception() is not None:
                self._mark_failed_if_open(key, crash_reason(f.exception(), _what(key)))

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
        self._remote: dict[Any, Any] = {}
        self._owner: _RayOwner | None = None
        if address is None:
            # A local cluster is for this machine only: with this set before `ray` is imported,
            # Ray takes 127.0.0.1 as the node address and its GCS, raylet, agents and workers
            # listen there (otherwise on the machine's network address and on all interfaces).
            os.environ.setdefault(_LOCAL_ONLY, "0")

    def ensure_ray(self) -> None:
        """Start Ray once, from the owner thread (see `_RayOwner`); every user of it calls this."""
        with self._lock:
            if self._owner is None:
                self._owner = _RayOwner(self._init_ray)
                try:
                    self._owner.start()
                except BaseException:
                    self._owner = None
                    raise

    def _ensure_ray(self, task: Any) -> Any:
        """Ray started, and `task` as a Ray remote function."""
        self.ensure_ray()
        with self._lock:
            if task not in self._remote:
                import ray

                self._remote[task] = ray.remote(num_cpus=_num_cpus(task), max_retries=0)(task)
            return self._remote[task]

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "TAGREC_"))}
        if self.address:
            # A cluster elsewhere runs our code too: ship the product's packages
            # (its Python environment must have the same dependencies).
            ray.init(address=self.address, log_to_driver=False,
                     runtime_env={"env_vars": env, "py_modules": _PACKAGES})
            return
        # Small machines: no dashboard, a modest object store; loopback only (see __init__).
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            log.warning("ray was imported before the platform set %s=0: the local cluster will "
                        "listen on this machine's network address, not only on loopback", _LOCAL_ONLY)
        ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(),
                 include_dashboard=False, log_to_driver=False,
                 object_store_memory=self.object_store_mb << 20, runtime_env={"env_vars": env})

    def _submit(self, key: str, task: Any, *args: str) -> None:
        # Held before Ray is started: the first job waits for the local cluster (10-30 s on a busy
        # machine), and the reaper must not take it for a job nobody runs meanwhile.
        self._hold(key)
        try:
            remote = self._ensure_ray(task)
            ref = remote.remote(self.store.config.as_dict(), *args)
        except BaseException:
            self._release(key)
            raise
        threading.Thread(target=self._watch, args=(ref, key), daemon=True,
                         name=f"watch-{args[-1]}").start()

    def _watch(self, ref: Any, key: str) -> None:
        import ray

        try:
            ray.get(ref)
        except Exception as e:  # the task died (worker killed, OOM, cluster lost)
            log.warning("job %s died: %r", key, e)
            self._mark_failed_if_open(key, crash_reason(e, _what(key)))
        finally:
            self._release(key)

    def shutdown(self) -> None:
        with self._lock:  # a Ray still starting is stopped once started, never left running
            owner = self._owner
        if owner is not None:
            owner.stop()


class _RayOwner(threading.Thread):
    """The one thread that starts Ray and lives as long as the platform.

    `ray.init` forks the GCS server and the raylet with a parent-death signal, which Linux sends
    when the forking *thread* ends, not the process: started from a request's worker thread (which
    AnyIO prunes after 10 s idle) or a deploy thread, the local cluster would be SIGKILLed later and
    the platform would die a minute on. So Ray is started here, and stopped here.
    """

    def __init__(self, init: Any) -> None:
        super().__init__(name="ray-owner", daemon=True)
        self._init = init
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        super().start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def run(self) -> None:
        try:
            self._init()
        except BaseException as e:  # noqa: BLE001 - handed to the caller of start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._stopping.wait()
        import ray

        if ray.is_initialized():
            ray.shutdown()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


def _num_cpus(task: Any) -> int:
    """The CPUs a job's task holds. An import reads and writes on one, a batch inference job predicts
    on one. A version's driver mostly waits for its Ray Train workers (which hold the CPUs it asks
    for): it takes none, so a 2-worker version fits a 2-CPU machine."""
    versions = sys.modules.get(f"{__package__}.solution_version")  # loaded by the first submit_version
    return 0 if versions is not None and task is versions.version_task else 1


def crash_reason(e: BaseException, what: str = "the job") -> str:
    """Why a job died, in the platform's words (never Ray's internals or log file names)."""
    name = type(e).__name__
    if name in ("OutOfMemoryError", "ObjectStoreFullError", "OutOfDiskError", "MemoryError"):
        return (f"{what} ran out of memory on the cluster and was stopped; nothing it had written "
                "was published. Retry with less data per request or more memory per worker.")
    if name in ("WorkerCrashedError", "ActorDiedError", "NodeDiedError", "LocalRayletDiedError",
                "RaySystemError", "ActorUnavailableError", "TaskUnschedulableError",
                "ActorUnschedulableError", "RuntimeEnvSetupError"):
        return (f"{what} was stopped before it finished (its process on the cluster was killed or "
                "the cluster was restarted); nothing it had written was published. Run it again.")
    if name == "TaskCancelledError":
        return f"{what} was cancelled before it finished; nothing it had written was published."
    if name == "RayTaskError" or name.startswith("RayTaskError("):
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            return crash_reason(cause, what)
    first = (str(e).splitlines() or [""])[0][:300]
    return f"{what} failed with an internal error ({name}{': ' + first if first else ''})"


def _what(key: str) -> str:
    if "/import-jobs/" in key:
        return "the import job"
    return "the batch inference job" if "/batch-inference-jobs/" in key else "the training job"


def make_runner(store: Store, executor: str = "ray", address: str | None = None) -> JobRunner:
    """The runner of `executor`: "ray" (a cluster at `address`, default local) or "thread"."""
    if executor == "ray":
        return RayJobRunner(store, address=address)
    if executor == "thread":
        return ThreadJobRunner(store)
    raise ValueError(f"unknown executor {executor!r}: use 'ray' or 'thread'")
