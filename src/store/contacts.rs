//! Queries on `contacts` and `contact_keys`. A contact is upserted by
//! (connection, remote id) and only written when its content hash changes.
//! Upserts are select-then-insert/update in a transaction (retried once on a
//! unique race), the same SQL on both backends.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use unicontacts_adapters::canonical::{CanonicalContact, ContactRecord, RecordField};
use unicontacts_adapters::ProviderKind;

use super::models::ContactRow;
use super::schema::{contact_keys, contacts};
use super::{DbConnection, StoreError};
use crate::ids;

type Backend = <DbConnection as diesel::Connection>::Backend;

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created,
    /// `changed`: the canonical fields that differ; `restored`: the contact had
    /// been deleted upstream and is back.
    Updated {
        changed: Vec<String>,
        restored: bool,
    },
    Unchanged,
}

impl Upserted {
    /// The contact event it makes, if any.
    pub fn event_type(&self) -> Option<super::event_type::EventType> {
        use super::event_type::EventType;
        match self {
            Self::Created => Some(EventType::ContactCreated),
            Self::Updated { restored: true, .. } => Some(EventType::ContactRestored),
            Self::Updated { .. } => Some(EventType::ContactUpdated),
            Self::Unchanged => None,
        }
    }
}

/// Where a record comes from.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub org_id: &'a str,
    pub connection_id: &'a str,
    pub provider: ProviderKind,
}

/// A record made ready to store: serialised, hashed and keyed once, whether it is
/// then compared, inserted or updated.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub remote_id: String,
    remote_updated_at: Option<NaiveDateTime>,
    record_json: String,
    remote_data: Option<String>,
    hash: String,
    /// The fields the record's answer did not carry: kept from the stored copy.
    unknown: Vec<RecordField>,
    search_text: String,
    keys: Vec<(&'static str, String)>,
    /// Lowercased: with the phone and LID keys, what a suppression matches.
    emails: Vec<String>,
}

impl Prepared {
    /// The identifiers an erasure suppresses: `(kind, value)` of its phones
    /// (E.164), its LID and its emails (lowercased).
    pub fn identifiers(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = self
            .keys
            .iter()
            .filter(|(kind, _)| matches!(*kind, "phone" | "lid"))
            .cloned()
            .collect();
        out.extend(self.emails.iter().map(|e| ("email", e.clone())));
        out
    }

    /// The content hash the record is stored under (what a sync compares).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// This record with the fields it does not know taken from the stored row.
    fn merged_with(&self, stored: &ContactRow) -> Result<Prepared, StoreError> {
        let corrupt =
            |e: serde_json::Error| StoreError::Corrupt(format!("contact {}: {e}", stored.id));
        let kept: ContactRecord = serde_json::from_str(&stored.record).map_err(corrupt)?;
        let mut record: ContactRecord = serde_json::from_str(&self.record_json).map_err(corrupt)?;
        record.unknown = self.unknown.clone();
        record.keep_unknown_from(&kept);
        let mut merged = prepare(record)?;
        merged.remote_data = self.remote_data.clone();
        Ok(merged)
    }

    /// The row of a new contact (a new id, no person yet).
    fn new_row(
        &self,
        origin: &Origin<'_>,
        fetched_at: NaiveDateTime,
        now: NaiveDateTime,
        list_hash: Option<String>,
    ) -> ContactRow {
        ContactRow {
            id: ids::new_id(ids::CONTACT),
            org_id: origin.org_id.to_string(),
            connection_id: origin.connection_id.to_string(),
            provider: origin.provider.as_str().to_string(),
            remote_id: self.remote_id.clone(),
            person_id: None,
            search_text: self.search_text.clone(),
            record: self.record_json.clone(),
            remote_data: self.remote_data.clone(),
            content_hash: self.hash.clone(),
            remote_updated_at: self.remote_updated_at,
            fetched_at,
            remote_was_deleted: false,
            created_at: now,
            updated_at: now,
            list_hash,
        }
    }
}

