//! One upstream quota per provider credential, shared by every caller: a sync and
//! live reads of the same connection, two connections of one API key, each
//! provider's header style; and an interactive read that never waits past its
//! deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unicontacts_adapters::ProviderKind;
use unicontacts_simulators::{RateLimit, SimApi, SimServer, World};

use crate::helpers::{send, spawn_app_with, Backend, Sims, TestApp, SIM_KEY, SIM_SESSION};

/// One provider's simulator, whatever the provider.
struct Upstream {
    kind: ProviderKind,
    base_url: String,
    served_429: Box<dyn Fn() -> u64 + Send + Sync>,
    /// The paths it was asked for, in order.
    requests: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// Remote ids of contacts it holds.
    ids: Vec<String>,
    /// Contacts it holds.
    len: usize,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

/// Wraps a running simulator and the remote ids of its contacts.
fn wrap<A: SimApi + 'static>(kind: ProviderKind, sim: SimServer<A>, ids: Vec<String>) -> Upstream {
    let sim = Arc::new(sim);
    let (s, r) = (sim.clone(), sim.clone());
    Upstream {
        kind,
        base_url: sim.api_base(),
        served_429: Box::new(move || s.served_429()),
        requests: Box::new(move || r.requests().into_iter().map(|q| q.path).collect()),
        len: ids.len(),
        ids,
        _keep: Box::new(sim),
    }
}

/// A simulator of `kind` with about `contacts` contacts, limited to `rate`
/// (worlds are sized by each provider's share of the people).
async fn upstream(kind: ProviderKind, seed: u64, contacts: usize, rate: RateLimit) -> Upstream {
    let addr = "127.0.0.1:0".parse().expect("addr");
    match kind {
        ProviderKind::Periskope => {
            let world = World::generate(seed, contacts * 100 / 65 + 5);
            let sim = unicontacts_simulators::periskope::start(&world, SIM_KEY, addr, Some(rate))
                .await
                .expect("sim");
            let ids = sim.api().with_store(|s| {
                s.all()
                    .iter()
                    .map(|c| c["contact_id"].as_str().expect("id").to_string())
                    .collect()
            });
            wrap(kind, sim, ids)
        }
        ProviderKind::Wacr => {
            let world = World::generate(seed, contacts * 100 / 35 + 5);
            let sim = unicontacts_simulators::wacr::start(&world, SIM_KEY, addr, Some(rate))
                .await
                .expect("sim");
            let ids = sim
                .api()
                .with_store(|s| s.all().map(|c| c["id"].to_string()).collect());
            wrap(kind, sim, ids)
        }
        ProviderKind::Gateway => {
            let world = World::generate(seed, contacts * 100 / 32 + 5);
            let sim = unicontacts_simulators::gateway::start(
                &world,
                SIM_KEY,
                SIM_SESSION,
                addr,
                Some(rate),
            )
            .await
            .expect("sim");
            let ids = sim.api().with_store(|s| {
                s.all()
                    .map(|c| c["identity"]["lid"].as_str().expect("lid").to_string())
                    .collect()
            });
            wrap(kind, sim, ids)
        }
    }
}

/// A connection of the test's org to `up`, with `settings`.
async fn connect(app: &TestApp, up: &Upstream, name: &str, settings: Value) -> Value {
    let credentials = match up.kind {
        ProviderKind::Periskope => json!({"api_key": SIM_KEY, "phone": "918527184400"}),
        ProviderKind::Wacr => json!({"api_key": SIM_KEY}),
        ProviderKind::Gateway => json!({"api_key": SIM_KEY, "session": SIM_SESSION}),
    };
    app.create_connection(json!({
        "provider": up.kind.as_str(), "name": name, "base_url": up.base_url,
        "credentials": credentials, "settings": settings,
    }))
    .await
}

fn live_path(connection: &Value, remote_id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(remote_id.as_bytes()).collect();
    format!(
        "/v1/connections/{}/contacts/{}",
        Sims::id(connection),
        encoded
    )
}

/// Starts a sync through the API; returns the run's id.
async fn start_sync(app: &TestApp, connection: &Value) -> String {
    let res = send(app.post(
        &format!("/v1/admin/connections/{}/sync", Sims::id(connection)),
        &app.admin_key,
        &json!({}),
    ))
    .await;
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("run id")
        .to_string()
}

/// `clients` tasks each reading `per_client` distinct contacts live (`fresh`):
/// every answer's status and how long it took.
async fn live_reads(
    app: &TestApp,
    key: &str,
    connection: &Value,
    ids: &[String],
    clients: usize,
    per_client: usize,
) -> Vec<(u16, Duration)> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = app.client.clone();
        let urls: Vec<String> = ids
            .iter()
            .skip(c * per_client)
            .take(per_client)
            .map(|id| app.url(&format!("{}?fresh=true", live_path(connection, id))))
            .collect();
        assert_eq!(urls.len(), per_client, "enough contacts to read");
        let key = key.to_string();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for url in urls {
                let started = Instant::now();
                let res = client
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("sent");
                out.push((res.status().as_u16(), started.elapsed()));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all
}

