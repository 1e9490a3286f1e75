"""Intent corpora turned into simulated customer-support sessions (the IntelliTag setting).

Support sessions have no public logs, so they are simulated from an intent corpus. Every corpus is
first normalised to one table ``organisation, intent, text`` (:func:`read_intents`), from:

* ``clinc150``: ``data_full.json[.gz]`` (``train``/``val``/``test``/``oos_*`` lists of
  ``[utterance, intent]``) and ``domains.json`` (domain -> intents); out-of-scope is dropped.
* ``banking77``: ``train.csv[.gz]``/``test.csv[.gz]`` with ``text,category``; one organisation,
  ``banking``.
* ``nlu-plus-plus``: ``<domain>/fold*.json[.gz]`` lists of ``{"text", "intents": [...]}``; the
  organisation is the domain folder, the intent the sorted intent set joined by ``+``; utterances
  without an intent are dropped.
* ``csv``: any CSV file ``organisation,intent,text`` (header names case-insensitive, any order).

Then :func:`simulate_sessions` follows the IntelliTag paper (Yang et al., ICDE 2021, §III, Table II):
organisations are the paper's tenants, each intent is one representative question (RQ).

**Tag mining** (per organisation; the paper mines tags with BERT plus frequency/IDF rules, here a
transparent TF-IDF rule). Utterances are lowercased and split into words; stopwords (function
words and pleasantries) break phrases. Candidate terms of an utterance are its content words and
its pairs of adjacent content words (``credit card``). For question q and term t, support(q, t) is
the share of q's utterances holding t; t *qualifies* for q when at least ``min(2, |q|)`` utterances
and a share ``min_support`` hold it; df(t) counts the organisation's questions t qualifies for, and
score(q, t) = support(q, t) * (1 + ln((1 + |Q|) / (1 + df(t)))); a pair must appear in 3
utterances of the organisation to be a term. The question's tags are its qualifying terms by
descending score (pairs first on ties), skipping an inflection of a chosen tag (same crude stems:
rate/rates, charge/charged), a word of a chosen pair and a pair of chosen words, up to
``max_tags``; when fewer than ``min_tags`` qualify, the best remaining terms of any support fill
up to ``min_tags``, and a question with no content word at all is tagged with the words of its
intent name. The question's text is, among its utterances no longer (in words) than their median,
the one holding the most of its tags (then the shortest, then the first).

**Sessions.** An organisation is drawn in proportion to its number of questions, then a customer
of it (``sessions_per_customer`` sessions each on average). Popularity over an organisation's
questions is Zipf (weight ``1 / rank ** zipf_exponent`` over a seeded random ranking). The first
question is drawn by popularity; a session asks 1-3 questions (``questions_per_session``
probabilities), each next one drawn from an organisation-level Markov chain: every question has
``related_questions`` successors, drawn without replacement with weight popularity * (1 + shared
tags), and Dirichlet(1) transition weights over them (a sparse matrix favouring a few related
questions). For each question the customer clicks ``min(G, n_tags)`` of its tags, G geometric,
in a random order of a random subset, then clicks the question; before each tag click, with
probability ``noise``, a click on a random other tag of the organisation is inserted. G's
parameter is calibrated so tag clicks per session average ``tag_clicks_per_session`` (2.9 in
Table II) under the first question's popularity. Events are seconds apart (2-30 s), sessions start
uniformly over 30 days from ``start``.

Example:
    >>> corpus = pa.table({"organisation": ["bank"] * 4, "intent": ["pin", "pin", "card", "card"],
    ...                    "text": ["change my pin", "reset the pin code", "lost my card",
    ...                             "card stolen"]})
    >>> sim = simulate_sessions(corpus, seed=0, n_sessions=20)
    >>> sim.items.num_rows
    2
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField

__all__ = [
    "IntentFormat",
    "IntentsData",
    "SessionStats",
    "SimulatedSessions",
    "convert",
    "detect_format",
    "read_intents",
    "simulate_sessions",
]

IntentFormat = Literal["clinc150", "banking77", "nlu-plus-plus", "csv"]

_CORPUS = pa.schema([("organisation", pa.string()), ("intent", pa.string()), ("text", pa.string())])
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_START = datetime(2020, 2, 13, tzinfo=UTC)  # the paper's log window: 2020/02/13 - 03/13
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't dont down during each even ever every few for from further had hadn't has hasn't have haven't
having he he'd he'll he's her here here's hers herself him himself his how how's however i i'd i'll
i'm i've id im ive if in into is isn't it it's its itself just let let's lets may me might mine more
most much must mustn't my myself no nor not now of off on once one only or other ought our ours
ourselves out over own per please same shall shan't she she'd she'll she's should shouldn't so some
such than that that's the their theirs them themselves then there there's these they they'd they'll
they're they've this those through to too under until up upon us very via was wasn't we we'd we'll
we're we've were weren't what what's when when's where where's whether which while who who's whom
why why's will with won't would wouldn't yet you you'd you'll you're you've your yours yourself
yourselves hi hello hey thanks thank ok okay yes yeah sure want wanted wants need needs like know
tell help would could really also anyone someone something anything way able get got still
already another since ago recently earlier today yesterday tried try trying actually going go thing
things lot bit kind
""".split())
_MIN_PHRASE_COUNT = 3  # utterances of the organisation a two-word term must appear in


