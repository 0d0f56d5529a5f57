//! Who may call the HTTP API: bearer tokens, roles, the public paths, throttled failures, and
//! the audit row every write leaves.
//!
//! One middleware ([`authenticate`]) wraps the whole app. For every request it:
//! 1. lets the [`PUBLIC_PATHS`] through (and `/metrics` when configured open);
//! 2. reads `Authorization: Bearer osm_…`, refusing a malformed token (its checksum catches
//!    typos without a database read) and an unknown, revoked or expired one: 401 JSON; a
//!    source address with too many such failures gets 429 with `Retry-After` instead.
//!    Without that header, a browser session's cookie (`ui::session`) stands for the token it
//!    logged in with (checked the same way), and a write through it must carry the session's
//!    `X-CSRF-Token`: 403 JSON `csrf_failed` otherwise;
//! 3. checks the caller's role against the route's rule (`api::access_rules`, the one table
//!    the routes are registered from): 403 JSON;
//! 4. after the handler, appends an audit row for every write (any method but GET, HEAD and
//!    OPTIONS), accepted or refused at any of the steps above.
//!
//! Tokens are looked up on every request, so a revocation takes effect on the next one.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use osmesh_actors::region::service::RegionService;
use osmesh_store::{DbError, NewAuditEntry, Role, Store, TokenRecord};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use zeroize::Zeroizing;

/// Paths anyone may call without a token: liveness and readiness probes. This is the one
/// list; `/metrics` joins it only when [`AuthSettings::open_metrics`] is set.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The metrics path, public only when so configured.
pub const METRICS_PATH: &str = "/metrics";

/// Routes mounted outside `api::Routes` (health and metrics have their own modules), with
/// the role they need when they are not public. Any other pattern outside the table needs
/// `admin`.
pub const OUTSIDE_RULES: &[(Method, &str, Role)] = &[(Method::GET, METRICS_PATH, Role::Reader)];

/// Every token starts with this, so secret scanners and people recognise a leaked one.
pub const TOKEN_PREFIX: &str = "osm_";

/// Random bytes in a token: 256 bits.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Checksum bytes after the random part (hex), so a typo is refused without a database read.
const TOKEN_CHECKSUM_BYTES: usize = 4;

/// The length of a well-formed token string.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 2 * (TOKEN_RANDOM_BYTES + TOKEN_CHECKSUM_BYTES);

/// A token's `last_used_ms` is rewritten at most this often, so reads do not each write.
pub const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Failed authentications a source address may make in a burst before it is answered 429.
/// A token has 256 random bits, so this guards the database and the log, not the tokens.
pub const FAILED_AUTH_BURST: u32 = 30;

/// An address earns back one failed authentication this often once its burst is spent
/// (five a second).
pub const FAILED_AUTH_REPLENISH: Duration = Duration::from_millis(200);

/// Above this many tracked addresses, idle entries are dropped from the limiter.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// A fresh token, in full: shown once, at creation, then only its hash exists. `Debug` masks
/// it and it is zeroed on drop.
pub struct NewTokenSecret(Zeroizing<String>);

impl NewTokenSecret {
    /// 256 bits from the OS's generator, then a checksum.
    pub fn generate() -> NewTokenSecret {
        let mut random = Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut *random);
        let body = Zeroizing::new(hex::encode(*random));
        let checksum = checksum(&body);
        NewTokenSecret(Zeroizing::new(format!("{TOKEN_PREFIX}{}{checksum}", *body)))
    }

    /// The token, to show its holder once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> String {
        token_hash(&self.0)
    }
}

impl std::fmt::Debug for NewTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewTokenSecret(***)")
    }
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(format!("{TOKEN_PREFIX}{body}").as_bytes());
    hex::encode(&digest[..TOKEN_CHECKSUM_BYTES])
}

/// Whether `token` has the shape of one of ours: prefix, lower-case hex, length and checksum.
pub fn is_well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    if token.len() != TOKEN_LEN || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let (body, sum) = rest.split_at(2 * TOKEN_RANDOM_BYTES);
    checksum(body) == sum
}

/// The hash a token is stored and looked up by: lower-case hex SHA-256.
///
/// A fast hash is right here, unlike for passwords. Slow hashes (bcrypt, Argon2) exist to make
/// guessing a low-entropy secret from its hash expensive; a token is 256 bits from the OS's
/// generator, so no guess list exists and 2^256 SHA-256 evaluations are out of reach whatever
/// one costs. A fast hash also keeps per-request authentication cheap, and makes the lookup a
/// plain indexed equality (no per-user salt to fetch first). Comparing hashes rather than
/// tokens also means the database's comparison timing reveals nothing about a valid token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The longest token name accepted.
pub const MAX_TOKEN_NAME_LEN: usize = 64;

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    BadName(String),
    #[error(transparent)]
    Store(DbError),
}

