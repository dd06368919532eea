//! Typed settings. Sources, later ones winning: built-in defaults, an optional
//! TOML file (`--config FILE` or `UNICONTACTS_CONFIG`), `UNICONTACTS_*` variables.
//!
//! | setting (TOML key)         | environment variable                  | default            |
//! |----------------------------|---------------------------------------|--------------------|
//! | `database_url`             | `UNICONTACTS_DATABASE_URL`            | `unicontacts.db` (SQLite file in the working directory) |
//! | `bind`                     | `UNICONTACTS_BIND`                    | `127.0.0.1:8080`   |
//! | `log_format`               | `UNICONTACTS_LOG_FORMAT`              | `text` (or `json`) |
//! | `log_level`                | `UNICONTACTS_LOG_LEVEL`               | `info` (tracing filter syntax) |
//! | `database_pool_size`       | `UNICONTACTS_DATABASE_POOL_SIZE`      | `8`                |
//! | `database_timeout_seconds` | `UNICONTACTS_DATABASE_TIMEOUT_SECONDS`| `5` (wait for a pooled connection) |
//! | `workers`                  | `UNICONTACTS_WORKERS`                 | number of CPU cores |
//! | `shutdown_timeout_seconds` | `UNICONTACTS_SHUTDOWN_TIMEOUT_SECONDS`| `30`               |
//! | `rate_limit_per_second`    | `UNICONTACTS_RATE_LIMIT_PER_SECOND`   | `50` (per API key) |
//! | `rate_limit_burst`         | `UNICONTACTS_RATE_LIMIT_BURST`        | `100` (per API key) |
//! | `cache_max_bytes`          | `UNICONTACTS_CACHE_MAX_BYTES`         | `67108864` (64 MiB of cached contacts) |
//! | `upstream_timeout_ms`      | `UNICONTACTS_UPSTREAM_TIMEOUT_MS`     | `10000` (one provider call, live reads) |
//! | `sync_lease_seconds`       | `UNICONTACTS_SYNC_LEASE_SECONDS`      | `300` (a run's lease; a crashed run's successor waits this long) |
//! | `person_name_precedence`   | `UNICONTACTS_PERSON_NAME_PRECEDENCE`  | `wacr,periskope,gateway` (whose name a person shows first) |
//! | `scheduler_tick_ms`        | `UNICONTACTS_SCHEDULER_TICK_MS`       | `5000` (how often due syncs are looked for; `0` turns the scheduler off) |
//! | `sync_max_concurrent_runs` | `UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS`| `4` (scheduled runs at once in this process; the others wait for a later tick) |
//! | `sync_run_retention_days`  | `UNICONTACTS_SYNC_RUN_RETENTION_DAYS` | `90` (finished runs older than this are pruned, each connection's last kept; `0` keeps all) |
//!
//! A bad value stops start-up with one line naming the setting. The database URL
//! is never echoed back, since it may hold a password.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "UNICONTACTS_";

/// Which database, chosen by the URL scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file: `sqlite://PATH`, `sqlite:PATH` or a bare path.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        let path = if let Some(rest) = raw.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = raw.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unsupported scheme `{scheme}`: use postgres://… or a SQLite file path"
            ));
        } else {
            raw
        };
        if path.is_empty() || path == ":memory:" {
            return Err("needs a SQLite file path (in-memory databases are not shared between pooled connections)".into());
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // Never print a PostgreSQL password into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://(unparsable)"),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub database_pool_size: u32,
    pub database_timeout_seconds: u64,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    /// Inbound quota per API key.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub cache_max_bytes: u64,
    pub upstream_timeout_ms: u64,
    pub scheduler_tick_ms: u64,
    pub sync_lease_seconds: u64,
    /// Scheduled runs this process has going at once.
    pub sync_max_concurrent_runs: u32,
    /// Days a finished run stays in the history (0: forever).
    pub sync_run_retention_days: u32,
    pub person_name_precedence: Vec<unicontacts_adapters::ProviderKind>,
}

/// A setting that could not be used; its `Display` is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

