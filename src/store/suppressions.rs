//! Queries on `suppressions` and `suppressed_identifiers`: what an erasure
//! leaves of a person, keyed hashes of its identifiers that every way into
//! the store checks. The hashes are made by the caller (`Store::identifier_hash`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::schema::{org_secrets, suppressed_identifiers as hashes, suppressions};
use super::{DbConnection, StoreError};
use crate::secrets::Sealer;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = suppressions)]
pub struct SuppressionRow {
    pub id: String,
    pub org_id: String,
    /// Comma-separated kinds.
    pub kinds: String,
    pub reason: String,
    pub api_key_id: Option<String>,
    pub request_id: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Records a suppression and its hashes: `(kind, hash)`.
pub fn insert(
    conn: &mut DbConnection,
    row: &SuppressionRow,
    identifiers: &[(String, String)],
) -> Result<(), StoreError> {
    diesel::insert_into(suppressions::table)
        .values(row)
        .execute(conn)?;
    for (kind, hash) in identifiers {
        diesel::insert_into(hashes::table)
            .values((
                hashes::org_id.eq(&row.org_id),
                hashes::kind.eq(kind),
                hashes::hash.eq(hash),
                hashes::suppression_id.eq(&row.id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether the org suppresses anything (most do not: the hashing is skipped).
pub fn org_has_any(conn: &mut DbConnection, org_id: &str) -> Result<bool, StoreError> {
    Ok(hashes::table
        .filter(hashes::org_id.eq(org_id))
        .select(hashes::hash)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Those of `hashes_of` (each `(kind, hash)`) the org suppresses.
pub fn suppressed_among(
    conn: &mut DbConnection,
    org_id: &str,
    wanted: &[(String, String)],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    let values: Vec<&str> = wanted.iter().map(|(_, h)| h.as_str()).collect();
    for chunk in values.chunks(500) {
        out.extend(
            hashes::table
                .filter(hashes::org_id.eq(org_id))
                .filter(hashes::hash.eq_any(chunk))
                .select((hashes::kind, hashes::hash))
                .load::<(String, String)>(conn)?,
        );
    }
    out.retain(|found| wanted.contains(found));
    Ok(out)
}

pub fn find(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<SuppressionRow>, StoreError> {
    Ok(suppressions::table
        .filter(suppressions::org_id.eq(org_id))
        .filter(suppressions::id.eq(id))
        .select(SuppressionRow::as_select())
        .first(conn)
        .optional()?)
}

/// Lifts a suppression (its hashes go with it).
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    diesel::delete(hashes::table.filter(hashes::suppression_id.eq(id))).execute(conn)?;
    diesel::delete(suppressions::table.filter(suppressions::id.eq(id))).execute(conn)?;
    Ok(())
}

/// One page of the org's suppressions, in id order after `after`.
pub fn list(
    conn: &mut DbConnection,
    org_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<SuppressionRow>, StoreError> {
    let mut q = suppressions::table
        .filter(suppressions::org_id.eq(org_id))
        .order(suppressions::id.asc())
        .limit(limit)
        .select(SuppressionRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(suppressions::id.gt(after.to_string()));
    }
    Ok(q.load(conn)?)
}

// ---- the org's key of identifier hashes ----

/// The org's key of identifier hashes, opened; made (random, sealed like
/// credentials) when `create` and the org has none yet.
pub fn identifier_key(
    conn: &mut DbConnection,
    sealer: &Sealer,
    org_id: &str,
    create: bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    let stored: Option<String> = org_secrets::table
        .filter(org_secrets::org_id.eq(org_id))
        .select(org_secrets::identifier_key)
        .first(conn)
        .optional()?;
    let encoded = match (stored, create) {
        (Some(sealed), _) => sealer.open(org_id, &sealed)?,
        (None, false) => return Ok(None),
        (None, true) => {
            let fresh = Sealer::generate_key();
            diesel::insert_into(org_secrets::table)
                .values((
                    org_secrets::org_id.eq(org_id),
                    org_secrets::identifier_key.eq(sealer.seal(org_id, &fresh)),
                ))
                .execute(conn)?;
            fresh
        }
    };
    B64.decode(encoded.trim())
        .map(Some)
        .map_err(|_| StoreError::Corrupt(format!("org {org_id}: its identifier key")))
}

/// An identifier's keyed hash: lowercase hex of HMAC-SHA256 over its kind and
/// its normalised value.
pub fn identifier_hash(key: &[u8], kind: &str, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(kind.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Every org's sealed identifier key: `(org id, sealed)`.
pub fn stored_keys(conn: &mut DbConnection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(org_secrets::table
        .select((org_secrets::org_id, org_secrets::identifier_key))
        .load(conn)?)
}

pub fn set_key(conn: &mut DbConnection, org_id: &str, sealed: &str) -> Result<(), StoreError> {
    diesel::update(org_secrets::table.filter(org_secrets::org_id.eq(org_id)))
        .set(org_secrets::identifier_key.eq(sealed))
        .execute(conn)?;
    Ok(())
}

// ---- an erasure's deletions ----

/// Deletes contacts and every row that holds their data: their keys, the
/// sync runs' seen sets and the group member lists naming their remote ids,
/// held deletions, bonds, and stored answers of writes that returned them; the
/// events about them lose the remote id (the events stay, with ids only).
/// `contacts`: `(id, connection id, remote id)`.
pub fn erase_contacts(
    conn: &mut DbConnection,
    org_id: &str,
    contacts: &[(String, String, String)],
) -> Result<(), StoreError> {
    use super::schema::{
        chat_groups, contact_keys, contacts as contact_rows, events, held_deletions,
        idempotency_keys, identity_bonds, sync_runs, sync_seen,
    };
    let ids: Vec<&str> = contacts.iter().map(|(id, _, _)| id.as_str()).collect();
    for chunk in ids.chunks(500) {
        diesel::delete(contact_keys::table.filter(contact_keys::contact_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(held_deletions::table.filter(held_deletions::contact_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(identity_bonds::table.filter(identity_bonds::contact_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(contact_rows::table.filter(contact_rows::id.eq_any(chunk))).execute(conn)?;
    }
    for (id, connection_id, remote_id) in contacts {
        diesel::delete(
            sync_seen::table
                .filter(sync_seen::remote_id.eq(remote_id))
                .filter(
                    sync_seen::run_id.eq_any(
                        sync_runs::table
                            .filter(sync_runs::connection_id.eq(connection_id))
                            .select(sync_runs::id),
                    ),
                ),
        )
        .execute(conn)?;
        let pattern = format!("%{id}%");
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::org_id.eq(org_id))
                .filter(idempotency_keys::body.like(&pattern)),
        )
        .execute(conn)?;
        let mentions: Vec<(i64, String)> = events::table
            .filter(events::org_id.eq(org_id))
            .filter(events::data.like(&pattern))
            .select((events::seq, events::data))
            .load(conn)?;
        for (seq, data) in mentions {
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&data) else {
                continue;
            };
            if let Some(object) = value.as_object_mut() {
                object.remove("remote_id");
            }
            diesel::update(
                events::table
                    .filter(events::org_id.eq(org_id))
                    .filter(events::seq.eq(seq)),
            )
            .set(events::data.eq(value.to_string()))
            .execute(conn)?;
        }
        let groups: Vec<(String, String)> = chat_groups::table
            .filter(chat_groups::connection_id.eq(connection_id))
            .filter(chat_groups::members.like(format!("%{remote_id}%")))
            .select((chat_groups::chat_id, chat_groups::members))
            .load(conn)?;
        for (chat_id, members) in groups {
            let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(&members) else {
                continue;
            };
            let kept: Vec<serde_json::Value> = list
                .into_iter()
                .filter(|m| m.get(0).and_then(|v| v.as_str()) != Some(remote_id.as_str()))
                .collect();
            diesel::update(
                chat_groups::table
                    .filter(chat_groups::connection_id.eq(connection_id))
                    .filter(chat_groups::chat_id.eq(&chat_id)),
            )
            .set(chat_groups::members.eq(serde_json::Value::from(kept).to_string()))
            .execute(conn)?;
        }
    }
    Ok(())
}

/// Those of `identifiers` (`(kind, normalised value)`, by index) the org
/// suppresses. Without a suppression, no hashing and one indexed lookup.
pub fn suppressed_identifiers(
    conn: &mut DbConnection,
    sealer: Option<&Sealer>,
    org_id: &str,
    identifiers: &[(&str, &str)],
) -> Result<Vec<usize>, StoreError> {
    if identifiers.is_empty() || !org_has_any(conn, org_id)? {
        return Ok(Vec::new());
    }
    let sealer = sealer.ok_or(StoreError::Secret(crate::secrets::SecretError::BadKey))?;
    let Some(key) = identifier_key(conn, sealer, org_id, false)? else {
        return Ok(Vec::new());
    };
    let wanted: Vec<(String, String)> = identifiers
        .iter()
        .map(|(kind, value)| (kind.to_string(), identifier_hash(&key, kind, value)))
        .collect();
    let found: std::collections::HashSet<(String, String)> =
        suppressed_among(conn, org_id, &wanted)?
            .into_iter()
            .collect();
    Ok(wanted
        .iter()
        .enumerate()
        .filter(|(_, w)| found.contains(*w))
        .map(|(i, _)| i)
        .collect())
}
