//! Contacts: the org's stored contacts (listed with filters, read by id), and
//! live reads by provider id, through the cache to the provider and written to
//! the store on the way back. When the provider fails and a copy exists (cache or
//! store) the copy is served as stale; without one the failure is the provider's
//! error in our terms (`ApiError::from(AdapterError)`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use unicontacts_adapters::canonical::CanonicalContact;
use unicontacts_adapters::{phone, Adapter, AdapterError, ProviderKind, RemoteId};
use utoipa::IntoParams;
use validator::Validate;

use crate::cache::{
    CacheKey, CachedContact, OncePer, RowVersion, StoredCopy, StoredKey, StoredPage,
};
use crate::change::{self, Scope};
use crate::error::{ApiError, ErrorCode, FieldErrors};
use crate::ids;
use crate::page::{Page, PageRequest};
use crate::providers::Breaker;
use crate::service::connections;
use crate::state::State;
use crate::store::connections::Connection;
use crate::store::contacts::{self as queries, ContactFilter, Origin};
use crate::store::events;
use crate::store::models::ContactRow;
use crate::store::{Store, StoreError};

/// The filters of `GET /v1/contacts`.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactFilters {
    pub provider: Option<ProviderKind>,
    pub connection_id: Option<String>,
    /// Case-insensitive substring of a name, phone or email.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// Any written form (`+91 95378 51844`, `919537851844`, `919537851844@c.us`); matched as E.164.
    #[param(pattern = r"^\+?[0-9][0-9 ().-]{4,30}(@c\.us)?$")]
    pub phone: Option<String>,
    pub label: Option<String>,
    /// A group or list remote id (`120363…@g.us`, `5`).
    pub membership: Option<String>,
    /// RFC 3339; contacts whose stored copy changed after it.
    #[param(format = DateTime)]
    pub modified_after: Option<String>,
    /// Also contacts gone upstream (default false).
    pub include_deleted: Option<bool>,
}

/// Whether `raw` has the documented form of a phone filter: digits with a country
/// code in any usual spacing, or a WhatsApp id.
fn looks_like_phone(raw: &str) -> bool {
    let digits = raw.strip_suffix("@c.us").unwrap_or(raw);
    let digits = digits.strip_prefix('+').unwrap_or(digits);
    (5..=31).contains(&digits.chars().count())
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || " ().-".contains(c))
}

/// A phone filter as the E.164 it matches, or the 422 naming `field`. A number in
/// the documented form that no numbering plan assigns is no contact's phone: it
/// matches nothing.
pub fn phone_param(raw: &str, field: &str) -> Result<String, ApiError> {
    if let Some(e164) = phone::e164_of_any(raw) {
        return Ok(e164);
    }
    if looks_like_phone(raw) {
        // Stored phones are E.164 (`+…`): this equals none of them.
        return Ok(format!("unassigned:{raw}"));
    }
    Err(FieldErrors::single(
        field,
        "is not a phone number with a country code (such as +91 95378 51844 or 919537851844@c.us)",
    ))
}

/// `include`: empty, or `remote_data` (the provider's own object alongside).
pub fn parse_include(include: Option<&str>) -> Result<bool, ApiError> {
    match include {
        None | Some("") => Ok(false),
        Some("remote_data") => Ok(true),
        Some(_) => Err(FieldErrors::single(
            "include",
            "the only include is `remote_data`",
        )),
    }
}

