"""HRNN-meta on a large catalog: full vs sampled softmax at 100k items, sampled softmax at 1M items.

    .venv/bin/python benchmarks/large_catalog.py [--interactions 300000] [--batches 200]
        [--dense-batches 30] [--repeats 3] [--threads 1] [--with-1m-dense] [--with-dense-adam] [--json]

Goal from the issue: a synthetic 1M-item catalog trains with sampled softmax (log-q correction,
proposal ∝ frequency^0.75, paper §3.1) within 4 GB of RAM; report events/s of the full ("dense")
softmax vs sampled softmax at 100k items.

The parent generates one seeded `sdk.synthetic` dataset per catalog size (Zipf popularity over a
random ranking; the items table lists every item with its genres, so the featurizer's catalog is
all N items even though the interactions touch only part of it) and writes it as Parquet. Every
run is then a fresh child process (plain PyTorch, no Ray) that reads the Parquet tables, fits the
featurizer, transforms, builds the model with `HrnnMetaHooks`, and trains with the generic loop
(`training_jobs.loop.epochs`, the hooks' own `configure_optimizer` / `clip_gradients`, as Ray Train's
workers run it): `--warmup` untimed batches, then `--batches` timed ones
(`--dense-batches` for the full-softmax and dense-Adam variants, whose batches take seconds; `0`:
the rest of the epoch). Events/s = target positions trained (`hooks.num_events`) / time of the
timed batches (batch assembly, forward, backward, clipping, optimizer step). Variants run
interleaved, `--repeats` times; medians are reported. Peak RSS is the child's own VmHWM.

| variant | catalog | sampled_softmax_threshold |
|---|---|---|
| 100k dense | 100,000 items | above the catalog (full softmax over every trainable item) |
| 100k sampled | 100,000 items | 0 (sampled softmax, `num_negatives` shared negatives per batch) |
| 1M sampled | 1,000,000 items | the default, 100,000 |
| 1M dense (`--with-1m-dense`) | 1,000,000 items | above the catalog; off by default, see below |
| 1M sampled, dense Adam (`--with-dense-adam`) | 1,000,000 items | the default, 100,000 (see below) |

1M dense is off by default: the full softmax materializes a (positions, catalog) logits matrix
(about 630 x 1M floats here; items never trained are masked, not skipped), its log-softmax and
their gradients every batch, plus the mixed decoder weights of every item: tens of seconds and
about 10 GB per batch (measured figures in benchmarks/README.md). The paper (§3.1, Table 8)
hits the same wall with dense decoders at 1M items.

"1M sampled, dense Adam" gives the loop its own `torch.optim.Adam` instead of the hooks'
`configure_optimizer` (what the recipe did before sparse updates): dense gradients for the per-item
tables, so every row of them and of Adam's two moments is read and written at every step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MIB = 1 << 20
LIMIT_MIB = 4096
KINDS = ("interactions", "items", "users")


def _status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM: this process's own peak RSS; VmRSS: now).

    Not `getrusage().ru_maxrss`: children are started with vfork+exec, and exec folds the parent's
    high-water mark into the child's ru_maxrss.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _tensor_mib(tensors: Any) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


# ---------------------------------------------------------------------------------------------
# child: one run
# ---------------------------------------------------------------------------------------------

def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq
    import torch

    from recipes.hrnn_meta import HrnnMetaConfig, HrnnMetaFeaturizer, HrnnMetaHooks
    from sdk.types import DatasetKind, Schema
    from training_jobs.loop import epochs

    torch.set_num_threads(spec["threads"])
    stages: dict[str, float] = {"imports": _status_kib("VmRSS") / 1024}
    data = Path(spec["data"])
    tables = {DatasetKind(k): pq.read_table(data / f"{k}.parquet") for k in KINDS}
    schemas = {DatasetKind(k): Schema.model_validate(v)
               for k, v in json.loads((data / "schemas.json").read_text()).items()}
    stages["tables"] = _status_kib("VmRSS") / 1024
    config = HrnnMetaConfig(epochs=1, seed=0, **spec["config"])

    t0 = time.perf_counter()
    featurizer = HrnnMetaFeaturizer.fit(tables, config, schemas=schemas)
    fit_s = time.perf_counter() - t0
    stages["fit"] = _status_kib("VmRSS") / 1024
    examples = featurizer.transform(tables)
    del tables
    stages["transform"] = _status_kib("VmRSS") / 1024

    hooks = HrnnMetaHooks(config, featurizer)
    model = hooks.build_model()
    if spec.get("dense_adam"):  # what a loop that ignores configure_optimizer gets
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                     weight_decay=config.weight_decay)
    else:
        optimizer = hooks.configure_optimizer(model)
    stages["model"] = _status_kib("VmRSS") / 1024

    # The generic loop, one epoch at most; a step's time runs from the end of the previous one
    # (batch assembly, forward, backward, clipping, optimizer step).
    total = spec["warmup"] + spec["batches"] if spec["batches"] > 0 else None
    steps: list[dict[str, Any]] = []
    ends = [time.perf_counter()]

    def on_step(step: dict[str, Any]) -> bool:
        ends.append(time.perf_counter())
        steps.append(step)
        return total is not None and len(steps) >= total

    for _ in epochs(hooks, model, optimizer, examples, num_epochs=1, on_step=on_step):
        pass
    stages["trained"] = _status_kib("VmRSS") / 1024
    # The first batches allocate optimizer state: not timed.
    timed = [(s, end - start) for s, start, end in zip(steps, ends, ends[1:]) if s["batch"] >= spec["warmup"]]
    timed_s, events = sum(dt for _, dt in timed), sum(s["events"] for s, _ in timed)
    timed_batches, losses = len(timed), [s["loss"] for s in steps]

    opt_state = [v for s in optimizer.state.values() for v in s.values()
                 if torch.is_tensor(v) and v.dim() > 0]
    arrays = list(featurizer.arrays.values()) + [
        examples.items, examples.timestamps, examples.event_types, examples.event_values]
    return {
        "catalog_items": featurizer.num_items - 2,
        "trainable_items": hooks.num_trainable_items,
        "sampled": hooks.sampled,
        "events": events, "batches": timed_batches, "seconds": timed_s,
        "events_per_s": events / timed_s if timed_s else 0.0,
        "fit_s": fit_s,
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "rss_mib": stages,
        "params_mib": _tensor_mib(model.parameters()),
        "optimizer_state_mib": _tensor_mib(opt_state),
        "featurizer_and_examples_mib": sum(a.nbytes for a in arrays) / MIB,
    }


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------

def _write_dataset(directory: Path, a: argparse.Namespace, n_items: int) -> None:
    import pyarrow.parquet as pq

    from sdk.synthetic import generate

    data = generate(seed=a.seed, n_users=a.users, n_items=n_items, n_interactions=a.interactions)
    directory.mkdir(parents=True)
    for kind, table in data.tables().items():
        pq.write_table(table, directory / f"{kind.value}.parquet")
    (directory / "schemas.json").write_text(json.dumps(
        {kind.value: schema.model_dump(mode="json") for kind, schema in data.schemas.items()}))


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"failed": f"exit code {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _label(n: int) -> str:
    """100000 -> '100k', 1000000 -> '1M'."""
    for size, suffix in ((10**6, "M"), (10**3, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{n:,}"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=int, default=300_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--small-items", type=int, default=100_000, help="the catalog of the dense/sampled pair")
    ap.add_argument("--large-items", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=200,
                    help="timed batches per sampled run (after --warmup); 0 = the rest of the epoch")
    ap.add_argument("--dense-batches", type=int, default=30,
                    help="timed batches per full-softmax or dense-Adam run; 0 = the rest of the epoch")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--with-1m-dense", action="store_true",
                    help="also run the large catalog with the full softmax (slow, several GB)")
    ap.add_argument("--with-dense-adam", action="store_true",
                    help="also run the large catalog, sampled, with a plain torch.optim.Adam")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(json.loads(a.child))))
        return

    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    small, large = a.small_items, a.large_items
    s_, l_ = _label(small), _label(large)
    variants = [(f"{s_} dense", small, {"sampled_softmax_threshold": small + 1}),
                (f"{s_} sampled", small, {"sampled_softmax_threshold": 0}),
                (f"{l_} sampled", large, {})]
    if a.with_1m_dense:
        variants.append((f"{l_} dense", large, {"sampled_softmax_threshold": large + 1}))
    if a.with_dense_adam:
        variants.append((f"{l_} sampled, dense Adam", large, {"dense_adam": True}))
    slow = {name for name, *_ in variants if "dense" in name}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in variants}
    failures: dict[str, list[str]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="tagrec-large-catalog-") as tmp:
        for n in sorted({small, large}):
            t = time.perf_counter()
            _write_dataset(Path(tmp) / str(n), a, n)
            print(f"generated {a.interactions:,} interactions over {n:,} items in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        for r in range(a.repeats):
            for name, n, overrides in variants:
                spec = {"data": str(Path(tmp) / str(n)), "threads": a.threads, "warmup": a.warmup,
                        "batches": a.dense_batches if name in slow else a.batches,
                        "dense_adam": overrides.get("dense_adam", False),
                        "config": {k: v for k, v in overrides.items() if k != "dense_adam"}}
                res = _run_child(spec)
                if "failed" in res:
                    failures[name].append(res["failed"])
                    print(f"repeat {r + 1}/{a.repeats} {name}: FAILED {res['failed']}",
                          file=sys.stderr, flush=True)
                    continue
                runs[name].append(res)
                print(f"repeat {r + 1}/{a.repeats} {name}: {res['events_per_s']:,.0f} events/s, "
                      f"peak RSS {res['peak_rss_mib']:,.0f} MiB", file=sys.stderr, flush=True)

    rows = {}
    for name, *_ in variants:
        rs = runs[name]
        if not rs:
            rows[name] = {"failed": failures[name]}
            continue
        last = rs[-1]
        rows[name] = {
            "catalog_items": last["catalog_items"], "trainable_items": last["trainable_items"],
            "sampled": last["sampled"], "runs": len(rs), "failed_runs": failures[name],
            "timed_batches": last["batches"],
            "events_per_s": round(_median(rs, "events_per_s")),
            "ms_per_batch": round(1000 * statistics.median(x["seconds"] / x["batches"] for x in rs), 1),
            "events_per_batch": round(statistics.median(x["events"] / x["batches"] for x in rs)),
            "peak_rss_mib": round(_median(rs, "peak_rss_mib")),
            "max_peak_rss_mib": round(max(x["peak_rss_mib"] for x in rs)),
            "fit_s": round(_median(rs, "fit_s"), 2),
            "rss_mib_by_stage": {k: round(statistics.median(x["rss_mib"][k] for x in rs))
                                 for k in last["rss_mib"]},
            "params_mib": round(last["params_mib"]),
            "optimizer_state_mib": round(last["optimizer_state_mib"]),
            "featurizer_and_examples_mib": round(last["featurizer_and_examples_mib"]),
            "loss_first_last": [round(last["first_loss"], 3), round(last["last_loss"], 3)],
        }
    dense, sampled, big = (rows.get(k, {}) for k in (f"{s_} dense", f"{s_} sampled", f"{l_} sampled"))
    ratio = (sampled["events_per_s"] / dense["events_per_s"]
             if "events_per_s" in dense and "events_per_s" in sampled and dense["events_per_s"] else None)
    doc = {
        "interactions": a.interactions, "users": a.users, "batches": a.batches,
        "dense_batches": a.dense_batches, "warmup": a.warmup,
        "repeats": a.repeats, "threads": a.threads, "cpus": os.cpu_count(), "variants": rows,
        "sampled_over_dense_at_100k": round(ratio, 2) if ratio else None,
        "large_sampled_under_4gib": ("max_peak_rss_mib" in big and big["max_peak_rss_mib"] < LIMIT_MIB),
        "loadavg": [load_start, os.getloadavg()[0]],
        "total_seconds": round(time.perf_counter() - t_start),
    }
    if a.json:
        print(json.dumps(doc))
        return

    print(f"\nhrnn-meta, {a.interactions:,} synthetic interactions, {a.users:,} users; "
          f"{a.batches or 'all'} (dense: {a.dense_batches or 'all'}) timed batches after {a.warmup} "
          f"warm-up, median of {a.repeats}, "
          f"{a.threads} torch thread(s), {os.cpu_count()} CPUs")
    print(f"{'variant':<24}{'catalog':>11}{'trainable':>11}{'softmax':>9}{'events/s':>10}"
          f"{'ms/batch':>10}{'peak RSS MiB':>14}{'(max)':>7}")
    for name, row in rows.items():
        if "failed" in row:
            print(f"{name:<24} FAILED: {row['failed'][-1]}")
            continue
        print(f"{name:<24}{row['catalog_items']:>11,}{row['trainable_items']:>11,}"
              f"{'sampled' if row['sampled'] else 'full':>9}{row['events_per_s']:>10,}"
              f"{row['ms_per_batch']:>10,.1f}{row['peak_rss_mib']:>14,}{row['max_peak_rss_mib']:>7,}")
    for name, row in rows.items():
        if "sampled" in row and row["sampled"] != ("sampled" in name):
            print(f"note: {name} trained with the {'sampled' if row['sampled'] else 'full'} softmax "
                  f"({row['trainable_items']:,} trainable items vs sampled_softmax_threshold)")
    if not a.with_1m_dense:
        print(f"({l_} dense skipped: a (positions, {l_}) logits matrix and its gradients every batch; "
              "--with-1m-dense runs it)")
    if ratio:
        print(f"\nsampled / dense events/s at {small:,} items: {ratio:.2f}x")
    if "max_peak_rss_mib" in big:
        print(f"{large:,} items, sampled softmax: peak RSS {big['max_peak_rss_mib']:,} MiB (max of "
              f"{big['runs']}) -> {'under' if doc['large_sampled_under_4gib'] else 'OVER'} "
              f"{LIMIT_MIB} MiB")
        st = big["rss_mib_by_stage"]
        print(f"  RSS by stage (MiB): imports {st['imports']}, tables read {st['tables']}, "
              f"featurizer fitted {st['fit']} ({big['fit_s']} s), transformed {st['transform']}, "
              f"model + optimizer {st['model']}, after training {st['trained']}")
        print(f"  parameters {big['params_mib']} MiB, optimizer state {big['optimizer_state_mib']} MiB, "
              f"featurizer arrays + examples {big['featurizer_and_examples_mib']} MiB")
    print(f"\ntotal {doc['total_seconds']} s; load average at start/end {doc['loadavg'][0]:.1f} / "
          f"{doc['loadavg'][1]:.1f} (other work on the machine skews times; variants run interleaved)")


if __name__ == "__main__":
    main()
