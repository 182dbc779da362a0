//! scopegate's example auth server: everything `filter/PROTOCOLS.md` asks of
//! an auth server, and the OAuth 2.0 endpoints that issue and end tokens.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /oauth/token` | RFC 6749: `client_credentials` and `password` grants; RS256 JWTs (or opaque tokens per client) |
//! | `GET /.well-known/jwks.json` | the current and the previous signing key |
//! | `GET /.well-known/openid-configuration` | discovery (also at `/.well-known/oauth-authorization-server`) |
//! | `POST /oauth/revoke` | RFC 7009: one token (its `jti` goes on the revocation feed) |
//! | `POST /logout` | the bearer's subject: every token issued to it before now |
//! | `GET /revocations` | the revocation feed (cursor, `since`, ETag) |
//! | `POST /oauth/introspect` | RFC 7662, client authentication required |
//! | `POST /admin/rotate` | new signing key; the old one stays published (admin clients) |
//!
//! Time comes from a [`Clock`] so tests can move it.

pub mod config;
pub mod keys;
pub mod store;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use config::{Client, GrantType, Registry, Secret, TokenFormat, scope_service, valid_scope_token};
use keys::{KeyRing, SigningKey};
use store::{Feed, OpaqueTokens, Revocations};

/// Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// Leeway for our own `nbf` checks (tokens issued right after a logout carry
/// `iat`/`nbf` one second ahead).
const NBF_LEEWAY_SECONDS: i64 = 5;

#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

