"""The control plane against an existing Ray cluster by address: a second local Ray head, started
with `ray start` on other ports, plays the remote cluster. A version trains there and a campaign
is deployed there (it keeps answering after the control plane itself is killed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from sdk import Client, Status
from sdk.synthetic import generate
from store import Store, StoreConfig
from store.tenants import create_tenant
from tests.conftest import free_port, kill_tree, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
       "PYTHONPATH": str(ROOT)}


@pytest.fixture
def remote_cluster(tmp_path: Path):
    """`ray start --head --block` on free ports, in its own temp dir; killed afterwards."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # its unix socket paths must be short
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
         f"--ray-client-server-port={free_port()}", f"--temp-dir={temp}",
         f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"],
        env=ENV, stdout=(tmp_path / "head.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 90
    while True:  # the head is up once `ray status` answers for its address
        status = subprocess.run([str(Path(sys.executable).parent / "ray"), "status",
                                 f"--address=127.0.0.1:{port}"], env=ENV, capture_output=True)
        if status.returncode == 0:
            break
        assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the Ray head did not start"
        time.sleep(1)
    yield f"127.0.0.1:{port}"
    kill_tree(head)
    shutil.rmtree(temp, ignore_errors=True)


def test_version_and_campaign_run_on_a_cluster_by_address(remote_cluster: str, tmp_path: Path) -> None:
    store_uri = f"file://{tmp_path / 'store'}"
    key = create_tenant(Store(StoreConfig.from_env(store_uri)).registry, "tenant-a")
    port, serve_port = free_port(), free_port()
    platform = subprocess.Popen(
        [sys.executable, "-m", "serving.local", "--store", store_uri, "--port", str(port),
         "--executor", "ray", "--ray-address", remote_cluster, "--serve-port", str(serve_port)],
        cwd=tmp_path, env=ENV, stdout=(tmp_path / "platform.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        client = Client(base_url=f"http://127.0.0.1:{port}", api_key=key, start_local=False)
        data = generate(seed=7, n_users=120, n_items=80, n_interactions=4000)
        paths = data.write_csv(tmp_path / "data")
        client.dataset_groups.create("g")
        for kind, schema in data.schemas.items():
            client.datasets.create("g", kind=kind, schema=schema)
            client.dataset_import_jobs.create_and_wait("g", dataset=kind, source=paths[kind],
                                                       poll_interval=0.3)
        client.solutions.create("g", name="s", recipe="hrnn-meta",
                                hyperparameters={"epochs": 1, "hidden_size": 16, "batch_size": 64},
                                evaluation={"min_test_users": 20, "holdout_last": 2})
        v = client.solution_versions.create("g", solution="s")
        v = client.solution_versions.wait("g", "s", v.name, poll_interval=0.5, timeout=300)
        assert v.status == Status.ACTIVE, v.failure_reason
        client.campaigns.create("g", name="c", solution="s", solution_version=v.name)
        c = client.campaigns.wait("g", "c", timeout=240)
        assert c.status == Status.ACTIVE, c.failure_reason
        user = data.interactions.column("user_id")[0].as_py()
        assert len(client.campaigns.recommend("g", "c", user_id=user, num_results=5).items) == 5
    finally:
        kill_tree(platform)
    # The campaign lives on the cluster, not in the control plane: it still answers.
    r = httpx.post(f"{c.endpoint}/recommend", json={"user_id": user, "num_results": 3},
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
    log = (tmp_path / "platform.log").read_text(errors="replace")
    assert "Started a local Ray instance" not in log  # it connected; it never started its own
