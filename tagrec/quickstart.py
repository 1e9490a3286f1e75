"""The quickstart's data and demos, per task (`tagrec quickstart`, what `make demo` runs).

`prepare(data, out_dir, seed)` turns a `--data` spec into dataset files + schemas and says which
recipe fits them by default:

| `--data` | datasets | default recipe (task) |
|---|---|---|
| `synthetic` | seeded interactions, items, users | hrnn-meta (next-item) |
| `movielens:PATH` | ml-100k / ml-1m / ml-latest | hrnn-meta (next-item) |
| `movielens:PATH`, user-tags recipe | + item tags (HetRec's with `tags_from`, else genres) | (utpm) |
| `hetrec:PATH` | HetRec 2011 tag assignments + item metadata | tag-popularity (user-tags) |
| `hetrec:PATH`, item-tags recipe | the same (movielens-2k's directors: creator nodes) | (graphtr) |
| `stackexchange:PATH` | Stack Exchange posts: text + tags | tag-cooccurrence (tag-set) |
| `intents:PATH` | intent corpus → simulated support sessions | session-tag-popularity (session-tags) |

`demo(task, client, group, campaign, sample)` shows what a campaign of the task answers (a user's
next items before and after real-time events; a user's tag profile before and after new ratings
(UTPM's fields are rebuilt at each request); one item's tags ranked for two users (the sample's
item with the most distinct tags: its taggers, then other users, are asked in turn and the first
two whose top 10 differ are shown, else the first two with `differ` false); the tags of posts
next to their true ones; the next tags along a support session) and times 100 sequential
requests. Only the SDK is used (no torch, no ray).

`QUICK_HYPERPARAMETERS` are what a recipe trains with in the quickstart where `--set` gives no value:
smaller than its defaults (SOG's), so the whole path takes minutes on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk import Client
from sdk.tasks import TaskId
from sdk.types import DatasetKind, Role, Schema

__all__ = ["DEFAULT_RECIPES", "QUICK_HYPERPARAMETERS", "Prepared", "demo", "prepare"]

HELD_OUT_POSTS = 3  # stackexchange: posts kept out of the import, for the demo to tag
ITEM_TAGS_TRIES = 10  # users asked about one item until two rankings differ
MAX_TAGS = 500  # a recommend-tags request's num_results limit: every candidate of the item

DEFAULT_RECIPES = {"synthetic": "hrnn-meta", "movielens": "hrnn-meta", "hetrec": "tag-popularity",
                   "stackexchange": "tag-cooccurrence", "intents": "session-tag-popularity"}
# What the quickstart trains a recipe with where `--set` names no value (each --set KEY=VALUE
# overrides one): the recipe's defaults made smaller, so the whole path takes minutes on a CPU.
# Measured on 2 busy cores with Stack Exchange robotics (2,771 posts): SOG's defaults (5 epochs,
# max_length 256) had done 3 epochs of the first of two fits after 12 min; these, 7 min end to end.
QUICK_HYPERPARAMETERS: dict[str, dict[str, Any]] = {"sog": {"epochs": 2, "max_length": 128}}


@dataclass
class Prepared:
    kind: str  # synthetic, movielens, hetrec, stackexchange, intents
    paths: dict[DatasetKind, Path]
    schemas: dict[DatasetKind, Schema]
    notes: dict[str, Any]


def prepare(data: str, out_dir: str | Path, seed: int = 0, task: TaskId | None = None,
            tags_from: str | Path | None = None) -> Prepared:
    """Dataset files for `--data` (see the module docstring); ValueError on an unknown spec.

    A MovieLens folder for a user-tags recipe (`task`) gets item tags (`sdk.movielens_tags`): a
    HetRec MovieLens-2k folder's (`tags_from`), else the genres.
    """
    kind, _, path = data.partition(":")
    if tags_from is not None and not (kind == "movielens" and task == TaskId.USER_TAGS):
        raise ValueError("tags_from joins HetRec tags to movielens:PATH for a user-tags recipe (e.g. utpm), "
                         f"not to {kind!r} data for task {task.value if task else None!r}")
    if kind == "movielens" and path and task == TaskId.USER_TAGS:
        from sdk import movielens_tags

        tagged = movielens_tags.convert(path, out_dir, tags_from=tags_from)
        return Prepared(kind, dict(tagged.paths), dict(tagged.schemas),
                        {"tags": "hetrec" if tags_from is not None else "genres",
                         "format": tagged.format, "skipped_rows": tagged.skipped_rows})
    if kind == "synthetic" and not path:
        from sdk.synthetic import generate

        synth = generate(seed=seed)
        return Prepared(kind, synth.write_csv(out_dir), synth.schemas, {})
    if kind in ("movielens", "hetrec", "stackexchange", "intents") and path:
        module = __import__(f"sdk.{kind}", fromlist=["convert"])
        extra = {"seed": seed} if kind == "intents" else {}
        converted = module.convert(path, out_dir, **extra)
        notes = {k: getattr(converted, k) for k in ("format", "stats", "skipped_rows")
                 if hasattr(converted, k)}
        if kind == "stackexchange":  # the demo asks about posts the campaign's model never saw
            notes["held_out_posts"] = _hold_out_posts(converted.items, converted.schemas[DatasetKind.ITEMS])
        return Prepared(kind, dict(converted.paths), dict(converted.schemas), notes)
    raise ValueError(f"--data must be synthetic, movielens:PATH, hetrec:PATH, stackexchange:PATH or "
                     f"intents:PATH, got {data!r}")


def _hold_out_posts(path: Path, schema: Schema, n: int = HELD_OUT_POSTS) -> list[dict[str, Any]]:
    """The last `n` posts with text and tags, taken out of the items file (so neither the
    evaluated nor the served model trains on them): each one's text fields and true tags. A file
    of fewer than 2n such posts keeps them all (and none is held out)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    text_cols = [f.name for f in schema.fields if f.type.value == "text"]
    tags = schema.field_for(Role.TAGS)
    if tags is None or not text_cols:
        return []
    has_tags = pc.fill_null(pc.greater(pc.list_value_length(table.column(tags.name)), 0), False)
    rows = [i for i in pc.indices_nonzero(has_tags).to_pylist()
            if any(table.column(c)[i].is_valid and table.column(c)[i].as_py() for c in text_cols)]
    if len(rows) < 2 * n:
        return []
    held = rows[-n:]
    keep = pa.array([i not in set(held) for i in range(table.num_rows)])
    posts = [{"fields": {c: str(r[c])[:2000] for c in text_cols if r.get(c)}, "tags": list(r[tags.name])}
             for r in table.take(held).to_pylist()]
    pq.write_table(table.filter(keep), path)
    return posts


