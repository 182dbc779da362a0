#!/usr/bin/env python3
"""Real-Envoy load benchmark: scopegate side by side with Envoy's native jwt_authn + RBAC.

One invocation runs every scenario against the same Envoy binary (1.40 from the
repo's .venv), `--concurrency 1`, pinned to one core with taskset, with wrk
pinned to another core, 16 keep-alive connections, 127.0.0.1 only, a bounded
duration per scenario. Envoy answers with a route `direct_response` (no
upstream), so what is measured is Envoy plus the filters.

For each scenario it prints Envoy CPU time per request (utime+stime deltas
from /proc/<pid>/stat: steadier than RPS on a shared machine), RPS, p50, p99,
and ratios against "no filter" and against the matching native scenario.

    make bench                                    # or:
    .venv/bin/python envoy/bench/run.py [--duration 6] [--rounds 3] [--only REGEX] [--json out.json]
        [--envoy-cpu 0] [--load-cpu 1] [--connections 16] [--tokens 5000]

Needs: wrk (apt-get install -y wrk), taskset, the built wasm files
(filter/scripts/build-wasm.sh builds scopegate.wasm and the empty filter).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

import jwt  # noqa: E402  (PyJWT)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

from scopegate_envoy import find_envoy  # noqa: E402

RELEASE = ROOT / "target" / "wasm32-unknown-unknown" / "release"
SCOPEGATE_WASM = RELEASE / "scopegate.wasm"
EMPTY_WASM = RELEASE / "fixture_empty_filter.wasm"
PROBE_WASM = RELEASE / "fixture_cost_probe.wasm"
# `--compare-wasm`: another scopegate.wasm measured in the same run.
COMPARE_WASM: Path | None = None
ISS, AUD, SCOPE = "https://auth.bench", "svc-a", "svc-a:orders:read"
PATH = "/orders/7"
NOW = int(time.time())
CLK_TCK = os.sysconf("SC_CLK_TCK")


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# --------------------------------------------------------------------------- keys and tokens

class Keys:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = {
            "ES256": ec.generate_private_key(ec.SECP256R1()),
            "ES384": ec.generate_private_key(ec.SECP384R1()),
            "ES512": ec.generate_private_key(ec.SECP521R1()),
        }
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.hmac = os.urandom(32)

    def signing_key(self, alg: str):
        if alg in ("RS256", "PS256"):
            return self.rsa
        if alg in self.ec:
            return self.ec[alg]
        if alg == "EdDSA":
            return self.ed
        if alg == "HS256":
            return self.hmac
        raise ValueError(alg)

    def jwk(self, alg: str) -> dict:
        kid = KID[alg]
        if alg in ("RS256", "PS256"):
            n = self.rsa.public_key().public_numbers()
            return {"kty": "RSA", "kid": kid, "alg": alg, "use": "sig",
                    "n": b64u(n.n.to_bytes(256, "big")), "e": b64u(n.e.to_bytes(3, "big"))}
        if alg in self.ec:
            crv, size = {"ES256": ("P-256", 32), "ES384": ("P-384", 48), "ES512": ("P-521", 66)}[alg]
            n = self.ec[alg].public_key().public_numbers()
            return {"kty": "EC", "kid": kid, "alg": alg, "use": "sig", "crv": crv,
                    "x": b64u(n.x.to_bytes(size, "big")), "y": b64u(n.y.to_bytes(size, "big"))}
        if alg == "EdDSA":
            from cryptography.hazmat.primitives import serialization
            raw = self.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "kid": kid, "alg": "EdDSA", "use": "sig", "crv": "Ed25519", "x": b64u(raw)}
        return {"kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": b64u(self.hmac)}

    def jwks(self, algs) -> dict:
        return {"keys": [self.jwk(a) for a in algs]}

    def distinct(self, alg: str, count: int) -> list[str]:
        """`count` distinct valid tokens for `alg` (memoised: native and scopegate get the same)."""
        memo = self.__dict__.setdefault("_memo", {})
        if len(memo.get(alg, [])) < count:
            memo[alg] = [self.token(alg, n) for n in range(count)]
        return memo[alg][:count]

    def token(self, alg: str, n: int, scope: str = SCOPE) -> str:
        claims = {"iss": ISS, "aud": AUD, "sub": f"user-{n}", "scope": scope,
                  "iat": NOW - 60, "exp": NOW + 3600, "jti": f"bench-{alg}-{n:06d}"}
        return jwt.encode(claims, self.signing_key(alg), algorithm=alg, headers={"kid": KID[alg]})


KID = {"RS256": "rsa-1", "PS256": "rsa-ps", "ES256": "ec256", "ES384": "ec384", "ES512": "ec521",
       "EdDSA": "ed-1", "HS256": "hs-1"}
ALL_ALGS = ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA", "HS256"]


# --------------------------------------------------------------------------- Envoy configs

def wasm_filter(name: str, path: Path, config: str) -> dict:
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": name, "root_id": name,
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config},
                   "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(path)}}},
                   "fail_open": False}}}


def scopegate_filter(keys: Keys, wasm: Path | None = None) -> dict:
    cfg = {"realm": "svc-a",
           "providers": [{"name": "main", "issuer": ISS, "audiences": [AUD], "jwks": keys.jwks(ALL_ALGS)}],
           "rules": [{"name": "healthz", "match": {"exact": "/healthz"}, "require": "public"},
                     {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]},
                      "require": {"all_of": [SCOPE]}}]}
    return wasm_filter("scopegate", wasm or SCOPEGATE_WASM, json.dumps(cfg))


def native_filters(keys: Keys, alg: str, cache: bool) -> list[dict]:
    provider = {"issuer": ISS, "audiences": [AUD], "forward": False,
                "local_jwks": {"inline_string": json.dumps(keys.jwks([alg]))},
                "payload_in_metadata": "jwt_payload"}
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    authn = {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"main": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "main"}}]}}
    # The scope check: `scope` (space-separated) must contain svc-a:orders:read as a word.
    rbac = {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": {"orders-read": {
            "permissions": [{"any": True}],
            "principals": [{"metadata": {"filter": "envoy.filters.http.jwt_authn",
                                         "path": [{"key": "jwt_payload"}, {"key": "scope"}],
                                         "value": {"string_match": {"safe_regex": {
                                             "regex": "(^|.* )" + re.escape(SCOPE) + "( .*|$)"}}}}}]}}}}}
    return [authn, rbac]


def bootstrap(listen: int, admin: int, filters: list[dict]) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "bench", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "bench",
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
                    "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}]}]}}


# --------------------------------------------------------------------------- running

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def http_status(url: str, auth: str | None) -> int:
    req = urllib.request.Request(url, headers={"authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


LUA = r"""
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local i = tonumber(os.getenv("BENCH_OFFSET") or "0") % #tokens
local path = os.getenv("BENCH_PATH")
request = function()
  i = i + 1
  if i > #tokens then i = 1 end
  if tokens[i] == "-" then return wrk.format("GET", path) end
  return wrk.format("GET", path, { ["authorization"] = "Bearer " .. tokens[i] })
