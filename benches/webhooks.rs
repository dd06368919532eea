//! Webhook delivery throughput: a `unicontacts serve` child process (the release
//! binary) delivers N stored events to a receiver in this process that answers
//! 204 after 0 ms or 50 ms. Prints events/s from the first request to the last
//! delivery, against a reference measured in the same run: the same receiver
//! driven by one plain sequential client (reqwest, keep-alive) at 0 ms, and the
//! ceiling that ordering allows at 50 ms (one request at a time per endpoint:
//! 20 events/s per endpoint).
//!
//! Run: `cargo bench --bench webhooks` (SQLite; also PostgreSQL when
//! `UNICONTACTS_TEST_POSTGRES_URL` is set; one backend with `UC_BENCH_BACKENDS`).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::connection::SimpleConnection;
use tokio::sync::watch;
use unicontacts::config::{DatabaseUrl, SecretKey, Settings};
use unicontacts::delivery::Secrets;
use unicontacts::service::api_keys::{self, OrgRef, Scope};
use unicontacts::store::events::{self, NewEvent};
use unicontacts::store::webhooks::{self as hooks, EndpointRow};

/// What the receiver saw: requests, and the time of the first and last.
struct Seen {
    count: watch::Sender<u64>,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    delay_ms: AtomicU64,
}

async fn receive(seen: web::Data<Arc<Seen>>) -> HttpResponse {
    {
        let mut first = seen.first.lock().expect("lock");
        first.get_or_insert_with(Instant::now);
    }
    let delay = seen.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    *seen.last.lock().expect("lock") = Some(Instant::now());
    seen.count.send_modify(|n| *n += 1);
    HttpResponse::NoContent().finish()
}

struct Receiver {
    url: String,
    seen: Arc<Seen>,
    count: watch::Receiver<u64>,
}

impl Receiver {
    fn start() -> Receiver {
        let (tx, rx) = watch::channel(0);
        let seen = Arc::new(Seen {
            count: tx,
            first: Mutex::new(None),
            last: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
        });
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .max_connections(100_000)
        .bind("127.0.0.1:0")
        .expect("bind");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            seen,
            count: rx,
        }
    }

    fn reset(&self, delay_ms: u64) {
        self.seen.delay_ms.store(delay_ms, Ordering::Relaxed);
        *self.seen.first.lock().expect("lock") = None;
        *self.seen.last.lock().expect("lock") = None;
        self.seen.count.send_replace(0);
    }

    /// Waits for `n` requests; the seconds from the first to the last.
    async fn wait(&self, n: u64) -> f64 {
        let mut count = self.count.clone();
        count.wait_for(|c| *c >= n).await.expect("receiver running");
        let first = self.seen.first.lock().expect("lock").expect("a request");
        let last = self.seen.last.lock().expect("lock").expect("a request");
        (last - first).as_secs_f64()
    }
}