/// The org's contacts, oldest first, filtered, as the page's JSON body: a copy
/// of the whole page made since this process's last write to contacts (and a
/// second at most, as a contact's), else each item as served (the JSON `GET
/// /v1/contacts/{id}` answers), taken from the stored-contact cache when it
/// holds a copy made from the row version just read, else made and kept.
pub async fn list(
    state: &State,
    org_id: &str,
    filters: ContactFilters,
    page: PageRequest,
) -> Result<Bytes, ApiError> {
    let filter = ContactFilter {
        org_id: org_id.to_string(),
        provider: filters.provider.map(|p| p.as_str().to_string()),
        connection_id: filters.connection_id,
        q: filters
            .q
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty()),
        phone: filters
            .phone
            .as_deref()
            .map(|p| phone_param(p, "phone"))
            .transpose()?,
        label: filters.label.map(|l| l.trim().to_lowercase()),
        membership: filters.membership,
        modified_after: filters
            .modified_after
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.naive_utc())
                    .map_err(|_| {
                        FieldErrors::single(
                            "modified_after",
                            "is not an RFC 3339 timestamp such as 2025-01-31T12:00:00Z",
                        )
                    })
            })
            .transpose()?,
        include_deleted: filters.include_deleted.unwrap_or(false),
        after: page.after.clone(),
        limit: page.fetch(),
    };
    let writes = state.store.contact_writes();
    if let Some(body) = state.stored.page(&filter, writes).await {
        return Ok(body);
    }
    let page_key = filter.clone();
    // The page's rows, each by its version only: most are served from copies.
    let rows = state
        .store
        .run(move |conn| queries::list_versions(conn, &filter))
        .await?;
    let rows = Page::from_rows(rows, page.limit, |r| &r.id);
    let key = |id: &str| StoredKey {
        org_id: org_id.to_string(),
        id: id.to_string(),
        remote_data: false,
    };
    let mut data: Vec<Option<Bytes>> = Vec::with_capacity(rows.data.len());
    let mut missing: Vec<String> = Vec::new();
    for row in &rows.data {
        let version = RowVersion {
            content_hash: row.content_hash.clone(),
            person_id: row.person_id.clone(),
            deleted: row.remote_was_deleted,
            fetched_at: row.fetched_at,
        };
        // The version was just read: a copy made from it is exact.
        match state.stored.get_at(&key(&row.id), &version).await {
            Some(copy) => data.push(Some(copy.body.clone())),
            None => {
                data.push(None);
                missing.push(row.id.clone());
            }
        }
    }
    if !missing.is_empty() {
        let org = org_id.to_string();
        let mut found: HashMap<String, ContactRow> = state
            .store
            .run(move |conn| queries::served_by_ids(conn, &org, &missing))
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for (slot, row) in data.iter_mut().zip(&rows.data) {
            if slot.is_some() {
                continue;
            }
            // Gone since the first query (its connection deleted): left out.
            let Some(full) = found.remove(&row.id) else {
                continue;
            };
            // Served as read now, which may be newer than the version listed.
            let canonical = queries::to_canonical(&full, false)?;
            let (body, etag) = body_and_etag(&full, &canonical).map_err(ApiError::internal)?;
            *slot = Some(body.clone());
            let copy = StoredCopy {
                body,
                etag,
                writes,
                version: row_version(&full),
            };
            state.stored.insert(key(&full.id), copy).await;
        }
    }
    let body = Bytes::from(
        Page {
            data: data.into_iter().flatten().collect(),
            next_cursor: rows.next_cursor,
        }
        .json_of_items(),
    );
    state
        .stored
        .insert_page(
            page_key,
            StoredPage {
                body: body.clone(),
                writes,
            },
        )
        .await;
    Ok(body)
}

/// Whether a live read's answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

/// A live read's answer.
pub struct LiveRead {
    pub contact: Arc<CachedContact>,
    pub status: CacheStatus,
    /// How long the connection keeps a copy fresh.
    pub cache_ttl: Duration,
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Adapter(AdapterError),
    #[error("circuit open for {0:?}")]
    CircuitOpen(Duration),
    #[error(transparent)]
    Store(StoreError),
}

