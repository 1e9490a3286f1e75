"""The GraphTR heterogeneous graph: nodes, edges, node features, neighbour sampling, loss pairs.

Follows Liu et al., "Graph Neural Network for Tag Ranking in Tag-enhanced Video Recommendation"
(CIKM'20). Pure numpy + pyarrow (it runs in the featurizer); the model (HFIN) consumes its arrays.

* §3.2 (network construction). Node types, in this order (the fields of §3.3.1): ``item`` (the
  paper's video), ``tag``, ``creator`` (its media: the values of the items field
  `GraphConfig.creator_field`, e.g. directors; none when the field is absent) and ``user``: user
  groups (the paper clusters users by gender-age-location: here one group per distinct tuple of the
  users table's categorical fields), or the users themselves, or none (`GraphConfig.user_nodes`).
  Global node ids are ``0..N-1`` with one contiguous range per type (`HeteroGraph.offsets`); each
  type's vocabulary is its sorted id strings, so a build does not depend on row order. An unknown id
  is no node (-1). Five undirected, deduplicated, unweighted edge types: item–item (consecutive
  items of a user's, or a session's, time ordered history; repeats of one item make no self-loop),
  item–user (the group/user had at least `min_group_item` events on the item within one
  `group_window_days` window, paper: 3 a week; users: `min_user_item` over the whole snapshot),
  item–tag (the item's candidate tags: those applied to it in training plus the items table's
  TAGS), item–creator, and tag–tag (two tags on one item; among each item's `tag_pair_limit` most
  applied tags, which bounds the quadratic pairs). Only "valid" events make item–item and item–user
  edges (the paper's >30 % watches): `behaviour_event_types` and `min_event_value` select them.
* Storage: CSR over all nodes (``indptr`` int64, ``indices`` int32, int64 past 2**31 nodes), each row
  sorted by neighbour id, hence grouped by neighbour type: ``field_ptr[v, f]:field_ptr[v, f + 1]``
  is node v's field-f neighbours. Memory cap: at most `max_degree` neighbours are kept per node and
  field, those whose edge was seen most (events on the pair, tag applications, shared items), ties
  to the higher degree, then the lower id. The cap truncates each node's own list, so past it
  ``u in N(v)`` no longer implies ``v in N(u)``; ``degree`` and ``edge_counts`` are the uncapped ones.
* §3.3.1 (heterogeneous feature layer). Per field f the top-``d_f`` nodes of that type by degree
  (ties: lower id) are the field's indicator dimensions; ``features[f]`` is an (N, w_f) int32 array
  of the positions 1..d_f (0 = padding) of each node's stored field-f neighbours that are among
  them, most frequent first, w_f = the most any node has (at least 1). This is the fixed indicator
  projection P_f as EmbeddingBag input (``padding_idx=0``, a table of ``d_f + 1`` rows): the summed
  one-hot of the paper. A field without nodes (no creators) is all padding.
* §5.3 (settings). Neighbours are drawn uniformly with replacement from a node's stored list, 30 then
  20 for the two hops (`fanout1`, `fanout2`); a node without neighbours gets itself (its one-node
  neighbourhood), so shapes stay fixed. Sampling reads the CSR directly (row start plus a uniform
  offset below the degree): a padded adjacency without its N x max_degree copy. A two-hop sample
  (`TwoHopSample`) draws k1 neighbours of each target and k2 neighbours of every centre: the target
  itself (its own layer-1 representation h_t, §3.3.3) and each of its k1 neighbours.
* §3.4 (neighbour-similarity loss, eq. 14). Positive pairs are the stored adjacency entries (each
  undirected edge as (u, v) and (v, u): the loss sums over every node's neighbours), shuffled per
  epoch from ``(seed, epoch)`` and dealt to `world_size` ranks in equal shares (the last
  ``E % world_size`` of the shuffle dropped, or wrapped with ``drop_last=False``). `negatives` (paper:
  20) negatives per pair are drawn from all nodes, uniformly or by degree**0.75 (word2vec's
  unigram^0.75; isolated nodes never); with `reject_neighbours` a draw equal to the pair's node or
  one of its stored neighbours is redrawn (vectorised, up to 32 rounds; a node adjacent to almost
  everything may keep one). `HeteroGraph.loss_batch` turns pairs into a `LossBatch`: the distinct
  nodes of the pairs and negatives, sampled, each encoded once, and the pairs as positions.
* §4.1: embeddings are fixed after training, so the graph takes no new events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.common import column_for, tag_lists
from sdk.types import DatasetKind, FieldType, Role, Schema

__all__ = ["EDGE_TYPES", "NODE_TYPES", "GraphColumns", "GraphConfig", "HeteroGraph", "LossBatch",
           "TwoHopSample"]

NODE_TYPES = ("item", "tag", "creator", "user")
EDGE_TYPES = ("item-item", "item-user", "item-tag", "item-creator", "tag-tag")
_ENDS = {"item-item": (0, 0), "item-user": (0, 3), "item-tag": (0, 1), "item-creator": (0, 2),
         "tag-tag": (1, 1)}  # edge type -> the field of each end
_REJECT_ROUNDS = 32
_VERSION = 1


@dataclass(frozen=True)
class GraphConfig:
    """How the graph is built, featurized and sampled (defaults: the paper's where it has one).

    Attributes:
        creator_field: Items field whose values are the creator nodes (``None`` or absent: none).
        user_nodes: ``"groups"`` (one node per distinct tuple of the users' categorical fields),
            ``"users"``, ``"none"``, or ``"auto"``: groups when the users table has such fields,
            else users.
        item_sequence: Item–item edges along ``"session"`` or ``"user"`` histories; ``"auto"``:
            sessions when there is a SESSION_ID column (rows without one follow their user).
        behaviour_event_types: Only events of these types make item–item and item–user edges
            (``None``: all).
        min_event_value: Only events with at least this EVENT_VALUE (or none) make them (the
            paper's valid watches: 0.3 of a completion ratio).
        min_user_item: Events a user needs on an item for an item–user edge (users mode).
        min_group_item: Events a group needs on an item within one window (groups mode; paper 3).
        group_window_days: The window of `min_group_item` (paper 7; ``None``: the whole snapshot).
        tag_pair_limit: Tag–tag edges join only an item's this many most applied tags.
        max_degree: Neighbours kept per node and field (most seen first).
        item_features: d_item, indicator dimensions of the item field (paper 300).
        tag_features: d_tag (paper 150).
        creator_features: d_creator (paper 150).
        user_features: d_user (paper 150).
        fanout1: Neighbours sampled at the first hop (paper 30).
        fanout2: Neighbours sampled per first-hop node at the second hop (paper 20).
        negatives: Negative nodes per positive pair (paper 20).
        negative_sampling: ``"degree"`` (probability ∝ degree**0.75) or ``"uniform"``.
        reject_neighbours: Redraw negatives that are the node itself or its neighbour.
        seed: Seeds the per-epoch shuffle of the positive pairs.
    """

    creator_field: str | None = "creators"
    user_nodes: Literal["auto", "groups", "users", "none"] = "auto"
    item_sequence: Literal["auto", "session", "user"] = "auto"
    behaviour_event_types: tuple[str, ...] | None = None
    min_event_value: float | None = None
    min_user_item: int = 1
    min_group_item: int = 3
    group_window_days: float | None = 7.0
    tag_pair_limit: int = 50
    max_degree: int = 1000
    item_features: int = 100
    tag_features: int = 50
    creator_features: int = 50
    user_features: int = 50
    fanout1: int = 30
    fanout2: int = 20
    negatives: int = 20
    negative_sampling: Literal["degree", "uniform"] = "degree"
    reject_neighbours: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.behaviour_event_types is not None:
            types = tuple(str(t) for t in self.behaviour_event_types)
            object.__setattr__(self, "behaviour_event_types", types)
        choices = {"user_nodes": ("auto", "groups", "users", "none"),
                   "item_sequence": ("auto", "session", "user"), "negative_sampling": ("degree", "uniform")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GraphConfig.{name} must be one of {allowed}, not {getattr(self, name)!r}")
        for name in ("min_user_item", "min_group_item", "tag_pair_limit", "max_degree", "item_features",
                     "tag_features", "creator_features", "user_features", "fanout1", "fanout2"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GraphConfig.{name} must be at least 1, not {getattr(self, name)!r}")
        if self.negatives < 0:
            raise ValueError(f"GraphConfig.negatives must be at least 0, not {self.negatives!r}")
        if self.group_window_days is not None and not self.group_window_days > 0:
            raise ValueError(f"GraphConfig.group_window_days must be positive or None, not "
                             f"{self.group_window_days!r}")

    @classmethod
    def from_object(cls, obj: Any) -> GraphConfig:
        """The fields of `obj` (e.g. the recipe's config) that share a name with this class's, and
        the aliases ``field_dims`` (d: the item field 2d, the others d, as the paper's 300/150),
        ``first_samples`` and ``second_samples`` (fanout1, fanout2); a same-named field wins."""
        values: dict[str, Any] = {}
        if getattr(obj, "field_dims", None) is not None:
            d = int(obj.field_dims)
            values.update(item_features=2 * d, tag_features=d, creator_features=d, user_features=d)
        for alias, name in (("first_samples", "fanout1"), ("second_samples", "fanout2")):
            if getattr(obj, alias, None) is not None:
                values[name] = getattr(obj, alias)
        values.update({f.name: getattr(obj, f.name) for f in fields(cls) if hasattr(obj, f.name)})
        return cls(**values)

    @property
    def feature_sizes(self) -> tuple[int, int, int, int]:
        """d_f per field, in `NODE_TYPES` order."""
        return self.item_features, self.tag_features, self.creator_features, self.user_features


@dataclass(frozen=True)
class GraphColumns:
    """Column names of the three tables (a column absent from its table counts as not given).

    Attributes:
        user_id, item_id, timestamp, tags, session_id, event_type, event_value: Interactions
            columns (ITEM_ID may be null: a tag click; TAGS list<string> or string).
        items_id, items_tags: The items table's ITEM_ID and TAGS columns.
        users_id: The users table's USER_ID column.
        user_fields: The users fields whose value tuples are the user groups (a list: its first
            value; anything else: its string).
    """

    user_id: str | None = "user_id"
    item_id: str = "item_id"
    timestamp: str | None = "timestamp"
    tags: str | None = "tags"
    session_id: str | None = None
    event_type: str | None = None
    event_value: str | None = None
    items_id: str = "item_id"
    items_tags: str | None = None
    users_id: str = "user_id"
    user_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_fields", tuple(self.user_fields))

    @classmethod
    def from_schemas(cls, schemas: Mapping[DatasetKind, Schema]) -> GraphColumns:
        """From the datasets' roles; user fields are the users' categorical fields without a role
        (numbers such as an age are not: bucket them into a categorical field first)."""
        inter = DatasetKind.INTERACTIONS
        users = schemas.get(DatasetKind.USERS)
        group_fields = () if users is None else \
            tuple(f.name for f in users.fields if f.role is None and f.type == FieldType.CATEGORICAL)
        return cls(
            user_id=column_for(schemas, inter, Role.USER_ID),
            item_id=column_for(schemas, inter, Role.ITEM_ID) or "item_id",
            timestamp=column_for(schemas, inter, Role.TIMESTAMP),
            tags=column_for(schemas, inter, Role.TAGS),
            session_id=column_for(schemas, inter, Role.SESSION_ID),
            event_type=column_for(schemas, inter, Role.EVENT_TYPE),
            event_value=column_for(schemas, inter, Role.EVENT_VALUE),
            items_id=column_for(schemas, DatasetKind.ITEMS, Role.ITEM_ID) or "item_id",
            items_tags=column_for(schemas, DatasetKind.ITEMS, Role.TAGS),
            users_id=column_for(schemas, DatasetKind.USERS, Role.USER_ID) or "user_id",
            user_fields=group_fields,
        )


@dataclass(frozen=True)
class TwoHopSample:
    """Global node ids of a batch's two-hop neighbourhoods (HFIN's two aggregation layers).

    Attributes:
        nodes: (B,) the target nodes.
        hop1: (B, k1) their sampled neighbours (layer 2 aggregates them with the target).
        hop2: (B, 1 + k1, k2) sampled neighbours of each centre: row 0 of the target itself (for
            its own layer-1 h_t), row 1 + j of ``hop1[:, j]`` (layer 1 aggregates them).
    """

    nodes: np.ndarray
    hop1: np.ndarray
    hop2: np.ndarray


@dataclass(frozen=True)
class LossBatch:
    """A batch of eq. 14: the distinct nodes of its pairs and negatives with their two-hop samples
    (as in `TwoHopSample`), and the pairs as positions in ``nodes``.

    Attributes:
        nodes: (U,) the distinct nodes, ascending.
        hop1: (U, k1) their sampled neighbours.
        hop2: (U, 1 + k1, k2) sampled neighbours of each centre (row 0: the node itself).
        anchor: (P,) position in ``nodes`` of each pair's node.
        positive: (P,) position of its neighbour.
        negatives: (P, J) positions of its negatives.
    """

    nodes: np.ndarray
    hop1: np.ndarray
    hop2: np.ndarray
    anchor: np.ndarray
    positive: np.ndarray
    negatives: np.ndarray


# --- Arrow helpers ---------------------------------------------------------------------------------
def _column(table: pa.Table | None, name: str | None) -> pa.Array | None:
    if table is None or name is None or name not in table.column_names:
        return None
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _strings(arr: pa.Array) -> pa.Array:
    """As strings, with empty strings null."""
    s = arr.cast(pa.string())
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _lists(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row of each value, the non-empty values) of a list<string> or string column."""
    lists = tag_lists(arr)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(lists)
    keep = pc.and_(pc.is_valid(values), pc.not_equal(pc.fill_null(values, ""), ""))
    keep_np = keep.to_numpy(zero_copy_only=False)
    return rows[keep_np], values.filter(keep)


def _vocab(parts: Sequence[pa.Array]) -> pa.Array:
    """The sorted distinct non-null values."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return pa.array([], pa.string())
    values = pc.unique(pc.drop_null(pa.concat_arrays([p.cast(pa.string()) for p in parts])))
    return values.take(pc.sort_indices(values))


def _encode(values: pa.Array, vocab: pa.Array) -> np.ndarray:
    """Index of each value in `vocab` (-1: null or unknown)."""
    if len(values) == 0 or len(vocab) == 0:
        return np.full(len(values), -1, np.int64)
    found = pc.index_in(values.cast(pa.string()), value_set=vocab)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _millis(arr: pa.Array | None, n: int) -> np.ndarray:
    """Epoch milliseconds (numbers are read as seconds; null or no column: 0)."""
    if arr is None:
        return np.zeros(n, np.int64)
    if pa.types.is_timestamp(arr.type):
        ms = arr.cast(pa.timestamp("ms", tz=arr.type.tz)).cast(pa.int64())
    else:
        ms = pc.multiply(arr.cast(pa.float64()), 1000.0).cast(pa.int64(), safe=False)
    return pc.fill_null(ms, 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _codes(arr: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dense codes of a column's values (-1: null) and the value of each code."""
    enc = pc.dictionary_encode(arr.cast(pa.string()))
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary.to_pylist()


def _first_values(arr: pa.Array) -> pa.Array:
    """A users field as one string per row: a list's first non-empty value, else the value."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return _strings(arr)
    rows, values = _lists(arr)
    firsts, at = np.unique(rows, return_index=True)
    out = np.full(len(arr), -1, np.int64)
    out[firsts] = at
    return values.take(pa.array(out, mask=out < 0))


def _pair_counts(a: np.ndarray, b: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs (b < width) and how often each occurs."""
    keys, counts = np.unique(a * width + b, return_counts=True)
    return keys // width, keys % width, counts.astype(np.int64)


# --- the graph -------------------------------------------------------------------------------------
class HeteroGraph:
    """Item/tag/creator/user graph in CSR, its node features and samplers (module docstring).

    Attributes:
        config: The `GraphConfig` it was built with.
        columns: The `GraphColumns` it was built from.
        vocab: Per node type, its id strings (local index i is global node ``offsets[t] + i``).
        offsets: (5,) int64; type t's nodes are ``offsets[t]:offsets[t + 1]``.
        indptr: (N + 1,) int64 CSR row pointers; ``indices`` (E,) neighbour ids, sorted per row.
        field_ptr: (N, 5) int64; node v's field-f neighbours are ``indices[field_ptr[v, f]:
            field_ptr[v, f + 1]]``.
        degree: (N,) int64 distinct neighbours before the `max_degree` cap (the frequency).
        top: Per field, (<= d_f,) global ids of its top nodes by degree (feature position p is
            ``top[f][p - 1]``).
        features: Per field, (N, w_f) int32 feature positions (0 = padding).
        meta: What the build resolved: edge counts per type, user node mode, item sequences,
            creator field and user group fields.
    """

    def __init__(self, *, config: GraphConfig, columns: GraphColumns, vocab: Mapping[str, Sequence[str]],
                 indptr: np.ndarray, indices: np.ndarray, degree: np.ndarray, meta: Mapping[str, Any]
                 ) -> None:
        self.config, self.columns = config, columns
        self.vocab = {t: list(vocab.get(t, ())) for t in NODE_TYPES}
        sizes = [len(self.vocab[t]) for t in NODE_TYPES]
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        self.indptr = np.asarray(indptr, np.int64)
        self.indices = np.asarray(indices)
        self.degree = np.asarray(degree, np.int64)
        self.meta = dict(meta)
        n = self.num_nodes
        if self.indptr.shape != (n + 1,) or self.degree.shape != (n,) or self.indptr[-1] != len(self.indices):
            raise ValueError(f"inconsistent graph arrays for {n} nodes: indptr {self.indptr.shape}, "
                             f"indices {self.indices.shape}, degree {self.degree.shape}")
        self._lookup: dict[str, pa.Array] = {}
        self._cdf: np.ndarray | None = None
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        field = self.type_of(self.indices)
        per_field = np.bincount(rows * 4 + field, minlength=n * 4).reshape(n, 4)
        self.field_ptr = self.indptr[:-1, None] + np.concatenate(
            (np.zeros((n, 1), np.int64), np.cumsum(per_field, axis=1)), axis=1)
        self.top, self.features = self._features(rows, field)

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, interactions: pa.Table, items: pa.Table | None = None, users: pa.Table | None = None, *,
              columns: GraphColumns | None = None, config: GraphConfig | None = None) -> HeteroGraph:
        """Build the graph of a training snapshot (§3.2; see the module docstring).

        Args:
            interactions: USER_ID, ITEM_ID (null: a tag click), TIMESTAMP, TAGS, maybe
                SESSION_ID, EVENT_TYPE, EVENT_VALUE (names in `columns`).
            items: Optional ITEM_ID, TAGS and the creator field.
            users: Optional USER_ID and the group fields.
            columns: Column names (default `GraphColumns()`; see `GraphColumns.from_schemas`).
            config: Build settings (default `GraphConfig()`).

        Returns:
            The graph.

        Raises:
            ValueError: If a needed column is missing, or ``user_nodes="groups"`` without a users
                table holding one of the group fields.
        """
        cfg, cols = config or GraphConfig(), columns or GraphColumns()
        n = interactions.num_rows
        item_col = _column(interactions, cols.item_id)
        if item_col is None:
            raise ValueError(f"the GraphTR graph needs the interactions' ITEM_ID column {cols.item_id!r}; "
                             f"the table has {interactions.column_names}")
        item_str = _strings(item_col)
        items_id = _column(items, cols.items_id)
        if items is not None and items_id is None:
            raise ValueError(f"the items table lacks its ITEM_ID column {cols.items_id!r}; it has "
                             f"{items.column_names}")
        items_str = _strings(items_id) if items_id is not None else None

        # Vocabularies.
        item_vocab = _vocab([item_str, items_str])
        tag_col = _column(interactions, cols.tags)
        tag_rows, tag_vals = _lists(tag_col) if tag_col is not None else (np.zeros(0, np.int64), None)
        items_tag_col = _column(items, cols.items_tags)
        itag_rows, itag_vals = _lists(items_tag_col) if items_tag_col is not None else (np.zeros(0, np.int64),
                                                                                       None)
        tag_vocab = _vocab([tag_vals, itag_vals])
        creator_field = cfg.creator_field if _column(items, cfg.creator_field) is not None else None
        creator_rows, creator_vals = _lists(_column(items, creator_field)) if creator_field else \
            (np.zeros(0, np.int64), None)
        creator_vocab = _vocab([creator_vals])
        mode, group_fields = cls._user_mode(cfg, cols, users)
        user_str = _strings(_column(interactions, cols.user_id)) if _column(interactions, cols.user_id) \
            is not None else pa.nulls(n, pa.string())
        if mode == "users":
            user_vocab = _vocab([user_str])
            user_of_row = _encode(user_str, user_vocab)
        elif mode == "groups":
            user_vocab, user_of_row = cls._groups(users, cols, group_fields, user_str)
        else:
            user_vocab, user_of_row = pa.array([], pa.string()), np.full(n, -1, np.int64)
        sizes = [len(item_vocab), len(tag_vocab), len(creator_vocab), len(user_vocab)]
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        num_nodes = int(offsets[-1])
        item_of_row = _encode(item_str, item_vocab)

        edges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        behaviour = cls._behaviour(interactions, cols, cfg) & (item_of_row >= 0)

        # item–item: consecutive items of a history.
        session_col = _column(interactions, cols.session_id)
        sequence = cfg.item_sequence
        if sequence == "auto":
            sequence = "session" if session_col is not None else "user"
        if sequence == "session" and session_col is None:
            raise ValueError(f"item_sequence='session' needs the interactions' SESSION_ID column "
                             f"{cols.session_id!r}")
        user_codes = _codes(user_str)[0]
        if sequence == "session":
            session_codes = _codes(session_col)[0]
            key = np.where(session_codes >= 0, session_codes, session_codes.max(initial=-1) + 1 + user_codes)
            key = np.where((session_codes < 0) & (user_codes < 0), -1, key)
        else:
            key = user_codes
        ts = _millis(_column(interactions, cols.timestamp), n)
        rows = np.flatnonzero(behaviour & (key >= 0))
        rows = rows[np.lexsort((rows, ts[rows], key[rows]))]
        same = key[rows[1:]] == key[rows[:-1]]
        a, b = item_of_row[rows[:-1]][same], item_of_row[rows[1:]][same]
        edges["item-item"] = (a, b, np.ones(len(a), np.int64))

        # item–user(group).
        rows = np.flatnonzero(behaviour & (user_of_row >= 0))
        u, i = user_of_row[rows], item_of_row[rows]
        width = max(sizes[0], 1)
        if mode == "groups" and cfg.group_window_days is not None and len(rows):
            _, window = np.unique(ts[rows] // int(cfg.group_window_days * 86_400_000), return_inverse=True)
            windows = int(window.max(initial=-1)) + 1
            keys, counts = np.unique((u * width + i) * windows + window, return_counts=True)
            pair = keys // windows
            starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
            best, total = np.maximum.reduceat(counts, starts), np.add.reduceat(counts, starts)
            pair = pair[starts]
            keep = best >= cfg.min_group_item
            pu, pi, pc_ = pair[keep] // width, pair[keep] % width, total[keep]
        else:
            pu, pi, pc_ = _pair_counts(u, i, width)
            keep = pc_ >= (cfg.min_group_item if mode == "groups" else cfg.min_user_item)
            pu, pi, pc_ = pu[keep], pi[keep], pc_[keep]
        edges["item-user"] = (pi, pu, pc_)

        # item–tag: tags applied to the item in training, plus the items table's.
        it_item = [item_of_row[tag_rows]] if tag_vals is not None else []
        it_tag = [_encode(tag_vals, tag_vocab)] if tag_vals is not None else []
        if itag_vals is not None:
            it_item.append(_encode(items_str, item_vocab)[itag_rows])
            it_tag.append(_encode(itag_vals, tag_vocab))
        if it_item:
            ii, tt = np.concatenate(it_item), np.concatenate(it_tag)
            ok = (ii >= 0) & (tt >= 0)
            edges["item-tag"] = _pair_counts(ii[ok], tt[ok], max(sizes[1], 1))
        else:
            edges["item-tag"] = (np.zeros(0, np.int64),) * 3

        # item–creator.
        if creator_vals is not None:
            ci, cc = _encode(items_str, item_vocab)[creator_rows], _encode(creator_vals, creator_vocab)
            ok = (ci >= 0) & (cc >= 0)
            edges["item-creator"] = _pair_counts(ci[ok], cc[ok], max(sizes[2], 1))
        else:
            edges["item-creator"] = (np.zeros(0, np.int64),) * 3

        # tag–tag: pairs of an item's most applied tags.
        edges["tag-tag"] = cls._tag_pairs(*edges["item-tag"], sizes[1], cfg.tag_pair_limit)

        # Global ids, canonical undirected pairs, deduplicated.
        src, dst, cnt = [], [], []
        edge_counts = {}
        for name in EDGE_TYPES:
            a, b, c = edges[name]
            ta, tb = _ENDS[name]
            a, b = a.astype(np.int64) + offsets[ta], b.astype(np.int64) + offsets[tb]
            if ta == tb:
                a, b = np.minimum(a, b), np.maximum(a, b)
                keep = a != b
                a, b, c = a[keep], b[keep], c[keep]
                keys, inverse = np.unique(a * max(num_nodes, 1) + b, return_inverse=True)
                c = np.bincount(inverse, weights=c, minlength=len(keys)).astype(np.int64)
                a, b = keys // max(num_nodes, 1), keys % max(num_nodes, 1)
            edge_counts[name] = len(a)
            src.append(a)
            dst.append(b)
            cnt.append(c)
        a, b, c = np.concatenate(src), np.concatenate(dst), np.concatenate(cnt)
        degree = np.bincount(a, minlength=num_nodes) + np.bincount(b, minlength=num_nodes)
        rows, cols_, counts = np.concatenate((a, b)), np.concatenate((b, a)), np.concatenate((c, c))
        rows, cols_ = cls._cap(rows, cols_, counts, degree, offsets, cfg.max_degree)
        order = np.argsort(rows * max(num_nodes, 1) + cols_, kind="stable")
        rows, cols_ = rows[order], cols_[order]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=num_nodes)))).astype(np.int64)
        dtype = np.int32 if num_nodes < 2**31 else np.int64
        vocab = {"item": item_vocab, "tag": tag_vocab, "creator": creator_vocab, "user": user_vocab}
        meta = {"edge_counts": edge_counts, "user_nodes": mode, "item_sequence": sequence,
                "creator_field": creator_field, "user_fields": list(group_fields)}
        return cls(config=cfg, columns=cols, vocab={t: v.to_pylist() for t, v in vocab.items()},
                   indptr=indptr, indices=cols_.astype(dtype), degree=degree, meta=meta)

    @staticmethod
    def _user_mode(cfg: GraphConfig, cols: GraphColumns, users: pa.Table | None
                   ) -> tuple[str, tuple[str, ...]]:
        present = tuple(f for f in cols.user_fields if _column(users, f) is not None) \
            if _column(users, cols.users_id) is not None else ()
        if cfg.user_nodes == "groups" and not present:
            raise ValueError(f"user_nodes='groups' needs a users table with its USER_ID column "
                             f"{cols.users_id!r} and one of the group fields {list(cols.user_fields)}")
        if cfg.user_nodes == "auto":
            return ("groups", present) if present else ("users", ())
        return cfg.user_nodes, present if cfg.user_nodes == "groups" else ()

    @staticmethod
    def _behaviour(interactions: pa.Table, cols: GraphColumns, cfg: GraphConfig) -> np.ndarray:
        """The rows that count as valid behaviour (item–item and item–user edges)."""
        keep = np.ones(interactions.num_rows, bool)
        types = _column(interactions, cols.event_type)
        if cfg.behaviour_event_types is not None and types is not None:
            wanted = pa.array(cfg.behaviour_event_types, pa.string())
            hit = pc.is_in(types.cast(pa.string()), value_set=wanted)
            keep &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
        values = _column(interactions, cols.event_value)
        if cfg.min_event_value is not None and values is not None:
            ok = pc.greater_equal(values.cast(pa.float64()), cfg.min_event_value)
            keep &= pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
        return keep

    @staticmethod
    def _groups(users: pa.Table, cols: GraphColumns, group_fields: Sequence[str], user_str: pa.Array
                ) -> tuple[pa.Array, np.ndarray]:
        """The group ids (sorted) and each interaction row's group (-1: none)."""
        uid = _strings(_column(users, cols.users_id))
        encoded = [_codes(_first_values(_column(users, f))) for f in group_fields]
        codes = np.stack([c + 1 for c, _ in encoded], axis=1)  # 0: missing
        dicts = [d for _, d in encoded]
        valid = (codes > 0).any(axis=1) & uid.is_valid().to_numpy(zero_copy_only=False)
        uniq, inverse = np.unique(codes[valid], axis=0, return_inverse=True)
        names = [HeteroGraph.group_key([d[c - 1] if c else None for d, c in zip(dicts, row)])
                 for row in uniq.tolist()]
        order = np.argsort(np.array(names, dtype=object), kind="stable") if names else np.zeros(0, np.int64)
        rank = np.empty(len(names), np.int64)
        rank[order] = np.arange(len(names))
        group_of_user_row = np.full(len(uid), -1, np.int64)
        group_of_user_row[valid] = rank[inverse.reshape(-1)]
        at = _encode(user_str, uid) if len(uid) else np.full(len(user_str), -1, np.int64)
        row_group = np.where(at >= 0, group_of_user_row[np.maximum(at, 0)], -1) if len(uid) else at
        return pa.array([names[i] for i in order], pa.string()), row_group

    @staticmethod
    def _tag_pairs(items: np.ndarray, tags: np.ndarray, counts: np.ndarray, num_tags: int, limit: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tag pairs sharing an item (each item's `limit` most applied tags), with shared-item counts."""
        if not len(items):
            return (np.zeros(0, np.int64),) * 3
        tag_freq = np.bincount(tags, weights=counts, minlength=num_tags)
        order = np.lexsort((tags, -tag_freq[tags], -counts, items))
        items, tags = items[order], tags[order]
        starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
        size = np.diff(np.r_[starts, len(items)])
        group = np.repeat(np.arange(len(starts)), size)
        rank = np.arange(len(items)) - starts[group]
        keep = rank < limit
        items, tags, rank, group = items[keep], tags[keep], rank[keep], group[keep]
        m = np.minimum(size, limit)[group]
        after = m - 1 - rank  # partners later in the item's kept list
        first = np.repeat(np.arange(len(tags)), after)
        step = np.arange(len(first)) - np.repeat(np.cumsum(after) - after, after)
        return _pair_counts(np.minimum(tags[first], tags[first + 1 + step]),
                            np.maximum(tags[first], tags[first + 1 + step]), max(num_tags, 1))

    @staticmethod
    def _cap(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, degree: np.ndarray, offsets: np.ndarray,
             max_degree: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep each node's `max_degree` most seen neighbours per field (ties: degree, then id)."""
        group = rows * 4 + np.searchsorted(offsets, cols, side="right") - 1
        sizes = np.bincount(group, minlength=1)
        if sizes.max(initial=0) <= max_degree:
            return rows, cols
        full = sizes[group] > max_degree  # only these groups need ranking
        at = np.flatnonzero(full)
        seen = counts[at] * (int(degree.max()) + 1) + degree[cols[at]]  # count, then degree
        order = at[np.lexsort((cols[at], -seen, group[at]))]
        g = group[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = np.concatenate((np.flatnonzero(~full), order[rank < max_degree]))
        return rows[keep], cols[keep]

    # --- features (§3.3.1) -----------------------------------------------------------------
    def _features(self, rows: np.ndarray, field: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        n = self.num_nodes
        position = np.zeros(n, np.int32)
        top = {}
        for f, t in enumerate(NODE_TYPES):
            lo, hi = int(self.offsets[f]), int(self.offsets[f + 1])
            deg = self.degree[lo:hi]
            candidates = np.flatnonzero(deg > 0)
            best = candidates[np.lexsort((candidates, -deg[candidates]))][:self.config.feature_sizes[f]]
            top[t] = (lo + best).astype(np.int64)
            position[top[t]] = np.arange(1, len(best) + 1, dtype=np.int32)
        p = position[self.indices]
        features = {}
        for f, t in enumerate(NODE_TYPES):
            m = (field == f) & (p > 0)
            r, pp = rows[m], p[m]
            order = np.lexsort((pp, r))
            r, pp = r[order], pp[order]
            counts = np.bincount(r, minlength=n)
            out = np.zeros((n, max(1, int(counts.max(initial=0)))), np.int32)
            out[r, np.arange(len(r)) - (np.cumsum(counts) - counts)[r]] = pp
            features[t] = out
        return top, features

    @property
    def field_sizes(self) -> list[int]:
        """Rows an embedding over each field's positions needs (its top nodes plus padding 0)."""
        return [len(self.top[t]) + 1 for t in NODE_TYPES]

    def stacked_features(self) -> np.ndarray:
        """(N, 4, D) int32: the fields' feature positions side by side, D the widest field."""
        depth = max(f.shape[1] for f in self.features.values())
        out = np.zeros((self.num_nodes, len(NODE_TYPES), depth), np.int32)
        for f, t in enumerate(NODE_TYPES):
            out[:, f, :self.features[t].shape[1]] = self.features[t]
        return out

    def node_features(self, nodes: np.ndarray) -> dict[str, np.ndarray]:
        """Per field, the feature positions of `nodes`: shape ``nodes.shape + (w_f,)``."""
        nodes = self._check(nodes)
        return {t: f[nodes] for t, f in self.features.items()}

    # --- lookups ----------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_entries(self) -> int:
        """Stored adjacency entries (each kept undirected edge twice)."""
        return len(self.indices)

    @property
    def edge_counts(self) -> dict[str, int]:
        """Distinct undirected edges per type, before the `max_degree` cap."""
        return dict(self.meta["edge_counts"])

    def num_nodes_of(self, node_type: str) -> int:
        f = NODE_TYPES.index(node_type)
        return int(self.offsets[f + 1] - self.offsets[f])

    def type_of(self, nodes: np.ndarray) -> np.ndarray:
        """The field (index in `NODE_TYPES`) of each global node id."""
        return np.searchsorted(self.offsets, np.asarray(nodes), side="right") - 1

    def nodes(self, node_type: str, ids: Sequence[str | None] | pa.Array) -> np.ndarray:
        """Global ids of `ids` of one type (-1: unknown)."""
        if node_type not in self._lookup:
            self._lookup[node_type] = pa.array(self.vocab[node_type], pa.string())
        values = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        local = _encode(values, self._lookup[node_type])
        return np.where(local >= 0, local + self.offsets[NODE_TYPES.index(node_type)], -1)

    def node(self, node_type: str, node_id: str) -> int:
        """The global id of one node (-1: unknown)."""
        return int(self.nodes(node_type, [node_id])[0])

    def id_of(self, node: int) -> tuple[str, str]:
        """(type, id string) of a global node id."""
        if not 0 <= node < self.num_nodes:
            raise IndexError(f"node {node} is not in 0..{self.num_nodes - 1}")
        f = int(self.type_of(node))
        return NODE_TYPES[f], self.vocab[NODE_TYPES[f]][node - int(self.offsets[f])]

    @staticmethod
    def group_key(values: Sequence[str | None]) -> str:
        """The id of the user group with these group-field values (in `meta["user_fields"]` order)."""
        return json.dumps([None if v is None else str(v) for v in values], ensure_ascii=False)

    def neighbours(self, node: int, field: str | None = None) -> np.ndarray:
        """Node's stored neighbours (of one type with `field`), ascending ids; a view."""
        if field is None:
            return self.indices[self.indptr[node]:self.indptr[node + 1]]
        f = NODE_TYPES.index(field)
        return self.indices[self.field_ptr[node, f]:self.field_ptr[node, f + 1]]

    def entry_rows(self, entries: np.ndarray) -> np.ndarray:
        """The row (node) of each adjacency entry index."""
        return np.searchsorted(self.indptr, entries, side="right") - 1

    def has_edge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether b is among a's stored neighbours, elementwise (vectorised binary search)."""
        a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
        lo, end = self.indptr[a], self.indptr[a + 1]
        hi = end.copy()
        if not len(self.indices):
            return np.zeros(a.shape, bool)
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            right = active & (self.indices[np.minimum(mid, len(self.indices) - 1)] < b)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(active & ~right, mid, hi)
        return (lo < end) & (self.indices[np.minimum(lo, len(self.indices) - 1)] == b)

    def _check(self, nodes: np.ndarray) -> np.ndarray:
        nodes = np.asarray(nodes, np.int64)
        if nodes.size and (nodes.min() < 0 or nodes.max() >= self.num_nodes):
            raise ValueError(f"node ids must be in 0..{self.num_nodes - 1}; got {nodes.min()}..{nodes.max()}")
        return nodes

    # --- sampling (§5.3) --------------------------------------------------------------------
    def sample(self, nodes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """`k` neighbours of each node, uniform with replacement; an isolated node gets itself.

        Args:
            nodes: Global node ids, any shape.
            k: Neighbours per node.
            rng: The generator (a seeded one makes the draw reproducible).

        Returns:
            int64 array of shape ``nodes.shape + (k,)``.
        """
        nodes = self._check(nodes)
        start = self.indptr[nodes][..., None]
        deg = self.indptr[nodes + 1][..., None] - start
        if not len(self.indices):
            return np.broadcast_to(nodes[..., None], nodes.shape + (k,)).copy()
        offset = rng.integers(0, np.maximum(deg, 1), size=nodes.shape + (k,))
        drawn = self.indices[np.minimum(start + offset, len(self.indices) - 1)]
        return np.where(deg > 0, drawn, nodes[..., None]).astype(np.int64)

    def sample_two_hop(self, nodes: np.ndarray, rng: np.random.Generator, k1: int | None = None,
                       k2: int | None = None) -> TwoHopSample:
        """The targets, `k1` neighbours of each, and `k2` neighbours of the target and of each of
        those (default: the config's `fanout1`, `fanout2`; paper 30, 20)."""
        nodes = self._check(nodes).reshape(-1)
        hop1 = self.sample(nodes, k1 or self.config.fanout1, rng)
        centres = np.concatenate((nodes[:, None], hop1), axis=1)  # (B, 1 + k1)
        return TwoHopSample(nodes=nodes, hop1=hop1, hop2=self.sample(centres, k2 or self.config.fanout2, rng))

    def loss_batch(self, nodes: np.ndarray, neighbours: np.ndarray, rng: np.random.Generator, *,
                   num_negatives: int | None = None, k1: int | None = None, k2: int | None = None
                   ) -> LossBatch:
        """Negatives for positive pairs (e.g. a slice of `epoch_pairs`), the pairs' distinct nodes
        (ascending) with their two-hop samples, and the pairs as positions among them: what
        eq. 14 needs, each node encoded once."""
        nodes, neighbours = self._check(nodes).reshape(-1), self._check(neighbours).reshape(-1)
        negatives = self.negatives(nodes, rng, num_negatives)
        distinct, inverse = np.unique(np.concatenate((nodes, neighbours, negatives.reshape(-1))),
                                      return_inverse=True)
        p = len(nodes)
        sample = self.sample_two_hop(distinct, rng, k1, k2)
        return LossBatch(nodes=sample.nodes, hop1=sample.hop1, hop2=sample.hop2, anchor=inverse[:p],
                         positive=inverse[p:2 * p], negatives=inverse[2 * p:].reshape(negatives.shape))

    # --- loss pairs (§3.4) ------------------------------------------------------------------
    def epoch_pairs(self, epoch: int, *, rank: int = 0, world_size: int = 1, drop_last: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
        """This rank's positive (node, neighbour) pairs of an epoch, in shuffled order.

        The stored entries are shuffled from ``(config.seed, epoch)`` (every rank computes the same
        shuffle) and dealt round-robin: rank r takes shuffle positions r, r + world_size, ... Shares
        are equal: the last ``E % world_size`` are dropped (`drop_last`) or the shuffle wraps to
        fill them.

        Returns:
            (P,) int64 nodes and (P,) int64 neighbours.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size - 1, got rank={rank}, world_size={world_size}")
        if epoch < 0:
            raise ValueError(f"epoch must be at least 0, got {epoch}")
        e = self.num_entries
        shuffle = np.random.default_rng([self.config.seed, epoch]).permutation(e)
        if drop_last:
            shuffle = shuffle[:e - e % world_size]
        elif e and e % world_size:
            shuffle = np.resize(shuffle, e + world_size - e % world_size)
        mine = shuffle[rank::world_size]
        return self.entry_rows(mine).astype(np.int64), self.indices[mine].astype(np.int64)

    def negatives(self, nodes: np.ndarray, rng: np.random.Generator, num: int | None = None) -> np.ndarray:
        """(len(nodes), num) negative nodes for pairs whose first node is `nodes` (default num: the
        config's `negatives`), by `negative_sampling`; with `reject_neighbours`, redrawn while equal
        to the node or one of its stored neighbours (up to 32 rounds)."""
        nodes = self._check(nodes).reshape(-1)
        num = self.config.negatives if num is None else num
        out = self._draw((len(nodes), num), rng)
        if self.config.reject_neighbours and out.size:
            owner = np.broadcast_to(nodes[:, None], out.shape)
            bad = (out == owner) | self.has_edge(owner, out)
            for _ in range(_REJECT_ROUNDS):
                if not bad.any():
                    break
                out[bad] = self._draw((int(bad.sum()),), rng)
                bad[bad] = (out[bad] == owner[bad]) | self.has_edge(owner[bad], out[bad])
        return out

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if self.config.negative_sampling == "degree" and self.degree.any():
            if self._cdf is None:
                self._cdf = np.cumsum(self.degree.astype(np.float64) ** 0.75)
            u = rng.random(shape) * self._cdf[-1]
            drawn = np.searchsorted(self._cdf, u, side="right")
            return np.minimum(drawn, self.num_nodes - 1).astype(np.int64)
        return rng.integers(0, max(self.num_nodes, 1), size=shape, dtype=np.int64)

    # --- state (§4.1: fixed after training) -------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able state, numpy arrays) from which `from_state` rebuilds this graph exactly."""
        config = asdict(self.config)
        if config["behaviour_event_types"] is not None:
            config["behaviour_event_types"] = list(config["behaviour_event_types"])
        columns = {**asdict(self.columns), "user_fields": list(self.columns.user_fields)}
        state = {"version": _VERSION, "config": config, "columns": columns, "vocab": self.vocab,
                 "meta": self.meta}
        return state, {"indptr": self.indptr, "indices": self.indices, "degree": self.degree}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> HeteroGraph:
        """The graph `state()` described."""
        if state.get("version") != _VERSION:
            raise ValueError(f"unsupported graph state version {state.get('version')!r}; expected {_VERSION}")
        return cls(config=GraphConfig(**state["config"]), columns=GraphColumns(**state["columns"]),
                   vocab=state["vocab"], indptr=arrays["indptr"], indices=arrays["indices"],
                   degree=arrays["degree"], meta=state["meta"])

    def stats(self) -> dict[str, Any]:
        """Node counts per type, edge counts per type (uncapped), stored entries."""
        return {"nodes": {t: self.num_nodes_of(t) for t in NODE_TYPES}, "edges": self.edge_counts,
                "entries": self.num_entries, **{k: self.meta[k] for k in ("user_nodes", "item_sequence")}}
