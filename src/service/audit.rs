//! The audit log: every write through the API (contacts, connections, API keys,
//! sync triggers) with who made it, on what, and how it ended. Never a
//! credential or a key: the key is named by its id and prefix only.

use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::error::{ApiError, FieldErrors};
use crate::page::{Page, PageRequest};
use crate::state::State;
use crate::store::audit::{self as queries, AuditEventRow};

/// The actions recorded, each the route it names.
pub const ACTIONS: [&str; 11] = [
    "connection.create",
    "connection.update",
    "connection.delete",
    "sync.trigger",
    "api_key.create",
    "api_key.delete",
    "contact.create",
    "contact.update",
    "contact.delete",
    "contact.batch_create",
    "contact.batch_delete",
];

/// The filters of the audit log.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilters {
    /// One of the actions, such as `contact.create`.
    pub action: Option<String>,
    /// Events naming this id (a contact, connection, API key or sync run).
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    #[param(min_length = 1, max_length = 64)]
    pub target_id: Option<String>,
}

/// Records one event; a failure is logged, never the caller's (its write is done).
pub async fn record(state: &State, event: AuditEventRow) {
    let action = event.action.clone();
    if let Err(e) = state
        .store
        .write(move |conn| queries::insert(conn, &event))
        .await
    {
        tracing::error!(error = %e, action, "could not record an audit event");
    }
}

/// The org's events, newest first.
pub async fn list(
    state: &State,
    org_id: &str,
    filters: AuditFilters,
    page: PageRequest,
) -> Result<Page<AuditEventRow>, ApiError> {
    if let Some(a) = &filters.action {
        if !ACTIONS.contains(&a.as_str()) {
            return Err(FieldErrors::single(
                "action",
                format!("must be one of {}", ACTIONS.join(", ")),
            ));
        }
    }
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let before = page.after.clone();
    let rows = state
        .store
        .run(move |conn| {
            queries::list(
                conn,
                &org_id,
                filters.action.as_deref(),
                filters.target_id.as_deref(),
                before.as_deref(),
                fetch,
            )
        })
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id))
}
