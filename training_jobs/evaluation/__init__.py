"""Offline evaluation shared by all recipes: protocols, splits, metrics, baselines.

Pure numpy / pyarrow (no torch, no Ray), so the same code scores a model in a training job, a
benchmark script or a notebook. Every protocol asks the predictor through `predict_batch`, the
entry point a campaign replica calls.

- :mod:`.protocols` — the registry (`get_protocol`): one protocol per task's evaluation, each with
  its split, its validation split and metric (for best-epoch selection), its scoring and its
  task's baseline; :mod:`.next_item` (temporal hold-out, item cold start), :mod:`.user_tags`,
  :mod:`.item_tags`, :mod:`.tag_set`, :mod:`.session_tags`. Candidate lists and sampled negatives
  are always reported next to the full ranking (``full.*`` / ``sampled_*`` keys).
- :mod:`.splits` — who is held out: :func:`temporal_holdout` (HRNN-meta's protocol) and
  :func:`cold_start_split` (the paper's Table 7).
- :mod:`.metrics` — :func:`ranking_metrics` (precision/recall/NDCG/hit@k, MRR, coverage, checked
  against ranx), precision@k over min(k, |relevant|) and set metrics (precision/recall/F1@k),
  :func:`perplexity` with :func:`smooth_log_probs`, and :func:`compare` (model next to a
  baseline, with the lift; strict-JSON values only).
- :mod:`.baselines` — popularity and uniform random on the same split.
"""

from __future__ import annotations

from .baselines import PopularityBaseline, evaluate_popularity, popularity_baseline, uniform_random_metrics
from .metrics import DEFAULT_KS, UNSEEN_MASS, compare, perplexity, ranking_metrics, smooth_log_probs
from .splits import Split, cold_start_split, temporal_holdout

__all__ = [
    "DEFAULT_KS",
    "PopularityBaseline",
    "Split",
    "UNSEEN_MASS",
    "cold_start_split",
    "compare",
    "evaluate_popularity",
    "perplexity",
    "popularity_baseline",
    "ranking_metrics",
    "smooth_log_probs",
    "temporal_holdout",
    "uniform_random_metrics",
]
