//! A full sync of N contacts from the Periskope simulator rate-limited to L
//! requests per 1 s window (L = contact pages/10), chats included (a Periskope run
//! lists every chat first: ~0.7 chats per contact, each page a list call the
//! floor counts), run as a `unicontacts sync` child process
//! so that its peak RSS is its own (the simulator lives in this process). Prints
//! wall time against the floor the quota allows (from the spawn to the opening of
//! the window that admits the last list call, computed from the simulator's record
//! of the calls), 429s received, contacts written per second and the child's peak
//! RSS, on SQLite and (when `UNICONTACTS_TEST_POSTGRES_URL` is set) PostgreSQL.
//!
//! Run: `cargo bench --bench sync` (sizes: `UC_BENCH_SIZES=100000,1000000`; one
//! backend: `UC_BENCH_BACKENDS=sqlite` or `postgres`; the
//! sync's own log with `UC_BENCH_LOG=1`, each page's timing with
//! `UC_BENCH_LOG=info,unicontacts::sync=debug`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use unicontacts::config::SecretKey;
use unicontacts::config::{DatabaseUrl, Settings};
use unicontacts::service::api_keys::{self, OrgRef, Scope};
use unicontacts::service::connections::{
    self, CreateConnectionRequest, CredentialsInput, SettingsInput,
};
use unicontacts_simulators::{RateLimit, World};

const KEY: &str = "bench-key-0123456789";

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn run(backend: &str, url: DatabaseUrl, size: usize) {
    // About 65% of the world's people are in Periskope.
    let world = World::generate(7, size * 100 / 65 + 50);
    let (store_len, chat_len) = {
        let s = unicontacts_simulators::periskope::PeriskopeStore::from_world(&world);
        (s.len(), s.chat_count())
    };
    let pages = store_len.div_ceil(2000) as u64;
    let chat_pages = chat_len.div_ceil(2000) as u64;
    let limit = (pages / 10).max(1) as u32;
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        "127.0.0.1:0".parse().expect("addr"),
        Some(RateLimit {
            limit,
            window_secs: 1,
        }),
    )
    .await
    .expect("simulator");
    drop(world);
    let settings = Settings {
        database_url: url.clone(),
        secret_key: Some(SecretKey(bench_key().to_string())),
        ..Settings::default()
    };
    let store = unicontacts::startup::open_store(&settings)
        .await
        .expect("store");
    let state = unicontacts::state::State::new(settings, store.clone());
    let org = api_keys::create(&store, OrgRef::Name("bench"), "bench", &[Scope::Admin])
        .await
        .expect("org");
    let c = connections::create(
        &state,
        &org.org.id,
        CreateConnectionRequest {
            provider: unicontacts_adapters::ProviderKind::Periskope,
            name: format!("bench {}", unicontacts::ids::new_id("b")),
            base_url: Some(sim.api_base()),
            credentials: CredentialsInput {
                api_key: Some(KEY.into()),
                phone: Some("918527184400".into()),
                session: None,
            },
            settings: SettingsInput {
                rate_limit_per_second: Some(limit),
                ..SettingsInput::default()
            },
        },
        false,
    )
    .await
    .expect("connection");
    let db_arg = match &url {
        DatabaseUrl::Sqlite(p) => p.display().to_string(),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    // `UC_BENCH_LOG=1` shows the sync's own log (its last line splits the time);
    // any other value is the log filter (`info,unicontacts::sync=debug`: each page).
    let log_filter = std::env::var("UC_BENCH_LOG")
        .ok()
        .map(|v| match v.as_str() {
            "1" => "info".to_string(),
            _ => v,
        });
    let log = log_filter.is_some();
    // Start just after a window opens (the simulator's are aligned to epoch
    // seconds): a run starting late in a window cannot use that window's quota, and
    // its time over the floor would measure the alignment rather than the sync.
    let now = epoch_ms();
    tokio::time::sleep(Duration::from_millis(1000 - now % 1000 + 5)).await;
    let started = Instant::now();
    let spawned_ms = epoch_ms();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unicontacts"))
        .args(["sync", "--connection", &c.id])
        .env("UNICONTACTS_DATABASE_URL", db_arg)
        .env("UNICONTACTS_SECRET_KEY", bench_key())
        .env(
            "UNICONTACTS_LOG_LEVEL",
            log_filter.as_deref().unwrap_or("warn"),
        )
        .stdout(Stdio::null())
        .stderr(if log { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("spawn sync");
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success(), "sync failed");
    let id = c.id.clone();
    let (created, throttled): (i64, i64) = store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::sync_runs;
            Ok(sync_runs::table
                .filter(sync_runs::connection_id.eq(id))
                .select((sync_runs::created, sync_runs::throttled_429))
                .first(conn)?)
        })
        .await
        .expect("run");
    // The floor, exactly: the simulator's windows are aligned to epoch seconds, so
    // the last of the N list calls cannot be sent before the window
    // ceil(N/L) − 1 after the first call's opens. Measured from the spawn, so the
    // sync's own start-up and its work after the last page count against it.
    let calls: Vec<u64> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/contacts") || r.path.ends_with("/chats"))
        .map(|r| r.at_ms)
        .collect();
    let first_window = calls.iter().min().copied().unwrap_or(spawned_ms) / 1000;
    let last_window = first_window + (calls.len() as u64).div_ceil(u64::from(limit)) - 1;
    let floor = (last_window * 1000).saturating_sub(spawned_ms) as f64 / 1000.0;
    println!(
        "| {backend} | {created} | {limit} / 1 s | {pages} + {chat_pages} ({} calls) | {wall:.2} s | {floor:.2} s | {:.2} | {throttled} | {:.0} | {:.0} MiB |",
        calls.len(),
        if floor > 0.0 { wall / floor } else { f64::NAN },
        created as f64 / wall,
        peak as f64 / 1024.0
    );
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("UC_BENCH_SIZES")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("| backend | contacts | limit / window | contact + chat pages (list calls) | wall | floor | wall/floor | 429s | contacts/s | peak RSS of the sync |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // `UC_BENCH_BACKENDS=sqlite` or `=postgres` runs one of the two.
    let only = std::env::var("UC_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.contains(name);
    for &size in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        if wanted("sqlite") {
            run(
                "SQLite",
                DatabaseUrl::Sqlite(dir.path().join("bench.db")),
                size,
            )
            .await;
        }
        let admin = std::env::var("UNICONTACTS_TEST_POSTGRES_URL")
            .ok()
            .filter(|_| wanted("postgres"));
        if let Some(admin) = admin {
            let name = format!("uc_bench_{}", ulid::Ulid::new().to_string().to_lowercase());
            let mut pg = unicontacts::store::establish_postgres(&admin).expect("postgres");
            pg.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create db");
            let mut url = url::Url::parse(&admin).expect("url");
            url.set_path(&name);
            run("PostgreSQL", DatabaseUrl::Postgres(url.to_string()), size).await;
            if std::env::var_os("TMP_KEEP").is_none() {
                let _ =
                    pg.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

/// The key this run seals credentials with (a fresh one per run).
fn bench_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(unicontacts::secrets::Sealer::generate_key)
}
