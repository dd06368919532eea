//! Webhook endpoints: where an org's events are POSTed, signed as Standard
//! Webhooks sign them. The signing secret is shown on creation and on rotation
//! only; it is stored sealed (like provider credentials), and after a rotation
//! the previous secret keeps signing beside the new one for 24 hours.
//!
//! Delivery itself is the `delivery` module's; here are the endpoints, their
//! delivery log, a replay of one delivery and a recovery (re-send since a time).

use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::delivery::target::{check_url, TargetPolicy};
use crate::delivery::{self, sign, Secrets};
use crate::error::{ApiError, FieldErrors};
use crate::ids;
use crate::page::{Page, PageRequest};
use crate::service::events::{EventType, TYPES};
use crate::state::State;
use crate::store::events as event_queries;
use crate::store::models::DeliveryStatus;
use crate::store::webhooks::{self as queries, DeliveryRow, EndpointRow};
use crate::store::StoreError;

/// How long a rotated-out secret keeps signing.
pub const SECRET_OVERLAP_HOURS: i64 = 24;
/// Endpoints an org may have.
pub const MAX_ENDPOINTS: i64 = 50;
const MAX_URL_LEN: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: `https` (plain `http` only when the server's
    /// `webhook_allow_http` is set), a public address.
    #[schema(example = "https://example.com/hooks/unicontacts", max_length = 2048)]
    pub url: String,
    /// The event types it receives (default: every type, also types added later).
    #[schema(value_type = Option<Vec<EventType>>, min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Up to 500 characters.
    pub description: Option<String>,
}

/// Changes to an endpoint; absent fields stay. Enabling a disabled endpoint
/// clears its failure and resumes delivery where it stopped.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// An empty list: every type.
    #[schema(value_type = Option<Vec<EventType>>)]
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// An empty string removes it.
    pub description: Option<String>,
}

/// An endpoint. Its secret is never shown here.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(example = "whk_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub url: String,
    /// The types it receives.
    pub event_types: Vec<String>,
    /// Whether it receives every type, also types added later.
    pub all_event_types: bool,
    pub enabled: bool,
    pub description: Option<String>,
    /// Why it was disabled by delivery (410 Gone, failing too long); null when
    /// enabled or disabled by an operator.
    pub disabled_reason: Option<String>,
    /// The last event it was sent (or skipped as not of its types); null before the first.
    pub last_event_id: Option<String>,
    /// Failed attempts at its next event.
    pub failed_attempts: i32,
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Until when the previous secret also signs (after a rotation).
    #[schema(format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// An endpoint with its signing secret: only on creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it. Store it
    /// now; it is not shown again.
    pub secret: String,
}

/// One event's delivery to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(example = "dlv_01jd2x9v8c0000000000000000")]
    pub id: String,
    /// The event (also the `webhook-id` header).
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The endpoint's last answer; null when it could not be reached.
    pub last_status_code: Option<i32>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&DeliveryRow> for DeliveryView {
    fn from(r: &DeliveryRow) -> Self {
        Self {
            id: r.id.clone(),
            event_id: event_queries::event_id(r.event_seq),
            event_type: r.event_type.clone(),
            status: r.status,
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_error: r.last_error.clone(),
            last_latency_ms: r.last_latency_ms,
            next_attempt_at: r.next_attempt_at.map(ids::rfc3339),
            created_at: ids::rfc3339(r.created_at),
            updated_at: ids::rfc3339(r.updated_at),
        }
    }
}

/// What a recovery will send.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovery {
    /// Delivery starts again after this event (null: from the oldest kept event).
    pub resumes_after_event_id: Option<String>,
}

/// The body of `recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Re-send every event that occurred at or after this time (RFC 3339).
    #[schema(format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub since: String,
}

/// The endpoint's view (its secrets opened only for the rotation time).
pub fn view(state: &State, row: &EndpointRow) -> Result<WebhookView, ApiError> {
    let secrets = Secrets::open(&*state.store.sealer()?, row).map_err(ApiError::internal)?;
    let types = row.types();
    Ok(WebhookView {
        id: row.id.clone(),
        url: row.url.clone(),
        all_event_types: types.is_empty(),
        event_types: if types.is_empty() {
            TYPES.iter().map(|t| t.to_string()).collect()
        } else {
            types
        },
        enabled: row.enabled,
        description: row.description.clone(),
        disabled_reason: row.disabled_reason.clone(),
        last_event_id: (row.cursor_seq > 0).then(|| event_queries::event_id(row.cursor_seq)),
        failed_attempts: row.attempts,
        failing_since: row.failing_since.map(ids::rfc3339),
        next_attempt_at: row.next_attempt_at.map(ids::rfc3339),
        previous_secret_expires_at: secrets
            .previous_until
            .filter(|until| *until > ids::now())
            .map(ids::rfc3339),
        created_at: ids::rfc3339(row.created_at),
        updated_at: ids::rfc3339(row.updated_at),
    })
}

/// Where this server lets webhooks go.
pub fn policy(state: &State) -> TargetPolicy {
    TargetPolicy {
        allow_http: state.settings.webhook_allow_http,
        allow_private: state.settings.webhook_allow_private_targets,
    }
}

