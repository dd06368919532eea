//! Queries on identity control: the manual operations on people
//! (`identity_operations`, the contacts each concerned), the bonds of those in
//! force (`identity_bonds`), the people merged away (`merged_people`) and the
//! blocked identifier values (`blocked_identifiers`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    blocked_identifiers as blocked, identity_bonds as bonds,
    identity_operation_contacts as op_contacts, identity_operations as ops,
    merged_people as merged, people,
};
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ops)]
pub struct OperationRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub subject_id: String,
    pub other_id: Option<String>,
    pub reason: String,
    pub api_key_id: Option<String>,
    pub request_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub undone_by: Option<String>,
    /// JSON.
    pub before: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = blocked)]
pub struct BlockedRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub value: String,
    pub reason: String,
    pub operation_id: String,
    pub created_at: NaiveDateTime,
}

/// Records an operation and the contacts it concerned.
pub fn insert_operation(
    conn: &mut DbConnection,
    row: &OperationRow,
    contacts: &[String],
) -> Result<(), StoreError> {
    diesel::insert_into(ops::table).values(row).execute(conn)?;
    for chunk in contacts.chunks(400) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|c| {
                (
                    op_contacts::operation_id.eq(&row.id),
                    op_contacts::contact_id.eq(c),
                )
            })
            .collect();
        // Multi-row inserts exist per backend, not on the MultiBackend.
        match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(op_contacts::table)
                .values(&rows)
                .execute(c)?,
            DbConnection::Postgresql(c) => diesel::insert_into(op_contacts::table)
                .values(&rows)
                .execute(c)?,
        };
    }
    Ok(())
}

