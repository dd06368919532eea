//! Queries on `connection_status`: a connection's sync pause, when its
//! credentials were last accepted, and its errors since the last success. Kept
//! apart from `connections`, whose every change invalidates cached copies.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use unicontacts_adapters::AdapterError;

use super::schema::connection_status as status;
use super::{DbConnection, StoreError};

/// What kind of failure: the provider refused the credentials, or anything else.
pub const CREDENTIALS: &str = "credentials";
pub const UPSTREAM: &str = "upstream";

/// What a failed call to a provider says of the connection: the credentials
/// were refused, the provider failed, or nothing (a record's own problem).
pub fn failure_kind(e: &AdapterError) -> Option<&'static str> {
    match e {
        AdapterError::Unauthorized { .. } | AdapterError::SessionMissing { .. } => {
            Some(CREDENTIALS)
        }
        AdapterError::NotFound
        | AdapterError::InvalidInput(_)
        | AdapterError::Rejected { .. }
        | AdapterError::Decode { .. }
        | AdapterError::Unsupported { .. } => None,
        AdapterError::Upstream { status, .. } if *status < 500 => None,
        _ => Some(UPSTREAM),
    }
}

/// How a connection is doing: `healthy`; `degraded` (recent failures, stale
/// copies served, or deletions held for review); `failing` (3 or more failures in a row); `credentials_refused`
/// (the provider refused the credentials at the last call). A success anywhere
/// (a sync, a live read) makes it healthy again. Also what `?health=` keeps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Degraded,
    Failing,
    CredentialsRefused,
}

/// Failures in a row after which a connection is `failing` rather than `degraded`.
pub const FAILING_AFTER: i64 = 3;

/// How a connection is doing, from its failures since the last success and
/// whether a sync's deletion guard holds deletions for review (`degraded`, when
/// nothing worse).
pub fn health(row: &StatusRow, holding: bool) -> Health {
    use Health as H;
    match (row.error_count, row.last_error_kind.as_deref()) {
        (0, _) if holding => H::Degraded,
        (0, _) => H::Healthy,
        (_, Some(CREDENTIALS)) => H::CredentialsRefused,
        (n, _) if n >= FAILING_AFTER => H::Failing,
        _ => H::Degraded,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = status)]
pub struct StatusRow {
    pub connection_id: String,
    pub sync_paused: bool,
    pub credentials_verified_at: Option<NaiveDateTime>,
    pub last_error_kind: Option<String>,
    pub last_error_message: Option<String>,
    pub last_error_at: Option<NaiveDateTime>,
    /// Failures since the last success.
    pub error_count: i64,
    pub last_success_at: Option<NaiveDateTime>,
}

impl StatusRow {
    /// A connection nothing is known of yet.
    pub fn new(connection_id: &str) -> Self {
        Self {
            connection_id: connection_id.to_string(),
            sync_paused: false,
            credentials_verified_at: None,
            last_error_kind: None,
            last_error_message: None,
            last_error_at: None,
            error_count: 0,
            last_success_at: None,
        }
    }

    /// Whether the scheduler syncs it: not paused, and its credentials were
    /// accepted by the provider (no sync with a placeholder key).
    pub fn schedulable(&self) -> bool {
        !self.sync_paused && self.credentials_verified_at.is_some()
    }
}

/// Writes a new connection's status.
pub fn insert(conn: &mut DbConnection, row: &StatusRow) -> Result<(), StoreError> {
    diesel::insert_into(status::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// The statuses of these connections (a connection without a row: default).
pub fn find(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<HashMap<String, StatusRow>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<StatusRow> = status::table
            .filter(status::connection_id.eq_any(chunk))
            .select(StatusRow::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| (r.connection_id.clone(), r)));
    }
    Ok(out)
}

/// Runs `update` on the connection's row, making the row first if it has none.
fn with_row(
    conn: &mut DbConnection,
    id: &str,
    update: impl Fn(&mut DbConnection) -> Result<usize, StoreError>,
) -> Result<(), StoreError> {
    if update(conn)? == 0 {
        let exists = status::table
            .filter(status::connection_id.eq(id))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !exists {
            // A connection deleted meanwhile leaves nothing to update: its row
            // would break the foreign key, so it is not made.
            let made = insert(conn, &StatusRow::new(id));
            if made.is_ok() {
                update(conn)?;
            }
        }
    }
    Ok(())
}

/// Pauses or resumes the connection's scheduled syncs.
pub fn set_paused(conn: &mut DbConnection, id: &str, paused: bool) -> Result<(), StoreError> {
    with_row(conn, id, |conn| {
        Ok(
            diesel::update(status::table.filter(status::connection_id.eq(id)))
                .set(status::sync_paused.eq(paused))
                .execute(conn)?,
        )
    })
}

/// Forgets that the credentials were accepted (they changed unchecked).
pub fn unverify(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    diesel::update(status::table.filter(status::connection_id.eq(id)))
        .set(status::credentials_verified_at.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    Ok(())
}

/// A call to the provider succeeded at `now`: the credentials are accepted and
/// the failures end. Writes only when that changes something.
pub fn record_success(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    with_row(conn, id, |conn| {
        Ok(diesel::update(
            status::table.filter(status::connection_id.eq(id)).filter(
                status::error_count
                    .gt(0)
                    .or(status::credentials_verified_at.is_null())
                    .or(status::last_success_at.is_null()),
            ),
        )
        .set((
            status::error_count.eq(0),
            status::last_success_at.eq(Some(now)),
            status::credentials_verified_at.eq(Some(now)),
        ))
        .execute(conn)?)
    })?;
    Ok(())
}

/// A call to the provider failed at `now` (`kind`: [`CREDENTIALS`] or [`UPSTREAM`]).
pub fn record_failure(
    conn: &mut DbConnection,
    id: &str,
    kind: &str,
    message: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    // Messages come from providers: kept short.
    let message: String = message.chars().take(500).collect();
    with_row(conn, id, |conn| {
        Ok(
            diesel::update(status::table.filter(status::connection_id.eq(id)))
                .set((
                    status::last_error_kind.eq(Some(kind)),
                    status::last_error_message.eq(Some(&message)),
                    status::last_error_at.eq(Some(now)),
                    status::error_count.eq(status::error_count + 1),
                ))
                .execute(conn)?,
        )
    })
}
