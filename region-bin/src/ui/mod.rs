//! The web page of the mesh, served by regiond at `/`.
//!
//! The page is a few static files embedded in the binary (`region-bin/assets/`, plain ES
//! modules, no build step). It reads and writes through the same `/api/v1` routes as the CLI,
//! so roles, secret masking and the audit log apply exactly as in the API; the only
//! difference is how it authenticates: a login with an API token opens a session
//! ([`session`]) whose cookie stands for that token, and every write through a session must
//! carry the session's CSRF token in `X-CSRF-Token` (checked in `auth::authenticate`, before
//! the role). Live updates come as server-sent events from `/ui/events` ([`live`]).
//!
//! Routes here: `/` (the page, or a redirect to `/login` without a session), `/login`,
//! `POST /ui/login`, the assets under `/ui/assets/` (all public, they hold no data), and
//! `GET /ui/session`, `GET /ui/events`, `POST /ui/logout` (by [`RULES`], through the
//! authentication middleware like any API route).

pub mod live;
pub mod session;

use actix_web::body::MessageBody;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_store::{NewAuditEntry, Role, Store};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use zeroize::Zeroizing;

pub use live::Live;
pub use session::{SessionAuth, Sessions, COOKIE, CSRF_HEADER};

use crate::auth::{AuthState, Caller};

/// The page's routes behind authentication, with the role each needs.
pub const RULES: &[(Method, &str, Role)] = &[
    (Method::GET, SESSION_PATH, Role::Reader),
    (Method::GET, EVENTS_PATH, Role::Reader),
    (Method::POST, LOGOUT_PATH, Role::Reader),
];

pub const LOGIN_PAGE: &str = "/login";
pub const LOGIN_PATH: &str = "/ui/login";
pub const LOGOUT_PATH: &str = "/ui/logout";
pub const SESSION_PATH: &str = "/ui/session";
pub const EVENTS_PATH: &str = "/ui/events";
pub const ASSETS_PREFIX: &str = "/ui/assets/";

/// A keep-alive comment on the event stream this often, so a closed tab or an ended session
/// is noticed.
pub const EVENTS_KEEPALIVE: Duration = Duration::from_secs(15);

/// The longest form body a login accepts (a token is 76 bytes).
const MAX_LOGIN_BODY: usize = 1024;

/// The embedded files: name, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/views.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
];

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const LOGIN_HTML: &str = include_str!("../../assets/login.html");

/// Paths that answer without a session or token: they carry no data.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/" | LOGIN_PAGE | LOGIN_PATH) || path.starts_with(ASSETS_PREFIX)
}

/// Mounts the page's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(Sessions::default()))
        .app_data(web::Data::new(Live::default()))
        .route("/", web::get().to(index))
        .route(LOGIN_PAGE, web::get().to(login_page))
        .service(
            web::resource(LOGIN_PATH)
                .app_data(web::PayloadConfig::new(MAX_LOGIN_BODY))
                .route(web::post().to(login)),
        )
        .route(LOGOUT_PATH, web::post().to(logout))
        .route(SESSION_PATH, web::get().to(session_info))
        .route(EVENTS_PATH, web::get().to(events))
        .route("/ui/assets/{name}", web::get().to(asset));
}

/// The page's own headers: no framing, no inline script, nothing from elsewhere.
fn page<B: MessageBody + 'static>(status: StatusCode, content_type: &str, body: B) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(content_type)
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn html<B: MessageBody + 'static>(status: StatusCode, body: B) -> HttpResponse {
    page(status, "text/html; charset=utf-8", body)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The region clock's now, as the authentication middleware reads it for sessions.
async fn now_ms(service: &RegionService) -> i64 {
    service
        .now_ms()
        .await
        .unwrap_or_else(|_| crate::wall_clock_ms())
}

/// The session id of the request's cookie, if it has one.
pub fn cookie_id(req: &HttpRequest) -> Option<Zeroizing<String>> {
    req.cookie(COOKIE)
        .map(|c| Zeroizing::new(c.value().to_owned()))
        .filter(|v| !v.is_empty())
}

