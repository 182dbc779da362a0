"""A fake RFC 7662 introspection endpoint for the introspection tests, and the ways a
real one fails.

    from introspection_server import IntrospectionServer
    with IntrospectionServer(client_id="svc-a", client_secret="s3cret") as auth:   # 127.0.0.1, free port
        auth.token("opaque-1", scope="svc-a:orders:read", sub="alice", exp=...)      # an active token
        auth.revoke("opaque-1")                       # now answered {"active": false}
        auth.fail(status=500)                         # or mode="garbage" / "hang" / "close"; heal() undoes
        auth.stop_listening(); auth.start()           # connection refused, then back on the same port
        auth.count(); auth.count("opaque-1"); auth.wait_for(1, timeout=5)

Threaded stdlib HTTP server on one path (default `/oauth/introspect`). Every request
is recorded (time, method, path, headers, the decoded form) whatever it was answered.
Requests that are not `POST` with a form body holding `token`, or whose client
authentication does not match the configured one, are answered 400 / 401 as a real
server would (and counted). Unknown tokens are `{"active": false}`. Only ever binds
127.0.0.1. Nothing here blocks without a bound except `hang`, which lasts until the
server is stopped (or 300 s).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from fake_server import BaseState, FakeServer, TrackingHandler

DEFAULT_PATH = "/oauth/introspect"
SERVE, GARBAGE, HANG, CLOSE = "serve", "garbage", "hang", "close"
MODES = (SERVE, GARBAGE, HANG, CLOSE)


@dataclass
class Seen:
    at: float                 # time.monotonic() when the request arrived
    method: str
    path: str
    headers: dict[str, str]   # lower-case names
    form: dict[str, str]      # decoded form fields (first value of each)


@dataclass
class _State(BaseState):
    path: str = DEFAULT_PATH
    auth: str | None = None   # expected `authorization` value; None: not checked
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    mode: str = SERVE
    status: int | None = None  # set: answer this status with a short body


class _Handler(TrackingHandler):
    server_version = "scopegate-fake-introspection/1"

    def _answer(self) -> None:
        st: _State = self.state
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(min(length, 1 << 20)).decode("utf-8", "replace") if length else ""
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        with st.changed:  # type: ignore[union-attr]
            st.record(Seen(time.monotonic(), self.command, self.path, headers, form))
            mode, status, expected = st.mode, st.status, st.auth
            answer = dict(st.tokens.get(form.get("token", ""), {"active": False}))
        if mode == CLOSE:
            self.close_connection = True
            return
        if mode == HANG:
            st.unhang.wait(timeout=300)
            self.close_connection = True
            return
        if mode == GARBAGE:
            self._send(200, b"<html>this is not an introspection answer {{{")
            return
        if status is not None:
            self._send(status, json.dumps({"error": f"status {status}"}).encode())
            return
        if self.path.split("?", 1)[0] != st.path:
            self._send(404, b'{"error":"not_found"}')
            return
        if self.command != "POST" or "token" not in form or \
                not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self._send(400, b'{"error":"invalid_request"}')
            return
        if expected is not None and headers.get("authorization") != expected:
            self._send(401, b'{"error":"invalid_client"}')
            return
        self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = _answer


def form_urlencode(s: str) -> str:
    """application/x-www-form-urlencoded as the WHATWG URL standard (and scopegate) does it."""
    out = []
    for c in s:
        if c.isascii() and (c.isalnum() or c in "*-._"):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append("".join(f"%{b:02X}" for b in c.encode()))
    return "".join(out)


def basic(client_id: str, client_secret: str) -> str:
    """`authorization` for Basic client auth, RFC 6749 §2.3.1 (form-urlencoded first)."""
    pair = f"{form_urlencode(client_id)}:{form_urlencode(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class IntrospectionServer(FakeServer):
    """The auth server's introspection endpoint on 127.0.0.1:`port` (0 picks a free
    port, kept across stop_listening()/start()). With `client_id`/`client_secret`
    (or `bearer_token`) the caller must authenticate so; otherwise anything goes."""

    handler = _Handler
    thread_name = "fake-introspection"
    _state: _State

    def __init__(self, port: int = 0, *, path: str = DEFAULT_PATH, client_id: str | None = None,
                 client_secret: str | None = None, bearer_token: str | None = None) -> None:
        auth = None
        if client_id is not None:
            auth = basic(client_id, client_secret or "")
        elif bearer_token is not None:
            auth = f"Bearer {bearer_token}"
        super().__init__(_State(path=path, auth=auth), port)

    # -- what to answer -----------------------------------------------------------
    def token(self, token: str, **fields: Any) -> None:
        """Make `token` active with these fields (`scope`, `sub`, `exp`, `aud`, ...)."""
        with self._state.lock:
            self._state.tokens[token] = {"active": True, **fields}

    def answer(self, token: str, doc: dict[str, Any]) -> None:
        """Answer exactly `doc` for `token` (wrong types included)."""
        with self._state.lock:
            self._state.tokens[token] = dict(doc)

    def revoke(self, token: str) -> None:
        with self._state.lock:
            self._state.tokens[token] = {"active": False}

    def fail(self, *, status: int | None = 500, mode: str = SERVE) -> None:
        """Every request: `status` with a short body, or garbage / hang / close."""
        assert mode in MODES, mode
        with self._state.lock:
            self._state.mode = mode
            self._state.status = status if mode == SERVE else None

    def heal(self) -> None:
        with self._state.lock:
            self._state.mode, self._state.status = SERVE, None
        self._state.unhang.set()

    # -- what was asked -------------------------------------------------------------
    def requests(self, token: str | None = None) -> list[Seen]:
        return [s for s in self._seen() if token is None or s.form.get("token") == token]

    def count(self, token: str | None = None) -> int:
        return len(self.requests(token))

    def wait_for(self, n: int, timeout: float, token: str | None = None) -> bool:
        """Wait (bounded) until at least `n` requests (for `token`) arrived in all."""
        return self._wait_until(
            lambda seen: sum(1 for s in seen if token is None or s.form.get("token") == token) >= n,
            timeout)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="serve RFC 7662 introspection on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default=DEFAULT_PATH)
    ap.add_argument("--token", action="append", default=[],
                    help="TOKEN=SCOPE: an active token with these scopes (repeatable)")
    args = ap.parse_args()
    srv = IntrospectionServer(args.port, path=args.path)
    for t in args.token:
        tok, _, scope = t.partition("=")
        srv.token(unquote_plus(tok), scope=scope, sub="demo")
    srv.start()
    print(f"introspection on http://127.0.0.1:{srv.port}{args.path}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
