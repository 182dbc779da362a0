"""The real-Envoy harness itself, without scopegate.wasm: plain proxying to the echo
upstream, clear failure when Envoy refuses its config, and clean shutdown."""

from __future__ import annotations

import pytest

from scopegate_envoy import EnvoyStartError, ScopegateEnvoy, http_request


def test_plain_envoy_proxies_to_the_echo_upstream():
    with ScopegateEnvoy(wasm=False) as gw:
        r = http_request(gw.url, "POST", "/a/b?c=1", headers={"x-test": "1"}, body="hello")
        assert r.status == 200
        seen = r.json()
        assert seen["method"] == "POST" and seen["path"] == "/a/b?c=1"
        assert seen["headers"]["x-test"] == "1" and seen["body"] == "hello"
        proc = gw.proc
    assert proc is not None and proc.poll() is not None, "envoy still running after stop()"


def test_envoy_normalises_the_path_before_filters():
    with ScopegateEnvoy(wasm=False) as gw:
        assert http_request(gw.url, "GET", "/a//b/../c").json()["path"] == "/a/c"


def test_unloadable_wasm_fails_start_with_the_log_tail(tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm garbage")
    gw = ScopegateEnvoy("{}", wasm_path=bad)
    with pytest.raises(EnvoyStartError) as ei:
        gw.start()
    assert ei.value.returncode not in (None, 0)
    assert "last lines of the Envoy log" in str(ei.value)
    assert gw.proc is not None and gw.proc.poll() is not None
    assert gw.echo is None, "echo upstream not stopped after a failed start"


def test_missing_wasm_file_is_reported(tmp_path):
    with pytest.raises(EnvoyStartError, match="build-wasm.sh"):
        ScopegateEnvoy("{}", wasm_path=tmp_path / "nope.wasm").start()
