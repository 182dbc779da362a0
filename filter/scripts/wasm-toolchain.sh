# Sourced by build-wasm.sh and test-core-wasm.sh: how to get a wasm32 std.
#
# have_std_target: the active toolchain has wasm32-unknown-unknown's std.
# ensure_rustc_web NAME: otherwise, Debian's rustc-web (1.96) with its std
#   source (for -Zbuild-std) and lld, installed with apt-get when missing.
WASM_TARGET=wasm32-unknown-unknown

have_std_target() {
  local libdir
  libdir=$(rustc --print target-libdir --target "$WASM_TARGET" 2>/dev/null) || return 1
  compgen -G "$libdir/libstd-*.rlib" >/dev/null
}

ensure_rustc_web() {
  local who=$1 need=() sudo=
  [ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q . || need+=(rustc-web)
  [ -x /usr/bin/cargo ] || need+=(cargo-web)
  [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
  dpkg -s rust-web-llvm >/dev/null 2>&1 || need+=(rust-web-llvm)
  command -v wasm-ld-22 >/dev/null 2>&1 || need+=(lld-22)
  if [ ${#need[@]} -gt 0 ]; then
    echo "$who: no $WASM_TARGET std in the active toolchain; installing ${need[*]}" >&2
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rustc-web cargo-web rust-web-src rust-web-llvm lld-22 >&2
  fi
  echo "$who: using Debian rustc-web ($(/usr/bin/rustc --version)) with -Zbuild-std" >&2
}