/// Takes the record apart into what a row holds (no copy of `remote_data`).
///
/// The content hash covers the canonical record: what we know of the contact. The
/// provider's raw object is not in it (a list item's and a detail answer's raw
/// objects differ for one unchanged contact).
pub fn prepare(mut record: ContactRecord) -> Result<Prepared, StoreError> {
    let remote_data = record.remote_data.take();
    let unknown = std::mem::take(&mut record.unknown);
    let record_json =
        serde_json::to_string(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let remote_data = remote_data
        .map(|v| serde_json::to_string(&v))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let hash = hex::encode(Sha256::digest(record_json.as_bytes()));

    let mut search = Vec::new();
    for s in [
        &record.display_name,
        &record.first_name,
        &record.last_name,
        &record.company,
    ]
    .into_iter()
    .flatten()
    {
        search.push(s.to_lowercase());
    }
    let mut keys = Vec::new();
    for p in &record.phones {
        search.push(p.raw.to_lowercase());
        if let Some(e) = &p.e164 {
            search.push(e.clone());
            keys.push(("phone", e.clone()));
        }
    }
    for e in &record.emails {
        search.push(e.address.to_lowercase());
    }
    if let Some(lid) = &record.wa_lid {
        keys.push(("lid", lid.clone()));
    }
    for l in &record.labels {
        keys.push(("label", l.to_lowercase()));
    }
    for m in &record.memberships {
        keys.push(("membership", m.remote_id.clone()));
    }
    keys.sort();
    keys.dedup();
    Ok(Prepared {
        remote_id: record.remote_id,
        remote_updated_at: record.remote_updated_at.map(|t| t.naive_utc()),
        record_json,
        remote_data,
        hash,
        unknown,
        search_text: search.join("\n"),
        keys,
        emails: record
            .emails
            .iter()
            .map(|e| e.address.to_lowercase())
            .collect(),
    })
}

/// Contacts known to be new, as rows (ids given) with their keys: a sync's first
/// pass links them before they are inserted, so each row is written once.
pub struct NewContacts {
    pub rows: Vec<ContactRow>,
    /// `(row index, kind, value)`.
    pub keys: Vec<(usize, &'static str, String)>,
}

impl NewContacts {
    pub fn new(
        origin: &Origin<'_>,
        records: &[(Prepared, Option<String>)],
        fetched_at: NaiveDateTime,
    ) -> Self {
        let now = ids::now();
        let mut rows = Vec::with_capacity(records.len());
        let mut keys = Vec::new();
        for (p, list_hash) in records {
            for (kind, value) in &p.keys {
                keys.push((rows.len(), *kind, value.clone()));
            }
            rows.push(p.new_row(origin, fetched_at, now, list_hash.clone()));
        }
        NewContacts { rows, keys }
    }

    /// Inserts them: many rows per statement on SQLite, one binary COPY per table
    /// on PostgreSQL (a sync page of 2 000: 60 ms instead of 100 for the contacts,
    /// and a third less for their keys). A unique violation means one was inserted
    /// meanwhile: the caller falls back to upserts.
    pub fn insert(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let keys = || {
            self.keys.iter().map(|(row, kind, value)| {
                (
                    contact_keys::contact_id.eq(&self.rows[*row].id),
                    contact_keys::kind.eq(*kind),
                    contact_keys::value.eq(value),
                )
            })
        };
        match conn {
            // Multi-row inserts exist per backend, not on the MultiBackend.
            DbConnection::Sqlite(c) => {
                for chunk in self.rows.chunks(200) {
                    diesel::insert_into(contacts::table)
                        .values(chunk)
                        .execute(c)?;
                }
                let keys: Vec<_> = keys().collect();
                for chunk in keys.chunks(1000) {
                    diesel::insert_into(contact_keys::table)
                        .values(chunk)
                        .execute(c)?;
                }
            }
            DbConnection::Postgresql(c) => {
                diesel::copy_from(contacts::table)
                    .from_insertable(&self.rows)
                    .execute(c)?;
                let keys: Vec<_> = keys().collect();
                diesel::copy_from(contact_keys::table)
                    .from_insertable(&keys)
                    .execute(c)?;
            }
        }
        Ok(())
    }
}

/// What the store holds of a connection's contacts, by remote id, for one page.
#[derive(Debug, Clone)]
pub struct Existing {
    pub content_hash: String,
    pub list_hash: Option<String>,
    pub deleted: bool,
}

pub fn find_existing(
    conn: &mut DbConnection,
    connection_id: &str,
    remote_ids: &[String],
) -> Result<std::collections::HashMap<String, Existing>, StoreError> {
    let mut out = std::collections::HashMap::new();
    for chunk in remote_ids.chunks(500) {
        let rows: Vec<(String, String, Option<String>, bool)> = contacts::table
            .filter(contacts::connection_id.eq(connection_id))
            .filter(contacts::remote_id.eq_any(chunk))
            .select((
                contacts::remote_id,
                contacts::content_hash,
                contacts::list_hash,
                contacts::remote_was_deleted,
            ))
            .load(conn)?;
        for (remote_id, content_hash, list_hash, deleted) in rows {
            out.insert(
                remote_id,
                Existing {
                    content_hash,
                    list_hash,
                    deleted,
                },
            );
        }
    }
    Ok(out)
}

/// Records the hash of the list item a contact was read from.
pub fn set_list_hash(
    conn: &mut DbConnection,
    contact_id: &str,
    list_hash: &str,
) -> Result<(), StoreError> {
    diesel::update(contacts::table.filter(contacts::id.eq(contact_id)))
        .set(contacts::list_hash.eq(Some(list_hash)))
        .execute(conn)?;
    Ok(())
}

fn write_keys(
    conn: &mut DbConnection,
    contact_id: &str,
    keys: &[(&'static str, String)],
) -> Result<(), StoreError> {
    diesel::delete(contact_keys::table.filter(contact_keys::contact_id.eq(contact_id)))
        .execute(conn)?;
    for (kind, value) in keys {
        diesel::insert_into(contact_keys::table)
            .values((
                contact_keys::contact_id.eq(contact_id),
                contact_keys::kind.eq(*kind),
                contact_keys::value.eq(value),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_contact_by_remote(
    conn: &mut DbConnection,
    connection_id: &str,
    remote_id: &str,
) -> Result<Option<ContactRow>, StoreError> {
    Ok(contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_id.eq(remote_id))
        .select(ContactRow::as_select())
        .first(conn)
        .optional()?)
}

/// The org's contact with this id; another org's is `None`.
pub fn find_contact(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<ContactRow>, StoreError> {
    Ok(contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::id.eq(id))
        .select(ContactRow::as_select())
        .first(conn)
        .optional()?)
}

/// The org's contact as served: without its search text, and without the
/// provider's object unless asked for (it is often the larger column).
pub fn find_served(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    include_remote_data: bool,
) -> Result<Option<ContactRow>, StoreError> {
    if include_remote_data {
        return find_contact(conn, org_id, id);
    }
    let row: Option<Served> = contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::id.eq(id))
        .select(Served::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(ContactRow::from))
}

/// The columns a served contact needs: not its search text, the provider's
/// object or the list hash.
#[derive(Queryable, Selectable)]
#[diesel(table_name = contacts)]
struct Served {
    id: String,
    org_id: String,
    connection_id: String,
    provider: String,
    remote_id: String,
    person_id: Option<String>,
    record: String,
    content_hash: String,
    remote_updated_at: Option<NaiveDateTime>,
    fetched_at: NaiveDateTime,
    remote_was_deleted: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<Served> for ContactRow {
    fn from(c: Served) -> ContactRow {
        ContactRow {
            id: c.id,
            org_id: c.org_id,
            connection_id: c.connection_id,
            provider: c.provider,
            remote_id: c.remote_id,
            person_id: c.person_id,
            search_text: String::new(),
            record: c.record,
            remote_data: None,
            content_hash: c.content_hash,
            remote_updated_at: c.remote_updated_at,
            fetched_at: c.fetched_at,
            remote_was_deleted: c.remote_was_deleted,
            created_at: c.created_at,
            updated_at: c.updated_at,
            list_hash: None,
        }
    }
}

/// The org's contacts `items` name (by id), each with what was done to it, as
/// stored now (their people as linked).
pub fn find_contacts<T: Clone>(
    conn: &mut DbConnection,
    org_id: &str,
    items: &[(String, T)],
) -> Result<Vec<(ContactRow, T)>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let rows: Vec<ContactRow> = contacts::table
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::id.eq_any(ids))
            .select(ContactRow::as_select())
            .load(conn)?;
        for (id, what) in chunk {
            if let Some(row) = rows.iter().find(|r| &r.id == id) {
                out.push((row.clone(), what.clone()));
            }
        }
    }
    Ok(out)
}

/// Writes the record if it is new or changed; a contact seen again is no longer deleted.
pub fn upsert_contact(
    conn: &mut DbConnection,
    origin: &Origin<'_>,
    record: &ContactRecord,
    fetched_at: NaiveDateTime,
) -> Result<(ContactRow, Upserted), StoreError> {
    upsert_prepared(conn, origin, &prepare(record.clone())?, fetched_at)
}

/// `upsert_contact` for a record already prepared.
pub fn upsert_prepared(
    conn: &mut DbConnection,
    origin: &Origin<'_>,
    prepared: &Prepared,
    fetched_at: NaiveDateTime,
) -> Result<(ContactRow, Upserted), StoreError> {
    let attempt = |conn: &mut DbConnection| {
        conn.transaction(|conn| upsert_once(conn, origin, prepared, fetched_at))
    };
    match attempt(conn) {
        // Someone inserted the same contact between our read and our insert: it exists now.
        Err(StoreError::Conflict(_)) => attempt(conn),
        other => other,
    }
}

fn upsert_once(
    conn: &mut DbConnection,
    origin: &Origin<'_>,
    p: &Prepared,
    fetched_at: NaiveDateTime,
) -> Result<(ContactRow, Upserted), StoreError> {
    let now = ids::now();
    let stored = find_contact_by_remote(conn, origin.connection_id, &p.remote_id)?;
    let merged;
    let p = match &stored {
        Some(row) if !p.unknown.is_empty() => {
            merged = p.merged_with(row)?;
            &merged
        }
        _ => p,
    };
    match stored {
        None => {
            let row = p.new_row(origin, fetched_at, now, None);
            diesel::insert_into(contacts::table)
                .values(&row)
                .execute(conn)?;
            write_keys(conn, &row.id, &p.keys)?;
            Ok((row, Upserted::Created))
        }
        Some(mut row) if row.content_hash == p.hash && !row.remote_was_deleted => {
            diesel::update(contacts::table.filter(contacts::id.eq(&row.id)))
                .set(contacts::fetched_at.eq(fetched_at))
                .execute(conn)?;
            row.fetched_at = fetched_at;
            Ok((row, Upserted::Unchanged))
        }
        Some(mut row) => {
            let changed = changed_fields(&row.record, &p.record_json);
            let restored = row.remote_was_deleted;
            if changed.is_empty() && !restored {
                // Only the form of the stored record differs (a field added to
                // the model since): rewritten in the new form, not a change.
                row.record = p.record_json.clone();
                row.content_hash = p.hash.clone();
                row.fetched_at = fetched_at;
                diesel::update(contacts::table.filter(contacts::id.eq(&row.id)))
                    .set((
                        contacts::record.eq(&row.record),
                        contacts::content_hash.eq(&row.content_hash),
                        contacts::fetched_at.eq(fetched_at),
                    ))
                    .execute(conn)?;
                return Ok((row, Upserted::Unchanged));
            }
            row.search_text = p.search_text.clone();
            row.record = p.record_json.clone();
            row.remote_data = p.remote_data.clone();
            row.content_hash = p.hash.clone();
            row.remote_updated_at = p.remote_updated_at;
            row.fetched_at = fetched_at;
            row.remote_was_deleted = false;
            row.updated_at = now;
            diesel::update(contacts::table.filter(contacts::id.eq(&row.id)))
                .set((
                    contacts::search_text.eq(&row.search_text),
                    contacts::record.eq(&row.record),
                    contacts::remote_data.eq(&row.remote_data),
                    contacts::content_hash.eq(&row.content_hash),
                    contacts::remote_updated_at.eq(row.remote_updated_at),
                    contacts::fetched_at.eq(row.fetched_at),
                    contacts::remote_was_deleted.eq(false),
                    contacts::updated_at.eq(row.updated_at),
                ))
                .execute(conn)?;
            write_keys(conn, &row.id, &p.keys)?;
            Ok((row, Upserted::Updated { changed, restored }))
        }
    }
}

/// Filters of `GET /v1/contacts`, already validated (and the key of a page's copy).
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct ContactFilter {
    pub org_id: String,
    pub provider: Option<String>,
    pub connection_id: Option<String>,
    /// Lowercase substring of name, phone or email.
    pub q: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Lowercase label name.
    pub label: Option<String>,
    pub membership: Option<String>,
    pub modified_after: Option<NaiveDateTime>,
    pub include_deleted: bool,
    pub after: Option<String>,
    pub limit: i64,
}

pub fn like_pattern(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// What tells one stored version of a contact from another, as served: a
/// list reads only this per row, then the whole rows of those whose served JSON
/// is not cached at that version ([`served_by_ids`]).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contacts)]
pub struct VersionRow {
    pub id: String,
    pub person_id: Option<String>,
    pub content_hash: String,
    pub fetched_at: NaiveDateTime,
    pub remote_was_deleted: bool,
}

/// One page in list order (creation order), after the cursor id: each row's
/// version only.
pub fn list_versions(
    conn: &mut DbConnection,
    f: &ContactFilter,
) -> Result<Vec<VersionRow>, StoreError> {
    let query = filtered(f);
    if !matches!(conn, DbConnection::Sqlite(_)) {
        return Ok(query.select(VersionRow::as_select()).load(conn)?);
    }
    // SQLite keeps timestamps as text, which diesel parses with chrono's format
    // strings (~6 % of a list page's CPU for one column): read as text here and
    // parsed by hand.
    let rows: Vec<(String, Option<String>, String, String, bool)> = query
        .select((
            contacts::id,
            contacts::person_id,
            contacts::content_hash,
            diesel::dsl::sql::<diesel::sql_types::Text>("contacts.fetched_at"),
            contacts::remote_was_deleted,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(
            |(id, person_id, content_hash, fetched_at, remote_was_deleted)| {
                let fetched_at = ids::parse_sql_timestamp(&fetched_at).ok_or_else(|| {
                    StoreError::Corrupt(format!("contact {id}: fetched_at `{fetched_at}`"))
                })?;
                Ok(VersionRow {
                    id,
                    person_id,
                    content_hash,
                    fetched_at,
                    remote_was_deleted,
                })
            },
        )
        .collect()
}

/// The list's filtered query in list order, its selection left to the caller.
fn filtered(f: &ContactFilter) -> contacts::BoxedQuery<'_, Backend> {
    let mut query = contacts::table
        .filter(contacts::org_id.eq(&f.org_id))
        .order(contacts::id.asc())
        .limit(f.limit)
        .into_boxed();
    if let Some(p) = &f.provider {
        query = query.filter(contacts::provider.eq(p));
    }
    if let Some(c) = &f.connection_id {
        query = query.filter(contacts::connection_id.eq(c));
    }
    if let Some(q) = &f.q {
        query = query.filter(contacts::search_text.like(like_pattern(q)).escape('\\'));
    }
    for (kind, value) in [
        ("phone", &f.phone),
        ("label", &f.label),
        ("membership", &f.membership),
    ] {
        if let Some(value) = value {
            query = query.filter(
                contacts::id.eq_any(
                    contact_keys::table
                        .filter(contact_keys::kind.eq(kind))
                        .filter(contact_keys::value.eq(value.clone()))
                        .select(contact_keys::contact_id),
                ),
            );
        }
    }
    if let Some(t) = f.modified_after {
        query = query.filter(contacts::updated_at.gt(t));
    }
    if !f.include_deleted {
        query = query.filter(contacts::remote_was_deleted.eq(false));
    }
    if let Some(after) = &f.after {
        query = query.filter(contacts::id.gt(after.clone()));
    }
    query
}

/// The org's contacts with these ids as served (any order; those not found left out).
pub fn served_by_ids(
    conn: &mut DbConnection,
    org_id: &str,
    ids: &[String],
) -> Result<Vec<ContactRow>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<Served> = contacts::table
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::id.eq_any(chunk))
            .select(Served::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(ContactRow::from));
    }
    Ok(out)
}

/// The API shape of a stored contact.
pub fn to_canonical(
    row: &ContactRow,
    include_remote_data: bool,
) -> Result<CanonicalContact, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("contact {}: {what}", row.id));
    let mut record: ContactRecord =
        serde_json::from_str(&row.record).map_err(|_| corrupt("unreadable record"))?;
    record.remote_data = if include_remote_data {
        row.remote_data
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("unreadable remote_data"))?
    } else {
        None
    };
    Ok(CanonicalContact {
        id: row.id.clone(),
        connection_id: row.connection_id.clone(),
        provider: ProviderKind::parse(&row.provider).ok_or_else(|| corrupt("unknown provider"))?,
        person_id: row.person_id.clone(),
        record,
        remote_was_deleted: row.remote_was_deleted,
        fetched_at: Some(row.fetched_at.and_utc()),
    })
}

