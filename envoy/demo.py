#!/usr/bin/env python3
"""scopegate demo: real Envoy 1.40 running scopegate.wasm in front of an echo upstream.

    .venv/bin/python envoy/demo.py [--wasm PATH] [--port N] [--keep]
    .venv/bin/python envoy/demo.py --emit DIR     # write a demo plugin config + tokens, start nothing

DEMO ONLY: the RSA key and HMAC secret are generated at start-up and thrown away at
exit. The demo sends a fixed sequence of requests, prints each one (method, path,
which token), the status and reason Envoy answered, and for forwarded requests the
headers the upstream saw. Exit status 1 if any status differs from the expected one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scopegate_envoy import EnvoyStartError, Response, ScopegateEnvoy, http_request  # noqa: E402
from scopegate_tokens import KeySet  # noqa: E402

SHOWN_UPSTREAM_HEADERS = ("x-scopegate-sub", "authorization")


@dataclass
class Step:
    title: str
    method: str
    path: str
    token_desc: str
    token: str | None
    expect: int
    expect_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def build_steps(k: KeySet) -> list[Step]:
    now = int(time.time())
    return [
        Step("public health check", "GET", "/healthz", "none", None, 200),
        Step("protected route, no token", "GET", "/orders", "none", None, 401, "token_missing"),
        Step("reader reads orders", "GET", "/orders",
             "RS256 sub=alice scope=svc-a:orders:read", k.token(sub="alice"), 200),
        Step("client tries to spoof the identity header", "GET", "/orders/42",
             "RS256 sub=alice scope=svc-a:orders:read + x-scopegate-sub: mallory",
             k.token(sub="alice"), 200, headers={"x-scopegate-sub": "mallory"}),
        Step("service token (HMAC)", "GET", "/orders",
             "HS256 sub=svc-b scope=svc-a:orders:read", k.token(alg="HS256", sub="svc-b"), 200),
        Step("expired token", "GET", "/orders", "RS256 expired an hour ago",
             k.rs256(k.claims(iat=now - 7200, ttl=-3600)), 401, "token_expired"),
        Step("token signed by a key not in the JWKS", "GET", "/orders", "RS256 forged (unknown key, same kid)",
             k.rs256(k.claims(), rogue=True), 401, "bad_signature"),
        Step("token for another service", "GET", "/orders", "RS256 aud=svc-b",
             k.rs256(k.claims(aud="svc-b")), 401, "audience_not_allowed"),
        Step("writer tries to read", "GET", "/orders", "RS256 scope=svc-a:orders:write",
             k.token(scope="svc-a:orders:write"), 403, "insufficient_scope"),
        Step("admin creates an order", "POST", "/orders", "RS256 sub=root scope=svc-a:admin",
             k.token(sub="root", scope="svc-a:admin"), 200,
             headers={"content-type": "application/json"}, body='{"item": "book"}'),
        Step("any authenticated caller", "GET", "/me", "RS256 sub=bob, no scope",
             k.token(sub="bob", scope=None), 200),
        Step("path no rule covers", "GET", "/admin", "RS256 scope=svc-a:orders:read",
             k.token(), 403, "no_matching_rule"),
        Step("prefix /orders does not cover /ordersx", "GET", "/ordersx",
             "RS256 scope=svc-a:orders:read", k.token(), 403, "no_matching_rule"),
    ]


def describe(r: Response) -> tuple[str, list[str]]:
    """(reason, detail lines) for a response."""
    details: list[str] = []
    body = r.json_or_none()
    if r.headers.get("x-echo") == "1" and isinstance(body, dict):
        seen = {k: v for k, v in body.get("header_list", [])}
        parts = [f"{h}: {seen[h]!r}" if h in seen else f"{h}: (absent)" for h in SHOWN_UPSTREAM_HEADERS]
        details.append(f"upstream saw {body.get('method')} {body.get('path')}  " + ", ".join(parts))
        return "forwarded", details
    reason = body.get("reason", "?") if isinstance(body, dict) else "?"
    if "www-authenticate" in r.headers:
        details.append(f"www-authenticate: {r.headers['www-authenticate']}")
    if isinstance(body, dict):
        details.append("body: " + json.dumps(body, sort_keys=True))
    elif r.body:
        details.append(f"body: {r.text[:200]!r}")
    return reason, details


def run_demo(gw: ScopegateEnvoy, steps: list[Step]) -> int:
    failures = 0
    for i, s in enumerate(steps, 1):
        h = dict(s.headers)
        if s.token:
            h["authorization"] = f"Bearer {s.token}"
        print(f"\n[{i:2}] {s.title}")
        print(f"     {s.method} {s.path}   token: {s.token_desc}")
        try:
            r = http_request(gw.url, s.method, s.path, headers=h, body=s.body)
        except OSError as e:
            print(f"     -> request failed: {e}   MISMATCH (expected {s.expect})")
            failures += 1
            continue
        reason, details = describe(r)
        ok = r.status == s.expect
        mark = "ok" if ok else f"MISMATCH (expected {s.expect})"
        note = ""
        if ok and s.expect_reason and reason != s.expect_reason:
            note = f"   (note: expected reason {s.expect_reason})"
        print(f"     -> {r.status} {reason}   {mark}{note}")
        for d in details:
            print(f"        {d}")
        failures += 0 if ok else 1
    return failures


def emit(dirpath: Path) -> int:
    k = KeySet()
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / "plugin-config.json").write_text(json.dumps(k.plugin_config(), indent=2) + "\n")
    toks = {
        "reader (RS256, svc-a:orders:read)": k.token(sub="alice", ttl=3600),
        "writer (RS256, svc-a:orders:write)": k.token(sub="carol", scope="svc-a:orders:write", ttl=3600),
        "admin (HS256, svc-a:admin)": k.token(alg="HS256", sub="root", scope="svc-a:admin", ttl=3600),
        "expired (RS256)": k.rs256(k.claims(ttl=-3600)),
    }
    lines = ["# DEMO tokens (valid 1 hour) for the keys in plugin-config.json next to this file"]
    for name, t in toks.items():
        lines += [f"# {name}", t]
    (dirpath / "tokens.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {dirpath / 'plugin-config.json'} and {dirpath / 'tokens.txt'} (demo keys)")
    print(f"try: envoy/run.sh --config {dirpath / 'plugin-config.json'}")
    print('     curl -i -H "authorization: Bearer $(sed -n 3p ' + str(dirpath / "tokens.txt")
          + ')" http://127.0.0.1:10000/orders')
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="scopegate in real Envoy: a guided sequence of requests")
    ap.add_argument("--wasm", default=None, help="filter module (default: target/.../scopegate.wasm)")
    ap.add_argument("--port", type=int, default=0, help="listener port (default: any free port)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with bootstrap and logs")
    ap.add_argument("--emit", type=Path, default=None, metavar="DIR",
                    help="only write a demo plugin config and tokens to DIR")
    args = ap.parse_args(argv)
    if args.emit:
        return emit(args.emit)

    print("scopegate demo -- DEMO KEYS: an RSA-2048 key and an HMAC secret generated just now,")
    print("discarded at exit. Plugin config: realm svc-a, issuer https://auth.test, audience svc-a;")
    print("rules: /healthz public | GET /orders needs svc-a:orders:read | POST /orders needs")
    print("svc-a:orders:write or svc-a:admin | /me any valid token | anything else denied.")
    keys = KeySet()
    gw = ScopegateEnvoy(keys.plugin_config(), wasm_path=args.wasm, port=args.port, keep_workdir=args.keep)
    try:
        gw.start()
    except EnvoyStartError as e:
        print(f"\nEnvoy did not start: {e}", file=sys.stderr)
        return 1
    try:
        print(f"\nEnvoy 1.40 listening on {gw.url} (filter {gw.resolved_wasm})")
        print(f"echo upstream on 127.0.0.1:{gw.echo.port if gw.echo else '?'}; Envoy log {gw.log_path}")
        steps = build_steps(keys)
        failures = run_demo(gw, steps)
    finally:
        gw.stop()
    print()
    if args.keep:
        print(f"logs kept in {gw.log_path.parent}")
    if failures:
        print(f"demo: {failures} of {len(steps)} steps answered with an unexpected status")
        return 1
    print(f"demo: all {len(steps)} steps answered as expected; Envoy and the echo upstream stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
