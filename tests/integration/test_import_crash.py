"""Crash consistency of the import job: `kill -9` at any moment never exposes a partial dataset.

For each seed, an "old" file is imported, then `python -m training_jobs.dataset_import` imports a
larger "new" file in a subprocess that is killed with SIGKILL at a time drawn from the seed. The
dataset must then read as exactly the old table or exactly the complete new table (for an
incremental import: old, or old followed by new), `read_current` must work, and a later import
must still succeed on the same dataset.

The kill time is drawn uniformly over the job's measured working time, counted from when the job
reports CREATE_IN_PROGRESS (before that it has only started Python and opened the source); one
seed per store draws it over the start-up instead. Durations are measured on this machine by a
first, uninterrupted run, so the draws stay meaningful on a slow or busy machine.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from store import Keys, Store
from store.snapshots import read_current
from tests.conftest import INTERACTIONS_SCHEMA, new_bucket, unique
from tests.helpers_import import (
    TENANT,
    canonical,
    create_dataset,
    create_import_job,
    open_store,
    read_dataset,
    run_job,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OLD_ROWS = 5_000
NEW_ROWS = 400_000  # ~15 MB of CSV
BLOCK_SIZE = 1 << 20  # ~15 blocks: the snapshot grows batch by batch while the job runs
FILE_SEEDS = range(6)
S3_SEEDS = range(3)
OUTCOMES: Counter[str] = Counter()  # (store, when the kill landed) → count, printed at the end


def interactions_csv(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    users = pa.array([f"u{i}" for i in range(50_000)])
    items = pa.array([f"i{i}" for i in range(20_000)])
    events = pa.array(["click", "view", "buy"])
    table = pa.table({
        "user_id": users.take(rng.integers(0, len(users), rows)),
        "item_id": items.take(rng.integers(0, len(items), rows)),
        "timestamp": rng.integers(1_500_000_000, 1_700_000_000, rows),
        "event_type": events.take(rng.integers(0, len(events), rows)),
        "event_value": rng.random(rows).round(4),
    })
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="none"))
    return sink.getvalue()


@dataclass
class Bench:
    """One store, the expected tables, and the measured phases of an uninterrupted import."""

    uri: str
    store: Store
    old_csv: bytes
    new_csv: bytes
    old: pa.Table = field(init=False)
    new: pa.Table = field(init=False)
    startup_s: float = field(init=False)  # process start → CREATE_IN_PROGRESS
    work_s: float = field(init=False)  # CREATE_IN_PROGRESS → ACTIVE

    def __post_init__(self) -> None:
        # Two uninterrupted runs; the faster one's phases (the first may pay for a cold cache).
        phases = [self.measure() for _ in range(2)]
        self.startup_s = min(p[0] for p in phases)
        self.work_s = min(p[1] for p in phases)

    def measure(self) -> tuple[float, float]:
        group = self.group_with_old()
        old = read_dataset(self.store, group)
        assert old is not None and old.num_rows == OLD_ROWS
        self.old = old
        job = create_import_job(self.store, group, self.new_csv, source_name="new.csv")
        proc, started, in_progress = self.start(group, job)
        in_progress_wall = time.time() - (time.monotonic() - in_progress)
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
        # Not polled while it works (polling would slow the S3 server it uses): the record's
        # last update is when it became ACTIVE; the process exits some time after that.
        record = self.store.registry.read(Keys(TENANT).import_job(group, job))
        assert record["status"] == "ACTIVE", record
        active_wall = datetime.fromisoformat(record["updated_at"]).timestamp()
        new = read_dataset(self.store, group)
        assert new is not None and new.num_rows == NEW_ROWS
        self.new = new
        return in_progress - started, max(active_wall - in_progress_wall, 0.05)

    def group_with_old(self) -> str:
        group = unique()
        create_dataset(self.store, group, INTERACTIONS_SCHEMA)
        job = run_job(self.store, group, self.old_csv, source_name="old.csv")
        assert job["status"] == "ACTIVE", job.get("failure_reason")
        return group

    def start(self, group: str, job: str) -> tuple[subprocess.Popen, float, float]:
        """Start the job process; returns it, its start time and when it reported progress."""
        env = {**os.environ, "TAGREC_IMPORT_BLOCK_SIZE": str(BLOCK_SIZE)}
        cmd = [sys.executable, "-m", "training_jobs.dataset_import", "--store", self.uri,
               "--tenant", TENANT, "--group", group, "--job", job]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        key = Keys(TENANT).import_job(group, job)
        while self.store.registry.read(key)["status"] == "CREATE_PENDING":
            if proc.poll() is not None:
                pytest.fail(f"the import process exited early: {proc.stderr.read()!r}")
            if time.monotonic() - started > 60:
                proc.kill()
                pytest.fail("the import process did not start within 60 s")
            time.sleep(0.005)
        return proc, started, time.monotonic()


@pytest.fixture(scope="module")
def csvs() -> tuple[bytes, bytes]:
    return interactions_csv(OLD_ROWS, seed=1), interactions_csv(NEW_ROWS, seed=2)


@pytest.fixture(scope="module")
def file_bench(tmp_path_factory: pytest.TempPathFactory, csvs: tuple[bytes, bytes]) -> Bench:
    uri = f"file://{tmp_path_factory.mktemp('crash') / 'store'}"
    return Bench(uri, open_store(uri), *csvs)


@pytest.fixture(scope="module")
def s3_bench(s3_endpoint: str, csvs: tuple[bytes, bytes]) -> Bench:
    uri = f"s3://{new_bucket(s3_endpoint)}/store"
    return Bench(uri, open_store(uri), *csvs)


@pytest.fixture(scope="module", autouse=True)
def report_outcomes() -> Iterator[None]:
    yield
    if OUTCOMES:
        print("\nimport kills:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(OUTCOMES.items())))


def outcome(bench: Bench, group: str, job: str, mode: str) -> str:
    """'old' or 'new' (exactly), after checking that nothing else is visible."""
    store, keys = bench.store, Keys(TENANT)
    manifest = read_current(store.backend, keys, group, "interactions")
    table = read_dataset(store, group)
    assert manifest is not None and table is not None
    assert manifest.rows == table.num_rows
    new = bench.new if mode == "full" else pa.concat_tables([bench.old, bench.new])
    if table.num_rows == bench.old.num_rows and table.equals(bench.old):
        seen = "old"
    elif table.num_rows == new.num_rows and (
            table.equals(new) or canonical(table).equals(canonical(new))):
        seen = "new"
    else:
        pytest.fail(f"the dataset is neither the old ({bench.old.num_rows} rows) nor the new "
                    f"({new.num_rows} rows) table: {table.num_rows} rows, {manifest}")
    status = store.registry.read(keys.import_job(group, job))["status"]
    assert status in ("CREATE_IN_PROGRESS", "ACTIVE"), status
    if status == "ACTIVE":
        assert seen == "new", "the job says ACTIVE but its snapshot is not visible"
    return seen


def still_usable(bench: Bench, group: str) -> None:
    """A later import on the same dataset still works (no lock or pointer left wedged)."""
    before = read_current(bench.store.backend, Keys(TENANT), group, "interactions")
    assert before is not None
    job = run_job(bench.store, group, bench.old_csv, mode="incremental")
    assert job["status"] == "ACTIVE", job.get("failure_reason")
    assert job["total_rows"] == before.rows + OLD_ROWS


def kill_run(bench: Bench, seed: int, *, mode: str = "full", during_startup: bool = False) -> str:
    rng = random.Random(seed)
    group = bench.group_with_old()
    job = create_import_job(bench.store, group, bench.new_csv, mode=mode, source_name="new.csv")
    if during_startup:  # the record may still say CREATE_PENDING: start the clock ourselves
        delay = rng.uniform(0, bench.startup_s)
        env = {**os.environ, "TAGREC_IMPORT_BLOCK_SIZE": str(BLOCK_SIZE)}
        proc = subprocess.Popen([sys.executable, "-m", "training_jobs.dataset_import", "--store",
                                 bench.uri, "--tenant", TENANT, "--group", group, "--job", job],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
    else:
        delay = rng.uniform(0, bench.work_s)
        proc, _, _ = bench.start(group, job)
        time.sleep(delay)
    exited = proc.poll() is not None
    proc.kill()  # SIGKILL, this process only
    proc.wait(30)
    key = Keys(TENANT).import_job(group, job)
    if during_startup and bench.store.registry.read(key)["status"] == "CREATE_PENDING":
        seen = "old"  # killed before it touched anything
        table = read_dataset(bench.store, group)
        assert table is not None and table.equals(bench.old)
    else:
        seen = outcome(bench, group, job, mode)
    if exited:
        when = "exited before the kill"
    elif seen == "new":
        when = "killed after publish, new visible"
    else:
        record = bench.store.registry.read(key)
        sid = record.get("snapshot_id")
        left = sid and list(bench.store.backend.list(Keys(TENANT).snapshot(group, "interactions",
                                                                           sid)))
        stage = ("during start-up" if during_startup else
                 "mid-write (its unpublished files left behind)" if left else
                 "before any part was complete")
        when = f"killed {stage}, old visible"
    still_usable(bench, group)
    OUTCOMES[f"{bench.uri.split(':')[0]} {mode}: {when}"] += 1
    return seen


def kill_right_after_publish(bench: Bench) -> str:
    """Kill the moment CURRENT points at the new snapshot (before the job records ACTIVE)."""
    keys = Keys(TENANT)
    group = bench.group_with_old()
    before = bench.store.backend.get(keys.current(group, "interactions"))[0]
    job = create_import_job(bench.store, group, bench.new_csv, source_name="new.csv")
    proc, started, _ = bench.start(group, job)
    while bench.store.backend.get(keys.current(group, "interactions"))[0] == before:
        assert proc.poll() is None, "the job ended without publishing"
        assert time.monotonic() - started < 120
        time.sleep(0.002)
    proc.kill()
    proc.wait(30)
    seen = outcome(bench, group, job, "full")
    assert seen == "new"
    still_usable(bench, group)
    OUTCOMES[f"{bench.uri.split(':')[0]} full: killed right after publish, new visible"] += 1
    return seen


@pytest.mark.parametrize("seed", FILE_SEEDS)
def test_kill_during_full_import_file(file_bench: Bench, seed: int) -> None:
    kill_run(file_bench, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [100, 101])
def test_kill_during_incremental_import_file(file_bench: Bench, seed: int) -> None:
    kill_run(file_bench, seed, mode="incremental")


def test_kill_during_startup_file(file_bench: Bench) -> None:
    kill_run(file_bench, 200, during_startup=True)


def test_kill_after_publish_file(file_bench: Bench) -> None:
    kill_right_after_publish(file_bench)


def test_kill_long_after_start_file(file_bench: Bench) -> None:
    """A kill long after the job's expected end finds the new table."""
    group = file_bench.group_with_old()
    job = create_import_job(file_bench.store, group, file_bench.new_csv)
    proc, _, _ = file_bench.start(group, job)
    try:
        proc.wait(max(30, 10 * file_bench.work_s))
    finally:
        proc.kill()
    assert outcome(file_bench, group, job, "full") == "new"
    OUTCOMES["file full: killed long after the end, new visible"] += 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", S3_SEEDS)
def test_kill_during_full_import_s3(s3_bench: Bench, seed: int) -> None:
    kill_run(s3_bench, 1000 + seed)


@pytest.mark.slow
def test_kill_after_publish_s3(s3_bench: Bench) -> None:
    kill_right_after_publish(s3_bench)
