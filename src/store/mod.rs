//! The store: one diesel codebase over SQLite (embedded default) and PostgreSQL,
//! the backend chosen by the database URL. Owns the pool, the embedded migrations
//! and running queries off the async workers.

pub mod api_keys;
pub mod audit;
pub mod chat_groups;
pub mod connection_status;
pub mod connections;
pub mod contacts;
pub mod deletion_holds;
pub mod event_type;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod models;
pub mod orgs;
pub mod people;
pub mod schema;
pub mod suppressions;
pub mod sync_runs;
pub mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Integer, Text};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseUrl;
use crate::secrets::{Sealer, SecretError};

pub use multi::DbConnection;

// The derive writes an `establish` that tries each backend in turn; it is never
// called (see `Manager`), but it names diesel's `establish`, which clippy.toml keeps
// to our two connect functions.
#[allow(clippy::disallowed_methods)]
mod multi {
    use diesel::{PgConnection, SqliteConnection};

    /// One pooled connection of either backend.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        Postgresql(PgConnection),
        Sqlite(SqliteConnection),
    }
}

pub type Pool = r2d2::Pool<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// An arbitrary constant that serialises migrations between processes sharing one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x756e_6963_6f6e;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (pool timeout, connection refused).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken; the message is meant for clients.
    #[error("{0}")]
    Conflict(String),
    #[error("row not found")]
    NotFound,
    /// The connection a write was for was deleted meanwhile.
    #[error("the connection was deleted")]
    ConnectionGone,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database query failed")]
    Query(#[source] DieselError),
    #[error("database task failed: {0}")]
    Task(String),
    /// Stored credentials could not be sealed or opened with the key given.
    #[error("{0}")]
    Secret(#[from] SecretError),
    /// A sync run's lease expired and another run took it over.
    #[error("the run lost its lease to another run (it stalled past the lease's expiry)")]
    LeaseLost,
    /// A change refused for a reason the client can act on: the HTTP status,
    /// a message meant for clients, and what names the reason.
    #[error("{message}")]
    Refused {
        status: u16,
        message: String,
        details: serde_json::Value,
    },
    /// The record holds an identifier an erasure suppressed: it is not stored.
    #[error("the contact holds an identifier of an erased person (suppressed)")]
    Suppressed,
    /// A dry run's transaction, rolled back on purpose.
    #[error("a dry run, rolled back")]
    DryRun,
}

impl StoreError {
    /// A [`StoreError::Refused`] with no details.
    pub fn refused(status: u16, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            message: message.into(),
            details: serde_json::json!({}),
        }
    }
}

impl StoreError {
    /// SQLite's "database is locked": another writer holds the lock.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Query(DieselError::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("locked") || m.contains("busy")
            }
            _ => false,
        }
    }
}

/// Whether a database error says the database cannot serve now, rather than
/// that the query was wrong: PostgreSQL going down or restarting (its sessions
/// ended, the connection lost, not accepting connections yet), a disk with no
/// room left (SQLite's SQLITE_FULL, PostgreSQL's `could not extend file`). Such
/// a request is answered 503 with `Retry-After`, not 500.
fn unavailable(message: &str) -> bool {
    const SIGNS: [&str; 12] = [
        "terminating connection",
        "server closed the connection",
        "connection to server",
        "no connection to the server",
        "could not connect",
        "the database system is",
        "connection refused",
        "connection reset",
        "ssl syscall",
        "database or disk is full",
        "no space left on device",
        "could not extend file",
    ];
    let m = message.to_ascii_lowercase();
    SIGNS.iter().any(|s| m.contains(s))
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict("a record with the same unique values already exists".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("broken transaction manager".into())
            }
            DieselError::DatabaseError(_, info) if unavailable(info.message()) => {
                StoreError::Unavailable(info.message().to_string())
            }
            other => StoreError::Query(other),
        }
    }
}