struct Inner {
    reg: Registry,
    clock: Clock,
    keys: RwLock<KeyRing>,
    revocations: Mutex<Revocations>,
    opaque: Mutex<OpaqueTokens>,
    /// Compared against when the client is unknown, so that an unknown
    /// client_id costs the same as a wrong secret.
    dummy: Secret,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl AuthServer {
    pub fn new(reg: Registry, keys: KeyRing, clock: Clock) -> Self {
        let retention = reg.revocation_retention_seconds;
        AuthServer {
            inner: Arc::new(Inner {
                reg,
                clock,
                keys: RwLock::new(keys),
                revocations: Mutex::new(Revocations::new(random_hex(4), retention)),
                opaque: Mutex::new(OpaqueTokens::default()),
                dummy: Secret::of(&random_hex(16)),
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth/token", post(token_endpoint))
            .route("/oauth/revoke", post(revoke_endpoint))
            .route("/oauth/introspect", post(introspect_endpoint))
            .route("/logout", post(logout_endpoint))
            .route("/revocations", get(revocations_endpoint))
            .route("/.well-known/jwks.json", get(jwks_endpoint))
            .route("/.well-known/openid-configuration", get(discovery_endpoint))
            .route(
                "/.well-known/oauth-authorization-server",
                get(discovery_endpoint),
            )
            .route("/admin/rotate", post(rotate_endpoint))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(self.clone())
    }

    pub fn issuer(&self) -> &str {
        &self.inner.reg.issuer
    }

    /// The longest access-token lifetime of any client.
    pub fn max_ttl_seconds(&self) -> u64 {
        self.inner.reg.max_ttl_seconds
    }

    pub fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn jwks(&self) -> Value {
        self.keys().jwks()
    }

    /// Install a new signing key; returns (current kid, previous kid).
    pub fn rotate(&self, new: SigningKey) -> (String, Option<String>) {
        let mut k = self.keys_mut();
        k.rotate(new);
        let kids = (k.current().kid.clone(), k.previous().map(|p| p.kid.clone()));
        eprintln!(
            "auth-server: rotated keys: current kid {}, previous kid {}",
            kids.0,
            kids.1.as_deref().unwrap_or("-")
        );
        kids
    }

    pub fn discovery(&self) -> Value {
        let iss = self.issuer().trim_end_matches('/');
        json!({
            "issuer": self.issuer(),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "token_endpoint": format!("{iss}/oauth/token"),
            "introspection_endpoint": format!("{iss}/oauth/introspect"),
            "revocation_endpoint": format!("{iss}/oauth/revoke"),
            "scopegate_revocation_feed": format!("{iss}/revocations"),
            "scopegate_logout_endpoint": format!("{iss}/logout"),
            "grant_types_supported": ["client_credentials", "password"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
            // No authorization endpoint: no response type is supported.
            "response_types_supported": [],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        })
    }

    /// The claims of a token we issued that is active now: signed by a
    /// published key (JWT) or known (opaque), not expired, not before `nbf`,
    /// not revoked (its `jti`, or its subject logged out after it was issued).
    pub fn active_claims(&self, token: &str) -> Option<Map<String, Value>> {
        let now = self.now();
        let claims = match self.keys().verify(token) {
            Some(c) => c,
            None => {
                let opaque = lock(&self.inner.opaque);
                let rec = opaque.get(token)?;
                if rec.revoked {
                    return None;
                }
                rec.claims.clone()
            }
        };
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return None;
        }
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        if now >= exp {
            return None;
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf > now + NBF_LEEWAY_SECONDS
        {
            return None;
        }
        let rev = lock(&self.inner.revocations);
        if let Some(jti) = claims.get("jti").and_then(Value::as_str)
            && rev.is_jti_revoked(jti)
        {
            return None;
        }
        if let Some(sub) = claims.get("sub").and_then(Value::as_str)
            && let Some(before) = rev.subject_revoked_before(sub)
        {
            match claims.get("iat").and_then(Value::as_i64) {
                Some(iat) if iat >= before => {}
                _ => return None,
            }
        }
        Some(claims)
    }

    /// Client authentication (RFC 6749 2.3.1): HTTP Basic or `client_id` +
    /// `client_secret` form fields, never both.
    fn authenticate_client(&self, headers: &HeaderMap, form: &Form) -> Result<&Client, OAuthError> {
        let basic = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
            Some(Ok(v))
                if v.len() > 6 && v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")) =>
            {
                Some(decode_basic(v.get(6..).unwrap_or("")).ok_or_else(|| {
                    OAuthError::invalid_client("malformed HTTP Basic credentials")
                })?)
            }
            _ => None,
        };
        let (id, secret, used_basic) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    "use one client authentication method, not HTTP Basic and client_secret",
                ));
            }
            (Some((id, secret)), None) => {
                if form.get("client_id").is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_client(
                        "client_id differs from the Basic credentials",
                    ));
                }
                (id, secret, true)
            }
            (None, Some(secret)) => match form.get("client_id") {
                Some(id) => (id.to_owned(), secret.to_owned(), false),
                None => {
                    return Err(OAuthError::bad_request(
                        "invalid_request",
                        "client_secret without client_id",
                    ));
                }
            },
            (None, None) => {
                return Err(OAuthError::invalid_client("client authentication required"));
            }
        };
        let client = self.inner.reg.clients.get(&id);
        let ok = match client {
            Some(c) => c.secret.matches(&secret),
            None => {
                let _ = self.inner.dummy.matches(&secret);
                false
            }
        };
        match client {
            Some(c) if ok => Ok(c),
            _ => {
                let mut e = OAuthError::invalid_client("unknown client or wrong secret");
                e.basic_challenge = used_basic || e.basic_challenge;
                Err(e)
            }
        }
    }

    fn issue(&self, client: &Client, form: &Form) -> Result<Value, OAuthError> {
        let grant = match form.get("grant_type") {
            None => {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    "grant_type is required",
                ));
            }
            Some("client_credentials") => GrantType::ClientCredentials,
            Some("password") => GrantType::Password,
            Some(other) => {
                return Err(OAuthError::bad_request(
                    "unsupported_grant_type",
                    &format!("grant_type {other:?} is not supported"),
                ));
            }
        };
        if !client.grant_types.contains(&grant) {
            return Err(OAuthError::bad_request(
                "unauthorized_client",
                "this client may not use this grant type",
            ));
        }
        let (sub, allowed, roles, extra, username) = match grant {
            GrantType::ClientCredentials => (
                client.subject.clone(),
                client.scopes.clone(),
                client.roles.clone(),
                Map::new(),
                None,
            ),
            GrantType::Password => {
                let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
                else {
                    return Err(OAuthError::bad_request(
                        "invalid_request",
                        "username and password are required",
                    ));
                };
                let user = self.inner.reg.users.get(username);
                let ok = match user {
                    Some(u) => u.password.matches(password),
                    None => {
                        let _ = self.inner.dummy.matches(password);
                        false
                    }
                };
                let Some(user) = user.filter(|_| ok) else {
                    return Err(OAuthError::bad_request(
                        "invalid_grant",
                        "wrong username or password",
                    ));
                };
                let allowed: BTreeSet<String> =
                    user.scopes.intersection(&client.scopes).cloned().collect();
                (
                    user.username.clone(),
                    allowed,
                    user.roles.clone(),
                    user.claims.clone(),
                    Some(user.username.clone()),
                )
            }
        };
        let (aud, scopes) = grant_scopes(
            &allowed,
            &client.audiences,
            form.get("scope"),
            form.get("audience"),
        )?;
        let now = self.now();
        // A token issued in the second of a logout must not be refused by it.
        let iat = {
            let rev = lock(&self.inner.revocations);
            rev.subject_revoked_before(&sub).map_or(now, |b| b.max(now))
        };
        let exp = iat + i64::try_from(client.ttl_seconds).unwrap_or(86_400);
        let jti = random_hex(16);
        let mut claims = extra;
        claims.insert("iss".into(), json!(self.issuer()));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(aud));
        claims.insert("exp".into(), json!(exp));
        claims.insert("iat".into(), json!(iat));
        claims.insert("nbf".into(), json!(iat));
        claims.insert("jti".into(), json!(jti));
        claims.insert("scope".into(), json!(scopes.join(" ")));
        claims.insert("client_id".into(), json!(client.id));
        if !roles.is_empty() {
            claims.insert("roles".into(), json!(roles));
        }
        if let Some(u) = username {
            claims.insert("username".into(), json!(u));
        }
        let access_token = match client.token_format {
            TokenFormat::Jwt => self.keys().sign(claims).map_err(OAuthError::server)?,
            TokenFormat::Opaque => {
                let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
                let mut opaque = lock(&self.inner.opaque);
                opaque.expire(now);
                opaque.insert(&token, claims, exp);
                token
            }
        };
        eprintln!(
            "auth-server: issued {:?} token to client {} sub {} aud {} scope {:?} jti {}",
            client.token_format,
            client.id,
            sub,
            aud.join(","),
            scopes.join(" "),
            jti
        );
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": exp - now,
            "scope": scopes.join(" "),
        }))
    }
}

