//! Queries on `events` (the change feed's outbox) and `event_counters`.
//!
//! Events are appended inside the transaction of the change they describe,
//! under the org's lock (`people::lock_org`, which every writer of contacts and
//! people takes first): each org's numbers are then given out in commit order,
//! so a reader that has seen event N will never later find an event below N.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::event_type::EventType;
use super::schema::{event_counters as counters, events};
use super::{DbConnection, StoreError};

/// Rows per insert statement (SQLite's bound-parameter limit).
const INSERT_CHUNK: usize = 1000;

/// An event to append: its type, the connection it concerns, its data.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub connection_id: Option<String>,
    /// JSON.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
// `None` is NULL, as COPY requires.
#[diesel(treat_none_as_default_value = false)]
pub struct EventRow {
    pub org_id: String,
    pub seq: i64,
    pub event_type: String,
    pub occurred_at: NaiveDateTime,
    pub connection_id: Option<String>,
    /// JSON.
    pub data: String,
}

/// What made a change: `sync` (with its run), `live_read` or `api_write` (with
/// the request id), `relink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub kind: &'static str,
    pub run_id: Option<String>,
    pub request_id: Option<String>,
    /// A manual identity operation's id (`idop_…`).
    pub operation_id: Option<String>,
}

impl Cause {
    pub fn sync(run_id: &str) -> Self {
        Self {
            kind: "sync",
            run_id: Some(run_id.to_string()),
            request_id: None,
            operation_id: None,
        }
    }

    pub fn live_read(request_id: Option<String>) -> Self {
        Self {
            kind: "live_read",
            run_id: None,
            request_id,
            operation_id: None,
        }
    }

    /// A whole-org relink an operator asked for.
    pub fn relink() -> Self {
        Self {
            kind: "relink",
            run_id: None,
            request_id: None,
            operation_id: None,
        }
    }

    /// A manual identity operation (a merge, a split, a block, an undo).
    pub fn manual(operation_id: &str, request_id: Option<String>) -> Self {
        Self {
            kind: "manual",
            run_id: None,
            request_id,
            operation_id: Some(operation_id.to_string()),
        }
    }

    pub fn api_write(request_id: Option<String>) -> Self {
        Self {
            kind: "api_write",
            run_id: None,
            request_id,
            operation_id: None,
        }
    }
}

/// A contact event's data, serialised straight from borrowed fields (a sync
/// page makes thousands).
#[derive(serde::Serialize)]
struct ContactData<'a> {
    contact_id: &'a str,
    person_id: Option<&'a str>,
    connection_id: &'a str,
    provider: &'a str,
    remote_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<&'a [String]>,
    cause: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_id: Option<&'a str>,
}

/// A contact's event: its ids, the changed fields (for `contact.updated`), the cause.
pub fn contact_event(
    event_type: EventType,
    row: &super::models::ContactRow,
    changed: Option<&[String]>,
    cause: &Cause,
) -> NewEvent {
    let data = ContactData {
        contact_id: &row.id,
        person_id: row.person_id.as_deref(),
        connection_id: &row.connection_id,
        provider: &row.provider,
        remote_id: &row.remote_id,
        changed_fields: changed,
        cause: cause.kind,
        run_id: cause.run_id.as_deref(),
        request_id: cause.request_id.as_deref(),
        operation_id: cause.operation_id.as_deref(),
    };
    NewEvent {
        event_type,
        connection_id: Some(row.connection_id.clone()),
        data: serde_json::to_string(&data).unwrap_or_default(),
    }
}

/// A person event's data.
#[derive(serde::Serialize)]
struct PersonData<'a> {
    person_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_person_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    into_person_ids: Option<&'a [String]>,
    cause: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_id: Option<&'a str>,
}

/// An event about a person (`person.created`, `merged` with the people it
/// absorbed, `split` with the people its contacts went to, `deleted`).
pub fn person_event(
    event_type: EventType,
    person_id: &str,
    merged: Option<&[String]>,
    into: Option<&[String]>,
    cause: &Cause,
) -> NewEvent {
    let data = PersonData {
        person_id,
        merged_person_ids: merged,
        into_person_ids: into,
        cause: cause.kind,
        run_id: cause.run_id.as_deref(),
        request_id: cause.request_id.as_deref(),
        operation_id: cause.operation_id.as_deref(),
    };
    NewEvent {
        event_type,
        connection_id: None,
        data: serde_json::to_string(&data).unwrap_or_default(),
    }
}

/// `evt_` and the org's event number, zero-padded: ids sort as events happened.
pub fn event_id(seq: i64) -> String {
    format!("evt_{seq:016}")
}

