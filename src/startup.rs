//! Builds the actix server around a [`State`]. The listener is bound here, so
//! tests bind port 0 and read the port back.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use utoipa::OpenApi;

use crate::config::Settings;
use crate::error::{ApiError, FieldErrors};
use crate::http::audit::audit;
use crate::http::idempotency::idempotency;
use crate::http::middleware::request_context;
use crate::routes::{self, ApiDoc};
use crate::state::State;
use crate::store::{Store, StoreError};
use crate::sync::scheduler::{self, Schedule};

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
    state: web::Data<State>,
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

    /// The server over an opened store and a bound listener; starts the scheduler
    /// (unless `scheduler_tick_ms` is 0) and the limiter's pruning.
    pub fn from_parts(
        settings: Settings,
        store: Store,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let port = listener.local_addr().map_err(StartupError::Server)?.port();
        let state = web::Data::new(State::new(settings, store));
        let s = &state.settings;
        if s.scheduler_tick_ms > 0 {
            tokio::spawn(scheduler::run_scheduler(
                state.runner.clone(),
                Schedule {
                    tick: Duration::from_millis(s.scheduler_tick_ms),
                    max_concurrent_runs: s.sync_max_concurrent_runs,
                    retention_days: s.sync_run_retention_days,
                },
            ));
        }
        // What the other replicas change, this one forgets.
        state
            .notices
            .listen(state.forgetter(), state.runner.tasks().stop_token());
        // Forget keys whose quota is whole again, so the limiter's map stays small.
        let pruned = state.clone();
        let stop = state.runner.tasks().stop_token();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => pruned.limiter.prune(),
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

    pub fn state(&self) -> web::Data<State> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests and stops the
    /// sync runs at their next page, recording them (each up to the shutdown timeout).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let grace = Duration::from_secs(self.state.settings.shutdown_timeout_seconds);
        self.state.runner.tasks().shutdown(grace).await;
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

fn run(listener: TcpListener, state: web::Data<State>) -> std::io::Result<Server> {
    let workers = state.settings.workers;
    let shutdown = state.settings.shutdown_timeout_seconds;
    let openapi = ApiDoc::openapi();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("invalid path parameter: {e}")).into()
            }))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| FieldErrors::single("(query)", e.to_string()).into()),
            )
            .wrap(middleware::from_fn(audit))
            .wrap(middleware::from_fn(idempotency))
            .wrap(middleware::from_fn(request_context))
            .configure(|cfg| routes::configure(cfg, openapi.clone()))
            .default_service(web::to(routes::not_found))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    // A client that closes its side has gone: its request is dropped at once, so
    // a live read waiting for the provider's quota gives its place up and sends
    // nothing (HTTP/1 clients that half-close and wait are not ones we serve).
    .h1_allow_half_closed(false)
    .listen(listener)?
    .run();
    Ok(server)
}
