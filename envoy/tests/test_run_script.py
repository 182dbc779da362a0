"""envoy/run.sh, the operator's one command: a plugin config in real Envoy in front
of an echo upstream on a given port. Started as an operator would (a subprocess,
bounded by --for and a test timeout), it answers 401 and 200 on that port, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from scopegate_envoy import http_request
from scopegate_tokens import KeySet

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "envoy" / "run.sh"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_sh_serves_a_config_on_the_given_port(keys: KeySet, tmp_path: Path):
    config = tmp_path / "plugin-config.json"
    config.write_text(json.dumps(keys.plugin_config()))
    port = free_port()
    env = dict(os.environ, SCOPEGATE_PYTHON=sys.executable)
    proc = subprocess.Popen([str(RUN), "--config", str(config), "--port", str(port), "--for", "120",
                             "--workdir", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "Ctrl-C to stop" in line or "running for" in line:
                break
        out = "\n".join(lines)
        assert f"scopegate: listening on http://127.0.0.1:{port}/" in out, out
        assert "upstream echo on 127.0.0.1:" in out, out

        url = f"http://127.0.0.1:{port}"
        r = http_request(url, "GET", "/orders")
        assert r.status == 401 and r.json()["reason"] == "token_missing", (r.status, r.text)
        assert r.headers["www-authenticate"] == 'Bearer realm="svc-a"'
        r = http_request(url, "GET", "/orders", headers={"authorization": f"Bearer {keys.token()}"})
        assert r.status == 200 and r.headers.get("x-echo") == "1", (r.status, r.text)
        assert r.json()["headers"]["x-scopegate-sub"] == "alice"

        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + rest
        assert "scopegate: stopped; logs kept in" in rest, rest
        assert (tmp_path / "run" / "envoy.log").is_file()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_run_sh_refuses_a_bad_config_with_the_json_path(keys: KeySet, tmp_path: Path):
    cfg = keys.plugin_config()
    cfg["rules"][0]["match"]["prefx"] = "/x"
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(cfg))
    env = dict(os.environ, SCOPEGATE_PYTHON=sys.executable)
    out = subprocess.run([str(RUN), "--config", str(config), "--port", str(free_port()), "--for", "5"],
                         capture_output=True, text=True, env=env, timeout=START_TIMEOUT_S)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "rules[0].match.prefx" in out.stderr, out.stderr[-2000:]
