//! The auth server driven in-process (tower `oneshot` on the router), and the
//! cross-check that matters: what it issues verifies in scopegate-core against
//! the JWKS it publishes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use scopegate_core::{Decision, Reason, compile_json};
use scopegate_example_auth_server::config::Registry;
use scopegate_example_auth_server::keys::{KeyRing, SigningKey};
use scopegate_example_auth_server::{AuthServer, Clock};
use serde_json::{Value, json};
use tower::ServiceExt;

const T0: i64 = 1_800_000_000;
const ISS: &str = "https://auth.test.example";

const CLIENTS: &str = r#"{
  "_comment": "TEST ONLY secrets",
  "issuer": "https://auth.test.example",
  "access_token_ttl_seconds": 300,
  "clients": [
    {"client_id": "cli", "client_secret": "cli-secret", "grant_types": ["password"],
     "scopes": ["svc-a:orders:read", "svc-a:orders:write", "svc-b:reports:read", "openid"]},
    {"client_id": "svc-a", "client_secret": "svc-a-secret", "grant_types": ["client_credentials"],
     "scopes": ["svc-b:reports:read", "svc-b:reports:write"], "roles": ["service"]},
    {"client_id": "opaque-bot", "client_secret": "bot-secret", "grant_types": ["client_credentials"],
     "scopes": ["svc-a:orders:read"], "token_format": "opaque", "access_token_ttl_seconds": 900},
    {"client_id": "sidecar", "client_secret_sha256": "SIDECAR_SHA", "grant_types": ["client_credentials"],
     "scopes": ["svc-a:introspect"], "may_introspect": true},
    {"client_id": "ops", "client_secret": "ops-secret", "grant_types": ["client_credentials"],
     "scopes": ["auth:admin"], "admin": true}
  ],
  "users": [
    {"username": "alice", "password": "alice-pw", "scopes": ["svc-a:orders:read", "svc-b:reports:read", "openid"],
     "roles": ["customer"], "claims": {"tenant": "acme"}},
    {"username": "bob", "password": "bob-pw", "scopes": ["svc-a:orders:read"]}
  ]
}"#;

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RSA key generation is the slow part: a few keys shared by every test.
fn key(i: usize) -> SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| SigningKey::generate().unwrap()).collect())[i].clone()
}

struct Fixture {
    server: AuthServer,
    clock: Arc<AtomicI64>,
}

impl Fixture {
    fn new() -> Self {
        let text = CLIENTS.replace("SIDECAR_SHA", &sha256_hex("sidecar-secret"));
        let reg = Registry::from_json(&text).unwrap();
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let clock_fn: Clock = Arc::new(move || c.load(Ordering::SeqCst));
        Fixture {
            server: AuthServer::new(reg, KeyRing::new(key(0), None), clock_fn),
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .server
            .router()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            raw: bytes.to_vec(),
        }
    }

    async fn form(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.call("POST", path, &h, body).await
    }

    async fn token(&self, basic: (&str, &str), body: &str) -> Reply {
        let auth = basic_auth(basic.0, basic.1);
        self.form("/oauth/token", &[("authorization", &auth)], body)
            .await
    }

