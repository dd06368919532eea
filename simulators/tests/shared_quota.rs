//! Quotas shared through Redis by several processes (here: several registries,
//! each with its own Redis connection, as separate processes have), against the
//! Periskope simulator over real HTTP; and the fallback while Redis is away.
//!
//! Redis: `UNICONTACTS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); on CI a
//! missing Redis fails the test instead of skipping it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use unicontacts_adapters::periskope::client::PeriskopeClient;
use unicontacts_adapters::quota::{Priority, QuotaConfig, QuotaRegistry, RateStyle};
use unicontacts_adapters::{ConnectionConfig, Provider, ProviderKind, UpstreamConfig};
use unicontacts_simulators::{RateLimit, World};

const KEY: &str = "sim-secret-key-0123456789";

async fn redis_at(url: &str) -> Option<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).ok()?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    let mut conn = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .ok()?;
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    pong.ok().map(|_| conn)
}

/// The machine's Redis, or `None` (skipped) off CI.
async fn redis() -> Option<redis::aio::ConnectionManager> {
    let url = std::env::var("UNICONTACTS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match redis_at(&url).await {
        Some(c) => Some(c),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("Redis at {url} is required on CI")
        }
        None => {
            eprintln!("no Redis at {url}: skipped");
            None
        }
    }
}

fn client(registry: &QuotaRegistry, base_url: String, credential: &str) -> Arc<PeriskopeClient> {
    let config = ConnectionConfig {
        kind: ProviderKind::Periskope,
        base_url,
        api_key: KEY.into(),
        phone: Some("918527184400".into()),
        session: None,
        default_country: None,
        upstream: UpstreamConfig {
            priority: Priority::Background,
            deadline: None,
            rate_limit_per_second: 5,
            ..UpstreamConfig::default()
        },
        quota: Some(registry.quota(
            credential,
            QuotaConfig {
                style: RateStyle::Reset,
                per_second: 5,
                background_floor: 0.2,
            },
        )),
        page_size: None,
    };
    Arc::new(
        PeriskopeClient::new(config)
            .expect("client")
            .with_page_size(5),
    )
}

/// `callers` tasks on each client, `calls` list calls in all.
async fn hammer(clients: &[Arc<PeriskopeClient>], callers: usize, calls: usize) -> Vec<bool> {
    let mut tasks = Vec::new();
    let per = calls / (clients.len() * callers);
    for c in clients {
        for _ in 0..callers {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                for _ in 0..per {
                    ok.push(c.list_contacts(None).await.is_ok());
                }
                ok
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all
}

fn most_in_one_window(sim: &unicontacts_simulators::periskope::PeriskopeSim) -> u32 {
    let mut per_window = std::collections::BTreeMap::new();
    for r in sim.requests() {
        *per_window.entry(r.at_ms / 1000).or_insert(0u32) += 1;
    }
    per_window.values().copied().max().unwrap_or(0)
}

/// The two tests measure time against quota windows: run side by side on two
/// cores (one starts its own redis-server), the first took 13 s instead of 8
/// now and then. One at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_one_redis_share_one_quota() {
    let _alone = ALONE.lock().await;
    let Some(_) = redis().await else { return };
    let url = std::env::var("UNICONTACTS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let world = World::generate(91, 60);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        any_port(),
        Some(RateLimit {
            limit: 5,
            window_secs: 1,
        }),
    )
    .await
    .expect("sim");
    let credential = format!("test:{}", ulid::Ulid::new());
    let mut clients = Vec::new();
    for _ in 0..3 {
        let conn = redis_at(&url).await.expect("redis");
        clients.push(client(
            &QuotaRegistry::shared(conn, 3),
            sim.api_base(),
            &credential,
        ));
    }
    let started = Instant::now();
    let results = hammer(&clients, 3, 45).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|ok| *ok), "every call succeeds");
    assert_eq!(sim.served_429(), 0, "no 429 was answered");
    assert!(most_in_one_window(&sim) <= 5);
    // 45 calls at 5 a window: 8 windows after the first; together, not each
    // alone (each alone would be done in 3). The upper bound only catches a
    // quota that stalls: a whole test run once took 13 s here, so it is loose;
    // how close to the floor the quota keeps is the `upstream_rate_limit`
    // bench's to measure.
    assert!(
        elapsed >= Duration::from_secs(7) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );
}

/// A Redis server of the test's own on a free port; killed on drop.
struct OwnRedis {
    child: Child,
    url: String,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_process_keeps_to_its_share_and_rejoins_when_it_is_back() {
    let _alone = ALONE.lock().await;
    let port = free_port();
    let Some(own) = OwnRedis::start(port) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("redis-server is required on CI");
        }
        eprintln!("no redis-server: skipped");
        return;
    };
    let mut conn = None;
    for _ in 0..50 {
        conn = redis_at(&own.url).await;
        if conn.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conn = conn.expect("own Redis up");
    let world = World::generate(92, 60);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        any_port(),
        Some(RateLimit {
            limit: 6,
            window_secs: 1,
        }),
    )
    .await
    .expect("sim");
    let credential = format!("test:{}", ulid::Ulid::new());
    let registry = QuotaRegistry::shared(conn, 2);
    let c = client(&registry, sim.api_base(), &credential);
    // Shared: the limit is learned (6 a window).
    assert!(hammer(std::slice::from_ref(&c), 2, 12)
        .await
        .iter()
        .all(|ok| *ok));
    drop(own);
    sim.clear_requests();
    // Redis gone: calls go on, at half the limit (3 a window) from this process.
    let results = hammer(std::slice::from_ref(&c), 2, 18).await;
    assert!(results.iter().all(|ok| *ok), "no call fails for Redis");
    assert!(
        most_in_one_window(&sim) <= 3,
        "{}",
        most_in_one_window(&sim)
    );
    assert_eq!(sim.served_429(), 0);
    // Redis back on the same port: the quota is shared again.
    let own = OwnRedis::start(port).expect("restart");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.clear_requests();
    assert!(hammer(std::slice::from_ref(&c), 2, 24)
        .await
        .iter()
        .all(|ok| *ok));
    assert!(most_in_one_window(&sim) > 3, "back to the whole limit");
    let mut check = redis_at(&own.url).await.expect("redis");
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("unicontacts:quota:{credential}"))
        .query_async(&mut check)
        .await
        .expect("get");
    assert!(stored.is_some(), "the state lives in Redis again");
}
