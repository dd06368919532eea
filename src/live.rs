//! Live reads by provider id: the adapter of each connection (built once per
//! connection version, so its upstream limiter and counters persist), a circuit
//! breaker per connection, and the read-through path cache → adapter → store.
//! When the provider fails and a copy exists (cache or store) the copy is served
//! as stale; without one the failure maps to DESIGN.md §5.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};
use unicontacts_adapters::{
    periskope, phone, wacr, AdapterError, ConnectionConfig, Provider, ProviderKind, UpstreamConfig,
};

use crate::cache::{CacheKey, CachedContact, ContactCache};
use crate::error::{ApiError, ErrorCode, FieldErrors};
use crate::ids;
use crate::store::connections::Connection;
use crate::store::contacts::{self, Origin};
use crate::store::{Store, StoreError};

/// Consecutive transient failures that open the circuit, and how long it stays open.
const TRIP_AFTER: u32 = 5;
const COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
}

/// Stops calling a provider that keeps failing; after the cool-down one call is let
/// through, and a further failure opens it again at once.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<BreakerState>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(remaining)` while open.
    pub fn check(&self) -> Result<(), Duration> {
        let s = self.lock();
        match s.open_until {
            Some(until) if until > Instant::now() => Err(until - Instant::now()),
            _ => Ok(()),
        }
    }

    pub fn record(&self, result: &Result<(), &AdapterError>) {
        let mut s = self.lock();
        match result {
            Ok(()) => *s = BreakerState::default(),
            Err(e) if e.is_transient() => {
                s.failures += 1;
                if s.failures >= TRIP_AFTER {
                    s.open_until = Some(Instant::now() + COOL_DOWN);
                }
            }
            Err(_) => {}
        }
    }

    /// Opens the circuit now (tests and operators).
    pub fn trip(&self) {
        let mut s = self.lock();
        s.failures = TRIP_AFTER;
        s.open_until = Some(Instant::now() + COOL_DOWN);
    }
}

struct Entry {
    version: NaiveDateTime,
    provider: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
}

/// Whether an answer came from the cache.
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

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Adapter(AdapterError),
    #[error("circuit open for {0:?}")]
    CircuitOpen(Duration),
    #[error(transparent)]
    Store(StoreError),
}

pub struct Live {
    store: Store,
    upstream_timeout: Duration,
    pub cache: ContactCache,
    /// Connections by (org, id), dropped when one changes.
    connections: moka::future::Cache<(String, String), Arc<Connection>>,
    adapters: Mutex<HashMap<String, Entry>>,
}

/// The adapter settings of a connection, with the upstream behaviour of the caller.
pub fn connection_config(c: &Connection, upstream: UpstreamConfig) -> ConnectionConfig {
    ConnectionConfig {
        kind: c.provider,
        base_url: c.base_url.clone(),
        api_key: c.credentials.api_key.clone(),
        phone: c.credentials.phone.clone(),
        session: c.credentials.session.clone(),
        default_country: c.settings.default_country.clone(),
        upstream,
    }
}

/// Upstream behaviour for interactive reads: short deadlines, and no long waits for
/// the quota (a caller would rather get a stale copy).
fn live_upstream(c: &Connection, timeout: Duration) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(3).min(timeout),
        timeout,
        max_attempts: 3,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        max_throttle_wait: Duration::from_secs(2),
        rate_limit_per_second: c.settings.rate_limit_per_second,
    }
}

