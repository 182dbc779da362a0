"""Differential test: the proxy-wasm harness against real Envoy 1.40.

For every scenario the SAME .wasm, the SAME plugin configuration and the SAME request
(the exact header list the client puts on the wire) go

  (a) through the harness CLI (`proxy-wasm-harness run`, one process per request), and
  (b) through real Envoy (scopegate_envoy.ScopegateEnvoy, V8, one Envoy per module and
      configuration) in front of a recording echo upstream,

and the observable outcomes must be equal. Envoy is the reference: a disagreement is a
bug in the harness (or a documented limit of what it simulates).

What is compared (see `Observed`):

- `client`: what the client gets. A reply (local reply or forwarded response): status,
  headers, body; or `reset` (connection closed without a complete response); or
  `no_response` (the filter paused and never resumed within the request's timeout).
- `upstream`: what reached the upstream, if anything: method, path, the request
  headers in order, body. The upstream's view comes from the recording upstream itself,
  so it is known even when the filter replaced the response afterwards.
- `metrics`: for scenarios that name them, the change of counters and gauges (Envoy's
  admin /stats before and after the request; the harness starts from zero).
- `logs`: for the fixture filter only, the filter's own log lines for the stream
  (`wasm log ...`, level and text, in order). They show what the filter saw: header
  counts, end_of_stream flags, body sizes, header values, host call results.

Normalisation (the whole list; everything else is compared byte for byte):

- Reply headers: `date` and `server` are dropped (the connection manager sets both on
  every response after the filter chain; the harness has no HTTP connection manager);
  `x-envoy-upstream-service-time` is dropped (the router's measured latency);
  `content-length: 0` on a reply with an empty body is dropped (HTTP/1.1 framing the
  codec adds after the filters; the filter does not see it, which the fixture's log line
  of `on_response_headers` checks). Header names are lowercase on both sides.
- Upstream headers: `x-envoy-expected-rq-timeout-ms` is dropped (the router adds it from
  the route timeout after the filter chain); the value of `x-request-id` becomes
  `<uuid>` (Envoy generates a random one, the harness a fixed one; the header itself is
  compared, so a filter removing it would show). On the harness side the pseudo-headers
  become what an HTTP/1.1 upstream receives: `:method` and `:path` the request line,
  `:authority` the `host` header, every other `:name` dropped (Envoy's HTTP/1 codec
  skips them; `:scheme` travels as `x-forwarded-proto`).
- Harness outcomes: `failed` (the guest trapped) is Envoy's reply to a dead VM, 503
  with no headers and an empty body; `paused` is `no_response`.
- Logs: `ctx=<n>` becomes `ctx=N` (Envoy's context ids grow across the module's
  requests; the harness starts at 2 every run) and UUIDs become `<uuid>`. Root-context
  lines (start-up, context 1) are not compared: Envoy logs them once per VM it starts.

A scenario may leave the upstream side out (`upstream=None`) where Envoy itself is not
deterministic: whether a request the filter cuts short (local reply from a body callback)
reached the upstream depends on whether the router had a connection to send it on.

Scenario inputs the harness cannot know from the request are given explicitly: the
current time (`time`, for token validation), the route and cluster names of the Envoy
bootstrap (`xds.route_name`, `xds.cluster_name` properties), the callout cluster `auth`
(127.0.0.1:9 in the bootstrap, nothing listens: a connection failure) and the upstream's
reply (recorded from the real upstream of the Envoy run, plus the
`x-envoy-upstream-service-time` header the router adds before the filter sees it).

The harness binary: $PROXY_WASM_HARNESS_BIN, default <repo>/target/debug/proxy-wasm-harness
(built by `cargo test`), built with `cargo build -q -p proxy-wasm-harness` when missing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import scopegate_envoy
from echo_upstream import _EchoHandler
from scopegate_envoy import ScopegateEnvoy, envoy_version
from scopegate_tokens import KeySet

REPO_ROOT = Path(__file__).resolve().parents[2]
WASM_DIR = REPO_ROOT / "target" / "wasm32-unknown-unknown" / "release"
PROBE_WASM = WASM_DIR / "fixture_probe.wasm"
SCOPEGATE_WASM = Path(os.environ.get("SCOPEGATE_WASM", WASM_DIR / "scopegate.wasm"))

AUTHORITY = "svc"
READ = "svc-a:orders:read"
HARNESS_TIMEOUT_S = 300.0  # a cold compile of scopegate.wasm by a debug build takes ~1.5 min
LOG_WAIT_S = 5.0
# The bootstrap of scopegate_envoy.render_bootstrap: route and cluster names.
ENVOY_PROPERTIES = {"xds.route_name": "to-upstream", "xds.cluster_name": "upstream"}

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --------------------------------------------------------------------------- harness CLI

def _older_than_sources(binary: Path) -> bool:
    sources = [REPO_ROOT / "test-harness" / "Cargo.toml",
               *(REPO_ROOT / "test-harness" / "src").glob("*.rs")]
    built = binary.stat().st_mtime
    return any(p.stat().st_mtime > built for p in sources if p.exists())


@pytest.fixture(scope="session")
def harness_bin() -> Path:
    """$PROXY_WASM_HARNESS_BIN as given; else <repo>/target/debug/proxy-wasm-harness,
    built (cargo build) when missing or older than the harness sources."""
    explicit = os.environ.get("PROXY_WASM_HARNESS_BIN")
    binary = Path(explicit) if explicit else REPO_ROOT / "target" / "debug" / "proxy-wasm-harness"
    if binary.is_file() and (explicit or not _older_than_sources(binary)):
        return binary
    subprocess.run(["cargo", "build", "-q", "-p", "proxy-wasm-harness"], cwd=REPO_ROOT,
                   check=True, timeout=1800)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    built = target / "debug" / "proxy-wasm-harness"
    assert built.is_file(), f"cargo build did not produce {built}"
    return built


def run_harness(binary: Path, wasm: Path, config: str, request: dict[str, Any],
                tmp: Path) -> dict[str, Any]:
    cfg = tmp / "plugin-config"
    cfg.write_text(config)
    req = tmp / "request.json"
    req.write_text(json.dumps(request))
    cmd = [str(binary), "run", "--wasm", str(wasm), "--config", str(cfg), "--request", str(req),
           "--log-level", "info",
           "--plugin-name", scopegate_envoy.PLUGIN_NAME, "--root-id", scopegate_envoy.PLUGIN_NAME,
           "--vm-id", scopegate_envoy.VM_ID]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=HARNESS_TIMEOUT_S)
    assert p.returncode == 0, f"harness CLI failed ({p.returncode}): {p.stderr}"
    return json.loads(p.stdout)


# --------------------------------------------------------------------------- upstream

class _Tap:
    """Wraps the handler's rfile / wfile: a copy of the body read / bytes sent goes to
    `sink` first (so the record is complete before the client can see the reply)."""

    def __init__(self, inner: Any, sink: bytearray) -> None:
        self.inner = inner
        self.sink = sink

    def read(self, n: int = -1) -> bytes:
        b = self.inner.read(n)
        self.sink += b
        return b

    def write(self, b: bytes) -> int:
        self.sink += b
        return self.inner.write(b)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _RecordingHandler(_EchoHandler):
    """The echo upstream of the Envoy tests, also keeping what it received and the
    exact reply it sent (for the harness run). The exchange is recorded before the
    echo answers, so it is there once the client has the reply."""

    def _record(self) -> None:
        exchange = {"method": self.command, "path": self.path,
                    "headers": [(k.lower(), v) for k, v in self.headers.items()],
                    "body": bytearray(), "reply": bytearray()}
        self.server.record(exchange)  # type: ignore[attr-defined]
        rfile, wfile = self.rfile, self.wfile
        self.rfile, self.wfile = _Tap(rfile, exchange["body"]), _Tap(wfile, exchange["reply"])
        try:
            super()._echo()
        except OSError:
            pass  # Envoy gave up on the upstream request (e.g. after a local reply)
        finally:
            self.rfile, self.wfile = rfile, wfile

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _record


class RecordingUpstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.verbose = False
        self._lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="diff-upstream", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def record(self, exchange: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append(exchange)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self.seen = self.seen, []
        return out

    def start(self) -> "RecordingUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self._thread.join(timeout=5)
        self.server_close()


@dataclass
class Gateway:
    envoy: ScopegateEnvoy
    upstream: RecordingUpstream
    wasm: Path
    config: str


def start_gateway(wasm: Path, config: str, workdir: Path) -> Gateway:
    if not wasm.is_file():
        pytest.fail(f"{wasm} is missing: build it with filter/scripts/build-wasm.sh (make wasm)")
    upstream = RecordingUpstream().start()
    gw = ScopegateEnvoy(config, wasm_path=wasm, upstream_port=upstream.port,
                        workdir=str(workdir), log_level="info", component_log_level=None)
    try:
        gw.start()
    except BaseException:
        upstream.stop()
        raise
    return Gateway(gw, upstream, wasm, config)


def stop_gateway(g: Gateway) -> None:
    try:
        g.envoy.stop()
    finally:
        g.upstream.stop()


# --------------------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Req:
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    timeout: float = 5.0  # client wait; a timeout means `no_response`

    def wire_headers(self) -> list[tuple[str, str]]:
        """Exactly what the client sends (http.client adds nothing else)."""
        h = [("host", AUTHORITY), ("accept-encoding", "identity"), *self.headers]
        if self.body is not None:
            h.append(("content-length", str(len(self.body.encode()))))
        return h


@dataclass
class Scenario:
    name: str
    req: Req
    expect: str                 # the client outcome both must produce: "reply:<status>", "reset", "no_response"
    # Whether the request reaches the upstream. None: not compared, because in Envoy it
    # is a race (the router may or may not have a connection to send it on before the
    # filter's local reply resets the upstream request).
    upstream: bool | None
    log_marker: str | None = None   # last filter log line of the stream (compare logs)
    metrics: tuple[str, ...] = ()   # counters/gauges the request changes (compare the change)
    properties: dict[str, str] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)


def probe(name: str, actions: str, *, expect: str, upstream: bool | None, method: str = "GET",
          path: str = "/p", headers: tuple[tuple[str, str], ...] = (), body: str | None = None,
          timeout: float = 5.0, **kw: Any) -> Scenario:
    req = Req(method, path, (("x-probe", actions), *headers), body, timeout)
    return Scenario(name, req, expect, upstream, log_marker="on_log ctx=", **kw)


# --------------------------------------------------------------------------- observation

@dataclass
class Observed:
    client: dict[str, Any]
    upstream: dict[str, Any] | None
    logs: list[str] | None
    metrics: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.client, "upstream": self.upstream, "logs": self.logs,
                "metrics": self.metrics}


def _reply(status: int, headers: list[tuple[str, str]], body: str) -> dict[str, Any]:
    kept = []
    for k, v in headers:
        k = k.lower()
        if k in ("date", "server", "x-envoy-upstream-service-time", ":status"):
            continue  # see the module docstring
        if k == "content-length" and v == "0" and body == "":
            continue
        kept.append([k, v])
    return {"kind": f"reply:{status}", "headers": kept, "body": body}


def _upstream_headers(pairs: list[tuple[str, str]]) -> list[list[str]]:
    out = []
    for k, v in pairs:
        if k == "x-envoy-expected-rq-timeout-ms":
            continue
        if k == "x-request-id":
            v = UUID_RE.sub("<uuid>", v)
        out.append([k, v])
    return out


def _log_text(level: str, text: str) -> str:
    text = re.sub(r"ctx=\d+", "ctx=N", text)
    return f"[{level}] " + UUID_RE.sub("<uuid>", text)


_ENVOY_LEVELS = {"Trace": "trace", "Debug": "debug", "Info": "info", "Warn": "warning",
                 "Error": "error", "Critical": "critical"}
_RECORD = re.compile(r"^\[[^\]]*\]\[(\w+)\]\[(\w+)\] (.*)$")


def envoy_filter_logs(text: str) -> list[str]:
    """The filter's `wasm log <plugin> <root_id> <vm_id>: ...` records from Envoy's log
    (multi-line messages joined back), without root-context lines."""
    records: list[list[str]] = []
    current: list[str] | None = None
    stream_prefix = (f"wasm log {scopegate_envoy.PLUGIN_NAME} {scopegate_envoy.PLUGIN_NAME} "
                     f"{scopegate_envoy.VM_ID}: ")
    for line in text.splitlines():
        m = _RECORD.match(line)
        if m:
            current = None
            if m.group(2) == "wasm" and m.group(3).startswith(stream_prefix):
                current = [m.group(1), m.group(3)]
                records.append(current)
        elif current is not None:
            current[1] += "\n" + line
    return [_log_text(level, msg) for level, msg in records]


def harness_filter_logs(out: dict[str, Any]) -> list[str]:
    return [_log_text(_ENVOY_LEVELS[ln["level"]], ln["envoy_line"]) for ln in out["logs"]
            if ln["emitted"] and ln["context_id"] != 1 and ln["envoy_line"].startswith("wasm log ")]


def envoy_metrics(g: Gateway, names: tuple[str, ...]) -> dict[str, int]:
    """Counter/gauge values from admin /stats (Envoy lists them as `wasmcustom.<name>`)."""
    stats = {k.removeprefix("wasmcustom."): v for k, v in g.envoy.stats().items()}
    return {n: int(stats[n]) for n in names}


def through_envoy(g: Gateway, sc: Scenario) -> tuple[Observed, dict[str, Any] | None]:
    """Sends the request; returns the observation and the upstream's reply (if reached)."""
    g.upstream.take()
    before = envoy_metrics(g, sc.metrics) if sc.metrics else None
    log_start = len(g.envoy.log())
    conn = http.client.HTTPConnection("127.0.0.1", g.envoy.listen_port, timeout=sc.req.timeout)
    client: dict[str, Any]
    try:
        conn.putrequest(sc.req.method, sc.req.path, skip_host=True, skip_accept_encoding=True)
        for k, v in sc.req.wire_headers():
            conn.putheader(k, v)
        conn.endheaders(sc.req.body.encode() if sc.req.body is not None else None)
        try:
            resp = conn.getresponse()
            body = resp.read()
            client = _reply(resp.status, resp.getheaders(), body.decode("utf-8", "replace"))
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead):
            client = {"kind": "reset"}
        except (socket.timeout, TimeoutError):
            client = {"kind": "no_response"}
    finally:
        conn.close()
    logs = None
    if sc.log_marker:
        deadline = time.monotonic() + LOG_WAIT_S
        while True:
            logs = envoy_filter_logs(g.envoy.log()[log_start:])
            if any(sc.log_marker in ln for ln in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    metrics = None
    if before is not None:
        after = envoy_metrics(g, sc.metrics)
        metrics = {n: after[n] - before[n] for n in sc.metrics}
    seen = g.upstream.take()
    assert len(seen) <= 1, f"the upstream got {len(seen)} requests"
    upstream = None
    reply = None
    if seen:
        ex = seen[0]
        upstream = {"method": ex["method"], "path": ex["path"],
                    "headers": _upstream_headers(ex["headers"]),
                    "body": bytes(ex["body"]).decode("utf-8", "replace")}
        head, sep, body = bytes(ex["reply"]).partition(b"\r\n\r\n")
        if sep:
            lines = head.decode("latin-1").split("\r\n")[1:]  # after the status line
            reply = {"headers": [(k.strip().lower(), v.strip())
                                 for k, _, v in (ln.partition(":") for ln in lines)],
                     "body": body.decode("utf-8", "replace")}
    return Observed(client, upstream, logs, metrics), reply


def harness_request(sc: Scenario, upstream_reply: dict[str, Any] | None) -> dict[str, Any]:
    req: dict[str, Any] = {
        "headers": [[":method", sc.req.method], [":path", sc.req.path],
                    *[[k, v] for k, v in sc.req.wire_headers()]],
        "time": int(time.time()),
        "properties": {**ENVOY_PROPERTIES, **sc.properties},
        # the bootstrap's `auth` cluster is 127.0.0.1:9, where nothing listens
        "clusters": {"auth": {"reply": "connect_failure"}, **sc.clusters},
    }
    if sc.req.body is not None:
        req["body"] = sc.req.body
    if upstream_reply is not None:
        # The upstream's reply as the filter receives it: the router adds
        # x-envoy-upstream-service-time before the filter chain sees the headers.
        req["response"] = {
            "headers": [[":status", "200"], *upstream_reply["headers"],
                        ["x-envoy-upstream-service-time", "0"]],
            "body": upstream_reply["body"],
        }
    return req


def through_harness(binary: Path, g: Gateway, sc: Scenario, upstream_reply: dict[str, Any] | None,
                    tmp: Path) -> Observed:
    out = run_harness(binary, g.wasm, g.config, harness_request(sc, upstream_reply), tmp)
    assert out["configured"], f"the filter refused its configuration in the harness: {out['logs']}"

    def outcome(o: dict[str, Any]) -> dict[str, Any] | None:
        kind = o["outcome"]
        if kind == "local_reply":
            return _reply(o["status"], o["headers"], o["body"])
        if kind == "failed":  # Envoy answers 503 with an empty body when the VM traps
            return _reply(503, [], "")
        if kind == "reset":
            return {"kind": "reset"}
        if kind == "paused":
            return {"kind": "no_response"}
        return None

    client = outcome(out["outcome"])
    if client is None:  # the request continued: the response path decides
        ro = out["response_outcome"]
        client = outcome(ro) if ro else None
        if client is None:
            d = out["downstream_response"]
            headers = d["headers"] or []
            status = int(next((v for k, v in headers if k == ":status"), "0"))
            client = _reply(status, headers, d["body"])
    upstream = None
    up = out["upstream_request"]
    if up["headers"] is not None:
        pseudo = {k: v for k, v in up["headers"] if k.startswith(":")}
        pairs = []
        for k, v in up["headers"]:
            if k == ":authority":
                pairs.append(("host", v))
            elif not k.startswith(":"):
                pairs.append((k, v))
        upstream = {"method": pseudo.get(":method"), "path": pseudo.get(":path"),
                    "headers": _upstream_headers(pairs), "body": up["body"]}
    logs = harness_filter_logs(out) if sc.log_marker else None
    # A fresh host per run: its values are the change the request made.
    metrics = {n: out["metrics"][n]["value"] for n in sc.metrics} if sc.metrics else None
    return Observed(client, upstream, logs, metrics)


def differential(binary: Path, g: Gateway, sc: Scenario, tmp: Path) -> Observed:
    envoy, reply = through_envoy(g, sc)
    harness = through_harness(binary, g, sc, reply, tmp)
    # The scenario's expectation pins what Envoy did, so that a change on both sides
    # (or in the scenario) is noticed too.
    assert envoy.client["kind"] == sc.expect, f"Envoy: {json.dumps(envoy.as_dict(), indent=1)}"
    if sc.upstream is None:
        envoy.upstream = harness.upstream = None
    else:
        assert (envoy.upstream is not None) == sc.upstream, (
            f"Envoy: {json.dumps(envoy.as_dict(), indent=1)}")
    assert harness.as_dict() == envoy.as_dict(), (
        f"harness and Envoy disagree on {sc.name}\n--- envoy\n"
        f"{json.dumps(envoy.as_dict(), indent=1)}\n--- harness\n{json.dumps(harness.as_dict(), indent=1)}")
    return envoy


# --------------------------------------------------------------------------- the fixture filter

PROBE_SCENARIOS = [
    probe("local_reply_with_headers_and_body", "deny", expect="reply:403", upstream=False),
    probe("local_reply_without_body", "deny-empty", expect="reply:401", upstream=False),
    probe("local_reply_with_own_content_type", "deny-json", expect="reply:400", upstream=False),
    probe("second_local_reply_is_ignored", "deny-twice", expect="reply:403", upstream=False),
    probe("local_reply_before_the_request_body", "deny", expect="reply:403", upstream=False,
          method="POST", body="hello"),
    probe("local_reply_without_body_before_the_request_body", "deny-empty", expect="reply:401",
          upstream=False, method="POST", body="hello"),
    probe("local_reply_to_head", "deny", expect="reply:403", upstream=False, method="HEAD"),
    probe("header_add_replace_remove", "mutate,dump", expect="reply:200", upstream=True,
          headers=(("authorization", "Bearer x"), ("x-replaced", "old"), ("x-multi", "first"))),
    probe("header_lookups", "get:x-multi,get:host,get:x-forwarded-proto,get:transfer-encoding,get:nope",
          expect="reply:200", upstream=True, headers=(("x-multi", "a"), ("x-multi", "b"))),
    probe("whole_header_map_replaced", "set-all", expect="reply:404", upstream=False),
    probe("properties", ",".join(f"prop:{p}" for p in (
        "request.path", "request.url_path", "request.query", "request.method", "request.host",
        "request.scheme", "request.protocol", "plugin_name", "plugin_root_id", "plugin_vm_id",
        "xds.route_name", "xds.cluster_name", "request.useragent", "nope")),
        expect="reply:200", upstream=True, path="/p/q?a=1&b=2"),
    probe("filter_state_property", "setprop:foo=bar,prop:foo", expect="reply:200", upstream=True),
    probe("shared_data", "shared-get:diffk,shared-set:diffk=v,shared-get:diffk,"
          "shared-cas:diffk=w@1,shared-get:diffk,shared-cas:diffk=x@1,shared-get:diffk",
          expect="reply:200", upstream=True),
    probe("log_levels", "log", expect="reply:200", upstream=True),
    # (the probe logs the counter's value, so this is the only request that counts)
    probe("metrics", "metric", expect="reply:200", upstream=True,
          metrics=("probe_requests", "probe_gauge", "probe_ticks")),
    probe("callout_to_unreachable_cluster", "callout:auth", expect="reply:503", upstream=False),
    probe("callout_without_path", "callout-bad:auth", expect="reply:200", upstream=True),
    probe("request_body_then_local_reply", "body-deny", expect="reply:413", upstream=None,
          method="POST", body="hello"),
    probe("request_body_buffered", "body-buffer", expect="reply:200", upstream=True,
          method="POST", body="hello"),
    probe("local_reply_from_response_headers", "resp-deny", expect="reply:502", upstream=True),
    probe("local_reply_after_response_headers_resets", "resp-body-deny", expect="reset",
          upstream=True),
    probe("response_paused_forever", "resp-pause", expect="no_response", upstream=True,
          timeout=1.0),
    probe("request_paused_forever", "pause", expect="no_response", upstream=False, timeout=1.0),
    probe("stream_reset_by_filter", "reset", expect="reset", upstream=False),
    probe("plugin_config_outside_on_configure", "cfg-late", expect="reply:200", upstream=True),
    probe("request_headers_after_they_went_upstream", "late-pairs", expect="reply:200",
          upstream=True),
    probe("bad_guest_pointers", "badptr", expect="reply:404", upstream=False),
]

# These kill the VM (every later request on that Envoy would get 503): one Envoy each.
PROBE_FATAL_SCENARIOS = [
    probe("panic_in_request_headers", "panic", expect="reply:503", upstream=False),
    probe("panic_in_response_headers", "late-read", expect="reply:503", upstream=True),
]


@pytest.fixture(scope="module")
def probe_gateway(tmp_path_factory: pytest.TempPathFactory):
    g = start_gateway(PROBE_WASM, "", tmp_path_factory.mktemp("envoy-probe"))
    try:
        yield g
    finally:
        stop_gateway(g)
        print(f"\n[differential] probe Envoy log: {g.envoy.log_path}")


# Scenarios where Envoy releases before 1.40 behave differently from 1.40, which the
# harness follows (envoy/MATRIX.md): name -> (first version like 1.40, what differs).
# Run with an older Envoy (envoy/matrix.sh) they are strict xfails.
ENVOY_VERSION_DIFFERENCES = {
    "callout_to_unreachable_cluster": (
        (1, 38), "Envoy < 1.38 appends ', transport failure reason: delayed connect error: "
                 "Connection refused' to the body of the 503 it synthesizes for a failed callout"),
}


@pytest.mark.parametrize("sc", PROBE_SCENARIOS, ids=lambda s: s.name)
def test_fixture_filter(sc: Scenario, probe_gateway: Gateway, harness_bin: Path, tmp_path: Path,
                        request: pytest.FixtureRequest):
    since, why = ENVOY_VERSION_DIFFERENCES.get(sc.name, ((0,), ""))
    if envoy_version() < since:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"Envoy {envoy_version()}: {why}"))
    differential(harness_bin, probe_gateway, sc, tmp_path)