/// Requested scopes narrowed to the allowed ones, and the audiences: the
/// requested ones (each must be allowed: `invalid_target`, RFC 8707) or by
/// default the services of the granted scopes. Scopes of services not in the
/// audience are dropped (a token for `svc-a` carries no `svc-b:` scopes).
pub fn grant_scopes(
    allowed: &BTreeSet<String>,
    allowed_aud: &BTreeSet<String>,
    scope: Option<&str>,
    audience: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), OAuthError> {
    let requested: Option<Vec<&str>> = match scope {
        Some(s) => {
            let list: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
            if let Some(bad) = list.iter().find(|t| !valid_scope_token(t)) {
                return Err(OAuthError::bad_request(
                    "invalid_scope",
                    &format!("malformed scope {bad:?}"),
                ));
            }
            Some(list)
        }
        None => None,
    };
    let candidates: BTreeSet<&str> = match &requested {
        Some(list) if !list.is_empty() => list
            .iter()
            .copied()
            .filter(|s| allowed.contains(*s))
            .collect(),
        _ => allowed.iter().map(String::as_str).collect(),
    };
    let aud: BTreeSet<String> = match audience {
        Some(a) => {
            let list: BTreeSet<String> = a
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(bad) = list.iter().find(|t| !allowed_aud.contains(*t)) {
                return Err(OAuthError::bad_request(
                    "invalid_target",
                    &format!("audience {bad:?} is not allowed for this client"),
                ));
            }
            list
        }
        None => {
            let from_scopes: BTreeSet<String> = candidates
                .iter()
                .filter_map(|s| scope_service(s))
                .filter(|s| allowed_aud.contains(*s))
                .map(str::to_owned)
                .collect();
            if from_scopes.is_empty() {
                allowed_aud.clone()
            } else {
                from_scopes
            }
        }
    };
    if aud.is_empty() {
        return Err(OAuthError::bad_request(
            "invalid_target",
            "no audience: this client has none configured",
        ));
    }
    let scopes: Vec<String> = candidates
        .into_iter()
        .filter(|s| scope_service(s).is_none_or(|svc| aud.contains(svc)))
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() && requested.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(OAuthError::bad_request(
            "invalid_scope",
            "none of the requested scopes is allowed for this client and audience",
        ));
    }
    Ok((aud.into_iter().collect(), scopes))
}