def sample(prepared: Prepared, limit: int = 2000) -> dict[str, Any]:
    """Ids and texts from the start of the files, to ask the campaign about."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def head(kind: DatasetKind) -> list[dict[str, Any]]:
        path = prepared.paths.get(kind)
        if path is None:
            return []
        if path.suffix == ".parquet":
            table = pq.ParquetFile(path).iter_batches(batch_size=limit)
            return pa.Table.from_batches([next(table)]).to_pylist()
        return pacsv.read_csv(path).slice(0, limit).to_pylist()

    def col(kind: DatasetKind, role: Role) -> str | None:
        schema = prepared.schemas.get(kind)
        f = schema.field_for(role) if schema else None
        return f.name if f else None

    inter, items = head(DatasetKind.INTERACTIONS), head(DatasetKind.ITEMS)
    u, i, s, t = (col(DatasetKind.INTERACTIONS, r) for r in (Role.USER_ID, Role.ITEM_ID, Role.SESSION_ID,
                                                              Role.TAGS))
    out: dict[str, Any] = {
        "users": list(dict.fromkeys(r[u] for r in inter if u and r.get(u) is not None)),
        "items": list(dict.fromkeys(r[i] for r in inter if i and r.get(i) is not None)),
        "sessions": list(dict.fromkeys(r[s] for r in inter if s and r.get(s) is not None)),
        "organisations": list(dict.fromkeys(r["organisation"] for r in inter + items
                                            if r.get("organisation"))),
    }
    if u and i and out["users"]:  # the user-tags demo: the lightest user of the sample rates new items
        rows_of: dict[Any, int] = {}
        for r in inter:
            rows_of[r.get(u)] = rows_of.get(r.get(u), 0) + 1
        out["light_user"] = light = min(out["users"], key=lambda x: rows_of.get(x, 0))  # the first of ties
        known_tags: dict[str, list[str]] = {}
        item_tag_col = col(DatasetKind.ITEMS, Role.ITEM_ID), col(DatasetKind.ITEMS, Role.TAGS)
        for r in items if all(item_tag_col) else []:
            known_tags.setdefault(str(r[item_tag_col[0]]), list(r.get(item_tag_col[1]) or []))
        for r in inter:
            if t and r.get(i) is not None and r.get(t):
                known_tags.setdefault(str(r[i]), list(r[t]))
        seen = {r[i] for r in inter if r.get(u) == light}
        fresh = [x for x in reversed(out["items"]) if x not in seen and (known_tags.get(x) or not known_tags)]
        out["new_ratings"] = [{"item_id": x, **({"tags": known_tags[x][:50]} if known_tags.get(x) else {})}
                              for x in fresh[:3]]
        types = [r.get("event_type") for r in inter if r.get("event_type")]
        out["event_type"] = types[0] if types else None
    if u and i:  # item-tags: the item given the most distinct tags (then by the most users)
        by_item: dict[str, list[str]] = {}
        tags_of: dict[str, set[str]] = {}
        for r in inter:
            if r.get(i) is not None and r.get(u) is not None and (not t or r.get(t)):
                by_item.setdefault(r[i], []).append(r[u])
                tags_of.setdefault(r[i], set()).update(map(str, r.get(t) or ()) if t else ())
        if by_item:
            best = max(by_item, key=lambda k: (len(tags_of[k]), len(set(by_item[k]))))  # the first of ties
            out["tagged_item"] = best  # its taggers are asked first, then the sample's other users
            out["its_users"] = list(dict.fromkeys(by_item[best] + out["users"]))
    text_cols = [f.name for f in prepared.schemas[DatasetKind.ITEMS].fields if f.type.value == "text"] \
        if DatasetKind.ITEMS in prepared.schemas else []
    tag_col = col(DatasetKind.ITEMS, Role.TAGS)
    out["posts"] = prepared.notes.get("held_out_posts") or [
        {"fields": {c: str(r[c])[:2000] for c in text_cols if r.get(c)},
         "tags": list(r.get(tag_col) or []) if tag_col else []}
        for r in items[-20:] if any(r.get(c) for c in text_cols)]
    out["posts_held_out"] = bool(prepared.notes.get("held_out_posts"))
    return out


def _latency(call: Callable[[int], Any], requests: int = 100) -> dict[str, float]:
    times = []
    for k in range(requests):
        t0 = time.perf_counter()
        call(k)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"requests": requests, "p50_ms": round(times[len(times) // 2], 2),
            "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 2)}


def _item_tags_pair(client: Client, group: str, campaign: str, item: str | None,
                    users: list[Any], tries: int = ITEM_TAGS_TRIES) -> dict[str, Any]:
    """Ask the item's tags for up to `tries` users in turn; the first user the model answers and the
    first one after whose top 10 differs from theirs (fallback answers are counted, not compared)."""
    shown: dict[Any, list[str]] = {}
    fallback: list[Any] = []
    first, pair, candidates = None, (), 0
    for user in users[:tries]:
        answer = client.campaigns.recommend_tags(group, campaign, user_id=user, item_id=item,
                                                 num_results=MAX_TAGS)
        shown[user] = [x.tag for x in answer.tags[:10]]
        if answer.fallback:
            fallback.append(user)
            continue
        candidates = max(candidates, len(answer.tags))
        if first is None:
            first = user
        elif shown[user] != shown[first]:
            pair = (first, user)
            break
    differ = bool(pair)
    if not differ:  # no two answers differ: show the first two the model answered (else asked)
        pair = tuple([x for x in shown if x not in fallback][:2] or list(shown)[:2])
    return {"item": item, "candidates": candidates, "tags_for_users": {x: shown[x] for x in pair},
            "differ": differ, "users_asked": len(shown), "fallback_users": fallback}


def demo(task: TaskId, client: Client, group: str, campaign: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Ask the campaign what its task answers (see the module docstring); a JSON-able summary."""
    c = client.campaigns
    if task == TaskId.NEXT_ITEM:
        users = facts["users"]
        user = users[0]
        before = c.recommend(group, campaign, user_id=user, num_results=10)
        clicked = [x.item_id for x in before.items[5:8]]  # the user picks items 6-8 of the list
        now = time.time()
        client.events.put(group, user_id=user, session_id="quickstart", events=[
            {"item_id": item, "event_id": f"quickstart-{k}", "event_type": "click", "event_value": 1.0,
             "timestamp": now + k} for k, item in enumerate(clicked)])
        after = c.recommend(group, campaign, user_id=user, num_results=10)
        return {"user": user, "events": clicked, "before": [x.item_id for x in before.items],
                "after": [x.item_id for x in after.items],
                **_latency(lambda k: c.recommend(group, campaign, user_id=users[k % len(users)]))}
    if task == TaskId.USER_TAGS:
        users = facts["users"]
        profiles = {u: [(t.tag, t.score) for t in c.recommend_tags(group, campaign, user_id=u).tags]
                    for u in users[:2]}
        user, ratings = facts.get("light_user", users[0]), facts.get("new_ratings") or []
        before = [(t.tag, t.score) for t in c.recommend_tags(group, campaign, user_id=user).tags]
        now = time.time()
        if ratings:  # the user rates three more items 5 stars: the profile moves at the next request
            client.events.put(group, user_id=user, session_id="quickstart", events=[
                {**r, "event_id": f"quickstart-{k}", "event_type": facts.get("event_type") or "rating",
                 "event_value": 5.0, "timestamp": now + k} for k, r in enumerate(ratings)])
        after = [(t.tag, t.score) for t in c.recommend_tags(group, campaign, user_id=user).tags]
        return {"profiles": profiles, "user": user, "events": ratings, "before": before, "after": after,
                "unknown_user_fallback":
                    c.recommend_tags(group, campaign, user_id="quickstart-nobody").fallback,
                **_latency(lambda k: c.recommend_tags(group, campaign, user_id=users[k % len(users)]))}
    if task == TaskId.ITEM_TAGS:
        item, users = facts.get("tagged_item"), facts.get("its_users") or facts["users"]
        return {**_item_tags_pair(client, group, campaign, item, users),
                **_latency(lambda k: c.recommend_tags(group, campaign, user_id=users[k % len(users)],
                                                      item_id=item))}
    if task == TaskId.TAG_SET:
        posts = facts["posts"][:3]
        shown = [{"title": next(iter(p["fields"].values()), "")[:80], "true_tags": p["tags"],
                  "held_out": bool(facts.get("posts_held_out")),
                  "generated": [t.tag for t in c.generate_tags(group, campaign, fields=p["fields"]).tags]}
                 for p in posts]
        return {"posts": shown, **_latency(
            lambda k: c.generate_tags(group, campaign, fields=posts[k % len(posts)]["fields"]))}
    # session-tags: a new session in an organisation, clicking the first tag offered each time
    org = (facts.get("organisations") or [None])[0]
    steps, events = [], []
    for _ in range(3):
        answer = c.next_tags(group, campaign, session_id="quickstart-session", organisation=org,
                             events=events)
        steps.append({"offered": [t.tag for t in answer.tags],
                      "questions": [q.item_id for q in answer.questions]})
        if not answer.tags:
            break
        events = [*events, {"tag": answer.tags[0].tag}]
    return {"organisation": org, "steps": steps, **_latency(
        lambda k: c.next_tags(group, campaign, session_id=f"quickstart-{k}", organisation=org))}
