//! Decision -> what the client sees: status, headers, JSON body (RFC 6750).

use serde_json::json;

use crate::decide::Deny;
use crate::reason::Reason;

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
        let mut body = json!({
            "status": self.status,
            "reason": self.reason.as_str(),
            "message": self.reason.description(),
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(rule) = &self.rule {
                obj.insert("rule".into(), json!(rule));
            }
            if !self.required_scopes.is_empty() {
                obj.insert("required_scopes".into(), json!(self.required_scopes));
            }
        }
        body.to_string()
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
