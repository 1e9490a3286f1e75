"""Offline evaluation shared by all recipes: hold-out splits, metrics, baselines.

Pure numpy / pyarrow (no torch, no Ray), so the same code scores a model in a training job, a
benchmark script or a notebook.

- :mod:`.splits` — who is held out: :func:`temporal_holdout` (HRNN-meta's protocol) and
  :func:`cold_start_split` (the paper's Table 7).
- :mod:`.metrics` — :func:`ranking_metrics` (precision/recall/NDCG/hit@k, MRR, coverage, checked
  against ranx), :func:`perplexity` with :func:`smooth_log_probs`, and :func:`compare` (model
  next to a baseline, with the lift; strict-JSON values only).
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
