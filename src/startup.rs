//! Builds the actix server around a [`State`]. The listener is bound here, so
//! tests bind port 0 and read the port back.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::config::{DatabaseUrl, SecretKey, Settings};
use crate::error::{ApiError, FieldErrors};
use crate::http::audit::audit;
use crate::http::idempotency::idempotency;
use crate::http::middleware::request_context;
use crate::routes;
use crate::secrets::{self, Sealer, SecretError};
use crate::state::State;
use crate::store::{self, Store, StoreError};
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
        crate::metrics::init(settings.metrics_per_connection);
        let state = web::Data::new(State::new(settings, store));
        let s = &state.settings;
        if s.scheduler_tick_ms > 0 {
            tokio::spawn(scheduler::run_scheduler(
                state.runner.clone(),
                Schedule {
                    tick: Duration::from_millis(s.scheduler_tick_ms),
                    max_concurrent_runs: s.sync_max_concurrent_runs,
                    retention_days: s.sync_run_retention_days,
                    event_retention_days: s.event_retention_days,
                },
            ));
        }
        if s.webhook_poll_ms > 0 {
            let worker = std::sync::Arc::new(crate::delivery::Worker::new(
                state.store.clone(),
                crate::delivery::DeliveryConfig {
                    poll: Duration::from_millis(s.webhook_poll_ms),
                    retry_schedule: s
                        .webhook_retry_schedule_ms
                        .iter()
                        .map(|ms| Duration::from_millis(*ms))
                        .collect(),
                    disable_after: Duration::from_secs(s.webhook_disable_after_seconds),
                    concurrency: s.webhook_concurrency as usize,
                    policy: crate::service::webhooks::policy(&state),
                },
            ));
            state.runner.tasks().spawn(|stop| worker.run(stop));
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

/// Connects and migrates, loads the key credentials are sealed with (checking
/// that it opens every stored row) and seals the rows stored plain, off the
/// async threads.
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    Ok(open_store_migrated(settings).await?.0)
}

/// [`open_store`], with the versions of the migrations it applied.
pub async fn open_store_migrated(settings: &Settings) -> Result<(Store, Vec<String>), StoreError> {
    let url = settings.database_url.clone();
    let pool_size = settings.database_pool_size;
    let timeout = Duration::from_secs(settings.database_timeout_seconds);
    let key = settings.secret_key.clone();
    let max_per_identifier = settings.max_contacts_per_identifier as usize;
    tokio::task::spawn_blocking(move || {
        let store =
            Store::connect(&url, pool_size, timeout)?.with_max_per_identifier(max_per_identifier);
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(?applied, backend = url.backend_name(), "migrations applied");
        }
        let sealer = load_sealer(&store, &url, key.as_ref())?;
        let sealed = {
            let mut conn = store.get()?;
            store::connections::seal_plain_rows(&mut conn, &sealer)?
        };
        if sealed > 0 {
            tracing::info!(sealed, key = sealer.key_id(), "sealed stored credentials");
        }
        Ok((store.with_sealer(sealer), applied))
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

fn run(listener: TcpListener, state: web::Data<State>) -> std::io::Result<Server> {
    let workers = state.settings.workers;
    let shutdown = state.settings.shutdown_timeout_seconds;
    let openapi = crate::routes::document();
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
            // Outermost: gzip or brotli when the client accepts it; nothing otherwise.
            .wrap(middleware::Compress::default())
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

/// The key credentials are sealed with: the `secret_key` setting; else, on
/// SQLite, the key file beside the database (made at first start, or the one a
/// rotation that stopped after its commit left pending); PostgreSQL needs the
/// setting.
fn load_sealer(
    store: &Store,
    url: &DatabaseUrl,
    key: Option<&SecretKey>,
) -> Result<Sealer, StoreError> {
    if let Some(key) = key {
        return Ok(Sealer::from_base64(&key.0)?);
    }
    let DatabaseUrl::Sqlite(path) = url else {
        return Err(StoreError::Secret(SecretError::Missing));
    };
    let file = secrets::key_file_of(path);
    let pending_file = secrets::pending_file_of(&file);
    let in_use = {
        let mut conn = store.get()?;
        store::connections::sealed_key_ids(&mut conn)?
    };
    let current = secrets::read_key_file(&file)?;
    if let Some(pending) = secrets::read_key_file(&pending_file)? {
        // A rotation wrote the new key, then stopped: if its commit happened the
        // rows are sealed with the new key, which takes the file's place.
        if in_use.iter().any(|k| k == pending.key_id()) {
            std::fs::rename(&pending_file, &file).map_err(|e| SecretError::KeyFile {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            tracing::warn!(
                key = pending.key_id(),
                "completed an interrupted key rotation"
            );
            return Ok(pending);
        }
        let _ = std::fs::remove_file(&pending_file);
    }
    if let Some(current) = current {
        return Ok(current);
    }
    if let Some(found) = in_use.first() {
        return Err(StoreError::Secret(SecretError::KeyFile {
            path: file.display().to_string(),
            message: format!(
                "is missing, and the stored credentials are sealed with key {found}: restore the file or set UNICONTACTS_SECRET_KEY"
            ),
        }));
    }
    let key = Sealer::generate_key();
    secrets::write_key_file(&file, &key)?;
    tracing::info!(file = %file.display(), "generated the key file that seals provider credentials");
    Ok(Sealer::from_base64(&key)?)
}
