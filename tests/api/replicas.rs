//! Several `unicontacts serve` processes on one PostgreSQL database and one
//! Redis, as a scaled-out deployment runs: one upstream quota across them, one
//! inbound quota per key, a revoked key or a deleted connection gone from every
//! replica within a second, a killed replica's run taken over after its lease,
//! schedulers that never run one connection twice at once, and Redis going away
//! mid-run. PostgreSQL only (SQLite is one process's).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unicontacts::service::api_keys::{self, OrgRef, Scope};
use unicontacts::store::Store;
use unicontacts_simulators::{RateLimit, World};

use crate::helpers::{send, test_settings, Backend, TestDb, SIM_KEY};
use crate::processes::{get, start_sync, wait_for_run, OwnRedis, Replica};

/// The machine's Redis for these tests (`UNICONTACTS_TEST_REDIS_URL`).
fn redis_url() -> String {
    std::env::var("UNICONTACTS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh database (migrated), an org with an admin key, and a Periskope
/// simulator of about `contacts` contacts at `limit` requests a second.
async fn setup(
    contacts: usize,
    limit: u32,
) -> Option<(
    TestDb,
    Store,
    String,
    unicontacts_simulators::periskope::PeriskopeSim,
)> {
    let backend = Backend::postgres()?;
    let redis = redis_url();
    let reachable = redis::Client::open(redis.as_str())
        .ok()
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)).ok())
        .is_some();
    if !reachable {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Redis at {redis} is required on CI");
        }
        eprintln!("no Redis at {redis}: skipped");
        return None;
    }
    let db = TestDb::new(&backend);
    let store = unicontacts::startup::open_store(&test_settings(&db))
        .await
        .expect("store");
    let key = api_keys::create(
        &store,
        OrgRef::Name("acme"),
        "ops",
        &[Scope::Admin, Scope::ContactsRead],
    )
    .await
    .expect("key")
    .key;
    let world = World::generate(95, contacts * 100 / 65 + 5);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        SIM_KEY,
        "127.0.0.1:0".parse().expect("addr"),
        Some(RateLimit {
            limit,
            window_secs: 1,
        }),
    )
    .await
    .expect("sim");
    Some((db, store, key, sim))
}

