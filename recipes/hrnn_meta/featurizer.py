"""Arrow tables → HRNN-meta examples: vocabularies, per-user sequences, item and user features.

Follows the paper's data model (Ma et al., KDD'20): §2.1 (interactions grouped into ordered user
histories x_k = (a_k, t_k, v_k), ties broken by row order), §2.2 (event type/value as feedback,
categorical user fields as user features), §2.3 (item feature vectors f_j from the items table),
§3.1 (item frequencies for the negative-sampling proposal) and §3.2 (item popularity for the
trend bias).

Index conventions (shared with modeling.py and predictor.py):

    items        0 = padding, 1 = unknown (OOV), 2.. = `item_ids` (sorted)
    users        0 = unknown,                    1.. = `user_ids` (sorted)
    event types  0 = padding, 1 = unknown/none,  2.. = `event_types` (sorted)
    features     0 = padding,                    1.. = `*_feature_tokens` (sorted)

A feature token is `field=value` for categorical/string/bool fields and `field#qK` for the K-th
quantile bucket of a numeric field; text and timestamp fields are not used. The fitted state is
saved as `featurizer.json` plus one `.npy` file per array (never pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from sdk.types import DatasetKind, FieldType, Role, Schema

from .configuration import HrnnMetaConfig

__all__ = ["HrnnMetaExamples", "HrnnMetaFeaturizer", "PAD", "OOV", "time_bucket"]

PAD, OOV = 0, 1
_STATE_FILE = "featurizer.json"
_ARRAYS = ("item_freq", "item_feat_offsets", "item_feat_values", "user_feat_offsets",
           "user_feat_values")
# Column names used when no schema is given (the ones tagrec's converters write).
_DEFAULT_COLUMNS = {Role.USER_ID: "user_id", Role.ITEM_ID: "item_id", Role.TIMESTAMP: "timestamp",
                    Role.EVENT_TYPE: "event_type", Role.EVENT_VALUE: "event_value"}


def time_bucket(gap_seconds: np.ndarray, num_buckets: int) -> np.ndarray:
    """Bucketized log time gap (§2.2): 1 + floor(log2(1 + gap)), capped at num_buckets - 1."""
    gap = np.maximum(np.asarray(gap_seconds, dtype=np.float64), 0.0)
    return np.minimum(1 + np.floor(np.log2(1.0 + gap)), num_buckets - 1).astype(np.int64)


@dataclass
class HrnnMetaExamples:
    """Chronological per-user sequences as flat arrays; user u owns [offsets[u], offsets[u+1])."""

    user_ids: list[str]  # (U,) raw user ids, sorted
    user_index: np.ndarray  # (U,) int64 user vocabulary index (0 = unknown user)
    offsets: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (E,) int64 item index (OOV for items outside the vocabulary)
    timestamps: np.ndarray  # (E,) int64 epoch seconds
    event_types: np.ndarray  # (E,) int64 event-type index
    event_values: np.ndarray  # (E,) float32 standardized event value (0 when missing)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_events(self) -> int:
        return int(self.items.size)


def _seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch seconds (int64) from a timestamp column of any unit, or from integer seconds."""
    if pa.types.is_timestamp(column.type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
        raw = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.floor_divide(raw, per_second)
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _to_numpy(column: pa.ChunkedArray | pa.Array, dtype: Any) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)


def _lookup(values: pa.ChunkedArray | pa.Array, vocab: Sequence[str], offset: int,
            missing: int) -> np.ndarray:
    """Index of each value in `vocab` plus `offset`; `missing` for nulls and unknown values."""
    if len(vocab) == 0:
        return np.full(len(values), missing, np.int64)
    found = pc.index_in(values, value_set=pa.array(vocab, pa.string()))
    index = _to_numpy(pc.fill_null(found, -1), np.int64)
    return np.where(index >= 0, index + offset, missing)


def _field_kind(spec_type: FieldType | None, arrow_type: pa.DataType) -> str | None:
    """'categorical' | 'string' | 'numeric' | 'bool', or None for fields not used as features."""
    if spec_type is not None:
        return {FieldType.CATEGORICAL: "categorical", FieldType.STRING: "string",
                FieldType.INT: "numeric", FieldType.FLOAT: "numeric",
                FieldType.BOOL: "bool"}.get(spec_type)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "categorical"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    return None


