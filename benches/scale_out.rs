//! Scale-out figures, the release binary driven from outside as a user would:
//!
//! 1. The cached live read (`X-Cache: HIT`) under `wrk` (64 connections, 2
//!    threads, 5 s), the server's inbound limits per API key in Redis against
//!    in-process, alternating, three runs each; the ratio is the target (≥ 0.8).
//! 2. Quota sharing: a sync of the Periskope simulator (L requests per 1 s
//!    window) through a `serve` process while 4 clients make live reads of the
//!    same connection; the sync's wall time over the floor the quota allows for
//!    every request made (the sync's and the reads'), and the 429s received.
//!
//! Needs `wrk` (Debian's package) and, for part 1, the machine's Redis
//! (`UNICONTACTS_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
//! Run: `cargo bench --bench scale_out` (one part: `UC_BENCH_PARTS=reads` or `sync`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unicontacts::config::SecretKey;
use unicontacts::config::{DatabaseUrl, Settings};
use unicontacts::service::api_keys::{self, OrgRef, Scope};
use unicontacts::service::connections::{
    self, CreateConnectionRequest, CredentialsInput, SettingsInput,
};
use unicontacts_simulators::{RateLimit, World};

const KEY: &str = "bench-key-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A `serve` child on `port`; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(db: &str, port: u16, redis: Option<&str>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unicontacts"));
    cmd.arg("serve")
        .env_clear()
        .env("UNICONTACTS_DATABASE_URL", db)
        .env("UNICONTACTS_SECRET_KEY", bench_key())
        .env("UNICONTACTS_BIND", format!("127.0.0.1:{port}"))
        .env("UNICONTACTS_LOG_LEVEL", "warn")
        .env("UNICONTACTS_SCHEDULER_TICK_MS", "0")
        .env("UNICONTACTS_RATE_LIMIT_PER_SECOND", "1000000")
        .env("UNICONTACTS_RATE_LIMIT_BURST", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(r) = redis {
        cmd.env("UNICONTACTS_REDIS_URL", r);
    }
    let server = Server(cmd.spawn().expect("spawn serve"));
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

/// `wrk`'s requests a second at `url`, and its non-2xx count.
fn wrk(url: &str, key: &str) -> (f64, u64) {
    let mut cmd = Command::new("wrk");
    if let Ok(script) = std::env::var("UC_BENCH_WRK_SCRIPT") {
        cmd.args(["-s", &script]);
    }
    let out = cmd
        .args(["-t2", "-c64", "-d5s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {key}"))
        .arg(url)
        .output()
        .expect("wrk (apt install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("UC_BENCH_WRK_SCRIPT").is_some() {
        eprintln!("{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said: {text}"));
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (rps, non_2xx)
}

/// A database with an org, an admin key and a Periskope connection to `sim`.
async fn seed(
    db: &DatabaseUrl,
    sim: &unicontacts_simulators::periskope::PeriskopeSim,
    limit: u32,
) -> (String, String) {
    let settings = Settings {
        database_url: db.clone(),
        secret_key: Some(SecretKey(bench_key().to_string())),
        ..Settings::default()
    };
    let store = unicontacts::startup::open_store(&settings)
        .await
        .expect("store");
    let state = unicontacts::state::State::new(settings, store.clone());
    let key = api_keys::create(
        &store,
        OrgRef::Name("bench"),
        "bench",
        &[Scope::Admin, Scope::ContactsRead],
    )
    .await
    .expect("key");
    let c = connections::create(
        &state,
        &key.org.id,
        CreateConnectionRequest {
            provider: unicontacts_adapters::ProviderKind::Periskope,
            name: "bench".into(),
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
    (key.key, c.id)
}

fn digits_of(sim: &unicontacts_simulators::periskope::PeriskopeSim) -> Vec<String> {
    sim.api().with_store(|s| {
        s.all()
            .iter()
            .map(|c| {
                c["contact_id"]
                    .as_str()
                    .expect("id")
                    .trim_end_matches("@c.us")
                    .to_string()
            })
            .collect()
    })
}

async fn cached_reads(redis: &str) {
    println!("## cached live read (X-Cache: HIT): inbound limits in Redis vs in-process\n");
    println!("wrk -t2 -c64 -d5s against the release binary on SQLite; app, wrk and Redis share the 2 cores.\n");
    println!("| run | in-process req/s | Redis req/s | Redis / in-process |");
    println!("|---|---|---|---|");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let db = DatabaseUrl::Sqlite(path.clone());
    let world = World::generate(3, 40);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        "127.0.0.1:0".parse().expect("addr"),
        None,
    )
    .await
    .expect("sim");
    let (key, connection) = seed(&db, &sim, 1000).await;
    let digits = digits_of(&sim);
    let path = path.display().to_string();
    let live = format!("/v1/connections/{connection}/contacts/{}", digits[0]);
    let mut ratios = Vec::new();
    for run in 1..=3 {
        let mut figures = Vec::new();
        for redis_url in [None, Some(redis)] {
            let port = free_port();
            let _server = serve(&path, port, redis_url).await;
            let url = format!("http://127.0.0.1:{port}{live}");
            let res = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&key)
                .send()
                .await
                .expect("prime");
            assert_eq!(res.status(), 200);
            let res = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&key)
                .send()
                .await
                .expect("hit");
            assert_eq!(res.headers()["x-cache"], "HIT");
            let (rps, bad) = wrk(&url, &key);
            if bad > 0 {
                let res = reqwest::Client::new()
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("after");
                let status = res.status();
                panic!(
                    "{bad} answers were not 200 ({redis_url:?}); one now: {status} {}",
                    res.text().await.unwrap_or_default()
                );
            }
            figures.push(rps);
        }
        let ratio = figures[1] / figures[0];
        ratios.push(ratio);
        println!(
            "| {run} | {:.0} | {:.0} | {ratio:.2} |",
            figures[0], figures[1]
        );
    }
    println!();
}