const KEYS: [&str; 17] = [
    "database_url",
    "bind",
    "log_format",
    "log_level",
    "database_pool_size",
    "database_timeout_seconds",
    "workers",
    "shutdown_timeout_seconds",
    "rate_limit_per_second",
    "rate_limit_burst",
    "cache_max_bytes",
    "upstream_timeout_ms",
    "scheduler_tick_ms",
    "sync_lease_seconds",
    "sync_max_concurrent_runs",
    "sync_run_retention_days",
    "person_name_precedence",
];

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl::Sqlite(PathBuf::from("unicontacts.db")),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            database_pool_size: 8,
            database_timeout_seconds: 5,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            shutdown_timeout_seconds: 30,
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
            cache_max_bytes: 64 * 1024 * 1024,
            upstream_timeout_ms: 10_000,
            scheduler_tick_ms: 5_000,
            sync_lease_seconds: 300,
            sync_max_concurrent_runs: 4,
            sync_run_retention_days: 90,
            person_name_precedence: vec![
                unicontacts_adapters::ProviderKind::Wacr,
                unicontacts_adapters::ProviderKind::Periskope,
                unicontacts_adapters::ProviderKind::Gateway,
            ],
        }
    }
}

impl Settings {
    /// Settings from the process environment and the optional file.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(config_file, |name| std::env::var(name).ok())
    }

    /// Settings from a given environment lookup, so tests need not touch the process's.
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_setting = format!("{ENV_PREFIX}CONFIG");
        let file_path = config_file
            .map(Path::to_path_buf)
            .or_else(|| env(&file_setting).map(PathBuf::from));
        let mut raw: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Some(path) = file_path {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    &file_setting,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new(
                    &file_setting,
                    format!("{} is not valid TOML: {}", path.display(), e.message()),
                )
            })?;
            for (key, value) in table {
                if !KEYS.contains(&key.as_str()) {
                    return Err(ConfigError::new(
                        format!("`{key}` in {}", path.display()),
                        format!("unknown setting; known settings are {}", KEYS.join(", ")),
                    ));
                }
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    other => {
                        return Err(ConfigError::new(
                            format!("`{key}` in {}", path.display()),
                            format!(
                                "expected a string or an integer, found {}",
                                other.type_str()
                            ),
                        ))
                    }
                };
                raw.insert(
                    key.clone(),
                    (format!("`{key}` in {}", path.display()), text),
                );
            }
        }
        for key in KEYS {
            let name = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            if let Some(value) = env(&name) {
                raw.insert(key.to_string(), (name, value));
            }
        }

        let mut s = Settings::default();
        for (key, (origin, value)) in raw {
            let bad = |msg: String| ConfigError::new(origin.clone(), msg);
            match key.as_str() {
                "database_url" => s.database_url = DatabaseUrl::parse(&value).map_err(bad)?,
                "bind" => {
                    s.bind = value.trim().parse().map_err(|_| {
                        bad(format!(
                            "`{value}` is not a socket address such as 127.0.0.1:8080"
                        ))
                    })?
                }
                "log_format" => {
                    s.log_format = match value.trim().to_ascii_lowercase().as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad(format!("`{value}` is neither `text` nor `json`"))),
                    }
                }
                "log_level" => {
                    tracing_subscriber::EnvFilter::try_new(&value)
                        .map_err(|e| bad(format!("`{value}` is not a log filter: {e}")))?;
                    s.log_level = value;
                }
                "database_pool_size" => {
                    s.database_pool_size = parse_in_range(&value, 1, 256).map_err(bad)? as u32
                }
                "database_timeout_seconds" => {
                    s.database_timeout_seconds = parse_in_range(&value, 1, 300).map_err(bad)?
                }
                "workers" => s.workers = parse_in_range(&value, 1, 512).map_err(bad)? as usize,
                "shutdown_timeout_seconds" => {
                    s.shutdown_timeout_seconds = parse_in_range(&value, 0, 3600).map_err(bad)?
                }
                "rate_limit_per_second" => {
                    s.rate_limit_per_second =
                        parse_in_range(&value, 1, 1_000_000).map_err(bad)? as u32
                }
                "rate_limit_burst" => {
                    s.rate_limit_burst = parse_in_range(&value, 1, 1_000_000).map_err(bad)? as u32
                }
                "person_name_precedence" => {
                    let mut order = Vec::new();
                    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let p =
                            unicontacts_adapters::ProviderKind::parse(name).ok_or_else(|| {
                                bad(format!(
                                    "`{name}` is not a provider (periskope, wacr, gateway)"
                                ))
                            })?;
                        if !order.contains(&p) {
                            order.push(p);
                        }
                    }
                    for p in unicontacts_adapters::ProviderKind::ALL {
                        if !order.contains(&p) {
                            order.push(p);
                        }
                    }
                    s.person_name_precedence = order;
                }
                "sync_lease_seconds" => {
                    s.sync_lease_seconds = parse_in_range(&value, 2, 86_400).map_err(bad)?
                }
                "sync_max_concurrent_runs" => {
                    s.sync_max_concurrent_runs =
                        parse_in_range(&value, 1, 1_000).map_err(bad)? as u32
                }
                "sync_run_retention_days" => {
                    s.sync_run_retention_days =
                        parse_in_range(&value, 0, 36_500).map_err(bad)? as u32
                }
                "scheduler_tick_ms" => {
                    s.scheduler_tick_ms = parse_in_range(&value, 0, 3_600_000).map_err(bad)?
                }
                "upstream_timeout_ms" => {
                    s.upstream_timeout_ms = parse_in_range(&value, 50, 300_000).map_err(bad)?
                }
                "cache_max_bytes" => {
                    s.cache_max_bytes = parse_in_range(&value, 0, 1 << 40).map_err(bad)?
                }
                _ => unreachable!("keys are checked against KEYS above"),
            }
        }
        Ok(s)
    }
}