@dataclass
class SessionStats:
    """Measured statistics of the simulated sessions (compare with IntelliTag's Table II).

    Attributes:
        sessions: Sessions simulated.
        organisations: Organisations (tenants).
        questions: Representative questions (one per intent).
        tags: Distinct (organisation, tag) pairs.
        tags_per_question: Mean number of tags of a question.
        tag_clicks_per_session: Mean tag clicks per session, noise included (paper: 2.9).
        questions_per_session: Mean question clicks per session.
        noise_share: Share of tag clicks that are noise clicks.
    """

    sessions: int
    organisations: int
    questions: int
    tags: int
    tags_per_question: float
    tag_clicks_per_session: float
    questions_per_session: float
    noise_share: float


@dataclass
class SimulatedSessions:
    """What :func:`simulate_sessions` returns.

    Attributes:
        items: One row per question: item_id, organisation, text, tags.
        interactions: One row per click: user_id, session_id, item_id (null for a tag click),
            timestamp, event_type (``tag_click`` or ``question_click``), tags (the clicked tag;
            empty for a question click), organisation.
        stats: The simulated statistics.
    """

    items: pa.Table
    interactions: pa.Table
    stats: SessionStats


@dataclass
class IntentsData:
    """What :func:`convert` wrote.

    Attributes:
        format: The detected corpus format.
        interactions: Path of ``interactions.parquet`` (the simulated clicks).
        items: Path of ``items.parquet`` (the questions).
        schemas: The schema of each written dataset, describing exactly its columns.
        num_rows: Rows written per dataset.
        stats: The simulated statistics.
    """

    format: IntentFormat
    interactions: Path
    items: Path
    schemas: dict[DatasetKind, Schema]
    stats: SessionStats
    num_rows: dict[DatasetKind, int] = field(default_factory=dict)

    @property
    def paths(self) -> dict[DatasetKind, Path]:
        """The written Parquet files keyed by dataset kind, the questions first."""
        return {DatasetKind.ITEMS: self.items, DatasetKind.INTERACTIONS: self.interactions}


# ---- readers ----


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_json(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name} is not valid UTF-8 JSON: {e}") from None


def _folds(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("fold*.json*") if p.name.endswith((".json", ".json.gz")))