async fn sync_with_live_reads(limit: u32, contacts: usize) {
    println!("## quota sharing: a sync and live reads of one connection\n");
    println!("| run | sync pages | live reads | requests | 429s | wall | floor | wall/floor |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in 1..=3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.db");
        let db = DatabaseUrl::Sqlite(path.clone());
        let world = World::generate(4, contacts * 100 / 65 + 50);
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
        .expect("sim");
        drop(world);
        let (key, connection) = seed(&db, &sim, limit).await;
        let digits = digits_of(&sim);
        let port = free_port();
        let _server = serve(&path.display().to_string(), port, None).await;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        // Start just after a window opens, as the sync bench does.
        let now = epoch_ms();
        tokio::time::sleep(Duration::from_millis(1000 - now % 1000 + 5)).await;
        let started_ms = epoch_ms();
        let started = Instant::now();
        let res = client
            .post(format!("{base}/v1/admin/connections/{connection}/sync"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 202);
        let run_id = res.json::<Value>().await.expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
        // Four clients, ten live reads each, while the sync runs.
        let mut readers = Vec::new();
        for c in 0..4 {
            let urls: Vec<String> = digits
                .iter()
                .skip(c * 10)
                .take(10)
                .map(|d| format!("{base}/v1/connections/{connection}/contacts/{d}?fresh=true"))
                .collect();
            let (client, key) = (client.clone(), key.clone());
            readers.push(tokio::spawn(async move {
                for url in urls {
                    let res = client
                        .get(&url)
                        .bearer_auth(&key)
                        .send()
                        .await
                        .expect("read");
                    assert_eq!(res.status(), 200);
                }
            }));
        }
        let finished = loop {
            let run: Value = client
                .get(format!("{base}/v1/admin/sync-runs/{run_id}"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("run")
                .json()
                .await
                .expect("json");
            if run["status"] != "running" {
                break run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let wall = started.elapsed().as_secs_f64();
        for r in readers {
            r.await.expect("reader");
        }
        assert_eq!(finished["status"], "succeeded", "{finished}");
        let requests = sim.requests().len() as u64;
        let first_window = started_ms / 1000;
        let last_window = first_window + requests.div_ceil(u64::from(limit)) - 1;
        let floor = (last_window * 1000).saturating_sub(started_ms) as f64 / 1000.0;
        println!(
            "| {run} | {} | 40 | {requests} | {} | {wall:.2} s | {floor:.2} s | {:.2} |",
            finished["pages"],
            sim.served_429(),
            wall / floor
        );
    }
    println!();
}

#[tokio::main]
async fn main() {
    let redis = std::env::var("UNICONTACTS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // `UC_BENCH_PARTS=reads` or `=sync` runs one part.
    let parts = std::env::var("UC_BENCH_PARTS").unwrap_or_default();
    if parts.is_empty() || parts.contains("reads") {
        cached_reads(&redis).await;
    }
    if parts.is_empty() || parts.contains("sync") {
        // 50 pages of 2000 and 40 reads at 5 a window.
        sync_with_live_reads(5, 100_000).await;
    }
}

/// The key this run seals credentials with (a fresh one per run).
fn bench_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(unicontacts::secrets::Sealer::generate_key)
}
