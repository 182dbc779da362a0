"""Remote JWKS through real Envoy 1.40: scopegate fetches its keys from a fake auth
server (envoy/jwks_server.py) through the bootstrap's `auth` cluster.

One Envoy serves most of this module (fixture `gw`). Its providers each play one
scenario against their own path on the same fake auth server, so a test that makes
"its" auth endpoint fail or rotate keys disturbs no other test:

| provider | issuer               | keys from                                   | used by |
|----------|----------------------|---------------------------------------------|---------|
| main     | https://auth.test    | remote /jwks, one key per asymmetric alg     | algorithms, attacks |
| oidc     | https://oidc.test    | discovery (host oidc.test) -> /oidc/keys     | discovery |
| oidc-bad | https://oidcbad.test | discovery naming another issuer              | discovery refused |
| pem      | https://pem.test     | pem_keys (RSA, P-384, Ed25519)               | PEM |
| hmac     | https://hmac.test    | hmac_secrets                                 | HMAC |
| mixed    | https://mixed.test   | remote /mixed-jwks (RSA + oct), hmac_secrets | oct keys ignored |
| rot      | https://rot.test     | remote /rot-jwks, min refetch 2 s            | rotation |
| count    | https://count.test   | remote /count-jwks, min refetch 1 s          | counters |
| slow     | https://slow.test    | remote /slow-jwks that never answers, 1 s    | timeout |
| lag      | https://lag.test     | remote /lag-jwks, timeout 900 ms             | slow refetch |
| retry    | https://retry.test   | remote /retry-jwks, 1 s timeout              | failed refetch |
| stale    | https://stale.test   | remote /stale-jwks, cache 10 s, 1 s timeout  | stale keys (last) |

Start-up behaviour (the first request waits for the first fetch; the auth server
down from the start) needs an Envoy of its own: those tests start one each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from envoy_stats import prometheus_samples, text_counters
from jwks_server import CLOSE, DISCOVERY_PATH, GARBAGE, HANG, SLEEP, JwksServer
from scopegate_envoy import Response, ScopegateEnvoy, http_request
from scopegate_tokens import (ASYMMETRIC_ALGS, AUDIENCE, b64url, default_rules, generate_private_key,
                              hand_made_jwt, public_jwk, public_pem, sign_jwt, signing_input,
                              unsigned_token)

READ = "svc-a:orders:read"
SUB_HEADER = "x-scopegate-sub"
LOG_LEVEL = "wasm:debug"   # one log line per decision, for the failure messages


# --------------------------------------------------------------------------- helpers

def claims(iss: str, sub: str = "alice", ttl: int = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"iss": iss, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl,
                         "scope": READ}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def get(gw: ScopegateEnvoy, token: str | None, path: str = "/orders", timeout: float = 15.0) -> Response:
    h = {} if token is None else {"authorization": f"Bearer {token}"}
    return http_request(gw.url, "GET", path, headers=h, timeout=timeout)


def explain(gw: ScopegateEnvoy, r: Response) -> str:
    time.sleep(1.0)  # Envoy writes its log lazily: let the decision line reach the file
    lines = [ln for ln in gw.log().splitlines() if "wasm" in ln][-15:]
    return (f"status={r.status} headers={r.headers} body={r.text!r}\n--- Envoy wasm log (last lines) ---\n"
            + "\n".join(lines))


def allowed(gw: ScopegateEnvoy, r: Response, sub: str | None = None) -> dict:
    assert r.status == 200 and r.headers.get("x-echo") == "1", explain(gw, r)
    seen = r.json()
    if sub is not None:
        assert [v for k, v in seen["header_list"] if k == SUB_HEADER] == [sub], seen["header_list"]
    assert "authorization" not in seen["headers"], seen["headers"]
    return seen


def refused(gw: ScopegateEnvoy, r: Response, status: int, reason: str) -> dict:
    assert r.status == status, explain(gw, r)
    assert "x-echo" not in r.headers, "a refused request reached the upstream"
    body = r.json_or_none()
    assert isinstance(body, dict) and body.get("reason") == reason, explain(gw, r)
    if status == 401:
        www = r.headers.get("www-authenticate", "")
        assert www.startswith('Bearer realm="svc-a"') and 'error="invalid_token"' in www, www
    return body


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """pred() until truthy (returned) or `timeout` seconds (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def text_stats(gw: ScopegateEnvoy) -> dict[str, int]:
    """Envoy's text /stats for the filter's JWKS counters (`wasmcustom.` prefixed)."""
    return text_counters(gw, "scopegate\\.jwks\\.")


def prometheus_stats(gw: ScopegateEnvoy) -> dict[str, int]:
    """/stats/prometheus sample lines `name{} value` of the filter's JWKS counters."""
    return prometheus_samples(gw, "scopegate_jwks_")


def counter(gw: ScopegateEnvoy, provider: str, which: str) -> int:
    return text_stats(gw).get(f"wasmcustom.scopegate.jwks.{provider}.{which}", -1)


def remote(path: str | None, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"cluster": "auth", "authority": kw.pop("authority", "auth.test"),
                         "timeout_ms": 2000, "cache_duration_seconds": 600,
                         "min_refetch_interval_seconds": 30}
    if path is not None:
        r["path"] = path
    r.update(kw)
    return r


def provider(name: str, issuer: str, **kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "issuer": issuer, "audiences": [AUDIENCE],
                         "claims_to_headers": {"sub": SUB_HEADER}}
    p.update(kw)
    return p


def plugin_config(*providers: dict[str, Any]) -> dict[str, Any]:
    return {"realm": "svc-a", "providers": list(providers), "rules": default_rules()}


@contextmanager
def envoy(cfg: dict[str, Any], auth: JwksServer, workdir: Path) -> Iterator[ScopegateEnvoy]:
    gw = ScopegateEnvoy(cfg, auth_port=auth.port, workdir=str(workdir), component_log_level=LOG_LEVEL)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


class Keys:
    """Private keys by name, generated once per module."""

    def __init__(self) -> None:
        self._k: dict[str, Any] = {}

    def __call__(self, name: str, alg: str) -> Any:
        if name not in self._k:
            self._k[name] = generate_private_key(alg)
        return self._k[name]


# --------------------------------------------------------------------------- the module Envoy

MAIN = "https://auth.test"
OIDC, OIDCBAD = "https://oidc.test", "https://oidcbad.test"
PEM, HMAC, MIXED = "https://pem.test", "https://hmac.test", "https://mixed.test"
ROT, COUNT, SLOW, STALE = "https://rot.test", "https://count.test", "https://slow.test", "https://stale.test"
LAG, RETRY = "https://lag.test", "https://retry.test"
REMOTE_OK = ("main", "oidc", "mixed", "rot", "count", "stale", "lag", "retry")


def kid_for(alg: str) -> str:
    return f"main-{alg.lower()}"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def secrets() -> dict[str, bytes]:
    # b"\xfb\xff" makes the standard base64 form contain "+" and "/".
    return {"hs-std": b"\xfb\xff" + os.urandom(30), "hs-512": os.urandom(64),
            "inline-hs": os.urandom(32), "remote-hs": os.urandom(32)}


@pytest.fixture(scope="module")
def auth(keys: Keys, secrets: dict[str, bytes]) -> Iterator[JwksServer]:
    srv = JwksServer()
    srv.serve_jwks("/jwks", {"keys": [public_jwk(keys(kid_for(a), a), kid_for(a), a) for a in ASYMMETRIC_ALGS]})
    srv.serve_discovery(OIDC, "https://oidc.test/oidc/keys", host="oidc.test")
    srv.serve_jwks("/oidc/keys", {"keys": [public_jwk(keys("oidc-es", "ES256"), "oidc-es", "ES256")]},
                   host="oidc.test")
    srv.serve_discovery("https://evil.test", "https://oidcbad.test/oidcbad/keys", host="oidcbad.test")
    srv.serve_jwks("/oidcbad/keys", {"keys": [public_jwk(keys("oidcbad", "ES256"), "oidcbad", "ES256")]},
                   host="oidcbad.test")
    srv.serve_jwks("/mixed-jwks", {"keys": [
        public_jwk(keys("mixed-rsa", "RS256"), "mixed-rsa", "RS256"),
        {"kty": "oct", "kid": "remote-hs", "alg": "HS256", "use": "sig", "k": b64url(secrets["remote-hs"])}]})
    srv.serve_jwks("/rot-jwks", {"keys": [public_jwk(keys("rot-a", "ES256"), "rot-a", "ES256")]})
    srv.serve_jwks("/count-jwks", {"keys": [public_jwk(keys("count-1", "RS256"), "count-1", "RS256")]})
    srv.fail("/slow-jwks", mode=HANG)
    srv.serve_jwks("/stale-jwks", {"keys": [public_jwk(keys("stale", "EdDSA"), "stale", "EdDSA")]})
    srv.serve_jwks("/lag-jwks", {"keys": [public_jwk(keys("lag-a", "ES256"), "lag-a", "ES256")]})
    srv.serve_jwks("/retry-jwks", {"keys": [public_jwk(keys("retry", "ES256"), "retry", "ES256")]})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def gw(keys: Keys, secrets: dict[str, bytes], auth: JwksServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScopegateEnvoy]:
    cfg = plugin_config(
        provider("main", MAIN, algorithms=list(ASYMMETRIC_ALGS), remote_jwks=remote("/jwks")),
        provider("oidc", OIDC, remote_jwks=remote(None, authority="oidc.test", discovery=True)),
        provider("oidc-bad", OIDCBAD, remote_jwks=remote(None, authority="oidcbad.test", discovery=True)),
        provider("pem", PEM, pem_keys=[
            {"kid": "pem-rsa", "pem": public_pem(keys("pem-rsa", "RS256")), "alg": "RS256"},
            {"kid": "pem-ec", "pem": public_pem(keys("pem-ec", "ES384"))},
            {"kid": "pem-ed", "pem": public_pem(keys("pem-ed", "EdDSA")), "alg": "EdDSA"}]),
        provider("hmac", HMAC, hmac_secrets=[
            {"kid": "hs-std", "secret": base64.b64encode(secrets["hs-std"]).decode()},
            {"kid": "hs-512", "secret": b64url(secrets["hs-512"]), "alg": "HS512"}]),
        provider("mixed", MIXED, algorithms=["RS256", "HS256"], remote_jwks=remote("/mixed-jwks"),
                 hmac_secrets=[{"kid": "inline-hs", "secret": b64url(secrets["inline-hs"])}]),
        provider("rot", ROT, remote_jwks=remote("/rot-jwks", min_refetch_interval_seconds=2)),
        provider("count", COUNT, remote_jwks=remote("/count-jwks", min_refetch_interval_seconds=1)),
        provider("slow", SLOW, remote_jwks=remote("/slow-jwks", timeout_ms=1000)),
        provider("stale", STALE, remote_jwks=remote("/stale-jwks", timeout_ms=1000, cache_duration_seconds=10)),
        provider("lag", LAG, remote_jwks=remote("/lag-jwks", timeout_ms=900, min_refetch_interval_seconds=1)),
        provider("retry", RETRY, remote_jwks=remote("/retry-jwks", timeout_ms=1000)),
    )
    with envoy(cfg, auth, tmp_path_factory.mktemp("envoy-remote-jwks")) as g:
        loaded = wait_until(lambda: all(counter(g, p, "fetch_ok") >= 1 for p in REMOTE_OK), 15)
        assert loaded, f"remote JWKS not all fetched: {text_stats(g)}; auth server saw {auth.counts()}"
        yield g


# --------------------------------------------------------------------------- every algorithm

@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_every_asymmetric_algorithm_verifies_with_keys_from_the_remote_jwks(gw, keys, alg):
    tok = sign_jwt(claims(MAIN, sub=f"user-{alg}"), keys(kid_for(alg), alg), alg, kid_for(alg))
    allowed(gw, get(gw, tok), sub=f"user-{alg}")


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_every_algorithm_refuses_another_key_under_a_known_kid(gw, keys, alg):
    rogue = keys(f"rogue-{alg}", alg)
    refused(gw, get(gw, sign_jwt(claims(MAIN), rogue, alg, kid_for(alg))), 401, "bad_signature")


def test_the_fetch_is_a_get_through_the_auth_cluster(gw, auth):
    seen = auth.requests("/jwks")
    assert seen, auth.counts()
    first = seen[0]
    assert first.method == "GET"
    assert first.headers.get("host") == "auth.test"
    assert first.headers.get("x-envoy-expected-rq-timeout-ms") == "2000", first.headers


# --------------------------------------------------------------------------- attacks

def attacker_headers(auth: JwksServer, keys: Keys) -> dict[str, dict[str, Any]]:
    evil = keys("evil", "RS256")
    evil_jwk = public_jwk(evil, "evil", "RS256")
    auth.serve_jwks("/evil-jwks", {"keys": [evil_jwk]})
    auth.serve_json("/evil-x5u", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return {
        "jku": {"jku": f"{auth.url}/evil-jwks"},
        "x5u": {"x5u": f"{auth.url}/evil-x5u"},
        "jwk": {"jwk": evil_jwk},
        "x5c": {"x5c": [base64.b64encode(b"not really a certificate").decode()]},
        "crit": {"crit": ["exp"]},
    }


@pytest.mark.parametrize("field", ["jku", "x5u", "jwk", "x5c", "crit"])
def test_token_naming_its_own_key_is_refused_and_nothing_is_fetched(gw, auth, keys, field):
    extra = attacker_headers(auth, keys)[field]
    tok = sign_jwt(claims(MAIN), keys("evil", "RS256"), "RS256", "evil", **extra)
    refused(gw, get(gw, tok), 401, "header_not_allowed")
    assert auth.count("/evil-jwks") == 0 and auth.count("/evil-x5u") == 0, auth.counts()


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(gw, alg):
    h = {"alg": alg, "typ": "JWT", "kid": kid_for("RS256")}
    tok = hand_made_jwt(h, claims(MAIN), b"")
    refused(gw, get(gw, tok), 401, "algorithm_not_allowed")
    refused(gw, get(gw, unsigned_token(claims(MAIN), kid=kid_for("RS256"))), 401, "algorithm_not_allowed")


def test_hs256_keyed_with_the_rsa_public_key_pem_is_refused(gw, keys):
    """Key confusion: the attacker knows the RSA public key and uses its PEM as an
    HMAC secret. The main provider allows no HS* algorithm."""
    kid = kid_for("RS256")
    pem = public_pem(keys(kid, "RS256")).encode()
    h = {"alg": "HS256", "typ": "JWT", "kid": kid}
    c = claims(MAIN)
    sig = hmac.new(pem, signing_input(h, c), hashlib.sha256).digest()
    refused(gw, get(gw, hand_made_jwt(h, c, sig)), 401, "algorithm_not_allowed")


def test_hs256_keyed_with_the_pem_is_refused_where_hs256_is_allowed(gw, keys):
    """Same confusion on a provider that allows HS256 (inline secret) and RS256 (remote):
    the RSA key is never an HMAC key, so no key has that kid for HS256."""
    pem = public_pem(keys("mixed-rsa", "RS256")).encode()
    h = {"alg": "HS256", "typ": "JWT", "kid": "mixed-rsa"}
    c = claims(MIXED)
    sig = hmac.new(pem, signing_input(h, c), hashlib.sha256).digest()
    refused(gw, get(gw, hand_made_jwt(h, c, sig)), 401, "unknown_kid")


@pytest.mark.parametrize("alg,size", [("ES256", 64), ("ES384", 96), ("ES512", 132)])
def test_psychic_signature_of_zeros_is_refused(gw, alg, size):
    """CVE-2022-21449: r = s = 0 must never verify."""
    h = {"alg": alg, "typ": "JWT", "kid": kid_for(alg)}
    refused(gw, get(gw, hand_made_jwt(h, claims(MAIN), b"\0" * size)), 401, "bad_signature")


def test_expired_token_from_remote_key_is_refused(gw, keys):
    tok = sign_jwt(claims(MAIN, ttl=-3600), keys(kid_for("ES256"), "ES256"), "ES256", kid_for("ES256"))
    refused(gw, get(gw, tok), 401, "token_expired")


def test_wrong_audience_is_refused(gw, keys):
    tok = sign_jwt(claims(MAIN, aud="svc-b"), keys(kid_for("PS256"), "PS256"), "PS256", kid_for("PS256"))
    refused(gw, get(gw, tok), 401, "audience_not_allowed")


def test_tampered_payload_is_refused(gw, keys):
    k = keys(kid_for("EdDSA"), "EdDSA")
    h, _, s = sign_jwt(claims(MAIN), k, "EdDSA", kid_for("EdDSA")).split(".")
    forged = sign_jwt(claims(MAIN, scope=f"{READ} svc-a:admin"), k, "EdDSA", kid_for("EdDSA")).split(".")[1]
    refused(gw, get(gw, f"{h}.{forged}.{s}"), 401, "bad_signature")


# --------------------------------------------------------------------------- OIDC discovery

def test_oidc_discovery_leads_to_the_jwks(gw, auth, keys):
    allowed(gw, get(gw, sign_jwt(claims(OIDC, sub="dora"), keys("oidc-es", "ES256"), "ES256", "oidc-es")),
            sub="dora")
    asked = [s.path for s in auth.requests() if s.headers.get("host") == "oidc.test"]
    # discovery first (each of Envoy's two VMs may run it), then the jwks_uri path
    assert asked and asked[0] == DISCOVERY_PATH and "/oidc/keys" in asked, asked
    assert set(asked) == {DISCOVERY_PATH, "/oidc/keys"}, asked


def test_discovery_naming_another_issuer_is_not_trusted(gw, auth, keys):
    tok = sign_jwt(claims(OIDCBAD), keys("oidcbad", "ES256"), "ES256", "oidcbad")
    refused(gw, get(gw, tok), 503, "jwks_unavailable")
    asked = [s.path for s in auth.requests() if s.headers.get("host") == "oidcbad.test"]
    assert DISCOVERY_PATH in asked and "/oidcbad/keys" not in asked, asked
    assert counter(gw, "oidc-bad", "fetch_ok") == 0
    assert counter(gw, "oidc-bad", "fetch_failed") >= 1
    assert any("oidc-bad" in ln and "issuer" in ln for ln in gw.wasm_log_lines()), gw.wasm_log_lines()[-10:]


# --------------------------------------------------------------------------- static keys next to remote ones

@pytest.mark.parametrize("kid,alg", [("pem-rsa", "RS256"), ("pem-ec", "ES384"), ("pem-ed", "EdDSA")])
def test_pem_keys_verify(gw, keys, kid, alg):
    allowed(gw, get(gw, sign_jwt(claims(PEM, sub=kid), keys(kid, alg), alg, kid)), sub=kid)
    refused(gw, get(gw, sign_jwt(claims(PEM), keys(f"rogue-{alg}", alg), alg, kid)), 401, "bad_signature")


def test_pem_provider_algorithms_are_those_of_its_keys(gw, keys):
    # pem-rsa is declared RS256 and no other key is RSA: PS256 is not an algorithm of this provider
    tok = sign_jwt(claims(PEM), keys("pem-rsa", "RS256"), "PS256", "pem-rsa")
    refused(gw, get(gw, tok), 401, "algorithm_not_allowed")
    # ES384 is (pem-ec), but not under the kid of the RSA key
    tok = sign_jwt(claims(PEM), keys("pem-ec", "ES384"), "ES384", "pem-rsa")
    refused(gw, get(gw, tok), 401, "unknown_kid")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hmac_secrets_verify(gw, secrets):
    allowed(gw, get(gw, sign_jwt(claims(HMAC, sub="h1"), secrets["hs-std"], "HS256", "hs-std")), sub="h1")
    allowed(gw, get(gw, sign_jwt(claims(HMAC, sub="h2"), secrets["hs-512"], "HS512", "hs-512")), sub="h2")
    refused(gw, get(gw, sign_jwt(claims(HMAC), os.urandom(32), "HS256", "hs-std")), 401, "bad_signature")
    # The provider's algorithms are its keys': HS256 (the 32-byte secret) and HS512 (hs-512).
    refused(gw, get(gw, sign_jwt(claims(HMAC), secrets["hs-std"], "HS384", "hs-std")), 401,
            "algorithm_not_allowed")
    # a 32-byte secret does not serve HS512; hs-512 is declared HS512 only
    refused(gw, get(gw, sign_jwt(claims(HMAC), secrets["hs-std"], "HS512", "hs-std")), 401, "unknown_kid")
    refused(gw, get(gw, sign_jwt(claims(HMAC), secrets["hs-512"], "HS256", "hs-512")), 401, "unknown_kid")


def test_symmetric_keys_from_the_remote_jwks_are_ignored(gw, keys, secrets):
    allowed(gw, get(gw, sign_jwt(claims(MIXED, sub="m1"), keys("mixed-rsa", "RS256"), "RS256", "mixed-rsa")),
            sub="m1")
    allowed(gw, get(gw, sign_jwt(claims(MIXED, sub="m2"), secrets["inline-hs"], "HS256", "inline-hs")), sub="m2")
    tok = sign_jwt(claims(MIXED), secrets["remote-hs"], "HS256", "remote-hs")
    refused(gw, get(gw, tok), 401, "unknown_kid")
    assert any("remote-hs" in ln and "symmetric" in ln for ln in gw.wasm_log_lines()), gw.wasm_log_lines()[-10:]


# --------------------------------------------------------------------------- rotation, timeouts, counters

def test_key_rotation_is_picked_up_by_an_unknown_kid_refetch(gw, auth, keys):
    old = keys("rot-a", "ES256")
    allowed(gw, get(gw, sign_jwt(claims(ROT, sub="before"), old, "ES256", "rot-a")), sub="before")
    n0, ok0 = auth.count("/rot-jwks"), counter(gw, "rot", "fetch_ok")

    # A kid the auth server does not have either: one refetch, then 401 unknown_kid.
    ghost = keys("ghost", "ES256")
    refused(gw, get(gw, sign_jwt(claims(ROT), ghost, "ES256", "ghost")), 401, "unknown_kid")
    t_refetch = time.monotonic()
    assert auth.count("/rot-jwks") == n0 + 1, auth.counts()
    # Within min_refetch_interval_seconds (2): refused at once, no second refetch.
    refused(gw, get(gw, sign_jwt(claims(ROT), ghost, "ES256", "ghost-2")), 401, "unknown_kid")
    assert auth.count("/rot-jwks") == n0 + 1, auth.counts()

    # The auth server rotates to a new key with a new kid.
    new = keys("rot-b", "ES256")
    auth.serve_jwks("/rot-jwks", {"keys": [public_jwk(new, "rot-b", "ES256")]})
    time.sleep(max(0.0, t_refetch + 2.1 - time.monotonic()))
    allowed(gw, get(gw, sign_jwt(claims(ROT, sub="after"), new, "ES256", "rot-b")), sub="after")
    assert auth.count("/rot-jwks") == n0 + 2, auth.counts()
    assert counter(gw, "rot", "fetch_ok") == ok0 + 2, text_stats(gw)
    # the old key left the JWKS: its tokens are no longer accepted
    refused(gw, get(gw, sign_jwt(claims(ROT), old, "ES256", "rot-a")), 401, "unknown_kid")


def test_fetch_that_never_answers_gives_503_within_timeout_plus_one_second(gw, keys):
    tok = sign_jwt(claims(SLOW), keys("slow", "RS256"), "RS256", "slow")
    for _ in range(2):
        t = time.monotonic()
        r = get(gw, tok)
        took = time.monotonic() - t
        refused(gw, r, 503, "jwks_unavailable")
        assert took < 1.0 + 1.0 + 1.5, f"answered after {took:.2f}s (timeout_ms 1000)"
    assert counter(gw, "slow", "fetch_failed") >= 1 and counter(gw, "slow", "fetch_ok") == 0, text_stats(gw)


def test_fetch_counters_in_admin_stats_text_and_prometheus(gw, auth, keys):
    text, prom = text_stats(gw), prometheus_stats(gw)
    for p in REMOTE_OK + ("slow", "oidc-bad"):
        for which in ("fetch_ok", "fetch_failed", "adopted"):
            assert f"wasmcustom.scopegate.jwks.{p}.{which}" in text, sorted(text)
            # Prometheus: no `wasmcustom` prefix, `.` and `-` become `_`
            assert f"scopegate_jwks_{p.replace('-', '_')}_{which}" in prom, sorted(prom)
    for p in ("pem", "hmac"):  # no remote JWKS, no counters
        assert not any(f".jwks.{p}." in k for k in text), sorted(text)
    assert text["wasmcustom.scopegate.jwks.count.fetch_ok"] >= 1
    assert text["wasmcustom.scopegate.jwks.count.fetch_failed"] == 0
    assert prom["scopegate_jwks_count_fetch_ok"] == text["wasmcustom.scopegate.jwks.count.fetch_ok"]
    ok0 = text["wasmcustom.scopegate.jwks.count.fetch_ok"]

    # The auth server fails; an unknown kid asks for a refetch, which fails.
    auth.fail("/count-jwks", status=500)
    k2 = keys("count-2", "RS256")
    tok2 = sign_jwt(claims(COUNT, sub="c2"), k2, "RS256", "count-2")
    refused(gw, get(gw, tok2), 401, "unknown_kid")
    assert wait_until(lambda: counter(gw, "count", "fetch_failed") >= 1, 3), text_stats(gw)
    assert wait_until(lambda: prometheus_stats(gw).get("scopegate_jwks_count_fetch_failed", 0) >= 1, 3)
    assert counter(gw, "count", "fetch_ok") == ok0

    # It recovers with the new key: the next fetch succeeds and the token passes.
    auth.serve_jwks("/count-jwks", {"keys": [public_jwk(k2, "count-2", "RS256")]})
    r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(get(gw, tok2)), 8, step=0.3)
    assert r, f"token of the new key never accepted; stats {text_stats(gw)}; auth saw {auth.counts()}"
    allowed(gw, r, sub="c2")
    assert counter(gw, "count", "fetch_ok") >= ok0 + 1, text_stats(gw)
    assert prometheus_stats(gw)["scopegate_jwks_count_fetch_ok"] >= ok0 + 1


def test_unknown_kid_waits_for_a_refetch_that_answers_within_its_timeout(gw, auth, keys):
    """timeout_ms 900, the auth server answers the refetch in 0.6 s with the new key:
    the token must be accepted (the wait lasts timeout rounded up to seconds + 2 s, the
    refetch ends at most one tick + 0.6 s after the request)."""
    new = keys("lag-b", "ES256")
    auth.serve_jwks("/lag-jwks", {"keys": [public_jwk(new, "lag-b", "ES256")]})
    auth.fail("/lag-jwks", mode=SLEEP, delay=0.6)
    n0 = auth.count("/lag-jwks")
    tok = sign_jwt(claims(LAG, sub="lagged"), new, "ES256", "lag-b")
    try:
        # arrive 0.7 s into a wall-clock second: the filter's deadline is 0.3 s away
        assert wait_until(lambda: 0.70 <= time.time() % 1 < 0.75, 2, step=0.005)
        t = time.monotonic()
        r = get(gw, tok)
        took = time.monotonic() - t
        assert auth.wait_for("/lag-jwks", n0 + 1, timeout=2), auth.counts()
        fetch_at = auth.requests("/lag-jwks")[n0].at - t
        # the refetch did bring the key: once it has answered, the same token passes
        time.sleep(max(0.0, t + fetch_at + 0.6 + 0.4 - time.monotonic()))
        allowed(gw, get(gw, tok), sub="lagged")
        assert r.status == 200, (
            f"after {took:.2f}s (refetch sent {fetch_at:.2f}s after the request, answered 0.6s later, "
            f"timeout_ms 900): " + explain(gw, r))
        allowed(gw, r, sub="lagged")
    finally:
        auth.serve_jwks("/lag-jwks", {"keys": [public_jwk(new, "lag-b", "ES256")]})


def test_one_unknown_kid_costs_one_refetch_even_when_it_fails(gw, auth, keys):
    """min_refetch_interval_seconds 30, keys fresh for 600 s: one token with an unknown kid
    while the auth server answers 500 causes one fetch, not a retry loop."""
    allowed(gw, get(gw, sign_jwt(claims(RETRY), keys("retry", "ES256"), "ES256", "retry")))
    n0 = auth.count("/retry-jwks")
    auth.fail("/retry-jwks", status=500)
    try:
        refused(gw, get(gw, sign_jwt(claims(RETRY), keys("ghost", "ES256"), "ES256", "ghost")), 401,
                "unknown_kid")
        assert auth.count("/retry-jwks") == n0 + 1, auth.counts()
        t = auth.requests("/retry-jwks")[n0].at
        time.sleep(max(0.0, t + 3.5 - time.monotonic()))   # backoff would retry at +1 s and +3 s
        after = [round(s.at - t, 1) for s in auth.requests("/retry-jwks")[n0:]]
        assert len(after) == 1, f"fetches at +{after} s after one unknown-kid token (server answering 500)"
    finally:
        auth.serve_jwks("/retry-jwks", {"keys": [public_jwk(keys("retry", "ES256"), "retry", "ES256")]})


def test_stale_keys_are_kept_when_the_auth_server_fails(gw, auth, keys):
    """cache_duration_seconds 10: once the keys are older than that and every refresh
    has failed (500, then garbage, then a closed connection), tokens still verify."""
    k = keys("stale", "EdDSA")
    tok = sign_jwt(claims(STALE, sub="s"), k, "EdDSA", "stale")
    allowed(gw, get(gw, tok), sub="s")
    auth.fail("/stale-jwks", status=500)
    t_fail = time.monotonic()
    before = [s.at for s in auth.requests("/stale-jwks") if s.at < t_fail]
    assert before, auth.counts()
    last_ok = before[-1]
    ok0, failed0 = counter(gw, "stale", "fetch_ok"), counter(gw, "stale", "fetch_failed")
    n_fail = auth.count("/stale-jwks")
    try:
        # a refresh is attempted ahead of expiry (refresh_ahead 1 s, 1 s ticks) and refused
        assert auth.wait_for("/stale-jwks", n_fail + 1, timeout=12), auth.counts()
        refresh = auth.requests("/stale-jwks")[n_fail].at
        assert refresh < last_ok + 10 + 0.5, f"first refresh {refresh - last_ok:.2f}s after the fetch"
        # wait until the keys are past their cache duration (by our clock, with 1 s margin)
        time.sleep(max(0.0, last_ok + 10 + 1.0 - time.monotonic()))
        allowed(gw, get(gw, tok), sub="s")
        assert wait_until(lambda: counter(gw, "stale", "fetch_failed") > failed0, 3), text_stats(gw)
        assert counter(gw, "stale", "fetch_ok") == ok0, text_stats(gw)
        assert any("stale" in ln and "keeping the keys we have" in ln for ln in gw.wasm_log_lines())

        for mode in (GARBAGE, CLOSE):  # other ways to fail; the next retry meets them
            auth.fail("/stale-jwks", mode=mode)
            n = auth.count("/stale-jwks")
            assert auth.wait_for("/stale-jwks", n + 1, timeout=10), (mode, auth.counts())
            allowed(gw, get(gw, tok), sub="s")
        assert counter(gw, "stale", "fetch_ok") == ok0, text_stats(gw)
    finally:
        auth.serve_jwks("/stale-jwks", {"keys": [public_jwk(k, "stale", "EdDSA")]})


def test_filter_vm_is_still_healthy(gw, keys):
    allowed(gw, get(gw, sign_jwt(claims(MAIN), keys(kid_for("ES512"), "ES512"), "ES512", kid_for("ES512"))))
    log = gw.log()
    assert "panicked" not in log and "wasm_fail_stream" not in log, gw.log_tail()


# --------------------------------------------------------------------------- start-up (an Envoy each)

def single_provider_config(**remote_kw: Any) -> dict[str, Any]:
    return plugin_config(provider("main", MAIN, remote_jwks=remote("/jwks", **remote_kw)))


def test_first_request_waits_for_the_first_fetch(tmp_path, keys):
    k = keys("boot", "ES256")
    srv = JwksServer()
    srv.serve_jwks("/jwks", {"keys": [public_jwk(k, "boot", "ES256")]})
    srv.hold()    # every answer is parked until release()
    srv.start()
    try:
        # timeout_ms 10 s: the held fetch must not time out while Envoy starts
        with envoy(single_provider_config(timeout_ms=10000), srv, tmp_path) as g:
            tok = sign_jwt(claims(MAIN, sub="first"), k, "ES256", "boot")
            with ThreadPoolExecutor(max_workers=5) as pool:
                futures = [pool.submit(get, g, tok) for _ in range(5)]
                assert srv.wait_for("/jwks", 1, timeout=10), "Envoy never fetched the JWKS"
                time.sleep(0.5)
                assert srv.held >= 1, "the fetch is no longer held"
                assert not any(f.done() for f in futures), [f.result().status for f in futures if f.done()]
                released = time.monotonic()
                srv.release()
                results = [f.result(timeout=10) for f in futures]
            for r in results:
                allowed(g, r, sub="first")
            assert time.monotonic() - released < 3.0
            fetches = srv.count("/jwks")
            assert 1 <= fetches <= 2, f"{fetches} fetches for 5 waiting requests: {srv.counts()}"
            for _ in range(10):
                allowed(g, get(g, tok), sub="first")
            assert srv.count("/jwks") == fetches, srv.counts()
            assert counter(g, "main", "fetch_ok") >= 1 and counter(g, "main", "fetch_failed") == 0
    finally:
        srv.stop()


def test_auth_server_down_from_the_start_gives_503_until_it_comes_back(tmp_path, keys):
    k = keys("down", "RS256")
    srv = JwksServer()
    srv.serve_jwks("/jwks", {"keys": [public_jwk(k, "down", "RS256")]})
    srv.stop_listening()  # connection refused from the start
    try:
        with envoy(single_provider_config(timeout_ms=1000), srv, tmp_path) as g:
            tok = sign_jwt(claims(MAIN, sub="later"), k, "RS256", "down")
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                t = time.monotonic()
                r = get(g, tok)
                refused(g, r, 503, "jwks_unavailable")
                assert time.monotonic() - t < 1.0 + 1.0 + 1.5, "503 later than timeout + 1 s"
                time.sleep(0.1)
            assert wait_until(lambda: counter(g, "main", "fetch_failed") >= 1, 3), text_stats(g)
            assert counter(g, "main", "fetch_ok") == 0
            assert any("JWKS fetch failed" in ln for ln in g.wasm_log_lines()), g.wasm_log_lines()[-10:]

            srv.start()
            statuses = []

            def ok() -> Response | None:
                r = get(g, tok)
                statuses.append((r.status, (r.json_or_none() or {}).get("reason")))
                return r if r.status == 200 else None

            r = wait_until(ok, 20, step=0.25)
            assert r, f"never 200 after the auth server came back: {statuses[-5:]}; {text_stats(g)}"
            allowed(g, r, sub="later")
            assert all(s == (503, "jwks_unavailable") for s in statuses[:-1]), statuses
            assert counter(g, "main", "fetch_ok") >= 1
    finally:
        srv.stop()
