//! The in-memory caches, all moka: live-read contacts (one load per key however
//! many requests wait for it, errors never cached, bounded in bytes by a weigher,
//! a TTL per entry from its connection's settings, a whole connection dropped when
//! it changes or goes away), active API keys by hash, and connections by id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use moka::Expiry;

use crate::store::connections::Connection;
use crate::store::contacts::ContactFilter;
use crate::store::models::ApiKeyRow;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub connection_id: String,
    /// Canonical form (`919537851844@c.us`, `42`, `205227043110953@lid`).
    pub remote_id: String,
}

/// A contact as answered: the JSON body and its strong ETag.
#[derive(Debug)]
pub struct CachedContact {
    pub body: Bytes,
    pub etag: String,
    /// When this copy was loaded into the cache.
    pub loaded_at: Instant,
    /// When it was read from the provider.
    pub fetched_at: DateTime<Utc>,
    pub ttl: Duration,
    /// Parts of the contact the provider would not give at that read
    /// (`"chats"`); such a copy is not kept past its answer.
    pub partial: Vec<&'static str>,
}

struct PerEntryTtl;

impl Expiry<CacheKey, Arc<CachedContact>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedContact>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedContact>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Clone)]
pub struct ContactCache {
    inner: Cache<CacheKey, Arc<CachedContact>>,
}

impl ContactCache {
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            // Body plus key plus a fixed allowance for the entry's own bookkeeping.
            .weigher(|k: &CacheKey, v: &Arc<CachedContact>| {
                let bytes =
                    v.body.len() + v.etag.len() + k.connection_id.len() + k.remote_id.len() + 128;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        Self { inner }
    }

    /// The cached copy, or the one `load` makes; concurrent callers of one key share one load.
    pub async fn get_or_load<F, E>(
        &self,
        key: CacheKey,
        load: F,
    ) -> Result<Arc<CachedContact>, Arc<E>>
    where
        F: std::future::Future<Output = Result<Arc<CachedContact>, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.try_get_with(key, load).await
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<CachedContact>> {
        self.inner.get(key).await
    }

    pub async fn insert(&self, key: CacheKey, value: Arc<CachedContact>) {
        self.inner.insert(key, value).await;
    }

    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// Drops one contact's copy (after a write): gone for every read from now on
    /// (moka checks the predicate on each read until the entry is evicted).
    pub fn forget(&self, key: &CacheKey) {
        let key = key.clone();
        invalidate_where(&self.inner, "contacts", move |k, _| *k == key);
    }

    /// Drops every entry of the connection.
    pub fn invalidate_connection(&self, connection_id: &str) {
        let id = connection_id.to_string();
        invalidate_where(&self.inner, "contacts", move |k, _| k.connection_id == id);
    }
}

fn invalidate_where<K, V>(
    cache: &Cache<K, V>,
    what: &str,
    f: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
) where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    if let Err(e) = cache.invalidate_entries_if(f) {
        tracing::warn!(error = %e, cache = what, "cache invalidation failed; clearing the cache");
        cache.invalidate_all();
    }
}

/// A stored contact as `GET /v1/contacts/{id}` answers it, by org, id and form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredKey {
    pub org_id: String,
    pub id: String,
    pub remote_data: bool,
}

/// A stored contact's body and ETag, the store's count of changes
/// ([`crate::store::Store::contact_writes`]) read before the query that made
/// them, and the row's parts that the body shows and that can change.
#[derive(Debug)]
pub struct StoredCopy {
    pub body: Bytes,
    pub etag: String,
    pub writes: u64,
    pub version: RowVersion,
}

/// What of a contact's row can change its served JSON: its record (by content
/// hash), its person, its deletion mark and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowVersion {
    pub content_hash: String,
    pub person_id: Option<String>,
    pub deleted: bool,
    pub fetched_at: chrono::NaiveDateTime,
}

/// Stored contacts as served, so reading a hot contact again costs no query
/// and no serialising. By id, a copy is used only while this process has
/// changed no contact or person since the query that made it (a sync page, a
/// live read that stored something, an API write, a relink, a deleted
/// connection), so a client sees its own writes at once, and for a second at
/// most ([`STORED_TTL`]), which bounds how long another process's writes
/// (another replica, `unicontacts sync`) take to show, as notices do for keys
/// and connections. A list page, which reads its rows anyway, uses a copy made
/// from the row version it read, whatever the count.
#[derive(Clone)]
pub struct StoredCache {
    inner: Cache<StoredKey, Arc<StoredCopy>>,
    /// Whole list pages as served (`GET /v1/contacts`), by their filter (org
    /// included), each with the write count it was made at.
    pages: Cache<ContactFilter, Arc<StoredPage>>,
}

