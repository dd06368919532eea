//! Upstream rate limiting against the Periskope simulator: N = 10·L calls from 8
//! concurrent callers at L requests per window. Prints elapsed against the floor
//! the quota allows ((N/L − 1) windows: fixed windows let the first L go at once)
//! and the 429s received (target: none, elapsed ≤ 1.2 × floor).
//!
//! Run: `cargo bench --bench upstream_rate_limit`

use std::sync::Arc;
use std::time::Instant;

use unicontacts_adapters::periskope::client::PeriskopeClient;
use unicontacts_adapters::{ConnectionConfig, Provider, ProviderKind, UpstreamConfig};
use unicontacts_simulators::{RateLimit, World};

const KEY: &str = "bench-key-0123456789";

async fn run(limit: u32, window_secs: u64, callers: usize) {
    let world = World::generate(1, 100);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        "127.0.0.1:0".parse().expect("addr"),
        Some(RateLimit { limit, window_secs }),
    )
    .await
    .expect("simulator");
    let client = Arc::new(
        PeriskopeClient::new(ConnectionConfig {
            kind: ProviderKind::Periskope,
            base_url: sim.api_base(),
            api_key: KEY.into(),
            phone: Some("918527184400".into()),
            session: None,
            default_country: None,
            upstream: UpstreamConfig {
                rate_limit_per_second: limit,
                // Background callers: they wait as long as the quota asks.
                ..UpstreamConfig::default()
            },
            quota: None,
            page_size: None,
        })
        .expect("client")
        .with_page_size(10),
    );
    let total = 10 * limit as usize;
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in (c..total).step_by(callers) {
                    client.list_contacts(None).await.expect("call");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let floor = ((total as u64 / u64::from(limit)) - 1) as f64 * window_secs as f64;
    let stats = client.stats();
    println!(
        "| {limit:>4} / {window_secs}s | {callers} | {total:>5} | {elapsed:>7.2} s | {floor:>5.0} s | {:>5.3} | {:>3} | {:>3} |",
        elapsed / floor,
        stats.throttled_429,
        stats.retries
    );
}

#[tokio::main]
async fn main() {
    println!(
        "| limit / window | callers | calls | elapsed | floor | elapsed/floor | 429s | retries |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    run(10, 1, 8).await;
    run(50, 1, 8).await;
    run(200, 1, 8).await;
    run(20, 2, 8).await;
}
