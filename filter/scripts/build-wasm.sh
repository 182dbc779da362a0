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
#
# SCOPEGATE_WASM_PANIC=immediate-abort (opt-in, off by default): std and every
# crate built with -Cpanic=immediate-abort (rustc-web and -Zbuild-std only):
# scopegate.wasm ~97 KB smaller and up to 6.5% less fuel (BENCHMARKS.md "Wasm
# size"), but a panic traps WITHOUT the "panicked at file:line: message"
# line that proxy-wasm's panic hook logs at critical level in Envoy: Envoy
# only reports the trap. Switching it on or off rebuilds everything (~8 min).
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

panic_flags=
case "${SCOPEGATE_WASM_PANIC:-}" in
  "") ;;
  immediate-abort) panic_flags="-Zunstable-options -Cpanic=immediate-abort" ;;
  *) echo "build-wasm: SCOPEGATE_WASM_PANIC must be empty or immediate-abort" >&2; exit 2 ;;
esac

if have_std_target && [ -z "$panic_flags" ]; then
  echo "build-wasm: using the installed $TARGET target" >&2
  cargo build --release --target "$TARGET" "${pkg_args[@]}" >&2
else
  ensure_rustc_web build-wasm
  flags_env=()
  if [ -n "$panic_flags" ]; then
    echo "build-wasm: $panic_flags (panic messages are not logged)" >&2
    flags_env=("RUSTFLAGS=${RUSTFLAGS:-} $panic_flags")
  fi
  env "${flags_env[@]}" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    /usr/bin/cargo build --release --target "$TARGET" \
    -Zbuild-std=std,panic_abort "${pkg_args[@]}" >&2
fi

# wasm-opt -Oz (Debian's binaryen, installed like rustc-web when missing):
# measured on scopegate.wasm -11% size and 1-6% less fuel per request.
# `--low-memory-unused` lets -Oz fold `(i32.add p (i32.const C))`, C < 1024,
# into the load/store offset (binaryen's optimize-added-constants; LLVM's
# wasm backend leaves most of them as adds): the two differ only when p + C
# wraps past 2^32, which for Rust code is undefined behaviour (pointer
# arithmetic stays inside its allocation), and there the fold traps instead
# of reading low memory. Measured: RSA -15% fuel, cache hits -4%, 12.7 KB
# smaller (BENCHMARKS.md).
# SCOPEGATE_WASM_OPT=0 skips it. Skipped too when the file is the one it
# already optimised (a stamp holds its digest): cargo did not relink it.
optimise() {
  local f=$1 stamp="$1.wasm-opt.sha256" sudo=
  [ "${SCOPEGATE_WASM_OPT:-1}" = 0 ] && return 0
  [ -f "$stamp" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(cat "$stamp")" ] && return 0
  if ! command -v wasm-opt >/dev/null 2>&1; then
    echo "build-wasm: installing binaryen (wasm-opt)" >&2
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq binaryen; } >&2 \
      || { echo "build-wasm: binaryen unavailable; scopegate.wasm left unoptimised" >&2; return 0; }
  fi
  local before; before=$(stat -c %s "$f")
  if wasm-opt --low-memory-unused -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
      --enable-mutable-globals --enable-multivalue --enable-reference-types "$f" -o "$f.opt" >&2; then
    mv "$f.opt" "$f"
    sha256sum "$f" | cut -d' ' -f1 > "$stamp"
    echo "build-wasm: wasm-opt --low-memory-unused -Oz: $before -> $(stat -c %s "$f") bytes" >&2
  else
    rm -f "$f.opt"
    echo "build-wasm: wasm-opt failed; scopegate.wasm left unoptimised" >&2
  fi
}
if printf '%s\n' "${crates[@]}" | grep -qx scopegate-wasm; then
  optimise "$OUT/scopegate.wasm"
fi

for c in "${crates[@]}"; do
  f="$OUT/${c//-/_}.wasm"
  [ "$c" = scopegate-wasm ] && continue
  [ -f "$f" ] && echo "$f"
done
if printf '%s\n' "${crates[@]}" | grep -qx scopegate-wasm; then
  echo "$OUT/scopegate.wasm"
fi
