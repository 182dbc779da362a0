#!/usr/bin/env bash
# Build scopegate.wasm (and the harness fixture filters) for wasm32-unknown-unknown.
#
# Uses the ordinary `cargo build --target wasm32-unknown-unknown` when the active
# toolchain has that target's std installed. Otherwise falls back to Debian's
# rustc-web (1.96) with its std source and -Zbuild-std, installing the packages
# it needs with apt-get when they are missing.
#
# Usage: filter/scripts/build-wasm.sh [crate ...]   (default: every wasm crate)
# Prints the path of each .wasm it produced; the last line is scopegate.wasm.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. filter/scripts/wasm-toolchain.sh
TARGET=$WASM_TARGET
OUT="$ROOT/target/$TARGET/release"

crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  crates=(scopegate-wasm)
  for d in test-harness/fixtures/*/; do
    [ -f "$d/Cargo.toml" ] && crates+=("$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/Cargo.toml" | head -1)")
  done
fi
pkg_args=()
for c in "${crates[@]}"; do pkg_args+=(-p "$c"); done

if have_std_target; then
  echo "build-wasm: using the installed $TARGET target" >&2
  cargo build --release --target "$TARGET" "${pkg_args[@]}" >&2
else
  ensure_rustc_web build-wasm
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    /usr/bin/cargo build --release --target "$TARGET" \
    -Zbuild-std=std,panic_abort "${pkg_args[@]}" >&2
fi

for c in "${crates[@]}"; do
  f="$OUT/${c//-/_}.wasm"
  [ "$c" = scopegate-wasm ] && continue
  [ -f "$f" ] && echo "$f"
done
if printf '%s\n' "${crates[@]}" | grep -qx scopegate-wasm; then
  echo "$OUT/scopegate.wasm"
fi
