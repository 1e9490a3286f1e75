"""Open-loop serving latency: a campaign on Ray Serve next to a bare Serve app, same run, same rates.

What runs (all on this machine, HTTP on 127.0.0.1; every number printed is measured in this run):

* the platform in this process, as `tests/conftest.py`'s `start_platform` starts it: the control
  plane (uvicorn on a free port) over a file store in a temp dir, jobs and campaigns on a local
  Ray cluster, Ray Serve's proxy on a free port; one tenant and its API key;
* a seeded `sdk.synthetic` dataset (`--users`/`--items`/`--interactions`) imported through the
  SDK, an HRNN-meta version trained on it (`--epochs`), and a campaign deployed from it
  (`--replicas`, `--max-ongoing-requests`, `--max-queued-requests`);
* a bare Serve app (`BareServer`): a plain ASGI `__call__` like `CampaignServer`'s (no FastAPI),
  deployed with the same replica count, replica CPUs and backpressure options at its own route
  prefix. It reads the body and returns a constant: the bytes of one real 25-item answer of the
  campaign, so both send the same response size and the difference is the campaign's own work
  (auth, validation, history lookup, batching, the model, JSON);
* the load generator in a separate process (this script with `--client`, asyncio + aiohttp,
  uvloop if importable), so its CPU is not counted in the parent. It is OPEN loop: request k of a
  step is due at `start + k / rate` whatever happened to the earlier ones, and its latency is
  completion time − that intended send time, so a slow server (or a late client) shows up in the
  latency instead of slowing the offered load (no coordinated omission). Each step sends
  `--warmup` seconds of unrecorded requests first (connections open), then `--duration` seconds
  recorded, at the same rate without a gap. Requests: POST .../recommend
  `{"user_id": <random known user>, "num_results": 25}` with the tenant's API key;
* for every repeat and rate, the bare app and the campaign one after the other (their order
  alternates), `--repeats` times; medians over the repeats are reported;
* one closed-loop sequential step per target and repeat (one request at a time): the latency of
  an idle server;
* the predictor's in-process time: a `CampaignServer` built in this process (the code a replica
  runs, without Serve) times `predictor.predict_batch` for 1 and for 16 queries (built beforehand
  as the replica builds them: `serving.campaign._query` over the request's snapshot history), the
  replica's scoring step (`_score_batch`: histories, queries, model, response dicts), the JSON
  encoding, and the whole handler (`CampaignServer.__call__` on a starlette Request: auth,
  validation, serve.batch, event-log lookup, model, JSON) one request at a time and 16 at once;
* CPU per request of the Serve proxy and of each target's replicas (psutil CPU time over a step /
  requests sent in it) and the memory (RSS, USS) of every replica process (found with psutil among
  this process's descendants by their `ServeReplica:<app>:` title);
* `--events`: one real-time event is put first, so the group has an event log and the campaign
  reads it (one Ray actor call) for every batch, as a campaign of a group with events does.

`--recipe graphtr` serves GraphTR instead (the item-tags task): the HetRec MovieLens-2k folder of
../shared/data converted by `sdk.hetrec` and imported, a graphtr version trained on it (`--epochs`
of `--pairs` neighbour pairs) and deployed; every request is POST .../recommend-tags
`{"user_id", "item_id", "num_results": 10}` for a random (user, item) pair of the tag assignments,
so the user's snapshot history (up to 200 events) is read and the item's candidate tags ranked.
The bare app answers one real answer's bytes as above; the in-process figures are the same.

`--recipe sog` serves SOG (the tag-set task): the Stack Exchange robotics folder of ../shared/data
(2,771 posts) converted by `sdk.stackexchange` and imported, a sog version trained on it (`--epochs`,
`max_length` 128) and deployed; every request is POST .../generate-tags
`{"fields": {"title", "content"}, "num_results": 5}` for a random post of the folder, so the post's
text is tokenized and 5 tags decoded greedily (5 forward passes of the encoder). No history is read
(the task has none); the bare app and the in-process figures are as above.

On a 2-core machine the client, the Serve proxy, the replicas, the controller and Ray's own
daemons all share the two cores: the highest rate held is the capacity of this whole setup, not
of a replica on a dedicated machine.

Usage: `python benchmarks/serving_latency.py [--rates 25,50,100,150,200,300] [--duration 10]
[--repeats 3] [--replicas 1] [--max-ongoing-requests 32] [--max-queued-requests 64] [--events]
[--recipe hrnn-meta|graphtr|sog] [--pairs 2000] [--epochs 2] [--json]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MIB = 1 << 20
TENANT = "bench"
BARE_APP = "bench-bare-serve"
BARE_ROUTE = "/bench-bare"
TARGETS = ("bare", "campaign")
LABELS = {"bare": "bare Serve", "campaign": "campaign"}
P99_LIMIT_MS = 100.0
RATIO_GOAL = 3.0
RATE_GOAL = 200.0
VERBS = {"hrnn-meta": "recommend", "graphtr": "recommend-tags", "sog": "generate-tags"}  # --recipe
ASKED = {"hrnn-meta": "random known users", "graphtr": "random (user, item) pairs of the tag assignments",
         "sog": "random posts of the folder (5 tags decoded greedily: 5 forward passes)"}
DATASETS = {"graphtr": REPO.parent / "shared" / "data" / "hetrec2011-movielens-2k-tags",
            "sog": REPO.parent / "shared" / "data" / "stackexchange-robotics-kaggle"}


# ---------------------------------------------------------------------------------------------
# the load generator (a separate process: `--client`, config as JSON on stdin)
# ---------------------------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of values, or None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _open_loop(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    rate, bodies = float(cfg["rate"]), [b.encode() for b in cfg["bodies"]]
    n_warm = int(round(rate * cfg["warmup_s"]))
    n_total = n_warm + int(round(rate * cfg["duration_s"]))
    headers = {"Authorization": f"Bearer {cfg['api_key']}", "Content-Type": "application/json"}
    clock = time.perf_counter
    latency: list[float | None] = [None] * n_total
    status: list[Any] = [None] * n_total
    lag = [0.0] * n_total
    done_at = [0.0] * n_total
    connector = aiohttp.TCPConnector(limit=cfg["connections"])
    timeout = aiohttp.ClientTimeout(total=cfg["timeout_s"])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(k: int, intended: float) -> None:
            lag[k] = clock() - intended
            try:
                async with session.post(cfg["url"], data=bodies[k % len(bodies)],
                                        headers=headers) as r:
                    await r.read()
                    status[k] = r.status
            except TimeoutError:
                status[k] = "timeout"
            except aiohttp.ClientError as e:
                status[k] = type(e).__name__
            done_at[k] = clock()
            latency[k] = done_at[k] - intended

        tasks = []
        cpu0 = _cpu_seconds()
        start = clock() + 0.05
        k = 0
        while k < n_total:
            due = start + k / rate
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            now = clock()
            while k < n_total and start + k / rate <= now:  # every request due by now (catch up)
                tasks.append(asyncio.create_task(one(k, start + k / rate)))
                k += 1
        await asyncio.gather(*tasks)
        cpu = _cpu_seconds() - cpu0
        wall = clock() - start
    measured = range(n_warm, n_total)
    t_first = start + n_warm / rate
    ok = [latency[k] * 1000 for k in measured if status[k] == 200]
    codes: dict[str, int] = {}
    for k in measured:
        if status[k] != 200:
            codes[str(status[k])] = codes.get(str(status[k]), 0) + 1
    last = max(done_at[k] for k in measured)
    return {
        "rate": rate, "requests": len(measured), "sent_total": n_total, "ok": len(ok),
        "errors": sum(codes.values()), "error_codes": codes, "r429": codes.get("429", 0),
        "achieved_rps": len(ok) / (last - t_first) if last > t_first else 0.0,
        "p50_ms": _pct(ok, 0.50), "p90_ms": _pct(ok, 0.90), "p99_ms": _pct(ok, 0.99),
        "max_ms": max(ok) if ok else None,
        "send_lag_p99_ms": _pct([lag[k] * 1000 for k in measured], 0.99),
        "client_cpu_pct": 100 * cpu / wall,
    }


async def _sequential(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    bodies = [b.encode() for b in cfg["bodies"]]
    headers = {"Authorization": f"Bearer {cfg['api_key']}", "Content-Type": "application/json"}
    lat: list[float] = []
    codes: dict[str, int] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg["timeout_s"])) as s:
        for k in range(cfg["warmup_requests"] + cfg["requests"]):
            t0 = time.perf_counter()
            try:
                async with s.post(cfg["url"], data=bodies[k % len(bodies)], headers=headers) as r:
                    await r.read()
                    code: Any = r.status
            except TimeoutError:
                code = "timeout"
            except aiohttp.ClientError as e:
                code = type(e).__name__
            if k >= cfg["warmup_requests"]:
                if code == 200:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    codes[str(code)] = codes.get(str(code), 0) + 1
    return {"requests": cfg["requests"], "ok": len(lat), "errors": sum(codes.values()),
            "error_codes": codes, "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
            "max_ms": max(lat) if lat else None}


def client_main() -> None:
    cfg = json.loads(sys.stdin.read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    run = _sequential if cfg["mode"] == "sequential" else _open_loop
    result = asyncio.run(run(cfg))
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# the bare Serve app
# ---------------------------------------------------------------------------------------------

class BareServer:
    """The floor: the same ingress shape as CampaignServer (ASGI request in, starlette Response
    out, no FastAPI), reading the body and answering constant bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response

        await request.body()
        return Response(self.body, status_code=200, media_type="application/json")


