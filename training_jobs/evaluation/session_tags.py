"""Session-tags protocol (IntelliTag, §VI-A): the next tag clicks of support sessions held out by time.

``session-holdout`` — sessions are ordered by their first event (ties by session id); the latest
`test_fraction` of them (at least one, and at least one left to train on) are the test sessions,
all their rows held out; the other sessions train, with the rows without a session from before the
first test session starts. (The paper splits its sessions 80/10/10 into training, validation and
test; here the test part is the newest, as a deployed model trained on the past is asked about the
future: IntelliTag retrains "T+1", each day on the data up to the day before.)

Cases: every tag click of a test session after its first (§IV-C: from the tags clicked so far,
predict the next click). A case is asked as a campaign asks a ``next-tags`` request
(`serving.campaign._query`): ``Query(history=<the session's events before the click>,
session_id=..., fields={"organisation": <the session's>, "num_questions": 3},
num_results=min(depth, 100), time=<the click's>)``; the relevant tag is the one clicked (all of
them when the row carries several). The session's organisation is its first value in the
interactions column named ``organisation`` (or ``organization``), left out of the query when the
data have none.

Metrics, averaged over the cases (one relevant tag, so the paper's HR@K is ``hit@k``):
``hit@k``, ``ndcg@k``, ``mrr`` (over the ranked list) and ``coverage@k`` (of the training and
items' tags), ranking all tags; and the paper's sampled ranking, ``sampled_hit@k``,
``sampled_ndcg@k``, ``sampled_mrr``: the clicked tag among 49 other tags of the same organisation
(of any session, or of its questions) drawn at random with the split's seed, i.e. the same queries
with those 50 tags as `candidates`. Questions are not scored: the paper evaluates tag
recommendation only. The baseline is the task's ``session-tag-popularity`` recipe fitted on the
same training part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Answer, Query
from recipes.common import flatten_tags
from sdk.tasks import TaskId
from sdk.types import DatasetKind, EvaluationConfig, NextTagsRequest, Role, Schema

from .metrics import ranking_metrics
from .protocols import EvalSplit, InsufficientData, Protocol

__all__ = ["NEGATIVES", "SESSION_KS", "SessionHoldout"]

NEGATIVES = 49  # sampled tags ranked with the clicked one (the paper: 49 of the same tenant)
SESSION_KS: tuple[int, ...] = (1, 3, 5, 10)
_MAX_RESULTS = 100  # the most tags a next-tags request may ask for (NextTagsRequest.num_results)
_NUM_QUESTIONS = NextTagsRequest.model_fields["num_questions"].default
_ORGANISATION = ("organisation", "organization")
_KEPT = ("hit", "ndcg", "mrr", "coverage")


def _column(schema: Schema | None, role: Role) -> str | None:
    f = schema.field_for(role) if schema is not None else None
    return f.name if f is not None else None


def _organisation(schema: Schema | None) -> str | None:
    if schema is None:
        return None
    return next((f.name for f in schema.fields if f.role is None and f.name.lower() in _ORGANISATION), None)


def _values(table: pa.Table, column: str | None) -> list[Any]:
    return table.column(column).to_pylist() if column else [None] * table.num_rows


def _tag_pools(tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema]
               ) -> dict[str | None, list[str]]:
    """Each organisation's tags (None: every tag), in first-appearance order."""
    pools: dict[str | None, dict[str, None]] = {None: {}}
    for kind in (DatasetKind.INTERACTIONS, DatasetKind.ITEMS):
        table, schema = tables.get(kind), schemas.get(kind)
        tags_col = _column(schema, Role.TAGS)
        if table is None or tags_col is None or not table.num_rows:
            continue
        rows, tags = flatten_tags(table.column(tags_col))
        orgs = _values(table, _organisation(schema))
        for row, tag in zip(rows.tolist(), tags.to_pylist()):
            if tag:
                pools[None][tag] = None
                pools.setdefault(orgs[row], {})[tag] = None
    return {org: list(tags) for org, tags in pools.items()}