/// Connects to PostgreSQL. Every connection of the process must come through
/// here: libpq's TLS is OpenSSL, which by default registers an exit handler that
/// frees its tables, and a thread still in TLS when the process exits (a pool
/// filling after a CLI command is done, a notice listener stopping) then reads
/// freed memory and the process dies with SIGSEGV (seen: 1 `migrate` in 15; the
/// API tests, whose own first connection once came first, 1 run in 9). The first
/// initialisation decides, so OpenSSL is initialised here first, as openssl-sys
/// does, with OPENSSL_INIT_NO_ATEXIT, which leaves the cleanup to the OS.
/// Idempotent, so each connect calls it.
#[allow(clippy::disallowed_methods)] // one of the two places that may
pub fn establish_postgres(url: &str) -> diesel::ConnectionResult<PgConnection> {
    openssl_sys::init();
    PgConnection::establish(url)
}

/// Opens a SQLite connection (named so that every connection of the process
/// is opened by one of these two functions, which clippy.toml enforces).
#[allow(clippy::disallowed_methods)] // the other place that may
fn establish_sqlite(uri: &str) -> diesel::ConnectionResult<SqliteConnection> {
    SqliteConnection::establish(uri)
}

/// Opens connections of the configured backend only. (The derived `establish`
/// tries every backend in turn: on a PostgreSQL outage it would fall through to
/// SQLite and create a file named after the URL.)
#[derive(Debug)]
pub struct Manager {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Postgres(String),
    /// A SQLite URI opened with `mode=rw`: a missing file is an error, not a new empty database.
    Sqlite(String),
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match &self.target {
            Target::Postgres(url) => establish_postgres(url).map(DbConnection::Postgresql),
            Target::Sqlite(uri) => {
                let mut conn = establish_sqlite(uri)?;
                // The busy timeout first, so the other pragmas wait for a lock instead of
                // failing; NORMAL sync is safe under WAL (set once, on the file, at connect);
                // SQLite leaves foreign keys off unless asked per connection.
                // Commits leave checkpoints to the store's checkpointer thread, up to a
                // WAL of 400 MB (then the committing writer checkpoints, as a safety
                // net). At 40 MB a sync's writer still met that threshold every few
                // pages and paid ~90 ms for it. Once checkpointed, the WAL restarts and
                // its file is cut back to 512 MB: a sync's WAL reaches 200 MB and more
                // between checkpoints, and cut back to 64 MB the file was extended
                // again each time, the kernel zeroing its new blocks (at 1M contacts:
                // 5 % of the sync's CPU in that zeroing and the truncations, 1.8 %
                // with the larger limit). A small store's WAL never grows that far.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA wal_autocheckpoint = 100000;
                     PRAGMA journal_size_limit = 536870912;",
                )
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping()
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The `max_contacts_per_identifier` setting's default.
pub const DEFAULT_MAX_PER_IDENTIFIER: usize = 50;

/// The shared handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
    sqlite_path: Option<PathBuf>,
    /// SQLite has one writer: transactions that read then write are serialised here,
    /// since one upgrading its read lock while another commits fails at once (busy).
    sqlite_writer: Option<std::sync::Arc<SqliteWriter>>,
    /// SQLite: the checkpointer thread runs while any clone of the store lives.
    _checkpointer: Option<std::sync::Arc<()>>,
    /// Seals and opens the connections' credentials (set by start-up).
    sealer: Option<std::sync::Arc<Sealer>>,
    /// Committed changes to contacts or people (see [`Store::contact_writes`]).
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The `max_contacts_per_identifier` setting, for linking (set by start-up).
    max_per_identifier: usize,
}

/// SQLite's writer: one connection of its own, used by one transaction at a time
/// (opened on first use, and again if a transaction left it broken). Its page cache
/// is 32 MiB instead of SQLite's 2 MiB: every write goes through it, so the pages of
/// the indexes a sync inserts into stay in memory from one page to the next (a
/// sync page of 2 000 contacts: ~25% less time). Its temporary store is in memory:
/// a statement that inserts many rows keeps the pages it changes in a statement
/// journal (to undo the statement alone if a row breaks a constraint), which SQLite
/// otherwise writes to a temporary file (a sync's writer spent ~18 % of its time
/// in those writes; a statement's journal holds a few MB at most). Readers keep the
/// defaults.
struct SqliteWriter {
    manager: Manager,
    conn: std::sync::Mutex<Option<DbConnection>>,
}

impl SqliteWriter {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_mut().is_some_and(|c| c.is_broken()) {
            *slot = None;
        }
        let conn = match &mut *slot {
            Some(conn) => conn,
            empty => {
                let mut conn = self
                    .manager
                    .connect()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                conn.batch_execute("PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY")?;
                empty.insert(conn)
            }
        };
        f(conn)
    }
}

