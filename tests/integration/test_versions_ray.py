"""Solution versions end to end: the SDK → control plane → a Ray task → Ray Train workers, with the
store on the loopback S3 server; metrics next to popularity; the portable artifact; thin data;
stop; a Ray Train worker killed mid-training."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow.fs as pafs
import pytest

from recipes import get_recipe
from recipes.base import Query
from sdk import Client, ResourceFailedError, Status
from store import Keys, Store, StoreConfig
from tests.conftest import INTERACTIONS_SCHEMA, Platform, import_synthetic, unique
from tests.integration.test_train_ray import _kill_a_train_worker_after_first_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {"epochs": 2, "hidden_size": 16, "item_embedding_dim": 16, "batch_size": 64, "seed": 1}
KS = (5, 10, 25)
NO_VALIDATION = {"validation_fraction": 0}  # long runs that must not stop early on their own


def _group_with_data(client: Client, tmp: Path, *, n_users: int = 200, n_items: int = 120,
                     n_interactions: int = 6000, seed: int = 0) -> tuple[str, dict]:
    group, _ = import_synthetic(client, tmp, seed=seed, n_users=n_users, n_items=n_items,
                                n_interactions=n_interactions)
    return group, {d.kind.value: d.current_snapshot for d in client.datasets.list(group)}


def test_version_trains_evaluates_and_leaves_a_portable_model(ray_platform: Platform,
                                                               tmp_path: Path) -> None:
    client = ray_platform.client()
    group, snapshots = _group_with_data(client, tmp_path / "data")
    client.solutions.create(group, name="s", recipe="hrnn-meta", hyperparameters=TINY,
                            evaluation={"min_test_users": 50, "holdout_last": 5})
    seen: list = []
    v = client.solution_versions.create(group, solution="s")
    assert v.status == Status.CREATE_PENDING and v.training_mode == "full"
    v = client.solution_versions.wait(group, "s", v.name, poll_interval=0.5, on_progress=seen.append,
                                      timeout=300)
    assert v.status == Status.ACTIVE, v.failure_reason
    # Progress went through training epochs, with a loss.
    assert any(p.progress.phase == "training" and p.progress.loss is not None for p in seen)
    assert v.progress.epoch == TINY["epochs"] and v.training["epochs"] == TINY["epochs"]
    # The snapshots trained on are the datasets' current ones, recorded on the version.
    assert v.snapshots == snapshots
    # The split is described; metrics for every K, the popularity baseline's side by side.
    assert v.evaluation["protocol"] == "temporal-holdout"
    assert v.evaluation["test_users"] >= 50 and v.evaluation["holdout_last"] == 5
    names = {f"{m}@{k}" for m in ("precision", "recall", "ndcg", "hit", "coverage") for k in KS}
    names |= {"mrr", "perplexity"}
    assert names <= set(v.metrics) and names <= set(v.baselines["popularity"])
    assert all(np.isfinite(x) for x in v.metrics.values())
    assert 0 <= v.metrics["ndcg@10"] <= 1 and v.lift["ndcg@10"] == pytest.approx(
        v.metrics["ndcg@10"] / v.baselines["popularity"]["ndcg@10"])
    # The model is in the store, portable: copied out, it loads and answers without Ray.
    uri = urlparse(v.artifact_uri)
    fs = Store(StoreConfig.from_env(ray_platform.store_uri)).backend.filesystem
    pafs.copy_files(f"{uri.netloc}{uri.path}", str(tmp_path / "model"), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    # Every epoch was scored on a validation part held out of the training part; the evaluated
    # model is the best epoch's; the served model was refitted on all the data (the newest
    # included) for as many epochs.
    val = v.training["validation"]
    assert val["metric"] == "mrr" and val["cases"] >= 1 and len(val["scores"]) == TINY["epochs"]
    assert val["best_epoch"] == 1 + max(range(len(val["scores"])), key=lambda i: (val["scores"][i], -i))
    assert v.served_model == "all-data" and v.training["refit"]["epochs"] == val["best_epoch"]
    assert v.training["refit"]["events"] > v.training["events"]
    predictor = get_recipe("hrnn-meta").predictor_cls.load(tmp_path / "model")
    recs = predictor.predict_batch([Query(history=[("i1", 1_700_000_000.0)], num_results=5)])[0]
    assert len(recs.ids) == 5 and not recs.fallback
    metrics_key = f"{uri.path.lstrip('/').rsplit('/model', 1)[0]}/metrics.json"
    with fs.open_input_stream(f"{uri.netloc}/{metrics_key}") as f:
        stored = json.loads(f.read())
    assert stored["model"] == v.metrics and stored["snapshots"] == snapshots
    # Finished versions cannot be stopped; versions list newest first.
    v2 = client.solution_versions.create(group, solution="s")
    assert [x.name for x in client.solution_versions.list(group, "s")][0] == v2.name
    client.solution_versions.stop(group, "s", v2.name)
    assert client.solution_versions.wait(group, "s", v2.name, timeout=300).status == Status.CREATE_STOPPED


def test_too_few_active_users_fail_the_version_with_the_reason(ray_platform: Platform,
                                                                tmp_path: Path) -> None:
    client = ray_platform.client()
    group = unique()
    client.dataset_groups.create(group)
    # 1,200 interactions but only 20 users: enough rows, too few users to learn from.
    rows = ["user_id,item_id,timestamp,event_type,event_value"]
    rows += [f"u{i % 20},i{i % 97},{1_700_000_000 + i},click,1" for i in range(1200)]
    (tmp_path / "i.csv").write_text("\n".join(rows) + "\n")
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    client.dataset_import_jobs.create_and_wait(group, dataset="interactions", source=tmp_path / "i.csv",
                                               poll_interval=0.2)
    client.solutions.create(group, name="s", recipe="hrnn-meta", hyperparameters=TINY)
    v = client.solution_versions.create(group, solution="s")
    with pytest.raises(ResourceFailedError) as e:
        client.solution_versions.wait(group, "s", v.name, poll_interval=0.3, timeout=120)
    assert "20 users have 2 or more interactions, at least 25" in e.value.failure_reason


def test_stop_ends_training_after_the_current_epoch(ray_platform: Platform, tmp_path: Path) -> None:
    client = ray_platform.client()
    group, _ = _group_with_data(client, tmp_path / "data", seed=2)
    client.solutions.create(group, name="s", recipe="hrnn-meta",
                            hyperparameters={**TINY, "epochs": 200}, evaluation=NO_VALIDATION)
    v = client.solution_versions.create(group, solution="s")
    deadline = time.monotonic() + 180
    while client.solution_versions.retrieve(group, "s", v.name).progress.epoch < 1:
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.3)
    stopping = client.solution_versions.stop(group, "s", v.name)
    assert stopping.status in (Status.CREATE_STOPPING, Status.CREATE_STOPPED)
    done = client.solution_versions.wait(group, "s", v.name, poll_interval=0.3, timeout=120)
    assert done.status == Status.CREATE_STOPPED and done.metrics is None
    assert 1 <= done.progress.epoch < 200


def test_worker_killed_mid_training_the_version_resumes_and_completes(ray_platform: Platform,
                                                                     tmp_path: Path) -> None:
    client = ray_platform.client()
    group, _ = _group_with_data(client, tmp_path / "data", n_interactions=30_000, seed=3)
    client.solutions.create(group, name="s", recipe="hrnn-meta",
                            hyperparameters={**TINY, "epochs": 6},
                            evaluation={"patience": 10, "refit": False},
                            scaling={"workers": 2, "max_failures": 2})
    v = client.solution_versions.create(group, solution="s")
    store = Store(StoreConfig.from_env(ray_platform.store_uri))
    prefix = f"{Keys('tenant-a').version(group, 's', v.name)}/checkpoints"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_train_worker_after_first_checkpoint,
                              args=(store, prefix, killed), daemon=True)
    killer.start()
    done = client.solution_versions.wait(group, "s", v.name, poll_interval=0.5, timeout=400)
    killer.join(5)
    assert killed, "no Ray Train worker was found to kill"
    assert done.status == Status.ACTIVE, done.failure_reason
    # The restarted worker group went on from a checkpointed epoch, not from zero.
    assert done.training["resumed_from_epoch"] is not None
    assert 0 <= done.training["resumed_from_epoch"] < 5
    assert done.training["epochs"] == 6
    assert len(done.training["validation"]["scores"]) == 6  # the scores before the kill survived it


def test_a_killed_version_job_is_reported_in_the_platforms_words(ray_platform: Platform,
                                                                  tmp_path: Path) -> None:
    """Killing the version's driver process (as the OOM killer would) fails the version with a
    reason a tenant can act on, not Ray's `WorkerCrashedError ... python-core-worker-*.log`."""
    import psutil

    client = ray_platform.client()
    group, _ = _group_with_data(client, tmp_path / "data", seed=4)
    client.solutions.create(group, name="s", recipe="hrnn-meta", hyperparameters={**TINY, "epochs": 200},
                            evaluation=NO_VALIDATION)
    v = client.solution_versions.create(group, solution="s")
    deadline = time.monotonic() + 180
    while client.solution_versions.retrieve(group, "s", v.name).progress.epoch < 1:
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.3)
    drivers = [p for p in psutil.process_iter(["cmdline"])
               if any("version_task" in part for part in (p.info["cmdline"] or []))]
    assert drivers, "the version's Ray task was not found"
    for p in drivers:
        p.kill()
    with pytest.raises(ResourceFailedError) as e:
        client.solution_versions.wait(group, "s", v.name, poll_interval=0.3, timeout=120)
    reason = e.value.failure_reason
    assert "the training job was stopped before it finished" in reason, reason
    for internal in ("Ray", "Error", ".log", "worker"):
        assert internal not in reason, reason
