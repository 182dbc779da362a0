"""Authorization policy in real Envoy 1.40: several named Envoy routes, rules keyed
on them, templates, regexes, hosts, roles, super-admin, CORS, dry-run, and
normalisation traps sent through Envoy's own path handling.

One Envoy for the module (fixture `policy_gw`)."""

from __future__ import annotations

from typing import Callable

import pytest

from scopegate_envoy import Response, ScopegateEnvoy, http_request

ROUTES = [
    {"name": "legacy-route", "prefix": "/legacy"},
    {"name": "reports-route", "prefix": "/reports"},
]

RULES = [
    {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
    {"name": "order", "match": {"template": "/orders/{id}", "methods": ["GET"]},
     "require": {"all_of": ["svc-a:orders:read"]}},
    {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]},
     "require": {"any_of": ["svc-a:orders:write", {"all_of": ["svc-a:admin", "svc-a:orders:read"]}]}},
    {"name": "admin", "match": {"prefix": "/admin"}, "require": {"all_of": ["svc-a:admin"]}},
    {"name": "legacy", "match": {"prefix": "/", "route_names": ["legacy-route"]}, "require": "authenticated"},
    {"name": "items", "match": {"regex": "/v[0-9]+/items/[0-9]+", "methods": ["GET"]},
     "require": {"all_of": ["svc-a:items:read"]}},
    {"name": "internal", "match": {"prefix": "/internal", "hosts": ["internal.svc-a"]}, "require": "public"},
    {"name": "beta", "match": {"prefix": "/beta"}, "require": {"all_of": ["svc-a:beta"]}, "dry_run": True},
    {"name": "reports", "match": {"prefix": "/", "route_names": ["reports-route"]},
     "require": {"all_of": ["svc-a:reports:read"]}},
]


@pytest.fixture(scope="module")
def policy_gw(keys, tmp_path_factory):
    cfg = keys.plugin_config(rules=RULES)
    cfg["roles"] = {"orders-admin": ["svc-a:orders:read", "svc-a:orders:write"]}
    cfg["super_admin_scope"] = "svc-a:superadmin"
    cfg["scope_prefix"] = "svc-a"
    gw = ScopegateEnvoy(cfg, workdir=str(tmp_path_factory.mktemp("envoy-policy")), routes=ROUTES)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


def get(gw: ScopegateEnvoy, path: str, token: str | None = None, method: str = "GET",
        headers: dict[str, str] | None = None) -> Response:
    h = dict(headers or {})
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    return http_request(gw.url, method, path, headers=h)


def forwarded(r: Response) -> dict:
    assert r.status == 200 and r.headers.get("x-echo") == "1", f"not forwarded: {r.status} {r.text}"
    return r.json()


def denied(r: Response, status: int, reason: str, rule: str | None = None) -> dict:
    assert r.status == status, f"expected {status}, got {r.status}: {r.text}"
    assert "x-echo" not in r.headers, "a denied request reached the upstream"
    body = r.json()
    assert body["reason"] == reason, body
    if rule is not None:
        assert body.get("rule") == rule, body
    return body


def counters(gw: ScopegateEnvoy, prefix: str, until: Callable[[dict[str, int]], bool] = bool) -> dict[str, int]:
    """Filter counters from admin /stats (text /stats shows them under `wasmcustom.`), read
    until `until(counters)` holds (they are published on the filter's tick) or 5 s pass."""
    def parse(stats: dict[str, str]) -> dict[str, int]:
        out = {}
        for k, v in stats.items():
            name = k.removeprefix("wasmcustom.")
            if name.startswith(prefix) and v.strip().isdigit():
                out[name] = int(v)
        return out
    return parse(gw.stats_until(lambda s: until(parse(s)), prefix.replace(".", "\\.")))


def seen_values(seen: dict, name: str) -> list[str]:
    return [v for k, v in seen["header_list"] if k == name]


# --------------------------------------------------------------------------- routes

def test_a_template_rule_takes_one_segment_per_parameter(policy_gw, keys):
    tok = keys.token(scope="svc-a:orders:read")
    forwarded(get(policy_gw, "/orders/7", tok))
    denied(get(policy_gw, "/orders/7/lines", tok), 403, "no_matching_rule")
    denied(get(policy_gw, "/orders/7"), 401, "token_missing", "order")


def test_a_regex_rule_matches_the_whole_path(policy_gw, keys):
    tok = keys.token(scope="svc-a:items:read")
    forwarded(get(policy_gw, "/v2/items/42", tok))
    denied(get(policy_gw, "/v2/items/42x", tok), 403, "no_matching_rule")


def test_rules_keyed_on_envoy_route_names(policy_gw, keys):
    forwarded(get(policy_gw, "/legacy/anything", keys.token(scope=None)))
    denied(get(policy_gw, "/legacy/anything"), 401, "token_missing", "legacy")
    body = denied(get(policy_gw, "/reports/q1", keys.token(scope="svc-a:other")), 403,
                  "insufficient_scope", "reports")
    assert body["required_scopes"] == ["svc-a:reports:read"]
    forwarded(get(policy_gw, "/reports/q1", keys.token(scope="svc-a:reports:read")))
    # The same path through the catch-all Envoy route matches no rule.
    denied(get(policy_gw, "/elsewhere", keys.token()), 403, "no_matching_rule")