/// For one provider: a sync of at least 20 pages and 60 live reads from 6 clients
/// at once, the simulator at 5 requests a second: no 429 is received, the sync
/// succeeds, and every read answers 200 within its deadline.
async fn a_sync_and_sixty_live_reads_share_the_quota(
    app: &TestApp,
    kind: ProviderKind,
    seed: u64,
    contacts: usize,
) {
    let up = upstream(
        kind,
        seed,
        contacts,
        RateLimit {
            limit: 5,
            window_secs: 1,
        },
    )
    .await;
    let page_size = (up.len / 21).max(1);
    let connection = connect(
        app,
        &up,
        kind.as_str(),
        json!({"rate_limit_per_second": 5, "page_size": page_size}),
    )
    .await;
    let reader = app.reader_key().await;
    let run_id = start_sync(app, &connection).await;
    let reads = live_reads(app, &reader, &connection, &up.ids, 6, 10).await;
    let run = app.wait_for(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{kind}: {run}");
    assert!(run["pages"].as_i64().expect("pages") >= 20, "{kind}: {run}");
    assert_eq!(run["throttled_429"], 0, "{kind}: {run}");
    assert_eq!((up.served_429)(), 0, "{kind}: no 429 was answered");
    let deadline = Duration::from_millis(app.state.settings.upstream_timeout_ms);
    for (status, took) in &reads {
        assert_eq!(*status, 200, "{kind}: {reads:?}");
        assert!(
            *took < deadline + Duration::from_secs(1),
            "{kind}: {took:?}"
        );
    }
}

async fn every_header_style_keeps_a_sync_and_live_reads_clear_of_429s(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.upstream_timeout_ms = 30_000;
        // Three run waiters poll with one admin key: not this test's subject.
        s.rate_limit_per_second = 10_000;
        s.rate_limit_burst = 10_000;
    })
    .await;
    // The three at once: each has its own simulator and quota.
    tokio::join!(
        a_sync_and_sixty_live_reads_share_the_quota(&app, ProviderKind::Periskope, 81, 1100),
        a_sync_and_sixty_live_reads_share_the_quota(&app, ProviderKind::Wacr, 82, 240),
        // Thin list items: each new contact costs a detail call too.
        a_sync_and_sixty_live_reads_share_the_quota(&app, ProviderKind::Gateway, 83, 100),
    );
}

async fn two_connections_of_one_api_key_share_its_quota(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let up = upstream(
        ProviderKind::Periskope,
        84,
        1000,
        RateLimit {
            limit: 5,
            window_secs: 1,
        },
    )
    .await;
    // Each believes it may send 5 a second; together they may not send more.
    let settings = json!({"rate_limit_per_second": 5, "page_size": 50});
    let a = connect(&app, &up, "team a", settings.clone()).await;
    let b = connect(&app, &up, "team b", settings).await;
    let (run_a, run_b) = (start_sync(&app, &a).await, start_sync(&app, &b).await);
    for run in [app.wait_for(&run_a).await, app.wait_for(&run_b).await] {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["throttled_429"], 0, "{run}");
    }
    assert_eq!((up.served_429)(), 0);
    // Both connections show the one quota, learned from the provider.
    for c in [&a, &b] {
        let view: Value = send(app.get(
            &format!("/v1/admin/connections/{}", Sims::id(c)),
            &app.admin_key,
        ))
        .await
        .json()
        .await
        .expect("json");
        let q = &view["upstream_quota"];
        assert_eq!(q["limit"], 5, "{view}");
        assert_eq!(q["learned"], true, "{view}");
        assert_eq!(q["throttled_last_hour"], 0, "{view}");
        assert!(q["requests_last_hour"].as_u64().expect("n") >= 40, "{view}");
    }
}