def _layout(path: Path) -> tuple[IntentFormat, Path]:
    """The format and the file or folder to read it from."""
    if path.is_file():
        name = path.name.removesuffix(".gz")
        if name.endswith(".csv"):
            return "csv", path
        if name.endswith(".json") and name.startswith("data_"):
            return "clinc150", path
        raise ValueError(f"{str(path)!r}: expected a CSV file organisation,intent,text (.csv or "
                         ".csv.gz), a clinc150 data_*.json or a folder of a published corpus")
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} does not exist; expected an intent corpus folder or CSV file")
    if (found := _find(path, "data_full.json")) is not None:
        return "clinc150", found
    if _find(path, "train.csv") or _find(path, "test.csv"):
        return "banking77", path
    if _folds(path) or any(_folds(d) for d in path.iterdir() if d.is_dir()):
        return "nlu-plus-plus", path
    raise ValueError(
        f"{str(path)!r} is not an intent corpus: expected data_full.json + domains.json "
        "(clinc150), train.csv/test.csv with text,category (banking77), <domain>/fold*.json "
        "(nlu-plus-plus), each optionally .gz, or a CSV file organisation,intent,text"
    )


def detect_format(path: str | Path) -> IntentFormat:
    """Tell which intent corpus shape `path` holds.

    Args:
        path: A clinc150 folder (or its ``data_*.json`` file), a banking77 folder, an NLU++ data
            folder (or one of its domain folders), or a CSV file ``organisation,intent,text``.

    Returns:
        ``"clinc150"``, ``"banking77"``, ``"nlu-plus-plus"`` or ``"csv"``.

    Raises:
        ValueError: If `path` is missing or none of these.
    """
    return _layout(Path(path))[0]


def _table(rows: list[tuple[str, str, str]]) -> pa.Table:
    org, intent, text = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    return pa.table([pa.array(org, pa.string()), pa.array(intent, pa.string()),
                     pa.array(text, pa.string())], schema=_CORPUS)


def _clinc(path: Path) -> pa.Table:
    domains_file = _find(path.parent, "domains.json")
    if domains_file is None:
        raise ValueError(f"{str(path.parent)!r}: clinc150 needs domains.json (domain -> intents) "
                         f"beside {path.name}")
    domains = _load_json(domains_file)
    if not isinstance(domains, dict):
        raise ValueError(f"{domains_file.name}: expected an object mapping each domain to its intents")
    domain_of = {str(i): str(d) for d, intents in domains.items() for i in intents}
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: expected an object of splits (train, val, test, oos_*)")
    rows, unknown = [], set()
    for split, pairs in data.items():
        if split.startswith("oos"):
            continue
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                raise ValueError(f"{path.name}: {split}[{i}] is {str(pair)[:60]!r}; expected "
                                 "[utterance, intent]")
            text, intent = pair
            if intent == "oos":
                continue
            if intent not in domain_of:
                unknown.add(intent)
                continue
            rows.append((domain_of[intent], intent, text))
    if unknown:
        raise ValueError(f"{path.name}: intents missing from {domains_file.name}: {sorted(unknown)[:10]}")
    return _table(rows)


def _read_csv(path: Path, columns: dict[str, tuple[str, ...]]) -> dict[str, pa.Array]:
    """The wanted columns of a CSV (header names case-insensitive), as strings."""
    with pa.input_stream(path, compression="detect") as stream:
        raw = stream.read()
    encoding = "utf8"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "latin-1"
    read = pacsv.ReadOptions(encoding=encoding)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        header = pacsv.open_csv(io.BytesIO(raw), read_options=read, parse_options=parse).schema.names
        lower = {n.strip().lower(): n for n in header}
        found = {}
        for want, spellings in columns.items():
            name = next((lower[s] for s in spellings if s in lower), None)
            if name is None:
                raise ValueError(f"{path.name}: no {want!r} column (header: {', '.join(header)}); "
                                 f"expected the columns {', '.join(columns)}")
            found[want] = name
        table = pacsv.read_csv(io.BytesIO(raw), read_options=read, parse_options=parse,
                               convert_options=pacsv.ConvertOptions(
                                   column_types={n: pa.string() for n in found.values()},
                                   include_columns=list(found.values()), strings_can_be_null=False))
    except (pa.ArrowInvalid, StopIteration) as e:
        raise ValueError(f"{path.name} is not a readable CSV file: {e}") from None
    return {want: table.column(name).combine_chunks() for want, name in found.items()}