/// The number in an event id, if it is one.
pub fn parse_event_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix("evt_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends `new` for the org, numbered after its last event, inside the
/// caller's transaction (which holds the org's lock).
pub fn append(
    conn: &mut DbConnection,
    org_id: &str,
    occurred_at: NaiveDateTime,
    new: Vec<NewEvent>,
) -> Result<(), StoreError> {
    if new.is_empty() {
        return Ok(());
    }
    super::people::lock_org(conn, org_id)?;
    let last: Option<i64> = counters::table
        .filter(counters::org_id.eq(org_id))
        .select(counters::last_seq)
        .first(conn)
        .optional()?;
    let first = last.unwrap_or(0) + 1;
    let end = first + new.len() as i64 - 1;
    match last {
        Some(_) => {
            diesel::update(counters::table.filter(counters::org_id.eq(org_id)))
                .set(counters::last_seq.eq(end))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(counters::table)
                .values((counters::org_id.eq(org_id), counters::last_seq.eq(end)))
                .execute(conn)?;
        }
    }
    let rows: Vec<EventRow> = new
        .into_iter()
        .zip(first..)
        .map(|(e, seq)| EventRow {
            org_id: org_id.to_string(),
            seq,
            event_type: e.event_type.as_str().to_string(),
            occurred_at,
            connection_id: e.connection_id,
            data: e.data,
        })
        .collect();
    match conn {
        // Multi-row inserts exist per backend, not on the MultiBackend.
        DbConnection::Sqlite(c) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
        DbConnection::Postgresql(c) => {
            diesel::copy_from(events::table)
                .from_insertable(&rows)
                .execute(c)?;
        }
    }
    Ok(())
}

/// The org's last event number (0 before its first).
pub fn last_seq(conn: &mut DbConnection, org_id: &str) -> Result<i64, StoreError> {
    Ok(counters::table
        .filter(counters::org_id.eq(org_id))
        .select(counters::last_seq)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// The number of the org's last event before `t` (0: none kept).
pub fn last_seq_before(
    conn: &mut DbConnection,
    org_id: &str,
    t: NaiveDateTime,
) -> Result<i64, StoreError> {
    let seq: Option<i64> = events::table
        .filter(events::org_id.eq(org_id))
        .filter(events::occurred_at.lt(t))
        .select(diesel::dsl::max(events::seq))
        .first(conn)?;
    Ok(seq.unwrap_or(0))
}

/// One event, while it is kept.
pub fn find(
    conn: &mut DbConnection,
    org_id: &str,
    seq: i64,
) -> Result<Option<EventRow>, StoreError> {
    Ok(events::table
        .filter(events::org_id.eq(org_id))
        .filter(events::seq.eq(seq))
        .select(EventRow::as_select())
        .first(conn)
        .optional()?)
}

/// The org's events after `after` (an event number), in order.
pub fn list(
    conn: &mut DbConnection,
    org_id: &str,
    after: i64,
    types: &[String],
    connection_id: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut query = events::table
        .filter(events::org_id.eq(org_id))
        .filter(events::seq.gt(after))
        .select(EventRow::as_select())
        .order(events::seq.asc())
        .limit(limit)
        .into_boxed();
    if !types.is_empty() {
        query = query.filter(events::event_type.eq_any(types.to_vec()));
    }
    if let Some(c) = connection_id {
        query = query.filter(events::connection_id.eq(c.to_string()));
    }
    Ok(query.load(conn)?)
}

/// Deletes up to `batch` events that occurred before `before`; returns how many.
pub fn prune(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    batch: i64,
) -> Result<usize, StoreError> {
    let old: Vec<(String, i64)> = events::table
        .filter(events::occurred_at.lt(before))
        .select((events::org_id, events::seq))
        .order(events::occurred_at.asc())
        .limit(batch)
        .load(conn)?;
    let mut n = 0;
    for (org, seqs) in group_by_org(old) {
        n += diesel::delete(
            events::table
                .filter(events::org_id.eq(&org))
                .filter(events::seq.eq_any(seqs)),
        )
        .execute(conn)?;
    }
    Ok(n)
}

fn group_by_org(rows: Vec<(String, i64)>) -> Vec<(String, Vec<i64>)> {
    let mut out: Vec<(String, Vec<i64>)> = Vec::new();
    for (org, seq) in rows {
        match out.iter_mut().find(|(o, _)| *o == org) {
            Some((_, seqs)) => seqs.push(seq),
            None => out.push((org, vec![seq])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_sort_as_their_numbers_and_read_back() {
        assert!(event_id(9) < event_id(10));
        assert_eq!(parse_event_id(&event_id(12345)), Some(12345));
        assert_eq!(parse_event_id("evt_"), None);
        assert_eq!(parse_event_id("evt_12a"), None);
        assert_eq!(parse_event_id("ctc_1"), None);
    }
}