/// Creates a token named `name` with `role`: its secret (to show once) and its record. The
/// name is 1 to 64 letters, digits, '.', '_' or '-'; one live token per name.
pub fn issue_token(
    store: &Store,
    name: &str,
    role: Role,
    created_by: &str,
    now_ms: i64,
    expires_at_ms: Option<i64>,
) -> Result<(NewTokenSecret, TokenRecord), IssueError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOKEN_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(IssueError::BadName(format!(
            "token name {name:?} must be 1 to {MAX_TOKEN_NAME_LEN} letters, digits, '.', '_' or '-'"
        )));
    }
    let secret = NewTokenSecret::generate();
    let record = store
        .create_token(&osmesh_store::NewToken {
            name,
            role,
            token_hash: &secret.hash(),
            created_by,
            created_at_ms: now_ms,
            expires_at_ms,
        })
        .map_err(IssueError::Store)?;
    Ok((secret, record))
}

/// Who is calling: the authenticated token's name and role, set by [`authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Caller, actix_web::Error>>;

    /// Fails closed: a handler that asks for the caller behind an app without the middleware
    /// answers 401, never serves an anonymous caller.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            actix_web::error::InternalError::from_response(
                "no authenticated caller",
                refusal(
                    StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "this route needs Authorization: Bearer <token>",
                ),
            )
            .into()
        }))
    }
}

/// The role a route needs, as registered with it (see `api::Routes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    pub method: Method,
    /// The full pattern, `/api/v1/nodes/{id}`.
    pub path: String,
    pub role: Role,
}

/// How the API authenticates.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// `/metrics` answers without a token.
    pub open_metrics: bool,
    pub failed_auth_burst: NonZeroU32,
    pub failed_auth_replenish: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            open_metrics: false,
            failed_auth_burst: NonZeroU32::new(FAILED_AUTH_BURST).unwrap_or(NonZeroU32::MIN),
            failed_auth_replenish: FAILED_AUTH_REPLENISH,
        }
    }
}

/// Counts of refused authentications since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthCounts {
    /// Answered 401.
    pub failed: u64,
    /// Answered 429.
    pub throttled: u64,
    /// Answered 403.
    pub forbidden: u64,
}

/// The middleware's state, shared by every HTTP worker.
pub struct AuthState {
    settings: AuthSettings,
    rules: Vec<AccessRule>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    failed: AtomicU64,
    throttled: AtomicU64,
    forbidden: AtomicU64,
}

impl AuthState {
    pub fn new(settings: AuthSettings) -> AuthState {
        let quota = Quota::with_period(settings.failed_auth_replenish)
            // Only a zero period has no quota; treat it as one a second.
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(settings.failed_auth_burst);
        AuthState {
            rules: crate::api::access_rules()
                .into_iter()
                .chain(
                    OUTSIDE_RULES
                        .iter()
                        .chain(crate::ui::RULES)
                        .map(|(method, path, role)| AccessRule {
                            method: method.clone(),
                            path: (*path).to_owned(),
                            role: *role,
                        }),
                )
                .collect(),
            limiter: RateLimiter::keyed(quota),
            settings,
            failed: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            forbidden: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> AuthCounts {
        AuthCounts {
            failed: self.failed.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            forbidden: self.forbidden.load(Ordering::Relaxed),
        }
    }

    fn is_public(&self, path: &str) -> bool {
        PUBLIC_PATHS.contains(&path)
            || (self.settings.open_metrics && path == METRICS_PATH)
            || crate::ui::is_public(path)
    }

    /// The role `method` on `pattern` needs. A pattern registered with rules for other methods
    /// only needs a token (the answer is a 405); a pattern registered outside the rule table
    /// needs `admin`, so a route added without a rule fails closed.
    fn required_role(&self, method: &Method, pattern: Option<&str>) -> Option<Role> {
        let pattern = pattern?;
        let mut known = false;
        for rule in self.rules.iter().filter(|r| r.path == pattern) {
            if rule.method == *method {
                return Some(rule.role);
            }
            known = true;
        }
        (!known).then_some(Role::Admin)
    }

    /// Spends one failure of `source`'s allowance; `Err(retry after, whole seconds)` when
    /// none is left.
    pub(crate) fn spend_failure(&self, source: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > MAX_TRACKED_SOURCES {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&source_key(source))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }
}

/// IPv6 sources are limited per /64, the block one host is usually given.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

#[derive(Serialize)]
struct RefusalBody<'a> {
    code: &'a str,
    message: &'a str,
}

fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"osmesh\""));
    }
    response.json(RefusalBody { code, message })
}

