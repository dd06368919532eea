//! What operators watch and control: connection health, checked credentials,
//! paused syncs and cancelled runs.

use std::time::Duration;

use serde_json::{json, Value};
use unicontacts_simulators::Faults;

use crate::helpers::{
    assert_error, send, spawn_app, spawn_app_with, Backend, Sims, TestApp, SIM_KEY, SIM_SESSION,
};

/// POSTs an empty body as the test's admin.
async fn post(app: &TestApp, path: &str) -> reqwest::Response {
    send(app.post(path, &app.admin_key, &json!({}))).await
}

async fn connection(app: &TestApp, id: &str) -> Value {
    let res = send(app.get(&format!("/v1/admin/connections/{id}"), &app.admin_key)).await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

/// Polls the connection until `done` holds (its health is written in the
/// background after the call that changed it); bounded.
async fn until(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let c = connection(app, id).await;
        if done(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "connection {id} never got there: {}",
        connection(app, id).await
    );
}

async fn ids_with_health(app: &TestApp, health: &str) -> Vec<String> {
    let res = send(app.get(
        &format!("/v1/admin/connections?health={health}"),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.expect("json");
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

fn live_path(sims: &Sims) -> String {
    let digits = sims.set.periskope.api().with_store(|s| {
        s.all()[0]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string()
    });
    format!(
        "/v1/connections/{}/contacts/{digits}?fresh=true",
        Sims::id(&sims.periskope)
    )
}

/// Polls `runs_of` until the connection has a run (bounded).
async fn until_a_run<F, Fut>(runs_of: &F, id: &str)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for _ in 0..500 {
        if runs_of(id.to_string()).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn health_follows_the_provider(backend: Backend) {
    // A scheduler whose first tick finds nothing and whose next is an hour away:
    // next_sync_at is computed, and no run starts by itself.
    let app = spawn_app_with(backend, |s| s.scheduler_tick_ms = 3_600_000).await;
    let sims = app.connect_sims(51, 30, json!({})).await;
    let reader = app.reader_key().await;
    let id = Sims::id(&sims.periskope);
    let c = connection(&app, &id).await;
    assert_eq!(c["health"], "healthy", "{c}");
    assert!(c["credentials_verified_at"].is_string(), "{c}");
    assert_eq!(c["sync_paused"], false);
    assert!(c["last_error"].is_null() && c["last_sync"].is_null(), "{c}");
    assert!(c["next_sync_at"].is_string(), "{c}");

    let run = app.sync_now(&sims.periskope).await;
    let c = connection(&app, &id).await;
    assert_eq!(c["last_sync"]["run_id"], run["id"]);
    assert_eq!(c["last_sync"]["status"], "succeeded");
    assert_eq!(c["last_sync"]["counts"], run["counts"]);
    let (next, finished) = (
        c["next_sync_at"].as_str().expect("next"),
        c["last_sync"]["finished_at"].as_str().expect("finished"),
    );
    assert!(next > finished, "{next} after {finished}");

    // Live reads failing: degraded (the stored copy is served), then failing.
    sims.set.periskope.set_faults(Faults {
        fail_next: 1000,
        ..Faults::default()
    });
    let path = live_path(&sims);
    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.headers()["x-cache"], "STALE");
    let c = until(&app, &id, |c| c["health"] == "degraded").await;
    assert_eq!(c["last_error"]["count"], 1, "{c}");
    assert!(c["last_error"]["message"].is_string() && c["last_error"]["at"].is_string());
    assert_eq!(ids_with_health(&app, "degraded").await, vec![id.clone()]);
    for _ in 0..2 {
        send(app.get(&path, &reader)).await;
    }
    let c = until(&app, &id, |c| c["health"] == "failing").await;
    assert_eq!(c["last_error"]["count"], 3, "{c}");
    assert_eq!(ids_with_health(&app, "failing").await, vec![id.clone()]);
    assert!(!ids_with_health(&app, "healthy").await.contains(&id));

    // One success and it is healthy again.
    sims.set.periskope.set_faults(Faults::default());
    assert_eq!(send(app.get(&path, &reader)).await.status(), 200);
    let c = until(&app, &id, |c| c["health"] == "healthy").await;
    assert!(c["last_error"].is_null(), "{c}");
    assert!(ids_with_health(&app, "healthy").await.contains(&id));

    // A key the provider refuses (saved unchecked): the sync fails on it.
    let res = send(app.post(
        "/v1/admin/connections?verify=false",
        &app.admin_key,
        &json!({
            "provider": "wacr", "name": "stale key", "base_url": sims.set.wacr.api_base(),
            "credentials": {"api_key": "revoked-key-0123456789"}
        }),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let refused: Value = res.json().await.expect("json");
    assert!(refused["credentials_verified_at"].is_null(), "{refused}");
    let run = app.sync_now(&refused).await;
    assert_eq!(run["status"], "failed");
    let refused_id = Sims::id(&refused);
    let c = until(&app, &refused_id, |c| c["health"] == "credentials_refused").await;
    assert!(
        c["last_error"]["message"]
            .as_str()
            .expect("message")
            .contains("401"),
        "{c}"
    );
    assert!(c["next_sync_at"].is_null(), "never verified: {c}");
    assert_eq!(
        ids_with_health(&app, "credentials_refused").await,
        vec![refused_id]
    );
    let res = send(app.get("/v1/admin/connections?health=sick", &app.admin_key)).await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert!(
        err["error"]["details"]["fields"]["health"].is_array(),
        "{err}"
    );
}

async fn credentials_are_checked_when_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(52, 20, json!({})).await;
    let count = |app: &TestApp| {
        let req = app.get("/v1/admin/connections", &app.admin_key);
        async move {
            let page: Value = send(req).await.json().await.expect("json");
            page["data"].as_array().expect("data").len()
        }
    };
    let before = count(&app).await;
    for (body, field) in [
        (
            json!({"provider": "periskope", "name": "p2", "base_url": sims.set.periskope.api_base(),
                   "credentials": {"api_key": "wrong-key-0123456789", "phone": "918527184400"}}),
            "credentials.api_key",
        ),
        (
            json!({"provider": "wacr", "name": "w2", "base_url": sims.set.wacr.api_base(),
                   "credentials": {"api_key": "wrong-key-0123456789"}}),
            "credentials.api_key",
        ),
        (
            json!({"provider": "gateway", "name": "g2", "base_url": sims.set.gateway.api_base(),
                   "credentials": {"api_key": SIM_KEY, "session": "sess_nobody"}}),
            "credentials.session",
        ),
    ] {
        let res = send(app.post("/v1/admin/connections", &app.admin_key, &body)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{field}: {err}"
        );
    }
    assert_eq!(count(&app).await, before, "nothing saved");

    // Unchecked: saved without a call to the provider.
    let calls = sims.set.wacr.requests().len();
    let res = send(app.post(
        "/v1/admin/connections?verify=false",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "w3", "base_url": sims.set.wacr.api_base(),
                "credentials": {"api_key": "wrong-key-0123456789"}}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(sims.set.wacr.requests().len(), calls);
    let res = send(app.post(
        "/v1/admin/connections?verify=maybe",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "w4", "base_url": sims.set.wacr.api_base(),
                "credentials": {"api_key": SIM_KEY}}),
    ))
    .await;
    assert_error(res, 422, "validation_failed").await;

    // A provider that cannot be reached: saved, unverified, the error shown.
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "w5", "base_url": "http://127.0.0.1:9/api/v2",
                "credentials": {"api_key": SIM_KEY}}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let down: Value = res.json().await.expect("json");
    assert!(down["credentials_verified_at"].is_null(), "{down}");
    assert_eq!(down["health"], "degraded", "{down}");
    assert!(down["last_error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("checking the credentials"));

    // New credentials are checked too; refused ones change nothing.
    let id = Sims::id(&sims.periskope);
    let path = format!("/v1/admin/connections/{id}");
    let res = send(app.patch(
        &path,
        &app.admin_key,
        &json!({"credentials": {"api_key": "wrong-key-0123456789"}}),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert!(
        err["error"]["details"]["fields"]["credentials.api_key"].is_array(),
        "{err}"
    );
    let c = connection(&app, &id).await;
    assert_eq!(
        c["credentials"]["api_key"],
        format!("…{}", &SIM_KEY[SIM_KEY.len() - 4..])
    );
    assert!(c["credentials_verified_at"].is_string());
    // A name change calls nobody; new unchecked credentials are unverified.
    let calls = sims.set.periskope.requests().len();
    let res = send(app.patch(&path, &app.admin_key, &json!({"name": "renamed"}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(sims.set.periskope.requests().len(), calls);
    let res = send(app.patch(
        &format!("{path}?verify=false"),
        &app.admin_key,
        &json!({"credentials": {"api_key": "another-key-0123456789"}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.expect("json");
    assert!(c["credentials_verified_at"].is_null(), "{c}");
    let _ = SIM_SESSION;
}

async fn the_scheduler_skips_paused_and_unverified_connections(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(53, 20, json!({})).await;
    let (paused, verified) = (Sims::id(&sims.periskope), Sims::id(&sims.wacr));
    let res = post(&app, &format!("/v1/admin/connections/{paused}/pause-sync")).await;
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.expect("json");
    assert_eq!(c["sync_paused"], true);
    assert!(c["next_sync_at"].is_null());
    // Started through the API while paused: 409, saying how to resume.
    let res = post(&app, &format!("/v1/admin/connections/{paused}/sync")).await;
    let err = assert_error(res, 409, "conflict").await;
    assert!(err["error"]["message"]
        .as_str()
        .expect("m")
        .contains("resume-sync"));
    // A connection saved unchecked (with a good key: only the check is missing).
    let res = send(app.post(
        "/v1/admin/connections?verify=false",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "unchecked", "base_url": sims.set.wacr.api_base(),
                "credentials": {"api_key": SIM_KEY}}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let unverified = Sims::id(&res.json::<Value>().await.expect("json"));

    app.spawn_beside(|s| s.scheduler_tick_ms = 50).await;
    let runs_of = |id: String| {
        let req = app.get(
            &format!("/v1/admin/sync-runs?connection_id={id}"),
            &app.admin_key,
        );
        async move {
            let page: Value = send(req).await.json().await.expect("json");
            page["data"].as_array().expect("data").len()
        }
    };
    until_a_run(&runs_of, &verified).await;
    assert!(
        runs_of(verified.clone()).await > 0,
        "the scheduler never ran"
    );
    // The tick that synced the verified one saw the other two and left them.
    assert_eq!(runs_of(paused.clone()).await, 0);
    assert_eq!(runs_of(unverified.clone()).await, 0);

    let res = post(&app, &format!("/v1/admin/connections/{paused}/resume-sync")).await;
    assert_eq!(res.status(), 200);
    until_a_run(&runs_of, &paused).await;
    assert!(runs_of(paused.clone()).await > 0, "resumed, never synced");
}

async fn a_cancelled_run_stops_after_its_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(54, 60, json!({"page_size": 5})).await;
    sims.set.wacr.set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let id = Sims::id(&sims.wacr);
    let res = post(&app, &format!("/v1/admin/connections/{id}/sync")).await;
    assert_eq!(res.status(), 202);
    let run: Value = res.json().await.expect("json");
    let run_id = run["id"].as_str().expect("id").to_string();
    // A second start names the running run.
    let res = post(&app, &format!("/v1/admin/connections/{id}/sync")).await;
    let err = assert_error(res, 409, "conflict").await;
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("m")
            .contains(&run_id),
        "{err}"
    );
    // Another org's admin sees no such run.
    let (_, other) = app
        .create_key("other-org", &[unicontacts::service::api_keys::Scope::Admin])
        .await;
    let res = send(app.post(
        &format!("/v1/admin/sync-runs/{run_id}/cancel"),
        &other,
        &json!({}),
    ))
    .await;
    assert_error(res, 404, "not_found").await;

    let res = post(&app, &format!("/v1/admin/sync-runs/{run_id}/cancel")).await;
    assert_eq!(res.status(), 202);
    let asked: Value = res.json().await.expect("json");
    assert_eq!(asked["status"], "running");
    let done = app.wait_for(&run_id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["error"].as_str().expect("error").contains("cancelled"));
    let total = sims.set.wacr.api().with_store(|s| s.len()) as i64;
    let written = done["counts"]["created"].as_i64().expect("created");
    assert!(written > 0 && written < total, "{written} of {total}");
    assert_eq!(done["counts"]["deleted"], 0);
    // Its contacts so far are kept; a second cancel is too late.
    let res = post(&app, &format!("/v1/admin/sync-runs/{run_id}/cancel")).await;
    let err = assert_error(res, 409, "conflict").await;
    assert!(err["error"]["message"]
        .as_str()
        .expect("m")
        .contains("cancelled"));
    let res = post(
        &app,
        "/v1/admin/sync-runs/run_00000000000000000000000000/cancel",
    )
    .await;
    assert_error(res, 404, "not_found").await;
    // The next run starts as usual.
    sims.set.wacr.set_faults(Faults::default());
    let next = app.sync_now(&sims.wacr).await;
    assert_eq!(next["status"], "succeeded", "{next}");
}

crate::db_tests!(
    health_follows_the_provider,
    credentials_are_checked_when_set,
    the_scheduler_skips_paused_and_unverified_connections,
    a_cancelled_run_stops_after_its_page,
);
