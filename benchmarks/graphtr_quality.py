"""GraphTR on HetRec 2011 MovieLens-2k: §5.4's offline tag ranking next to its baselines, over seeds.

Data: `sdk.hetrec.convert` of a HetRec 2011 folder (users tagging movies with timestamps; directors
as creators, genres/countries as item fields). The paper's WeChat-TR data are private; HetRec's tag
applications stand for its tag clicks, and the user's earlier tag applications for its watches.

Per seed, the `item-tag-holdout` protocol (what a solution version records): each test user's
latest tag events held out; each held-out (user, movie) pair ranks the movie's candidate tags (every
tag applied to it in training: candidates and counts from the training period only), relevant: the
tags the user applied. HIT@1, HIT@2, MRR (§5.4.1).

Compared, each fitted on the training part and scored through `predict_batch`:

* ``random`` (a seeded shuffle of the candidates), ``tag-popularity`` (the candidates by their
  training applications overall: §5.2's popularity-based), ``item-tag-frequency`` (the task's
  baseline: by the times applied to this movie; the paper lacks it);
* GraphTR models (`MODELS`): ``hfin`` (§3.3), ``graphsage`` (Table 2's GraphTR (GraphSAGE)), and
  the §5.6 ablations on request; each ranked twice from the same fit: as §4.1 (cosine only) and
  ``+prior`` (`candidate_prior`: cos + λ·log(1 + n_it), not in the paper).

Prints per ranking the median and [min, max] over the seeds, the paired differences (mean over
seeds ± the 95 % t-interval) of every GraphTR ranking from popularity, GraphSAGE and
item-tag-frequency, the ratio over popularity (the paper's: HIT@2 1.45x, MRR 1.62x), and training
throughput / peak RSS. `--json` prints every figure.

Usage:
    .venv/bin/python benchmarks/graphtr_quality.py [--data DIR] [--seeds 0,1,2] [--models hfin,graphsage]
        [--set epochs=3] [--prior 1.0] [--threads 2] [--json > run.json]
    .venv/bin/python benchmarks/graphtr_quality.py --report run.json
"""

from __future__ import annotations

import argparse
import json
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

from benchmarks.utpm_quality import interval  # noqa: E402
from recipes import get_recipe  # noqa: E402
from recipes.base import Answer, Query  # noqa: E402
from sdk.hetrec import convert  # noqa: E402
from sdk.types import EvaluationConfig  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "hetrec2011-movielens-2k-tags"
MODELS: dict[str, dict[str, Any]] = {
    "hfin": {},
    "graphsage": {"aggregator": "graphsage"},
    # §5.6 (Table 4) ablations
    "hfin-no-fm": {"fm": False},
    "hfin-no-first-transformer": {"first_transformer": False},
    "hfin-no-second-transformer": {"second_transformer": False},
    "hfin-no-users": {"user_nodes": "none"},
    "hfin-no-creators": {"creator_field": ""},
}
SHOWN = ("hit@1", "hit@2", "mrr")
REFERENCES = ("tag-popularity", "graphsage", "item-tag-frequency")