/// `/`: the page, or to the login without a live session.
async fn index(
    req: HttpRequest,
    service: web::Data<RegionService>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let now = now_ms(&service).await;
    match cookie_id(&req) {
        Some(id) if sessions.is_live(&id, now) => html(StatusCode::OK, INDEX_HTML),
        _ => see_other(LOGIN_PAGE),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    error: Option<String>,
}

/// The login form; `?error=…` (one of a few fixed codes) shows why the last try failed.
async fn login_page(query: web::Query<LoginQuery>) -> HttpResponse {
    login_form(
        StatusCode::OK,
        query.error.as_deref().and_then(login_message),
    )
}

fn login_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "bad_token" => "That token is not valid: unknown, revoked, expired or mistyped.",
        "expired" => "Your session has ended; log in again.",
        "throttled" => "Too many failed logins from this address; wait a minute.",
        "full" => "Too many sessions are open; try again later.",
        "cross_site" => "Log in from this page, not from another site.",
        _ => return None,
    })
}

fn login_form(status: StatusCode, error: Option<&str>) -> HttpResponse {
    // The messages are fixed strings of ours: nothing the client sent is echoed.
    let alert = error.map_or_else(String::new, |m| {
        format!("<p class=\"error\" role=\"alert\" id=\"login-error\">{m}</p>")
    });
    html(status, LOGIN_HTML.replace("<!--error-->", &alert))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

impl Drop for LoginForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// `POST /ui/login` (form `token=osm_…`): checks the token as the API does, opens a session
/// and sets its cookie, then sends the browser to `/`. A refusal goes back to the form with
/// a reason and costs the source address one failed authentication (throttled as the API's).
async fn login(
    req: HttpRequest,
    body: web::Bytes,
    service: web::Data<RegionService>,
    store: web::Data<Store>,
    auth: web::Data<AuthState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let now = now_ms(&service).await;
    let audit = |name: Option<&str>, role: Option<Role>, status: StatusCode| {
        audit_login(&store, &req, now, name, role, status)
    };
    let cross_site = is_cross_site(&req);
    if cross_site {
        audit(None, None, StatusCode::FORBIDDEN);
        return see_other(&format!("{LOGIN_PAGE}?error=cross_site"));
    }
    let token = form_token(&body);
    let record = match token.as_deref() {
        Some(token) => crate::auth::check_token(&store, token, now),
        None => Err(crate::auth::AuthFailure::Refused(
            "bad_token",
            "no token given".into(),
        )),
    };
    let record = match record {
        Ok(record) => record,
        Err(crate::auth::AuthFailure::Store(err)) => {
            let request_id = crate::api::request_id();
            tracing::error!(%request_id, error = %err, "cannot read API tokens");
            return login_form(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The region cannot check tokens now; try again."),
            );
        }
        Err(crate::auth::AuthFailure::Refused(..)) => {
            let throttled = req
                .peer_addr()
                .is_some_and(|a| auth.spend_failure(a.ip()).is_err());
            audit(None, None, StatusCode::UNAUTHORIZED);
            let code = if throttled { "throttled" } else { "bad_token" };
            return see_other(&format!("{LOGIN_PAGE}?error={code}"));
        }
    };
    let Some(hash) = token.as_deref().map(|t| crate::auth::token_hash(t)) else {
        return see_other(LOGIN_PAGE);
    };
    let new = match sessions.create(&hash, now) {
        Ok(new) => new,
        Err(_) => {
            audit(
                Some(&record.name),
                Some(record.role),
                StatusCode::SERVICE_UNAVAILABLE,
            );
            return see_other(&format!("{LOGIN_PAGE}?error=full"));
        }
    };
    audit(Some(&record.name), Some(record.role), StatusCode::SEE_OTHER);
    let mut response = see_other("/");
    let cookie = session_cookie(&req, &new.id, session::MAX_AGE_MS / 1000);
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Records a login attempt in the audit log (as the API records its writes).
fn audit_login(
    store: &Store,
    req: &HttpRequest,
    now: i64,
    name: Option<&str>,
    role: Option<Role>,
    status: StatusCode,
) {
    let client = req
        .peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string());
    let entry = NewAuditEntry {
        at_ms: now,
        token_name: name,
        role: role.map(|r| r.as_str()),
        method: "POST",
        route: LOGIN_PATH,
        object: LOGIN_PATH,
        status: status.as_u16(),
        client: &client,
    };
    if let Err(err) = store.append_audit(&entry) {
        tracing::error!(error = %err, "cannot write the audit log");
    }
}

/// Whether the browser says the request comes from another site. A login form posted from
/// another site (or a sibling subdomain) would log the victim in as the attacker: browsers
/// say where a request comes from in `Sec-Fetch-Site`; our own form posts `same-origin`.
fn is_cross_site(req: &HttpRequest) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "same-origin" && v != "none")
}

