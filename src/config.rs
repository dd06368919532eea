//! Typed settings, each declared once below: its name (the TOML key; the
//! environment variable is `UNICONTACTS_` + the key in capitals), its type, its
//! default (`#[default]`), its allowed values (`#[validate]`) and its doc comment.
//! Sources, later ones winning: the defaults, an optional TOML file (`--config
//! FILE` or `UNICONTACTS_CONFIG`), then `UNICONTACTS_*` variables, layered by
//! figment, which remembers where each value came from.
//!
//! A bad value stops start-up with one line naming where it came from: the
//! variable (`UNICONTACTS_BIND`), the key in the file (`` `bind` in uc.toml ``), or
//! the flag or variable that named an unreadable file. The database URL is never
//! echoed back, since it may hold a password. The README's settings table lists
//! every setting (a test holds them together).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smart_default::SmartDefault;
use unicontacts_adapters::ProviderKind;
use validator::{Validate, ValidationError};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(de)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(serde::de::Error::custom(format!(
                "`{raw}` is neither `text` nor `json`"
            ))),
        }
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        // The message names what is wrong, never the URL (it may hold a password).
        DatabaseUrl::parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Sqlite(p) => s.serialize_str(&p.to_string_lossy()),
            Self::Postgres(u) => s.serialize_str(u),
        }
    }
}

/// `127.0.0.1:8080`, with a message that says so.
mod socket_addr {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
        let raw = String::deserialize(de)?;
        raw.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "`{raw}` is not a socket address such as 127.0.0.1:8080"
            ))
        })
    }

    pub fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&addr.to_string())
    }
}