    async fn alice(&self, extra: &str) -> String {
        let r = self
            .token(
                ("cli", "cli-secret"),
                &format!("grant_type=password&username=alice&password=alice-pw{extra}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        r.json["access_token"].as_str().unwrap().to_owned()
    }

    async fn introspect(&self, token: &str) -> Value {
        let auth = basic_auth("sidecar", "sidecar-secret");
        let r = self
            .form(
                "/oauth/introspect",
                &[("authorization", &auth)],
                &format!("token={token}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        r.json
    }

    async fn feed(&self, query: &str, inm: Option<&str>) -> Reply {
        let mut h = vec![];
        if let Some(e) = inm {
            h.push(("if-none-match", e));
        }
        self.call("GET", &format!("/revocations{query}"), &h, "")
            .await
    }

    /// scopegate-core's decision for a request to svc-a with this token, with
    /// the JWKS the server publishes now, inline.
    fn decide(&self, audience: &str, path: &str, token: &str) -> Decision {
        let config = json!({
            "realm": audience,
            "providers": [{
                "name": "main", "issuer": ISS, "audiences": [audience], "algorithms": ["RS256"],
                "require_typ": "at+jwt",
                "jwks": self.server.jwks(),
                "claims_to_headers": {"sub": "x-user", "client_id": "x-client", "roles": "x-roles", "tenant": "x-tenant"}
            }],
            "rules": [
                {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]},
                 "require": {"all_of": [format!("{audience}:orders:read")]}},
                {"name": "reports", "match": {"prefix": "/reports", "methods": ["GET"]},
                 "require": {"all_of": [format!("{audience}:reports:read")]}},
                {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]},
                 "require": {"all_of": [format!("{audience}:orders:write")]}}
            ]
        });
        let policy = compile_json(config.to_string().as_bytes()).unwrap();
        let auth = format!("Bearer {token}");
        let method = if path.starts_with("POST ") {
            "POST"
        } else {
            "GET"
        };
        let path = path.trim_start_matches("POST ");
        policy.decide(&scopegate_core::Request {
            method,
            path,
            headers: &[("authorization", &auth)],
            now_unix_seconds: self.now(),
            route_name: None,
        })
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
    raw: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn basic_auth(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn jwt_part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

fn allow(d: Decision) -> scopegate_core::Allow {
    match d {
        Decision::Allow(a) => a,
        other => panic!("not allowed: {other:?}"),
    }
}

fn deny(d: Decision) -> scopegate_core::Deny {
    match d {
        Decision::Deny(d) => d,
        other => panic!("not denied: {other:?}"),
    }
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn password_grant_issues_an_rs256_jwt_that_scopegate_accepts() {
    let f = Fixture::new();
    let r = f
        .token(
            ("cli", "cli-secret"),
            "grant_type=password&username=alice&password=alice-pw&audience=svc-a",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 300);
    // Narrowed to the audience: no svc-b scope in a svc-a token.
    assert_eq!(r.json["scope"], "openid svc-a:orders:read");
    let token = r.json["access_token"].as_str().unwrap();

    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], json!(key(0).kid));
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], json!(["svc-a"]));
    assert_eq!(claims["iat"], T0);
    assert_eq!(claims["nbf"], T0);
    assert_eq!(claims["exp"], T0 + 300);
    assert_eq!(claims["client_id"], "cli");
    assert_eq!(claims["roles"], json!(["customer"]));
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);

    let a = allow(f.decide("svc-a", "/orders/7", token));
    let p = a.principal.unwrap();
    assert_eq!(p.subject.as_deref(), Some("alice"));
    assert!(a.set_headers.contains(&("x-user".into(), "alice".into())));
    assert!(a.set_headers.contains(&("x-client".into(), "cli".into())));
    assert!(
        a.set_headers
            .contains(&("x-roles".into(), "[\"customer\"]".into()))
    );
    assert!(a.set_headers.contains(&("x-tenant".into(), "acme".into())));
    // A scope she does not hold: 403 naming it.
    let d = deny(f.decide("svc-a", "POST /orders", token));
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(d.required_scopes, vec!["svc-a:orders:write".to_owned()]);
    // The same token at svc-b: wrong audience.
    let d = deny(f.decide("svc-b", "/reports", token));
    assert_eq!((d.status, d.reason), (401, Reason::AudienceNotAllowed));
}

#[tokio::test]
async fn each_token_gets_a_fresh_jti() {
    let f = Fixture::new();
    let (a, b) = (f.alice("").await, f.alice("").await);
    assert_ne!(jwt_part(&a, 1)["jti"], jwt_part(&b, 1)["jti"]);
}

#[tokio::test]
async fn client_credentials_with_basic_or_form_fields() {
    let f = Fixture::new();
    let r = f
        .token(
            ("svc-a", "svc-a-secret"),
            "grant_type=client_credentials&scope=svc-b:reports:read",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let t = r.json["access_token"].as_str().unwrap();
    let c = jwt_part(t, 1);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some("svc-a"), Some("svc-a"))
    );
    assert_eq!(c["aud"], json!(["svc-b"]));
    assert_eq!(c["scope"], "svc-b:reports:read");
    assert_eq!(c["roles"], json!(["service"]));
    assert!(c.get("username").is_none());
    allow(f.decide("svc-b", "/reports/q1", t));

    let r = f
        .form(
            "/oauth/token",
            &[],
            "grant_type=client_credentials&client_id=svc-a&client_secret=svc-a-secret",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.json["scope"], "svc-b:reports:read svc-b:reports:write");
}