fn decode_basic(b64: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 2.3.1: both parts are form-urlencoded.
    Some((form_decode(id)?, form_decode(secret)?))
}

fn form_decode(s: &str) -> Option<String> {
    let pair = format!("x={s}");
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// An `application/x-www-form-urlencoded` body; a repeated parameter is an
/// error (RFC 6749 3.1).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut seen = HashSet::new();
        let mut pairs = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if !seen.insert(k.clone().into_owned()) {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    &format!("parameter {k:?} repeated"),
                ));
            }
            if !v.is_empty() {
                pairs.push((k.into_owned(), v.into_owned()));
            }
        }
        Ok(Form(pairs))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An RFC 6749 5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn bad_request(error: &'static str, description: &str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.to_owned(),
            basic_challenge: false,
        }
    }
    fn invalid_client(description: &str) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.to_owned(),
            basic_challenge: true,
        }
    }
    fn forbidden(description: &str) -> Self {
        OAuthError {
            status: StatusCode::FORBIDDEN,
            error: "unauthorized_client",
            description: description.to_owned(),
            basic_challenge: false,
        }
    }
    fn server(description: String) -> Self {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description,
            basic_challenge: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = json_response(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scopegate-example-auth\""),
            );
        }
        no_store(&mut r);
        r
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn no_store(r: &mut Response) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scheme = v.get(..7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| v.get(7..))
        .flatten()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

// ------------------------------------------------------------------ handlers