fn parse_in_range(value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{value}` is not a whole number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_a_local_sqlite_file_and_port_8080() {
        let s = Settings::load_from(None, env(&[])).expect("defaults");
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("unicontacts.db".into()));
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("uc.toml");
        std::fs::write(&file, "bind = \"0.0.0.0:9000\"\nworkers = 3\n").expect("write");
        let s = Settings::load_from(Some(&file), env(&[("UNICONTACTS_WORKERS", "5")]))
            .expect("settings");
        assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.workers, 5);
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let err = Settings::load_from(None, env(&[("UNICONTACTS_BIND", "nowhere")]))
            .expect_err("bad bind");
        assert_eq!(err.setting, "UNICONTACTS_BIND");
        assert!(err
            .to_string()
            .starts_with("invalid setting UNICONTACTS_BIND:"));

        let err = Settings::load_from(None, env(&[("UNICONTACTS_DATABASE_POOL_SIZE", "0")]))
            .expect_err("bad pool size");
        assert_eq!(err.setting, "UNICONTACTS_DATABASE_POOL_SIZE");

        // No scheduled run at all would never sync anything: at least one.
        let err = Settings::load_from(None, env(&[("UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS", "0")]))
            .expect_err("no runs");
        assert_eq!(err.setting, "UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS");
        let s = Settings::load_from(
            None,
            env(&[
                ("UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS", "2"),
                ("UNICONTACTS_SYNC_RUN_RETENTION_DAYS", "0"),
            ]),
        )
        .expect("settings");
        assert_eq!(
            (s.sync_max_concurrent_runs, s.sync_run_retention_days),
            (2, 0)
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("uc.toml");
        std::fs::write(&file, "bnid = \"0.0.0.0:9000\"\n").expect("write");
        let err = Settings::load_from(Some(&file), env(&[])).expect_err("unknown key");
        assert!(err.setting.contains("bnid"), "{err}");
    }

    #[test]
    fn database_urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h/db").expect("pg"),
            DatabaseUrl::Postgres("postgres://u:p@h/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db").expect("sqlite"),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("x.db").expect("path"),
            DatabaseUrl::Sqlite("x.db".into())
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse(":memory:").is_err());
    }

    #[test]
    fn debug_of_a_postgres_url_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/uc").expect("pg");
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
