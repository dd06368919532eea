//! Sync runs: `POST /v1/admin/connections/{id}/sync` starts one now;
//! `/v1/admin/sync-runs` is the history.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{cursor, parse_query};
use crate::ids;
use crate::startup::AppState;
use crate::store::models::SyncRunRow;
use crate::store::sync_runs::{self as queries, LeaseError};
use crate::sync::run;

#[derive(Serialize, ToSchema)]
pub struct SyncCounts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunView {
    #[schema(example = "run_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub connection_id: String,
    /// `schedule`, `api` or `cli`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` or `partial`.
    pub status: String,
    pub counts: SyncCounts,
    pub pages: i64,
    pub upstream_requests: i64,
    pub throttled_429: i64,
    pub limiter_wait_ms: i64,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl From<&SyncRunRow> for SyncRunView {
    fn from(r: &SyncRunRow) -> Self {
        SyncRunView {
            id: r.id.clone(),
            connection_id: r.connection_id.clone(),
            trigger: r.trigger_kind.clone(),
            status: r.status.clone(),
            counts: SyncCounts {
                created: r.created,
                updated: r.updated,
                unchanged: r.unchanged,
                deleted: r.deleted,
            },
            pages: r.pages,
            upstream_requests: r.upstream_requests,
            throttled_429: r.throttled_429,
            limiter_wait_ms: r.limiter_wait_ms,
            error: r.error.clone(),
            started_at: ids::rfc3339(r.started_at),
            finished_at: r.finished_at.map(ids::rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunPage {
    pub data: Vec<SyncRunView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSyncRunsQuery {
    pub connection_id: Option<String>,
    /// `running`, `succeeded`, `failed` or `partial`.
    #[validate(custom(function = "valid_status"))]
    pub status: Option<String>,
    #[validate(range(min = 1, max = 500, message = "must be from 1 to 500"))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn valid_status(s: &str) -> Result<(), validator::ValidationError> {
    if matches!(s, "running" | "succeeded" | "failed" | "partial") {
        Ok(())
    } else {
        Err(validator::ValidationError::new("status")
            .with_message("must be running, succeeded, failed or partial".into()))
    }
}

/// Start a sync of the connection now.
#[utoipa::path(post, path = "/v1/admin/connections/{id}/sync", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 202, description = "Started; the run as it begins", body = SyncRunView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such connection in this org", body = ErrorBody),
        (status = 409, description = "A sync of this connection is running", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 502, description = "The connection cannot be used as stored (its provider's client refuses its settings); the failed run is recorded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn trigger_sync(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = state
        .live
        .connection(&admin.0.org_id, &path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let c = (*c).clone();
    let ttl = run::lease_ttl(&state.settings);
    let started = match run::start(&state.store, &c, "api", &run::holder_id(), ttl, None).await {
        Ok(r) => r,
        Err(LeaseError::Held(_) | LeaseError::NotDue) => {
            return Err(ApiError::conflict(
                "a sync of this connection is already running",
            ))
        }
        Err(LeaseError::Store(e)) => return Err(e.into()),
    };
    let provider = match unicontacts_adapters::connect(run::sync_adapter_config(&c)) {
        Ok(p) => p,
        Err(e) => {
            // Recorded, so the lease is released and the history says why.
            let message = format!("the connection cannot be used: {e}");
            run::fail_before_start(&state.store, started, message.clone()).await;
            return Err(ApiError::new(
                crate::error::ErrorCode::UpstreamError,
                message,
            ));
        }
    };
    let view = SyncRunView::from(&started);
    state
        .runs
        .execute(state.store.clone(), provider, c, started, ttl, ());
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/admin/sync-runs/{}", view.id)))
        .json(view))
}

/// Sync runs of the org, newest first.
#[utoipa::path(get, path = "/v1/admin/sync-runs", tag = "admin",
    params(ListSyncRunsQuery),
    responses(
        (status = 200, description = "A page of runs", body = SyncRunPage),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_sync_runs(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListSyncRunsQuery = parse_query(req.query_string())?;
    let before = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = q.limit.unwrap_or(50) as usize;
    let org_id = admin.0.org_id;
    let rows = state
        .store
        .run(move |conn| {
            queries::list_runs(
                conn,
                &org_id,
                q.connection_id.as_deref(),
                q.status.as_deref(),
                before.as_deref(),
                limit as i64 + 1,
            )
        })
        .await?;
    let (rows, next_cursor) = cursor::page(rows, limit, |r| &r.id);
    Ok(HttpResponse::Ok().json(SyncRunPage {
        data: rows.iter().map(SyncRunView::from).collect(),
        next_cursor,
    }))
}

/// One sync run.
#[utoipa::path(get, path = "/v1/admin/sync-runs/{id}", tag = "admin",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = SyncRunView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such run in this org", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_sync_run(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, id) = (admin.0.org_id, path.into_inner());
    let row = state
        .store
        .run(move |conn| queries::find_run(conn, &org_id, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))?;
    Ok(HttpResponse::Ok().json(SyncRunView::from(&row)))
}
