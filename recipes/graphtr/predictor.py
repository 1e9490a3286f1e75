"""Answer item-tags queries from a GraphTR artifact: an item's candidate tags ranked for a user.

Follows Liu, Xie et al. (CIKM'20) §4.1 (online tag ranking): over the user's latest
`history_items` events v_1..v_k (oldest first), a tag's weight is α_i = Σ_j x(ij)·complete_j·time_j
(eq. 15). x(ij) = 1 when t_i is one of v_j's own tags if the event carries any (a tag click or
application: the user chose those tags, the item's others they passed over), else when t_i is a
candidate tag of v_j's item (its tags in the training graph: a watch, the paper's case);
`history_tags="item"` reads eq. 15 literally for every event (the item's candidates and the event's
own tags). A real-time event counts at the next request. complete_j is the event value when it is a
completion share in [0, 1], else 1; time_j = η^(k-j) (eq. 16). The top `user_tags` tags by weight
build u = Σ β_i t_i with β_i = α_i / Σ α (eq. 17), and the candidates are ranked by cos(u, t). Tag
embeddings t are HFIN's o (eq. 13), computed once when the predictor is built (seeded neighbour
samples), not per request.

Not in the paper (its videos carry a few tag candidates with no weights): with
`candidate_prior` λ > 0 a candidate scores cos(u, t) + λ·log(1 + n_it), n_it the times t was
applied to the item in training, so an item's much-applied tags lead and the user's taste orders the
rest and breaks the many ties (default λ = 1: a unit of log-count weighs as a unit of cosine; λ = 0 is
§4.1 as written).

Candidates: the request's (`candidates`; a tag the graph does not know comes last, unscored) or the
item's own tags in training (every tag applied to it, then its other tags in the graph, e.g. the
items dataset's). A user with nothing the model can read (no history, or no known tag in it) gets
the candidates by the times applied to the item, then overall (the task's `item-tag-frequency`
answer); an item without known tags gets the tags by their training applications overall (§5.2's
popularity baseline); both flagged fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recipes.base import Answer, Predictor, Query

from .configuration import GraphTrConfig
from .featurizer import TAG, GraphTrFeaturizer
from .modeling import HfinModel

__all__ = ["GraphTrPredictor"]

_CHUNK = 512


class GraphTrPredictor(Predictor):
    """A loaded GraphTR model: tag embeddings and the §4.1 ranking."""

    def __init__(self, config: GraphTrConfig, featurizer: GraphTrFeaturizer, model: HfinModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model.eval()
        self.max_history = config.history_items  # what a campaign keeps per user
        graph = featurizer.graph
        self._tag_ids = list(graph.vocab["tag"])
        self._tag_index = {t: i for i, t in enumerate(self._tag_ids)}
        self.tag_vectors = self._embed_tags()  # (T, H), L2-normalised
        self._popular = np.argsort(-featurizer.tag_counts, kind="stable")
        total = float(featurizer.tag_counts.sum()) or 1.0
        self._share = featurizer.tag_counts / total

    @torch.no_grad()
    def _embed_tags(self) -> np.ndarray:
        graph, cfg = self.featurizer.graph, self.config
        lo = int(graph.offsets[TAG])
        nodes = np.arange(lo, lo + len(self._tag_ids), dtype=np.int64)
        rng = np.random.default_rng([cfg.seed, 1])
        out = []
        for start in range(0, len(nodes), _CHUNK):
            s = graph.sample_two_hop(nodes[start:start + _CHUNK], rng, cfg.first_samples, cfg.second_samples)
            o = self.model.encode(torch.from_numpy(s.nodes.astype(np.int64)),
                                  torch.from_numpy(s.hop1.astype(np.int64)),
                                  torch.from_numpy(s.hop2.astype(np.int64)))
            out.append(torch.nn.functional.normalize(o, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.out_dim), np.float32)

    def user_vector(self, history: Sequence[tuple]) -> np.ndarray | None:
        """u of eq. 15-17 from the history (oldest first); None when no known tag is in it."""
        cfg = self.config
        events = list(history)[-cfg.history_items:]
        weights: dict[int, float] = {}
        k = len(events)
        for j, e in enumerate(events):
            value = e[3] if len(e) > 3 else None
            complete = float(value) if isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0 else 1.0
            decay = cfg.time_decay ** (k - 1 - j)
            own = e[4] if len(e) > 4 and e[4] else ()
            tags = {i for i in (self._tag_index.get(str(t)) for t in own) if i is not None}
            if not own or cfg.history_tags == "item":
                tags.update(self.featurizer.item_tags(e[0]).tolist())
            for t in tags:
                weights[t] = weights.get(t, 0.0) + complete * decay
        if not weights or not any(w > 0 for w in weights.values()):
            return None
        top = sorted(weights, key=lambda t: (-weights[t], t))[:cfg.user_tags]
        alpha = np.array([weights[t] for t in top])
        u = (alpha / alpha.sum()) @ self.tag_vectors[top]
        norm = float(np.linalg.norm(u))
        return u / norm if norm > 0 else None

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [self._answer(q) for q in queries]

    def _answer(self, q: Query) -> Answer:
        n, exclude = int(q.num_results), set(q.exclude)
        applied = self.featurizer.applied(q.item_id)  # tag -> times applied to the item in training
        if q.candidates is not None:
            asked = [t for t in dict.fromkeys(str(c) for c in q.candidates) if t not in exclude]
        else:  # every tag applied to the item in training (uncapped), then its other graph tags
            own = [*applied, *(self._tag_ids[i] for i in self.featurizer.item_tags(q.item_id).tolist())]
            asked = [t for t in dict.fromkeys(own) if t not in exclude]
        u = self.user_vector(q.history)
        if not asked and q.candidates is not None:  # every candidate excluded: nothing to rank
            return Answer([], fallback=False)
        if not asked:  # an unknown item without candidates: the most applied tags overall, flagged
            ranked = [self._tag_ids[i] for i in self._popular.tolist() if self._tag_ids[i] not in exclude]
            return Answer([(t, float(self._share[self._tag_index[t]])) for t in ranked[:n]], fallback=True)
        known = [t for t in asked if t in self._tag_index]
        unknown: list[tuple[str, float | None]] = [(t, None) for t in asked if t not in self._tag_index]
        if u is None:  # nothing to read about the user: item-tag-frequency's answer, flagged
            scored: list[tuple[str, float | None]] = sorted(
                ((t, applied.get(t, 0.0) + float(self._share[self._tag_index[t]])) for t in known),
                key=lambda x: (-(x[1] or 0.0), self._tag_index[x[0]]))
            return Answer((scored + unknown)[:n], fallback=True)
        idx = np.array([self._tag_index[t] for t in known], np.int64)
        score = self.tag_vectors[idx] @ u if len(idx) else np.zeros(0)
        if self.config.candidate_prior > 0 and len(idx):
            n_it = np.array([applied.get(t, 0.0) for t in known])
            score = score + self.config.candidate_prior * np.log1p(n_it)
        order = np.lexsort((idx, -score))
        ranked: list[tuple[str, float | None]] = [(known[i], float(score[i])) for i in order]
        return Answer((ranked + unknown)[:n])
