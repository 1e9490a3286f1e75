"""The local platform: start, stop and inspect the control plane on 127.0.0.1.

`up` creates the local tenant on first use, starts `python -m serving.local` in the background
(its Ray cluster starts on demand), and writes the tenant's key to the `default` profile of the
credentials file, so `Client()` just works. State lives in `$TAGREC_HOME` (default ~/.tagrec).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from sdk.config import home_dir, read_profile, write_profile
from store import AlreadyExists, Store, StoreConfig
from store.tenants import create_api_key, create_tenant, resolve_api_key

__all__ = ["LOCAL_TENANT", "PlatformInfo", "up", "down", "status", "default_store_uri"]

LOCAL_TENANT = "local"
DEFAULT_SERVE_PORT = 8000  # Ray Serve's HTTP proxy: the campaigns' endpoints
DEFAULT_PORT = 8765
START_TIMEOUT_S = 60.0


@dataclass
class PlatformInfo:
    pid: int
    url: str
    store: str
    executor: str
    log: str


def _state_path() -> Path:
    return home_dir() / "platform.json"


def default_store_uri() -> str:
    return os.environ.get("TAGREC_STORE") or f"file://{(home_dir() / 'store').resolve()}"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    """Whether `pid` is our control plane (not a dead one, nor a stranger that reused its pid)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "serving.local" in proc.cmdline()
    except psutil.Error:
        return False


def status() -> PlatformInfo | None:
    """The running local platform, or None (stale state is removed)."""
    path = _state_path()
    if not path.exists():
        return None
    info = PlatformInfo(**json.loads(path.read_text()))
    if _alive(info.pid) and _healthy(info.url):
        return info
    if not _alive(info.pid):
        path.unlink(missing_ok=True)  # stale: the platform is gone
    return None


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def _ensure_key(store: Store, profile: str, url: str) -> str:
    """The local tenant's API key: the profile's if still valid, else a new one."""
    current = read_profile(profile).get("api_key")
    if current and resolve_api_key(store.registry, current) == LOCAL_TENANT:
        return current
    try:
        return create_tenant(store.registry, LOCAL_TENANT)
    except AlreadyExists:
        return create_api_key(store.registry, LOCAL_TENANT)


def up(*, store_uri: str | None = None, port: int | None = None, executor: str = "ray",
       ray_address: str | None = None, profile: str = "default") -> PlatformInfo:
    """Start the local platform if it is not running; returns where it runs."""
    running = status()
    if running is not None:
        return running
    store_uri = store_uri or default_store_uri()
    store = Store(StoreConfig.from_env(store_uri))
    home_dir().mkdir(parents=True, exist_ok=True)
    chosen = _free_port(port or int(os.environ.get("TAGREC_PORT", DEFAULT_PORT)))
    url = f"http://127.0.0.1:{chosen}"
    log_path = home_dir() / "platform.log"
    serve_port = _free_port(int(os.environ.get("TAGREC_SERVE_PORT", DEFAULT_SERVE_PORT)))
    cmd = [sys.executable, "-m", "serving.local", "--store", store_uri, "--port", str(chosen),
           "--executor", executor, "--serve-port", str(serve_port)]
    if ray_address:
        cmd += ["--ray-address", ray_address]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the control plane did not start; log {log_path}:\n{tail}")
        time.sleep(0.2)
    info = PlatformInfo(pid=proc.pid, url=url, store=store_uri, executor=executor,
                        log=str(log_path))
    _state_path().write_text(json.dumps(info.__dict__))
    write_profile(profile, url, _ensure_key(store, profile, url))
    return info


def down(timeout: float = 30.0) -> bool:
    """Stop the local platform (and the Ray cluster it started). False if none was running."""
    path = _state_path()
    if not path.exists():
        return False
    info = PlatformInfo(**json.loads(path.read_text()))
    stopped = False
    if _alive(info.pid):
        os.killpg(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
            _reap(info.pid)
        if _alive(info.pid):
            os.killpg(info.pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
