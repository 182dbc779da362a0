"""Opaque tokens through real Envoy 1.40: scopegate introspects them (RFC 7662) at a
fake auth server (envoy/introspection_server.py) through the bootstrap's `auth`
cluster, pausing the request until the answer comes.

One Envoy serves the module. Each test uses tokens of its own, so caches do not
leak between tests; the outage test runs last (it stops the server).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest

from introspection_server import IntrospectionServer
from scopegate_envoy import Response, ScopegateEnvoy, http_request
from scopegate_tokens import AUDIENCE, ISSUER, default_rules

READ = "svc-a:orders:read"
SUB_HEADER = "x-scopegate-sub"
SCOPE_HEADER = "x-scopegate-scope"
CLIENT_ID, CLIENT_SECRET = "svc-a", "s3cret&x y"


def plugin_config() -> dict[str, Any]:
    return {
        "realm": "svc-a",
        "providers": [{
            "name": "opaque",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "claims_to_headers": {"sub": "x-scopegate-sub", "scope": "x-scopegate-scope"},
            "introspection": {
                "cluster": "auth", "authority": "auth.test", "path": "/oauth/introspect",
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "timeout_ms": 1000, "cache_ttl_seconds": 300, "negative_cache_ttl_seconds": 2,
            },
        }],
        "rules": default_rules(),
    }


@pytest.fixture(scope="module")
def auth() -> Iterator[IntrospectionServer]:
    srv = IntrospectionServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def gw(auth: IntrospectionServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScopegateEnvoy]:
    workdir = tmp_path_factory.mktemp("envoy-introspection")
    g = ScopegateEnvoy(plugin_config(), auth_port=auth.port, workdir=str(workdir),
                       component_log_level="wasm:debug")
    g.start()
    try:
        yield g
    finally:
        g.stop()
        print(f"\n[scopegate] Envoy log: {g.log_path}")


def get(gw: ScopegateEnvoy, token: str, path: str = "/orders", timeout: float = 15.0) -> Response:
    return http_request(gw.url, "GET", path, headers={"authorization": f"Bearer {token}"},
                        timeout=timeout)


def explain(gw: ScopegateEnvoy, r: Response) -> str:
    time.sleep(1.0)  # Envoy writes its log lazily
    lines = [ln for ln in gw.log().splitlines() if "wasm" in ln][-15:]
    return (f"status={r.status} headers={r.headers} body={r.text!r}\n--- Envoy wasm log ---\n"
            + "\n".join(lines))


def reason(r: Response) -> str | None:
    body = r.json_or_none()
    return body.get("reason") if isinstance(body, dict) else None


def counter(gw: ScopegateEnvoy, which: str) -> int:
    for k, v in gw.stats("scopegate\\.introspection\\.").items():
        if k == f"wasmcustom.scopegate.introspection.opaque.{which}" and v.strip().isdigit():
            return int(v)
    return -1


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def active(auth: IntrospectionServer, token: str, scope: str = READ, sub: str = "alice") -> None:
    now = int(time.time())
    auth.token(token, scope=scope, sub=sub, iss=ISSUER, aud=AUDIENCE, client_id="web",
               iat=now, exp=now + 300)


def test_an_opaque_token_is_allowed_with_the_scopes_the_server_returns(gw, auth):
    active(auth, "tok-allowed", scope=f"{READ} svc-a:other")
    r = get(gw, "tok-allowed")
    assert r.status == 200 and r.headers.get("x-echo") == "1", explain(gw, r)
    seen = r.json()
    assert seen["headers"].get(SUB_HEADER) == "alice", seen["headers"]
    assert seen["headers"].get(SCOPE_HEADER) == f"{READ} svc-a:other", seen["headers"]
    assert "authorization" not in seen["headers"], "the token is not forwarded"
    calls = auth.requests("tok-allowed")
    assert len(calls) == 1
    c = calls[0]
    assert c.method == "POST" and c.path == "/oauth/introspect"
    assert c.headers["content-type"] == "application/x-www-form-urlencoded"
    assert c.form == {"token": "tok-allowed", "token_type_hint": "access_token"}
    # The scopes are enforced: a write needs what the server did not grant.
    r = http_request(gw.url, "POST", "/orders", headers={"authorization": "Bearer tok-allowed"})
    assert r.status == 403 and reason(r) == "insufficient_scope", explain(gw, r)


def test_the_second_request_is_served_from_the_cache(gw, auth):
    active(auth, "tok-cached", sub="bob")
    for _ in range(5):
        r = get(gw, "tok-cached")
        assert r.status == 200, explain(gw, r)
        assert r.json()["headers"].get(SUB_HEADER) == "bob"
    assert auth.count("tok-cached") == 1, "the server saw one call"
    assert wait_until(lambda: counter(gw, "cache_hit_local") >= 4, 3), gw.stats("introspection")


def test_concurrent_requests_with_one_token_share_a_call(gw, auth):
    active(auth, "tok-concurrent")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: get(gw, "tok-concurrent"), range(6)))
    assert [r.status for r in results] == [200] * 6, [explain(gw, r) for r in results if r.status != 200]
    assert auth.count("tok-concurrent") <= 2, auth.count("tok-concurrent")


def test_an_inactive_token_is_401_token_inactive(gw, auth):
    auth.revoke("tok-inactive")
    r = get(gw, "tok-inactive")
    assert r.status == 401 and reason(r) == "token_inactive", explain(gw, r)
    www = r.headers.get("www-authenticate", "")
    assert www.startswith('Bearer realm="svc-a"') and 'error="invalid_token"' in www, www
    assert "x-echo" not in r.headers
    # Cached for negative_cache_ttl_seconds (2 s), then asked again.
    r = get(gw, "tok-inactive")
    assert r.status == 401 and auth.count("tok-inactive") == 1
    time.sleep(2.2)
    active(auth, "tok-inactive")
    r = get(gw, "tok-inactive")
    assert r.status == 200, explain(gw, r)
    assert auth.count("tok-inactive") == 2


def test_a_jwt_shaped_garbage_token_is_not_introspected(gw, auth):
    before = auth.count()
    r = get(gw, "aaa.bbb.ccc")
    assert r.status == 401 and reason(r) == "malformed", explain(gw, r)
    assert auth.count() == before


def test_server_errors_answer_503_and_are_counted(gw, auth):
    auth.fail(status=500)
    try:
        r = get(gw, "tok-500")
        assert r.status == 503 and reason(r) == "introspection_unavailable", explain(gw, r)
        assert "x-echo" not in r.headers
        assert wait_until(lambda: counter(gw, "failed.status") >= 1, 3), gw.stats("introspection")
    finally:
        auth.heal()


def test_server_down_answers_503_never_an_allow(gw, auth):
    active(auth, "tok-down")
    auth.stop_listening()
    t = time.monotonic()
    r = get(gw, "tok-down")
    assert r.status == 503 and reason(r) == "introspection_unavailable", explain(gw, r)
    assert time.monotonic() - t < 1.0 + 2.0 + 1.5, "503 later than the timeout allows"
    assert "x-echo" not in r.headers
    assert wait_until(lambda: counter(gw, "failed.connect") + counter(gw, "failed.timeout") >= 1, 3), \
        gw.stats("introspection")
    assert any("introspection failed" in ln for ln in gw.wasm_log_lines()), gw.wasm_log_lines()[-10:]
    assert not any("tok-down" in ln or "s3cret" in ln for ln in gw.log().splitlines()), \
        "neither the token nor the secret is logged"