/// Copies the WAL back into the SQLite file every 200 ms from its own connection,
/// off the writers' path. With SQLite's default every commit past 1 000 WAL pages
/// checkpoints itself, and a sync page (about 5 MB) paid for it: 160 ms per page
/// instead of 100. PASSIVE never waits for or blocks a writer or a reader. The
/// thread ends once every clone of the store is dropped.
fn spawn_checkpointer(uri: String, alive: std::sync::Weak<()>) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<SqliteConnection> = None;
            while alive.upgrade().is_some() {
                std::thread::sleep(Duration::from_millis(200));
                if conn.is_none() {
                    conn = establish_sqlite(&uri).ok();
                }
                if let Some(c) = &mut conn {
                    if let Err(e) = c.batch_execute(
                        "PRAGMA busy_timeout = 1000; PRAGMA wal_checkpoint(PASSIVE);",
                    ) {
                        tracing::debug!(error = %e, "SQLite checkpoint failed; retrying");
                        conn = None;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        // The writers' own checkpoints (past 400 MB of WAL) still run.
        tracing::warn!(error = %e, "could not start the SQLite checkpointer");
    }
}

impl Store {
    /// A pool for the URL. A SQLite file is created if it does not exist yet;
    /// nothing else touches the database until the first query.
    pub fn connect(
        url: &DatabaseUrl,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (target, backend, sqlite_path) = match url {
            DatabaseUrl::Postgres(u) => (Target::Postgres(u.clone()), Backend::Postgres, None),
            DatabaseUrl::Sqlite(path) => {
                let uri = sqlite_uri(path);
                // Create the file once, here, and switch it to WAL (which lets readers run
                // beside the one writer, and persists in the file); pooled connections
                // open it `mode=rw`.
                let mut first = establish_sqlite(&format!("{uri}?mode=rwc")).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot open SQLite file {}: {e}",
                        path.display()
                    ))
                })?;
                first
                    .batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
                    .map_err(|e| {
                        StoreError::Unavailable(format!("SQLite file {}: {e}", path.display()))
                    })?;
                (
                    Target::Sqlite(format!("{uri}?mode=rw")),
                    Backend::Sqlite,
                    Some(path.clone()),
                )
            }
        };
        let checkpointer = match &target {
            Target::Sqlite(uri) => {
                let alive = std::sync::Arc::new(());
                spawn_checkpointer(uri.clone(), std::sync::Arc::downgrade(&alive));
                Some(alive)
            }
            Target::Postgres(_) => None,
        };
        let sqlite_writer = match &target {
            Target::Sqlite(uri) => Some(std::sync::Arc::new(SqliteWriter {
                manager: Manager {
                    target: Target::Sqlite(uri.clone()),
                },
                conn: std::sync::Mutex::new(None),
            })),
            Target::Postgres(_) => None,
        };
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build_unchecked(Manager { target });
        Ok(Self {
            sealer: None,
            writes: Default::default(),
            max_per_identifier: DEFAULT_MAX_PER_IDENTIFIER,
            _checkpointer: checkpointer,
            sqlite_writer,
            pool,
            backend,
            sqlite_path,
        })
    }

    /// The store, sealing credentials with `sealer`.
    /// Identifiers more live contacts than `max` share link none of them.
    pub fn with_max_per_identifier(mut self, max: usize) -> Self {
        self.max_per_identifier = max;
        self
    }

    pub fn max_per_identifier(&self) -> usize {
        self.max_per_identifier
    }

    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(std::sync::Arc::new(sealer));
        self
    }

    /// What seals the credentials; an error when start-up gave none.
    pub fn sealer(&self) -> Result<std::sync::Arc<Sealer>, StoreError> {
        self.sealer
            .clone()
            .ok_or_else(|| StoreError::Secret(SecretError::BadKey))
    }

    /// Applies pending migrations of this backend; returns the names of those
    /// applied (`2026-11-21-000001_foundation`).
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        fn named<DB: diesel::backend::Backend>(
            source: &EmbeddedMigrations,
            versions: Vec<diesel::migration::MigrationVersion<'_>>,
        ) -> Vec<String>
        where
            EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
        {
            let names: std::collections::HashMap<String, String> =
                diesel::migration::MigrationSource::<DB>::migrations(source)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| (m.name().version().to_string(), m.name().to_string()))
                    .collect();
            versions
                .iter()
                .map(|v| {
                    let v = v.to_string();
                    names.get(&v).cloned().unwrap_or(v)
                })
                .collect()
        }
        let mut conn = self.get()?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| named::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS, v)),
            DbConnection::Postgresql(c) => {
                c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| named::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS, v));
                c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
                result
            }
        };
        applied.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// The pool's connections and how many of them are idle.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// A pooled connection, waiting at most the pool's timeout.
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Runs `f` with an owned pooled connection on the blocking thread pool, so a
    /// query never holds up an async worker.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// How many changes to contacts or people this process has committed. A
    /// change is committed before this number moves: a copy of a query's answer
    /// stamped with the value read before the query is as new as this process's
    /// writes while it stays.
    pub fn contact_writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Said once a transaction that changed contacts or people has committed:
    /// by the unit of work every such writer goes through (`change::apply`).
    pub fn contacts_changed(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Like `run`, for transactions that write: one at a time on SQLite, and retried
    /// a few times when another process holds the write lock.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            match &store.sqlite_writer {
                Some(writer) => writer.with(|conn| {
                    // Another process (or a pooled reader turned writer) may hold the lock.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match f(conn) {
                            Err(e) if attempt < 6 && e.is_busy() => {
                                std::thread::sleep(std::time::Duration::from_millis(25 * attempt));
                            }
                            other => return other,
                        }
                    }
                }),
                None => f(&mut *store.get()?),
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Refreshes the planner's statistics of the tables a sync fills. PostgreSQL
    /// plans from statistics that autovacuum refreshes about once a minute, so
    /// during a first sync into an empty store it takes a table of 100 000 rows for
    /// a small one and scans where it should look up (measured: `find_existing`
    /// at 125 ms instead of 1 ms per 500 ids). SQLite needs nothing: our queries
    /// there are index lookups whatever its (absent) statistics say.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        self.run(|conn| {
            conn.batch_execute("ANALYZE contacts, contact_keys, people, sync_seen")?;
            Ok(())
        })
        .await
    }

    /// Whether the database answers a query within `timeout`.
    pub async fn check_ready(&self, timeout: Duration) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            // An open SQLite connection keeps working on a deleted file, so look for the file.
            if let Some(path) = &store.sqlite_path {
                if !path.exists() {
                    return Err(StoreError::Unavailable(format!(
                        "SQLite file {} is gone",
                        path.display()
                    )));
                }
            }
            let mut conn = store
                .pool
                .get_timeout(timeout)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            conn.batch_execute("SELECT 1 FROM orgs WHERE 1 = 0")
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Runs `f` in a transaction on `conn` (nested calls become savepoints), so that
/// code outside the store composes store functions into one unit of work
/// without touching diesel.
pub fn in_transaction<T, F>(conn: &mut DbConnection, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, StoreError>,
{
    conn.transaction(f)
}

/// Within a transaction: its commit need not wait for the WAL flush (PostgreSQL;
/// SQLite in WAL mode with `synchronous = NORMAL` already does not). For writes
/// that can be made again after a database crash, such as a sync page: a page
/// lost that way is a run that did not finish, and the next run writes it again.
pub fn relax_commit(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(pg) = conn {
        pg.batch_execute("SET LOCAL synchronous_commit = off")?;
    }
    Ok(())
}

/// A `file:` URI for the path, escaping the characters URIs reserve.
fn sqlite_uri(path: &std::path::Path) -> String {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri
}

#[derive(QueryableByName)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Integer)]
    nullable: i32,
}

