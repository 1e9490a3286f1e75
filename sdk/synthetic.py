"""Seeded synthetic interaction data with structure a recommender can learn.

Used by ``tagrec quickstart`` and by the tests. The same seed and sizes give the same tables,
and the same CSV bytes, on every run.

Planted structure:

* **Genres.** There are up to 18 genres. Each item has 1-3 of them (the ``genres`` TAGS column);
  its first genre is its *primary* genre. Titles are built from words tied to the item's genres,
  so the text predicts the tags.
* **Popularity.** Item popularity follows a Zipf law (weight ``1 / rank``) over a random ranking.
* **Preferences.** Each user prefers 1-3 genres. The choice depends on the user's ``age_group``
  (each age group has its own genre affinities), so user features predict the tag profile.
* **Successors.** Every item has one *successor*: items are put on one cycle, sorted by primary
  genre, and the successor is the next item on the cycle (mostly of the same genre).
* **Sequences.** A user's history is a time-ordered sequence split into sessions. The first event
  of a session is a fresh draw: with probability 0.8 an item from one of the user's preferred
  genres (popularity-weighted within the genre), otherwise an item drawn by global popularity.
  Each later event in the session is, with probability 0.5, the successor of the previous item,
  and otherwise a fresh draw.
* **Events.** ``event_type`` is ``"click"`` or ``"purchase"``; purchases are four times as likely
  on items of a preferred genre. ``event_value`` is the engagement in [0, 1] (fraction watched),
  higher on preferred genres; purchases have 1.0.
* **Time.** Timestamps are whole seconds, strictly increasing per user: seconds to minutes between
  events of a session, hours to days between sessions.

The hidden ground truth (each user's preferred genres, each item's successor) is kept on
:class:`SyntheticData` for tests and benchmarks; it is not part of the tables.

Example:
    >>> data = generate(seed=0, n_users=50, n_items=40, n_interactions=1_000)
    >>> data.interactions.num_rows
    1000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField, interactions_schema

__all__ = ["GENRES", "SyntheticData", "generate"]

# Each genre with the words its items' titles are built from.
_GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "action": ("Strike", "Pursuit", "Showdown", "Mission"),
    "adventure": ("Quest", "Expedition", "Voyage", "Frontier"),
    "animation": ("Cartoon", "Doodle", "Sketchbook", "Puppet"),
    "comedy": ("Mixup", "Prank", "Laughs", "Blunder"),
    "crime": ("Heist", "Racket", "Alibi", "Syndicate"),
    "documentary": ("Chronicle", "Record", "Report", "Portrait"),
    "drama": ("Tears", "Promise", "Inheritance", "Reckoning"),
    "family": ("Picnic", "Reunion", "Sleepover", "Grandma"),
    "fantasy": ("Dragon", "Wizard", "Spell", "Kingdom"),
    "history": ("Empire", "Dynasty", "Revolution", "Chronicle"),
    "horror": ("Haunting", "Curse", "Crypt", "Nightmare"),
    "music": ("Ballad", "Encore", "Chorus", "Rhythm"),
    "mystery": ("Riddle", "Clue", "Secret", "Puzzle"),
    "romance": ("Kiss", "Heartbeat", "Wedding", "Valentine"),
    "scifi": ("Android", "Starship", "Galaxy", "Cyborg"),
    "sports": ("Championship", "Underdog", "Playoff", "Rally"),
    "thriller": ("Conspiracy", "Hostage", "Countdown", "Double-Cross"),
    "western": ("Saloon", "Outlaw", "Ranch", "Sheriff"),
}
GENRES: tuple[str, ...] = tuple(_GENRE_WORDS)
_ADJECTIVES = (
    "Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Wild", "Midnight",
    "Electric", "Lonely", "Frozen", "Savage", "Little", "Endless", "Burning", "Distant",
)  # fmt: skip
_AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_PROBS = (0.22, 0.30, 0.22, 0.15, 0.11)
_COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "ES", "AU")
_COUNTRY_PROBS = (0.30, 0.12, 0.10, 0.09, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04)

_START = 1_704_067_200  # 2024-01-01T00:00:00Z
_P_PREFERRED = 0.8  # a fresh draw comes from a preferred genre
_P_SUCCESSOR = 0.5  # a later event of a session is the previous item's successor
_P_NEW_SESSION = 0.2  # an event starts a new session
_P_PURCHASE = (0.03, 0.12)  # outside / inside the user's preferred genres


def _schemas() -> dict[DatasetKind, Schema]:
    def f(name: str, type_: FieldType, role: Role | None = None) -> SchemaField:
        return SchemaField(name=name, type=type_, role=role, nullable=False)

    return {
        DatasetKind.INTERACTIONS: interactions_schema(),
        DatasetKind.ITEMS: Schema(
            fields=[
                f("item_id", FieldType.STRING, Role.ITEM_ID),
                f("genres", FieldType.CATEGORICAL, Role.TAGS),
                f("price", FieldType.FLOAT),
                f("title", FieldType.TEXT),
            ]
        ),
        DatasetKind.USERS: Schema(
            fields=[
                f("user_id", FieldType.STRING, Role.USER_ID),
                f("age_group", FieldType.STRING),
                f("country", FieldType.STRING),
            ]
        ),
    }


@dataclass
class SyntheticData:
    """The generated tables, their schemas and the planted ground truth.

    Attributes:
        interactions: ``user_id``, ``item_id``, ``timestamp``, ``event_type``, ``event_value``;
            sorted by user, then time.
        items: ``item_id``, ``genres`` (list of strings), ``price``, ``title``.
        users: ``user_id``, ``age_group``, ``country``.
        schemas: One schema per dataset kind, describing the tables' columns.
        preferred_genres: Hidden truth: each user's preferred genres.
        successor: Hidden truth: each item's planted successor.
    """

    interactions: pa.Table
    items: pa.Table
    users: pa.Table
    schemas: dict[DatasetKind, Schema]
    preferred_genres: dict[str, tuple[str, ...]] = field(repr=False)
    successor: dict[str, str] = field(repr=False)

    def tables(self) -> dict[DatasetKind, pa.Table]:
        """The three tables keyed by dataset kind."""
        return {
            DatasetKind.INTERACTIONS: self.interactions,
            DatasetKind.ITEMS: self.items,
            DatasetKind.USERS: self.users,
        }

    def write_csv(self, directory: str | Path) -> dict[DatasetKind, Path]:
        """Write ``interactions.csv``, ``items.csv`` and ``users.csv`` into ``directory``.

        Categorical cells are joined with the schema's ``categorical_delimiter``; timestamps are
        integer epoch seconds.

        Args:
            directory: Created if missing.

        Returns:
            The path written for each dataset kind.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[DatasetKind, Path] = {}
        for kind, table in self.tables().items():
            schema = self.schemas[kind]
            columns = []
            for spec in schema.fields:
                column = table.column(spec.name)
                if spec.type is FieldType.CATEGORICAL:
                    column = pc.binary_join(column, schema.categorical_delimiter)
                elif spec.type is FieldType.TIMESTAMP:
                    column = column.cast(pa.int64())
                columns.append(column)
            path = out / f"{kind.value}.csv"
            pacsv.write_csv(pa.table(columns, names=[s.name for s in schema.fields]), path)
            paths[kind] = path
        return paths


