"""Acknowledged events survive a `kill -9` of the whole platform (control plane, its Ray cluster,
the event log actor) between acknowledge and flush, and are stored exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdk import Client
from store import Store, StoreConfig
from store.tenants import create_tenant
from tests.conftest import INTERACTIONS_SCHEMA, free_port, kill_tree, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _start(store_uri: str, port: int, flush_s: float, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TAGREC_EVENTS_FLUSH_S": str(flush_s), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.local", "--store", store_uri, "--port", str(port),
         "--executor", "ray", "--serve-port", str(free_port())],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
    return proc


def _rows(client: Client, group: str) -> int:
    return client.datasets.retrieve(group, "interactions").row_count


def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    store_uri = f"file://{tmp_path / 'store'}"
    key = create_tenant(Store(StoreConfig.from_env(store_uri)).registry, "tenant-a")
    port = free_port()
    log = tmp_path / "platform.log"
    proc = _start(store_uri, port, flush_s=3600, log=log)  # nothing flushes before the kill
    try:
        client = Client(base_url=f"http://127.0.0.1:{port}", api_key=key, start_local=False)
        client.dataset_groups.create("g")
        client.datasets.create("g", kind="interactions", schema=INTERACTIONS_SCHEMA)
        acked = 0
        for call in range(4):
            ack = client.events.put("g", user_id=f"u{call}", session_id="s", events=[
                {"item_id": f"i{k}", "event_id": f"{call}-{k}", "event_type": "click",
                 "event_value": 1.0, "timestamp": 1_700_000_000 + k} for k in range(3)])
            acked += ack.accepted
        assert acked == 12 and _rows(client, "g") == 0
    finally:
        kill_tree(proc)
    proc = _start(store_uri, port, flush_s=0.5, log=log)
    try:
        client = Client(base_url=f"http://127.0.0.1:{port}", api_key=key, start_local=False)
        deadline = time.monotonic() + 120
        while _rows(client, "g") < acked:  # the restarted platform replays the log and flushes
            assert time.monotonic() < deadline, f"only {_rows(client, 'g')} of {acked} events stored"
            time.sleep(0.5)
        # Retried events are recognised as duplicates and never stored again.
        again = client.events.put("g", user_id="u0", session_id="s", events=[
            {"item_id": "i0", "event_id": "0-0", "event_type": "click", "event_value": 1.0}])
        assert again.accepted == 0 and again.duplicates == 1
        time.sleep(2.0)  # a few flush periods
        assert _rows(client, "g") == acked
    finally:
        kill_tree(proc)
