"""Click statistics of support sessions, fitted on the training interactions (with the items'
organisations and tags): the vocabularies it saves, and the counts the model holds (`modeling.py`).

What counts:

* a *tag click* is each non-empty tag of an interactions row (a tag click's row has no item);
* a *question click* is a row with an item (the item is a question);
* a session's clicks are ordered by time, ties by row order; a *transition* a -> b is two
  successive tag clicks of one session (question clicks between them do not break it);
* a row's *organisation* is its value in the interactions column named ``organisation`` (or
  ``organization``); a question's is the items table's, else the one most of its clicks have.
  Rows without one count in the global statistics only.

An organisation's tags are the tags its customers clicked and the tags of its questions (the
latter with zero clicks when never clicked).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for, flatten_tags
from sdk.types import DatasetKind, Role, Schema

from .configuration import SessionTagPopularityConfig

__all__ = ["SessionTagPopularityFeaturizer", "organisation_column"]

_ORGANISATION = ("organisation", "organization")
_FILES = {"tags": "tags.json", "organisations": "organisations.json", "questions": "questions.json"}


def organisation_column(schema: Schema | None) -> str | None:
    """The column naming each row's organisation (the support widget's tenant), if any."""
    if schema is None:
        return None
    return next((f.name for f in schema.fields if f.role is None and f.name.lower() in _ORGANISATION), None)


def _strings(table: pa.Table | None, column: str | None) -> pa.Array:
    if table is None or column is None:
        return pa.nulls(0 if table is None else table.num_rows, pa.string())
    return table.column(column).combine_chunks().cast(pa.string())


def _tags(table: pa.Table | None, column: str | None) -> tuple[np.ndarray, pa.Array]:
    """(row, tag) of every non-empty tag of a TAGS column."""
    if table is None or column is None or not table.num_rows:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    rows, values = flatten_tags(table.column(column))
    keep = pc.fill_null(pc.greater(pc.utf8_length(values), 0), False)
    return rows[keep.to_numpy(zero_copy_only=False)], values.filter(keep)


def _new(vocab: Vocabulary, values: pa.Array) -> list[str]:
    """Values of `values` not in `vocab`, in first-appearance order."""
    return [v for v in Vocabulary.fit(values).ids if vocab.index(v) == 0]


class SessionTagPopularityFeaturizer(Featurizer):
    """Vocabularies of tags (most clicked first), organisations and questions; `statistics` (the
    counts `training.py` builds the model from) exist only on a freshly fitted featurizer."""

    def __init__(self, tags: Vocabulary, organisations: Vocabulary, questions: Vocabulary,
                 statistics: dict[str, np.ndarray] | None = None) -> None:
        self.tags, self.organisations, self.questions = tags, organisations, questions
        self.statistics = statistics

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: SessionTagPopularityConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> SessionTagPopularityFeaturizer:
        inter = tables[DatasetKind.INTERACTIONS]
        items = tables.get(DatasetKind.ITEMS)
        n = inter.num_rows

        def col(kind: DatasetKind, role: Role) -> str | None:
            return column_for(schemas, kind, role)

        # Tag clicks in session order (session, time, row).
        session_col, time_col = col(DatasetKind.INTERACTIONS, Role.SESSION_ID), col(DatasetKind.INTERACTIONS,
                                                                                    Role.TIMESTAMP)
        sessions = _strings(inter, session_col)
        session = (pc.fill_null(pc.dictionary_encode(sessions).indices, -1).to_numpy(zero_copy_only=False)
                   .astype(np.int64) if n else np.zeros(0, np.int64))
        ms = (inter.column(time_col).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
              .to_numpy(zero_copy_only=False) if n and time_col else np.zeros(n, np.int64))
        rank = np.empty(n, np.int64)
        rank[np.lexsort((np.arange(n), ms, session))] = np.arange(n)
        rows, clicked = _tags(inter, col(DatasetKind.INTERACTIONS, Role.TAGS))
        seq = np.argsort(rank[rows], kind="stable")
        rows, clicked = rows[seq], clicked.take(pa.array(seq, pa.int64()))

        # Vocabularies.
        inter_org = _strings(inter, organisation_column(schemas.get(DatasetKind.INTERACTIONS)))
        item_ids = _strings(items, col(DatasetKind.ITEMS, Role.ITEM_ID))
        item_org = _strings(items, organisation_column(schemas.get(DatasetKind.ITEMS)))
        item_rows, item_tags = _tags(items, col(DatasetKind.ITEMS, Role.TAGS))
        organisations = Vocabulary.fit(pa.concat_arrays([inter_org, item_org]), by_count=True)
        tags = Vocabulary.fit(clicked, by_count=True)
        tags = Vocabulary(tags.ids + _new(tags, item_tags))
        inter_items = _strings(inter, col(DatasetKind.INTERACTIONS, Role.ITEM_ID))
        questions = Vocabulary.fit(inter_items, by_count=True)
        questions = Vocabulary(questions.ids + _new(questions, item_ids))
        n_tags, n_orgs = tags.size, organisations.size

        # Questions: clicks, organisation, tags.
        q_row = questions.encode(inter_items) if n else np.zeros(0, np.int64)
        org_row = organisations.encode(inter_org) if n else np.zeros(0, np.int64)
        question_clicks = np.bincount(q_row, minlength=questions.size).astype(np.float64)
        question_clicks[0] = 0.0
        question_org = np.zeros(questions.size, np.int64)
        asked = q_row > 0
        if asked.any():  # the organisation most of a question's clicks have (ties: the first)
            pairs, counts = np.unique(q_row[asked] * n_orgs + org_row[asked], return_counts=True)
            best = np.lexsort((-counts, pairs // n_orgs))
            q, first = np.unique((pairs // n_orgs)[best], return_index=True)
            question_org[q] = (pairs % n_orgs)[best][first]
        if items is not None and items.num_rows:
            q_items, o_items = questions.encode(item_ids), organisations.encode(item_org)
            known = (q_items > 0) & (o_items > 0)
            question_org[q_items[known]] = o_items[known]
        tag_of_click = tags.encode(clicked) if len(clicked) else np.zeros(0, np.int64)
        qt_q = np.concatenate([questions.encode(item_ids)[item_rows] if len(item_rows) else [],
                               q_row[rows]]).astype(np.int64)
        qt_t = np.concatenate([tags.encode(item_tags) if len(item_tags) else [],
                               tag_of_click]).astype(np.int64)
        qt = np.unique(qt_q[qt_q > 0] * n_tags + qt_t[qt_q > 0])
        question_tag_index = np.stack([qt // n_tags, qt % n_tags])

        # Tag clicks per (organisation, tag); the tags of an organisation's questions are its own too.
        click_org = org_row[rows]
        click_keys = click_org * n_tags + tag_of_click
        member_keys = question_org[question_tag_index[0]] * n_tags + question_tag_index[1]
        keys, inverse = np.unique(np.concatenate([click_keys, member_keys]), return_inverse=True)
        tag_clicks = np.bincount(inverse[:len(click_keys)], minlength=len(keys)).astype(np.float64)
        tag_index = np.stack([keys // n_tags, keys % n_tags])

        # Transitions a -> b between successive tag clicks of one session, per organisation.
        s = session[rows]
        same = (s[1:] == s[:-1]) & (s[1:] >= 0)
        t_keys = (click_org[1:][same] * n_tags + tag_of_click[:-1][same]) * n_tags + tag_of_click[1:][same]
        t_keys, t_counts = np.unique(t_keys, return_counts=True)
        transition_index = np.stack([t_keys // (n_tags * n_tags), t_keys // n_tags % n_tags, t_keys % n_tags])

        statistics = {"tag_index": tag_index, "tag_clicks": tag_clicks,
                      "transition_index": transition_index, "transition_counts": t_counts.astype(np.float64),
                      "question_org": question_org, "question_clicks": question_clicks,
                      "question_tag_index": question_tag_index}
        return cls(tags, organisations, questions, statistics)

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> None:
        return None  # nothing to train on: the counts are the model

    def save(self, directory: Path) -> None:
        for name, file in _FILES.items():
            (directory / file).write_text(getattr(self, name).to_json())

    @classmethod
    def load(cls, directory: Path) -> SessionTagPopularityFeaturizer:
        return cls(*(Vocabulary.from_json((directory / file).read_text()) for file in _FILES.values()))
