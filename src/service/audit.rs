//! The audit log: every write through the API (contacts, connections, API keys,
//! sync triggers) with who made it, on what, and how it ended. Never a
//! credential or a key: the key is named by its id and prefix only.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::{ApiError, FieldErrors};
use crate::ids;
use crate::page::{Page, PageRequest};
use crate::state::State;
use crate::store::audit::{self as queries, AuditEventRow};

/// The actions recorded: each write route (method, pattern) and the action it
/// names. The one list: the audit middleware names writes by it, the filter
/// and the document take their values from it.
pub const ROUTE_ACTIONS: [(&str, &str, &str); 29] = [
    ("POST", "/v1/admin/connections", "connection.create"),
    ("PATCH", "/v1/admin/connections/{id}", "connection.update"),
    ("DELETE", "/v1/admin/connections/{id}", "connection.delete"),
    ("POST", "/v1/admin/connections/{id}/sync", "sync.trigger"),
    (
        "POST",
        "/v1/admin/connections/{id}/pause-sync",
        "sync.pause",
    ),
    (
        "POST",
        "/v1/admin/connections/{id}/resume-sync",
        "sync.resume",
    ),
    ("POST", "/v1/admin/sync-runs/{id}/cancel", "sync.cancel"),
    (
        "POST",
        "/v1/admin/sync-runs/{id}/held-deletions/apply",
        "sync.held_deletions.apply",
    ),
    (
        "POST",
        "/v1/admin/sync-runs/{id}/held-deletions/discard",
        "sync.held_deletions.discard",
    ),
    ("POST", "/v1/admin/api-keys", "api_key.create"),
    ("DELETE", "/v1/admin/api-keys/{id}", "api_key.delete"),
    ("POST", "/v1/admin/webhooks", "webhook.create"),
    ("PATCH", "/v1/admin/webhooks/{id}", "webhook.update"),
    ("DELETE", "/v1/admin/webhooks/{id}", "webhook.delete"),
    (
        "POST",
        "/v1/admin/webhooks/{id}/rotate-secret",
        "webhook.rotate_secret",
    ),
    (
        "POST",
        "/v1/admin/webhooks/{id}/deliveries/{delivery_id}/replay",
        "webhook.replay",
    ),
    ("POST", "/v1/admin/webhooks/{id}/recover", "webhook.recover"),
    ("POST", "/v1/people/{id}/merge", "person.merge"),
    ("POST", "/v1/people/{id}/split", "person.split"),
    ("POST", "/v1/people/{id}/erase", "person.erase"),
    (
        "DELETE",
        "/v1/admin/suppressions/{id}",
        "suppression.delete",
    ),
    (
        "POST",
        "/v1/admin/identity-operations/{id}/undo",
        "identity_operation.undo",
    ),
    (
        "POST",
        "/v1/admin/identity/blocked-values",
        "identity.block_value",
    ),
    (
        "DELETE",
        "/v1/admin/identity/blocked-values/{id}",
        "identity.unblock_value",
    ),
    (
        "POST",
        "/v1/connections/{connection_id}/contacts",
        "contact.create",
    ),
    ("PATCH", "/v1/contacts/{id}", "contact.update"),
    ("DELETE", "/v1/contacts/{id}", "contact.delete"),
    (
        "POST",
        "/v1/connections/{connection_id}/contacts/batch",
        "contact.batch_create",
    ),
    (
        "POST",
        "/v1/connections/{connection_id}/contacts/batch-delete",
        "contact.batch_delete",
    ),
];

/// Every action, in the order of [`ROUTE_ACTIONS`].
pub const ACTIONS: [&str; 29] = {
    let mut out = [""; 29];
    let mut i = 0;
    while i < ROUTE_ACTIONS.len() {
        out[i] = ROUTE_ACTIONS[i].2;
        i += 1;
    }
    out
};

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

/// One write through the API.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    #[schema(example = "aud_01jd2x9v8c0000000000000000")]
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// The key that made it (its id and its first characters; never the key).
    pub api_key_id: Option<String>,
    #[schema(example = "uck_3f9a")]
    pub api_key_prefix: Option<String>,
    #[schema(example = "contact.create")]
    pub action: String,
    /// The ids it named or made: connection, contact, API key, sync run.
    pub target_ids: Vec<String>,
    pub provider: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
    pub request_id: String,
}

impl From<&AuditEventRow> for AuditEventView {
    fn from(r: &AuditEventRow) -> Self {
        AuditEventView {
            id: r.id.clone(),
            at: ids::rfc3339(r.at),
            api_key_id: r.api_key_id.clone(),
            api_key_prefix: r.api_key_prefix.clone(),
            action: r.action.clone(),
            target_ids: r.targets(),
            provider: r.provider.clone(),
            status: u16::try_from(r.status).unwrap_or(0),
            request_id: r.request_id.clone(),
        }
    }
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
