#!/usr/bin/env python3
"""scopegate two-service mesh demo: a central auth server, two services, each behind
its own Envoy 1.40 sidecar running scopegate.wasm with its own route table.

    .venv/bin/python examples/mesh/demo.py [--release] [--no-build] [--keep]

                     POST /oauth/token (password, client_credentials)
      client ─────────────────────────────────────────────► auth server (examples/auth-server)
        │                                                    ▲  JWKS, /revocations
        │ Bearer JWT (aud svc-a)                             │  (cluster `auth`, polled)
        ├──► Envoy sidecar A + scopegate (svc-a.json) ───────┤
        │        └──► svc-a (echo: shows the headers it got) │
        │ Bearer JWT (aud svc-b)                             │
        └──► Envoy sidecar B + scopegate (svc-b.json) ───────┘
                 └──► svc-b (echo)

It builds what it needs (the auth server with cargo, scopegate.wasm with
filter/scripts/build-wasm.sh; --no-build skips that), starts everything on 127.0.0.1
with ephemeral ports, runs a fixed story and prints each step: method, service, path,
the credential, the status and reason, and what the service received. It stops
everything it started, also on error or Ctrl-C. Exit status: 0 when every step had the
expected outcome (status and reason), 1 otherwise, 2 when the set-up failed.

DEMO ONLY: the secrets in clients.json and the bot's API key below are published demo
values; the auth server's signing key is generated at start-up and thrown away.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "envoy"))

from scopegate_envoy import (  # noqa: E402
    EnvoyStartError,
    Response,
    ScopegateEnvoy,
    _die_with_parent,
    http_request,
)

CLIENTS = HERE / "clients.json"
SVC_CONFIGS = {"svc-a": HERE / "svc-a.json", "svc-b": HERE / "svc-b.json"}
# DEMO ONLY: the bot's API key; svc-a.json holds its SHA-256.
BOT_API_KEY = "demo-only-inventory-bot-api-key"
SHOWN_HEADERS = ("x-user", "x-client-id", "x-scopes", "x-roles", "x-tenant", "authorization", "x-api-key")
AUTH_START_TIMEOUT_S = 60.0
# How long the logout may take to reach a sidecar: its poll interval (2 s) + fetch
# timeout (2 s) + the workers' adoption tick, with margin.
REVOCATION_DEADLINE_S = 10.0


class SetupError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes

def build(release: bool) -> tuple[Path, Path]:
    """cargo build of the auth server, build-wasm.sh for the filter; their paths."""
    profile = "release" if release else "debug"
    cmd = ["cargo", "build", "-q", "-p", "scopegate-example-auth-server"] + (["--release"] if release else [])
    print(f"build: {' '.join(cmd)}", flush=True)
    r = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SetupError(f"building the auth server failed ({' '.join(cmd)} exited {r.returncode})")
    print("build: filter/scripts/build-wasm.sh", flush=True)
    r = subprocess.run([str(REPO / "filter" / "scripts" / "build-wasm.sh"), "scopegate-wasm"], cwd=REPO,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SetupError(f"building scopegate.wasm failed (build-wasm.sh exited {r.returncode})")
    lines = r.stdout.strip().splitlines()
    wasm = Path(lines[-1]) if lines else Path()
    return _target_dir() / profile / "auth-server", wasm


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


@dataclass
class AuthServer:
    binary: Path
    workdir: Path
    proc: subprocess.Popen | None = None
    addr: str = ""
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    @property
    def log_path(self) -> Path:
        return self.workdir / "auth-server.log"

    def start(self) -> "AuthServer":
        if not self.binary.is_file():
            raise SetupError(f"auth server binary not found at {self.binary}: run without --no-build")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(self.binary), "--clients", str(CLIENTS), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True, preexec_fn=_die_with_parent)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + AUTH_START_TIMEOUT_S
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if not sel.select(timeout=0.2):
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 256)
            if not chunk:
                break
            line += chunk
        sel.close()
        text = line.decode(errors="replace").strip().splitlines()
        if not text or not text[0].startswith("127.0.0.1:"):
            self.stop()
            raise SetupError(f"the auth server did not print its address; its log:\n{self.log_tail()}")
        self.addr = text[0]
        return self

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def without_revocation(config: dict[str, Any]) -> dict[str, Any]:
    c = copy.deepcopy(config)
    for p in c.get("providers", []):
        p.pop("revocation", None)
    return c


def start_sidecar(name: str, config: dict[str, Any], auth_port: int, workroot: Path,
                  wasm: Path | None, try_revocation: bool = True) -> tuple[ScopegateEnvoy, str | None]:
    """Envoy + echo service + scopegate with `config`. If this build of the filter
    refuses the `revocation` section (and only then), start without it; the second
    value is the filter's refusal in that case. try_revocation=False starts without
    it at once (an earlier sidecar was refused it)."""
    if try_revocation:
        gw = ScopegateEnvoy(json.dumps(config), wasm_path=wasm, auth_port=auth_port, workdir=str(workroot / name))
        try:
            return gw.start(), None
        except EnvoyStartError as e:
            found = re.search(r"invalid config: (\S*revocation: unknown field `revocation`)", e.log)
            if not found:
                raise
            refusal: str | None = found.group(1)
    else:
        refusal = "refused by the first sidecar"
    gw = ScopegateEnvoy(json.dumps(without_revocation(config)), wasm_path=wasm, auth_port=auth_port,
                        workdir=str(workroot / f"{name}-without-revocation"))
    return gw.start(), refusal


# --------------------------------------------------------------------------- the story

@dataclass
class Outcome:
    status: int
    reason: str
    details: list[str] = field(default_factory=list)
    dry_run: str | None = None


@dataclass
class Demo:
    auth: AuthServer
    sidecars: dict[str, ScopegateEnvoy]
    revocation: bool
    secrets: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    steps: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    # -- requests --------------------------------------------------------------
    def auth_post(self, path: str, form: dict[str, str], client: str | None = None,
                  bearer: str | None = None) -> Response:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if client:
            cred = base64.b64encode(f"{client}:{self.secrets[client]}".encode()).decode()
            headers["authorization"] = f"Basic {cred}"
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        return http_request(self.auth.url, "POST", path, headers=headers,
                            body=urllib.parse.urlencode(form))

    def service(self, svc: str, method: str, path: str, token: str | None = None,
                api_key: str | None = None) -> Outcome:
        headers: dict[str, str] = {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if api_key:
            headers["x-api-key"] = api_key
        r = http_request(self.sidecars[svc].url, method, path, headers=headers)
        return describe(svc, r)

    # -- steps -----------------------------------------------------------------
    def step(self, title: str, request: str, run: Callable[[], Outcome], expect: int, reason: str,
             dry_run: str | None = None) -> Outcome | None:
        self.steps += 1
        print(f"\n[{self.steps:2}] {title}")
        print(f"     {request}")
        try:
            o = run()
        except OSError as e:
            print(f"     -> request failed: {e}   MISMATCH (expected {expect} {reason})")
            self.failures.append(title)
            return None
        ok = o.status == expect and o.reason == reason
        if dry_run is not None:
            ok = ok and o.dry_run is not None and dry_run in o.dry_run
        mark = "ok" if ok else f"MISMATCH (expected {expect} {reason}" + (f", dry-run {dry_run}" if dry_run else "") + ")"
        print(f"     -> {o.status} {o.reason}   {mark}")
        for d in o.details:
            print(f"        {d}")
        if not ok:
            self.failures.append(title)
        return o

    def login(self, title: str, who: str, form: dict[str, str], client: str, key: str) -> None:
        shown = " ".join(f"{k}={v}" for k, v in form.items() if k != "password")

        def run() -> Outcome:
            r = self.auth_post("/oauth/token", form, client=client)
            body = r.json_or_none() or {}
            if r.status != 200:
                return Outcome(r.status, str(body.get("error", "?")), [f"body: {r.text[:200]}"])
            tok = body["access_token"]
            self.tokens[key] = tok
            details = [f"scope {body.get('scope')!r}, expires_in {body.get('expires_in')}"]
            if tok.count(".") == 2:
                claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
                details.append("token claims: " + ", ".join(
                    f"{k}={claims[k]}" for k in ("sub", "aud", "client_id", "roles", "jti") if k in claims))
            return Outcome(r.status, "issued", details)

        self.step(title, f"POST auth /oauth/token   client {client}: {shown}" + (f" (as {who})" if who else ""),
                  run, 200, "issued")

    def story(self) -> None:
        a, b = "svc-a", "svc-b"
        self.login("alice logs in (password grant) for svc-a", "alice",
                   {"grant_type": "password", "username": "alice", "password": self.secrets["alice"],
                    "audience": a}, "mesh-cli", "alice-a")
        alice_a = self.tokens.get("alice-a")
        self.step("alice reads orders at svc-a", "GET svc-a /orders   Bearer alice's svc-a token",
                  lambda: self.service(a, "GET", "/orders", alice_a), 200, "forwarded")
        self.step("alice tries to create an order: a scope she lacks", "POST svc-a /orders   Bearer alice's svc-a token",
                  lambda: self.service(a, "POST", "/orders", alice_a), 403, "insufficient_scope")
        self.step("no token", "GET svc-a /orders   (no credentials)",
                  lambda: self.service(a, "GET", "/orders"), 401, "token_missing")
        self.step("public health check", "GET svc-a /healthz   (no credentials)",
                  lambda: self.service(a, "GET", "/healthz"), 200, "forwarded")
        self.step("alice's svc-a token sent to svc-b", "GET svc-b /reports/q3   Bearer alice's svc-a token",
                  lambda: self.service(b, "GET", "/reports/q3", alice_a), 401, "audience_not_allowed")
        self.login("alice gets a token for svc-b", "alice",
                   {"grant_type": "password", "username": "alice", "password": self.secrets["alice"],
                    "audience": b}, "mesh-cli", "alice-b")
        self.step("alice reads a report at svc-b", "GET svc-b /reports/q3   Bearer alice's svc-b token",
                  lambda: self.service(b, "GET", "/reports/q3", self.tokens.get("alice-b")), 200, "forwarded")
        self.login("service svc-a gets its own token (client_credentials)", "",
                   {"grant_type": "client_credentials", "scope": "svc-b:reports:read"}, "svc-a", "svc-a")
        self.step("svc-a calls svc-b with it", "GET svc-b /reports/q3   Bearer svc-a's service token",
                  lambda: self.service(b, "GET", "/reports/q3", self.tokens.get("svc-a")), 200, "forwarded")
        self.step("a bot with an API key", "GET svc-a /orders   x-api-key: <inventory-bot's demo key>",
                  lambda: self.service(a, "GET", "/orders", api_key=BOT_API_KEY), 200, "forwarded")
        self.step("a wrong API key", "GET svc-a /orders   x-api-key: not-a-key",
                  lambda: self.service(a, "GET", "/orders", api_key="not-a-key"), 401, "api_key_invalid")
        self.step("a rule in dry-run: let through, the would-be decision shown",
                  "GET svc-a /exports/2026-q4.csv   Bearer alice's svc-a token (no svc-a:exports:read)",
                  lambda: self.service(a, "GET", "/exports/2026-q4.csv", alice_a), 200, "forwarded",
                  dry_run="deny; status=403; reason=insufficient_scope; rule=exports")
        self.rotation_story(alice_a)
        self.revocation_story(alice_a)

    def rotation_story(self, alice_a: str | None) -> None:
        a = "svc-a"

        def rotate() -> Outcome:
            r = self.auth_post("/admin/rotate", {}, client="auth-admin")
            body = r.json_or_none() or {}
            return Outcome(r.status, "rotated" if r.status == 200 else str(body.get("error", "?")),
                           [f"current kid {body.get('current_kid')}, previous kid {body.get('previous_kid')} "
                            "(both published in the JWKS)"])

        self.step("the operator rotates the signing key", "POST auth /admin/rotate   client auth-admin",
                  rotate, 200, "rotated")
        self.login("bob logs in: his token is signed with the new key", "bob",
                   {"grant_type": "password", "username": "bob", "password": self.secrets["bob"],
                    "audience": a}, "mesh-cli", "bob-a")
        self.step("bob exports at svc-a (new kid: the sidecar refetches the JWKS)",
                  "GET svc-a /exports/2026-q4.csv   Bearer bob's svc-a token",
                  lambda: self.service(a, "GET", "/exports/2026-q4.csv", self.tokens.get("bob-a")), 200, "forwarded",
                  dry_run="allow; reason=allowed; rule=exports")
        self.step("alice's token, signed with the previous key, still works", "GET svc-a /orders   Bearer alice's svc-a token",
                  lambda: self.service(a, "GET", "/orders", alice_a), 200, "forwarded")

    def revocation_story(self, alice_a: str | None) -> None:
        a, b = "svc-a", "svc-b"
        # The auth-server side runs in every build: it is the auth server's behaviour.
        def revoke() -> Outcome:
            r = self.auth_post("/oauth/revoke", {"token": self.tokens.get("svc-a", "")}, client="svc-a")
            return Outcome(r.status, "revoked" if r.status == 200 else r.text[:100])

        def logout() -> Outcome:
            r = self.auth_post("/logout", {}, bearer=alice_a)
            body = r.json_or_none() or {}
            return Outcome(r.status, "logged_out" if r.status == 200 else str(body.get("error", "?")),
                           [f"body: {r.text[:200]}"])

        def feed() -> Outcome:
            r = http_request(self.auth.url, "GET", "/revocations")
            body = r.json_or_none() or {}
            return Outcome(r.status, "listed" if r.status == 200 else "?",
                           [f"etag {r.headers.get('etag')}; body: {json.dumps(body, sort_keys=True)[:400]}"])

        self.step("svc-a's token is revoked (RFC 7009)", "POST auth /oauth/revoke   client svc-a: token=<svc-a's token>",
                  revoke, 200, "revoked")
        self.step("alice logs out everywhere", "POST auth /logout   Bearer alice's svc-a token", logout, 200, "logged_out")
        self.step("the revocation feed the sidecars poll", "GET auth /revocations", feed, 200, "listed")
        checks = [("the same svc-a token of alice at svc-a, after logout", a, "/orders", alice_a),
                  ("svc-a's revoked token at svc-b", b, "/reports/q3", self.tokens.get("svc-a"))]
        for title, svc, path, tok in checks:
            if not self.revocation:
                self.steps += 1
                print(f"\n[{self.steps:2}] {title}")
                print(f"     GET {svc} {path}")
                print("     -> SKIPPED: this build of scopegate has no revocation "
                      "(the filter refused the `revocation` config; the sidecars run without it)")
                self.skipped.append(title)
                continue
            self.step(title + f" (refused within {REVOCATION_DEADLINE_S:.0f} s)",
                      f"GET {svc} {path}   the same token, until refused",
                      lambda svc=svc, path=path, tok=tok: self.until_refused(svc, path, tok),
                      401, "token_revoked")

    def until_refused(self, svc: str, path: str, token: str | None) -> Outcome:
        start = time.monotonic()
        deadline = start + REVOCATION_DEADLINE_S
        o = self.service(svc, "GET", path, token)
        while o.status != 401 and time.monotonic() < deadline:
            time.sleep(0.2)
            o = self.service(svc, "GET", path, token)
        o.details.insert(0, f"after {time.monotonic() - start:.1f} s")
        return o


def describe(svc: str, r: Response) -> Outcome:
    body = r.json_or_none()
    if r.headers.get("x-echo") == "1" and isinstance(body, dict):
        seen = {k: v for k, v in body.get("header_list", [])}
        parts = [f"{h}: {seen[h]!r}" for h in SHOWN_HEADERS if h in seen]
        absent = [h for h in ("authorization", "x-api-key") if h not in seen]
        details = [f"{svc} saw {body.get('method')} {body.get('path')}  " + ", ".join(parts)
                   + (f"  ({', '.join(absent)} removed)" if absent else "")]
        dry = seen.get("x-scopegate-dry-run")
        if dry:
            details.append(f"x-scopegate-dry-run: {dry}")
        return Outcome(r.status, "forwarded", details, dry)
    reason = body.get("reason", "?") if isinstance(body, dict) else "?"
    details = []
    if "www-authenticate" in r.headers:
        details.append(f"www-authenticate: {r.headers['www-authenticate']}")
    if isinstance(body, dict):
        details.append("body: " + json.dumps(body, sort_keys=True))
    elif r.body:
        details.append(f"body: {r.text[:200]!r}")
    return Outcome(r.status, reason, details)


def demo_secrets() -> dict[str, str]:
    doc = json.loads(CLIENTS.read_text())
    out = {c["client_id"]: c["client_secret"] for c in doc["clients"] if "client_secret" in c}
    out.update({u["username"]: u["password"] for u in doc["users"] if "password" in u})
    return out


def check_bot_key(config: dict[str, Any]) -> None:
    want = hashlib.sha256(BOT_API_KEY.encode()).hexdigest()
    have = [k["sha256"] for k in config.get("api_keys", {}).get("keys", [])]
    if want not in have:
        raise SetupError("svc-a.json does not hold the SHA-256 of the demo bot key")


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="scopegate two-service mesh demo")
    ap.add_argument("--release", action="store_true", help="use a release build of the auth server")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--wasm", default=None, help="filter module (default: target/.../scopegate.wasm)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with bootstraps and logs")
    args = ap.parse_args(argv)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (`demo.py &`)
    workroot = Path(tempfile.mkdtemp(prefix="scopegate-mesh-"))
    auth: AuthServer | None = None
    sidecars: dict[str, ScopegateEnvoy] = {}
    demo: Demo | None = None
    try:
        if args.no_build:
            binary = _target_dir() / ("release" if args.release else "debug") / "auth-server"
            wasm = Path(args.wasm) if args.wasm else None
        else:
            binary, built = build(args.release)
            wasm = Path(args.wasm) if args.wasm else built
        configs = {name: json.loads(p.read_text()) for name, p in SVC_CONFIGS.items()}
        check_bot_key(configs["svc-a"])
        auth = AuthServer(binary, workroot).start()
        print(f"\nauth server on {auth.url} (issuer https://auth.mesh.example; clients {CLIENTS.relative_to(REPO)})")
        refusals: dict[str, str | None] = {}
        for name, cfg in configs.items():
            gw, refusal = start_sidecar(name, cfg, auth.port, workroot, wasm,
                                        try_revocation=not any(refusals.values()))
            sidecars[name] = gw
            refusals[name] = refusal
            print(f"{name}: Envoy sidecar on {gw.url} -> {name} (echo) on 127.0.0.1:{gw.echo.port if gw.echo else '?'}; "
                  f"scopegate config {SVC_CONFIGS[name].relative_to(REPO)}")
        revocation = not any(refusals.values())
        if not revocation:
            said = next(r for r in refusals.values() if r)
            print(f"note: this scopegate build refused the revocation config (\"{said}\"); "
                  "the sidecars run without it and the revocation steps are SKIPPED")
        else:
            print("revocation: each sidecar polls GET /revocations on the auth server every 2 s")
        demo = Demo(auth, sidecars, revocation, demo_secrets())
        demo.story()
    except SetupError as e:
        print(f"\ndemo: set-up failed: {e}", file=sys.stderr)
        return 2
    except EnvoyStartError as e:
        print(f"\ndemo: an Envoy sidecar did not start: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for gw in sidecars.values():
            gw.stop()
        if auth is not None:
            auth.stop()
        if args.keep:
            print(f"\nlogs kept in {workroot} (auth-server.log, <service>/envoy.log)")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    print()
    if demo.failures:
        print(f"demo: {len(demo.failures)} of {demo.steps} steps had an unexpected outcome: "
              + "; ".join(demo.failures))
        return 1
    skipped = f", {len(demo.skipped)} SKIPPED (no revocation in this scopegate build)" if demo.skipped else ""
    print(f"demo: {demo.steps - len(demo.skipped)} of {demo.steps} steps had the expected outcome{skipped}; "
          "auth server, sidecars and services stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