/// Table → sorted `column (nullable|not null)` list, for the schema-parity test.
pub fn describe_schema(
    conn: &mut DbConnection,
) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let rows: Vec<ColumnInfo> = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name,
                    CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 0 ELSE 1 END AS nullable
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
               AND m.name <> '__diesel_schema_migrations'",
        )
        .load(c)?,
        DbConnection::Postgresql(c) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name,
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable
             FROM information_schema.columns
             WHERE table_schema = current_schema()
               AND table_name <> '__diesel_schema_migrations'",
        )
        .load(c)?,
    };
    let mut schema: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        let null = if r.nullable == 1 { "null" } else { "not null" };
        schema
            .entry(r.table_name)
            .or_default()
            .push(format!("{} ({null})", r.column_name));
    }
    for cols in schema.values_mut() {
        cols.sort();
    }
    Ok(schema)
}

/// The channel replicas tell each other about changes on (PostgreSQL).
pub const NOTICE_CHANNEL: &str = "unicontacts_notices";

/// Sends `payload` to every process listening on PostgreSQL (no-op on SQLite,
/// which one process uses).
pub fn notify(conn: &mut DbConnection, payload: &str) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(NOTICE_CHANNEL)
            .bind::<Text, _>(payload)
            .execute(c)?;
    }
    Ok(())
}

