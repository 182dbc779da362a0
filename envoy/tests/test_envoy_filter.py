"""scopegate.wasm in real Envoy 1.40 (V8), in front of an echo upstream.

Every request goes through a real listener; the echo upstream's JSON body shows what
the filter forwarded. One Envoy per module (fixture `gateway`); the invalid-config
tests start their own Envoy each and expect it to refuse the config.
"""

from __future__ import annotations

import json
import time

import pytest

from scopegate_envoy import Response, ScopegateEnvoy, http_request
from scopegate_tokens import AUDIENCE, KeySet, unsigned_token

READ = "svc-a:orders:read"


# --------------------------------------------------------------------------- helpers

def get(gw: ScopegateEnvoy, path: str, token: str | None = None, method: str = "GET",
        headers: dict[str, str] | None = None, body: str | None = None) -> Response:
    h = dict(headers or {})
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    return http_request(gw.url, method, path, headers=h, body=body)


def upstream_saw(r: Response) -> dict:
    """The echo upstream's view of the forwarded request (fails if Envoy answered itself)."""
    assert r.status == 200, f"expected the request to be forwarded, got {r.status}: {r.text}"
    assert r.headers.get("x-echo") == "1", f"reply did not come from the upstream: {r.headers} {r.text}"
    return r.json()


def forwarded_values(seen: dict, name: str) -> list[str]:
    return [v for k, v in seen["header_list"] if k == name]


def denial(r: Response, status: int, reason: str | None = None) -> dict:
    """Asserts a local reply from the filter with `status` and JSON body `reason`."""
    assert r.status == status, f"expected {status}, got {r.status}: headers={r.headers} body={r.text}"
    assert "x-echo" not in r.headers, "a denied request reached the upstream"
    body = r.json_or_none()
    assert isinstance(body, dict), f"denial body is not a JSON object: {r.text!r}"
    if reason is not None:
        assert body.get("reason") == reason, f"expected reason {reason!r}, got body {body}"
    return body


def invalid_token(r: Response, reason: str | None) -> dict:
    body = denial(r, 401, reason)
    www = r.headers.get("www-authenticate", "")
    assert www.startswith('Bearer realm="svc-a"'), www
    assert 'error="invalid_token"' in www, www
    assert "error_description=" in www, www
    return body


# --------------------------------------------------------------------------- allowed

def test_public_route_is_forwarded_without_token(gateway):
    seen = upstream_saw(get(gateway, "/healthz"))
    assert seen["method"] == "GET" and seen["path"] == "/healthz"


def test_rs256_token_with_scope_is_forwarded_with_sub_and_without_authorization(gateway, keys):
    tok = keys.token(sub="alice", scope=f"{READ} svc-a:other")
    seen = upstream_saw(get(gateway, "/orders", tok))
    assert seen["path"] == "/orders"
    assert forwarded_values(seen, "x-scopegate-sub") == ["alice"]
    assert "authorization" not in seen["headers"], seen["headers"]


def test_prefix_matches_sub_path(gateway, keys):
    seen = upstream_saw(get(gateway, "/orders/42?expand=lines", keys.token()))
    assert seen["path"] == "/orders/42?expand=lines"


def test_spoofed_sub_header_is_replaced_by_the_verified_claim(gateway, keys):
    r = get(gateway, "/orders", keys.token(sub="alice"), headers={"x-scopegate-sub": "mallory"})
    seen = upstream_saw(r)
    assert forwarded_values(seen, "x-scopegate-sub") == ["alice"], seen["header_list"]


def test_every_spoofed_copy_of_the_sub_header_is_removed(gateway, keys):
    # two copies (names differ in case only; HTTP names are case-insensitive)
    r = get(gateway, "/orders", keys.token(sub="alice"),
            headers={"x-scopegate-sub": "m1", "X-Scopegate-Sub": "m2"})
    assert forwarded_values(upstream_saw(r), "x-scopegate-sub") == ["alice"]


def test_spoofed_sub_header_is_stripped_on_public_route(gateway):
    seen = upstream_saw(get(gateway, "/healthz", headers={"x-scopegate-sub": "mallory"}))
    assert forwarded_values(seen, "x-scopegate-sub") == [], seen["header_list"]


def test_hs256_token_is_allowed(gateway, keys):
    seen = upstream_saw(get(gateway, "/orders", keys.token(alg="HS256", sub="svc-b")))
    assert forwarded_values(seen, "x-scopegate-sub") == ["svc-b"]
    assert "authorization" not in seen["headers"]


def test_audience_array_containing_ours_is_allowed(gateway, keys):
    tok = keys.rs256(keys.claims(aud=["other", AUDIENCE]))
    upstream_saw(get(gateway, "/orders", tok))


def test_expired_within_clock_skew_is_allowed(gateway, keys):
    tok = keys.rs256(keys.claims(ttl=-20))  # exp 20 s ago, skew is 60 s
    upstream_saw(get(gateway, "/orders", tok))


