//! Reconciliation runs against the simulators: first and repeated syncs, upstream
//! edits, deletions and revivals, a failing run, concurrent triggers, leases,
//! the CLI, the scheduler, and a process killed mid-run.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;
use unicontacts::store::models::{RunStatus, Trigger};
use unicontacts::tasks::CancellationToken;
use unicontacts_simulators::Faults;

use crate::helpers::{
    assert_error, send, spawn_app, spawn_app_with, take_lease, Backend, Sims, TestApp,
};

fn counts(run: &Value) -> (i64, i64, i64, i64) {
    let c = &run["counts"];
    let n = |k: &str| c[k].as_i64().expect("count");
    (n("created"), n("updated"), n("unchanged"), n("deleted"))
}

/// Time passes: every lease expires.
async fn expire_leases(app: &TestApp) {
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::sync_leases;
            diesel::update(sync_leases::table)
                .set(
                    sync_leases::expires_at
                        .eq(unicontacts::ids::now() - chrono::Duration::seconds(1)),
                )
                .execute(conn)?;
            Ok(())
        })
        .await
        .expect("expire");
}

/// Remote ids of the connection's live (not deleted) contacts in the store.
async fn stored_remote_ids(app: &TestApp, connection: &Value) -> Vec<String> {
    let reader = app.reader_key().await;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/contacts?connection_id={}&limit=500",
            Sims::id(connection)
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = send(app.get(&path, &reader))
            .await
            .json()
            .await
            .expect("json");
        ids.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|c| c["remote_id"].as_str().expect("id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

async fn a_first_sync_creates_everything_and_a_second_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(41, 150, json!({})).await;
    for (connection, n) in [
        (
            &sims.periskope,
            sims.set.periskope.api().with_store(|s| s.len()),
        ),
        (&sims.wacr, sims.set.wacr.api().with_store(|s| s.len())),
        (
            &sims.gateway,
            sims.set.gateway.api().with_store(|s| s.len()),
        ),
    ] {
        let first = app.sync_now(connection).await;
        assert_eq!(first["status"], "succeeded", "{first}");
        assert_eq!(counts(&first), (n as i64, 0, 0, 0), "{first}");
        assert!(first["upstream_requests"].as_i64().expect("n") >= 1);
        assert_eq!(first["trigger"], "api");
        assert!(first["finished_at"].is_string());
        let second = app.sync_now(connection).await;
        assert_eq!(
            counts(&second),
            (0, 0, n as i64, 0),
            "nothing written: {second}"
        );
        assert_eq!(stored_remote_ids(&app, connection).await.len(), n);
    }
    // The Gateway's detail calls are made only for new or changed list items.
    let gw_details = sims
        .set
        .gateway
        .requests()
        .iter()
        .filter(|r| r.path.contains("/contacts/"))
        .count();
    assert_eq!(
        gw_details,
        sims.set.gateway.api().with_store(|s| s.len()),
        "one detail per contact, first run only"
    );

    let runs: Value = send(app.get("/v1/admin/sync-runs?status=succeeded", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(runs["data"].as_array().expect("data").len(), 6);
    let by_conn: Value = send(app.get(
        &format!("/v1/admin/sync-runs?connection_id={}", Sims::id(&sims.wacr)),
        &app.admin_key,
    ))
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(by_conn["data"].as_array().expect("data").len(), 2);
    assert_error(
        send(app.get("/v1/admin/sync-runs?status=done", &app.admin_key)).await,
        422,
        "validation_failed",
    )
    .await;
}

async fn upstream_edits_deletions_and_revivals_are_reflected(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(42, 120, json!({})).await;
    app.sync_now(&sims.periskope).await;
    let (edited, removed_digits) = sims.set.periskope.api().with_store(|s| {
        let all = s.all();
        let edited = all[0]["contact_id"].as_str().expect("id").to_string();
        let removed = all[1]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string();
        (edited, removed)
    });
    let removed_contact = sims.set.periskope.api().with_store(|s| {
        let mut c = s
            .get(edited.trim_end_matches("@c.us"))
            .expect("contact")
            .clone();
        c["contact_name"] = json!("Renamed Upstream");
        s.upsert(c);
        s.remove(&removed_digits).expect("removed")
    });
    let run = app.sync_now(&sims.periskope).await;
    let n = sims.set.periskope.api().with_store(|s| s.len()) as i64;
    assert_eq!(counts(&run), (0, 1, n - 1, 1), "{run}");
    let reader = app.reader_key().await;
    let found: Value = send(app.get("/v1/contacts?q=renamed%20upstream", &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(found["data"][0]["remote_id"], edited.as_str());
    let gone = format!("{removed_digits}@c.us");
    assert!(!stored_remote_ids(&app, &sims.periskope)
        .await
        .contains(&gone));
    let with_deleted: Value = send(app.get(
        &format!("/v1/contacts?phone=%2B{removed_digits}&include_deleted=true"),
        &reader,
    ))
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(with_deleted["data"][0]["remote_was_deleted"], true);

    // It comes back: revived.
    sims.set
        .periskope
        .api()
        .with_store(|s| s.upsert(removed_contact));
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(
        counts(&run),
        (0, 1, n, 0),
        "revived counts as updated: {run}"
    );
    assert!(stored_remote_ids(&app, &sims.periskope)
        .await
        .contains(&gone));
}

async fn a_run_failing_on_page_three_marks_nothing_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(43, 900, json!({})).await;
    let total = sims.set.wacr.api().with_store(|s| s.len());
    assert!(total > 250, "more than two pages of 100: {total}");
    let first = app.sync_now(&sims.wacr).await;
    assert_eq!(first["status"], "succeeded");
    // Upstream loses contacts, and then the provider fails after two pages.
    sims.set.wacr.api().with_store(|s| {
        let ids: Vec<i64> = s.all().take(5).filter_map(|c| c["id"].as_i64()).collect();
        for id in ids {
            s.remove(id);
        }
    });
    sims.set.wacr.set_faults(Faults {
        fail_after: Some(2),
        ..Faults::default()
    });
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().expect("error").contains("page 3"),
        "{run}"
    );
    assert_eq!(run["pages"], 2);
    assert_eq!(
        counts(&run).3,
        0,
        "nothing marked deleted after a partial listing"
    );
    assert_eq!(
        stored_remote_ids(&app, &sims.wacr).await.len(),
        total,
        "stored contacts intact"
    );
    // The provider recovers: the next run completes and sees the deletions.
    sims.set.wacr.set_faults(Faults::default());
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(counts(&run).3, 5);
}

async fn two_concurrent_triggers_make_one_run_and_one_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(44, 60, json!({})).await;
    sims.set.periskope.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let path = format!("/v1/admin/connections/{}/sync", Sims::id(&sims.periskope));
    let (a, b) = tokio::join!(
        send(app.post(&path, &app.admin_key, &json!({}))),
        send(app.post(&path, &app.admin_key, &json!({})))
    );
    let mut statuses = vec![a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, vec![202, 409]);
    let accepted = if a.status() == 202 { a } else { b };
    let run: Value = accepted.json().await.expect("json");
    assert_eq!(
        app.wait_for(run["id"].as_str().expect("id")).await["status"],
        "succeeded"
    );
    // Once it is over, a new one may start.
    sims.set.periskope.set_faults(Faults::default());
    assert_eq!(app.sync_now(&sims.periskope).await["status"], "succeeded");
    // Another org's connection and runs are not found.
    let (_, stranger) = app.create_key("other-org", &[Scope::Admin]).await;
    assert_error(
        send(app.post(&path, &stranger, &json!({}))).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        send(app.get(
            &format!("/v1/admin/sync-runs/{}", run["id"].as_str().expect("id")),
            &stranger,
        ))
        .await,
        404,
        "not_found",
    )
    .await;
}

async fn a_lease_left_by_a_killed_process_is_taken_over_after_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(45, 40, json!({})).await;
    let connection = app.connection(&Sims::id(&sims.periskope)).await;
    // A process took the lease and died: its run says running, its lease has not expired.
    let dead = take_lease(
        &app.store,
        &connection,
        Trigger::Cli,
        "pid-dead",
        chrono::Duration::seconds(60),
    )
    .await;
    let path = format!("/v1/admin/connections/{}/sync", connection.id);
    assert_error(
        send(app.post(&path, &app.admin_key, &json!({}))).await,
        409,
        "conflict",
    )
    .await;
    // Time passes: the lease expires.
    expire_leases(&app).await;
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "succeeded");
    let old: Value = send(app.get(&format!("/v1/admin/sync-runs/{}", dead.id), &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(old["status"], "failed");
    assert!(old["error"].as_str().expect("error").contains("abandoned"));
}

async fn the_scheduler_syncs_connections_that_are_due(backend: Backend) {
    // One scheduled run at a time: the three connections are due together.
    let app = spawn_app_with(backend, |s| {
        s.scheduler_tick_ms = 100;
        s.sync_max_concurrent_runs = 1;
    })
    .await;
    let sims = app.connect_sims(46, 40, json!({})).await;
    // Never synced, so due at once; the next one is `sync_interval_seconds` away.
    let mut seen = HashSet::new();
    for _ in 0..1500 {
        let runs: Value = send(app.get("/v1/admin/sync-runs?status=succeeded", &app.admin_key))
            .await
            .json()
            .await
            .expect("json");
        for r in runs["data"].as_array().expect("data") {
            assert_eq!(r["trigger"], "schedule");
            seen.insert(r["connection_id"].as_str().expect("id").to_string());
        }
        if seen.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if seen.len() < 3 {
        let runs: Value = send(app.get("/v1/admin/sync-runs", &app.admin_key))
            .await
            .json()
            .await
            .expect("json");
        panic!("every connection synced by the scheduler: {runs}");
    }
    let total = stored_remote_ids(&app, &sims.periskope).await.len();
    assert_eq!(total, sims.set.periskope.api().with_store(|s| s.len()));
    // Not again before its interval.
    let runs: Value = send(app.get("/v1/admin/sync-runs", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(runs["data"].as_array().expect("data").len(), 3, "{runs}");
    // And never two at once: each started after the one before had finished.
    let mut spans = run_spans(&app).await;
    spans.sort();
    for pair in spans.windows(2) {
        let (_, finished) = pair[0];
        let (started, _) = pair[1];
        assert!(
            finished.is_some_and(|f| f <= started),
            "scheduled runs overlapped: {spans:?}"
        );
    }
}

/// Every run's (started_at, finished_at), as stored.
async fn run_spans(app: &TestApp) -> Vec<(chrono::NaiveDateTime, Option<chrono::NaiveDateTime>)> {
    app.store
        .run(|conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::sync_runs;
            Ok(sync_runs::table
                .select((sync_runs::started_at, sync_runs::finished_at))
                .load(conn)?)
        })
        .await
        .expect("runs")
}

async fn a_connection_the_scheduler_cannot_use_gets_a_failed_run(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(47, 20, json!({})).await;
    // The stored connection lost its phone (no adapter can be built without it).
    let id = Sims::id(&sims.periskope);
    let broken = id.clone();
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::connections;
            diesel::update(connections::table.filter(connections::id.eq(broken)))
                .set(connections::credentials.eq(r#"{"api_key":"k"}"#))
                .execute(conn)?;
            Ok(())
        })
        .await
        .expect("break the connection");
    let other = app.spawn_beside(|s| s.scheduler_tick_ms = 50).await;
    let path = format!("/v1/admin/sync-runs?connection_id={id}");
    let mut runs = Value::Null;
    for _ in 0..1500 {
        runs = send(app.get(&path, &app.admin_key))
            .await
            .json()
            .await
            .expect("json");
        if runs["data"].as_array().is_some_and(|d| !d.is_empty())
            && runs["data"][0]["status"] != "running"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = &runs["data"][0];
    assert_eq!(run["status"], "failed", "{runs}");
    assert_eq!(run["trigger"], "schedule");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be used")),
        "{run}"
    );
    // The lease went with it: asking again is not a 409 but the same failure.
    let body = assert_error(
        send(
            app.client
                .post(format!("{other}/v1/admin/connections/{id}/sync"))
                .bearer_auth(&app.admin_key)
                .json(&json!({})),
        )
        .await,
        502,
        "upstream_error",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("phone")),
        "{body}"
    );
}

/// Makes the run look started and finished at `at`.
fn backdate_run(
    conn: &mut unicontacts::store::DbConnection,
    id: &str,
    at: chrono::NaiveDateTime,
) -> Result<(), unicontacts::store::StoreError> {
    use diesel::prelude::*;
    use unicontacts::store::schema::sync_runs;
    diesel::update(sync_runs::table.filter(sync_runs::id.eq(id)))
        .set((
            sync_runs::started_at.eq(at),
            sync_runs::finished_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

async fn the_scheduler_prunes_runs_past_the_retention(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(48, 20, json!({})).await;
    let mut old = Vec::new();
    for _ in 0..3 {
        let run = app.sync_now(&sims.gateway).await;
        old.push(run["id"].as_str().expect("id").to_string());
    }
    let recent = app.sync_now(&sims.wacr).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The gateway's three runs finished 100 days ago, a minute apart.
    let backdate = old.clone();
    app.store
        .run(move |conn| {
            for (i, id) in backdate.iter().enumerate() {
                let at = unicontacts::ids::now() - chrono::Duration::days(100)
                    + chrono::Duration::minutes(i as i64);
                backdate_run(conn, id, at)?;
            }
            Ok(())
        })
        .await
        .expect("backdate");
    let remaining = || async {
        app.store
            .run(|conn| {
                use diesel::prelude::*;
                use unicontacts::store::schema::sync_runs;
                Ok(sync_runs::table
                    .select(sync_runs::id)
                    .load::<String>(conn)?)
            })
            .await
            .expect("runs")
    };
    // Another process's scheduler prunes when it starts (retention: 90 days).
    app.spawn_beside(|s| s.scheduler_tick_ms = 50).await;
    let mut ids = Vec::new();
    for _ in 0..1500 {
        ids = remaining().await;
        if !ids.contains(&old[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!ids.contains(&old[0]) && !ids.contains(&old[1]), "{ids:?}");
    // The gateway's latest run stays (the next one is timed from it), and so do
    // the runs within the retention.
    assert!(ids.contains(&old[2]), "{ids:?}");
    assert!(ids.contains(&recent), "{ids:?}");
    let gone = send(app.get(&format!("/v1/admin/sync-runs/{}", old[0]), &app.admin_key)).await;
    assert_error(gone, 404, "not_found").await;
}

async fn a_record_the_provider_cannot_give_makes_the_run_partial(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(66, 60, json!({})).await;
    let first = app.sync_now(&sims.gateway).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let stored = stored_remote_ids(&app, &sims.gateway).await.len() as i64;
    // Two new Gateway contacts; one detail answer cannot be read (groups not a list).
    let gateway = sims.set.gateway.api();
    let (broken, good) = gateway.with_store(|s| {
        let template = s.all().next().expect("a contact").clone();
        let mut add = |n: u64, groups: Value| {
            let mut d = template.clone();
            let lid = format!("{}@lid", 990_000_000_000_000 + n);
            d["identity"]["lid"] = json!(lid);
            d["identity"]["phoneNumber"] = json!(format!("4477009{n:05}"));
            d["groups"] = groups;
            s.insert(d);
            lid
        };
        (add(1, json!("not a list")), add(2, json!([])))
    });
    let run = app.sync_now(&sims.gateway).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(counts(&run), (1, 0, stored, 0), "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.starts_with("1 contact(s) could not be read") && error.contains(&broken),
        "{error}"
    );
    let ids: HashSet<String> = stored_remote_ids(&app, &sims.gateway)
        .await
        .into_iter()
        .collect();
    assert!(ids.contains(&good) && !ids.contains(&broken));
    assert_eq!(
        ids.len() as i64,
        stored + 1,
        "nothing else written or deleted"
    );

    // Once the provider answers properly, the next run picks it up.
    gateway.with_store(|s| s.get_mut(&broken).expect("broken")["groups"] = json!([]));
    let run = app.sync_now(&sims.gateway).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), (1, 0, stored + 1, 0), "{run}");
    assert!(run["error"].is_null());
}

/// `(run id, rows)` of every seen set in the store.
async fn seen_sets(app: &TestApp) -> Vec<(String, i64)> {
    app.store
        .run(|conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::sync_seen;
            Ok(sync_seen::table
                .group_by(sync_seen::run_id)
                .select((sync_seen::run_id, diesel::dsl::count_star()))
                .load::<(String, i64)>(conn)?)
        })
        .await
        .expect("seen sets")
}

async fn a_seen_set_lasts_until_the_next_run_and_goes_with_the_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(67, 40, json!({})).await;
    let listed = sims.set.wacr.api().with_store(|s| s.len()) as i64;
    let first = app.sync_now(&sims.wacr).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        seen_sets(&app).await,
        vec![],
        "a first sync has nothing stored before it to find gone: no seen set"
    );
    let second = app.sync_now(&sims.wacr).await;
    assert_eq!(
        seen_sets(&app).await,
        vec![(second["id"].as_str().expect("id").to_string(), listed)]
    );
    let third = app.sync_now(&sims.wacr).await;
    assert_eq!(
        seen_sets(&app).await,
        vec![(third["id"].as_str().expect("id").to_string(), listed)],
        "the second run's set is gone once the third starts"
    );
    let res = send(app.delete(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.wacr)),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(seen_sets(&app).await, vec![]);
}

async fn a_run_that_lost_its_lease_stops_without_writing(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(47, 40, json!({})).await;
    let first = app.sync_now(&sims.periskope).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let stored = stored_remote_ids(&app, &sims.periskope).await;
    let connection = app.connection(&Sims::id(&sims.periskope)).await;
    // A run starts, then stalls past its lease; a second run takes over and ends.
    let stalled = app
        .state
        .runner
        .begin(&connection, Trigger::Cli, None)
        .await
        .expect("begins");
    expire_leases(&app).await;
    let second = app.sync_now(&sims.periskope).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    // Upstream changes; then the stalled run wakes up and carries on.
    sims.set.periskope.api().with_store(|s| {
        let digits = s.all()[0]["contact_id"]
            .as_str()
            .and_then(|c| c.strip_suffix("@c.us"))
            .expect("id")
            .to_string();
        s.remove(&digits);
    });
    let done = app
        .state
        .runner
        .run(stalled, CancellationToken::new(), |_| {})
        .await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(
        done.error
            .as_deref()
            .is_some_and(|e| e.contains("lost its lease")),
        "{:?}",
        done.error
    );
    assert_eq!((done.created, done.updated, done.deleted), (0, 0, 0));
    assert_eq!(
        stored_remote_ids(&app, &sims.periskope).await,
        stored,
        "the store is as the second run left it"
    );
}

async fn sync_now_waits_for_a_run_holding_the_lease(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(48, 20, json!({})).await;
    let connection = app.connection(&Sims::id(&sims.wacr)).await;
    // Another process (the scheduler, say) holds the lease for two more seconds.
    let held = take_lease(
        &app.store,
        &connection,
        Trigger::Schedule,
        "pid-other",
        chrono::Duration::seconds(2),
    )
    .await;
    let done = unicontacts::service::sync_runs::run_now(&app.state, &connection, Trigger::Demo)
        .await
        .expect("waits, then runs");
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert_ne!(done.id, held.id);
    let listed = sims.set.wacr.api().with_store(|s| s.len()) as i64;
    assert_eq!(done.created, listed);
}

/// Offset paging can list a record on two pages (when records before it come or
/// go in between): the seen set holds it once, and says how many ids were new to
/// it, which the deletion check compares with the connection's live contacts.
async fn a_seen_set_holds_a_remote_id_listed_twice_once(backend: Backend) {
    use unicontacts::store::sync_runs::mark_seen;
    let app = spawn_app(backend).await;
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (first, second) = (ids(&["a@c.us", "b@c.us"]), ids(&["b@c.us", "c@c.us"]));
    let added = app
        .store
        .write(move |conn| mark_seen(conn, "run_x", &first))
        .await
        .expect("first page");
    assert_eq!(added, 2);
    let added = app
        .store
        .write(move |conn| mark_seen(conn, "run_x", &second))
        .await
        .expect("a page repeating a record");
    assert_eq!(added, 1, "only c@c.us is new to the seen set");
}

/// A batch of new contacts meeting one stored meanwhile (a live read) fails as a
/// conflict, whole, so that the page falls back to upserts: on PostgreSQL the batch
/// is a COPY, which must report the unique violation as INSERT does.
async fn a_batch_of_new_contacts_meeting_a_stored_one_is_a_conflict(backend: Backend) {
    use unicontacts::store::contacts::{prepare, NewContacts, Origin};
    use unicontacts::store::StoreError;
    let app = spawn_app(backend).await;
    let connection = app
        .create_connection(crate::helpers::periskope_connection("p", "key-1234567890"))
        .await;
    let connection_id = connection["id"].as_str().expect("id").to_string();
    let org_id = app.org_id.clone();
    let insert = move |remote_ids: Vec<&'static str>| {
        let (org_id, connection_id) = (org_id.clone(), connection_id.clone());
        move |conn: &mut unicontacts::store::DbConnection| {
            use diesel::Connection as _;
            let origin = Origin {
                org_id: &org_id,
                connection_id: &connection_id,
                provider: unicontacts_adapters::ProviderKind::Periskope,
            };
            let records = remote_ids
                .iter()
                .map(|id| {
                    let record = unicontacts_adapters::ContactRecord {
                        remote_id: id.to_string(),
                        labels: vec!["vip".into()],
                        ..Default::default()
                    };
                    Ok((prepare(record)?, None))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let new = NewContacts::new(&origin, &records, unicontacts::ids::now());
            conn.transaction(|conn| new.insert(conn))
        }
    };
    app.store
        .write(insert(vec!["1@c.us"]))
        .await
        .expect("first insert");
    let again = app.store.write(insert(vec!["2@c.us", "1@c.us"])).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let count = app
        .get("/v1/contacts?limit=10", &app.reader_key().await)
        .send()
        .await
        .expect("list");
    let body: Value = count.json().await.expect("json");
    assert_eq!(
        body["data"].as_array().map(Vec::len),
        Some(1),
        "the failed batch wrote nothing: {body}"
    );
}

async fn a_long_run_history_is_pruned_over_several_ticks(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(49, 10, json!({})).await;
    let kept = app.sync_now(&sims.gateway).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Not due again for a week, so the scheduler below only prunes it.
    let res = send(app.patch(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.gateway)),
        &app.admin_key,
        &json!({"settings": {"sync_interval_seconds": 604_800}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    // 10 500 more runs, all finished three days ago or before (more than one pass
    // prunes), and the real one backdated to two days ago: the latest, it stays.
    let connection = app.connection(&Sims::id(&sims.gateway)).await;
    let (org_id, connection_id, latest) = (connection.org_id, connection.id, kept.clone());
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::models::SyncRunRow;
            use unicontacts::store::schema::sync_runs;
            conn.transaction(|conn| {
                let long_ago = unicontacts::ids::now() - chrono::Duration::days(4);
                for i in 0..10_500_i64 {
                    let at = long_ago + chrono::Duration::seconds(i);
                    let run = SyncRunRow {
                        id: unicontacts::ids::new_id(unicontacts::ids::SYNC_RUN),
                        org_id: org_id.clone(),
                        connection_id: connection_id.clone(),
                        trigger_kind: Trigger::Schedule,
                        status: RunStatus::Succeeded,
                        created: 0,
                        updated: 0,
                        unchanged: 0,
                        deleted: 0,
                        pages: 1,
                        upstream_requests: 1,
                        throttled_429: 0,
                        limiter_wait_ms: 0,
                        error: None,
                        started_at: at,
                        finished_at: Some(at),
                        deletions_held: 0,
                        suppressed: 0,
                    };
                    diesel::insert_into(sync_runs::table)
                        .values(run)
                        .execute(conn)?;
                }
                backdate_run(
                    conn,
                    &latest,
                    unicontacts::ids::now() - chrono::Duration::days(2),
                )?;
                Ok(())
            })
        })
        .await
        .expect("history");
    let old_runs = || async {
        app.store
            .run(|conn| {
                use diesel::prelude::*;
                use unicontacts::store::schema::sync_runs;
                let cutoff = unicontacts::ids::now() - chrono::Duration::days(1);
                Ok(sync_runs::table
                    .filter(sync_runs::finished_at.lt(cutoff))
                    .select(sync_runs::id)
                    .load::<String>(conn)?)
            })
            .await
            .expect("runs")
    };
    assert_eq!(old_runs().await.len(), 10_501);
    app.spawn_beside(|s| {
        s.scheduler_tick_ms = 50;
        s.sync_run_retention_days = 1;
    })
    .await;
    let mut left = Vec::new();
    for _ in 0..1500 {
        left = old_runs().await;
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, vec![kept], "the backlog drains, the latest run stays");
}

crate::db_tests!(
    a_first_sync_creates_everything_and_a_second_writes_nothing,
    upstream_edits_deletions_and_revivals_are_reflected,
    a_run_failing_on_page_three_marks_nothing_deleted,
    two_concurrent_triggers_make_one_run_and_one_409,
    a_lease_left_by_a_killed_process_is_taken_over_after_expiry,
    the_scheduler_syncs_connections_that_are_due,
    a_connection_the_scheduler_cannot_use_gets_a_failed_run,
    the_scheduler_prunes_runs_past_the_retention,
    a_long_run_history_is_pruned_over_several_ticks,
    a_record_the_provider_cannot_give_makes_the_run_partial,
    a_seen_set_lasts_until_the_next_run_and_goes_with_the_connection,
    a_run_that_lost_its_lease_stops_without_writing,
    sync_now_waits_for_a_run_holding_the_lease,
    a_seen_set_holds_a_remote_id_listed_twice_once,
    a_batch_of_new_contacts_meeting_a_stored_one_is_a_conflict,
);