@pytest.mark.parametrize("sc", PROBE_FATAL_SCENARIOS, ids=lambda s: s.name)
def test_fixture_filter_trap(sc: Scenario, harness_bin: Path, tmp_path: Path,
                             tmp_path_factory: pytest.TempPathFactory):
    g = start_gateway(PROBE_WASM, "", tmp_path_factory.mktemp("envoy-trap"))
    try:
        differential(harness_bin, g, sc, tmp_path)
    finally:
        stop_gateway(g)


# --------------------------------------------------------------------------- scopegate

@pytest.fixture(scope="module")
def sg_keys() -> KeySet:
    return KeySet()


@pytest.fixture(scope="module")
def scopegate_gateway(sg_keys: KeySet, tmp_path_factory: pytest.TempPathFactory):
    config = json.dumps(sg_keys.plugin_config())  # the same bytes for both
    g = start_gateway(SCOPEGATE_WASM, config, tmp_path_factory.mktemp("envoy-scopegate"))
    try:
        yield g
    finally:
        stop_gateway(g)
        print(f"\n[differential] scopegate Envoy log: {g.envoy.log_path}")


def _sg(name: str, expect: str, upstream: bool, method: str, path: str,
        headers: Any = (), body: str | None = None) -> tuple[str, Any]:
    """A scopegate scenario; `headers` may be a function of the KeySet (tokens)."""
    def build(k: KeySet) -> Scenario:
        h = headers(k) if callable(headers) else headers
        return Scenario(name, Req(method, path, tuple(h), body), expect, upstream)
    return name, build


