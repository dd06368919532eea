//! `/v1/admin/connections`: an org's provider connections. Credentials are
//! write-only: responses show at most the last four characters of the API key.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use unicontacts_adapters::{Capabilities, ProviderKind};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::ApiError;
use crate::http::audit;
use crate::http::auth::AdminCaller;
use crate::http::extract::{parse_list_query, parse_query, read_json_checked};
use crate::http::responses::{AuthErrors, BodyErrors, InvalidQuery, NotFound};
use crate::ids;
use crate::page::{Page, PageQuery};
use crate::service::connections::{
    self as service, ConnectionDetails, CreateConnectionRequest, Health, UpdateConnectionRequest,
};
use crate::service::sync_runs::SyncCounts;
use crate::state::State;
use crate::store::connections::ConnectionSettings;
use crate::store::models::RunStatus;
use unicontacts_adapters::quota::QuotaReport;

// ---- responses ------------------------------------------------------------

/// A connection as answered: credentials redacted.
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    #[schema(example = "con_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub provider: ProviderKind,
    pub name: String,
    pub base_url: String,
    pub credentials: CredentialsView,
    pub settings: ConnectionSettings,
    /// What the provider can do: its operations and the fields each write takes.
    pub capabilities: Capabilities,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub health: Health,
    /// The last failure of a call to the provider and how many failed since the
    /// last success (`null`: none since).
    pub last_error: Option<LastErrorView>,
    /// The last finished sync run.
    pub last_sync: Option<LastSyncView>,
    /// Deletions a sync's deletion guard holds for review (`null`: none): the
    /// run holding them (`GET /v1/admin/sync-runs/{run_id}/held-deletions`),
    /// how many, and since when. The connection is `degraded` meanwhile.
    pub held_deletions: Option<HeldDeletionsView>,
    /// When the scheduler next syncs it; `null` while paused, before its
    /// credentials are verified, or when this process runs no scheduler.
    #[schema(format = DateTime)]
    pub next_sync_at: Option<String>,
    pub sync_paused: bool,
    /// When the provider last accepted the credentials (`null`: not yet; the
    /// scheduler waits for it).
    #[schema(format = DateTime)]
    pub credentials_verified_at: Option<String>,
    /// The provider's rate limit for this connection's credential as last learned
    /// (only on `GET /v1/admin/connections/{id}`; `null` until a call was made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_quota: Option<QuotaView>,
}

/// The last failure of a call to the provider.
#[derive(Serialize, ToSchema)]
pub struct LastErrorView {
    pub message: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// Failures since the last success.
    pub count: i64,
}

/// The last finished sync run, in short.
#[derive(Serialize, ToSchema)]
pub struct LastSyncView {
    pub run_id: String,
    pub status: RunStatus,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub counts: SyncCounts,
}

/// A connection's held deletions, in short.
#[derive(Serialize, ToSchema)]
pub struct HeldDeletionsView {
    #[schema(example = "run_01jd2x9v8c0000000000000000")]
    pub run_id: String,
    pub count: i64,
    #[schema(format = DateTime)]
    pub since: String,
}

/// A credential's upstream quota, shared by every connection that uses it.
#[derive(Serialize, ToSchema)]
pub struct QuotaView {
    /// Requests per window (the provider's figure once learned, else the
    /// connection's `rate_limit_per_second` per second).
    pub limit: u32,
    pub window_seconds: f64,
    /// Whether `limit` and the window come from the provider's headers.
    pub learned: bool,
    /// Requests left in the current window, as far as we know.
    pub remaining: u32,
    #[schema(format = DateTime)]
    pub reset_at: Option<String>,
    /// Set after a 429: nobody calls the provider before then.
    #[schema(format = DateTime)]
    pub paused_until: Option<String>,
    pub requests_last_hour: u64,
    /// 429s received in the last hour.
    pub throttled_last_hour: u64,
}

impl From<QuotaReport> for QuotaView {
    fn from(r: QuotaReport) -> Self {
        let at = |ms: u64| {
            (ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(ms as i64))
                .flatten()
                .map(|t| ids::rfc3339(t.naive_utc()))
        };
        QuotaView {
            limit: r.now.limit,
            window_seconds: r.now.window_ms as f64 / 1000.0,
            learned: r.now.learned,
            remaining: r.now.remaining,
            reset_at: at(r.now.reset_at_ms),
            paused_until: at(r.now.paused_until_ms),
            requests_last_hour: r.requests_last_hour,
            throttled_last_hour: r.throttled_last_hour,
        }
    }
}

/// Credentials as shown: the API key reduced to its last four characters.
#[derive(Serialize, ToSchema)]
pub struct CredentialsView {
    #[schema(example = "…a1b2")]
    pub api_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `…` and the last four characters, only when the key is long enough that they give nothing away.
fn redact(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "…".to_string()
    }
}