pub fn find_operation(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<OperationRow>, StoreError> {
    Ok(ops::table
        .filter(ops::org_id.eq(org_id))
        .filter(ops::id.eq(id))
        .select(OperationRow::as_select())
        .first(conn)
        .optional()?)
}

/// The operations in force made after `after` that concern one of `contacts`
/// or the same subject (a blocked value) — undos left out: they are not undone
/// in their turn.
pub fn later_operations_on(
    conn: &mut DbConnection,
    org_id: &str,
    after: &str,
    subject: &str,
    contacts: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = ops::table
        .filter(ops::org_id.eq(org_id))
        .filter(ops::id.gt(after))
        .filter(ops::undone_by.is_null())
        .filter(ops::kind.ne("undo"))
        .filter(ops::subject_id.eq(subject))
        .select(ops::id)
        .load::<String>(conn)?;
    for chunk in contacts.chunks(500) {
        out.extend(
            op_contacts::table
                .inner_join(ops::table)
                .filter(ops::org_id.eq(org_id))
                .filter(ops::id.gt(after))
                .filter(ops::undone_by.is_null())
                .filter(ops::kind.ne("undo"))
                .filter(op_contacts::contact_id.eq_any(chunk))
                .select(ops::id)
                .load::<String>(conn)?,
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Marks an operation undone by `by`.
pub fn mark_undone(conn: &mut DbConnection, id: &str, by: &str) -> Result<(), StoreError> {
    diesel::update(ops::table.filter(ops::id.eq(id)))
        .set(ops::undone_by.eq(Some(by)))
        .execute(conn)?;
    Ok(())
}

/// One page of the operations on these contacts or about this subject,
/// newest first, before `before`.
pub fn operations_of(
    conn: &mut DbConnection,
    org_id: &str,
    contacts: &[String],
    subject: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<OperationRow>, StoreError> {
    // A person has few contacts; the ids first, then the rows.
    let mut ids: Vec<String> = Vec::new();
    for chunk in contacts.chunks(500) {
        ids.extend(
            op_contacts::table
                .filter(op_contacts::contact_id.eq_any(chunk))
                .select(op_contacts::operation_id)
                .load::<String>(conn)?,
        );
    }
    let mut q = ops::table
        .filter(ops::org_id.eq(org_id))
        .filter(
            ops::subject_id
                .eq(subject)
                .or(ops::other_id.eq(subject))
                .or(ops::id.eq_any(ids)),
        )
        .order(ops::id.desc())
        .limit(limit)
        .select(OperationRow::as_select())
        .into_boxed();
    if let Some(before) = before {
        q = q.filter(ops::id.lt(before.to_string()));
    }
    Ok(q.load(conn)?)
}

/// Holds `contacts` as the operation's bonds: `(contact, part)`.
pub fn insert_bonds(
    conn: &mut DbConnection,
    org_id: &str,
    operation_id: &str,
    contacts: &[(String, i32)],
) -> Result<(), StoreError> {
    for chunk in contacts.chunks(300) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(c, part)| {
                (
                    bonds::operation_id.eq(operation_id),
                    bonds::org_id.eq(org_id),
                    bonds::contact_id.eq(c),
                    bonds::part.eq(part),
                )
            })
            .collect();
        match conn {
            DbConnection::Sqlite(c) => {
                diesel::insert_into(bonds::table).values(&rows).execute(c)?
            }
            DbConnection::Postgresql(c) => {
                diesel::insert_into(bonds::table).values(&rows).execute(c)?
            }
        };
    }
    Ok(())
}

pub fn delete_bonds(conn: &mut DbConnection, operation_id: &str) -> Result<(), StoreError> {
    diesel::delete(bonds::table.filter(bonds::operation_id.eq(operation_id))).execute(conn)?;
    Ok(())
}

/// Every bond of the org: `(operation, contact, part)`.
pub fn bonds_of_org(
    conn: &mut DbConnection,
    org_id: &str,
) -> Result<Vec<(String, String, i32)>, StoreError> {
    Ok(bonds::table
        .filter(bonds::org_id.eq(org_id))
        .select((bonds::operation_id, bonds::contact_id, bonds::part))
        .load(conn)?)
}

/// The operations holding one of `contacts`.
pub fn operations_bonding(
    conn: &mut DbConnection,
    contacts: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for chunk in contacts.chunks(500) {
        out.extend(
            bonds::table
                .filter(bonds::contact_id.eq_any(chunk))
                .select(bonds::operation_id)
                .load::<String>(conn)?,
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The bonds of these operations: `(operation, contact, part)`.
pub fn bonds_of(
    conn: &mut DbConnection,
    operations: &[String],
) -> Result<Vec<(String, String, i32)>, StoreError> {
    let mut out = Vec::new();
    for chunk in operations.chunks(500) {
        out.extend(
            bonds::table
                .filter(bonds::operation_id.eq_any(chunk))
                .select((bonds::operation_id, bonds::contact_id, bonds::part))
                .load::<(String, String, i32)>(conn)?,
        );
    }
    Ok(out)
}

pub fn insert_merged(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    into: &str,
    operation_id: &str,
) -> Result<(), StoreError> {
    diesel::insert_into(merged::table)
        .values((
            merged::id.eq(id),
            merged::org_id.eq(org_id),
            merged::into_id.eq(into),
            merged::operation_id.eq(operation_id),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete_merged(conn: &mut DbConnection, operation_id: &str) -> Result<(), StoreError> {
    diesel::delete(merged::table.filter(merged::operation_id.eq(operation_id))).execute(conn)?;
    Ok(())
}

/// The person a merged-away person of the org lives on in, following merges
/// of the survivor in their turn.
pub fn merged_into(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let mut current = id.to_string();
    let mut found = None;
    // A chain is as long as the merges made by hand; the bound guards a cycle.
    for _ in 0..64 {
        let next: Option<String> = merged::table
            .filter(merged::org_id.eq(org_id))
            .filter(merged::id.eq(&current))
            .select(merged::into_id)
            .first(conn)
            .optional()?;
        match next {
            Some(n) => {
                found = Some(n.clone());
                current = n;
            }
            None => break,
        }
    }
    Ok(found)
}

/// Ok if the org has this person; else 404, naming in `details.merged_into`
/// the person it lives on in when it was merged away by hand.
pub fn require_person(conn: &mut DbConnection, org_id: &str, id: &str) -> Result<(), StoreError> {
    if super::people::person_exists(conn, org_id, id)? {
        return Ok(());
    }
    Err(match merged_into(conn, org_id, id)? {
        Some(into) => StoreError::Refused {
            status: 404,
            message: format!("person {id} was merged into {into}"),
            details: serde_json::json!({ "merged_into": into }),
        },
        None => StoreError::refused(404, "person not found"),
    })
}

/// When each of these people was created.
pub fn people_created(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<(String, NaiveDateTime)>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(
            people::table
                .filter(people::id.eq_any(chunk))
                .select((people::id, people::created_at))
                .load::<(String, NaiveDateTime)>(conn)?,
        );
    }
    Ok(out)
}

/// Puts back a person under its id, unless it exists.
pub fn restore_person(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    created_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    if super::people::person_exists(conn, org_id, id)? {
        return Ok(());
    }
    diesel::insert_into(people::table)
        .values((
            people::id.eq(id),
            people::org_id.eq(org_id),
            people::created_at.eq(created_at),
            people::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn insert_blocked(conn: &mut DbConnection, row: &BlockedRow) -> Result<(), StoreError> {
    diesel::insert_into(blocked::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => StoreError::Conflict(format!("{} `{}` is blocked already", row.kind, row.value)),
            other => other.into(),
        })?;
    Ok(())
}

pub fn find_blocked(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<BlockedRow>, StoreError> {
    Ok(blocked::table
        .filter(blocked::org_id.eq(org_id))
        .filter(blocked::id.eq(id))
        .select(BlockedRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_blocked_value(
    conn: &mut DbConnection,
    org_id: &str,
    kind: &str,
    value: &str,
) -> Result<Option<BlockedRow>, StoreError> {
    Ok(blocked::table
        .filter(blocked::org_id.eq(org_id))
        .filter(blocked::kind.eq(kind))
        .filter(blocked::value.eq(value))
        .select(BlockedRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn delete_blocked(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    diesel::delete(blocked::table.filter(blocked::id.eq(id))).execute(conn)?;
    Ok(())
}

/// One page of the org's blocked values, in id order after `after`.
pub fn list_blocked(
    conn: &mut DbConnection,
    org_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<BlockedRow>, StoreError> {
    let mut q = blocked::table
        .filter(blocked::org_id.eq(org_id))
        .order(blocked::id.asc())
        .limit(limit)
        .select(BlockedRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(blocked::id.gt(after.to_string()));
    }
    Ok(q.load(conn)?)
}

/// The org's blocked values that can link contacts: `(kind, value)`.
pub fn blocked_values(
    conn: &mut DbConnection,
    org_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(blocked::table
        .filter(blocked::org_id.eq(org_id))
        .select((blocked::kind, blocked::value))
        .load(conn)?)
}

/// Whether any operation in force holds contacts of the org.
pub fn org_has_bonds(conn: &mut DbConnection, org_id: &str) -> Result<bool, StoreError> {
    Ok(bonds::table
        .filter(bonds::org_id.eq(org_id))
        .select(bonds::contact_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}
