"""Dataset import throughput and peak memory, next to plain pyarrow on the same file and server.

What runs (all on this machine; every number printed is measured in this run):

* moto's S3 server on a free 127.0.0.1 port (a subprocess, stopped at the end) and one bucket;
* a seeded interactions CSV (user_id, item_id, timestamp in epoch seconds, event_type,
  event_value) written to a temp dir, then uploaded to the store the way the control plane's
  `POST /v1/uploads` does (bytes at `uploads/{id}/data`, then `upload.json`);
* for each repeat, each variant in a fresh Python subprocess (interleaved), so peak RSS belongs
  to that one run:

  - ``tagrec``: the dataset group, dataset and import-job records are created as the control
    plane creates them, then only `training_jobs.dataset_import.run_import` is timed (read the
    upload from S3, validate/convert every column, write the zstd Parquet snapshot, publish it);
  - ``pyarrow read_csv``: `pyarrow.csv.read_csv` of the same uploaded object +
    `pyarrow.parquet.write_table` to the same S3 server (S3FileSystem with endpoint_override);
  - ``pyarrow streaming``: `pyarrow.csv.open_csv` + `ParquetWriter`, batch by batch.

  Both pyarrow references read the S3 object tagrec reads, write to the same server and use the
  store's codec (zstd) and CSV block size, so the ratio compares pipelines, not codecs.
  `--plain-source local` makes them read the local CSV file instead.

* memory: tagrec's import of CSVs of `--big-rows` and twice as many rows; the peak RSS of the
  two, against their sizes, shows whether memory grows with the file.
* `--breakdown`: one extra, instrumented tagrec import showing where its time goes.

Usage: `python benchmarks/import_throughput.py [--rows N] [--repeats K] [--big-rows M] [--json]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TENANT = "bench"
REGION = "us-east-1"
INTERACTIONS_SCHEMA = {
    "fields": [
        {"name": "user_id", "type": "string", "role": "USER_ID"},
        {"name": "item_id", "type": "string", "role": "ITEM_ID"},
        {"name": "timestamp", "type": "timestamp", "role": "TIMESTAMP"},
        {"name": "event_type", "type": "string", "role": "EVENT_TYPE"},
        {"name": "event_value", "type": "float", "role": "EVENT_VALUE"},
    ]
}
VARIANTS = ("tagrec", "pyarrow_read_csv", "pyarrow_streaming")
LABELS = {
    "tagrec": "tagrec run_import",
    "pyarrow_read_csv": "pyarrow read_csv+write_table",
    "pyarrow_streaming": "pyarrow open_csv+ParquetWriter",
}
MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# helpers shared by parent and children
# ---------------------------------------------------------------------------------------------

def _peak_rss_bytes() -> int:
    """This process's peak RSS.

    Linux: VmHWM, the high-water mark of this process's own address space. Not
    `getrusage().ru_maxrss`: Python starts children with vfork+exec, and exec folds the
    *parent's* high-water mark into the child's ru_maxrss (a child of a parent that once had
    800 MiB resident reports ru_maxrss >= 800 MiB while its VmHWM is 11 MiB).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _s3fs(endpoint: str, **kwargs: Any):
    import pyarrow.fs as pafs

    host = endpoint.split("://", 1)[1]
    return pafs.S3FileSystem(endpoint_override=host, scheme="http", region=REGION,
                             access_key="testing", secret_key="testing", **kwargs)


# ---------------------------------------------------------------------------------------------
# children: one measured run each, result printed as one JSON line on stdout
# ---------------------------------------------------------------------------------------------