/// A list page's JSON body, made while the store's write count was `writes`.
#[derive(Debug)]
pub struct StoredPage {
    pub body: Bytes,
    pub writes: u64,
}

/// How long a stored contact's copy is used at most.
pub const STORED_TTL: Duration = Duration::from_secs(1);

impl StoredCache {
    /// `max_bytes` 0: nothing is kept. Contacts may use all of it, list pages a
    /// quarter (their bodies repeat the contacts').
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &StoredKey, v: &Arc<StoredCopy>| {
                let bytes = v.body.len() + v.etag.len() + k.org_id.len() + k.id.len() + 128;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(STORED_TTL)
            .build();
        let pages = Cache::builder()
            .max_capacity(max_bytes / 4)
            .weigher(|k: &ContactFilter, v: &Arc<StoredPage>| {
                let bytes = v.body.len() + std::mem::size_of_val(k) + k.org_id.len() + 128;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(STORED_TTL)
            .build();
        Self { inner, pages }
    }

    /// The list page of `filter`, if one was made since the store's last write
    /// (`writes`: its count now).
    pub async fn page(&self, filter: &ContactFilter, writes: u64) -> Option<Bytes> {
        self.pages
            .get(filter)
            .await
            .filter(|p| p.writes == writes)
            .map(|p| p.body.clone())
    }

    pub async fn insert_page(&self, filter: ContactFilter, page: StoredPage) {
        self.pages.insert(filter, Arc::new(page)).await;
    }

    /// The copy, if one was made since the store's last write (`writes`: its count now).
    pub async fn get(&self, key: &StoredKey, writes: u64) -> Option<Arc<StoredCopy>> {
        self.inner.get(key).await.filter(|c| c.writes == writes)
    }

    /// The copy, if it was made from a row at `version` (a row just read).
    pub async fn get_at(&self, key: &StoredKey, version: &RowVersion) -> Option<Arc<StoredCopy>> {
        self.inner.get(key).await.filter(|c| c.version == *version)
    }

    pub async fn insert(&self, key: StoredKey, copy: StoredCopy) {
        self.inner.insert(key, Arc::new(copy)).await;
    }

    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
        self.pages.invalidate_all();
    }
}

/// Active API keys by hash, so a request costs no database round trip for its
/// key. Revoking a key drops it at once (`forget_key`); entries also age out.
#[derive(Clone)]
pub struct KeyCache {
    inner: Cache<String, Arc<ApiKeyRow>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl KeyCache {
    pub async fn get(&self, hash: &str) -> Option<Arc<ApiKeyRow>> {
        self.inner.get(hash).await
    }

    pub async fn insert(&self, hash: String, row: Arc<ApiKeyRow>) {
        self.inner.insert(hash, row).await;
    }

    pub fn forget_all(&self) {
        self.inner.invalidate_all();
    }

    /// Drops the key with this id (after a revoke).
    pub fn forget_key(&self, key_id: &str) {
        let id = key_id.to_string();
        invalidate_where(&self.inner, "keys", move |_, row| row.id == id);
    }
}

/// Connections by (org, id), dropped when one changes or goes away.
#[derive(Clone)]
pub struct ConnectionCache {
    inner: Cache<(String, String), Arc<Connection>>,
}

impl Default for ConnectionCache {
    fn default() -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl ConnectionCache {
    pub async fn get(&self, org_id: &str, id: &str) -> Option<Arc<Connection>> {
        self.inner.get(&(org_id.to_string(), id.to_string())).await
    }

    pub async fn insert(&self, c: Arc<Connection>) {
        self.inner.insert((c.org_id.clone(), c.id.clone()), c).await;
    }

    pub fn forget(&self, connection_id: &str) {
        let id = connection_id.to_string();
        invalidate_where(&self.inner, "connections", move |k, _| k.1 == id);
    }

    pub fn forget_all(&self) {
        self.inner.invalidate_all();
    }
}

/// Lets a thing be done at most once per `every` for each name (a key's
/// `last_used_at`, written once a minute however busy the key is).
pub struct OncePer {
    every: Duration,
    last: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl OncePer {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Makes `name` due again at once.
    pub fn forget(&self, name: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Whether `name` is due (and, if so, it is not again for `every`).
    pub fn due(&self, name: &str) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(name) {
            Some(t) if now.duration_since(*t) < self.every => false,
            Some(t) => {
                *t = now;
                true
            }
            None => {
                if last.len() >= 100_000 {
                    let every = self.every;
                    last.retain(|_, t| now.duration_since(*t) < every);
                }
                last.insert(name.to_string(), now);
                true
            }
        }
    }
}
