"""Answer next-tags queries from click counts (the exact rules are in the class docstring)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch

from recipes.base import ARTIFACT_FILES, Answer, Predictor, Query

from .configuration import SessionTagPopularityConfig
from .featurizer import SessionTagPopularityFeaturizer
from .modeling import BUFFERS, SessionTagPopularityModel

__all__ = ["SessionTagPopularityPredictor"]

_EMPTY = np.zeros(0, np.int64)


def _csr(keys: np.ndarray, size: int) -> np.ndarray:
    """Offsets of `keys` (sorted ascending) per key 0..size-1."""
    return np.searchsorted(keys, np.arange(size + 1))


class SessionTagPopularityPredictor(Predictor):
    """Next tags of a support session, per query:

    1. The session's clicks: the tags and questions of the latest `max_history` events of
       `query.history` (a campaign sends the session's stored and real-time events).
    2. Its organisation o: ``fields["organisation"]`` when the model knows it; else the one its
       clicks point to (each clicked question votes 1 for its organisation; each clicked tag splits
       one vote among the organisations holding it, in proportion to their clicks on it plus one;
       ties: the organisation with more training rows); else none, and global counts answer.
    3. Tags: with a the session's last clicked tag, c(a, b) how often b followed a in o's training
       sessions (every session without o), n(a) = sum_b c(a, b) and p(b) = o's clicks on b / o's
       tag clicks, score(b) = (c(a, b) + p(b)) / (n(a) + 1): an add-one back-off from the
       transitions to popularity (b's that followed a come first). Without a known last tag, or
       with ``transitions=False``, score(b) = p(b). Ranked: o's tags (every tag without o), or only
       `query.candidates`; the session's tags and `query.exclude` are left out; ties go by the
       tag vocabulary (most clicked overall first).
    4. Questions, ``extra["questions"]`` (``fields["num_questions"]`` of them, default 3): o's
       questions holding at least one clicked tag, by how many they hold, then by their share of
       o's question clicks: score = matches + clicks / (o's question clicks + 1); with no tag
       clicked, o's most clicked questions. Questions clicked in the session are left out.
    5. ``fallback`` is True when no click of the session is known to the model (an empty or new
       session): the answer is then o's most clicked tags (the global ones without o).

    The typed text (`query.text`) is not read.
    """

    def __init__(self, config: SessionTagPopularityConfig, featurizer: SessionTagPopularityFeaturizer,
                 model: SessionTagPopularityModel) -> None:
        self.config, self.featurizer, self.model = config, featurizer, model
        self.max_history = config.max_history
        b = {name: getattr(model, name).numpy() for name in BUFFERS}
        n_tags, n_orgs = featurizer.tags.size, featurizer.organisations.size
        org, tag = b["tag_index"]
        clicks = b["tag_clicks"]
        # Popularity: per organisation (1..O) and global (0, every tag).
        self._popular = {0: self._ranked(np.arange(1, n_tags), np.bincount(tag, clicks, n_tags)[1:])}
        for o in np.unique(org[org > 0]).tolist():
            self._popular[o] = self._ranked(tag[org == o], clicks[org == o])
        # Organisation votes of each tag: (clicks + 1) shares of the organisations holding it.
        mine = org > 0
        by_tag = np.lexsort((org[mine], tag[mine]))
        self._tag_orgs = org[mine][by_tag]
        weights = clicks[mine][by_tag] + 1.0
        tag_sorted = tag[mine][by_tag]
        self._tag_org_offsets = _csr(tag_sorted, n_tags)
        totals = np.bincount(tag_sorted, weights, n_tags)
        self._tag_org_weights = weights / np.maximum(totals[tag_sorted], 1e-12)
        # Transitions per (organisation, a), global ones under organisation 0.
        t_org, t_a, t_b = b["transition_index"]
        counts = b["transition_counts"]
        g_keys, g_inverse = np.unique(t_a * n_tags + t_b, return_inverse=True)
        g_counts = np.bincount(g_inverse.ravel(), counts, len(g_keys))
        keep = t_org > 0
        all_org = np.concatenate([t_org[keep], np.zeros(len(g_keys), np.int64)])
        all_a = np.concatenate([t_a[keep], g_keys // n_tags])
        all_b = np.concatenate([t_b[keep], g_keys % n_tags])
        all_c = np.concatenate([counts[keep], g_counts])
        order = np.lexsort((all_b, -all_c, all_a, all_org))
        self._next_b, self._next_c = all_b[order], all_c[order]
        pair = (all_org * n_tags + all_a)[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else _EMPTY
        ends = np.r_[starts[1:], len(pair)].astype(np.int64)
        self._next = {int(pair[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
        # Questions: organisation, clicks, and which hold each tag.
        self._q_org, self._q_clicks = b["question_org"], b["question_clicks"]
        per_org = np.bincount(self._q_org, self._q_clicks, n_orgs)
        self._q_total = {0: float(self._q_clicks.sum()), **{o: float(per_org[o]) for o in range(1, n_orgs)}}
        everyone = np.arange(1, featurizer.questions.size)
        self._org_questions = {0: everyone, **{o: everyone[self._q_org[1:] == o] for o in range(1, n_orgs)}}
        qt_q, qt_t = b["question_tag_index"]
        by_tag = np.lexsort((qt_q, qt_t))
        self._tag_questions = qt_q[by_tag]
        self._tag_question_offsets = _csr(qt_t[by_tag], n_tags)

    @staticmethod
    def _ranked(tags: np.ndarray, clicks: np.ndarray) -> tuple[np.ndarray, ...]:
        """(tags best first, their p, tags ascending, their p) of one organisation."""
        total = float(clicks.sum())
        p = clicks / total if total > 0 else np.zeros(len(clicks))
        best = np.lexsort((tags, -clicks))
        asc = np.argsort(tags, kind="stable")
        return tags[best], p[best], tags[asc], p[asc]

    @classmethod
    def load(cls, directory: Path) -> SessionTagPopularityPredictor:
        directory = Path(directory)
        meta = json.loads((directory / ARTIFACT_FILES["recipe"]).read_text())
        if meta.get("recipe") != "session-tag-popularity":
            raise ValueError(f"{directory} holds a {meta.get('recipe')!r} model, not session-tag-popularity")
        config = SessionTagPopularityConfig.model_validate_json(
            (directory / ARTIFACT_FILES["config"]).read_text())
        featurizer = SessionTagPopularityFeaturizer.load(directory / ARTIFACT_FILES["featurizer"])
        state = torch.load(directory / ARTIFACT_FILES["weights"], weights_only=True)
        return cls(config, featurizer, SessionTagPopularityModel(**state))

    def predict_batch(self, queries: Sequence[Query]) -> list[Answer]:
        return [self._answer(q) for q in queries]

    # --- one query ------------------------------------------------------------------------------
    def _answer(self, q: Query) -> Answer:
        f = self.featurizer
        events = list(q.history)[-self.max_history:]
        tag_idx = f.tags.indices(str(t) for e in events if len(e) > 4 and e[4] for t in e[4])
        item_idx = f.questions.indices(str(e[0]) for e in events if e[0] is not None)
        tags, items = tag_idx[tag_idx > 0], item_idx[item_idx > 0]
        org = self._organisation(q.fields.get("organisation"), tags, items)
        last = int(tag_idx[-1]) if len(tag_idx) and self.config.transitions else 0
        skip = set(tags.tolist()) | set(f.tags.indices(str(t) for t in q.exclude).tolist())
        ranked = self._tags(org, last, skip, q.candidates, set(map(str, q.exclude)), int(q.num_results))
        n_questions = int(q.fields.get("num_questions", 3) or 0)
        questions = self._questions(org, tags, items, n_questions) if n_questions > 0 else []
        return Answer(ranked, fallback=not (len(tags) or len(items)), extra={"questions": questions})

    def _organisation(self, name: object, tags: np.ndarray, items: np.ndarray) -> int:
        if name is not None and (o := self.featurizer.organisations.index(str(name))):
            return o
        votes = np.bincount(self._q_org[items], minlength=self.featurizer.organisations.size).astype(float)
        for t in tags.tolist():
            lo, hi = self._tag_org_offsets[t], self._tag_org_offsets[t + 1]
            np.add.at(votes, self._tag_orgs[lo:hi], self._tag_org_weights[lo:hi])
        votes[0] = 0.0
        return int(np.argmax(votes)) if votes.max() > 0 else 0

    def _p(self, org: int, tags: np.ndarray) -> np.ndarray:
        """p(b) of `tags` in `org` (0 for a tag it does not hold)."""
        _, _, asc, p = self._popular.get(org, self._popular[0])
        if not len(asc):
            return np.zeros(len(tags))
        pos = np.minimum(np.searchsorted(asc, tags), len(asc) - 1)
        return np.where(asc[pos] == tags, p[pos], 0.0)

    def _tags(self, org: int, last: int, skip: set[int], candidates: Sequence[str] | None,
              exclude: Collection[str], k: int) -> list[tuple[str, float | None]]:
        f = self.featurizer
        start, end = self._next.get(org * f.tags.size + last, (0, 0)) if last else (0, 0)
        succ_b, succ_c = self._next_b[start:end], self._next_c[start:end]
        denom = float(succ_c.sum()) + 1.0
        if candidates is not None:
            names = [c for c in dict.fromkeys(map(str, candidates)) if c not in exclude]
            idx = f.tags.indices(names)
            c = np.zeros(len(names))
            if len(succ_b):
                pos = {b: i for i, b in enumerate(succ_b.tolist())}
                c = np.array([succ_c[pos[i]] if i in pos else 0.0 for i in idx.tolist()])
            scores = (c + self._p(org, idx)) / denom
            rank = np.where(idx > 0, idx, f.tags.size)  # unknown tags last, by name
            order = sorted(range(len(names)), key=lambda i: (-scores[i], rank[i], names[i]))
            return [(names[i], float(scores[i])) for i in order if idx[i] not in skip or idx[i] == 0][:k]
        out: list[tuple[int, float]] = []
        if len(succ_b):
            scores = (succ_c + self._p(org, succ_b)) / denom
            order = np.lexsort((succ_b, -scores))
            out = [(b, s) for b, s in zip(succ_b[order].tolist(), scores[order].tolist()) if b not in skip]
        taken = skip | {b for b, _ in out}
        best, p, _, _ = self._popular.get(org, self._popular[0])
        head = k + len(taken)
        out += [(b, s / denom) for b, s in zip(best[:head].tolist(), p[:head].tolist()) if b not in taken]
        return [(f.tags.ids[b - 1], float(s)) for b, s in out[:k]]

    def _questions(self, org: int, tags: np.ndarray, items: np.ndarray, k: int) -> list[tuple[str, float]]:
        if len(tags):
            offsets = self._tag_question_offsets
            held = np.concatenate([self._tag_questions[offsets[t]:offsets[t + 1]]
                                   for t in np.unique(tags).tolist()])
            if org:
                held = held[self._q_org[held] == org]
            candidates, matches = np.unique(held, return_counts=True)
        else:
            candidates = self._org_questions.get(org, _EMPTY)
            matches = np.zeros(len(candidates))
        keep = ~np.isin(candidates, items)
        candidates, matches = candidates[keep], matches[keep]
        scores = matches + self._q_clicks[candidates] / (self._q_total.get(org, 0.0) + 1.0)
        best = np.lexsort((candidates, -scores))[:k]
        return [(self.featurizer.questions.ids[c - 1], float(s))
                for c, s in zip(candidates[best].tolist(), scores[best].tolist())]
