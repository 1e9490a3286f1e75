"""The campaign endpoint is no oracle: without a valid key every path answers the same 401 (an
existing campaign, its healthz, a missing one, any path of the catch-all app), another tenant's key
gets the 404 of a missing campaign, and only the exact routes are served (raw paths, over real
sockets: http.client sends a path byte for byte, dot segments and all).

The tests here run on a next-item campaign, over the routes of every task's verbs; the helpers
below (`assert_no_oracle`, `assert_exact_routes`, `bad_inputs`) are called by the modules that
deploy the tag tasks' campaigns (test_tag_tasks_ray, test_tag_set_ray, test_session_tags_ray), so
every verb route of every task is checked on a campaign of that task without deploying another."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sdk import Status
from sdk.tasks import get_task, task_serving
from sdk.types import VERB_REQUESTS
from tests.conftest import Platform
from tests.integration.test_campaigns_ray import _trained_group

MISSING = "/campaigns/000000000000000000000000"
VARYING = {"date", "x-request-id"}  # differ per request, not per path
VERBS = tuple(VERB_REQUESTS)  # every runtime verb of every task: POST <endpoint>/<verb>
BAD_KEYS = [
    (None, "authorization"),
    ("", "authorization"),
    ("Bearer", "authorization"),
    ("Basic dGdyX3g6eA==", "authorization"),
    ("Bearer not-a-key", "authorization"),
    ("Bearer tgr_forged-but-well-formed", "authorization"),
    ("tgr_forged-but-well-formed", "x-api-key"),
]


def _send(base: str, method: str, path: str, key: str | None = None, *, header: str = "authorization",
          body: dict | bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One request with `path` sent as given (a bytes `body` as is, else as JSON); (status, body,
    headers but the per-request ones)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[header] = key
    data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {})
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()
                                          if k.lower() not in VARYING}
    finally:
        conn.close()


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """A campaign endpoint as (scheme://host:port, path prefix)."""
    url = urlsplit(endpoint)
    return f"{url.scheme}://{url.netloc}", url.path


def near_paths(prefix: str) -> list[tuple[str, str]]:
    """Every route a campaign can have under `prefix` (each task's verbs, healthz) and paths near them."""
    paths = [("GET", f"{prefix}/healthz"), ("GET", f"{prefix}/nothing"), ("GET", prefix),
             ("POST", f"{prefix}/")]
    for verb in VERBS:
        paths += [("POST", f"{prefix}/{verb}"), ("POST", f"{prefix}/{verb}/"), ("GET", f"{prefix}/{verb}"),
                  ("POST", f"{prefix}/%2e%2e/{verb}")]
    return paths


def assert_no_oracle(platform: Platform, endpoint: str, body: dict) -> None:
    """Without a valid key every route of the campaign at `endpoint` (and of a missing one) is the
    one 401, byte for byte; with another tenant's key each is the 404 of a missing campaign."""
    base, prefix = split_endpoint(endpoint)
    paths = near_paths(prefix) + [("POST", f"{MISSING}/{verb}") for verb in VERBS]
    answers = {(method, path, key, header): _send(base, method, path, key, header=header, body=body)
               for method, path in paths for key, header in BAD_KEYS}
    first = next(iter(answers.values()))
    assert first[0] == 401 and json.loads(first[1])["error"]["type"] == "unauthenticated"
    assert first[2].get("www-authenticate") == "Bearer" and b"solution_version" not in first[1]
    assert {k: v for k, v in answers.items() if v != first} == {}, first
    missing = _send(base, "POST", f"{MISSING}/{VERBS[0]}", f"Bearer {platform.key_a}", body=body)
    assert missing[0] == 404 and json.loads(missing[1])["error"]["type"] == "not_found"
    other = f"Bearer {platform.key_b}"
    different = {(method, path): got for method, path in near_paths(prefix)
                 if (got := _send(base, method, path, other, body=body)) != missing}
    assert different == {}, (missing, different)


def _wrong_paths(prefix: str, verb: str) -> list[tuple[str, str]]:
    """Paths near `<prefix>/<verb>` that name no route (dot segments, slashes, case, encodings)."""
    paths = [("POST", f"{prefix}/%2e%2e/{verb}"), ("POST", f"{prefix}/../{verb}"),
             ("POST", f"{prefix}/x/../{verb}"), ("POST", f"{prefix}/./{verb}"), ("POST", f"{prefix}//{verb}"),
             ("POST", f"{prefix}/{verb}/"), ("POST", f"{prefix}/{verb}/x"), ("POST", f"{prefix}/x/{verb}"),
             ("POST", f"{prefix}/%{ord(verb[0]):x}{verb[1:]}"), ("POST", f"{prefix}/{verb.upper()}"),
             ("GET", f"{prefix}/{verb}"), ("POST", f"{prefix}/healthz"), ("POST", prefix),
             ("POST", f"{prefix}/")]
    if "-" in verb:  # recommend-tags: not recommend_tags, nor recommend%2Dtags
        paths += [("POST", f"{prefix}/{verb.replace('-', sep)}") for sep in ("_", "%2D")]
    return paths


def assert_exact_routes(platform: Platform, endpoint: str, version: str, task: str,
                        bodies: dict[str, dict]) -> None:
    """The campaign's tenant gets exactly its task's verbs (`bodies`: a valid body per verb) and
    healthz; another task's verb is a 400 `wrong_task` naming the tasks that answer it (the body
    sent is empty: the verb is checked first); any other path near them is a 404."""
    base, prefix = split_endpoint(endpoint)
    key = f"Bearer {platform.key_a}"
    status, body, _ = _send(base, "GET", f"{prefix}/healthz", key)
    assert status == 200 and json.loads(body) == {"status": "ok", "solution_version": version, "task": task}
    assert set(bodies) == set(get_task(task).verbs)
    for verb, good in bodies.items():
        for path in (f"{prefix}/{verb}", f"{prefix}/{verb}?trace=1&x=%2e%2e"):
            status, answer, headers = _send(base, "POST", path, key, body=good)
            assert status == 200 and headers["content-type"] == "application/json", (path, answer)
            assert json.loads(answer)["solution_version"] == version
    for verb in set(VERBS) - set(bodies):
        status, answer, _ = _send(base, "POST", f"{prefix}/{verb}", key, body={})
        error = json.loads(answer)["error"] if status == 400 else {}
        assert error.get("type") == "wrong_task" and error.get("field") == "path", (verb, status, answer)
        serving = " or ".join(t.id.value for t in task_serving(verb))
        assert f"this campaign answers {task} requests" in error["message"], error
        assert f"{verb} is answered by {serving} campaigns" in error["message"], error
    served = {}
    for verb, good in bodies.items():
        for method, path in _wrong_paths(prefix, verb):
            status, answer, _ = _send(base, method, path, key, body=good)
            if status != 404 or json.loads(answer)["error"]["type"] != "not_found":
                served[(method, path)] = (status, answer[:200])
    assert served == {}, served


def error_of(answer: bytes) -> dict:
    """The `error` object of an answer body ({} when the body is no JSON error: a crash page)."""
    try:
        error = json.loads(answer).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


# Bodies every verb refuses alike: (body, status, error type).
ANY_VERB_REFUSES = [(b"", 400, "invalid_json"), (b"{", 400, "invalid_json"),
                    (b"{'a': 1}", 400, "invalid_json"), (b"\xff\xfe", 400, "invalid_json"),
                    (b"[]", 400, "invalid_input"),
                    (b"null", 400, "invalid_input"), (b'"text"', 400, "invalid_input"),
                    (json.dumps({"text": "w " * (64 << 10)}).encode(), 413, "payload_too_large")]


def post(platform: Platform, endpoint: str, verb: str, body: dict | bytes) -> tuple[int, bytes]:
    """POST `body` to `<endpoint>/<verb>` with tenant A's key; (status, answer body)."""
    base, prefix = split_endpoint(endpoint)
    status, answer, _ = _send(base, "POST", f"{prefix}/{verb}", f"Bearer {platform.key_a}", body=body)
    return status, answer


def cases(body: dict, field: str, *values: object, named: str | None = None) -> list[tuple[dict, str]]:
    """Bad-input cases: `body` with `field` set to each of `values`, each a 400 naming `named`
    (default `field`)."""
    return [({**body, field: value}, named or field) for value in values]


def bad_inputs(platform: Platform, endpoint: str, verb: str,
               cases: list[tuple[dict | bytes, str | None]]) -> dict[str, tuple[int, bytes]]:
    """POST each (body, field) case to `<endpoint>/<verb>`, then `ANY_VERB_REFUSES`; the answers
    that were not the expected error (empty: none). A case expects a 400 `invalid_input` whose
    `field` is `field` and whose message starts with it ("request" when no field is named)."""
    base, prefix = split_endpoint(endpoint)
    key = f"Bearer {platform.key_a}"
    wrong = {}
    for body, field in cases:
        status, answer, headers = _send(base, "POST", f"{prefix}/{verb}", key, body=body)
        error = error_of(answer) if headers.get("content-type") == "application/json" else {}
        if (status, error.get("type"), error.get("field")) != (400, "invalid_input", field) or \
                not error.get("message", "").startswith(f"{field or 'request'}: "):
            shown = json.dumps(body) if isinstance(body, dict) else repr(body)
            wrong[shown[:120]] = (status, answer[:300])
    for body, expected, type_ in ANY_VERB_REFUSES:
        status, answer, _ = _send(base, "POST", f"{prefix}/{verb}", key, body=body)
        if status != expected or error_of(answer).get("type") != type_:
            wrong[repr(body)[:120]] = (status, answer[:300])
    return wrong


@pytest.fixture(scope="module")
def campaign(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    client = ray_platform.client()
    group, solution, version, histories = _trained_group(client, tmp_path_factory.mktemp("data"))
    client.campaigns.create(group, name="c", solution=solution, solution_version=version)
    c = client.campaigns.wait(group, "c", timeout=180)
    assert c.status == Status.ACTIVE, c.failure_reason
    url = urlsplit(c.endpoint)
    return client, group, version, sorted(histories)[0], f"{url.scheme}://{url.netloc}", url.path


@pytest.mark.integration
@pytest.mark.slow
def test_without_a_valid_key_every_path_answers_the_same_401(campaign) -> None:
    _, _, _, user, base, prefix = campaign
    paths = [("POST", f"{prefix}/recommend"), ("POST", f"{prefix}/rank"), ("GET", f"{prefix}/healthz"),
             ("GET", f"{prefix}/nothing"), ("POST", f"{prefix}/%2e%2e/recommend"), ("GET", prefix),
             ("POST", f"{MISSING}/recommend"), ("GET", f"{MISSING}/healthz"), ("GET", "/"),
             ("GET", "/random/path"), ("POST", "/campaigns/recommend")]
    for verb in VERBS:  # every task's verbs, on this campaign, on a missing one, on no campaign
        paths += [("POST", f"{prefix}/{verb}"), ("POST", f"{MISSING}/{verb}"), ("POST", f"/campaigns/{verb}")]
    answers = {}
    for method, path in paths:
        for key, header in BAD_KEYS:
            answers[(method, path, key, header)] = _send(base, method, path, key, header=header,
                                                         body={"user_id": user})
    first = next(iter(answers.values()))
    assert first[0] == 401 and json.loads(first[1])["error"]["type"] == "unauthenticated"
    assert first[2].get("www-authenticate") == "Bearer"
    assert b"solution_version" not in first[1]
    different = {k: v for k, v in answers.items() if v != first}
    assert different == {}, (first, different)


@pytest.mark.integration
@pytest.mark.slow
def test_another_tenant_gets_the_404_of_a_missing_campaign(campaign, ray_platform: Platform) -> None:
    _, _, _, user, base, prefix = campaign
    a, b = f"Bearer {ray_platform.key_a}", f"Bearer {ray_platform.key_b}"
    missing = _send(base, "POST", f"{MISSING}/recommend", a, body={"user_id": user})
    assert missing[0] == 404 and json.loads(missing[1])["error"]["type"] == "not_found"
    cases = [("POST", f"{prefix}/recommend", b), ("POST", f"{prefix}/rank", b),
             ("GET", f"{prefix}/healthz", b), ("GET", f"{prefix}/nothing", b),
             ("POST", f"{prefix}/recommend/", b), ("POST", f"{MISSING}/recommend", b),
             ("GET", f"{MISSING}/healthz", a), ("GET", "/random/path", a), ("GET", "/", b)]
    for verb in VERBS:  # every task's verbs, on this campaign and on a missing one
        cases += [("POST", f"{prefix}/{verb}", b), ("POST", f"{MISSING}/{verb}", a)]
    different = {}
    for method, path, key in cases:
        got = _send(base, method, path, key, body={"user_id": user, "items": ["i1"]})
        if got != missing:
            different[(method, path, key[-6:])] = got
    assert different == {}, (missing, different)


@pytest.mark.integration
@pytest.mark.slow
def test_only_the_exact_routes_are_served(campaign, ray_platform: Platform) -> None:
    _, _, version, user, base, prefix = campaign
    key = f"Bearer {ray_platform.key_a}"
    status, body, _ = _send(base, "GET", f"{prefix}/healthz", key)
    assert status == 200 and json.loads(body)["solution_version"] == version
    for path in (f"{prefix}/recommend", f"{prefix}/recommend?trace=1&x=%2e%2e"):
        status, body, _ = _send(base, "POST", path, key, body={"user_id": user, "num_results": 3})
        assert status == 200 and len(json.loads(body)["items"]) == 3, (path, body)
    status, body, _ = _send(base, "POST", f"{prefix}/rank", key, body={"user_id": user, "items": ["i1"]})
    assert status == 200, body
    digest = prefix.rsplit("/", 1)[-1]
    wrong = [("POST", f"{prefix}/%2e%2e/recommend"), ("POST", f"{prefix}/../recommend"),
             ("POST", f"{prefix}/x/../recommend"), ("POST", f"{prefix}/./recommend"),
             ("POST", f"{prefix}//recommend"), ("POST", f"/campaigns//{digest}/recommend"),
             ("POST", f"{prefix}/recommend/"), ("POST", f"{prefix}/recommend/x"),
             ("POST", f"{prefix}/x/recommend"), ("POST", f"{prefix}/%72ecommend"),
             ("POST", f"{prefix}/RECOMMEND"), ("POST", f"{prefix}/rank/"), ("GET", f"{prefix}/healthz/"),
             ("GET", f"{prefix}/x/healthz"), ("GET", f"{prefix}/recommend"), ("POST", f"{prefix}/healthz"),
             ("POST", prefix), ("POST", f"{prefix}/")]
    served = {}
    for method, path in wrong:
        status, body, _ = _send(base, method, path, key, body={"user_id": user, "items": ["i1"]})
        if status != 404 or json.loads(body)["error"]["type"] != "not_found":
            served[(method, path)] = (status, body[:200])
    assert served == {}, served


@pytest.mark.integration
@pytest.mark.slow
def test_another_tasks_verbs_are_a_400_wrong_task(campaign, ray_platform: Platform) -> None:
    _, _, version, user, base, prefix = campaign
    bodies = {"recommend": {"user_id": user, "num_results": 3}, "rank": {"user_id": user, "items": ["i1"]}}
    assert_exact_routes(ray_platform, base + prefix, version, "next-item", bodies)


HUGE = 10**400  # valid JSON, an int no float holds


@pytest.mark.integration
@pytest.mark.slow
def test_a_huge_context_timestamp_is_a_400_naming_it(campaign, ray_platform: Platform) -> None:
    _, _, _, user, base, prefix = campaign
    context = {"timestamp": HUGE}
    assert bad_inputs(ray_platform, base + prefix, "recommend", [({"user_id": user, "context": context},
                                                                  "context")]) == {}
    assert bad_inputs(ray_platform, base + prefix, "rank", [({"user_id": user, "items": ["i1"],
                                                             "context": context}, "context")]) == {}


@pytest.mark.integration
@pytest.mark.slow
def test_a_deleted_campaign_answers_like_a_missing_one(campaign, ray_platform: Platform) -> None:
    client, group, _, user, base, prefix = campaign
    client.campaigns.delete(group, "c")
    a = f"Bearer {ray_platform.key_a}"
    assert _send(base, "POST", f"{prefix}/recommend", a, body={"user_id": user}) == \
        _send(base, "POST", f"{MISSING}/recommend", a, body={"user_id": user})
    assert _send(base, "POST", f"{prefix}/recommend", body={"user_id": user}) == \
        _send(base, "POST", f"{MISSING}/recommend", body={"user_id": user})


# --- the key cache, in process (no Ray): lookups off the event loop, one read per key -------------

def _request(headers: dict[str, str], path: str = "/x") -> object:
    from starlette.requests import Request

    return Request({"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                    "query_string": b"", "headers": [(k.lower().encode(), v.encode())
                                                     for k, v in headers.items()]})


def test_catch_all_checks_keys_off_the_event_loop_once_per_key(tmp_path: Path, monkeypatch) -> None:
    import serving.campaign as campaign_mod
    from store import Store, StoreConfig
    from store.tenants import create_tenant

    config = StoreConfig(uri=f"file://{tmp_path / 'store'}")
    key = create_tenant(Store(config).registry, "tenant-a")
    release = threading.Event()
    lookups: list[str] = []
    real = campaign_mod.resolve_api_key

    def slow_lookup(registry, api_key):  # the store read of a miss: blocks until the loop runs
        lookups.append(api_key)
        assert release.wait(10), "the key lookup ran on the event loop (it blocked it)"
        return real(registry, api_key)

    monkeypatch.setattr(campaign_mod, "resolve_api_key", slow_lookup)
    app = campaign_mod.NotFoundApp(config.as_dict())

    async def scenario() -> list[int]:
        calls = [asyncio.ensure_future(app(_request({"Authorization": f"Bearer {key}"})))
                 for _ in range(5)]
        calls.append(asyncio.ensure_future(app(_request({"Authorization": "Bearer tgr_unknown"}))))
        await asyncio.sleep(0.05)
        release.set()  # reached only if the lookups left the loop free
        first = [r.status_code for r in await asyncio.gather(*calls)]
        again = await app(_request({"Authorization": f"Bearer {key}"}))
        return first + [again.status_code]

    codes = asyncio.run(scenario())
    assert codes == [404] * 5 + [401, 404]
    assert sorted(lookups) == sorted([key, "tgr_unknown"])  # concurrent misses shared one read
    no_store = campaign_mod.NotFoundApp()  # deployed before it knew the store: nothing is valid
    resp = asyncio.run(no_store(_request({"Authorization": f"Bearer {key}"})))
    assert resp.status_code == 401 and resp.body == campaign_mod.UNAUTHENTICATED