#[tokio::test]
async fn requested_scope_narrows_to_what_is_allowed() {
    let f = Fixture::new();
    // bob may read orders only; the cli client may write, bob may not.
    let r = f.token(("cli", "cli-secret"),
        "grant_type=password&username=bob&password=bob-pw&scope=svc-a:orders:read%20svc-a:orders:write").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["scope"], "svc-a:orders:read");
    // Nothing of the request allowed: invalid_scope.
    let r = f
        .token(
            ("cli", "cli-secret"),
            "grant_type=password&username=bob&password=bob-pw&scope=svc-a:orders:write",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"], "invalid_scope");
    // Malformed scope token.
    let r = f
        .token(
            ("svc-a", "svc-a-secret"),
            "grant_type=client_credentials&scope=svc-b:%22x",
        )
        .await;
    assert_eq!(r.json["error"], "invalid_scope");
    // An audience the client may not have.
    let r = f
        .token(
            ("svc-a", "svc-a-secret"),
            "grant_type=client_credentials&audience=svc-a",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"], "invalid_target");
    // Without audience, alice gets every service her scopes name.
    let t = f.alice("").await;
    assert_eq!(jwt_part(&t, 1)["aud"], json!(["svc-a", "svc-b"]));
    assert_eq!(
        jwt_part(&t, 1)["scope"],
        "openid svc-a:orders:read svc-b:reports:read"
    );
}

#[tokio::test]
async fn rfc6749_error_responses() {
    let f = Fixture::new();
    // Wrong secret over Basic: 401 with a Basic challenge.
    let r = f
        .token(
            ("cli", "nope"),
            "grant_type=password&username=alice&password=alice-pw",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["error"], "invalid_client");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic "));
    // Unknown client, form fields.
    let r = f
        .form(
            "/oauth/token",
            &[],
            "grant_type=client_credentials&client_id=ghost&client_secret=x",
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // No client authentication at all.
    let r = f
        .form("/oauth/token", &[], "grant_type=client_credentials")
        .await;
    assert_eq!(r.json["error"], "invalid_client");
    // Wrong password / unknown user: invalid_grant.
    for body in [
        "grant_type=password&username=alice&password=wrong",
        "grant_type=password&username=eve&password=x",
    ] {
        let r = f.token(("cli", "cli-secret"), body).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{body}"
        );
    }
    // Unsupported grant type; a grant the client may not use.
    let r = f
        .token(
            ("cli", "cli-secret"),
            "grant_type=authorization_code&code=x",
        )
        .await;
    assert_eq!(r.json["error"], "unsupported_grant_type");
    let r = f
        .token(("cli", "cli-secret"), "grant_type=client_credentials")
        .await;
    assert_eq!(r.json["error"], "unauthorized_client");
    // Missing grant_type, repeated parameter, both auth methods, wrong content type.
    let r = f.token(("cli", "cli-secret"), "username=alice").await;
    assert_eq!(r.json["error"], "invalid_request");
    let r = f
        .token(
            ("cli", "cli-secret"),
            "grant_type=password&grant_type=password&username=alice&password=alice-pw",
        )
        .await;
    assert_eq!(r.json["error"], "invalid_request");
    let r = f
        .token(
            ("svc-a", "svc-a-secret"),
            "grant_type=client_credentials&client_id=svc-a&client_secret=svc-a-secret",
        )
        .await;
    assert_eq!(r.json["error"], "invalid_request");
    let auth = basic_auth("svc-a", "svc-a-secret");
    let r = f
        .call(
            "POST",
            "/oauth/token",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

// ---------------------------------------------------------------- keys

#[tokio::test]
async fn jwks_and_discovery() {
    let f = Fixture::new();
    let r = f.call("GET", "/.well-known/jwks.json", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], json!(key(0).kid));
    assert_eq!(
        (
            keys[0]["kty"].as_str(),
            keys[0]["alg"].as_str(),
            keys[0]["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(
        keys[0].get("d").is_none(),
        "private parts must never be published"
    );
    let r = f
        .call("GET", "/.well-known/openid-configuration", &[], "")
        .await;
    assert_eq!(r.json["issuer"], ISS);
    assert_eq!(r.json["jwks_uri"], format!("{ISS}/.well-known/jwks.json"));
    assert_eq!(r.json["token_endpoint"], format!("{ISS}/oauth/token"));
    assert_eq!(
        r.json["introspection_endpoint"],
        format!("{ISS}/oauth/introspect")
    );
    assert_eq!(r.json["revocation_endpoint"], format!("{ISS}/oauth/revoke"));
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_published_then_drops_it() {
    let f = Fixture::new();
    let old = f.alice("&audience=svc-a").await;
    let (cur, prev) = f.server.rotate(key(1));
    assert_eq!(
        (cur.as_str(), prev.as_deref()),
        (key(1).kid.as_str(), Some(key(0).kid.as_str()))
    );
    let kids: Vec<Value> = f.server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!(key(1).kid), json!(key(0).kid)]);
    let new = f.alice("&audience=svc-a").await;
    assert_eq!(jwt_part(&new, 0)["kid"], json!(key(1).kid));
    // Both verify against the published JWKS, in scopegate and here.
    allow(f.decide("svc-a", "/orders", &old));
    allow(f.decide("svc-a", "/orders", &new));
    assert_eq!(f.introspect(&old).await["active"], true);
    // Rotate again: the first key is gone, its tokens stop verifying.
    f.server.rotate(key(2));
    assert_eq!(
        deny(f.decide("svc-a", "/orders", &old)).reason,
        Reason::UnknownKid
    );
    allow(f.decide("svc-a", "/orders", &new));
    assert_eq!(f.introspect(&old).await, json!({"active": false}));
}

#[tokio::test]
async fn admin_rotate_needs_an_admin_client() {
    let f = Fixture::new();
    let r = f
        .call(
            "POST",
            "/admin/rotate",
            &[("authorization", &basic_auth("cli", "cli-secret"))],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("unauthorized_client"))
    );
    let r = f.call("POST", "/admin/rotate", &[], "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f
        .call(
            "POST",
            "/admin/rotate",
            &[("authorization", &basic_auth("ops", "ops-secret"))],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.json["previous_kid"], json!(key(0).kid));
    let kids = f.server.jwks()["keys"].as_array().unwrap().len();
    assert_eq!(kids, 2);
    assert_eq!(f.server.jwks()["keys"][0]["kid"], r.json["current_kid"]);
}

#[test]
fn pem_keys_load_and_public_or_short_keys_are_refused() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let k = SigningKey::from_pem(&pem).unwrap();
    assert_eq!(k.jwk()["kty"], "RSA");
    let e = SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        .unwrap_err();
    assert!(e.contains("not an RSA private key"), "{e}");
    let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
    let e = SigningKey::from_pem(&small.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap_err();
    assert!(e.contains("at least 2048"), "{e}");
}

#[test]
fn invalid_clients_files_are_refused_with_the_place() {
    let bad = [
        (
            r#"{"issuer": "x", "clients": [], "typo": 1}"#,
            "unknown field `typo`",
        ),
        (
            r#"{"issuer": "x", "clients": [{"client_id": "a", "grant_types": ["password"]}]}"#,
            "a secret",
        ),
        (
            r#"{"issuer": "x", "clients": [{"client_id": "a", "client_secret": "s", "grant_types": ["implicit"]}]}"#,
            "implicit",
        ),
        (
            r#"{"issuer": "x", "clients": [{"client_id": "a", "client_secret": "s", "grant_types": ["password"], "scopes": ["a b"]}]}"#,
            "invalid scope",
        ),
        (
            r#"{"issuer": "x", "clients": [{"client_id": "a", "client_secret": "s", "grant_types": ["password"]},
                                        {"client_id": "a", "client_secret": "t", "grant_types": ["password"]}]}"#,
            "duplicate client_id",
        ),
        (
            r#"{"issuer": "x", "clients": [], "users": [{"username": "u", "password": "p", "claims": {"sub": "root"}}]}"#,
            "must not set \"sub\"",
        ),
        (
            r#"{"issuer": "x", "clients": [{"client_id": "a", "client_secret_sha256": "abc", "grant_types": ["password"]}]}"#,
            "64 hex",
        ),
    ];
    for (text, want) in bad {
        let e = Registry::from_json(text).unwrap_err();
        assert!(e.contains(want), "{text}: {e}");
    }
}

// ---------------------------------------------------------------- introspection, opaque tokens

#[tokio::test]
async fn opaque_tokens_are_introspected_and_revocable() {
    let f = Fixture::new();
    let r = f
        .token(
            ("opaque-bot", "bot-secret"),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["expires_in"], 900);
    let t = r.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t.split('.').count(), 1, "opaque, not a JWT: {t}");
    assert!(t.len() >= 43);
    let i = f.introspect(&t).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(
        (i["sub"].as_str(), i["client_id"].as_str()),
        (Some("opaque-bot"), Some("opaque-bot"))
    );
    assert_eq!(i["scope"], "svc-a:orders:read");
    assert_eq!(i["aud"], json!(["svc-a"]));
    assert_eq!(
        (i["iss"].as_str(), i["exp"].as_i64()),
        (Some(ISS), Some(T0 + 900))
    );
    // Revoked by its owner: inactive. Another client may not revoke it.
    let other = basic_auth("svc-a", "svc-a-secret");
    let r = f
        .form(
            "/oauth/revoke",
            &[("authorization", &other)],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    assert_eq!(f.introspect(&t).await["active"], true);
    let owner = basic_auth("opaque-bot", "bot-secret");
    let r = f
        .form(
            "/oauth/revoke",
            &[("authorization", &owner)],
            &format!("token={t}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(f.introspect(&t).await, json!({"active": false}));
    // Opaque revocations are the introspection's business, not the feed's.
    assert_eq!(f.feed("", None).await.json["jti"], json!([]));
}

#[tokio::test]
async fn introspection_of_jwts_expired_unknown_and_its_client_auth() {
    let f = Fixture::new();
    let t = f.alice("").await;
    let i = f.introspect(&t).await;
    assert_eq!(
        (
            i["active"].as_bool(),
            i["sub"].as_str(),
            i["username"].as_str()
        ),
        (Some(true), Some("alice"), Some("alice"))
    );
    assert_eq!(i["roles"], json!(["customer"]));
    assert_eq!(i["exp"], T0 + 300);
    assert_eq!(f.introspect("not-a-token").await, json!({"active": false}));
    // A tampered JWT.
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut claims = jwt_part(&t, 1);
    claims["scope"] = json!("svc-a:admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(
        f.introspect(&parts.join(".")).await,
        json!({"active": false})
    );
    // Expired.
    f.advance(300);
    assert_eq!(f.introspect(&t).await, json!({"active": false}));

    // Client authentication is required, and the right to introspect.
    let r = f
        .form("/oauth/introspect", &[], &format!("token={t}"))
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let r = f
        .form(
            "/oauth/introspect",
            &[("authorization", &basic_auth("cli", "cli-secret"))],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .form(
            "/oauth/introspect",
            &[("authorization", &basic_auth("sidecar", "wrong"))],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Or a bearer token of a client that may introspect.
    let r = f
        .form(
            "/oauth/token",
            &[],
            "grant_type=client_credentials&client_id=sidecar&client_secret=sidecar-secret",
        )
        .await;
    let sidecar = format!("Bearer {}", r.json["access_token"].as_str().unwrap());
    let fresh = f.alice("").await;
    let r = f
        .form(
            "/oauth/introspect",
            &[("authorization", &sidecar)],
            &format!("token={fresh}"),
        )
        .await;
    assert_eq!(
        (r.status, r.json["active"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let r = f
        .form(
            "/oauth/introspect",
            &[("authorization", &format!("Bearer {fresh}"))],
            &format!("token={fresh}"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "alice's cli client may not introspect"
    );
}

// ---------------------------------------------------------------- revocation feed

#[tokio::test]
async fn revoke_puts_the_jti_on_the_feed_and_introspection_turns_inactive() {
    let f = Fixture::new();
    let empty = f.feed("", None).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.header("content-type"), Some("application/json"));
    assert_eq!(empty.json["complete"], true);
    assert_eq!(
        (empty.json["jti"].clone(), empty.json["subjects"].clone()),
        (json!([]), json!([]))
    );
    let t = f.alice("&audience=svc-a").await;
    let jti = jwt_part(&t, 1)["jti"].clone();
    let cli = basic_auth("cli", "cli-secret");
    // Only the client it was issued to may revoke it.
    let r = f
        .form(
            "/oauth/revoke",
            &[("authorization", &basic_auth("svc-a", "svc-a-secret"))],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(r.json["error"], "unauthorized_client");
    let r = f.form("/oauth/revoke", &[], &format!("token={t}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f
        .form("/oauth/revoke", &[("authorization", &cli)], "")
        .await;
    assert_eq!(r.json["error"], "invalid_request");
    let r = f
        .form(
            "/oauth/revoke",
            &[("authorization", &cli)],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.raw.is_empty());
    // Unknown tokens are not an error (RFC 7009 2.2).
    let r = f
        .form("/oauth/revoke", &[("authorization", &cli)], "token=garbage")
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let feed = f.feed("", None).await;
    assert_eq!(feed.json["complete"], true);
    assert_eq!(feed.json["jti"], json!([{"jti": jti, "exp": T0 + 300}]));
    assert_eq!(feed.json["subjects"], json!([]));
    assert_ne!(feed.json["cursor"], empty.json["cursor"]);
    assert_eq!(f.introspect(&t).await, json!({"active": false}));
    // The signature still verifies in scopegate: refusing it is the feed's job.
    allow(f.decide("svc-a", "/orders", &t));
}

#[tokio::test]
async fn logout_revokes_every_earlier_token_of_the_subject() {
    let f = Fixture::new();
    let t1 = f.alice("").await;
    f.advance(10);
    let t2 = f.alice("&audience=svc-a").await;
    let bob = f
        .token(
            ("cli", "cli-secret"),
            "grant_type=password&username=bob&password=bob-pw",
        )
        .await
        .json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // No or a bad bearer token: 401.
    let r = f.call("POST", "/logout", &[], "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer "));
    let r = f
        .call("POST", "/logout", &[("authorization", "Bearer nope")], "")
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    let r = f
        .call(
            "POST",
            "/logout",
            &[("authorization", &format!("Bearer {t2}"))],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let before = T0 + 10 + 1;
    assert_eq!(r.json["revoked_before"], before);
    let feed = f.feed("", None).await;
    // The entry lives as long as the longest token lifetime (opaque-bot's 900 s).
    assert_eq!(
        feed.json["subjects"],
        json!([{"sub": "alice", "revoked_before": before, "exp": before + 900}])
    );
    assert_eq!(feed.json["jti"], json!([]));
    for t in [&t1, &t2] {
        assert_eq!(f.introspect(t).await, json!({"active": false}));
    }
    assert_eq!(f.introspect(&bob).await["active"], true);
    // The same token cannot log out again; a new login in the same second is not refused.
    let r = f
        .call(
            "POST",
            "/logout",
            &[("authorization", &format!("Bearer {t2}"))],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let t3 = f.alice("").await;
    assert_eq!(jwt_part(&t3, 1)["iat"], before);
    assert_eq!(f.introspect(&t3).await["active"], true);
    allow(f.decide("svc-a", "/orders", &t3));
}

#[tokio::test]
async fn feed_etag_gives_304_and_since_gives_deltas() {
    let f = Fixture::new();
    let cli = basic_auth("cli", "cli-secret");
    let t1 = f.alice("").await;
    f.form(
        "/oauth/revoke",
        &[("authorization", &cli)],
        &format!("token={t1}"),
    )
    .await;
    let full = f.feed("", None).await;
    let etag = full.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(full.header("cache-control"), Some("no-cache"));
    let cursor = full.json["cursor"].as_str().unwrap().to_owned();

    // Nothing changed: 304, with the ETag, whether or not `since` is sent; weak and list forms match too.
    for (q, inm) in [
        ("".to_owned(), etag.clone()),
        (format!("?since={cursor}"), etag.clone()),
        (String::new(), format!("\"x\", W/{etag}")),
        (String::new(), "*".to_owned()),
    ] {
        let r = f.feed(&q, Some(&inm)).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{q} {inm}");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert!(r.raw.is_empty());
    }
    // Unchanged, asked with `since`: an empty delta.
    let r = f.feed(&format!("?since={cursor}"), None).await;
    assert_eq!(
        r.json,
        json!({"cursor": cursor, "complete": false, "jti": [], "subjects": []})
    );

    // One more revocation and a logout: the delta holds only those.
    let t2 = f.alice("").await;
    f.form(
        "/oauth/revoke",
        &[("authorization", &cli)],
        &format!("token={t2}"),
    )
    .await;
    f.call(
        "POST",
        "/logout",
        &[("authorization", &format!("Bearer {}", f.alice("").await))],
        "",
    )
    .await;
    let r = f.feed(&format!("?since={cursor}"), Some(&etag)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.json["complete"], false);
    assert_eq!(
        r.json["jti"],
        json!([{"jti": jwt_part(&t2, 1)["jti"], "exp": T0 + 300}])
    );
    assert_eq!(r.json["subjects"].as_array().unwrap().len(), 1);
    let cursor2 = r.json["cursor"].as_str().unwrap().to_owned();
    assert_ne!(cursor2, cursor);
    // The full list holds all three.
    let r = f.feed("", None).await;
    assert_eq!(
        (
            r.json["complete"].as_bool(),
            r.json["jti"].as_array().unwrap().len()
        ),
        (Some(true), 2)
    );
    // A cursor that is not ours (another server, before a restart, garbage, the future): the complete list.
    let (epoch, seq) = cursor2.split_once('.').unwrap();
    let ahead = format!("{epoch}.{}", seq.parse::<u64>().unwrap() + 5);
    for bad in ["0000.1", "garbage", ahead.as_str()] {
        let r = f.feed(&format!("?since={bad}"), None).await;
        assert_eq!(r.json["complete"], true, "{bad}");
        assert_eq!(r.json["jti"].as_array().unwrap().len(), 2, "{bad}");
    }
}

#[tokio::test]
async fn feed_entries_are_dropped_after_the_tokens_expire_plus_retention() {
    let f = Fixture::new();
    let cli = basic_auth("cli", "cli-secret");
    let t = f.alice("").await; // exp T0 + 300
    f.form(
        "/oauth/revoke",
        &[("authorization", &cli)],
        &format!("token={t}"),
    )
    .await;
    f.advance(200);
    let t_late = f.alice("").await; // exp T0 + 500
    f.form(
        "/oauth/revoke",
        &[("authorization", &cli)],
        &format!("token={t_late}"),
    )
    .await;
    let r = f.feed("", None).await;
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(r.json["jti"].as_array().unwrap().len(), 2);
    // Past exp but within the 120 s retention (a filter's clock skew): still listed.
    f.advance(100 + 60);
    assert_eq!(
        f.feed("", None).await.json["jti"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        f.feed("", Some(&etag)).await.status,
        StatusCode::NOT_MODIFIED
    );
    // Past exp + retention: gone, and the ETag changes.
    f.advance(61);
    let r = f.feed("", Some(&etag)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json["jti"],
        json!([{"jti": jwt_part(&t_late, 1)["jti"], "exp": T0 + 500}])
    );
    // A token revoked after it expired is not listed at all.
    let r = f
        .form(
            "/oauth/revoke",
            &[("authorization", &cli)],
            &format!("token={t}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        f.feed("", None).await.json["jti"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn healthz_and_unknown_paths() {
    let f = Fixture::new();
    assert_eq!(
        f.call("GET", "/healthz", &[], "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        f.call("GET", "/nope", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.call("GET", "/oauth/token", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

// ---------------------------------------------------------------- the feed, consumed by scopegate-core

/// What the shim gives the decision: the revocation view scopegate-core's
/// own feed client (`RemoteRevocations`) built from our answers.
struct Fetched(scopegate_core::revocation::RevocationView);

impl scopegate_core::KeySource for Fetched {
    fn fetched(&self, _: usize) -> Option<&[scopegate_core::keys::Key]> {
        None
    }
    fn revocations(&self, _: usize) -> Option<&scopegate_core::revocation::RevocationView> {
        Some(&self.0)
    }
}

#[tokio::test]
async fn scopegate_cores_feed_client_applies_our_feed() {
    use scopegate_core::revocation::{Polled, RemoteRevocations};
    let f = Fixture::new();
    let config = json!({
        "realm": "svc-a",
        "providers": [{
            "name": "main", "issuer": ISS, "audiences": ["svc-a"], "algorithms": ["RS256"],
            "jwks": f.server.jwks(),
            "revocation": {"remote": {"cluster": "auth", "authority": "auth", "path": "/revocations",
                                      "poll_interval_seconds": 2, "timeout_ms": 2000},
                           "max_staleness_seconds": 300}
        }],
        "rules": [{"name": "orders-read", "match": {"prefix": "/orders"}, "require": {"all_of": ["svc-a:orders:read"]}}]
    });
    let policy = compile_json(config.to_string().as_bytes()).unwrap();
    let mut client = RemoteRevocations::new(policy.providers()[0].revocation().unwrap()).unwrap();
    // One poll exactly as the shim sends it: path (with since=), If-None-Match.
    let poll = |client: &mut RemoteRevocations, f: &Fixture| {
        let now = f.now();
        let req = client.next_poll(now).expect("a poll is due");
        client.started(now);
        (req, now)
    };
    let decide = |client: &RemoteRevocations, f: &Fixture, token: &str| {
        let auth = format!("Bearer {token}");
        policy.decide_with(
            &scopegate_core::Request {
                method: "GET",
                path: "/orders",
                headers: &[("authorization", &auth)],
                now_unix_seconds: f.now(),
                route_name: None,
            },
            &Fetched(client.view().clone()),
        )
    };
    macro_rules! answer {
        ($client:expr, $req:expr, $now:expr) => {{
            let r = f
                .feed(
                    &$req.path["/revocations".len()..],
                    $req.if_none_match.as_deref(),
                )
                .await;
            $client
                .answered($now, r.status.as_u16(), r.header("etag"), &r.raw)
                .unwrap()
        }};
    }

    let (req, now) = poll(&mut client, &f);
    assert_eq!(
        (req.path.as_str(), req.if_none_match.as_deref()),
        ("/revocations", None)
    );
    assert_eq!(
        answer!(client, req, now),
        Polled::Updated {
            entries: 0,
            changed: true
        }
    );
    let t1 = f.alice("&audience=svc-a").await;
    allow(decide(&client, &f, &t1));

    // Revoke t1: the next poll (incremental, since + If-None-Match) brings it.
    let cli = basic_auth("cli", "cli-secret");
    f.form(
        "/oauth/revoke",
        &[("authorization", &cli)],
        &format!("token={t1}"),
    )
    .await;
    f.advance(2);
    let (req, now) = poll(&mut client, &f);
    assert!(req.path.starts_with("/revocations?since="), "{}", req.path);
    assert!(req.if_none_match.is_some());
    assert_eq!(
        answer!(client, req, now),
        Polled::Updated {
            entries: 1,
            changed: true
        }
    );
    let d = deny(decide(&client, &f, &t1));
    assert_eq!((d.status, d.reason), (401, Reason::TokenRevoked));

    // Nothing new: 304, accepted as fresh.
    f.advance(2);
    let (req, now) = poll(&mut client, &f);
    assert_eq!(answer!(client, req, now), Polled::NotModified);

    // Logout: every earlier token of alice refused, a new one accepted.
    let t2 = f.alice("&audience=svc-a").await;
    let r = f
        .call(
            "POST",
            "/logout",
            &[("authorization", &format!("Bearer {t2}"))],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    f.advance(2);
    let (req, now) = poll(&mut client, &f);
    assert_eq!(
        answer!(client, req, now),
        Polled::Updated {
            entries: 2,
            changed: true
        }
    );
    assert_eq!(deny(decide(&client, &f, &t2)).reason, Reason::TokenRevoked);
    let t3 = f.alice("&audience=svc-a").await;
    allow(decide(&client, &f, &t3));

    // Long after the tokens expired (plus retention): the entries are dropped
    // on both sides (our ETag changed, the delta is empty, the client prunes).
    f.advance(2000);
    let (req, now) = poll(&mut client, &f);
    assert_eq!(
        answer!(client, req, now),
        Polled::Updated {
            entries: 0,
            changed: true
        }
    );
}
