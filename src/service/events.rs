//! The change feed: the org's events in order, from any point, filtered by type
//! and connection; pruned past `event_retention_days`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::{ApiError, FieldErrors};
use crate::ids;
use crate::page::{Page, PageRequest};
use crate::state::State;
use crate::store::event_type::EventType as EventKind;
use crate::store::events::{self as queries, EventRow};

/// Every event type, as the feed and webhooks name them.
pub const TYPES: [&str; EventKind::ALL.len()] = {
    let mut names = [""; EventKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = EventKind::ALL[i].as_str();
        i += 1;
    }
    names
};

/// An event type, as the document lists them: one of `TYPES`.
pub struct EventType;

impl utoipa::PartialSchema for EventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(TYPES))
            .into()
    }
}

impl ToSchema for EventType {}

/// The feed's `limit` and `cursor` (an event id), as the document shows them.
pub struct EventPage;

impl IntoParams for EventPage {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        crate::page::params(500, EVENT_ID)
    }
}

/// `data` of an event: ids, never the contact itself (read it by `contact_id`).
/// Which fields are there depends on the type.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventData {
    /// `contact.*`.
    contact_id: Option<String>,
    /// `contact.*` (when linked) and `person.*`.
    person_id: Option<String>,
    /// `contact.*` and `sync_run.*`.
    connection_id: Option<String>,
    #[schema(value_type = Option<unicontacts_adapters::ProviderKind>)]
    provider: Option<String>,
    remote_id: Option<String>,
    /// `contact.updated`: the canonical fields that changed.
    changed_fields: Option<Vec<String>>,
    /// `person.merged`: the people that became this one.
    merged_person_ids: Option<Vec<String>>,
    /// `person.split`: the people this one became.
    into_person_ids: Option<Vec<String>>,
    /// What made the change: `sync`, `live_read`, `api_write` or `relink`.
    cause: Option<String>,
    /// `sync` causes, `sync_run.*`, and deletions a run held that an
    /// operator applied (cause `api_write`).
    run_id: Option<String>,
    /// `live_read` and `api_write` causes.
    request_id: Option<String>,
    /// `sync_run.finished`.
    #[schema(value_type = Option<crate::store::models::Trigger>)]
    trigger: Option<String>,
    /// `sync_run.finished`.
    #[schema(value_type = Option<crate::store::models::RunStatus>)]
    status: Option<String>,
    /// `sync_run.finished`: `created`, `updated`, `unchanged`, `deleted`,
    /// `deletions_held`.
    counts: Option<std::collections::BTreeMap<String, i64>>,
    /// `sync_run.finished` when it did not succeed; `sync_run.held`: why it
    /// holds deletions.
    error: Option<String>,
    /// `sync_run.held`: how many deletions the run holds for review.
    count: Option<i64>,
    /// `sync_run.held`: since when the connection's deletions are held.
    #[schema(format = DateTime)]
    since: Option<String>,
}

/// What an event id looks like.
pub const EVENT_ID: &str = "^evt_[0-9]{16}$";

/// The feed's filters.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilters {
    /// Start after this event id (`evt_…`); with `cursor` the cursor wins.
    #[param(pattern = "^evt_[0-9]{16}$")]
    #[validate(custom(function = "valid_event_id"))]
    pub after: Option<String>,
    /// Comma-separated event types (default all).
    #[validate(custom(function = "valid_types"))]
    pub types: Option<String>,
    /// Only events of this connection.
    pub connection_id: Option<String>,
}

/// One event of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    #[schema(example = "evt_0000000000000042")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "contact.updated")]
    pub event_type: String,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub org_id: String,
    /// Thin: ids (`contact_id`, `person_id`, `connection_id`, `provider`,
    /// `remote_id`), `changed_fields` for `contact.updated`, and the `cause`
    /// (`sync` with `run_id`, `live_read` or `api_write` with `request_id`).
    #[schema(value_type = EventData)]
    pub data: Value,
}

impl Event {
    pub fn of(row: &EventRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: queries::event_id(row.seq),
            event_type: row.event_type.clone(),
            occurred_at: ids::rfc3339(row.occurred_at),
            org_id: row.org_id.clone(),
            data: serde_json::from_str(&row.data).map_err(|e| {
                ApiError::internal(crate::store::StoreError::Corrupt(format!(
                    "event {}: {e}",
                    row.seq
                )))
            })?,
        })
    }
}

fn valid_event_id(id: &str) -> Result<(), validator::ValidationError> {
    match queries::parse_event_id(id) {
        Some(_) => Ok(()),
        None => Err(validator::ValidationError::new("event_id")
            .with_message("is not an event id (`evt_…`)".into())),
    }
}

fn valid_types(list: &str) -> Result<(), validator::ValidationError> {
    parse_types(Some(list)).map(|_| ()).map_err(|e| {
        let message = e.messages().join("; ");
        validator::ValidationError::new("types").with_message(message.into())
    })
}

/// The types `list` names, checked.
pub fn parse_types(list: Option<&str>) -> Result<Vec<String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut out = Vec::new();
    for t in list
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if TYPES.contains(&t) {
            out.push(t.to_string());
        } else {
            errors.add(
                "types",
                format!("`{t}` is not an event type (one of {})", TYPES.join(", ")),
            );
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The org's events after the cursor (or `after`), in order.
pub async fn list(
    state: &State,
    org_id: &str,
    filters: EventFilters,
    page: PageRequest,
) -> Result<Page<Event>, ApiError> {
    let mut errors = FieldErrors::new();
    let types = parse_types(filters.types.as_deref()).unwrap_or_else(|e| {
        errors.merge(e);
        Vec::new()
    });
    let start = page.after.as_deref().or(filters.after.as_deref());
    let after = match start {
        None => 0,
        Some(id) => queries::parse_event_id(id).unwrap_or_else(|| {
            errors.add("after", "is not an event id (`evt_…`)");
            0
        }),
    };
    errors.into_result()?;
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let connection_id = filters.connection_id;
    let rows = state
        .store
        .run(move |conn| {
            queries::list(
                conn,
                &org_id,
                after,
                &types,
                connection_id.as_deref(),
                fetch,
            )
        })
        .await?;
    let events = rows.iter().map(Event::of).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(events, page.limit, |e| &e.id))
}
