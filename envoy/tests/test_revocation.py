"""Token revocation through real Envoy 1.40: scopegate polls a fake revocation feed
(envoy/revocation_server.py) through the bootstrap's `auth` cluster and refuses what
it lists.

Each test starts its own Envoy and feed (the feed's state is the scenario). Polls are
every second; every wait is a bounded loop.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from revocation_server import RevocationServer
from scopegate_envoy import Response, ScopegateEnvoy, _admin_get, http_request
from scopegate_tokens import KeySet, default_rules

POLL = 1  # poll_interval_seconds


def rules() -> list[dict[str, Any]]:
    return default_rules() + [
        {"name": "admin", "match": {"prefix": "/admin"}, "require": "authenticated", "sensitive": True}]


def revocation(**extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"remote": {"cluster": "auth", "authority": "auth.test",
                                    "poll_interval_seconds": POLL, "timeout_ms": 500}}
    r.update(extra)
    return r


@contextmanager
def envoy(keys: KeySet, feed: RevocationServer, workdir: Path, **extra: Any) -> Iterator[ScopegateEnvoy]:
    cfg = keys.plugin_config(rules=rules(), revocation=revocation(**extra))
    gw = ScopegateEnvoy(cfg, auth_port=feed.port, workdir=str(workdir), component_log_level="wasm:debug")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


def get(gw: ScopegateEnvoy, token: str, path: str = "/orders") -> Response:
    return http_request(gw.url, "GET", path, headers={"authorization": f"Bearer {token}"}, timeout=10)


def explain(gw: ScopegateEnvoy, r: Response) -> str:
    time.sleep(1.0)  # Envoy writes its log lazily
    lines = [ln for ln in gw.log().splitlines() if "wasm" in ln][-15:]
    return f"status={r.status} body={r.text!r}\n--- Envoy wasm log ---\n" + "\n".join(lines)


def reason(r: Response) -> str:
    body = r.json_or_none()
    return body.get("reason", "") if isinstance(body, dict) else ""


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def counter(gw: ScopegateEnvoy, which: str) -> int:
    for k, v in gw.stats("scopegate\\.revocation\\.main\\.").items():
        if k.endswith(f".{which}") and v.strip().lstrip("-").isdigit():
            return int(v)
    return -1


@pytest.fixture
def keys() -> KeySet:
    return KeySet()


@pytest.fixture
def feed() -> Iterator[RevocationServer]:
    srv = RevocationServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def test_a_revoked_jti_is_refused_after_one_poll_interval(keys, feed, tmp_path):
    with envoy(keys, feed, tmp_path) as gw:
        now = int(time.time())
        tok = keys.rs256(keys.claims(jti="tok-1", iat=now - 5))
        other = keys.rs256(keys.claims(jti="tok-2", iat=now - 5))
        r = get(gw, tok)
        assert r.status == 200 and r.headers.get("x-echo") == "1", explain(gw, r)
        assert counter(gw, "poll_ok") >= 1
        feed.revoke_jti("tok-1", exp=now + 300)
        revoked_at = time.monotonic()
        # Bounded wait: one poll interval, plus the poll itself and a tick.
        r = wait_until(lambda: (lambda x: x if x.status == 401 else None)(get(gw, tok)), 5 * POLL)
        assert r, explain(gw, get(gw, tok))
        took = time.monotonic() - revoked_at
        print(f"\n[scopegate] token refused {took:.2f}s after its revocation (poll interval {POLL}s)")
        assert took <= POLL + 1.5, f"refused {took:.1f}s after the revocation"
        assert reason(r) == "token_revoked", explain(gw, r)
        www = r.headers.get("www-authenticate", "")
        assert www.startswith('Bearer realm="svc-a"') and 'error="invalid_token"' in www, www
        assert "x-echo" not in r.headers
        # The subject's other tokens pass.
        r = get(gw, other)
        assert r.status == 200, explain(gw, r)
        # Incremental polls: since=<cursor> and If-None-Match after the first answer.
        assert wait_until(lambda: any("since=" in s.path for s in feed.requests()), 3 * POLL)
        later = [s for s in feed.requests() if "since=" in s.path]
        assert later[-1].headers.get("if-none-match", "").startswith('"'), later[-1].headers
        assert wait_until(lambda: counter(gw, "poll_not_modified") >= 1, 3 * POLL), gw.stats("revocation")
        assert wait_until(lambda: counter(gw, "revoked") >= 1, 5), gw.stats("revocation")


def test_a_revoked_subject_refuses_tokens_issued_before(keys, feed, tmp_path):
    with envoy(keys, feed, tmp_path) as gw:
        now = int(time.time())
        old = keys.rs256(keys.claims(sub="bob", iat=now - 60))
        r = get(gw, old)
        assert r.status == 200, explain(gw, r)
        feed.revoke_subject("bob", revoked_before=now - 10, exp=now + 300)
        r = wait_until(lambda: (lambda x: x if x.status == 401 else None)(get(gw, old)), 5 * POLL)
        assert r and reason(r) == "token_revoked", explain(gw, get(gw, old))
        # Logged in again after the logout: a newer token passes.
        new = keys.rs256(keys.claims(sub="bob", iat=now))
        r = get(gw, new)
        assert r.status == 200, explain(gw, r)
        r = get(gw, keys.rs256(keys.claims(sub="carol", iat=now - 60)))
        assert r.status == 200, explain(gw, r)


def test_feed_down_beyond_the_staleness_bound_fails_closed(keys, feed, tmp_path):
    with envoy(keys, feed, tmp_path, max_staleness_seconds=3, on_stale="fail_closed") as gw:
        tok = keys.rs256(keys.claims(jti="t"))
        r = get(gw, tok)
        assert r.status == 200, explain(gw, r)
        feed.stop_listening()
        down_at = time.monotonic()
        # Still allowed within the bound, then 503 revocation_unavailable.
        r = wait_until(lambda: (lambda x: x if x.status == 503 else None)(get(gw, tok)), 10)
        assert r, explain(gw, get(gw, tok))
        assert time.monotonic() - down_at >= 2.0, "refused before the staleness bound"
        assert reason(r) == "revocation_unavailable", explain(gw, r)
        assert "x-echo" not in r.headers
        assert counter(gw, "poll_failed") >= 1
        assert wait_until(lambda: counter(gw, "stale_denied") >= 1, 5), gw.stats("revocation")
        # Back up: allowed again after a successful poll.
        feed.start()
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(get(gw, tok)), 5 * POLL + 2)
        assert r, explain(gw, get(gw, tok))
        time.sleep(1.0)
        log = gw.log()
        assert "revocation poll failed" in log and "revocation list is stale" in log


def test_a_sensitive_rule_fails_closed_while_ordinary_ones_fail_open(keys, feed, tmp_path):
    with envoy(keys, feed, tmp_path, max_staleness_seconds=2) as gw:
        tok = keys.rs256(keys.claims(jti="s"))
        assert get(gw, tok, "/admin").status == 200
        feed.fail(status=500)
        r = wait_until(lambda: (lambda x: x if x.status == 503 else None)(get(gw, tok, "/admin")), 10)
        assert r and reason(r) == "revocation_unavailable", explain(gw, get(gw, tok, "/admin"))
        r = get(gw, tok, "/orders")
        assert r.status == 200, explain(gw, r)
        assert wait_until(lambda: counter(gw, "stale_allowed") >= 1, 5), gw.stats("revocation")
