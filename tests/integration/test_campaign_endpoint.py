"""The campaign endpoint is no oracle: without a valid key every path answers the same 401 (an
existing campaign, its healthz, a missing one, any path of the catch-all app), another tenant's key
gets the 404 of a missing campaign, and only the exact routes are served (raw paths, over real
sockets: http.client sends a path byte for byte, dot segments and all)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sdk import Status
from tests.conftest import Platform
from tests.integration.test_campaigns_ray import _trained_group

MISSING = "/campaigns/000000000000000000000000"
VARYING = {"date", "x-request-id"}  # differ per request, not per path


def _send(base: str, method: str, path: str, key: str | None = None, *, header: str = "authorization",
          body: dict | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One request with `path` sent as given; (status, body, headers but the per-request ones)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[header] = key
    try:
        conn.request(method, path, body=json.dumps(body if body is not None else {}), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()
                                          if k.lower() not in VARYING}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def campaign(ray_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    client = ray_platform.client()
    group, solution, version, histories = _trained_group(client, tmp_path_factory.mktemp("data"))
    client.campaigns.create(group, name="c", solution=solution, solution_version=version)
    c = client.campaigns.wait(group, "c", timeout=180)
    assert c.status == Status.ACTIVE, c.failure_reason
    url = urlsplit(c.endpoint)
    return client, group, version, sorted(histories)[0], f"{url.scheme}://{url.netloc}", url.path


BAD_KEYS = [
    (None, "authorization"),
    ("", "authorization"),
    ("Bearer", "authorization"),
    ("Basic dGdyX3g6eA==", "authorization"),
    ("Bearer not-a-key", "authorization"),
    ("Bearer tgr_forged-but-well-formed", "authorization"),
    ("tgr_forged-but-well-formed", "x-api-key"),
]


@pytest.mark.integration
@pytest.mark.slow
def test_without_a_valid_key_every_path_answers_the_same_401(campaign) -> None:
    _, _, _, user, base, prefix = campaign
    paths = [("POST", f"{prefix}/recommend"), ("POST", f"{prefix}/rank"), ("GET", f"{prefix}/healthz"),
             ("GET", f"{prefix}/nothing"), ("POST", f"{prefix}/%2e%2e/recommend"), ("GET", prefix),
             ("POST", f"{MISSING}/recommend"), ("GET", f"{MISSING}/healthz"), ("GET", "/"),
             ("GET", "/random/path"), ("POST", "/campaigns/recommend")]
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
