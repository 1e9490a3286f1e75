"""Tag-task baselines on HetRec 2011 MovieLens-2k, over several seeds of the split.

* user-tags: ``tag-popularity`` under ``user-tag-holdout`` (UTPM's protocol: a seeded 10% of the
  users with more than 10 tag events, at least 300, have their events from their 10th latest
  tag event on held out; the whole tag vocabulary is ranked, top 100).
* item-tags: ``item-tag-frequency`` under ``item-tag-holdout`` (GraphTR's: each held-out
  (user, movie) pair ranks the movie's tags, candidate list and full ranking ``full.*``).

Each seed: `sdk.hetrec.convert`, the protocol's split, the recipe fitted in process on the
training part, its answers through `predict_batch` scored by the protocol (what a solution version
records). Prints the median and the [min, max] over the seeds; `--json` prints every figure.

Usage:
    .venv/bin/python benchmarks/tag_baselines.py [--data DIR] [--seeds 0 1 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from recipes import get_recipe  # noqa: E402
from sdk.hetrec import convert  # noqa: E402
from sdk.types import EvaluationConfig  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "hetrec2011-movielens-2k-tags"
SHOWN = {
    "user-tags": ("precision_minrel@1", "precision_minrel@2", "precision_minrel@3", "precision@10",
                  "recall@10", "ndcg@10", "hit@2", "mrr"),
    "item-tags": ("hit@1", "hit@2", "mrr", "ndcg@3", "precision_minrel@2", "full.hit@2", "full.mrr"),
}


def user_item_tag_baselines(data: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """Per task: the split described (first seed), every seed's metrics, and their median/min/max."""
    with tempfile.TemporaryDirectory(prefix="tag-baselines-") as tmp:
        converted = convert(data, tmp)
        tables = {k: pq.read_table(p) for k, p in converted.paths.items()}
    out: dict[str, Any] = {}
    for task, protocol_name, recipe in (("user-tags", "user-tag-holdout", "tag-popularity"),
                                        ("item-tags", "item-tag-holdout", "item-tag-frequency")):
        protocol, spec = get_protocol(protocol_name), get_recipe(recipe)
        runs, description = [], None
        for seed in seeds:
            config = EvaluationConfig(seed=seed)
            split = protocol.split(tables, converted.schemas, config)
            description = description or split.description
            fitted = fit_in_process(spec, {}, split.train, schemas=converted.schemas, threads=1)
            answers = spec.predictor_cls(*fitted).predict_batch(split.queries)
            runs.append(protocol.score(answers, split, config))
        summary = {k: {"median": float(np.median([r[k] for r in runs])), "min": min(r[k] for r in runs),
                       "max": max(r[k] for r in runs)} for k in runs[0]}
        out[task] = {"protocol": protocol_name, "recipe": recipe, "seeds": list(seeds),
                     "split": description, "runs": runs, "summary": summary}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = user_item_tag_baselines(args.data, args.seeds)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for task, r in result.items():
        s = r["split"]
        print(f"{task}: {r['recipe']} under {r['protocol']}, seeds {r['seeds']}; {s['test_users']} test "
              f"users, {s['cases']} cases (seed {r['seeds'][0]})")
        for key in SHOWN[task]:
            m = r["summary"][key]
            print(f"  {key:<22} {m['median']:.4f}  [{m['min']:.4f}, {m['max']:.4f}]")


if __name__ == "__main__":
    main()
