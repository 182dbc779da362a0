"""A 30-second soak of scopegate.wasm in real Envoy (envoy/soak.py): concurrent
keep-alive clients, valid, invalid and revoked tokens mixed, the auth server (JWKS
and revocation feed) stopped and
restarted mid-run. Zero wrong decisions, zero wasm failures, counters that add
up, the JWKS fetched again after the outage. `envoy/soak.py --seconds 300` is
the long run (figures in filter/HARDENING.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from soak import run  # noqa: E402


def test_soak_30s_with_an_auth_server_outage_makes_no_wrong_decision(tmp_path: Path) -> None:
    s = run(seconds=30, threads=6, workdir=str(tmp_path))
    print(s)
    assert s["wrong_decisions"] == 0, s["wrong_examples"]
    assert s["wasm_failure_lines"] == [], s["wasm_failure_lines"]
    assert s["counters_match"], (s["filter_allowed"], s["filter_denied"], s["by_kind"])
    assert s["requests"] > 500, s
    assert all(n > 0 for n in s["by_kind"].values()) and len(s["by_kind"]) == 9, s["by_kind"]
    # The outage was seen (refreshes failed, keys kept) and ended (fetched again).
    assert s["fetch_failed"] > 0, s
    assert s["jwks_fetches_total"] > s["jwks_fetches_before_outage"], s
    # Revoked tokens were refused by the feed's list all along, polls failed
    # during the outage (the list kept, not yet stale) and resumed after it.
    assert s["revoked_refused"] == s["by_kind"]["revoked"], s
    assert s["revocation_poll_failed"] > 0 and s["revocation_poll_ok"] > 0, s
    assert s["rss_end_kib"] > 0 and s["rss_start_kib"] > 0