/// `wacr,periskope`: the providers named first, then the others in their usual order.
mod precedence {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<ProviderKind>, D::Error> {
        let raw = String::deserialize(de)?;
        let mut order = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let p = ProviderKind::parse(name).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{name}` is not a provider (periskope, wacr, gateway)"
                ))
            })?;
            if !order.contains(&p) {
                order.push(p);
            }
        }
        for p in ProviderKind::ALL {
            if !order.contains(&p) {
                order.push(p);
            }
        }
        Ok(order)
    }

    pub fn serialize<S: Serializer>(order: &[ProviderKind], s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = order.iter().map(|p| p.as_str()).collect();
        s.serialize_str(&names.join(","))
    }
}

/// `5000,300000`: milliseconds, comma-separated.
mod millis_list {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u64>, D::Error> {
        let raw = String::deserialize(de)?;
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    serde::de::Error::custom(format!("`{s}` is not a whole number of milliseconds"))
                })
            })
            .collect()
    }

    pub fn serialize<S: Serializer>(list: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = list.iter().map(u64::to_string).collect();
        s.serialize_str(&parts.join(","))
    }
}

fn valid_retry_schedule(list: &[u64]) -> Result<(), ValidationError> {
    if list.iter().all(|ms| (1..=7 * 24 * 3_600_000).contains(ms)) {
        Ok(())
    } else {
        Err(ValidationError::new("webhook_retry_schedule_ms")
            .with_message("each wait must be from 1 ms to 7 days".into()))
    }
}

fn valid_log_filter(filter: &str) -> Result<(), ValidationError> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| {
            ValidationError::new("log_level")
                .with_message(format!("`{filter}` is not a log filter: {e}").into())
        })
}

fn valid_redis_url(url: &str) -> Result<(), ValidationError> {
    redis::Client::open(url).map(|_| ()).map_err(|_| {
        ValidationError::new("redis_url")
            .with_message("is not a Redis URL such as redis://127.0.0.1:6379".into())
    })
}

/// A secret setting: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(pub String);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

fn valid_secret_key(key: &SecretKey) -> Result<(), ValidationError> {
    crate::secrets::Sealer::from_base64(&key.0)
        .map(|_| ())
        .map_err(|e| ValidationError::new("secret_key").with_message(e.to_string().into()))
}

fn valid_metrics_token(token: &SecretKey) -> Result<(), ValidationError> {
    let t = &token.0;
    if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new("metrics_token")
            .with_message("must be 16 to 256 printable characters without spaces".into()));
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Every setting. Numbers take whole values in the ranges given.
#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A SQLite file path (`sqlite://PATH`, `sqlite:PATH` or a bare path; created
    /// if missing) or `postgres://user:pass@host/db`.
    #[default(DatabaseUrl::Sqlite(PathBuf::from("unicontacts.db")))]
    pub database_url: DatabaseUrl,
    /// The address the HTTP API listens on.
    #[default(SocketAddr::from(([127, 0, 0, 1], 8080)))]
    #[serde(with = "socket_addr")]
    pub bind: SocketAddr,
    /// `text`, or `json` for one JSON object per line.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info,unicontacts=debug`.
    #[default("info".to_string())]
    #[validate(custom(function = "valid_log_filter"))]
    pub log_level: String,
    /// Pooled database connections (on SQLite the readers; writes go one at a
    /// time through one more connection).
    #[default(8)]
    #[validate(range(min = 1, max = 256))]
    pub database_pool_size: u32,
    /// How long a request waits for a pooled connection before a 503.
    #[default(5)]
    #[validate(range(min = 1, max = 300))]
    pub database_timeout_seconds: u64,
    /// HTTP worker threads (default: the number of CPU cores).
    #[default(cores())]
    #[validate(range(min = 1, max = 512))]
    pub workers: usize,
    /// Drain time after SIGTERM/SIGINT.
    #[default(30)]
    #[validate(range(min = 0, max = 3600))]
    pub shutdown_timeout_seconds: u64,
    /// Inbound requests a second per API key.
    #[default(50)]
    #[validate(range(min = 1, max = 1_000_000))]
    pub rate_limit_per_second: u32,
    /// Inbound burst per API key.
    #[default(100)]
    #[validate(range(min = 1, max = 1_000_000))]
    pub rate_limit_burst: u32,
    /// Bytes of cached live contacts.
    #[default(64 * 1024 * 1024)]
    #[validate(range(min = 0, max = 1_099_511_627_776_u64))]
    pub cache_max_bytes: u64,
    /// Bytes of stored contacts kept as served (`GET /v1/contacts/{id}`); 0: none.
    #[default(64 * 1024 * 1024)]
    #[validate(range(min = 0, max = 1_099_511_627_776_u64))]
    pub stored_cache_max_bytes: u64,
    /// One provider call during a live read.
    #[default(10_000)]
    #[validate(range(min = 50, max = 300_000))]
    pub upstream_timeout_ms: u64,
    /// How often due syncs are looked for; `0` turns the scheduler off.
    #[default(5_000)]
    #[validate(range(min = 0, max = 3_600_000))]
    pub scheduler_tick_ms: u64,
    /// A run's lease, renewed every page; a crashed run's successor waits this long.
    #[default(300)]
    #[validate(range(min = 2, max = 86_400))]
    pub sync_lease_seconds: u64,
    /// An identifier (phone, WhatsApp LID) held by more live contacts of an
    /// org than this links none of them into one person: a company's
    /// switchboard number would otherwise glue strangers together. Such
    /// identifiers are listed on `GET /v1/admin/identity/overshared`.
    #[default(50)]
    #[validate(range(min = 2, max = 1_000_000))]
    pub max_contacts_per_identifier: u32,
    /// Scheduled runs this process has going at once.
    #[default(4)]
    #[validate(range(min = 1, max = 1_000))]
    pub sync_max_concurrent_runs: u32,
    /// The share of each upstream rate-limit window a sync always gets, in
    /// percent, however busy interactive calls keep the provider's quota.
    #[default(20)]
    #[validate(range(min = 0, max = 100))]
    pub sync_quota_share_percent: u32,
    /// Days a finished run stays in the history (`0`: forever).
    #[default(90)]
    #[validate(range(min = 0, max = 36_500))]
    pub sync_run_retention_days: u32,
    /// Days an event stays in the change feed (`GET /v1/events`).
    #[default(30)]
    #[validate(range(min = 1, max = 3650))]
    pub event_retention_days: u32,
    /// How often this process looks for webhook deliveries due; `0`: it
    /// delivers none (another replica does).
    #[default(1_000)]
    #[validate(range(min = 0, max = 3_600_000))]
    pub webhook_poll_ms: u64,
    /// The waits before each retry of a failed webhook delivery, in
    /// milliseconds, comma-separated; when spent the event is given up (recorded
    /// `failed`) and the next one goes.
    #[default(vec![5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000])]
    #[serde(with = "millis_list")]
    #[validate(length(min = 1, max = 20), custom(function = "valid_retry_schedule"))]
    pub webhook_retry_schedule_ms: Vec<u64>,
    /// A webhook endpoint failing this long (no 2xx) is disabled.
    #[default(5 * 24 * 3600)]
    #[validate(range(min = 1, max = 31_536_000))]
    pub webhook_disable_after_seconds: u64,
    /// Webhook endpoints this process delivers to at once.
    #[default(16)]
    #[validate(range(min = 1, max = 1_000))]
    pub webhook_concurrency: u32,
    /// Allow plain `http` webhook URLs (default: `https` only).
    pub webhook_allow_http: bool,
    /// Allow webhook URLs on loopback, private and link-local addresses (tests,
    /// the demo, a receiver inside your network). Cloud metadata addresses are
    /// refused whatever this says.
    pub webhook_allow_private_targets: bool,
    /// A token `GET /metrics` then requires as `Authorization: Bearer <token>`;
    /// unset, the figures are open to whoever reaches the listener.
    #[validate(custom(function = "valid_metrics_token"))]
    pub metrics_token: Option<SecretKey>,
    /// Label upstream and sync figures by connection id too (a series per
    /// connection: keep it off for many connections).
    pub metrics_per_connection: bool,
    /// Hours an `Idempotency-Key` and its answer are kept for replay.
    #[default(24)]
    #[validate(range(min = 1, max = 720))]
    pub idempotency_retention_hours: u32,
    /// The key provider credentials are sealed with at rest: base64 of 32 bytes.
    /// Unset on SQLite: a key file beside the database (`<database>.key`, made
    /// at first start); PostgreSQL needs it set.
    #[validate(custom(function = "valid_secret_key"))]
    pub secret_key: Option<SecretKey>,
    /// Redis shared by every replica (`redis://host:6379`): upstream quotas,
    /// inbound limits per API key and cache notices. Unset: one process is the
    /// supported deployment (each process keeps its own).
    #[validate(custom(function = "valid_redis_url"))]
    pub redis_url: Option<String>,
    /// Processes sharing Redis. While Redis cannot be reached each keeps to this
    /// share of a provider's quota on its own (1/replicas).
    #[default(2)]
    #[validate(range(min = 1, max = 1000))]
    pub replicas: u32,
    /// Whose name a person shows first: providers, comma-separated.
    #[default(vec![ProviderKind::Wacr, ProviderKind::Periskope, ProviderKind::Gateway])]
    #[serde(with = "precedence")]
    pub person_name_precedence: Vec<ProviderKind>,
}

/// A setting that could not be used; its `Display` is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    /// Where the value came from: the variable, the file's key, or the flag.
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

/// A settings file and how the user named it (`--config` or `UNICONTACTS_CONFIG`).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub named_by: String,
}