@pytest.mark.parametrize("scope", ["svc-a:orders:write", "svc-a:admin"])
def test_post_orders_accepts_any_of_the_write_scopes(gateway, keys, scope):
    seen = upstream_saw(get(gateway, "/orders", keys.token(scope=scope), method="POST",
                            headers={"content-type": "application/json"}, body='{"item":1}'))
    assert seen["method"] == "POST" and seen["body"] == '{"item":1}'


def test_authenticated_route_needs_no_scope(gateway, keys):
    seen = upstream_saw(get(gateway, "/me", keys.token(scope=None, sub="bob")))
    assert forwarded_values(seen, "x-scopegate-sub") == ["bob"]


# --------------------------------------------------------------------------- 401

def test_missing_token_is_401_with_bearer_challenge(gateway):
    r = get(gateway, "/orders")
    body = denial(r, 401, "token_missing")
    assert r.headers.get("www-authenticate") == 'Bearer realm="svc-a"', r.headers
    assert body.get("status") in (None, 401)
    assert "json" in r.headers.get("content-type", ""), r.headers


def test_missing_token_on_authenticated_route_is_401(gateway):
    denial(get(gateway, "/me"), 401, "token_missing")


def test_expired_token_is_401_token_expired(gateway, keys):
    tok = keys.rs256(keys.claims(ttl=-3600))
    invalid_token(get(gateway, "/orders", tok), "token_expired")


def test_token_without_exp_is_rejected(gateway, keys):
    tok = keys.rs256(keys.claims(exp=None))
    assert "exp" not in keys.claims(exp=None)
    invalid_token(get(gateway, "/orders", tok), None)


def test_token_not_yet_valid_is_rejected(gateway, keys):
    tok = keys.rs256(keys.claims(nbf=int(time.time()) + 3600, ttl=7200))
    invalid_token(get(gateway, "/orders", tok), None)


def test_rs256_signed_by_unknown_key_is_401_bad_signature(gateway, keys):
    tok = keys.rs256(keys.claims(), rogue=True)  # same kid, different key
    invalid_token(get(gateway, "/orders", tok), "bad_signature")


def test_hs256_with_wrong_secret_is_401_bad_signature(gateway, keys):
    tok = keys.hs256(keys.claims(), secret=b"not-the-secret-not-the-secret-!!")
    invalid_token(get(gateway, "/orders", tok), "bad_signature")


def test_tampered_payload_is_401_bad_signature(gateway, keys):
    h, _, s = keys.token(scope=READ).split(".")
    forged = keys.rs256(keys.claims(scope=f"{READ} svc-a:admin")).split(".")[1]
    invalid_token(get(gateway, "/orders", f"{h}.{forged}.{s}"), "bad_signature")


def test_wrong_audience_is_401(gateway, keys):
    tok = keys.rs256(keys.claims(aud="svc-b"))
    invalid_token(get(gateway, "/orders", tok), "audience_not_allowed")


def test_wrong_issuer_is_401(gateway, keys):
    tok = keys.rs256(keys.claims(iss="https://evil.test"))
    invalid_token(get(gateway, "/orders", tok), "issuer_not_allowed")


def test_alg_none_token_is_401(gateway, keys):
    tok = unsigned_token(keys.claims())
    r = get(gateway, "/orders", tok)
    invalid_token(r, None)


def test_malformed_token_is_401_malformed(gateway):
    invalid_token(get(gateway, "/orders", "not-a-jwt"), "malformed")


# --------------------------------------------------------------------------- 403

def test_missing_scope_is_403_insufficient_scope(gateway, keys):
    r = get(gateway, "/orders", keys.token(scope="svc-a:orders:write"))
    body = denial(r, 403, "insufficient_scope")
    www = r.headers.get("www-authenticate", "")
    assert www.startswith('Bearer realm="svc-a"'), www
    assert 'error="insufficient_scope"' in www, www
    assert f'scope="{READ}"' in www, www
    assert body.get("rule") == "orders-read", body


def test_post_with_only_read_scope_is_403(gateway, keys):
    r = get(gateway, "/orders", keys.token(scope=READ), method="POST", body="{}")
    body = denial(r, 403, "insufficient_scope")
    assert body.get("rule") == "orders-write", body


def test_unmatched_path_is_403_no_matching_rule(gateway, keys):
    denial(get(gateway, "/admin"), 403, "no_matching_rule")
    denial(get(gateway, "/admin", keys.token()), 403, "no_matching_rule")


def test_prefix_is_segment_aware(gateway, keys):
    denial(get(gateway, "/ordersx", keys.token()), 403, "no_matching_rule")


def test_method_without_rule_is_403(gateway, keys):
    denial(get(gateway, "/orders/1", keys.token(), method="DELETE"), 403, "no_matching_rule")


def test_encoded_slash_is_not_let_through_and_not_blamed_on_the_token(gateway, keys):
    """`/orders%2F..%2Fadmin` must not reach the upstream; whatever the filter answers
    (400 or 403), the reason must be about the path, not the (valid) token."""
    r = get(gateway, "/orders%2F..%2Fadmin", keys.token())
    assert "x-echo" not in r.headers, (r.status, r.text)
    denial(r, 400, "invalid_path")


