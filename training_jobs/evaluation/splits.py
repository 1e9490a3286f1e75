"""Hold-out splits: which rows train, which are held out, and the test cases they make.

Splits (both return a :class:`Split`; ``Split.describe()`` is what a version stores):

* :func:`temporal_holdout` — the HRNN-meta protocol: for a seeded random sample of users, their
  most recent interactions are held out; all other rows (their earlier history included) train.
* :func:`cold_start_split` — the paper's Table 7: half of the items are held out; the model
  trains without them and ranks only them, for each user who interacted with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Split", "cold_start_split", "temporal_holdout"]


@dataclass(frozen=True, eq=False)
class Split:
    """Training rows and a held-out test set, with the protocol that made them.

    Attributes:
        train: Every row not held out, in the original row order.
        held_out: The held-out rows, in the original row order.
        test_histories: For each test user, the row indices into ``train`` of the user's
            history (their training rows), oldest first. Empty for a cold-start user with no
            training rows. ``train.take(idx)`` gives the rows.
        test_targets: For each test user, the held-out items, oldest first.
        candidates: The items to rank (cold start: only the held-out items); ``None`` means
            the whole catalog.
        user_col: Name of the user id column.
        item_col: Name of the item id column.
        time_col: Name of the timestamp column.
        protocol: What :meth:`describe` returns.
    """

    train: pa.Table
    held_out: pa.Table
    test_histories: dict[Any, np.ndarray]
    test_targets: dict[Any, list[Any]]
    user_col: str
    item_col: str
    time_col: str
    candidates: list[Any] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def test_users(self) -> list[Any]:
        """The test users, in sorted id order."""
        return list(self.test_targets)

    def history(self, user: Any) -> pa.Table:
        """A test user's training rows, oldest first."""
        return self.train.take(pa.array(self.test_histories[user], type=pa.int64()))

    def history_items(self) -> dict[Any, list[Any]]:
        """Each test user's history as a list of item ids, oldest first."""
        groups = list(self.test_histories.values())
        if not groups:
            return {}
        rows = np.concatenate(groups).astype(np.int64)
        flat = self.train.column(self.item_col).take(pa.array(rows)).to_pylist()
        ends = np.cumsum([len(g) for g in groups]).tolist()
        return {u: flat[e - len(g):e] for (u, g), e in zip(self.test_histories.items(), ends)}

    def describe(self) -> dict[str, Any]:
        """The protocol as a JSON-serializable dict, to store on the version."""
        return dict(self.protocol)