def deploy_bare(body: bytes, replicas: int, max_ongoing: int, max_queued: int, cpus: float) -> None:
    from ray import cloudpickle, serve
    from ray.serve.config import BackpressureConfig

    if __name__ != "__main__":  # imported: send the class by value (benchmarks/ is no package)
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    app = serve.deployment(
        BareServer, name="BareServer", num_replicas=replicas, max_ongoing_requests=max_ongoing,
        max_queued_requests=max_queued,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
        ray_actor_options={"num_cpus": cpus}).bind(body)
    serve.run(app, name=BARE_APP, route_prefix=BARE_ROUTE)


# ---------------------------------------------------------------------------------------------
# parent: platform, data, training, deployment, load steps, report
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_platform(store_uri: str, serve_port: int) -> tuple[str, str, Any, threading.Thread]:
    """The control plane with a Ray executor, as tests/conftest.py's start_platform."""
    import httpx
    import uvicorn

    from serving.local import build_app
    from store import Store, StoreConfig
    from store.tenants import create_tenant

    app = build_app(store_uri, "ray", serve_port=serve_port)
    key = create_tenant(Store(StoreConfig.from_env(store_uri)).registry, TENANT)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1.0)
            return url, key, server, thread
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within 60 s") from None
            time.sleep(0.1)


