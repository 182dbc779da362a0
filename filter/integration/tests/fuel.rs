//! Fuel regression check: scopegate.wasm's cost per request in the harness
//! (wasmtime fuel, about one unit per wasm instruction: a count, not a
//! timing) must not grow more than 10% over `fuel-baseline.json`, and the
//! number of host calls per request must not grow at all.
//!
//! Refresh the baseline after an intended change (and say why in the commit):
//!   SCOPEGATE_FUEL_BASELINE=update cargo test -p scopegate-integration --test fuel
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use scopegate_integration::fuel::{SCENARIOS, measure, measure_configure};
use serde_json::{Map, Value, json};

/// Requests measured per scenario (fuel is deterministic up to PSS salts and
/// the bignum sizes of signatures: a few suffice).
const REQUESTS: usize = 4;
const TOLERANCE: f64 = 1.10;

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuel-baseline.json")
}

fn measure_all() -> Map<String, Value> {
    let mut out = Map::new();
    for name in SCENARIOS {
        let m = measure(name, REQUESTS);
        out.insert(
            (*name).to_owned(),
            json!({"fuel_per_request": m.fuel_per_request, "hostcalls_per_request": m.hostcalls_per_request}),
        );
    }
    let (fuel, _) = measure_configure(1000, 20, true);
    out.insert(
        "configure_1000_routes_20_keys".into(),
        json!({"fuel_per_request": fuel, "hostcalls_per_request": 0}),
    );
    out
}

#[test]
fn fuel_per_request_does_not_regress_more_than_ten_percent() {
    let now = measure_all();
    if std::env::var("SCOPEGATE_FUEL_BASELINE").as_deref() == Ok("update") {
        let doc = json!({
            "_comment": "scopegate.wasm cost per request in the harness (wasmtime fuel ~ wasm instructions; host calls). Checked by tests/fuel.rs (fails above +10% fuel or any extra host call). Refresh: SCOPEGATE_FUEL_BASELINE=update cargo test -p scopegate-integration --test fuel",
            "scenarios": now,
        });
        std::fs::write(baseline_path(), serde_json::to_string_pretty(&doc).unwrap() + "\n")
            .unwrap();
        eprintln!("fuel baseline written to {}", baseline_path().display());
        return;
    }
    let text = std::fs::read_to_string(baseline_path()).expect("fuel-baseline.json is checked in");
    let base: Value = serde_json::from_str(&text).unwrap();
    let base = base["scenarios"].as_object().expect("scenarios object");
    let mut problems = Vec::new();
    for (name, m) in &now {
        let Some(b) = base.get(name) else {
            problems.push(format!("{name}: not in the baseline"));
            continue;
        };
        let (fuel, bfuel) = (
            m["fuel_per_request"].as_u64().unwrap(),
            b["fuel_per_request"].as_u64().unwrap(),
        );
        let (calls, bcalls) = (
            m["hostcalls_per_request"].as_u64().unwrap(),
            b["hostcalls_per_request"].as_u64().unwrap(),
        );
        eprintln!("{name:32} fuel {fuel:>10} (baseline {bfuel:>10}, {:+.1}%)  host calls {calls} (baseline {bcalls})",
            (fuel as f64 / bfuel as f64 - 1.0) * 100.0);
        if fuel as f64 > bfuel as f64 * TOLERANCE {
            problems.push(format!(
                "{name}: {fuel} fuel per request, more than 10% over the baseline {bfuel}"
            ));
        }
        if calls > bcalls {
            problems.push(format!(
                "{name}: {calls} host calls per request, baseline {bcalls}"
            ));
        }
    }
    for name in base.keys() {
        if !now.contains_key(name) {
            problems.push(format!("{name}: in the baseline but no longer measured"));
        }
    }
    assert!(
        problems.is_empty(),
        "fuel regression (refresh with SCOPEGATE_FUEL_BASELINE=update if intended):\n{}",
        problems.join("\n")
    );
}
