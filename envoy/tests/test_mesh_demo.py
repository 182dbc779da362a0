"""The two-service mesh demo (examples/mesh/demo.py) as a test: the example auth
server, two Envoy sidecars running scopegate.wasm, two echo services. The demo
checks every step's status and reason itself and exits 1 on any difference; here
we run it (bounded) and also check that the story's key outcomes were printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "mesh" / "demo.py"
BUILD_TIMEOUT_S = 600
DEMO_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def demo_run() -> subprocess.CompletedProcess:
    # The auth server's debug build (a no-op when `cargo test` built it already);
    # the wasm is the same prerequisite as for every test here.
    subprocess.run(["cargo", "build", "-q", "-p", "scopegate-example-auth-server"], cwd=REPO,
                   check=True, timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, str(DEMO), "--no-build"], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the demo stop its Envoys and the auth server.
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the mesh demo did not finish within {DEMO_TIMEOUT_S}s:\n{out[-4000:]}")
    print(out)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_the_mesh_demo_exits_0(demo_run: subprocess.CompletedProcess) -> None:
    assert demo_run.returncode == 0, demo_run.stdout[-6000:]
    assert "steps had the expected outcome" in demo_run.stdout


@pytest.mark.parametrize("line", [
    "-> 200 forwarded   ok",
    "-> 403 insufficient_scope   ok",
    "-> 401 token_missing   ok",
    "-> 401 audience_not_allowed   ok",
    "-> 401 api_key_invalid   ok",
    "x-scopegate-dry-run: deny; status=403; reason=insufficient_scope; rule=exports",
    "-> 200 rotated   ok",
    "-> 200 logged_out   ok",
    "svc-a saw GET /orders  x-user: 'alice', x-client-id: 'mesh-cli'",
])
def test_the_story_was_told(demo_run: subprocess.CompletedProcess, line: str) -> None:
    assert line in demo_run.stdout


def test_logout_is_enforced_or_honestly_skipped(demo_run: subprocess.CompletedProcess) -> None:
    out = demo_run.stdout
    if "SKIPPED: this build of scopegate has no revocation" in out:
        assert "refused the revocation config" in out
        assert "token_revoked" not in out
    else:
        assert out.count("-> 401 token_revoked   ok") == 2, out[-4000:]