/// Why a request did not authenticate.
pub(crate) enum AuthFailure {
    Refused(&'static str, String),
    Store(DbError),
}

/// The token of the `Authorization` header, checked against the store at `now_ms`.
fn authenticate_token(
    req: &ServiceRequest,
    store: &Store,
    now_ms: i64,
) -> Result<TokenRecord, AuthFailure> {
    let refused = |code, message: &str| AuthFailure::Refused(code, message.to_owned());
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(refused(
            "missing_token",
            "this route needs Authorization: Bearer <token>",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            refused(
                "bad_token",
                "the Authorization header must be 'Bearer <token>'",
            )
        })?;
    check_token(store, token, now_ms)
}

/// `token` checked against the store at `now_ms`: well formed, known, not revoked, not
/// expired (its last use recorded).
pub(crate) fn check_token(
    store: &Store,
    token: &str,
    now_ms: i64,
) -> Result<TokenRecord, AuthFailure> {
    if !is_well_formed(token) {
        return Err(AuthFailure::Refused(
            "bad_token",
            "the token is malformed (an osmesh token is osm_ and 72 hex digits)".into(),
        ));
    }
    check_token_hash(store, &token_hash(token), now_ms)
}

/// The token whose hash is `hash` (a session's), checked as [`check_token`] does.
pub(crate) fn check_token_hash(
    store: &Store,
    hash: &str,
    now_ms: i64,
) -> Result<TokenRecord, AuthFailure> {
    let refused = |code, message: &str| AuthFailure::Refused(code, message.to_owned());
    let record = store
        .token_by_hash(hash)
        .map_err(AuthFailure::Store)?
        .ok_or_else(|| refused("bad_token", "the token is not known"))?;
    if record.revoked_at_ms.is_some() {
        return Err(refused("bad_token", "the token was revoked"));
    }
    if !record.is_live_at(now_ms) {
        return Err(refused("bad_token", "the token has expired"));
    }
    if !matches!(record.last_used_ms, Some(at) if now_ms - at < LAST_USED_GRANULARITY_MS) {
        store
            .touch_token(record.id, now_ms)
            .map_err(AuthFailure::Store)?;
    }
    Ok(record)
}

/// The middleware; see the module's documentation.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (Some(state), Some(service), Some(store)) = (
        req.app_data::<web::Data<AuthState>>().cloned(),
        req.app_data::<web::Data<RegionService>>().cloned(),
        req.app_data::<web::Data<Store>>().cloned(),
    ) else {
        tracing::error!("the API is mounted without its authentication state; refusing");
        let response = refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        );
        return Ok(req.into_response(response));
    };
    if state.is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let source = req.peer_addr().map(|a| a.ip());
    let now_ms = service
        .now_ms()
        .await
        .unwrap_or_else(|_| crate::wall_clock_ms());
    // A browser's session cookie stands for its token when no Authorization header is sent;
    // a write through a session must carry the session's CSRF token (checked below).
    let session = session_of(&req, now_ms);
    let authenticated = match &session {
        None => authenticate_token(&req, &store, now_ms),
        Some(Ok(auth)) => check_token_hash(&store, &auth.token_hash, now_ms),
        Some(Err(failure)) => Err(AuthFailure::Refused(failure.0, failure.1.into())),
    };
    let caller = match authenticated {
        Ok(record) => Caller {
            name: record.name,
            role: record.role,
        },
        Err(failure) => {
            return Ok(match refuse_failure(&state, source, failure) {
                Refusal::Audited(response) => finish(req, response, None, &store, now_ms),
                // A flood of refusals is counted, not written row by row to the audit log.
                Refusal::Counted(response) => req.into_response(response),
            });
        }
    };
    if let Some(Ok(auth)) = &session {
        req.extensions_mut().insert(auth.clone());
    }
    if let Some(response) = refuse_access(&state, &req, &caller, session.as_ref()) {
        return Ok(finish(req, response, Some(&caller), &store, now_ms));
    }
    req.extensions_mut().insert(caller.clone());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let response = next.call(req).await?.map_into_boxed_body();
    if is_write(&method) {
        let route = response.request().match_pattern().unwrap_or(path.clone());
        let client = client_of(response.request());
        audit(
            &store,
            &AuditFacts {
                caller: Some(&caller),
                method: &method,
                route: &route,
                object: &path,
                status: response.status(),
                client: &client,
            },
            now_ms,
        );
    }
    Ok(response)
}

/// How a failed authentication is answered: audited (a refusal, or the store down), or only
/// counted (throttled: a flood of refusals is not written row by row to the audit log).
enum Refusal {
    Audited(HttpResponse),
    Counted(HttpResponse),
}