def _child_tagrec(cfg: dict[str, Any]) -> dict[str, Any]:
    from sdk.types import Schema, Status
    from store import Keys, Store, StoreConfig, now_iso
    from training_jobs import dataset_import

    store = Store(StoreConfig(uri=cfg["store_uri"], endpoint_url=cfg["endpoint"], region=REGION))
    keys, registry = Keys(TENANT), store.registry
    group, job_name = f"g-{uuid.uuid4().hex[:10]}", "import-1"
    now = now_iso()
    base = {"created_at": now, "updated_at": now, "idempotency_key": None}
    # The records serving/app.py creates for create_group / create_dataset / create_import_job.
    registry.create(keys.group_record(group), {**base, "name": group, "description": None,
                                               "status": Status.ACTIVE.value})
    schema = Schema.model_validate(INTERACTIONS_SCHEMA)
    registry.create(keys.dataset_record(group, "interactions"), {
        **base, "name": "interactions", "kind": "interactions", "dataset_group": group,
        "status": Status.ACTIVE.value, "schema": schema.model_dump(mode="json", by_alias=True)})
    meta = registry.read(f"{keys.upload(cfg['upload_id'])}/upload.json")
    registry.create(keys.import_job(group, job_name), {
        **base, "name": job_name, "dataset_group": group, "dataset": "interactions",
        "mode": "full", "source": {"upload_id": cfg["upload_id"]}, "source_name": meta["filename"],
        "status": Status.CREATE_PENDING.value,
        "progress": {"rows": 0, "bytes_read": 0, "bytes_total": None}})

    phases = _instrument(dataset_import) if cfg.get("breakdown") else None
    rss_before = _current_rss_bytes()
    t0 = time.perf_counter()
    job = dataset_import.run_import(store, TENANT, group, job_name)
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    if job["status"] != Status.ACTIVE.value or job.get("total_rows") != cfg["rows"]:
        raise SystemExit(f"tagrec import did not succeed: {json.dumps(job)[:2000]}")
    store.backend.delete_prefix(keys.group(group))  # keep the in-memory server small (untimed)
    out = {"seconds": seconds, "rows": job["total_rows"], "peak_rss": peak,
           "rss_before": rss_before}
    if phases is not None:
        out["phases"] = {**phases, "other": seconds - sum(phases.values())}
    return out