/// A strong ETag of what a client is shown: the SHA-256 of the JSON without its
/// `fetched_at` fields, at any depth (when a copy was fetched is no change of the
/// contact, so a refresh that found nothing new keeps the tag and 304s keep working).
pub fn content_etag(mut content: serde_json::Value) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("fetched_at");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut content);
    let digest = Sha256::digest(content.to_string().as_bytes());
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The ETag of a stored contact as served, without serializing it again: the
/// record's content hash (SHA-256 of its canonical JSON) with what the service
/// adds to it (ids, person, deletion mark, and the provider's object when asked
/// for), but not `fetched_at`; and the served form (the record's field set), so a
/// field added to the model is a new tag even for a record stored before it.
pub fn row_etag(row: &ContactRow, include_remote_data: bool) -> String {
    static FORM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let form = FORM.get_or_init(|| {
        let blank = serde_json::to_string(&unicontacts_adapters::ContactRecord::default())
            .unwrap_or_default();
        hex::encode(Sha256::digest(blank.as_bytes()))
    });
    let mut h = Sha256::new();
    for part in [
        form.as_str(),
        &row.content_hash,
        &row.id,
        &row.connection_id,
        &row.provider,
        row.person_id.as_deref().unwrap_or(""),
        if row.remote_was_deleted { "1" } else { "0" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    if include_remote_data {
        h.update(b"remote_data\0");
        h.update(row.remote_data.as_deref().unwrap_or("null").as_bytes());
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..16]))
}

/// What of the row its served JSON shows and can change.
fn row_version(row: &ContactRow) -> RowVersion {
    RowVersion {
        content_hash: row.content_hash.clone(),
        person_id: row.person_id.clone(),
        deleted: row.remote_was_deleted,
        fetched_at: row.fetched_at,
    }
}

/// A stored contact's JSON body and its ETag.
fn body_and_etag(
    row: &ContactRow,
    canonical: &CanonicalContact,
) -> Result<(Bytes, String), serde_json::Error> {
    Ok((
        Bytes::from(serde_json::to_vec(canonical)?),
        row_etag(row, canonical.record.remote_data.is_some()),
    ))
}

/// The org's stored contact as served: its JSON and ETag; `include_remote_data`
/// adds the provider's object.
pub async fn get_served(
    state: &State,
    org_id: &str,
    id: &str,
    include_remote_data: bool,
) -> Result<(Bytes, String), ApiError> {
    let key = StoredKey {
        org_id: org_id.to_string(),
        id: id.to_string(),
        remote_data: include_remote_data,
    };
    // Read before the query: a write that ends after it makes the copy unused.
    let writes = state.store.contact_writes();
    if let Some(copy) = state.stored.get(&key, writes).await {
        return Ok((copy.body.clone(), copy.etag.clone()));
    }
    let (org_id, id) = (key.org_id.clone(), key.id.clone());
    let row = state
        .store
        .run(move |conn| queries::find_served(conn, &org_id, &id, include_remote_data))
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    let canonical = queries::to_canonical(&row, include_remote_data)?;
    let (body, etag) = body_and_etag(&row, &canonical).map_err(ApiError::internal)?;
    let copy = StoredCopy {
        body: body.clone(),
        etag: etag.clone(),
        writes,
        version: row_version(&row),
    };
    state.stored.insert(key, copy).await;
    Ok((body, etag))
}

