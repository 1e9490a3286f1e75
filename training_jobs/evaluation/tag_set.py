"""Tag-set protocol (SOG, §4.1): posts held out of training, their tag sets generated from text.

``post-holdout`` — a seeded random `test_fraction` of the tagged posts (items with at least one
tag) is held out of training, as the paper's 9:1 train/test split (Table 1); for this task
`min_test_users` counts test *posts*: at least that many when the data allow, but at most half of
the tagged posts (and at least one post always trains). The draw depends only on the posts' ids
and the seed, not on row order. Each held-out post asks what a campaign's ``generate-tags``
request for it would: its text fields by name (`fields`, e.g. title and content, as in the items
dataset; not also joined into `text`, so no recipe reads the post twice) and its other plain
fields (no role: a site, a location, a time; as text, a list's values joined by spaces, a time in
ISO 8601) that a context-aware recipe reads (SOG §3.4), no item id, no chosen
tag, for a set of K = max(ks) tags (the paper generates 5, §4.1.4; capped at 100, the most a
request may ask). Its true tags are the relevant ones, tags never seen in training included (they
count against recall: ``test_tags_unseen_in_training`` says how many).

Metrics per post, averaged over the posts (macro, as the paper averages, §4.1.2): precision@k and
recall@k (the paper's P@K and R@K, Table 2, k as precision's denominator), f1@k
(:func:`.metrics.set_metrics`), and over the answer's order ndcg@k, hit@k and MRR, with
coverage@k of the training tags; default ks (1, 3, 5) as the paper. The paper reports no micro
averages, no exact match and no completion from given tags, so neither does this protocol. The
baseline is the task's ``tag-cooccurrence`` recipe fitted on the same training posts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Answer, Query
from recipes.common import column_for, tag_lists, text_fields
from sdk.tasks import TaskId
from sdk.types import DatasetKind, EvaluationConfig, Role, Schema

from .metrics import ranking_metrics, set_metrics
from .protocols import EvalSplit, InsufficientData, Protocol

__all__ = ["MAX_SET_SIZE", "SET_KS", "PostHoldout"]

SET_KS: tuple[int, ...] = (1, 3, 5)  # the paper's P@K / R@K cut-offs (Table 2)
MAX_SET_SIZE = 100  # the most tags a generate-tags request may ask (sdk.types.GenerateTagsRequest)


class PostHoldout(Protocol):
    """SOG's protocol: held-out posts' tag sets from their text (module docstring)."""

    name = "post-holdout"
    task = TaskId.TAG_SET
    default_ks = SET_KS

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        items, schema = tables.get(DatasetKind.ITEMS), schemas.get(DatasetKind.ITEMS)
        tags_col = column_for(schemas, DatasetKind.ITEMS, Role.TAGS)
        if items is None or schema is None or tags_col is None:
            raise InsufficientData(f"{self.name} needs an items dataset with a TAGS field")
        id_col = column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID)
        fields = text_fields(schema)
        lists = tag_lists(items.column(tags_col))
        tagged = np.flatnonzero(pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False))
        if len(tagged) < 2:
            raise InsufficientData(f"{self.name} needs at least 2 posts with tags (one to train on, one to "
                                   f"test); the items dataset has {len(tagged)}")
        ids = items.column(id_col).cast(pa.string()).take(pa.array(tagged)) if id_col else None
        by_id = tagged[pc.sort_indices(ids).to_numpy()] if ids is not None else tagged
        n_test = int(round(config.test_fraction * len(tagged)))
        n_test = min(max(n_test, min(config.min_test_users, len(tagged) // 2), 1), len(tagged) - 1)
        rng = np.random.default_rng(config.seed)
        test_rows = np.sort(rng.choice(by_id, size=n_test, replace=False))
        held = np.zeros(items.num_rows, dtype=bool)
        held[test_rows] = True
        train = items.filter(pa.array(~held))
        context = [f.name for f in schema.fields if f.role is None and f.name not in fields]
        texts = items.select(fields + context).take(pa.array(test_rows)).to_pylist()
        size = min(max(self.ks(config)), MAX_SET_SIZE)
        queries = [Query(fields={f: _as_text(v) for f, v in post.items() if v not in (None, "", [])},
                         num_results=size) for post in texts]
        relevant = [list(dict.fromkeys(t or ())) for t in lists.take(pa.array(test_rows)).to_pylist()]
        known = set(pc.unique(pc.list_flatten(tag_lists(train.column(tags_col)))).to_pylist())
        vocabulary = len(known)
        assigned = [t for r in relevant for t in r]
        description = {
            "protocol": self.name,
            "rule": (f"a seeded random {config.test_fraction:g} of the posts with tags (at least "
                     f"{config.min_test_users} when available, at most half) is held out of training; "
                     f"each asks for a set of {size} tags from its text fields "
                     f"({', '.join(fields) or 'none'}), its true tags relevant; all other items train"),
            "fraction": config.test_fraction,
            "min_posts": config.min_test_users,
            "seed": config.seed,
            "posts": items.num_rows,
            "tagged_posts": int(len(tagged)),
            "test_posts": n_test,
            "train_posts": train.num_rows,
            "set_size": size,
            "text_fields": fields,
            "context_fields": context,
            "tags_col": tags_col,
            "relevant_per_case": float(np.mean([len(r) for r in relevant])),
            "training_tags": vocabulary,
            "test_tags_unseen_in_training": (sum(t not in known for t in assigned) / len(assigned)),
        }
        return EvalSplit(protocol=self.name, train={**tables, DatasetKind.ITEMS: train}, queries=queries,
                         relevant=relevant, description=description, catalog_size=vocabulary or None)

    def validation_metric(self, config: EvaluationConfig) -> str:
        ks = self.ks(config)
        return f"f1@{ks[len(ks) // 2]}"  # F1 at the middle cut-off (f1@3 by default)

    def score(self, answers: Sequence[Answer], split: EvalSplit,
              config: EvaluationConfig) -> dict[str, float]:
        ks = self.ks(config)
        ranked = {i: a.ids for i, a in enumerate(answers)}
        metrics = ranking_metrics(ranked, dict(enumerate(split.relevant)), ks,
                                  catalog_size=split.catalog_size)
        return {**metrics, **set_metrics([a.ids for a in answers], split.relevant, ks)}


def _as_text(value: object) -> str:
    """A field's value as a request's text field: a list's values joined by spaces, a time in ISO 8601."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value if v is not None)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
