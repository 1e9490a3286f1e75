"""The tag-set baseline (tag-cooccurrence) on Stack Exchange questions through the post-holdout
protocol, over several split seeds; and its memory on a large synthetic corpus.

What runs (plain Python, no Ray; every number printed is measured in this run):

* `sdk.stackexchange.convert` turns ../shared/data/stackexchange-robotics-kaggle (2,771 robotics
  questions: title, HTML body, tags) into an items table.
* For each seed (`--seeds`, default 0 1 2): `post-holdout` holds out a seeded 10% of the posts
  (at least 300), tag-cooccurrence is fitted on the rest in process (`fit_in_process`, as the
  version job's baseline is) and each held-out post is asked for 5 tags from its title and
  content through `predict_batch`, the campaign's entry point. The same predictor asked with no
  text gives the most used tags: the paper's "Frequency-Based" row (SOG, Table 2).
* Metrics: the protocol's (P/R/F1@1,3,5 macro over posts, ndcg@k, MRR over the answer), printed
  as the median over the seeds with [min, max].
* `--memory-posts N` (default 100,000; 0 skips): a child process fits the recipe on N synthetic
  posts (~100 words from a Zipf vocabulary of 200k words, 1-5 tags from 20k, each tag with its own
  topic words) and reports its peak RSS (`VmHWM`) before and after the fit, the fit time, the
  vocabulary and the stored pairs.

Usage:
    .venv/bin/python benchmarks/tag_set_baseline.py [--data DIR] [--seeds 0 1 2]
        [--set smoothing=5 --set popularity_damping=0.5 ...] [--memory-posts 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from recipes import get_recipe  # noqa: E402
from recipes.base import Query  # noqa: E402
from sdk.types import DatasetKind, EvaluationConfig, Schema  # noqa: E402
from training_jobs.evaluation.protocols import get_protocol  # noqa: E402
from training_jobs.loop import fit_in_process  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "stackexchange-robotics-kaggle"
SHOWN = ("precision@1", "precision@3", "precision@5", "recall@1", "recall@3", "recall@5", "f1@1", "f1@3",
         "f1@5", "ndcg@5", "mrr")


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def quality(data_dir: Path, seeds: list[int], hyperparameters: dict[str, Any]) -> dict[str, Any]:
    from sdk.stackexchange import convert

    with tempfile.TemporaryDirectory(prefix="tagrec-se-") as tmp:
        data = convert(data_dir, tmp)
        tables = {DatasetKind.ITEMS: pq.read_table(data.items)}
    spec, protocol = get_recipe("tag-cooccurrence"), get_protocol("post-holdout")
    runs = []
    for seed in seeds:
        config = EvaluationConfig(seed=seed)
        split = protocol.split(tables, data.schemas, config)
        t0 = time.perf_counter()
        cfg, featurizer, model = fit_in_process(spec, hyperparameters, split.train, schemas=data.schemas)
        fit_s = time.perf_counter() - t0
        predictor = spec.predictor_cls(cfg, featurizer, model)
        t0 = time.perf_counter()
        answers = predictor.predict_batch(split.queries)
        ask_s = time.perf_counter() - t0
        popular = predictor.predict_batch([Query(num_results=q.num_results) for q in split.queries])
        runs.append({"seed": seed, "test_posts": split.description["test_posts"],
                     "train_posts": split.description["train_posts"], "fit_seconds": fit_s,
                     "ms_per_query": 1000 * ask_s / len(split.queries),
                     "fallback_share": float(np.mean([a.fallback for a in answers])),
                     "words": len(featurizer.words), "tags": len(featurizer.tags),
                     "model": protocol.score(answers, split, config),
                     "frequency_based": protocol.score(popular, split, config)})
    summary = {side: {k: {"median": float(np.median([r[side][k] for r in runs])),
                          "min": float(min(r[side][k] for r in runs)),
                          "max": float(max(r[side][k] for r in runs))} for k in runs[0][side]}
               for side in ("model", "frequency_based")}
    return {"data": str(data_dir), "posts": tables[DatasetKind.ITEMS].num_rows, "seeds": seeds,
            "hyperparameters": spec.config_cls.model_validate(hyperparameters).model_dump(),
            "runs": runs, "summary": summary}


def synthetic_posts(n: int, seed: int = 0, vocabulary: int = 200_000, n_tags: int = 20_000
                    ) -> tuple[dict[DatasetKind, pa.Table], dict[DatasetKind, Schema]]:
    """N posts: ~70 Zipf words + ~30 words of their tags' topics each, 1-5 Zipf tags."""
    rng = np.random.default_rng(seed)
    tag_topics = rng.integers(0, vocabulary, size=(n_tags, 30))
    ranks = np.arange(1, vocabulary + 1, dtype=np.float64)
    word_p = 1 / ranks / (1 / ranks).sum()
    tag_ranks = np.arange(1, n_tags + 1, dtype=np.float64)
    tag_p = 1 / tag_ranks / (1 / tag_ranks).sum()
    common = rng.choice(vocabulary, size=(n, 70), p=word_p)
    drawn = rng.choice(n_tags, size=(n, 5), p=tag_p)
    sizes = rng.integers(1, 6, size=n)
    texts, tags = [], []  # Arrow arrays of 10,000 posts each (few Python strings alive at once)
    for lo in range(0, n, 10_000):
        text, tag = [], []
        for i in range(lo, min(n, lo + 10_000)):
            post_tags = np.unique(drawn[i, :sizes[i]])
            words = np.concatenate([common[i], rng.choice(tag_topics[post_tags].ravel(), size=30)])
            text.append(" ".join(f"w{w}" for w in words))
            tag.append([f"t{t}" for t in post_tags])
        texts.append(pa.array(text, pa.string()))
        tags.append(pa.array(tag, pa.list_(pa.string())))
    table = pa.table({"item_id": pa.array([str(i) for i in range(n)]), "content": pa.chunked_array(texts),
                      "tags": pa.chunked_array(tags)})
    schema = Schema.model_validate({"fields": [{"name": "item_id", "type": "string", "role": "ITEM_ID"},
                                               {"name": "content", "type": "text"},
                                               {"name": "tags", "type": "categorical", "role": "TAGS"}]})
    return {DatasetKind.ITEMS: table}, {DatasetKind.ITEMS: schema}