/// Reads one contact of the org's connection by the provider's id in any written
/// form: the cache, else (once per key, however many wait) the provider, whose
/// answer is stored and linked. `fresh` skips the cache; `include_remote_data`
/// answers the stored copy with the provider's object (read from the store after
/// the cache or the provider answered, so it is the same version).
pub async fn read_live(
    state: &State,
    org_id: &str,
    connection_id: &str,
    raw_remote_id: &str,
    fresh: bool,
    include_remote_data: bool,
) -> Result<LiveRead, ApiError> {
    let c = connections::get_cached(state, org_id, connection_id).await?;
    let remote_id = c
        .provider
        .parse_remote_id(raw_remote_id)
        .map_err(|e| FieldErrors::single("remote_id", e.to_string()))?;
    let started = Instant::now();
    let key = CacheKey {
        connection_id: c.id.clone(),
        remote_id: remote_id.as_str().to_string(),
    };
    let ttl = Duration::from_secs(c.settings.cache_ttl_seconds);
    let (adapter, breaker) = state.providers.interactive(&c)?;
    let load = load(
        state.store.clone(),
        adapter,
        breaker,
        c.clone(),
        remote_id,
        ttl,
        state.calls_noted.clone(),
    );
    let result = if fresh || ttl.is_zero() {
        match load.await {
            Ok(v) => {
                if !ttl.is_zero() {
                    state.contacts.insert(key.clone(), v.clone()).await;
                }
                Ok(v)
            }
            Err(e) => Err(Arc::new(e)),
        }
    } else {
        state.contacts.get_or_load(key.clone(), load).await
    };
    let (contact, status) = match result {
        Ok(v) => {
            let status = if v.loaded_at >= started {
                CacheStatus::Miss
            } else {
                CacheStatus::Hit
            };
            (v, status)
        }
        Err(e) => on_failure(state, &c, &key, &e).await?,
    };
    crate::metrics::cache_request(match status {
        CacheStatus::Hit => "hit",
        CacheStatus::Miss => "miss",
        CacheStatus::Stale => "stale",
    });
    let contact = if include_remote_data {
        with_remote_data(state, &c, &key, &contact).await?
    } else {
        contact
    };
    Ok(LiveRead {
        contact,
        status,
        cache_ttl: ttl,
    })
}

async fn on_failure(
    state: &State,
    c: &Connection,
    key: &CacheKey,
    e: &LoadError,
) -> Result<(Arc<CachedContact>, CacheStatus), ApiError> {
    let stale_allowed = match e {
        LoadError::Adapter(AdapterError::NotFound) => {
            return Err(
                ApiError::new(ErrorCode::NotFound, "contact not found at the provider")
                    .with_upstream_trace(),
            )
        }
        LoadError::Adapter(AdapterError::InvalidInput(m)) => {
            return Err(FieldErrors::single("remote_id", m.clone()))
        }
        // The connection itself is wrong: a copy would hide it.
        LoadError::Store(_)
        | LoadError::Adapter(
            AdapterError::Unauthorized { .. } | AdapterError::SessionMissing { .. },
        ) => false,
        _ => true,
    };
    if stale_allowed {
        if let Some(copy) = stale_copy(state, c, key).await {
            tracing::warn!(connection_id = %c.id, error = %e, "provider failed; serving a stale copy");
            return Ok((copy, CacheStatus::Stale));
        }
    }
    Err(match e {
        // The store's own error: 503 while it is unreachable, 500 (logged with
        // its cause) for a row we cannot read.
        LoadError::Store(StoreError::Unavailable(m)) => {
            ApiError::from(StoreError::Unavailable(m.clone()))
        }
        LoadError::Store(StoreError::Suppressed) => ApiError::new(
            ErrorCode::NotFound,
            "this contact belongs to a person who was erased: it is neither stored nor served",
        )
        .with_details(serde_json::json!({ "suppressed": true })),
        LoadError::Store(other) => ApiError::internal(std::io::Error::other(format!("{other:?}"))),
        LoadError::CircuitOpen(left) => ApiError::new(
            ErrorCode::UpstreamUnavailable,
            "the provider keeps failing; calls are paused for a while",
        )
        .with_retry_after(left.as_secs()),
        LoadError::Adapter(a) => ApiError::from(a.clone()),
    })
}