def run_client(cfg: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--client"], input=json.dumps(cfg),
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"client failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _our_ray_processes(marker: str) -> list[Any]:
    """Descendants of this process (the local Ray cluster it started, not another one on the
    machine) whose command line contains `marker`."""
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if marker in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


def serve_processes(app: str) -> list[Any]:
    """The Serve replica processes of `app` (Ray titles them `ray::ServeReplica:<app>:<dep>`)."""
    return _our_ray_processes(f"ServeReplica:{app}:")


def proxy_processes() -> list[Any]:
    return _our_ray_processes("ProxyActor")


def cpu_of(procs: list[Any]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001 - a process gone: count nothing
            pass
    return total


def memory_of(procs: list[Any]) -> list[dict[str, float]]:
    out = []
    for p in procs:
        try:
            m = p.memory_full_info()
            out.append({"pid": p.pid, "rss_mib": m.rss / MIB, "uss_mib": m.uss / MIB})
        except Exception:  # noqa: BLE001
            pass
    return out


def _dataset(a: argparse.Namespace, tmp: Path) -> tuple[dict[Any, Path], dict[Any, Any], list[dict]]:
    """The files and schemas to import, and the pool of request bodies (the verb's JSON fields)."""
    import pyarrow.parquet as pq

    folder = DATASETS.get(a.recipe)
    if folder is not None and not folder.exists():
        sys.exit(f"--recipe {a.recipe} serves a model of {folder} (licensed data, not in the repo): absent")
    if a.recipe == "graphtr":
        from sdk.hetrec import convert

        data = convert(folder, tmp / "data")
        pairs = pq.read_table(data.interactions, columns=["user_id", "item_id"]).to_pylist()
        return data.paths, data.schemas, [{**r, "num_results": 10} for r in pairs]
    if a.recipe == "sog":
        from sdk.stackexchange import convert

        posts = convert(folder, tmp / "data")
        fields = pq.read_table(posts.items, columns=["title", "content"]).to_pylist()
        return posts.paths, posts.schemas, [{"fields": f, "num_results": 5} for f in fields]
    from sdk.synthetic import generate

    data = generate(seed=a.seed, n_users=a.users, n_items=a.items, n_interactions=a.interactions)
    users = sorted(set(data.interactions.column("user_id").to_pylist()))
    return data.write_csv(tmp / "data"), data.schemas, [{"user_id": u, "num_results": 25} for u in users]


def train_and_deploy(client: Any, a: argparse.Namespace, tmp: Path, log: Any) -> dict[str, Any]:
    from sdk import Status

    t0 = time.perf_counter()
    paths, schemas, pool = _dataset(a, tmp)
    group = "bench"
    client.dataset_groups.create(group)
    rows = {}
    for kind, schema in schemas.items():
        client.datasets.create(group, kind=kind, schema=schema)
        job = client.dataset_import_jobs.create_and_wait(group, dataset=kind, source=paths[kind],
                                                         poll_interval=0.2)
        rows[kind.value] = job.progress.rows
    t_import = time.perf_counter() - t0
    log(f"  imported {rows} rows ({t_import:.1f} s)")
    t0 = time.perf_counter()
    extra = {"graphtr": {"pairs_per_epoch": a.pairs}, "sog": {"max_length": 128}}
    hyperparameters = {"epochs": a.epochs, "seed": 1, **extra.get(a.recipe, {})}
    client.solutions.create(group, name="s", recipe=a.recipe, hyperparameters=hyperparameters)
    v = client.solution_versions.create(group, solution="s")
    v = client.solution_versions.wait(group, "s", v.name, poll_interval=0.5, timeout=3600)
    if v.status != Status.ACTIVE:
        raise RuntimeError(f"training failed: {v.failure_reason}")
    t_train = time.perf_counter() - t0
    log(f"  trained {a.recipe} {v.name} ({hyperparameters}, {t_train:.1f} s)")
    t0 = time.perf_counter()
    client.campaigns.create(group, name="c", solution="s", solution_version=v.name,
                            min_replicas=a.replicas, max_replicas=a.replicas,
                            max_ongoing_requests=a.max_ongoing_requests,
                            max_queued_requests=a.max_queued_requests)
    c = client.campaigns.wait(group, "c", timeout=600, poll_interval=0.5)
    if c.status != Status.ACTIVE:
        raise RuntimeError(f"campaign failed: {c.failure_reason}")
    t_deploy = time.perf_counter() - t0
    log(f"  campaign ACTIVE at {c.endpoint} ({t_deploy:.1f} s)")
    return {"group": group, "solution": "s", "version": v.name, "endpoint": c.endpoint,
            "verb": VERBS[a.recipe], "pool": pool, "rows": rows, "hyperparameters": hyperparameters,
            "setup_seconds": {"import": t_import, "train": t_train, "deploy": t_deploy}}


def time_predictor(store_uri: str, dep: dict[str, Any], api_key: str, seed: int,
                   iters: int) -> dict[str, Any]:
    """The replica's code in this process (no Serve): model, scoring and handler time per request."""
    import random

    from sdk.types import VERB_REQUESTS
    from serving.campaign import CampaignServer, _history_key, _query
    from store import StoreConfig

    server = CampaignServer(StoreConfig.from_env(store_uri).as_dict(), TENANT, dep["group"], "c",
                            dep["solution"], dep["version"])
    rng = random.Random(seed)
    p = server.predictor
    verb = dep["verb"]
    model = VERB_REQUESTS[verb]

    def requests(n: int) -> list[tuple[str, Any]]:
        return [(verb, model.model_validate(rng.choice(dep["pool"]))) for _ in range(n)]

    def queries(inputs: list[tuple[str, Any]]) -> list[Any]:
        """The replica's queries for these requests (as `_score_batch` builds them, no events)."""
        now = time.time()
        return [_query(verb, r, server._history(_history_key(r), {}), now) for verb, r in inputs]

    def timed(fn: Any, batch: int, prepare: Any = None) -> float:
        """Median ms of fn over `iters` batches of `batch` requests (`prepare`d outside the timing)."""
        prepare = prepare or (lambda i: i)
        for _ in range(5):
            fn(prepare(requests(batch)))
        times = []
        for _ in range(iters):
            inputs = prepare(requests(batch))
            t = time.perf_counter()
            fn(inputs)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    out = {
        "model_1_ms": timed(p.predict_batch, 1, queries),
        "model_16_ms": timed(p.predict_batch, 16, queries),
        "score_batch_1_ms": timed(lambda i: server._score_batch(i, {}), 1),
        "score_batch_16_ms": timed(lambda i: server._score_batch(i, {}), 16),
    }
    answer = server._score_batch(requests(1), {})[0]
    out["json_encode_ms"] = timed(lambda _i: json.dumps(answer).encode(), 1)
    body = json.dumps(dep["pool"][0]).encode()
    out["validate_ms"] = timed(lambda _i: model.model_validate_json(body), 1)
    out["answer_bytes"] = len(json.dumps(answer).encode())
    out["threads"] = __import__("torch").get_num_threads()
    from ray.serve.batching import _BatchQueue

    # Outside a replica, serve.batch's queue cannot read the replica context for a warning.
    _BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests = lambda self: None
    out.update(asyncio.run(_time_handler(server, dep, api_key, rng, iters)))
    return out


async def _time_handler(server: Any, dep: dict[str, Any], api_key: str, rng: Any,
                        iters: int) -> dict[str, float]:
    """`CampaignServer.__call__` on a starlette Request, as Serve calls it (auth from the cache,
    validation, serve.batch with its 2 ms wait, events lookup, model, JSON), one request at a
    time and 16 at once."""
    from starlette.requests import Request

    headers = [(b"authorization", f"Bearer {api_key}".encode()),
               (b"content-type", b"application/json")]

    path = f"{server._prefix}/{dep['verb']}"  # only the campaign's exact routes are served

    async def call() -> None:
        body = json.dumps(rng.choice(dep["pool"])).encode()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "scheme": "http", "root_path": "",
                 "path": path, "raw_path": path.encode(),
                 "query_string": b"", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
                 "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        response = await server(Request(scope, receive))
        if response.status_code != 200:
            raise RuntimeError(f"in-process handler answered {response.status_code}: "
                               f"{response.body[:300]!r}")

    for _ in range(10):
        await call()
    one, sixteen = [], []
    for _ in range(iters):
        t = time.perf_counter()
        await call()
        one.append(time.perf_counter() - t)
    for _ in range(max(10, iters // 8)):
        t = time.perf_counter()
        await asyncio.gather(*(call() for _ in range(16)))
        sixteen.append(time.perf_counter() - t)
    return {"handler_1_ms": statistics.median(one) * 1000,
            "handler_16_ms": statistics.median(sixteen) * 1000}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    codes: dict[str, int] = {}
    for r in runs:
        for c, n in r["error_codes"].items():
            codes[c] = codes.get(c, 0) + n
    requests = sum(r["requests"] for r in runs)
    errors = sum(r["errors"] for r in runs)
    return {
        "runs": len(runs), "requests": requests, "errors": errors, "error_codes": codes,
        "r429": sum(r["r429"] for r in runs), "error_rate": errors / requests if requests else 0.0,
        "achieved_rps": med("achieved_rps"), "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"),
        "p99_ms": med("p99_ms"), "max_ms": med("max_ms"),
        "p99_runs_ms": [r["p99_ms"] for r in runs], "send_lag_p99_ms": med("send_lag_p99_ms"),
        "client_cpu_pct": med("client_cpu_pct"), "proxy_cpu_ms_per_req": med("proxy_cpu_ms_per_req"),
        "replica_cpu_ms_per_req": med("replica_cpu_ms_per_req"), "load1": med("load1"),
    }


def held(s: dict[str, Any]) -> bool:
    return s["errors"] == 0 and s["p99_ms"] is not None and s["p99_ms"] < P99_LIMIT_MS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="25,50,100,150,200,300",
                   help="offered loads in requests/s, comma-separated")
    p.add_argument("--duration", type=float, default=10.0, help="recorded seconds per step")
    p.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds before each step")
    p.add_argument("--repeats", type=int, default=3, help="runs per rate and target (medians)")
    p.add_argument("--sequential", type=int, default=200,
                   help="requests of the closed-loop sequential step per target and repeat (0: skip)")
    p.add_argument("--replicas", type=int, default=1, help="replicas of the campaign and of bare Serve")
    p.add_argument("--max-ongoing-requests", type=int, default=128)  # the platform's default
    p.add_argument("--max-queued-requests", type=int, default=64)
    p.add_argument("--connections", type=int, default=256, help="client connection pool size")
    p.add_argument("--timeout", type=float, default=10.0, help="client timeout per request (s)")
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--interactions", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--recipe", default="hrnn-meta", choices=tuple(VERBS),
                   help="hrnn-meta on the synthetic data (recommend), graphtr on HetRec MovieLens-2k "
                        "(recommend-tags) or sog on the Stack Exchange robotics posts (generate-tags)")
    p.add_argument("--pairs", type=int, default=2000, help="graphtr: neighbour pairs an epoch")
    p.add_argument("--events", action="store_true",
                   help="put real-time events first, so the campaign reads the group's event log "
                        "(a Ray actor call) for every batch, as a campaign with events does")
    p.add_argument("--predictor-iters", type=int, default=200)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.client:
        client_main()
        return 0
    rates = [float(r) for r in a.rates.split(",") if r.strip()]
    if not rates or min(rates) <= 0 or a.duration <= 0 or a.repeats < 1 or a.replicas < 1:
        p.error("--rates must be positive, --duration > 0, --repeats and --replicas >= 1")
    if a.events and a.recipe != "hrnn-meta":
        p.error("--events puts a click event without tags: hrnn-meta only")

    import random

    log = (lambda *_: None) if a.json else (lambda *m: print(*m, file=sys.stderr, flush=True))
    t_start = time.monotonic()
    load_start = os.getloadavg()
    log(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
        f"({os.cpu_count()} CPUs)")
    tmp = Path(tempfile.mkdtemp(prefix="tagrec-serving-bench-"))
    store_uri = f"file://{tmp / 'store'}"
    serve_port = free_port()
    server = thread = client = dep = None
    try:
        url, key, server, thread = start_platform(store_uri, serve_port)
        from sdk import Client

        client = Client(base_url=url, api_key=key, start_local=False, timeout=120)
        log(f"platform at {url}, Serve on 127.0.0.1:{serve_port}, store {store_uri}")
        dep = train_and_deploy(client, a, tmp, log)
        from serving.endpoints import app_name

        campaign_app = app_name(TENANT, dep["group"], "c")
        if a.events:
            ack = client.events.put(dep["group"], user_id=dep["pool"][0]["user_id"], session_id="bench",
                                    events=[{"item_id": "bench-item", "event_id": "bench-1",
                                             "event_type": "click", "event_value": 1.0}])
            time.sleep(1.0)  # a replica looks the group's log up at most every 0.5 s
            log(f"  events put ({ack.accepted} accepted): the campaign reads the event log per batch")
        rng = random.Random(a.seed)
        bodies = [json.dumps(rng.choice(dep["pool"])) for _ in range(4000)]
        verb = dep["verb"]
        import httpx

        first = httpx.post(f"{dep['endpoint']}/{verb}", content=bodies[0].encode(),
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
        first.raise_for_status()
        t0 = time.perf_counter()
        deploy_bare(first.content, a.replicas, a.max_ongoing_requests, a.max_queued_requests, 0.25)
        log(f"  bare Serve app at {BARE_ROUTE} ({time.perf_counter() - t0:.1f} s); constant answer "
            f"{len(first.content)} bytes")
        urls = {"bare": f"http://127.0.0.1:{serve_port}{BARE_ROUTE}/{verb}",
                "campaign": f"{dep['endpoint']}/{verb}"}
        procs = {"bare": serve_processes(BARE_APP), "campaign": serve_processes(campaign_app)}
        proxies = proxy_processes()
        log(f"  replica processes: bare {[p.pid for p in procs['bare']]}, "
            f"campaign {[p.pid for p in procs['campaign']]}; proxy {[p.pid for p in proxies]}")
        memory_before = {t: memory_of(procs[t]) for t in TARGETS}

        base = {"api_key": key, "bodies": bodies, "timeout_s": a.timeout,
                "connections": a.connections}
        steps: dict[str, dict[float, list[dict[str, Any]]]] = {t: {r: [] for r in rates} for t in TARGETS}
        sequential: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
        for i in range(a.repeats):
            if a.sequential > 0:
                for t in TARGETS:
                    r = run_client({**base, "mode": "sequential", "url": urls[t],
                                    "requests": a.sequential, "warmup_requests": 20})
                    sequential[t].append(r)
                    log(f"  repeat {i + 1}/{a.repeats} sequential {LABELS[t]:<10} "
                        f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}")
            for j, rate in enumerate(rates):
                order = TARGETS if (i + j) % 2 == 0 else TARGETS[::-1]
                for t in order:
                    cpu0, pcpu0 = cpu_of(procs[t]), cpu_of(proxies)
                    r = run_client({**base, "mode": "open", "url": urls[t], "rate": rate,
                                    "duration_s": a.duration, "warmup_s": a.warmup})
                    r["replica_cpu_ms_per_req"] = 1000 * (cpu_of(procs[t]) - cpu0) / r["sent_total"]
                    r["proxy_cpu_ms_per_req"] = 1000 * (cpu_of(proxies) - pcpu0) / r["sent_total"]
                    r["load1"] = os.getloadavg()[0]
                    steps[t][rate].append(r)
                    log(f"  repeat {i + 1}/{a.repeats} {rate:5.0f}/s {LABELS[t]:<10} "
                        f"got {r['achieved_rps']:6.1f}/s  p50 {_ms(r['p50_ms'])}  "
                        f"p99 {_ms(r['p99_ms'])}  max {_ms(r['max_ms'])}  errors {r['errors']} "
                        f"{r['error_codes'] or ''}  (client CPU {r['client_cpu_pct']:.0f} %, "
                        f"send lag p99 {r['send_lag_p99_ms']:.1f} ms, load {r['load1']:.1f})")
        memory_after = {t: memory_of(procs[t]) for t in TARGETS}
        log("  timing the predictor in this process…")
        predictor = time_predictor(store_uri, dep, key, a.seed, a.predictor_iters)

        results = {t: {str(int(r) if r.is_integer() else r): summarize(steps[t][r]) for r in rates}
                   for t in TARGETS}
        seq = {t: ({"p50_ms": statistics.median(r["p50_ms"] for r in sequential[t]),
                    "p99_ms": statistics.median(r["p99_ms"] for r in sequential[t]),
                    "errors": sum(r["errors"] for r in sequential[t])} if sequential[t] else None)
               for t in TARGETS}
        highest = {t: max((float(r) for r, s in results[t].items() if held(s)), default=None)
                   for t in TARGETS}
        ratios = {r: (results["campaign"][r]["p99_ms"] / results["bare"][r]["p99_ms"]
                      if results["campaign"][r]["p99_ms"] and results["bare"][r]["p99_ms"] else None)
                  for r in results["campaign"]}
        # "Below capacity": the rates bare Serve itself held (the floor's capacity on this machine).
        below = [r for r in results["bare"] if held(results["bare"][r])]
        doc = {
            "benchmark": "serving_latency",
            "rates": rates, "duration_s": a.duration, "warmup_s": a.warmup, "repeats": a.repeats,
            "replicas": a.replicas, "max_ongoing_requests": a.max_ongoing_requests,
            "max_queued_requests": a.max_queued_requests, "replica_cpus": 0.25, "events": a.events,
            "recipe": a.recipe, "verb": verb, "request": json.loads(bodies[0]),
            "data": ({"dataset": DATASETS[a.recipe].name} if a.recipe in DATASETS else
                     {"users": a.users, "items": a.items}) | {"rows": dep["rows"]},
            "hyperparameters": dep["hyperparameters"],
            "answer_bytes": len(first.content),
            "setup_seconds": dep["setup_seconds"],
            "results": results,
            "sequential": seq,
            "highest_rate_held": highest,
            "p99_ratio_campaign_vs_bare": ratios,
            "predictor": predictor,
            "memory_mib": {"before_load": memory_before, "after_load": memory_after},
            "goals": {
                "p99_limit_ms": P99_LIMIT_MS,
                "rate_goal_rps": RATE_GOAL, "rate_goal_met": (highest["campaign"] or 0) >= RATE_GOAL,
                "ratio_goal": RATIO_GOAL,
                "rates_below_capacity": [float(r) for r in below],
                "ratio_goal_met": all(ratios[r] is not None and ratios[r] <= RATIO_GOAL
                                      for r in below) if below else False,
                "errors_below_capacity": sum(results["campaign"][r]["errors"] for r in below),
                "errors_goal_met": bool(below) and all(results["campaign"][r]["errors"] == 0
                                                       for r in below),
            },
            "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "ray": __import__("ray").__version__, "aiohttp": __import__("aiohttp").__version__,
            "total_seconds": time.monotonic() - t_start,
            "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
        }
        if a.json:
            print(json.dumps(doc, indent=2))
        else:
            print_report(doc)
        return 0
    finally:
        if client is not None and dep is not None:
            try:
                client.campaigns.delete(dep["group"], "c")
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log(f"  deleting the campaign failed: {e!r}")
        try:
            from ray import serve

            serve.delete(BARE_APP)
        except Exception:  # noqa: BLE001
            pass
        if server is not None:
            server.should_exit = True  # the lifespan shuts the runner (and Ray) down
            thread.join(60)
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def _ms(v: float | None) -> str:
    return f"{v:7.1f} ms" if v is not None else "     - ms"


def _f(v: float | None, spec: str = "7.1f") -> str:
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0] or 0))