def _good(k: KeySet) -> str:
    return k.token(sub="alice", scope=f"{READ} svc-a:other")


def _bearer(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


SCOPEGATE_SCENARIOS = dict([
    _sg("allow_with_claim_headers", "reply:200", True, "GET", "/orders/42?x=1",
        lambda k: [_bearer(_good(k))]),
    _sg("spoofed_claim_header_stripped", "reply:200", True, "GET", "/orders",
        lambda k: [("x-scopegate-sub", "mallory"), _bearer(_good(k)), ("X-Scopegate-Sub", "m2")]),
    _sg("public_route", "reply:200", True, "GET", "/healthz", [("x-scopegate-sub", "mallory")]),
    _sg("allow_post_with_body", "reply:200", True, "POST", "/orders",
        lambda k: [_bearer(k.token(scope="svc-a:admin", alg="HS256")),
                   ("content-type", "application/json")], '{"item":1}'),
    _sg("401_missing_token", "reply:401", False, "GET", "/orders"),
    _sg("401_bad_signature", "reply:401", False, "GET", "/orders",
        lambda k: [_bearer(k.rs256(k.claims(), rogue=True))]),
    _sg("401_malformed_token", "reply:401", False, "GET", "/orders", [_bearer("not-a-jwt")]),
    _sg("401_expired_token", "reply:401", False, "GET", "/orders",
        lambda k: [_bearer(k.rs256(k.claims(ttl=-3600)))]),
    _sg("401_before_the_request_body", "reply:401", False, "POST", "/orders",
        [("content-type", "application/json")], '{"item":1}'),
    _sg("403_insufficient_scope", "reply:403", False, "GET", "/orders",
        lambda k: [_bearer(k.token(scope="svc-a:orders:write"))]),
    _sg("403_no_rule", "reply:403", False, "GET", "/admin", lambda k: [_bearer(_good(k))]),
    _sg("403_no_rule_for_method", "reply:403", False, "DELETE", "/orders/1",
        lambda k: [_bearer(_good(k))]),
    _sg("400_invalid_path", "reply:400", False, "GET", "/orders%2F..%2Fadmin",
        lambda k: [_bearer(_good(k))]),
])


@pytest.mark.parametrize("name", list(SCOPEGATE_SCENARIOS))
def test_scopegate(name: str, scopegate_gateway: Gateway, sg_keys: KeySet, harness_bin: Path,
                   tmp_path: Path):
    sc = SCOPEGATE_SCENARIOS[name](sg_keys)
    seen = differential(harness_bin, scopegate_gateway, sc, tmp_path)
    if name in ("allow_with_claim_headers", "spoofed_claim_header_stripped"):
        assert seen.upstream is not None
        subs = [v for k, v in seen.upstream["headers"] if k == "x-scopegate-sub"]
        assert subs == ["alice"], seen.upstream
        assert all(k != "authorization" for k, _ in seen.upstream["headers"]), seen.upstream
