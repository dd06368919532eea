//! Queries on `chat_groups`: the members of each group chat a provider's chat list
//! named without them, as the group's own read gave them, with the version they
//! were read at. A sync reads a group again only when the list shows another
//! version, and after a complete listing forgets the groups it no longer lists.

use std::collections::HashMap;

use diesel::prelude::*;
use unicontacts_adapters::chats::MemberRole;

use super::schema::chat_groups as groups;
use super::{DbConnection, StoreError};

/// A group's members: contact remote id and role, where the provider says.
pub type Members = Vec<(String, Option<MemberRole>)>;

/// A group as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    pub version: String,
    pub members: Members,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = groups)]
struct GroupRow {
    connection_id: String,
    chat_id: String,
    version: String,
    members: String,
    seen_run: String,
}

fn encode(members: &Members) -> String {
    let rows: Vec<(&str, Option<&str>)> = members
        .iter()
        .map(|(id, role)| (id.as_str(), role.map(MemberRole::as_str)))
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

/// The members a row holds; a row this code cannot read is no row (the group is
/// read again).
fn decode(raw: &str) -> Option<Members> {
    let rows: Vec<(String, Option<String>)> = serde_json::from_str(raw).ok()?;
    Some(
        rows.into_iter()
            .map(|(id, role)| (id, role.as_deref().and_then(MemberRole::parse)))
            .collect(),
    )
}

/// The stored groups among `chat_ids` of the connection.
pub fn find(
    conn: &mut DbConnection,
    connection_id: &str,
    chat_ids: &[String],
) -> Result<HashMap<String, StoredGroup>, StoreError> {
    let mut out = HashMap::new();
    for chunk in chat_ids.chunks(500) {
        let rows: Vec<GroupRow> = groups::table
            .filter(groups::connection_id.eq(connection_id))
            .filter(groups::chat_id.eq_any(chunk))
            .select(GroupRow::as_select())
            .load(conn)?;
        for row in rows {
            if let Some(members) = decode(&row.members) {
                out.insert(
                    row.chat_id,
                    StoredGroup {
                        version: row.version,
                        members,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// What a run learned of the groups of one round of chat pages.
#[derive(Debug, Default)]
pub struct GroupWrites {
    /// Listed at the version stored: only marked seen by the run.
    pub unchanged: Vec<String>,
    /// Read anew: (chat id, version, members).
    pub read: Vec<(String, String, Members)>,
    /// Listed, but gone when read.
    pub gone: Vec<String>,
}

impl GroupWrites {
    pub fn is_empty(&self) -> bool {
        self.unchanged.is_empty() && self.read.is_empty() && self.gone.is_empty()
    }
}

/// Writes what a run learned of the connection's groups (`run_id` lists them).
pub fn save(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: &str,
    writes: &GroupWrites,
) -> Result<(), StoreError> {
    for chunk in writes.unchanged.chunks(500) {
        diesel::update(
            groups::table
                .filter(groups::connection_id.eq(connection_id))
                .filter(groups::chat_id.eq_any(chunk)),
        )
        .set(groups::seen_run.eq(run_id))
        .execute(conn)?;
    }
    let replaced: Vec<&String> = writes
        .read
        .iter()
        .map(|(id, _, _)| id)
        .chain(&writes.gone)
        .collect();
    for chunk in replaced.chunks(500) {
        diesel::delete(
            groups::table
                .filter(groups::connection_id.eq(connection_id))
                .filter(groups::chat_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    // A row at a time: the backend-generic connection has no multi-row insert,
    // and a run reads few groups.
    for (id, version, members) in &writes.read {
        diesel::insert_into(groups::table)
            .values(GroupRow {
                connection_id: connection_id.to_string(),
                chat_id: id.clone(),
                version: version.clone(),
                members: encode(members),
                seen_run: run_id.to_string(),
            })
            .execute(conn)?;
    }
    Ok(())
}

/// After a complete listing by `run_id`: forgets the groups it did not list.
pub fn forget_unlisted(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        groups::table
            .filter(groups::connection_id.eq(connection_id))
            .filter(groups::seen_run.ne(run_id)),
    )
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_back_as_written() {
        let members: Members = vec![
            ("1@c.us".into(), Some(MemberRole::SuperAdmin)),
            ("2@c.us".into(), Some(MemberRole::Admin)),
            ("3@c.us".into(), Some(MemberRole::Member)),
            ("4@c.us".into(), None),
        ];
        assert_eq!(decode(&encode(&members)), Some(members));
        assert_eq!(decode("not json"), None);
    }
}