def temporal_holdout(
    interactions: pa.Table,
    *,
    user_col: str,
    item_col: str,
    time_col: str,
    fraction: float = 0.1,
    min_users: int = 300,
    holdout_last: int = 1,
    seed: int = 0,
) -> Split:
    """Hold out the most recent interactions of a seeded random sample of users.

    Users with more than ``holdout_last`` interactions are eligible (so every test user keeps
    some history). ``round(fraction * eligible)`` of them are drawn, but at least
    ``min(min_users, eligible)``. Each drawn user's ``holdout_last`` latest rows are held out;
    ties in time go by original row order (the later row counts as more recent). The draw
    depends only on the set of user ids, their counts and ``seed``, not on row order.

    Args:
        interactions: One row per interaction.
        user_col: User id column.
        item_col: Item id column.
        time_col: Timestamp column (numeric, timestamp or date).
        fraction: Fraction of eligible users to test, in (0, 1].
        min_users: Lower bound on the number of test users, capped by the eligible count.
        holdout_last: Most recent interactions held out per test user.
        seed: Seed of the user draw.

    Returns:
        The split; ``describe()`` documents it.

    Raises:
        ValueError: On a bad argument, a missing column or null ids/timestamps.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if min_users < 0:
        raise ValueError(f"min_users must be >= 0, got {min_users}")
    if holdout_last < 1:
        raise ValueError(f"holdout_last must be >= 1, got {holdout_last}")
    _require_columns(interactions, (user_col, item_col, time_col))

    n = interactions.num_rows
    ucode, users = _encode(interactions.column(user_col), user_col)
    times = _time_key(interactions.column(time_col), time_col)
    order = np.lexsort((times, ucode))  # by user, then time; stable: ties keep row order
    su = ucode[order]
    counts = np.bincount(ucode, minlength=len(users))
    ends = np.cumsum(counts)
    from_end = ends[su] - 1 - np.arange(n)  # 0 = the user's most recent row

    eligible = np.flatnonzero(counts > holdout_last)
    n_test = int(round(fraction * len(eligible)))
    n_test = min(len(eligible), max(n_test, min(min_users, len(eligible)), 1 if len(eligible) else 0))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=n_test, replace=False)) if n_test else eligible[:0]
    is_test = np.zeros(len(users), dtype=bool)
    is_test[chosen] = True

    held_sorted = is_test[su] & (from_end < holdout_last)
    held_mask = np.zeros(n, dtype=bool)
    held_mask[order[held_sorted]] = True
    train, held_out, train_pos = _partition(interactions, held_mask)

    # Histories: test users' training rows in (user, time) order, as indices into `train`.
    hist_sorted = is_test[su] & ~held_sorted
    hist_rows = train_pos[order[hist_sorted]]
    hist_groups = _split_by(su[hist_sorted], hist_rows)
    test_histories = {users[c]: hist_groups.get(c, hist_rows[:0]) for c in chosen.tolist()}

    # Targets: exactly `holdout_last` per test user, in (user, time) order.
    target_items = interactions.column(item_col).take(pa.array(order[held_sorted])).to_pylist()
    test_targets = {users[c]: target_items[i * holdout_last:(i + 1) * holdout_last]
                    for i, c in enumerate(chosen.tolist())}

    protocol = {
        "protocol": "temporal-holdout",
        "rule": (f"a seeded random {fraction:g} of the users with more than {holdout_last} "
                 f"interaction(s) (at least {min_users} when available) have their "
                 f"{holdout_last} most recent interaction(s) held out (ties in time by row "
                 "order); all other interactions, their earlier history included, train"),
        "fraction": fraction,
        "min_users": min_users,
        "holdout_last": holdout_last,
        "seed": seed,
        "users": len(users),
        "eligible_users": int(len(eligible)),
        "test_users": n_test,
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
    }
    return Split(train=train, held_out=held_out, test_histories=test_histories,
                 test_targets=test_targets, user_col=user_col, item_col=item_col,
                 time_col=time_col, candidates=None, protocol=protocol)


def cold_start_split(
    interactions: pa.Table,
    items: pa.Table | None = None,
    *,
    item_col: str,
    user_col: str,
    time_col: str,
    fraction: float = 0.5,
    seed: int = 0,
) -> Split:
    """Hold out a seeded random ``fraction`` of the items (the paper's Table 7 cold start).

    The catalog is the distinct ids of ``items`` (or of the interactions when ``items`` is
    None). Every interaction with a held-out item leaves training. Each user who interacted
    with a held-out item is a test user: targets are those items (distinct, in order of first
    interaction), history is the user's training rows, and the candidates to rank are only the
    held-out items.

    Args:
        interactions: One row per interaction.
        items: The item catalog (e.g. the items dataset with the metadata), or None.
        item_col: Item id column (in both tables).
        user_col: User id column.
        time_col: Timestamp column.
        fraction: Fraction of the catalog held out, in (0, 1).
        seed: Seed of the item draw.

    Returns:
        The split, with ``candidates`` set to the held-out items.

    Raises:
        ValueError: On a bad argument, a missing column, null ids or a catalog under 2 items.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    _require_columns(interactions, (user_col, item_col, time_col))
    item_type = interactions.schema.field(item_col).type
    if items is not None:
        _require_columns(items, (item_col,))
        catalog_col = items.column(item_col).cast(item_type)
    else:
        catalog_col = interactions.column(item_col)
    _, catalog = _encode(catalog_col, item_col)
    if len(catalog) < 2:
        raise ValueError(f"the catalog has {len(catalog)} item(s): nothing to hold out")
    n_hold = min(len(catalog) - 1, max(1, int(round(fraction * len(catalog)))))
    rng = np.random.default_rng(seed)
    held_idx = np.sort(rng.choice(len(catalog), size=n_hold, replace=False))
    held_items = pa.array([catalog[i] for i in held_idx.tolist()], type=item_type)

    ucode, users = _encode(interactions.column(user_col), user_col)
    icode = _to_numpy(pc.index_in(interactions.column(item_col), value_set=held_items), -1)
    times = _time_key(interactions.column(time_col), time_col)
    held_mask = icode >= 0
    train, held_out, train_pos = _partition(interactions, held_mask)

    order = np.lexsort((times, ucode))
    su, s_held = ucode[order], held_mask[order]
    # Targets: distinct (user, item) pairs among held rows, first interaction first.
    key = su[s_held].astype(np.int64) * n_hold + icode[order][s_held]
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    t_users = su[s_held][first]
    t_items = held_items.take(pa.array(icode[order][s_held][first])).to_pylist()
    target_groups = _split_by(t_users, np.arange(len(t_users)))
    test_users = sorted(target_groups)
    test_targets = {users[c]: [t_items[i] for i in target_groups[c].tolist()] for c in test_users}

    in_test = np.zeros(len(users), dtype=bool)
    in_test[test_users] = True
    hist_sorted = in_test[su] & ~s_held
    hist_rows = train_pos[order[hist_sorted]]
    hist_groups = _split_by(su[hist_sorted], hist_rows)
    test_histories = {users[c]: hist_groups.get(c, hist_rows[:0]) for c in test_users}

    protocol = {
        "protocol": "item-cold-start",
        "rule": (f"a seeded random {fraction:g} of the catalog's items is held out; training "
                 "keeps only interactions with the other items; each user who interacted with "
                 "a held-out item ranks the held-out items only, those items being the targets"),
        "fraction": fraction,
        "seed": seed,
        "catalog_items": len(catalog),
        "held_out_items": n_hold,
        "test_users": len(test_users),
        "targets": len(t_items),
        "held_out_events": held_out.num_rows,
        "train_events": train.num_rows,
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
    }
    return Split(train=train, held_out=held_out, test_histories=test_histories,
                 test_targets=test_targets, user_col=user_col, item_col=item_col,
                 time_col=time_col, candidates=held_items.to_pylist(), protocol=protocol)


def _require_columns(table: pa.Table, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {table.column_names}")


def _encode(col: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, list[Any]]:
    """Codes of each value into the sorted distinct values, and those values."""
    if col.null_count:
        raise ValueError(f"column {name!r} has {col.null_count} null(s)")
    uniq = pc.unique(col)
    uniq = uniq.take(pc.sort_indices(uniq))
    codes = _to_numpy(pc.index_in(col, value_set=uniq), None).astype(np.int64, copy=False)
    return codes, uniq.to_pylist()


def _to_numpy(arr: pa.ChunkedArray | pa.Array, null_value: Any) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if null_value is not None and arr.null_count:
        arr = arr.fill_null(null_value)
    return arr.to_numpy(zero_copy_only=False)


def _time_key(col: pa.ChunkedArray, name: str) -> np.ndarray:
    if col.null_count:
        raise ValueError(f"column {name!r} has {col.null_count} null(s)")
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        raise ValueError(f"column {name!r} must be numeric or a timestamp, not {t}")
    values = _to_numpy(col, None)
    if values.dtype.kind in "mM":
        values = values.view(np.int64)
    return values


def _partition(table: pa.Table, held_mask: np.ndarray) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """(rows not held, rows held, each original row's index in the first), order kept."""
    train = table.filter(pa.array(~held_mask))
    held = table.filter(pa.array(held_mask))
    train_pos = np.cumsum(~held_mask) - 1
    return train, held, train_pos


def _split_by(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """Group ``values`` by ``keys`` (keys already sorted, groups contiguous)."""
    if keys.size == 0:
        return {}
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], cuts))
    return dict(zip(keys[starts].tolist(), np.split(values, cuts)))
