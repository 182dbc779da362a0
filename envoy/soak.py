"""Soak test of scopegate.wasm in real Envoy 1.40 (loopback only, bounded).

Concurrent keep-alive clients send a mix of valid and invalid requests (bad
signature, expired, wrong audience, missing scope, revoked, no token, a public
route) against a provider whose keys come from a remote JWKS and whose
revocation feed is polled from the same auth server (envoy/jwks_server.py),
while the auth server is stopped and later restarted. Every response is
checked against the outcome expected for its kind; the run fails on any wrong
decision, on any sign of a wasm failure in Envoy (log lines, wasm_fail_stream
503s with empty bodies), or if the filter's counters do not add up.

    .venv/bin/python envoy/soak.py --seconds 300 [--threads 8] [--json]

Prints a summary (requests, per kind, wrong decisions, JWKS fetches ok/failed
during the outage, Envoy RSS at start and end) and exits 1 on failure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jwks_server import JwksServer  # noqa: E402
from scopegate_envoy import ScopegateEnvoy, http_request  # noqa: E402
from scopegate_tokens import AUDIENCE, default_rules, generate_private_key, public_jwk, sign_jwt  # noqa: E402

ISS = "https://auth.test"
READ = "svc-a:orders:read"


@dataclass
class Kind:
    name: str
    path: str
    token: list[str]            # a pool (distinct tokens: exercises the verified-token cache)
    status: int
    reason: str | None          # expected reply reason for a denial


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    reconnects: int = 0

    def record(self, kind: str, ok: bool, detail: str) -> None:
        with self.lock:
            self.total += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if not ok and len(self.wrong) < 1000:
                self.wrong.append(f"{kind}: {detail}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def make_kinds(seconds: float) -> tuple[dict[str, Any], dict[str, Any], list[Kind]]:
    es = generate_private_key("ES256")
    rsa_key = generate_private_key("RS256")
    rogue = generate_private_key("ES256")
    jwks = {"keys": [public_jwk(es, "ec-1", "ES256"), public_jwk(rsa_key, "rsa-1", "RS256")]}
    now = int(time.time())
    ttl = int(seconds) + 900

    def claims(i: int, **kw: Any) -> dict[str, Any]:
        c = {"iss": ISS, "aud": AUDIENCE, "sub": f"user-{i}", "iat": now - 5, "exp": now + ttl,
             "scope": READ, "jti": f"soak-{i}"}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    n = 40
    kinds = [
        Kind("valid-es256", "/orders/1", [sign_jwt(claims(i), es, "ES256", "ec-1") for i in range(n)], 200, None),
        Kind("valid-rs256", "/orders/2", [sign_jwt(claims(i), rsa_key, "RS256", "rsa-1") for i in range(n)], 200, None),
        Kind("bad-signature", "/orders/3", [sign_jwt(claims(i), rogue, "ES256", "ec-1") for i in range(n)], 401, "bad_signature"),
        Kind("expired", "/orders/4", [sign_jwt(claims(i, iat=now - 7200, exp=now - 3600), es, "ES256", "ec-1") for i in range(n)], 401, "token_expired"),
        Kind("wrong-audience", "/orders/5", [sign_jwt(claims(i, aud="svc-b"), es, "ES256", "ec-1") for i in range(n)], 401, "audience_not_allowed"),
        Kind("missing-scope", "/orders/6", [sign_jwt(claims(i, scope="svc-a:other"), es, "ES256", "ec-1") for i in range(n)], 403, "insufficient_scope"),
        Kind("revoked", "/orders/8", [sign_jwt(claims(i, jti=f"revoked-{i}"), es, "ES256", "ec-1") for i in range(n)], 401, "token_revoked"),
        Kind("no-token", "/orders/7", [""], 401, "token_missing"),
        Kind("public", "/healthz", [""], 200, None),
    ]
    # The revocation feed (filter/PROTOCOLS.md): one complete document naming
    # the revoked kind's tokens by jti.
    feed = {"cursor": "1", "complete": True, "subjects": [],
            "jti": [{"jti": f"revoked-{i}", "exp": now + ttl} for i in range(n)]}
    return jwks, feed, kinds


def check(kind: Kind, status: int, headers: dict[str, str], body: bytes) -> tuple[bool, str]:
    if status != kind.status:
        return False, f"status {status} (want {kind.status}) body={body[:200]!r}"
    if kind.status == 200:
        if headers.get("x-echo") != "1":
            return False, f"200 not from the upstream: {headers}"
        if kind.name.startswith("valid"):
            seen = json.loads(body)
            if "authorization" in seen.get("headers", {}):
                return False, "token forwarded upstream"
        return True, ""
    try:
        reason = json.loads(body).get("reason")
    except ValueError:
        return False, f"{status} without a JSON body (wasm failure?): {body[:200]!r}"
    if reason != kind.reason:
        return False, f"reason {reason} (want {kind.reason})"
    return True, ""


def client(url: str, kinds: list[Kind], stop: threading.Event, stats: Stats, seed: int) -> None:
    host, port = url[len("http://"):].rsplit(":", 1)
    conn: http.client.HTTPConnection | None = None
    i = seed
    while not stop.is_set():
        kind = kinds[i % len(kinds)]
        token = kind.token[(i // len(kinds)) % len(kind.token)]
        i += 7
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=15)
            conn.request("GET", kind.path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            h = {k.lower(): v for k, v in r.getheaders()}
            ok, detail = check(kind, r.status, h, body)
            stats.record(kind.name, ok, detail)
            if h.get("connection", "").lower() == "close":
                conn.close()
                conn = None
                with stats.lock:
                    stats.reconnects += 1
        except (OSError, http.client.HTTPException) as e:
            stats.record(kind.name, False, f"transport error {e!r}")
            if conn is not None:
                conn.close()
            conn = None
            with stats.lock:
                stats.reconnects += 1
    if conn is not None:
        conn.close()


WASM_FAILURE_MARKERS = ("panicked", "wasm_fail_stream", "Wasm VM failed", "Function: proxy_on", "failed to", "RuntimeError", "unreachable")


def run(seconds: float = 60.0, threads: int = 8, workdir: str | None = None) -> dict[str, Any]:
    jwks, feed, kinds = make_kinds(seconds)
    config = {
        "realm": "svc-a",
        "providers": [{
            "name": "main", "issuer": ISS, "audiences": [AUDIENCE], "algorithms": ["ES256", "RS256"],
            "remote_jwks": {"cluster": "auth", "authority": "auth.test", "path": "/jwks",
                            "timeout_ms": 1000, "cache_duration_seconds": 10},
            "claims_to_headers": {"sub": "x-scopegate-sub"},
            # Polled every 2 s; the outage (a third of the run) stays under
            # max_staleness_seconds (300), so decisions must not change.
            "revocation": {"remote": {"cluster": "auth", "authority": "auth.test", "path": "/revocations",
                                      "poll_interval_seconds": 2, "timeout_ms": 1000}},
        }],
        "rules": default_rules(),
    }
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="scopegate-soak-")
    stats = Stats()
    summary: dict[str, Any] = {"seconds": seconds, "threads": threads}
    with JwksServer() as auth:
        auth.serve_jwks("/jwks", jwks)
        auth.serve_json("/revocations", feed)
        gw = ScopegateEnvoy(config, auth_port=auth.port, workdir=workdir)
        gw.start()
        try:
            # Warm-up: the first request waits for the first fetch.
            r = http_request(gw.url, "GET", "/orders/0", headers={"authorization": f"Bearer {kinds[0].token[0]}"}, timeout=15)
            assert r.status == 200, (r.status, r.text, gw.log_tail())
            assert gw.proc is not None
            summary["rss_start_kib"] = rss_kib(gw.proc.pid)
            stop = threading.Event()
            workers = [threading.Thread(target=client, args=(gw.url, kinds, stop, stats, s), daemon=True)
                       for s in range(threads)]
            t0 = time.monotonic()
            for w in workers:
                w.start()
            # The auth server goes away for the middle third of the run, then comes back.
            time.sleep(seconds / 3)
            fetched_before = auth.count("/jwks")
            auth.stop_listening()
            summary["auth_stopped_at_s"] = round(time.monotonic() - t0, 1)
            time.sleep(seconds / 3)
            auth.start()
            summary["auth_restarted_at_s"] = round(time.monotonic() - t0, 1)
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
            stop.set()
            for w in workers:
                w.join(timeout=30)
            elapsed = time.monotonic() - t0
            summary["rss_end_kib"] = rss_kib(gw.proc.pid)
            time.sleep(1.0)  # let Envoy flush its log
            stats_text = gw.stats("scopegate|wasm")
            summary["jwks_fetches_before_outage"] = fetched_before
            summary["jwks_fetches_total"] = auth.count("/jwks")
            summary["fetch_ok"] = int(stats_text.get("wasmcustom.scopegate.jwks.main.fetch_ok", "-1"))
            summary["fetch_failed"] = int(stats_text.get("wasmcustom.scopegate.jwks.main.fetch_failed", "-1"))
            summary["filter_allowed"] = int(stats_text.get("wasmcustom.scopegate.allowed", "-1"))
            summary["filter_denied"] = int(stats_text.get("wasmcustom.scopegate.denied", "-1"))
            summary["revocation_poll_ok"] = int(stats_text.get("wasmcustom.scopegate.revocation.main.poll_ok", "-1"))
            summary["revocation_poll_failed"] = int(
                stats_text.get("wasmcustom.scopegate.revocation.main.poll_failed", "-1"))
            summary["revoked_refused"] = int(stats_text.get("wasmcustom.scopegate.revocation.main.revoked", "-1"))
            log = gw.log()
            failures = [ln for ln in log.splitlines() if any(m in ln for m in WASM_FAILURE_MARKERS)]
            summary["wasm_failure_lines"] = failures[:20]
            summary["wasm_stats"] = {k: v for k, v in stats_text.items() if "wasm" in k and "custom" not in k}
        finally:
            gw.stop()
    summary.update({
        "elapsed_s": round(elapsed, 1),
        "requests": stats.total,
        "rps": round(stats.total / elapsed, 1),
        "by_kind": stats.by_kind,
        "wrong_decisions": len(stats.wrong),
        "wrong_examples": stats.wrong[:10],
        "reconnects": stats.reconnects,
        "workdir": None if own_dir else workdir,
    })
    allowed = sum(v for k, v in stats.by_kind.items() if k.startswith("valid") or k == "public") + 1  # + warm-up
    denied = stats.total + 1 - allowed
    summary["counters_match"] = (summary["filter_allowed"], summary["filter_denied"]) == (allowed, denied)
    summary["ok"] = (not stats.wrong and not failures and summary["counters_match"]
                     and summary["fetch_failed"] > 0 and summary["jwks_fetches_total"] > summary["jwks_fetches_before_outage"]
                     and summary["revocation_poll_failed"] > 0 and summary["revocation_poll_ok"] > 0
                     and summary["revoked_refused"] == stats.by_kind.get("revoked", 0))
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = ap.parse_args()
    s = run(args.seconds, args.threads)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        for k, v in s.items():
            print(f"{k}: {v}")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
