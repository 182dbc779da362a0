#!/usr/bin/env bash
# Fuzz scopegate's pure core with cargo-fuzz (libFuzzer): every target of
# filter/fuzz for a bounded time. CI smoke by default; longer runs by argument.
#
# Usage: filter/scripts/fuzz-smoke.sh [SECONDS_PER_TARGET (default 20)] [TARGET...]
#   FUZZ_JOBS=N           run N targets at once (default 1)
#   FUZZ_TOOLCHAIN=stable  use the stable fallback even when nightly exists (to test it)
#
# - Installs cargo-fuzz (pinned) when missing (~100 s on a 2-core machine).
# - Uses the nightly toolchain when there is one (`cargo +nightly fuzz`),
#   otherwise the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes
#   nightly-only flags; this lets a stable-only CI machine run it).
# - No sanitizer (the core is safe Rust: libFuzzer finds panics, overflow
#   checks and debug assertions, and the targets' invariant asserts); release
#   code with debug assertions. Build output in the worktree's target/fuzz.
# - Each target starts from the checked-in seeds (filter/fuzz/corpus/T, never
#   written to) plus what earlier runs found (target/fuzz/corpus/T).
#   A crash leaves its input in target/fuzz/artifacts/T/ and fails the script;
#   reproduce with: cargo +nightly fuzz run --fuzz-dir filter/fuzz --target-dir target/fuzz -s none T FILE
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
shift || true
CARGO_FUZZ_VERSION=0.13.2
FUZZ=(--fuzz-dir filter/fuzz --target-dir target/fuzz -s none)

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  echo "fuzz-smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  t0=$(date +%s)
  env -u CARGO_TARGET_DIR cargo install -q --locked cargo-fuzz --version "=$CARGO_FUZZ_VERSION"
  echo "fuzz-smoke: cargo-fuzz installed in $(( $(date +%s) - t0 ))s" >&2
fi

if [ "${FUZZ_TOOLCHAIN:-}" != stable ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  echo "fuzz-smoke: using the nightly toolchain ($(rustc +nightly --version))" >&2
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
  echo "fuzz-smoke: no nightly toolchain, stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))" >&2
fi

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir filter/fuzz); fi
t0=$(date +%s)
if [ $# -gt 0 ]; then
  for t in "${targets[@]}"; do "${fuzz[@]}" build "${FUZZ[@]}" "$t" >&2; done
else
  "${fuzz[@]}" build "${FUZZ[@]}" >&2
fi
echo "fuzz-smoke: built ${#targets[@]} targets in $(( $(date +%s) - t0 ))s" >&2

run_one() {
  local t=$1 log=target/fuzz/logs/$1.log
  mkdir -p "target/fuzz/corpus/$t" "target/fuzz/artifacts/$t" target/fuzz/logs
  if "${fuzz[@]}" run "${FUZZ[@]}" "$t" "target/fuzz/corpus/$t" "filter/fuzz/corpus/$t" -- \
      -max_total_time="$SECS" -max_len=4096 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
      -artifact_prefix="target/fuzz/artifacts/$t/" >"$log" 2>&1; then
    local execs cov
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    echo "fuzz-smoke: $t ok: ${execs:-?} execs in ${SECS}s, coverage ${cov:-?}, corpus $(ls "target/fuzz/corpus/$t" | wc -l)"
  else
    echo "fuzz-smoke: $t FAILED (log: $log; input in target/fuzz/artifacts/$t/)" >&2
    grep -E 'panicked|Assertion|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    return 1
  fi
}

fail=0
jobs_max=${FUZZ_JOBS:-1}
pids=()
for t in "${targets[@]}"; do
  if [ "$jobs_max" -le 1 ]; then run_one "$t" || fail=1; else
    run_one "$t" & pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 1; done
  fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ "$fail" -eq 0 ] && echo "fuzz-smoke: all ${#targets[@]} targets passed" || { echo "fuzz-smoke: FAILED" >&2; exit 1; }
