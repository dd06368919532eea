//! The moka cache of live-read contacts: one load per key however many requests
//! wait for it (errors are never cached), values in `Arc`, bounded in bytes by a
//! weigher, a TTL per entry from its connection's settings, and invalidation of a
//! whole connection when it changes or goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use moka::Expiry;

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

    /// Drops every entry of the connection.
    pub fn invalidate_connection(&self, connection_id: &str) {
        let id = connection_id.to_string();
        if let Err(e) = self
            .inner
            .invalidate_entries_if(move |k, _| k.connection_id == id)
        {
            tracing::warn!(error = %e, "cache invalidation failed; clearing the cache");
            self.inner.invalidate_all();
        }
    }
}
