//! What every part of a process shares, built once: the store, the settings, the
//! caches, the adapters of each connection, the inbound limiter and the starter of
//! sync runs. Routes reach it through `web::Data<State>`; the CLI, the demo,
//! benches and tests build one with [`State::new`] and call the services with it.

use std::time::Duration;

use crate::cache::{ConnectionCache, ContactCache, KeyCache};
use crate::config::Settings;
use crate::limits::InboundLimiter;
use crate::providers::Providers;
use crate::store::Store;
use crate::sync::Runner;
use crate::tasks::BackgroundTasks;

pub struct State {
    pub store: Store,
    pub settings: Settings,
    /// Live-read contacts.
    pub contacts: ContactCache,
    /// Connections by id, so a live read costs no query for its connection.
    pub connections: ConnectionCache,
    /// Active API keys by hash.
    pub keys: KeyCache,
    /// Every connection's adapters and breakers.
    pub providers: Providers,
    /// Inbound quota per API key (one for the whole process, not one per worker).
    pub limiter: InboundLimiter,
    /// Starts sync runs; its tasks are stopped and recorded at shutdown.
    pub runner: Runner,
}

impl State {
    /// Builds the state over an opened store (from within a tokio runtime: sync
    /// runs go on the current one).
    pub fn new(settings: Settings, store: Store) -> Self {
        let providers = Providers::new(
            Duration::from_millis(settings.upstream_timeout_ms),
            f64::from(settings.sync_quota_share_percent) / 100.0,
        );
        let runner = Runner::new(
            store.clone(),
            providers.clone(),
            BackgroundTasks::on_current_runtime("sync runs"),
            Duration::from_secs(settings.sync_lease_seconds),
        );
        Self {
            contacts: ContactCache::new(settings.cache_max_bytes),
            connections: ConnectionCache::default(),
            keys: KeyCache::default(),
            limiter: InboundLimiter::new(settings.rate_limit_per_second, settings.rate_limit_burst),
            providers,
            runner,
            store,
            settings,
        }
    }

    /// Forgets a changed or deleted connection in this process: its cached copy,
    /// its adapters and its cached contacts.
    pub fn forget_connection(&self, connection_id: &str) {
        self.connections.forget(connection_id);
        self.providers.forget(connection_id);
        self.contacts.invalidate_connection(connection_id);
    }
}
