"""Shared fixtures for the real-Envoy tests: key material and one Envoy per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ENVOY_DIR = Path(__file__).resolve().parent.parent
if str(ENVOY_DIR) not in sys.path:
    sys.path.insert(0, str(ENVOY_DIR))

from scopegate_cli import cli_path  # noqa: E402
from scopegate_envoy import ScopegateEnvoy  # noqa: E402
from scopegate_tokens import KeySet  # noqa: E402


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