/// The id of the connection's live contact holding `value`: a phone (E.164,
/// through its key) or an email (through the search text).
pub fn find_by_key(
    conn: &mut DbConnection,
    org_id: &str,
    connection_id: &str,
    field: &str,
    value: &str,
) -> Result<Option<String>, StoreError> {
    let base = contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .select(contacts::id)
        .into_boxed();
    let query = match field {
        "phone" => base.filter(
            contacts::id.eq_any(
                contact_keys::table
                    .filter(contact_keys::kind.eq("phone"))
                    .filter(contact_keys::value.eq(value.to_string()))
                    .select(contact_keys::contact_id),
            ),
        ),
        _ => base.filter(
            contacts::search_text
                .like(like_pattern(&value.to_lowercase()))
                .escape('\\'),
        ),
    };
    Ok(query.first::<String>(conn).optional()?)
}

/// Marks the contact gone upstream (a delete the provider confirmed).
pub fn mark_deleted(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    diesel::update(contacts::table.filter(contacts::id.eq(id)))
        .set((
            contacts::remote_was_deleted.eq(true),
            contacts::updated_at.eq(ids::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks those of these contacts of the org that are live deleted upstream;
/// returns their ids.
pub fn mark_live_deleted(
    conn: &mut DbConnection,
    org_id: &str,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut marked = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let live: Vec<String> = contacts::table
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::id.eq_any(chunk))
            .filter(contacts::remote_was_deleted.eq(false))
            .select(contacts::id)
            .load(conn)?;
        diesel::update(contacts::table.filter(contacts::id.eq_any(&live)))
            .set((
                contacts::remote_was_deleted.eq(true),
                contacts::updated_at.eq(ids::now()),
            ))
            .execute(conn)?;
        marked.extend(live);
    }
    Ok(marked)
}

/// The connection's contacts not deleted upstream, in id order.
pub fn live_ids_of_connection(
    conn: &mut DbConnection,
    connection_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .select(contacts::id)
        .order(contacts::id.asc())
        .load(conn)?)
}

/// Marks every contact of the connection deleted (the connection is going).
pub fn mark_connection_deleted(
    conn: &mut DbConnection,
    connection_id: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        contacts::table
            .filter(contacts::connection_id.eq(connection_id))
            .filter(contacts::remote_was_deleted.eq(false)),
    )
    .set((
        contacts::remote_was_deleted.eq(true),
        contacts::updated_at.eq(ids::now()),
    ))
    .execute(conn)?)
}

