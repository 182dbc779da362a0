"""The filter's decision counters in Envoy's own admin stats, exact names and values.

One Envoy of its own (so every counter starts at 0) with two providers, `corp`
(RS256, the contract's issuer) and `partner-idp` (HS256; a `-` in the name, which
Prometheus turns into `_`). The module sends a fixed mix of allowed and denied
requests once, then reads `/stats/prometheus` (no `wasmcustom.` prefix, `.`/`-` as
`_`, `# TYPE ... counter`) and the text `/stats` (`wasmcustom.` prefix, names as
the filter defined them) and compares them with what the mix must have counted:
by outcome, by reason, by provider and by rule.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt
import pytest

from envoy_stats import filter_counters, prometheus_metrics, prometheus_name, text_counters
from scopegate_envoy import Response, ScopegateEnvoy, http_request
from scopegate_tokens import AUDIENCE, ISSUER, KeySet, b64url

PARTNER_ISSUER = "https://partner.test"
READ = "svc-a:orders:read"

RULES = [
    {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
    {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]},
     "require": {"all_of": [READ]}},
    {"name": "partner", "match": {"prefix": "/partner"}, "require": "authenticated",
     "providers": ["partner-idp"]},
]

# Every reason of filter/CONFIG.md's reply table and the allow reasons: each has a
# counter `scopegate.decision.<reason>` from configure time on (0 until used).
KNOWN_REASONS = (
    "allowed", "public", "super_admin", "cors_preflight", "token_missing", "token_too_large",
    "malformed", "algorithm_not_allowed", "header_not_allowed", "issuer_not_allowed", "unknown_kid",
    "bad_signature", "token_expired", "token_not_yet_valid", "claim_invalid", "audience_not_allowed",
    "multiple_tokens", "jwks_unavailable", "api_key_invalid", "api_key_expired", "insufficient_scope",
    "provider_not_allowed", "claim_mismatch", "no_matching_rule", "invalid_path",
)


def _claims(iss: str, scope: str | None = READ, sub: str = "alice") -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"iss": iss, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600}
    if scope is not None:
        c["scope"] = scope
    return c


# (what, method, path, token maker, expected status, expected reason)
# Token makers take (keys, partner_secret).
TRAFFIC: list[tuple[str, str, str, Any, int, str]] = [
    ("public route", "GET", "/healthz", None, 200, "public"),
    ("corp token with the scope (1)", "GET", "/orders", lambda k, s: k.rs256(_claims(ISSUER)), 200, "allowed"),
    ("corp token with the scope (2)", "GET", "/orders/7", lambda k, s: k.rs256(_claims(ISSUER)), 200, "allowed"),
    ("corp token with the scope (3)", "GET", "/orders", lambda k, s: k.rs256(_claims(ISSUER)), 200, "allowed"),
    ("partner token on the partner route", "GET", "/partner/feed",
     lambda k, s: jwt.encode(_claims(PARTNER_ISSUER, scope=None), s, algorithm="HS256",
                             headers={"kid": "p-1"}), 200, "allowed"),
    ("no token", "GET", "/orders", None, 401, "token_missing"),
    ("corp token without the scope (1)", "GET", "/orders",
     lambda k, s: k.rs256(_claims(ISSUER, scope="svc-a:other")), 403, "insufficient_scope"),
    ("corp token without the scope (2)", "GET", "/orders",
     lambda k, s: k.rs256(_claims(ISSUER, scope=None)), 403, "insufficient_scope"),
    ("corp token signed by another key", "GET", "/orders",
     lambda k, s: k.rs256(_claims(ISSUER), rogue=True), 401, "bad_signature"),
    ("corp token on the partner-only route", "GET", "/partner/feed",
     lambda k, s: k.rs256(_claims(ISSUER)), 403, "provider_not_allowed"),
    ("token of an unknown issuer", "GET", "/orders",
     lambda k, s: k.rs256(_claims("https://evil.test")), 401, "issuer_not_allowed"),
    ("no rule matches", "GET", "/nowhere", None, 403, "no_matching_rule"),
]

# What that traffic must count, by the names the filter defines (text /stats
# shows them with `wasmcustom.`, Prometheus with `_`). Every other
# scopegate.decision.* / .provider.* / .rule.* counter must be 0.
EXPECTED = {
    "scopegate.allowed": 5,
    "scopegate.denied": 7,
    "scopegate.decision.public": 1,
    "scopegate.decision.allowed": 4,
    "scopegate.decision.token_missing": 1,
    "scopegate.decision.insufficient_scope": 2,
    "scopegate.decision.bad_signature": 1,
    "scopegate.decision.provider_not_allowed": 1,
    "scopegate.decision.issuer_not_allowed": 1,
    "scopegate.decision.no_matching_rule": 1,
    # by provider: tokens it verified, or chose by `iss` and refused
    "scopegate.provider.corp.allowed": 3,
    "scopegate.provider.corp.denied": 4,      # 2 x insufficient_scope, bad_signature, provider_not_allowed
    "scopegate.provider.partner-idp.allowed": 1,
    "scopegate.provider.partner-idp.denied": 0,
    # by rule
    "scopegate.rule.health.allowed": 1,
    "scopegate.rule.health.denied": 0,
    "scopegate.rule.orders-read.allowed": 3,
    "scopegate.rule.orders-read.denied": 5,   # token_missing, 2 x insufficient_scope, bad_signature, issuer
    "scopegate.rule.partner.allowed": 1,
    "scopegate.rule.partner.denied": 1,
    "scopegate.superadmin_used": 0,
    "scopegate.dry_run.would_deny": 0,
}


def plugin_config(keys: KeySet, partner_secret: bytes) -> dict[str, Any]:
    return {
        "realm": "svc-a",
        "providers": [
            keys.provider(name="corp", algorithms=["RS256"], jwks={"keys": [keys.jwks()["keys"][0]]}),
            {"name": "partner-idp", "issuer": PARTNER_ISSUER, "audiences": [AUDIENCE],
             "hmac_secrets": [{"kid": "p-1", "secret": b64url(partner_secret), "alg": "HS256"}]},
        ],
        "rules": RULES,
    }


def _explain(gw: ScopegateEnvoy, what: str, r: Response) -> str:
    time.sleep(0.5)
    return (f"{what}: status {r.status} body {r.text!r}\n"
            + "\n".join(gw.wasm_log_lines()[-10:]))


@pytest.fixture(scope="module")
def counted(keys: KeySet, tmp_path_factory: pytest.TempPathFactory):
    """Envoy after the TRAFFIC, every reply checked."""
    secret = os.urandom(32)
    gw = ScopegateEnvoy(plugin_config(keys, secret), workdir=str(tmp_path_factory.mktemp("stats")))
    gw.start()
    try:
        before = filter_counters(gw)
        assert before and all(v == 0 for v in before.values()), before
        for what, method, path, make, status, reason in TRAFFIC:
            headers = {} if make is None else {"authorization": f"Bearer {make(keys, secret)}"}
            r = http_request(gw.url, method, path, headers=headers)
            assert r.status == status, _explain(gw, what, r)
            if status != 200:
                assert r.json()["reason"] == reason, _explain(gw, what, r)
        # Published on the filter's tick (at least once a second), not during the request.
        gw.stats_until(lambda s: _published(s) == len(TRAFFIC), r"scopegate\.(allowed|denied)$")
        yield gw
    finally:
        gw.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


def _published(stats: dict[str, str]) -> int:
    return sum(int(stats.get(f"wasmcustom.scopegate.{k}", "0") or 0) for k in ("allowed", "denied"))


def _counter_families(names: Any) -> list[str]:
    return sorted(n for n in names if n.startswith(("scopegate.decision.", "scopegate.provider.",
                                                    "scopegate.rule.")))


def test_traffic_mix_is_what_the_expectations_add_up_to():
    """Guards EXPECTED against the TRAFFIC table drifting."""
    assert EXPECTED["scopegate.allowed"] == sum(1 for t in TRAFFIC if t[4] == 200)
    assert EXPECTED["scopegate.denied"] == sum(1 for t in TRAFFIC if t[4] != 200)
    for reason in {t[5] for t in TRAFFIC}:
        assert EXPECTED[f"scopegate.decision.{reason}"] == sum(1 for t in TRAFFIC if t[5] == reason)


def test_text_stats_show_every_counter_with_the_wasmcustom_prefix(counted):
    text = text_counters(counted, r"scopegate\.")
    assert text, "no scopegate counter in /stats"
    # The filter's counters only under `wasmcustom.`; besides them only Envoy's own
    # per-plugin VM stats (`wasm.scopegate.vm_reload...` in recent Envoys).
    others = sorted(k for k in text if not k.startswith("wasmcustom.scopegate."))
    assert all(k.startswith("wasm.scopegate.") for k in others), others
    assert "scopegate.allowed" not in text and "wasmcustom.scopegate.allowed" in text
    for name, value in EXPECTED.items():
        assert text.get(f"wasmcustom.{name}") == value, (name, text.get(f"wasmcustom.{name}"))


def test_text_stats_decision_counters_by_reason(counted):
    got = filter_counters(counted, "scopegate.decision.")
    for reason in KNOWN_REASONS:
        assert f"scopegate.decision.{reason}" in got, f"no counter for {reason}: {sorted(got)}"
    want = {k: v for k, v in EXPECTED.items() if k.startswith("scopegate.decision.")}
    assert {k: v for k, v in got.items() if v} == want
    assert sum(got.values()) == len(TRAFFIC)


def test_text_stats_counters_by_provider_and_rule(counted):
    got = filter_counters(counted)
    for name in _counter_families(got):
        if not name.startswith("scopegate.decision."):
            assert got[name] == EXPECTED.get(name, 0), (name, got[name])
    for name in _counter_families(EXPECTED):
        assert name in got, (name, sorted(got))
    # No counters for providers or rules that do not exist.
    assert {n.split(".")[2] for n in got if n.startswith("scopegate.provider.")} == {"corp", "partner-idp"}
    assert {n.split(".")[2] for n in got if n.startswith("scopegate.rule.")} == {"health", "orders-read",
                                                                               "partner"}


def test_prometheus_names_values_and_types(counted):
    prom = prometheus_metrics(counted, "scopegate_")
    assert prom, "no scopegate_ metric in /stats/prometheus"
    for name, value in EXPECTED.items():
        pname = prometheus_name(name)
        assert pname in prom, (pname, sorted(prom))
        assert prom[pname] == ("counter", value), (pname, prom[pname])
    # The exact spellings operators put in dashboards and alerts:
    assert prom["scopegate_decision_insufficient_scope"] == ("counter", 2)
    assert prom["scopegate_provider_partner_idp_allowed"] == ("counter", 1)
    assert prom["scopegate_rule_orders_read_denied"] == ("counter", 5)


def test_prometheus_and_text_agree_on_every_filter_counter(counted):
    text = filter_counters(counted)
    prom = prometheus_metrics(counted, "scopegate_")
    assert {prometheus_name(k): v for k, v in text.items()} == {k: v for k, (_, v) in prom.items()}


def test_prometheus_has_no_wasmcustom_prefix_for_the_filter(counted):
    from scopegate_envoy import _admin_get

    _, body = _admin_get(counted.admin_url, "/stats/prometheus")
    assert "wasmcustom" not in body, [ln for ln in body.splitlines() if "wasmcustom" in ln][:5]
    assert "\nscopegate_allowed{} 5\n" in body, [ln for ln in body.splitlines() if "scopegate_allowed" in ln]
