"""The local platform's own life: `tagrec up` with its Ray cluster, idle, killed, `tagrec down`.

Real processes only: the CLI in a subprocess, the control plane it starts, the local Ray cluster
that control plane starts on the first job. Found in a new user's first hour: Ray's daemons died
with the request thread that happened to start them (the platform exited a minute later), Ray
listened on the machine's network address, and a killed platform left Ray processes behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tagrec.local import platform_processes
from tests.conftest import INTERACTIONS_SCHEMA, free_port, unique
from tests.integration.test_cli import run as tagrec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = {**os.environ, "TAGREC_HOME": str(tmp_path / "home"), "TAGREC_PORT": str(free_port()),
         "TAGREC_SERVE_PORT": str(free_port())}
    for k in ("TAGREC_BASE_URL", "TAGREC_API_KEY", "TAGREC_PROFILE", "TAGREC_STORE", "TAGREC_PLATFORM_ID"):
        e.pop(k, None)
    yield e
    tagrec(e, "down", check=False)


def _state(env: dict[str, str]) -> dict:
    return json.loads((Path(env["TAGREC_HOME"]) / "platform.json").read_text())


def _import_through_ray(env: dict[str, str], tmp_path: Path) -> None:
    """One import job: the control plane starts Ray from the request's worker thread."""
    from sdk import Client

    state = _state(env)
    key = (Path(env["TAGREC_HOME"]) / "credentials").read_text().split("api_key = ")[1].split()[0]
    client = Client(base_url=state["url"], api_key=key, start_local=False)
    group = unique()
    client.dataset_groups.create(group)
    client.datasets.create(group, kind="interactions", schema=INTERACTIONS_SCHEMA)
    csv = tmp_path / f"{group}.csv"
    csv.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                   + "".join(f"u{i % 7},i{i % 11},{1_700_000_000 + i},click,1\n" for i in range(50)))
    job = client.dataset_import_jobs.create_and_wait(group, dataset="interactions", source=csv,
                                                     poll_interval=0.3, timeout=240)
    assert job.status.value == "ACTIVE"


def _ray_daemons(platform_id: str) -> dict[str, psutil.Process]:
    out = {}
    for p in platform_processes(platform_id):
        try:
            name = Path(p.cmdline()[0]).name if p.cmdline() else p.name()
        except psutil.Error:
            continue
        if name in ("gcs_server", "raylet"):
            out[name] = p
    return out


def test_ray_outlives_the_thread_that_started_it_and_listens_on_loopback_only(
        env: dict[str, str], tmp_path: Path) -> None:
    tagrec(env, "up")
    platform_id = _state(env)["platform_id"]
    _import_through_ray(env, tmp_path)
    daemons = _ray_daemons(platform_id)
    assert set(daemons) == {"gcs_server", "raylet"}, daemons
    # AnyIO prunes a worker thread after 10 s idle; before the fix the parent-death signal bound
    # to that thread SIGKILLed the GCS and the raylet then, and the platform died 60 s later.
    time.sleep(16)
    for name, proc in daemons.items():
        assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE, f"{name} died when idle"
    _import_through_ray(env, tmp_path)  # still serving jobs
    assert tagrec(env, "status").returncode == 0

    # Nothing of the platform listens beyond loopback (Ray, Serve, the control plane).
    pids = {p.pid for p in platform_processes(platform_id)}
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.pid in pids and c.status == psutil.CONN_LISTEN]
    assert listening, "expected the platform to listen somewhere"
    def loopback(ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback  # ::ffff:127.0.0.1 too

    exposed = [(c.pid, c.laddr) for c in listening if not loopback(c.laddr.ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_a_killed_platform_leaves_no_process_behind(env: dict[str, str], tmp_path: Path) -> None:
    tagrec(env, "up")
    first = _state(env)
    _import_through_ray(env, tmp_path)
    assert len(platform_processes(first["platform_id"])) > 3  # control plane, GCS, raylet, workers...
    os.kill(first["pid"], signal.SIGKILL)  # as the OOM killer or a user's kill -9 would
    time.sleep(2)
    # `tagrec up` finds the dead platform, clears what it left and starts a fresh one.
    tagrec(env, "up")
    assert platform_processes(first["platform_id"]) == []
    second = _state(env)
    assert second["platform_id"] != first["platform_id"]
    _import_through_ray(env, tmp_path)
    os.kill(second["pid"], signal.SIGKILL)
    time.sleep(2)
    tagrec(env, "down")
    assert platform_processes(second["platform_id"]) == []