impl From<&ConnectionDetails> for ConnectionView {
    fn from(d: &ConnectionDetails) -> Self {
        let (c, s) = (&d.connection, &d.status);
        ConnectionView {
            id: c.id.clone(),
            provider: c.provider,
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            credentials: CredentialsView {
                api_key: redact(&c.credentials.api_key),
                phone: c.credentials.phone.clone(),
                session: c.credentials.session.clone(),
            },
            settings: c.settings.clone(),
            capabilities: *c.provider.capabilities(),
            created_at: ids::rfc3339(c.created_at),
            updated_at: ids::rfc3339(c.updated_at),
            health: d.health,
            last_error: match (s.error_count, &s.last_error_message, s.last_error_at) {
                (count, Some(message), Some(at)) if count > 0 => Some(LastErrorView {
                    message: message.clone(),
                    at: ids::rfc3339(at),
                    count,
                }),
                _ => None,
            },
            last_sync: d.last_sync.as_ref().map(|r| LastSyncView {
                run_id: r.id.clone(),
                status: r.status,
                finished_at: r.finished_at.map(ids::rfc3339),
                counts: SyncCounts::of(r),
            }),
            held_deletions: d.hold.as_ref().map(|h| HeldDeletionsView {
                run_id: h.run_id.clone(),
                count: h.held,
                since: ids::rfc3339(h.since),
            }),
            next_sync_at: d.next_sync_at.map(ids::rfc3339),
            sync_paused: s.sync_paused,
            credentials_verified_at: s.credentials_verified_at.map(ids::rfc3339),
            upstream_quota: None,
        }
    }
}

/// The filters of the connection list.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionFilters {
    /// Only connections of this provider.
    pub provider: Option<ProviderKind>,
    /// Only connections in this health.
    pub health: Option<Health>,
}

/// Whether to check the credentials with the provider.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Check the credentials with one cheap call to the provider first (default
    /// true): refused credentials are 422 and nothing is saved. `false` saves
    /// them unchecked; the scheduler then waits until a sync or a live read
    /// succeeds with them.
    pub verify: Option<bool>,
}

/// Create a connection. Its credentials are checked with the provider first
/// (unless `?verify=false`); the first scheduled sync waits until they are accepted.
#[utoipa::path(post, path = "/v1/admin/connections", tag = "admin",
    params(VerifyQuery),
    request_body = CreateConnectionRequest,
    responses(
        (status = 201, description = "Created", body = ConnectionView),
        (status = 409, description = "A connection with this name exists", body = crate::error::ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_connection(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let verify = parse_query::<VerifyQuery>(req.query_string())?
        .verify
        .unwrap_or(true);
    let body: CreateConnectionRequest = read_json_checked(&req, body).await?;
    let c = service::create(&state, &admin.0.org_id, body, verify).await?;
    audit::note(&req, [c.id.clone()], Some(c.provider));
    let view = ConnectionView::from(&service::detail(&state, c).await?);
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/connections/{}", view.id),
        ))
        .json(view))
}

/// List the org's connections, oldest first.
#[utoipa::path(get, path = "/v1/admin/connections", tag = "admin",
    params(ConnectionFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of connections", body = Page<ConnectionView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_connections(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<ConnectionFilters, 500>(req.query_string())?;
    let page = service::list(
        &state,
        &admin.0.org_id,
        filters.provider,
        filters.health,
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.map(|c| ConnectionView::from(&c))))
}

/// Get one connection.
#[utoipa::path(get, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn get_connection(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = service::get(&state, &admin.0.org_id, &path).await?;
    let quota = service::upstream_quota(&state, &c).await;
    let mut view = ConnectionView::from(&service::detail(&state, c).await?);
    view.upstream_quota = quota.map(QuotaView::from);
    Ok(HttpResponse::Ok().json(view))
}

/// Change a connection's name, base URL, credentials or settings. New
/// credentials or a new base URL are checked with the provider first (unless
/// `?verify=false`).
#[utoipa::path(patch, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id"), VerifyQuery),
    request_body = UpdateConnectionRequest,
    responses(
        (status = 200, description = "The updated connection", body = ConnectionView),
        (status = 409, description = "A connection with this name exists", body = crate::error::ErrorBody),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_connection(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // 404 before anything about the body.
    service::get(&state, &admin.0.org_id, &path).await?;
    let verify = parse_query::<VerifyQuery>(req.query_string())?
        .verify
        .unwrap_or(true);
    let body: UpdateConnectionRequest = read_json_checked(&req, body).await?;
    let c = service::update(&state, &admin.0.org_id, &path, body, verify).await?;
    audit::note(&req, [], Some(c.provider));
    Ok(HttpResponse::Ok().json(ConnectionView::from(&service::detail(&state, c).await?)))
}

/// Pause the connection's scheduled syncs (a run going on goes to its end;
/// cancel it to stop it). While paused, starting a sync through the API is 409.
#[utoipa::path(post, path = "/v1/admin/connections/{id}/pause-sync", tag = "sync",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "Paused (also when it already was)", body = ConnectionView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn pause_sync(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, admin, path, req, true).await
}

/// Resume the connection's scheduled syncs.
#[utoipa::path(post, path = "/v1/admin/connections/{id}/resume-sync", tag = "sync",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "Resumed (also when it was not paused)", body = ConnectionView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn resume_sync(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, admin, path, req, false).await
}

async fn set_paused(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let c = service::set_sync_paused(&state, &admin.0.org_id, &path, paused).await?;
    audit::note(&req, [], Some(c.provider));
    Ok(HttpResponse::Ok().json(ConnectionView::from(&service::detail(&state, c).await?)))
}

/// Delete a connection, with its contacts and runs.
#[utoipa::path(delete, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Deleted"),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn delete_connection(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::delete(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_keys_show_their_last_four() {
        assert_eq!(redact("pk_live_0123456789abcdef"), "…cdef");
        assert_eq!(redact("short"), "…");
    }
}
