#![allow(dead_code, clippy::unwrap_used)]
pub use scopegate_testkit::*;

pub fn policy() -> scopegate_core::Policy {
    scopegate_core::compile_json(config(default_rules()).to_string().as_bytes()).unwrap()
}