class _Ranked:
    """A candidates-only baseline: `key(tag)` orders the request's candidates (smallest first)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [Answer([(t, 0.0) for t in sorted(q.candidates or (), key=self.key)][:q.num_results])
                for q in queries]


def baselines(train: dict, schemas: dict, seed: int) -> dict[str, Any]:
    """random, tag-popularity (overall training applications) and item-tag-frequency."""
    spec = get_recipe("item-tag-frequency")
    fitted = fit_in_process(spec, {}, train, schemas=schemas, threads=1)
    frequency = spec.predictor_cls(*fitted)
    tags, counts = fitted[1].tags, fitted[1].counts
    rng = np.random.default_rng([seed, 7])
    noise: dict[str, float] = {}
    return {
        "random": _Ranked(lambda t: noise.setdefault(t, float(rng.random()))),
        "tag-popularity": _Ranked(lambda t: (-float(counts[tags.index(t)]), t)),
        "item-tag-frequency": frequency,
    }


def run(tables: dict, schemas: dict, seeds: Sequence[int], models: Sequence[str], *,
        hyperparameters: dict[str, Any], prior: float, threads: int) -> dict[str, Any]:
    protocol = get_protocol("item-tag-holdout")
    runs: dict[str, list[dict[str, Any]]] = {}
    fits: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    description = None
    for seed in seeds:
        config = EvaluationConfig(seed=seed, mode="item-tag-holdout")
        split = protocol.split(tables, schemas, config)
        description = description or split.description

        def score(name: str, predictor: Any, split: Any = split, config: EvaluationConfig = config,
                  seed: int = seed) -> None:
            metrics = protocol.score(predictor.predict_batch(split.queries), split, config)
            runs.setdefault(name, []).append({"seed": seed, "metrics": metrics})
            print(f"seed {seed} {name:34s} " + " ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN),
                  file=sys.stderr, flush=True)

        for name, predictor in baselines(split.train, schemas, seed).items():
            score(name, predictor)
        spec = get_recipe("graphtr")
        for model in models:
            seen: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            cfg, featurizer, fitted = fit_in_process(
                spec, {**hyperparameters, **MODELS[model], "seed": seed}, split.train, schemas=schemas,
                threads=threads, on_epoch=seen.append)
            fit_s = time.perf_counter() - t0
            trained = [m for m in seen if m["batches"]]
            fits[model].append({"seed": seed, "fit_seconds": fit_s, "losses": [m["loss"] for m in seen],
                                "pairs_per_second": sum(m["events"] for m in trained)
                                / max(sum(m["seconds"] for m in trained), 1e-9)})
            score(model, spec.predictor_cls(cfg.model_copy(update={"candidate_prior": 0.0}), featurizer,
                                            fitted))
            if prior > 0:
                score(f"{model}+prior", spec.predictor_cls(cfg.model_copy(update={"candidate_prior": prior}),
                                                           featurizer, fitted))
    return {"split": description, "runs": runs, "fits": fits, "summary": summarize(runs)}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        figures: dict[str, Any] = {}
        for key in SHOWN:
            v = [r["metrics"][key] for r in rs]
            figures[key] = {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))}
        out[name] = {"metrics": figures}
        if name in REFERENCES[1:] or name.split("+")[0] in MODELS:
            for ref in (*REFERENCES, "graphsage+prior") if name.endswith("+prior") else REFERENCES:
                if ref in runs and ref != name:
                    out[name][f"minus_{ref}"] = {key: interval([a["metrics"][key] - b["metrics"][key]
                                                                for a, b in zip(rs, runs[ref])])
                                                 for key in SHOWN}
            if "tag-popularity" in runs:
                out[name]["over_popularity"] = {key: float(np.median(
                    [a["metrics"][key] / max(b["metrics"][key], 1e-12)
                     for a, b in zip(rs, runs["tag-popularity"])])) for key in ("hit@2", "mrr")}
    return out


def report(result: dict[str, Any]) -> None:
    split = result["split"]
    print(f"data: {result['data']}; item-tag-holdout: {split['cases']} cases ({split['test_users']} test "
          f"users), {split['candidates_per_case']:.1f} candidates and {split['relevant_per_case']:.2f} "
          f"relevant tags per case; seeds {result['seeds']}; GraphTR {result['hyperparameters']}, "
          f"prior λ = {result['prior']}")
    print("| ranking | " + " | ".join(SHOWN) + " | x popularity (HIT@2, MRR) |")
    print("|---|" + "---|" * (len(SHOWN) + 1))
    for name, s in result["summary"].items():
        r = s.get("over_popularity")
        ratio = f"{r['hit@2']:.2f}x, {r['mrr']:.2f}x" if r else ""
        print(f"| {name} | " + " | ".join(f"{m['median']:.4f} [{m['min']:.4f}, {m['max']:.4f}]"
                                          for m in s["metrics"].values())
              + f" | {ratio} |")
    for ref in (*REFERENCES, "graphsage+prior"):
        rows = [(n, s[f"minus_{ref}"]) for n, s in result["summary"].items() if f"minus_{ref}" in s]
        if rows:
            print(f"\npaired difference from {ref} (mean over seeds ± 95 % t-interval):\n")
            print("| ranking | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
            for name, d in rows:
                print(f"| {name} | " + " | ".join(f"{d[k]['mean']:+.4f} ± {d[k]['ci95']:.4f}" for k in SHOWN)
                      + " |")
    print("\ntraining (median over seeds): " + ", ".join(
        f"{m} {np.median([f['fit_seconds'] for f in fs]):.0f} s, "
        f"{np.median([f['pairs_per_second'] for f in fs]):.0f} pairs/s" for m, fs in result["fits"].items()))
    print(f"peak RSS {result['peak_rss_mib']:.0f} MiB; wall {result['wall_seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="hfin,graphsage", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a GraphTR hyperparameter for every model (JSON value), e.g. epochs=3")
    parser.add_argument("--prior", type=float, default=1.0,
                        help="λ of the +prior rankings (candidate_prior); 0: only the cosine rankings")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--report", type=Path, metavar="JSON", help="print the tables of a --json run")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        report({**saved, "summary": summarize(saved["runs"])})
        return
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; valid: {', '.join(MODELS)}")
    hyperparameters: dict[str, Any] = {}
    for kv in args.sets:
        key, sep, value = kv.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {kv!r}")
        try:
            hyperparameters[key] = json.loads(value)
        except json.JSONDecodeError:
            hyperparameters[key] = value
    with tempfile.TemporaryDirectory(prefix="graphtr-quality-") as tmp:
        data = convert(args.data, tmp)
        tables = {k: pq.read_table(p) for k, p in data.paths.items()}
    t0 = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    result = run(tables, data.schemas, seeds, models, hyperparameters=hyperparameters, prior=args.prior,
                 threads=args.threads)
    result.update(data=str(args.data), seeds=seeds, hyperparameters=hyperparameters, prior=args.prior,
                  wall_seconds=time.perf_counter() - t0,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        report(result)


if __name__ == "__main__":
    main()