/// A PostgreSQL connection of its own, listening for notices.
pub struct NoticeListener {
    conn: PgConnection,
}

impl NoticeListener {
    /// Connects to `url` and listens on the notice channel.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut conn =
            establish_postgres(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        conn.batch_execute(&format!("LISTEN {NOTICE_CHANNEL}"))?;
        Ok(Self { conn })
    }

    /// The notices that arrived since the last call (never blocks); an error
    /// when the connection broke.
    pub fn poll(&mut self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for n in self.conn.notifications_iter() {
            out.push(n?.payload);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(QueryableByName)]
    struct TempStore {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        temp_store: i32,
    }

    fn temp_store(conn: &mut DbConnection) -> Result<i32, StoreError> {
        Ok(diesel::sql_query("PRAGMA temp_store")
            .get_result::<TempStore>(conn)?
            .temp_store)
    }

    /// The SQLite writer journals a statement's changes in memory (2), not in a
    /// temporary file; readers keep SQLite's default (0), so a large sort of theirs
    /// does not grow the process.
    #[tokio::test]
    async fn only_the_sqlite_writer_keeps_its_temporary_store_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let store = Store::connect(&url, 2, Duration::from_secs(5)).expect("store");
        assert_eq!(store.write(temp_store).await.expect("writer"), 2);
        assert_eq!(store.run(temp_store).await.expect("reader"), 0);
    }

    /// A database that cannot serve now is told from a query that was wrong:
    /// the first are 503s, the second 500s.
    #[test]
    fn unreachable_or_full_databases_are_unavailable_and_bad_queries_are_not() {
        for (message, down) in [
            ("terminating connection due to administrator command", true),
            ("server closed the connection unexpectedly", true),
            ("the database system is starting up", true),
            ("the database system is shutting down", true),
            ("database or disk is full", true),
            (
                "could not extend file \"base/16384/2619\": No space left on device",
                true,
            ),
            ("no such table: contacts", false),
            ("syntax error at or near \"SELEC\"", false),
            (
                "null value in column \"org_id\" violates not-null constraint",
                false,
            ),
        ] {
            assert_eq!(unavailable(message), down, "{message}");
        }
    }
}