def _abridged(value: Any, width: int = 40) -> Any:
    """`value` with every string longer than `width` cut to it and "…" (a post's text, say)."""
    if isinstance(value, dict):
        return {k: _abridged(v, width) for k, v in value.items()}
    if isinstance(value, list):
        return [_abridged(v, width) for v in value]
    return value[:width] + "…" if isinstance(value, str) and len(value) > width else value


def print_report(doc: dict[str, Any]) -> None:
    print()
    print(f"Serving latency, open loop: {doc['duration_s']:g} s per step after {doc['warmup_s']:g} s "
          f"warm-up, {doc['repeats']} runs each (median), {doc['cpus']} CPUs, Ray {doc['ray']}; "
          f"{doc['replicas']} replica(s) each, max_ongoing_requests {doc['max_ongoing_requests']}, "
          f"max_queued_requests {doc['max_queued_requests']}")
    d = doc["data"]
    if doc["events"]:
        print("(--events: the group has an event log, read by the campaign for every batch)")
    print(f"({doc['recipe']} {doc['hyperparameters']} on {d.get('dataset', 'synthetic data')} "
          f"({d['rows']} rows); POST /{doc['verb']} like {_abridged(doc['request'])} for "
          f"{ASKED[doc['recipe']]}; bare Serve "
          f"answers the same {doc['answer_bytes']} bytes; latency from the intended send time, 200s "
          f"only; errors = non-200 or no answer)")
    print()
    head = (f"{'rate/s':>7} {'target':<10} {'got/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
            f"{'max ms':>7} {'errors':>7} {'429':>5} {'proxy':>6} {'replica':>7} {'client':>6} "
            f"{'load':>5}  p99 runs (ms)")
    print(head)
    print(f"{'':>7} {'':<10} {'':>7} {'':>7} {'':>7} {'':>7} {'':>7} {'':>7} {'':>5} "
          f"{'ms CPU/req':>14} {'CPU %':>6}")
    print("-" * len(head))
    for rate in doc["results"]["campaign"]:
        for t in TARGETS:
            s = doc["results"][t][rate]
            mark = "" if held(s) else "  *"
            errs = f"{s['errors']}" + (f" {s['error_codes']}" if s["errors"] else "")
            print(f"{rate:>7} {LABELS[t]:<10} {_f(s['achieved_rps'])} {_f(s['p50_ms'])} "
                  f"{_f(s['p90_ms'])} {_f(s['p99_ms'])} {_f(s['max_ms'])} {s['errors']:>7} "
                  f"{s['r429']:>5} {_f(s['proxy_cpu_ms_per_req'], '6.2f')} "
                  f"{_f(s['replica_cpu_ms_per_req'], '7.2f')} {_f(s['client_cpu_pct'], '6.0f')} "
                  f"{_f(s['load1'], '5.1f')}  "
                  f"{', '.join(_f(v, '.1f') for v in s['p99_runs_ms'])}{mark}"
                  + (f"  {errs}" if s["errors"] else ""))
        r = doc["p99_ratio_campaign_vs_bare"][rate]
        print(f"{'':>7} p99 campaign / bare: {_f(r, '.2f')}")
    print("(* = not held: p99 >= 100 ms or any error; errors and 429s summed over the runs; CPU "
          "per request = CPU time of the Serve proxy / of the target's replicas over a step / "
          "requests sent; client CPU % of one core; load = 1-min load average after the step)")
    print()
    for t in TARGETS:
        h = doc["highest_rate_held"][t]
        sq = doc["sequential"][t]
        print(f"{LABELS[t]:<10}: highest rate held (p99 < {P99_LIMIT_MS:.0f} ms, 0 errors): "
              f"{_f(h, '.0f') + ' req/s' if h else 'none'}"
              + (f"; sequential (1 client) p50 {sq['p50_ms']:.1f} ms, p99 {sq['p99_ms']:.1f} ms"
                 if sq else ""))
    g = doc["goals"]
    below = ", ".join(f"{r:g}" for r in g["rates_below_capacity"]) or "none"
    print(f"goals: campaign holds >= {g['rate_goal_rps']:.0f} req/s: "
          f"{'met' if g['rate_goal_met'] else 'NOT met'}; at the rates bare Serve held ({below} req/s): "
          f"0 campaign errors {'met' if g['errors_goal_met'] else 'NOT met'} "
          f"({g['errors_below_capacity']}), campaign p99 <= {g['ratio_goal']:g}x bare "
          f"{'met' if g['ratio_goal_met'] else 'NOT met'}")
    pr = doc["predictor"]
    print()
    print(f"predictor in process (torch threads {pr['threads']}; median of runs): predict_batch "
          f"1 query {pr['model_1_ms']:.2f} ms, 16 queries {pr['model_16_ms']:.2f} ms "
          f"({pr['model_16_ms'] / 16:.2f} ms each); replica scoring step (_score_batch) "
          f"{pr['score_batch_1_ms']:.2f} / {pr['score_batch_16_ms']:.2f} ms; JSON encode of one "
          f"answer {pr['json_encode_ms']:.3f} ms; request validation {pr['validate_ms']:.3f} ms")
    print(f"replica handler in process (CampaignServer.__call__ on a starlette Request, no Serve): "
          f"{pr['handler_1_ms']:.2f} ms one at a time (includes serve.batch's 2 ms wait), "
          f"{pr['handler_16_ms']:.2f} ms for 16 at once ({pr['handler_16_ms'] / 16:.2f} ms each)")
    print()
    print("replica memory (MiB):")
    for t in TARGETS:
        for when in ("before_load", "after_load"):
            for m in doc["memory_mib"][when][t]:
                print(f"  {LABELS[t]:<10} pid {m['pid']:<8} {when.replace('_', ' '):<12} "
                      f"RSS {m['rss_mib']:7.1f}  USS {m['uss_mib']:7.1f}")
    print()
    s = doc["setup_seconds"]
    print(f"setup: import {s['import']:.0f} s, train {s['train']:.0f} s, deploy {s['deploy']:.0f} s; "
          f"total benchmark time {doc['total_seconds']:.0f} s; load average (1/5/15 min) at start "
          f"{'/'.join(f'{x:.1f}' for x in doc['loadavg_start'])}, at end "
          f"{'/'.join(f'{x:.1f}' for x in doc['loadavg_end'])} (the client, the proxy and the "
          f"replicas share the machine's {doc['cpus']} CPUs with Ray and any other work)")


if __name__ == "__main__":
    sys.exit(main())
