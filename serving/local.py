"""Run the control plane as a process: `python -m serving.local --store URI --port N`.

`tagrec up` starts this in the background on 127.0.0.1; in the cloud the same app runs behind
HTTPS. Jobs go to a Ray cluster (a local one started on first use, or `--ray-address`), and so
do campaigns (Ray Serve) and event logs (actors): `build_app` assembles the three owners of that
state on the job runner's one cluster, and recovers and stops them in order.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from store import Store, StoreConfig
from training_jobs.runner import RayJobRunner, make_runner

from .app import create_app
from .deployments import Deployments
from .event_logs import ActorEventLogs, EventLogs

__all__ = ["build_app", "main"]


def build_app(store_uri: str | None = None, executor: str = "ray",
              ray_address: str | None = None, serve_port: int | None = None,
              serve_url: str | None = None, recover: bool = True) -> FastAPI:
    """The control plane with its job runner, campaign deployments and event logs; they stop
    with the app (Ray last: the runner started it).

    On start (when `recover`), events acknowledged before a restart are flushed, then live
    campaigns are deployed again, in the background.
    """
    store = Store(StoreConfig.from_env(store_uri))
    runner = make_runner(store, executor, ray_address)
    if isinstance(runner, RayJobRunner):  # one cluster for all: Serve and the actors need its Ray
        deployments = Deployments(store, runner.ensure_ray, serve_port=serve_port or 8000,
                                  serve_url=serve_url)
        event_logs: EventLogs = ActorEventLogs(store, runner.ensure_ray)
    else:
        deployments, event_logs = Deployments(store), EventLogs(store)
    app = create_app(store, runner.submit_import, submit_version=runner.submit_version,
                     submit_batch_inference=runner.submit_batch_inference,
                     is_tracked=lambda key: runner.is_tracked(key) or deployments.is_tracked(key),
                     deployments=deployments, event_logs=event_logs)
    inner = app.router.lifespan_context

    def recover_all() -> None:
        event_logs.recover()
        deployments.recover()

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            if recover:
                threading.Thread(target=recover_all, daemon=True, name="recover").start()
            try:
                yield state
            finally:
                runner.shutdown()

    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="tagrec control plane")
    p.add_argument("--store", default=None, help="file:///path or s3://bucket/prefix")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--executor", choices=["ray", "thread"], default="ray")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster; default: local")
    p.add_argument("--serve-port", type=int, default=8000, help="port of Ray Serve's HTTP proxy")
    p.add_argument("--serve-url", default=None,
                   help="public URL of the Serve proxy (default http://127.0.0.1:SERVE_PORT)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app(a.store, a.executor, a.ray_address, serve_port=a.serve_port, serve_url=a.serve_url)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