class SessionHoldout(Protocol):
    """The latest sessions held out; each tag click after a session's first is a case (module doc)."""

    name = "session-holdout"
    task = TaskId.SESSION_TAGS
    default_ks = SESSION_KS

    def split(self, tables: Mapping[DatasetKind, pa.Table], schemas: Mapping[DatasetKind, Schema],
              config: EvaluationConfig) -> EvalSplit:
        schema = schemas[DatasetKind.INTERACTIONS]
        inter = tables[DatasetKind.INTERACTIONS]
        col = {name: _column(schema, role) for name, role in (
            ("session", Role.SESSION_ID), ("time", Role.TIMESTAMP), ("tags", Role.TAGS),
            ("item", Role.ITEM_ID), ("event_type", Role.EVENT_TYPE), ("event_value", Role.EVENT_VALUE))}
        missing = [r for r, c in (("SESSION_ID", col["session"]), ("TAGS", col["tags"])) if c is None]
        if missing:
            raise InsufficientData(f"session-holdout needs an interactions field with role "
                                   f"{' and '.join(missing)}: cases are the tag clicks of sessions")
        org_col = _organisation(schema)
        encoded = pc.dictionary_encode(inter.column(col["session"]).combine_chunks().cast(pa.string()))
        names = encoded.dictionary
        n_sessions = len(names)
        if n_sessions < 2:
            raise InsufficientData(f"session-holdout needs at least 2 sessions (one to train on, one to "
                                   f"test on); the interactions hold {n_sessions}")
        code = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        ms = inter.column(col["time"]).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
        in_session = code >= 0
        start = np.full(n_sessions, np.iinfo(np.int64).max)
        np.minimum.at(start, code[in_session], ms[in_session])
        id_rank = np.empty(n_sessions, np.int64)
        id_rank[pc.sort_indices(names).to_numpy()] = np.arange(n_sessions)
        by_start = np.lexsort((id_rank, start))
        n_test = min(n_sessions - 1, max(1, round(config.test_fraction * n_sessions)))
        position = np.full(n_sessions, -1)
        position[by_start[-n_test:]] = np.arange(n_test)  # test sessions by start, -1: training
        cutoff = int(start[by_start[-n_test]])
        test_row = in_session & (position[np.maximum(code, 0)] >= 0)
        held = test_row | (~in_session & (ms >= cutoff))
        train = inter.filter(pa.array(~held))

        # The test sessions' events, each session in time order (ties by row order).
        rows = np.flatnonzero(test_row)
        rows = rows[np.lexsort((rows, ms[rows], position[code[rows]]))]
        test = inter.take(pa.array(rows, pa.int64()))
        items, tags = _values(test, col["item"]), _values(test, col["tags"])
        types, values = _values(test, col["event_type"]), _values(test, col["event_value"])
        orgs, sessions = _values(test, org_col), names.take(pa.array(code[rows])).to_pylist()
        secs = (ms[rows] / 1000.0).tolist()
        queries: list[Query] = []
        relevant: list[list[str]] = []
        case_orgs: list[str | None] = []
        depth = min(config.depth, _MAX_RESULTS)
        lo = 0
        while lo < len(rows):
            hi = lo
            while hi < len(rows) and sessions[hi] == sessions[lo]:
                hi += 1
            org = next((o for o in orgs[lo:hi] if o is not None), None)
            fields = {"num_questions": _NUM_QUESTIONS, **({"organisation": org} if org is not None else {})}
            events = [(items[i], secs[i], types[i], values[i], None if tags[i] is None else tuple(tags[i]))
                      for i in range(lo, hi)]
            clicks = [j for j, e in enumerate(events) if e[4] and any(e[4])]
            for j in clicks[1:]:
                queries.append(Query(history=events[:j], session_id=sessions[lo], fields=fields,
                                     num_results=depth, time=events[j][1]))
                relevant.append(list(dict.fromkeys(t for t in events[j][4] if t)))
                case_orgs.append(org)
            lo = hi
        if not queries:
            raise InsufficientData(
                f"session-holdout: none of the {n_test} test session(s) (the latest {config.test_fraction:g} "
                f"of {n_sessions} by start time) has 2 or more tag clicks; a case is a tag click after "
                "the session's first")

        # The paper's sampled ranking: the clicked tag among NEGATIVES of the organisation's tags.
        pools = _tag_pools(tables, schemas)
        rng = np.random.default_rng(config.seed)
        sampled = []
        for query, rel, org in zip(queries, relevant, case_orgs):
            pool = pools.get(org) or pools[None]
            drawn = rng.choice(len(pool), size=min(len(pool), NEGATIVES + len(rel)), replace=False)
            candidates = rel + [pool[i] for i in drawn.tolist() if pool[i] not in rel][:NEGATIVES]
            rng.shuffle(candidates)
            sampled.append(dataclasses.replace(query, candidates=candidates, num_results=len(candidates)))
        trained = _tag_pools({DatasetKind.INTERACTIONS: train, **{k: t for k, t in tables.items()
                                                                  if k != DatasetKind.INTERACTIONS}}, schemas)
        description = {
            "protocol": self.name,
            "rule": (f"sessions ordered by their first event (ties by session id); the latest "
                     f"{config.test_fraction:g} of them are held out whole; each tag click of a held-out "
                     f"session after its first is a case, asked from the session's earlier events; "
                     f"sampled metrics rank the clicked tag among {NEGATIVES} random tags of the same "
                     "organisation"),
            "test_fraction": config.test_fraction,
            "seed": config.seed,
            "sessions": n_sessions,
            "test_sessions": n_test,
            "train_sessions": n_sessions - n_test,
            "cutoff": datetime.fromtimestamp(cutoff / 1000, UTC).isoformat(),
            "cases": len(queries),
            "negatives": NEGATIVES,
            "depth": depth,
            "held_out_events": int(held.sum()),
            "train_events": train.num_rows,
            "session_col": col["session"],
            "organisation_col": org_col,
        }
        return EvalSplit(protocol=self.name, train={**tables, DatasetKind.INTERACTIONS: train},
                         queries=queries + sampled, relevant=relevant + relevant, description=description,
                         catalog_size=max(len(trained[None]), 1), state={"cases": len(queries)})

    def score(self, answers: Sequence[Answer], split: EvalSplit,
              config: EvaluationConfig) -> dict[str, float]:
        """Full-ranking metrics of the first half of the answers, sampled ones of the second."""
        n, ks = split.state["cases"], self.ks(config)

        def metrics(part: slice, catalog_size: int | None) -> dict[str, float]:
            ranked = {i: a.ids for i, a in enumerate(answers[part])}
            relevant = dict(enumerate(split.relevant[part]))
            out = ranking_metrics(ranked, relevant, ks, catalog_size=catalog_size)
            return {k: v for k, v in out.items() if k.split("@")[0] in _KEPT}

        full = metrics(slice(0, n), split.catalog_size)
        sampled = metrics(slice(n, 2 * n), None)
        return {**full, **{f"sampled_{k}": v for k, v in sampled.items()}}
