"""Item-tags protocol (GraphTR, §5.4.1): rank an item's tags for a user, scored on the tags they apply.

``item-tag-holdout`` — the split of the user-tags protocol (`.user_tags.tag_holdout`: a seeded
sample of users, their events from their `holdout_last`-th latest tag event on held out). Each
(test user, item) pair of the held-out events is a case: the user asks, at the time of their first
held-out event and from their earlier history, which of the item's tags to show (the campaign's
``recommend-tags`` query with `item_id`). The item's candidate tags are its known ones: every tag
applied to it in the training part (by anyone), as GraphTR's videos carry their tag candidates
before anyone clicks. The relevant tags are the candidates the user applied to the item in the
held-out events (GraphTR: the clicked tag of the video). Left out, and counted in the
description: pairs where the user applied only tags new to the item (nothing they chose could
have been shown), and pairs whose candidates are all relevant (nothing to rank).

Two rankings of the same cases and relevant tags, always reported side by side:

* the per-case candidate list: the item's known tags in a seeded random order, at most 500 (a
  request's limit; the relevant ones always kept). Metrics keep their plain names (``hit@2``,
  ``mrr``, ...), MRR over the whole list;
* the full ranking: the same cases asked without a candidate list, the model answering from its
  whole vocabulary (``full.hit@2``, ``full.mrr``, ..., with ``full.coverage@k``).

Metrics as in the user-tags protocol (`.user_tags.tag_metrics`, with UTPM's
``precision_minrel@k``). The baseline is the task's ``item-tag-frequency`` recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Answer, Query
from recipes.common import flatten_tags
from sdk.tasks import TaskId
from sdk.types import DatasetKind, EvaluationConfig, Schema

from .protocols import EvalSplit, InsufficientData, Protocol
from .user_tags import MAX_RESULTS, TAG_KS, tag_columns, tag_holdout, tag_metrics, vocabulary_size

__all__ = ["ItemTagHoldout", "item_tag_sets"]


def item_tag_sets(interactions: pa.Table, item_col: str, tags_col: str,
                  items: set[str]) -> dict[str, list[str]]:
    """Every distinct tag applied to each of `items` in the table, in order of first appearance."""
    ids = interactions.column(item_col).cast(pa.string())
    rows = interactions.filter(pc.fill_null(pc.is_in(ids, value_set=pa.array(sorted(items), pa.string())),
                                            False))
    at, flat = flatten_tags(rows.column(tags_col))
    owners = rows.column(item_col).cast(pa.string()).take(pa.array(at, pa.int64())).to_pylist()
    out: dict[str, dict[str, None]] = {}
    for item, tag in zip(owners, flat.to_pylist()):
        if tag is not None:
            out.setdefault(item, {})[tag] = None
    return {item: list(tags) for item, tags in out.items()}


class ItemTagHoldout(Protocol):
    """GraphTR's protocol: an item's tags ranked for a user, candidate list and full (module docstring)."""

    name = "item-tag-holdout"
    task = TaskId.ITEM_TAGS
    default_ks = TAG_KS

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        cols = tag_columns(schemas[DatasetKind.INTERACTIONS])
        if not cols["item"]:
            raise InsufficientData(f"{self.name} needs an interactions field with role ITEM_ID")
        interactions = tables[DatasetKind.INTERACTIONS]
        h = tag_holdout(interactions, cols, config, self.name)
        cases: list[tuple[int, str, list[str]]] = []  # (test user, item, relevant tags)
        for u, held in enumerate(h.held):
            applied: dict[str, dict[str, None]] = {}
            for item, tags in held:
                if item is not None and tags:
                    applied.setdefault(item, {}).update(dict.fromkeys(tags))
            cases += [(u, item, list(tags)) for item, tags in applied.items()]
        tag_sets = item_tag_sets(h.train, cols["item"], cols["tags"], {c[1] for c in cases})
        rng = np.random.default_rng([config.seed, 1])
        depth = min(config.depth, MAX_RESULTS)
        ranked: list[Query] = []
        full: list[Query] = []
        relevant: list[list[str]] = []
        new_only = trivial = 0
        for u, item, applied_tags in cases:
            known = tag_sets.get(item, [])
            have = set(known)
            rel = [t for t in applied_tags if t in have]
            if not rel:
                new_only += 1
                continue
            own = set(rel)
            others = [t for t in known if t not in own]
            if not others:
                trivial += 1
                continue
            rel = rel[:MAX_RESULTS - 1]
            room = MAX_RESULTS - len(rel)
            if len(others) > room:
                others = [others[i] for i in np.sort(rng.choice(len(others), size=room, replace=False))]
            pool = rel + others
            candidates = [pool[i] for i in rng.permutation(len(pool))]
            common: dict[str, Any] = {"history": h.histories[u], "user_id": h.users[u], "item_id": item,
                                      "time": h.times[u]}
            ranked.append(Query(candidates=candidates, num_results=len(candidates), **common))
            full.append(Query(num_results=depth, **common))
            relevant.append(rel)
        if not ranked:
            raise InsufficientData(
                f"none of the {len(cases)} held-out (user, item) pairs has tags to rank: in {new_only} the "
                f"user applied only tags the item did not have in training, in {trivial} every tag it had")
        sizes = [len(q.candidates or ()) for q in ranked]
        vocabulary = vocabulary_size(h.train, cols["tags"])
        description = {
            **h.description,
            "item_col": cols["item"],
            "held_out_pairs": len(cases),
            "cases": len(ranked),
            "new_tags_only_left_out": new_only,
            "trivial_cases_left_out": trivial,
            "candidates_per_case": float(np.mean(sizes)),
            "max_candidates": int(max(sizes)),
            "relevant_per_case": float(np.mean([len(r) for r in relevant])),
            "ranking": ("each held-out (user, item) pair ranks the item's candidate tags: every tag "
                        "applied to the item in training, in a seeded random order, at most "
                        f"{MAX_RESULTS}; relevant: those the user applied to it in the held-out events; "
                        "pairs with only tags new to the item, or with every candidate relevant, are "
                        "left out. full.* metrics: the same pairs and relevant tags asked without a "
                        f"candidate list (top {depth} scored, {vocabulary} training tags)"),
        }
        return EvalSplit(protocol=self.name, train={**tables, DatasetKind.INTERACTIONS: h.train},
                         queries=ranked + full, relevant=relevant + relevant, description=description,
                         catalog_size=vocabulary or None, state={"cases": len(ranked)})

    def score(self, answers: Sequence[Answer], split: EvalSplit,
              config: EvaluationConfig) -> dict[str, float]:
        """Candidate-list metrics, then the full ranking's under ``full.``."""
        n, ks = split.state["cases"], self.ks(config)
        ranked = tag_metrics(answers[:n], split.relevant[:n], ks)
        full = tag_metrics(answers[n:], split.relevant[n:], ks, split.catalog_size)
        return {**ranked, **{f"full.{k}": v for k, v in full.items()}}