end
done = function(summary, latency, requests)
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wait_ready(proc: subprocess.Popen, admin: int, name: str, log: Path, seconds: float, poll: float) -> None:
    """Waits until Envoy's admin `/ready` answers 200; raises if Envoy exits or `seconds` pass."""
    deadline = time.time() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: envoy exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=max(1.0, poll)) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{name}: envoy not ready in {seconds:.0f} s")
        time.sleep(poll)


def run_scenario(envoy: str, args, work: Path, name: str, filters: list[dict], tokens: list[str],
                 expect: int, path: str = PATH) -> dict:
    listen, admin = free_port(), free_port()
    cfg = work / f"{name}.json"
    cfg.write_text(json.dumps(bootstrap(listen, admin, filters)))
    tok = work / f"{name}.tokens"
    tok.write_text("\n".join(tokens) + "\n")
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen(["taskset", "-c", str(args.envoy_cpu), envoy, "-c", str(cfg), "--concurrency", "1",
                             "--use-dynamic-base-id", "-l", "warning"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, admin, name, work / f"{name}.log", seconds=30, poll=0.1)
        url = f"http://127.0.0.1:{listen}{path}"
        first = None if tokens[0] == "-" else "Bearer " + tokens[0]
        got = http_status(url, first)
        if got != expect:
            raise RuntimeError(f"{name}: probe answered {got}, expected {expect}")
        env = dict(os.environ, BENCH_TOKENS=str(tok), BENCH_PATH=path)
        lua = work / "bench.lua"
        lua.write_text(LUA)
        wrk = ["taskset", "-c", str(args.load_cpu), "wrk", "-t1", f"-c{args.connections}",
               f"-d{args.duration}s", "--latency", "-s", str(lua), f"http://127.0.0.1:{listen}"]
        # Warm-up (JIT, allocator), not measured. The measured run goes on
        # from the first token the warm-up did not send: with more tokens than
        # both runs send (or than the 4096 cache entries, in cyclic order), no
        # distinct token is ever answered from scopegate's cache.
        warm = subprocess.run(wrk[:4] + [f"-d{min(2, args.duration)}s"] + wrk[5:], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        wl = next(ln for ln in warm.stdout.splitlines() if ln.startswith("BENCH "))
        env["BENCH_OFFSET"] = str(json.loads(wl[len("BENCH "):])["requests"])
        c0 = cpu_ticks(proc.pid)
        out = subprocess.run(wrk, env=env, capture_output=True, text=True, timeout=args.duration + 60, check=True)
        c1 = cpu_ticks(proc.pid)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("BENCH "))
        r = json.loads(line[len("BENCH "):])
        ok = r["requests"] - r["non2xx"] if expect == 200 else r["non2xx"]
        if ok != r["requests"] or r["errors"]:
            raise RuntimeError(f"{name}: {r['non2xx']} non-2xx of {r['requests']} (expected all {expect}), "
                               f"{r['errors']} socket errors")
        secs = r["duration_us"] / 1e6
        return {"scenario": name, "requests": r["requests"], "rps": r["requests"] / secs,
                "cpu_us_per_req": (c1 - c0) / CLK_TCK * 1e6 / r["requests"],
                "p50_us": r["p50_us"], "p99_us": r["p99_us"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def scenarios(keys: Keys, n_tokens: int):
    """(name, filters, tokens, expected status, native reference)."""
    sg = scopegate_filter(keys)
    empty = wasm_filter("empty", EMPTY_WASM, "")
    one = {a: keys.token(a, 0) for a in ALL_ALGS}
    yield "no filter", [], ["-"], 200, None
    yield "empty wasm filter", [empty], [one["RS256"]], 200, None
    for alg in ("RS256", "ES256", "HS256", "EdDSA"):
        distinct = keys.distinct(alg, n_tokens)
        yield f"native {alg} distinct", native_filters(keys, alg, False), distinct, 200, None
        if alg == "RS256":
            yield "native RS256 cached (jwt_cache_config)", native_filters(keys, alg, True), [one[alg]], 200, None
    yield "scopegate public route (/healthz, no token)", [sg], ["-"], 200, None
    yield "scopegate RS256 repeated token", [sg], [one["RS256"]], 200, "native RS256 cached (jwt_cache_config)"
    for alg in ALL_ALGS:
        distinct = keys.distinct(alg, n_tokens)
        native = f"native {alg} distinct" if alg in ("RS256", "ES256", "HS256", "EdDSA") else None
        yield f"scopegate {alg} distinct", [sg], distinct, 200, native
    bad = one["RS256"][:-10] + ("A" if one["RS256"][-10] != "A" else "B") + one["RS256"][-9:]
    low = keys.token("RS256", 0, scope="svc-a:profile:read")
    yield "scopegate deny: no token", [sg], ["-"], 401, None
    yield "scopegate deny: bad signature", [sg], [bad], 401, None
    yield "scopegate deny: insufficient scope", [sg], [low], 403, None
    yield "native RS256 deny: bad signature", native_filters(keys, "RS256", False), [bad], 401, None
    yield "native RS256 deny: insufficient scope", native_filters(keys, "RS256", False), [low], 403, None
    if COMPARE_WASM:
        # Another build of scopegate (`--compare-wasm`), same scenarios as above.
        other = scopegate_filter(keys, COMPARE_WASM)
        yield "other build: RS256 repeated token", [other], [one["RS256"]], 200, "scopegate RS256 repeated token"
        for alg in ALL_ALGS:
            yield f"other build: {alg} distinct", [other], keys.distinct(alg, n_tokens), 200, f"scopegate {alg} distinct"
        yield "other build: public route (/healthz, no token)", [other], ["-"], 200, "scopegate public route (/healthz, no token)"
        yield "other build: deny: no token", [other], ["-"], 401, "scopegate deny: no token"
        yield "other build: deny: bad signature", [other], [bad], 401, "scopegate deny: bad signature"
        yield "other build: deny: insufficient scope", [other], [low], 403, "scopegate deny: insufficient scope"


# What scopegate does per request on a cache hit with the benchmark's config
# (GET /orders/7, repeated RS256 token, no claims_to_headers): read three
# headers and the clock and the log level, bump four counters (allowed, the
# provider's, the rule's, the reason's), remove the token.
SCOPEGATE_HIT_CALLS = ["get :method", "get :path", "get authorization", "time", "loglevel", "metric 4",
                       "remove authorization"]


def probe_scenarios(keys: Keys, n_tokens: int):
    """`--probe`: price host calls. Each scenario is the cost-probe filter making
    the listed calls per request; compare with the empty filter (one `get`)."""
    token = [keys.token("RS256", 0)]
    empty = wasm_filter("empty", EMPTY_WASM, "")

    def probe(*ops: str) -> list[dict]:
        return [wasm_filter("probe", PROBE_WASM, "\n".join(ops))]
    yield "no filter", [], ["-"], 200, None
    yield "empty wasm filter", [empty], token, 200, None
    yield "probe: get authorization", probe("get authorization"), token, 200, None
    yield "probe: 10x get authorization", probe(*["get authorization"] * 10), token, 200, None
    yield "probe: 10x get (absent header)", probe(*["get x-absent"] * 10), token, 200, None
    yield "probe: 10x time", probe("get authorization", *["time"] * 10), token, 200, None
    yield "probe: 10x loglevel", probe("get authorization", *["loglevel"] * 10), token, 200, None
    yield "probe: 10x metric", probe("get authorization", "metric 10"), token, 200, None
    yield "probe: 1x set", probe("get authorization", "set x-a b"), token, 200, None
    yield "probe: 10x set", probe("get authorization", *[f"set x-a{i} b" for i in range(10)]), token, 200, None
    yield "probe: 1x remove", probe("get authorization", "remove authorization"), token, 200, None
    yield "probe: 10x remove (absent)", probe("get authorization", *["remove x-absent"] * 10), token, 200, None
    yield "probe: reply 401", probe("get authorization", "reply 401"), token, 401, None
    yield "probe: scopegate's hit calls", probe(*SCOPEGATE_HIT_CALLS), token, 200, None
    # The three header reads as one call (a single copy-in of every header).
    yield "probe: get :method, :path, authorization", probe("get :method", "get :path", "get authorization"), \
        token, 200, None
    yield "probe: pairs (all headers, one call)", probe("pairs"), token, 200, None
    yield "scopegate RS256 repeated token", [scopegate_filter(keys)], token, 200, None
    yield "scopegate deny: no token", [scopegate_filter(keys)], ["-"], 401, None
    yield "empty wasm filter (again)", [empty], token, 200, None


def machine() -> str:
    model = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs, {model}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "6")),
                    help="seconds of load per scenario (default 6; a 2 s warm-up comes first)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every scenario this many times, interleaved; figures are medians")
    ap.add_argument("--tokens", type=int, default=5000,
                    help="distinct tokens per algorithm, sent in cyclic order (more than scopegate's 4096 "
                         "cache entries: every request misses)")
    ap.add_argument("--envoy-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--only", default="", help="regex: run only matching scenarios")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--compare-wasm", default="",
                    help="also run the scopegate scenarios with this other build of scopegate.wasm (A/B in one "
                         "run; its rows' ratios are against the current build's)")
    ap.add_argument("--probe", action="store_true",
                    help="instead of the comparison, price each kind of host call with the cost-probe filter")
    args = ap.parse_args()
    global COMPARE_WASM
    if args.compare_wasm:
        COMPARE_WASM = Path(args.compare_wasm).resolve()
        if not COMPARE_WASM.exists():
            print(f"bench: {COMPARE_WASM} is missing", file=sys.stderr)
            return 2
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (apt-get install -y {'wrk' if tool == 'wrk' else 'util-linux'})",
                  file=sys.stderr)
            return 2
    for f in (SCOPEGATE_WASM, EMPTY_WASM) + ((PROBE_WASM,) if args.probe else ()):
        if not f.exists():
            print(f"bench: {f} is missing: run filter/scripts/build-wasm.sh", file=sys.stderr)
            return 2
    envoy = find_envoy()
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip().split("version:")[-1].strip()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; envoy {version}; {machine()}; "
          f"load average before {os.getloadavg()[0]:.2f}; {args.duration} s per scenario, "
          f"{args.connections} connections; scopegate.wasm {SCOPEGATE_WASM.stat().st_size} bytes", flush=True)
    keys = Keys()
    results: dict[str, dict] = {}
    refs: dict[str, str | None] = {}
    only = re.compile(args.only) if args.only else None
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="scopegate-bench-") as tmp:
        todo = [sc for sc in (probe_scenarios if args.probe else scenarios)(keys, args.tokens)
                if not only or only.search(sc[0]) or sc[0] == "no filter"]
        # Rounds interleave the scenarios, so a burst of noise on a shared
        # machine spreads over all of them; each figure is the median.
        for rnd in range(args.rounds):
            for name, filters, tokens, expect, native in todo:
                path = "/healthz" if "/healthz" in name else PATH
                r = run_scenario(envoy, args, Path(tmp), re.sub(r"[^a-z0-9]+", "_", name.lower()), filters,
                                 tokens, expect, path)
                r["scenario"] = name
                r["load_average"] = os.getloadavg()[0]
                runs.setdefault(name, []).append(r)
                refs[name] = native
                print(f"  [{rnd + 1}/{args.rounds}] {name}: {r['cpu_us_per_req']:.1f} µs CPU/req, {r['rps']:.0f} RPS "
                      f"(load {r['load_average']:.2f})", file=sys.stderr, flush=True)
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us_per_req", "p50_us", "p99_us",
                                                              "load_average")}
        results[name] = {"scenario": name, "requests": sum(r["requests"] for r in rs), "rounds": len(rs),
                         "cpu_us_per_req_all": [round(r["cpu_us_per_req"], 1) for r in rs], **med}
    base = results.get("no filter")
    print()
    print("| scenario | Envoy CPU µs/req | RPS | p50 µs | p99 µs | RPS vs no filter | RPS vs native | CPU vs native | load avg | CPU µs/req of each round |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ref = results.get(refs[name] or "")
        vs_base = f"{r['rps'] / base['rps']:.2f}" if base else "-"
        vs_native = f"{r['rps'] / ref['rps']:.2f}" if ref else "-"
        cpu_native = f"{r['cpu_us_per_req'] / ref['cpu_us_per_req']:.2f}" if ref else "-"
        each = " / ".join(f"{c:.0f}" for c in r["cpu_us_per_req_all"])
        print(f"| {name} | {r['cpu_us_per_req']:.1f} | {r['rps']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
              f"{vs_base} | {vs_native} | {cpu_native} | {r['load_average']:.2f} | {each} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"envoy": version, "machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
