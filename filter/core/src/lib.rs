//! scopegate's decision core.
//!
//! Pure Rust, no proxy-wasm types: the operator's JSON is parsed ([`config`]),
//! compiled and validated into an immutable [`Policy`] ([`compile`]); a request's
//! facts ([`Request`]) go in, a [`Decision`] comes out ([`decide`]). The wasm shim
//! only gathers the facts and renders the decision; the CLI runs the same code.
//!
//! Time is always given by the caller (the host's clock in Envoy, a virtual clock
//! in tests): nothing here reads the system clock.

pub mod apikeys;
pub mod cache;
pub mod compile;
pub mod config;
pub mod decide;
pub mod ec_fast;
pub mod ecdsa_ext;
pub mod ed_fast;
pub mod introspection;
pub mod json_guard;
mod json_path;
pub mod jwks;
pub mod keys;
pub mod principal;
pub mod reason;
pub mod reply;
pub mod revocation;
pub mod routes;
pub mod rsa_fast;
pub mod rules;
pub mod table;
pub mod token;
pub mod verify;
mod word;

pub use compile::{ConfigError, Policy, compile, compile_json, parse_json};
pub use decide::{Allow, Decision, Deny, Pending, Request};
pub use principal::Principal;
pub use reason::Reason;
pub use verify::{KeySource, StaticKeysOnly};