def _ids(prefix: str, n: int) -> pa.Array:
    width = max(4, len(str(n)))
    return pa.array([f"{prefix}{i:0{width}d}" for i in range(n)], pa.string())


def _list_array(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def generate(
    *, seed: int = 0, n_users: int = 500, n_items: int = 300, n_interactions: int = 20_000
) -> SyntheticData:
    """Generate a seeded synthetic dataset with planted structure (see the module docstring).

    Args:
        seed: Seed of the numpy random generator; equal seeds give equal data.
        n_users: Number of users (each has at least 2 interactions).
        n_items: Number of items (at least 2).
        n_interactions: Total number of interactions (at least ``2 * n_users``).

    Returns:
        The tables, their schemas and the hidden ground truth.

    Raises:
        ValueError: If the sizes are inconsistent.
    """
    if n_users < 1 or n_items < 2:
        raise ValueError(f"need n_users >= 1 and n_items >= 2, got {n_users} and {n_items}")
    if n_interactions < 2 * n_users:
        raise ValueError(f"n_interactions={n_interactions} is below 2 per user (n_users={n_users})")
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    genre_names = pa.array(GENRES, pa.string())

    # --- items: genres (first = primary), popularity, successor cycle, price, title -----------
    n_item_genres = rng.choice(3, size=n_items, p=(0.5, 0.35, 0.15)) + 1
    genre_perm = rng.random((n_items, n_genres)).argsort(axis=1)[:, :3]  # (items, 3)
    primary = genre_perm[:, 0]
    item_mask = np.arange(3)[None, :] < n_item_genres[:, None]  # (items, 3)
    item_genre_flat = genre_perm[item_mask]  # row-major: genres of item 0, then item 1, ...
    item_offsets = np.concatenate([[0], np.cumsum(n_item_genres)])
    item_bits = np.zeros(n_items, np.int64)
    np.bitwise_or.at(item_bits, np.repeat(np.arange(n_items), n_item_genres), 1 << item_genre_flat)

    popularity = 1.0 / (rng.permutation(n_items) + 1.0)  # Zipf over a random ranking
    cycle = np.lexsort((rng.random(n_items), primary))  # items sorted by primary genre
    cycle_pos = np.empty(n_items, np.int64)
    cycle_pos[cycle] = np.arange(n_items)
    successor = cycle[(cycle_pos + 1) % n_items]

    price = np.round(np.exp(rng.normal(2.5, 0.6, n_items)), 2)
    # Title: an adjective, a word of the primary genre and, if any, one of the second genre.
    words = pa.array([w for g in GENRES for w in _GENRE_WORDS[g]], pa.string())
    word_idx = item_genre_flat * 4 + rng.integers(0, 4, item_genre_flat.size)
    first_word = words.take(pa.array(word_idx[item_offsets[:-1]]))
    has_second = n_item_genres > 1
    second_idx = word_idx[np.minimum(item_offsets[:-1] + 1, word_idx.size - 1)]
    second_word = words.take(pa.array(second_idx, mask=~has_second))
    adjective = pa.array(_ADJECTIVES, pa.string()).take(
        pa.array(rng.integers(0, len(_ADJECTIVES), n_items))
    )
    title = pc.binary_join_element_wise(
        adjective,
        first_word,
        pc.binary_join_element_wise("and", second_word, " "),  # null when no second genre
        " ",
        null_handling="skip",
    )

    # --- users: demographics, preferred genres depending on age group -------------------------
    age = rng.choice(len(_AGE_GROUPS), size=n_users, p=_AGE_PROBS)
    country = rng.choice(len(_COUNTRIES), size=n_users, p=_COUNTRY_PROBS)
    genre_size = np.bincount(item_genre_flat, minlength=n_genres)
    affinity = np.exp(rng.normal(0.0, 1.0, (len(_AGE_GROUPS), n_genres)))
    with np.errstate(divide="ignore"):
        log_w = np.log(np.sqrt(genre_size)[None, :] * affinity[age])  # (users, genres)
    keys = log_w + rng.gumbel(size=(n_users, n_genres))  # Gumbel top-k = weighted sampling
    pref = np.argsort(-keys, axis=1, kind="stable")[:, :3]  # (users, 3)
    n_pref = np.minimum(
        rng.choice(3, size=n_users, p=(0.3, 0.45, 0.25)) + 1, np.count_nonzero(genre_size)
    )
    user_bits = np.zeros(n_users, np.int64)
    for j in range(3):
        user_bits |= np.where(j < n_pref, 1 << pref[:, j], 0)

    # --- interactions per user: 2 each plus a heavy-tailed share of the rest ------------------
    activity = np.exp(rng.normal(0.0, 1.0, n_users))
    counts = 2 + rng.multinomial(n_interactions - 2 * n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users), counts)
    first_of_user = np.concatenate([[0], np.cumsum(counts)[:-1]])
    is_first = np.zeros(n_interactions, bool)
    is_first[first_of_user] = True

    # Fresh draws: preferred genre (popularity-weighted inside it) or global popularity.
    order = np.argsort(item_genre_flat, kind="stable")
    member_genre = item_genre_flat[order]
    member_item = np.repeat(np.arange(n_items), n_item_genres)[order]
    member_cum = np.cumsum(popularity[member_item])
    genre_lo = np.searchsorted(member_genre, np.arange(n_genres), side="left")
    genre_hi = np.searchsorted(member_genre, np.arange(n_genres), side="right")
    cum_before = np.concatenate([[0.0], member_cum])
    pick = (rng.random(n_interactions) * n_pref[user]).astype(np.int64)
    genre = pref[user, pick]
    lo, hi = cum_before[genre_lo[genre]], cum_before[genre_hi[genre]]
    member = np.searchsorted(member_cum, lo + rng.random(n_interactions) * (hi - lo), side="right")
    from_genre = member_item[np.minimum(member, genre_hi[genre] - 1)]
    global_cum = np.cumsum(popularity)
    from_global = np.minimum(
        np.searchsorted(global_cum, rng.random(n_interactions) * global_cum[-1], side="right"),
        n_items - 1,
    )
    fresh_item = np.where(rng.random(n_interactions) < _P_PREFERRED, from_genre, from_global)

    # Sessions, then successor chains: step k after a fresh draw f is successor^k(f).
    new_session = is_first | (rng.random(n_interactions) < _P_NEW_SESSION)
    is_fresh = new_session | (rng.random(n_interactions) >= _P_SUCCESSOR)
    index = np.arange(n_interactions)
    last_fresh = np.maximum.accumulate(np.where(is_fresh, index, 0))
    item = cycle[(cycle_pos[fresh_item[last_fresh]] + (index - last_fresh)) % n_items]

    # Time: short gaps inside a session, long ones between sessions.
    gap = np.where(
        new_session,
        1800 + rng.exponential(2 * 86_400, n_interactions),
        5 + rng.exponential(90, n_interactions),
    ).astype(np.int64)
    gap[is_first] = 0
    elapsed = np.cumsum(gap)
    user_start = _START + rng.integers(0, 90 * 86_400, n_users)
    ts = user_start[user] + elapsed - elapsed[first_of_user][user]

    in_pref = (user_bits[user] & item_bits[item]) != 0
    purchase = rng.random(n_interactions) < np.where(in_pref, _P_PURCHASE[1], _P_PURCHASE[0])
    engagement = np.where(
        in_pref, rng.beta(4.0, 2.0, n_interactions), rng.beta(2.0, 4.0, n_interactions)
    )
    value = np.where(purchase, 1.0, np.round(np.maximum(engagement, 1e-3), 3))

    # --- tables -------------------------------------------------------------------------------
    user_ids, item_ids = _ids("u", n_users), _ids("i", n_items)
    interactions = pa.table(
        {
            "user_id": user_ids.take(pa.array(user)),
            "item_id": item_ids.take(pa.array(item)),
            "timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "event_type": pa.array(["click", "purchase"], pa.string()).take(
                pa.array(purchase.astype(np.int8))
            ),
            "event_value": pa.array(value, pa.float64()),
        }
    )
    items = pa.table(
        {
            "item_id": item_ids,
            "genres": _list_array(item_offsets, genre_names.take(pa.array(item_genre_flat))),
            "price": pa.array(price, pa.float64()),
            "title": title,
        }
    )
    users = pa.table(
        {
            "user_id": user_ids,
            "age_group": pa.array(_AGE_GROUPS, pa.string()).take(pa.array(age)),
            "country": pa.array(_COUNTRIES, pa.string()).take(pa.array(country)),
        }
    )
    user_list, item_list = user_ids.to_pylist(), item_ids.to_pylist()
    return SyntheticData(
        interactions=interactions,
        items=items,
        users=users,
        schemas=_schemas(),
        preferred_genres={
            u: tuple(GENRES[g] for g in pref[i, : n_pref[i]]) for i, u in enumerate(user_list)
        },
        successor={i: item_list[s] for i, s in zip(item_list, successor.tolist(), strict=True)},
    )
