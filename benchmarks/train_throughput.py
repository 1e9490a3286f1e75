"""Training throughput of the Ray Train job vs the same loop in plain PyTorch, same data, same run.

    .venv/bin/python benchmarks/train_throughput.py [--recipe hrnn-meta|utpm|graphtr|sog]
        [--interactions 100000] [--epochs 3] [--repeats 3] [--pairs 5000] [--max-length 128]

Data: hrnn-meta trains on seeded synthetic interactions (`--interactions`, `--users`, `--items`);
utpm on movielens-latest-small with the HetRec MovieLens-2k tags from ../shared/data (as
benchmarks/utpm_quality.py; its events are the labels a batch scores, sampled negatives included);
graphtr on the HetRec MovieLens-2k folder itself (`sdk.hetrec`, its graph of 47,957 tag
assignments), `--pairs` neighbour pairs an epoch (its `pairs_per_epoch`; the rates are pairs/s);
sog on the Stack Exchange robotics folder (`sdk.stackexchange`, 2,771 posts) with `--max-length`
word pieces of context (its `max_length`) and 1 epoch unless `--epochs` says otherwise (the rates
are training instances/s: 1-to-M trains one instance per prefix of a post's shuffled tags).

Both sides run the same generic loop (`training_jobs.loop.epochs`, the recipe's own hooks) over
the same data: plain = `training_jobs.loop.fit_in_process` in a fresh process without Ray (fit the
featurizer, transform, every epoch); Ray = `training_jobs.train.train_recipe` (the same fit and
transform in the driver, then TorchTrainer, 1 worker of 1 CPU, checkpoints every epoch to a local
folder; the plain fit gets the same single thread and OMP_NUM_THREADS=1, as Ray sets for its workers).
Reported: events/s from the epochs' own timings (steady state; Ray Train reports only the epochs
whose checkpoints it keeps, the last 2, so both sides are timed over those same epochs; sog's one
epoch by default is both sides' first, warm-up included) and end to end (wall time of the whole
call, featurizing and start-up included), the Ray overhead in %, and peak RSS: the plain
process's and the Ray driver's own (`VmHWM`; the driver fits the featurizer too), and the Ray Train
worker's (sampled with psutil while training, among this process's descendants only: other Ray
clusters on the machine are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def _plain(a: argparse.Namespace) -> dict:
    from training_jobs.loop import fit_in_process

    tables, schemas = _data(a)
    history: list[dict] = []
    t0 = time.perf_counter()
    # The same resources as the Ray worker: Ray gives it 1 CPU and sets OMP_NUM_THREADS=1.
    fit_in_process(a.recipe, _hyperparameters(a), tables, schemas=schemas, on_epoch=history.append,
                   threads=1)
    return {"wall_s": time.perf_counter() - t0, "events": sum(m["events"] for m in history),
            "epoch_s": [m["seconds"] for m in history], "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss counts the parent's too after vfork+exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1]) / 1024


def _peak_rss_of_ray_workers(stop: threading.Event, out: dict) -> None:
    peak = 0
    while not stop.is_set():
        total = 0
        for p in psutil.Process().children(recursive=True):  # this run's Ray cluster only
            try:
                if "RayTrainWorker" in " ".join(p.cmdline()):
                    total += p.memory_info().rss
            except psutil.Error:  # gone meanwhile
                pass
        peak = max(peak, total)
        time.sleep(0.2)
    out["ray_workers_peak_rss_mib"] = peak / 2**20


def _hyperparameters(a: argparse.Namespace) -> dict:
    extra = {"graphtr": {"pairs_per_epoch": a.pairs}, "sog": {"max_length": a.max_length}}
    return {"epochs": a.epochs, "seed": 0, **extra.get(a.recipe, {})}


def _data(a: argparse.Namespace) -> tuple:
    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    if a.recipe in ("graphtr", "sog"):
        import pyarrow.parquet as pq

        from sdk import hetrec, stackexchange

        convert, folder = {
            "graphtr": (hetrec.convert, data_dir / "hetrec2011-movielens-2k-tags"),
            "sog": (stackexchange.convert, data_dir / "stackexchange-robotics-kaggle")}[a.recipe]
        if not folder.exists():
            sys.exit(f"--recipe {a.recipe} trains on {folder} (licensed data, not in the repo): absent")
        with tempfile.TemporaryDirectory() as tmp:
            converted = convert(folder, tmp)
            return {k: pq.read_table(p) for k, p in converted.paths.items()}, converted.schemas
    if a.recipe == "utpm":
        import pyarrow.parquet as pq

        from sdk.movielens_tags import convert

        ml, tags = data_dir / "movielens-latest-small", data_dir / "hetrec2011-movielens-2k-tags"
        if not ml.exists() or not tags.exists():
            sys.exit(f"--recipe utpm trains on {ml} and {tags} (licensed data, not in the repo): absent")
        with tempfile.TemporaryDirectory() as tmp:
            converted = convert(ml, tmp, tags_from=tags)
            return {k: pq.read_table(p) for k, p in converted.paths.items()}, converted.schemas
    from sdk.synthetic import generate

    data = generate(seed=7, n_users=a.users, n_items=a.items, n_interactions=a.interactions)
    return data.tables(), data.schemas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="hrnn-meta", choices=("hrnn-meta", "utpm", "graphtr", "sog"))
    ap.add_argument("--pairs", type=int, default=5_000, help="graphtr: neighbour pairs an epoch")
    ap.add_argument("--max-length", type=int, default=128, help="sog: context word pieces per post")
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=4_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--epochs", type=int, default=None, help="default 3 (sog: 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child-plain", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.epochs is None:
        a.epochs = 1 if a.recipe == "sog" else 3
    if a.child_plain:  # the plain reference, in a fresh process of its own (no Ray in it)
        print(json.dumps(_plain(a)))
        return

    import pyarrow.fs as pafs
    import ray

    from training_jobs.train import ScalingSpec, train_recipe

    tables, schemas = _data(a)

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=256 << 20)
    plain_runs, ray_runs, mem = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            child = subprocess.run(
                [sys.executable, __file__, "--child-plain", "--recipe", a.recipe,
                 "--interactions", str(a.interactions),
                 "--users", str(a.users), "--items", str(a.items), "--epochs", str(a.epochs),
                 "--pairs", str(a.pairs), "--max-length", str(a.max_length)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"})  # as Ray sets it for its workers
            plain_runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            stop = threading.Event()
            watcher = threading.Thread(target=_peak_rss_of_ray_workers, args=(stop, mem))
            watcher.start()
            t0 = time.perf_counter()
            res = train_recipe(a.recipe, _hyperparameters(a), tables, schemas=schemas,
                               artifact_dir=Path(tmp) / f"model-{r}",
                               checkpoint_path=str(Path(tmp) / "ckpt"),
                               checkpoint_fs=pafs.LocalFileSystem(), run_name=f"bench-{r}",
                               scaling=ScalingSpec(workers=1, max_failures=0))
            wall = time.perf_counter() - t0
            stop.set()
            watcher.join()
            # Ray reports only the epochs whose checkpoints it keeps (the last 2): rates compare
            # those same epochs on both sides.
            kept = {int(m["epoch"]): float(m["seconds"]) for m in res.history if "seconds" in m}
            ray_runs.append({"wall_s": wall, "events": res.events, "epoch_s": kept})
            print(f"repeat {r + 1}/{a.repeats}: plain {plain_runs[-1]['wall_s']:.2f} s, "
                  f"ray {wall:.2f} s (epochs {sorted(ray_runs[-1]['epoch_s'])} took "
                  f"{sum(ray_runs[-1]['epoch_s'].values()):.2f} s)", flush=True)
    ray.shutdown()

    kept_epochs = sorted(ray_runs[0]["epoch_s"])

    def rates(runs: list[dict]) -> tuple[float, float]:
        per_epoch = runs[0]["events"] / a.epochs
        steady = statistics.median(
            per_epoch * len(kept_epochs) / sum(r["epoch_s"][e] for e in kept_epochs) for r in runs)
        end_to_end = statistics.median(r["events"] / r["wall_s"] for r in runs)
        return steady, end_to_end

    for r in plain_runs:
        r["epoch_s"] = dict(enumerate(r["epoch_s"]))
    p_steady, p_e2e = rates(plain_runs)
    unit = {"graphtr": "pairs", "sog": "instances"}.get(a.recipe, "events")
    r_steady, r_e2e = rates(ray_runs)
    result = {
        "recipe": a.recipe, "interactions": sum(t.num_rows for k, t in tables.items()
                                                if k.value == "interactions"),
        "rows": {k.value: t.num_rows for k, t in tables.items()},
        "epochs": a.epochs, "repeats": a.repeats,
        "events_per_epoch": plain_runs[0]["events"] // a.epochs, "compared_epochs": kept_epochs,
        "plain_events_per_s": round(p_steady), "ray_events_per_s": round(r_steady),
        "ray_overhead_pct_steady": round(100 * (1 - r_steady / p_steady), 1),
        "plain_events_per_s_end_to_end": round(p_e2e), "ray_events_per_s_end_to_end": round(r_e2e),
        "ray_overhead_pct_end_to_end": round(100 * (1 - r_e2e / p_e2e), 1),
        "unit": unit,
        "plain_peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in plain_runs)),
        "driver_peak_rss_mib": round(_peak_rss_mib()),
        "ray_workers_peak_rss_mib": round(mem.get("ray_workers_peak_rss_mib", 0)),
    }
    if a.json:
        print(json.dumps(result))
        return
    trained = (f"{result['rows']['items']:,} posts" if a.recipe == "sog"
               else f"{result['interactions']:,} interactions")
    print(f"\n{a.recipe} training, {trained}, {a.epochs} epochs of "
          f"{result['events_per_epoch']:,} {unit}, median of {a.repeats}, {os.cpu_count()} CPUs")
    print(f"  steady state (epochs {kept_epochs}): plain {p_steady:,.0f} {unit}/s, Ray Train {r_steady:,.0f} "
          f"{unit}/s -> overhead {result['ray_overhead_pct_steady']}% (goal <= 15%)")
    print(f"  end to end (with start-up): plain {p_e2e:,.0f} {unit}/s, Ray Train {r_e2e:,.0f} "
          f"{unit}/s -> overhead {result['ray_overhead_pct_end_to_end']}%")
    print(f"  peak RSS: plain process {result['plain_peak_rss_mib']} MiB; Ray driver "
          f"{result['driver_peak_rss_mib']} MiB + Ray Train worker {result['ray_workers_peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
