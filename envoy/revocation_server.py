"""A fake auth server revocation feed for the revocation tests (filter/PROTOCOLS.md,
"Revocation feed"), and the ways a real one fails.

    from revocation_server import RevocationServer
    with RevocationServer() as feed:                 # 127.0.0.1, ephemeral port
        feed.revoke_jti("3f7c1e9a", exp=...)         # the next poll lists it
        feed.revoke_subject("alice", revoked_before=..., exp=...)
        feed.fail(status=500)                        # or mode="garbage" / "hang" / "close"; heal()
        feed.stop_listening(); feed.start()          # connection refused, then back on the same port
        feed.count(); feed.wait_for(3, timeout=5); feed.requests()

The feed has a cursor (a counter bumped by every revocation) and answers:
- without `since` (or with an unknown one): the complete list, `complete: true`;
- with `since=<cursor>`: only what was added after it, `complete: false`;
- `ETag: "<cursor>"` on every 200, and 304 when `If-None-Match` names the current one.

Threaded stdlib HTTP server; every request is recorded (time, path with query,
headers). Only ever binds 127.0.0.1. Nothing blocks without a bound except `hang`,
which lasts until the server is stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_server import BaseState, FakeServer, TrackingHandler

FEED_PATH = "/revocations"
MODES = ("serve", "garbage", "hang", "close")


@dataclass
class Seen:
    at: float            # time.monotonic() when the request arrived
    path: str            # as requested, with query
    headers: dict[str, str]


@dataclass
class _State(BaseState):
    # (cursor at which it was added, kind, entry)
    entries: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    cursor: int = 0
    status: int | None = None    # set: answer this status (fail)
    mode: str = "serve"


class _Handler(TrackingHandler):
    server_version = "scopegate-fake-revocations/1"

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        st: _State = self.state
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with st.changed:  # type: ignore[union-attr]
            st.record(Seen(time.monotonic(), self.path, headers))
            mode, status, cursor = st.mode, st.status, st.cursor
            entries = list(st.entries)
        if url.path != FEED_PATH:
            return self._send(404, b'{"error":"not_found"}')
        if mode == "close":
            self.close_connection = True
            return None
        if mode == "hang":
            st.unhang.wait(timeout=300)
            self.close_connection = True
            return None
        if mode == "garbage":
            return self._send(200, b'{"cursor": "x", "jti": [{"jti": ')
        if status is not None:
            return self._send(status, json.dumps({"error": f"status {status}"}).encode())
        etag = f'"{cursor}"'
        if headers.get("if-none-match") == etag:
            return self._send(304, b"", etag=etag)
        since = parse_qs(url.query).get("since", [None])[0]
        known = since is not None and since.isdigit() and int(since) <= cursor
        after = int(since) if known else 0
        doc: dict[str, Any] = {"cursor": str(cursor), "complete": not known, "jti": [], "subjects": []}
        for at, kind, entry in entries:
            if at > after:
                doc[kind].append(entry)
        return self._send(200, json.dumps(doc).encode(), etag=etag)

    def _send(self, status: int, body: bytes, etag: str | None = None) -> None:
        try:
            self.send_response(status)
            if status != 304:
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
            if etag is not None:
                self.send_header("etag", etag)
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
        except OSError:
            self.close_connection = True


class RevocationServer(FakeServer):
    """The auth server's revocation feed on 127.0.0.1:`port` (0 picks a free port,
    kept across stop_listening()/start())."""

    handler = _Handler
    thread_name = "fake-revocations"
    _state: _State

    def __init__(self, port: int = 0) -> None:
        super().__init__(_State(), port)

    # -- the list ---------------------------------------------------------------------
    def revoke_jti(self, jti: str, exp: int | None = None) -> int:
        """Lists a revoked token id; returns the new cursor."""
        entry: dict[str, Any] = {"jti": jti}
        if exp is not None:
            entry["exp"] = exp
        return self._add("jti", entry)

    def revoke_subject(self, sub: str, revoked_before: int, exp: int | None = None) -> int:
        entry: dict[str, Any] = {"sub": sub, "revoked_before": revoked_before}
        if exp is not None:
            entry["exp"] = exp
        return self._add("subjects", entry)

    def _add(self, kind: str, entry: dict[str, Any]) -> int:
        with self._state.lock:
            self._state.cursor += 1
            self._state.entries.append((self._state.cursor, kind, entry))
            return self._state.cursor

    # -- faults -----------------------------------------------------------------------
    def fail(self, status: int | None = 500, mode: str = "serve") -> None:
        """Answer `status` to every poll, or misbehave (garbage / hang / close)."""
        assert mode in MODES, mode
        with self._state.lock:
            self._state.status = status if mode == "serve" else None
            self._state.mode = mode

    def heal(self) -> None:
        with self._state.lock:
            self._state.status = None
            self._state.mode = "serve"

    # -- what was asked -----------------------------------------------------------------
    def requests(self) -> list[Seen]:
        return self._seen()

    def count(self) -> int:
        return len(self.requests())

    def wait_for(self, n: int, timeout: float) -> bool:
        """Wait (bounded) until at least `n` polls arrived in all."""
        return self._wait_until(lambda seen: len(seen) >= n, timeout)
