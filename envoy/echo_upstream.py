"""Echo upstream for the real-Envoy tests and demos.

Answers every request with 200 and a JSON body describing what it received:

    {"method": "GET", "path": "/orders/1", "headers": {"x-scopegate-sub": "alice", ...},
     "header_list": [["host", "..."], ...], "body": "..."}

so a test can see exactly what the scopegate filter forwarded. Header names are
lowercased; `headers` keeps the last value of a repeated header, `header_list`
keeps them all in order.

Run standalone: python3 envoy/echo_upstream.py [--port 8080]
Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # never read more than 1 MiB of a request body


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scopegate-echo/1"

    def _echo(self) -> None:
        length = 0
        try:
            length = int(self.headers.get("content-length", "0") or "0")
        except ValueError:
            length = 0
        body = self.rfile.read(min(max(length, 0), MAX_BODY)) if length > 0 else b""
        header_list = [[k.lower(), v] for k, v in self.headers.items()]
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in header_list},
            "header_list": header_list,
            "body": body.decode("utf-8", errors="replace"),
        }
        out = json.dumps(doc, sort_keys=True).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo", "1")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _echo

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


class EchoServer:
    """A threaded echo server on 127.0.0.1; port 0 picks a free port.

    Use as a context manager or call start()/stop().
    """

    def __init__(self, port: int = 0, verbose: bool = False) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _EchoHandler)
        self._httpd.daemon_threads = True
        self._httpd.verbose = verbose  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> "EchoServer":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                name="scopegate-echo", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "EchoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    srv = EchoServer(args.port, verbose=args.verbose)
    print(f"echo upstream on http://127.0.0.1:{srv.port}/", flush=True)
    try:
        srv._httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv._httpd.server_close()


if __name__ == "__main__":
    main()
