//! Decision -> what the client sees: status, headers, JSON body (RFC 6750).

use serde::Serialize;

use crate::decide::Deny;
use crate::reason::Reason;

/// The JSON body of a local reply, serialised straight to text (no
/// intermediate `serde_json::Value` map). The fields are in alphabetical
/// order, the order the body had when it was built as a `Value` (a sorted
/// map): the bytes are unchanged (`tests::the_body_is_the_sorted_map_it_was`).
#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    required_scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    status: u16,
}

impl Deny {
    /// The `WWW-Authenticate` value (RFC 6750 §3), if this status carries one.
    /// A missing token gets no error code (§3.1); an invalid one
    /// `invalid_token`; insufficient scope `insufficient_scope` with the scopes.
    pub fn www_authenticate(&self) -> Option<String> {
        let realm = &self.realm;
        match (self.status, self.reason) {
            (401, Reason::TokenMissing) => Some(format!("Bearer realm=\"{realm}\"")),
            (401, reason) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                reason.description()
            )),
            (403, Reason::InsufficientScope) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                Reason::InsufficientScope.description(),
                self.required_scopes.join(" ")
            )),
            // Valid token, but the route wants another issuer or claims:
            // RFC 6750's insufficient_scope, without a scope to ask for.
            (403, reason @ (Reason::ProviderNotAllowed | Reason::ClaimMismatch)) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
                reason.description()
            )),
            _ => None,
        }
    }

    /// The JSON body: stable `reason`, human `message`, the rule if one matched,
    /// and for insufficient scope the scopes that would satisfy it.
    pub fn body(&self) -> String {
        let body = Body {
            message: self.reason.description(),
            reason: self.reason.as_str(),
            required_scopes: &self.required_scopes,
            rule: self.rule.as_deref(),
            status: self.status,
        };
        // Serialising strings, a slice and an integer cannot fail; if it
        // ever did, the status and reason still reach the client.
        serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                "{{\"reason\":\"{}\",\"status\":{}}}",
                self.reason.as_str(),
                self.status
            )
        })
    }

    /// Every header of the local reply (lower-case names).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ];
        if let Some(w) = self.www_authenticate() {
            h.push(("www-authenticate", w));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's (filter/scripts/test-core-wasm.sh).
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn deny(status: u16, reason: Reason, rule: Option<&str>, scopes: &[&str]) -> Deny {
        Deny {
            status,
            reason,
            rule: rule.map(str::to_owned),
            realm: "r".into(),
            required_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            detail: String::new(),
            provider: None,
        }
    }

    /// The body as it was built before: a `serde_json::Value` object (keys
    /// sorted), then `to_string`.
    fn as_value(d: &Deny) -> String {
        let mut body = serde_json::json!({
            "status": d.status,
            "reason": d.reason.as_str(),
            "message": d.reason.description(),
        });
        let obj = body.as_object_mut().unwrap();
        if let Some(rule) = &d.rule {
            obj.insert("rule".into(), serde_json::json!(rule));
        }
        if !d.required_scopes.is_empty() {
            obj.insert(
                "required_scopes".into(),
                serde_json::json!(d.required_scopes),
            );
        }
        body.to_string()
    }

    #[test]
    fn the_body_is_the_sorted_map_it_was() {
        let cases = [
            deny(401, Reason::TokenMissing, None, &[]),
            deny(401, Reason::BadSignature, Some("orders"), &[]),
            deny(
                403,
                Reason::InsufficientScope,
                Some("orders-write"),
                &["svc-a:orders:write", "svc-a:*"],
            ),
            deny(
                503,
                Reason::JwksUnavailable,
                Some("r\"q\"\\ \u{1}\u{e9}"),
                &["a\"b"],
            ),
            deny(403, Reason::InsufficientScope, None, &["x"]),
        ];
        for d in &cases {
            let body = d.body();
            assert_eq!(body, as_value(d));
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed["status"], d.status);
            assert_eq!(parsed["reason"], d.reason.as_str());
        }
    }
}
