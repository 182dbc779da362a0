#!/usr/bin/env python3
"""Envoy instructions per request, counted under valgrind (callgrind).

The same scenarios as `run.py` (same Envoy configs, same tokens), but instead
of Envoy's CPU time each scenario reports the instructions Envoy executes per
request: its C++, V8's runtime and the JIT-compiled wasm alike. Counts repeat
to within about 0.1% from run to run, where CPU time on these shared machines
spreads 15-25% between rounds: a difference of a few hundred instructions per
request (well under a microsecond) shows. Instructions are not time (cache
misses, branch mispredictions and V8's lazy work weigh differently), so this
complements `run.py`, it does not replace it.

For each scenario: Envoy (`--concurrency 1`) starts under callgrind, answers
`--warmup` requests (JIT tier-up, allocator, caches), then the counters are
zeroed, `--requests` requests are sent one after another on one keep-alive
connection (127.0.0.1 only), and the counters are dumped. Every answer must
have the scenario's expected status.

    make bench-instructions                       # or:
    .venv/bin/python envoy/bench/instructions.py [--only REGEX] [--requests 1000] [--warmup 300]
        [--jobs 2] [--probe] [--compare-wasm other.wasm] [--json out.json]

Needs: valgrind (apt-get install -y valgrind), the built wasm files
(filter/scripts/build-wasm.sh). A scenario takes about 90 s (Envoy starts
slowly under valgrind); `--jobs` run side by side (counts do not depend on it).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the scenarios and configs of the CPU-time benchmark)


def send(port: int, tokens: list[str], start: int, count: int, path: str) -> dict[int, int]:
    """`count` sequential requests on one connection; token i is tokens[(start + i) % len]."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    codes: dict[int, int] = {}
    try:
        for i in range(count):
            t = tokens[(start + i) % len(tokens)]
            conn.request("GET", path, headers={} if t == "-" else {"authorization": "Bearer " + t})
            r = conn.getresponse()
            r.read()
            codes[r.status] = codes.get(r.status, 0) + 1
    finally:
        conn.close()
    return codes


def measure(envoy: str, args, work: Path, name: str, filters: list[dict], tokens: list[str], expect: int,
            path: str) -> dict:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower())
    listen, admin = run.free_port(), run.free_port()
    cfg = work / f"{slug}.json"
    cfg.write_text(json.dumps(run.bootstrap(listen, admin, filters)))
    out = work / f"callgrind.{slug}"
    log = open(work / f"{slug}.log", "w")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--smc-check=all-non-file", f"--callgrind-out-file={out}",
         envoy, "-c", str(cfg), "--concurrency", "1", "--use-dynamic-base-id", "-l", "warning"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        # Envoy starts slowly under valgrind.
        run.wait_ready(proc, admin, name, work / f"{slug}.log", seconds=300, poll=1)
        warm = send(listen, tokens, 0, args.warmup, path)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True, timeout=120)
        codes = send(listen, tokens, args.warmup, args.requests, path)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True, timeout=120)
        for got in (warm, codes):
            if set(got) != {expect}:
                raise RuntimeError(f"{name}: answers {got}, expected all {expect}")
        total = 0
        for _ in range(60):
            dumps = glob.glob(f"{out}.*")
            if dumps:
                break
            time.sleep(0.5)
        for f in glob.glob(f"{out}.*"):
            with open(f) as fh:
                for line in fh:
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
        if not total:
            raise RuntimeError(f"{name}: no callgrind dump")
        return {"scenario": name, "requests": args.requests, "instructions_per_request": total / args.requests}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="measured requests per scenario (default 1000)")
    ap.add_argument("--warmup", type=int, default=300, help="requests before the count starts (default 300)")
    ap.add_argument("--jobs", type=int, default=2, help="scenarios measured side by side (default 2)")
    ap.add_argument("--only", default="", help="regex: run only matching scenarios (and the empty filter)")
    ap.add_argument("--probe", action="store_true", help="the cost-probe scenarios (`run.py --probe`) instead")
    ap.add_argument("--compare-wasm", default="", help="also measure this other build of scopegate.wasm")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    if args.compare_wasm:
        run.COMPARE_WASM = Path(args.compare_wasm).resolve()
        if not run.COMPARE_WASM.exists():
            print(f"bench: {run.COMPARE_WASM} is missing", file=sys.stderr)
            return 2
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (apt-get install -y valgrind)", file=sys.stderr)
            return 2
    for f in (run.SCOPEGATE_WASM, run.EMPTY_WASM) + ((run.PROBE_WASM,) if args.probe else ()):
        if not f.exists():
            print(f"bench: {f} is missing: run filter/scripts/build-wasm.sh", file=sys.stderr)
            return 2
    envoy = run.find_envoy()
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip().split("version:")[-1].strip()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; envoy {version}; {run.machine()}; "
          f"valgrind callgrind; {args.warmup} warm-up + {args.requests} counted requests per scenario; "
          f"scopegate.wasm {run.SCOPEGATE_WASM.stat().st_size} bytes", flush=True)
    keys = run.Keys()
    only = re.compile(args.only) if args.only else None
    # Distinct tokens: one per request, none sent twice (the cache never answers).
    n_tokens = args.warmup + args.requests
    todo = [sc for sc in (run.probe_scenarios if args.probe else run.scenarios)(keys, n_tokens)
            if not only or only.search(sc[0]) or sc[0] in ("no filter", "empty wasm filter")]
    refs = {name: native for name, _, _, _, native in todo}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scopegate-instructions-") as tmp:
        def one(sc):
            name, filters, tokens, expect, _ = sc
            path = "/healthz" if "/healthz" in name else run.PATH
            r = measure(envoy, args, Path(tmp), name, filters, tokens, expect, path)
            print(f"  {name}: {r['instructions_per_request']:.0f} instructions/request", file=sys.stderr, flush=True)
            return r
        with ThreadPoolExecutor(max(1, args.jobs)) as ex:
            for r in ex.map(one, todo):
                results[r["scenario"]] = r
    empty = results.get("empty wasm filter")
    print()
    print("| scenario | Envoy instructions/request | over the empty wasm filter | vs native |")
    print("|---|---|---|---|")
    for name, _, _, _, _ in todo:
        r = results[name]
        n = r["instructions_per_request"]
        over = f"{n - empty['instructions_per_request']:+.0f}" if empty else "-"
        ref = results.get(refs[name] or "")
        vs = f"{n / ref['instructions_per_request']:.2f}x" if ref else "-"
        print(f"| {name} | {n:.0f} | {over} | {vs} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"envoy": version, "machine": run.machine(), "results": results},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
