"""The operators' CLI (`scopegate`, filter/cli) from the Python tests.

`scopegate check` runs the filter's own config compiler, so a plugin config it
accepts is one the filter accepts (the same messages as Envoy's log)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli_path() -> Path:
    """$SCOPEGATE_CLI, else target/debug/scopegate (built with cargo if missing)."""
    cli = Path(os.environ.get("SCOPEGATE_CLI", ROOT / "target" / "debug" / "scopegate"))
    if not cli.exists():
        env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
        subprocess.run(["cargo", "build", "-q", "-p", "scopegate-cli"], cwd=ROOT, env=env, check=True)
    assert cli.exists(), f"{cli} missing after cargo build"
    return cli


def scopegate_check(cli: Path, config_json: str, tmp_path: Path, name: str) -> None:
    """`scopegate check --strict` must accept the config (warnings fail too)."""
    path = tmp_path / f"{name}.json"
    path.write_text(config_json)
    out = subprocess.run([str(cli), "check", "--strict", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, f"scopegate check --strict refused the config of {name}:\n{out.stdout}{out.stderr}"
    assert out.stdout.strip().splitlines()[-1].startswith("ok: "), out.stdout