def _banking77(folder: Path) -> pa.Table:
    parts = []
    for name in ("train.csv", "test.csv"):
        if (path := _find(folder, name)) is not None:
            cols = _read_csv(path, {"text": ("text",), "category": ("category", "intent", "label")})
            n = len(cols["text"])
            parts.append(pa.table([pa.repeat(pa.scalar("banking"), n), cols["category"], cols["text"]],
                                  schema=_CORPUS))
    return pa.concat_tables(parts)


def _nlupp(folder: Path) -> pa.Table:
    domains = [folder] if _folds(folder) else sorted(d for d in folder.iterdir() if d.is_dir() and _folds(d))
    rows = []
    for domain in domains:
        for fold in _folds(domain):
            entries = _load_json(fold)
            if not isinstance(entries, list):
                raise ValueError(f"{domain.name}/{fold.name}: expected a list of {{text, intents}}")
            for i, entry in enumerate(entries):
                if not (isinstance(entry, dict) and isinstance(entry.get("text"), str)):
                    raise ValueError(f"{domain.name}/{fold.name}: entry {i} has no text")
                intents = entry.get("intents") or []
                if intents:
                    rows.append((domain.name, "+".join(sorted({str(x) for x in intents})), entry["text"]))
    return _table(rows)


def read_intents(path: str | Path) -> pa.Table:
    """Read an intent corpus of any supported shape as ``organisation, intent, text``.

    Texts are whitespace-collapsed; rows with an empty organisation, intent or text are dropped.

    Args:
        path: See :func:`detect_format`.

    Returns:
        A table of three string columns, in the corpus' order.

    Raises:
        ValueError: If `path` is not a supported corpus or a file in it is malformed (the file
            and entry are named).
    """
    fmt, source = _layout(Path(path))
    if fmt == "clinc150":
        table = _clinc(source)
    elif fmt == "banking77":
        table = _banking77(source)
    elif fmt == "nlu-plus-plus":
        table = _nlupp(source)
    else:
        cols = _read_csv(source, {"organisation": ("organisation", "organization"),
                                  "intent": ("intent",), "text": ("text",)})
        table = pa.table([cols["organisation"], cols["intent"], cols["text"]], schema=_CORPUS)
    table = pa.table([pc.utf8_trim_whitespace(pc.replace_substring_regex(table.column(c), r"\s+", " "))
                      for c in _CORPUS.names], schema=_CORPUS)
    keep = pc.and_(pc.and_(pc.not_equal(table.column(0), ""), pc.not_equal(table.column(1), "")),
                   pc.not_equal(table.column(2), ""))
    return table.filter(keep)


# ---- tag mining ----


