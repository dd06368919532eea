//! Queries on `audit_events`: every write through the API, newest first.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events as events;
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct AuditEventRow {
    pub id: String,
    pub org_id: String,
    pub at: NaiveDateTime,
    pub api_key_id: Option<String>,
    pub api_key_prefix: Option<String>,
    pub action: String,
    /// Each target id between spaces: ` con_… ctc_… `.
    pub target_ids: String,
    pub provider: Option<String>,
    pub status: i32,
    pub request_id: String,
}

impl AuditEventRow {
    /// The target ids as a list.
    pub fn targets(&self) -> Vec<String> {
        self.target_ids
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// `ids` as stored: each between spaces, so one is found by `LIKE '% id %'`.
    pub fn join_targets(ids: &[String]) -> String {
        let mut out = String::from(" ");
        for id in ids {
            out.push_str(id);
            out.push(' ');
        }
        out
    }
}

pub fn insert(conn: &mut DbConnection, row: &AuditEventRow) -> Result<(), StoreError> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The org's events, newest first, before the event `before`.
pub fn list(
    conn: &mut DbConnection,
    org_id: &str,
    action: Option<&str>,
    target_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut query = events::table
        .filter(events::org_id.eq(org_id))
        .select(AuditEventRow::as_select())
        .order(events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(a) = action {
        query = query.filter(events::action.eq(a.to_string()));
    }
    if let Some(t) = target_id {
        // Ids are ULIDs with a prefix: no `%` or `_` to escape but `_` itself.
        let escaped = t
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query = query.filter(
            events::target_ids
                .like(format!("% {escaped} %"))
                .escape('\\'),
        );
    }
    if let Some(b) = before {
        query = query.filter(events::id.lt(b.to_string()));
    }
    Ok(query.load(conn)?)
}