/// The answer to a failed authentication: 503 when the tokens cannot be read, 429 with
/// `Retry-After` once `source` has spent its failures, else 401.
fn refuse_failure(state: &AuthState, source: Option<IpAddr>, failure: AuthFailure) -> Refusal {
    match failure {
        AuthFailure::Store(err) => {
            // As every 5xx: a generic answer and a request id, the driver's text to the log.
            let request_id = crate::api::request_id();
            tracing::error!(%request_id, error = %err, "cannot read API tokens");
            Refusal::Audited(HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "code": "database_unavailable",
                "message": "the region cannot check tokens now; try again",
                "request_id": request_id,
            })))
        }
        AuthFailure::Refused(code, message) => {
            match source.and_then(|ip| state.spend_failure(ip).err()) {
                Some(retry_after) => {
                    state.throttled.fetch_add(1, Ordering::Relaxed);
                    let mut response = refusal(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_failed_authentications",
                        "too many failed authentications from this address; wait and retry",
                    );
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        header::HeaderValue::from(retry_after.max(1)),
                    );
                    Refusal::Counted(response)
                }
                None => {
                    state.failed.fetch_add(1, Ordering::Relaxed);
                    Refusal::Audited(refusal(StatusCode::UNAUTHORIZED, code, &message))
                }
            }
        }
    }
}

/// A 403 for an authenticated caller who may not make this request: a write through a browser
/// session without the session's CSRF token, or a role below the route's.
fn refuse_access(
    state: &AuthState,
    req: &ServiceRequest,
    caller: &Caller,
    session: Option<&Result<crate::ui::SessionAuth, (&'static str, &'static str)>>,
) -> Option<HttpResponse> {
    if let Some(Ok(auth)) = session {
        if is_write(req.method()) && !csrf_matches(req, auth) {
            state.forbidden.fetch_add(1, Ordering::Relaxed);
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a write through a browser session needs the session's X-CSRF-Token header",
            ));
        }
    }
    let pattern = req.match_pattern();
    let needed = state.required_role(req.method(), pattern.as_deref())?;
    if caller.role >= needed {
        return None;
    }
    state.forbidden.fetch_add(1, Ordering::Relaxed);
    let message = format!(
        "token {:?} has role {}; {} {} needs {needed}",
        caller.name,
        caller.role,
        req.method(),
        pattern.as_deref().unwrap_or(req.path())
    );
    Some(refusal(StatusCode::FORBIDDEN, "forbidden", &message))
}

/// Answers a refusal, auditing it when it refused a write.
fn finish(
    req: ServiceRequest,
    response: HttpResponse,
    caller: Option<&Caller>,
    store: &Store,
    now_ms: i64,
) -> ServiceResponse<BoxBody> {
    if is_write(req.method()) {
        let route = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
        audit(
            store,
            &AuditFacts {
                caller,
                method: req.method(),
                route: &route,
                object: req.path(),
                status: response.status(),
                client: &client_of(req.request()),
            },
            now_ms,
        );
    }
    req.into_response(response)
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn client_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
}

struct AuditFacts<'a> {
    caller: Option<&'a Caller>,
    method: &'a Method,
    route: &'a str,
    object: &'a str,
    status: StatusCode,
    client: &'a str,
}

/// Appends the audit row. A failure to record is logged loudly; the answer already given
/// stands (the write, if any, has happened).
fn audit(store: &Store, facts: &AuditFacts, now_ms: i64) {
    let entry = NewAuditEntry {
        at_ms: now_ms,
        token_name: facts.caller.map(|c| c.name.as_str()),
        role: facts.caller.map(|c| c.role.as_str()),
        method: facts.method.as_str(),
        route: facts.route,
        object: facts.object,
        status: facts.status.as_u16(),
        client: facts.client,
    };
    if let Err(err) = store.append_audit(&entry) {
        tracing::error!(error = %err, method = %facts.method, object = facts.object, "cannot write the audit log");
    }
}

/// The request's browser session: `None` when it sends an `Authorization` header or no
/// session cookie; an error (code, message) when the cookie names no live session.
fn session_of(
    req: &ServiceRequest,
    now_ms: i64,
) -> Option<Result<crate::ui::SessionAuth, (&'static str, &'static str)>> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return None;
    }
    let id = crate::ui::cookie_id(req.request())?;
    let sessions = req.app_data::<web::Data<crate::ui::Sessions>>()?;
    Some(sessions.touch(&id, now_ms).ok_or((
        "session_ended",
        "the browser session has ended or is unknown; log in again",
    )))
}

/// Whether the request carries `auth`'s CSRF token in `X-CSRF-Token`.
fn csrf_matches(req: &ServiceRequest, auth: &crate::ui::SessionAuth) -> bool {
    req.headers()
        .get(crate::ui::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| crate::ui::session::constant_time_eq(sent, &auth.csrf))
}