def _terms(text: str) -> set[str]:
    """Content words and adjacent content-word pairs of an utterance."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    out: set[str] = set()
    previous = None
    for w in words:
        if w in _STOPWORDS or len(w) < 2 or w.isdigit():
            previous = None
            continue
        out.add(w)
        if previous is not None:
            out.add(f"{previous} {w}")
        previous = w
    return out


def _stem(word: str) -> str:
    """A crude stem so that inflections (rate/rates, charge/charged, mean/meaning) match."""
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word.removesuffix("e") if len(word) > 3 else word


def _redundant(term: str, chosen: list[set[str]]) -> bool:
    """An inflection of a chosen tag, a word of a chosen pair, or a pair of chosen words."""
    stems = {_stem(w) for w in term.split()}
    if len(stems) == 1:
        return any(stems <= c for c in chosen)
    return stems <= {w for c in chosen if len(c) == 1 for w in c} or stems in chosen


def _mine(corpus: pa.Table, *, min_support: float, min_tags: int, max_tags: int
          ) -> list[tuple[str, str, str, list[str]]]:
    """(organisation, intent, text, tags) per question, in order of first appearance."""
    utterances: dict[tuple[str, str], list[str]] = defaultdict(list)
    for org, intent, text in zip(*(corpus.column(c).to_pylist() for c in _CORPUS.names), strict=True):
        utterances[(org, intent)].append(text)
    terms = {q: [_terms(t) for t in texts] for q, texts in utterances.items()}
    phrases: dict[str, Counter[str]] = defaultdict(Counter)
    for (org, _), per in terms.items():
        phrases[org].update(t for ts in per for t in ts if " " in t)
    for (org, _), per in terms.items():
        for ts in per:
            ts -= {t for t in ts if " " in t and phrases[org][t] < _MIN_PHRASE_COUNT}
    counts = {q: Counter(t for ts in per for t in ts) for q, per in terms.items()}
    qualifying: dict[tuple[str, str], dict[str, float]] = {}
    df: dict[str, Counter[str]] = defaultdict(Counter)
    n_questions: Counter[str] = Counter()
    for (org, intent), count in counts.items():
        n = len(utterances[(org, intent)])
        need = max(min(2, n), math.ceil(min_support * n))
        qualifying[(org, intent)] = {t: c / n for t, c in count.items() if c >= need}
        df[org].update(qualifying[(org, intent)])
        n_questions[org] += 1
    out = []
    for (org, intent), texts in utterances.items():
        n = len(texts)

        def score(t: str, support: float, org: str = org) -> float:
            return support * (1 + math.log((1 + n_questions[org]) / (1 + df[org][t])))

        chosen: list[str] = []
        stems: list[set[str]] = []
        def rank(kv: tuple[str, float]) -> tuple[float, int, str]:  # ties: phrases first
            return -score(*kv), -kv[0].count(" "), kv[0]

        candidates = [sorted(qualifying[(org, intent)].items(), key=rank),
                      sorted(((t, c / n) for t, c in counts[(org, intent)].items()), key=rank)]
        for limit, ranked in zip((max_tags, min_tags), candidates, strict=True):
            for t, _ in ranked:
                if len(chosen) < limit and t not in chosen and not _redundant(t, stems):
                    chosen.append(t)
                    stems.append({_stem(w) for w in t.split()})
        if not chosen:  # no content word at all: the intent's own words
            chosen = [w for w in re.split(r"[\s_+\-/]+", intent.lower()) if w][:max_tags] or [intent]
        per = terms[(org, intent)]
        lengths = [len(t.split()) for t in texts]
        short = sorted(lengths)[(n - 1) // 2]  # the median length: a representative question is short
        best = max((i for i in range(n) if lengths[i] <= short),
                   key=lambda i: (sum(t in per[i] for t in chosen), -len(texts[i]), -i))
        out.append((org, intent, texts[best], chosen))
    return out


# ---- simulation ----


def _expected_clicks(p: float, n_tags: np.ndarray, weights: np.ndarray) -> float:
    """E[min(G, m)] for G ~ Geometric(p) on 1, 2, ..., averaged over m = n_tags with `weights`."""
    per = np.where(n_tags > 0, (1 - (1 - p) ** n_tags) / p, 0.0)
    return float(per @ weights)


def _calibrate(target: float, n_tags: np.ndarray, weights: np.ndarray) -> float:
    """The geometric parameter whose expected clicks per question is `target` (clamped)."""
    lo, hi = 1e-6, 1.0
    if _expected_clicks(hi, n_tags, weights) >= target:
        return hi
    if _expected_clicks(lo, n_tags, weights) <= target:
        return lo
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _expected_clicks(mid, n_tags, weights) > target else (lo, mid)
    return (lo + hi) / 2


def simulate_sessions(
    corpus: pa.Table,
    *,
    seed: int = 0,
    n_sessions: int = 10_000,
    questions_per_session: tuple[float, ...] = (0.6, 0.3, 0.1),
    tag_clicks_per_session: float = 2.9,
    noise: float = 0.05,
    zipf_exponent: float = 1.0,
    related_questions: int = 3,
    sessions_per_customer: float = 2.0,
    min_support: float = 0.1,
    min_tags: int = 3,
    max_tags: int = 8,
    start: datetime = _START,
) -> SimulatedSessions:
    """Mine tags from an intent corpus and simulate support sessions over it (see the module doc).

    Args:
        corpus: ``organisation, intent, text`` rows, as :func:`read_intents` returns.
        seed: Seed of every random draw: the same seed and arguments give the same tables.
        n_sessions: Sessions to simulate.
        questions_per_session: Probabilities of asking 1, 2, 3, ... questions in a session.
        tag_clicks_per_session: Target mean of tag clicks per session, noise included.
        noise: Probability of a noise click (a random other tag of the organisation) before
            each tag click.
        zipf_exponent: Exponent of the Zipf popularity over an organisation's questions.
        related_questions: Successors of each question in the organisation's Markov chain.
        sessions_per_customer: Mean sessions per simulated customer.
        min_support: Share of a question's utterances a term must appear in to qualify as a tag.
        min_tags: Tags a question gets at least, when its utterances have that many terms.
        max_tags: Tags a question gets at most.
        start: Start of the 30-day window the sessions begin in.

    Returns:
        The items (questions) and interactions (clicks) tables and their statistics.

    Raises:
        ValueError: If the corpus is empty or lacks a column, or an argument is out of range.
    """
    if list(corpus.column_names[:3]) != _CORPUS.names:
        raise ValueError(f"corpus columns are {corpus.column_names}; expected {_CORPUS.names}")
    if corpus.num_rows == 0:
        raise ValueError("the corpus has no utterances")
    probs = np.asarray(questions_per_session, float)
    if n_sessions < 1 or not 0 <= noise < 1 or probs.size == 0 or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError("n_sessions must be >= 1, noise in [0, 1) and questions_per_session "
                         "non-negative probabilities")
    if tag_clicks_per_session <= 0 or min_tags < 1 or max_tags < min_tags or related_questions < 1:
        raise ValueError("tag_clicks_per_session must be > 0, 1 <= min_tags <= max_tags and "
                         "related_questions >= 1")
    probs = probs / probs.sum()
    rng = np.random.default_rng(seed)
    questions = _mine(corpus, min_support=min_support, min_tags=min_tags, max_tags=max_tags)
    orgs = list(dict.fromkeys(q[0] for q in questions))
    by_org = {o: [i for i, q in enumerate(questions) if q[0] == o] for o in orgs}
    item_ids = [f"{org}/{intent}" for org, intent, _, _ in questions]
    tags = [q[3] for q in questions]
    n_tags = np.array([len(t) for t in tags])
    vocab = {o: sorted({t for i in by_org[o] for t in tags[i]}) for o in orgs}

    org_share = np.array([len(by_org[o]) for o in orgs], float)
    org_share /= org_share.sum()
    popularity: dict[str, npt.NDArray[np.float64]] = {}
    successors: dict[int, list[int]] = {}  # question -> the questions asked after it
    transitions: dict[int, npt.NDArray[np.float64]] = {}  # question -> P(each successor)
    for o in orgs:
        members = by_org[o]
        ranks = rng.permutation(len(members)) + 1
        pop = 1.0 / ranks**zipf_exponent
        popularity[o] = pop / pop.sum()
        tag_sets = [set(tags[i]) for i in members]
        for a, i in enumerate(members):
            others = [b for b in range(len(members)) if b != a]
            if not others:
                successors[i], transitions[i] = [], np.zeros(0)
                continue
            w = np.array([popularity[o][b] * (1 + len(tag_sets[a] & tag_sets[b])) for b in others])
            k = min(related_questions, len(others))
            picked = rng.choice(len(others), size=k, replace=False, p=w / w.sum())
            successors[i] = [members[others[b]] for b in picked]
            transitions[i] = rng.dirichlet(np.ones(k))

    # Calibrate G on the first question's popularity and the mean questions per session.
    weights = np.zeros(len(questions))
    asked = 0.0
    for share, o in zip(org_share, orgs, strict=True):
        weights[by_org[o]] += share * popularity[o]
        asked += share * sum(p * min(n + 1, len(by_org[o])) for n, p in enumerate(probs))
    noisy = 1 + noise * sum(share for share, o in zip(org_share, orgs, strict=True) if len(vocab[o]) > 1)
    p_stop = _calibrate(tag_clicks_per_session / (asked * noisy), n_tags, weights)

    expected = n_sessions * org_share
    customers = {o: max(1, round(expected[j] / sessions_per_customer)) for j, o in enumerate(orgs)}
    starts_ms = int(start.timestamp() * 1000) + (np.sort(rng.uniform(0, 30 * 86_400, n_sessions)) * 1000)
    org_of = rng.choice(len(orgs), size=n_sessions, p=org_share)
    asks = 1 + rng.choice(len(probs), size=n_sessions, p=probs)
    py = random.Random(int(rng.integers(2**63)))  # per-click draws: far cheaper than numpy's per call
    popular = {o: np.cumsum(popularity[o]).tolist() for o in orgs}
    onward = {i: np.cumsum(w).tolist() for i, w in transitions.items()}
    log_continue = math.log(1 - p_stop) if p_stop < 1 else None
    # One entry per click: session index, question index (-1: a tag click), tag, time, noise.
    e_session: list[int] = []
    e_question: list[int] = []
    e_tag: list[str] = []
    e_time: list[int] = []
    users: list[str] = []
    noise_clicks = 0
    for s in range(n_sessions):
        o = orgs[org_of[s]]
        users.append(f"{o}/customer-{py.randrange(customers[o])}")
        t = int(starts_ms[s])
        q = py.choices(by_org[o], cum_weights=popular[o])[0]
        for ask in range(asks[s]):
            if ask:
                if not successors[q]:
                    break
                q = py.choices(successors[q], cum_weights=onward[q])[0]
            own = tags[q]
            g = 1 if log_continue is None else 1 + int(math.log(1.0 - py.random()) / log_continue)
            clicks = []
            for value in py.sample(own, min(g, len(own))):
                if noise and len(vocab[o]) > len(own) and py.random() < noise:
                    while (other := py.choice(vocab[o])) in own:
                        pass
                    clicks.append(other)
                    noise_clicks += 1
                clicks.append(value)
            for value in clicks:
                t += py.randint(2, 30) * 1000
                e_session.append(s)
                e_question.append(-1)
                e_tag.append(value)
                e_time.append(t)
            t += py.randint(2, 30) * 1000
            e_session.append(s)
            e_question.append(q)
            e_time.append(t)

    session_of = pa.array(e_session, pa.int64())
    question = np.asarray(e_question, np.int64)
    is_tag = question < 0
    tag_offsets = np.concatenate([[0], np.cumsum(is_tag)])
    width = len(str(n_sessions - 1))
    interactions = pa.table({
        "user_id": pa.array(users, pa.string()).take(session_of),
        "session_id": pa.array([f"session-{s:0{width}d}" for s in range(n_sessions)]).take(session_of),
        "item_id": pa.array(item_ids, pa.string()).take(pa.array(question, mask=is_tag)),
        "timestamp": pa.array(e_time, pa.int64()).cast(_TIMESTAMP),
        "event_type": pa.array(np.where(is_tag, "tag_click", "question_click").tolist(), pa.string()),
        "tags": pa.ListArray.from_arrays(pa.array(tag_offsets, pa.int32()), pa.array(e_tag, pa.string())),
        "organisation": pa.array(orgs, pa.string()).take(pa.array(org_of)).take(session_of),
    })  # fmt: skip
    tag_clicks, question_clicks = int(is_tag.sum()), int((~is_tag).sum())
    items = pa.table({
        "item_id": pa.array(item_ids, pa.string()),
        "organisation": pa.array([q[0] for q in questions], pa.string()),
        "text": pa.array([q[2] for q in questions], pa.string()),
        "tags": pa.array(tags, pa.list_(pa.string())),
    })  # fmt: skip
    stats = SessionStats(
        sessions=n_sessions,
        organisations=len(orgs),
        questions=len(questions),
        tags=sum(len(v) for v in vocab.values()),
        tags_per_question=float(n_tags.mean()),
        tag_clicks_per_session=tag_clicks / n_sessions,
        questions_per_session=question_clicks / n_sessions,
        noise_share=noise_clicks / tag_clicks if tag_clicks else 0.0,
    )
    return SimulatedSessions(items=items, interactions=interactions, stats=stats)


def _schemas() -> dict[DatasetKind, Schema]:
    def f(name: str, type_: FieldType, role: Role | None = None, nullable: bool = False) -> SchemaField:
        return SchemaField(name=name, type=type_, role=role, nullable=nullable)

    return {
        DatasetKind.INTERACTIONS: Schema(fields=[
            f("user_id", FieldType.STRING, Role.USER_ID),
            f("session_id", FieldType.STRING, Role.SESSION_ID),
            # Null on tag clicks (the click names a tag, not a question): a nullable ITEM_ID next
            # to TAGS; every row carries an item or a tag.
            f("item_id", FieldType.STRING, Role.ITEM_ID, nullable=True),
            f("timestamp", FieldType.TIMESTAMP, Role.TIMESTAMP),
            # Nullable so real-time events fit the dataset (events.put: a tag click is
            # {"tags": [...]}, a question click {"item_id": ...}): they carry no organisation
            # and may carry no event type.
            f("event_type", FieldType.STRING, Role.EVENT_TYPE, nullable=True),
            f("tags", FieldType.CATEGORICAL, Role.TAGS, nullable=True),
            f("organisation", FieldType.STRING, nullable=True),
        ]),
        DatasetKind.ITEMS: Schema(fields=[
            f("item_id", FieldType.STRING, Role.ITEM_ID),
            f("organisation", FieldType.STRING),
            f("text", FieldType.TEXT),
            f("tags", FieldType.CATEGORICAL, Role.TAGS),
        ]),
    }  # fmt: skip


def convert(path: str | Path, out_dir: str | Path, *, n_sessions: int = 10_000, seed: int = 0,
            **options: Any) -> IntentsData:
    """Read an intent corpus, simulate sessions over it and write them as Parquet datasets.

    Writes ``items.parquet`` (the questions) and ``interactions.parquet`` (the clicks); see
    :func:`simulate_sessions` for their columns.

    Args:
        path: The corpus (see :func:`detect_format`).
        out_dir: Output folder, created if missing; existing files are overwritten.
        n_sessions: Sessions to simulate.
        seed: Seed of the simulation.
        **options: Further keyword arguments of :func:`simulate_sessions`.

    Returns:
        The written paths, their schemas, row counts and the simulated statistics.

    Raises:
        ValueError: If `path` is not a supported corpus, or holds no utterance.
    """
    fmt = detect_format(path)
    corpus = read_intents(path)
    if corpus.num_rows == 0:
        raise ValueError(f"{str(path)!r}: the {fmt} corpus holds no utterance with an intent")
    sim = simulate_sessions(corpus, seed=seed, n_sessions=n_sessions, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(sim.interactions, out / "interactions.parquet")
    pq.write_table(sim.items, out / "items.parquet")
    return IntentsData(
        format=fmt,
        interactions=out / "interactions.parquet",
        items=out / "items.parquet",
        schemas=_schemas(),
        stats=sim.stats,
        num_rows={DatasetKind.INTERACTIONS: sim.interactions.num_rows,
                  DatasetKind.ITEMS: sim.items.num_rows},
    )