def test_a_host_rule_reads_the_authority(policy_gw):
    forwarded(get(policy_gw, "/internal/x", headers={"host": "internal.svc-a"}))
    denied(get(policy_gw, "/internal/x", headers={"host": "svc-a"}), 403, "no_matching_rule")


# --------------------------------------------------------------------------- requirements

def test_insufficient_scope_names_the_cheapest_alternative(policy_gw, keys):
    r = get(policy_gw, "/orders", keys.token(scope="svc-a:admin"), method="POST")
    body = denied(r, 403, "insufficient_scope", "orders-write")
    assert body["required_scopes"] == ["svc-a:orders:write"]
    www = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in www and www.endswith('scope="svc-a:orders:write"'), www
    forwarded(get(policy_gw, "/orders", keys.token(scope="svc-a:admin svc-a:orders:read"), method="POST"))


def test_local_roles_and_wildcards_grant_scopes(policy_gw, keys):
    forwarded(get(policy_gw, "/orders", keys.token(scope=None, roles=["orders-admin"]), method="POST"))
    forwarded(get(policy_gw, "/orders/1", keys.token(scope="svc-a:orders:*")))
    denied(get(policy_gw, "/orders/1", keys.token(scope="svc-a:orders:read-all")), 403, "insufficient_scope")


def test_the_super_admin_scope_passes_and_is_counted(policy_gw, keys):
    forwarded(get(policy_gw, "/admin/users", keys.token(scope="svc-a:superadmin")))
    forwarded(get(policy_gw, "/reports/x", keys.token(scope="svc-a:superadmin")))
    stats = counters(policy_gw, "scopegate.superadmin_used",
                     lambda s: s.get("scopegate.superadmin_used", 0) >= 2)
    assert stats.get("scopegate.superadmin_used", 0) >= 2, stats
    assert any("super-admin scope used" in ln for ln in policy_gw.wasm_log_lines()), policy_gw.log_tail()


def test_a_cors_preflight_passes_without_a_token(policy_gw):
    r = get(policy_gw, "/admin/users", method="OPTIONS",
            headers={"origin": "https://app.example", "access-control-request-method": "DELETE"})
    assert forwarded(r)["method"] == "OPTIONS"
    # Without Access-Control-Request-Method it is an ordinary OPTIONS: the rules apply.
    denied(get(policy_gw, "/admin/users", method="OPTIONS", headers={"origin": "https://app.example"}),
           401, "token_missing", "admin")


def test_a_dry_run_rule_lets_the_request_through_with_the_would_be_decision(policy_gw, keys):
    r = get(policy_gw, "/beta/feature", headers={"x-scopegate-dry-run": "allow; forged"})
    seen = forwarded(r)
    assert seen_values(seen, "x-scopegate-dry-run") == ["deny; status=401; reason=token_missing; rule=beta"]
    seen = forwarded(get(policy_gw, "/beta/feature", keys.token(scope="svc-a:beta")))
    assert seen_values(seen, "x-scopegate-dry-run") == ["allow; reason=allowed; rule=beta"]
    stats = counters(policy_gw, "scopegate.", lambda s: s.get("scopegate.dry_run.would_deny", 0) >= 1
                     and s.get("scopegate.rule.beta.denied", 0) >= 1)
    assert stats.get("scopegate.dry_run.would_deny", 0) >= 1, stats
    assert stats.get("scopegate.rule.beta.denied", 0) >= 1, stats


# --------------------------------------------------------------------------- normalisation traps

@pytest.mark.parametrize("path", [
    "/healthz/../admin/users",
    "/%61dmin/users",
    "//admin//users",
    "/./admin/./users",
    "/admin/users/",
    "/admin/users?next=/healthz",
    "/public/%2E%2E/admin/users",
])
def test_a_path_spelled_differently_still_meets_the_admin_rule(policy_gw, keys, path):
    denied(get(policy_gw, path, keys.token(scope="svc-a:orders:read")), 403, "insufficient_scope", "admin")


def test_an_encoded_slash_never_reaches_the_upstream(policy_gw, keys):
    r = get(policy_gw, "/healthz%2F..%2Fadmin", keys.token(scope="svc-a:orders:read"))
    assert "x-echo" not in r.headers, (r.status, r.text)
    assert r.status in (400, 403), (r.status, r.text)


def test_per_rule_counters_are_in_envoy_stats(policy_gw, keys):
    forwarded(get(policy_gw, "/healthz"))
    stats = counters(policy_gw, "scopegate.rule.", lambda s: s.get("scopegate.rule.health.allowed", 0) >= 1)
    assert stats.get("scopegate.rule.health.allowed", 0) >= 1, stats
    assert "scopegate.rule.order.denied" in stats, stats


def test_the_filter_vm_is_still_healthy(policy_gw):
    forwarded(get(policy_gw, "/healthz"))
    log = policy_gw.log()
    assert "panicked" not in log and "wasm_fail_stream" not in log, policy_gw.log_tail()


def test_a_shadowed_rule_is_refused_at_startup(keys):
    rules = RULES + [{"name": "dead", "match": {"exact": "/admin/x"}, "require": "public"}]
    gw = ScopegateEnvoy(keys.plugin_config(rules=rules))
    rc = gw.expect_startup_failure()
    assert rc != 0
    lines = [ln for ln in gw.final_log.splitlines() if "wasm log" in ln]
    assert any("rules[9]: unreachable rule" in ln and "rules[3] (\"admin\")" in ln for ln in lines), lines
