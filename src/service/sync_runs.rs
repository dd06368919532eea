//! Sync runs as the API and the operators see them: start one now (409 while
//! one is running, 502 when the stored connection cannot be used, its failed run
//! recorded), the run history, one run; and runs waited for (the demo, tests).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use unicontacts_adapters::ProviderKind;

use crate::change::{self, Scope};
use crate::error::ApiError;
use crate::ids;
use crate::page::{Page, PageRequest};
use crate::service::connections;
use crate::state::State;
use crate::store::connection_status as status;
use crate::store::connections::Connection;
use crate::store::contacts as contact_queries;
use crate::store::deletion_holds::{self as holds, HoldRow, HoldState};
use crate::store::models::SyncRunRow;
/// A run's status and what started it, as callers of the service name them.
pub use crate::store::models::{RunStatus, Trigger};
use crate::store::sync_runs as queries;
use unicontacts_adapters::canonical::CanonicalContact;

/// What a run did to the store's contacts.
#[derive(Serialize, ToSchema)]
pub struct SyncCounts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    /// Deletions the connection's deletion guard held for review (status `held`).
    pub deletions_held: i64,
    /// Records not stored because they hold an identifier an erasure suppressed.
    pub suppressed: i64,
}

impl SyncCounts {
    pub fn of(r: &SyncRunRow) -> Self {
        SyncCounts {
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            deleted: r.deleted,
            deletions_held: r.deletions_held,
            suppressed: r.suppressed,
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

/// A run as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct SyncRunView {
    #[schema(example = "run_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub connection_id: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub counts: SyncCounts,
    pub pages: i64,
    pub upstream_requests: i64,
    pub throttled_429: i64,
    pub limiter_wait_ms: i64,
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl From<&SyncRunRow> for SyncRunView {
    fn from(r: &SyncRunRow) -> Self {
        SyncRunView {
            id: r.id.clone(),
            connection_id: r.connection_id.clone(),
            trigger: r.trigger_kind,
            status: r.status,
            counts: SyncCounts::of(r),
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

// ---- held deletions --------------------------------------------------------

/// What applying or discarding a run's held deletions did.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldOutcome {
    #[schema(example = "run_01jd2x9v8c0000000000000000")]
    pub run_id: String,
    pub connection_id: String,
    /// `applied` or `discarded`.
    #[schema(value_type = String, example = "applied")]
    pub state: HoldState,
    /// Applied: how many contacts were marked deleted. Discarded: how many
    /// were let go.
    pub count: i64,
}

/// The 409 of a run whose hold is not waiting: what happened to it first.
fn not_held(run_id: &str, hold: Option<&HoldRow>) -> ApiError {
    let Some(h) = hold else {
        return ApiError::conflict(format!("sync run {run_id} holds no deletions"))
            .with_details(serde_json::json!({"state": null}));
    };
    let at = h.resolved_at.map(crate::ids::rfc3339).unwrap_or_default();
    let by = h.resolved_by.clone().unwrap_or_default();
    let message = match h.state() {
        HoldState::Applied => format!(
            "the deletions held by sync run {run_id} were applied at {at} by API key {by} \
             ({} marked deleted)",
            h.applied.unwrap_or(0)
        ),
        HoldState::Discarded => format!(
            "the deletions held by sync run {run_id} were discarded at {at} by API key {by}"
        ),
        HoldState::Released => format!(
            "the deletions held by sync run {run_id} were released at {at} by sync run {by}, \
             which listed the contacts again"
        ),
        HoldState::Superseded => format!(
            "the deletions held by sync run {run_id} are held by the later sync run {by} \
             since {at}; apply or discard that run's"
        ),
        HoldState::Held => format!("sync run {run_id} holds deletions"),
    };
    ApiError::conflict(message).with_details(serde_json::json!({
        "state": h.state(),
        "resolved_at": h.resolved_at.map(crate::ids::rfc3339),
        "resolved_by": h.resolved_by,
    }))
}

/// The org's run and its hold (any state); another org's run is 404.
async fn run_and_hold(
    state: &State,
    org_id: &str,
    run_id: &str,
) -> Result<(SyncRunRow, Option<HoldRow>), ApiError> {
    let (org, id) = (org_id.to_string(), run_id.to_string());
    let found = state
        .store
        .run(move |conn| {
            let Some(run) = queries::find_run(conn, &org, &id)? else {
                return Ok(None);
            };
            let hold = holds::find(conn, &org, &id)?;
            Ok(Some((run, hold)))
        })
        .await?;
    found.ok_or_else(|| ApiError::not_found("sync run"))
}

/// The contacts the org's run holds from deletion, as canonical contacts, in
/// id order. A run whose hold has ended (or that never held) lists none.
pub async fn held_deletions(
    state: &State,
    org_id: &str,
    run_id: &str,
    page: PageRequest,
) -> Result<Page<CanonicalContact>, ApiError> {
    run_and_hold(state, org_id, run_id).await?;
    let (org, id, after, fetch) = (
        org_id.to_string(),
        run_id.to_string(),
        page.after.clone(),
        page.fetch(),
    );
    let rows = state
        .store
        .run(move |conn| {
            let ids = holds::held_contact_ids(conn, &id, after.as_deref(), fetch)?;
            let mut rows = contact_queries::served_by_ids(conn, &org, &ids)?;
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(rows)
        })
        .await?;
    Page::from_rows(rows, page.limit, |r| &r.id)
        .try_map(|row| contact_queries::to_canonical(&row, false).map_err(ApiError::from))
}

/// Marks the contacts the org's run still holds deleted (their events,
/// relinking and webhooks as for any deletion), in chunks under the org's lock;
/// the hold ends `applied`. A run that holds nothing, or whose hold has ended,
/// is 409 naming what happened.
pub async fn apply_held(
    state: &State,
    org_id: &str,
    run_id: &str,
    key_id: &str,
) -> Result<HoldOutcome, ApiError> {
    let (_, hold) = run_and_hold(state, org_id, run_id).await?;
    let hold = match hold {
        Some(h) if h.state() == HoldState::Held => h,
        other => return Err(not_held(run_id, other.as_ref())),
    };
    let cause = crate::store::events::Cause {
        kind: "api_write",
        run_id: Some(run_id.to_string()),
        request_id: crate::telemetry::request_id(),
        operation_id: None,
    };
    let mut applied = 0_i64;
    loop {
        let (org, id, key, cause) = (
            org_id.to_string(),
            run_id.to_string(),
            key_id.to_string(),
            cause.clone(),
        );
        let total = applied;
        let scope = Scope::new(&org, cause);
        let step = change::apply(&state.store, scope, move |change| {
            let Some(current) = holds::find(change.conn(), &org, &id)? else {
                return Ok(Step::Ended(None));
            };
            if current.state() != HoldState::Held {
                return Ok(Step::Ended(Some(current)));
            }
            let ids = holds::held_contact_ids(change.conn(), &id, None, 500)?;
            if ids.is_empty() {
                holds::resolve(
                    change.conn(),
                    &id,
                    HoldState::Applied,
                    Some(&key),
                    Some(total),
                    crate::ids::now(),
                )?;
                return Ok(Step::Done);
            }
            let marked = change.mark_live_deleted(&ids)?;
            holds::unhold(change.conn(), &id, &ids)?;
            Ok(Step::Applied(marked.len() as i64))
        })
        .await?;
        match step {
            Step::Applied(n) => applied += n,
            Step::Done => break,
            Step::Ended(h) => return Err(not_held(run_id, h.as_ref())),
        }
    }
    tracing::info!(run_id, connection_id = %hold.connection_id, applied, "held deletions applied");
    Ok(HoldOutcome {
        run_id: run_id.to_string(),
        connection_id: hold.connection_id,
        state: HoldState::Applied,
        count: applied,
    })
}

/// One transaction of an apply.
enum Step {
    Applied(i64),
    Done,
    Ended(Option<HoldRow>),
}

/// Releases the org's run's hold: nothing is deleted, and the hold ends
/// `discarded`. A later run that still lacks the contacts checks them again.
pub async fn discard_held(
    state: &State,
    org_id: &str,
    run_id: &str,
    key_id: &str,
) -> Result<HoldOutcome, ApiError> {
    let (_, hold) = run_and_hold(state, org_id, run_id).await?;
    if !hold.as_ref().is_some_and(|h| h.state() == HoldState::Held) {
        return Err(not_held(run_id, hold.as_ref()));
    }
    let (org, id, key) = (org_id.to_string(), run_id.to_string(), key_id.to_string());
    let outcome = state
        .store
        .write(move |conn| {
            crate::store::in_transaction(conn, |conn| {
                crate::store::people::lock_org(conn, &org)?;
                let Some(current) = holds::find(conn, &org, &id)? else {
                    return Ok(Err(None));
                };
                if current.state() != HoldState::Held {
                    return Ok(Err(Some(current)));
                }
                let released = holds::release_run(conn, &id)? as i64;
                holds::resolve(
                    conn,
                    &id,
                    HoldState::Discarded,
                    Some(&key),
                    None,
                    crate::ids::now(),
                )?;
                Ok(Ok((current, released)))
            })
        })
        .await?;
    let (hold, released) = outcome.map_err(|h| not_held(run_id, h.as_ref()))?;
    tracing::info!(run_id, connection_id = %hold.connection_id, released, "held deletions discarded");
    Ok(HoldOutcome {
        run_id: run_id.to_string(),
        connection_id: hold.connection_id,
        state: HoldState::Discarded,
        count: released,
    })
}

/// Every org's runs holding deletions now (`unicontacts sync-runs held`).
pub async fn all_held(state: &State) -> Result<Vec<HoldRow>, ApiError> {
    Ok(state.store.run(holds::all_current).await?)
}

/// The org a run belongs to, whatever org (the CLI acts for every org).
pub async fn org_of_run(state: &State, run_id: &str) -> Result<String, ApiError> {
    let id = run_id.to_string();
    state
        .store
        .run(move |conn| queries::org_of_run(conn, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))
}

/// A run as it stands after a page, in one line (`unicontacts sync`'s progress).
pub fn progress_line(r: &SyncRunRow) -> String {
    format!(
        "page {}: {} created, {} updated, {} unchanged",
        r.pages, r.created, r.updated, r.unchanged
    )
}