/// Checks a URL (scheme, credentials, where it resolves) into `errors`.
async fn check_target(state: &State, url: &str, errors: &mut FieldErrors) -> String {
    if url.len() > MAX_URL_LEN {
        errors.add("url", format!("must be at most {MAX_URL_LEN} characters"));
        return url.to_string();
    }
    if let Err(why) = check_url(url, policy(state)).await {
        errors.add("url", why);
    } else if !super::url_form(url) {
        errors.add("url", super::URL_FORM);
    }
    url.to_string()
}

/// `event_types` checked: known, no repeats; empty means all.
fn check_types(types: &[String], errors: &mut FieldErrors) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        match TYPES.iter().find(|known| **known == t.as_str()) {
            Some(known) if !out.contains(known) => out.push(known),
            Some(_) => {}
            None => errors.add(
                format!("event_types[{i}]"),
                format!(
                    "`{}` is not an event type (one of {})",
                    clip(t),
                    TYPES.join(", ")
                ),
            ),
        }
    }
    if out.len() == TYPES.len() {
        // Every type today: also the ones added later.
        return String::new();
    }
    out.join(",")
}

fn check_description(d: &str, errors: &mut FieldErrors) -> Option<String> {
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        errors.add("description", "must not contain control characters");
    }
    (!d.is_empty()).then(|| d.to_string())
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// A path id that cannot be an endpoint's is simply not found.
fn not_found() -> ApiError {
    ApiError::not_found("webhook endpoint")
}

/// Creates an endpoint; it receives the events that happen from now on.
pub async fn create(
    state: &State,
    org_id: &str,
    body: CreateWebhook,
) -> Result<(EndpointRow, String), ApiError> {
    let mut errors = FieldErrors::new();
    let url = check_target(state, &body.url, &mut errors).await;
    let event_types = check_types(body.event_types.as_deref().unwrap_or_default(), &mut errors);
    if body.event_types.as_ref().is_some_and(Vec::is_empty) {
        errors.add(
            "event_types",
            "must name at least one type (leave it out for every type)",
        );
    }
    let description = body
        .description
        .as_deref()
        .and_then(|d| check_description(d, &mut errors));
    errors.into_result()?;
    let sealer = state.store.sealer()?;
    let secret = sign::new_secret();
    let now = ids::now();
    let id = ids::new_id(ids::WEBHOOK);
    let row = EndpointRow {
        secrets: Secrets {
            current: secret.clone(),
            previous: None,
            previous_until: None,
        }
        .seal(&sealer, &id),
        id,
        org_id: org_id.to_string(),
        url,
        event_types,
        enabled: body.enabled.unwrap_or(true),
        description,
        cursor_seq: 0,
        attempts: 0,
        next_attempt_at: None,
        failing_since: None,
        disabled_reason: None,
        lease_owner: None,
        lease_until: None,
        created_at: now,
        updated_at: now,
    };
    let inserted = row.clone();
    let row = state
        .store
        .write(move |conn| {
            crate::store::in_transaction(conn, |conn| {
                if queries::count_endpoints(conn, &inserted.org_id)? >= MAX_ENDPOINTS {
                    return Err(StoreError::Conflict(format!(
                        "an org has at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
                    )));
                }
                let mut row = inserted.clone();
                // From now on: its cursor is the org's last event.
                row.cursor_seq = event_queries::last_seq(conn, &row.org_id)?;
                queries::insert_endpoint(conn, &row)?;
                Ok(row)
            })
        })
        .await?;
    Ok((row, secret))
}

pub async fn get(state: &State, org_id: &str, id: &str) -> Result<EndpointRow, ApiError> {
    let (org_id, id) = (org_id.to_string(), id.to_string());
    state
        .store
        .run(move |conn| queries::find_endpoint(conn, &org_id, &id))
        .await?
        .ok_or_else(not_found)
}

pub async fn list(
    state: &State,
    org_id: &str,
    page: PageRequest,
) -> Result<Page<EndpointRow>, ApiError> {
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let after = page.after.clone();
    let rows = state
        .store
        .run(move |conn| queries::list_endpoints(conn, &org_id, after.as_deref(), fetch))
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id))
}

pub async fn update(
    state: &State,
    org_id: &str,
    id: &str,
    body: UpdateWebhook,
) -> Result<EndpointRow, ApiError> {
    let mut row = get(state, org_id, id).await?;
    let was_enabled = row.enabled;
    let mut errors = FieldErrors::new();
    if let Some(url) = &body.url {
        row.url = check_target(state, url, &mut errors).await;
    }
    if let Some(types) = &body.event_types {
        row.event_types = check_types(types, &mut errors);
    }
    if let Some(d) = &body.description {
        row.description = check_description(d, &mut errors);
    }
    errors.into_result()?;
    if let Some(enabled) = body.enabled {
        if enabled != row.enabled {
            // Re-enabled: a fresh start where it stopped (failures forgotten).
            // Disabled by an operator: no delivery's reason.
            row.disabled_reason = None;
        }
        row.enabled = enabled;
    }
    let reset = body.enabled == Some(true) && !was_enabled;
    row.updated_at = ids::now();
    let saved = row.clone();
    let found = state
        .store
        .write(move |conn| queries::update_settings(conn, &saved, reset))
        .await?;
    if !found {
        return Err(not_found());
    }
    Ok(row)
}

