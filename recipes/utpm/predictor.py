"""Answer user-tags queries from a UTPM artifact: a user's tag profile, every tag scored by u·t.

Follows Yan et al. (CIKM'20) §3 "Predicting layer" and §1 (the profile is a multi-label
classification over all tags: u·t for each tag t, the top K kept). The user's fields are built
from the query's history (`Query.history`: the snapshot and real-time events a campaign replica
passes), with the featurizer code that built the training samples, so a new rating changes the
profile at the next request; demographic fields come from the users table seen in training.

With `clicked_tags_first`, the user's clicked tags (those of their liked items) come first, by
u·t: the candidate selection step of the paper's pipeline (§1, Fig. 1). A query with nothing the
model can read (no known item or tag in its history, no demographics:
an unknown user) gets the task's fallback, the tags most often clicked in training, flagged.
`candidates` limits the ranking to those tags (unknown ones left out), `exclude` removes tags,
`num_results` caps the answer. `update_catalog` learns the items and users added since training
(their tags, categories and demographics), so a rating of a new movie moves the profile too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from recipes.base import Answer, Predictor, Query
from sdk.types import DatasetKind, Schema

from .configuration import UtpmConfig
from .featurizer import UtpmFeaturizer
from .modeling import UtpmModel
from .training import negative_distribution

__all__ = ["UtpmPredictor"]


class UtpmPredictor(Predictor):
    """A loaded UTPM (or YouTube-DNN) model answering recommend-tags queries."""

    def __init__(self, config: UtpmConfig, featurizer: UtpmFeaturizer, model: UtpmModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model.eval()
        self.max_history = config.max_history  # what a campaign keeps per user
        self._ids = np.array([""] + featurizer.tags.ids, dtype=object)
        self._popular = np.argsort(-featurizer.tag_counts[1:], kind="stable") + 1
        # The logQ correction of popularity-sampled negatives (configuration: negative_sampling).
        self._log_q = np.zeros(len(self._ids))
        if config.negative_sampling == "popularity":
            self._log_q[1:] = np.log(negative_distribution(featurizer.tag_counts))

    @torch.no_grad()
    def profiles(self, queries: Sequence[Query]) -> tuple[torch.Tensor, np.ndarray, list[set[int]]]:
        """(B, V) tag scores u·t, (B,) whether each query had anything to read, and each query's
        clicked tags."""
        built = [self.featurizer.query_fields(q.history, q.user_id) for q in queries]
        fields = np.stack([f for f, _ in built])
        known = (fields > 0).any(axis=(1, 2))
        return self.model.scores(torch.from_numpy(fields)), known, [c for _, c in built]

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        if not queries:
            return []
        scores, known, clicked = self.profiles(queries)
        return [self._answer(q, row.numpy(), bool(k), c)
                for q, row, k, c in zip(queries, scores, known, clicked)]

    def _answer(self, q: Query, row: np.ndarray, known: bool, clicked: set[int]) -> Answer:
        """Scores σ(u·t), + log q(t) inside with popularity-sampled negatives, plus 1 for the clicked
        tags with `clicked_tags_first` (so best first)."""
        tags = self.featurizer.tags
        n = int(q.num_results)
        allowed = np.zeros(len(self._ids), bool)
        if q.candidates is None:
            allowed[1:] = True
        else:
            allowed[[i for i in tags.indices(q.candidates) if i]] = True
        if q.exclude:
            allowed[[i for i in tags.indices(q.exclude) if i]] = False
        if not known:
            counts = self.featurizer.tag_counts
            order = self._popular[allowed[self._popular]][:n]
            total = float(counts.sum()) or 1.0
            return Answer([(str(self._ids[i]), float(counts[i]) / total) for i in order], fallback=True)
        score = 1.0 / (1.0 + np.exp(-(row.astype(np.float64) + self._log_q)))
        if self.config.clicked_tags_first and clicked:
            score[list(clicked)] += 1.0
        masked = np.where(allowed, score, -np.inf)
        k = min(n, int(allowed.sum()))
        if k <= 0:
            return Answer([])
        top = np.argpartition(-masked, k - 1)[:k]
        top = top[np.lexsort((top, -masked[top]))]  # best first, ties by vocabulary order
        return Answer([(str(self._ids[i]), float(masked[i])) for i in top])

    def update_catalog(self, tables: Mapping[DatasetKind, pa.Table],
                       schemas: Mapping[DatasetKind, Schema]) -> int:
        """Items and users added since training, from the datasets' current tables (the schemas are
        the training ones: the column names were recorded then)."""
        return self.featurizer.add_catalog(tables)
