//! Queries on `people`, and the reads and writes of identity linking (the
//! grouping itself is `change::link`, free of SQL).

use diesel::prelude::*;

use super::models::ContactRow;
use super::schema::{contact_keys, contacts, people};
use super::{DbConnection, StoreError};

/// The org's person with this id, if it exists.
pub fn person_exists(conn: &mut DbConnection, org_id: &str, id: &str) -> Result<bool, StoreError> {
    Ok(people::table
        .filter(people::org_id.eq(org_id))
        .filter(people::id.eq(id))
        .select(people::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// One page of person ids, in creation order, filtered by phone (E.164) and text.
pub fn list_people(
    conn: &mut DbConnection,
    org_id: &str,
    phone: Option<&str>,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut query = people::table
        .filter(people::org_id.eq(org_id))
        .select(people::id)
        .order(people::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(phone) = phone {
        query = query.filter(
            people::id.nullable().eq_any(
                contacts::table
                    .inner_join(contact_keys::table)
                    .filter(contacts::org_id.eq(org_id.to_string()))
                    .filter(contact_keys::kind.eq("phone"))
                    .filter(contact_keys::value.eq(phone.to_string()))
                    .select(contacts::person_id),
            ),
        );
    }
    if let Some(q) = q {
        query = query.filter(
            people::id.nullable().eq_any(
                contacts::table
                    .filter(contacts::org_id.eq(org_id.to_string()))
                    .filter(
                        contacts::search_text
                            .like(super::contacts::like_pattern(q))
                            .escape('\\'),
                    )
                    .select(contacts::person_id),
            ),
        );
    }
    if let Some(after) = after {
        query = query.filter(people::id.gt(after.to_string()));
    }
    Ok(query.load(conn)?)
}

/// The live contacts of these people, oldest first.
pub fn contacts_of(
    conn: &mut DbConnection,
    org_id: &str,
    person_ids: &[String],
) -> Result<Vec<ContactRow>, StoreError> {
    Ok(contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(
            contacts::person_id.eq_any(
                person_ids
                    .iter()
                    .map(|p| Some(p.clone()))
                    .collect::<Vec<_>>(),
            ),
        )
        .filter(contacts::remote_was_deleted.eq(false))
        .order(contacts::id.asc())
        .select(ContactRow::as_select())
        .load(conn)?)
}

// ---- linking's reads and writes (the grouping itself is `change::link`) ----

/// Serialises the linking of one org across processes: on PostgreSQL a
/// transaction-scoped advisory lock, taken before a transaction's first write so
/// that two writers never wait on each other's rows; on SQLite writers are one at
/// a time already. Without it two concurrent pages could each miss the other's
/// contact with the same phone and leave one person split in two.
pub fn lock_org(conn: &mut DbConnection, org_id: &str) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("unicontacts.link:{org_id}").as_bytes());
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(i64::from_be_bytes(key))
            .execute(c)?;
    }
    Ok(())
}

/// Inserts new people, many rows per statement (COPY on PostgreSQL: a first sync
/// makes a person per new contact).
pub fn insert_people(
    conn: &mut DbConnection,
    org_id: &str,
    ids: &[String],
    now: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                people::id.eq(id),
                people::org_id.eq(org_id),
                people::created_at.eq(now),
                people::updated_at.eq(now),
            )
        })
        .collect();
    match conn {
        // Multi-row inserts exist per backend, not on the MultiBackend.
        DbConnection::Sqlite(c) => {
            for chunk in rows.chunks(500) {
                diesel::insert_into(people::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
        DbConnection::Postgresql(c) => {
            diesel::copy_from(people::table)
                .from_insertable(&rows)
                .execute(c)?;
        }
    }
    Ok(())
}

/// Sets each contact's person: `(contact id, person id)` pairs.
pub fn set_people(conn: &mut DbConnection, moves: &[(String, String)]) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    match conn {
        // A statement per contact: SQLite runs a cached statement in microseconds.
        DbConnection::Sqlite(_) => {
            for (contact, person) in moves {
                diesel::update(contacts::table.filter(contacts::id.eq(contact)))
                    .set(contacts::person_id.eq(Some(person)))
                    .execute(conn)?;
            }
        }
        // One statement of two array parameters, not a round trip per contact.
        DbConnection::Postgresql(c) => {
            let (ids, persons): (Vec<&str>, Vec<&str>) =
                moves.iter().map(|(c, p)| (c.as_str(), p.as_str())).unzip();
            diesel::sql_query(
                "UPDATE contacts SET person_id = m.person
                 FROM unnest($1::text[], $2::text[]) AS m(contact, person)
                 WHERE contacts.id = m.contact",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(persons)
            .execute(c)?;
        }
    }
    Ok(())
}

/// Marks people as changed now.
pub fn touch_people(
    conn: &mut DbConnection,
    ids: &[String],
    now: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(500) {
        diesel::update(people::table.filter(people::id.eq_any(chunk)))
            .set(people::updated_at.eq(now))
            .execute(conn)?;
    }
    Ok(())
}

/// One page of the org's live contacts in id order after `after`: `(id, person)`.
pub fn live_contacts_page(
    conn: &mut DbConnection,
    org_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    let mut q = contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .order(contacts::id.asc())
        .select((contacts::id, contacts::person_id))
        .limit(limit)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(contacts::id.gt(a.to_string()));
    }
    Ok(q.load(conn)?)
}

/// One page of the org's live contacts' keys of `kind`, in (value, contact)
/// order after `after`: `(value, contact id)`. Equal keys come out adjacent.
pub fn live_keys_page(
    conn: &mut DbConnection,
    org_id: &str,
    kind: &str,
    after: Option<&(String, String)>,
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut q = contact_keys::table
        .inner_join(contacts::table)
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .filter(contact_keys::kind.eq(kind))
        .order((contact_keys::value.asc(), contact_keys::contact_id.asc()))
        .select((contact_keys::value, contact_keys::contact_id))
        .limit(limit)
        .into_boxed();
    if let Some((v, c)) = after {
        q = q.filter(
            contact_keys::value.gt(v.clone()).or(contact_keys::value
                .eq(v.clone())
                .and(contact_keys::contact_id.gt(c.clone()))),
        );
    }
    Ok(q.load(conn)?)
}

/// The org's contacts among `ids`: `(id, person, deleted upstream)`.
pub fn find_link_state(
    conn: &mut DbConnection,
    org_id: &str,
    ids: &[&String],
) -> Result<Vec<(String, Option<String>, bool)>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(
            contacts::table
                .filter(contacts::org_id.eq(org_id))
                .filter(contacts::id.eq_any(chunk))
                .select((
                    contacts::id,
                    contacts::person_id,
                    contacts::remote_was_deleted,
                ))
                .load::<(String, Option<String>, bool)>(conn)?,
        );
    }
    Ok(out)
}