impl ConfigFile {
    /// A file named on the command line.
    pub fn from_flag(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            named_by: "--config".into(),
        }
    }
}

impl Settings {
    /// The settings' names (the TOML keys), as declared.
    pub fn keys() -> Vec<String> {
        match Figment::from(Serialized::defaults(Settings::default()))
            .extract::<figment::value::Dict>()
        {
            Ok(dict) => dict.into_keys().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Settings from the process environment and `file` (when none is given,
    /// `UNICONTACTS_CONFIG` names one, if set).
    pub fn load(file: Option<ConfigFile>) -> Result<Self, ConfigError> {
        let variable = format!("{ENV_PREFIX}CONFIG");
        let file = file.or_else(|| {
            std::env::var_os(&variable).map(|p| ConfigFile {
                path: PathBuf::from(p),
                named_by: variable.clone(),
            })
        });
        let keys = Self::keys();
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = &file {
            std::fs::read_to_string(&file.path).map_err(|e| {
                ConfigError::new(
                    &file.named_by,
                    format!("cannot read {}: {e}", file.path.display()),
                )
            })?;
            figment = figment.merge(Toml::file_exact(&file.path));
        }
        let figment = figment.merge(
            Env::prefixed(ENV_PREFIX).filter(move |k| keys.iter().any(|key| k == key.as_str())),
        );
        let settings: Settings = figment
            .extract()
            .map_err(|e| from_figment(&figment, file.as_ref(), e))?;
        if let Err(errors) = settings.validate() {
            let (field, errs) = errors
                .field_errors()
                .into_iter()
                .next()
                .map(|(f, e)| (f.to_string(), e.clone()))
                .unwrap_or_default();
            let message = errs
                .first()
                .map(describe_validation)
                .unwrap_or_else(|| "is invalid".into());
            return Err(ConfigError::new(origin(&figment, &field), message));
        }
        Ok(settings)
    }
}

/// Where the value of `key` came from, as the user wrote it.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(m) => match &m.source {
            Some(figment::Source::File(path)) => format!("`{key}` in {}", path.display()),
            _ if m.name.to_ascii_lowercase().contains("environment") => {
                format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
            }
            _ => key.to_string(),
        },
        None => key.to_string(),
    }
}

