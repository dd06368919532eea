//! Builds the shared state once and the actix server around it. The listener is
//! bound here, so tests bind port 0 and read the port back.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use utoipa::OpenApi;

use crate::cache::ContactCache;
use crate::config::Settings;
use crate::error::{ApiError, FieldErrors};
use crate::limits::InboundLimiter;
use crate::live::Live;
use crate::routes::{self, ApiDoc};
use crate::store::{Store, StoreError};
use crate::telemetry;

/// State shared by every worker: built once, outside the `HttpServer::new` closure.
pub struct AppState {
    pub store: Store,
    pub settings: Settings,
    /// Live reads: adapters per connection and the contact cache.
    pub live: Live,
    /// Inbound quota per API key (one for the whole process, not one per worker).
    pub limiter: InboundLimiter,
    /// Active API keys by hash.
    pub keys: crate::auth::KeyCache,
    /// This process's sync runs, stopped and recorded at shutdown.
    pub runs: crate::sync::run::Runs,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the server: {0}")]
    Server(std::io::Error),
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects the store, applies pending migrations, binds and builds the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = open_store(&settings).await?;
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        Self::from_parts(settings, store, listener)
    }

    pub fn from_parts(
        settings: Settings,
        store: Store,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let port = listener.local_addr().map_err(StartupError::Server)?.port();
        let state = web::Data::new(AppState {
            live: Live::new(
                store.clone(),
                ContactCache::new(settings.cache_max_bytes),
                Duration::from_millis(settings.upstream_timeout_ms),
            ),
            limiter: InboundLimiter::new(settings.rate_limit_per_second, settings.rate_limit_burst),
            keys: crate::auth::KeyCache::default(),
            runs: crate::sync::run::Runs::on_current_runtime(),
            store,
            settings,
        });
        if state.settings.scheduler_tick_ms > 0 {
            tokio::spawn(crate::sync::scheduler::run_scheduler(
                std::sync::Arc::downgrade(&state.clone().into_inner()),
                Duration::from_millis(state.settings.scheduler_tick_ms),
            ));
        }
        // Forget keys whose quota is whole again, so the limiter's map stays small.
        let weak = std::sync::Arc::downgrade(&state.clone().into_inner());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(state) => state.limiter.prune(),
                    None => break,
                }
            }
        });
        let server = run(listener, state.clone()).map_err(StartupError::Server)?;
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests and stops the
    /// sync runs at their next page, recording them (each up to the shutdown timeout).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let grace = Duration::from_secs(self.state.settings.shutdown_timeout_seconds);
        self.state.runs.shutdown(grace).await;
        served
    }
}

/// Connects and migrates, off the async threads.
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    let url = settings.database_url.clone();
    let pool_size = settings.database_pool_size;
    let timeout = Duration::from_secs(settings.database_timeout_seconds);
    tokio::task::spawn_blocking(move || {
        let store = Store::connect(&url, pool_size, timeout)?;
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(?applied, backend = url.backend_name(), "migrations applied");
        }
        Ok(store)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let workers = state.settings.workers;
    let shutdown = state.settings.shutdown_timeout_seconds;
    let openapi = ApiDoc::openapi();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("invalid path parameter: {e}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                let mut f = FieldErrors::new();
                f.add("(query)", e.to_string());
                ApiError::validation(f).into()
            }))
            .wrap(middleware::from_fn(telemetry::request_context))
            .configure(|cfg| routes::configure(cfg, openapi.clone()))
            .default_service(web::to(routes::not_found))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    .listen(listener)?
    .run();
    Ok(server)
}
