//! The adapters of each connection: built from the stored connection (once per
//! connection version for interactive callers, so their counters persist), with
//! the upstream behaviour each kind of caller needs, and a circuit breaker per
//! connection for interactive reads. Every adapter of one provider credential,
//! whichever connection and caller it serves, asks the same quota (`quota.rs` in
//! the adapters crate): sync pages, live reads and writes share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use unicontacts_adapters::quota::{Priority, QuotaConfig, QuotaRegistry, QuotaReport};
use unicontacts_adapters::{Adapter, AdapterError, ConnectionConfig, UpstreamConfig};

use crate::store::connections::Connection;

/// No adapter can be built from the stored connection (its provider's client
/// refuses its settings): every caller says so in these words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the connection cannot be used: {0}")]
pub struct Unusable(pub AdapterError);

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

/// The adapter settings of a connection, with the upstream behaviour of the caller.
fn connection_config(c: &Connection, upstream: UpstreamConfig) -> ConnectionConfig {
    ConnectionConfig {
        kind: c.provider,
        base_url: c.base_url.clone(),
        api_key: c.credentials.api_key.clone(),
        phone: c.credentials.phone.clone(),
        session: c.credentials.session.clone(),
        default_country: c.settings.default_country.clone(),
        upstream,
        quota: None,
        page_size: c.settings.page_size,
    }
}

/// Upstream behaviour for interactive calls: the whole call, its wait for the
/// quota included, within the caller's deadline (a caller would rather get a stale
/// copy or a 503 than wait longer); interactive callers go first in each window.
fn interactive_upstream(c: &Connection, deadline: Duration) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(3).min(deadline),
        timeout: deadline,
        max_attempts: 3,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        priority: Priority::Interactive,
        deadline: Some(deadline),
        rate_limit_per_second: c.settings.rate_limit_per_second,
        connection_id: Some(c.id.clone()),
    }
}

/// Upstream behaviour for a sync: patient with the quota (it waits as long as the
/// quota asks and never fails on 429s alone), more attempts for faults, longer
/// deadlines per request than interactive calls.
fn sync_upstream(c: &Connection) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        max_attempts: 5,
        backoff_base: Duration::from_millis(250),
        backoff_max: Duration::from_secs(15),
        priority: Priority::Background,
        deadline: None,
        rate_limit_per_second: c.settings.rate_limit_per_second,
        connection_id: Some(c.id.clone()),
    }
}

struct Entry {
    version: NaiveDateTime,
    adapter: Adapter,
    breaker: Arc<Breaker>,
}

/// Every connection's adapters, and the quota of every credential. Cheap to
/// clone (shared inside).
#[derive(Clone)]
pub struct Providers {
    upstream_timeout: Duration,
    /// The share of each window a sync always gets, 0 to 1.
    background_floor: f64,
    interactive: Arc<Mutex<HashMap<String, Entry>>>,
    quotas: QuotaRegistry,
}

impl Providers {
    /// `upstream_timeout`: the deadline of one interactive provider call;
    /// `background_floor`: the share of each window a sync always gets; `quotas`:
    /// this process's alone, or shared through Redis.
    pub fn new(upstream_timeout: Duration, background_floor: f64, quotas: QuotaRegistry) -> Self {
        Self {
            upstream_timeout,
            background_floor,
            interactive: Arc::new(Mutex::new(HashMap::new())),
            quotas,
        }
    }

    /// The connection's settings for a caller, with its credential's shared quota.
    fn config(&self, c: &Connection, upstream: UpstreamConfig) -> ConnectionConfig {
        let mut config = connection_config(c, upstream);
        let quota = self.quotas.quota(
            &config.credential_id(),
            QuotaConfig {
                style: c.provider.rate_style(),
                per_second: c.settings.rate_limit_per_second,
                background_floor: self.background_floor,
            },
        );
        config.quota = Some(quota);
        config
    }

    /// The connection's credential quota as this process last saw it.
    pub async fn quota_report(&self, c: &Connection) -> Option<QuotaReport> {
        self.quotas
            .report(&connection_config(c, UpstreamConfig::default()).credential_id())
            .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.interactive.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's adapter for interactive calls and its breaker, rebuilt
    /// when the connection changed.
    pub fn interactive(&self, c: &Connection) -> Result<(Adapter, Arc<Breaker>), Unusable> {
        let mut map = self.lock();
        if let Some(e) = map.get(&c.id) {
            if e.version == c.updated_at {
                return Ok((e.adapter.clone(), e.breaker.clone()));
            }
        }
        let adapter = unicontacts_adapters::connect(
            self.config(c, interactive_upstream(c, self.upstream_timeout)),
        )
        .map_err(Unusable)?;
        let breaker = Arc::new(Breaker::default());
        map.insert(
            c.id.clone(),
            Entry {
                version: c.updated_at,
                adapter: adapter.clone(),
                breaker: breaker.clone(),
            },
        );
        Ok((adapter, breaker))
    }

    /// An adapter that lists one contact per page: checking a connection's
    /// credentials with the cheapest call there is (an interactive one, through
    /// the credential's quota).
    pub fn for_check(&self, c: &Connection) -> Result<Adapter, Unusable> {
        let mut config = self.config(c, interactive_upstream(c, self.upstream_timeout));
        config.page_size = Some(1);
        unicontacts_adapters::connect(config).map_err(Unusable)
    }

    /// An adapter for one sync run of the connection.
    pub fn for_sync(&self, c: &Connection) -> Result<Adapter, Unusable> {
        unicontacts_adapters::connect(self.config(c, sync_upstream(c))).map_err(Unusable)
    }

    /// Forgets a changed or deleted connection's adapter.
    pub fn forget(&self, connection_id: &str) {
        self.lock().remove(connection_id);
    }

    /// Forgets every connection's adapter (their quotas stay: they are the
    /// credentials', whatever the connections).
    pub fn forget_all(&self) {
        self.lock().clear();
    }
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
}
