//! The machine's PostgreSQL restarted, `fast` (sessions told to end) and
//! `immediate` (killed, recovered from the WAL), under four clients and under a
//! running sync.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;
use unicontacts_simulators::Faults;

use crate::helpers::{spawn_app_with, Backend, Sims, TestApp};
use crate::load::{self, Load};

/// The machine's cluster (`/etc/postgresql/<version>/main`), if it has one.
fn cluster_version() -> Option<String> {
    std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
}

fn pg_ctlcluster(args: &[&str]) -> bool {
    let Some(version) = cluster_version() else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(&version)
        .arg("main")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn ready() -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the cluster again if a test left it stopped (a failed assertion
/// mid-restart): the suites after this one need it.
struct LeaveItRunning;

impl Drop for LeaveItRunning {
    fn drop(&mut self) {
        if !ready() {
            pg_ctlcluster(&["start"]);
        }
    }
}

/// How long the server stays down between its stop and its start.
const DOWN: Duration = Duration::from_secs(3);

/// When the server's postmaster started (`pg_postmaster_start_time()`).
fn started_at() -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            "SELECT pg_postmaster_start_time()",
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stops the cluster in `mode`, and starts it again after [`DOWN`]; returns when
/// it accepts connections again (the fault's end), having checked that it is
/// another server process.
async fn restart(mode: &'static str) -> Instant {
    let before = tokio::task::spawn_blocking(started_at).await.expect("psql");
    let started = Instant::now();
    let ok = tokio::task::spawn_blocking(move || pg_ctlcluster(&["stop", "-m", mode]))
        .await
        .expect("stop");
    assert!(ok, "pg_ctlcluster stop -m {mode}");
    // Down for a while, as a restart on a busy machine (or a failover) is: long
    // enough that requests and the sync meet it, not only the pool's checks.
    tokio::time::sleep(DOWN).await;
    let ok = tokio::task::spawn_blocking(|| pg_ctlcluster(&["start"]))
        .await
        .expect("start");
    assert!(ok, "pg_ctlcluster start");
    while !tokio::task::spawn_blocking(ready).await.expect("ready") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "PostgreSQL did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("PostgreSQL restarted ({mode}) in {:?}", started.elapsed());
    let after = tokio::task::spawn_blocking(started_at).await.expect("psql");
    assert!(
        !before.is_empty() && before != after,
        "restarted: {before} -> {after}"
    );
    Instant::now()
}

async fn setup(test: &str) -> Option<(LeaveItRunning, TestApp)> {
    if !crate::enabled(test) {
        return None;
    }
    let backend = Backend::postgres();
    if !crate::required(
        "PostgreSQL (UNICONTACTS_TEST_POSTGRES_URL)",
        backend.is_some(),
    ) || !crate::required(
        "pg_ctlcluster and the machine's cluster",
        cluster_version().is_some(),
    ) {
        return None;
    }
    let guard = LeaveItRunning;
    let app = spawn_app_with(backend?, |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
        s.database_timeout_seconds = 1;
    })
    .await;
    Some((guard, app))
}

/// WA.cr writes need a status, a source and a kind: the connection's defaults.
fn wacr_defaults() -> Value {
    json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"})
}

async fn restarted_under_reads_and_writes(mode: &'static str) {
    let Some((_guard, app)) = setup(&format!("postgres {mode} restart under load")).await else {
        return;
    };
    let sims = app.connect_sims(601, 40, wacr_defaults()).await;
    let wacr = Sims::id(&sims.wacr);
    let (_, key) = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await;
    let load = Load::start(&app.address, &key, &wacr, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ended = restart(mode).await;
    let recovered = load::answers_normally(&app.address, &key, "/v1/contacts?limit=1", ended).await;
    eprintln!("answering normally {recovered:?} after PostgreSQL came back");
    assert!(recovered <= Duration::from_secs(5), "{recovered:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outcomes = load.stop().await;
    load::no_server_errors(&outcomes);
    let after = outcomes
        .iter()
        .filter(|o| o.at > ended && o.what == "create" && o.status == 201)
        .count();
    assert!(after > 0, "writes go on after the restart");
    let stored = load::every_created_contact_is_stored(&app.address, &key, &outcomes).await;
    eprintln!("{stored} contacts created and found again");
    // A write the provider made while the database was away is not lost: the
    // next sync brings it in, and the store equals the provider.
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let at_provider: std::collections::HashSet<String> = sims.set.wacr.api().with_store(|s| {
        s.all()
            .filter_map(|c| c["id"].as_i64().map(|id| id.to_string()))
            .collect()
    });
    assert_eq!(
        load::stored_remote_ids(&app.address, &key, &wacr).await,
        at_provider
    );
    load::no_event_twice(&app.address, &key).await;
}

/// The run as the API answers it, once it is no longer running (bounded; an
/// answer other than 200 while the database is away is asked again).
async fn ended(app: &TestApp, run_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let res = app
            .get(&format!("/v1/admin/sync-runs/{run_id}"), &app.admin_key)
            .send()
            .await;
        if let Ok(res) = res {
            if res.status() == 200 {
                let run: Value = res.json().await.expect("json");
                if run["status"] != "running" {
                    return run;
                }
            } else {
                assert!(
                    res.status() == 503 && res.headers().contains_key("retry-after"),
                    "{}",
                    res.status()
                );
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "run {run_id} did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn restarted_under_a_running_sync(mode: &'static str) {
    let Some((_guard, app)) = setup(&format!("postgres {mode} restart under a sync")).await else {
        return;
    };
    let sims = app.connect_sims(602, 2500, json!({"page_size": 25})).await;
    let wacr = Sims::id(&sims.wacr);
    let reader = app.reader_key().await;
    let first = app.sync_now(&sims.wacr).await;
    assert_eq!(first["status"], "succeeded");
    // Upstream changes, and a slower provider: the run is still going when the
    // database goes.
    sims.set.wacr.api().with_store(|s| {
        let ids: Vec<i64> = s.all().take(3).filter_map(|c| c["id"].as_i64()).collect();
        for id in ids {
            s.remove(id);
        }
    });
    sims.set.wacr.set_faults(Faults {
        latency_ms: 15,
        ..Faults::default()
    });
    let res = app
        .post(
            &format!("/v1/admin/connections/{wacr}/sync"),
            &app.admin_key,
            &json!({}),
        )
        .send()
        .await
        .expect("trigger");
    assert_eq!(res.status(), 202);
    let run: Value = res.json().await.expect("json");
    let run_id = run["id"].as_str().expect("id").to_string();
    loop {
        let now: Value = app
            .get(&format!("/v1/admin/sync-runs/{run_id}"), &app.admin_key)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        assert_eq!(
            now["status"], "running",
            "the run ended before the fault: {now}"
        );
        if now["pages"].as_i64().unwrap_or(0) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fault_ended = restart(mode).await;
    let run = ended(&app, &run_id).await;
    eprintln!(
        "the run during the restart: {} ({})",
        run["status"], run["error"]
    );
    assert!(
        ["succeeded", "failed"].contains(&run["status"].as_str().unwrap_or("")),
        "{run}"
    );
    let recovered = load::answers_normally(
        &app.address,
        &app.admin_key,
        "/v1/admin/sync-runs?limit=1",
        fault_ended,
    )
    .await;
    assert!(recovered <= Duration::from_secs(5), "{recovered:?}");
    sims.set.wacr.set_faults(Faults::default());
    let next = app.sync_now(&sims.wacr).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    let at_provider: std::collections::HashSet<String> = sims.set.wacr.api().with_store(|s| {
        s.all()
            .filter_map(|c| c["id"].as_i64().map(|id| id.to_string()))
            .collect()
    });
    assert_eq!(
        load::stored_remote_ids(&app.address, &reader, &wacr).await,
        at_provider
    );
    load::no_event_twice(&app.address, &reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_under_four_clients() {
    restarted_under_reads_and_writes("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_restart_under_four_clients() {
    restarted_under_reads_and_writes("immediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_under_a_running_sync() {
    restarted_under_a_running_sync("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_restart_under_a_running_sync() {
    restarted_under_a_running_sync("immediate").await;
}