/// The provider's own id from any form people write it in; `Err` names the forms.
pub fn canonical_remote_id(kind: ProviderKind, raw: &str) -> Result<String, ApiError> {
    let bad = |forms: &str| {
        let mut f = FieldErrors::new();
        f.add("remote_id", format!("is not a {kind} contact id ({forms})"));
        ApiError::validation(f)
    };
    match kind {
        ProviderKind::Periskope => periskope::client::contact_digits(raw)
            .map(|d| format!("{d}@c.us"))
            .map_err(|_| {
                bad("a phone number such as 919537851844, 919537851844@c.us or +91 95378 51844")
            }),
        ProviderKind::Wacr => wacr::client::contact_id(raw)
            .map(|id| id.to_string())
            .map_err(|_| bad("a positive integer such as 42")),
        ProviderKind::Gateway => phone::normalize_lid(raw)
            .ok_or_else(|| bad("a LID such as 205227043110953 or 205227043110953@lid")),
    }
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

impl Live {
    pub fn new(store: Store, cache: ContactCache, upstream_timeout: Duration) -> Self {
        Self {
            store,
            upstream_timeout,
            cache,
            connections: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .support_invalidation_closures()
                .build(),
            adapters: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.adapters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's adapter and breaker, rebuilt when the connection changed.
    pub fn adapter(
        &self,
        c: &Connection,
    ) -> Result<(Arc<dyn Provider>, Arc<Breaker>), AdapterError> {
        let mut map = self.lock();
        if let Some(e) = map.get(&c.id) {
            if e.version == c.updated_at {
                return Ok((e.provider.clone(), e.breaker.clone()));
            }
        }
        let provider = unicontacts_adapters::connect(connection_config(
            c,
            live_upstream(c, self.upstream_timeout),
        ))?;
        let breaker = Arc::new(Breaker::default());
        map.insert(
            c.id.clone(),
            Entry {
                version: c.updated_at,
                provider: provider.clone(),
                breaker: breaker.clone(),
            },
        );
        Ok((provider, breaker))
    }

    /// Forgets a changed or deleted connection: its adapter and its cached contacts.
    pub fn forget(&self, connection_id: &str) {
        self.lock().remove(connection_id);
        self.cache.invalidate_connection(connection_id);
        let id = connection_id.to_string();
        if self
            .connections
            .invalidate_entries_if(move |k, _| k.1 == id)
            .is_err()
        {
            self.connections.invalidate_all();
        }
    }

    /// The org's connection, from memory when possible; another org's is `None`.
    pub async fn connection(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Arc<Connection>>, StoreError> {
        let key = (org_id.to_string(), id.to_string());
        if let Some(c) = self.connections.get(&key).await {
            return Ok(Some(c));
        }
        let (org, cid) = key.clone();
        let found = self
            .store
            .run(move |conn| crate::store::connections::find_connection(conn, &org, &cid))
            .await?;
        Ok(match found {
            Some(c) => {
                let c = Arc::new(c);
                self.connections.insert(key, c.clone()).await;
                Some(c)
            }
            None => None,
        })
    }

    /// Reads one contact: cache, else (once per key) the provider, written to the store.
    pub async fn read(
        &self,
        c: &Connection,
        remote_id: String,
        fresh: bool,
    ) -> Result<(Arc<CachedContact>, CacheStatus), ApiError> {
        let started = Instant::now();
        let key = CacheKey {
            connection_id: c.id.clone(),
            remote_id: remote_id.clone(),
        };
        let ttl = Duration::from_secs(c.settings.cache_ttl_seconds);
        let (provider, breaker) = self.adapter(c).map_err(|e| {
            ApiError::new(
                ErrorCode::UpstreamError,
                format!("the connection cannot be used: {e}"),
            )
        })?;
        let load = load(
            self.store.clone(),
            provider,
            breaker,
            c.clone(),
            remote_id.clone(),
            ttl,
        );
        let result = if fresh || ttl.is_zero() {
            match load.await {
                Ok(v) => {
                    if !ttl.is_zero() {
                        self.cache.insert(key.clone(), v.clone()).await;
                    }
                    Ok(v)
                }
                Err(e) => Err(Arc::new(e)),
            }
        } else {
            self.cache.get_or_load(key.clone(), load).await
        };
        match result {
            Ok(v) => {
                let status = if v.loaded_at >= started {
                    CacheStatus::Miss
                } else {
                    CacheStatus::Hit
                };
                Ok((v, status))
            }
            Err(e) => self.on_failure(c, &key, &e).await,
        }
    }

    async fn on_failure(
        &self,
        c: &Connection,
        key: &CacheKey,
        e: &LoadError,
    ) -> Result<(Arc<CachedContact>, CacheStatus), ApiError> {
        let stale_allowed = match e {
            LoadError::Adapter(AdapterError::NotFound) => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    "contact not found at the provider",
                ))
            }
            LoadError::Adapter(AdapterError::InvalidInput(m)) => {
                let mut f = FieldErrors::new();
                f.add("remote_id", m.clone());
                return Err(ApiError::validation(f));
            }
            LoadError::Store(_) => false,
            LoadError::Adapter(AdapterError::Unauthorized { .. }) => false,
            _ => true,
        };
        if stale_allowed {
            if let Some(copy) = self.stale_copy(c, key).await {
                tracing::warn!(connection_id = %c.id, error = %e, "provider failed; serving a stale copy");
                return Ok((copy, CacheStatus::Stale));
            }
        }
        Err(match e {
            LoadError::Store(s) => ApiError::from(StoreError::Unavailable(s.to_string())),
            LoadError::CircuitOpen(left) => {
                let mut err = ApiError::new(
                    ErrorCode::UpstreamUnavailable,
                    "the provider keeps failing; calls are paused for a while",
                );
                err.retry_after = Some(left.as_secs().max(1));
                err
            }
            LoadError::Adapter(a) => match a {
                AdapterError::Unauthorized { .. } => ApiError::new(
                    ErrorCode::UpstreamError,
                    "the provider refused this connection's credentials; update them with PATCH /v1/admin/connections/{id}",
                ),
                AdapterError::Timeout => ApiError::new(ErrorCode::UpstreamTimeout, "the provider did not answer in time"),
                AdapterError::RateLimited { retry_after } => {
                    let mut err = ApiError::new(
                        ErrorCode::UpstreamUnavailable,
                        "the provider's rate limit for this connection is exhausted",
                    );
                    err.retry_after = Some(retry_after.map(|d| d.as_secs_f64().ceil() as u64).unwrap_or(1).max(1));
                    err
                }
                AdapterError::Unreachable { .. } => {
                    ApiError::new(ErrorCode::UpstreamUnavailable, "the provider cannot be reached")
                }
                AdapterError::Upstream { status, .. } => {
                    ApiError::new(ErrorCode::UpstreamError, format!("the provider answered HTTP {status}"))
                }
                AdapterError::Decode { .. } => {
                    ApiError::new(ErrorCode::UpstreamError, "the provider's answer could not be read")
                }
                AdapterError::Rejected { message, .. } => {
                    ApiError::new(ErrorCode::UpstreamError, format!("the provider rejected the request: {message}"))
                }
                AdapterError::Unsupported { operation } => ApiError::new(
                    ErrorCode::UnsupportedByProvider,
                    format!("the provider does not support {operation}"),
                ),
                AdapterError::NotFound | AdapterError::InvalidInput(_) => {
                    ApiError::new(ErrorCode::Internal, "unexpected adapter state")
                }
            },
        })
    }

    /// A copy to serve when the provider fails: the cache's, else the store's.
    async fn stale_copy(&self, c: &Connection, key: &CacheKey) -> Option<Arc<CachedContact>> {
        if let Some(v) = self.cache.get(key).await {
            return Some(v);
        }
        let (connection_id, remote_id) = (c.id.clone(), key.remote_id.clone());
        let row = self
            .store
            .run(move |conn| contacts::find_contact_by_remote(conn, &connection_id, &remote_id))
            .await
            .ok()??;
        let canonical = contacts::to_canonical(&row, false).ok()?;
        let body = Bytes::from(serde_json::to_vec(&canonical).ok()?);
        Some(Arc::new(CachedContact {
            etag: etag_of(&body),
            body,
            loaded_at: Instant::now(),
            fetched_at: row.fetched_at.and_utc(),
            ttl: Duration::ZERO,
        }))
    }
}

async fn load(
    store: Store,
    provider: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
    c: Connection,
    remote_id: String,
    ttl: Duration,
) -> Result<Arc<CachedContact>, LoadError> {
    breaker.check().map_err(LoadError::CircuitOpen)?;
    let result = provider.get_contact(&remote_id).await;
    breaker.record(&result.as_ref().map(|_| ()));
    let record = result.map_err(LoadError::Adapter)?;
    let fetched_at = ids::now();
    let row = store
        .write(move |conn| {
            let origin = Origin {
                org_id: &c.org_id,
                connection_id: &c.id,
                provider: c.provider,
            };
            diesel::Connection::transaction(conn, |conn| {
                crate::sync::link::lock_org(conn, &c.org_id)?;
                let (row, what) = contacts::upsert_contact(conn, &origin, &record, fetched_at)?;
                if what == contacts::Upserted::Unchanged {
                    return Ok(row);
                }
                // A new or changed contact joins its person at once.
                crate::sync::link::link_contacts(conn, &c.org_id, std::slice::from_ref(&row.id))?;
                contacts::find_contact(conn, &c.org_id, &row.id)?
                    .ok_or_else(|| StoreError::Corrupt(format!("contact {} vanished", row.id)))
            })
        })
        .await
        .map_err(LoadError::Store)?;
    let canonical = contacts::to_canonical(&row, false).map_err(LoadError::Store)?;
    let body = Bytes::from(
        serde_json::to_vec(&canonical)
            .map_err(|e| LoadError::Store(StoreError::Corrupt(e.to_string())))?,
    );
    Ok(Arc::new(CachedContact {
        etag: etag_of(&body),
        body,
        loaded_at: Instant::now(),
        fetched_at: fetched_at.and_utc(),
        ttl,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_repeated_transient_failures_only() {
        let b = Breaker::default();
        for _ in 0..10 {
            b.record(&Err(&AdapterError::NotFound));
        }
        assert!(b.check().is_ok(), "client errors do not count");
        for _ in 0..TRIP_AFTER {
            b.record(&Err(&AdapterError::Timeout));
        }
        assert!(b.check().is_err());
        b.record(&Ok(()));
        assert!(b.check().is_ok());
    }

    #[test]
    fn remote_ids_are_taken_in_the_forms_people_have_them() {
        for raw in ["919537851844", "919537851844@c.us", "+91 95378 51844"] {
            assert_eq!(
                canonical_remote_id(ProviderKind::Periskope, raw)
                    .ok()
                    .as_deref(),
                Some("919537851844@c.us"),
                "{raw}"
            );
        }
        assert_eq!(
            canonical_remote_id(ProviderKind::Wacr, "42")
                .ok()
                .as_deref(),
            Some("42")
        );
        for raw in ["205227043110953", "205227043110953@lid"] {
            assert_eq!(
                canonical_remote_id(ProviderKind::Gateway, raw)
                    .ok()
                    .as_deref(),
                Some("205227043110953@lid")
            );
        }
        assert!(canonical_remote_id(ProviderKind::Wacr, "abc").is_err());
        assert!(canonical_remote_id(ProviderKind::Gateway, "919537851844@c.us").is_err());
        assert!(canonical_remote_id(ProviderKind::Periskope, "205227043110953@lid").is_err());
    }
}
