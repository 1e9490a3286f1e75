"""session-tag-popularity on support sessions simulated over an intent corpus (default clinc150).

What runs (one process, no Ray; every number printed is measured in this run), per seed:

* `sdk.intents.convert` mines tags from ../shared/data/clinc150 and simulates `--sessions`
  support sessions with that seed (IntelliTag-style: Zipf question popularity, an organisation
  Markov chain over questions, about 2.9 tag clicks per session, 5% noise clicks).
* The ``session-holdout`` protocol (`training_jobs.evaluation.session_tags`): the latest
  `--test-fraction` of the sessions are held out; every tag click of a held-out session after its
  first is a case, asked as a campaign's next-tags query from the session's earlier events.
* The baseline recipe, fitted on the training part, answers every case through `predict_batch`:
  ``transitions`` (the default: tags that followed the last clicked tag first, then the
  organisation's most clicked) and ``popularity`` (``transitions=False``).

Metrics (the paper's Table IV keys): HR@K = hit@K, NDCG@K, MRR over the full ranking of the
organisation's tags, and ``sampled_*`` with the clicked tag among 49 random tags of the same
organisation (the paper's protocol). Printed: per seed, then median [min, max] over the seeds.

Usage:
    .venv/bin/python benchmarks/session_tags_baseline.py [--data DIR] [--seeds 0 1 2]
        [--sessions 10000] [--test-fraction 0.1] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from recipes import get_recipe  # noqa: E402
from sdk.intents import convert  # noqa: E402
from sdk.types import EvaluationConfig  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402

KEYS = ("hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10", "mrr", "sampled_hit@5", "sampled_hit@10",
        "sampled_ndcg@10", "sampled_mrr")
VARIANTS = {"transitions": {}, "popularity": {"transitions": False}}


def run_seed(data: Path, seed: int, sessions: int, test_fraction: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tagrec-bench-intents-") as tmp:
        converted = convert(data, tmp, n_sessions=sessions, seed=seed)
        tables = {kind: pq.read_table(path) for kind, path in converted.paths.items()}
    protocol = get_protocol("session-holdout")
    config = EvaluationConfig(seed=seed, test_fraction=test_fraction)
    split = protocol.split(tables, converted.schemas, config)
    spec = get_recipe("session-tag-popularity")
    out: dict[str, Any] = {"seed": seed, "stats": vars(converted.stats), "split": split.description}
    for name, hyperparameters in VARIANTS.items():
        t0 = time.perf_counter()
        cfg, featurizer, model = fit_in_process(spec, hyperparameters, split.train, schemas=converted.schemas)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        answers = spec.predictor_cls(cfg, featurizer, model).predict_batch(split.queries)
        out[name] = {"metrics": protocol.score(answers, split, config), "fit_seconds": fit,
                     "ms_per_query": 1000 * (time.perf_counter() - t0) / len(split.queries)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "clinc150")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} does not exist: pass --data with an intent corpus (clinc150, banking77, ...)")
    runs = []
    for seed in args.seeds:
        print(f"seed {seed}: simulating {args.sessions:,} sessions over {args.data.name} ...",
              file=sys.stderr)
        runs.append(run_seed(args.data, seed, args.sessions, args.test_fraction))
    summary = {name: {k: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}
                      for k in KEYS for v in [[r[name]["metrics"][k] for r in runs]]}
               for name in VARIANTS}
    if args.json:
        doc = {"data": str(args.data), "sessions": args.sessions, "runs": runs, "summary": summary}
        print(json.dumps(doc, indent=2))
        return
    for r in runs:
        s, d = r["stats"], r["split"]
        print(f"seed {r['seed']}: {s['questions']} questions, {s['tags']} tags in {s['organisations']} "
              f"organisations; {s['tag_clicks_per_session']:.2f} tag clicks per session; "
              f"{d['test_sessions']} test sessions, {d['cases']} cases")
        for name in VARIANTS:
            m = r[name]["metrics"]
            print(f"  {name:<12}" + "  ".join(f"{k} {m[k]:.3f}" for k in KEYS)
                  + f"  ({r[name]['ms_per_query']:.2f} ms/query)")
    print(f"\nmedian [min, max] over seeds {', '.join(map(str, args.seeds))}:")
    print(f"{'metric':<16}" + "".join(f"{name:>26}" for name in VARIANTS))
    for k in KEYS:
        cells = "".join(f"{v['median']:>10.3f} [{v['min']:.3f}, {v['max']:.3f}]"
                        for v in (summary[name][k] for name in VARIANTS))
        print(f"{k:<16}{cells}")


if __name__ == "__main__":
    main()