def _instrument(di: Any) -> dict[str, float]:
    """Wrap the import's steps to add up their exclusive wall time (main thread, nested-aware)."""
    from store.registry import Registry
    from store.snapshots import SnapshotWriter

    totals: dict[str, float] = {}
    stack: list[float] = []  # child time accumulated for each open call

    def timed(label: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total = time.perf_counter() - t
                children = stack.pop()
                totals[label] = totals.get(label, 0.0) + total - children
                if stack:
                    stack[-1] += total
        return wrapper

    def timed_batches(fn: Any) -> Any:
        next_batch = timed("CSV: read wait + parse (next batch)", lambda it: next(it))

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            it = iter(fn(*args, **kwargs))
            while True:
                try:
                    batch = next_batch(it)
                except StopIteration:
                    return
                yield batch
        return wrapper

    di._Source.__init__ = timed("open source (HEAD + sniff GET)", di._Source.__init__)
    di._csv_header = timed("read CSV header (GET)", di._csv_header)
    di._csv_batches = timed_batches(di._csv_batches)
    di.conform = timed("conform (validate + convert)", di.conform)
    SnapshotWriter.write = timed("Parquet encode + upload (write)", SnapshotWriter.write)
    SnapshotWriter.close = timed("close part (last upload)", SnapshotWriter.close)
    di.publish = timed("publish (manifest + CURRENT CAS)", di.publish)
    Registry.update = timed("job record updates (GET + CAS)", Registry.update)
    return totals


def _open_source(cfg: dict[str, Any]):
    import pyarrow.fs as pafs

    if cfg["plain_source"] == "local":
        return pafs.LocalFileSystem().open_input_stream(cfg["csv_path"])
    return _s3fs(cfg["endpoint"]).open_input_stream(cfg["upload_path"])


def _child_pyarrow_read_csv(cfg: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fs = _s3fs(cfg["endpoint"])
    out = f"{cfg['bucket']}/plain/{uuid.uuid4().hex}.parquet"
    rss_before = _current_rss_bytes()
    t0 = time.perf_counter()
    with _open_source(cfg) as src:
        table = pacsv.read_csv(src, read_options=pacsv.ReadOptions(block_size=cfg["block_size"]))
    pq.write_table(table, out, filesystem=fs, compression="zstd")
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    rows = table.num_rows
    del table
    _check_and_delete(fs, out, cfg["rows"])
    return {"seconds": seconds, "rows": rows, "peak_rss": peak, "rss_before": rss_before}


def _child_pyarrow_streaming(cfg: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fs = _s3fs(cfg["endpoint"])
    out = f"{cfg['bucket']}/plain/{uuid.uuid4().hex}.parquet"
    rss_before = _current_rss_bytes()
    rows = 0
    t0 = time.perf_counter()
    with _open_source(cfg) as src:
        reader = pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=cfg["block_size"]))
        with fs.open_output_stream(out) as sink, \
                pq.ParquetWriter(sink, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    _check_and_delete(fs, out, cfg["rows"])
    return {"seconds": seconds, "rows": rows, "peak_rss": peak, "rss_before": rss_before}


def _check_and_delete(fs: Any, path: str, rows: int) -> None:
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as f:
        got = pq.ParquetFile(f).metadata.num_rows
    fs.delete_file(path)
    if got != rows:
        raise SystemExit(f"{path}: wrote {got} rows, expected {rows}")


CHILDREN = {
    "tagrec": _child_tagrec,
    "pyarrow_read_csv": _child_pyarrow_read_csv,
    "pyarrow_streaming": _child_pyarrow_streaming,
}


def child_main(variant: str, cfg_json: str) -> None:
    result = CHILDREN[variant](json.loads(cfg_json))
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# parent: server, data, orchestration, report
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return proc, endpoint
        except urllib.error.HTTPError:
            return proc, endpoint  # it answered
        except OSError:
            time.sleep(0.1)
    stop_moto(proc)
    raise TimeoutError(f"moto server at {endpoint} did not answer within 30 s")


def stop_moto(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def generate_csv(path: Path, rows: int, seed: int) -> None:
    """A seeded interactions CSV: Zipf-like popular items, heavy users, realistic string ids."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n_users = max(1000, rows // 20)
    n_items = max(500, rows // 50)
    # Opaque ids like real exports: a hex user id, a SKU-style item id.
    user_ids = np.array([f"u_{h:016x}" for h in rng.integers(0, 2**63, n_users)], dtype=object)
    skus = rng.permutation(10_000_000)[:n_items]
    suffixes = rng.choice(list("ABCDEFGH"), n_items)
    item_ids = np.array([f"SKU-{i:07d}-{c}" for i, c in zip(skus, suffixes, strict=True)],
                        dtype=object)
    events = np.array(["view", "click", "add_to_cart", "purchase", "rating"], dtype=object)
    start = 1_672_531_200  # 2023-01-01T00:00:00Z
    chunk = 1_000_000
    names = ["user_id", "item_id", "timestamp", "event_type", "event_value"]
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                        ("timestamp", pa.int64()), ("event_type", pa.string()),
                        ("event_value", pa.float64())])
    opts = pacsv.WriteOptions(include_header=True, quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=opts) as w:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            users = user_ids[(rng.pareto(1.2, n) * n_users / 50).astype(np.int64) % n_users]
            items = item_ids[(rng.zipf(1.3, n) - 1) % n_items]
            ts = np.sort(rng.integers(start, start + 365 * 86_400, n))
            ev = rng.choice(len(events), n, p=[0.6, 0.25, 0.08, 0.05, 0.02])
            value = np.where(ev == 4, rng.integers(1, 11, n) / 2.0,
                             np.where(ev == 3, np.round(rng.gamma(2.0, 15.0, n), 2), 1.0))
            columns = [pa.array(users, pa.string()), pa.array(items, pa.string()), pa.array(ts),
                       pa.array(events[ev], pa.string()), pa.array(value)]
            w.write_batch(pa.record_batch(columns, names=names))


def upload_like_control_plane(store_uri: str, endpoint: str, csv_path: Path) -> tuple[str, str]:
    """Stream the file to `uploads/{id}/data` and write `upload.json`, as POST /v1/uploads does."""
    from store import Keys, Store, StoreConfig, now_iso

    store = Store(StoreConfig(uri=store_uri, endpoint_url=endpoint, region=REGION))
    keys = Keys(TENANT)
    upload_id = uuid.uuid4().hex
    prefix = keys.upload(upload_id)
    size = 0
    # Same key and bytes as store.backend.open_output(), but with a long request timeout: moto
    # assembles a multipart upload in Python, and for objects of ~1 GB CompleteMultipartUpload
    # outlasts the AWS SDK's default timeout; the SDK's retry then fails (upload id gone).
    fs = _s3fs(endpoint, request_timeout=300)
    out = fs.open_output_stream(store.backend.path(f"{prefix}/data"))
    with open(csv_path, "rb") as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
            size += len(chunk)
    out.close()
    store.registry.create(f"{prefix}/upload.json", {"upload_id": upload_id, "size": size,
                                                    "filename": csv_path.name,
                                                    "created_at": now_iso()})
    return upload_id, store.backend.path(f"{prefix}/data")


def run_child(variant: str, cfg: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", variant, json.dumps(cfg)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} run failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    secs = [r["seconds"] for r in runs]
    med = statistics.median(secs)
    rows = runs[0]["rows"]
    return {
        "runs_seconds": [round(s, 4) for s in secs],
        "median_seconds": med,
        "rows": rows,
        "rows_per_second": rows / med,
        "peak_rss_mib": statistics.median(r["peak_rss"] for r in runs) / MIB,
        "rss_before_mib": statistics.median(r["rss_before"] for r in runs) / MIB,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the main CSV")
    p.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    p.add_argument("--big-rows", type=int, default=5_000_000,
                   help="memory run: import CSVs of this many and twice as many rows (0 skips)")
    p.add_argument("--big-repeats", type=int, default=1, help="runs of each memory-run import")
    p.add_argument("--breakdown", action="store_true",
                   help="add one instrumented tagrec import showing where its time goes")
    p.add_argument("--plain-source", choices=("s3", "local"), default="s3",
                   help="where the pyarrow references read the CSV (default: the same S3 object)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "CONFIG"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child_main(*a.child)
        return 0
    if a.rows < 1 or a.repeats < 1 or a.big_rows < 0 or a.big_repeats < 1:
        p.error("--rows, --repeats and --big-repeats must be positive, --big-rows >= 0")

    from training_jobs.dataset_import import BLOCK_SIZE

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("AWS_PROFILE", None)
    log = (lambda *_: None) if a.json else (lambda *m: print(*m, file=sys.stderr, flush=True))
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="tagrec-bench-"))
    moto, endpoint = start_moto(env)
    env["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED",
                                           "AWS_ENDPOINT_URL")})
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        bucket = f"tagrec-bench-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=bucket)
        store_uri = f"s3://{bucket}/store"

        def prepare(rows: int, name: str) -> dict[str, Any]:
            path = tmp / name
            t0 = time.perf_counter()
            generate_csv(path, rows, a.seed)
            t1 = time.perf_counter()
            upload_id, upload_path = upload_like_control_plane(store_uri, endpoint, path)
            size = path.stat().st_size
            log(f"  {name}: {rows:,} rows, {size / 1e6:.1f} MB "
                f"(generated {t1 - t0:.1f} s, uploaded {time.perf_counter() - t1:.1f} s)")
            return {"endpoint": endpoint, "bucket": bucket, "store_uri": store_uri, "rows": rows,
                    "upload_id": upload_id, "upload_path": upload_path, "csv_path": str(path),
                    "csv_bytes": size, "block_size": BLOCK_SIZE, "plain_source": a.plain_source}

        def discard(cfg: dict[str, Any]) -> None:
            """Free the CSV here and on the (in-memory) server once its runs are done."""
            Path(cfg["csv_path"]).unlink(missing_ok=True)
            s3.delete_object(Bucket=bucket, Key=cfg["upload_path"].split("/", 1)[1])

        log(f"moto S3 server at {endpoint}; data in {tmp}")
        cfg = prepare(a.rows, "interactions.csv")
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for i in range(a.repeats):
            for v in VARIANTS:  # interleaved, so drift affects every variant alike
                r = run_child(v, cfg, env)
                runs[v].append(r)
                log(f"  repeat {i + 1}/{a.repeats} {LABELS[v]:<32} {r['seconds']:7.2f} s  "
                    f"peak RSS {r['peak_rss'] / MIB:7.1f} MiB")
        breakdown = None
        if a.breakdown:
            r = run_child("tagrec", {**cfg, "breakdown": True}, env)
            breakdown = {"seconds": r["seconds"], "phases": r["phases"]}
            log(f"  breakdown run {LABELS['tagrec']:<32} {r['seconds']:7.2f} s")
        discard(cfg)
        results = {v: summarize(runs[v]) for v in VARIANTS}
        speed = {v: results[v]["rows_per_second"] for v in VARIANTS}
        ratio_read = speed["tagrec"] / speed["pyarrow_read_csv"]
        ratio_stream = speed["tagrec"] / speed["pyarrow_streaming"]

        memory: dict[str, Any] | None = None
        if a.big_rows > 0:
            points = []
            for k, rows in enumerate((a.big_rows, 2 * a.big_rows)):
                bcfg = prepare(rows, f"interactions-big{k + 1}.csv")
                Path(bcfg["csv_path"]).unlink()  # tagrec reads the upload; free the disk now
                bruns = []
                for i in range(a.big_repeats):
                    r = run_child("tagrec", bcfg, env)
                    bruns.append(r)
                    log(f"  memory {rows:,} rows {i + 1}/{a.big_repeats} {r['seconds']:7.2f} s  "
                        f"peak RSS {r['peak_rss'] / MIB:7.1f} MiB")
                discard(bcfg)
                points.append({"csv_mb": bcfg["csv_bytes"] / 1e6, **summarize(bruns)})
            small = {"csv_mb": cfg["csv_bytes"] / 1e6, **results["tagrec"]}
            one, two = points
            # Extra peak RSS per extra MiB of CSV between the two big files: ~0 if streaming.
            slope = (two["peak_rss_mib"] - one["peak_rss_mib"]) / (
                (two["csv_mb"] - one["csv_mb"]) * 1e6 / MIB)
            memory = {
                "points": [small, one, two],
                "rss_mib_per_csv_mib": slope,
                "bounded": slope < 0.1,
            }

        doc = {
            "benchmark": "import_throughput",
            "rows": a.rows,
            "repeats": a.repeats,
            "csv_mb": cfg["csv_bytes"] / 1e6,
            "csv_block_size_bytes": BLOCK_SIZE,
            "plain_source": a.plain_source,
            "endpoint": "moto S3 server on 127.0.0.1",
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "pyarrow": __import__("pyarrow").__version__,
            "results": results,
            "ratio_tagrec_vs_pyarrow_read_csv": ratio_read,
            "ratio_tagrec_vs_pyarrow_streaming": ratio_stream,
            "goal_ratio": 0.5,
            "goal_met": ratio_read >= 0.5,
            "memory": memory,
            "breakdown": breakdown,
            "total_seconds": time.monotonic() - t_start,
            "loadavg": [load_start, os.getloadavg()[0]],
        }
        if a.json:
            print(json.dumps(doc, indent=2))
        else:
            print_report(doc)
        return 0
    finally:
        stop_moto(moto)
        shutil.rmtree(tmp, ignore_errors=True)


def print_report(doc: dict[str, Any]) -> None:
    print()
    print(f"Import throughput: {doc['rows']:,} interaction rows, CSV {doc['csv_mb']:.1f} MB, "
          f"S3 = moto on loopback, {doc['repeats']} runs each (median), {doc['cpus']} CPUs, "
          f"pyarrow {doc['pyarrow']}")
    print(f"(pyarrow references read the CSV from {doc['plain_source']}, write zstd Parquet to the "
          f"same S3 server; CSV block {doc['csv_block_size_bytes'] / MIB:g} MiB)")
    print()
    head = (f"{'variant':<32} {'median s':>9} {'rows/s':>12} {'peak RSS MiB':>13} "
            f"{'RSS at start':>12}   runs (s)")
    print(head)
    print("-" * len(head))
    for v in VARIANTS:
        r = doc["results"][v]
        print(f"{LABELS[v]:<32} {r['median_seconds']:9.2f} {r['rows_per_second']:12,.0f} "
              f"{r['peak_rss_mib']:13.1f} {r['rss_before_mib']:12.1f}   "
              f"{', '.join(f'{s:.2f}' for s in r['runs_seconds'])}")
    print()
    print(f"throughput ratio tagrec / pyarrow read_csv+write_table:   "
          f"{doc['ratio_tagrec_vs_pyarrow_read_csv']:.2f}  (goal >= {doc['goal_ratio']}: "
          f"{'met' if doc['goal_met'] else 'NOT met'})")
    print(f"throughput ratio tagrec / pyarrow open_csv+ParquetWriter: "
          f"{doc['ratio_tagrec_vs_pyarrow_streaming']:.2f}")
    if doc.get("breakdown"):
        b = doc["breakdown"]
        print()
        print(f"where tagrec's time goes (one instrumented run, {b['seconds']:.2f} s; "
              f"exclusive wall time in the main thread):")
        for name, sec in sorted(b["phases"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<40} {sec:6.3f} s  {100 * sec / b['seconds']:5.1f} %")
    m = doc.get("memory")
    if m:
        print()
        print("memory: peak RSS of the process running tagrec's import (median of its runs)")
        for pt in m["points"]:
            print(f"  {pt['csv_mb']:8.1f} MB CSV ({pt['rows']:>11,} rows): "
                  f"{pt['peak_rss_mib']:7.1f} MiB   (import {pt['median_seconds']:.1f} s, "
                  f"{pt['rows_per_second']:,.0f} rows/s)")
        print(f"  {m['rss_mib_per_csv_mib'] * 100:+.0f} MiB of peak RSS per 100 MiB more CSV "
              f"between the two big files: "
              + ("bounded, does not grow with file size" if m["bounded"]
                 else "GROWS with file size"))
        print("  (rows/s of big files is not comparable: moto copies the whole object for every "
              "ranged GET)")
    print()
    print(f"total benchmark time {doc['total_seconds']:.0f} s; load average at start/end "
          f"{doc['loadavg'][0]:.1f} / {doc['loadavg'][1]:.1f} (other work on the machine skews "
          f"times; variants run interleaved so the ratio is less affected)")


if __name__ == "__main__":
    sys.exit(main())