/// The reference: one sequential keep-alive client POSTing `n` bodies of the
/// same size.
async fn plain_client(receiver: &Receiver, n: u64, body: &str) -> f64 {
    receiver.reset(0);
    let client = reqwest::Client::new();
    let started = Instant::now();
    for _ in 0..n {
        let res = client
            .post(&receiver.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert!(res.status().is_success());
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn serve(url: &DatabaseUrl, key: &str) -> Child {
    let db = match url {
        DatabaseUrl::Sqlite(p) => p.display().to_string(),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    Command::new(env!("CARGO_BIN_EXE_unicontacts"))
        .arg("serve")
        .env("UNICONTACTS_DATABASE_URL", db)
        .env("UNICONTACTS_SECRET_KEY", key)
        .env("UNICONTACTS_BIND", "127.0.0.1:0")
        .env("UNICONTACTS_LOG_LEVEL", "warn")
        .env("UNICONTACTS_SCHEDULER_TICK_MS", "0")
        .env("UNICONTACTS_WEBHOOK_POLL_MS", "50")
        .env("UNICONTACTS_WEBHOOK_ALLOW_HTTP", "true")
        .env("UNICONTACTS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve")
}

/// A sample event's data, as a sync writes it.
fn data(i: u64) -> String {
    format!(
        r#"{{"contact_id":"ctc_01jd2x9v8c{i:016}","person_id":"per_01jd2x9v8c{i:016}","connection_id":"con_01jd2x9v8c0000000000000000","provider":"periskope","remote_id":"91{i:010}@c.us","cause":"sync","run_id":"run_01jd2x9v8c0000000000000000"}}"#
    )
}

/// One scenario: `endpoints` endpoints created, `n` events appended, a child
/// delivering them all; returns events/s delivered (all endpoints together).
async fn scenario(
    url: &DatabaseUrl,
    key: &str,
    receiver: &Receiver,
    endpoints: usize,
    n: u64,
    delay_ms: u64,
) -> f64 {
    let settings = Settings {
        database_url: url.clone(),
        secret_key: Some(SecretKey(key.to_string())),
        ..Settings::default()
    };
    let store = unicontacts::startup::open_store(&settings)
        .await
        .expect("store");
    let org = api_keys::create(
        &store,
        OrgRef::Name(&unicontacts::ids::new_id("bench")),
        "bench",
        &[Scope::Admin],
    )
    .await
    .expect("org")
    .org
    .id;
    let sealer = store.sealer().expect("sealer");
    for _ in 0..endpoints {
        let id = unicontacts::ids::new_id(unicontacts::ids::WEBHOOK);
        let now = unicontacts::ids::now();
        let row = EndpointRow {
            secrets: Secrets {
                current: unicontacts::delivery::sign::new_secret(),
                previous: None,
                previous_until: None,
            }
            .seal(&sealer, &id),
            id,
            org_id: org.clone(),
            url: receiver.url.clone(),
            event_types: String::new(),
            enabled: true,
            description: None,
            cursor_seq: 0,
            attempts: 0,
            next_attempt_at: None,
            failing_since: None,
            disabled_reason: None,
            lease_owner: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
        };
        store
            .write(move |conn| hooks::insert_endpoint(conn, &row))
            .await
            .expect("endpoint");
    }
    let org2 = org.clone();
    store
        .write(move |conn| {
            unicontacts::store::in_transaction(conn, |conn| {
                let new = (0..n)
                    .map(|i| NewEvent {
                        event_type: unicontacts::store::event_type::EventType::ContactCreated,
                        connection_id: Some("con_01jd2x9v8c0000000000000000".into()),
                        data: data(i),
                    })
                    .collect();
                events::append(conn, &org2, unicontacts::ids::now(), new)
            })
        })
        .await
        .expect("events");
    receiver.reset(delay_ms);
    let mut child = serve(url, key);
    let secs = receiver.wait(n * endpoints as u64).await;
    let _ = child.kill();
    let _ = child.wait();
    (n * endpoints as u64) as f64 / secs
}

async fn run(backend: &str, url: DatabaseUrl, receiver: &Receiver) {
    let key = unicontacts::secrets::Sealer::generate_key();
    let body = format!(
        r#"{{"type":"contact.created","timestamp":"2026-12-02T10:00:00.000000Z","data":{}}}"#,
        data(1)
    );
    for (endpoints, n, delay) in [(1, 3000, 0), (1, 100, 50), (16, 100, 50)] {
        let got = scenario(&url, &key, receiver, endpoints, n, delay).await;
        let (reference, what) = if delay == 0 {
            (
                plain_client(receiver, n, &body).await,
                "plain sequential client",
            )
        } else {
            (
                endpoints as f64 * 1000.0 / delay as f64,
                "one at a time per endpoint",
            )
        };
        println!(
            "| {backend} | {endpoints} | {delay} ms | {} | {got:.0} | {reference:.0} ({what}) | {:.2} |",
            n * endpoints as u64,
            got / reference
        );
    }
}

#[tokio::main]
async fn main() {
    println!("| backend | endpoints | receiver answers in | events delivered | events/s | reference events/s | ratio |");
    println!("|---|---|---|---|---|---|---|");
    let receiver = Receiver::start();
    let only = std::env::var("UC_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.contains(name);
    let dir = tempfile::tempdir().expect("tempdir");
    if wanted("sqlite") {
        run(
            "SQLite",
            DatabaseUrl::Sqlite(dir.path().join("bench.db")),
            &receiver,
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
        run(
            "PostgreSQL",
            DatabaseUrl::Postgres(url.to_string()),
            &receiver,
        )
        .await;
        let _ = pg.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}