pub async fn delete(state: &State, org_id: &str, id: &str) -> Result<(), ApiError> {
    let (org_id, id) = (org_id.to_string(), id.to_string());
    let found = state
        .store
        .write(move |conn| queries::delete_endpoint(conn, &org_id, &id))
        .await?;
    if found {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// A new secret; the current one keeps signing beside it for 24 hours (a
/// previous one still in its overlap stops now).
pub async fn rotate_secret(
    state: &State,
    org_id: &str,
    id: &str,
) -> Result<(EndpointRow, String), ApiError> {
    let mut row = get(state, org_id, id).await?;
    let sealer = state.store.sealer()?;
    let old = Secrets::open(&sealer, &row).map_err(ApiError::internal)?;
    let secret = sign::new_secret();
    let now = ids::now();
    row.secrets = Secrets {
        current: secret.clone(),
        previous: Some(old.current),
        previous_until: Some(now + Duration::hours(SECRET_OVERLAP_HOURS)),
    }
    .seal(&sealer, &row.id);
    row.updated_at = now;
    let saved = row.clone();
    let found = state
        .store
        .write(move |conn| queries::update_settings(conn, &saved, false))
        .await?;
    if !found {
        return Err(not_found());
    }
    Ok((row, secret))
}

/// The endpoint's deliveries, newest first.
pub async fn list_deliveries(
    state: &State,
    org_id: &str,
    id: &str,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> Result<Page<DeliveryRow>, ApiError> {
    let endpoint = get(state, org_id, id).await?;
    let fetch = page.fetch();
    let after = page.after.clone();
    let rows = state
        .store
        .run(move |conn| {
            queries::list_deliveries(
                conn,
                &endpoint.org_id,
                &endpoint.id,
                status,
                after.as_deref(),
                fetch,
            )
        })
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id))
}

/// Sends a delivery's event again now, once, whatever its status (the
/// endpoint's order of other events is not changed). The event must still be
/// in the feed.
pub async fn replay(
    state: &State,
    org_id: &str,
    id: &str,
    delivery_id: &str,
) -> Result<DeliveryRow, ApiError> {
    let endpoint = get(state, org_id, id).await?;
    let (org, ep, did) = (
        endpoint.org_id.clone(),
        endpoint.id.clone(),
        delivery_id.to_string(),
    );
    let delivery = state
        .store
        .run(move |conn| queries::find_delivery(conn, &org, &ep, &did))
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let (org, seq) = (endpoint.org_id.clone(), delivery.event_seq);
    let event = state
        .store
        .run(move |conn| event_queries::find(conn, &org, seq))
        .await?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "event {} is no longer in the feed (kept {} days); it cannot be sent again",
                event_queries::event_id(seq),
                state.settings.event_retention_days
            ))
        })?;
    let sender = delivery::Sender::new(policy(state));
    let sealer = state.store.sealer()?;
    let secrets = Secrets::open(&sealer, &endpoint).map_err(ApiError::internal)?;
    let outcome = sender
        .send(&endpoint.url, &secrets.signing(ids::now()), &event)
        .await;
    let status = if outcome.delivered() {
        DeliveryStatus::Delivered
    } else {
        delivery.status
    };
    let saved = state
        .store
        .write(move |conn| {
            queries::record_attempt(
                conn,
                &ids::new_id(ids::DELIVERY),
                &endpoint,
                event.seq,
                &event.event_type,
                status,
                outcome.code,
                outcome.error.as_deref(),
                outcome.latency_ms,
                delivery.next_attempt_at,
                ids::now(),
            )
        })
        .await?;
    Ok(saved)
}

/// Re-sends every event since `since` (and any not yet delivered): the
/// endpoint's cursor moves back to the last event before then.
pub async fn recover(
    state: &State,
    org_id: &str,
    id: &str,
    body: RecoverRequest,
) -> Result<Recovery, ApiError> {
    let since = chrono::DateTime::parse_from_rfc3339(body.since.trim())
        .map(|t| t.naive_utc())
        .map_err(|_| {
            FieldErrors::single(
                "since",
                "must be an RFC 3339 time such as 2026-12-01T00:00:00Z",
            )
        })?;
    if since > ids::now() {
        return Err(FieldErrors::single("since", "must not be in the future"));
    }
    let endpoint = get(state, org_id, id).await?;
    let resumes_after = state
        .store
        .write(move |conn| {
            let before = event_queries::last_seq_before(conn, &endpoint.org_id, since)?;
            // Never forward: events not yet delivered stay to be delivered.
            let to = before.min(endpoint.cursor_seq);
            queries::rewind(conn, &endpoint.org_id, &endpoint.id, to)?;
            Ok(to)
        })
        .await?;
    Ok(Recovery {
        resumes_after_event_id: (resumes_after > 0).then(|| event_queries::event_id(resumes_after)),
    })
}
