"""A fake auth server key endpoint for the remote-JWKS tests: JWKS, OIDC discovery,
and the ways a real one fails.

    from jwks_server import JwksServer
    with JwksServer() as auth:                       # 127.0.0.1, ephemeral port
        auth.serve_jwks("/jwks", {"keys": [...]})
        auth.serve_discovery("https://auth.test", "http://auth.test/jwks")
        auth.fail("/jwks", status=500)               # or garbage / sleep / hang / close
        auth.hold(); ...; auth.release()             # park answers until released
        auth.stop_listening(); auth.start()          # connection refused, then back on the same port
        auth.count("/jwks"); auth.wait_for("/jwks", 2, timeout=5)

Threaded stdlib HTTP server; every request is recorded (time, method, path, headers)
and counted per path (query string excluded) whatever it was answered. Paths that were
never configured answer 404. Only ever binds 127.0.0.1. Nothing here blocks without a
bound except `hang`, which lasts until the server is stopped (or `release_hangs()`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fake_server import BaseState, FakeServer, TrackingHandler

DISCOVERY_PATH = "/.well-known/openid-configuration"

# behaviours of a route
SERVE = "serve"      # answer the configured status/body
GARBAGE = "garbage"  # 200, content-type JSON, a body that is not JSON
SLEEP = "sleep"      # wait `delay` seconds, then serve (a slow auth server)
HANG = "hang"        # never answer (until stop or release_hangs)
CLOSE = "close"      # close the connection without any answer
MODES = (SERVE, GARBAGE, SLEEP, HANG, CLOSE)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    mode: str = SERVE
    delay: float = 0.0


@dataclass
class Seen:
    at: float            # time.monotonic() when the request arrived
    method: str
    path: str            # as requested, with query
    headers: dict[str, str]


@dataclass
class _State(BaseState):
    routes: dict[tuple[str | None, str], Route] = field(default_factory=dict)  # (host, path)
    override: Route | None = None           # applies to every path when set
    gate: threading.Event = field(default_factory=threading.Event)   # set: answer; clear: hold
    held: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gate.set()


class _Handler(TrackingHandler):
    server_version = "scopegate-fake-auth/1"

    def _answer(self) -> None:
        st: _State = self.state
        path = self.path.split("?", 1)[0]
        host = (self.headers.get("host") or "").rsplit(":", 1)[0].lower() or None
        with st.changed:  # type: ignore[union-attr]
            st.record(Seen(time.monotonic(), self.command, self.path,
                           {k.lower(): v for k, v in self.headers.items()}))
            route = st.override or st.routes.get((host, path)) or st.routes.get((None, path))
        if not st.gate.is_set():
            with st.lock:
                st.held += 1
            try:
                st.gate.wait(timeout=60)
            finally:
                with st.lock:
                    st.held -= 1
        if route is None:
            self._send(404, b'{"error":"not_found"}', "application/json")
            return
        if route.mode == CLOSE:
            self.close_connection = True
            return
        if route.mode == HANG:
            st.unhang.wait(timeout=300)
            self.close_connection = True
            return
        if route.mode == SLEEP:
            st.unhang.wait(timeout=route.delay)
        if route.mode == GARBAGE:
            self._send(200, b"<html>this is not a JWKS {{{", "application/json")
            return
        self._send(route.status, route.body, route.content_type)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_HEAD = _answer


class JwksServer(FakeServer):
    """The auth server's key endpoint on 127.0.0.1:`port` (0 picks a free port, which
    is then kept across stop_listening()/start()).

    A new server already holds its port and the kernel queues connections, but nothing
    is answered before start(). For an auth server that is down from the beginning
    (connection refused), call stop_listening() first and start() later."""

    handler = _Handler
    thread_name = "fake-auth"
    _state: _State

    def __init__(self, port: int = 0) -> None:
        super().__init__(_State(), port)

    def _let_go(self) -> None:
        # Requests being held or hanging are let go, unanswered.
        super()._let_go()
        self._state.gate.set()

    # -- what to answer -----------------------------------------------------------
    # `host`: answer only requests with this Host (the fetch's :authority, port
    # ignored); None: any host without a route of its own.
    def serve_json(self, path: str, doc: Any, status: int = 200, host: str | None = None) -> None:
        body = doc if isinstance(doc, (bytes, bytearray)) else json.dumps(doc).encode()
        with self._state.lock:
            self._state.routes[(host, path)] = Route(status=status, body=bytes(body))

    def serve_jwks(self, path: str, jwks: dict[str, Any], host: str | None = None) -> None:
        self.serve_json(path, jwks, host=host)

    def serve_discovery(self, issuer: str, jwks_uri: str, path: str = DISCOVERY_PATH,
                        host: str | None = None, **extra: Any) -> None:
        doc = {"issuer": issuer, "jwks_uri": jwks_uri, **extra}
        self.serve_json(path, doc, host=host)

    def fail(self, path: str | None = None, *, status: int = 500, mode: str = SERVE,
             delay: float = 0.0, host: str | None = None) -> None:
        """Make `path` (None: every path) misbehave: `status` with a short body, or one
        of the modes garbage / sleep (wait `delay`, then serve what was configured) /
        hang / close. Undo with serve_json() (one path) or heal() (every path)."""
        assert mode in MODES, mode
        with self._state.lock:
            if mode == SLEEP:
                base = self._state.routes.get((host, path)) if path else None
                r = Route(**{**(base.__dict__ if base else {}), "mode": SLEEP, "delay": delay})
            elif mode == SERVE:
                r = Route(status=status, body=json.dumps({"error": f"status {status}"}).encode())
            else:
                r = Route(mode=mode)
            if path is None:
                self._state.override = r
            else:
                self._state.routes[(host, path)] = r

    def heal(self) -> None:
        """Stop failing every path (undoes fail(None, ...)); per-path routes stay."""
        with self._state.lock:
            self._state.override = None

    def hold(self) -> None:
        """Park every answer (the request is recorded first) until release()."""
        self._state.gate.clear()

    def release(self) -> None:
        self._state.gate.set()

    def release_hangs(self) -> None:
        self._state.unhang.set()

    @property
    def held(self) -> int:
        with self._state.lock:
            return self._state.held

    # -- what was asked -------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[Seen]:
        return [s for s in self._seen() if path is None or s.path.split("?", 1)[0] == path]

    def count(self, path: str | None = None) -> int:
        return len(self.requests(path))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.requests():
            p = s.path.split("?", 1)[0]
            out[p] = out.get(p, 0) + 1
        return out

    def wait_for(self, path: str | None, n: int, timeout: float) -> bool:
        """Wait (bounded) until `path` was asked at least `n` times in all."""
        return self._wait_until(
            lambda seen: sum(1 for s in seen if path is None or s.path.split("?", 1)[0] == path) >= n,
            timeout)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="serve a JWKS file on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default="/jwks")
    ap.add_argument("jwks_file")
    args = ap.parse_args()
    srv = JwksServer(args.port)
    with open(args.jwks_file, encoding="utf-8") as f:
        srv.serve_jwks(args.path, json.load(f))
    srv.start()
    print(f"JWKS on {srv.url}{args.path}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