def memory_child(n: int) -> None:
    tables, schemas = synthetic_posts(n)
    before = _vm_hwm_mib()
    t0 = time.perf_counter()
    _, featurizer, _ = fit_in_process("tag-cooccurrence", {}, tables, schemas=schemas)
    print(json.dumps({"posts": n, "fit_seconds": time.perf_counter() - t0, "peak_rss_mib_before_fit": before,
                      "peak_rss_mib": _vm_hwm_mib(), "words": len(featurizer.words),
                      "tags": len(featurizer.tags), "word_tag_pairs": int(len(featurizer.word_tag[1])),
                      "tag_tag_pairs": int(len(featurizer.tag_tag[1]))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="A hyperparameter of tag-cooccurrence (repeatable).")
    parser.add_argument("--memory-posts", type=int, default=100_000)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)
    if not args.data.exists():
        sys.exit(f"{args.data} is not here (licensed data; see ../shared/data/README.md)")
    hyperparameters = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    report = quality(args.data, args.seeds, hyperparameters)
    if args.memory_posts:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(args.memory_posts)],
                             capture_output=True, text=True, check=True, env={**os.environ})
        report["memory"] = json.loads(out.stdout.strip().splitlines()[-1])
    report["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"tag-cooccurrence on {report['data']} ({report['posts']} posts), post-holdout, seeds {args.seeds}")
    for r in report["runs"]:
        print(f"  seed {r['seed']}: {r['train_posts']} train / {r['test_posts']} test posts, "
              f"{r['words']} words, {r['tags']} tags, fit {r['fit_seconds']:.2f} s, "
              f"{r['ms_per_query']:.2f} ms/query, fallback {r['fallback_share']:.1%}")
    print(f"  {'metric':<12} {'tag-cooccurrence median [min, max]':<36} frequency-based median [min, max]")
    for k in SHOWN:
        m, f = report["summary"]["model"][k], report["summary"]["frequency_based"][k]
        print(f"  {k:<12} {m['median']:.4f} [{m['min']:.4f}, {m['max']:.4f}]{'':<12} "
              f"{f['median']:.4f} [{f['min']:.4f}, {f['max']:.4f}]")
    if "memory" in report:
        mem = report["memory"]
        print(f"memory: {mem['posts']:,} synthetic posts fitted in {mem['fit_seconds']:.1f} s, peak RSS "
              f"{mem['peak_rss_mib']:.0f} MiB ({mem['peak_rss_mib_before_fit']:.0f} before the fit); "
              f"{mem['words']:,} words, {mem['tags']:,} tags, {mem['word_tag_pairs']:,} word-tag pairs")
    print(f"load average {report['load_average'][0]:.1f}")


if __name__ == "__main__":
    main()