/// Deletes the connection's contacts and their keys.
pub fn delete_of_connection(
    conn: &mut DbConnection,
    connection_id: &str,
) -> Result<(), StoreError> {
    let of_connection = contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .select(contacts::id);
    diesel::delete(contact_keys::table.filter(contact_keys::contact_id.eq_any(of_connection)))
        .execute(conn)?;
    diesel::delete(contacts::table.filter(contacts::connection_id.eq(connection_id)))
        .execute(conn)?;
    Ok(())
}

/// The canonical fields whose values differ between two stored records (JSON
/// objects), by name, in order. An unreadable record differs in every field.
pub fn changed_fields(old: &str, new: &str) -> Vec<String> {
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default()
    };
    let (old, new) = (parse(old), parse(new));
    // A field the stored record predates (written before the field existed) is
    // unchanged while the new record holds nothing in it.
    let empty = |v: &serde_json::Value| match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    };
    let mut fields: Vec<String> = new
        .iter()
        .filter(|(k, v)| match old.get(*k) {
            Some(o) => o != *v,
            None => !empty(v),
        })
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .filter(|k| k != "remote_id")
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::changed_fields;

    #[test]
    fn a_field_the_stored_record_predates_is_a_change_only_when_it_holds_something() {
        let old = r#"{"remote_id":"1","display_name":"Ana","labels":[]}"#;
        for (new, changed) in [
            (
                r#"{"remote_id":"1","display_name":"Ana","labels":[],"custom_properties":{},"chat_labels":[],"assignee":null}"#,
                vec![],
            ),
            (
                r#"{"remote_id":"1","display_name":"Ana","labels":[],"custom_properties":{"tier":"gold"},"chat_labels":[]}"#,
                vec!["custom_properties"],
            ),
            (
                r#"{"remote_id":"2","display_name":"Bia","labels":["vip"]}"#,
                vec!["display_name", "labels"],
            ),
            (r#"{"remote_id":"1","labels":[]}"#, vec!["display_name"]),
        ] {
            assert_eq!(changed_fields(old, new), changed, "{new}");
        }
    }
}
