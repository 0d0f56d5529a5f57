//! `/api/v1/tokens` (create, list, revoke), `/api/v1/audit` (the write log) and
//! `/api/v1/whoami`. A new token is shown once, in the answer that creates it.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_api::tokens::CreateToken;
use osmesh_store::{AuditQuery, DbError, Role, Store, TokenRecord, MAX_AUDIT_PAGE};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, ErrorBody, Routes};

#[derive(utoipa::OpenApi)]
#[openapi(paths(whoami, list, create, revoke, audit))]
pub(super) struct Doc;
use crate::auth::{issue_token, Caller};

pub(super) fn routes(r: &mut Routes) {
    r.get("/whoami", Role::Reader, whoami)
        .get("/tokens", Role::Admin, list)
        .post("/tokens", Role::Admin, create)
        .delete("/tokens/{name}", Role::Admin, revoke)
        .get("/audit", Role::Admin, audit);
}

/// A token as listed: never its secret, never its hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: &'static str,
    pub created_by: String,
    pub created_at_ms: i64,
    pub last_used_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role.as_str(),
            created_by: t.created_by,
            created_at_ms: t.created_at_ms,
            last_used_ms: t.last_used_ms,
            expires_at_ms: t.expires_at_ms,
            revoked_at_ms: t.revoked_at_ms,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Created {
    /// The token itself: shown here once, stored only as a hash.
    token: String,
    #[serde(flatten)]
    record: TokenView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct WhoAmI<'a> {
    name: &'a str,
    role: &'static str,
}

/// The calling token's name and role.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "tokens", responses((status = 200, body = WhoAmI), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn whoami(caller: Caller) -> ApiResult {
    Ok(HttpResponse::Ok().json(WhoAmI {
        name: &caller.name,
        role: caller.role.as_str(),
    }))
}

/// Every token: never its secret or hash.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<TokenView>), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody)))]
async fn list(store: web::Data<Store>) -> ApiResult {
    let tokens = store.list_tokens().map_err(db_failed)?;
    let views: Vec<TokenView> = tokens.into_iter().map(TokenView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Creates a token; the answer shows it once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, body = Created), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn create(
    service: web::Data<RegionService>,
    store: web::Data<Store>,
    caller: Caller,
    body: web::Json<CreateToken>,
) -> ApiResult {
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError(ServiceError::bad_request(
            "bad_role",
            format!("role {:?} is not reader, operator or admin", body.role),
        ))
    })?;
    let now = service.now_ms().await?;
    let expires = body.expires_in_secs.map(|secs| {
        now.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
    });
    let (secret, record) = issue_token(&store, &body.name, role, &caller.name, now, expires)
        .map_err(|e| ApiError(token_error(&body.name, e)))?;
    Ok(HttpResponse::Created().json(Created {
        token: secret.expose().to_owned(),
        record: record.into(),
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens", params(("name" = String, Path, description = "Token name")), responses((status = 200, body = TokenView), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn revoke(
    service: web::Data<RegionService>,
    store: web::Data<Store>,
    name: web::Path<String>,
) -> ApiResult {
    let now = service.now_ms().await?;
    let record = store
        .revoke_token(&name, now)
        .map_err(|e| token_error(&name, e.into()))?;
    Ok(HttpResponse::Ok().json(TokenView::from(record)))
}

fn token_error(name: &str, err: crate::auth::IssueError) -> ServiceError {
    match err {
        crate::auth::IssueError::BadName(message) => {
            ServiceError::bad_request("bad_token_name", message)
        }
        crate::auth::IssueError::Store(DbError::Conflict { .. }) => ServiceError::conflict(
            "token_exists",
            format!("a live token is named {name:?}; revoke it first or pick another name"),
        ),
        crate::auth::IssueError::Store(DbError::NotFound { .. }) => {
            ServiceError::not_found("no_such_token", format!("no live token is named {name:?}"))
        }
        crate::auth::IssueError::Store(other) => db_failed(other),
    }
}

impl From<DbError> for crate::auth::IssueError {
    fn from(e: DbError) -> Self {
        crate::auth::IssueError::Store(e)
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    object: Option<String>,
    token: Option<String>,
    before_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditPage {
    entries: Vec<osmesh_store::AuditEntry>,
    /// Pass as `before_id` for the next (older) page; absent on the last page.
    next_before_id: Option<i64>,
}

/// The audit log, newest first, `limit` rows a page (default 100, at most 500).
#[utoipa::path(get, path = "/api/v1/audit", tag = "tokens", params(AuditParams), responses((status = 200, body = AuditPage), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody)))]
async fn audit(store: web::Data<Store>, params: web::Query<AuditParams>) -> ApiResult {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError(ServiceError::bad_request(
            "bad_query",
            format!("limit must be 1 to {MAX_AUDIT_PAGE}"),
        )));
    }
    let entries = store
        .audit(&AuditQuery {
            object: params.object,
            token_name: params.token,
            before_id: params.before_id,
            limit,
        })
        .map_err(db_failed)?;
    let next_before_id = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        next_before_id,
    }))
}

/// A store failure of the token and audit tables, as the service's other store failures.
fn db_failed(err: DbError) -> ServiceError {
    ServiceError::from_store(err.into())
}