async fn create_connection(
    r: &Replica,
    key: &str,
    sim: &unicontacts_simulators::periskope::PeriskopeSim,
) -> String {
    let res = send(
        reqwest::Client::new()
            .post(r.url("/v1/admin/connections"))
            .bearer_auth(key)
            .json(&json!({
                "provider": "periskope", "name": "shared", "base_url": sim.api_base(),
                "credentials": {"api_key": SIM_KEY, "phone": "918527184400"},
                "settings": {"rate_limit_per_second": 5, "page_size": 50}
            })),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
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

/// Live reads (`fresh`) of distinct contacts spread over the replicas, a client
/// per replica: the statuses.
async fn reads_on_every_replica(
    replicas: &[&Replica],
    key: &str,
    connection: &str,
    digits: &[String],
    per_replica: usize,
) -> Vec<u16> {
    let mut tasks = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let urls: Vec<String> = digits
            .iter()
            .skip(i * per_replica)
            .take(per_replica)
            .map(|d| {
                r.url(&format!(
                    "/v1/connections/{connection}/contacts/{d}?fresh=true"
                ))
            })
            .collect();
        let key = key.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            for url in urls {
                let res = client
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("sent");
                statuses.push(res.status().as_u16());
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all
}

/// Creates a key through `a`, uses it on each of `others` (so they cache it),
/// revokes it through `a`: each of the others refuses it within a second.
async fn a_key_revoked_through_is_refused_by(a: &Replica, others: &[&Replica], admin: &str) {
    let res = send(
        reqwest::Client::new()
            .post(a.url("/v1/admin/api-keys"))
            .bearer_auth(admin)
            .json(&json!({"name": "temp", "scopes": ["contacts:read"]})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let (temp, temp_id) = (
        created["key"].as_str().expect("key").to_string(),
        created["id"].as_str().expect("id").to_string(),
    );
    for r in others {
        assert_eq!(
            get(r, "/v1/contacts?limit=1", &temp).await.status(),
            200,
            "cached on each"
        );
    }
    let res = send(
        reqwest::Client::new()
            .delete(a.url(&format!("/v1/admin/api-keys/{temp_id}")))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(res.status(), 204);
    let revoked = Instant::now();
    for r in others {
        while get(r, "/v1/contacts?limit=1", &temp).await.status() != 401 {
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "still accepted after a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Requests the simulator took, over what its windows allowed: the windows
/// after the first request's and before the last one's (the work began and
/// ended part-way through those two, which no caller could fill).
fn use_of_the_quota(sim: &unicontacts_simulators::periskope::PeriskopeSim, limit: u32) -> f64 {
    let windows: Vec<u64> = sim.requests().iter().map(|r| r.at_ms / 1000).collect();
    let (first, last) = (
        windows.iter().min().copied().unwrap_or(0),
        windows.iter().max().copied().unwrap_or(0),
    );
    let inner = windows.iter().filter(|w| **w > first && **w < last).count();
    let count = last.saturating_sub(first + 1).max(1);
    inner as f64 / (count as f64 * f64::from(limit))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_upstream_quota_and_tell_each_other_what_changed() {
    let _alone = crate::helpers::processes_alone().await;
    let Some((db, _store, admin, sim)) = setup(1000, 5).await else {
        return;
    };
    let redis = redis_url();
    let replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&db, &redis, &[])).collect();
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    let connection = create_connection(a, &admin, &sim).await;
    let digits = digits_of(&sim);

    // A sync through A and live reads on all three at once: one quota.
    let run_id = start_sync(a, &admin, &connection).await;
    let statuses = reads_on_every_replica(&[a, b, c], &admin, &connection, &digits, 10).await;
    let run = wait_for_run(b, &admin, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["throttled_429"], 0, "{run}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(sim.served_429(), 0, "no 429 was answered");
    let used = use_of_the_quota(&sim, 5);
    eprintln!("three replicas used {used:.2} of the upstream quota");
    assert!(used >= 0.9, "aggregate throughput {used:.2} of the quota");

    // A key revoked through A stops working on B and C within a second.
    a_key_revoked_through_is_refused_by(a, &[b, c], &admin).await;

    // A connection deleted through A is 404 on B, whose cache held it.
    let live = format!("/v1/connections/{connection}/contacts/{}", digits[0]);
    assert_eq!(get(b, &live, &admin).await.status(), 200);
    let res = send(
        reqwest::Client::new()
            .delete(a.url(&format!("/v1/admin/connections/{connection}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(res.status(), 204);
    let deleted = Instant::now();
    loop {
        if get(b, &live, &admin).await.status() == 404 {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "still served after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Without Redis, replicas on one PostgreSQL still hear of a revoked key (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_revoked_key_is_refused_by_every_replica_within_a_second() {
    let _alone = crate::helpers::processes_alone().await;
    let Some((db, _store, admin, _sim)) = setup(10, 5).await else {
        return;
    };
    let (a, b) = (Replica::start(&db, "", &[]), Replica::start(&db, "", &[]));
    a_key_revoked_through_is_refused_by(&a, &[&b], &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_keys_inbound_quota_is_one_across_replicas() {
    let _alone = crate::helpers::processes_alone().await;
    let Some((db, _store, admin, _sim)) = setup(10, 5).await else {
        return;
    };
    let redis = redis_url();
    // A burst of 10 and 1 a second more, per key: across both replicas, not each.
    let env = [
        ("UNICONTACTS_RATE_LIMIT_BURST", "10"),
        ("UNICONTACTS_RATE_LIMIT_PER_SECOND", "1"),
    ];
    let (a, b) = (
        Replica::start(&db, &redis, &env),
        Replica::start(&db, &redis, &env),
    );
    let started = Instant::now();
    let mut allowed = 0;
    for i in 0..30 {
        let r = if i % 2 == 0 { &a } else { &b };
        let res = get(r, "/v1/contacts?limit=1", &admin).await;
        match res.status().as_u16() {
            200 => allowed += 1,
            429 => assert!(res.headers().contains_key("retry-after")),
            other => panic!("{other}"),
        }
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(
        (10..=10 + refill as usize).contains(&allowed),
        "{allowed} allowed in {:?}: one quota, not one per replica",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_run_is_taken_over_and_schedulers_never_overlap() {
    let _alone = crate::helpers::processes_alone().await;
    let Some((db, store, admin, sim)) = setup(1000, 5).await else {
        return;
    };
    let redis = redis_url();
    let env = [
        ("UNICONTACTS_SCHEDULER_TICK_MS", "200"),
        ("UNICONTACTS_SYNC_LEASE_SECONDS", "5"),
    ];
    let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&db, &redis, &env)).collect();
    let connection = create_connection(&replicas[0], &admin, &sim).await;
    // A scheduler takes the new connection; once it wrote two pages, its process dies.
    let holder = loop {
        let id = connection.clone();
        let found: Option<(String, i64)> = store
            .run(move |conn| {
                use diesel::prelude::*;
                use unicontacts::store::schema::{sync_leases, sync_runs};
                Ok(sync_leases::table
                    .inner_join(sync_runs::table.on(sync_runs::id.eq(sync_leases::run_id)))
                    .filter(sync_leases::connection_id.eq(id))
                    .select((sync_leases::holder, sync_runs::pages))
                    .first(conn)
                    .optional()?)
            })
            .await
            .expect("lease");
        if let Some((holder, pages)) = found {
            if pages >= 2 {
                break holder;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim = replicas
        .iter()
        .position(|r| holder.starts_with(&format!("pid{}-", r.pid)))
        .expect("the lease holder is one of the replicas");
    replicas[victim].kill();
    // Another replica's scheduler takes the run over once the lease expires.
    let runs = loop {
        let res = get(
            &replicas[(victim + 1) % 3],
            &format!("/v1/admin/sync-runs?connection_id={connection}"),
            &admin,
        )
        .await;
        let runs: Value = res.json().await.expect("json");
        let data = runs["data"].as_array().expect("runs").clone();
        if data.iter().any(|r| r["status"] == "succeeded") {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let abandoned = runs
        .iter()
        .find(|r| r["status"] == "failed")
        .expect("the killed run is recorded");
    assert!(
        abandoned["error"]
            .as_str()
            .expect("error")
            .contains("abandoned"),
        "{abandoned}"
    );
    // Never two runs of the connection at once.
    let span = |r: &Value| {
        let t = |k: &str| {
            r[k].as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        };
        (t("started_at").expect("start"), t("finished_at"))
    };
    for (i, x) in runs.iter().enumerate() {
        for y in runs.iter().skip(i + 1) {
            let ((xs, xf), (ys, yf)) = (span(x), span(y));
            let (xf, yf) = (xf.expect("ended"), yf.expect("ended"));
            assert!(!(xs < yf && ys < xf), "overlapping runs: {x} {y}");
        }
    }
    // The store ends equal to the provider.
    let id = connection.clone();
    let stored: Vec<String> = store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::contacts;
            Ok(contacts::table
                .filter(contacts::connection_id.eq(id))
                .filter(contacts::remote_was_deleted.eq(false))
                .select(contacts::remote_id)
                .load(conn)?)
        })
        .await
        .expect("contacts");
    let mut upstream: Vec<String> = digits_of(&sim)
        .into_iter()
        .map(|d| format!("{d}@c.us"))
        .collect();
    let mut stored = stored;
    upstream.sort();
    stored.sort();
    assert_eq!(stored, upstream);
    assert_eq!(sim.served_429(), 0);
}

/// A Redis server of the test's own on a free port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_run_costs_no_errors() {
    let _alone = crate::helpers::processes_alone().await;
    let Some((db, _store, admin, sim)) = setup(1000, 5).await else {
        return;
    };
    let own = OwnRedis::start().await;
    let replicas: Vec<Replica> = (0..2).map(|_| Replica::start(&db, &own.url, &[])).collect();
    let (a, b) = (&replicas[0], &replicas[1]);
    let connection = create_connection(a, &admin, &sim).await;
    let digits = digits_of(&sim);
    let run_id = start_sync(a, &admin, &connection).await;
    let before = reads_on_every_replica(&[a, b], &admin, &connection, &digits, 5).await;
    drop(own);
    let after = reads_on_every_replica(&[a, b], &admin, &connection, &digits[10..], 10).await;
    let run = wait_for_run(b, &admin, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    for s in before.iter().chain(&after) {
        assert!(
            *s < 500 || *s == 503,
            "no server error: {before:?} {after:?}"
        );
    }
    assert!(
        after.iter().filter(|s| **s == 200).count() >= 15,
        "reads go on: {after:?}"
    );
    let served = sim.served_429();
    eprintln!("429s received with Redis gone mid-run: {served}");
    assert!(served <= 2, "{served} 429s");
}

/// Two replicas' inbound limiters of one key on one Redis, each taking requests
/// ahead in batches: together they allow the key's burst, never more, and waste
/// at most a batch each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_limiters_taking_ahead_never_allow_more_than_the_burst() {
    let url = redis_url();
    let Some(conns) = (async {
        let mut out = Vec::new();
        for _ in 0..2 {
            out.push(unicontacts::redis::connect(&url).ok()?);
        }
        let mut probe = out[0].clone();
        redis::cmd("PING")
            .query_async::<String>(&mut probe)
            .await
            .ok()?;
        Some(out)
    })
    .await
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Redis at {url} is required on CI");
        }
        return;
    };
    // A burst of 1000 and 1 a second more: batches of 50, taken by 32 callers at once.
    let limiters: Vec<_> = conns
        .into_iter()
        .map(|c| std::sync::Arc::new(unicontacts::limits::InboundLimiter::shared(1, 1000, c)))
        .collect();
    let key = format!("key_test_{}", ulid::Ulid::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (limiter, key) = (limiters[t % 2].clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0;
            for _ in 0..60 {
                if limiter.check(&key).await.retry_after.is_none() {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.expect("join");
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(allowed <= 1000 + refill, "{allowed} allowed");
    // Each replica may leave at most what it took ahead unused.
    assert!(allowed >= 1000 - 2 * 50, "{allowed} allowed");
}
