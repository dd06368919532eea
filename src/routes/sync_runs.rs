//! Sync runs: `POST /v1/admin/connections/{id}/sync` starts one now;
//! `/v1/admin/sync-runs` is the history.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorBody};
use crate::http::audit;
use crate::http::auth::AdminCaller;
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery, NotFound};
use crate::page::{NoFilters, Page, PageQuery};
use crate::service::sync_runs::{self as service, HoldOutcome, RunFilters, SyncRunView};
use crate::state::State;
use unicontacts_adapters::canonical::CanonicalContact;

/// Start a sync of the connection now.
#[utoipa::path(post, path = "/v1/admin/connections/{id}/sync", tag = "sync",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 202, description = "Started; the run as it begins", body = SyncRunView),
        (status = 409, description = "A sync of this connection is running (the message names it)", body = ErrorBody),
        (status = 502, description = "The connection cannot be used as stored (its provider's client refuses its settings); the failed run is recorded", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn trigger_sync(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (run, provider) = service::trigger(&state, &admin.0.org_id, &path).await?;
    audit::note(&req, [run.id.clone()], Some(provider));
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/admin/sync-runs/{}", run.id)))
        .json(SyncRunView::from(&run)))
}

/// Cancel a running sync run: it stops after the page being written (whichever
/// process runs it) and is recorded `cancelled`; nothing is marked deleted.
#[utoipa::path(post, path = "/v1/admin/sync-runs/{id}/cancel", tag = "sync",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Asked to stop; the run as it stands (still `running` until its page is written)", body = SyncRunView),
        (status = 409, description = "The run has already ended", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn cancel_sync_run(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let run = service::cancel(&state, &admin.0.org_id, &path).await?;
    audit::note(&req, [run.id.clone()], None);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/admin/sync-runs/{}", run.id)))
        .json(SyncRunView::from(&run)))
}

/// Sync runs of the org, newest first.
#[utoipa::path(get, path = "/v1/admin/sync-runs", tag = "sync",
    params(RunFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of runs", body = Page<SyncRunView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_sync_runs(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<RunFilters, 500>(req.query_string())?;
    let page = service::list(&state, &admin.0.org_id, filters, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|r| SyncRunView::from(&r))))
}

/// One sync run.
#[utoipa::path(get, path = "/v1/admin/sync-runs/{id}", tag = "sync",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = SyncRunView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn get_sync_run(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = service::get(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::Ok().json(SyncRunView::from(&run)))
}

/// The contacts a run's deletion guard holds: what the run would have marked
/// deleted, as canonical contacts in id order. A run whose hold has ended lists
/// none.
#[utoipa::path(get, path = "/v1/admin/sync-runs/{id}/held-deletions", tag = "sync",
    params(("id" = String, Path, description = "Run id"), PageQuery<500>),
    responses(
        (status = 200, description = "A page of held contacts", body = Page<CanonicalContact>),
        AuthErrors, InvalidQuery, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn list_held_deletions(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = service::held_deletions(&state, &admin.0.org_id, &path, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Apply a run's held deletions: the contacts it still holds are marked deleted,
/// with their events, relinking and webhooks as for any deletion.
#[utoipa::path(post, path = "/v1/admin/sync-runs/{id}/held-deletions/apply", tag = "sync",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "Applied: how many were marked deleted", body = HoldOutcome),
        (status = 409, description = "The run holds nothing: it never held, or its hold was applied, discarded, released by a later run that listed the contacts again, or moved to a later run that still lacks them (the message and `details.state` say which)", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn apply_held_deletions(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let outcome = service::apply_held(&state, &admin.0.org_id, &path, &admin.0.key_id).await?;
    audit::note(&req, [outcome.connection_id.clone()], None);
    Ok(HttpResponse::Ok().json(outcome))
}

/// Discard a run's held deletions: the hold ends and nothing is deleted. A
/// later run that still lacks the contacts checks them again.
#[utoipa::path(post, path = "/v1/admin/sync-runs/{id}/held-deletions/discard", tag = "sync",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "Discarded: how many were let go", body = HoldOutcome),
        (status = 409, description = "The run holds nothing (the message and `details.state` say what happened first)", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn discard_held_deletions(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let outcome = service::discard_held(&state, &admin.0.org_id, &path, &admin.0.key_id).await?;
    audit::note(&req, [outcome.connection_id.clone()], None);
    Ok(HttpResponse::Ok().json(outcome))
}