/// Every contact of these people (person ids are one org's, so the index on
/// `person_id` alone answers).
pub fn contact_ids_of_people(
    conn: &mut DbConnection,
    person_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for chunk in person_ids.chunks(500) {
        out.extend(
            contacts::table
                .filter(contacts::person_id.eq_any(chunk))
                .select(contacts::id)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// The keys of `kinds` these contacts hold: `(contact id, kind, value)`.
pub fn keys_of_contacts(
    conn: &mut DbConnection,
    contact_ids: &[&str],
    kinds: &[&str],
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut out = Vec::new();
    for chunk in contact_ids.chunks(500) {
        out.extend(
            contact_keys::table
                .filter(contact_keys::contact_id.eq_any(chunk))
                .filter(contact_keys::kind.eq_any(kinds))
                .select((
                    contact_keys::contact_id,
                    contact_keys::kind,
                    contact_keys::value,
                ))
                .load::<(String, String, String)>(conn)?,
        );
    }
    Ok(out)
}

/// The contacts (any org, any state: the caller filters) holding a key of `kind`
/// with one of `values`.
pub fn contacts_with_keys(
    conn: &mut DbConnection,
    kind: &str,
    values: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for chunk in values.chunks(500) {
        out.extend(
            contact_keys::table
                .filter(contact_keys::kind.eq(kind))
                .filter(contact_keys::value.eq_any(chunk))
                .select(contact_keys::contact_id)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// Takes these contacts out of their people.
pub fn unlink_contacts(conn: &mut DbConnection, ids: &[&str]) -> Result<(), StoreError> {
    for chunk in ids.chunks(500) {
        diesel::update(contacts::table.filter(contacts::id.eq_any(chunk)))
            .set(contacts::person_id.eq(None::<String>))
            .execute(conn)?;
    }
    Ok(())
}

/// Takes the org's deleted contacts out of their people.
pub fn unlink_deleted(conn: &mut DbConnection, org_id: &str) -> Result<(), StoreError> {
    diesel::update(
        contacts::table
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::remote_was_deleted.eq(true))
            .filter(contacts::person_id.is_not_null()),
    )
    .set(contacts::person_id.eq(None::<String>))
    .execute(conn)?;
    Ok(())
}

/// Deletes the org's people left without contacts: all of them, or those among
/// `among`. Returns how many went.
pub fn delete_empty_people(
    conn: &mut DbConnection,
    org_id: &str,
    among: Option<&[String]>,
) -> Result<Vec<String>, StoreError> {
    let empty = || {
        diesel::dsl::not(diesel::dsl::exists(
            contacts::table.filter(contacts::person_id.eq(people::id.nullable())),
        ))
    };
    // Read, then deleted by id: which ones went is told (for their events).
    let mut gone: Vec<String> = Vec::new();
    match among {
        None => {
            gone = people::table
                .filter(people::org_id.eq(org_id))
                .filter(empty())
                .select(people::id)
                .load(conn)?;
        }
        Some(ids) => {
            for chunk in ids.chunks(500) {
                gone.extend(
                    people::table
                        .filter(people::org_id.eq(org_id))
                        .filter(people::id.eq_any(chunk))
                        .filter(empty())
                        .select(people::id)
                        .load::<String>(conn)?,
                );
            }
        }
    }
    gone.sort();
    for chunk in gone.chunks(500) {
        diesel::delete(people::table.filter(people::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(gone)
}

/// The org's linking identifiers (phone, LID) that more than `max` of its live
/// contacts hold: `(kind, value, holders)`.
pub fn overshared(
    conn: &mut DbConnection,
    org_id: &str,
    max: i64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(contact_keys::table
        .inner_join(contacts::table)
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .filter(contact_keys::kind.eq_any(["lid", "phone"]))
        .group_by((contact_keys::kind, contact_keys::value))
        .having(diesel::dsl::count_star().gt(max))
        .select((
            contact_keys::kind,
            contact_keys::value,
            diesel::dsl::count_star(),
        ))
        .load(conn)?)
}

/// The live contacts of these people: `(contact id, person id)`, by contact id.
pub fn members(
    conn: &mut DbConnection,
    person_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for chunk in person_ids.chunks(500) {
        let rows: Vec<(String, Option<String>)> = contacts::table
            .filter(contacts::person_id.eq_any(chunk.iter().map(|p| Some(p.clone()))))
            .filter(contacts::remote_was_deleted.eq(false))
            .select((contacts::id, contacts::person_id))
            .load(conn)?;
        out.extend(rows.into_iter().filter_map(|(c, p)| Some((c, p?))));
    }
    out.sort();
    Ok(out)
}