def _feature_fields(table: pa.Table, schema: Schema | None, id_column: str) -> list[list[str]]:
    """[[name, kind], ...] of the columns used as features, in table order."""
    specs = {f.name: f for f in schema.fields} if schema is not None else {}
    fields = []
    for name in table.column_names:
        if name == id_column:
            continue
        spec = specs.get(name)
        if schema is not None and spec is None:
            continue  # a column the schema does not describe
        kind = _field_kind(spec.type if spec is not None else None, table.schema.field(name).type)
        if kind is not None:
            fields.append([name, kind])
    return fields


def _string_ids(table: pa.Table, id_column: str) -> pa.Table:
    """Rows with an id, the id column cast to string."""
    table = table.filter(pc.is_valid(table.column(id_column)))
    return table.set_column(table.column_names.index(id_column), id_column,
                            table.column(id_column).cast(pa.string()))


class HrnnMetaFeaturizer(Featurizer):
    """Fitted vocabularies and statistics; encodes tables into :class:`HrnnMetaExamples`."""

    def __init__(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.state = state
        self.arrays = arrays
        self.item_ids: list[str] = state["item_ids"]
        self.user_ids: list[str] = state["user_ids"]
        self.event_types: list[str] = state["event_types"]
        self._item_index = {item: i + 2 for i, item in enumerate(self.item_ids)}
        self._user_index = {user: i + 1 for i, user in enumerate(self.user_ids)}
        self._event_index = {e: i + 2 for i, e in enumerate(self.event_types)}

    # --- sizes and lookups ------------------------------------------------------------------
    @property
    def num_items(self) -> int:
        """Size of the item index space, padding and OOV included."""
        return len(self.item_ids) + 2

    @property
    def num_users(self) -> int:
        return len(self.user_ids) + 1

    @property
    def num_event_types(self) -> int:
        return len(self.event_types) + 2

    @property
    def num_item_tokens(self) -> int:
        return len(self.state["item_feature_tokens"]) + 1

    @property
    def num_user_tokens(self) -> int:
        return len(self.state["user_feature_tokens"]) + 1

    @property
    def item_freq(self) -> np.ndarray:
        """(num_items,) training interactions per item index (0 for padding, OOV, unseen)."""
        return self.arrays["item_freq"]

    def item_index(self, item_id: str) -> int:
        return self._item_index.get(item_id, OOV)

    def user_index(self, user_id: str | None) -> int:
        return self._user_index.get(user_id, 0) if user_id is not None else 0

    def event_type_index(self, event_type: str | None) -> int:
        return self._event_index.get(event_type, OOV) if event_type is not None else OOV

    def standardize_value(self, value: float | None) -> float:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return 0.0
        return (float(value) - self.state["value_mean"]) / self.state["value_std"]

    def user_feature_rows(self, user_index: np.ndarray) -> np.ndarray:
        """(B, F) feature-token indices of the given users, right-padded with 0."""
        offsets, values = self.arrays["user_feat_offsets"], self.arrays["user_feat_values"]
        user_index = np.asarray(user_index, np.int64)
        lengths = offsets[user_index + 1] - offsets[user_index]
        width = max(1, int(lengths.max(initial=0)))
        col = np.arange(width)[None, :]
        valid = col < lengths[:, None]  # (B, F)
        pos = np.where(valid, offsets[user_index][:, None] + col, 0)
        return np.where(valid, values[pos] if values.size else 0, 0).astype(np.int64)

    # --- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: HrnnMetaConfig, *,
            schemas: Mapping[DatasetKind, Schema] | None = None) -> HrnnMetaFeaturizer:
        """Fit vocabularies and statistics on training tables.

        Args:
            tables: INTERACTIONS (required), ITEMS and USERS (optional).
            config: The recipe configuration (numeric_buckets is used here).
            schemas: Schema of each table; roles locate the id/timestamp/event columns and field
                types choose feature encodings. Without it the default column names
                (user_id, item_id, timestamp, event_type, event_value) and Arrow types are used.
        """
        schemas = schemas or {}
        inter = tables[DatasetKind.INTERACTIONS]
        columns = cls._interaction_columns(inter, schemas.get(DatasetKind.INTERACTIONS))
        inter = cls._valid_rows(inter, columns)
        state: dict[str, Any] = {"version": 1, "columns": columns,
                                 "numeric_buckets": config.numeric_buckets}

        items_table = tables.get(DatasetKind.ITEMS)
        users_table = tables.get(DatasetKind.USERS)
        item_set = set(pc.unique(inter.column(columns["item"])).to_pylist())
        user_set = set(pc.unique(inter.column(columns["user"])).to_pylist())
        for kind, table, key in ((DatasetKind.ITEMS, items_table, "items"),
                                 (DatasetKind.USERS, users_table, "users")):
            if table is None:
                state[key] = None
                continue
            id_col = cls._id_column(table, schemas.get(kind),
                                    Role.ITEM_ID if key == "items" else Role.USER_ID)
            table = _string_ids(table, id_col)
            state[key] = {"id": id_col, "fields": _feature_fields(table, schemas.get(kind), id_col)}
            ids = set(table.column(id_col).to_pylist())
            (item_set if key == "items" else user_set).update(ids)
        state["item_ids"] = sorted(item_set)
        state["user_ids"] = sorted(user_set)
        if columns["event_type"] is not None:
            types = pc.unique(inter.column(columns["event_type"]).drop_null()).to_pylist()
            state["event_types"] = sorted(types)
        else:
            state["event_types"] = []
        mean, std = 0.0, 1.0
        if columns["event_value"] is not None:
            values = _to_numpy(inter.column(columns["event_value"]).cast(pa.float64()), np.float64)
            values = values[np.isfinite(values)]
            if values.size:
                mean = float(values.mean())
                std = float(values.std()) if values.std() > 1e-12 else 1.0
        state["value_mean"], state["value_std"] = mean, std

        # Numeric bucket edges and token vocabularies, then the CSR feature rows.
        for key, table in (("items", items_table), ("users", users_table)):
            state[f"{key[:-1]}_feature_tokens"] = []
            if table is None:
                continue
            edges = {}
            for name, kind in state[key]["fields"]:
                if kind == "numeric":
                    x = _to_numpy(table.column(name).cast(pa.float64()), np.float64)
                    x = x[np.isfinite(x)]
                    q = np.linspace(0, 1, config.numeric_buckets + 1)[1:-1]
                    edges[name] = np.unique(np.quantile(x, q)).tolist() if x.size else []
            state[key]["edges"] = edges
            tokens = set(cls._tokens(table, state[key])[1].to_pylist())
            state[f"{key[:-1]}_feature_tokens"] = sorted(tokens)

        featurizer = cls(state, {})
        arrays: dict[str, np.ndarray] = {}
        item_idx = _lookup(inter.column(columns["item"]), featurizer.item_ids, 2, OOV)
        arrays["item_freq"] = np.bincount(item_idx, minlength=featurizer.num_items).astype(np.int64)
        arrays["item_freq"][:2] = 0
        arrays["item_feat_offsets"], arrays["item_feat_values"] = featurizer._feature_csr(
            items_table, "items", featurizer.item_ids, featurizer.num_items, 2)
        arrays["user_feat_offsets"], arrays["user_feat_values"] = featurizer._feature_csr(
            users_table, "users", featurizer.user_ids, featurizer.num_users, 1)
        featurizer.arrays = arrays
        return featurizer

    @staticmethod
    def _id_column(table: pa.Table, schema: Schema | None, role: Role) -> str:
        spec = schema.field_for(role) if schema is not None else None
        name = spec.name if spec is not None else _DEFAULT_COLUMNS[role]
        if name not in table.column_names:
            raise ValueError(f"column {name!r} ({role.value}) is missing; columns: "
                             f"{', '.join(table.column_names)}")
        return name

    @classmethod
    def _interaction_columns(cls, table: pa.Table, schema: Schema | None) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for key, role in (("user", Role.USER_ID), ("item", Role.ITEM_ID),
                          ("timestamp", Role.TIMESTAMP)):
            out[key] = cls._id_column(table, schema, role)
        for key, role in (("event_type", Role.EVENT_TYPE), ("event_value", Role.EVENT_VALUE)):
            spec = schema.field_for(role) if schema is not None else None
            name = spec.name if spec is not None else _DEFAULT_COLUMNS[role]
            out[key] = name if name in table.column_names else None
        return out

    @staticmethod
    def _valid_rows(table: pa.Table, columns: Mapping[str, str | None]) -> pa.Table:
        """Rows with a user, an item and a timestamp; ids as strings."""
        mask = None
        for key in ("user", "item", "timestamp"):
            valid = pc.is_valid(table.column(columns[key]))
            mask = valid if mask is None else pc.and_(mask, valid)
        if mask is not None and not pc.all(mask).as_py():
            table = table.filter(mask)
        for key in ("user", "item"):
            name = columns[key]
            table = table.set_column(table.column_names.index(name), name,
                                     table.column(name).cast(pa.string()))
        return table

    @staticmethod
    def _tokens(table: pa.Table, spec: Mapping[str, Any]) -> tuple[np.ndarray, pa.Array]:
        """(row index, token string) pairs of every feature value in `table`."""
        rows, tokens = [], []
        for name, kind in spec["fields"]:
            if name not in table.column_names:
                continue
            column = table.column(name).combine_chunks()
            if kind == "categorical":
                values = pc.list_flatten(column)
                parents = _to_numpy(pc.list_parent_indices(column), np.int64)
                keep = pc.is_valid(values)
                values, parents = values.filter(keep), parents[_to_numpy(keep, bool)]
                text = values.cast(pa.string())
            elif kind == "numeric":
                x = _to_numpy(column.cast(pa.float64()), np.float64)
                ok = np.isfinite(x)
                parents = np.flatnonzero(ok)
                bucket = np.searchsorted(np.asarray(spec["edges"].get(name, []), np.float64),
                                         x[ok], side="right")
                text = pa.array([f"q{b}" for b in bucket.tolist()], pa.string())
            else:  # string / bool
                ok = pc.is_valid(column)
                parents = np.flatnonzero(_to_numpy(ok, bool))
                text = column.filter(ok).cast(pa.string())
            sep = "#" if kind == "numeric" else "="
            rows.append(parents)
            tokens.append(pc.binary_join_element_wise(f"{name}{sep}", text, ""))
        if not rows:
            return np.zeros(0, np.int64), pa.array([], pa.string())
        return np.concatenate(rows), pa.concat_arrays(tokens)

    def _feature_csr(self, table: pa.Table | None, key: str, ids: Sequence[str], size: int,
                     id_offset: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (offsets (size + 1,), token indices) of the feature tokens of each entity index."""
        if table is None or self.state[key] is None:
            return np.zeros(size + 1, np.int64), np.zeros(0, np.int64)
        spec = self.state[key]
        table = _string_ids(table, spec["id"])
        entity = _lookup(table.column(spec["id"]), ids, id_offset, -1)
        rows, tokens = self._tokens(table, spec)
        token_idx = _lookup(tokens, self.state[f"{key[:-1]}_feature_tokens"], 1, -1)
        ent = entity[rows] if rows.size else np.zeros(0, np.int64)
        keep = (ent >= 0) & (token_idx >= 0)
        # The first row of an id wins when an id appears twice.
        first = np.zeros(len(entity), bool)
        first[np.unique(entity, return_index=True)[1]] = True
        keep &= first[rows] if rows.size else keep
        pairs = np.unique(ent[keep] * (len(self.state[f"{key[:-1]}_feature_tokens"]) + 1)
                          + token_idx[keep])
        width = len(self.state[f"{key[:-1]}_feature_tokens"]) + 1
        ent_sorted, tok_sorted = pairs // width, pairs % width
        offsets = np.zeros(size + 1, np.int64)
        offsets[1:] = np.cumsum(np.bincount(ent_sorted, minlength=size))
        return offsets, tok_sorted.astype(np.int64)

    def encode_item_metadata(self, metadata: Mapping[str, Mapping[str, Any]]
                             ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Feature tokens of new items given as {item_id: {column: value}} (as the items table).

        Returns:
            (item ids, CSR offsets (n + 1,), token indices); unknown columns/values are ignored.
        """
        ids = list(metadata)
        spec = self.state["items"]
        if spec is None or not ids:
            return ids, np.zeros(len(ids) + 1, np.int64), np.zeros(0, np.int64)
        columns = {}
        for name, kind in spec["fields"]:
            raw = [metadata[i].get(name) for i in ids]
            if kind == "categorical":
                raw = [None if v is None else ([v] if isinstance(v, str) else list(v)) for v in raw]
                columns[name] = pa.array(raw, pa.list_(pa.string()))
            elif kind == "numeric":
                columns[name] = pa.array([None if v is None else float(v) for v in raw],
                                         pa.float64())
            elif kind == "bool":
                columns[name] = pa.array([None if v is None else bool(v) for v in raw], pa.bool_())
            else:
                columns[name] = pa.array([None if v is None else str(v) for v in raw], pa.string())
        columns[spec["id"]] = pa.array(ids, pa.string())
        table = pa.table(columns)
        offsets, values = self._feature_csr(table, "items", ids, len(ids), 0)
        return ids, offsets, values

    # --- transform --------------------------------------------------------------------------
    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> HrnnMetaExamples:
        """Encode the INTERACTIONS table into chronological per-user sequences (deterministic).

        Events are sorted by user id, then timestamp, then row order. Items and event types
        outside the fitted vocabularies map to OOV; users outside it to 0. Item and user features
        come from the fitted state (the ITEMS/USERS tables given here are not read).
        """
        columns = self.state["columns"]
        inter = self._valid_rows(tables[DatasetKind.INTERACTIONS], columns)
        n = inter.num_rows
        users = inter.column(columns["user"]).cast(pa.string())
        ts = _seconds(inter.column(columns["timestamp"]))
        keyed = pa.table({"u": users, "t": pa.array(ts, pa.int64()),
                          "r": pa.array(np.arange(n, dtype=np.int64))})
        order = pc.sort_indices(keyed, sort_keys=[("u", "ascending"), ("t", "ascending"),
                                                  ("r", "ascending")])
        sorted_users = users.take(order).combine_chunks()
        if n:
            changes = pc.not_equal(sorted_users.slice(1), sorted_users.slice(0, n - 1))
            starts = np.flatnonzero(np.r_[True, _to_numpy(changes, bool)])
        else:
            starts = np.zeros(0, np.int64)
        offsets = np.r_[starts, n].astype(np.int64)
        user_ids = sorted_users.take(pa.array(starts, pa.int64())).to_pylist() if n else []
        order_np = _to_numpy(order, np.int64)
        items = _lookup(inter.column(columns["item"]).cast(pa.string()), self.item_ids, 2, OOV)
        if columns["event_type"] is not None and columns["event_type"] in inter.column_names:
            etypes = _lookup(inter.column(columns["event_type"]).cast(pa.string()),
                             self.event_types, 2, OOV)
        else:
            etypes = np.full(n, OOV, np.int64)
        if columns["event_value"] is not None and columns["event_value"] in inter.column_names:
            raw = _to_numpy(inter.column(columns["event_value"]).cast(pa.float64()), np.float64)
            values = (raw - self.state["value_mean"]) / self.state["value_std"]
            values = np.where(np.isfinite(values), values, 0.0)
        else:
            values = np.zeros(n)
        return HrnnMetaExamples(
            user_ids=user_ids,
            user_index=np.array([self.user_index(u) for u in user_ids], np.int64),
            offsets=offsets,
            items=items[order_np].astype(np.int64),
            timestamps=ts[order_np].astype(np.int64),
            event_types=etypes[order_np].astype(np.int64),
            event_values=values[order_np].astype(np.float32),
        )

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        (directory / _STATE_FILE).write_text(json.dumps(self.state, indent=1, sort_keys=True))
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name], allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> HrnnMetaFeaturizer:
        directory = Path(directory)
        state = json.loads((directory / _STATE_FILE).read_text())
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        return cls(state, arrays)
