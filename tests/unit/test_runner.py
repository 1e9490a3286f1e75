"""The job runner's bookkeeping (no Ray): a submitted job is tracked from the moment of its
submission, also while the local Ray cluster is still starting."""

from __future__ import annotations

import threading
from pathlib import Path

from store import Keys, Store, StoreConfig
from training_jobs.runner import RayJobRunner, crash_reason


class _SlowStart(RayJobRunner):
    """A runner whose Ray start takes as long as the test wants (the first job on a busy machine)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.starting, self.release = threading.Event(), threading.Event()

    def _ensure_ray(self, task):  # type: ignore[no-untyped-def]
        self.starting.set()
        self.release.wait(10)
        raise RuntimeError("no cluster in this test")


def test_a_job_is_tracked_while_ray_starts(tmp_path: Path) -> None:
    runner = _SlowStart(Store(StoreConfig(uri=f"file://{tmp_path}")))
    key = Keys("t").import_job("g", "j")
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            runner.submit_import("t", "g", "j")
        except RuntimeError as e:
            errors.append(e)

    worker = threading.Thread(target=submit)
    worker.start()
    assert runner.starting.wait(10)
    # The reaper asks this while the cluster starts: the job must not look abandoned.
    assert runner.is_tracked(key)
    runner.release.set()
    worker.join(10)
    assert errors and not runner.is_tracked(key)  # a failed submit is released (and raised)


def test_crash_reasons_are_the_platforms_words() -> None:
    class WorkerCrashedError(Exception):
        pass

    class OutOfMemoryError(Exception):
        pass

    assert "was stopped before it finished" in crash_reason(WorkerCrashedError("python-core-worker-1.log"))
    assert "ran out of memory" in crash_reason(OutOfMemoryError(), "the import job")
    assert ".log" not in crash_reason(WorkerCrashedError("see python-core-worker-1.log"))
    assert crash_reason(ValueError("bad"), "the training job").startswith("the training job failed")


def test_a_shutdown_while_ray_starts_stops_it_once_started(tmp_path: Path) -> None:
    """The control plane shutting down while the recover thread is still starting Ray must not
    leave the owner thread (and the cluster it holds) running."""
    runner = RayJobRunner(Store(StoreConfig(uri=f"file://{tmp_path}")))
    starting, release = threading.Event(), threading.Event()

    def slow_init() -> None:
        starting.set()
        release.wait(10)

    runner._init_ray = slow_init  # type: ignore[method-assign]
    ensure = threading.Thread(target=runner.ensure_ray)
    ensure.start()
    assert starting.wait(10)
    stopper = threading.Thread(target=runner.shutdown)
    stopper.start()
    release.set()
    ensure.join(10)
    stopper.join(30)
    owner = runner._owner
    assert owner is not None and not owner.is_alive(), "the Ray owner thread outlived shutdown"


def test_only_the_version_task_runs_on_no_cpu(tmp_path: Path) -> None:
    """The version's driver takes no CPU (its Ray Train workers hold them); any other task takes
    one, also one that happens to be named like it."""
    from training_jobs.dataset_import import import_task
    from training_jobs.solution_version import version_task

    def impostor(*args: str) -> None:
        pass

    impostor.__name__ = impostor.__qualname__ = "version_task"
    runner = RayJobRunner(Store(StoreConfig(uri=f"file://{tmp_path}")))
    runner._init_ray = lambda: None  # type: ignore[method-assign]  # no cluster: only the wrapping
    try:
        tasks = {"version": version_task, "import": import_task, "impostor": impostor}
        cpus = {name: runner._ensure_ray(task)._default_options["num_cpus"] for name, task in tasks.items()}
    finally:
        runner.shutdown()
    assert cpus == {"version": 0, "import": 1, "impostor": 1}
