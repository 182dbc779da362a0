//! RFC 7662 introspection answers: arbitrary status, body and announced body
//! size through `parse_reply` (what the wasm shim calls on a callout answer),
//! then `principal` (what the decision maps an answer to), `cache_until`, and
//! the shared-data slot format.
//!
//! Invariants: never a panic; a principal only from status 200 and a body
//! that is a JSON object with `"active": true`, within `max_body_bytes`; an
//! `iss` other than the provider's issuer never yields one, nor does a body
//! over `max_body_bytes` (announced or read), nor any status but 200; an
//! answer is never cached past `now + cache_ttl_seconds` (inactive: the
//! negative TTL) nor past its `exp`; a shared slot reads back the same answer
//! for its digest only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::introspection::{
    self as i, CallError, Introspected, cache_until, parse_reply, principal, read_shared,
    shared_value,
};
use scopegate_core::{Policy, compile_json};
use scopegate_testkit::{ISS, NOW};
use serde_json::{Value, json};

/// Smallest body limit an operator may set: fuzz inputs reach past it.
const MAX_BODY: usize = i::MIN_MAX_BODY_BYTES;

fn policy() -> &'static Policy {
    static P: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut c = scopegate_testkit::config(scopegate_testkit::default_rules());
        c["providers"][0]["introspection"] = json!({
            "cluster": "auth", "authority": "auth.test",
            "client_id": "svc-a", "client_secret": "s3cret",
            "max_body_bytes": MAX_BODY,
        });
        compile_json(c.to_string().as_bytes()).expect("the fuzz policy compiles")
    })
}

fn check(status: Option<u16>, body: &[u8], body_size: usize) {
    let provider = &policy().providers()[0];
    let cfg = provider.introspection().expect("introspection");
    assert_eq!(cfg.max_body_bytes, MAX_BODY);
    let reply = parse_reply(cfg, status, body, body_size);
    if body_size > MAX_BODY || body.len() > MAX_BODY {
        if status == Some(200) {
            assert!(matches!(reply, Err(CallError::TooLarge(_))), "{reply:?}");
        } else {
            assert!(reply.is_err());
        }
        return;
    }
    let Ok(answer) = reply else { return };
    assert_eq!(status, Some(200), "an answer from status {status:?}");
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        panic!("an answer from a body that is not a JSON object");
    };
    assert_eq!(matches!(answer, Introspected::Active(_)), doc.get("active") == Some(&Value::Bool(true)));
    assert!(matches!(answer, Introspected::Active(_)) || doc.get("active") == Some(&Value::Bool(false)));

    let until = cache_until(cfg, &answer, NOW);
    match &answer {
        Introspected::Inactive => assert_eq!(until, NOW + cfg.negative_cache_ttl_seconds),
        Introspected::Active(obj) => {
            assert!(until <= NOW + cfg.cache_ttl_seconds);
            if let Some(exp) = obj.get("exp").and_then(Value::as_i64) {
                assert!(until <= exp);
            }
        }
    }
    let d = i::digest("the-token");
    let slot = shared_value(&d, NOW + 1, &answer);
    assert_eq!(read_shared(&slot, &d, NOW), Some((answer.clone(), NOW + 1)));
    assert_eq!(read_shared(&slot, &i::digest("another"), NOW), None);
    assert_eq!(read_shared(&slot, &d, NOW + 1), None);

    for now in [NOW, i64::MIN, i64::MAX] {
        if let Ok(p) = principal(0, provider, &answer, now) {
            assert_eq!(doc.get("active"), Some(&Value::Bool(true)));
            if let Some(iss) = doc.get("iss") {
                assert_eq!(iss.as_str(), Some(ISS), "a principal for another issuer");
            }
            assert_eq!(p.issuer, ISS);
            assert_eq!(p.subject.as_deref(), doc.get("sub").and_then(Value::as_str));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = i::parse_object(data);
    // The body as a 200 with its own size, as a 200 whose full size was
    // larger than what was read, and with a status from its first bytes.
    check(Some(200), data, data.len());
    check(Some(200), data, MAX_BODY + 1);
    let status = u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]);
    check(Some(status % 1000), data, data.len());
    check(None, data, data.len());
});