/// Stores a record the provider just gave (a live read, a write): written if
/// new or changed, and linked into its person in the same transaction.
pub(crate) async fn store_record(
    store: &Store,
    c: &Connection,
    record: unicontacts_adapters::ContactRecord,
    fetched_at: chrono::NaiveDateTime,
    cause: events::Cause,
) -> Result<crate::store::models::ContactRow, StoreError> {
    let prepared = queries::prepare(record)?;
    let (connection_id, provider) = (c.id.clone(), c.provider);
    let scope = Scope::new(&c.org_id, cause)
        .of_connection(&c.id)
        .at(fetched_at);
    change::apply(store, scope, move |change| {
        let origin = Origin {
            org_id: change.org_id(),
            connection_id: &connection_id,
            provider,
        };
        if !change.suppressed(&[&prepared])?.is_empty() {
            return Err(StoreError::Suppressed);
        }
        let (row, what) = change.upsert(&origin, &prepared, fetched_at)?;
        if what.event_type().is_none() {
            return Ok(row);
        }
        // A new or changed contact joins its person at once.
        change.relink(std::slice::from_ref(&row.id))?;
        let row = queries::find_contact(change.conn(), origin.org_id, &row.id)?
            .ok_or_else(|| StoreError::Corrupt(format!("contact {} vanished", row.id)))?;
        change.upserted_event(&row, &what);
        Ok(row)
    })
    .await
}

/// The stored copy of a contact just read, with the provider's object.
async fn with_remote_data(
    state: &State,
    c: &Connection,
    key: &CacheKey,
    read: &CachedContact,
) -> Result<Arc<CachedContact>, ApiError> {
    let (connection_id, remote_id) = (c.id.clone(), key.remote_id.clone());
    let row = state
        .store
        .run(move |conn| queries::find_contact_by_remote(conn, &connection_id, &remote_id))
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    let canonical = queries::to_canonical(&row, true)?;
    let (body, etag) = body_and_etag(&row, &canonical).map_err(ApiError::internal)?;
    Ok(Arc::new(CachedContact {
        etag,
        body,
        loaded_at: read.loaded_at,
        fetched_at: read.fetched_at,
        ttl: read.ttl,
        partial: read.partial.clone(),
    }))
}

/// A copy to serve when the provider fails: the cache's, else the store's.
async fn stale_copy(state: &State, c: &Connection, key: &CacheKey) -> Option<Arc<CachedContact>> {
    if let Some(v) = state.contacts.get(key).await {
        return Some(v);
    }
    let (connection_id, remote_id) = (c.id.clone(), key.remote_id.clone());
    let row = state
        .store
        .run(move |conn| queries::find_contact_by_remote(conn, &connection_id, &remote_id))
        .await
        .ok()??;
    let canonical = queries::to_canonical(&row, false).ok()?;
    let (body, etag) = body_and_etag(&row, &canonical).ok()?;
    Some(Arc::new(CachedContact {
        etag,
        body,
        loaded_at: Instant::now(),
        fetched_at: row.fetched_at.and_utc(),
        ttl: Duration::ZERO,
        partial: Vec::new(),
    }))
}

async fn load(
    store: Store,
    adapter: Adapter,
    breaker: Arc<Breaker>,
    c: Arc<Connection>,
    remote_id: RemoteId,
    ttl: Duration,
    noted: Arc<OncePer>,
) -> Result<Arc<CachedContact>, LoadError> {
    breaker.check().map_err(LoadError::CircuitOpen)?;
    let result = adapter.get_contact(remote_id.as_str()).await;
    breaker.record(&result.as_ref().map(|_| ()));
    connections::note_call(&store, &noted, &c.id, result.as_ref().map(|_| ()));
    let record = result.map_err(LoadError::Adapter)?;
    let partial = record.partial.clone();
    for part in &partial {
        crate::metrics::partial_read(c.provider.as_str(), part);
    }
    let fetched_at = ids::now();
    let cause = events::Cause::live_read(crate::telemetry::request_id());
    let row = store_record(&store, &c, record, fetched_at, cause)
        .await
        .map_err(LoadError::Store)?;
    let canonical = queries::to_canonical(&row, false).map_err(LoadError::Store)?;
    let (body, etag) = body_and_etag(&row, &canonical)
        .map_err(|e| LoadError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok(Arc::new(CachedContact {
        etag,
        body,
        loaded_at: Instant::now(),
        fetched_at: fetched_at.and_utc(),
        // A partial read is answered, not kept: the next read asks again.
        ttl: if partial.is_empty() {
            ttl
        } else {
            Duration::ZERO
        },
        partial,
    }))
}
