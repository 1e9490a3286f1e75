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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from sdk.config import home_dir, read_profile, write_profile
from store import AlreadyExists, Store, StoreConfig
from store.tenants import create_api_key, create_tenant, resolve_api_key

__all__ = ["LOCAL_TENANT", "PlatformInfo", "up", "down", "status", "default_store_uri", "normalize_store_uri"]

LOCAL_TENANT = "local"
DEFAULT_SERVE_PORT = 8000  # Ray Serve's HTTP proxy: the campaigns' endpoints
DEFAULT_PORT = 8765
START_TIMEOUT_S = 60.0
PLATFORM_ID_ENV = "TAGREC_PLATFORM_ID"


@dataclass
class PlatformInfo:
    pid: int
    url: str
    store: str
    executor: str
    log: str
    platform_id: str = ""  # marks every process of this platform (env TAGREC_PLATFORM_ID)


def _state_path() -> Path:
    return home_dir() / "platform.json"


def normalize_store_uri(value: str) -> str:
    """A store URI; a plain path (no scheme) means the folder ``file:///absolute/path``."""
    if "://" in value:
        return value
    return f"file://{Path(value).expanduser().resolve()}"


def default_store_uri() -> str:
    """``TAGREC_STORE`` (a URI or a folder), else the ``store`` folder of the tagrec home."""
    return normalize_store_uri(os.environ.get("TAGREC_STORE") or str(home_dir() / "store"))


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
        _kill_leftovers(info.platform_id)  # killed: its Ray workers and agents may still run
        path.unlink(missing_ok=True)  # stale: the platform is gone
    return None


