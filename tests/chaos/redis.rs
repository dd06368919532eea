//! Redis stopped and started again under two replicas (two `unicontacts serve`
//! processes on one PostgreSQL database). Redis is a server of the test's own,
//! started and stopped on its port as an operator would, so the machine's Redis
//! that other suites use is left alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unicontacts::service::api_keys::{self, OrgRef, Scope};
use unicontacts_simulators::{RateLimit, World};

use crate::helpers::{test_settings, Backend, TestDb, SIM_KEY};
use crate::processes::{OwnRedis, Replica};

/// A key made through `a`, used on `b` (cached there), revoked through `a`:
/// how long `b` took to refuse it, if it did within a second.
async fn revocation_reaches(a: &Replica, b: &Replica, admin: &str) -> Option<Duration> {
    let http = reqwest::Client::new();
    let res = http
        .post(a.url("/v1/admin/api-keys"))
        .bearer_auth(admin)
        .json(&json!({"name": "probe", "scopes": ["contacts:read"]}))
        .send()
        .await
        .ok()?;
    if res.status() != 201 {
        return None;
    }
    let created: Value = res.json().await.ok()?;
    let (key, id) = (created["key"].as_str()?, created["id"].as_str()?);
    let used = http
        .get(b.url("/v1/contacts?limit=1"))
        .bearer_auth(key)
        .send()
        .await
        .ok()?;
    if used.status() != 200 {
        return None;
    }
    let res = http
        .delete(a.url(&format!("/v1/admin/api-keys/{id}")))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?;
    if res.status() != 204 {
        return None;
    }
    let revoked = Instant::now();
    while revoked.elapsed() < Duration::from_secs(1) {
        let s = http
            .get(b.url("/v1/contacts?limit=1"))
            .bearer_auth(key)
            .send()
            .await
            .ok()?
            .status();
        if s == 401 {
            return Some(revoked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_again_under_two_replicas() {
    if !crate::enabled("redis restart under two replicas") {
        return;
    }
    let backend = Backend::postgres();
    let has_redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::required(
        "PostgreSQL (UNICONTACTS_TEST_POSTGRES_URL)",
        backend.is_some(),
    ) || !crate::required("redis-server", has_redis)
    {
        return;
    }
    let db = TestDb::new(&backend.expect("checked"));
    let store = unicontacts::startup::open_store(&test_settings(&db))
        .await
        .expect("migrate");
    let admin = api_keys::create(
        &store,
        OrgRef::Name("chaos"),
        "admin",
        &[Scope::Admin, Scope::ContactsRead],
    )
    .await
    .expect("key")
    .key;
    let world = World::generate(611, 300);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        SIM_KEY,
        "127.0.0.1:0".parse().expect("addr"),
        // The provider allows 20 requests a second; the replicas share that.
        Some(RateLimit {
            limit: 20,
            window_secs: 1,
        }),
    )
    .await
    .expect("simulator");
    let mut redis = OwnRedis::start().await;
    let a = Replica::start(&db, &redis.url, &[]);
    let b = Replica::start(&db, &redis.url, &[]);
    let http = reqwest::Client::new();
    let res = http
        .post(a.url("/v1/admin/connections"))
        .bearer_auth(&admin)
        .json(&json!({
            "provider": "periskope", "name": "P", "base_url": sim.api_base(),
            "credentials": {"api_key": SIM_KEY, "phone": "918527184400"},
            "settings": {"rate_limit_per_second": 20}
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let connection = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let digits: Vec<String> = sim.api().with_store(|s| {
        s.all()
            .iter()
            .filter_map(|c| c["contact_id"].as_str())
            .map(|id| id.trim_end_matches("@c.us").to_string())
            .collect()
    });

    // Two clients per replica: live reads through the shared quota, and lists.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (n, base) in [a.url(""), a.url(""), b.url(""), b.url("")]
        .into_iter()
        .enumerate()
    {
        let (stop, admin, connection, digits) = (
            stop.clone(),
            admin.clone(),
            connection.clone(),
            digits.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut out: Vec<(Instant, u16, bool)> = Vec::new();
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                i += 4;
                let path = if i % 3 == 0 {
                    "/v1/contacts?limit=5".to_string()
                } else {
                    format!(
                        "/v1/connections/{connection}/contacts/{}?fresh=true",
                        digits[i % digits.len()]
                    )
                };
                let at = Instant::now();
                match http
                    .get(format!("{base}{path}"))
                    .bearer_auth(&admin)
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await
                {
                    Ok(r) => out.push((
                        at,
                        r.status().as_u16(),
                        r.headers().contains_key("retry-after"),
                    )),
                    Err(_) => out.push((at, 0, false)),
                }
            }
            out
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.stop();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;
    let back = Instant::now();
    // Normal again: what one replica changes reaches the other through Redis.
    let reached = loop {
        if revocation_reaches(&a, &b, &admin).await.is_some() {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "notices not flowing 5 s after Redis came back"
        );
    };
    eprintln!("notices flow again {reached:?} after Redis came back");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.expect("client"));
    }
    let mut counts = std::collections::BTreeMap::new();
    for (_, s, _) in &answers {
        *counts.entry(*s).or_insert(0) += 1;
    }
    eprintln!(
        "answers: {counts:?}; the provider answered {} 429s",
        sim.served_429()
    );
    for (_, s, retry_after) in &answers {
        assert!(*s != 0 && *s != 500, "no hang, no 500: {counts:?}");
        if *s == 503 {
            assert!(*retry_after, "a 503 says when to come back: {counts:?}");
        }
    }
    let during: Vec<u16> = answers
        .iter()
        .filter(|(at, _, _)| *at > down && *at < back)
        .map(|(_, s, _)| *s)
        .collect();
    assert!(
        during.iter().filter(|s| **s == 200).count() >= 10,
        "reads go on while Redis is away: {during:?}"
    );
    assert!(
        sim.served_429() <= 2,
        "the provider's quota kept: {} 429s",
        sim.served_429()
    );
}