async fn token_endpoint(State(s): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    let result = Form::parse(&headers, &body).and_then(|form| {
        let client = s.authenticate_client(&headers, &form)?;
        s.issue(client, &form)
    });
    match result {
        Ok(v) => {
            let mut r = json_response(StatusCode::OK, &v);
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke_endpoint(State(s): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    let result = Form::parse(&headers, &body).and_then(|form| {
        let client = s.authenticate_client(&headers, &form)?;
        let Some(token) = form.get("token") else {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "token is required",
            ));
        };
        let now = s.now();
        // A JWT of ours (whatever its state) ...
        if let Some(claims) = s.keys().verify(token) {
            if claims.get("client_id").and_then(Value::as_str) != Some(client.id.as_str()) {
                return Err(OAuthError::bad_request(
                    "unauthorized_client",
                    "the token was issued to another client",
                ));
            }
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
            if let (Some(jti), true) = (claims.get("jti").and_then(Value::as_str), exp > now) {
                lock(&s.inner.revocations).revoke_jti(jti, exp);
                eprintln!("auth-server: revoked jti {jti} (client {})", client.id);
            }
            return Ok(());
        }
        // ... or an opaque one.
        let mut opaque = lock(&s.inner.opaque);
        let owner = opaque
            .get(token)
            .map(|r| r.claims.get("client_id").and_then(Value::as_str) == Some(&client.id));
        match owner {
            Some(false) => Err(OAuthError::bad_request(
                "unauthorized_client",
                "the token was issued to another client",
            )),
            Some(true) => {
                opaque.revoke(token);
                eprintln!(
                    "auth-server: revoked an opaque token (client {})",
                    client.id
                );
                Ok(())
            }
            // RFC 7009 2.2: an invalid or unknown token is not an error.
            None => Ok(()),
        }
    });
    match result {
        Ok(()) => {
            let mut r = Response::new(Body::empty());
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn logout_endpoint(State(s): State<AuthServer>, headers: HeaderMap) -> Response {
    let challenge = |desc: &str| {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_token", "error_description": desc}),
        );
        let v = format!(
            "Bearer realm=\"scopegate-example-auth\", error=\"invalid_token\", error_description=\"{desc}\""
        );
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(token) = bearer(&headers) else {
        return challenge("log out with the access token: Authorization: Bearer <token>");
    };
    let Some(claims) = s.active_claims(token) else {
        return challenge("the token is not active");
    };
    let Some(sub) = claims.get("sub").and_then(Value::as_str) else {
        return challenge("the token has no subject");
    };
    let now = s.now();
    // Tokens with iat in this second are revoked too; new ones get iat >= this.
    let revoked_before = now + 1;
    let exp = revoked_before + i64::try_from(s.inner.reg.max_ttl_seconds).unwrap_or(86_400);
    lock(&s.inner.revocations).revoke_subject(sub, revoked_before, exp);
    eprintln!("auth-server: logout of sub {sub}: tokens issued before {revoked_before} revoked");
    let mut r = json_response(
        StatusCode::OK,
        &json!({"sub": sub, "revoked_before": revoked_before, "exp": exp}),
    );
    no_store(&mut r);
    r
}

async fn revocations_endpoint(
    State(s): State<AuthServer>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let since: Option<String> = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "since")
            .map(|(_, v)| v.into_owned())
    });
    let inm: Vec<&str> = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let feed = lock(&s.inner.revocations).feed(s.now(), since.as_deref(), &inm);
    let (mut r, etag) = match feed {
        Feed::NotModified { etag } => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            (r, etag)
        }
        Feed::Document { etag, body } => (json_response(StatusCode::OK, &body), etag),
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn introspect_endpoint(
    State(s): State<AuthServer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = Form::parse(&headers, &body).and_then(|form| {
        // The caller: a client with its secret, or the bearer of an active
        // token of such a client.
        let caller_ok = match bearer(&headers) {
            Some(t) => s
                .active_claims(t)
                .and_then(|c| {
                    c.get("client_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .and_then(|id| s.inner.reg.clients.get(&id).map(|c| c.may_introspect))
                .ok_or_else(|| OAuthError::invalid_client("the bearer token is not active"))?,
            None => s.authenticate_client(&headers, &form)?.may_introspect,
        };
        if !caller_ok {
            return Err(OAuthError::forbidden(
                "this client may not introspect tokens",
            ));
        }
        let Some(token) = form.get("token") else {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "token is required",
            ));
        };
        Ok(match s.active_claims(token) {
            Some(mut claims) => {
                claims.insert("active".into(), json!(true));
                claims.insert("token_type".into(), json!("Bearer"));
                Value::Object(claims)
            }
            None => json!({"active": false}),
        })
    });
    match result {
        Ok(v) => {
            let mut r = json_response(StatusCode::OK, &v);
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn jwks_endpoint(State(s): State<AuthServer>) -> Response {
    let mut r = json_response(StatusCode::OK, &s.jwks());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    r
}

async fn discovery_endpoint(State(s): State<AuthServer>) -> Response {
    json_response(StatusCode::OK, &s.discovery())
}

async fn rotate_endpoint(State(s): State<AuthServer>, headers: HeaderMap, body: Bytes) -> Response {
    // An empty body has no content type: accept it as an empty form.
    let form = if body.is_empty() {
        Ok(Form(Vec::new()))
    } else {
        Form::parse(&headers, &body)
    };
    match form.and_then(|f| s.authenticate_client(&headers, &f).map(|c| c.admin)) {
        Ok(true) => {}
        Ok(false) => return OAuthError::forbidden("admin clients only").into_response(),
        Err(e) => return e.into_response(),
    }
    let new = match tokio::task::spawn_blocking(SigningKey::generate).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return OAuthError::server(e).into_response(),
        Err(e) => return OAuthError::server(e.to_string()).into_response(),
    };
    let (current, previous) = s.rotate(new);
    json_response(
        StatusCode::OK,
        &json!({"current_kid": current, "previous_kid": previous}),
    )
}
