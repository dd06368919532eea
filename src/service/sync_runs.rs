//! Sync runs as the API and the operators see them: start one now (409 while
//! one is running, 502 when the stored connection cannot be used, its failed run
//! recorded), the run history, one run; and runs waited for (the demo, tests).

use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use unicontacts_adapters::ProviderKind;

use crate::error::ApiError;
use crate::page::{Page, PageRequest};
use crate::service::connections;
use crate::state::State;
use crate::store::connections::Connection;
use crate::store::models::{RunStatus, SyncRunRow, Trigger};
use crate::store::sync_runs as queries;

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