def _bind(port: int) -> int | None:
    """`port` (0: any) if it can be bound on 127.0.0.1 now, else None.

    With SO_REUSEADDR, as the servers bind: connections of a killed server left in TIME_WAIT
    do not make its port look taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return int(s.getsockname()[1])


def _pick_port(explicit: int | None, env: str, default: int, what: str,
               say: Callable[[str], None]) -> int:
    """The port asked for (`explicit`, else `$env`), which must be free; else `default`, or a free
    port instead when the default is taken (said through `say`)."""
    source = f"--port {explicit}" if explicit else f"{env}={os.environ.get(env)}"
    if not explicit and os.environ.get(env):
        try:
            explicit = int(os.environ[env])
        except ValueError:
            raise ValueError(f"{env} must be a port number, got {os.environ[env]!r}") from None
    if explicit:
        if _bind(explicit) is None:
            raise RuntimeError(f"port {explicit} on 127.0.0.1 ({source}) is taken: choose another "
                               f"port, or leave it out to use a free one")
        return explicit
    if _bind(default) is not None:
        return default
    chosen = _bind(0)
    if chosen is None:
        raise RuntimeError("no free port on 127.0.0.1")
    say(f"port {default} (the default for the {what}) is taken; the {what} uses port {chosen}")
    return chosen


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
       ray_address: str | None = None, serve_url: str | None = None, profile: str = "default",
       say: Callable[[str], None] | None = None) -> PlatformInfo:
    """Start the local platform if it is not running; returns where it runs.

    Args:
        store_uri: ``file://``, ``s3://`` or a plain folder path; default `default_store_uri`.
        port: The control plane's port; else ``TAGREC_PORT``. A port asked for that is taken is
            an error; the default (8765) when taken is replaced by a free port.
        executor: ``ray`` or ``thread``.
        ray_address: An existing Ray cluster to run jobs on.
        serve_url: The campaigns' endpoint base users see (default: the local Serve proxy).
        profile: The credentials profile the local key is written to.
        say: Called with each message for the user (a replaced port, the platform started).

    Raises:
        RuntimeError: A port asked for is taken, the platform runs with another port or store
            than asked for, or the control plane did not start.
    """
    say = say or (lambda _: None)
    store_uri = normalize_store_uri(store_uri) if store_uri else None
    running = status()
    if running is not None:
        asked = []
        if port and running.url != f"http://127.0.0.1:{port}":
            asked.append(f"--port {port}")
        if store_uri and store_uri != running.store:
            asked.append(f"--store {store_uri}")
        if asked:
            raise RuntimeError(f"the local platform already runs at {running.url} (store "
                               f"{running.store}); `tagrec down` first to start it with {' '.join(asked)}")
        say(f"the local platform already runs at {running.url} (store {running.store})")
        return running
    store_uri = store_uri or default_store_uri()
    store = Store(StoreConfig.from_env(store_uri))
    home_dir().mkdir(parents=True, exist_ok=True)
    chosen = _pick_port(port, "TAGREC_PORT", DEFAULT_PORT, "control plane", say)
    url = f"http://127.0.0.1:{chosen}"
    log_path = home_dir() / "platform.log"
    cmd = [sys.executable, "-m", "serving.local", "--store", store_uri, "--port", str(chosen),
           "--executor", executor]
    if executor == "ray" and not ray_address:  # elsewhere Serve's port is not ours to check
        cmd += ["--serve-port", str(_pick_port(None, "TAGREC_SERVE_PORT", DEFAULT_SERVE_PORT,
                                               "Ray Serve proxy", say))]
    else:
        cmd += ["--serve-port", os.environ.get("TAGREC_SERVE_PORT") or str(DEFAULT_SERVE_PORT)]
    if ray_address:
        cmd += ["--ray-address", ray_address]
    if serve_url:
        cmd += ["--serve-url", serve_url]
    platform_id = uuid.uuid4().hex
    env = {**os.environ, PLATFORM_ID_ENV: platform_id}  # inherited by Ray's daemons and workers
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _kill_leftovers(platform_id)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the control plane did not start; log {log_path}:\n{tail}")
        time.sleep(0.2)
    info = PlatformInfo(pid=proc.pid, url=url, store=store_uri, executor=executor,
                        log=str(log_path), platform_id=platform_id)
    _state_path().write_text(json.dumps(info.__dict__))
    write_profile(profile, url, _ensure_key(store, profile, url))
    say(f"started the local platform at {url} (store {store_uri}, log {log_path})")
    live = _live_campaigns(store)
    if live:
        say(f"{live} live campaign(s) are being deployed again in the background (about 20-60 s); "
            "`tagrec campaigns list -g GROUP` shows when they are ACTIVE")
    return info


def _live_campaigns(store: Store) -> int:
    """Campaigns the platform redeploys at start (ACTIVE or with an update rolling out)."""
    from store import Keys
    from store.tenants import list_tenants

    count = 0
    try:
        for tenant in list_tenants(store.registry):
            keys = Keys(tenant)
            for group in store.registry.list(keys.groups(), "/group.json"):
                count += sum(1 for c in store.registry.list(keys.campaigns(group["name"]), ".json")
                             if c.get("status") == "ACTIVE" or c.get("pending_update"))
    except Exception:  # noqa: BLE001 - only a message depends on it
        return 0
    return count


def down(timeout: float = 30.0) -> bool:
    """Stop the local platform and every process it started (its Ray cluster's daemons, agents
    and workers, even when the control plane was killed). False if none was running."""
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
    _kill_leftovers(info.platform_id)
    path.unlink(missing_ok=True)
    return stopped


def platform_processes(platform_id: str) -> list[psutil.Process]:
    """Every live process started by the platform `platform_id` (found by its environment mark)."""
    if not platform_id:
        return []
    mark = f"{PLATFORM_ID_ENV}={platform_id}".encode()
    found = []
    for proc in psutil.process_iter():
        try:  # /proc/PID/environ read raw: psutil's environ() parses every variable
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if mark in f.read().split(b"\0") and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _kill_leftovers(platform_id: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, whatever of the platform still runs (Ray reparents its workers and
    agents to init when the control plane dies, so the process group alone misses them)."""
    procs = platform_processes(platform_id)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        _, procs = psutil.wait_procs(procs, timeout=timeout if sig == signal.SIGTERM else 5.0)
        if not procs:
            return


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