/// With the provider at 1 request a minute, a live read answers within its
/// deadline: 503 with `Retry-After` (no copy to serve), never a long wait.
async fn a_live_read_never_waits_past_its_deadline(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.upstream_timeout_ms = 1500).await;
    let reader = app.reader_key().await;
    for (kind, seed) in [
        (ProviderKind::Periskope, 85),
        (ProviderKind::Wacr, 86),
        (ProviderKind::Gateway, 87),
    ] {
        let up = upstream(kind, seed, 20, RateLimit::for_the_next_minute(1)).await;
        let connection = connect(
            &app,
            &up,
            kind.as_str(),
            json!({"rate_limit_per_second": 1}),
        )
        .await;
        let deadline = Duration::from_millis(1500);
        for (i, id) in up.ids.iter().take(4).enumerate() {
            let started = Instant::now();
            let res = send(app.get(&live_path(&connection, id), &reader)).await;
            let took = started.elapsed();
            assert!(
                took < deadline + Duration::from_millis(700),
                "{kind} read {i}: {took:?}"
            );
            match res.status().as_u16() {
                200 => assert_eq!(i, 0, "{kind}: only the first read has a slot"),
                503 => {
                    let retry: u64 = res.headers()["retry-after"]
                        .to_str()
                        .expect("retry-after")
                        .parse()
                        .expect("seconds");
                    assert!(retry >= 1, "{kind}");
                }
                other => panic!("{kind} read {i}: {other}"),
            }
        }
    }
}

/// A learned limit goes back to the connection's own rate once the provider's
/// replies stop carrying rate-limit headers for a whole window.
async fn a_learned_limit_relaxes_when_the_provider_stops_limiting(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let reader = app.reader_key().await;
    let sims = app
        .connect_sims(88, 40, json!({"rate_limit_per_second": 50}))
        .await;
    sims.set.periskope.set_rate_limit(Some(RateLimit {
        limit: 2,
        window_secs: 1,
    }));
    let ids: Vec<String> = sims.set.periskope.api().with_store(|s| {
        s.all()
            .iter()
            .map(|c| c["contact_id"].as_str().expect("id").to_string())
            .collect()
    });
    let quota = |app: &TestApp| {
        let path = format!("/v1/admin/connections/{}", Sims::id(&sims.periskope));
        let key = app.admin_key.clone();
        let req = app.get(&path, &key);
        async move { send(req).await.json::<Value>().await.expect("json")["upstream_quota"].clone() }
    };
    let read = |id: &String| {
        app.get(
            &format!("{}?fresh=true", live_path(&sims.periskope, id)),
            &reader,
        )
    };
    assert_eq!(send(read(&ids[0])).await.status(), 200);
    let q = quota(&app).await;
    assert_eq!(
        (q["limit"].clone(), q["learned"].clone()),
        (json!(2), json!(true)),
        "{q}"
    );
    // The limit is lifted: replies carry no headers. After a window of them, the
    // quota is the connection's own 50 a second again.
    sims.set.periskope.set_rate_limit(None);
    let started = Instant::now();
    let mut relaxed = false;
    for id in ids.iter().skip(1).take(40) {
        assert_eq!(send(read(id)).await.status(), 200);
        let q = quota(&app).await;
        if q["learned"] == false {
            assert_eq!(q["limit"], 50, "{q}");
            relaxed = true;
            break;
        }
    }
    assert!(relaxed, "relaxed within {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10));
}

crate::db_tests!(
    a_read_whose_client_went_away_sends_nothing,
    every_header_style_keeps_a_sync_and_live_reads_clear_of_429s,
    two_connections_of_one_api_key_share_its_quota,
    a_live_read_never_waits_past_its_deadline,
    a_learned_limit_relaxes_when_the_provider_stops_limiting,
);

/// A live read waiting for the quota whose client goes away gives its place up:
/// nothing is sent for it, and the next caller gets the slot.
async fn a_read_whose_client_went_away_sends_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.upstream_timeout_ms = 10_000).await;
    let reader = app.reader_key().await;
    let up = upstream(
        ProviderKind::Periskope,
        89,
        20,
        RateLimit {
            limit: 1,
            window_secs: 3,
        },
    )
    .await;
    let connection = connect(&app, &up, "slow", json!({"rate_limit_per_second": 1})).await;
    // The window's one request.
    let res = send(app.get(&live_path(&connection, &up.ids[0]), &reader)).await;
    assert_eq!(res.status(), 200);
    // The next read must wait for the next window; its client gives up first.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let gone = impatient
        .get(app.url(&live_path(&connection, &up.ids[1])))
        .bearer_auth(&reader)
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    // A patient reader of another contact gets the next window's slot.
    let res = send(app.get(&live_path(&connection, &up.ids[2]), &reader)).await;
    assert_eq!(res.status(), 200);
    // Nothing can show up later either: a read still waiting would have had a
    // slot within a window (it is the absence of an event, so it is waited for).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let digits = |id: &str| id.trim_end_matches("@c.us").to_string();
    let asked: Vec<String> = (up.requests)().into_iter().collect();
    assert!(
        !asked.iter().any(|p| p.ends_with(&digits(&up.ids[1]))),
        "nothing was sent for the read whose client went away: {asked:?}"
    );
    assert_eq!((up.served_429)(), 0);
}
