//! Queries on `webhook_endpoints` and `webhook_deliveries`.
//!
//! An endpoint reads its org's events from a cursor, in order. A process
//! delivers to it only while it holds the endpoint's lease (taken by one
//! conditional update, renewed after each attempt), so two replicas never send
//! one event at once, and a process that dies lets go when its lease expires.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::DeliveryStatus;
use super::schema::{
    event_counters, webhook_deliveries as deliveries, webhook_endpoints as endpoints,
};
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = endpoints)]
pub struct EndpointRow {
    pub id: String,
    pub org_id: String,
    pub url: String,
    /// Comma-separated event types; empty: every type.
    pub event_types: String,
    pub enabled: bool,
    pub description: Option<String>,
    /// Sealed JSON (see `secrets`): the signing secret, and the previous one
    /// with the time it stops signing.
    pub secrets: String,
    pub cursor_seq: i64,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub failing_since: Option<NaiveDateTime>,
    pub disabled_reason: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl EndpointRow {
    /// The event types it takes (empty: all).
    pub fn types(&self) -> Vec<String> {
        self.event_types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub org_id: String,
    pub endpoint_id: String,
    pub event_seq: i64,
    pub event_type: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert_endpoint(conn: &mut DbConnection, row: &EndpointRow) -> Result<(), StoreError> {
    diesel::insert_into(endpoints::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The org's endpoint; another org's is `None`.
pub fn find_endpoint(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<EndpointRow>, StoreError> {
    Ok(endpoints::table
        .filter(endpoints::org_id.eq(org_id))
        .filter(endpoints::id.eq(id))
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?)
}

/// The org's endpoints in creation order, after the cursor id.
pub fn list_endpoints(
    conn: &mut DbConnection,
    org_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<EndpointRow>, StoreError> {
    let mut query = endpoints::table
        .filter(endpoints::org_id.eq(org_id))
        .select(EndpointRow::as_select())
        .order(endpoints::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(a) = after {
        query = query.filter(endpoints::id.gt(a.to_string()));
    }
    Ok(query.load(conn)?)
}

/// The org's endpoints.
pub fn count_endpoints(conn: &mut DbConnection, org_id: &str) -> Result<i64, StoreError> {
    Ok(endpoints::table
        .filter(endpoints::org_id.eq(org_id))
        .count()
        .get_result(conn)?)
}

/// Saves the endpoint's settings (url, types, enabled, description, secrets),
/// leaving its delivery state (cursor, attempts, lease) as the worker keeps it;
/// with `reset` (re-enabled) its failures are forgotten.
pub fn update_settings(
    conn: &mut DbConnection,
    row: &EndpointRow,
    reset: bool,
) -> Result<bool, StoreError> {
    let target = endpoints::table
        .filter(endpoints::org_id.eq(&row.org_id))
        .filter(endpoints::id.eq(&row.id));
    let settings = (
        endpoints::url.eq(&row.url),
        endpoints::event_types.eq(&row.event_types),
        endpoints::enabled.eq(row.enabled),
        endpoints::description.eq(&row.description),
        endpoints::secrets.eq(&row.secrets),
        endpoints::disabled_reason.eq(&row.disabled_reason),
        endpoints::updated_at.eq(row.updated_at),
    );
    let n = if reset {
        diesel::update(target)
            .set((
                settings,
                (
                    endpoints::failing_since.eq(None::<NaiveDateTime>),
                    endpoints::attempts.eq(0),
                    endpoints::next_attempt_at.eq(None::<NaiveDateTime>),
                ),
            ))
            .execute(conn)?
    } else {
        diesel::update(target).set(settings).execute(conn)?
    };
    Ok(n == 1)
}

/// Every endpoint's sealed secrets (for the key rotation).
pub fn stored_secrets(conn: &mut DbConnection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(endpoints::table
        .select((endpoints::id, endpoints::secrets))
        .order(endpoints::id.asc())
        .load(conn)?)
}

pub fn set_secrets(conn: &mut DbConnection, id: &str, sealed: &str) -> Result<(), StoreError> {
    diesel::update(endpoints::table.filter(endpoints::id.eq(id)))
        .set(endpoints::secrets.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// Deletes the endpoint and its delivery log.
pub fn delete_endpoint(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<bool, StoreError> {
    diesel::delete(
        deliveries::table
            .filter(deliveries::org_id.eq(org_id))
            .filter(deliveries::endpoint_id.eq(id)),
    )
    .execute(conn)?;
    let n = diesel::delete(
        endpoints::table
            .filter(endpoints::org_id.eq(org_id))
            .filter(endpoints::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// Moves the endpoint's cursor back to `seq` (its next event is the one after),
/// its attempts reset: every later event goes out again.
pub fn rewind(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    seq: i64,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        endpoints::table
            .filter(endpoints::org_id.eq(org_id))
            .filter(endpoints::id.eq(id)),
    )
    .set((
        endpoints::cursor_seq.eq(seq),
        endpoints::attempts.eq(0),
        endpoints::next_attempt_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes the leases of up to `limit` endpoints with events to deliver and due
/// (enabled, not waiting for a retry, not leased by a live holder). Each is
/// taken by one conditional update, so only one process gets it.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<EndpointRow>, StoreError> {
    let candidates: Vec<String> = endpoints::table
        .inner_join(event_counters::table.on(event_counters::org_id.eq(endpoints::org_id)))
        .filter(endpoints::enabled.eq(true))
        .filter(event_counters::last_seq.gt(endpoints::cursor_seq))
        .filter(
            endpoints::next_attempt_at
                .is_null()
                .or(endpoints::next_attempt_at.le(now)),
        )
        .filter(
            endpoints::lease_until
                .is_null()
                .or(endpoints::lease_until.le(now)),
        )
        .select(endpoints::id)
        .order(endpoints::next_attempt_at.asc())
        .limit(limit)
        .load(conn)?;
    let mut claimed = Vec::new();
    for id in candidates {
        let taken = diesel::update(
            endpoints::table.filter(endpoints::id.eq(&id)).filter(
                endpoints::lease_until
                    .is_null()
                    .or(endpoints::lease_until.le(now)),
            ),
        )
        .set((
            endpoints::lease_owner.eq(owner),
            endpoints::lease_until.eq(lease_until),
        ))
        .execute(conn)?;
        if taken == 1 {
            if let Some(row) = endpoints::table
                .filter(endpoints::id.eq(&id))
                .select(EndpointRow::as_select())
                .first(conn)
                .optional()?
            {
                claimed.push(row);
            }
        }
    }
    Ok(claimed)
}

/// What an attempt changed on the endpoint, saved while `owner` holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointProgress {
    pub cursor_seq: i64,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub failing_since: Option<NaiveDateTime>,
    /// `Some`: disabled, for this reason.
    pub disabled_reason: Option<String>,
}

/// Saves what an attempt changed and renews the lease to `lease_until`, while
/// `owner` holds the lease, the endpoint is enabled and its cursor is still
/// `from` (a recovery may have moved it back); `false` when not.
pub fn save_progress(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    from: i64,
    p: &EndpointProgress,
    lease_until: NaiveDateTime,
) -> Result<bool, StoreError> {
    let target = endpoints::table
        .filter(endpoints::id.eq(id))
        .filter(endpoints::lease_owner.eq(owner))
        .filter(endpoints::enabled.eq(true))
        .filter(endpoints::cursor_seq.eq(from));
    let n = match &p.disabled_reason {
        Some(reason) => diesel::update(target)
            .set((
                endpoints::cursor_seq.eq(p.cursor_seq),
                endpoints::attempts.eq(p.attempts),
                endpoints::next_attempt_at.eq(p.next_attempt_at),
                endpoints::failing_since.eq(p.failing_since),
                endpoints::enabled.eq(false),
                endpoints::disabled_reason.eq(Some(reason)),
                endpoints::lease_until.eq(lease_until),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                endpoints::cursor_seq.eq(p.cursor_seq),
                endpoints::attempts.eq(p.attempts),
                endpoints::next_attempt_at.eq(p.next_attempt_at),
                endpoints::failing_since.eq(p.failing_since),
                endpoints::lease_until.eq(lease_until),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Lets the lease go.
pub fn release(conn: &mut DbConnection, id: &str, owner: &str) -> Result<(), StoreError> {
    diesel::update(
        endpoints::table
            .filter(endpoints::id.eq(id))
            .filter(endpoints::lease_owner.eq(owner)),
    )
    .set((
        endpoints::lease_owner.eq(None::<String>),
        endpoints::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records an attempt at delivering event `seq`: the delivery row is made at
/// the first and updated after. Returns the row.
#[allow(clippy::too_many_arguments)]
pub fn record_attempt(
    conn: &mut DbConnection,
    new_id: &str,
    endpoint: &EndpointRow,
    seq: i64,
    event_type: &str,
    status: DeliveryStatus,
    code: Option<i32>,
    error: Option<&str>,
    latency_ms: i64,
    next_attempt_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<DeliveryRow, StoreError> {
    let found: Option<DeliveryRow> = deliveries::table
        .filter(deliveries::endpoint_id.eq(&endpoint.id))
        .filter(deliveries::event_seq.eq(seq))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?;
    let row = DeliveryRow {
        id: found
            .as_ref()
            .map(|f| f.id.clone())
            .unwrap_or_else(|| new_id.to_string()),
        org_id: endpoint.org_id.clone(),
        endpoint_id: endpoint.id.clone(),
        event_seq: seq,
        event_type: event_type.to_string(),
        status,
        attempts: found.as_ref().map(|f| f.attempts).unwrap_or(0) + 1,
        last_status_code: code,
        last_error: error.map(str::to_string),
        last_latency_ms: Some(latency_ms),
        next_attempt_at,
        created_at: found.as_ref().map(|f| f.created_at).unwrap_or(now),
        updated_at: now,
    };
    if found.is_some() {
        diesel::update(deliveries::table.filter(deliveries::id.eq(&row.id)))
            .set((
                deliveries::status.eq(row.status.as_str()),
                deliveries::attempts.eq(row.attempts),
                deliveries::last_status_code.eq(row.last_status_code),
                deliveries::last_error.eq(&row.last_error),
                deliveries::last_latency_ms.eq(row.last_latency_ms),
                deliveries::next_attempt_at.eq(row.next_attempt_at),
                deliveries::updated_at.eq(row.updated_at),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(deliveries::table)
            .values(row.clone())
            .execute(conn)?;
    }
    Ok(row)
}

/// The endpoint's deliveries, newest first, before the cursor id.
pub fn list_deliveries(
    conn: &mut DbConnection,
    org_id: &str,
    endpoint_id: &str,
    status: Option<DeliveryStatus>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut query = deliveries::table
        .filter(deliveries::org_id.eq(org_id))
        .filter(deliveries::endpoint_id.eq(endpoint_id))
        .select(DeliveryRow::as_select())
        .order(deliveries::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        query = query.filter(deliveries::status.eq(s.as_str()));
    }
    if let Some(b) = before {
        query = query.filter(deliveries::id.lt(b.to_string()));
    }
    Ok(query.load(conn)?)
}

pub fn find_delivery(
    conn: &mut DbConnection,
    org_id: &str,
    endpoint_id: &str,
    id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(deliveries::table
        .filter(deliveries::org_id.eq(org_id))
        .filter(deliveries::endpoint_id.eq(endpoint_id))
        .filter(deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes up to `batch` finished deliveries last tried before `before`.
pub fn prune_deliveries(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    batch: i64,
) -> Result<usize, StoreError> {
    let old: Vec<String> = deliveries::table
        .filter(deliveries::updated_at.lt(before))
        .filter(deliveries::status.ne(DeliveryStatus::Pending.as_str()))
        .select(deliveries::id)
        .limit(batch)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(deliveries::table.filter(deliveries::id.eq_any(old))).execute(conn)?)
}