fn describe_validation(e: &ValidationError) -> String {
    if let Some(m) = &e.message {
        return m.to_string();
    }
    if e.code == "range" {
        let p = |k: &str| e.params.get(k).map(|v| v.to_string()).unwrap_or_default();
        return format!(
            "`{}` is not a whole number from {} to {}",
            p("value"),
            p("min"),
            p("max")
        );
    }
    format!("is invalid ({})", e.code)
}

fn from_figment(figment: &Figment, file: Option<&ConfigFile>, e: figment::Error) -> ConfigError {
    use figment::error::{Actual, Kind};
    let key = e.path.first().cloned().unwrap_or_default();
    let from_file = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|s| s.file_path())
        .map(Path::to_path_buf);
    let setting = match (&e.kind, &from_file) {
        // Unreadable TOML: the file, as the user named it.
        (Kind::Message(_), Some(path)) if key.is_empty() => file
            .map(|f| f.named_by.clone())
            .unwrap_or_else(|| path.display().to_string()),
        (Kind::UnknownField(name, _), Some(path)) => format!("`{name}` in {}", path.display()),
        _ if key.is_empty() => "settings".to_string(),
        _ => origin(figment, &key),
    };
    let message = match &e.kind {
        Kind::UnknownField(_, known) => {
            format!("unknown setting; known settings are {}", known.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let wanted = match expected.as_str() {
                "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number",
                "a string" | "string" => "text",
                other => other,
            };
            let got = match actual {
                Actual::Str(s) => format!("`{s}`"),
                other => other.to_string(),
            };
            format!("{got} is not {wanted}")
        }
        Kind::Message(m) => match &from_file {
            Some(path) if key.is_empty() => format!("{} is not valid TOML: {m}", path.display()),
            _ => m.clone(),
        },
        other => other.to_string(),
    };
    ConfigError::new(setting, message)
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(
        jail: &mut Jail,
        env: &[(&str, &str)],
        file: Option<ConfigFile>,
    ) -> Result<Settings, ConfigError> {
        jail.clear_env();
        for (k, v) in env {
            jail.set_env(k, v);
        }
        Settings::load(file)
    }

    #[test]
    fn defaults_are_a_local_sqlite_file_and_port_8080() {
        Jail::expect_with(|jail| {
            let s = load(jail, &[], None).expect("defaults");
            assert_eq!(s.database_url, DatabaseUrl::Sqlite("unicontacts.db".into()));
            assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(s.log_format, LogFormat::Text);
            assert_eq!(s.person_name_precedence[0], ProviderKind::Wacr);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_and_the_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "uc.toml",
                "bind = \"0.0.0.0:9000\"\nworkers = 3\nlog_format = \"JSON\"\n",
            )?;
            let file = ConfigFile::from_flag(Path::new("uc.toml"));
            let s = load(
                jail,
                &[
                    ("UNICONTACTS_WORKERS", "5"),
                    ("UNICONTACTS_PERSON_NAME_PRECEDENCE", "gateway"),
                    ("UNICONTACTS_LOG_LEVEL", "info,unicontacts=debug"),
                    // Not a setting: other tools' variables with our prefix are ignored.
                    ("UNICONTACTS_TEST_POSTGRES_URL", "postgres://x/y"),
                ],
                Some(file),
            )
            .expect("settings");
            assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
            assert_eq!(s.workers, 5);
            assert_eq!(s.log_format, LogFormat::Json);
            assert_eq!(s.log_level, "info,unicontacts=debug");
            assert_eq!(
                s.person_name_precedence,
                vec![
                    ProviderKind::Gateway,
                    ProviderKind::Periskope,
                    ProviderKind::Wacr
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_the_variable_it_came_from() {
        Jail::expect_with(|jail| {
            for (name, value, says) in [
                (
                    "UNICONTACTS_BIND",
                    "nowhere",
                    "`nowhere` is not a socket address",
                ),
                (
                    "UNICONTACTS_DATABASE_POOL_SIZE",
                    "0",
                    "`0` is not a whole number from 1 to 256",
                ),
                (
                    "UNICONTACTS_WORKERS",
                    "many",
                    "`many` is not a whole number",
                ),
                (
                    "UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS",
                    "0",
                    "from 1 to 1000",
                ),
                ("UNICONTACTS_LOG_FORMAT", "xml", "neither `text` nor `json`"),
                (
                    "UNICONTACTS_PERSON_NAME_PRECEDENCE",
                    "wacr,hubspot",
                    "`hubspot` is not a provider",
                ),
                (
                    "UNICONTACTS_DATABASE_URL",
                    "mysql://h/db",
                    "unsupported scheme `mysql`",
                ),
            ] {
                let err = load(jail, &[(name, value)], None).expect_err(name);
                assert_eq!(err.setting, name, "{err}");
                assert!(err.message.contains(says), "{name}: {err}");
                assert!(err
                    .to_string()
                    .starts_with(&format!("invalid setting {name}: ")));
            }
            let s = load(
                jail,
                &[
                    ("UNICONTACTS_SYNC_MAX_CONCURRENT_RUNS", "2"),
                    ("UNICONTACTS_SYNC_RUN_RETENTION_DAYS", "0"),
                ],
                None,
            )
            .expect("settings");
            assert_eq!(
                (s.sync_max_concurrent_runs, s.sync_run_retention_days),
                (2, 0)
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_or_an_unknown_key_in_the_file_names_the_key_and_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("uc.toml", "workers = 0\n")?;
            let err = load(jail, &[], Some(ConfigFile::from_flag(Path::new("uc.toml"))))
                .expect_err("bad workers");
            assert_eq!(err.setting, "`workers` in uc.toml", "{err}");
            jail.create_file("typo.toml", "bnid = \"0.0.0.0:9000\"\n")?;
            let err = load(
                jail,
                &[],
                Some(ConfigFile::from_flag(Path::new("typo.toml"))),
            )
            .expect_err("unknown key");
            assert!(err.setting.contains("bnid"), "{err}");
            assert!(
                err.message.contains("database_url"),
                "lists the known: {err}"
            );
            jail.create_file("broken.toml", "bind = \n")?;
            let err = load(
                jail,
                &[],
                Some(ConfigFile::from_flag(Path::new("broken.toml"))),
            )
            .expect_err("not TOML");
            assert_eq!(err.setting, "--config", "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unreadable_file_is_named_by_the_flag_or_the_variable_used() {
        Jail::expect_with(|jail| {
            let err = load(
                jail,
                &[],
                Some(ConfigFile::from_flag(Path::new("/nonexistent/uc.toml"))),
            )
            .expect_err("missing");
            assert_eq!(err.setting, "--config");
            let err = load(
                jail,
                &[("UNICONTACTS_CONFIG", "/nonexistent/uc.toml")],
                None,
            )
            .expect_err("missing");
            assert_eq!(err.setting, "UNICONTACTS_CONFIG");
            assert!(err.message.contains("/nonexistent/uc.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_readme_lists_every_setting_and_no_other() {
        let readme = include_str!("../README.md");
        let table: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("| `UNICONTACTS_"))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let mut keys = Settings::keys();
        keys.sort();
        let mut listed: Vec<String> = table.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(listed, keys, "README settings table vs Settings");
        for key in &keys {
            let var = format!("`{ENV_PREFIX}{}`", key.to_ascii_uppercase());
            assert!(readme.contains(&var), "README names {var}");
        }
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
