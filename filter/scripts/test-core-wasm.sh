#!/usr/bin/env bash
# Run scopegate-core's unit and integration tests compiled to wasm32-unknown-unknown,
# under wasm-bindgen-test-runner in Node: the same tests as the native
# `cargo test -p scopegate-core`, proving the decision core (and its cryptography)
# behaves the same in wasm as natively.
#
# Sets itself up on a fresh machine and is fast when everything is there:
#   - wasm-bindgen-cli (wasm-bindgen-test-runner) at exactly the wasm-bindgen
#     version in Cargo.lock, into ~/.cargo/bin, when absent or another version;
#   - the wasm32 std: the active toolchain's target if installed, otherwise
#     Debian's rustc-web with its std source and -Zbuild-std (as build-wasm.sh);
#   - Node.js (apt's nodejs) when there is no `node`.
#
# Usage: filter/scripts/test-core-wasm.sh [extra `cargo test` args, e.g. a test name filter]
# Fails when any test fails, when no test ran, or when a test file lacks the
# wasm32 `test` import (its tests would silently not run in wasm).
set -euo pipefail
cd "$(dirname "$0")/../.."
. filter/scripts/wasm-toolchain.sh
TARGET=$WASM_TARGET

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}

# 1. Every file with tests must make `#[test]` wasm-bindgen-test's on wasm32, or
#    its tests compile to libtest tests that the runner never sees.
shopt -s globstar nullglob
missing=()
for f in filter/core/src/**/*.rs filter/core/tests/**/*.rs; do
  if grep -q '#\[test\]' "$f" && ! grep -q 'use wasm_bindgen_test::wasm_bindgen_test as test;' "$f"; then
    missing+=("$f")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-core-wasm: these files have #[test]s that would not run in wasm32:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "  add, in each test module (after its other use lines):" >&2
  echo '    #[cfg(target_arch = "wasm32")]' >&2
  echo '    use wasm_bindgen_test::wasm_bindgen_test as test;' >&2
  exit 1
fi

# 2. wasm-bindgen-test-runner at the version Cargo.lock pins.
WB_VERSION=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WB_VERSION" ]; then
  echo "test-core-wasm: no wasm-bindgen in Cargo.lock (is wasm-bindgen-test a dev-dependency of scopegate-core?)" >&2
  exit 1
fi
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
RUNNER="$CARGO_BIN/wasm-bindgen-test-runner"
have_wb=$("$RUNNER" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have_wb" != "$WB_VERSION" ]; then
  echo "test-core-wasm: installing wasm-bindgen-cli $WB_VERSION (had: ${have_wb:-none})" >&2
  # Any host cargo builds it; without one, Debian's (installed in step 4 anyway).
  if command -v cargo >/dev/null; then host_cargo=(cargo); else
    [ -x /usr/bin/cargo ] || apt_install rustc-web cargo-web
    host_cargo=(env RUSTC=/usr/bin/rustc /usr/bin/cargo)
  fi
  # Not --locked: the registry here lacks one of its locked dependencies.
  env -u CARGO_TARGET_DIR -u RUSTC_BOOTSTRAP "${host_cargo[@]}" install -q --force \
    wasm-bindgen-cli --version "=$WB_VERSION" --root "${CARGO_HOME:-$HOME/.cargo}" >&2
fi

# 3. Node.js runs the tests.
command -v node >/dev/null || apt_install nodejs

# 4. The wasm32 std.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$RUNNER"
# Without DWARF the test modules shrink from ~65 MB to a few, and the runner's
# wasm-bindgen pass over each goes from seconds to a fraction. Panic messages
# keep their file:line (those are not debuginfo).
nodebug=(--config profile.dev.debug=false)
if have_std_target; then
  echo "test-core-wasm: using the installed $TARGET target" >&2
  cargo_test=(cargo test "${nodebug[@]}" --target "$TARGET")
else
  ensure_rustc_web test-core-wasm
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
  # -Zbuild-std builds std with the test profile: at opt-level 0 (as a native
  # toolchain's prebuilt std never is) RSA key generation and bignum maths take
  # minutes per test binary; optimised they take seconds. Our code stays debug.
  std_opt=()
  for p in core alloc std compiler_builtins dlmalloc hashbrown; do
    std_opt+=(--config "profile.dev.package.$p.opt-level=3")
  done
  cargo_test=(/usr/bin/cargo test "${nodebug[@]}" "${std_opt[@]}" --target "$TARGET" -Zbuild-std=std,panic_abort,test)
fi

# 5. Run; the runner prints libtest-style "test result:" lines, one per test binary.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
set +e
"${cargo_test[@]}" --no-fail-fast --tests -p scopegate-core "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
read -r passed failed ignored binaries < <(awk '
  /^test result:/ {
    b++
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/)  p += $i
      if ($(i+1) ~ /^failed/)  f += $i
      if ($(i+1) ~ /^ignored/) g += $i
    }
  }
  END { print p+0, f+0, g+0, b+0 }' "$log")
echo "test-core-wasm: $binaries test binaries, $passed passed, $failed failed, $ignored ignored in wasm32 (Node $(node --version)) in $(( $(date +%s) - start ))s"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "test-core-wasm: FAILED" >&2
  exit 1
fi
if [ "$passed" -eq 0 ]; then
  echo "test-core-wasm: no test ran in wasm32" >&2
  exit 1
fi
echo "wasm32: $passed passed, $failed failed"
