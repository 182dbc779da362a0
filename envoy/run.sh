#!/usr/bin/env bash
# Run the built scopegate filter in real Envoy, in front of an echo upstream.
#
#   envoy/run.sh --config CONFIG.json [--port 10000] [--wasm PATH] [--for SECONDS]
#                [--upstream-port PORT] [--auth-port PORT] [--runtime NAME] [--workdir DIR]
#
# CONFIG.json is the plugin configuration (passed verbatim to the filter as a
# google.protobuf.StringValue). Listens on 127.0.0.1:PORT until Ctrl-C (or for
# SECONDS); prints the URL, the admin URL and where the logs go. Without
# --upstream-port it starts its own echo upstream, which answers with the method,
# path and headers it received. Exit 1 if Envoy refuses the config (log tail shown).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# SCOPEGATE_PYTHON: an interpreter with envoy/requirements.txt installed (e.g. a
# .venv-envoy-<version> of envoy/matrix.sh); default the project's .venv, created if missing.
PY=${SCOPEGATE_PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PY" ]; then
  "$HERE/setup-venv.sh" >/dev/null
fi
case " $* " in
  *" --config "*|*" --config="*) ;;
  *" -h "*|*" --help "*) exec "$PY" "$HERE/scopegate_envoy.py" run --help ;;
  *) echo "usage: envoy/run.sh --config CONFIG.json [--port 10000] [--wasm PATH] [--for SECONDS]" >&2; exit 2 ;;
esac
exec "$PY" "$HERE/scopegate_envoy.py" run "$@"