/// The token of an `application/x-www-form-urlencoded` login body.
fn form_token(body: &[u8]) -> Option<Zeroizing<String>> {
    let form: LoginForm = web::Query::<LoginForm>::from_query(std::str::from_utf8(body).ok()?)
        .ok()?
        .into_inner();
    Some(Zeroizing::new(form.token.trim().to_owned()))
}

/// The `Set-Cookie` value for session `id`: `HttpOnly`, `SameSite=Strict`, `Path=/`, and
/// `Secure` when the API is served over HTTPS, directly or (as `X-Forwarded-Proto` or
/// `Forwarded` say) behind a proxy that terminates TLS. A client claiming HTTPS over plain
/// HTTP only makes its own cookie stricter.
fn session_cookie(req: &HttpRequest, id: &str, max_age_s: i64) -> String {
    let https = req.app_config().secure() || req.connection_info().scheme() == "https";
    let secure = if https { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// `POST /ui/logout`: ends the session and clears its cookie.
async fn logout(req: HttpRequest, sessions: web::Data<Sessions>) -> HttpResponse {
    if let Some(id) = cookie_id(&req) {
        sessions.remove(&id);
    }
    let mut response = HttpResponse::NoContent().finish();
    if let Ok(value) = header::HeaderValue::from_str(&session_cookie(&req, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /ui/session`'s answer: who is logged in, and the CSRF token for writes.
#[derive(Serialize)]
struct SessionBody<'a> {
    name: &'a str,
    role: &'a str,
    /// Only for a session (a bearer token needs none).
    csrf: Option<&'a str>,
    expires_at_ms: Option<i64>,
    version: &'a str,
}

async fn session_info(req: HttpRequest, caller: Caller) -> HttpResponse {
    let auth = req.extensions().get::<SessionAuth>().cloned();
    let body = SessionBody {
        name: &caller.name,
        role: caller.role.as_str(),
        csrf: auth.as_ref().map(|a| a.csrf.as_str()),
        expires_at_ms: auth.as_ref().map(|a| a.expires_at_ms),
        version: env!("CARGO_PKG_VERSION"),
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET /ui/events`: a server-sent event `mesh` with the view's version at once and at every
/// change, keep-alive comments between; the stream ends when its session does.
async fn events(
    req: HttpRequest,
    _caller: Caller,
    service: web::Data<RegionService>,
    live: web::Data<Live>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let rx = live.into_inner().subscribe(&service);
    let session = cookie_id(&req).filter(|_| req.extensions().get::<SessionAuth>().is_some());
    let state = EventState {
        service: service.into_inner(),
        rx,
        first: true,
        session,
        sessions,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.first {
            st.first = false;
            let version = *st.rx.borrow_and_update();
            return Some((Ok::<_, Infallible>(mesh_event(version)), st));
        }
        tokio::select! {
            biased;
            changed = st.rx.changed() => match changed {
                Ok(()) => {
                    let version = *st.rx.borrow_and_update();
                    Some((Ok(mesh_event(version)), st))
                }
                Err(_) => None,
            },
            () = tokio::time::sleep(EVENTS_KEEPALIVE) => {
                let now = now_ms(&st.service).await;
                let ended = st.session.as_ref().is_some_and(|id| !st.sessions.is_live(id, now));
                if ended {
                    // Tell the page, then end the stream (its receiver now has no sender).
                    st.session = None;
                    st.rx = watch_closed();
                    return Some((Ok(web::Bytes::from_static(b"event: ended\ndata: {}\n\n")), st));
                }
                Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), st))
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        // Compression would hold events back in its buffer.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}

struct EventState {
    service: std::sync::Arc<RegionService>,
    rx: tokio::sync::watch::Receiver<u64>,
    first: bool,
    session: Option<Zeroizing<String>>,
    sessions: web::Data<Sessions>,
}

fn mesh_event(version: u64) -> web::Bytes {
    web::Bytes::from(format!("event: mesh\ndata: {{\"version\":{version}}}\n\n"))
}

/// A receiver whose sender is gone: the stream's next poll ends it.
fn watch_closed() -> tokio::sync::watch::Receiver<u64> {
    tokio::sync::watch::channel(0).1
}

/// `/ui/assets/{name}`: one of the embedded files.
async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => page(StatusCode::OK, content_type, *body),
        None => HttpResponse::NotFound().json(serde_json::json!({
            "code": "no_such_asset",
            "message": "no such file",
        })),
    }
}
