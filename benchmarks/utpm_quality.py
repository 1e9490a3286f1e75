"""UTPM on MovieLens with HetRec tags: the paper's ladder (Tables 2-4) next to tag-popularity and
YouTube-DNN, over several seeds of the split, with training throughput and peak memory.

Data: `sdk.movielens_tags.convert` of movielens-latest-small with hetrec2011-movielens-2k-tags
(each movie's top 3 tags by weight, tags on fewer than 5 movies dropped; genres as the category
field; a rating's row carries its movie's tags when it is >= 3.5 stars, the "clicked tags").

Per seed, as a solution version does, `--protocol` splits: `user-split` (the default, UTPM §4.1: a
seeded `--test-fraction` of the users is held out of training; each asks from the oldest 80 % of its
ratings, the relevant tags are those of its newest 20 %'s liked ratings) or `user-tag-holdout` (each
test user's events from their `--holdout-last`-th latest liked (tagged) rating on are held out, the
relevant tags are those liked ratings' tags, earlier history trains); the whole vocabulary is ranked;
the same protocol holds a validation part out of the training part (another seed) that picks each
model's best epoch (MRR, early stop); every variant is fitted in process
(`training_jobs.loop.fit_in_process`) and scored through `predict_batch`; tag-popularity (the
task's baseline) is fitted on the whole training part.

Prints, per variant and metric, the median and [min, max] over the seeds, and each UTPM
variant's paired difference from tag-popularity and from YouTube-DNN (mean over seeds ± the 95 %
t-interval of the per-seed differences). `--json` prints every figure.

Usage:
    .venv/bin/python benchmarks/utpm_quality.py [--protocol user-split] [--seeds 0,1,2,3,4]
        [--variants utpm,youtube-dnn] [--epochs 20] [--validation-fraction 0.1] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from recipes import get_recipe  # noqa: E402
from sdk.movielens_tags import convert  # noqa: E402
from sdk.types import EvaluationConfig  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402
from training_jobs.validation import Validation  # noqa: E402

DATA = REPO.parent / "shared" / "data"
# name -> (recipe, hyperparameters). The paper's ladder: each step adds one part to the previous
# (Tables 2-3 train with the separate loss; Table 4 switches to the joint loss).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "tag-popularity": ("tag-popularity", {}),
    "youtube-dnn": ("utpm", {"fusion": "average", "loss": "separate"}),
    "youtube-dnn-joint": ("utpm", {"fusion": "average"}),
    "af-1head-unshared": ("utpm", {"heads": 1, "shared_queries": False, "cross": False, "loss": "separate"}),
    "af-1head": ("utpm", {"heads": 1, "cross": False, "loss": "separate"}),
    "af-2head": ("utpm", {"heads": 2, "cross": False, "loss": "separate"}),
    "af-2head-cf": ("utpm", {"heads": 2, "loss": "separate"}),
    "utpm": ("utpm", {}),  # af-2head-cf + joint loss: the full model
    "utpm-4head": ("utpm", {"heads": 4}),
    "utpm-paper-negatives": ("utpm", {"sampled_negatives": 0}),  # only the data's own negatives
    "utpm-10cuts": ("utpm", {"cuts_per_user": 10}),  # more training samples per user
    "utpm-tied": ("utpm", {"tie_tag_embeddings": True}),  # output tags = liked-tag input table
    # every variant ranks the user's clicked tags first (§1's candidate selection, the default); these
    # rank the whole vocabulary by u·t alone
    "utpm-all-tags": ("utpm", {"clicked_tags_first": False}),
    "youtube-dnn-all-tags": ("utpm", {"fusion": "average", "loss": "separate", "clicked_tags_first": False}),
    # the former default: uniformly drawn negative tags (every user got the same top tags)
    "youtube-dnn-uniform-neg": ("utpm", {"fusion": "average", "loss": "separate",
                                         "negative_sampling": "tags"}),
    "utpm-uniform-neg": ("utpm", {"negative_sampling": "tags"}),
}
SHOWN = ("precision_minrel@1", "precision_minrel@2", "precision_minrel@3", "precision_minrel@5",
         "precision_minrel@10", "recall@10", "ndcg@10", "mrr", "distinct_top1")
# Two-sided 95 % Student t quantiles by degrees of freedom.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def load(movielens: Path, tags: Path | None) -> tuple[dict, dict, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="utpm-quality-") as tmp:
        data = convert(movielens, tmp, tags_from=tags)
        tables = {k: pq.read_table(p) for k, p in data.paths.items()}
    return tables, data.schemas, {"movielens": str(movielens), "tags": str(tags) if tags else "genres",
                                  "rows": {k.value: v.num_rows for k, v in tables.items()}}


def run(tables: dict, schemas: dict, seeds: Sequence[int], variants: Sequence[str], *, epochs: int,
        threads: int, evaluation: dict[str, Any], protocol_name: str = "user-split") -> dict[str, Any]:
    protocol = get_protocol(protocol_name)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    description = None
    for seed in seeds:
        config = EvaluationConfig(**{**evaluation, "seed": seed})
        split = protocol.split(tables, schemas, config)
        description = description or split.description
        validation = (Validation.of(protocol, split.train, schemas, config)
                      if config.validation_fraction > 0 else None)
        for name in variants:
            recipe, hp = VARIANTS[name]
            spec = get_recipe(recipe)
            seen: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            if recipe == "utpm":
                cfg, featurizer, model = fit_in_process(
                    spec, {**hp, "epochs": epochs, "seed": seed},
                    validation.train if validation else split.train, schemas=schemas,
                    threads=threads, validation=validation, on_epoch=seen.append)
            else:
                cfg, featurizer, model = fit_in_process(spec, hp, split.train, schemas=schemas,
                                                        threads=threads)
            fit_s = time.perf_counter() - t0
            if seen and "validation_score" in seen[0]:
                print("  val curve", [round(m["validation_score"], 3) for m in seen], file=sys.stderr)
            predictor = spec.predictor_cls(cfg, featurizer, model)
            answers = predictor.predict_batch(split.queries)
            metrics = protocol.score(answers, split, config)
            # How personal the profiles are: distinct top-1 tags over the test users.
            metrics["distinct_top1"] = float(len({a.ids[0] for a in answers if a.ids}))
            trained = [m for m in seen if m["batches"]]
            rate = (sum(m["events"] for m in trained) / max(sum(m["seconds"] for m in trained), 1e-9)
                    if trained else None)
            runs[name].append({
                "seed": seed, "metrics": metrics, "fit_seconds": fit_s, "epochs_run": len(seen),
                "best_epoch": (1 + max(range(len(seen)), key=lambda i: (seen[i]["validation_score"], -i))
                               if seen and validation else None),
                "labels_per_second": rate,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            })
            print(f"seed {seed} {name:18s} p@1 {metrics['precision_minrel@1']:.4f} "
                  f"p@3 {metrics['precision_minrel@3']:.4f} mrr {metrics['mrr']:.4f} "
                  f"top1 {metrics['distinct_top1']:.0f} "
                  f"({fit_s:.0f} s, {len(seen)} epochs)", file=sys.stderr, flush=True)
    return {"split": description, "runs": runs, "summary": summarize(runs)}


def interval(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    half = _T95.get(len(x) - 1, 1.96) * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": float(half)}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        figures = {}
        for key in SHOWN:
            v = [r["metrics"][key] for r in rs]
            figures[key] = {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v)),
                            **interval(v)}
        out[name] = {"metrics": figures, "fit_seconds": float(np.median([r["fit_seconds"] for r in rs]))}
        rates = [r["labels_per_second"] for r in rs if r["labels_per_second"]]
        if rates:
            out[name]["labels_per_second"] = float(np.median(rates))
        for ref in ("tag-popularity", "youtube-dnn"):
            if ref in runs and ref != name and VARIANTS[name][0] == "utpm":
                out[name][f"minus_{ref}"] = {
                    key: interval([a["metrics"][key] - b["metrics"][key] for a, b in zip(rs, runs[ref])])
                    for key in SHOWN}
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| variant | " + " | ".join(k.replace("precision_minrel", "Prec") for k in SHOWN) + " |",
             "|---|" + "---|" * len(SHOWN)]
    for name, s in result["summary"].items():
        cells = [f"{m['median']:.4f} [{m['min']:.4f}, {m['max']:.4f}]" for m in s["metrics"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for ref in ("tag-popularity", "youtube-dnn"):
        rows = [(n, s[f"minus_{ref}"]) for n, s in result["summary"].items() if f"minus_{ref}" in s]
        if not rows:
            continue
        lines += ["", f"paired difference from {ref} (mean over seeds ± 95 % t-interval):", "",
                  "| variant | " + " | ".join(k.replace("precision_minrel", "Prec") for k in SHOWN) + " |",
                  "|---|" + "---|" * len(SHOWN)]
        for name, diffs in rows:
            lines.append(f"| {name} | " + " | ".join(f"{d['mean']:+.4f} ± {d['ci95']:.4f}"
                                                     for d in diffs.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", type=Path, default=DATA / "movielens-latest-small")
    parser.add_argument("--tags", default=str(DATA / "hetrec2011-movielens-2k-tags"),
                        help="a HetRec MovieLens-2k folder, or 'genres' to use the genres as tags")
    parser.add_argument("--protocol", default="user-split", choices=("user-split", "user-tag-holdout"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=20, help="at most (validation stops early)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of the training users that picks the best epoch; 0: every model "
                             "trains --epochs epochs on the whole training part")
    parser.add_argument("--patience", type=int, default=2,
                        help="epochs without a better validation score before a model stops")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--holdout-last", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="print the table of runs saved with --json (e.g. variants run in parallel)")
    args = parser.parse_args()
    if args.merge:
        docs = [json.loads(p.read_text()) for p in args.merge]
        merged = {n: r for d in docs for n, r in d["runs"].items()}
        runs = {n: merged[n] for n in VARIANTS if n in merged}
        result = {**docs[0], "runs": runs, "summary": summarize(runs),
                  "peak_rss_mib": max(d["peak_rss_mib"] for d in docs),
                  "wall_seconds": max(d["wall_seconds"] for d in docs)}
        report(result, docs[0]["data"], docs[0]["threads"])
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    tables, schemas, data = load(args.movielens, None if args.tags == "genres" else Path(args.tags))
    evaluation = {"test_fraction": args.test_fraction, "holdout_last": args.holdout_last, "min_test_users": 1,
                  "validation_fraction": args.validation_fraction, "patience": args.patience}
    t0 = time.perf_counter()
    result = run(tables, schemas, [int(s) for s in args.seeds.split(",")], variants, epochs=args.epochs,
                 threads=args.threads, evaluation=evaluation, protocol_name=args.protocol)
    result.update(data=data, evaluation=evaluation, protocol=args.protocol, epochs=args.epochs,
                  threads=args.threads,
                  wall_seconds=time.perf_counter() - t0,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return
    report(result, data, args.threads)


def report(result: dict[str, Any], data: dict[str, Any], threads: int) -> None:
    split = result["split"]
    print(f"data: {data}; protocol {split['protocol']}: {split['test_users']} test users of "
          f"{split['users']}, "
          f"{split['held_out_events']} held-out events, "
          f"{split['relevant_per_case']:.1f} relevant tags per case")
    print(table(result))
    rates = {n: s["labels_per_second"] for n, s in result["summary"].items() if s.get("labels_per_second")}
    print("training throughput (labels/s, median over seeds, "
          f"{threads} threads): " + ", ".join(f"{n} {r:.0f}" for n, r in rates.items()))
    print(f"peak RSS {result['peak_rss_mib']:.0f} MiB; wall {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
