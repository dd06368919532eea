//! What every part of a process shares, built once: the store, the settings, the
//! caches, the adapters of each connection, the inbound limiter and the starter of
//! sync runs. Routes reach it through `web::Data<State>`; the CLI, the demo,
//! benches and tests build one with [`State::new`] and call the services with it.

use std::time::Duration;

use crate::cache::{CacheKey, ConnectionCache, ContactCache, KeyCache, OncePer, StoredCache};
use crate::config::Settings;
use crate::limits::InboundLimiter;
use crate::notices::{Notice, Notices};
use crate::providers::Providers;
use crate::store::Store;
use crate::sync::Runner;
use crate::tasks::BackgroundTasks;
use unicontacts_adapters::quota::QuotaRegistry;

pub struct State {
    pub store: Store,
    pub settings: Settings,
    /// Live-read contacts.
    pub contacts: ContactCache,
    /// Stored contacts as served.
    pub stored: StoredCache,
    /// Connections by id, so a live read costs no query for its connection.
    pub connections: ConnectionCache,
    /// Active API keys by hash.
    pub keys: KeyCache,
    /// When each key's use was last written (once a minute at most).
    pub key_use: OncePer,
    /// When each connection's successful provider call was last written to its
    /// health (once a minute at most; a failure makes the next one due).
    pub calls_noted: std::sync::Arc<OncePer>,
    /// Every connection's adapters and breakers.
    pub providers: Providers,
    /// Inbound quota per API key (one for the whole process, not one per worker).
    pub limiter: InboundLimiter,
    /// Starts sync runs; its tasks are stopped and recorded at shutdown.
    pub runner: Runner,
    /// The Redis replicas share, when there is one.
    pub redis: Option<crate::redis::ConnectionManager>,
    /// How this process tells the others what changed.
    pub notices: Notices,
}

impl State {
    /// Builds the state over an opened store (from within a tokio runtime: sync
    /// runs go on the current one).
    pub fn new(settings: Settings, store: Store) -> Self {
        let redis = settings.redis_url.as_deref().and_then(|url| match crate::redis::connect(url) {
            Ok(r) => Some(r),
            Err(e) => {
                // The URL was checked at start-up; a client that cannot be built
                // leaves this process on its own, which the log says.
                tracing::error!(error = %e, "cannot use Redis; this process keeps its own quotas");
                None
            }
        });
        let quotas = match &redis {
            Some(r) => QuotaRegistry::shared(r.clone(), settings.replicas),
            None => QuotaRegistry::default(),
        };
        let providers = Providers::new(
            Duration::from_millis(settings.upstream_timeout_ms),
            f64::from(settings.sync_quota_share_percent) / 100.0,
            quotas,
        );
        let runner = Runner::new(
            store.clone(),
            providers.clone(),
            BackgroundTasks::on_current_runtime("sync runs"),
            Duration::from_secs(settings.sync_lease_seconds),
        );
        Self {
            contacts: ContactCache::new(settings.cache_max_bytes),
            stored: StoredCache::new(settings.stored_cache_max_bytes),
            connections: ConnectionCache::default(),
            keys: KeyCache::default(),
            key_use: OncePer::new(Duration::from_secs(60)),
            calls_noted: std::sync::Arc::new(OncePer::new(Duration::from_secs(60))),
            limiter: match &redis {
                Some(r) => InboundLimiter::shared(
                    settings.rate_limit_per_second,
                    settings.rate_limit_burst,
                    r.clone(),
                ),
                None => {
                    InboundLimiter::new(settings.rate_limit_per_second, settings.rate_limit_burst)
                }
            },
            notices: Notices::new(
                redis.as_ref().zip(settings.redis_url.as_deref()),
                &store,
                &settings.database_url,
            ),
            providers,
            runner,
            redis,
            store,
            settings,
        }
    }

    /// What drops this process's cached copies of what a notice names.
    pub fn forgetter(&self) -> impl Fn(Notice) + Send + Sync + 'static {
        let (keys, connections, providers, contacts, stored) = (
            self.keys.clone(),
            self.connections.clone(),
            self.providers.clone(),
            self.contacts.clone(),
            self.stored.clone(),
        );
        move |notice| match notice {
            Notice::Key(id) => keys.forget_key(&id),
            Notice::Connection(id) => {
                connections.forget(&id);
                providers.forget(&id);
                contacts.invalidate_connection(&id);
                stored.invalidate_all();
            }
            Notice::Contact(connection_id, remote_id) => {
                contacts.forget(&CacheKey {
                    connection_id,
                    remote_id,
                });
                // Another replica's write: shown here within its notice's delay.
                stored.invalidate_all();
            }
            Notice::All => {
                keys.forget_all();
                connections.forget_all();
                providers.forget_all();
                contacts.invalidate_all();
                stored.invalidate_all();
            }
        }
    }

    /// Something changed: this process forgets its copies at once, and every
    /// other replica within a second.
    pub async fn changed(&self, notice: Notice) {
        (self.forgetter())(notice.clone());
        self.notices.publish(&notice).await;
    }
}
