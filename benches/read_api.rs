//! Read API throughput and latency at 64 concurrent connections, against the app
//! on a temp SQLite file and the simulators, all on loopback in this process:
//! (a) cached live reads, (b) store reads by id, (c) list pages, and (d) a bare
//! actix handler answering the same bytes as (a), the ceiling. Then the latency a
//! cache miss adds over the simulator's own answer.
//!
//! Run: `cargo bench --bench read_api` (results in BENCHMARKS.md).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use unicontacts::config::{DatabaseUrl, Settings};
use unicontacts::service::api_keys::Scope;
use unicontacts::service::api_keys::{self, OrgRef};
use unicontacts::service::{connections, sync_runs};
use unicontacts::startup::{open_store, Application};
use unicontacts::store::models::{RunStatus, Trigger};
use unicontacts_simulators::{start_all, SimAddrs};

const CONNECTIONS: usize = 64;
const RUN: Duration = Duration::from_secs(5);
const SIM_KEY: &str = "bench-provider-key-0123456789";

struct Figures {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `CONNECTIONS` tasks loop for `RUN`, each asking `url(i)` with the key.
async fn load(client: &reqwest::Client, key: &str, urls: Arc<Vec<String>>) -> Figures {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let (client, key, urls) = (client.clone(), key.to_string(), urls.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = t;
                while started.elapsed() < RUN {
                    let url = &urls[i % urls.len()];
                    i += CONNECTIONS;
                    let t0 = Instant::now();
                    let res = client
                        .get(url)
                        .bearer_auth(&key)
                        .send()
                        .await
                        .expect("request");
                    assert!(res.status().is_success(), "{url}: {}", res.status());
                    let _ = res.bytes().await.expect("body");
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Figures {
        requests: all.len(),
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}

async fn sequential_p50(
    client: &reqwest::Client,
    req: impl Fn() -> reqwest::RequestBuilder,
    n: usize,
) -> Duration {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let res = req().send().await.expect("request");
        assert!(res.status().is_success());
        let _ = res.bytes().await;
        lat.push(t0.elapsed());
    }
    let _ = client;
    lat.sort();
    percentile(&lat, 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        database_url: DatabaseUrl::Sqlite(dir.path().join("bench.db")),
        bind: "127.0.0.1:0".parse().expect("addr"),
        rate_limit_per_second: 1_000_000,
        rate_limit_burst: 1_000_000,
        workers: cores,
        ..Settings::default()
    };
    let sims = start_all(42, 1000, SIM_KEY, "sess_bench", SimAddrs::default(), None)
        .await
        .expect("simulators");
    let store = open_store(&settings).await.expect("store");
    let key = |name: &'static str, scope: Scope| {
        let store = store.clone();
        async move {
            api_keys::create(&store, OrgRef::Name("bench"), name, &[scope])
                .await
                .expect("key")
        }
    };
    let admin = key("admin", Scope::Admin).await;
    let org_id = admin.org.id.clone();
    let (admin, reader) = (admin.key, key("reader", Scope::ContactsRead).await.key);
    let app = Application::from_parts(
        settings,
        store.clone(),
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let app_state = app.state();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");

    let mut connection_ids = Vec::new();
    for (provider, base_url, creds) in [
        (
            "periskope",
            sims.periskope.api_base(),
            json!({"api_key": SIM_KEY, "phone": "918527184400"}),
        ),
        ("wacr", sims.wacr.api_base(), json!({"api_key": SIM_KEY})),
        (
            "gateway",
            sims.gateway.api_base(),
            json!({"api_key": SIM_KEY, "session": "sess_bench"}),
        ),
    ] {
        let created: Value = client
            .post(format!("{base}/v1/admin/connections"))
            .bearer_auth(&admin)
            .json(&json!({"provider": provider, "name": provider, "base_url": base_url, "credentials": creds,
                          "settings": {"rate_limit_per_second": 1000}}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        let state = app_state.clone();
        let c = connections::get(&state, &org_id, &id)
            .await
            .expect("connection");
        let run = sync_runs::run_now(&state, &c, Trigger::Cli)
            .await
            .expect("sync");
        assert_eq!(run.status, RunStatus::Succeeded);
        connection_ids.push(id);
    }

    let digits = sims.periskope.api().with_store(|s| {
        s.all()[0]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string()
    });
    let live_url = format!(
        "{base}/v1/connections/{}/contacts/{digits}",
        connection_ids[0]
    );
    let body = client
        .get(&live_url)
        .bearer_auth(&reader)
        .send()
        .await
        .expect("warm")
        .bytes()
        .await
        .expect("body");
    let page: Value = client
        .get(format!("{base}/v1/contacts?limit=500"))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<String> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| format!("{base}/v1/contacts/{}", c["id"].as_str().expect("id")))
        .collect();

    // (d) the ceiling: a bare actix handler with the same bytes, same workers.
    let bare_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let bare_url = format!(
        "http://127.0.0.1:{}/bare",
        bare_listener.local_addr().expect("addr").port()
    );
    let bare_body = body.clone();
    let bare = HttpServer::new(move || {
        let b = bare_body.clone();
        App::new().route(
            "/bare",
            web::get().to(move || {
                let b = b.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(b) }
            }),
        )
    })
    .workers(cores)
    .listen(bare_listener)
    .expect("listen")
    .run();
    tokio::spawn(bare);

    let a = load(&client, &reader, Arc::new(vec![live_url.clone()])).await;
    let b = load(&client, &reader, Arc::new(ids)).await;
    let c = load(
        &client,
        &reader,
        Arc::new(vec![format!("{base}/v1/contacts?limit=50")]),
    )
    .await;
    let d = load(&client, &reader, Arc::new(vec![bare_url])).await;

    println!("machine: {cores} cores; app, simulators and load generator share them; {CONNECTIONS} connections, {}s per row", RUN.as_secs());
    println!();
    println!("| scenario | requests | req/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (name, f) in [
        ("(a) cached live read (X-Cache: HIT)", &a),
        ("(b) store read by id", &b),
        ("(c) list page, limit 50", &c),
        ("(d) bare actix handler, same bytes", &d),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms |",
            f.requests,
            f.rps,
            ms(f.p50),
            ms(f.p99)
        );
    }
    println!();
    println!("(a)/(d) throughput ratio: {:.2}", a.rps / d.rps);

    let sim_url = format!("{}/contacts/{digits}", sims.periskope.api_base());
    let sim_p50 = sequential_p50(
        &client,
        || {
            client
                .get(&sim_url)
                .bearer_auth(SIM_KEY)
                .header("x-phone", "918527184400")
        },
        300,
    )
    .await;
    let miss_p50 = sequential_p50(
        &client,
        || {
            client
                .get(format!("{live_url}?fresh=true"))
                .bearer_auth(&reader)
        },
        300,
    )
    .await;
    println!(
        "cache miss (fresh=true) p50 {:.2} ms vs the simulator's own p50 {:.2} ms: a miss adds {:.2} ms",
        ms(miss_p50),
        ms(sim_p50),
        ms(miss_p50.saturating_sub(sim_p50))
    );
}
