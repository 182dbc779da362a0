"""Reading the filter's counters from Envoy's admin endpoint, in both forms.

Envoy shows a wasm filter's metrics

- in the text `/stats` with its `wasmcustom.` prefix:
  `wasmcustom.scopegate.decision.token_missing: 2`
- in `/stats/prometheus` without it, every `.` and `-` turned into `_`, with a
  `# TYPE` line and empty labels: `scopegate_decision_token_missing{} 2`

(see envoy/MATRIX.md for the versions this was checked on). The helpers take a
running ScopegateEnvoy (anything with an `admin_url`).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from scopegate_envoy import _admin_get

WASM_PREFIX = "wasmcustom."


def text_counters(gw: Any, regex: str = r"^wasmcustom\.scopegate\.") -> dict[str, int]:
    """Integer stats of the text `/stats?filter=REGEX`, full names (`wasmcustom.` kept)."""
    status, body = _admin_get(gw.admin_url, "/stats?filter=" + urllib.parse.quote(regex))
    assert status == 200, f"/stats answered {status}: {body[:200]}"
    out: dict[str, int] = {}
    for line in body.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            out[name] = int(value)
    return out


def filter_counters(gw: Any, prefix: str = "scopegate.") -> dict[str, int]:
    """The filter's counters under `prefix`, by the name the filter defined
    (`scopegate.allowed`: the text `/stats` name without `wasmcustom.`)."""
    regex = "^" + re.escape(WASM_PREFIX + prefix)
    return {k[len(WASM_PREFIX):]: v for k, v in text_counters(gw, regex).items()}


def prometheus_samples(gw: Any, prefix: str = "scopegate_") -> dict[str, int]:
    """Sample lines `name{labels} value` of `/stats/prometheus` whose name starts
    with `prefix`, by name without labels."""
    return {name: value for name, (_, value) in prometheus_metrics(gw, prefix).items()}


def prometheus_metrics(gw: Any, prefix: str = "scopegate_") -> dict[str, tuple[str, int]]:
    """name -> (its `# TYPE` type, value) for `/stats/prometheus` metrics starting with `prefix`."""
    status, body = _admin_get(gw.admin_url, "/stats/prometheus")
    assert status == 200, f"/stats/prometheus answered {status}: {body[:200]}"
    types: dict[str, str] = {}
    out: dict[str, tuple[str, int]] = {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) == 4:
                types[parts[2]] = parts[3]
            continue
        if not line.startswith(prefix) or " " not in line:
            continue
        sample, _, value = line.rpartition(" ")
        name = sample.split("{", 1)[0]
        out[name] = (types.get(name, ""), int(float(value)))
    return out


def prometheus_name(filter_name: str) -> str:
    """The `/stats/prometheus` name of a filter metric: `scopegate.rule.a-b.allowed`
    -> `scopegate_rule_a_b_allowed`."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", filter_name)
