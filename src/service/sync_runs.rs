//! Sync runs as the API and the operators see them: start one now (409 while
//! one is running, 502 when the stored connection cannot be used, its failed run
//! recorded), the run history, one run; and runs waited for (the demo, tests).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use unicontacts_adapters::ProviderKind;

use crate::error::ApiError;
use crate::page::{Page, PageRequest};
use crate::service::connections;
use crate::state::State;
use crate::store::connection_status as status;
use crate::store::connections::Connection;
use crate::store::models::{RunStatus, SyncRunRow, Trigger};
use crate::store::sync_runs as queries;

/// What a run did to the store's contacts.
#[derive(Serialize, ToSchema)]
pub struct SyncCounts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
}

impl SyncCounts {
    pub fn of(r: &SyncRunRow) -> Self {
        SyncCounts {
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            deleted: r.deleted,
        }
    }
}

/// The filters of the run history.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunFilters {
    pub connection_id: Option<String>,
    pub status: Option<RunStatus>,
}

/// Starts a sync of the org's connection now, in the background; the run as it
/// begins, and the connection's provider.
pub async fn trigger(
    state: &State,
    org_id: &str,
    connection_id: &str,
) -> Result<(SyncRunRow, ProviderKind), ApiError> {
    let c = connections::get_cached(state, org_id, connection_id).await?;
    let id = c.id.clone();
    let status = state
        .store
        .run(move |conn| status::find(conn, std::slice::from_ref(&id)))
        .await?;
    if status.get(&c.id).is_some_and(|s| s.sync_paused) {
        return Err(ApiError::conflict(
            "syncs of this connection are paused; resume them first \
             (POST /v1/admin/connections/{id}/resume-sync)",
        ));
    }
    let begun = state.runner.begin(&c, Trigger::Api, None).await?;
    let run = begun.run.clone();
    state.runner.spawn(begun, ());
    Ok((run, c.provider))
}

/// Syncs the connection and waits for the end (waiting first for a run already
/// going); a connection that cannot be used gives its failed run.
pub async fn run_now(
    state: &State,
    c: &Connection,
    trigger: Trigger,
) -> Result<SyncRunRow, ApiError> {
    Ok(state.runner.run_now(c, trigger).await?)
}

/// The org's runs, newest first.
pub async fn list(
    state: &State,
    org_id: &str,
    filters: RunFilters,
    page: PageRequest,
) -> Result<Page<SyncRunRow>, ApiError> {
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let before = page.after.clone();
    let rows = state
        .store
        .run(move |conn| {
            queries::list_runs(
                conn,
                &org_id,
                filters.connection_id.as_deref(),
                filters.status,
                before.as_deref(),
                fetch,
            )
        })
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id))
}

/// One of the org's runs.
pub async fn get(state: &State, org_id: &str, id: &str) -> Result<SyncRunRow, ApiError> {
    let (org_id, id) = (org_id.to_string(), id.to_string());
    state
        .store
        .run(move |conn| queries::find_run(conn, &org_id, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))
}

/// Asks the org's running run to stop after the page being written (whichever
/// process runs it); the run as it stands. A run that has ended is 409.
pub async fn cancel(state: &State, org_id: &str, id: &str) -> Result<SyncRunRow, ApiError> {
    let (org_id, id) = (org_id.to_string(), id.to_string());
    let outcome = state
        .store
        .write(move |conn| queries::request_cancel(conn, &org_id, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))?;
    match outcome {
        queries::CancelOutcome::Requested(run) => {
            tracing::info!(run_id = %run.id, "sync run cancel requested");
            Ok(run)
        }
        queries::CancelOutcome::Finished(run) => Err(ApiError::conflict(format!(
            "sync run {} has already ended ({})",
            run.id, run.status
        ))),
    }
}

/// Every connection of every org, or the one with id `only` (`unicontacts sync`).
pub async fn connections_to_sync(
    state: &State,
    only: Option<String>,
) -> Result<Vec<Connection>, ApiError> {
    let sealer = state.store.sealer()?;
    Ok(state
        .store
        .run(move |conn| {
            crate::store::connections::list_all_connections(conn, &sealer, only.as_deref())
        })
        .await?)
}