def test_exact_rule_does_not_match_sub_path(gateway):
    denial(get(gateway, "/healthz/x"), 403, "no_matching_rule")


# --------------------------------------------------------------------------- health of the VM

def test_filter_vm_is_still_healthy_after_the_suite(gateway, keys):
    """No stream callback panicked (a panic turns every later request into a 503)."""
    upstream_saw(get(gateway, "/orders", keys.token()))
    log = gateway.log()
    assert "panicked" not in log, gateway.log_tail()
    assert "wasm_fail_stream" not in log


# --------------------------------------------------------------------------- invalid config

def _refused(config, field: str | None) -> str:
    gw = ScopegateEnvoy(config)
    rc = gw.expect_startup_failure()
    log = gw.final_log
    assert rc != 0, log
    wasm_lines = [ln for ln in log.splitlines() if "wasm log" in ln]
    assert wasm_lines, f"the filter logged nothing; Envoy log:\n{log[-3000:]}"
    if field is not None:
        assert any(field in ln for ln in wasm_lines), (
            f"no filter log line names {field!r}:\n" + "\n".join(wasm_lines))
    return log


def _mutate(fn):
    def build(keys: KeySet):
        cfg = keys.plugin_config()
        fn(cfg)
        return cfg
    return build


def _set(path: list, value):
    def fn(cfg):
        node = cfg
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return fn


def _delete(path: list):
    def fn(cfg):
        node = cfg
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
    return fn


# (case id, config mutation, text the filter's log line must contain)
INVALID_CONFIGS = [
    ("rule-unknown-field", _mutate(_set(["rules", 0, "requirez"], "oops")), "requirez"),
    ("match-unknown-field", _mutate(_set(["rules", 1, "match"], {"prefx": "/orders"})), "prefx"),
    ("provider-without-issuer", _mutate(_delete(["providers", 0, "issuer"])), "issuer"),
    ("unknown-require-keyword", _mutate(_set(["rules", 3, "require"], "everyone")), "rules[3].require"),
    ("unknown-algorithm", _mutate(_set(["providers", 0, "algorithms"], ["RS256", "XX999"])), "XX999"),
    ("alg-none-allowed", _mutate(_set(["providers", 0, "algorithms"], ["none"])), "algorithms"),
    ("duplicate-rule-name", _mutate(lambda c: c["rules"].append(dict(c["rules"][0]))), "duplicate"),
    ("prefix-without-slash", _mutate(_set(["rules", 1, "match"], {"prefix": "orders"})), "rules[1].match.prefix"),
    ("empty-all-of", _mutate(_set(["rules", 1, "require"], {"all_of": []})), "all_of"),
    ("claim-to-authorization-header",
     _mutate(_set(["providers", 0, "claims_to_headers"], {"sub": "authorization"})), "claims_to_headers"),
]


@pytest.mark.parametrize("build,field", [pytest.param(b, f, id=i) for i, b, f in INVALID_CONFIGS])
def test_invalid_config_is_refused_with_a_message_naming_the_field(keys, build, field):
    _refused(build(keys), field)


def test_config_that_is_not_json_is_refused():
    _refused("realm: svc-a  # YAML is not accepted", None)


def test_empty_config_is_refused():
    _refused("", None)


def test_config_must_be_a_json_object(keys):
    """The same fields as a positional JSON array must not be accepted (serde's derived
    Deserialize takes a struct from a sequence unless told otherwise)."""
    cfg = keys.plugin_config()
    _refused(json.dumps([cfg["realm"], cfg["providers"], cfg["rules"]]), None)


def test_unusable_jwks_key_is_skipped_with_a_warning_naming_the_field(keys):
    """A JWK the filter cannot use (RSA without `n`) does not stop Envoy: it is
    dropped with a log line naming the field, tokens needing it are rejected, and
    the other keys keep working."""
    cfg = keys.plugin_config()
    del cfg["providers"][0]["jwks"]["keys"][0]["n"]
    with ScopegateEnvoy(cfg) as gw:
        assert any("keys[0]" in ln and "`n`" in ln for ln in gw.wasm_log_lines()), gw.wasm_log_lines()
        r = get(gw, "/orders", keys.token(alg="RS256"))
        assert r.status == 401, r.text
        upstream_saw(get(gw, "/orders", keys.token(alg="HS256")))


# --------------------------------------------------------------------------- provider options

def test_forward_token_true_keeps_authorization_and_maps_other_claims(keys):
    cfg = keys.plugin_config(forward_token=True,
                             claims_to_headers={"sub": "x-scopegate-sub", "iss": "x-scopegate-iss"})
    with ScopegateEnvoy(cfg) as gw:
        tok = keys.token(sub="alice")
        seen = upstream_saw(get(gw, "/orders", tok, headers={"x-scopegate-iss": "https://evil.test"}))
        assert forwarded_values(seen, "authorization") == [f"Bearer {tok}"]
        assert forwarded_values(seen, "x-scopegate-sub") == ["alice"]
        assert forwarded_values(seen, "x-scopegate-iss") == ["https://auth.test"]
