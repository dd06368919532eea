//! Queries on `events` (the change feed's outbox) and `event_counters`.
//!
//! Events are appended inside the transaction of the change they describe,
//! under the org's lock (`people::lock_org`, which every writer of contacts and
//! people takes first): each org's numbers are then given out in commit order,
//! so a reader that has seen event N will never later find an event below N.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use super::schema::{event_counters as counters, events};
use super::{DbConnection, StoreError};

/// Rows per insert statement (SQLite's bound-parameter limit).
const INSERT_CHUNK: usize = 1000;

/// An event to append: its type, the connection it concerns, its data.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub connection_id: Option<String>,
    pub data: Value,
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
}

impl Cause {
    pub fn sync(run_id: &str) -> Self {
        Self {
            kind: "sync",
            run_id: Some(run_id.to_string()),
            request_id: None,
        }
    }

    pub fn live_read(request_id: Option<String>) -> Self {
        Self {
            kind: "live_read",
            run_id: None,
            request_id,
        }
    }

    pub fn api_write(request_id: Option<String>) -> Self {
        Self {
            kind: "api_write",
            run_id: None,
            request_id,
        }
    }

    fn put(&self, data: &mut serde_json::Map<String, Value>) {
        data.insert("cause".into(), Value::from(self.kind));
        if let Some(r) = &self.run_id {
            data.insert("run_id".into(), Value::from(r.as_str()));
        }
        if let Some(r) = &self.request_id {
            data.insert("request_id".into(), Value::from(r.as_str()));
        }
    }
}

/// A contact's event: its ids, the changed fields (for `contact.updated`), the cause.
pub fn contact_event(
    event_type: &'static str,
    row: &super::models::ContactRow,
    changed: Option<&[String]>,
    cause: &Cause,
) -> NewEvent {
    let mut data = serde_json::Map::new();
    data.insert("contact_id".into(), Value::from(row.id.as_str()));
    data.insert(
        "person_id".into(),
        row.person_id
            .as_deref()
            .map(Value::from)
            .unwrap_or(Value::Null),
    );
    data.insert(
        "connection_id".into(),
        Value::from(row.connection_id.as_str()),
    );
    data.insert("provider".into(), Value::from(row.provider.as_str()));
    data.insert("remote_id".into(), Value::from(row.remote_id.as_str()));
    if let Some(fields) = changed {
        data.insert("changed_fields".into(), Value::from(fields.to_vec()));
    }
    cause.put(&mut data);
    NewEvent {
        event_type,
        connection_id: Some(row.connection_id.clone()),
        data: Value::Object(data),
    }
}

/// An event about people (`person.created`, `merged`, `split`, `deleted`).
pub fn person_event(
    event_type: &'static str,
    mut data: serde_json::Map<String, Value>,
    cause: &Cause,
) -> NewEvent {
    cause.put(&mut data);
    NewEvent {
        event_type,
        connection_id: None,
        data: Value::Object(data),
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
            event_type: e.event_type.to_string(),
            occurred_at,
            connection_id: e.connection_id,
            data: e.data.to_string(),
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
