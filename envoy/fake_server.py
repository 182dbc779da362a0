"""What the fake auth servers (jwks_server.py, revocation_server.py,
introspection_server.py) share: a threaded stdlib HTTP server on 127.0.0.1 that
keeps its port across stop_listening()/start(), tracks open connections so
stopping cuts Envoy's pooled keep-alive ones too, records requests under a lock
with a condition to wait on (bounded), and never logs to stderr.

A server subclasses `FakeServer` with its own `handler` (a `TrackingHandler`) and
a state that extends `BaseState`; the handler reads it as `self.state`.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Self


@dataclass
class BaseState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[Any] = field(default_factory=list)
    unhang: threading.Event = field(default_factory=threading.Event)  # set: hangs end
    connections: set = field(default_factory=set)  # open client sockets, cut on stop
    changed: threading.Condition | None = None     # notified when a request is recorded

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def record(self, seen: Any) -> None:
        """Records a request and wakes the waiters (call with `changed` held)."""
        self.seen.append(seen)
        self.changed.notify_all()  # type: ignore[union-attr]


class TrackingHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that registers its connection while open."""

    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> Any:
        return self.server.state  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class FakeServer:
    """A server on 127.0.0.1:`port` (0 picks a free port, which is then kept across
    stop_listening()/start()). A new server already holds its port and the kernel
    queues connections, but nothing is answered before start()."""

    handler: type[TrackingHandler] = TrackingHandler
    thread_name = "fake-server"

    def __init__(self, state: BaseState, port: int = 0) -> None:
        self._state = state
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = port
        self._bind()

    # -- lifecycle --------------------------------------------------------------
    def _bind(self) -> None:
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), self.handler)
        httpd.daemon_threads = True
        httpd.state = self._state  # type: ignore[attr-defined]
        self._httpd = httpd
        self._port = httpd.server_address[1]

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def listening(self) -> bool:
        return self._thread is not None

    def start(self) -> Self:
        """Serve (again, on the same port after stop_listening())."""
        if self._thread is None:
            if self._httpd is None:
                self._bind()
            self._state.unhang.clear()
            assert self._httpd is not None
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=f"{self.thread_name}-{self._port}", daemon=True)
            self._thread.start()
        return self

    def _let_go(self) -> None:
        """On stop: ends what makes a request wait (hangs; subclasses add theirs)."""
        self._state.unhang.set()

    def stop_listening(self) -> None:
        """Close the listening socket and every open connection: new connections are
        refused (the port is remembered for start()). Requests that wait are let go,
        unanswered."""
        with self._state.lock:
            conns = list(self._state.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._let_go()
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
            self._httpd.server_close()
        self._httpd = None
        self._thread = None

    def stop(self) -> None:
        self.stop_listening()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what was asked -------------------------------------------------------------
    def _seen(self) -> list[Any]:
        with self._state.lock:
            return list(self._state.seen)

    def _wait_until(self, enough: Callable[[list[Any]], bool], timeout: float) -> bool:
        """Wait (bounded by `timeout` seconds) until `enough(recorded requests)`."""
        deadline = time.monotonic() + timeout
        cond = self._state.changed
        assert cond is not None
        with cond:
            while not enough(self._state.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                cond.wait(timeout=left)
            return True
